/*
 * metrics_snapshot.h - what the queue runner tells ferry-metrics: its
 * in-memory counters and gauges, written as Prometheus text (version
 * 0.0.4) by metrics_snapshot_write (metrics_snapshot.c, pure).
 *
 * The runner builds the snapshot from what it holds in memory, plus the
 * queue's counts by state from one cheap query it repeats at most every
 * METRICS_QUEUE_COUNT_MS; nothing in it is message data.  The line
 * "ferry_ready 1" is what /readyz looks for.
 */
#ifndef FERRY_METRICS_SNAPSHOT_H
#define FERRY_METRICS_SNAPSHOT_H

#include <stdint.h>
#include "metrics_text.h"
#include "scheduler.h"
#include "token_proto.h"

#define METRICS_QUEUE_COUNT_MS 1000
#define METRICS_OAUTH_ROUTES 64   /* OAuth2 routes shown at most */

struct metrics_snapshot {
	uint64_t messages_accepted;       /* committed by intake */
	uint64_t intake_failed;
	uint64_t commits;
	const struct histogram *commit_batch;      /* messages per commit */
	const struct histogram *commit_seconds;    /* store_commit time */
	const struct sched_metrics *deliveries;    /* NULL: no store */
	int queue_known;                  /* the counts below are valid */
	int64_t queue_active, queue_hold, rcpts_pending;
	double oldest_age;                /* seconds; -1 when empty */
	int agents_total, agents_busy;
	int workers_total, workers_busy;  /* -1 when unknown */
	int stall_known;                  /* stall_reasons is valid */
	unsigned stall_reasons;           /* STALL_* bits (stall.h) */
	int store_state;                  /* QUEUE_STATE_* */
	int store_open;
	int ready;
	/* the OAuth2 routes' token states (token_proto.h), none: 0 */
	const struct token_state *const *oauth;
	size_t noauth;
};

void metrics_snapshot_write(struct mtext *t,
    const struct metrics_snapshot *m);

#endif
