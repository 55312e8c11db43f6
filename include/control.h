/*
 * control.h - the queue runner's side of ferryctl: one request per
 * connection on the control socket (created by the master, root or the
 * admin group only), answered with one JSON document.
 *
 * Requests (one line, LF-terminated, at most 512 bytes):
 *   status | queue list | queue show ID | queue flush [ID] |
 *   queue delete ID | queue hold ID | queue release ID |
 *   queue check | queue accept-loss | queue reopen
 * Answer: {"ok":true, ...} or {"ok":false,"error":"..."}, then close.
 */
#ifndef FERRY_CONTROL_H
#define FERRY_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"

/* What the runner lends the control code for one request. */
struct control_ctx {
	struct store *st;                    /* NULL: the store is unusable */
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
