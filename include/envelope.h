/*
 * envelope.h - a message's envelope as the SMTP worker hands it to the
 * queue runner, and its encoding in an IMSG_TX_BEGIN frame.
 *
 * The runner decodes with the same limits the worker enforces, so a
 * worker that lies (too many recipients, over-long fields) is refused.
 */
#ifndef FERRY_ENVELOPE_H
#define FERRY_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"

#define ENVELOPE_MAX_RCPTS 100000
#define ENVELOPE_MAX_FIELD 1024

struct envelope_rcpt {
	char *addr;
	uint32_t notify;          /* NOTIFY_* bits from smtp_parse.h */
	char *orcpt;              /* "" when none */
};

struct envelope {
	char *sender;             /* "" for the null sender */
	char *client_addr;        /* numeric */
	char *client_name;        /* "unknown" when not resolved */
	char *helo;
	char *protocol;           /* SMTP, ESMTP, UTF8SMTP, UTF8ESMTP */
	char *auth_user;          /* "" when not authenticated */
	int64_t received_at_us;   /* wall clock, microseconds */
	int64_t size_declared;    /* MAIL SIZE=, -1 when absent */
	uint32_t body_type;       /* enum body_type */
	uint32_t smtputf8;
	uint32_t dsn_ret;         /* enum dsn_ret */
	char *dsn_envid;          /* "" when none */
	uint32_t no_dkim;         /* 1: its listener says dkim = false */
	struct envelope_rcpt *rcpts;
	size_t nrcpts, rcpts_cap;
};

void envelope_init(struct envelope *e);
void envelope_free(struct envelope *e);   /* frees members, resets */
void envelope_add_rcpt(struct envelope *e, const char *addr,
    uint32_t notify, const char *orcpt);

/* Appends the envelope's fields to an IMSG_TX_BEGIN frame. */
void envelope_encode(const struct envelope *e, struct ipc_out *m);
/* Reads the fields (and checks ipc_end); -1 on any malformation. */
int envelope_decode(struct ipc_in *in, struct envelope *e);

#endif
