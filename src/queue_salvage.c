/*
 * queue_salvage.c - "ferryctl queue salvage": rebuilds a damaged queue
 * database from what can still be read, keeping the damaged file beside
 * the new one.
 *
 * The steps: the damaged file (and its WAL) is renamed to
 * queue.db.damaged-YYYYMMDDHHMMSS, so nothing opens it as the queue
 * again; a fresh store is created with ferry's own schema and pragmas
 * (store_open) and takes every whole message that can be read
 * (store_salvage_import walks each table around its damaged pages); it
 * must pass integrity_check, and only then is it given the old file's
 * owner and mode and renamed into place.  Any failure puts the damaged
 * file back where it was.
 *
 * SQLite's own recovery is not used: Debian 12's library has no recovery
 * extension, and the sqlite3 shell's .recover there needs the dbpage
 * virtual table, which that build lacks (it writes no rows at all).
 *
 * When page 1 (the header and the schema's root) is unreadable, the
 * schema can still be found: ferry creates it in one transaction from
 * one schema.sql, so every queue of this schema version has the same
 * page 1 and the same root pages.  A copy of the damaged file gets page 1
 * of a freshly made store (its page count set to the copy's size, its
 * freelist emptied) and is read instead.
 *
 * Security stance: run by root on files of the queue user; no program is
 * started and no SQL is made from the damaged file's bytes (the rows are
 * copied through bound values).  The new file gets the damaged file's
 * owner and mode before it is renamed into place.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "queue_salvage.h"
#include "store.h"
#include "util.h"

#define NAME_MAX_ 4096

static int
sync_dir(const char *file)
{
	char dir[NAME_MAX_];
	const char *slash = strrchr(file, '/');
	int fd, rc;

	snprintf(dir, sizeof(dir), "%.*s", slash != NULL && slash != file ?
	    (int)(slash - file) : 1, slash != NULL ? file : ".");
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* A copy of src at dst with page 1 of template (header patched for
 * dst's size): the schema ferry always makes, over a lost page 1. */
