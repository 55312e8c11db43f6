/*
 * check_store.c - unit tests for the SQLite queue store (store_sqlite.c).
 *
 * Each test works on a database in its own mkdtemp directory, removed
 * after it (and, should it fail, with its test case's directory).  What the store wrote is read back through a
 * second, independent SQLite connection; settings that are per connection
 * (synchronous, foreign_keys, busy_timeout) are read on the store's own
 * connection, caught with sqlite3_auto_extension as it is opened.
 */
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "envelope.h"
#include "smtp_parse.h"
#include "store.h"
#include "util.h"

/* --- scratch directories ---------------------------------------------- */

/* The test case's directory, made and removed by the runner itself (an
 * unchecked fixture), so a test that fails leaves nothing behind. */
static char basedir[64];
/* The running test's own directory inside it, and its database. */
static char tmpdir[128];
static char dbpath[192];

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
case_setup(void)
{
	snprintf(basedir, sizeof(basedir), "/tmp/check_store.XXXXXX");
	if (mkdtemp(basedir) == NULL) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
}

static void
case_teardown(void)
{
	rm_tree(basedir);
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/test.XXXXXX", basedir);
	ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp %s", tmpdir);
	snprintf(dbpath, sizeof(dbpath), "%s/queue.db", tmpdir);
}

static void
teardown(void)
{
	rm_tree(tmpdir);
}

static TCase *
new_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	return tc;
}

/* --- catching the store's own connection ------------------------------- */

static int capture_next;
static sqlite3 *captured;

static int
capture_db(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *api)
{
	(void)errmsg;
	(void)api;
	if (capture_next) {
		captured = db;
		capture_next = 0;
	}
	return SQLITE_OK;
}

/* --- helpers ------------------------------------------------------------- */

static struct store *
open_store(void)
{
	char err[512];
	struct store *st = store_open(dbpath, err, sizeof(err));

	ck_assert_msg(st != NULL, "store_open: %s", err);
	return st;
}

/* A second connection, as another process would see the file. */
static sqlite3 *
peek_open(void)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static sqlite3_stmt *
prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	return s;
}

static int64_t
q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = prep(db, sql);
	int64_t v;

	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* First column of the first row as text; "<null>" for NULL. */
static void
q_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *s = prep(db, sql);
	const unsigned char *v;

	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_text(s, 0);
	snprintf(out, outlen, "%s", v != NULL ? (const char *)v : "<null>");
	sqlite3_finalize(s);
}

static void
q_exec(sqlite3 *db, const char *sql)
{
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
}

static struct envelope_rcpt two_rcpts[] = {
	{ "alice@example.org", NOTIFY_SUCCESS | NOTIFY_FAILURE,
	  "rfc822;alice@example.org" },
	{ "bob@example.net", 0, "" },
};

/* An envelope with every optional field absent. */
static void
plain_env(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->sender = "sender@example.com";
	e->client_addr = "192.0.2.7";
	e->client_name = "unknown";
	e->helo = "client.example";
	e->protocol = "ESMTP";
	e->auth_user = "";
	e->received_at_us = INT64_C(1700000000123456);
	e->size_declared = -1;
	e->body_type = BODY_UNSPEC;
	e->smtputf8 = 0;
	e->dsn_ret = RET_UNSPEC;
	e->dsn_envid = "";
	e->rcpts = two_rcpts;
	e->nrcpts = e->rcpts_cap = 2;
}

/* Creates a message with the plain envelope and a one-chunk body, and when
 * ready is set makes it active; inside the caller's transaction. */
static int64_t
add_msg(struct store *st, int ready, char *qid)
{
	struct envelope e;
	char body[] = "Subject: x\r\n\r\nhello\r\n";
	int64_t id;

	plain_env(&e);
	id = store_message_create(st, &e, qid);
	ck_assert_msg(id > 0, "create: %s", store_errmsg(st));
	ck_assert_int_eq(store_body_append(st, id, 0, body, strlen(body)), 0);
	if (ready)
		ck_assert_int_eq(store_message_ready(st, id,
		    (int64_t)strlen(body)), 0);
	return id;
}

