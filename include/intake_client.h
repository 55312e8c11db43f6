/*
 * intake_client.h - the SMTP worker's side of the intake protocol: hands
 * one message at a time to the queue runner over its unix socket and
 * waits for the runner's word that the message is durable.
 *
 * Every wait is bounded by the caller's deadline; a runner that goes away
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

#endif
