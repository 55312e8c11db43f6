/*
 * intake.h - the queue runner's side of the intake protocol: one
 * connection per SMTP worker, decoding its frames and turning them into
 * store writes inside the runner's group-commit transaction.
 *
 * Security stance: workers face the internet and may be compromised.
 * Every frame is decoded strictly (ipc.h, envelope.h); a worker that sends
 * something malformed or out of order is disconnected and its message
 * discarded.  A worker can only add messages, never read or change others.
 */
#ifndef FERRY_INTAKE_H
#define FERRY_INTAKE_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"
#include "store.h"

struct intake_conn;

struct intake_stats {
	uint64_t messages;      /* committed */
	uint64_t commits;       /* transactions committed (= fsync groups) */
	uint64_t failed;
};

struct intake_conn *intake_conn_new(int fd, uint64_t id);
int intake_conn_fd(const struct intake_conn *c);
/* Reads what the socket has and handles every whole frame, writing to
 * the store's open transaction.  Returns 0, or -1 when the connection must
 * be closed (EOF, error, or a peer that lied).  With st NULL (the runner
 * has no usable store) every BEGIN is answered TX_FAIL. */
int intake_conn_read(struct intake_conn *c, struct store *st,
    uint64_t max_size);
/* Nonzero while the connection waits for the end-of-turn commit. */
int intake_conn_pending(const struct intake_conn *c);
/* After the turn's commit: tells waiting workers the outcome. */
void intake_conn_committed(struct intake_conn *c, int ok,
    struct intake_stats *stats);
/* The transaction failed for everyone (rollback): forget in-flight data. */
void intake_conn_rolled_back(struct intake_conn *c);
/* Closes the connection; a message in flight is deleted from the store
 * (inside the open transaction). */
void intake_conn_free(struct intake_conn *c, struct store *st);
/* Pending output to flush when the socket is writable. */
int intake_conn_want_write(const struct intake_conn *c);
int intake_conn_flush(struct intake_conn *c);

#endif
