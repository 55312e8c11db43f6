/*
 * bounce.h - delivery status notifications (RFC 3464): when recipients of
 * a message fail, a multipart/report message from the null sender to the
 * original sender is queued in the same transaction that records the
 * failure.
 */
#ifndef FERRY_BOUNCE_H
#define FERRY_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"

struct ferry_config;

struct bounce_rcpt {
	const char *addr;
	const char *orcpt;        /* "addr-type;xtext" or "" */
	const char *status;       /* enhanced status code "5.1.1" */
	const char *remote_mta;   /* host name or "" */
	const char *diagnostic;   /* the remote reply or local reason */
	const char *detail;       /* the same with context, for people */
	double last_attempt;
};

/* Queues a notification about the recipients r[0..n) of msgid, unless
 * the message is itself a notification or has the null sender (no bounce
 * loops).  Inside the open transaction.  Returns 1 and the new qid, 0 when
 * none was due, -1 on a store error. */
int bounce_queue(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out);
/* The same for recipients still being retried: a delay warning
 * (Action: delayed, the headers only), at most once per message. */
int bounce_queue_delay(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out);

#endif
