/*
 * store.h - the durable queue (implemented in store_sqlite.c, the only
 * file that includes sqlite3.h).  Only the queue runner opens it.
 *
 * Writes happen inside one open transaction that the runner commits once
 * per turn of its event loop (group commit): one fsync makes every message
 * that completed in that turn durable.
 */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "envelope.h"
#include "lifecycle.h"

#define STORE_SCHEMA_VERSION 3
#define QID_LEN 12            /* upper-case hex characters */

struct store;

/* Opens (creating and migrating) the database at path in WAL mode with
 * synchronous=FULL.  NULL with a reason in err on failure. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *st);
const char *store_errmsg(struct store *st);

/* --- damage: checks, the lost-WAL marker, salvage ---------------------- */

/* Beside the database, this file exists while the WAL may hold commits
 * not yet checkpointed into the database file (see store_sqlite.c). */
#define STORE_WAL_MARK_SUFFIX "-walmark"

/* Before store_open: 1 when the marker says the WAL held commits but the
 * -wal file is missing or empty and no checkpoint changed the database
 * file since, so they are lost (why in err); else 0.  A marker that a
 * checkpoint by another connection made stale is removed. */
int store_wal_lost(const char *path, char *err, size_t errlen);
/* The operator accepts that loss: removes the marker.  0 or -1. */
int store_accept_loss(const char *path, char *err, size_t errlen);
/* PRAGMA quick_check (full: integrity_check) of an open store, or of the
 * file at path opened read-only: 0 when sound, else -1 with the first
 * findings in err (which names path). */
int store_check(struct store *st, const char *path, int full, char *err,
    size_t errlen);
int store_check_file(const char *path, int full, char *err, size_t errlen);

/* What a salvage saved. */
struct store_salvage {
	int64_t found;            /* complete messages it could read */
	int64_t messages;         /* of them, whole and taken */
	int64_t recipients;       /* their pending recipients */
	int64_t damaged_spots;    /* unreadable stretches it stepped over */
	int64_t history;          /* messages of the delivery history kept */
	int schema_lost;          /* it could not read the schema at all */
};
/* Fills st (a store just created on a fresh file) with what can be read
 * of the damaged database at path: whole messages with a pending
 * recipient, their recipients and history.  Each table is walked by row
 * id around its damaged pages (Debian 12's SQLite has no recovery
 * extension, and its shell's .recover needs the dbpage table it lacks).
 * The damaged file is only read.  0, or -1 with a reason in err
 * (schema_lost set when the schema could not be read). */
int store_salvage_import(struct store *st, const char *damaged,
    struct store_salvage *out, char *err, size_t errlen);

/* Group commit: store_begin opens the write transaction when none is open;
 * store_commit makes it durable (returns 0) or rolls it back (-1). */
int store_begin(struct store *st);
/* A read transaction for a run of queries (one snapshot, one lock
 * instead of one per statement) when none is open; store_end_read ends
 * it.  A store_begin meanwhile ends it and opens the write transaction
 * afresh (a read is never upgraded).  0 or -1. */
int store_begin_read(struct store *st);
int store_end_read(struct store *st);
int store_commit(struct store *st);
/* The same, without waiting for the disk: for a transaction that nothing
 * is acknowledged on (see the durability stance in store_sqlite.c). */
int store_commit_lazy(struct store *st);
void store_rollback(struct store *st);
int store_in_transaction(const struct store *st);
/* Lets the connection's page cache go (the pages are read again, from
 * the system's file cache, when next needed): for a runner at rest. */
void store_release_memory(struct store *st);
/* Nonzero when the open transaction changed a row that must be made
 * durable this turn: anything but the envelope and body of a message
 * still arriving (those wait for the message's end, which the runner
 * commits).  The store keeps count, so callers keep no flags. */
int store_has_writes(const struct store *st);

/* Is committing possible again?  Runs one small write transaction of
 * its own (it rewrites the schema cookie, so the WAL is appended to and
 * fsynced as for any commit).  0 when it committed, -1 (store_errmsg)
 * when not, or when a transaction is open. */
int store_probe(struct store *st);
/* Bytes the queue's user may still write on the database's filesystem
 * (*avail) and the filesystem's size (*total).  0, or -1. */
int store_free_space(struct store *st, uint64_t *avail, uint64_t *total);

