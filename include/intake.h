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
#include "store_health.h"

/* The reasons of a TX_FAIL that refuses a new message: an SMTP reply for
 * the worker to give (code, enhanced code, text). */
#define INTAKE_REFUSE_LOW_SPACE "452 4.3.1 Insufficient system storage"
#define INTAKE_REFUSE_FAILING "451 4.3.0 Queue unavailable: cannot " \
	"write to the queue"

struct intake_conn;
struct dkim_signing;

/* The keys messages are signed with from now on (NULL: none); the caller
 * keeps them alive while they are set. */
void intake_set_dkim(const struct dkim_signing *s);

struct intake_stats {
	uint64_t messages;      /* committed */
	uint64_t commits;       /* transactions committed (= fsync groups) */
	uint64_t failed;
};

struct intake_conn *intake_conn_new(int fd, uint64_t id);
int intake_conn_fd(const struct intake_conn *c);
/* Reads what the socket has and handles every whole frame, writing to
 * the store's open transaction; a new message is refused unless state
 * is QUEUE_STATE_OK.  Returns 0, or -1 when the connection must be
 * closed (EOF, error, or a peer that lied), or -2 when a write failed
 * and the whole transaction is lost.  With st NULL (the runner has no
 * usable store) every BEGIN is answered TX_FAIL. */
int intake_conn_read(struct intake_conn *c, struct store *st,
    uint64_t max_size, enum queue_state state);
/* The TX_FAIL reason that refuses a new message in state, or NULL. */
const char *intake_refusal(enum queue_state state);
/* Tells the worker the queue's state (IMSG_QUEUE_STATE: u8 state, u64
 * bytes free above min_free). */
void intake_conn_send_state(struct intake_conn *c, enum queue_state state,
    uint64_t headroom);
/* Tells the worker what the routes' upstreams offer (IMSG_ROUTE_CAPS,
 * route_caps.h). */
struct route_caps_table;
struct ferry_config;
void intake_conn_send_route_caps(struct intake_conn *c,
    const struct route_caps_table *t, const struct ferry_config *cfg);
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
