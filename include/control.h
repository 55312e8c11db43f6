/*
 * control.h - the queue runner's side of ferryctl: one request per
 * connection on the control socket (created by the master, root or the
 * admin group only), answered with one JSON document.
 *
 * The connection is a channel (channel.h).  ferryctl sends one
 * CTL_REQUEST - u32 count, then that many strings, the words - of at most
 * CONTROL_REQUEST_MAX bytes:
 *   status | queue list | queue show ID | queue flush [ID] |
 *   queue delete ID | queue hold ID | queue release ID
 * The runner answers {"ok":true, ...} or {"ok":false,"error":"..."} in
 * CTL_ANSWER frames (data, at most CONTROL_ANSWER_PIECE bytes each: the
 * pieces joined are the document), then CTL_ANSWER_END, and closes.
 */
#ifndef FERRY_CONTROL_H
#define FERRY_CONTROL_H

#include <stdint.h>
#include "store.h"

#define CONTROL_REQUEST_MAX 512       /* a CTL_REQUEST's payload */
#define CONTROL_ANSWER_PIECE 65536    /* a CTL_ANSWER's data */

/* What the runner lends the control code for one request. */
struct control_ctx {
	struct store *st;
	/* live state for "status" */
	int agents_total, agents_busy;
	int workers_total, workers_busy;     /* -1 when unknown */
	uint64_t messages_in, commits;
	/* called after queue flush/release so the scheduler looks again */
	void (*wake)(void *arg);
	void *wake_arg;
	/* called before queue delete ID / hold ID: the runner cancels an
	 * attempt in flight for that message (returns nonzero if it could
	 * not, e.g. the message is being delivered right now) */
	int (*busy)(void *arg, const char *qid);
};

/* Serves one accepted connection to the end (bounded by a short deadline)
 * and closes fd. */
void control_serve(int fd, struct control_ctx *ctx);

#endif