/* Intake.  store_message_create inserts the envelope with state
 * 'incoming' under a fresh unique queue id (written to qid, QID_LEN+1
 * bytes) and returns the message's row id, or -1. */
int64_t store_message_create(struct store *st, const struct envelope *e,
    char *qid);
int store_body_append(struct store *st, int64_t msgid, uint32_t seq,
    const void *data, size_t len);
/* The message is complete: state 'active', size recorded, recipients due
 * now. */
int store_message_ready(struct store *st, int64_t msgid, int64_t size);
/* Removes a message with its recipients, attempts and body.  When
 * history is kept (store_history_keep) and the message is complete, its
 * summary, recipients' outcomes and attempts are copied to the history
 * tables first, in the same transaction. */
int store_message_delete(struct store *st, int64_t msgid);
/* Removes messages left 'incoming' by a crash (run at start). Returns the
 * number removed or -1. */
int store_purge_incoming(struct store *st);

/* Counts of messages by state, for status lines and tests. */
int store_count(struct store *st, const char *state, int64_t *n);

/* --- delivery (the scheduler) --- */

/* A pending recipient that is due, with what its message needs. */
struct store_due {
	int64_t rcpt_id, msgid;
	char *address, *orcpt;
	uint32_t notify;
	int attempts;
	char qid[QID_LEN + 1];
	char *sender;
	int64_t size;
	uint32_t body_type, smtputf8, dsn_ret;
	char *envid;
	double received_at;
	char *last_reply, *last_dsn;
	int agent_deaths;         /* message.agent_deaths */
	double due_at;            /* when it came due (its next attempt) */
};

/* Pending recipients of active messages due at now, earliest first, at
 * most limit (through the recipient_due index). */
int store_due(struct store *st, double now, size_t limit,
    struct store_due **out, size_t *n);
void store_due_free(struct store_due *v, size_t n);
/* When the next pending recipient is due (0 when none). */
int store_next_due(struct store *st, double *when);
/* Chunk seq of a message, malloc'd into *data: 1, 0 past the last, -1. */
int store_body_chunk(struct store *st, int64_t msgid, uint32_t seq,
    uint8_t **data, size_t *len);
/* The same chunk lent, not copied: *data points into SQLite's row and
 * stays valid until the next store_body_chunk_view or
 * store_body_view_end, which must come before any other store call (the
 * row holds a read on the database).  1, 0 past the last, -1. */
int store_body_chunk_view(struct store *st, int64_t msgid, uint32_t seq,
    const uint8_t **data, size_t *len);
void store_body_view_end(struct store *st);
/* One bounded step of giving freed pages back to the file system: at
 * most max_pages, in a transaction of its own (none may be open).
 * Returns 1 when there is more to do (call again), 0 when nothing is
 * left (the last call checkpoints, so the file shrinks), -1 on error. */
#define STORE_VACUUM_PAGES 256
int store_vacuum_step(struct store *st, int max_pages);
/* Brings the next attempt of the pending recipients ids[0..n) forward
 * to when (those due later only).  Inside a transaction. */
int store_rcpt_due_at(struct store *st, const int64_t *ids, size_t n,
    double when);
/* One attempt's outcome: the recipient's new state, next attempt (0 =
 * none), and a row of history with its status.  Inside a transaction. */
int store_rcpt_result(struct store *st, int64_t rcpt_id,
    enum rcpt_state state, double next_attempt, const char *relay,
    const char *tls, enum attempt_status status, const char *dsn,
    const char *reply);

/* A due recipient that a bulk deferral looks at, or one it deferred.
 * Strings are valid during the callback only. */
struct store_bulk_row {
	int64_t rcpt_id, msgid;
	const char *sender;             /* "" in the rows deferred */
	const char *address;
	double received_at;
	uint32_t notify;                /* NOTIFY_* bits (not in the rows */
	int attempts;                   /* deferred), attempts before */
	int warned;                     /* message.warned */
	char qid[QID_LEN + 1];          /* in the rows deferred only */
	double due_at;                  /* when it came due (not in the
	                                 * rows deferred) */
};

/* A bulk deferral: the due recipients of a next hop that is down are
 * deferred in one statement, without a row each through the scheduler. */
