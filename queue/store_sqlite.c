/*
 * store_sqlite.c - the durable queue in one SQLite database: messages,
 * their recipients and their bodies in chunks (schema in queue/schema.sql,
 * compiled in as store_schema_sql).  The only file that includes sqlite3.h.
 *
 * Durability stance: the database runs in WAL mode with synchronous=FULL,
 * so a COMMIT returns only after the WAL is fsynced; the runner sends 250
 * for a message only after the commit that holds its envelope and every
 * body chunk returned.  Writes happen only inside a transaction opened by
 * store_begin (BEGIN IMMEDIATE, so it never has to upgrade a read lock);
 * a write outside one is refused rather than silently autocommitted,
 * because an fsync per statement would break the group commit.  An
 * operation made of several statements runs under a savepoint, so one
 * that fails leaves the open transaction - and the other messages in it -
 * as it was.  Statements are prepared once at open and bind their
 * arguments; no SQL is ever built from data.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "smtp_parse.h"
#include "store.h"
#include "util.h"

/* Generated from queue/schema.sql. */
extern const char store_schema_sql[];

#define QID_TRIES 8           /* fresh ids tried on a queue id collision */
#define BUSY_TIMEOUT_MS 5000

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_MSG_INSERT,
	S_RCPT_INSERT,
	S_BODY_INSERT,
	S_MSG_READY,
	S_RCPT_DUE,
	S_MSG_DELETE,
	S_PURGE_MSG,
	S_PURGE_RCPT,
	S_PURGE_BODY,
	S_COUNT,
	S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT store_op",
	[S_RELEASE] = "RELEASE store_op",
	[S_ROLLBACK_TO] = "ROLLBACK TO store_op",
	[S_MSG_INSERT] =
	    "INSERT INTO message (qid, state, sender, received_at,"
	    " client_addr, client_name, helo, protocol, auth_user,"
	    " body_type, smtputf8, dsn_ret, dsn_envid, size_declared)"
	    " VALUES (?1, 'incoming', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
	    " ?11, ?12, ?13)",
	[S_RCPT_INSERT] =
	    "INSERT INTO recipient (message_id, address, dsn_notify,"
	    " dsn_orcpt, state) VALUES (?1, ?2, ?3, ?4, 'pending')",
	[S_BODY_INSERT] =
	    "INSERT INTO body (message_id, seq, chunk) VALUES (?1, ?2, ?3)",
	[S_MSG_READY] =
	    "UPDATE message SET state = 'active', size = ?2"
	    " WHERE id = ?1 AND state = 'incoming'",
	[S_RCPT_DUE] =
	    "UPDATE recipient SET next_attempt = ?2"
	    " WHERE message_id = ?1 AND state = 'pending'",
	[S_MSG_DELETE] = "DELETE FROM message WHERE id = ?1",
	[S_PURGE_MSG] = "DELETE FROM message WHERE state = 'incoming'",
	[S_PURGE_RCPT] =
	    "DELETE FROM recipient"
	    " WHERE message_id NOT IN (SELECT id FROM message)",
	[S_PURGE_BODY] =
	    "DELETE FROM body WHERE message_id NOT IN (SELECT id FROM message)",
	[S_COUNT] =
	    "SELECT count(*) FROM message WHERE ?1 IS NULL OR state = ?1",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_NSTMT];
	char err[512];        /* last failure; "" means ask sqlite3_errmsg */
};

static void
set_err(struct store *st, const char *what, const char *msg)
{
	snprintf(st->err, sizeof(st->err), "%s: %s", what, msg);
}

/* Records the connection's error now, before cleanup overwrites it. */
static void
db_err(struct store *st, const char *what)
{
	set_err(st, what, sqlite3_errmsg(st->db));
}

/* Resets s and drops its bindings, so no SQLITE_STATIC pointer outlives
 * the call that bound it. */
static void
done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows. */
static int
exec_stmt(struct store *st, enum stmt_id id, const char *what)
{
	sqlite3_stmt *s = st->stmt[id];
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE) {
		db_err(st, what);
		done(s);
		return -1;
	}
	done(s);
	return 0;
}

static int
need_tx(struct store *st, const char *what)
{
	st->err[0] = '\0';
	if (sqlite3_get_autocommit(st->db)) {
		set_err(st, what, "no open transaction (store_begin first)");
		return -1;
	}
	return 0;
}

