/*
 * store_sqlite.c - the durable queue in one SQLite database: messages,
 * their recipients and their bodies in chunks, and the delivery history of
 * messages that left it (schema in queue/schema.sql, compiled in as
 * store_schema_sql).  The only file that includes sqlite3.h.
 *
 * Durability stance: the database runs in WAL mode, and store_commit
 * returns only after the WAL is fsynced (synchronous=NORMAL, then an
 * explicit sync of the WAL file, which is what synchronous=FULL does at
 * every commit); the runner sends 250 for a message only after the
 * commit that holds its envelope and every body chunk returned.  A commit
 * that acknowledges nothing (delivery results, history, dispatch marks)
 * skips the sync (store_commit_lazy): WAL frames are appended in order,
 * so the next durable commit, or the sync SQLite makes before each
 * checkpoint, makes it durable too, and a crash before then can only
 * bring back mail that was already delivered, to be delivered again, as
 * Postfix's queue does; it never loses any.  Writes happen only inside a transaction opened by
 * store_begin (BEGIN IMMEDIATE, so it never has to upgrade a read lock);
 * a write outside one is refused rather than silently autocommitted,
 * because an fsync per statement would break the group commit.  An
 * operation made of several statements runs under a savepoint, so one
 * that fails leaves the open transaction - and the other messages in it -
 * as it was.  Statements are prepared once at open and bind their
 * arguments; no SQL is ever built from data.
 *
 * Damage stance: the runner checks the file at start (quick_check), and a
 * marker file beside the database (STORE_WAL_MARK_SUFFIX) exists whenever
 * the WAL may hold commits not yet checkpointed into the database file.
 * It is created and fsynced (with its directory) before the first commit
 * after a checkpoint and removed after a checkpoint the store drives
 * itself (SQLite's automatic checkpoint is replaced by the same rule,
 * STORE_CHECKPOINT_FRAMES), so it costs one fsync per checkpoint, not
 * per commit.  A marker with no WAL beside it, and a database file that no
 * checkpoint changed since the marker was made, means committed mail was
 * lost with the WAL: store_wal_lost() tells, and the runner refuses mail
 * until an operator accepts the loss.
 *
 * Space stance: the database uses incremental auto-vacuum, so the pages a
 * drained backlog freed go back to the file system in bounded steps
 * (store_vacuum_step, STORE_VACUUM_PAGES at a time, each its own short
 * transaction) that the runner takes only when idle.  A new database is
 * made so; one made before (auto_vacuum NONE) is converted by a VACUUM at
 * open when it is at most STORE_CONVERT_MAX bytes, and otherwise keeps
 * its size until a start finds it small enough.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <sqlite3.h>

#include "smtp_parse.h"
#include "store.h"
#include "util.h"
#include "wal_gather.h"

/* Generated from queue/schema.sql. */
extern const char store_schema_sql[];

#define QID_TRIES 8           /* fresh ids tried on a queue id collision */
#define BUSY_TIMEOUT_MS 5000
#define STORE_CHECKPOINT_FRAMES 1000  /* SQLite's own autocheckpoint */
#define STORE_CONVERT_MAX (64LL * 1024 * 1024)  /* VACUUM at open up to */

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
	S_HIST_MSG,
	S_HIST_RCPT,
	S_HIST_ATTEMPT,
	S_BEGIN_READ,
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
	/* history: a complete message's summary, then its recipients with
	 * their outcome (from the last attempt), then every attempt */
	[S_HIST_MSG] =
	    "INSERT INTO history_new_message (qid, received_at, left_at, sender,"
	    " size, client_addr, client_name, helo, protocol, auth_user,"
	    " dsn_of) SELECT qid, received_at, ?2, sender, size, client_addr,"
	    " client_name, helo, protocol, auth_user, dsn_of FROM message"
	    " WHERE id = ?1 AND state IN ('active', 'hold')",
	[S_HIST_RCPT] =
	    "INSERT INTO history_new_rcpt (hmsg_id, src_rcpt, left_at, qid,"
	    " sender,"
	    " sender_domain, address, domain, status, deferred, attempts,"
	    " last_attempt, delay, relay, relay_host, dsn, reply)"
	    " SELECT ?2, r.id, ?3, m.qid, m.sender,"
	    "  CASE WHEN instr(m.sender, '@') > 0 THEN lower(substr(m.sender,"
	    "   instr(m.sender, '@') + 1)) ELSE '' END,"
	    "  r.address,"
	    "  CASE WHEN instr(r.address, '@') > 0 THEN lower(substr(r.address,"
	    "   instr(r.address, '@') + 1)) ELSE '' END,"
	    "  CASE WHEN r.state = 'delivered' THEN 'sent'"
	    "   WHEN r.state = 'pending' THEN 'deleted'"
	    "   WHEN a.status = 'expired' THEN 'expired' ELSE 'bounced' END,"
	    "  (SELECT count(*) FROM attempt d WHERE d.recipient_id = r.id"
	    "   AND d.status = 'deferred'),"
	    "  r.attempts, r.last_attempt, r.last_attempt - m.received_at,"
	    "  a.relay,"
	    "  CASE WHEN instr(a.relay, '[') > 0 THEN substr(a.relay, 1,"
	    "   instr(a.relay, '[') - 1) ELSE a.relay END,"
	    "  coalesce(a.dsn, r.last_dsn), coalesce(a.reply, r.last_reply)"
	    " FROM recipient r JOIN message m ON m.id = r.message_id"
	    " LEFT JOIN attempt a ON a.id = (SELECT max(id) FROM attempt"
	    "  WHERE recipient_id = r.id)"
	    " WHERE r.message_id = ?1 ORDER BY r.id",
	[S_HIST_ATTEMPT] =
	    "INSERT INTO history_new_attempt (hrcpt_id, at, relay, tls, status,"
	    " dsn, reply) SELECT h.id, a.at, a.relay, a.tls, a.status, a.dsn,"
	    " a.reply FROM history_new_rcpt h JOIN attempt a"
	    " ON a.recipient_id = h.src_rcpt WHERE h.id BETWEEN ?2 AND ?3"
	    " ORDER BY a.id",
	[S_BEGIN_READ] = "BEGIN DEFERRED",
};

enum dstmt_id { D_DUE, D_NEXT_DUE, D_CHUNK, D_RCPT_UPDATE, D_ATTEMPT,
    D_PENDING, D_FAILED_INFO, D_RCPT_DUE_AT, D_BULK_DEFER, D_NSTMT };

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_NSTMT];
	sqlite3_stmt *dstmt[D_NSTMT];  /* delivery queries, prepared lazily */
	char err[512];        /* last failure; "" means ask sqlite3_errmsg */
	int64_t changes_at_begin; /* sqlite3_total_changes64 at BEGIN */
	int64_t changes_streaming; /* of them, rows of messages still
	                              arriving: they wait for the message */
	char *path;               /* the database file */
	char *wal_mark;           /* the marker's path */
	int wal_marked;           /* the marker exists (and is durable) */
	int wal_frames;           /* frames in the WAL after the last commit */
	int incremental;          /* auto_vacuum is INCREMENTAL */
	int vacuumed;             /* pages freed since the last checkpoint */
	int history_keep;         /* store_message_delete copies to history */
	int bulk_fn;              /* ferry_bulk_take() is registered */
	const struct store_bulk *bulk;   /* the bulk deferral under way */
	int64_t history_staged;   /* messages in history_new_* (at least) */
	int reading;              /* the open transaction is store_begin_read's
	                             and has not written */
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

/* --- the WAL marker ---------------------------------------------------- */

static char *
path_with(const char *path, const char *suffix)
{
	size_t n = strlen(path) + strlen(suffix) + 1;
	char *p = xmalloc(n);

	snprintf(p, n, "%s%s", path, suffix);
	return p;
}

/* fsyncs the directory holding path, so a file created or removed there
 * stays so. */