struct store_bulk {
	double now;                     /* the attempt's time; due by then */
	size_t limit;                   /* recipients at most */
	const char *dsn, *reply;        /* the attempt's status and reason */
	/* A due row (pending, of an active message): its next attempt
	 * (> 0) to defer it, 0 to leave it.  It must not use the store and
	 * may be called more than once for a row. */
	double (*take)(void *arg, const struct store_bulk_row *row);
	/* Each recipient deferred, once they all are in the transaction
	 * (for the log line); may be NULL. */
	void (*deferred)(void *arg, const struct store_bulk_row *row);
	void *arg;
};
/* Defers at most b->limit due recipients that b->take accepts, earliest
 * due first: an attempt each (deferred, relay none, at b->now) and the
 * next attempt take() gave.  Inside a transaction, all or nothing.
 * Returns how many, or -1. */
int store_rcpt_defer_bulk(struct store *st, const struct store_bulk *b);
int store_message_progress(struct store *st, int64_t msgid,
    int64_t *pending, int64_t *delivered, int64_t *total);

struct store_msginfo {
	char qid[QID_LEN + 1];
	char *sender;
	double received_at;
	uint32_t dsn_ret;
	char *envid;
	int is_dsn;               /* ferry generated it (a bounce) */
	int warned;               /* a delay warning was sent */
	int64_t size;
};
int store_message_info(struct store *st, int64_t msgid,
    struct store_msginfo *mi);
void store_msginfo_free(struct store_msginfo *mi);
/* A delivery agent died (or broke the protocol) with a job of msgid in
 * flight: counts it and returns the count, or -1.  Inside a
 * transaction. */
int store_agent_died(struct store *st, int64_t msgid);
/* A job of msgid finished: the count of agent deaths starts again. */
int store_agent_survived(struct store *st, int64_t msgid);
/* A route's shaping count for window (route_shaper.h: SHAPE_HOUR,
 * SHAPE_DAY): tokens left at stamp.  get: 1 found, 0 none, -1 error;
 * put writes it in the open transaction. */
int store_route_quota_get(struct store *st, const char *route, int window,
    double *tokens, double *stamp);
int store_route_quota_put(struct store *st, const char *route, int window,
    double tokens, double stamp);
/* Holds the pending recipient id back until when (not an attempt: a
 * route's quota, route_shaper_hold_until).  Inside a transaction. */
int store_rcpt_hold(struct store *st, int64_t id, double when);
/* 'active' -> 'hold' by ferry itself, with the reason "queue show"
 * displays.  Inside a transaction. */
int store_message_hold(struct store *st, int64_t msgid, const char *reason);
/* Records that a delay warning went out for msgid. */
int store_mark_warned(struct store *st, int64_t msgid);
/* Marks msgid as ferry's notification about of_qid. */
int store_mark_dsn(struct store *st, int64_t msgid, const char *of_qid);

/* --- admin queries (ferryctl) --- */

/* Reads see the open transaction's writes.  Every write below runs in a
 * transaction of its own, committed (fsynced) before it returns, when none
 * is open; when the runner holds its group-commit transaction open
 * (store_in_transaction), the write is made inside it under a savepoint
 * and becomes durable only when the runner commits.  Times are unix
 * seconds; a time or size that is NULL in the database reads as -1.
 * Text fields are NULL when NULL in the database. */

#define STORE_LIST_MAX 10000        /* messages "queue list" returns */
#define STORE_LIST_RCPTS 50         /* addresses per message it returns */
#define STORE_SHOW_RCPTS 1000       /* recipients "queue show" returns */
#define STORE_SHOW_HISTORY 100      /* latest attempts per recipient */
#define STORE_HEADERS_MAX (64 * 1024)

/* Results of the writes besides 0 (done) and -1 (store error). */
#define STORE_NOT_FOUND (-2)        /* no complete message has that qid */
#define STORE_WRONG_STATE (-3)      /* the message is not in the state the
                                       operation starts from */

/* One row of "queue list".  Strings are valid during the callback only. */
struct store_list_entry {
	char qid[QID_LEN + 1];
	char state[8];                  /* "active" or "hold" */
	double received_at;
	int64_t size;
	const char *sender;             /* "" for the null sender */
	const char *rcpts[STORE_LIST_RCPTS];
	size_t nrcpts;                  /* addresses in rcpts */
	int64_t rcpts_total;            /* recipients in all */
	int64_t pending;                /* of them still pending */
	double next_attempt;            /* earliest of the pending, or -1 */
	const char *last_reply;         /* of the latest attempt, preferring */
	const char *last_dsn;           /* pending recipients; NULL if none */
};

