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
#include <sys/wait.h>
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

/* --- counting the syncs of the WAL file --------------------------------- */

/* A VFS over the default one that counts xSync on files opened as a WAL:
 * what store_commit waits for, and store_commit_lazy does not. */
static sqlite3_vfs *base_vfs;
static sqlite3_vfs counting_vfs;
static int wal_syncs;

struct counted_file {
	sqlite3_file base;          /* pMethods: counted_io */
	int is_wal;
	sqlite3_file real[];        /* base_vfs->szOsFile bytes */
};

static sqlite3_io_methods counted_io;

static int
counted_sync(sqlite3_file *f, int flags)
{
	struct counted_file *c = (struct counted_file *)f;

	if (c->is_wal)
		wal_syncs++;
	return c->real->pMethods->xSync(c->real, flags);
}

#define PASS_IO(name, proto, args) \
	static int counted_##name proto \
	{ struct counted_file *c = (struct counted_file *)f; \
	  return c->real->pMethods->x##name args; }
PASS_IO(Read, (sqlite3_file *f, void *b, int n, sqlite3_int64 o),
    (c->real, b, n, o))
PASS_IO(Write, (sqlite3_file *f, const void *b, int n, sqlite3_int64 o),
    (c->real, b, n, o))
PASS_IO(Truncate, (sqlite3_file *f, sqlite3_int64 n), (c->real, n))
PASS_IO(FileSize, (sqlite3_file *f, sqlite3_int64 *n), (c->real, n))
PASS_IO(Lock, (sqlite3_file *f, int l), (c->real, l))
PASS_IO(Unlock, (sqlite3_file *f, int l), (c->real, l))
PASS_IO(CheckReservedLock, (sqlite3_file *f, int *r), (c->real, r))
PASS_IO(FileControl, (sqlite3_file *f, int op, void *a), (c->real, op, a))
PASS_IO(SectorSize, (sqlite3_file *f), (c->real))
PASS_IO(DeviceCharacteristics, (sqlite3_file *f), (c->real))
PASS_IO(ShmMap, (sqlite3_file *f, int pg, int sz, int ext,
    void volatile **p), (c->real, pg, sz, ext, p))
PASS_IO(ShmLock, (sqlite3_file *f, int o, int n, int fl),
    (c->real, o, n, fl))
PASS_IO(ShmUnmap, (sqlite3_file *f, int del), (c->real, del))
PASS_IO(Fetch, (sqlite3_file *f, sqlite3_int64 o, int n, void **p),
    (c->real, o, n, p))
PASS_IO(Unfetch, (sqlite3_file *f, sqlite3_int64 o, void *p),
    (c->real, o, p))

static void
counted_barrier(sqlite3_file *f)
{
	struct counted_file *c = (struct counted_file *)f;

	c->real->pMethods->xShmBarrier(c->real);
}

static int
counted_close(sqlite3_file *f)
{
	struct counted_file *c = (struct counted_file *)f;

	return c->real->pMethods->xClose(c->real);
}

static int
counted_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out)
{
	struct counted_file *c = (struct counted_file *)f;
	int rc;

	(void)vfs;
	memset(c, 0, sizeof(*c));
	rc = base_vfs->xOpen(base_vfs, name, c->real, flags, out);
	if (rc != SQLITE_OK) {
		f->pMethods = NULL;
		return rc;
	}
	counted_io = *c->real->pMethods;
	counted_io.xClose = counted_close;
	counted_io.xRead = counted_Read;
	counted_io.xWrite = counted_Write;
	counted_io.xTruncate = counted_Truncate;
	counted_io.xSync = counted_sync;
	counted_io.xFileSize = counted_FileSize;
	counted_io.xLock = counted_Lock;
	counted_io.xUnlock = counted_Unlock;
	counted_io.xCheckReservedLock = counted_CheckReservedLock;
	counted_io.xFileControl = counted_FileControl;
	counted_io.xSectorSize = counted_SectorSize;
	counted_io.xDeviceCharacteristics = counted_DeviceCharacteristics;
	counted_io.xShmMap = counted_ShmMap;
	counted_io.xShmLock = counted_ShmLock;
	counted_io.xShmBarrier = counted_barrier;
	counted_io.xShmUnmap = counted_ShmUnmap;
	counted_io.xFetch = counted_Fetch;
	counted_io.xUnfetch = counted_Unfetch;
	c->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->pMethods = &counted_io;
	return SQLITE_OK;
}

/* Makes the counting VFS the default for connections opened from now. */
static void
count_wal_syncs(void)
{
	if (base_vfs == NULL) {
		base_vfs = sqlite3_vfs_find(NULL);
		counting_vfs = *base_vfs;
		counting_vfs.zName = "ferry-counting";
		counting_vfs.szOsFile = (int)sizeof(struct counted_file) +
		    base_vfs->szOsFile;
		counting_vfs.xOpen = counted_open;
	}
	ck_assert_int_eq(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
	wal_syncs = 0;
}

static void
stop_counting(void)
{
	sqlite3_vfs_unregister(&counting_vfs);
	sqlite3_vfs_register(base_vfs, 1);
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
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 3);
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
	/* NORMAL: store_commit syncs the WAL itself (test_commit_syncs) */
	ck_assert_int_eq(q_int(captured, "PRAGMA synchronous"), 1);
	ck_assert_int_eq(q_int(captured, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(q_int(captured, "PRAGMA busy_timeout"), 5000);
	ck_assert_int_eq(q_int(captured, "PRAGMA secure_delete"), 0);
	store_close(st);
}
END_TEST

/* store_commit returns after the WAL is synced; store_commit_lazy
 * commits without a sync, and the next durable commit syncs its frames
 * with its own; both are kept across a reopen. */
START_TEST(test_commit_syncs)
{
	struct store *st;
	char qid[QID_LEN + 1];
	int64_t n;
	int before;

	count_wal_syncs();
	st = open_store();
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	before = wal_syncs;
	ck_assert_int_eq(store_commit(st), 0);
	/* (the first frames after a WAL reset also sync its header) */
	ck_assert_int_ge(wal_syncs, before + 1);

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	before = wal_syncs;
	ck_assert_int_eq(store_commit_lazy(st), 0);
	ck_assert_int_eq(wal_syncs, before);
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit_lazy(st), 0);
	ck_assert_int_eq(wal_syncs, before);

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(wal_syncs, before + 1);
	/* nothing open: nothing to do */
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_commit_lazy(st), 0);
	ck_assert_int_eq(wal_syncs, before + 1);
	store_close(st);
	stop_counting();

	st = open_store();
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 4);
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
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 3);
	sqlite3_close(db);
}
END_TEST

/* A version 1 database (no agent_deaths, no hold_reason) is migrated in
 * place and keeps its mail. */
START_TEST(test_migrates_v1)
{
	struct store *st = open_store();
	struct store_msg_info m;
	char qid[QID_LEN + 1];
	int64_t n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);
	db = peek_open();
	q_exec(db, "ALTER TABLE message DROP COLUMN agent_deaths;"
	    "ALTER TABLE message DROP COLUMN hold_reason;"
	    "DROP TABLE history_attempt; DROP TABLE history_rcpt;"
	    "DROP TABLE history_message; DROP TABLE history_new_attempt;"
	    "DROP TABLE history_new_rcpt; DROP TABLE history_new_message;"
	    "PRAGMA user_version = 1");
	sqlite3_close(db);

	st = open_store();
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(store_admin_show(st, qid, &m), 0);
	ck_assert_ptr_null(m.hold_reason);
	store_admin_show_free(&m);
	store_close(st);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 3);
	ck_assert_int_eq(q_int(db, "SELECT agent_deaths FROM message"), 0);
	sqlite3_close(db);
}
END_TEST

/* A database made before the message_state index is given it at open,
 * and ferryctl status's counts come from it without reading a message
 * row. */
START_TEST(test_status_counts_from_index)
{
	struct store *st = open_store();
	struct store_queue_stats qs;
	char qid[QID_LEN + 1];
	sqlite3 *db;
	sqlite3_stmt *s;
	int rows = 0, covering = 0;

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);
	db = peek_open();
	q_exec(db, "DROP INDEX message_state");
	sqlite3_close(db);

	st = open_store();
	ck_assert_int_eq(store_admin_stats(st, &qs), 0);
	ck_assert_int_eq(qs.active, 2);
	ck_assert_int_eq(qs.hold, 0);
	ck_assert(qs.oldest_received_at > 0);
	store_close(st);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'index' AND name = 'message_state'"), 1);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN"
	    " SELECT count(*) FROM message WHERE state = 'active'", -1, &s,
	    NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(s, 3);

		rows++;
		if (d != NULL && strstr(d, "COVERING INDEX message_state"))
			covering++;
	}
	sqlite3_finalize(s);
	ck_assert_int_gt(rows, 0);
	ck_assert_int_eq(covering, rows);
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
	q_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 4");
	sqlite3_close(db);

	err[0] = '\0';
	st = store_open(dbpath, err, sizeof(err));
	ck_assert_ptr_null(st);
	snprintf(want, sizeof(want), "database schema version 4 is newer "
	    "than this ferry (%d)", STORE_SCHEMA_VERSION);
	ck_assert_msg(strstr(err, want) != NULL, "err: %s", err);
	ck_assert_msg(strstr(err, dbpath) != NULL, "no path in: %s", err);

	/* ...and left it alone. */
	db = peek_open();
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 4);
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

/* The body lent chunk by chunk is the body stored, the empty chunk
 * included; past the last chunk there is none; and once the view ends,
 * the store writes again. */