static int
sync_dir_of(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Records the WAL's frame count after each commit; installing it also
 * turns SQLite's automatic checkpoint off (store_commit drives them). */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct store *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

/* What the marker holds: the database file's size and modification time
 * when the WAL was last empty.  Only a checkpoint writes the database
 * file, so a WAL gone with the file unchanged was lost, while one that
 * another connection checkpointed and removed (an operator's sqlite3
 * while the runner was down) left the file changed. */
static void
fingerprint(const struct stat *sb, char *out, size_t outlen)
{
	snprintf(out, outlen, "%lld %lld %ld\n", (long long)sb->st_size,
	    (long long)sb->st_mtim.tv_sec, (long)sb->st_mtim.tv_nsec);
}

/* Makes the marker exist, durably, before a commit may put mail in the
 * WAL. */
static int
wal_mark(struct store *st)
{
	char fp[96] = "";
	struct stat sb;
	int fd;

	if (st->wal_marked)
		return 0;
	if (stat(st->path, &sb) == 0)
		fingerprint(&sb, fp, sizeof(fp));
	fd = open(st->wal_mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd < 0 || write_all(fd, fp, strlen(fp)) < 0 || fsync(fd) < 0 ||
	    sync_dir_of(st->wal_mark) < 0) {
		snprintf(st->err, sizeof(st->err), "commit: cannot write %s: "
		    "%s", st->wal_mark, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	st->wal_marked = 1;
	return 0;
}

/* Copies the WAL into the database file; when all of it went, the WAL
 * holds nothing the database lacks and the marker goes (an unlink that
 * a crash undoes only leaves a marker beside a complete WAL). */
static void
wal_checkpoint(struct store *st, int mode)
{
	int nlog = -1, nckpt = -1;

	if (sqlite3_wal_checkpoint_v2(st->db, NULL, mode, &nlog, &nckpt) !=
	    SQLITE_OK || nlog != nckpt)
		return;
	st->wal_frames = 0;
	if (st->wal_marked && unlink(st->wal_mark) == 0)
		st->wal_marked = 0;
}

int
store_wal_lost(const char *path, char *err, size_t errlen)
{
	char *mark = path_with(path, STORE_WAL_MARK_SUFFIX);
	char *wal = path_with(path, "-wal");
	char was[96] = "", now[96] = "";
	struct stat sm, sw, sb;
	int lost = 0;
	FILE *fp;

	/* a WAL shorter than its header plus one frame holds no commit */
	if (stat(mark, &sm) == 0 && (stat(wal, &sw) < 0 || sw.st_size <=
	    32 + 24)) {
		if ((fp = fopen(mark, "r")) != NULL) {
			if (fgets(was, sizeof(was), fp) == NULL)
				was[0] = '\0';
			fclose(fp);
		}
		if (stat(path, &sb) == 0)
			fingerprint(&sb, now, sizeof(now));
		if (was[0] != '\0' && now[0] != '\0' && strcmp(was, now) != 0) {
			/* checkpointed by someone else: the marker is stale */
			(void)unlink(mark);
			(void)sync_dir_of(mark);
			goto out;
		}
		snprintf(err, errlen, "%s: the WAL (%s) held committed mail "
		    "that is not in the database, and it is %s: that mail "
		    "is lost", path, wal, stat(wal, &sw) < 0 ? "missing" :
		    "empty");
		lost = 1;
	}
out:
	free(mark);
	free(wal);
	return lost;
}

int
store_accept_loss(const char *path, char *err, size_t errlen)
{
	char *mark = path_with(path, STORE_WAL_MARK_SUFFIX);
	int rc = 0;

	if ((unlink(mark) < 0 && errno != ENOENT) || sync_dir_of(mark) < 0) {
		snprintf(err, errlen, "cannot remove %s: %s", mark,
		    strerror(errno));
		rc = -1;
	}
	free(mark);
	return rc;
}

/* --- checks ------------------------------------------------------------ */

/* Runs quick_check or integrity_check on db: 0 when it says "ok", else
 * -1 with its first findings (or the error that stopped it) in err. */
static int
run_check(sqlite3 *db, const char *path, int full, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	size_t used = 0;
	int rc, rows = 0, ok = 0;

	if (sqlite3_prepare_v2(db, full ? "PRAGMA integrity_check(20)" :
	    "PRAGMA quick_check(20)", -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	used = (size_t)snprintf(err, errlen, "%s: damaged (%s):", path,
	    full ? "integrity_check" : "quick_check");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);

		if (rows++ == 0 && v != NULL &&
		    strcmp((const char *)v, "ok") == 0)
			ok = 1;
		if (used < errlen && rows <= 3)
			used += (size_t)snprintf(err + used, errlen - used,
			    "%s %s", rows > 1 ? ";" : "",
			    v != NULL ? (const char *)v : "?");
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s: damaged (%s): %s", path,
		    full ? "integrity_check" : "quick_check",
		    sqlite3_errmsg(db));
		ok = 0;
	} else if (ok) {
		err[0] = '\0';
	} else if (rows > 3 && used < errlen) {
		snprintf(err + used, errlen - used, "; ...");
	}
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

int
store_check(struct store *st, const char *path, int full, char *err,
    size_t errlen)
{
	return run_check(st->db, path, full, err, errlen);
}

int
store_check_file(const char *path, int full, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc;

	if (access(path, F_OK) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db != NULL ?
		    sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	rc = run_check(db, path, full, err, errlen);
	sqlite3_close(db);
	return rc;
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

/* Version 1 -> 2: a message counts the delivery agents that died
 * delivering it, and says why ferry held it.  One transaction. */
static int
migrate_v1_v2(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	static const char sql[] =
	    "BEGIN IMMEDIATE;"
	    "ALTER TABLE message ADD COLUMN"
	    " agent_deaths INTEGER NOT NULL DEFAULT 0;"
	    "ALTER TABLE message ADD COLUMN hold_reason TEXT;"
	    "PRAGMA user_version = 2;"
	    "COMMIT;";

	if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "%s: migrating the schema to version 2: %s",
	    path, sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Version 2 -> 3: the delivery history tables, from the part of
 * schema.sql between its HISTORY DDL markers.  One transaction. */
static int
migrate_v2_v3(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	const char *from = strstr(store_schema_sql, "-- HISTORY DDL BEGIN");
	const char *to = strstr(store_schema_sql, "-- HISTORY DDL END");
	char *ddl;
	int ok;

	if (from == NULL || to == NULL || to < from) {
		snprintf(err, errlen, "%s: migrating the schema to version 3: "
		    "the history DDL is missing from the schema", path);
		return -1;
	}
	ddl = xstrndup(from, (size_t)(to - from));
	ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
	    SQLITE_OK &&
	    sqlite3_exec(db, ddl, NULL, NULL, NULL) == SQLITE_OK &&
	    sqlite3_exec(db, "PRAGMA user_version = 3", NULL, NULL, NULL) ==
	    SQLITE_OK &&
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	free(ddl);
	if (ok)
		return 0;
	snprintf(err, errlen, "%s: migrating the schema to version 3: %s",
	    path, sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Why opening failed, saying "damaged" when SQLite found the file is
 * not a sound database (the runner's refusal line names it so). */
static void
open_failed(struct store *st, const char *path, char *err, size_t errlen)
{
	int code = sqlite3_errcode(st->db) & 0xff;

	snprintf(err, errlen, "%s: %s%s", path, code == SQLITE_CORRUPT ||
	    code == SQLITE_NOTADB ? "damaged: " : "", sqlite3_errmsg(st->db));
}

/* Makes sure the database vacuums incrementally: a database made before
 * is converted by a VACUUM when it is small enough to do at start. */
static int
vacuum_mode(struct store *st, const char *path, char *err, size_t errlen)
{
	char mode[16], pages[32], size[32];
	long long bytes;

	if (query_text(st->db, "PRAGMA auto_vacuum", mode,
	    sizeof(mode)) == -1 || query_text(st->db, "PRAGMA page_count",
	    pages, sizeof(pages)) == -1 || query_text(st->db,
	    "PRAGMA page_size", size, sizeof(size)) == -1) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	if (strcmp(mode, "2") == 0) {
		st->incremental = 1;
		return 0;
	}
	bytes = atoll(pages) * atoll(size);
	if (bytes > STORE_CONVERT_MAX)
		return 0;   /* too big to convert at start: next time */
	if (wal_mark(st) == -1 || sqlite3_exec(st->db,
	    "PRAGMA auto_vacuum = INCREMENTAL; VACUUM", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	wal_checkpoint(st, SQLITE_CHECKPOINT_TRUNCATE);
	st->incremental = 1;
	return 0;
}

/* Indexes added to a schema version after it was released: they hold
 * nothing of their own (a ferry that knows nothing of them keeps them
 * up to date), so a database made before is given them here. */
static int
derived_indexes(struct store *st, const char *path, char *err,
    size_t errlen)
{
	char found[8];

	if (query_text(st->db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'index' AND name = 'message_state'", found,
	    sizeof(found)) == -1) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	if (strcmp(found, "0") != 0)
		return 0;
	if (wal_mark(st) == -1 || sqlite3_exec(st->db,
	    "CREATE INDEX IF NOT EXISTS message_state"
	    " ON message(state, received_at)", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	return 0;
}

/* The routes' shaping counts (hour and day quotas): a table of its own
 * that any schema version may hold, made when it is missing.  A ferry
 * that does not know it leaves it alone. */
static int
route_quota_table(struct store *st, const char *path, char *err,
    size_t errlen)
{
	char found[8];

	if (query_text(st->db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'route_quota'", found,
	    sizeof(found)) == -1) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	if (strcmp(found, "0") != 0)
		return 0;
	if (wal_mark(st) == -1 || sqlite3_exec(st->db,
	    "CREATE TABLE IF NOT EXISTS route_quota ("
	    " route TEXT NOT NULL, span INTEGER NOT NULL,"
	    " tokens REAL NOT NULL, stamp REAL NOT NULL,"
	    " PRIMARY KEY (route, span))", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	wal_checkpoint(st, SQLITE_CHECKPOINT_TRUNCATE);
	return 0;
}

/* The route_caps cache (schema.sql between its ROUTE CAPS DDL markers),
 * on a database of any version that has not got it yet. */
static int
route_caps_table(struct store *st, const char *path, char *err,
    size_t errlen)
{
	const char *from = strstr(store_schema_sql, "-- ROUTE CAPS DDL BEGIN");
	const char *to = strstr(store_schema_sql, "-- ROUTE CAPS DDL END");
	char found[8], *ddl;
	int ok;

	if (from == NULL || to == NULL || to < from) {
		snprintf(err, errlen, "%s: the route_caps DDL is missing from "
		    "the schema", path);
		return -1;
	}
	if (query_text(st->db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'route_caps'", found,
	    sizeof(found)) == -1) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	if (strcmp(found, "0") != 0)
		return 0;
	ddl = xstrndup(from, (size_t)(to - from));
	ok = wal_mark(st) == 0 &&
	    sqlite3_exec(st->db, ddl, NULL, NULL, NULL) == SQLITE_OK;
	free(ddl);
	if (!ok) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	return 0;
}

/* The queue's counts and the triggers that keep them (schema.sql's
 * QUEUE COUNTS part): made when missing, counting the rows there once,
 * in one transaction with the counting so no write falls between. */
static int
queue_counts_table(struct store *st, const char *path, char *err,
    size_t errlen)
{
	const char *from = strstr(store_schema_sql, "-- QUEUE COUNTS DDL BEGIN");
	const char *to = strstr(store_schema_sql, "-- QUEUE COUNTS DDL END");
	char found[8], *ddl;
	int ok;

	if (from == NULL || to == NULL || to < from) {
		snprintf(err, errlen, "%s: the queue_counts DDL is missing "
		    "from the schema", path);
		return -1;
	}
	if (query_text(st->db, "SELECT count(*) FROM sqlite_master"
	    " WHERE name LIKE 'queue_counts%'", found,
	    sizeof(found)) == -1) {
		open_failed(st, path, err, errlen);
		return -1;
	}
	if (strcmp(found, "7") == 0)       /* the table and 6 triggers */
		return 0;
	ddl = xstrndup(from, (size_t)(to - from));
	/* a part of the set (never made by ferry) is made whole again,
	 * its counts taken afresh */
	ok = wal_mark(st) == 0 &&
	    sqlite3_exec(st->db, "BEGIN IMMEDIATE;"
	    "DROP TABLE IF EXISTS queue_counts", NULL, NULL, NULL) ==
	    SQLITE_OK &&
	    sqlite3_exec(st->db, ddl, NULL, NULL, NULL) == SQLITE_OK &&
	    sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	free(ddl);
	if (!ok) {
		open_failed(st, path, err, errlen);
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

struct store *
store_open(const char *path, char *err, size_t errlen)
{
	static const char *const pragmas[] = {
		"PRAGMA synchronous = NORMAL",   /* commit() syncs */
		"PRAGMA foreign_keys = ON",
		"PRAGMA secure_delete = OFF",
		"PRAGMA temp_store = MEMORY",
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
	st->path = xstrdup(path);
	st->wal_mark = path_with(path, STORE_WAL_MARK_SUFFIX);
	st->wal_marked = access(st->wal_mark, F_OK) == 0;
	{
		/* SQLite would take an empty file for a new database: a
		 * queue cut to nothing would be forgotten in silence */
		struct stat sb;

		if (stat(path, &sb) == 0 && sb.st_size == 0) {
			snprintf(err, errlen, "%s: damaged: the file is empty "
			    "(truncated?); remove it only if no mail was ever "
			    "queued", path);
			goto fail;
		}
	}
	/* wal_gather.h: a commit's frames in one write */
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, wal_gather_vfs());
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, st->db != NULL ?
		    sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	sqlite3_wal_hook(st->db, wal_hook, st);

	if (query_text(st->db, "PRAGMA journal_mode = WAL", mode,
	    sizeof(mode)) == -1) {
		open_failed(st, path, err, errlen);
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
			open_failed(st, path, err, errlen);
			goto fail;
		}
	}

	if (user_version(st->db, &v) == -1) {
		open_failed(st, path, err, errlen);
		goto fail;
	}
	if (v == 0) {
		/* before any table: a new database vacuums incrementally */
		if (sqlite3_exec(st->db, "PRAGMA auto_vacuum = INCREMENTAL",
		    NULL, NULL, NULL) != SQLITE_OK) {
			open_failed(st, path, err, errlen);
			goto fail;
		}
		if (create_schema(st->db, path, err, errlen) == -1)
			goto fail;
		if (user_version(st->db, &v) == -1) {
			open_failed(st, path, err, errlen);
			goto fail;
		}
	}
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: database schema version %" PRId64
		    " is newer than this ferry (%d)", path, v,
		    STORE_SCHEMA_VERSION);
		goto fail;
	}
	if (v == 1 && migrate_v1_v2(st->db, path, err, errlen) == -1)
		goto fail;
	if (v == 1)
		v = 2;
	if (v == 2 && migrate_v2_v3(st->db, path, err, errlen) == -1)
		goto fail;
	if (v == 2)
		v = 3;
	if (v != STORE_SCHEMA_VERSION) {
		/* Migrations from older versions go here. */
		snprintf(err, errlen, "%s: database schema version %" PRId64
		    " is unknown to this ferry (%d)", path, v,
		    STORE_SCHEMA_VERSION);
		goto fail;
	}

	if (vacuum_mode(st, path, err, errlen) == -1 ||
	    derived_indexes(st, path, err, errlen) == -1 ||
	    route_quota_table(st, path, err, errlen) == -1 ||
	    route_caps_table(st, path, err, errlen) == -1 ||
	    queue_counts_table(st, path, err, errlen) == -1)
		goto fail;
	for (i = 0; i < S_NSTMT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) !=
		    SQLITE_OK) {
			open_failed(st, path, err, errlen);
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
	for (i = 0; i < D_NSTMT; i++)
		sqlite3_finalize(st->dstmt[i]);
	/* An open transaction is rolled back: it was never promised.  The
	 * WAL is copied in and emptied, and the marker goes with it. */
	if (st->db != NULL) {
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		wal_checkpoint(st, SQLITE_CHECKPOINT_TRUNCATE);
	}
	sqlite3_close(st->db);
	free(st->wal_mark);
	free(st->path);
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
	if (!sqlite3_get_autocommit(st->db)) {
		if (!st->reading)
			return 0;
		/* a write never upgrades a read: it starts afresh */
		if (store_end_read(st) < 0)
			return -1;
	}
	st->reading = 0;
	st->changes_at_begin = sqlite3_total_changes64(st->db);
	st->changes_streaming = 0;
	return exec_stmt(st, S_BEGIN, "begin");
}

int
store_begin_read(struct store *st)
{
	st->err[0] = '\0';
	if (!sqlite3_get_autocommit(st->db))
		return 0;
	st->changes_at_begin = sqlite3_total_changes64(st->db);
	st->changes_streaming = 0;
	if (exec_stmt(st, S_BEGIN_READ, "begin") < 0)
		return -1;
	st->reading = 1;
	return 0;
}

int
store_end_read(struct store *st)
{
	if (!st->reading)
		return 0;
	if (!sqlite3_get_autocommit(st->db) &&
	    exec_stmt(st, S_COMMIT, "end of reads") < 0)
		return -1;   /* still reading: the next store_begin tries again */
	st->reading = 0;
	return 0;
}

/* The WAL's own file, synced: what makes the commits in it durable. */
static int
sync_wal(struct store *st)
{
	sqlite3_file *wal = NULL;

	if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
	    &wal) != SQLITE_OK || wal == NULL || wal->pMethods == NULL) {
		set_err(st, "commit", "the WAL file cannot be synced");
		return -1;
	}
	if (wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) != SQLITE_OK) {
		set_err(st, "commit", "syncing the WAL failed");
		return -1;
	}
	return 0;
}

static int
commit(struct store *st, int durable)
{
	st->err[0] = '\0';
	st->reading = 0;
	if (sqlite3_get_autocommit(st->db))
		return 0;
	if (wal_mark(st) == 0 && exec_stmt(st, S_COMMIT, "commit") == 0) {
		/* synchronous = NORMAL: the COMMIT wrote its frames without
		 * waiting for the disk; a durable commit waits here, for
		 * them and every lazy commit's before them */
		if (durable && sync_wal(st) < 0)
			return -1;
		if (st->wal_frames >= STORE_CHECKPOINT_FRAMES)
			wal_checkpoint(st, SQLITE_CHECKPOINT_PASSIVE);
		return 0;
	}
	/* Not durable, so not kept: nothing in it may be acknowledged. */
	store_rollback(st);
	return -1;
}

int
store_commit(struct store *st)
{
	return commit(st, 1);
}

int
store_commit_lazy(struct store *st)
{
	return commit(st, 0);
}

int
store_vacuum_step(struct store *st, int max_pages)
{
	char sql[64], nfree[32];
	long long before, after;

	st->err[0] = '\0';
	if (!st->incremental || !sqlite3_get_autocommit(st->db))
		return 0;
	if (query_text(st->db, "PRAGMA freelist_count", nfree,
	    sizeof(nfree)) == -1) {
		db_err(st, "vacuum");
		return -1;
	}
	before = atoll(nfree);
	if (before == 0) {
		/* done: a checkpoint gives the freed pages back to the file
		 * system */
		if (st->vacuumed) {
			st->vacuumed = 0;
			wal_checkpoint(st, SQLITE_CHECKPOINT_PASSIVE);
		}
		return 0;
	}
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)",
	    max_pages > 0 ? max_pages : 1);
	if (store_begin(st) < 0)
		return -1;
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_err(st, "vacuum");
		store_rollback(st);
		return -1;
	}
	if (store_commit(st) < 0)
		return -1;
	st->vacuumed = 1;
	if (query_text(st->db, "PRAGMA freelist_count", nfree,
	    sizeof(nfree)) == -1)
		return 0;
	after = atoll(nfree);
	return after > 0 ? 1 : (after < before ? 1 : 0);
}

void
store_rollback(struct store *st)
{
	/* The error that led here stays readable through store_errmsg. */
	if (st->history_staged == 0)
		st->history_staged = 1;   /* unknown now: the next move looks */
	st->reading = 0;
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

void
store_release_memory(struct store *st)
{
	(void)sqlite3_db_release_memory(st->db);
	wal_gather_release();
}

int
store_has_writes(const struct store *st)
{
	return !sqlite3_get_autocommit(st->db) &&
	    sqlite3_total_changes64(st->db) - st->changes_at_begin !=
	    st->changes_streaming;
}

int
store_probe(struct store *st)
{
	char sql[64];
	int64_t v;

	st->err[0] = '\0';
	if (!sqlite3_get_autocommit(st->db)) {
		set_err(st, "probe", "a transaction is open");
		return -1;
	}
	if (user_version(st->db, &v) == -1) {
		db_err(st, "probe");
		return -1;
	}
	if (exec_stmt(st, S_BEGIN, "probe") == -1)
		return -1;
	/* Setting the cookie writes page 1 even when the value is the
	 * same, so the COMMIT appends to the WAL and fsyncs it, as a real
	 * commit does. */
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v);
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_err(st, "probe");
		store_rollback(st);
		return -1;
	}
	return store_commit(st);
}

int
store_free_space(struct store *st, uint64_t *avail, uint64_t *total)
{
	const char *path = sqlite3_db_filename(st->db, "main");
	char dir[4096];
	struct statvfs vfs;
	char *slash;

	if (path == NULL || path[0] == '\0') {
		set_err(st, "free space", "the database has no file");
		return -1;
	}
	ferry_strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		ferry_strlcpy(dir, ".", sizeof(dir));
	if (statvfs(dir, &vfs) == -1) {
		set_err(st, "free space", strerror(errno));
		return -1;
	}
	/* what the queue user may still write, not root's reserve */
	*avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	*total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	return 0;
}

/* --- intake -------------------------------------------------------------- */

/* Queue ids are drawn from getrandom 64 at a time: one system call per
 * message was 5 % of the runner's.  The bytes are the kernel's all the
 * same; each is wiped once used, and the runner never forks, so no
 * other process holds the ones to come. */
#define QID_POOL (64 * (QID_LEN / 2))

static void
new_qid(char *qid)
{
	static const char hex[] = "0123456789ABCDEF";
	static unsigned char pool[QID_POOL];
	static size_t pool_left;
	unsigned char r[QID_LEN / 2];
	size_t i;

	if (pool_left < sizeof(r)) {
		random_bytes(pool, sizeof(pool));
		pool_left = sizeof(pool);
	}
	pool_left -= sizeof(r);
	memcpy(r, pool + pool_left, sizeof(r));
	explicit_bzero(pool + pool_left, sizeof(r));
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
	int64_t id, before = sqlite3_total_changes64(st->db);
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
	st->changes_streaming += sqlite3_total_changes64(st->db) - before;
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
	if (exec_stmt(st, S_BODY_INSERT, "append body") == -1)
		return -1;
	st->changes_streaming++;
	return 0;
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

void
store_history_keep(struct store *st, int keep)
{
	st->history_keep = keep != 0;
	st->history_staged = 1;   /* rows a previous run left: the next move */
}

/* Copies a complete message to history (its history_new_* rows, which
 * store_history_move files later) and removes it, all or nothing under a
 * savepoint (an incoming one leaves no history). */
static int
history_then_delete(struct store *st, int64_t msgid)
{
	double now = now_wall();
	int64_t hid, last, nrcpt;

	if (op_begin(st) == -1)
		return -1;
	sqlite3_bind_int64(st->stmt[S_HIST_MSG], 1, msgid);
	sqlite3_bind_double(st->stmt[S_HIST_MSG], 2, now);
	if (exec_stmt(st, S_HIST_MSG, "history of message") == -1)
		return op_end(st, 0);
	if (sqlite3_changes(st->db) == 1) {
		hid = sqlite3_last_insert_rowid(st->db);
		sqlite3_bind_int64(st->stmt[S_HIST_RCPT], 1, msgid);
		sqlite3_bind_int64(st->stmt[S_HIST_RCPT], 2, hid);
		sqlite3_bind_double(st->stmt[S_HIST_RCPT], 3, now);
		if (exec_stmt(st, S_HIST_RCPT, "history of recipients") == -1)
			return op_end(st, 0);
		/* the recipient rows just written: ids last - n + 1 .. last
		 * (each new row takes the largest id + 1) */
		last = sqlite3_last_insert_rowid(st->db);
		nrcpt = sqlite3_changes(st->db);
		sqlite3_bind_int64(st->stmt[S_HIST_ATTEMPT], 2,
		    last - nrcpt + 1);
		sqlite3_bind_int64(st->stmt[S_HIST_ATTEMPT], 3, last);
		if (exec_stmt(st, S_HIST_ATTEMPT, "history of attempts") == -1)
			return op_end(st, 0);
		st->history_staged++;
	}
	sqlite3_bind_int64(st->stmt[S_MSG_DELETE], 1, msgid);
	if (exec_stmt(st, S_MSG_DELETE, "delete message") == -1)
		return op_end(st, 0);
	if (sqlite3_changes(st->db) != 1) {
		set_err(st, "delete message", "no such message");
		return op_end(st, 0);
	}
	return op_end(st, 1);
}

int
store_message_delete(struct store *st, int64_t msgid)
{
	char msg[64];

	if (need_tx(st, "delete message") == -1)
		return -1;
	if (st->history_keep)
		return history_then_delete(st, msgid);
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

/* --- delivery queries (the scheduler) --- */

static const char *const dstmt_sql[D_NSTMT] = {
	/* The due queries walk recipient_due in time order and look each
	 * message up by its row id: CROSS JOIN keeps that order.  Left to
	 * itself the planner starts from message_state (state = 'active'
	 * is an equality) and reads every queued message and recipient,
	 * then sorts: 60-85 ms a turn with 100,000 deferred, where this
	 * reads only the rows it returns. */
	[D_DUE] =
	    "SELECT r.id, r.message_id, r.address, r.dsn_notify, r.dsn_orcpt,"
	    " r.attempts, m.qid, m.sender, m.size, m.body_type, m.smtputf8,"
	    " m.dsn_ret, m.dsn_envid, m.received_at, r.last_reply, r.last_dsn,"
	    " m.agent_deaths, r.next_attempt"
	    " FROM recipient r CROSS JOIN message m ON m.id = r.message_id"
	    " WHERE r.state = 'pending' AND r.next_attempt <= ?1"
	    " AND m.state = 'active'"
	    " ORDER BY r.next_attempt LIMIT ?2",
	[D_NEXT_DUE] =
	    "SELECT r.next_attempt FROM recipient r"
	    " CROSS JOIN message m ON m.id = r.message_id"
	    " WHERE r.state = 'pending' AND r.next_attempt IS NOT NULL"
	    " AND m.state = 'active' ORDER BY r.next_attempt LIMIT 1",
	[D_CHUNK] =
	    "SELECT chunk FROM body WHERE message_id = ?1 AND seq = ?2",
	[D_RCPT_UPDATE] =
	    "UPDATE recipient SET state = ?2, attempts = attempts + 1,"
	    " last_attempt = ?3, next_attempt = ?4, last_reply = ?5,"
	    " last_dsn = ?6 WHERE id = ?1",
	[D_ATTEMPT] =
	    "INSERT INTO attempt (recipient_id, at, relay, tls, status, dsn,"
	    " reply) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[D_PENDING] =
	    "SELECT sum(state = 'pending'), sum(state = 'delivered'),"
	    " count(*) FROM recipient WHERE message_id = ?1",
	[D_FAILED_INFO] =
	    "SELECT m.qid, m.sender, m.received_at, m.dsn_ret, m.dsn_envid,"
	    " m.dsn_of, m.size, m.warned FROM message m WHERE m.id = ?1",
	[D_RCPT_DUE_AT] =
	    "UPDATE recipient SET next_attempt = ?2"
	    " WHERE id = ?1 AND state = 'pending' AND next_attempt > ?2",
	/* A bulk deferral: the due recipients the caller's take() accepts
	 * (called in the walk of recipient_due, and again for each it
	 * accepts to give its next attempt), at most ?4, one attempt more
	 * each.  The rows come back for their attempt rows and log lines. */
	[D_BULK_DEFER] =
	    "UPDATE recipient SET attempts = attempts + 1, last_attempt = ?1,"
	    " next_attempt = b.next, last_reply = ?2, last_dsn = ?3"
	    " FROM (SELECT r.id AS rid, ferry_bulk_take(r.id, m.id, m.sender,"
	    "  r.address, m.received_at, r.dsn_notify, r.attempts, m.warned,"
	    "  r.next_attempt) AS next"
	    "  FROM recipient r CROSS JOIN message m ON m.id = r.message_id"
	    "  WHERE r.state = 'pending' AND r.next_attempt <= ?1"
	    "  AND m.state = 'active'"
	    "  AND ferry_bulk_take(r.id, m.id, m.sender, r.address,"
	    "  m.received_at, r.dsn_notify, r.attempts, m.warned,"
	    "  r.next_attempt) > 0"
	    "  ORDER BY r.next_attempt LIMIT ?4) AS b"
	    " WHERE recipient.id = b.rid"
	    " RETURNING id, message_id, address,"
	    " (SELECT qid FROM message WHERE id = recipient.message_id),"
	    " (SELECT received_at FROM message"
	    "  WHERE id = recipient.message_id)",
};

static sqlite3_stmt *
dstmt(struct store *st, enum dstmt_id id)
{
	if (st->dstmt[id] == NULL &&
	    sqlite3_prepare_v3(st->db, dstmt_sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, &st->dstmt[id], NULL) != SQLITE_OK) {
		db_err(st, "prepare");
		return NULL;
	}
	return st->dstmt[id];
}

static char *
col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return xstrdup(t ? (const char *)t : "");
}

int
store_due(struct store *st, double now, size_t limit, struct store_due **out,
    size_t *nout)
{
	sqlite3_stmt *s = dstmt(st, D_DUE);
	struct store_due *v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	*nout = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_double(s, 1, now);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_due *d;
		const unsigned char *bt, *ret;

		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		d = &v[n++];
		memset(d, 0, sizeof(*d));
		d->rcpt_id = sqlite3_column_int64(s, 0);
		d->msgid = sqlite3_column_int64(s, 1);
		d->address = col_dup(s, 2);
		d->notify = (uint32_t)sqlite3_column_int(s, 3);
		d->orcpt = col_dup(s, 4);
		d->attempts = sqlite3_column_int(s, 5);
		ferry_strlcpy(d->qid, (const char *)sqlite3_column_text(s, 6),
		    sizeof(d->qid));
		d->sender = col_dup(s, 7);
		d->size = sqlite3_column_int64(s, 8);
		bt = sqlite3_column_text(s, 9);
		d->body_type = bt == NULL ? BODY_UNSPEC :
		    strcmp((const char *)bt, "8BITMIME") == 0 ? BODY_8BITMIME :
		    BODY_7BIT;
		d->smtputf8 = (uint32_t)sqlite3_column_int(s, 10);
		ret = sqlite3_column_text(s, 11);
		d->dsn_ret = ret == NULL ? RET_UNSPEC :
		    strcmp((const char *)ret, "HDRS") == 0 ? RET_HDRS :
		    RET_FULL;
		d->envid = col_dup(s, 12);
		d->received_at = sqlite3_column_double(s, 13);
		d->last_reply = col_dup(s, 14);
		d->last_dsn = col_dup(s, 15);
		d->agent_deaths = sqlite3_column_int(s, 16);
		d->due_at = sqlite3_column_double(s, 17);
	}
	if (rc != SQLITE_DONE) {
		db_err(st, "due recipients");
		done(s);
		store_due_free(v, n);
		return -1;
	}
	done(s);
	*out = v;
	*nout = n;
	return 0;
}

void
store_due_free(struct store_due *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].address);
		free(v[i].orcpt);
		free(v[i].sender);
		free(v[i].envid);
		free(v[i].last_reply);
		free(v[i].last_dsn);
	}
	free(v);
}

int
store_next_due(struct store *st, double *when)
{
	sqlite3_stmt *s = dstmt(st, D_NEXT_DUE);
	int rc;

	*when = 0;
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*when = sqlite3_column_double(s, 0);
	done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
store_body_chunk_view(struct store *st, int64_t msgid, uint32_t seq,
    const uint8_t **data, size_t *len)
{
	sqlite3_stmt *s = dstmt(st, D_CHUNK);
	int rc;

	*data = NULL;
	*len = 0;
	if (s == NULL)
		return -1;
	done(s);                        /* the chunk lent last */
	sqlite3_bind_int64(s, 1, msgid);
	sqlite3_bind_int64(s, 2, seq);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		/* the blob first, then its size (SQLite's advice) */
		const void *p = sqlite3_column_blob(s, 0);
		int n = sqlite3_column_bytes(s, 0);

		*data = p != NULL ? p : (const uint8_t *)"";
		*len = (size_t)n;
		return 1;                /* s stays stepped: it holds *data */
	}
	done(s);
	if (rc == SQLITE_DONE)
		return 0;
	db_err(st, "read body");
	return -1;
}

void
store_body_view_end(struct store *st)
{
	if (st->dstmt[D_CHUNK] != NULL)
		done(st->dstmt[D_CHUNK]);
}

int
store_body_chunk(struct store *st, int64_t msgid, uint32_t seq,
    uint8_t **data, size_t *len)
{
	const uint8_t *p;
	int rc = store_body_chunk_view(st, msgid, seq, &p, len);

	*data = NULL;
	if (rc == 1) {
		*data = xmalloc(*len + 1);
		if (*len > 0)
			memcpy(*data, p, *len);
	}
	store_body_view_end(st);
	return rc;
}

int
store_rcpt_result(struct store *st, int64_t rcpt_id, enum rcpt_state state,
    double next_attempt, const char *relay, const char *tls,
    enum attempt_status status, const char *dsn, const char *reply)
{
	sqlite3_stmt *u = dstmt(st, D_RCPT_UPDATE);
	sqlite3_stmt *a = dstmt(st, D_ATTEMPT);
	double now = now_wall();
	int rc;

	if (u == NULL || a == NULL || need_tx(st, "record result") == -1)
		return -1;
	sqlite3_bind_int64(u, 1, rcpt_id);
	sqlite3_bind_text(u, 2, rcpt_state_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_double(u, 3, now);
	if (next_attempt > 0)
		sqlite3_bind_double(u, 4, next_attempt);
	else
		sqlite3_bind_null(u, 4);
	sqlite3_bind_text(u, 5, reply, -1, SQLITE_STATIC);
	sqlite3_bind_text(u, 6, dsn, -1, SQLITE_STATIC);
	rc = sqlite3_step(u);
	done(u);
	if (rc != SQLITE_DONE) {
		db_err(st, "record result");
		return -1;
	}
	sqlite3_bind_int64(a, 1, rcpt_id);
	sqlite3_bind_double(a, 2, now);
	sqlite3_bind_text(a, 3, relay && *relay ? relay : "none", -1,
	    SQLITE_STATIC);
	bind_opt_text(a, 4, tls);
	sqlite3_bind_text(a, 5, attempt_status_name(status), -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(a, 6, dsn, -1, SQLITE_STATIC);
	sqlite3_bind_text(a, 7, reply, -1, SQLITE_STATIC);
	rc = sqlite3_step(a);
	done(a);
	if (rc != SQLITE_DONE) {
		db_err(st, "record attempt");
		return -1;
	}
	return 0;
}

int
store_rcpt_due_at(struct store *st, const int64_t *ids, size_t n, double when)
{
	sqlite3_stmt *u = dstmt(st, D_RCPT_DUE_AT);
	size_t i;

	if (u == NULL || need_tx(st, "make due") == -1)
		return -1;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(u, 1, ids[i]);
		sqlite3_bind_double(u, 2, when);
		if (sqlite3_step(u) != SQLITE_DONE) {
			done(u);
			db_err(st, "make due");
			return -1;
		}
		done(u);
	}
	return 0;
}

/* ferry_bulk_take(rcpt_id, msgid, sender, address, received_at,
 * notify, attempts, warned, next_attempt): the caller's take() for one
 * due row, as its next attempt, or NULL when it is left alone. */
static void
bulk_take_sql(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct store *st = sqlite3_user_data(ctx);
	struct store_bulk_row row;
	const unsigned char *sender, *address;
	double next;

	if (st->bulk == NULL || argc != 9) {
		sqlite3_result_null(ctx);
		return;
	}
	memset(&row, 0, sizeof(row));
	row.rcpt_id = sqlite3_value_int64(argv[0]);
	row.msgid = sqlite3_value_int64(argv[1]);
	sender = sqlite3_value_text(argv[2]);
	address = sqlite3_value_text(argv[3]);
	row.sender = sender != NULL ? (const char *)sender : "";
	row.address = address != NULL ? (const char *)address : "";
	row.received_at = sqlite3_value_double(argv[4]);
	row.notify = (uint32_t)sqlite3_value_int(argv[5]);
	row.attempts = sqlite3_value_int(argv[6]);
	row.warned = sqlite3_value_int(argv[7]);
	row.due_at = sqlite3_value_double(argv[8]);
	next = st->bulk->take(st->bulk->arg, &row);
	if (next > 0)
		sqlite3_result_double(ctx, next);
	else
		sqlite3_result_null(ctx);
}

static void
bulk_rows_free(struct store_bulk_row *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free((char *)v[i].address);
	free(v);
}

int
store_rcpt_defer_bulk(struct store *st, const struct store_bulk *b)
{
	sqlite3_stmt *u, *a;
	struct store_bulk_row *v = NULL;
	size_t n = 0, cap = 0, i;
	int rc, failed = 0;

	if (need_tx(st, "defer in bulk") == -1)
		return -1;
	if (!st->bulk_fn) {
		/* DIRECTONLY: no schema object (trigger, view) may call it */
		if (sqlite3_create_function_v2(st->db, "ferry_bulk_take", 9,
		    SQLITE_UTF8 | SQLITE_DIRECTONLY, st, bulk_take_sql, NULL,
		    NULL, NULL) != SQLITE_OK) {
			db_err(st, "defer in bulk");
			return -1;
		}
		st->bulk_fn = 1;
	}
	if ((u = dstmt(st, D_BULK_DEFER)) == NULL ||
	    (a = dstmt(st, D_ATTEMPT)) == NULL || op_begin(st) == -1)
		return -1;
	st->bulk = b;
	sqlite3_bind_double(u, 1, b->now);
	sqlite3_bind_text(u, 2, b->reply, -1, SQLITE_STATIC);
	sqlite3_bind_text(u, 3, b->dsn, -1, SQLITE_STATIC);
	sqlite3_bind_int64(u, 4, (sqlite3_int64)b->limit);
	/* The update is whole at the first step; the rows it returns are
	 * read from memory, so the attempt rows go in between. */
	while ((rc = sqlite3_step(u)) == SQLITE_ROW) {
		struct store_bulk_row *r;
		const unsigned char *qid = sqlite3_column_text(u, 3);

		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		r = &v[n++];
		memset(r, 0, sizeof(*r));
		r->rcpt_id = sqlite3_column_int64(u, 0);
		r->msgid = sqlite3_column_int64(u, 1);
		r->address = col_dup(u, 2);
		r->sender = "";
		ferry_strlcpy(r->qid, qid != NULL ? (const char *)qid : "",
		    sizeof(r->qid));
		r->received_at = sqlite3_column_double(u, 4);
		sqlite3_bind_int64(a, 1, r->rcpt_id);
		sqlite3_bind_double(a, 2, b->now);
		sqlite3_bind_text(a, 3, "none", -1, SQLITE_STATIC);
		sqlite3_bind_null(a, 4);
		sqlite3_bind_text(a, 5, attempt_status_name(STATUS_DEFERRED),
		    -1, SQLITE_STATIC);
		sqlite3_bind_text(a, 6, b->dsn, -1, SQLITE_STATIC);
		sqlite3_bind_text(a, 7, b->reply, -1, SQLITE_STATIC);
		if (sqlite3_step(a) != SQLITE_DONE) {
			db_err(st, "record attempt");
			done(a);
			failed = 1;
			break;
		}
		done(a);
	}
	if (!failed && rc != SQLITE_DONE) {
		db_err(st, "defer in bulk");
		failed = 1;
	}
	done(u);
	st->bulk = NULL;
	if (op_end(st, !failed) == -1) {
		bulk_rows_free(v, n);
		return -1;
	}
	/* told only once the rows are in the transaction */
	for (i = 0; i < n && b->deferred != NULL; i++)
		b->deferred(b->arg, &v[i]);
	bulk_rows_free(v, n);
	return (int)n;
}

int
store_message_progress(struct store *st, int64_t msgid, int64_t *pending,
    int64_t *delivered, int64_t *total)
{
	sqlite3_stmt *s = dstmt(st, D_PENDING);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, msgid);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		db_err(st, "message progress");
		done(s);
		return -1;
	}
	*pending = sqlite3_column_int64(s, 0);
	*delivered = sqlite3_column_int64(s, 1);
	*total = sqlite3_column_int64(s, 2);
	done(s);
	return 0;
}

int
store_message_info(struct store *st, int64_t msgid, struct store_msginfo *mi)
{
	sqlite3_stmt *s = dstmt(st, D_FAILED_INFO);
	const unsigned char *ret;
	int rc;

	memset(mi, 0, sizeof(*mi));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, msgid);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			set_err(st, "message info", "no such message");
		else
			db_err(st, "message info");
		done(s);
		return -1;
	}
	ferry_strlcpy(mi->qid, (const char *)sqlite3_column_text(s, 0),
	    sizeof(mi->qid));
	mi->sender = col_dup(s, 1);
	mi->received_at = sqlite3_column_double(s, 2);
	ret = sqlite3_column_text(s, 3);
	mi->dsn_ret = ret == NULL ? RET_UNSPEC :
	    strcmp((const char *)ret, "HDRS") == 0 ? RET_HDRS : RET_FULL;
	mi->envid = col_dup(s, 4);
	mi->is_dsn = sqlite3_column_type(s, 5) != SQLITE_NULL;
	mi->size = sqlite3_column_int64(s, 6);
	mi->warned = sqlite3_column_int(s, 7);
	done(s);
	return 0;
}

void
store_msginfo_free(struct store_msginfo *mi)
{
	free(mi->sender);
	free(mi->envid);
	memset(mi, 0, sizeof(*mi));
}

/* One-off UPDATE of a message row: ?1 is the message id, ?2 the text
 * (when given).  Inside the open transaction. */
static int
update_message(struct store *st, const char *what, const char *sql,
    int64_t msgid, const char *text)
{
	sqlite3_stmt *s;
	int rc;

	if (need_tx(st, what) == -1)
		return -1;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_err(st, what);
		return -1;
	}
	sqlite3_bind_int64(s, 1, msgid);
	if (text != NULL)
		sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		db_err(st, what);
		return -1;
	}
	return 0;
}

