/*
 * wal_gather.c - an SQLite VFS that writes each transaction's WAL frames
 * to the file in one pwrite instead of two per page (wal_gather.h).
 *
 * SQLite appends a frame as two writes: its 24-byte header, then the
 * page.  A commit of twenty pages is forty system calls, in the queue
 * runner's hottest path.  This VFS wraps the default one ("unix") and
 * changes one thing: on a WAL file, writes that follow one another are
 * gathered in memory, and go out in one pwrite when the commit frame's
 * page arrives - inside that xWrite call, so a failure (a full disk)
 * reaches SQLite exactly where it would have without gathering, before
 * the commit is published in the WAL index.  Anything else on the file
 * (a read, a sync, a size, a truncate, a write elsewhere, a file
 * control, closing) writes what is gathered first, and so does every
 * lock or barrier on the database's shared memory, so no reader in this
 * or another process ever sees an index that points past what is in
 * the file.  A crash before the flush loses only frames of a commit that
 * had not returned: nothing acknowledged.  Database and journal files
 * pass through untouched.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "wal_gather.h"

#define GATHER_MAX (1024 * 1024)  /* bytes held at most before a write */
#define FRAME_HEADER 24           /* a WAL frame's header (SQLite's format) */
#define WRITE_PIECE (124 * 1024)  /* bytes per write of the wrapped VFS */

/* One open file: the wrapped one follows this struct in the same
 * allocation (szOsFile is ours plus the wrapped VFS's). */
struct gfile {
	sqlite3_file base;
	sqlite3_file *real;
	int wal;                  /* a WAL file: writes are gathered */
	unsigned char *buf;       /* what is gathered, written at off */
	int len, cap;
	sqlite3_int64 off;
	int commit_next;          /* the last header gathered was a commit
	                             frame's: its page ends the commit */
	struct gfile *next;       /* the process's open WAL files */
};

static sqlite3_vfs gather_vfs;
static sqlite3_io_methods gather_methods;
static struct gfile *wal_files;   /* SQLite serializes the connections
                                     of a process that use this VFS
                                     (the runner has one) */

static sqlite3_vfs *
real_vfs(void)
{
	return (sqlite3_vfs *)gather_vfs.pAppData;
}

/* Writes what is gathered, in pieces the wrapped VFS takes whole (the
 * unix VFS writes at most 128 KiB less a byte per call).  SQLite's
 * result code. */
static int
flush(struct gfile *f)
{
	int rc = SQLITE_OK, done = 0;

	while (rc == SQLITE_OK && done < f->len) {
		int n = f->len - done < WRITE_PIECE ? f->len - done :
		    WRITE_PIECE;

		rc = f->real->pMethods->xWrite(f->real, f->buf + done, n,
		    f->off + done);
		done += n;
	}
	f->len = 0;
	f->commit_next = 0;
	return rc;
}

/* Every WAL file's gathered frames, before the shared index moves. */
static int
flush_all(void)
{
	struct gfile *f;
	int rc = SQLITE_OK;

	for (f = wal_files; f != NULL; f = f->next) {
		int r = flush(f);

		if (r != SQLITE_OK && rc == SQLITE_OK)
			rc = r;
	}
	return rc;
}

static int
g_close(sqlite3_file *file)
{
	struct gfile *f = (struct gfile *)file, **pp;
	int rc = f->wal ? flush(f) : SQLITE_OK, rc2;

	for (pp = &wal_files; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	free(f->buf);
	f->buf = NULL;
	rc2 = f->real->pMethods->xClose(f->real);
	return rc != SQLITE_OK ? rc : rc2;
}

static int
g_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	if (f->wal && (rc = flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xRead(f->real, out, amt, off);
}

static int
g_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct gfile *f = (struct gfile *)file;
	int rc, ends_commit;

	if (!f->wal)
		return f->real->pMethods->xWrite(f->real, data, amt, off);
	if (f->len > 0 && (off != f->off + f->len || f->len + amt >
	    GATHER_MAX) && (rc = flush(f)) != SQLITE_OK)
		return rc;
	if (amt > GATHER_MAX)
		return f->real->pMethods->xWrite(f->real, data, amt, off);
	if (f->len == 0)
		f->off = off;
	if (f->len + amt > f->cap) {
		int cap = f->cap ? f->cap : 65536;
		unsigned char *nb;

		while (cap < f->len + amt)
			cap *= 2;
		if ((nb = realloc(f->buf, (size_t)cap)) == NULL) {
			/* no room to gather: write as SQLite asked */
			if ((rc = flush(f)) != SQLITE_OK)
				return rc;
			return f->real->pMethods->xWrite(f->real, data, amt,
			    off);
		}
		f->buf = nb;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, data, (size_t)amt);
	f->len += amt;
	/* a frame header: its second word, the database size after a
	 * commit, is nonzero only on a transaction's last frame */
	ends_commit = f->commit_next && amt != FRAME_HEADER;
	if (amt == FRAME_HEADER) {
		const unsigned char *h = data;

		f->commit_next = (h[4] | h[5] | h[6] | h[7]) != 0;
	} else if (ends_commit)
		return flush(f);
	return SQLITE_OK;
}

static int
g_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	if (f->wal && (rc = flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xTruncate(f->real, size);
}

static int
g_sync(sqlite3_file *file, int flags)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	if (f->wal && (rc = flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xSync(f->real, flags);
}

static int
g_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	if (f->wal && (rc = flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xFileSize(f->real, size);
}

static int
g_lock(sqlite3_file *file, int lock)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int
g_unlock(sqlite3_file *file, int lock)
{
	struct gfile *f = (struct gfile *)file;
	int rc = flush_all();

	if (rc != SQLITE_OK)
		return rc;
	return f->real->pMethods->xUnlock(f->real, lock);
}

static int
g_check_reserved(sqlite3_file *file, int *out)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int
g_file_control(sqlite3_file *file, int op, void *arg)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	if (f->wal && (rc = flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int
g_sector_size(sqlite3_file *file)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int
g_device_characteristics(sqlite3_file *file)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int
g_shm_map(sqlite3_file *file, int page, int size, int extend,
    void volatile **out)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}

static int
g_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct gfile *f = (struct gfile *)file;
	int rc = flush_all();

	if (rc != SQLITE_OK)
		return rc;
	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void
g_shm_barrier(sqlite3_file *file)
{
	struct gfile *f = (struct gfile *)file;

	/* nothing should be left here (a commit flushes at its last
	 * frame); a failure now shows at the next write or sync */
	(void)flush_all();
	f->real->pMethods->xShmBarrier(f->real);
}

static int
g_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

static int
g_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	if (f->wal && (rc = flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xFetch(f->real, off, amt, out);
}

static int
g_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct gfile *f = (struct gfile *)file;

	return f->real->pMethods->xUnfetch(f->real, off, p);
}

static int
g_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file,
    int flags, int *out_flags)
{
	struct gfile *f = (struct gfile *)file;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = real_vfs()->xOpen(real_vfs(), name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		/* SQLite calls xClose only when pMethods is set */
		if (f->real->pMethods != NULL)
			f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return rc;
	}
	if (f->real->pMethods->iVersion < 3) {
		f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return SQLITE_CANTOPEN;
	}
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	if (f->wal) {
		f->next = wal_files;
		wal_files = f;
	}
	f->base.pMethods = &gather_methods;
	return SQLITE_OK;
}

static int
g_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs()->xDelete(real_vfs(), name, sync_dir);
}

static int
g_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs()->xAccess(real_vfs(), name, flags, out);
}

static int
g_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs()->xFullPathname(real_vfs(), name, n, out);
}

static void *
g_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return real_vfs()->xDlOpen(real_vfs(), name);
}

