/*
 * route_caps.h - what each route's upstream can take, as learned from
 * the EHLO of the delivery agents' last connection to it, and the
 * decisions the SMTP worker takes from it during the session: a message
 * the route cannot pass is refused before the 250, not bounced later.
 *
 * The runner keeps a table of routes (by name, as the configuration
 * every process shares names them) and sends it to each worker on the
 * intake connection (IMSG_ROUTE_CAPS, after IMSG_QUEUE_STATE) when it
 * connects and whenever a route's capabilities change.  MX delivery
 * (the "mx" route, and a route without hosts) has many upstreams: it is
 * never in the table, so its capabilities stay unknown.  A route that is
 * not in the table is unknown: its mail is accepted and decided at
 * delivery, as it always was.
 *
 * Every decision here follows what the delivery agent would do with the
 * message (smtp_client_tx.c refuses before MAIL a SIZE over the
 * upstream's, an 8BITMIME body or an SMTPUTF8 message the upstream does
 * not offer): what is refused here would have bounced.
 *
 * Pure: no I/O.  Security stance: the table comes from the runner and is
 * decoded strictly (bounded count, bounded names, known bits only); a
 * frame that does not decode is a lying peer.
 */
#ifndef FERRY_ROUTE_CAPS_H
#define FERRY_ROUTE_CAPS_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"

struct ferry_config;
struct route_config;

/* At most this many routes in a note; routes past it stay unknown. */
#define ROUTE_CAPS_MAX 256
/* A route's name in a note, at most (longer ones stay unknown). */
#define ROUTE_CAPS_NAME_MAX 128
/* The largest IMSG_ROUTE_CAPS payload: u32 count, then per route a
 * string (u32 length + name), u32 flags, u64 size. */
#define ROUTE_CAPS_FRAME_MAX \
	(4 + ROUTE_CAPS_MAX * (4 + ROUTE_CAPS_NAME_MAX + 4 + 8))

/* EHLO keywords the upstream offered. */
#define RCAP_SIZE       0x01u
#define RCAP_8BITMIME   0x02u
#define RCAP_SMTPUTF8   0x04u
#define RCAP_DSN        0x08u
#define RCAP_REQUIRETLS 0x10u
#define RCAP_ALL        0x1fu

struct route_caps {
	uint32_t flags;           /* RCAP_* */
	uint64_t size_max;        /* SIZE's number; 0: none given (no
	                             limit), or no SIZE */
};

struct route_caps_entry {
	char *name;
	struct route_caps caps;
};

struct route_caps_table {
	struct route_caps_entry *v;
	size_t n;
};

void route_caps_table_init(struct route_caps_table *t);
void route_caps_table_free(struct route_caps_table *t);
/* The route's capabilities, or NULL when unknown. */
const struct route_caps *route_caps_find(const struct route_caps_table *t,
    const char *route);
/* Records what route's upstream offers: 1 when that changed what was
 * known (or it was unknown), 0 when it is the same. */
int route_caps_set(struct route_caps_table *t, const char *route,
    const struct route_caps *c);
/* Forgets route: 1 when it was known. */
int route_caps_forget(struct route_caps_table *t, const char *route);

/* The upstream's SIZE limit when it has one (0: none). */
uint64_t route_caps_limit(const struct route_caps *c);

/* Nonzero for a route whose upstream is one the table can know: it has
 * hosts of its own (MX delivery has many upstreams). */
int route_caps_learnable(const struct route_config *r);

/* How many routes the note to the workers holds: the known routes that
 * are routes with hosts in cfg, at most ROUTE_CAPS_MAX of them. */
size_t route_caps_count(const struct route_caps_table *t,
    const struct ferry_config *cfg);
/* The note to the workers (those routes).  Returns how many it wrote. */
size_t route_caps_encode(const struct route_caps_table *t,
    const struct ferry_config *cfg, struct ipc_out *m);
/* Replaces *t with the note's routes.  0, or -1 when malformed (*t is
 * then left as it was). */
int route_caps_decode(struct ipc_in *in, struct route_caps_table *t);

/* What a transaction needs of the upstream. */
struct route_caps_need {
	uint64_t size;            /* SIZE= declared, or the real size; 0:
	                             not declared */
	int smtputf8;             /* MAIL ... SMTPUTF8 */
	int eightbit;             /* MAIL ... BODY=8BITMIME */
};

enum route_caps_verdict {
	RCV_OK = 0,               /* accept (or unknown: decided later) */
	RCV_SIZE,                 /* 552 5.3.4: too big for the upstream */
	RCV_SMTPUTF8,             /* 553 5.6.7: SMTPUTF8 not offered */
	RCV_8BITMIME              /* 554 5.6.3: 8BITMIME not offered */
};

/* The capabilities of the route a recipient in domain takes for a
 * message from sender (config_route_select), or NULL when unknown (MX
 * delivery, or nothing learned). */
const struct route_caps *route_caps_for(const struct ferry_config *cfg,
    const struct route_caps_table *t, const char *sender,
    const char *domain);

/* RCPT: may a recipient whose route has caps (NULL: unknown) take the
 * transaction? */
enum route_caps_verdict route_caps_check_rcpt(const struct route_caps *caps,
    const struct route_caps_need *need);

/* MAIL: RCV_SIZE when the declared size is over the limit of every
 * route a message from sender could take - each route the sender may
 * use has a known SIZE below it, and none leaves mail to MX delivery
 * (unknown).  RCV_OK otherwise. */
enum route_caps_verdict route_caps_check_mail(const struct ferry_config *cfg,
    const struct route_caps_table *t, const char *sender, uint64_t size);

/* After the data: RCV_SIZE when size is over the known SIZE limit of
 * the route of every one of the n recipients (caps[i], NULL: unknown),
 * so that no recipient could be delivered.  RCV_OK otherwise (n == 0
 * too). */
enum route_caps_verdict route_caps_check_data(
    const struct route_caps *const *caps, size_t n, uint64_t size);

/* The SIZE to advertise in EHLO: the smallest of limit (ferry's
 * message_size_limit) and the known SIZE limit of every route with
 * hosts in cfg. */
uint64_t route_caps_advertised_size(const struct ferry_config *cfg,
    const struct route_caps_table *t, uint64_t limit);

/* "SIZE=10485760 8BITMIME SMTPUTF8 DSN" - the capabilities in words, for
 * logs and ferryctl. */
void route_caps_describe(const struct route_caps *c, char *out,
    size_t outlen);

#endif