int
store_agent_died(struct store *st, int64_t msgid)
{
	sqlite3_stmt *s;
	int deaths;

	if (update_message(st, "count an agent death", "UPDATE message"
	    " SET agent_deaths = agent_deaths + 1 WHERE id = ?1", msgid,
	    NULL) == -1)
		return -1;
	if (sqlite3_prepare_v2(st->db, "SELECT agent_deaths FROM message"
	    " WHERE id = ?1", -1, &s, NULL) != SQLITE_OK) {
		db_err(st, "read agent deaths");
		return -1;
	}
	sqlite3_bind_int64(s, 1, msgid);
	deaths = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (deaths < 0)
		db_err(st, "read agent deaths");
	return deaths;
}

int
store_agent_survived(struct store *st, int64_t msgid)
{
	return update_message(st, "reset agent deaths", "UPDATE message"
	    " SET agent_deaths = 0 WHERE id = ?1 AND agent_deaths <> 0",
	    msgid, NULL);
}

int
store_message_hold(struct store *st, int64_t msgid, const char *reason)
{
	return update_message(st, "hold message", "UPDATE message"
	    " SET state = 'hold', hold_reason = ?2"
	    " WHERE id = ?1 AND state = 'active'", msgid, reason);
}

int
store_mark_warned(struct store *st, int64_t msgid)
{
	return update_message(st, "mark warned",
	    "UPDATE message SET warned = 1 WHERE id = ?1", msgid, NULL);
}