static void
g_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	real_vfs()->xDlError(real_vfs(), n, out);
}

static void (*g_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return real_vfs()->xDlSym(real_vfs(), h, sym);
}

static void
g_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	real_vfs()->xDlClose(real_vfs(), h);
}

static int
g_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs()->xRandomness(real_vfs(), n, out);
}

static int
g_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs()->xSleep(real_vfs(), us);
}

static int
g_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs()->xCurrentTime(real_vfs(), out);
}

static int
g_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs()->xGetLastError(real_vfs(), n, out);
}

static int
g_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs()->xCurrentTimeInt64(real_vfs(), out);
}

void
wal_gather_release(void)
{
	struct gfile *f;

	for (f = wal_files; f != NULL; f = f->next)
		if (f->len == 0) {
			free(f->buf);
			f->buf = NULL;
			f->cap = 0;
		}
}

const char *
wal_gather_vfs(void)
{
	sqlite3_vfs *real;

	if (gather_vfs.zName != NULL)
		return gather_vfs.zName;
	if ((real = sqlite3_vfs_find(NULL)) == NULL || real->iVersion < 2)
		return NULL;
	gather_methods.iVersion = 3;
	gather_methods.xClose = g_close;
	gather_methods.xRead = g_read;
	gather_methods.xWrite = g_write;
	gather_methods.xTruncate = g_truncate;
	gather_methods.xSync = g_sync;
	gather_methods.xFileSize = g_file_size;
	gather_methods.xLock = g_lock;
	gather_methods.xUnlock = g_unlock;
	gather_methods.xCheckReservedLock = g_check_reserved;
	gather_methods.xFileControl = g_file_control;
	gather_methods.xSectorSize = g_sector_size;
	gather_methods.xDeviceCharacteristics = g_device_characteristics;
	gather_methods.xShmMap = g_shm_map;
	gather_methods.xShmLock = g_shm_lock;
	gather_methods.xShmBarrier = g_shm_barrier;
	gather_methods.xShmUnmap = g_shm_unmap;
	gather_methods.xFetch = g_fetch;
	gather_methods.xUnfetch = g_unfetch;

	gather_vfs.iVersion = 2;
	gather_vfs.szOsFile = (int)sizeof(struct gfile) + real->szOsFile;
	gather_vfs.mxPathname = real->mxPathname;
	gather_vfs.pAppData = real;
	gather_vfs.xOpen = g_open;
	gather_vfs.xDelete = g_delete;
	gather_vfs.xAccess = g_access;
	gather_vfs.xFullPathname = g_full_pathname;
	gather_vfs.xDlOpen = g_dl_open;
	gather_vfs.xDlError = g_dl_error;
	gather_vfs.xDlSym = g_dl_sym;
	gather_vfs.xDlClose = g_dl_close;
	gather_vfs.xRandomness = g_randomness;
	gather_vfs.xSleep = g_sleep;
	gather_vfs.xCurrentTime = g_current_time;
	gather_vfs.xGetLastError = g_last_error;
	gather_vfs.xCurrentTimeInt64 = g_current_time64;
	gather_vfs.zName = "ferry-wal-gather";
	if (sqlite3_vfs_register(&gather_vfs, 0) != SQLITE_OK) {
		gather_vfs.zName = NULL;
		return NULL;
	}
	return gather_vfs.zName;
}
