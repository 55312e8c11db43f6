/*
 * anvil_table.h - the counting of ferry-anvil, as a pure module: no I/O,
 * no clock; every call takes the time (milliseconds) from the caller, so
 * tests drive it with explicit timestamps.
 *
 * Per client key: connections open now, a leaky bucket of connection
 * starts and one of messages (a burst of `rate` events, then `rate` per
 * minute), and authentication failures.  Per user: authentication
 * failures.  In all: the connections open.  A client key is the numeric
 * address, except that IPv6 clients are counted per /64 (one customer's
 * prefix) and IPv4-mapped IPv6 addresses as IPv4.
 *
 * Stress: the relay is in stress while the connections in all reach
 * stress_threshold percent of max_connections; it leaves stress when
 * they fall below ANVIL_STRESS_HYSTERESIS points under that (half the
 * threshold when the threshold is that low), so a count hovering at
 * the threshold does not flap.  Memory counts too: the relay is also in
 * stress while the machine's available memory is under
 * stress_memory_available percent of its total, until it is
 * ANVIL_STRESS_MEMORY_HYSTERESIS points over that again.  Either rule
 * puts the relay in stress; it leaves when neither holds.
 * anvil_stress_decide() and anvil_memory_stress_decide() are the rules
 * alone; anvil_table_stress_update() applies them to the table's count
 * and the last memory reading, and keeps the state, since when, and how
 * many times stress was entered.
 *
 * Memory is bounded: idle entries are expired by anvil_table_expire, and
 * at most max_entries exist; beyond that a new key is not tracked and the
 * action is allowed (fail open), counted in `overflows` for the caller
 * to log.
 */
#ifndef FERRY_ANVIL_TABLE_H
#define FERRY_ANVIL_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "anvil_client.h"   /* the ANVIL_* results */

#define ANVIL_DEFAULT_MAX_ENTRIES 100000
#define ANVIL_KEY_MAX 64     /* room for any key, NUL included */

struct anvil_limits {
	int max_connections;             /* in all */
	int max_connections_per_client;
	int connection_rate;             /* per client key per minute */
	int message_rate;                /* per client key per minute */
	int auth_max_failures;           /* within auth_lockout seconds */
	int auth_lockout;                /* seconds */
	size_t max_entries;              /* 0 = ANVIL_DEFAULT_MAX_ENTRIES */
	int stress_threshold;            /* percent of max_connections;
	                                    0 = never in stress */
	int stress_timeout;              /* seconds; handed to the workers */
	int stress_memory_available;     /* percent of the machine's memory;
	                                    0 = memory never puts the relay
	                                    in stress */
};

#define ANVIL_STRESS_HYSTERESIS 10   /* percentage points */
#define ANVIL_STRESS_MEMORY_HYSTERESIS 5

struct anvil_table;

struct anvil_table *anvil_table_new(const struct anvil_limits *lim);
void anvil_table_free(struct anvil_table *t);
/* New limits; the counts stay. */
void anvil_table_set_limits(struct anvil_table *t,
    const struct anvil_limits *lim);

/* The client key of a numeric address into out (ANVIL_KEY_MAX bytes):
 * 0, or -1 when addr is not a numeric IPv4 or IPv6 address. */
int anvil_client_key(const char *addr, char *out, size_t outlen);

/* A connection from key starts.  ANVIL_OK (then *counted says whether
 * it was counted and must be released with anvil_table_disconnect; it is
 * not when the table is full) or the limit that refuses it. */
int anvil_table_connect(struct anvil_table *t, const char *key,
    int64_t now, int *counted);
/* A counted connection of key ended. */
void anvil_table_disconnect(struct anvil_table *t, const char *key,
    int64_t now);
/* A connection from key starts, with a lease (anvil_client.h explains
 * the rule).  held: it takes a slot the asking worker holds for key
 * already (a kept slot, counted): the concurrency limits are not checked
 * again and nothing more is counted, and when the rate refuses it the
 * slot is released.  want: connection-rate events wanted, 0 when the
 * worker was lent one already (then the rate is not checked), else all
 * of them while the key stays under half its connection rate with them,
 * else one (as anvil_table_connect).  *counted: a new slot was counted
 * (release it with anvil_table_disconnect); *granted: rate events
 * counted; *keep: the slot may be kept once its session ends, as the
 * key has at most half max_connections_per_client, the relay at most
 * half max_connections and at most half the stress threshold, and is
 * not in stress. */