int
store_mark_dsn(struct store *st, int64_t msgid, const char *of_qid)
{
	return update_message(st, "mark dsn",
	    "UPDATE message SET dsn_of = ?2 WHERE id = ?1", msgid, of_qid);
}

/* --- admin queries (ferryctl) --- */

/*
 * What ferryctl asks of the queue.  Admin commands are rare and off the
 * delivery path, so their statements are prepared per call and finalized
 * before it returns (struct store stays as the hot path wants it); they
 * bind every value like the others.  Writes run in a transaction of their
 * own when none is open, else under a savepoint in the runner's
 * group-commit transaction, which the runner then commits.
 */

static sqlite3_stmt *
adm_prep(struct store *st, const char *sql)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_err(st, "prepare admin query");
		return NULL;
	}
	return s;
}

/* Column i as a malloc'd string, NULL for SQL NULL. */
static char *
adm_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	if (sqlite3_column_type(s, i) == SQLITE_NULL || t == NULL)
		return NULL;
	return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(s, i));
}

static double
adm_double(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return -1;
	return sqlite3_column_double(s, i);
}

static int64_t
adm_int(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return -1;
	return sqlite3_column_int64(s, i);
}

/* Opens an admin write: a transaction of its own when none is open (*own
 * set), else a savepoint inside the runner's. */
static int
adm_write_begin(struct store *st, int *own)
{
	st->err[0] = '\0';
	*own = sqlite3_get_autocommit(st->db);
	if (*own)
		return store_begin(st);
	return op_begin(st);
}

/* Closes it: commits (durable when own) if ok, else undoes it. */
static int
adm_write_end(struct store *st, int own, int ok)
{
	if (own) {
		if (ok)
			return store_commit(st);   /* rolls back itself */
		store_rollback(st);
		return -1;
	}
	if (ok && op_end(st, 1) == 0)
		return 0;
	return op_end(st, 0);
}