static int
is_qid(const char *q)
{
	size_t i;

	if (strlen(q) != QID_LEN)
		return 0;
	for (i = 0; i < QID_LEN; i++)
		if (!((q[i] >= '0' && q[i] <= '9') ||
		    (q[i] >= 'A' && q[i] <= 'F')))
			return 0;
	return 1;
}

/* --- opening --------------------------------------------------------- */

START_TEST(test_open_creates_schema)
{
	struct store *st = open_store();
	char mode[16];
	sqlite3 *db;

	store_close(st);
	ck_assert_int_eq(access(dbpath, F_OK), 0);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"),
	    STORE_SCHEMA_VERSION);
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 1);
	q_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
	ck_assert_str_eq(mode, "wal");
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name IN ('message', 'recipient',"
	    " 'body')"), 3);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'index' AND name IN ('recipient_due',"
	    " 'recipient_message')"), 2);
	/* The due-now index is partial: only pending recipients. */
	ck_assert_int_eq(q_int(db, "SELECT \"partial\" FROM"
	    " pragma_index_list('recipient') WHERE name = 'recipient_due'"),
	    1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 0);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_open_pragmas)
{
	struct store *st;
	char mode[16];

	capture_next = 1;
	captured = NULL;
	st = open_store();
	ck_assert_ptr_nonnull(captured);
	q_text(captured, "PRAGMA journal_mode", mode, sizeof(mode));
	ck_assert_str_eq(mode, "wal");
	ck_assert_int_eq(q_int(captured, "PRAGMA synchronous"), 2); /* FULL */
	ck_assert_int_eq(q_int(captured, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(q_int(captured, "PRAGMA busy_timeout"), 5000);
	ck_assert_int_eq(q_int(captured, "PRAGMA secure_delete"), 0);
	store_close(st);
}
END_TEST

START_TEST(test_reopen_existing)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);

	st = open_store();
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 1);
	store_close(st);

	db = peek_open();
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 1);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_refuses_newer_schema)
{
	char err[512], want[64];
	struct store *st;
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	q_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 2");
	sqlite3_close(db);

	err[0] = '\0';
	st = store_open(dbpath, err, sizeof(err));
	ck_assert_ptr_null(st);
	snprintf(want, sizeof(want), "database schema version 2 is newer "
	    "than this ferry (%d)", STORE_SCHEMA_VERSION);
	ck_assert_msg(strstr(err, want) != NULL, "err: %s", err);
	ck_assert_msg(strstr(err, dbpath) != NULL, "no path in: %s", err);

	/* ...and left it alone. */
	db = peek_open();
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master"
	    " WHERE name = 'message'"), 0);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_open_error_names_path)
{
	char err[512], path[256];

	snprintf(path, sizeof(path), "%s/no/such/dir/queue.db", tmpdir);
	err[0] = '\0';
	ck_assert_ptr_null(store_open(path, err, sizeof(err)));
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "err: %s", err);
}
END_TEST

START_TEST(test_refuses_without_wal)
{
	char err[512];

	/* An in-memory database cannot journal to a WAL. */
	err[0] = '\0';
	ck_assert_ptr_null(store_open(":memory:", err, sizeof(err)));
	ck_assert_msg(strstr(err, "WAL") != NULL, "err: %s", err);
}
END_TEST

/* --- intake ---------------------------------------------------------- */