/* Savepoints make a multi-statement operation all-or-nothing without
 * giving up the rest of the group-commit transaction. */
static int
op_begin(struct store *st)
{
	return exec_stmt(st, S_SAVEPOINT, "savepoint");
}

static int
op_end(struct store *st, int ok)
{
	if (ok)
		return exec_stmt(st, S_RELEASE, "release savepoint");
	/* Keep the error that made us undo; these rarely fail. */
	sqlite3_step(st->stmt[S_ROLLBACK_TO]);
	done(st->stmt[S_ROLLBACK_TO]);
	sqlite3_step(st->stmt[S_RELEASE]);
	done(st->stmt[S_RELEASE]);
	return -1;
}

/* Binds v (NULL taken as ""): for NOT NULL text columns. */
static int
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return sqlite3_bind_text(s, i, v != NULL ? v : "", -1, SQLITE_STATIC);
}

/* Binds v, or SQL NULL when it is empty ("" means "not given"). */
static int
bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL || *v == '\0')
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static const char *
body_type_str(uint32_t t)
{
	switch (t) {
	case BODY_7BIT:
		return "7BIT";
	case BODY_8BITMIME:
		return "8BITMIME";
	default:
		return NULL;
	}
}

static const char *
dsn_ret_str(uint32_t r)
{
	switch (r) {
	case RET_FULL:
		return "FULL";
	case RET_HDRS:
		return "HDRS";
	default:
		return NULL;
	}
}

/* --- opening --------------------------------------------------------- */

/* Runs a statement made at open (not from data) and returns its first
 * column as text in out; -1 on error. */
static int
query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *s;
	const unsigned char *v;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(s);
		return -1;
	}
	v = sqlite3_column_text(s, 0);
	snprintf(out, outlen, "%s", v != NULL ? (const char *)v : "");
	sqlite3_finalize(s);
	return 0;
}

static int
user_version(sqlite3 *db, int64_t *v)
{
	char buf[32];

	if (query_text(db, "PRAGMA user_version", buf, sizeof(buf)) == -1)
		return -1;
	*v = strtoll(buf, NULL, 10);
	return 0;
}

/* Creates the schema on an empty database, in one transaction.  The
 * version is read again under the write lock in case another process
 * created it meanwhile. */
static int
create_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	char sql[64];
	int64_t v;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (user_version(db, &v) == -1)
		goto fail_tx;
	if (v != 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return 0;
	}
	if (sqlite3_exec(db, store_schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail_tx;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    STORE_SCHEMA_VERSION);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail_tx;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail_tx;
	return 0;

fail_tx:
	snprintf(err, errlen, "%s: creating schema: %s", path,
	    sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
fail:
	snprintf(err, errlen, "%s: creating schema: %s", path,
	    sqlite3_errmsg(db));
	return -1;
}

struct store *
store_open(const char *path, char *err, size_t errlen)
{
	static const char *const pragmas[] = {
		"PRAGMA synchronous = FULL",
		"PRAGMA foreign_keys = ON",
		"PRAGMA secure_delete = OFF",
	};
	struct store *st;
	char mode[16];
	int64_t v;
	size_t i;
	int rc;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, st->db != NULL ?
		    sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);

	if (query_text(st->db, "PRAGMA journal_mode = WAL", mode,
	    sizeof(mode)) == -1) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot use WAL mode (journal mode "
		    "is %s)", path, mode);
		goto fail;
	}
	for (i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
		if (sqlite3_exec(st->db, pragmas[i], NULL, NULL, NULL) !=
		    SQLITE_OK) {
			snprintf(err, errlen, "%s: %s: %s", path, pragmas[i],
			    sqlite3_errmsg(st->db));
			goto fail;
		}
	}

	if (user_version(st->db, &v) == -1) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (v == 0) {
		if (create_schema(st->db, path, err, errlen) == -1)
			goto fail;
		if (user_version(st->db, &v) == -1) {
			snprintf(err, errlen, "%s: %s", path,
			    sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: database schema version %" PRId64
		    " is newer than this ferry (%d)", path, v,
		    STORE_SCHEMA_VERSION);
		goto fail;
	}
	if (v != STORE_SCHEMA_VERSION) {
		/* Migrations from older versions go here. */
		snprintf(err, errlen, "%s: database schema version %" PRId64
		    " is unknown to this ferry (%d)", path, v,
		    STORE_SCHEMA_VERSION);
		goto fail;
	}

	for (i = 0; i < S_NSTMT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) !=
		    SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing \"%s\": %s", path,
			    stmt_sql[i], sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	return st;

fail:
	store_close(st);
	return NULL;
}

