/*
 * anvil_client.h - the SMTP worker's side of ferry-anvil, the small
 * process that keeps per-client counts across all workers: connections
 * in all and per client address, connection and message rates per client
 * address, and authentication failures per address and per user (for the
 * lockout).  Workers ask before they act.
 *
 * Questions are events, not round trips: the worker's loop asks for one
 * of its sessions (an owner number it chooses, at most one question per
 * owner at a time), goes on serving the others, and hears the answer
 * through the on_answer callback once anvil replied, or ANVIL_OK once
 * the question's deadline (ANVIL_DEADLINE_MS) passed.
 *
 * When anvil cannot be reached the worker logs it and allows the action
 * (fail open): the limits protect capacity, they are not what keeps a
 * relay closed.
 */
#ifndef FERRY_ANVIL_CLIENT_H
#define FERRY_ANVIL_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "channel.h"

#define ANVIL_OK 0
#define ANVIL_TOO_MANY_CONNECTIONS 1   /* in all */
#define ANVIL_TOO_MANY_FROM_CLIENT 2   /* from this address */
#define ANVIL_CONNECTION_RATE 3
#define ANVIL_MESSAGE_RATE 4
#define ANVIL_AUTH_LOCKED 5

#define ANVIL_DEADLINE_MS 1000  /* an unanswered question is allowed */

/* Messages are asked for in leases: anvil grants up to ANVIL_LEASE_MAX
 * mail transactions of a client at once while the client is far below
 * its message rate (anvil_table_messages), and the worker uses the rest
 * for that client's next MAIL commands without asking.  What is left
 * after ANVIL_LEASE_MS goes back.  A client that opens a connection per
 * message thus costs anvil and the worker a round trip per connection,
 * not two. */
#define ANVIL_LEASE_MAX 16
#define ANVIL_LEASE_MS 1000
#define ANVIL_LEASES 8          /* client addresses holding a lease */
#define ANVIL_ADDR_MAX 64

struct anvil_lease {
	char addr[ANVIL_ADDR_MAX];  /* "" when free */
	uint32_t left;
	int64_t until;              /* now_ms() clock */
};

/* Connections are leased too (anvil_ask_connects, anvil_end_connection;
 * Postfix's anvil has no such thing), in two parts:
 *
 * - The connection rate, as messages: a CONNECTS question asks for
 *   ANVIL_LEASE_MAX rate events; anvil counts them all while the client
 *   stays under half its connection_rate with them (else one), and the
 *   worker uses the rest for that address's next connections, asking
 *   anvil only to count the connection itself.  What is left after
 *   ANVIL_LEASE_MS goes back (IMSG_ANVIL_CONNECTS_BACK).
 *
 * - Concurrency: when a session ends, the worker may keep its slot
 *   (anvil's count stays as it was) for ANVIL_LEASE_MS and reuse it for
 *   that address's next connection, which then costs no question at all
 *   while a rate event is lent too.  A slot may be kept only when
 *   anvil's last answer for the address, at most ANVIL_LEASE_MS old,
 *   said so, which it does only
 *   while the client holds at most half max_connections_per_client, the
 *   relay at most half max_connections and under half the stress
 *   threshold, outside stress.  When an answer no longer allows keeping
 *   (a client came near a limit, or was refused) after one did, anvil
 *   tells every worker to give its kept slots back at once
 *   (IMSG_ANVIL_RECALL), which each worker answers (RECALL again)
 *   once it gave them back.  While a recall is unanswered, a connection
 *   anvil would refuse for a concurrency limit is answered "ask again"
 *   (ANVIL_ASK_AGAIN) and the worker asks again, up to
 *   ANVIL_AGAIN_MAX times.  So a client at or near a limit is counted
 *   connection by connection and refused exactly as without leases,
 *   across workers, kept slots having gone back first.  Kept slots go back
 *   (several in one frame) when not reused in ANVIL_LEASE_MS, when the
 *   worker goes at rest (anvil_client_release), or on a recall; a worker
 *   that dies releases them with its connection.  A kept slot counts as a
 *   connection in anvil's figures (ferryctl status) and for stress: at
 *   most ANVIL_LEASE_MS, plus a turn of the worker's loop, after its
 *   session ended. */
#define ANVIL_ASK_AGAIN 2
#define ANVIL_AGAIN_MAX 64
struct anvil_slots {
	char addr[ANVIL_ADDR_MAX];  /* "" when free */
	uint32_t rate_left;         /* connection-rate events lent */
	int64_t rate_until;         /* now_ms() clock */
	uint32_t kept;              /* slots kept from ended sessions */
	int64_t kept_until;
	int may_keep;               /* anvil's last answer allowed it */
	int64_t keep_until;         /* that answer holds until */
};

/* Called with the answer to owner's question (an ANVIL_* result).  It
 * may come from any anvil_client_* call but anvil_client_init and _close,
 * so it must only note the answer for the caller's loop to act on. */
typedef void anvil_answer_fn(void *arg, uint32_t owner, int result);

