/*
 * intake_client.h - the SMTP worker's side of the intake protocol: hands
 * one message at a time to the queue runner over its unix socket and
 * waits for the runner's word that the message is durable.
 *
 * It is used either blocking, each call waiting until the caller's
 * deadline, or a step at a time from an event loop (intake_send_*,
 * intake_poll_answer).  A runner that goes away
 * or answers nonsense fails the transaction (the session answers 451),
 * and the next transaction reconnects.
 */
#ifndef FERRY_INTAKE_CLIENT_H
#define FERRY_INTAKE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "channel.h"
#include "envelope.h"
#include "ipc.h"

struct intake_client {
	char *path;          /* socket path as seen by this process */
	struct channel ch;   /* ch.fd is -1 when not connected */
	uint32_t seq;        /* next TX_DATA sequence number */
	char reason[256];    /* why the last call failed */
	uint8_t queue_state; /* the runner's last QUEUE_STATE_* note */
	uint64_t queue_headroom;   /* bytes free above queue { min_free } */
};

void intake_client_init(struct intake_client *ic, const char *path);
void intake_client_close(struct intake_client *ic);

/* deadline is on the now_ms() clock. Each returns 0 or -1. */
int intake_begin(struct intake_client *ic, const struct envelope *env,
    char *qid, size_t qidlen, int64_t deadline);
int intake_data(struct intake_client *ic, const void *buf, size_t len,
    int64_t deadline);
/* 0: durable. -1: not stored (ic->reason says why). */
int intake_commit(struct intake_client *ic, uint64_t size,
    int64_t deadline);
/* Tells the runner to forget the message; no answer is awaited. */
void intake_abort(struct intake_client *ic, int64_t deadline);

/* The same steps without waiting, for an event loop: each queues its
 * frame and writes what the socket takes now (intake_flush writes more
 * when poll says the descriptor is writable).  0, or -1 with the reason
 * (the connection is then closed). */
int intake_send_begin(struct intake_client *ic, const struct envelope *env);
int intake_send_data(struct intake_client *ic, const void *buf, size_t len);
int intake_send_commit(struct intake_client *ic, uint64_t size);
void intake_send_abort(struct intake_client *ic);
int intake_flush(struct intake_client *ic);
/* After poll: the answer to BEGIN (want IMSG_TX_BEGUN, with the qid) or
 * COMMIT (IMSG_TX_COMMITTED).  1 yes, 0 not yet, -1 no (ic->reason says
 * why; ic->ch.fd < 0 when the connection went with it). */
int intake_poll_answer(struct intake_client *ic, int want, char *qid,
    size_t qidlen);
/* Gives up on the connection (an answer came too late). */
void intake_drop(struct intake_client *ic, const char *why);
int intake_fd(const struct intake_client *ic);
/* Bytes queued for the runner and not yet written. */
size_t intake_unsent(const struct intake_client *ic);
/* Nonzero when the connection is open with nothing in flight either
 * way, so that another session of the worker may use it. */
int intake_reusable(struct intake_client *ic);

#endif