static int
rebuild_page1(const char *src, const char *dst, const char *template_db,
    char *err, size_t errlen)
{
	unsigned char page[65536], buf[65536];
	uint32_t psize, npages;
	struct stat sb;
	int in = -1, out = -1, t = -1, rc = -1;
	ssize_t n;

	if ((t = open(template_db, O_RDONLY | O_CLOEXEC)) < 0 ||
	    read(t, page, 100) != 100) {
		snprintf(err, errlen, "%s: %s", template_db, strerror(errno));
		goto out;
	}
	psize = (uint32_t)page[16] << 8 | page[17];
	if (psize == 1)
		psize = 65536;
	if (psize < 512 || pread(t, page, psize, 0) != (ssize_t)psize) {
		snprintf(err, errlen, "%s: no page 1", template_db);
		goto out;
	}
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(in, &sb) < 0 ||
	    (out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0) {
		snprintf(err, errlen, "copying %s: %s", src, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			break;
	npages = (uint32_t)(((uint64_t)sb.st_size + psize - 1) / psize);
	page[28] = (unsigned char)(npages >> 24);
	page[29] = (unsigned char)(npages >> 16);
	page[30] = (unsigned char)(npages >> 8);
	page[31] = (unsigned char)npages;
	memset(page + 32, 0, 8);        /* no freelist */
	if (n < 0 || pwrite(out, page, psize, 0) != (ssize_t)psize ||
	    fsync(out) < 0) {
		snprintf(err, errlen, "writing %s: %s", dst, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (t >= 0)
		close(t);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* Renames a -wal (or other companion) along with its database. */
static int
rename_companion(const char *from, const char *to, const char *suffix)
{
	char a[NAME_MAX_ + 16], b[NAME_MAX_ + 16];

	snprintf(a, sizeof(a), "%s%s", from, suffix);
	snprintf(b, sizeof(b), "%s%s", to, suffix);
	if (rename(a, b) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

static void
unlink_with(const char *path, const char *suffix)
{
	char a[NAME_MAX_ + 16];

	snprintf(a, sizeof(a), "%s%s", path, suffix);
	(void)unlink(a);
}

static void
remove_db(const char *path)
{
	(void)unlink(path);
	unlink_with(path, "-wal");
	unlink_with(path, "-shm");
	unlink_with(path, "-journal");
	unlink_with(path, STORE_WAL_MARK_SUFFIX);
}

/* A fresh store at fresh filled from damaged; 0 or -1. */
static int
fill(const char *fresh, const char *damaged, struct store_salvage *counts,
    char *err, size_t errlen)
{
	struct store *st;

	remove_db(fresh);
	if ((st = store_open(fresh, err, errlen)) == NULL)
		return -1;
	if (store_salvage_import(st, damaged, counts, err, errlen) < 0) {
		store_close(st);
		return -1;
	}
	if (store_check(st, fresh, 1, err, errlen) < 0) {
		store_close(st);
		return -1;
	}
	store_close(st);
	return 0;
}

int
queue_salvage(const char *dbpath, struct queue_salvage_result *res,
    char *err, size_t errlen)
{
	char stamp[32], repaired[NAME_MAX_], fresh[NAME_MAX_];
	struct store_salvage counts;
	struct stat sb;
	time_t now = time(NULL);
	struct tm tm;

	memset(res, 0, sizeof(*res));
	if (strlen(dbpath) + 64 > NAME_MAX_) {
		snprintf(err, errlen, "%s: path too long", dbpath);
		return -1;
	}
	if (stat(dbpath, &sb) < 0) {
		snprintf(err, errlen, "%s: %s", dbpath, strerror(errno));
		return -1;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	snprintf(res->damaged, sizeof(res->damaged), "%s.damaged-%s", dbpath,
	    stamp);
	snprintf(repaired, sizeof(repaired), "%s.page1-%s", dbpath, stamp);
	snprintf(fresh, sizeof(fresh), "%s.salvaged-%s", dbpath, stamp);

	/* out of the way first: nothing opens it as the queue again */
	if (rename(dbpath, res->damaged) < 0) {
		snprintf(err, errlen, "cannot rename %s: %s", dbpath,
		    strerror(errno));
		return -1;
	}
	if (rename_companion(dbpath, res->damaged, "-wal") < 0) {
		snprintf(err, errlen, "cannot rename %s-wal: %s", dbpath,
		    strerror(errno));
		goto undo;
	}
	unlink_with(dbpath, "-shm");

	if (fill(fresh, res->damaged, &counts, err, errlen) < 0) {
		if (!counts.schema_lost)
			goto undo;
		/* the fresh store (its import rolled back) is the template */
		if (rebuild_page1(res->damaged, repaired, fresh, err,
		    errlen) < 0 ||
		    fill(fresh, repaired, &counts, err, errlen) < 0)
			goto undo;
		res->page1_rebuilt = 1;
		remove_db(repaired);
	}
	res->found = counts.found;
	res->messages = counts.messages;
	res->recipients = counts.recipients;
	res->damaged_spots = counts.damaged_spots;
	res->history = counts.history;

	/* the queue user's file again, as the damaged one was (readable and
	 * writable by its owner, whatever the damaged file's mode was) */
	if (chown(fresh, sb.st_uid, sb.st_gid) < 0 ||
	    chmod(fresh, (sb.st_mode & 0777) | 0600) < 0) {
		snprintf(err, errlen, "%s: %s", fresh, strerror(errno));
		goto undo;
	}
	if (rename(fresh, dbpath) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", fresh,
		    dbpath, strerror(errno));
		goto undo;
	}
	/* the new file has no WAL to lose */
	unlink_with(dbpath, STORE_WAL_MARK_SUFFIX);
	(void)sync_dir(dbpath);
	return 0;

undo:
	remove_db(repaired);
	remove_db(fresh);
	if (rename(res->damaged, dbpath) == 0)
		(void)rename_companion(res->damaged, dbpath, "-wal");
	res->damaged[0] = '\0';
	return -1;
}
