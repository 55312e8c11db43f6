/*
 * check_wal_gather.c - unit tests for queue/wal_gather.c.  A counting
 * VFS sits under it (registered as the default before the gathering
 * one wraps it), so the tests see the writes that reach the file: a
 * commit's frames are one write (or 124 KiB pieces), a second
 * connection reads what was committed, and a write the file system
 * refuses (a file size limit standing in for a full disk) fails the
 * COMMIT itself, leaving the database as it was and usable after; the
 * buffers let go at rest come back for the next commit.
 */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "wal_gather.h"

/* --- a counting VFS under the gathering one ------------------------------ */

struct cfile {
	sqlite3_file base;
	sqlite3_file *real;
	int wal;
};

static sqlite3_vfs count_vfs;
static sqlite3_io_methods count_methods;
static int wal_writes;
static long long wal_bytes;

static sqlite3_vfs *
unix_vfs(void)
{
	return (sqlite3_vfs *)count_vfs.pAppData;
}

#define PASS(name, args, call) \
	static int name args { struct cfile *c = (struct cfile *)f; \
	    return c->real->pMethods->call; }

static int
c_close(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xClose(c->real);
}

static int
c_write(sqlite3_file *f, const void *p, int amt, sqlite3_int64 off)
{
	struct cfile *c = (struct cfile *)f;

	if (c->wal) {
		wal_writes++;
		wal_bytes += amt;
	}
	return c->real->pMethods->xWrite(c->real, p, amt, off);
}

PASS(c_read, (sqlite3_file *f, void *p, int amt, sqlite3_int64 off),
    xRead(c->real, p, amt, off))
PASS(c_truncate, (sqlite3_file *f, sqlite3_int64 size),
    xTruncate(c->real, size))
PASS(c_sync, (sqlite3_file *f, int flags), xSync(c->real, flags))
PASS(c_size, (sqlite3_file *f, sqlite3_int64 *size),
    xFileSize(c->real, size))
PASS(c_lock, (sqlite3_file *f, int l), xLock(c->real, l))
PASS(c_unlock, (sqlite3_file *f, int l), xUnlock(c->real, l))
PASS(c_reserved, (sqlite3_file *f, int *out),
    xCheckReservedLock(c->real, out))
PASS(c_fcntl, (sqlite3_file *f, int op, void *arg),
    xFileControl(c->real, op, arg))
PASS(c_sector, (sqlite3_file *f), xSectorSize(c->real))
PASS(c_devchar, (sqlite3_file *f), xDeviceCharacteristics(c->real))
PASS(c_shm_map, (sqlite3_file *f, int pg, int sz, int ext,
    void volatile **out), xShmMap(c->real, pg, sz, ext, out))
PASS(c_shm_lock, (sqlite3_file *f, int off, int n, int fl),
    xShmLock(c->real, off, n, fl))
PASS(c_shm_unmap, (sqlite3_file *f, int del), xShmUnmap(c->real, del))
PASS(c_fetch, (sqlite3_file *f, sqlite3_int64 off, int amt, void **pp),
    xFetch(c->real, off, amt, pp))
PASS(c_unfetch, (sqlite3_file *f, sqlite3_int64 off, void *p),
    xUnfetch(c->real, off, p))

static void
c_barrier(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;

	c->real->pMethods->xShmBarrier(c->real);
}

static int
c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out)
{
	struct cfile *c = (struct cfile *)f;
	int rc;

	(void)vfs;
	c->real = (sqlite3_file *)(c + 1);
	c->wal = (flags & SQLITE_OPEN_WAL) != 0;
	rc = unix_vfs()->xOpen(unix_vfs(), name, c->real, flags, out);
	c->base.pMethods = rc == SQLITE_OK ? &count_methods : NULL;
	return rc;
}

/* Registers the counting VFS as the default, wrapping "unix". */
static void
count_vfs_register(void)
{
	sqlite3_vfs *u = sqlite3_vfs_find("unix");

	count_vfs = *u;
	count_vfs.pNext = NULL;
	count_vfs.zName = "count";
	count_vfs.pAppData = u;
	count_vfs.szOsFile = (int)sizeof(struct cfile) + u->szOsFile;
	count_vfs.xOpen = c_open;
	count_methods = (sqlite3_io_methods){
		.iVersion = 3, .xClose = c_close, .xRead = c_read,
		.xWrite = c_write, .xTruncate = c_truncate, .xSync = c_sync,
		.xFileSize = c_size, .xLock = c_lock, .xUnlock = c_unlock,
		.xCheckReservedLock = c_reserved, .xFileControl = c_fcntl,
		.xSectorSize = c_sector, .xDeviceCharacteristics = c_devchar,
		.xShmMap = c_shm_map, .xShmLock = c_shm_lock,
		.xShmBarrier = c_barrier, .xShmUnmap = c_shm_unmap,
		.xFetch = c_fetch, .xUnfetch = c_unfetch };
	ck_assert_int_eq(sqlite3_vfs_register(&count_vfs, 1), SQLITE_OK);
}

/* --- helpers ------------------------------------------------------------- */

static char dir[] = "/tmp/check_wal_gather.XXXXXX";
static char path[256];

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q.db", dir);
	count_vfs_register();
}

static void
teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)system(cmd);
}