void
store_close(struct store *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < S_NSTMT; i++)
		sqlite3_finalize(st->stmt[i]);
	/* An open transaction is rolled back: it was never promised. */
	sqlite3_close(st->db);
	free(st);
}

const char *
store_errmsg(struct store *st)
{
	if (st->err[0] != '\0')
		return st->err;
	return sqlite3_errmsg(st->db);
}

/* --- transactions ------------------------------------------------------ */

int
store_begin(struct store *st)
{
	st->err[0] = '\0';
	if (!sqlite3_get_autocommit(st->db))
		return 0;
	return exec_stmt(st, S_BEGIN, "begin");
}

int
store_commit(struct store *st)
{
	st->err[0] = '\0';
	if (sqlite3_get_autocommit(st->db))
		return 0;
	if (exec_stmt(st, S_COMMIT, "commit") == 0)
		return 0;
	/* Not durable, so not kept: nothing in it may be acknowledged. */
	store_rollback(st);
	return -1;
}

void
store_rollback(struct store *st)
{
	/* The error that led here stays readable through store_errmsg. */
	if (!sqlite3_get_autocommit(st->db)) {
		sqlite3_step(st->stmt[S_ROLLBACK]);
		done(st->stmt[S_ROLLBACK]);
	}
}

int
store_in_transaction(const struct store *st)
{
	return !sqlite3_get_autocommit(st->db);
}

/* --- intake -------------------------------------------------------------- */

static void
new_qid(char *qid)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char r[QID_LEN / 2];
	size_t i;

	random_bytes(r, sizeof(r));
	for (i = 0; i < sizeof(r); i++) {
		qid[2 * i] = hex[r[i] >> 4];
		qid[2 * i + 1] = hex[r[i] & 0x0f];
	}
	qid[QID_LEN] = '\0';
}

/* Inserts the message row under a fresh queue id; a collision with a
 * queued message's id just means drawing another. */
static int64_t
insert_message(struct store *st, const struct envelope *e, char *qid)
{
	sqlite3_stmt *s = st->stmt[S_MSG_INSERT];
	const char *bt = body_type_str(e->body_type);
	const char *ret = dsn_ret_str(e->dsn_ret);
	int tries, rc;

	for (tries = 0; tries < QID_TRIES; tries++) {
		new_qid(qid);
		sqlite3_bind_text(s, 1, qid, QID_LEN, SQLITE_STATIC);
		bind_text(s, 2, e->sender);
		sqlite3_bind_double(s, 3, (double)e->received_at_us / 1e6);
		bind_text(s, 4, e->client_addr);
		bind_text(s, 5, e->client_name);
		bind_text(s, 6, e->helo);
		bind_text(s, 7, e->protocol);
		bind_opt_text(s, 8, e->auth_user);
		if (bt != NULL)
			sqlite3_bind_text(s, 9, bt, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 9);
		sqlite3_bind_int(s, 10, e->smtputf8 != 0);
		if (ret != NULL)
			sqlite3_bind_text(s, 11, ret, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 11);
		bind_opt_text(s, 12, e->dsn_envid);
		if (e->size_declared >= 0)
			sqlite3_bind_int64(s, 13, e->size_declared);
		else
			sqlite3_bind_null(s, 13);

		rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			done(s);
			return sqlite3_last_insert_rowid(st->db);
		}
		db_err(st, "insert message");
		if (sqlite3_extended_errcode(st->db) !=
		    SQLITE_CONSTRAINT_UNIQUE) {
			done(s);
			return -1;
		}
		done(s);
	}
	set_err(st, "insert message", "no unused queue id found");
	return -1;
}

int64_t
store_message_create(struct store *st, const struct envelope *e, char *qid)
{
	sqlite3_stmt *s = st->stmt[S_RCPT_INSERT];
	int64_t id;
	size_t i;

	if (need_tx(st, "create message") == -1)
		return -1;
	if (op_begin(st) == -1)
		return -1;
	if ((id = insert_message(st, e, qid)) == -1)
		goto fail;
	for (i = 0; i < e->nrcpts; i++) {
		const struct envelope_rcpt *r = &e->rcpts[i];

		sqlite3_bind_int64(s, 1, id);
		bind_text(s, 2, r->addr);
		sqlite3_bind_int64(s, 3, r->notify);
		bind_opt_text(s, 4, r->orcpt);
		if (exec_stmt(st, S_RCPT_INSERT, "insert recipient") == -1)
			goto fail;
	}
	if (op_end(st, 1) == -1)
		goto fail;
	return id;

fail:
	op_end(st, 0);
	qid[0] = '\0';
	return -1;
}

