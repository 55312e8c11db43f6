/*
 * scheduler.h - the queue runner's delivery side: the pool of delivery
 * agents connected to the runner, the choice of what is due and where it
 * goes, and the recording of every result (retries, bounces, expiry,
 * removal), all inside the runner's group-commit transaction.
 */
#ifndef FERRY_SCHEDULER_H
#define FERRY_SCHEDULER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "metrics_text.h"
#include "route_shaping.h"
#include "store.h"

struct ferry_config;
struct scheduler;

struct scheduler *scheduler_new(const struct ferry_config *cfg,
    struct store *st, uid_t agent_uid);
void scheduler_free(struct scheduler *s);
/* After a reload: the next decisions use cfg (the caller owns it). */
void scheduler_set_config(struct scheduler *s,
    const struct ferry_config *cfg);
/* Where the upstream capabilities the agents report go (route_learn.h;
 * the caller owns it; NULL: nowhere). */
struct route_learn;
void scheduler_set_route_learn(struct scheduler *s, struct route_learn *rl);

/* Accepts agents waiting on the listening socket. */
void scheduler_accept(struct scheduler *s, int listen_fd);
/* Fills pfds with the agents' descriptors and ferry-token's (at most
 * max); returns how many.  scheduler_events() then handles their
 * revents in the same order. */
size_t scheduler_pollfds(struct scheduler *s, struct pollfd *pfds,
    size_t max);
void scheduler_events(struct scheduler *s, const struct pollfd *pfds,
    size_t n);
/* The OAuth2 routes' token states (token_client.h), for status. */
struct token_client;
const struct token_client *scheduler_tokens(const struct scheduler *s);
/* Starts whatever is due and possible now. */
void scheduler_run(struct scheduler *s);
/* Milliseconds until scheduler_run has something to do (poll timeout). */
int scheduler_timeout_ms(struct scheduler *s);
/* Lets go the agents free for delivery { agent_idle } (scheduler_run
 * calls it; the timeout above counts the next one). */
void scheduler_retire_idle(struct scheduler *s);
/* The delivery agents the last turn had work for: busy ones, and one per
 * message due that no free agent could take (at most delivery { agents }).
 * The runner tells the master, which starts agents up to that many. */
int scheduler_agents_wanted(const struct scheduler *s);
void scheduler_wake(struct scheduler *s);
/* The operator flushed the queue: next hops marked down are tried again
 * (their mail goes as usual; a hop still down is marked again after
 * HOP_DOWN_AFTER failures), and so is every host of a smarthost pool. */
void scheduler_flush_hops(struct scheduler *s);
/* Nonzero while a delivery of that message is in flight. */
int scheduler_busy_qid(struct scheduler *s, const char *qid);
void scheduler_counts(struct scheduler *s, int *agents, int *busy);
/* The smarthost pools and their hosts' health (status, metrics). */
struct upstream_pools;
const struct upstream_pools *scheduler_pools(const struct scheduler *s);

/* Counters for the metrics endpoint, kept in memory since the runner
 * started: recipients' results by route and status (enum attempt_status;
 * routes past SCHED_METRIC_ROUTES count under "other"), and the time from
 * arrival to a final result (sent, bounced, expired). */
#define SCHED_METRIC_ROUTES 32
#define SCHED_METRIC_STATUSES 5
#define SCHED_ERROR_MAX 512
struct sched_route_count {
	char route[64];
	uint64_t by_status[SCHED_METRIC_STATUSES];
	/* for ferryctl status: the last recipient that was not delivered
	 * (its reply, when; 0: none yet) and the last one sent */
	char last_error[SCHED_ERROR_MAX];
	double last_error_at;
	double last_sent_at;
};
struct sched_metrics {
	struct sched_route_count routes[SCHED_METRIC_ROUTES + 1];
	/* recipients' results that came over TLS, by version */
	uint64_t tls_out[TLSV_COUNT];
	size_t nroutes;
	struct histogram delivery_seconds;
	double last_delivered;    /* the last recipient sent; 0: none */
	/* the routes with rate shaping, as of the last turn */
	struct shaping_figures shaping;
};
const struct sched_metrics *scheduler_metrics(const struct scheduler *s);

/* The outcomes agents report are kept until the commit that holds them
 * succeeds, so that a failed commit never makes the runner send a
 * message again.  After each commit of the runner's transaction (ok) or
 * its loss (!ok): */
void scheduler_committed(struct scheduler *s, int ok);
/* Writes again, into the open transaction, the outcomes a lost
 * transaction held; returns how many. */
size_t scheduler_replay(struct scheduler *s);
/* Outcomes reported and not yet durable. */
size_t scheduler_unsaved(struct scheduler *s);
/* Nonzero when a write of this transaction failed: committing it would
 * lose that write silently, so the transaction is to be given up. */
int scheduler_write_failed(const struct scheduler *s);

#endif