START_TEST(test_body_chunk_view)
{
	static const char *chunks[] = { "Subject: v\r\n\r\n", "bin\0ary",
	    "", "end\r\n" };
	static const size_t lens[] = { 15, 7, 0, 5 };
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	const uint8_t *p;
	uint8_t *copy;
	size_t len;
	int64_t id, other;
	uint32_t i;
	struct envelope e;

	plain_env(&e);
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert_int_gt(id, 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(store_body_append(st, id, i, chunks[i],
		    lens[i]), 0);
	ck_assert_int_eq(store_message_ready(st, id, 27), 0);
	ck_assert_int_eq(store_commit(st), 0);

	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(store_body_chunk_view(st, id, i, &p, &len), 1);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(len, lens[i]);
		ck_assert(memcmp(p, chunks[i], len) == 0);
	}
	ck_assert_int_eq(store_body_chunk_view(st, id, 4, &p, &len), 0);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(store_body_chunk_view(st, id + 100, 0, &p, &len), 0);
	ck_assert_int_eq(store_body_chunk_view(st, id, 1, &p, &len), 1);
	store_body_view_end(st);
	store_body_view_end(st);             /* twice is harmless */

	/* after the view: the copying call, and writes */
	ck_assert_int_eq(store_body_chunk(st, id, 1, &copy, &len), 1);
	ck_assert_uint_eq(len, 7);
	ck_assert(memcmp(copy, "bin\0ary", 7) == 0);
	free(copy);
	ck_assert_int_eq(store_body_chunk(st, id, 4, &copy, &len), 0);
	ck_assert_ptr_null(copy);
	ck_assert_int_eq(store_begin(st), 0);
	other = add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_body_chunk_view(st, other, 0, &p, &len), 1);
	ck_assert_uint_eq(len, strlen("Subject: x\r\n\r\nhello\r\n"));
	store_body_view_end(st);
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

/* store_begin_read: one read transaction for a run of queries; a write
 * meanwhile starts a write transaction afresh instead of upgrading the
 * read, so a commit another connection made in between cannot make it
 * fail (an upgraded read would get SQLITE_BUSY_SNAPSHOT). */
START_TEST(test_read_transaction_never_upgraded)
{
	struct store *st = open_store();
	sqlite3 *other = peek_open();
	double tokens = 0, stamp = 0;

	ck_assert_int_eq(store_begin_read(st), 0);
	ck_assert(store_in_transaction(st));
	ck_assert(!store_has_writes(st));
	ck_assert_int_eq(store_route_quota_get(st, "r", 3, &tokens, &stamp),
	    0);
	/* another connection commits after the read began */
	ck_assert_int_eq(sqlite3_exec(other, "CREATE TABLE elsewhere (x);"
	    "INSERT INTO elsewhere VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_route_quota_put(st, "r", 3, 5, 100), 0);
	ck_assert(store_has_writes(st));
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert(!store_in_transaction(st));
	/* a read with nothing written ends and leaves no transaction */
	ck_assert_int_eq(store_begin_read(st), 0);
	ck_assert_int_eq(store_route_quota_get(st, "r", 3, &tokens, &stamp),
	    1);
	ck_assert(tokens == 5);
	ck_assert_int_eq(store_end_read(st), 0);
	ck_assert(!store_in_transaction(st));
	ck_assert_int_eq(store_end_read(st), 0);
	sqlite3_close(other);
	store_close(st);
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

	/* Held behind the store's back (store_admin_hold is tested below). */
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

/* --- admin queries (ferryctl) --- */

/* Sets a column of message id through the second connection. */
static void
peek_set_received(int64_t id, double t)
{
	sqlite3 *db = peek_open();
	char sql[128];

	snprintf(sql, sizeof(sql), "UPDATE message SET received_at = %.6f"
	    " WHERE id = %lld", t, (long long)id);
	q_exec(db, sql);
	sqlite3_close(db);
}

/* An attempt row for recipient rid, as the delivery side writes it. */
static void
peek_attempt(sqlite3 *db, int64_t rid, double at, const char *status,
    const char *dsn, const char *reply)
{
	sqlite3_stmt *s = prep(db, "INSERT INTO attempt (recipient_id, at,"
	    " relay, tls, status, dsn, reply) VALUES (?1, ?2,"
	    " 'mx.example.org[192.0.2.25]:25', NULL, ?3, ?4, ?5)");

	sqlite3_bind_int64(s, 1, rid);
	sqlite3_bind_double(s, 2, at);
	sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, dsn, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, reply, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);
}

static int64_t
first_rcpt(sqlite3 *db, int64_t msgid)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT min(id) FROM recipient"
	    " WHERE message_id = %lld", (long long)msgid);
	return q_int(db, sql);
}

struct seen {
	int n, stop_after;
	char qid[8][QID_LEN + 1];
	char state[8][8];
	int64_t pending[8], total[8], size[8];
	size_t nrcpts[8];
	char rcpt0[8][64], sender[8][64], reply[8][64], dsn[8][16];
	double next[8], received[8];
};

static int
collect(void *arg, const struct store_list_entry *e)
{
	struct seen *s = arg;
	int i = s->n++;

	ck_assert_int_lt(i, 8);
	snprintf(s->qid[i], sizeof(s->qid[i]), "%s", e->qid);
	snprintf(s->state[i], sizeof(s->state[i]), "%s", e->state);
	s->pending[i] = e->pending;
	s->total[i] = e->rcpts_total;
	s->size[i] = e->size;
	s->nrcpts[i] = e->nrcpts;
	snprintf(s->rcpt0[i], sizeof(s->rcpt0[i]), "%s",
	    e->nrcpts > 0 ? e->rcpts[0] : "");
	snprintf(s->sender[i], sizeof(s->sender[i]), "%s", e->sender);
	snprintf(s->reply[i], sizeof(s->reply[i]), "%s",
	    e->last_reply ? e->last_reply : "<null>");
	snprintf(s->dsn[i], sizeof(s->dsn[i]), "%s",
	    e->last_dsn ? e->last_dsn : "<null>");
	s->next[i] = e->next_attempt;
	s->received[i] = e->received_at;
	return s->stop_after > 0 && s->n >= s->stop_after ? 7 : 0;
}

