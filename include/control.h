/*
 * control.h - the queue runner's side of ferryctl: one request per
 * connection on the control socket (created by the master, root or the
 * admin group only), answered with one JSON document.
 *
 * The connection is a channel (channel.h) carrying control_proto.h's
 * frames: one CTL_REQUEST with the words of
 *   status | queue list | queue show ID | queue flush [ID] |
 *   queue delete ID | queue hold ID | queue release ID |
 *   queue check | queue accept-loss | queue reopen | drain | undrain |
 *   history [sender=A] [rcpt=B] [since=T] [until=T] [status=S] [route=R]
 *           [limit=N]   (T in unix seconds)
 * answered {"ok":true, ...} or {"ok":false,"error":"..."} in CTL_ANSWER
 * pieces and CTL_ANSWER_END, then closed.
 */
#ifndef FERRY_CONTROL_H
#define FERRY_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include "control_proto.h"
#include "scheduler.h"
#include "store.h"

struct anvil_figures;
struct route_caps_table;
struct ferry_config;

/* What the runner lends the control code for one request. */
struct token_client;

struct control_ctx {
	struct store *st;                    /* NULL: the store is unusable */
	const struct ferry_config *cfg;      /* routes, for queue list route= */
	const char *store_path;
	const char *store_trouble;           /* why st is NULL */
	/* opens the store again after the operator dealt with the fault
	 * (accept_loss: drops the lost-WAL marker first); 0, or -1 with a
	 * reason in err */
	int (*reopen)(void *arg, int accept_loss, char *err, size_t errlen);
	void *reopen_arg;
	/* live state for "status" */
	int agents_total, agents_busy;
	int workers_total, workers_busy;     /* -1 when unknown */
	uint32_t generation;                 /* the master's configuration
	                                      * generation running */
	long master_pid;                     /* ferryd, for "ferryctl reload" */
	const char *config_path;             /* the file ferryd reads */
	uint64_t messages_in, commits;
	/* called after queue flush/release so the scheduler looks again */
	void (*wake)(void *arg);
	/* called after "queue flush" of everything: next hops marked down
	 * are tried again at once (as Postfix's postqueue -f does) */
	void (*flush_hops)(void *arg);
	void *wake_arg;
	/* called before queue delete ID / hold ID: the runner cancels an
	 * attempt in flight for that message (returns nonzero if it could
	 * not, e.g. the message is being delivered right now) */
	int (*busy)(void *arg, const char *qid);
	/* called before a change (flush, delete, hold, release): opens the
	 * runner's transaction, so that the change is made in it; 0, or -1
	 * with why in err */
	int (*begin)(void *arg, char *err, size_t errlen);
	/* called after the change: commits it now; 0, or -1 with why in
	 * err - the change did not take place */
	int (*commit)(void *arg, char *err, size_t errlen);
	/* the store's health for "status" (store_health.h) */
	int store_state;                     /* QUEUE_STATE_* */
	double failing_since;                /* -1 unless failing */
	const char *store_error;             /* the last commit failure */
	unsigned commit_failures;            /* in a row */
	int space_known;
	uint64_t free_bytes, min_free_bytes;
	size_t outcomes_unsaved;             /* reported, not yet durable */
	/* drain: the master's state, and how to ask it to change (0, or
	 * -1 with why in err); the master answers by a new state, which
	 * "status" shows */
	int draining;
	int (*drain)(void *arg, int on, char *err, size_t errlen);
	void *drain_arg;
	/* per route since the runner started, for "status"; NULL: none */
	const struct sched_metrics *deliveries;
	const struct anvil_figures *anvil;   /* NULL: the master said none */
	int stall_known;                     /* the stall warning (stall.h) */
	unsigned stall_reasons;              /* STALL_* bits */
	/* the OAuth2 routes' token states (token_client.h); NULL: none */
	const struct token_client *tokens;
	/* the smarthost pools' hosts, for "status"; NULL: none */
	const struct upstream_pools *pools;
	/* what each route's upstream offers (route_caps.h); NULL: none */
	const struct route_caps_table *upstreams;
};

/* Serves one accepted connection to the end (bounded by a short deadline)
 * and closes fd. */
void control_serve(int fd, struct control_ctx *ctx);
/* Answers a client that may not use the socket with an error document,
 * framed like every answer, without reading its request; closes fd. */
void control_refuse(int fd, const char *why);

#endif
