/*
 * wal_gather.h - an SQLite VFS over the default one that writes each
 * commit's WAL frames in one system call (wal_gather.c).
 */
#ifndef FERRY_WAL_GATHER_H
#define FERRY_WAL_GATHER_H

/* Registers the VFS (once; not the default) and returns its name for
 * sqlite3_open_v2, or NULL when it cannot (then open with the default:
 * only the write pattern differs). */
const char *wal_gather_vfs(void);
/* Frees the buffers of WAL files with nothing gathered: for a process at
 * rest (the next commit allocates again). */
void wal_gather_release(void);

#endif