START_TEST(test_admin_list)
{
	struct store *st = open_store();
	char qa[QID_LEN + 1], qb[QID_LEN + 1], qc[QID_LEN + 1], sql[256];
	struct seen seen;
	int64_t a, b, c;
	int truncated;
	sqlite3 *db;

	/* empty */
	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(store_admin_list(st, STORE_LIST_MAX, collect, &seen,
	    &truncated), 0);
	ck_assert_int_eq(seen.n, 0);
	ck_assert_int_eq(truncated, 0);

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	b = add_msg(st, 1, qb);
	c = add_msg(st, 0, qc);               /* incoming: never listed */
	ck_assert_int_eq(store_commit(st), 0);
	(void)c;
	/* b is older than a */
	peek_set_received(a, 1700000200.0);
	peek_set_received(b, 1700000100.0);
	/* a: alice deferred (due later), bob delivered with an older reply */
	db = peek_open();
	snprintf(sql, sizeof(sql), "UPDATE recipient SET attempts = 1,"
	    " next_attempt = 1800000000.5, last_attempt = 1700000300,"
	    " last_reply = '451 4.3.0 try later', last_dsn = '4.3.0'"
	    " WHERE message_id = %lld AND address = 'alice@example.org'",
	    (long long)a);
	q_exec(db, sql);
	snprintf(sql, sizeof(sql), "UPDATE recipient SET state = 'delivered',"
	    " attempts = 1, last_attempt = 1700000400,"
	    " last_reply = '250 2.0.0 ok', last_dsn = '2.0.0'"
	    " WHERE message_id = %lld AND address = 'bob@example.net'",
	    (long long)a);
	q_exec(db, sql);
	sqlite3_close(db);
	ck_assert_int_eq(store_admin_hold(st, qb), 0);

	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(store_admin_list(st, STORE_LIST_MAX, collect, &seen,
	    &truncated), 0);
	ck_assert_int_eq(truncated, 0);
	ck_assert_int_eq(seen.n, 2);
	/* oldest first */
	ck_assert_str_eq(seen.qid[0], qb);
	ck_assert_str_eq(seen.state[0], "hold");
	ck_assert(seen.received[0] == 1700000100.0);
	ck_assert_int_eq(seen.total[0], 2);
	ck_assert_int_eq(seen.pending[0], 2);
	ck_assert_uint_eq(seen.nrcpts[0], 2);
	ck_assert_str_eq(seen.rcpt0[0], "alice@example.org");
	ck_assert_str_eq(seen.reply[0], "<null>");
	ck_assert(seen.next[0] > 0);             /* due since ready */
	ck_assert_str_eq(seen.qid[1], qa);
	ck_assert_str_eq(seen.state[1], "active");
	ck_assert_str_eq(seen.sender[1], "sender@example.com");
	ck_assert_int_eq(seen.size[1], 21);
	ck_assert_int_eq(seen.pending[1], 1);
	ck_assert(fabs(seen.next[1] - 1800000000.5) < 1e-6);
	/* the pending recipient's reply wins over a later delivery's */
	ck_assert_str_eq(seen.reply[1], "451 4.3.0 try later");
	ck_assert_str_eq(seen.dsn[1], "4.3.0");

	/* capped, and the cap reported */
	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(store_admin_list(st, 1, collect, &seen, &truncated),
	    0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_int_eq(truncated, 1);
	ck_assert_str_eq(seen.qid[0], qb);
	/* the callback stops the walk */
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 1;
	ck_assert_int_eq(store_admin_list(st, STORE_LIST_MAX, collect, &seen,
	    &truncated), 7);
	ck_assert_int_eq(seen.n, 1);
	store_close(st);
}
END_TEST

START_TEST(test_admin_list_many_rcpts)
{
	struct store *st = open_store();
	struct envelope e;
	struct envelope_rcpt r[STORE_LIST_RCPTS + 5];
	char qid[QID_LEN + 1], addr[STORE_LIST_RCPTS + 5][32];
	struct seen seen;
	int64_t id;
	int truncated;
	size_t i;

	plain_env(&e);
	for (i = 0; i < STORE_LIST_RCPTS + 5; i++) {
		snprintf(addr[i], sizeof(addr[i]), "r%zu@example.org", i);
		r[i].addr = addr[i];
		r[i].notify = 0;
		r[i].orcpt = "";
	}
	e.rcpts = r;
	e.nrcpts = e.rcpts_cap = STORE_LIST_RCPTS + 5;
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(store_message_ready(st, id, 0), 0);
	ck_assert_int_eq(store_commit(st), 0);

	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(store_admin_list(st, STORE_LIST_MAX, collect, &seen,
	    &truncated), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_uint_eq(seen.nrcpts[0], STORE_LIST_RCPTS);
	ck_assert_int_eq(seen.total[0], STORE_LIST_RCPTS + 5);
	ck_assert_str_eq(seen.rcpt0[0], "r0@example.org");
	store_close(st);
}
END_TEST

START_TEST(test_admin_show)
{
	struct store *st = open_store();
	struct store_msg_info m;
	struct envelope e;
	char qid[QID_LEN + 1], sql[256];
	const char *h1 = "Received: from x\r\n\tby y;\r\n date\r\nSubj";
	const char *h2 = "ect: hi\r\n\r\nbody line\r\n";
	int64_t id, rid;
	sqlite3 *db;
	int i;

	plain_env(&e);
	e.auth_user = "joe";
	e.body_type = BODY_8BITMIME;
	e.smtputf8 = 1;
	e.dsn_ret = RET_HDRS;
	e.dsn_envid = "ENV+2Bid";
	e.size_declared = 99;
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert_int_gt(id, 0);
	/* the empty line ends in the second chunk */
	ck_assert_int_eq(store_body_append(st, id, 0, h1, strlen(h1)), 0);
	ck_assert_int_eq(store_body_append(st, id, 1, h2, strlen(h2)), 0);
	ck_assert_int_eq(store_message_ready(st, id, 60), 0);
	ck_assert_int_eq(store_commit(st), 0);

	/* three attempts for alice, none for bob */
	db = peek_open();
	rid = first_rcpt(db, id);
	peek_attempt(db, rid, 1700000010, "deferred", "4.4.1", "no answer");
	peek_attempt(db, rid, 1700000030, "deferred", "4.3.0", "451 later");
	peek_attempt(db, rid, 1700000020, "deferred", "4.4.2", "lost");
	snprintf(sql, sizeof(sql), "UPDATE recipient SET attempts = 3,"
	    " last_attempt = 1700000030, last_reply = '451 later',"
	    " last_dsn = '4.3.0', next_attempt = 1700009999 WHERE id = %lld",
	    (long long)rid);
	q_exec(db, sql);
	sqlite3_close(db);

	ck_assert_int_eq(store_admin_show(st, "000000000000", &m),
	    STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_show(st, qid, &m), 0);
	ck_assert_str_eq(m.qid, qid);
	ck_assert_str_eq(m.state, "active");
	ck_assert_str_eq(m.sender, "sender@example.com");
	ck_assert_int_eq(m.size, 60);
	ck_assert(fabs(m.received_at - 1700000000.123456) < 1e-6);
	ck_assert_str_eq(m.client_addr, "192.0.2.7");
	ck_assert_str_eq(m.client_name, "unknown");
	ck_assert_str_eq(m.helo, "client.example");
	ck_assert_str_eq(m.protocol, "ESMTP");
	ck_assert_str_eq(m.auth_user, "joe");
	ck_assert_str_eq(m.body_type, "8BITMIME");
	ck_assert_int_eq(m.smtputf8, 1);
	ck_assert_str_eq(m.dsn_ret, "HDRS");
	ck_assert_str_eq(m.dsn_envid, "ENV+2Bid");
	ck_assert_int_eq(m.size_declared, 99);
	ck_assert_ptr_null(m.dsn_of);
	ck_assert_int_eq(m.warned, 0);
	ck_assert_str_eq(m.headers, "Received: from x\r\n\tby y;\r\n date\r\n"
	    "Subject: hi\r\n");
	ck_assert_uint_eq(m.headers_len, strlen(m.headers));
	ck_assert_int_eq(m.headers_truncated, 0);

	ck_assert_int_eq(m.rcpts_total, 2);
	ck_assert_uint_eq(m.nrcpts, 2);
	ck_assert_str_eq(m.rcpts[0].address, "alice@example.org");
	ck_assert_str_eq(m.rcpts[0].state, "pending");
	ck_assert_int_eq(m.rcpts[0].dsn_notify,
	    NOTIFY_SUCCESS | NOTIFY_FAILURE);
	ck_assert_str_eq(m.rcpts[0].dsn_orcpt, "rfc822;alice@example.org");
	ck_assert_int_eq(m.rcpts[0].attempts, 3);
	ck_assert(m.rcpts[0].next_attempt == 1700009999.0);
	ck_assert(m.rcpts[0].last_attempt == 1700000030.0);
	ck_assert_str_eq(m.rcpts[0].last_reply, "451 later");
	ck_assert_str_eq(m.rcpts[0].last_dsn, "4.3.0");
	ck_assert_int_eq(m.rcpts[0].history_total, 3);
	ck_assert_uint_eq(m.rcpts[0].nhistory, 3);
	/* oldest first, by time */
	ck_assert(m.rcpts[0].history[0].at == 1700000010.0);
	ck_assert_str_eq(m.rcpts[0].history[0].dsn, "4.4.1");
	ck_assert_str_eq(m.rcpts[0].history[1].dsn, "4.4.2");
	ck_assert_str_eq(m.rcpts[0].history[2].reply, "451 later");
	ck_assert_str_eq(m.rcpts[0].history[2].status, "deferred");
	ck_assert_str_eq(m.rcpts[0].history[2].relay,
	    "mx.example.org[192.0.2.25]:25");
	ck_assert_ptr_null(m.rcpts[0].history[2].tls);
	ck_assert_str_eq(m.rcpts[1].address, "bob@example.net");
	ck_assert_int_eq(m.rcpts[1].dsn_notify, 0);
	ck_assert_ptr_null(m.rcpts[1].dsn_orcpt);
	ck_assert_int_eq(m.rcpts[1].attempts, 0);
	ck_assert(m.rcpts[1].last_attempt < 0);
	ck_assert_ptr_null(m.rcpts[1].last_reply);
	ck_assert_uint_eq(m.rcpts[1].nhistory, 0);
	ck_assert_ptr_null(m.rcpts[1].history);
	store_admin_show_free(&m);

	/* many attempts: the latest STORE_SHOW_HISTORY, oldest first */
	db = peek_open();
	q_exec(db, "BEGIN");
	for (i = 0; i < STORE_SHOW_HISTORY + 10; i++)
		peek_attempt(db, rid, 1700100000 + i, "deferred", "4.0.0", "x");
	q_exec(db, "COMMIT");
	sqlite3_close(db);
	ck_assert_int_eq(store_admin_show(st, qid, &m), 0);
	ck_assert_int_eq(m.rcpts[0].history_total, STORE_SHOW_HISTORY + 13);
	ck_assert_uint_eq(m.rcpts[0].nhistory, STORE_SHOW_HISTORY);
	ck_assert(m.rcpts[0].history[0].at == 1700100000.0 + 10);
	ck_assert(m.rcpts[0].history[STORE_SHOW_HISTORY - 1].at ==
	    1700100000.0 + STORE_SHOW_HISTORY + 9);
	store_admin_show_free(&m);
	store_close(st);
}
END_TEST

/* The header block of a one-message store whose body is the chunks. */
static void
headers_of(const char *const *chunks, size_t n, struct store_msg_info *m)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	struct envelope e;
	int64_t id;
	size_t i;

	plain_env(&e);
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(store_body_append(st, id, (uint32_t)i,
		    chunks[i], strlen(chunks[i])), 0);
	ck_assert_int_eq(store_message_ready(st, id, 1), 0);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_admin_show(st, qid, m), 0);
	ck_assert_int_eq(store_admin_delete(st, qid), 0);
	store_close(st);
}

START_TEST(test_admin_show_headers)
{
	static const char *const no_headers[] = { "\r\nbody\r\n" };
	static const char *const lf_only[] = { "A: 1\nB: 2\n\nbody\n" };
	static const char *const split_crlf[] = { "A: 1\r\n", "\r", "\nbody" };
	static const char *const no_body[] = { "A: 1\r\nB: 2\r\n" };
	static const char *const blank_late[] = { "A: 1\r\n", "B: 2\r\n",
	    "\r\nX: body\r\n\r\n" };
	struct store_msg_info m;
	char *big;
	const char *chunks[3];

	headers_of(no_headers, 1, &m);
	ck_assert_str_eq(m.headers, "");
	ck_assert_uint_eq(m.headers_len, 0);
	store_admin_show_free(&m);
	headers_of(lf_only, 1, &m);
	ck_assert_str_eq(m.headers, "A: 1\nB: 2\n");
	store_admin_show_free(&m);
	headers_of(split_crlf, 3, &m);
	ck_assert_str_eq(m.headers, "A: 1\r\n");
	store_admin_show_free(&m);
	headers_of(no_body, 1, &m);
	ck_assert_str_eq(m.headers, "A: 1\r\nB: 2\r\n");
	ck_assert_int_eq(m.headers_truncated, 0);
	store_admin_show_free(&m);
	headers_of(blank_late, 3, &m);
	ck_assert_str_eq(m.headers, "A: 1\r\nB: 2\r\n");
	store_admin_show_free(&m);

	/* a header block over the cap is cut there */
	big = malloc(STORE_HEADERS_MAX * 2);
	memset(big, 'h', STORE_HEADERS_MAX * 2 - 1);
	big[STORE_HEADERS_MAX * 2 - 1] = '\0';
	chunks[0] = "X-Big: ";
	chunks[1] = big;
	chunks[2] = "\r\n\r\nbody";
	headers_of(chunks, 3, &m);
	ck_assert_uint_eq(m.headers_len, STORE_HEADERS_MAX);
	ck_assert_uint_eq(strlen(m.headers), STORE_HEADERS_MAX);
	ck_assert_int_eq(m.headers_truncated, 1);
	ck_assert(strncmp(m.headers, "X-Big: hhh", 10) == 0);
	store_admin_show_free(&m);
	free(big);
}
END_TEST

static void
q_state(const char *qid, char *out, size_t outlen)
{
	sqlite3 *db = peek_open();
	sqlite3_stmt *s = prep(db, "SELECT state FROM message WHERE qid = ?1");

	sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(out, outlen, "%s", sqlite3_column_text(s, 0));
	else
		snprintf(out, outlen, "<none>");
	sqlite3_finalize(s);
	sqlite3_close(db);
}