/* Calls fn for each complete message (not 'incoming'), oldest first, at
 * most max (<= STORE_LIST_MAX) of them; *truncated tells whether there
 * were more.  A nonzero return from fn stops the walk (and is returned);
 * fn must not use the store (a statement is open).  0 when done, -1 on a
 * store error. */
int store_admin_list(struct store *st, size_t max,
    int (*fn)(void *arg, const struct store_list_entry *e), void *arg,
    int *truncated);

/* What "queue list" may be narrowed to; NULL or 0 members match all. */
struct store_list_filter {
	const char *sender;             /* part of the sender, any case */
	const char *rcpt;               /* part of a recipient, any case */
	const char *state;              /* "active", "hold" or "deferred"
	                                   (active, pending, tried before) */
	double received_before;         /* > 0: received before this time */
};

/* One page of "queue list": the complete messages matching f with an id
 * above after, in id (arrival) order, read as a range of the message
 * table's row ids from after (never a sort of the whole queue), at most
 * a thousand ids per SQLite step whatever the filters.  fn returns 1
 * when it took the entry, 2 when it took it and wants no more (its page
 * is full), 0 when it left it out, -1 to stop (returned).  The walk
 * stops after max taken or budget_ms of CPU time (0: no limit),
 * whichever comes first, having looked at one message at least; *next
 * is then the cursor the following page starts after (the last id
 * looked at), 0 when no message is left.  fn must not use the store.
 * 0 when done, -1 on a store error. */
int store_admin_list_page(struct store *st, int64_t after, size_t max,
    int64_t budget_ms, const struct store_list_filter *f,
    int (*fn)(void *arg, const struct store_list_entry *e), void *arg,
    int64_t *next);

struct store_attempt_info {
	double at;
	char *relay, *tls, *status, *dsn, *reply;   /* tls may be NULL */
};

struct store_rcpt_info {
	char *address;
	char *state;                    /* pending, delivered, failed */
	uint32_t dsn_notify;            /* NOTIFY_* bits */
	char *dsn_orcpt;
	int64_t attempts;
	double next_attempt, last_attempt;
	char *last_reply, *last_dsn;
	struct store_attempt_info *history;   /* oldest first: the latest */
	size_t nhistory;                /* STORE_SHOW_HISTORY attempts */
	int64_t history_total;
};

struct store_msg_info {
	char qid[QID_LEN + 1];
	char state[8];
	char *sender;
	int64_t size;
	double received_at;
	char *client_addr, *client_name, *helo, *protocol;
	char *auth_user, *body_type, *dsn_ret, *dsn_envid, *dsn_of;
	int smtputf8, warned;
	int64_t size_declared;
	char *hold_reason;              /* NULL unless ferry held it */
	/* The header block: body bytes up to the empty line that ends it,
	 * at most STORE_HEADERS_MAX of them. */
	char *headers;
	size_t headers_len;
	int headers_truncated;
	struct store_rcpt_info *rcpts;  /* in the order they were given, at */
	size_t nrcpts;                  /* most STORE_SHOW_RCPTS */
	int64_t rcpts_total;
};

/* Loads a complete message by qid into *m (free with
 * store_admin_show_free).  0, STORE_NOT_FOUND, or -1. */
int store_admin_show(struct store *st, const char *qid,
    struct store_msg_info *m);
void store_admin_show_free(struct store_msg_info *m);

/* The state of a message by qid into state ("incoming", "active",
 * "hold"; 16 bytes).  0, STORE_NOT_FOUND, or -1. */
int store_admin_state(struct store *st, const char *qid, char *state);

/* 'active' -> 'hold': the scheduler leaves it alone.  0, STORE_NOT_FOUND,
 * STORE_WRONG_STATE or -1. */
int store_admin_hold(struct store *st, const char *qid);
/* 'hold' -> 'active', its pending recipients due now, its hold reason
 * and count of agent deaths cleared.  0,
 * STORE_NOT_FOUND, STORE_WRONG_STATE or -1. */
int store_admin_release(struct store *st, const char *qid);
/* Makes the pending recipients of one active message (qid) or of every
 * active message (qid NULL) due now; *changed is the number of messages
 * that had pending recipients.  0, STORE_NOT_FOUND, STORE_WRONG_STATE
 * (on hold) or -1. */