int
store_admin_state(struct store *st, const char *qid, char *state)
{
	sqlite3_stmt *s;
	const unsigned char *t;
	int rc, ret;

	st->err[0] = '\0';
	s = adm_prep(st, "SELECT state FROM message WHERE qid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		ferry_strlcpy(state, t != NULL ? (const char *)t : "", 16);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		state[0] = '\0';
		ret = STORE_NOT_FOUND;
	} else {
		db_err(st, "message state");
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

/* Why an update of qid changed nothing: not found (or still incoming),
 * or in another state. */
static int
adm_why_unchanged(struct store *st, const char *qid)
{
	char state[16];
	int rc = store_admin_state(st, qid, state);

	if (rc != 0)
		return rc;
	if (strcmp(state, "incoming") == 0)
		return STORE_NOT_FOUND;
	return STORE_WRONG_STATE;
}

/* Runs one statement binding qid (?1) and, when now >= 0, now (?2);
 * *changes is the number of rows it changed.  -1 on error. */
static int
adm_exec(struct store *st, const char *sql, const char *qid, double now,
    int *changes, const char *what)
{
	sqlite3_stmt *s = adm_prep(st, sql);
	int rc;

	if (s == NULL)
		return -1;
	if (qid != NULL)
		sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	if (now >= 0)
		sqlite3_bind_double(s, 2, now);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		db_err(st, what);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	if (changes != NULL)
		*changes = sqlite3_changes(st->db);
	return 0;
}

/* A one-statement state change of one message, in its own transaction or
 * the runner's. */
static int
adm_change(struct store *st, const char *sql, const char *qid,
    const char *what)
{
	int own, changes, rc;

	if (adm_write_begin(st, &own) == -1)
		return -1;
	if (adm_exec(st, sql, qid, -1, &changes, what) == -1) {
		adm_write_end(st, own, 0);
		return -1;
	}
	if (changes == 0) {
		rc = adm_why_unchanged(st, qid);
		adm_write_end(st, own, 0);
		if (rc == -1)
			return -1;
		st->err[0] = '\0';
		return rc;
	}
	return adm_write_end(st, own, 1);
}

int
store_admin_hold(struct store *st, const char *qid)
{
	return adm_change(st, "UPDATE message SET state = 'hold'"
	    " WHERE qid = ?1 AND state = 'active'", qid, "hold message");
}

int
store_admin_delete(struct store *st, const char *qid)
{
	sqlite3_stmt *s;
	int64_t msgid = -1;
	int own, rc;

	/* One statement: foreign keys cascade to recipients, their
	 * attempts and the body. */
	if (!st->history_keep)
		return adm_change(st, "DELETE FROM message"
		    " WHERE qid = ?1 AND state IN ('active', 'hold')", qid,
		    "delete message");
	/* Kept in the history like a message that left on its own: its
	 * pending recipients as "deleted". */
	if (adm_write_begin(st, &own) == -1)
		return -1;
	if ((s = adm_prep(st, "SELECT id FROM message"
	    " WHERE qid = ?1 AND state IN ('active', 'hold')")) == NULL) {
		adm_write_end(st, own, 0);
		return -1;
	}
	sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		msgid = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		db_err(st, "delete message");
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? adm_why_unchanged(st, qid) : -1;
		adm_write_end(st, own, 0);
		if (rc != -1)
			st->err[0] = '\0';
		return rc;
	}
	if (history_then_delete(st, msgid) == -1) {
		adm_write_end(st, own, 0);
		return -1;
	}
	return adm_write_end(st, own, 1);
}

int
store_admin_release(struct store *st, const char *qid)
{
	int own, changes, rc;

	if (adm_write_begin(st, &own) == -1)
		return -1;
	if (adm_exec(st, "UPDATE message SET state = 'active',"
	    " hold_reason = NULL, agent_deaths = 0"
	    " WHERE qid = ?1 AND state = 'hold'", qid, -1, &changes,
	    "release message") == -1)
		return adm_write_end(st, own, 0);
	if (changes == 0) {
		rc = adm_why_unchanged(st, qid);
		adm_write_end(st, own, 0);
		if (rc == -1)
			return -1;
		st->err[0] = '\0';
		return rc;
	}
	if (adm_exec(st, "UPDATE recipient SET next_attempt = ?2"
	    " WHERE state = 'pending'"
	    " AND message_id = (SELECT id FROM message WHERE qid = ?1)",
	    qid, now_wall(), NULL, "release message") == -1)
		return adm_write_end(st, own, 0);
	return adm_write_end(st, own, 1);
}

int
store_admin_flush(struct store *st, const char *qid, int64_t *changed)
{
	/* A recipient already due keeps its place. */
	static const char count_one[] =
	    "SELECT count(*) FROM message m WHERE m.qid = ?1"
	    " AND m.state = 'active' AND EXISTS (SELECT 1 FROM recipient r"
	    " WHERE r.message_id = m.id AND r.state = 'pending')";
	static const char count_all[] =
	    "SELECT count(*) FROM message m WHERE m.state = 'active'"
	    " AND EXISTS (SELECT 1 FROM recipient r"
	    " WHERE r.message_id = m.id AND r.state = 'pending')";
	static const char due_one[] =
	    "UPDATE recipient SET next_attempt = ?2 WHERE state = 'pending'"
	    " AND (next_attempt IS NULL OR next_attempt > ?2)"
	    " AND message_id = (SELECT id FROM message WHERE qid = ?1"
	    " AND state = 'active')";
	static const char due_all[] =
	    "UPDATE recipient SET next_attempt = ?2 WHERE state = 'pending'"
	    " AND (next_attempt IS NULL OR next_attempt > ?2)"
	    " AND message_id IN (SELECT id FROM message"
	    " WHERE state = 'active')";
	sqlite3_stmt *s;
	char state[16];
	int own, rc;

	*changed = 0;
	st->err[0] = '\0';
	if (qid != NULL) {
		if ((rc = store_admin_state(st, qid, state)) != 0)
			return rc;
		if (strcmp(state, "incoming") == 0)
			return STORE_NOT_FOUND;
		if (strcmp(state, "active") != 0)
			return STORE_WRONG_STATE;
	}
	if (adm_write_begin(st, &own) == -1)
		return -1;
	if ((s = adm_prep(st, qid != NULL ? count_one : count_all)) == NULL)
		return adm_write_end(st, own, 0);
	if (qid != NULL)
		sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW) {
		db_err(st, "flush");
		sqlite3_finalize(s);
		return adm_write_end(st, own, 0);
	}
	*changed = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (qid != NULL)
		rc = adm_exec(st, due_one, qid, now_wall(), NULL, "flush");
	else {
		/* ?1 unused: bind nothing to it */
		if ((s = adm_prep(st, due_all)) == NULL)
			return adm_write_end(st, own, 0);
		sqlite3_bind_double(s, 2, now_wall());
		rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
		if (rc == -1)
			db_err(st, "flush");
		sqlite3_finalize(s);
	}
	if (rc == -1) {
		*changed = 0;
		return adm_write_end(st, own, 0);
	}
	if (adm_write_end(st, own, 1) == -1) {
		*changed = 0;
		return -1;
	}
	return 0;
}

int
store_admin_stats(struct store *st, struct store_queue_stats *qs)
{
	sqlite3_stmt *s;
	int ret = -1;

	st->err[0] = '\0';
	memset(qs, 0, sizeof(*qs));
	qs->oldest_received_at = -1;
	s = adm_prep(st,
	    /* the counts the triggers keep (schema.sql's queue_counts): one
	     * row, where counting the queue's rows grew with the queue; a
	     * pending recipient has its next attempt once its message is
	     * complete (S_RCPT_DUE) */
	    "SELECT (SELECT active FROM queue_counts WHERE id = 1),"
	    " (SELECT hold FROM queue_counts WHERE id = 1),"
	    " (SELECT rcpts_pending FROM queue_counts WHERE id = 1),"
	    /* the oldest of each state from the message_state index:
	     * one seek each, where IN would walk both ranges */
	    " (SELECT min(t) FROM"
	    "  (SELECT min(received_at) AS t FROM message"
	    "   WHERE state = 'active'"
	    "   UNION ALL SELECT min(received_at) FROM message"
	    "   WHERE state = 'hold'))");
	if (s == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW) {
		qs->active = sqlite3_column_int64(s, 0);
		qs->hold = sqlite3_column_int64(s, 1);
		qs->rcpts_pending = sqlite3_column_int64(s, 2);
		qs->oldest_received_at = adm_double(s, 3);
		ret = 0;
	} else
		db_err(st, "queue stats");
	sqlite3_finalize(s);
	return ret;
}

int
store_stall_figures(struct store *st, double *oldest_received_at,
    int *any_pending)
{
	sqlite3_stmt *s;
	int ret = -1;

	st->err[0] = '\0';
	*oldest_received_at = -1;
	*any_pending = 0;
	s = adm_prep(st,
	    "SELECT (SELECT min(t) FROM"
	    "  (SELECT min(received_at) AS t FROM message"
	    "   WHERE state = 'active'"
	    "   UNION ALL SELECT min(received_at) FROM message"
	    "   WHERE state = 'hold')),"
	    /* held mail is not waiting for delivery; the walk stops at
	     * the first pending recipient of an active message */
	    " EXISTS (SELECT 1 FROM recipient r JOIN message m"
	    "  ON m.id = r.message_id WHERE r.state = 'pending'"
	    "  AND r.next_attempt IS NOT NULL AND m.state = 'active')");
	if (s == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*oldest_received_at = adm_double(s, 0);
		*any_pending = sqlite3_column_int(s, 1) != 0;
		ret = 0;
	} else
		db_err(st, "stall figures");
	sqlite3_finalize(s);
	return ret;
}

/* The reply shown for a message: the latest attempt's, preferring
 * recipients still pending (why it is still here) over finished ones. */
#define ADM_LAST_REPLY(col) \
	" (SELECT r." col " FROM recipient r WHERE r.message_id = m.id" \
	" AND r.last_reply IS NOT NULL ORDER BY r.state = 'pending' DESC," \
	" r.last_attempt DESC, r.id DESC LIMIT 1)"

int
store_admin_list(struct store *st, size_t max,
    int (*fn)(void *arg, const struct store_list_entry *e), void *arg,
    int *truncated)
{
	sqlite3_stmt *s, *rs = NULL;
	struct store_list_entry e;
	char *rcpts[STORE_LIST_RCPTS];
	size_t n = 0, i;
	int rc, ret = 0;

	st->err[0] = '\0';
	*truncated = 0;
	if (max > STORE_LIST_MAX)
		max = STORE_LIST_MAX;
	s = adm_prep(st,
	    "SELECT m.id, m.qid, m.state, m.received_at, m.size, m.sender,"
	    " (SELECT count(*) FROM recipient r WHERE r.message_id = m.id),"
	    " (SELECT count(*) FROM recipient r WHERE r.message_id = m.id"
	    "  AND r.state = 'pending'),"
	    " (SELECT min(r.next_attempt) FROM recipient r"
	    "  WHERE r.message_id = m.id AND r.state = 'pending'),"
	    ADM_LAST_REPLY("last_reply") "," ADM_LAST_REPLY("last_dsn")
	    " FROM message m WHERE m.state IN ('active', 'hold')"
	    " ORDER BY m.received_at, m.id LIMIT ?1");
	if (s == NULL)
		return -1;
	rs = adm_prep(st, "SELECT address FROM recipient"
	    " WHERE message_id = ?1 ORDER BY id LIMIT ?2");
	if (rs == NULL) {
		sqlite3_finalize(s);
		return -1;
	}
	/* one more than asked for tells whether there were more */
	sqlite3_bind_int64(s, 1, (sqlite3_int64)max + 1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t;

		if (n == max) {
			*truncated = 1;
			break;
		}
		n++;
		memset(&e, 0, sizeof(e));
		t = sqlite3_column_text(s, 1);
		ferry_strlcpy(e.qid, t ? (const char *)t : "", sizeof(e.qid));
		t = sqlite3_column_text(s, 2);
		ferry_strlcpy(e.state, t ? (const char *)t : "",
		    sizeof(e.state));
		e.received_at = adm_double(s, 3);
		e.size = adm_int(s, 4);
		t = sqlite3_column_text(s, 5);
		e.sender = t ? (const char *)t : "";
		e.rcpts_total = sqlite3_column_int64(s, 6);
		e.pending = sqlite3_column_int64(s, 7);
		e.next_attempt = adm_double(s, 8);
		e.last_reply = (const char *)sqlite3_column_text(s, 9);
		e.last_dsn = (const char *)sqlite3_column_text(s, 10);

		/* the addresses: copied, each step overwrites the last */
		sqlite3_bind_int64(rs, 1, sqlite3_column_int64(s, 0));
		sqlite3_bind_int(rs, 2, STORE_LIST_RCPTS);
		while ((rc = sqlite3_step(rs)) == SQLITE_ROW &&
		    e.nrcpts < STORE_LIST_RCPTS) {
			t = sqlite3_column_text(rs, 0);
			rcpts[e.nrcpts] = xstrdup(t ? (const char *)t : "");
			e.rcpts[e.nrcpts] = rcpts[e.nrcpts];
			e.nrcpts++;
		}
		sqlite3_reset(rs);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
			db_err(st, "list recipients");
			ret = -1;
		} else
			ret = fn(arg, &e);
		for (i = 0; i < e.nrcpts; i++)
			free(rcpts[i]);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_err(st, "list messages");
		ret = -1;
	}
	sqlite3_finalize(rs);
	sqlite3_finalize(s);
	return ret;
}

/* One message of a page: the envelope row s (the columns of
 * store_admin_list_page) and its first addresses through rs, into e;
 * rcpts holds the copies (the caller frees e->nrcpts of them).  0, or -1
 * on a store error. */
static int
page_entry(struct store *st, sqlite3_stmt *s, sqlite3_stmt *rs,
    struct store_list_entry *e, char **rcpts)
{
	const unsigned char *t;
	int rc;

	memset(e, 0, sizeof(*e));
	t = sqlite3_column_text(s, 1);
	ferry_strlcpy(e->qid, t ? (const char *)t : "", sizeof(e->qid));
	t = sqlite3_column_text(s, 2);
	ferry_strlcpy(e->state, t ? (const char *)t : "", sizeof(e->state));
	e->received_at = adm_double(s, 3);
	e->size = adm_int(s, 4);
	t = sqlite3_column_text(s, 5);
	e->sender = t ? (const char *)t : "";
	e->rcpts_total = sqlite3_column_int64(s, 6);
	e->pending = sqlite3_column_int64(s, 7);
	e->next_attempt = adm_double(s, 8);
	e->last_reply = (const char *)sqlite3_column_text(s, 9);
	e->last_dsn = (const char *)sqlite3_column_text(s, 10);
	sqlite3_bind_int64(rs, 1, sqlite3_column_int64(s, 0));
	sqlite3_bind_int(rs, 2, STORE_LIST_RCPTS);
	while ((rc = sqlite3_step(rs)) == SQLITE_ROW &&
	    e->nrcpts < STORE_LIST_RCPTS) {
		t = sqlite3_column_text(rs, 0);
		rcpts[e->nrcpts] = xstrdup(t ? (const char *)t : "");
		e->rcpts[e->nrcpts] = rcpts[e->nrcpts];
		e->nrcpts++;
	}
	sqlite3_reset(rs);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_err(st, "list recipients");
		return -1;
	}
	return 0;
}