START_TEST(test_admin_hold_release)
{
	struct store *st = open_store();
	char qa[QID_LEN + 1], qi[QID_LEN + 1], state[16], sql[256];
	int64_t a;
	double before;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	add_msg(st, 0, qi);
	ck_assert_int_eq(store_commit(st), 0);

	ck_assert_int_eq(store_admin_state(st, qa, state), 0);
	ck_assert_str_eq(state, "active");
	ck_assert_int_eq(store_admin_state(st, "ABCDEF012345", state),
	    STORE_NOT_FOUND);

	/* own transactions: durable at once, as another process sees */
	ck_assert_int_eq(store_admin_hold(st, qa), 0);
	ck_assert_int_eq(store_in_transaction(st), 0);
	q_state(qa, state, sizeof(state));
	ck_assert_str_eq(state, "hold");
	ck_assert_int_eq(store_admin_hold(st, qa), STORE_WRONG_STATE);
	ck_assert_int_eq(store_admin_hold(st, qi), STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_hold(st, "ABCDEF012345"),
	    STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_release(st, qi), STORE_NOT_FOUND);

	/* release makes the pending recipients due now */
	db = peek_open();
	snprintf(sql, sizeof(sql), "UPDATE recipient SET next_attempt ="
	    " 1900000000 WHERE message_id = %lld", (long long)a);
	q_exec(db, sql);
	before = now_wall();
	ck_assert_int_eq(store_admin_release(st, qa), 0);
	q_state(qa, state, sizeof(state));
	ck_assert_str_eq(state, "active");
	snprintf(sql, sizeof(sql), "SELECT max(next_attempt) FROM recipient"
	    " WHERE message_id = %lld", (long long)a);
	ck_assert_int_le(q_int(db, sql), (int64_t)now_wall() + 1);
	ck_assert_int_ge(q_int(db, sql), (int64_t)before - 1);
	sqlite3_close(db);
	ck_assert_int_eq(store_admin_release(st, qa), STORE_WRONG_STATE);
	store_close(st);
}
END_TEST

START_TEST(test_admin_in_runner_tx)
{
	struct store *st = open_store();
	char qa[QID_LEN + 1], qb[QID_LEN + 1], state[16];

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qa);
	add_msg(st, 1, qb);
	ck_assert_int_eq(store_commit(st), 0);

	/* inside the runner's transaction: part of it, not committed */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_admin_hold(st, qa), 0);
	ck_assert_int_eq(store_in_transaction(st), 1);
	ck_assert_int_eq(store_admin_state(st, qa, state), 0);
	ck_assert_str_eq(state, "hold");               /* seen inside */
	q_state(qa, state, sizeof(state));
	ck_assert_str_eq(state, "active");             /* not outside */
	/* a refused operation leaves the transaction as it was */
	ck_assert_int_eq(store_admin_hold(st, qa), STORE_WRONG_STATE);
	ck_assert_int_eq(store_in_transaction(st), 1);
	ck_assert_int_eq(store_admin_delete(st, qb), 0);
	store_rollback(st);
	ck_assert_int_eq(store_admin_state(st, qa, state), 0);
	ck_assert_str_eq(state, "active");
	ck_assert_int_eq(store_admin_state(st, qb, state), 0);

	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_admin_delete(st, qb), 0);
	ck_assert_int_eq(store_commit(st), 0);
	q_state(qb, state, sizeof(state));
	ck_assert_str_eq(state, "<none>");
	store_close(st);
}
END_TEST

START_TEST(test_admin_flush)
{
	struct store *st = open_store();
	char qa[QID_LEN + 1], qb[QID_LEN + 1], qh[QID_LEN + 1], qi[QID_LEN + 1];
	char sql[256];
	int64_t a, b, n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	b = add_msg(st, 1, qb);
	add_msg(st, 1, qh);
	add_msg(st, 0, qi);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_admin_hold(st, qh), 0);

	db = peek_open();
	/* a: both deferred far out; b: one due long ago, one delivered */
	snprintf(sql, sizeof(sql), "UPDATE recipient SET next_attempt ="
	    " 1900000000 WHERE message_id = %lld", (long long)a);
	q_exec(db, sql);
	snprintf(sql, sizeof(sql), "UPDATE recipient SET next_attempt = 1000"
	    " WHERE message_id = %lld", (long long)b);
	q_exec(db, sql);
	snprintf(sql, sizeof(sql), "UPDATE recipient SET state = 'delivered'"
	    " WHERE message_id = %lld AND address = 'bob@example.net'",
	    (long long)b);
	q_exec(db, sql);

	ck_assert_int_eq(store_admin_flush(st, "ABCDEF012345", &n),
	    STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_flush(st, qi, &n), STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_flush(st, qh, &n), STORE_WRONG_STATE);

	ck_assert_int_eq(store_admin_flush(st, qa, &n), 0);
	ck_assert_int_eq(n, 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld AND next_attempt < 1900000000",
	    (long long)a);
	ck_assert_int_eq(q_int(db, sql), 2);

	/* all: a and b have pending recipients; b's keeps its place */
	snprintf(sql, sizeof(sql), "UPDATE recipient SET next_attempt ="
	    " 1900000000 WHERE message_id = %lld", (long long)a);
	q_exec(db, sql);
	ck_assert_int_eq(store_admin_flush(st, NULL, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"
	    " WHERE next_attempt = 1000 AND state = 'pending'"), 1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"
	    " WHERE next_attempt >= 1900000000"), 0);
	/* the held message was left alone */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipient r JOIN"
	    " message m ON m.id = r.message_id WHERE m.qid = '%s'"
	    " AND r.next_attempt < 1000", qh);
	ck_assert_int_eq(q_int(db, sql), 0);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_admin_delete)
{
	struct store *st = open_store();
	char qa[QID_LEN + 1], qb[QID_LEN + 1], qi[QID_LEN + 1], sql[256];
	int64_t a;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	add_msg(st, 1, qb);
	add_msg(st, 0, qi);
	ck_assert_int_eq(store_commit(st), 0);
	db = peek_open();
	peek_attempt(db, first_rcpt(db, a), 1700000001, "deferred", "4.0.0",
	    "x");

	ck_assert_int_eq(store_admin_delete(st, qi), STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_delete(st, "ABCDEF012345"),
	    STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_hold(st, qb), 0);
	ck_assert_int_eq(store_admin_delete(st, qb), 0);   /* held: fine */
	ck_assert_int_eq(store_admin_delete(st, qa), 0);
	ck_assert_int_eq(store_admin_delete(st, qa), STORE_NOT_FOUND);

	snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM message"
	    " WHERE id = %lld) + (SELECT count(*) FROM recipient"
	    " WHERE message_id = %lld) + (SELECT count(*) FROM body"
	    " WHERE message_id = %lld) + (SELECT count(*) FROM attempt)",
	    (long long)a, (long long)a, (long long)a);
	ck_assert_int_eq(q_int(db, sql), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 1);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_admin_stats)
{
	struct store *st = open_store();
	struct store_queue_stats qs;
	char qa[QID_LEN + 1], qb[QID_LEN + 1], qi[QID_LEN + 1];
	int64_t a, b, i;

	ck_assert_int_eq(store_admin_stats(st, &qs), 0);
	ck_assert_int_eq(qs.active + qs.hold + qs.rcpts_pending, 0);
	ck_assert(qs.oldest_received_at < 0);

	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	b = add_msg(st, 1, qb);
	i = add_msg(st, 0, qi);
	ck_assert_int_eq(store_commit(st), 0);
	peek_set_received(a, 1700000500.0);
	peek_set_received(b, 1700000400.0);
	peek_set_received(i, 1600000000.0);     /* incoming: not counted */
	ck_assert_int_eq(store_admin_hold(st, qb), 0);

	ck_assert_int_eq(store_admin_stats(st, &qs), 0);
	ck_assert_int_eq(qs.active, 1);
	ck_assert_int_eq(qs.hold, 1);
	ck_assert_int_eq(qs.rcpts_pending, 4);
	ck_assert(qs.oldest_received_at == 1700000400.0);
	store_close(st);
}
END_TEST

/* The counts status reads (queue_counts, kept by triggers) against the
 * rows counted, after every kind of write. */
static void
ck_counts_match(struct store *st)
{
	struct store_queue_stats qs;
	sqlite3 *db = peek_open();

	ck_assert_int_eq(store_admin_stats(st, &qs), 0);
	ck_assert_int_eq(qs.active, q_int(db, "SELECT count(*) FROM message"
	    " WHERE state = 'active'"));
	ck_assert_int_eq(qs.hold, q_int(db, "SELECT count(*) FROM message"
	    " WHERE state = 'hold'"));
	ck_assert_int_eq(qs.rcpts_pending, q_int(db, "SELECT count(*) FROM"
	    " recipient WHERE state = 'pending' AND next_attempt IS NOT"
	    " NULL"));
	sqlite3_close(db);
}