START_TEST(test_roundtrip)
{
	static const char chunk0[] = "Received: from client.example\r\n";
	static const char chunk1[] = "Subject: bin\0ary\r\n\r\n";
	static const char chunk2[] = "body\r\n";
	struct store *st = open_store();
	struct envelope e;
	char qid[QID_LEN + 1], sql[256];
	const void *blob;
	double before, after, na;
	size_t total = 0, n;
	char got[256];
	sqlite3_stmt *s;
	int64_t id;
	sqlite3 *db;
	int row;

	plain_env(&e);
	e.sender = "Sender+tag@Example.COM";
	e.client_name = "mx.example.net";
	e.protocol = "UTF8ESMTP";
	e.auth_user = "user@example.com";
	e.size_declared = 12345;
	e.body_type = BODY_8BITMIME;
	e.smtputf8 = 1;
	e.dsn_ret = RET_HDRS;
	e.dsn_envid = "envid-42";

	before = now_wall();
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert_msg(id > 0, "create: %s", store_errmsg(st));
	ck_assert(is_qid(qid));
	ck_assert_int_eq(store_body_append(st, id, 0, chunk0,
	    sizeof(chunk0) - 1), 0);
	ck_assert_int_eq(store_body_append(st, id, 1, chunk1,
	    sizeof(chunk1) - 1), 0);
	ck_assert_int_eq(store_body_append(st, id, 2, chunk2,
	    sizeof(chunk2) - 1), 0);
	ck_assert_int_eq(store_body_append(st, id, 3, "", 0), 0);
	ck_assert_int_eq(store_message_ready(st, id, 57), 0);
	ck_assert_int_eq(store_commit(st), 0);
	after = now_wall();

	db = peek_open();
	snprintf(sql, sizeof(sql), "SELECT qid, state, sender, size,"
	    " received_at, client_addr, client_name, helo, protocol,"
	    " auth_user, body_type, smtputf8, dsn_ret, dsn_envid,"
	    " size_declared FROM message WHERE id = %lld", (long long)id);
	s = prep(db, sql);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), qid);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 1), "active");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 2),
	    "Sender+tag@Example.COM");
	ck_assert_int_eq(sqlite3_column_int64(s, 3), 57);
	ck_assert_int_eq(sqlite3_column_type(s, 4), SQLITE_FLOAT);
	ck_assert(fabs(sqlite3_column_double(s, 4) - 1700000000.123456) <
	    1e-6);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 5),
	    "192.0.2.7");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 6),
	    "mx.example.net");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 7),
	    "client.example");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 8),
	    "UTF8ESMTP");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 9),
	    "user@example.com");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 10),
	    "8BITMIME");
	ck_assert_int_eq(sqlite3_column_int(s, 11), 1);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 12), "HDRS");
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 13),
	    "envid-42");
	ck_assert_int_eq(sqlite3_column_int64(s, 14), 12345);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);

	/* Recipients, in the order given. */
	snprintf(sql, sizeof(sql), "SELECT address, dsn_notify, dsn_orcpt,"
	    " state, attempts, next_attempt, last_attempt, last_reply"
	    " FROM recipient WHERE message_id = %lld ORDER BY id",
	    (long long)id);
	s = prep(db, sql);
	for (row = 0; row < 2; row++) {
		ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
		ck_assert_str_eq((const char *)sqlite3_column_text(s, 0),
		    two_rcpts[row].addr);
		ck_assert_uint_eq((uint32_t)sqlite3_column_int64(s, 1),
		    two_rcpts[row].notify);
		if (two_rcpts[row].orcpt[0] != '\0')
			ck_assert_str_eq(
			    (const char *)sqlite3_column_text(s, 2),
			    two_rcpts[row].orcpt);
		else
			ck_assert_int_eq(sqlite3_column_type(s, 2),
			    SQLITE_NULL);
		ck_assert_str_eq((const char *)sqlite3_column_text(s, 3),
		    "pending");
		ck_assert_int_eq(sqlite3_column_int(s, 4), 0);
		ck_assert_int_eq(sqlite3_column_type(s, 5), SQLITE_FLOAT);
		na = sqlite3_column_double(s, 5);
		ck_assert_msg(na >= before - 1e-3 && na <= after + 1e-3,
		    "next_attempt %f not in [%f, %f]", na, before, after);
		ck_assert_int_eq(sqlite3_column_type(s, 6), SQLITE_NULL);
		ck_assert_int_eq(sqlite3_column_type(s, 7), SQLITE_NULL);
	}
	ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);

	/* The body, chunk by chunk in order, is exactly what went in. */
	snprintf(sql, sizeof(sql), "SELECT chunk FROM body"
	    " WHERE message_id = %lld ORDER BY seq", (long long)id);
	s = prep(db, sql);
	row = 0;
	while (sqlite3_step(s) == SQLITE_ROW) {
		ck_assert_int_eq(sqlite3_column_type(s, 0), SQLITE_BLOB);
		blob = sqlite3_column_blob(s, 0);
		n = (size_t)sqlite3_column_bytes(s, 0);
		ck_assert_uint_le(total + n, sizeof(got));
		if (n > 0)
			memcpy(got + total, blob, n);
		total += n;
		row++;
	}
	sqlite3_finalize(s);
	ck_assert_int_eq(row, 4);
	ck_assert_uint_eq(total, sizeof(chunk0) - 1 + sizeof(chunk1) - 1 +
	    sizeof(chunk2) - 1);
	ck_assert(memcmp(got, chunk0, sizeof(chunk0) - 1) == 0);
	ck_assert(memcmp(got + sizeof(chunk0) - 1, chunk1,
	    sizeof(chunk1) - 1) == 0);
	ck_assert(memcmp(got + sizeof(chunk0) - 1 + sizeof(chunk1) - 1,
	    chunk2, sizeof(chunk2) - 1) == 0);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_absent_fields_are_null)
{
	struct store *st = open_store();
	struct envelope e;
	char qid[QID_LEN + 1], sql[256], text[64];
	int64_t id;
	sqlite3 *db;

	plain_env(&e);
	e.sender = "";                          /* the null sender */
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert(id > 0);
	ck_assert_int_eq(store_commit(st), 0);

	db = peek_open();
	snprintf(sql, sizeof(sql), "SELECT sender IS '' AND"
	    " auth_user IS NULL AND body_type IS NULL AND smtputf8 = 0 AND"
	    " dsn_ret IS NULL AND dsn_envid IS NULL AND size_declared IS NULL"
	    " FROM message WHERE id = %lld", (long long)id);
	ck_assert_int_eq(q_int(db, sql), 1);
	/* Not ready yet: incoming, no size, recipients not scheduled. */
	snprintf(sql, sizeof(sql), "SELECT state FROM message"
	    " WHERE id = %lld", (long long)id);
	q_text(db, sql, text, sizeof(text));
	ck_assert_str_eq(text, "incoming");
	snprintf(sql, sizeof(sql), "SELECT size IS NULL FROM message"
	    " WHERE id = %lld", (long long)id);
	ck_assert_int_eq(q_int(db, sql), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld AND state = 'pending'"
	    " AND next_attempt IS NULL", (long long)id);
	ck_assert_int_eq(q_int(db, sql), 2);
	sqlite3_close(db);

	/* BODY=7BIT and RET=FULL map to their strings. */
	e.body_type = BODY_7BIT;
	e.dsn_ret = RET_FULL;
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert(id > 0);
	ck_assert_int_eq(store_commit(st), 0);
	db = peek_open();
	snprintf(sql, sizeof(sql), "SELECT body_type || '/' || dsn_ret"
	    " FROM message WHERE id = %lld", (long long)id);
	q_text(db, sql, text, sizeof(text));
	ck_assert_str_eq(text, "7BIT/FULL");
	sqlite3_close(db);
	store_close(st);
}
END_TEST

