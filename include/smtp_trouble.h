/*
 * smtp_trouble.h - what a reply, a lost connection or a TLS failure from
 * a next hop means for the job's recipients: go on, a deferral or a
 * bounce for the recipients at stake, or a failover to the next host
 * (smtp_trouble.c).  The classification is a set of pure functions.
 */
#ifndef FERRY_SMTP_TROUBLE_H
#define FERRY_SMTP_TROUBLE_H

#include <stdint.h>

struct job_ctx;
struct smtp_conn;

/* Where in the dialogue with a next hop a reply came. */
enum smtp_stage {
	STAGE_GREETING,
	STAGE_EHLO,
	STAGE_HELO,
	STAGE_STARTTLS,
	STAGE_AUTH,               /* the final reply: 334 is the dialogue's */
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_DATA,               /* the reply to the DATA command */
	STAGE_END_OF_DATA         /* the body and the final dot */
};

/* What it means. */
enum trouble {
	TROUBLE_NONE = 0,         /* success: go on */
	TROUBLE_FALLBACK,         /* go on another way: HELO after a 5xx to
	                             EHLO, plain text when TLS is only "may" */
	TROUBLE_DEFER,            /* a 4xx result for the recipients at
	                             stake; the session goes on */
	TROUBLE_BOUNCE,           /* a 5xx result for the recipients at stake */
	TROUBLE_FAILOVER          /* this host will not do: close; pending
	                             recipients try the next host, and are
	                             deferred when none is left */
};

/* A reply's code at a stage; tls_policy (enum tls_policy) matters only
 * at STAGE_STARTTLS. */
enum trouble smtp_trouble_reply(enum smtp_stage stage, int code,
    uint32_t tls_policy);
/* The server's EHLO did not offer STARTTLS. */
enum trouble smtp_trouble_no_starttls(uint32_t tls_policy);
/* The connection was lost or timed out at a stage: before the body
 * another host may take the message; from the body on the server may
 * end up with it, so the recipients are only deferred. */
enum trouble smtp_trouble_lost(enum smtp_stage stage);
/* Nonzero when a reply ends the session (421: the server is closing). */
int smtp_trouble_closes(int code);
/* The result status (enum deliver_status) of TROUBLE_DEFER or
 * TROUBLE_BOUNCE. */
uint32_t smtp_trouble_status(enum trouble t);
const char *smtp_trouble_name(enum trouble t);

/* Records a next-hop failure as x->last (always a deferral: another
 * host, or a later try, may do better).  c may be NULL. */
void hop_fail(struct job_ctx *x, const struct smtp_conn *c, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
