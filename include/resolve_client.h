/*
 * resolve_client.h - the SMTP worker's side of ferry-resolve (resolve.h):
 * the client's forward-confirmed name, asked for before the greeting.
 *
 * Like anvil's questions (anvil_client.h), these are events: the worker
 * asks for one of its connections (an owner number, at most one question
 * per owner at a time), serves its other sessions meanwhile, and hears
 * the name through on_answer once ferry-resolve answered.  ferry-resolve
 * bounds each lookup by workers.client_name_timeout; a question still
 * unanswered RESOLVE_MARGIN_MS after that means ferry-resolve is stuck:
 * the connection is dropped and every question waiting is answered
 * unknown.  When ferry-resolve cannot be reached the name is unknown at
 * once (a name is for the logs and the Received header; it decides
 * nothing).
 */
#ifndef FERRY_RESOLVE_CLIENT_H
#define FERRY_RESOLVE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "channel.h"
#include "hostname.h"

#define RESOLVE_MARGIN_MS 1000

/* Called with owner's name: a valid host name (hostname.h), or "" when
 * it is unknown.  Like anvil's, it may come from any resolve_client_*
 * call but _init and _close, so it must only note the answer. */
typedef void resolve_answer_fn(void *arg, uint32_t owner, const char *name);

#define RESOLVE_KEPT 64            /* answers a worker keeps */
#define RESOLVE_ADDR_MAX 64

struct resolve_waiter {
	uint32_t seq;              /* the request id ferry-resolve echoes */
	uint32_t owner;
	char addr[RESOLVE_ADDR_MAX];   /* asked about, for the kept answers */
	int64_t deadline;          /* now_ms() clock */
	int live;                  /* 0: the owner no longer waits */
};

/* An answer ferry-resolve said may be given again until expires. */
struct resolve_kept {
	char addr[RESOLVE_ADDR_MAX];   /* "" = a free entry */
	char name[HOSTNAME_MAX + 1];
	int64_t expires;           /* now_ms() clock */
};

struct resolve_client {
	char *path;                /* NULL: no lookups (client_names off) */
	struct resolve_kept kept[RESOLVE_KEPT];
	struct channel ch;         /* ch.fd is -1 when not connected */
	resolve_answer_fn *on_answer;
	void *arg;
	int64_t wait_ms;           /* how long a question may wait */
	struct resolve_waiter *waiting;   /* in the order asked */
	size_t nwaiting, waiting_cap;
	uint32_t next_seq;
	int64_t retry_after;       /* no new attempt before (now_ms) */
	int outage_logged;
};

/* path NULL: every client stays unknown and nothing is asked. */
void resolve_client_init(struct resolve_client *rc, const char *path,
    int timeout_s, resolve_answer_fn *on_answer, void *arg);
/* Closes the connection; questions still waiting are not answered. */
void resolve_client_close(struct resolve_client *rc);

/* Asks for the name of addr for owner.  1: asked, the name comes
 * through on_answer (at once, from within this call, when an answer
 * ferry-resolve let the worker keep is still fresh); 0: not asked (off,
 * or ferry-resolve unreachable): the client is unknown now. */
int resolve_ask(struct resolve_client *rc, uint32_t owner,
    const char *addr);
/* owner no longer waits for its name (its connection ended). */
void resolve_client_forget(struct resolve_client *rc, uint32_t owner);

/* A worker at rest lets go of ferry-resolve, so that it may leave when
 * idle (workers.helper_idle): the connection is closed when no question
 * waits and nothing is unwritten (else it is a no-op: call it again
 * later).  Not a failure: the next question connects again. */
void resolve_client_release(struct resolve_client *rc);
/* The descriptor to poll, or -1, and what for. */
int resolve_client_fd(const struct resolve_client *rc);
short resolve_client_events(const struct resolve_client *rc);
/* After poll: writes what waits, takes the answers.  An answer nobody
 * asked for, or a name that is not a plain host name, is ferry-resolve
 * lying: the connection is dropped and the questions waiting are
 * answered unknown; so is end of file. */
void resolve_client_io(struct resolve_client *rc, short revents);
/* The earliest deadline of a question waiting, or 0 when none waits. */
int64_t resolve_client_deadline(const struct resolve_client *rc);
/* Past that deadline: ferry-resolve is stuck (see above). */
void resolve_client_tick(struct resolve_client *rc, int64_t now);

#endif
