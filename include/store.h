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

#define STORE_SCHEMA_VERSION 1
#define QID_LEN 12            /* upper-case hex characters */

struct store;

/* Opens (creating and migrating) the database at path in WAL mode with
 * synchronous=FULL.  NULL with a reason in err on failure. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *st);
const char *store_errmsg(struct store *st);

/* Group commit: store_begin opens the write transaction when none is open;
 * store_commit makes it durable (returns 0) or rolls it back (-1). */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
int store_in_transaction(const struct store *st);

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
int store_message_delete(struct store *st, int64_t msgid);
/* Removes messages left 'incoming' by a crash (run at start). Returns the
 * number removed or -1. */
int store_purge_incoming(struct store *st);

/* Counts of messages by state, for status lines and tests. */
int store_count(struct store *st, const char *state, int64_t *n);

#endif