START_TEST(test_queue_counts_kept)
{
	struct store *st = open_store();
	struct store_queue_stats qs;
	char qa[QID_LEN + 1], qb[QID_LEN + 1], qc[QID_LEN + 1];
	char qi[QID_LEN + 1];
	struct store_due *v;
	size_t n, i;
	int64_t a;
	sqlite3 *db;

	ck_counts_match(st);
	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	(void)add_msg(st, 1, qb);
	(void)add_msg(st, 1, qc);
	(void)add_msg(st, 0, qi);               /* incoming: not counted */
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_admin_stats(st, &qs), 0);
	ck_assert_int_eq(qs.active, 3);
	ck_assert_int_eq(qs.rcpts_pending, 6);
	ck_counts_match(st);

	/* a rolled back write leaves the counts as they were */
	ck_assert_int_eq(store_begin(st), 0);
	(void)add_msg(st, 1, qi);
	store_rollback(st);
	ck_counts_match(st);

	/* hold, release, results, delete, purge */
	ck_assert_int_eq(store_admin_hold(st, qb), 0);
	ck_counts_match(st);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_due(st, 1e10, 100, &v, &n), 0);
	for (i = 0; i < n; i++) {
		if (v[i].msgid != a)
			continue;
		if (strcmp(v[i].address, "alice@example.org") == 0)
			ck_assert_int_eq(store_rcpt_result(st, v[i].rcpt_id,
			    RCPT_DELIVERED, 0, "mx.example.org[192.0.2.9]:25",
			    NULL, STATUS_SENT, "2.0.0", "250 ok"), 0);
		else
			ck_assert_int_eq(store_rcpt_result(st, v[i].rcpt_id,
			    RCPT_PENDING, 1e10, "mx.example.org[192.0.2.9]:25",
			    NULL, STATUS_DEFERRED, "4.2.0", "421 busy"), 0);
	}
	store_due_free(v, n);
	ck_assert_int_eq(store_commit(st), 0);
	ck_counts_match(st);
	ck_assert_int_eq(store_admin_release(st, qb), 0);
	ck_counts_match(st);
	ck_assert_int_eq(store_admin_delete(st, qc), 0);
	ck_counts_match(st);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_message_delete(st, a), 0);
	ck_assert_int_eq(store_commit(st), 0);
	ck_counts_match(st);
	ck_assert_int_eq(store_purge_incoming(st), 1);
	ck_assert_int_eq(store_admin_stats(st, &qs), 0);
	ck_assert_int_eq(qs.active, 1);
	ck_assert_int_eq(qs.hold, 0);
	ck_assert_int_eq(qs.rcpts_pending, 2);
	ck_counts_match(st);
	store_close(st);

	/* a database without the counts (made by an older ferry, or
	 * missing a part) is counted once at open */
	db = peek_open();
	q_exec(db, "DROP TRIGGER queue_counts_message_state;"
	    " UPDATE queue_counts SET active = 99");
	sqlite3_close(db);
	st = open_store();
	ck_counts_match(st);
	store_close(st);
	db = peek_open();
	q_exec(db, "DROP TABLE queue_counts");
	sqlite3_close(db);
	st = open_store();
	ck_counts_match(st);
	ck_assert_int_eq(store_admin_hold(st, qb), 0);
	ck_counts_match(st);
	store_close(st);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master"
	    " WHERE name LIKE 'queue_counts%'"), 7);
	sqlite3_close(db);
}
END_TEST

/* The stall warning's figures: the oldest of the active and held
 * messages (an incoming one does not count), and whether a recipient of
 * an active message is pending (held mail does not wait). */
START_TEST(test_stall_figures)
{
	struct store *st = open_store();
	char qa[QID_LEN + 1], qb[QID_LEN + 1], qi[QID_LEN + 1];
	double oldest = 0;
	int pending = -1;
	int64_t a, b, i;

	ck_assert_int_eq(store_stall_figures(st, &oldest, &pending), 0);
	ck_assert(oldest < 0);
	ck_assert_int_eq(pending, 0);
	ck_assert_int_eq(store_begin(st), 0);
	i = add_msg(st, 0, qi);
	ck_assert_int_eq(store_commit(st), 0);
	peek_set_received(i, 1600000000.0);
	ck_assert_int_eq(store_stall_figures(st, &oldest, &pending), 0);
	ck_assert(oldest < 0);
	ck_assert_int_eq(pending, 0);
	ck_assert_int_eq(store_begin(st), 0);
	a = add_msg(st, 1, qa);
	b = add_msg(st, 1, qb);
	ck_assert_int_eq(store_commit(st), 0);
	peek_set_received(a, 1700000500.0);
	peek_set_received(b, 1700000400.0);
	ck_assert_int_eq(store_admin_hold(st, qb), 0);
	ck_assert_int_eq(store_stall_figures(st, &oldest, &pending), 0);
	ck_assert(oldest == 1700000400.0);
	ck_assert_int_eq(pending, 1);
	/* only held mail: nothing waits for delivery */
	ck_assert_int_eq(store_admin_delete(st, qa), 0);
	ck_assert_int_eq(store_stall_figures(st, &oldest, &pending), 0);
	ck_assert(oldest == 1700000400.0);
	ck_assert_int_eq(pending, 0);
	ck_assert_int_eq(store_admin_delete(st, qb), 0);
	ck_assert_int_eq(store_stall_figures(st, &oldest, &pending), 0);
	ck_assert(oldest < 0);
	ck_assert_int_eq(pending, 0);
	store_close(st);
}
END_TEST

/* The store, not its callers, knows whether a transaction must commit. */
START_TEST(test_has_writes)
{
	struct store *st = open_store();
	struct store_due *v;
	char qid[QID_LEN + 1];
	int64_t id;
	size_t n;

	ck_assert_int_eq(store_has_writes(st), 0);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_has_writes(st), 0);
	ck_assert_int_eq(store_due(st, 1e10, 10, &v, &n), 0);   /* a read */
	store_due_free(v, n);
	ck_assert_int_eq(store_has_writes(st), 0);
	id = add_msg(st, 0, qid);   /* still arriving: waits for its end */
	ck_assert_int_eq(store_has_writes(st), 0);
	ck_assert_int_eq(store_message_ready(st, id, 20), 0);
	ck_assert_int_eq(store_has_writes(st), 1);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_has_writes(st), 0);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_has_writes(st), 0);
	ck_assert_int_eq(store_message_delete(st, id), 0);
	ck_assert_int_eq(store_has_writes(st), 1);
	store_rollback(st);
	ck_assert_int_eq(store_has_writes(st), 0);
	store_close(st);
}
END_TEST

START_TEST(test_agent_deaths_and_hold)
{
	struct store *st = open_store();
	struct store_msg_info m;
	struct store_due *v;
	char qid[QID_LEN + 1];
	int64_t id;
	size_t n;

	ck_assert_int_eq(store_begin(st), 0);
	id = add_msg(st, 1, qid);
	ck_assert_int_eq(store_agent_died(st, id), 1);
	ck_assert_int_eq(store_agent_died(st, id), 2);
	ck_assert_int_eq(store_due(st, 1e10, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 2);   /* plain_env's two recipients */
	ck_assert_int_eq(v[0].agent_deaths, 2);
	ck_assert_int_eq(v[1].agent_deaths, 2);
	store_due_free(v, n);
	/* a job that finished starts the count again */
	ck_assert_int_eq(store_agent_survived(st, id), 0);
	ck_assert_int_eq(store_agent_died(st, id), 1);
	ck_assert_int_eq(store_agent_died(st, id), 2);
	ck_assert_int_eq(store_agent_died(st, id), 3);
	ck_assert_int_eq(store_message_hold(st, id, "agents died"), 0);
	ck_assert_int_eq(store_commit(st), 0);

	/* held: nothing is due, and queue show says why */
	ck_assert_int_eq(store_due(st, 1e10, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_due_free(v, n);
	ck_assert_int_eq(store_admin_show(st, qid, &m), 0);
	ck_assert_str_eq(m.state, "hold");
	ck_assert_str_eq(m.hold_reason, "agents died");
	store_admin_show_free(&m);

	/* release clears the reason and the count */
	ck_assert_int_eq(store_admin_release(st, qid), 0);
	ck_assert_int_eq(store_admin_show(st, qid, &m), 0);
	ck_assert_str_eq(m.state, "active");
	ck_assert_ptr_null(m.hold_reason);
	store_admin_show_free(&m);
	ck_assert_int_eq(store_due(st, 1e10, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0].agent_deaths, 0);
	store_due_free(v, n);
	store_close(st);
}
END_TEST


/* --- bulk deferral ------------------------------------------------------ */

struct bulk_seen {
	int64_t held_msg;         /* must never be offered */
	int offered;
	char deferred[8][64];     /* "QID address" of each deferred */
	int ndeferred;
};

/* Takes the example.org recipients: next attempt 2e10 + attempts. */
static double
bulk_take_org(void *arg, const struct store_bulk_row *r)
{
	struct bulk_seen *seen = arg;
	const char *at = strrchr(r->address, '@');

	seen->offered++;
	ck_assert_int_ne(r->msgid, seen->held_msg);
	ck_assert_str_eq(r->sender, "sender@example.com");
	ck_assert(r->received_at > 1.7e9);
	if (at == NULL || strcmp(at, "@example.org") != 0)
		return 0;
	ck_assert_uint_eq(r->notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	return 2e10 + r->attempts;
}

static void
bulk_note(void *arg, const struct store_bulk_row *r)
{
	struct bulk_seen *seen = arg;

	ck_assert_int_lt(seen->ndeferred, 8);
	ck_assert(is_qid(r->qid));
	ck_assert(r->received_at > 1.7e9);
	snprintf(seen->deferred[seen->ndeferred++], 64, "%s %s", r->qid,
	    r->address);
}

/* A next hop that is down: the recipients the caller takes are deferred
 * in one statement (attempt counted and recorded, next attempt as take()
 * says, at most limit), the others and held messages are left alone, and
 * the deferred ones are handed back once written. */
START_TEST(test_defer_bulk)
{
	struct store *st = open_store();
	struct bulk_seen seen;
	struct store_bulk b;
	struct store_due *v;
	char qid[3][QID_LEN + 1], hqid[QID_LEN + 1], want[64], text[256];
	double when;
	size_t n;
	int i;
	sqlite3 *db;

	memset(&seen, 0, sizeof(seen));
	memset(&b, 0, sizeof(b));
	b.now = 1e10;
	b.limit = 2;
	b.dsn = "4.4.1";
	b.reply = "delivery temporarily suspended: connect to x: refused";
	b.take = bulk_take_org;
	b.deferred = bulk_note;
	b.arg = &seen;
	ck_assert_int_eq(store_rcpt_defer_bulk(st, &b), -1);  /* no tx */

	ck_assert_int_eq(store_begin(st), 0);
	for (i = 0; i < 3; i++)
		(void)add_msg(st, 1, qid[i]);
	seen.held_msg = add_msg(st, 1, hqid);
	ck_assert_int_eq(store_message_hold(st, seen.held_msg, "x"), 0);
	ck_assert_int_eq(store_commit(st), 0);

	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_rcpt_defer_bulk(st, &b), 2);
	ck_assert_int_eq(seen.ndeferred, 2);
	b.limit = 10;
	ck_assert_int_eq(store_rcpt_defer_bulk(st, &b), 1);
	ck_assert_int_eq(store_rcpt_defer_bulk(st, &b), 0);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(seen.ndeferred, 3);
	for (i = 0; i < 3; i++) {
		int k, found = 0;

		snprintf(want, sizeof(want), "%s alice@example.org", qid[i]);
		for (k = 0; k < seen.ndeferred; k++)
			found += strcmp(seen.deferred[k], want) == 0;
		ck_assert_msg(found == 1, "%s deferred %d times", want, found);
	}

	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"
	    " WHERE address = 'alice@example.org' AND attempts = 1"
	    " AND next_attempt = 2e10 AND last_attempt = 1e10"
	    " AND last_dsn = '4.4.1' AND state = 'pending'"), 3);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM recipient"
	    " WHERE attempts = 0"), 5);   /* bob's three, the held two */
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM attempt a"
	    " JOIN recipient r ON r.id = a.recipient_id"
	    " WHERE r.address = 'alice@example.org' AND a.status = 'deferred'"
	    " AND a.relay = 'none' AND a.tls IS NULL AND a.dsn = '4.4.1'"
	    " AND a.at = 1e10"), 3);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM attempt"), 3);
	q_text(db, "SELECT DISTINCT last_reply FROM recipient"
	    " WHERE attempts = 1", text, sizeof(text));
	ck_assert_str_eq(text, b.reply);
	sqlite3_close(db);

	/* what is left due is bob's, of the active messages only */
	ck_assert_int_eq(store_due(st, 1e10, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < (int)n; i++)
		ck_assert_str_eq(v[i].address, "bob@example.net");
	store_due_free(v, n);
	/* the next due time is of an active message's recipient, earliest
	 * first (the held message's are not counted) */
	db = peek_open();
	q_exec(db, "UPDATE recipient SET next_attempt = 5e9"
	    " WHERE address = 'bob@example.net'");
	q_exec(db, "UPDATE recipient SET next_attempt = 1e9"
	    " WHERE message_id = (SELECT id FROM message WHERE state = 'hold')");
	sqlite3_close(db);
	ck_assert_int_eq(store_next_due(st, &when), 0);
	ck_assert(when == 5e9);
	store_close(st);
}
END_TEST