int anvil_table_connects(struct anvil_table *t, const char *key,
    int64_t now, int held, uint32_t want, int *counted,
    uint32_t *granted, int *keep);
/* n connection-rate events of a lease were not used: they count no
 * more. */
void anvil_table_connects_back(struct anvil_table *t, const char *key,
    uint32_t n, int64_t now);
/* 1 once when slots kept by workers must go back: an answer allowed
 * keeping (*keep) since the last recall, and a later one did not (a
 * client or the relay came near a limit, or one was refused). */
int anvil_table_recall_due(struct anvil_table *t);
/* A mail transaction from key: ANVIL_OK or ANVIL_MESSAGE_RATE. */
int anvil_table_message(struct anvil_table *t, const char *key,
    int64_t now);
/* A lease of up to want mail transactions from key, so that a worker
 * need not ask for each: all of them while the key stays under half its
 * message rate with them, else one (as anvil_table_message).  *granted
 * is how many were counted (0 when refused). */
int anvil_table_messages(struct anvil_table *t, const char *key,
    int64_t now, uint32_t want, uint32_t *granted);
/* n messages of a lease were not used: they count no more. */
void anvil_table_messages_back(struct anvil_table *t, const char *key,
    uint32_t n, int64_t now);
/* ANVIL_OK or ANVIL_AUTH_LOCKED (the client key or the user is locked
 * out).  user may be "" or NULL. */
int anvil_table_auth_check(struct anvil_table *t, const char *key,
    const char *user, int64_t now);
/* One failed authentication of user (may be "") from key. */
void anvil_table_auth_failed(struct anvil_table *t, const char *key,
    const char *user, int64_t now);

/* The stress rule: whether the relay is in stress with `connections`
 * open of `max_connections`, given whether it was (was_on) and the
 * threshold in percent (0: never). */
int anvil_stress_decide(int was_on, int connections, int max_connections,
    int threshold);
/* The memory rule: whether the relay is in stress with avail of total
 * (any unit) available, given whether memory put it there (was_on) and
 * the threshold in percent (0: never). */
int anvil_memory_stress_decide(int was_on, uint64_t avail, uint64_t total,
    int threshold);
/* MemTotal and MemAvailable (kB) from the text of /proc/meminfo: 0, or
 * -1 when either is missing. */
int anvil_meminfo_parse(const char *text, size_t len, uint64_t *total_kb,
    uint64_t *avail_kb);
/* The machine's memory as last read (kB); total 0: not known, the
 * memory rule is left out. */
void anvil_table_set_memory(struct anvil_table *t, uint64_t avail_kb,
    uint64_t total_kb);
/* Applies the rules to the connections open now and the last memory
 * reading: +1 when stress begins, -1 when it ends, 0 when nothing
 * changes. */
int anvil_table_stress_update(struct anvil_table *t, int64_t now);
int anvil_table_stress(const struct anvil_table *t);
/* Which rules hold now (as of the last update). */
int anvil_table_stress_by_connections(const struct anvil_table *t);
int anvil_table_stress_by_memory(const struct anvil_table *t);
/* Available memory in percent of the total as last read; -1 unknown. */
int anvil_table_memory_percent(const struct anvil_table *t);
/* When the current state (on or off) began; 0 before any change. */
int64_t anvil_table_stress_since(const struct anvil_table *t);
/* Times stress was entered since the start (kept across reloads). */
uint64_t anvil_table_stress_entered(const struct anvil_table *t);

/* Forgets entries that hold nothing any more; returns how many. */
size_t anvil_table_expire(struct anvil_table *t, int64_t now);

size_t anvil_table_entries(const struct anvil_table *t);
int anvil_table_connections(const struct anvil_table *t);
/* New keys not tracked because the table was full, since the start. */
uint64_t anvil_table_overflows(const struct anvil_table *t);

#endif