int store_admin_flush(struct store *st, const char *qid, int64_t *changed);
/* Removes a complete message with its recipients, attempts and body.  0,
 * STORE_NOT_FOUND or -1. */
int store_admin_delete(struct store *st, const char *qid);

struct store_queue_stats {
	int64_t active, hold;           /* messages */
	int64_t rcpts_pending;          /* pending recipients of both */
	double oldest_received_at;      /* -1 when the queue is empty */
};
int store_admin_stats(struct store *st, struct store_queue_stats *qs);
/* What the stall warning looks at every second, from index seeks alone
 * (store_admin_stats counts, which grows with the queue): the oldest
 * message's arrival, active or held (-1: the queue is empty), and
 * whether a recipient of an active message is pending. */
int store_stall_figures(struct store *st, double *oldest_received_at,
    int *any_pending);

/* --- delivery history (messages that left the queue) ------------------ */

#define STORE_HISTORY_MAX 10000      /* rows "history" returns at most */
#define STORE_HISTORY_PRUNE_BATCH 100 /* messages one prune step removes */
#define STORE_HISTORY_MOVE_AT 256    /* staged messages moved even under load */

/* Whether store_message_delete keeps history (nonzero; the default is 0,
 * keep nothing). */
void store_history_keep(struct store *st, int keep);

/* A message that leaves the queue is written to small staging tables
 * (history_new_*) in the transaction that removes it; this files every
 * staged message into the indexed history tables at once, so that their
 * index pages are written once a batch instead of once a message.
 * Prune, search and show call it first.  Inside the runner's transaction,
 * or in one of its own.  0 or -1. */
int store_history_move(struct store *st);
/* Messages staged since the last move (at least; 1 when unknown). */
int64_t store_history_staged(const struct store *st);

/* Removes at most batch messages (with their recipients and attempts)
 * that left the queue before cutoff, oldest first.  Inside the runner's
 * transaction, or in one of its own when none is open.  Returns how many
 * it removed, or -1. */
int64_t store_history_prune(struct store *st, double cutoff, int batch);

/* What "history" searches for; NULL/negative fields do not filter.
 * sender and rcpt match a whole address without regard to case, or,
 * when they start with '@', a whole domain (also without regard to case).
 * status is sent, bounced or expired (the final outcome) or deferred
 * (some attempt was deferred); route matches the host part of the last
 * attempt's relay. */
struct store_history_filter {
	const char *sender, *rcpt, *status, *route;
	double since, until;            /* left the queue in [since, until) */
	size_t limit;                   /* 1..STORE_HISTORY_MAX */
};

/* One recipient of a message in history.  Strings are valid during the
 * callback only; NULL when unknown. */
struct store_history_entry {
	const char *qid, *sender, *rcpt, *status, *relay, *dsn, *reply;
	const char *client_addr, *client_name;
	double received_at, left_at, last_attempt, delay;   /* -1 unknown */
	int64_t size, attempts, deferred;
};

/* Calls fn for each recipient that matches, newest first (by when its
 * message left the queue), at most f->limit; *truncated tells whether
 * there were more.  A nonzero return from fn stops the walk (and is
 * returned).  0 when done, -1 on a store error. */
int store_history_search(struct store *st,
    const struct store_history_filter *f,
    int (*fn)(void *arg, const struct store_history_entry *e), void *arg,
    int *truncated);

/* The newest message in history with that qid, as "queue show" shows a
 * queued one: state "done", recipients' state their final status, no
 * headers (the body is not kept).  Free with store_admin_show_free.  0,
 * STORE_NOT_FOUND or -1. */
int store_history_show(struct store *st, const char *qid,
    struct store_msg_info *m);

/* --- what the routes' upstreams offered (route_caps.h) ----------------- */

/* Calls fn for each route remembered: its name, its hosts when learned
 * (comma-separated), RCAP_* flags, SIZE limit and when.  0 or -1. */
typedef void (*store_route_caps_fn)(void *arg, const char *route,
    const char *hosts, uint32_t flags, uint64_t size_max,
    double learned_at);
int store_route_caps_each(struct store *st, store_route_caps_fn fn,
    void *arg);
/* Remembers what route's upstream offers, in the open transaction. */
int store_route_caps_put(struct store *st, const char *route,
    const char *hosts, uint32_t flags, uint64_t size_max,
    double learned_at);

#endif