/* Whether message msgid has a recipient whose address holds pattern
 * (any case): 1, 0, or -1 on a store error. */
static int
page_rcpt_match(struct store *st, sqlite3_stmt *ms, int64_t msgid,
    const char *pattern)
{
	int rc;

	sqlite3_bind_int64(ms, 1, msgid);
	sqlite3_bind_text(ms, 2, pattern, -1, SQLITE_STATIC);
	rc = sqlite3_step(ms);
	sqlite3_reset(ms);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	db_err(st, "list recipients");
	return -1;
}

/* The page query's keyset step: the messages with an id in (?1, ?5],
 * read by their row id (NOT INDEXED: message_state would hand them over
 * by state and time, sorted again on every page - all the queue's
 * messages and their recipients read for each page), so a step reads at
 * most LIST_SCAN_IDS messages however few the filters keep. */
#define LIST_SCAN_IDS 1000
#define LIST_CLOCK_ROWS 16

/* The CPU time this thread has used, in ms: a page's budget counts the
 * work it does, not the time the scheduler gave others meanwhile (on a
 * loaded machine a wall-clock budget cut pages short at random). */
static int64_t
page_cpu_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return now_ms();
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first message id above after, 0 when none: where the next step of
 * the scan starts, so a gap of deleted ids costs one seek. */
static int
page_first_id(struct store *st, sqlite3_stmt *fs, int64_t after,
    int64_t *first)
{
	int rc;

	*first = 0;
	sqlite3_bind_int64(fs, 1, after);
	rc = sqlite3_step(fs);
	if (rc == SQLITE_ROW)
		*first = sqlite3_column_int64(fs, 0);
	sqlite3_reset(fs);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(st, "list messages");
		return -1;
	}
	return 0;
}

int
store_admin_list_page(struct store *st, int64_t after, size_t max,
    int64_t budget_ms, const struct store_list_filter *f,
    int (*fn)(void *arg, const struct store_list_entry *e), void *arg,
    int64_t *next)
{
	sqlite3_stmt *s, *rs = NULL, *ms = NULL, *fs = NULL;
	struct store_list_entry e;
	char *rcpts[STORE_LIST_RCPTS];
	int64_t start = page_cpu_ms(), id = after, first;
	size_t taken = 0, looked = 0, i;
	int rc = SQLITE_DONE, ret = 0, deferred_only, stop = 0;

	st->err[0] = '\0';
	*next = 0;
	deferred_only = f->state != NULL && strcmp(f->state, "deferred") == 0;
	s = adm_prep(st,
	    "SELECT m.id, m.qid, m.state, m.received_at, m.size, m.sender,"
	    " (SELECT count(*) FROM recipient r WHERE r.message_id = m.id),"
	    " (SELECT count(*) FROM recipient r WHERE r.message_id = m.id"
	    "  AND r.state = 'pending'),"
	    " (SELECT min(r.next_attempt) FROM recipient r"
	    "  WHERE r.message_id = m.id AND r.state = 'pending'),"
	    ADM_LAST_REPLY("last_reply") "," ADM_LAST_REPLY("last_dsn")
	    " FROM message m NOT INDEXED"
	    " WHERE m.id > ?1 AND m.id <= ?5"
	    " AND m.state IN ('active', 'hold')"
	    " AND (?2 IS NULL OR m.state = ?2)"
	    " AND (?3 <= 0 OR m.received_at < ?3)"
	    " AND (?4 IS NULL OR instr(lower(m.sender), lower(?4)) > 0)"
	    " ORDER BY m.id");
	if (s == NULL)
		return -1;
	rs = adm_prep(st, "SELECT address FROM recipient"
	    " WHERE message_id = ?1 ORDER BY id LIMIT ?2");
	fs = adm_prep(st, "SELECT id FROM message WHERE id > ?1"
	    " ORDER BY id LIMIT 1");
	if (f->rcpt != NULL)
		ms = adm_prep(st, "SELECT 1 FROM recipient WHERE"
		    " message_id = ?1 AND instr(lower(address), lower(?2)) > 0"
		    " LIMIT 1");
	if (rs == NULL || fs == NULL || (f->rcpt != NULL && ms == NULL)) {
		sqlite3_finalize(fs);
		sqlite3_finalize(ms);
		sqlite3_finalize(rs);
		sqlite3_finalize(s);
		return -1;
	}
	if (f->state != NULL)
		sqlite3_bind_text(s, 2, deferred_only ? "active" : f->state,
		    -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 3, f->received_before);
	if (f->sender != NULL)
		sqlite3_bind_text(s, 4, f->sender, -1, SQLITE_STATIC);
	while (!stop && ret == 0) {
		int64_t hi;

		/* the time is up between two steps: the next page from the
		 * last id looked at */
		if (budget_ms > 0 && id != after &&
		    page_cpu_ms() - start >= budget_ms) {
			*next = id;
			break;
		}
		if (page_first_id(st, fs, id, &first) < 0) {
			ret = -1;
			break;
		}
		if (first == 0)
			break;             /* no message above id: the end */
		hi = first - 1 > INT64_MAX - LIST_SCAN_IDS ? INT64_MAX :
		    first - 1 + LIST_SCAN_IDS;
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 5, hi);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			int keep = 1;

			/* a full page, or the time is up (looked at every
			 * LIST_CLOCK_ROWS rows: the thread's CPU clock is a
			 * system call): the next page from here */
			if (taken == max || (budget_ms > 0 && id != after &&
			    ++looked % LIST_CLOCK_ROWS == 0 &&
			    page_cpu_ms() - start >= budget_ms)) {
				*next = id;
				stop = 1;
				break;
			}
			id = sqlite3_column_int64(s, 0);
			if (f->rcpt != NULL && (keep = page_rcpt_match(st, ms,
			    id, f->rcpt)) < 0) {
				ret = -1;
				break;
			}
			if (!keep)
				continue;
			if (page_entry(st, s, rs, &e, rcpts) < 0) {
				ret = -1;
			} else if (deferred_only && (e.pending == 0 ||
			    e.last_reply == NULL)) {
				ret = 0;
			} else {
				ret = fn(arg, &e);
				if (ret > 0) {
					taken++;
					/* 2: the caller's page is full */
					if (ret == 2)
						taken = max;
					ret = 0;
				}
			}
			for (i = 0; i < e.nrcpts; i++)
				free(rcpts[i]);
			if (ret != 0)
				break;
		}
		sqlite3_reset(s);
		if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) {
			db_err(st, "list messages");
			ret = -1;
		}
		if (!stop && ret == 0)
			id = hi;           /* every id through hi looked at */
	}
	sqlite3_finalize(fs);
	sqlite3_finalize(ms);
	sqlite3_finalize(rs);
	sqlite3_finalize(s);
	return ret;
}

/* Length of the header block at the start of b: through the line end
 * before the first empty line, or (size_t)-1 when b holds no empty
 * line. */
static size_t
adm_header_end(const char *b, size_t n)
{
	size_t i;

	if ((n >= 1 && b[0] == '\n') || (n >= 2 && b[0] == '\r' &&
	    b[1] == '\n'))
		return 0;
	for (i = 0; i < n; i++) {
		if (b[i] != '\n')
			continue;
		if (i + 1 < n && b[i + 1] == '\n')
			return i + 1;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 1;
	}
	return (size_t)-1;
}

/* The header block of msgid, from its first chunks. */
static int
adm_headers(struct store *st, int64_t msgid, struct store_msg_info *m)
{
	/* enough to see an empty line right after STORE_HEADERS_MAX */
	const size_t cap = STORE_HEADERS_MAX + 3;
	sqlite3_stmt *s;
	char *buf = xmalloc(cap + 1);
	size_t len = 0, end = (size_t)-1;
	int rc = SQLITE_DONE;

	s = adm_prep(st, "SELECT substr(chunk, 1, ?2) FROM body"
	    " WHERE message_id = ?1 ORDER BY seq");
	if (s == NULL) {
		free(buf);
		return -1;
	}
	sqlite3_bind_int64(s, 1, msgid);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)cap);
	while (len < cap && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(s, 0);
		size_t n = (size_t)sqlite3_column_bytes(s, 0);

		if (n > cap - len)
			n = cap - len;
		if (n > 0)
			memcpy(buf + len, p, n);
		len += n;
		if ((end = adm_header_end(buf, len)) != (size_t)-1)
			break;
	}
	if (len < cap && end == (size_t)-1 && rc != SQLITE_DONE) {
		db_err(st, "read headers");
		sqlite3_finalize(s);
		free(buf);
		return -1;
	}
	sqlite3_finalize(s);
	if (end == (size_t)-1)
		end = len;           /* no body: all of it is header */
	if (end > STORE_HEADERS_MAX) {
		end = STORE_HEADERS_MAX;
		m->headers_truncated = 1;
	}
	buf[end] = '\0';
	m->headers = buf;
	m->headers_len = end;
	return 0;
}

/* The latest STORE_SHOW_HISTORY attempts of r (id rid), oldest first. */
static int
adm_history(struct store *st, sqlite3_stmt *hs, sqlite3_stmt *hc,
    int64_t rid, struct store_rcpt_info *r)
{
	size_t n = 0, i;
	int rc;

	sqlite3_bind_int64(hc, 1, rid);
	if (sqlite3_step(hc) != SQLITE_ROW) {
		db_err(st, "count attempts");
		sqlite3_reset(hc);
		return -1;
	}
	r->history_total = sqlite3_column_int64(hc, 0);
	sqlite3_reset(hc);
	if (r->history_total == 0)
		return 0;
	r->history = xcalloc(r->history_total < STORE_SHOW_HISTORY ?
	    (size_t)r->history_total : STORE_SHOW_HISTORY,
	    sizeof(*r->history));
	sqlite3_bind_int64(hs, 1, rid);
	sqlite3_bind_int(hs, 2, STORE_SHOW_HISTORY);
	while ((rc = sqlite3_step(hs)) == SQLITE_ROW && n < STORE_SHOW_HISTORY &&
	    (int64_t)n < r->history_total) {
		struct store_attempt_info *a = &r->history[n++];

		a->at = adm_double(hs, 0);
		a->relay = adm_text(hs, 1);
		a->tls = adm_text(hs, 2);
		a->status = adm_text(hs, 3);
		a->dsn = adm_text(hs, 4);
		a->reply = adm_text(hs, 5);
	}
	sqlite3_reset(hs);
	r->nhistory = n;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_err(st, "read attempts");
		return -1;
	}
	/* read newest first (to keep the latest), shown oldest first */
	for (i = 0; i < n / 2; i++) {
		struct store_attempt_info t = r->history[i];

		r->history[i] = r->history[n - 1 - i];
		r->history[n - 1 - i] = t;
	}
	return 0;
}

static int
adm_rcpts(struct store *st, int64_t msgid, struct store_msg_info *m)
{
	sqlite3_stmt *s, *hs = NULL, *hc = NULL;
	size_t cap = 0;
	int rc, ret = -1;

	s = adm_prep(st, "SELECT id, address, state, dsn_notify, dsn_orcpt,"
	    " attempts, next_attempt, last_attempt, last_reply, last_dsn,"
	    " (SELECT count(*) FROM recipient WHERE message_id = ?1)"
	    " FROM recipient WHERE message_id = ?1 ORDER BY id LIMIT ?2");
	hs = adm_prep(st, "SELECT at, relay, tls, status, dsn, reply"
	    " FROM attempt WHERE recipient_id = ?1 ORDER BY at DESC, id DESC"
	    " LIMIT ?2");
	hc = adm_prep(st, "SELECT count(*) FROM attempt"
	    " WHERE recipient_id = ?1");
	if (s == NULL || hs == NULL || hc == NULL)
		goto out;
	sqlite3_bind_int64(s, 1, msgid);
	sqlite3_bind_int(s, 2, STORE_SHOW_RCPTS);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_rcpt_info *r;

		if (m->nrcpts == cap) {
			cap = cap ? cap * 2 : 8;
			m->rcpts = xrealloc(m->rcpts, cap * sizeof(*m->rcpts));
		}
		r = &m->rcpts[m->nrcpts++];
		memset(r, 0, sizeof(*r));
		r->address = adm_text(s, 1);
		r->state = adm_text(s, 2);
		r->dsn_notify = (uint32_t)sqlite3_column_int64(s, 3);
		r->dsn_orcpt = adm_text(s, 4);
		r->attempts = sqlite3_column_int64(s, 5);
		r->next_attempt = adm_double(s, 6);
		r->last_attempt = adm_double(s, 7);
		r->last_reply = adm_text(s, 8);
		r->last_dsn = adm_text(s, 9);
		m->rcpts_total = sqlite3_column_int64(s, 10);
		if (adm_history(st, hs, hc, sqlite3_column_int64(s, 0), r) ==
		    -1)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		db_err(st, "read recipients");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(hc);
	sqlite3_finalize(hs);
	sqlite3_finalize(s);
	return ret;
}