/* --- transactions ---------------------------------------------------- */

START_TEST(test_rollback_leaves_nothing)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t n;
	sqlite3 *db;

	ck_assert_int_eq(store_in_transaction(st), 0);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_in_transaction(st), 1);
	add_msg(st, 1, qid);
	add_msg(st, 0, qid);
	store_rollback(st);
	ck_assert_int_eq(store_in_transaction(st), 0);
	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 0);
	store_close(st);

	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM body"), 0);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_commit_survives_reopen)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1], sql[128], got[QID_LEN + 1];
	int64_t id, n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	id = add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_in_transaction(st), 0);
	/* Visible to another connection as soon as the commit returned. */
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 1);
	sqlite3_close(db);
	store_close(st);

	st = open_store();
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 1);
	store_close(st);
	db = peek_open();
	snprintf(sql, sizeof(sql), "SELECT qid FROM message WHERE id = %lld",
	    (long long)id);
	q_text(db, sql, got, sizeof(got));
	ck_assert_str_eq(got, qid);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"), 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM body"), 1);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_begin_commit_idempotent)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t n;

	ck_assert_int_eq(store_commit(st), 0);     /* nothing open: no-op */
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_begin(st), 0);      /* already open: no-op */
	ck_assert_int_eq(store_in_transaction(st), 1);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_in_transaction(st), 0);
	store_rollback(st);                        /* nothing open: no-op */
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 2);
	store_close(st);
}
END_TEST