int
store_body_append(struct store *st, int64_t msgid, uint32_t seq,
    const void *data, size_t len)
{
	sqlite3_stmt *s = st->stmt[S_BODY_INSERT];

	if (need_tx(st, "append body") == -1)
		return -1;
	sqlite3_bind_int64(s, 1, msgid);
	sqlite3_bind_int64(s, 2, seq);
	/* A NULL pointer would bind SQL NULL; an empty chunk is a blob. */
	if (len == 0)
		sqlite3_bind_zeroblob(s, 3, 0);
	else if (sqlite3_bind_blob64(s, 3, data, len, SQLITE_STATIC) !=
	    SQLITE_OK) {
		db_err(st, "append body");
		done(s);
		return -1;
	}
	return exec_stmt(st, S_BODY_INSERT, "append body");
}

int
store_message_ready(struct store *st, int64_t msgid, int64_t size)
{
	char msg[64];

	if (need_tx(st, "message ready") == -1)
		return -1;
	if (op_begin(st) == -1)
		return -1;
	sqlite3_bind_int64(st->stmt[S_MSG_READY], 1, msgid);
	sqlite3_bind_int64(st->stmt[S_MSG_READY], 2, size);
	if (exec_stmt(st, S_MSG_READY, "message ready") == -1)
		return op_end(st, 0);
	if (sqlite3_changes(st->db) != 1) {
		snprintf(msg, sizeof(msg), "no incoming message %" PRId64,
		    msgid);
		set_err(st, "message ready", msg);
		return op_end(st, 0);
	}
	sqlite3_bind_int64(st->stmt[S_RCPT_DUE], 1, msgid);
	sqlite3_bind_double(st->stmt[S_RCPT_DUE], 2, now_wall());
	if (exec_stmt(st, S_RCPT_DUE, "message ready") == -1)
		return op_end(st, 0);
	if (op_end(st, 1) == -1)
		return op_end(st, 0);
	return 0;
}

int
store_message_delete(struct store *st, int64_t msgid)
{
	char msg[64];

	if (need_tx(st, "delete message") == -1)
		return -1;
	/* One statement: the cascade to recipients and body is atomic. */
	sqlite3_bind_int64(st->stmt[S_MSG_DELETE], 1, msgid);
	if (exec_stmt(st, S_MSG_DELETE, "delete message") == -1)
		return -1;
	if (sqlite3_changes(st->db) != 1) {
		snprintf(msg, sizeof(msg), "no message %" PRId64, msgid);
		set_err(st, "delete message", msg);
		return -1;
	}
	return 0;
}

int
store_purge_incoming(struct store *st)
{
	int own_tx, n;

	st->err[0] = '\0';
	own_tx = sqlite3_get_autocommit(st->db);
	if (own_tx) {
		if (store_begin(st) == -1)
			return -1;
	} else if (op_begin(st) == -1)
		return -1;
	if (exec_stmt(st, S_PURGE_MSG, "purge incoming") == -1)
		goto fail;
	n = sqlite3_changes(st->db);
	/* Foreign keys keep these empty; they catch rows written without. */
	if (exec_stmt(st, S_PURGE_RCPT, "purge orphan recipients") == -1 ||
	    exec_stmt(st, S_PURGE_BODY, "purge orphan body") == -1)
		goto fail;
	if (own_tx)
		return store_commit(st) == 0 ? n : -1;   /* rolls back itself */
	if (op_end(st, 1) == -1)
		goto fail;
	return n;

fail:
	if (own_tx)
		store_rollback(st);
	else
		op_end(st, 0);
	return -1;
}

/* --- status -------------------------------------------------------------- */

int
store_count(struct store *st, const char *state, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_COUNT];
	int rc;

	st->err[0] = '\0';
	if (state != NULL)
		sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 1);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		db_err(st, "count messages");
		done(s);
		return -1;
	}
	*n = sqlite3_column_int64(s, 0);
	done(s);
	return 0;
}