int
store_admin_show(struct store *st, const char *qid, struct store_msg_info *m)
{
	sqlite3_stmt *s;
	const unsigned char *t;
	int64_t msgid;
	int rc;

	st->err[0] = '\0';
	memset(m, 0, sizeof(*m));
	s = adm_prep(st, "SELECT id, qid, state, sender, size, received_at,"
	    " client_addr, client_name, helo, protocol, auth_user, body_type,"
	    " smtputf8, dsn_ret, dsn_envid, size_declared, dsn_of, warned,"
	    " hold_reason"
	    " FROM message WHERE qid = ?1 AND state IN ('active', 'hold')");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		if (rc != SQLITE_DONE)
			db_err(st, "read message");
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? STORE_NOT_FOUND : -1;
	}
	msgid = sqlite3_column_int64(s, 0);
	t = sqlite3_column_text(s, 1);
	ferry_strlcpy(m->qid, t ? (const char *)t : "", sizeof(m->qid));
	t = sqlite3_column_text(s, 2);
	ferry_strlcpy(m->state, t ? (const char *)t : "", sizeof(m->state));
	m->sender = adm_text(s, 3);
	m->size = adm_int(s, 4);
	m->received_at = adm_double(s, 5);
	m->client_addr = adm_text(s, 6);
	m->client_name = adm_text(s, 7);
	m->helo = adm_text(s, 8);
	m->protocol = adm_text(s, 9);
	m->auth_user = adm_text(s, 10);
	m->body_type = adm_text(s, 11);
	m->smtputf8 = sqlite3_column_int(s, 12) != 0;
	m->dsn_ret = adm_text(s, 13);
	m->dsn_envid = adm_text(s, 14);
	m->size_declared = adm_int(s, 15);
	m->dsn_of = adm_text(s, 16);
	m->warned = sqlite3_column_int(s, 17) != 0;
	m->hold_reason = adm_text(s, 18);
	sqlite3_finalize(s);
	if (m->sender == NULL)
		m->sender = xstrdup("");

	if (adm_rcpts(st, msgid, m) == -1 || adm_headers(st, msgid, m) == -1) {
		store_admin_show_free(m);
		return -1;
	}
	return 0;
}

void
store_admin_show_free(struct store_msg_info *m)
{
	size_t i, j;

	for (i = 0; i < m->nrcpts; i++) {
		struct store_rcpt_info *r = &m->rcpts[i];

		for (j = 0; j < r->nhistory; j++) {
			free(r->history[j].relay);
			free(r->history[j].tls);
			free(r->history[j].status);
			free(r->history[j].dsn);
			free(r->history[j].reply);
		}
		free(r->history);
		free(r->address);
		free(r->state);
		free(r->dsn_orcpt);
		free(r->last_reply);
		free(r->last_dsn);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->client_addr);
	free(m->client_name);
	free(m->helo);
	free(m->protocol);
	free(m->auth_user);
	free(m->body_type);
	free(m->dsn_ret);
	free(m->dsn_envid);
	free(m->dsn_of);
	free(m->hold_reason);
	free(m->headers);
	memset(m, 0, sizeof(*m));
}

static int64_t
count_of(sqlite3 *db, const char *sql)
{
	char buf[32];

	if (query_text(db, sql, buf, sizeof(buf)) == -1)
		return -1;
	return strtoll(buf, NULL, 10);
}

/* --- salvage --------------------------------------------------------------- */

/* The tables in the order they are copied, with every column of schema
 * version 3 (the row id first: the others refer to it). */
static const struct salvage_table {
	const char *name, *cols;
	int ncols;
} salvage_tables[] = {
	{ "message", "id, qid, state, sender, size, received_at, client_addr,"
	  " client_name, helo, protocol, auth_user, body_type, smtputf8,"
	  " dsn_ret, dsn_envid, size_declared, dsn_of, warned, agent_deaths,"
	  " hold_reason", 20 },
	{ "recipient", "id, message_id, address, dsn_notify, dsn_orcpt, state,"
	  " attempts, next_attempt, last_attempt, last_reply, last_dsn", 11 },
	{ "body", "rowid, message_id, seq, chunk", 4 },
	{ "attempt", "id, recipient_id, at, relay, tls, status, dsn, reply", 8 },
	/* the delivery history (schema version 3; a table an older or
	 * damaged file lacks is passed over) */
#define HISTORY_MSG_COLS "id, qid, received_at, left_at, sender, size," \
	" client_addr, client_name, helo, protocol, auth_user, dsn_of"
#define HISTORY_RCPT_COLS "id, hmsg_id, src_rcpt, left_at, qid, sender," \
	" sender_domain, address, domain, status, deferred, attempts," \
	" last_attempt, delay, relay, relay_host, dsn, reply"
#define HISTORY_ATTEMPT_COLS "id, hrcpt_id, at, relay, tls, status, dsn," \
	" reply"
	{ "history_message", HISTORY_MSG_COLS, 12 },
	{ "history_rcpt", HISTORY_RCPT_COLS, 18 },
	{ "history_attempt", HISTORY_ATTEMPT_COLS, 8 },
	{ "history_new_message", HISTORY_MSG_COLS, 12 },
	{ "history_new_rcpt", HISTORY_RCPT_COLS, 18 },
	{ "history_new_attempt", HISTORY_ATTEMPT_COLS, 8 },
	/* what the routes have used of their hourly and daily quotas (so a
	 * salvage does not hand a route a fresh day's worth) and what their
	 * upstreams offered */
	{ "route_quota", "rowid, route, span, tokens, stamp", 5 },
	{ "route_caps", "rowid, route, hosts, flags, size_max, learned_at",
	  6 },
};

/* What is kept of the rows read: whole messages only (every body chunk
 * from 0 up, adding up to the recorded size) that still have a pending
 * recipient, with their recipients and attempts; and the delivery
 * history whose rows still hang together.  The copy ran with foreign keys
 * off, so orphans are removed here by hand. */
static const char salvage_keep_sql[] =
    "DELETE FROM body WHERE message_id NOT IN (SELECT id FROM message);"
    "DELETE FROM message WHERE state NOT IN ('active', 'hold')"
    " OR size IS NULL"
    " OR size != (SELECT coalesce(sum(length(chunk)), 0) FROM body"
    "  WHERE message_id = message.id)"
    " OR (SELECT count(*) FROM body WHERE message_id = message.id) !="
    "  (SELECT coalesce(max(seq) + 1, 0) FROM body"
    "  WHERE message_id = message.id);"
    "DELETE FROM recipient WHERE message_id NOT IN (SELECT id FROM message);"
    "DELETE FROM message WHERE NOT EXISTS (SELECT 1 FROM recipient"
    " WHERE message_id = message.id AND state = 'pending');"
    "DELETE FROM body WHERE message_id NOT IN (SELECT id FROM message);"
    "DELETE FROM recipient WHERE message_id NOT IN (SELECT id FROM message);"
    "DELETE FROM attempt WHERE recipient_id NOT IN"
    " (SELECT id FROM recipient);"
    "DELETE FROM history_rcpt WHERE hmsg_id NOT IN"
    " (SELECT id FROM history_message);"
    "DELETE FROM history_attempt WHERE hrcpt_id NOT IN"
    " (SELECT id FROM history_rcpt);"
    "DELETE FROM history_new_rcpt WHERE hmsg_id NOT IN"
    " (SELECT id FROM history_new_message);"
    "DELETE FROM history_new_attempt WHERE hrcpt_id NOT IN"
    " (SELECT id FROM history_new_rcpt);";

/* The first row of t after row id `after`: SQLITE_ROW with it in *q,
 * SQLITE_DONE past the last, or an error where the b-tree is damaged.
 * It asks for "rowid >= after + 1", not "rowid > after": SQLite seeks
 * the key it is given, and an interior page sends key `after` to the
 * leaf that holds it, so the row after the last one on a damaged leaf
 * would be lost with it. */
static int
salvage_seek(sqlite3_stmt *q, int64_t after)
{
	if (after == INT64_MAX)
		return SQLITE_DONE;
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, after + 1);
	return sqlite3_step(q);
}

/* Copies every row of one table that can be read, walking by row id: a
 * seek that fails (a damaged page on its path) is retried further on,
 * in growing steps and then by bisection back to the first readable row
 * after the damage, so only rows on damaged pages are lost.  The number
 * copied, or -1 when the table cannot be read at all. */
static int64_t
salvage_table(sqlite3 *old, struct store *st, const struct salvage_table *t,
    int64_t *skipped)
{
	char sql[512];
	sqlite3_stmt *q = NULL, *ins = NULL;
	int64_t after = 0, copied = 0;     /* ferry's row ids start at 1 */
	int rc, i;

	snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE rowid >= ?1"
	    " ORDER BY rowid LIMIT 1", t->cols, t->name);
	if (sqlite3_prepare_v2(old, sql, -1, &q, NULL) != SQLITE_OK)
		return -1;
	snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO %s (%s) VALUES (?1,"
	    " ?2, ?3, ?4%s", t->name, t->cols, t->ncols > 4 ? "" : ")");
	for (i = 5; i <= t->ncols; i++)
		snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
		    ", ?%d%s", i, i == t->ncols ? ")" : "");
	if (sqlite3_prepare_v2(st->db, sql, -1, &ins, NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return -1;
	}
	for (;;) {
		rc = salvage_seek(q, after);
		if (rc == SQLITE_ROW && sqlite3_column_int64(q, 0) <= after)
			rc = SQLITE_CORRUPT;    /* a damaged page lying */
		if (rc == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(q, 0);

			for (i = 0; i < t->ncols; i++)
				sqlite3_bind_value(ins, i + 1,
				    sqlite3_column_value(q, i));
			if (sqlite3_step(ins) == SQLITE_DONE &&
			    sqlite3_changes(st->db) > 0)
				copied++;
			sqlite3_reset(ins);
			sqlite3_clear_bindings(ins);
			if (id == INT64_MAX)
				break;
			after = id;
			continue;
		}
		if (rc == SQLITE_DONE)
			break;
		{
			/* damage after `after`: find a readable row further on */
			int64_t bad = after, good, step = 1;
			int found = 0;

			while (!found) {
				if (bad > INT64_MAX - step || step > ((int64_t)1
				    << 62))
					break;
				good = bad + step;
				rc = salvage_seek(q, good);
				if ((rc == SQLITE_ROW && sqlite3_column_int64(q,
				    0) > good) || rc == SQLITE_DONE)
					found = 1;
				else {
					bad = good;
					step *= 2;
				}
			}
			if (!found)
				break;
			while (good - bad > 1) {
				int64_t mid = bad + (good - bad) / 2;

				rc = salvage_seek(q, mid);
				if ((rc == SQLITE_ROW && sqlite3_column_int64(q,
				    0) > mid) || rc == SQLITE_DONE)
					good = mid;
				else
					bad = mid;
			}
			(*skipped)++;
			after = good;
		}
	}
	sqlite3_finalize(q);
	sqlite3_finalize(ins);
	return copied;
}