START_TEST(test_write_needs_transaction)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	struct envelope e;
	int64_t id, n;
	sqlite3 *db;

	plain_env(&e);
	ck_assert_int_eq(store_message_create(st, &e, qid), -1);
	ck_assert_msg(strstr(store_errmsg(st), "transaction") != NULL,
	    "errmsg: %s", store_errmsg(st));

	/* A real message, then every write on it outside a transaction. */
	ck_assert_int_eq(store_begin(st), 0);
	id = add_msg(st, 0, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_body_append(st, id, 1, "x", 1), -1);
	ck_assert_int_eq(store_message_ready(st, id, 1), -1);
	ck_assert_int_eq(store_message_delete(st, id), -1);
	ck_assert_int_eq(store_in_transaction(st), 0);

	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(store_count(st, "incoming", &n), 0);
	ck_assert_int_eq(n, 1);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM body"), 1);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

/* A failed operation undoes only itself, not the group transaction. */
START_TEST(test_failure_keeps_transaction)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t a, n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qid);
	/* Duplicate chunk, unknown message, ready twice, unknown delete. */
	ck_assert_int_eq(store_body_append(st, a, 0, "dup", 3), -1);
	ck_assert_int_eq(store_body_append(st, a + 1000, 0, "x", 1), -1);
	ck_assert_int_eq(store_message_ready(st, a, 99), -1);
	ck_assert_int_eq(store_message_ready(st, a + 1000, 99), -1);
	ck_assert_int_eq(store_message_delete(st, a + 1000), -1);
	ck_assert(strlen(store_errmsg(st)) > 0);
	ck_assert_int_eq(store_in_transaction(st), 1);
	ck_assert_int_eq(store_commit(st), 0);

	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 1);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT size FROM message"),
	    (int64_t)strlen("Subject: x\r\n\r\nhello\r\n"));
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM body"), 1);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

/* --- purge, delete, ids, counts -------------------------------------- */

START_TEST(test_purge_incoming)
{
	struct store *st = open_store();
	char qid_a[QID_LEN + 1], qid_b[QID_LEN + 1], sql[128];
	int64_t a, b, n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qid_a);
	b = add_msg(st, 0, qid_b);
	add_msg(st, 0, qid_b);
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);                  /* as if the runner died here */

	/* An orphaned chunk, as written with foreign keys off. */
	db = peek_open();
	q_exec(db, "PRAGMA foreign_keys = OFF;"
	    " INSERT INTO body (message_id, seq, chunk)"
	    " VALUES (999999, 0, x'00')");
	sqlite3_close(db);

	st = open_store();
	ck_assert_int_eq(store_in_transaction(st), 0);
	ck_assert_int_eq(store_purge_incoming(st), 2);
	ck_assert_int_eq(store_in_transaction(st), 0);  /* its own, committed */
	ck_assert_int_eq(store_count(st, "incoming", &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 1);

	db = peek_open();
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM body"
	    " WHERE message_id = %lld", (long long)a);
	ck_assert_int_eq(q_int(db, sql), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld", (long long)a);
	ck_assert_int_eq(q_int(db, sql), 2);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld", (long long)b);
	ck_assert_int_eq(q_int(db, sql), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM body"), 1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"), 2);
	sqlite3_close(db);

	/* Inside an open transaction it joins it. */
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 0, qid_b);
	ck_assert_int_eq(store_purge_incoming(st), 1);
	ck_assert_int_eq(store_in_transaction(st), 1);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_purge_incoming(st), 0);
	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 1);
	store_close(st);
}
END_TEST

