/*
 * stall_queue.h - queues the stall report built by stall_report()
 * (stall.h) as a message of the runner's own, in its open transaction.
 */
#ifndef FERRY_STALL_QUEUE_H
#define FERRY_STALL_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"

struct ferry_config;

/* Queues report[0..len) from the null sender to queue { notify }: 0 and
 * its qid, -1 on a store error.  Inside the open transaction. */
int stall_queue_report(struct store *st, const struct ferry_config *cfg,
    const uint8_t *report, size_t len, char *qid_out);

#endif