/* --- damage: the WAL marker, checks, salvage ----------------------------- */

static int
exists_with(const char *suffix)
{
	char p[256];

	snprintf(p, sizeof(p), "%s%s", dbpath, suffix);
	return access(p, F_OK) == 0;
}

START_TEST(test_wal_marker_follows_commits)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1], err[512], wal[256];

	ck_assert(!exists_with(STORE_WAL_MARK_SUFFIX));
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	/* mail in the WAL: the marker is there before the commit returns */
	ck_assert(exists_with(STORE_WAL_MARK_SUFFIX));
	ck_assert_int_eq(store_wal_lost(dbpath, err, sizeof(err)), 0);
	store_close(st);
	/* a clean close checkpoints: no marker, nothing lost */
	ck_assert(!exists_with(STORE_WAL_MARK_SUFFIX));
	ck_assert(!exists_with("-wal"));
	ck_assert_int_eq(store_wal_lost(dbpath, err, sizeof(err)), 0);
	/* the next commit makes it again; an emptied WAL is told, naming
	 * the file */
	st = open_store();
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert(exists_with(STORE_WAL_MARK_SUFFIX));
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(truncate(wal, 0), 0);
	ck_assert_int_eq(store_wal_lost(dbpath, err, sizeof(err)), 1);
	ck_assert_ptr_nonnull(strstr(err, dbpath));
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	store_close(st);
}
END_TEST

START_TEST(test_wal_marker_accept_loss)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1], err[512], wal[256];
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	/* a copy of the files as a crash would leave them, minus the WAL */
	db = peek_open();
	sqlite3_close(db);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(unlink(wal), 0);
	ck_assert_int_eq(store_wal_lost(dbpath, err, sizeof(err)), 1);
	ck_assert_ptr_nonnull(strstr(err, "missing"));
	ck_assert_int_eq(store_accept_loss(dbpath, err, sizeof(err)), 0);
	ck_assert_int_eq(store_wal_lost(dbpath, err, sizeof(err)), 0);
	store_close(st);
}
END_TEST

START_TEST(test_wal_checkpointed_elsewhere_is_no_loss)
{
	char err[512];
	int status;
	pid_t pid;
	sqlite3 *db;

	/* a runner that commits and dies without closing (kill -9) */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *st = store_open(dbpath, err, sizeof(err));
		char qid[QID_LEN + 1];

		if (st == NULL || store_begin(st) < 0)
			_exit(1);
		add_msg(st, 1, qid);
		_exit(store_commit(st) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(exists_with(STORE_WAL_MARK_SUFFIX));
	usleep(20 * 1000);      /* past the file system's clock tick */
	/* another process (an operator's sqlite3 while the runner is down)
	 * opens it: its close copies the WAL in and removes it */
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 1);
	sqlite3_close(db);
	ck_assert(!exists_with("-wal"));
	ck_assert_int_eq(store_wal_lost(dbpath, err, sizeof(err)), 0);
	/* the stale marker went, and the mail is there */
	ck_assert(!exists_with(STORE_WAL_MARK_SUFFIX));
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 1);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_wal_marker_cleared_by_checkpoint)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int i;

	/* enough commits for the store's own checkpoint (1000 frames) */
	for (i = 0; i < 1100 && exists_with(STORE_WAL_MARK_SUFFIX) == (i > 0);
	    i++) {
		ck_assert_int_eq(store_begin(st), 0);
		add_msg(st, 1, qid);
		ck_assert_int_eq(store_commit(st), 0);
	}
	ck_assert_msg(i < 1100, "no checkpoint removed the marker");
	ck_assert(!exists_with(STORE_WAL_MARK_SUFFIX));
	/* and the next commit makes it again */
	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert(exists_with(STORE_WAL_MARK_SUFFIX));
	store_close(st);
}
END_TEST