/* A question sent and not answered yet, in the order sent: anvil
 * answers a connection's questions in that order. */
struct anvil_waiter {
	uint32_t seq;              /* the request id anvil echoes */
	uint32_t owner;
	int64_t deadline;          /* now_ms() clock */
	int live;                  /* 0: the owner no longer waits */
	int lease;                 /* a MESSAGE question: the grant beyond
	                              one is kept for lease_addr */
	int connects;              /* a CONNECTS question (for lease_addr):
	                              its answer is CONNECTS_ANSWER */
	uint32_t want;             /* CONNECTS: rate events asked for */
	int again;                 /* CONNECTS: times asked again */
	char lease_addr[ANVIL_ADDR_MAX];
};

struct anvil_client {
	char *path;         /* the anvil socket as this process sees it */
	struct channel ch;  /* ch.fd is -1 when not connected */
	anvil_answer_fn *on_answer;
	void *arg;
	struct anvil_waiter *waiting;   /* oldest first */
	size_t nwaiting, waiting_cap;
	/* stress mode, as anvil last said (IMSG_ANVIL_STRESS) */
	int stress;
	uint32_t stress_timeout;   /* seconds, while stress is on */
	int stress_changed;        /* set on every note; the caller clears */
	struct anvil_lease leases[ANVIL_LEASES];
	struct anvil_slots slots[ANVIL_LEASES];
};

void anvil_client_init(struct anvil_client *ac, const char *path,
    anvil_answer_fn *on_answer, void *arg);
/* Closes the connection; questions still waiting are not answered. */
void anvil_client_close(struct anvil_client *ac);

/* Connects when not connected (and not just failed), so that anvil's
 * stress notes reach this worker while it has nothing to ask.  The
 * worker calls it while it holds sessions. */
void anvil_client_keep_connected(struct anvil_client *ac);
/* A worker at rest lets go of anvil, so that anvil may leave when idle
 * (workers.helper_idle): what is left of the leases goes back and the
 * connection is closed once nothing waits on it (anvil then releases
 * nothing: a worker at rest holds no connection).  Not a failure: the
 * next question connects again at once.  No-op while questions wait or
 * requests are unwritten (call it again later). */
void anvil_client_release(struct anvil_client *ac);
/* The descriptor to poll, or -1, and what for (POLLIN, and POLLOUT
 * while requests wait to be written). */
int anvil_client_fd(const struct anvil_client *ac);
short anvil_client_events(const struct anvil_client *ac);
/* After poll: writes what waits, takes answers (each to its owner's
 * on_answer) and the stress notes anvil pushed.  On end of file the
 * connection is dropped, the questions waiting are allowed, and stress
 * mode is off.  An answer that is not the oldest question's, or that
 * nobody asked for, is anvil lying: the connection is dropped too. */
void anvil_client_io(struct anvil_client *ac, short revents);
/* The earliest deadline of a question waiting, or 0 when none waits. */
int64_t anvil_client_deadline(const struct anvil_client *ac);
/* Past that deadline: anvil is stuck; the connection is dropped and
 * every question waiting is allowed (logged once per outage).  Leases
 * past ANVIL_LEASE_MS give back what is left. */
void anvil_client_tick(struct anvil_client *ac, int64_t now);
/* owner no longer waits for its question (its session ended). */
void anvil_client_forget(struct anvil_client *ac, uint32_t owner);

/* The questions.  1: asked, the answer comes through on_answer; 0: not
 * asked (anvil unreachable), the action is allowed now.  A connection
 * allowed must be ended with anvil_disconnect when the session ends. */
int anvil_ask_connect(struct anvil_client *ac, uint32_t owner,
    const char *addr);
/* As anvil_ask_connect, with a lease (see struct anvil_slots): 0 (allowed
 * now, not asked) also when a kept slot and a rate event for addr are
 * at hand.  A connection allowed must be ended with
 * anvil_end_connection. */
int anvil_ask_connects(struct anvil_client *ac, uint32_t owner,
    const char *addr);
/* A connection allowed by anvil_ask_connects ended: its slot is kept
 * when anvil allowed it, else anvil is told (anvil_disconnect). */
void anvil_end_connection(struct anvil_client *ac, const char *addr);
/* A new mail transaction (at MAIL): ANVIL_OK or ANVIL_MESSAGE_RATE.  0
 * (allowed now, not asked) also when a lease for addr has some left. */
int anvil_ask_message(struct anvil_client *ac, uint32_t owner,
    const char *addr);
/* Before checking a password: ANVIL_OK or ANVIL_AUTH_LOCKED (addr or user
 * is locked out).  user may be "" when not known yet. */
int anvil_ask_auth(struct anvil_client *ac, uint32_t owner,
    const char *addr, const char *user);

/* Notes that get no answer. */
void anvil_disconnect(struct anvil_client *ac, const char *addr);
void anvil_auth_failed(struct anvil_client *ac, const char *addr,
    const char *user);

#endif
