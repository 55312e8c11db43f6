/*
 * bounce_queue.h - queues delivery status notifications built by
 * bounce_report() (bounce.h): reads the original from the store and
 * writes the report as a new message in the open transaction.
 */
#ifndef FERRY_BOUNCE_QUEUE_H
#define FERRY_BOUNCE_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "bounce.h"
#include "store.h"

struct ferry_config;

/* Queues a notification about the recipients r[0..n) of msgid when one
 * is owed (bounce_owed).  Inside the open transaction.  Returns 1 and the
 * new qid, 0 when none was due, -1 on a store error. */
int bounce_queue(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out);
/* The same for recipients still being retried: a delay warning
 * (Action: delayed, the headers only), at most once per message. */
int bounce_queue_delay(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out);

#endif