/* Writes n pages of garbage at page index page of the database. */
static void
garble(long page, int n)
{
	FILE *fp = fopen(dbpath, "r+b");
	char junk[4096];
	int i;

	ck_assert_ptr_nonnull(fp);
	for (i = 0; i < (int)sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	ck_assert_int_eq(fseek(fp, page * 4096, SEEK_SET), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(fwrite(junk, 1, sizeof(junk), fp),
		    sizeof(junk));
	fclose(fp);
}

/* n messages of about 6 KiB committed and the store closed. */
static void
fill_queue(int n)
{
	struct store *st = open_store();
	struct envelope e;
	char qid[QID_LEN + 1], body[6000];
	int64_t id;
	int i;

	memset(body, 'x', sizeof(body));
	plain_env(&e);
	ck_assert_int_eq(store_begin(st), 0);
	for (i = 0; i < n; i++) {
		id = store_message_create(st, &e, qid);
		ck_assert(id > 0);
		ck_assert_int_eq(store_body_append(st, id, 0, body,
		    sizeof(body)), 0);
		ck_assert_int_eq(store_message_ready(st, id,
		    (int64_t)sizeof(body)), 0);
	}
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);
}

struct hist_seen {
	char qids[16][QID_LEN + 1];
	char rcpts[16][64];
	char status[16][16];
	size_t n;
};

static int
hist_collect(void *arg, const struct store_history_entry *e)
{
	struct hist_seen *h = arg;

	if (h->n < 16) {
		ferry_strlcpy(h->qids[h->n], e->qid, sizeof(h->qids[0]));
		ferry_strlcpy(h->rcpts[h->n], e->rcpt, sizeof(h->rcpts[0]));
		ferry_strlcpy(h->status[h->n], e->status,
		    sizeof(h->status[0]));
	}
	h->n++;
	return 0;
}

static size_t
hist_find(struct store *st, const char *sender, const char *rcpt,
    const char *status, const char *route, struct hist_seen *h)
{
	struct store_history_filter f = { sender, rcpt, status, route, -1, -1,
	    100 };
	int truncated;

	memset(h, 0, sizeof(*h));
	ck_assert_int_eq(store_history_search(st, &f, hist_collect, h,
	    &truncated), 0);
	ck_assert_int_eq(truncated, 0);
	return h->n;
}

static void finish_msg(struct store *st, enum rcpt_state first_state,
    enum attempt_status first_status, char *qid);

/* What store_route_caps_each reported. */
struct caps_seen {
	int n;
	char hosts[64];
	uint32_t flags;
	uint64_t size_max;
};

static void
caps_seen_one(void *arg, const char *route, const char *hosts,
    uint32_t flags, uint64_t size_max, double learned_at)
{
	struct caps_seen *cs = arg;

	(void)route;
	(void)learned_at;
	cs->n++;
	snprintf(cs->hosts, sizeof(cs->hosts), "%s", hosts);
	cs->flags = flags;
	cs->size_max = size_max;
}

START_TEST(test_check_and_salvage)
{
	struct store_salvage got;
	struct store *st;
	char err[1024], fresh[256], qid[QID_LEN + 1];
	struct stat sb;
	int64_t page;
	sqlite3 *db;

	fill_queue(12);
	/* and three messages in the delivery history: two filed, one
	 * still staged */
	st = open_store();
	store_history_keep(st, 1);
	finish_msg(st, RCPT_DELIVERED, STATUS_SENT, qid);
	finish_msg(st, RCPT_FAILED, STATUS_BOUNCED, qid);
	ck_assert_int_eq(store_history_move(st), 0);
	finish_msg(st, RCPT_DELIVERED, STATUS_SENT, qid);
	/* a route's day quota half used, and what its upstream offered */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_route_quota_put(st, "mailgun", 3, 250.5,
	    1796500000.25), 0);
	ck_assert_int_eq(store_route_caps_put(st, "mailgun", "mx.example:587",
	    5, 10240000, 1796500001.5), 0);
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);
	ck_assert_int_eq(store_check_file(dbpath, 1, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(dbpath, &sb), 0);
	db = peek_open();
	/* a leaf of the body table (not its root, not an overflow page) */
	page = q_int(db, "SELECT pageno FROM dbstat WHERE name = 'body' AND"
	    " pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 1");
	sqlite3_close(db);
	ck_assert_int_gt(page, 1);
	garble(page - 1, 1);
	ck_assert_int_eq(store_check_file(dbpath, 1, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, dbpath));
	ck_assert_ptr_nonnull(strstr(err, "damaged"));

	snprintf(fresh, sizeof(fresh), "%s/fresh.db", tmpdir);
	st = store_open(fresh, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	ck_assert_int_eq(store_salvage_import(st, dbpath, &got, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(got.found, 12);
	ck_assert_int_ge(got.messages, 8);
	ck_assert_int_lt(got.messages, 12);  /* the garbled page's bodies */
	ck_assert_int_eq(got.recipients, 2 * got.messages);
	ck_assert_int_ge(got.damaged_spots, 1);
	ck_assert_int_eq(got.history, 3);
	ck_assert_int_eq(store_check(st, fresh, 1, err, sizeof(err)), 0);
	/* the history came along, every recipient with its attempts */
	store_history_keep(st, 1);
	{
		struct hist_seen h;

		ck_assert_int_eq(hist_find(st, NULL, "alice@example.org", NULL,
		    NULL, &h), 3);
		ck_assert_str_eq(h.qids[0], qid);
		ck_assert_int_eq(hist_find(st, NULL, NULL, "bounced", NULL,
		    &h), 1);
	}
	/* the route's quota and caps came along */
	{
		double tokens = 0, stamp = 0;
		struct caps_seen cs;

		ck_assert_int_eq(store_route_quota_get(st, "mailgun", 3,
		    &tokens, &stamp), 1);
		ck_assert(tokens == 250.5 && stamp == 1796500000.25);
		memset(&cs, 0, sizeof(cs));
		ck_assert_int_eq(store_route_caps_each(st, caps_seen_one, &cs),
		    0);
		ck_assert_int_eq(cs.n, 1);
		ck_assert_str_eq(cs.hosts, "mx.example:587");
		ck_assert_uint_eq(cs.flags, 5);
		ck_assert_uint_eq(cs.size_max, 10240000);
	}
	store_close(st);
	/* every message kept is whole */
	ck_assert_int_eq(sqlite3_open_v2(fresh, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message WHERE size !="
	    " (SELECT sum(length(chunk)) FROM body WHERE message_id ="
	    " message.id)"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"),
	    got.messages);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_open_refuses_empty_file)
{
	char err[512];
	FILE *fp = fopen(dbpath, "w");

	ck_assert_ptr_nonnull(fp);
	fclose(fp);
	ck_assert_ptr_null(store_open(dbpath, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "damaged"));
	ck_assert_ptr_nonnull(strstr(err, dbpath));
}
END_TEST

START_TEST(test_open_says_damaged)
{
	char err[512];

	fill_queue(2);
	garble(0, 1);
	ck_assert_ptr_null(store_open(dbpath, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, dbpath));
	ck_assert_ptr_nonnull(strstr(err, "damaged"));
}
END_TEST


/* --- delivery history ---------------------------------------------------- */

/* Makes an active message whose first recipient (alice@example.org) gets
 * first_state/first_status after one deferral and whose second
 * (bob@example.net) is delivered, then removes it; returns its qid. */
static void
finish_msg(struct store *st, enum rcpt_state first_state,
    enum attempt_status first_status, char *qid)
{
	struct store_due *v;
	size_t n, i;
	int64_t id;

	ck_assert_int_eq(store_begin(st), 0);
	id = add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_due(st, 1e10, 100, &v, &n), 0);
	for (i = 0; i < n; i++) {
		if (v[i].msgid != id)
			continue;
		if (strcmp(v[i].address, "alice@example.org") == 0) {
			ck_assert_int_eq(store_rcpt_result(st, v[i].rcpt_id,
			    RCPT_PENDING, 1e10, "mx.example.org[192.0.2.9]:25",
			    NULL, STATUS_DEFERRED, "4.2.0", "421 busy"), 0);
			ck_assert_int_eq(store_rcpt_result(st, v[i].rcpt_id,
			    first_state, 0, "mx.example.org[192.0.2.9]:25",
			    "TLSv1.3", first_status, first_state ==
			    RCPT_DELIVERED ? "2.0.0" : "5.1.1",
			    first_state == RCPT_DELIVERED ? "250 ok" :
			    "550 no such user"), 0);
		} else {
			ck_assert_int_eq(store_rcpt_result(st, v[i].rcpt_id,
			    RCPT_DELIVERED, 0, "smtp.example.net[192.0.2.10]:587",
			    NULL, STATUS_SENT, "2.0.0", "250 queued"), 0);
		}
	}
	store_due_free(v, n);
	ck_assert_int_eq(store_message_delete(st, id), 0);
	ck_assert_int_eq(store_commit(st), 0);
}

/* Nothing is kept unless asked; when asked, removal writes the summary,
 * each recipient's outcome and every attempt, in the same transaction. */
START_TEST(test_history_written_on_removal)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1], qid2[QID_LEN + 1];
	sqlite3 *db;

	finish_msg(st, RCPT_DELIVERED, STATUS_SENT, qid);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt"), 0);
	sqlite3_close(db);

	store_history_keep(st, 1);
	ck_assert_int_eq(store_history_move(st), 0);
	finish_msg(st, RCPT_FAILED, STATUS_BOUNCED, qid2);
	/* committed with the removal, in the staging tables */
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_message"), 0);
	ck_assert_int_eq(q_int(db,
	    "SELECT count(*) FROM history_new_message"), 1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_new_rcpt"),
	    2);
	ck_assert_int_eq(q_int(db,
	    "SELECT count(*) FROM history_new_attempt"), 3);
	sqlite3_close(db);
	ck_assert_int_eq(store_history_staged(st), 1);
	/* filed into the indexed tables, the staging tables emptied */
	ck_assert_int_eq(store_history_move(st), 0);
	ck_assert_int_eq(store_history_staged(st), 0);
	db = peek_open();
	ck_assert_int_eq(q_int(db,
	    "SELECT count(*) FROM history_new_message"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_new_rcpt"),
	    0);
	ck_assert_int_eq(q_int(db,
	    "SELECT count(*) FROM history_new_attempt"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_message"), 1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt"), 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_attempt"), 3);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt WHERE"
	    " address = 'alice@example.org' AND status = 'bounced' AND"
	    " deferred = 1 AND attempts = 2 AND dsn = '5.1.1' AND"
	    " relay_host = 'mx.example.org' AND domain = 'example.org'"
	    " AND sender_domain = 'example.com'"), 1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt WHERE"
	    " address = 'bob@example.net' AND status = 'sent'"), 1);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

/* Moves in several batches: every recipient stays linked to its own
 * message and every attempt to its own recipient, ids never collide,
 * and a message staged inside the runner's open transaction is filed
 * with it. */
START_TEST(test_history_move_batches)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	sqlite3 *db;
	int i;

	store_history_keep(st, 1);
	for (i = 0; i < 3; i++)
		finish_msg(st, RCPT_FAILED, STATUS_BOUNCED, qid);
	ck_assert_int_eq(store_history_move(st), 0);
	for (i = 0; i < 2; i++)
		finish_msg(st, RCPT_DELIVERED, STATUS_SENT, qid);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_history_move(st), 0);
	ck_assert_int_eq(store_commit(st), 0);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_message"), 5);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt"), 10);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_attempt"),
	    15);
	/* the recipients' qid is their message's */
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt h"
	    " JOIN history_message m ON m.id = h.hmsg_id"
	    " WHERE m.qid = h.qid"), 10);
	/* each recipient's attempts are its own: the bounced one had a
	 * deferral and a bounce, the others one attempt */
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt h"
	    " WHERE h.attempts = (SELECT count(*) FROM history_attempt a"
	    " WHERE a.hrcpt_id = h.id)"), 10);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_new_rcpt"),
	    0);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

/* An operator's delete keeps the message in the history: a recipient
 * still pending shows as deleted, one already delivered as sent; an
 * incoming message is not deleted (nor kept). */
START_TEST(test_history_admin_delete)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1], inc[QID_LEN + 1];
	struct store_due *v;
	struct hist_seen h;
	size_t n, i;
	int64_t id;

	store_history_keep(st, 1);
	ck_assert_int_eq(store_begin(st), 0);
	id = add_msg(st, 1, qid);
	(void)add_msg(st, 0, inc);
	ck_assert_int_eq(store_commit(st), 0);
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_due(st, 1e10, 100, &v, &n), 0);
	for (i = 0; i < n; i++)
		if (v[i].msgid == id &&
		    strcmp(v[i].address, "bob@example.net") == 0)
			ck_assert_int_eq(store_rcpt_result(st, v[i].rcpt_id,
			    RCPT_DELIVERED, 0, "smtp.example.net[192.0.2.10]:587",
			    NULL, STATUS_SENT, "2.0.0", "250 queued"), 0);
	store_due_free(v, n);
	ck_assert_int_eq(store_commit(st), 0);

	ck_assert_int_eq(store_admin_delete(st, qid), 0);
	ck_assert_int_eq(store_admin_delete(st, inc), STORE_NOT_FOUND);
	ck_assert_int_eq(store_admin_delete(st, "000000000000"),
	    STORE_NOT_FOUND);
	ck_assert_int_eq(hist_find(st, NULL, NULL, NULL, NULL, &h), 2);
	ck_assert_str_eq(h.qids[0], qid);
	ck_assert_int_eq(hist_find(st, NULL, "alice@example.org", "deleted",
	    NULL, &h), 1);
	ck_assert_int_eq(hist_find(st, NULL, "bob@example.net", "sent", NULL,
	    &h), 1);
	ck_assert_int_eq(store_admin_state(st, qid, (char[16]){0}),
	    STORE_NOT_FOUND);
	store_close(st);
}
END_TEST