int
store_salvage_import(struct store *st, const char *damaged,
    struct store_salvage *out, char *err, size_t errlen)
{
	sqlite3 *old = NULL;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (sqlite3_open_v2(damaged, &old, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", damaged, old != NULL ?
		    sqlite3_errmsg(old) : "cannot open");
		goto out;
	}
	/* evidence: the damaged file is only read, its WAL left as it is */
	sqlite3_db_config(old, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_busy_timeout(old, BUSY_TIMEOUT_MS);
	if (sqlite3_exec(old, "PRAGMA query_only = ON", NULL, NULL, NULL) !=
	    SQLITE_OK || sqlite3_exec(old, "SELECT count(*) FROM"
	    " sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", damaged, sqlite3_errmsg(old));
		out->schema_lost = 1;
		goto out;
	}
	if (sqlite3_exec(st->db, "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE",
	    NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(st->db));
		goto out;
	}
	for (i = 0; i < sizeof(salvage_tables) / sizeof(salvage_tables[0]);
	    i++) {
		int64_t n = salvage_table(old, st, &salvage_tables[i],
		    &out->damaged_spots);

		if (n < 0 && i == 0) {
			snprintf(err, errlen, "%s: the message table cannot "
			    "be read: %s", damaged, sqlite3_errmsg(old));
			out->schema_lost = 1;
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		if (i == 0)
			out->found = count_of(st->db, "SELECT count(*) FROM"
			    " message WHERE state IN ('active', 'hold')");
	}
	if (sqlite3_exec(st->db, salvage_keep_sql, NULL, NULL, NULL) !=
	    SQLITE_OK || sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "keeping what was read: %s",
		    sqlite3_errmsg(st->db));
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	out->messages = count_of(st->db, "SELECT count(*) FROM message");
	out->recipients = count_of(st->db,
	    "SELECT count(*) FROM recipient WHERE state = 'pending'");
	out->history = count_of(st->db, "SELECT count(*) FROM"
	    " history_message") + count_of(st->db, "SELECT count(*) FROM"
	    " history_new_message");
	st->history_staged = 1;   /* what was staged: the next move files it */
	rc = 0;
out:
	sqlite3_exec(st->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	sqlite3_close(old);
	return rc;
}

/* --- delivery history ---------------------------------------------------- */

/*
 * Messages that left the queue, kept for ferryctl history and queue show
 * until pruned.  Searches are built from fixed fragments (one per filter
 * given) with every value bound, so each filter on an indexed column
 * (address, domain, sender, sender domain, relay host, each paired with
 * left_at) lets SQLite walk that index backwards for "newest first".
 */

int64_t
store_history_staged(const struct store *st)
{
	return st->history_staged;
}

/* The largest id in table, 0 when empty; -1 on error. */
static int64_t
max_id(struct store *st, const char *sql)
{
	sqlite3_stmt *s = adm_prep(st, sql);
	int64_t v = -1;

	if (s == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		db_err(st, "history ids");
	sqlite3_finalize(s);
	return v;
}

/* Runs sql with ?1..?3 bound to the three id offsets. */
static int
move_step(struct store *st, const char *sql, const int64_t *base)
{
	sqlite3_stmt *s = adm_prep(st, sql);
	int i, rc;

	if (s == NULL)
		return -1;
	for (i = 0; i < 3; i++)
		if (sqlite3_bind_parameter_count(s) > i)
			sqlite3_bind_int64(s, i + 1, base[i]);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		db_err(st, "move history");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_history_move(struct store *st)
{
	static const char *const steps[] = {
		"INSERT INTO history_message (id, qid, received_at, left_at,"
		" sender, size, client_addr, client_name, helo, protocol,"
		" auth_user, dsn_of) SELECT id + ?1, qid, received_at, left_at,"
		" sender, size, client_addr, client_name, helo, protocol,"
		" auth_user, dsn_of FROM history_new_message ORDER BY id",
		"INSERT INTO history_rcpt (id, hmsg_id, src_rcpt, left_at, qid,"
		" sender, sender_domain, address, domain, status, deferred,"
		" attempts, last_attempt, delay, relay, relay_host, dsn, reply)"
		" SELECT id + ?2, hmsg_id + ?1, src_rcpt, left_at, qid, sender,"
		" sender_domain, address, domain, status, deferred, attempts,"
		" last_attempt, delay, relay, relay_host, dsn, reply"
		" FROM history_new_rcpt ORDER BY id",
		"INSERT INTO history_attempt (id, hrcpt_id, at, relay, tls,"
		" status, dsn, reply) SELECT id + ?3, hrcpt_id + ?2, at, relay,"
		" tls, status, dsn, reply FROM history_new_attempt ORDER BY id",
		"DELETE FROM history_new_attempt",
		"DELETE FROM history_new_rcpt",
		"DELETE FROM history_new_message",
	};
	int64_t base[3];
	size_t i;
	int own, ok = 1;

	if (st->history_staged == 0)
		return 0;
	if (adm_write_begin(st, &own) == -1)
		return -1;
	base[0] = max_id(st, "SELECT coalesce(max(id), 0) FROM"
	    " history_message");
	base[1] = max_id(st, "SELECT coalesce(max(id), 0) FROM history_rcpt");
	base[2] = max_id(st, "SELECT coalesce(max(id), 0) FROM"
	    " history_attempt");
	if (base[0] < 0 || base[1] < 0 || base[2] < 0)
		ok = 0;
	for (i = 0; ok && i < sizeof(steps) / sizeof(steps[0]); i++)
		if (move_step(st, steps[i], base) == -1)
			ok = 0;
	if (adm_write_end(st, own, ok) == -1)
		return -1;
	st->history_staged = 0;
	return 0;
}

int64_t
store_history_prune(struct store *st, double cutoff, int batch)
{
	sqlite3_stmt *s;
	int own, rc;
	int64_t n;

	if (store_history_move(st) == -1)
		return -1;
	if (adm_write_begin(st, &own) == -1)
		return -1;
	s = adm_prep(st, "DELETE FROM history_message WHERE id IN"
	    " (SELECT id FROM history_message WHERE left_at < ?1"
	    " ORDER BY left_at LIMIT ?2)");
	if (s == NULL) {
		adm_write_end(st, own, 0);
		return -1;
	}
	sqlite3_bind_double(s, 1, cutoff);
	sqlite3_bind_int(s, 2, batch > 0 ? batch : 1);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		db_err(st, "prune history");
	n = sqlite3_changes(st->db);
	sqlite3_finalize(s);
	if (adm_write_end(st, own, rc == SQLITE_DONE) == -1)
		return -1;
	return n;
}

/* Binds a '@domain' argument without its '@', an address as is. */
static void
hist_bind_addr(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v[0] == '@' ? v + 1 : v, -1, SQLITE_STATIC);
}

int
store_history_search(struct store *st, const struct store_history_filter *f,
    int (*fn)(void *arg, const struct store_history_entry *e), void *arg,
    int *truncated)
{
	char sql[1536];
	size_t limit = f->limit > 0 && f->limit <= STORE_HISTORY_MAX ?
	    f->limit : STORE_HISTORY_MAX;
	sqlite3_stmt *s;
	size_t n = 0;
	int rc, ret = 0;

	/* the newest first: a history search sees what just left */
	if (store_history_move(st) == -1)
		st->err[0] = '\0';   /* then what was filed before */
	st->err[0] = '\0';
	*truncated = 0;
	snprintf(sql, sizeof(sql),
	    "SELECT h.qid, h.sender, h.address, h.status, h.relay, h.dsn,"
	    " h.reply, m.client_addr, m.client_name, m.received_at, h.left_at,"
	    " h.last_attempt, h.delay, m.size, h.attempts, h.deferred"
	    " FROM history_rcpt h JOIN history_message m ON m.id = h.hmsg_id"
	    " WHERE 1%s%s%s%s%s%s"
	    " ORDER BY h.left_at DESC, h.id DESC LIMIT ?7",
	    f->rcpt == NULL ? "" : f->rcpt[0] == '@' ? " AND h.domain = ?1" :
	    " AND h.address = ?1",
	    f->sender == NULL ? "" : f->sender[0] == '@' ?
	    " AND h.sender_domain = ?2" : " AND h.sender = ?2",
	    f->since >= 0 ? " AND h.left_at >= ?3" : "",
	    f->until >= 0 ? " AND h.left_at < ?4" : "",
	    f->status == NULL ? "" : strcmp(f->status, "deferred") == 0 ?
	    " AND h.deferred > 0" : " AND h.status = ?5",
	    f->route != NULL ? " AND h.relay_host = ?6" : "");
	if ((s = adm_prep(st, sql)) == NULL)
		return -1;
	if (f->rcpt != NULL)
		hist_bind_addr(s, 1, f->rcpt);
	if (f->sender != NULL)
		hist_bind_addr(s, 2, f->sender);
	if (f->since >= 0)
		sqlite3_bind_double(s, 3, f->since);
	if (f->until >= 0)
		sqlite3_bind_double(s, 4, f->until);
	if (f->status != NULL)
		sqlite3_bind_text(s, 5, f->status, -1, SQLITE_STATIC);
	if (f->route != NULL)
		sqlite3_bind_text(s, 6, f->route, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, (int64_t)limit + 1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_history_entry e;

		if (n++ == limit) {
			*truncated = 1;
			break;
		}
#define HT(i) ((const char *)sqlite3_column_text(s, (i)))
		e.qid = HT(0);
		e.sender = HT(1);
		e.rcpt = HT(2);
		e.status = HT(3);
		e.relay = HT(4);
		e.dsn = HT(5);
		e.reply = HT(6);
		e.client_addr = HT(7);
		e.client_name = HT(8);
#undef HT
		e.received_at = adm_double(s, 9);
		e.left_at = adm_double(s, 10);
		e.last_attempt = adm_double(s, 11);
		e.delay = adm_double(s, 12);
		e.size = adm_int(s, 13);
		e.attempts = adm_int(s, 14);
		e.deferred = adm_int(s, 15);
		if ((ret = fn(arg, &e)) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(st, "search history");
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

/* The attempts of one recipient in history into r (the latest
 * STORE_SHOW_HISTORY, oldest first). */
static int
hist_attempts(struct store *st, int64_t hrcpt, struct store_rcpt_info *r)
{
	sqlite3_stmt *s;
	size_t k;
	int rc;

	s = adm_prep(st, "SELECT at, relay, tls, status, dsn, reply FROM"
	    " (SELECT * FROM history_attempt WHERE hrcpt_id = ?1"
	    " ORDER BY id DESC LIMIT ?2) ORDER BY id");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, hrcpt);
	sqlite3_bind_int(s, 2, STORE_SHOW_HISTORY);
	r->history = xcalloc(STORE_SHOW_HISTORY, sizeof(*r->history));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    r->nhistory < STORE_SHOW_HISTORY) {
		struct store_attempt_info *h = &r->history[r->nhistory++];

		h->at = adm_double(s, 0);
		h->relay = adm_text(s, 1);
		h->tls = adm_text(s, 2);
		h->status = adm_text(s, 3);
		h->dsn = adm_text(s, 4);
		h->reply = adm_text(s, 5);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(st, "read history attempts");
		return -1;
	}
	r->history_total = r->attempts;
	for (k = 0; k < r->nhistory; k++)
		if (r->history[k].relay == NULL)
			r->history[k].relay = xstrdup("");
	return 0;
}

int
store_history_show(struct store *st, const char *qid,
    struct store_msg_info *m)
{
	sqlite3_stmt *s;
	int64_t hid;
	int rc;

	if (store_history_move(st) == -1)
		st->err[0] = '\0';   /* then what was filed before */
	st->err[0] = '\0';
	memset(m, 0, sizeof(*m));
	s = adm_prep(st, "SELECT id, qid, sender, size, received_at,"
	    " client_addr, client_name, helo, protocol, auth_user, dsn_of"
	    " FROM history_message WHERE qid = ?1 ORDER BY id DESC LIMIT 1");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, qid, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		if (rc != SQLITE_DONE)
			db_err(st, "read history");
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? STORE_NOT_FOUND : -1;
	}
	hid = sqlite3_column_int64(s, 0);
	ferry_strlcpy(m->qid, qid, sizeof(m->qid));
	ferry_strlcpy(m->state, "done", sizeof(m->state));
	m->sender = adm_text(s, 2);
	m->size = adm_int(s, 3);
	m->received_at = adm_double(s, 4);
	m->client_addr = adm_text(s, 5);
	m->client_name = adm_text(s, 6);
	m->helo = adm_text(s, 7);
	m->protocol = adm_text(s, 8);
	m->auth_user = adm_text(s, 9);
	m->dsn_of = adm_text(s, 10);
	m->size_declared = -1;
	sqlite3_finalize(s);
	if (m->sender == NULL)
		m->sender = xstrdup("");

	s = adm_prep(st, "SELECT id, address, status, attempts, last_attempt,"
	    " reply, dsn FROM history_rcpt WHERE hmsg_id = ?1 ORDER BY id"
	    " LIMIT ?2");
	if (s == NULL)
		goto fail;
	sqlite3_bind_int64(s, 1, hid);
	sqlite3_bind_int(s, 2, STORE_SHOW_RCPTS);
	m->rcpts = xcalloc(STORE_SHOW_RCPTS, sizeof(*m->rcpts));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    m->nrcpts < STORE_SHOW_RCPTS) {
		struct store_rcpt_info *r = &m->rcpts[m->nrcpts++];

		r->address = adm_text(s, 1);
		r->state = adm_text(s, 2);
		r->attempts = adm_int(s, 3);
		r->next_attempt = -1;
		r->last_attempt = adm_double(s, 4);
		r->last_reply = adm_text(s, 5);
		r->last_dsn = adm_text(s, 6);
		if (hist_attempts(st, sqlite3_column_int64(s, 0), r) == -1) {
			sqlite3_finalize(s);
			goto fail;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(st, "read history recipients");
		goto fail;
	}
	m->rcpts_total = (int64_t)m->nrcpts;
	return 0;
fail:
	store_admin_show_free(m);
	return -1;
}

/* --- route shaping counts -------------------------------------------------- */

int
store_route_quota_get(struct store *st, const char *route, int window,
    double *tokens, double *stamp)
{
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT tokens, stamp FROM route_quota"
	    " WHERE route = ?1 AND span = ?2", -1, &q, NULL) != SQLITE_OK) {
		db_err(st, "route quota");
		return -1;
	}
	sqlite3_bind_text(q, 1, route, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, window);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*tokens = sqlite3_column_double(q, 0);
		*stamp = sqlite3_column_double(q, 1);
	} else if (rc != SQLITE_DONE)
		db_err(st, "route quota");
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
store_route_quota_put(struct store *st, const char *route, int window,
    double tokens, double stamp)
{
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT INTO route_quota"
	    " (route, span, tokens, stamp) VALUES (?1, ?2, ?3, ?4)"
	    " ON CONFLICT (route, span) DO UPDATE"
	    " SET tokens = excluded.tokens, stamp = excluded.stamp", -1, &q,
	    NULL) != SQLITE_OK) {
		db_err(st, "route quota");
		return -1;
	}
	sqlite3_bind_text(q, 1, route, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, window);
	sqlite3_bind_double(q, 3, tokens);
	sqlite3_bind_double(q, 4, stamp);
	rc = sqlite3_step(q);
	if (rc != SQLITE_DONE)
		db_err(st, "route quota");
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_rcpt_hold(struct store *st, int64_t id, double when)
{
	sqlite3_stmt *q;
	int rc;

	if (need_tx(st, "hold for a quota") == -1)
		return -1;
	if (sqlite3_prepare_v2(st->db, "UPDATE recipient SET next_attempt = ?2"
	    " WHERE id = ?1 AND state = 'pending' AND next_attempt < ?2", -1,
	    &q, NULL) != SQLITE_OK) {
		db_err(st, "hold for a quota");
		return -1;
	}
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_double(q, 2, when);
	rc = sqlite3_step(q);
	if (rc != SQLITE_DONE)
		db_err(st, "hold for a quota");
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* --- what the routes' upstreams offered ------------------------------------ */

int
store_route_caps_each(struct store *st, store_route_caps_fn fn, void *arg)
{
	sqlite3_stmt *s;
	int rc;

	st->err[0] = '\0';
	if (sqlite3_prepare_v2(st->db, "SELECT route, hosts, flags, size_max,"
	    " learned_at FROM route_caps", -1, &s, NULL) != SQLITE_OK) {
		db_err(st, "read route_caps");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *route = sqlite3_column_text(s, 0);
		const unsigned char *hosts = sqlite3_column_text(s, 1);
		sqlite3_int64 flags = sqlite3_column_int64(s, 2);
		sqlite3_int64 size = sqlite3_column_int64(s, 3);

		if (route == NULL || hosts == NULL || flags < 0 ||
		    flags > UINT32_MAX || size < 0)
			continue;   /* not a row this ferry wrote */
		fn(arg, (const char *)route, (const char *)hosts,
		    (uint32_t)flags, (uint64_t)size,
		    sqlite3_column_double(s, 4));
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		db_err(st, "read route_caps");
		return -1;
	}
	return 0;
}

int
store_route_caps_put(struct store *st, const char *route, const char *hosts,
    uint32_t flags, uint64_t size_max, double learned_at)
{
	sqlite3_stmt *s;
	int rc;

	st->err[0] = '\0';
	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO route_caps"
	    " (route, hosts, flags, size_max, learned_at)"
	    " VALUES (?, ?, ?, ?, ?)", -1, &s, NULL) != SQLITE_OK) {
		db_err(st, "write route_caps");
		return -1;
	}
	sqlite3_bind_text(s, 1, route, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hosts, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)flags);
	sqlite3_bind_int64(s, 4, size_max > INT64_MAX ? INT64_MAX :
	    (sqlite3_int64)size_max);
	sqlite3_bind_double(s, 5, learned_at);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		db_err(st, "write route_caps");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}
