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
 *
 * The runner tells every connection the queue's state when it accepts it
 * and whenever that changes (IMSG_QUEUE_STATE).  Those notes wait in the
 * socket until the worker reads them, so intake_queue_check reads them
 * (never waiting) at the moment a session must decide - the greeting,
 * MAIL - and its answer is as fresh as the runner's last word.  A
 * connection the runner has not answered within INTAKE_ANSWER_MS is
 * taken for a runner that is down (the master holds the listening
 * socket, so connecting succeeds while no runner accepts).
 *
 * With it (when something is known) and whenever it changes, the runner
 * sends what each route's upstream offers (IMSG_ROUTE_CAPS), kept in
 * ic->routes and read the same way: as fresh as the runner's last word
 * the session has read.
 */
#ifndef FERRY_INTAKE_CLIENT_H
#define FERRY_INTAKE_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "channel.h"
#include "envelope.h"
#include "ipc.h"
#include "route_caps.h"

struct intake_client {
	char *path;          /* socket path as seen by this process */
	struct channel ch;   /* ch.fd is -1 when not connected */
	uint32_t seq;        /* next TX_DATA sequence number */
	char reason[256];    /* why the last call failed */
	uint8_t queue_state; /* the runner's last QUEUE_STATE_* note */
	uint64_t queue_headroom;   /* bytes free above queue { min_free } */
	int noted;           /* a QUEUE_STATE note came on this connection */
	struct route_caps_table routes;   /* the runner's last ROUTE_CAPS
	                                     note: what each route's
	                                     upstream offers */
	int64_t opened_ms;   /* when it was connected (now_ms() clock) */
	int just_asked;      /* COMMIT was written this turn: its answer
	                        cannot be read before poll says so */
	uint64_t quiet_turn; /* the event loop's turn in which the socket
	                        was seen empty (intake_turn_begin) */
};

/* How long a new connection may wait for the runner's first note before
 * the runner is taken for down. */
#define INTAKE_ANSWER_MS 500

/* What intake_queue_check knows of the queue. */
enum intake_verdict {
	INTAKE_QUEUE_OK,          /* takes mail */
	INTAKE_QUEUE_LOW_SPACE,   /* below queue { min_free }: 452 4.3.1 */
	INTAKE_QUEUE_FAILING,     /* its store fails or is closed */
	INTAKE_QUEUE_DOWN,        /* no runner answers (ic->reason says) */
	INTAKE_QUEUE_WAIT         /* no note yet: ask again at *until */
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
/* The same frame queued without writing: the COMMIT that follows it
 * writes both, so a small message's end is one write to the runner. */
int intake_hold_data(struct intake_client *ic, const void *buf, size_t len);
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
/* An event loop that polls the connections for POLLIN while nothing is
 * in flight need not read them speculatively: it calls
 * intake_turn_begin after every poll, and intake_quiet for each
 * connection poll watched for POLLIN and found nothing on.  Until the
 * next turn, reading notes from such a connection (or from one read
 * empty this turn) is skipped: what comes meanwhile is what would have
 * come just after the read, and the next poll reports it.  A process
 * that never calls intake_turn_begin always reads. */
void intake_turn_begin(void);
void intake_quiet(struct intake_client *ic);
/* Reads the notes the runner pushed, never waiting nor connecting:
 * while nothing is in flight (not between BEGIN and its answer, nor
 * COMMIT and its). */
void intake_read_notes(struct intake_client *ic);
/* Between transactions: reads the notes the runner pushed (never waits),
 * connecting first when not connected, and says what they tell. */
enum intake_verdict intake_queue_check(struct intake_client *ic,
    int64_t now, int64_t *until);

#endif