static sqlite3 *
open_db(const char *vfs)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, vfs), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode = WAL;"
	    "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;"
	    "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, b BLOB)",
	    NULL, NULL, NULL), SQLITE_OK);
	return db;
}

static int64_t
count_rows(sqlite3 *db)
{
	sqlite3_stmt *s;
	int64_t n;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1,
	    &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* rows of `size` bytes in one transaction; SQLite's result of COMMIT */
static int
insert_rows(sqlite3 *db, int rows, int size)
{
	sqlite3_stmt *s;
	int i, rc;

	ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO t (b) VALUES"
	    " (randomblob(?1))", -1, &s, NULL), SQLITE_OK);
	for (i = 0; i < rows; i++) {
		sqlite3_bind_int(s, 1, size);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			sqlite3_finalize(s);
			return rc;
		}
	}
	sqlite3_finalize(s);
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* --- tests --------------------------------------------------------------- */

START_TEST(test_commit_is_one_write)
{
	const char *vfs = wal_gather_vfs();
	sqlite3 *db, *other;
	long long frames;

	ck_assert_ptr_nonnull(vfs);
	db = open_db(vfs);
	ck_assert_int_eq(insert_rows(db, 1, 10), SQLITE_OK);
	wal_writes = 0;
	wal_bytes = 0;
	/* about ten pages: twenty writes without gathering */
	ck_assert_int_eq(insert_rows(db, 10, 3000), SQLITE_OK);
	ck_assert_int_eq(wal_writes, 1);
	frames = wal_bytes / (4096 + 24);
	ck_assert_int_ge(frames, 10);
	ck_assert_int_eq(wal_bytes, frames * (4096 + 24));
	/* another connection (plain VFS) reads it at once */
	ck_assert_int_eq(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE,
	    "unix"), SQLITE_OK);
	ck_assert_int_eq(count_rows(other), 11);
	sqlite3_close(other);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_big_commit_in_pieces)
{
	sqlite3 *db = open_db(wal_gather_vfs()), *other;

	ck_assert_int_eq(insert_rows(db, 1, 10), SQLITE_OK);
	wal_writes = 0;
	wal_bytes = 0;
	/* about 2 MiB: past what is gathered at once (1 MiB), in pieces */
	ck_assert_int_eq(insert_rows(db, 500, 4000), SQLITE_OK);
	ck_assert_int_ge(wal_bytes, 500LL * 4096);
	ck_assert_int_le(wal_writes, wal_bytes / (124 * 1024) + 4);
	ck_assert_int_eq(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE,
	    "unix"), SQLITE_OK);
	ck_assert_int_eq(count_rows(other), 501);
	ck_assert_int_eq(sqlite3_exec(other, "PRAGMA integrity_check", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_refused_write_fails_the_commit)
{
	sqlite3 *db = open_db(wal_gather_vfs()), *other;
	struct rlimit lim, old;
	struct stat sb;
	char wal[300];
	int rc;

	ck_assert_int_eq(insert_rows(db, 20, 100), SQLITE_OK);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	ck_assert_int_eq(stat(wal, &sb), 0);
	/* the WAL may grow by about two pages, the commit needs dozens */
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)sb.st_size + 8192;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = insert_rows(db, 40, 3000);
	ck_assert_int_ne(rc, SQLITE_OK);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* nothing of it is visible, in this connection or another */
	ck_assert_int_eq(count_rows(db), 20);
	ck_assert_int_eq(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE,
	    "unix"), SQLITE_OK);
	ck_assert_int_eq(count_rows(other), 20);
	sqlite3_close(other);
	/* and the database goes on working */
	ck_assert_int_eq(insert_rows(db, 40, 3000), SQLITE_OK);
	ck_assert_int_eq(count_rows(db), 60);
	sqlite3_close(db);
	ck_assert_int_eq(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE,
	    "unix"), SQLITE_OK);
	ck_assert_int_eq(count_rows(other), 60);
	ck_assert_int_eq(sqlite3_exec(other, "PRAGMA integrity_check", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
}
END_TEST

START_TEST(test_release_at_rest)
{
	sqlite3 *db = open_db(wal_gather_vfs());

	/* a big commit, then its buffer let go at rest: the next commits
	 * gather into a new one, still one write each */
	ck_assert_int_eq(insert_rows(db, 100, 4000), SQLITE_OK);
	wal_gather_release();
	wal_gather_release();
	wal_writes = 0;
	ck_assert_int_eq(insert_rows(db, 10, 3000), SQLITE_OK);
	ck_assert_int_eq(wal_writes, 1);
	wal_gather_release();
	ck_assert_int_eq(insert_rows(db, 10, 3000), SQLITE_OK);
	ck_assert_int_eq(wal_writes, 2);
	ck_assert_int_eq(count_rows(db), 120);
	sqlite3_close(db);
	wal_gather_release();   /* no WAL file open any more */
}
END_TEST

static Suite *
wal_gather_suite(void)
{
	Suite *s = suite_create("wal_gather");
	TCase *tc = tcase_create("writes");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_commit_is_one_write);
	tcase_add_test(tc, test_big_commit_in_pieces);
	tcase_add_test(tc, test_refused_write_fails_the_commit);
	tcase_add_test(tc, test_release_at_rest);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(wal_gather_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