/* A message still arriving leaves no history when it is dropped. */
START_TEST(test_history_not_for_incoming)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t id;
	sqlite3 *db;

	store_history_keep(st, 1);
	ck_assert_int_eq(store_begin(st), 0);
	id = add_msg(st, 0, qid);
	ck_assert_int_eq(store_message_delete(st, id), 0);
	ck_assert_int_eq(store_commit(st), 0);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_message"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM message"), 0);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_history_search)
{
	struct store *st = open_store();
	char a[QID_LEN + 1], b[QID_LEN + 1];
	struct store_history_filter f;
	struct hist_seen h;
	int truncated;

	store_history_keep(st, 1);
	finish_msg(st, RCPT_FAILED, STATUS_BOUNCED, a);
	usleep(2000);
	finish_msg(st, RCPT_FAILED, STATUS_EXPIRED, b);

	/* exact address, any case; newest first */
	ck_assert_int_eq(hist_find(st, NULL, "ALICE@example.org", NULL, NULL,
	    &h), 2);
	ck_assert_str_eq(h.qids[0], b);
	ck_assert_str_eq(h.qids[1], a);
	ck_assert_str_eq(h.status[0], "expired");
	ck_assert_str_eq(h.status[1], "bounced");
	/* no prefix match: an index serves only whole values */
	ck_assert_int_eq(hist_find(st, NULL, "alice@example", NULL, NULL, &h),
	    0);
	/* domain */
	ck_assert_int_eq(hist_find(st, NULL, "@Example.NET", NULL, NULL, &h),
	    2);
	ck_assert_str_eq(h.rcpts[0], "bob@example.net");
	/* sender, sender domain */
	ck_assert_int_eq(hist_find(st, "sender@example.com", NULL, NULL, NULL,
	    &h), 4);
	ck_assert_int_eq(hist_find(st, "@example.com", NULL, NULL, NULL, &h),
	    4);
	ck_assert_int_eq(hist_find(st, "other@example.com", NULL, NULL, NULL,
	    &h), 0);
	/* status */
	ck_assert_int_eq(hist_find(st, NULL, NULL, "sent", NULL, &h), 2);
	ck_assert_int_eq(hist_find(st, NULL, NULL, "bounced", NULL, &h), 1);
	ck_assert_str_eq(h.qids[0], a);
	ck_assert_int_eq(hist_find(st, NULL, NULL, "expired", NULL, &h), 1);
	ck_assert_str_eq(h.qids[0], b);
	ck_assert_int_eq(hist_find(st, NULL, NULL, "deferred", NULL, &h), 2);
	ck_assert_str_eq(h.rcpts[0], "alice@example.org");
	/* route: the relay's host */
	ck_assert_int_eq(hist_find(st, NULL, NULL, NULL, "smtp.example.net",
	    &h), 2);
	ck_assert_int_eq(hist_find(st, "@example.com", "@example.org",
	    "bounced", "mx.example.org", &h), 1);

	/* time window and limit */
	memset(&f, 0, sizeof(f));
	f.since = now_wall() + 60;
	f.until = -1;
	f.limit = 10;
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(store_history_search(st, &f, hist_collect, &h,
	    &truncated), 0);
	ck_assert_int_eq(h.n, 0);
	f.since = -1;
	f.until = now_wall() + 60;
	f.limit = 3;
	ck_assert_int_eq(store_history_search(st, &f, hist_collect, &h,
	    &truncated), 0);
	ck_assert_int_eq(h.n, 3);
	ck_assert_int_eq(truncated, 1);
	store_close(st);
}
END_TEST

/* The search by recipient walks an index, never the whole table. */
START_TEST(test_history_search_uses_index)
{
	struct store *st = open_store();
	char detail[256] = "";
	sqlite3_stmt *s;
	sqlite3 *db;

	store_close(st);
	db = peek_open();
	s = prep(db, "EXPLAIN QUERY PLAN SELECT h.id FROM history_rcpt h"
	    " JOIN history_message m ON m.id = h.hmsg_id WHERE 1"
	    " AND h.address = 'x@y' ORDER BY h.left_at DESC, h.id DESC"
	    " LIMIT 100");
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(s, 3);

		if (d != NULL && strstr(d, "h ") != NULL)
			ferry_strlcpy(detail, d, sizeof(detail));
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	ck_assert_msg(strstr(detail, "USING INDEX history_rcpt_address") !=
	    NULL, "plan: %s", detail);
}
END_TEST

START_TEST(test_history_prune)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	sqlite3 *db;
	int i;

	store_history_keep(st, 1);
	for (i = 0; i < 5; i++)
		finish_msg(st, RCPT_DELIVERED, STATUS_SENT, qid);
	/* nothing older than the cutoff: nothing goes */
	ck_assert_int_eq(store_history_prune(st, now_wall() - 3600, 100), 0);
	/* in batches: at most batch messages a step */
	ck_assert_int_eq(store_history_prune(st, now_wall() + 1, 2), 2);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_message"), 3);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt"), 6);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_attempt"), 9);
	sqlite3_close(db);
	/* inside the runner's transaction too */
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_history_prune(st, now_wall() + 1, 100), 3);
	ck_assert_int_eq(store_commit(st), 0);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_message"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_rcpt"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM history_attempt"), 0);
	sqlite3_close(db);
	store_close(st);
}
END_TEST

START_TEST(test_history_show)
{
	struct store *st = open_store();
	struct store_msg_info m;
	char qid[QID_LEN + 1];
	size_t i;

	store_history_keep(st, 1);
	finish_msg(st, RCPT_FAILED, STATUS_BOUNCED, qid);
	ck_assert_int_eq(store_admin_show(st, qid, &m), STORE_NOT_FOUND);
	ck_assert_int_eq(store_history_show(st, qid, &m), 0);
	ck_assert_str_eq(m.state, "done");
	ck_assert_str_eq(m.sender, "sender@example.com");
	ck_assert_str_eq(m.client_addr, "192.0.2.7");
	ck_assert_ptr_null(m.headers);
	ck_assert_int_eq(m.nrcpts, 2);
	for (i = 0; i < m.nrcpts; i++) {
		if (strcmp(m.rcpts[i].address, "alice@example.org") == 0) {
			ck_assert_str_eq(m.rcpts[i].state, "bounced");
			ck_assert_int_eq(m.rcpts[i].nhistory, 2);
			ck_assert_str_eq(m.rcpts[i].history[0].status,
			    "deferred");
			ck_assert_str_eq(m.rcpts[i].history[1].reply,
			    "550 no such user");
		} else {
			ck_assert_str_eq(m.rcpts[i].state, "sent");
		}
	}
	store_admin_show_free(&m);
	ck_assert_int_eq(store_history_show(st, "000000000000", &m),
	    STORE_NOT_FOUND);
	store_close(st);
}
END_TEST

/* A version 2 database gains the history tables in place. */
START_TEST(test_migrates_v2)
{
	struct store *st = open_store();
	char qid[QID_LEN + 1];
	int64_t n;
	sqlite3 *db;

	ck_assert_int_eq(store_begin(st), 0);
	add_msg(st, 1, qid);
	ck_assert_int_eq(store_commit(st), 0);
	store_close(st);
	db = peek_open();
	q_exec(db, "DROP TABLE history_attempt; DROP TABLE history_rcpt;"
	    "DROP TABLE history_message; DROP TABLE history_new_attempt;"
	    "DROP TABLE history_new_rcpt; DROP TABLE history_new_message;"
	    "PRAGMA user_version = 2");
	sqlite3_close(db);

	st = open_store();
	ck_assert_int_eq(store_count(st, "active", &n), 0);
	ck_assert_int_eq(n, 1);
	store_close(st);
	db = peek_open();
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 3);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master"
	    " WHERE name IN ('history_message', 'history_rcpt',"
	    " 'history_attempt', 'history_rcpt_address')"), 4);
	sqlite3_close(db);
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
	tcase_add_test(tc, test_commit_syncs);
	tcase_add_test(tc, test_reopen_existing);
	tcase_add_test(tc, test_refuses_newer_schema);
	tcase_add_test(tc, test_migrates_v1);
	tcase_add_test(tc, test_status_counts_from_index);
	tcase_add_test(tc, test_open_error_names_path);
	tcase_add_test(tc, test_refuses_without_wal);
	suite_add_tcase(s, tc);

	tc = new_tcase("damage");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_wal_marker_follows_commits);
	tcase_add_test(tc, test_wal_marker_accept_loss);
	tcase_add_test(tc, test_wal_checkpointed_elsewhere_is_no_loss);
	tcase_add_test(tc, test_wal_marker_cleared_by_checkpoint);
	tcase_add_test(tc, test_check_and_salvage);
	tcase_add_test(tc, test_open_refuses_empty_file);
	tcase_add_test(tc, test_open_says_damaged);
	suite_add_tcase(s, tc);

	tc = new_tcase("intake");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_body_chunk_view);
	tcase_add_test(tc, test_absent_fields_are_null);
	suite_add_tcase(s, tc);

	tc = new_tcase("transactions");
	tcase_add_test(tc, test_rollback_leaves_nothing);
	tcase_add_test(tc, test_commit_survives_reopen);
	tcase_add_test(tc, test_read_transaction_never_upgraded);
	tcase_add_test(tc, test_begin_commit_idempotent);
	tcase_add_test(tc, test_write_needs_transaction);
	tcase_add_test(tc, test_failure_keeps_transaction);
	tcase_add_test(tc, test_has_writes);
	tcase_add_test(tc, test_agent_deaths_and_hold);
	tcase_add_test(tc, test_defer_bulk);
	suite_add_tcase(s, tc);

	tc = new_tcase("maintenance");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_purge_incoming);
	tcase_add_test(tc, test_qids_unique);
	tcase_add_test(tc, test_delete_cascades);
	tcase_add_test(tc, test_count);
	suite_add_tcase(s, tc);

	tc = new_tcase("admin");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_admin_list);
	tcase_add_test(tc, test_admin_list_many_rcpts);
	tcase_add_test(tc, test_admin_show);
	tcase_add_test(tc, test_admin_show_headers);
	tcase_add_test(tc, test_admin_hold_release);
	tcase_add_test(tc, test_admin_in_runner_tx);
	tcase_add_test(tc, test_admin_flush);
	tcase_add_test(tc, test_admin_delete);
	tcase_add_test(tc, test_admin_stats);
	tcase_add_test(tc, test_queue_counts_kept);
	tcase_add_test(tc, test_stall_figures);
	suite_add_tcase(s, tc);

	tc = new_tcase("history");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_history_written_on_removal);
	tcase_add_test(tc, test_history_move_batches);
	tcase_add_test(tc, test_history_admin_delete);
	tcase_add_test(tc, test_history_not_for_incoming);
	tcase_add_test(tc, test_history_search);
	tcase_add_test(tc, test_history_search_uses_index);
	tcase_add_test(tc, test_history_prune);
	tcase_add_test(tc, test_history_show);
	tcase_add_test(tc, test_migrates_v2);
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