START_TEST(test_qids_unique)
{
	enum { N = 1000 };
	struct store *st = open_store();
	char qid[QID_LEN + 1], got[QID_LEN + 1], sql[128];
	struct envelope e;
	int64_t id;
	sqlite3 *db;
	int i;

	plain_env(&e);
	db = peek_open();
	ck_assert_int_eq(store_begin(st), 0);
	for (i = 0; i < N; i++) {
		memset(qid, 'x', sizeof(qid));
		id = store_message_create(st, &e, qid);
		ck_assert_msg(id > 0, "create: %s", store_errmsg(st));
		ck_assert_msg(is_qid(qid), "bad qid \"%.*s\"", QID_LEN, qid);
		if (i % 100 == 0) {
			ck_assert_int_eq(store_commit(st), 0);
			snprintf(sql, sizeof(sql), "SELECT qid FROM message"
			    " WHERE id = %lld", (long long)id);
			q_text(db, sql, got, sizeof(got));
			ck_assert_str_eq(got, qid);
			ck_assert_int_eq(store_begin(st), 0);
		}
	}
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(DISTINCT qid) FROM message"),
	    N);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message WHERE"
	    " length(qid) = 12 AND qid NOT GLOB '*[^0-9A-F]*'"), N);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_delete_cascades)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1], sql[256];
	int64_t a, b;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qid);
	ck_assert_int_eq(store_body_append(st, a, 1, "more", 4), 0);
	b = add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);

	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_message_delete(st, a), 0);
	ck_assert_int_eq(store_message_delete(st, a), -1);   /* gone */
	ck_assert_int_eq(store_commit(st), 0);

	db = peek_open();
	snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM message"
	    " WHERE id = %lld) + (SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld) + (SELECT count(*) FROM body"
	    " WHERE message_id = %lld)", (long long)a, (long long)a,
	    (long long)a);
	ck_assert_int_eq(q_int(db, sql), 0);
	snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld) * 10 + (SELECT count(*) FROM body"
	    " WHERE message_id = %lld)", (long long)b, (long long)b);
	ck_assert_int_eq(q_int(db, sql), 21);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_count)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t n, h;
	sqlite3 *db;
	char sql[128];
	int i;

	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(store_begin(st), 0);
	for (i = 0; i < 2; i++)
		add_msg(st, 0, qid);
	for (i = 0; i < 3; i++)
		add_msg(st, 1, qid);
	h = add_msg(st, 1, qid);
	/* Counting reads inside the open transaction see its writes. */
	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 6);
	ck_assert_int_eq(store_commit(st), 0);

	/* No API puts a message on hold yet; do it as ferryctl would. */
	db = peek_open();
	snprintf(sql, sizeof(sql), "UPDATE message SET state = 'hold'"
	    " WHERE id = %lld", (long long)h);
	q_exec(db, sql);
	sqlite3_close(db);

	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 6);
	ck_assert_int_eq(store_count(st, "incoming", &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(store_count(st, "hold", &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(store_count(st, "bogus", &n), 0);
	ck_assert_int_eq(n, 0);
	store_close(st);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = new_tcase("open");
	tcase_add_test(tc, test_open_creates_schema);
	tcase_add_test(tc, test_open_pragmas);
	tcase_add_test(tc, test_reopen_existing);
	tcase_add_test(tc, test_refuses_newer_schema);
	tcase_add_test(tc, test_open_error_names_path);
	tcase_add_test(tc, test_refuses_without_wal);
	suite_add_tcase(s, tc);

	tc = new_tcase("intake");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_absent_fields_are_null);
	suite_add_tcase(s, tc);

	tc = new_tcase("transactions");
	tcase_add_test(tc, test_rollback_leaves_nothing);
	tcase_add_test(tc, test_commit_survives_reopen);
	tcase_add_test(tc, test_begin_commit_idempotent);
	tcase_add_test(tc, test_write_needs_transaction);
	tcase_add_test(tc, test_failure_keeps_transaction);
	suite_add_tcase(s, tc);

	tc = new_tcase("maintenance");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_purge_incoming);
	tcase_add_test(tc, test_qids_unique);
	tcase_add_test(tc, test_delete_cascades);
	tcase_add_test(tc, test_count);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	/* Lets test_open_pragmas reach the store's own connection. */
	sqlite3_auto_extension((void (*)(void))capture_db);
	sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
