/*
 * anvil_table.c - the counts behind ferry-anvil (see anvil_table.h): a
 * hash table of client keys and users, leaky buckets for the rates, and
 * the authentication lockout.
 *
 * Security stance: keys come from the SMTP workers, which face the
 * internet; the addresses in them are chosen by clients.  The hash is
 * seeded at random so that a client cannot aim its addresses at one
 * chain, the table has a hard size, and every entry that holds nothing
 * can be dropped.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "anvil_table.h"
#include "util.h"

#define MINUTE_MS 60000

/* A leaky bucket: each event adds MINUTE_MS to level, which drains by
 * `rate` per millisecond; an event fits while level stays within
 * rate * MINUTE_MS.  So a burst of `rate`, then `rate` per minute. */
struct bucket {
	int64_t level;
	int64_t last;
};

struct entry {
	struct entry *next;          /* hash chain */
	uint64_t hash;
	int conns;                   /* open now (client keys) */
	struct bucket conn_rate, msg_rate;
	int auth_failures;           /* within the current window */
	int64_t auth_window_start;
	int64_t locked_until;        /* 0 = not locked */
	char key[];                  /* kind ('a' client, 'u' user), name */
};

struct anvil_table {
	struct anvil_limits lim;
	struct entry **buckets;
	size_t nbuckets;             /* a power of two */
	size_t nentries;
	int connections;
	uint64_t overflows;
	uint64_t seed;
	int64_t last_full_sweep;     /* when full, sweep at most once a second */
	int stress;                  /* in stress now */
	int stress_conns;            /* the connection rule holds */
	int stress_memory;           /* the memory rule holds */
	uint64_t mem_avail, mem_total;   /* kB, last read; total 0: unknown */
	int64_t stress_since;        /* when the state last changed */
	uint64_t stress_entered;     /* times stress began */
	int slots_lent;              /* an answer allowed keeping a slot
	                                since the last recall */
	int recall_due;
};

static uint64_t
hash_key(const struct anvil_table *t, const char *key)
{
	uint64_t h = 14695981039346656037ULL ^ t->seed;

	for (; *key; key++) {
		h ^= (uint8_t)*key;
		h *= 1099511628211ULL;
	}
	/* a final mix, so the seed reaches every bit */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct anvil_table *
anvil_table_new(const struct anvil_limits *lim)
{
	struct anvil_table *t = xcalloc(1, sizeof(*t));

	anvil_table_set_limits(t, lim);
	t->nbuckets = 1024;
	t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
	random_bytes(&t->seed, sizeof(t->seed));
	t->last_full_sweep = INT64_MIN / 4;
	return t;
}

void
anvil_table_free(struct anvil_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->buckets);
	free(t);
}

void
anvil_table_set_limits(struct anvil_table *t, const struct anvil_limits *lim)
{
	t->lim = *lim;
	if (t->lim.max_entries == 0)
		t->lim.max_entries = ANVIL_DEFAULT_MAX_ENTRIES;
}

int
anvil_client_key(const char *addr, char *out, size_t outlen)
{
	struct in_addr a4;
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN];

	if (addr == NULL || outlen < ANVIL_KEY_MAX)
		return -1;
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		if (inet_ntop(AF_INET, &a4, buf, sizeof(buf)) == NULL)
			return -1;
		snprintf(out, outlen, "%s", buf);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, a6.s6_addr + 12, 4);
		if (inet_ntop(AF_INET, &a4, buf, sizeof(buf)) == NULL)
			return -1;
		snprintf(out, outlen, "%s", buf);
		return 0;
	}
	/* one site's /64 is one client: it can pick any address in it */
	memset(a6.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) == NULL)
		return -1;
	snprintf(out, outlen, "%s/64", buf);
	return 0;
}

/* ------------------------------------------------------------- buckets */

static void
bucket_drain(struct bucket *b, int rate, int64_t now)
{
	if (now <= b->last)
		return;
	if (now - b->last >= MINUTE_MS)
		b->level = 0;   /* a whole minute drains any bucket */
	else {
		int64_t d = (now - b->last) * (int64_t)rate;

		b->level = d >= b->level ? 0 : b->level - d;
	}
	b->last = now;
}

/* 1 when one more event fits (and takes it), 0 when over the rate. */
static int
bucket_take(struct bucket *b, int rate, int64_t now)
{
	bucket_drain(b, rate, now);
	if (b->last < now)
		b->last = now;
	if (b->level + MINUTE_MS > (int64_t)rate * MINUTE_MS)
		return 0;
	b->level += MINUTE_MS;
	return 1;
}

/* After bucket_take: the rest of a lease of want events, counted while
 * the bucket stays within half its capacity with them, so that what a
 * worker holds unused never refuses another's client early.  How many
 * are counted in all (1 or want). */
static uint32_t
bucket_lend(struct bucket *b, int rate, uint32_t want)
{
	int64_t cap = (int64_t)rate * MINUTE_MS;

	if (want > 1 && b->level + (int64_t)(want - 1) * MINUTE_MS <=
	    cap / 2) {
		b->level += (int64_t)(want - 1) * MINUTE_MS;
		return want;
	}
	return 1;
}

static void
bucket_give_back(struct bucket *b, int rate, uint32_t n, int64_t now)
{
	int64_t d = (int64_t)n * MINUTE_MS;

	bucket_drain(b, rate, now);
	b->level = d >= b->level ? 0 : b->level - d;
}

static int
bucket_empty(struct bucket *b, int rate, int64_t now)
{
	bucket_drain(b, rate, now);
	return b->level == 0;
}

/* -------------------------------------------------------------- entries */

static void
grow(struct anvil_table *t)
{
	size_t n = t->nbuckets * 2, i;
	struct entry **nb = xcalloc(n, sizeof(*nb));

	for (i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

static int
entry_idle(const struct anvil_table *t, struct entry *e, int64_t now)
{
	int64_t window = (int64_t)t->lim.auth_lockout * 1000;

	return e->conns == 0 &&
	    bucket_empty(&e->conn_rate, t->lim.connection_rate, now) &&
	    bucket_empty(&e->msg_rate, t->lim.message_rate, now) &&
	    e->locked_until <= now &&
	    (e->auth_failures == 0 || now - e->auth_window_start >= window);
}

/* The entry of kind+name; created when create is set and there is room
 * (NULL otherwise). */
static struct entry *
lookup(struct anvil_table *t, char kind, const char *name, int create,
    int64_t now)
{
	char key[ANVIL_KEY_MAX + 512];
	struct entry *e;
	uint64_t h;
	size_t len;

	len = (size_t)snprintf(key, sizeof(key), "%c%s", kind, name);
	if (len >= sizeof(key))
		len = sizeof(key) - 1;   /* absurd user names share a key */
	h = hash_key(t, key);
	for (e = t->buckets[h & (t->nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	if (!create)
		return NULL;
	if (t->nentries >= t->lim.max_entries) {
		if (now - t->last_full_sweep >= 1000) {
			t->last_full_sweep = now;
			anvil_table_expire(t, now);
		}
		if (t->nentries >= t->lim.max_entries) {
			t->overflows++;
			return NULL;
		}
	}
	if (t->nentries >= t->nbuckets && t->nbuckets < (1u << 24))
		grow(t);
	e = xcalloc(1, sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->conn_rate.last = e->msg_rate.last = now;
	e->next = t->buckets[h & (t->nbuckets - 1)];
	t->buckets[h & (t->nbuckets - 1)] = e;
	t->nentries++;
	return e;
}

size_t
anvil_table_expire(struct anvil_table *t, int64_t now)
{
	size_t i, gone = 0;

	for (i = 0; i < t->nbuckets; i++) {
		struct entry **pp = &t->buckets[i];

		while (*pp != NULL) {
			struct entry *e = *pp;

			if (entry_idle(t, e, now)) {
				*pp = e->next;
				free(e);
				t->nentries--;
				gone++;
			} else {
				pp = &e->next;
			}
		}
	}
	return gone;
}

/* ------------------------------------------------------------- actions */

int
anvil_table_connect(struct anvil_table *t, const char *key, int64_t now,
    int *counted)
{
	struct entry *e;

	*counted = 0;
	if (t->connections >= t->lim.max_connections)
		return ANVIL_TOO_MANY_CONNECTIONS;
	e = lookup(t, 'a', key, 1, now);
	if (e == NULL)
		return ANVIL_OK;   /* full: fail open */
	if (e->conns >= t->lim.max_connections_per_client)
		return ANVIL_TOO_MANY_FROM_CLIENT;
	if (!bucket_take(&e->conn_rate, t->lim.connection_rate, now))
		return ANVIL_CONNECTION_RATE;
	e->conns++;
	t->connections++;
	*counted = 1;
	return ANVIL_OK;
}

/* Whether a slot of e may be kept by a worker after its session: only
 * well below every limit it counts towards. */
static int
slot_may_stay(const struct anvil_table *t, const struct entry *e)
{
	int64_t total = t->connections;

	if (t->stress ||
	    (int64_t)e->conns * 2 > t->lim.max_connections_per_client ||
	    total * 2 > t->lim.max_connections)
		return 0;
	return t->lim.stress_threshold <= 0 || total * 200 <
	    (int64_t)t->lim.stress_threshold * t->lim.max_connections;
}

/* An answer allowed keeping slots or did not: a recall is due when one
 * did and this one does not. */
static void
note_keep(struct anvil_table *t, int keep)
{
	if (keep)
		t->slots_lent = 1;
	else if (t->slots_lent) {
		t->slots_lent = 0;
		t->recall_due = 1;
	}
}

static int
connects(struct anvil_table *t, const char *key, int64_t now, int held,
    uint32_t want, int *counted, uint32_t *granted, int *keep)
{
	struct entry *e;

	if (!held && t->connections >= t->lim.max_connections)
		return ANVIL_TOO_MANY_CONNECTIONS;
	e = lookup(t, 'a', key, 1, now);
	if (e == NULL || (held && e->conns == 0)) {
		*granted = want > 0;
		return ANVIL_OK;   /* full: fail open */
	}
	if (!held && e->conns >= t->lim.max_connections_per_client)
		return ANVIL_TOO_MANY_FROM_CLIENT;
	if (want > 0) {
		if (!bucket_take(&e->conn_rate, t->lim.connection_rate,
		    now)) {
			if (held) {
				e->conns--;
				t->connections--;
			}
			return ANVIL_CONNECTION_RATE;
		}
		*granted = bucket_lend(&e->conn_rate, t->lim.connection_rate,
		    want);
	}
	if (!held) {
		e->conns++;
		t->connections++;
		*counted = 1;
	}
	*keep = slot_may_stay(t, e);
	return ANVIL_OK;
}

int
anvil_table_connects(struct anvil_table *t, const char *key, int64_t now,
    int held, uint32_t want, int *counted, uint32_t *granted, int *keep)
{
	int res;

	*counted = 0;
	*granted = 0;
	*keep = 0;
	res = connects(t, key, now, held, want, counted, granted, keep);
	note_keep(t, *keep);
	return res;
}

void
anvil_table_connects_back(struct anvil_table *t, const char *key,
    uint32_t n, int64_t now)
{
	struct entry *e = lookup(t, 'a', key, 0, now);

	if (e != NULL)
		bucket_give_back(&e->conn_rate, t->lim.connection_rate, n,
		    now);
}

int
anvil_table_recall_due(struct anvil_table *t)
{
	int due = t->recall_due;

	t->recall_due = 0;
	return due;
}

void
anvil_table_disconnect(struct anvil_table *t, const char *key, int64_t now)
{
	struct entry *e = lookup(t, 'a', key, 0, now);

	if (e == NULL || e->conns == 0)
		return;
	e->conns--;
	t->connections--;
}

int
anvil_table_message(struct anvil_table *t, const char *key, int64_t now)
{
	uint32_t granted;

	return anvil_table_messages(t, key, now, 1, &granted);
}

int
anvil_table_messages(struct anvil_table *t, const char *key, int64_t now,
    uint32_t want, uint32_t *granted)
{
	struct entry *e = lookup(t, 'a', key, 1, now);

	*granted = 0;
	if (e == NULL) {
		*granted = 1;    /* not counted: the table is full */
		return ANVIL_OK;
	}
	if (!bucket_take(&e->msg_rate, t->lim.message_rate, now))
		return ANVIL_MESSAGE_RATE;
	*granted = bucket_lend(&e->msg_rate, t->lim.message_rate, want);
	return ANVIL_OK;
}

void
anvil_table_messages_back(struct anvil_table *t, const char *key,
    uint32_t n, int64_t now)
{
	struct entry *e = lookup(t, 'a', key, 0, now);

	if (e != NULL)
		bucket_give_back(&e->msg_rate, t->lim.message_rate, n, now);
}

static int
locked(const struct entry *e, int64_t now)
{
	return e != NULL && e->locked_until > now;
}

int
anvil_table_auth_check(struct anvil_table *t, const char *key,
    const char *user, int64_t now)
{
	if (locked(lookup(t, 'a', key, 0, now), now))
		return ANVIL_AUTH_LOCKED;
	if (user != NULL && *user != '\0' &&
	    locked(lookup(t, 'u', user, 0, now), now))
		return ANVIL_AUTH_LOCKED;
	return ANVIL_OK;
}

static void
count_failure(const struct anvil_table *t, struct entry *e, int64_t now)
{
	int64_t window = (int64_t)t->lim.auth_lockout * 1000;

	if (e == NULL || e->locked_until > now)
		return;
	if (e->auth_failures == 0 || now - e->auth_window_start >= window) {
		e->auth_failures = 0;
		e->auth_window_start = now;
	}
	if (++e->auth_failures >= t->lim.auth_max_failures) {
		e->locked_until = now + window;
		e->auth_failures = 0;
	}
}

void
anvil_table_auth_failed(struct anvil_table *t, const char *key,
    const char *user, int64_t now)
{
	count_failure(t, lookup(t, 'a', key, 1, now), now);
	if (user != NULL && *user != '\0')
		count_failure(t, lookup(t, 'u', user, 1, now), now);
}

size_t
anvil_table_entries(const struct anvil_table *t)
{
	return t->nentries;
}

int
anvil_table_connections(const struct anvil_table *t)
{
	return t->connections;
}

uint64_t
anvil_table_overflows(const struct anvil_table *t)
{
	return t->overflows;
}

int
anvil_stress_decide(int was_on, int connections, int max_connections,
    int threshold)
{
	int64_t used = (int64_t)connections * 100;
	int leave;

	if (threshold <= 0 || max_connections <= 0)
		return 0;
	if (!was_on)
		return used >= (int64_t)threshold * max_connections;
	leave = threshold > ANVIL_STRESS_HYSTERESIS ?
	    threshold - ANVIL_STRESS_HYSTERESIS : threshold / 2;
	/* stays on until the count falls under the lower mark (at a
	 * threshold of 1 that is when no connection is left) */
	return connections > 0 && used >= (int64_t)leave * max_connections;
}

int
anvil_memory_stress_decide(int was_on, uint64_t avail, uint64_t total,
    int threshold)
{
	int leave;

	if (threshold <= 0 || total == 0)
		return 0;
	if (avail > total)
		avail = total;
	/* compared in percent times total: no rounding at the edge */
	if (!was_on)
		return avail * 100 < (uint64_t)threshold * total;
	leave = threshold + ANVIL_STRESS_MEMORY_HYSTERESIS;
	return avail * 100 < (uint64_t)leave * total;
}

/* The value of a "Name:   123 kB" line; -1 when there is none. */
static int
meminfo_field(const char *text, size_t len, const char *name,
    uint64_t *out)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		size_t end = i;

		while (end < len && text[end] != '\n')
			end++;
		if (end - i > nlen && memcmp(text + i, name, nlen) == 0 &&
		    text[i + nlen] == ':') {
			uint64_t v = 0;
			size_t k = i + nlen + 1;
			int digits = 0;

			while (k < end && text[k] == ' ')
				k++;
			while (k < end && text[k] >= '0' && text[k] <= '9' &&
			    v < UINT64_MAX / 10 - 10) {
				v = v * 10 + (uint64_t)(text[k++] - '0');
				digits++;
			}
			if (digits == 0)
				return -1;
			*out = v;
			return 0;
		}
		i = end + 1;
	}
	return -1;
}

int
anvil_meminfo_parse(const char *text, size_t len, uint64_t *total_kb,
    uint64_t *avail_kb)
{
	if (meminfo_field(text, len, "MemTotal", total_kb) < 0 ||
	    meminfo_field(text, len, "MemAvailable", avail_kb) < 0)
		return -1;
	return 0;
}

void
anvil_table_set_memory(struct anvil_table *t, uint64_t avail_kb,
    uint64_t total_kb)
{
	t->mem_avail = avail_kb;
	t->mem_total = total_kb;
}

int
anvil_table_memory_percent(const struct anvil_table *t)
{
	uint64_t a = t->mem_avail;

	if (t->mem_total == 0)
		return -1;
	if (a > t->mem_total)
		a = t->mem_total;
	return (int)(a * 100 / t->mem_total);
}

int
anvil_table_stress_by_connections(const struct anvil_table *t)
{
	return t->stress_conns;
}

int
anvil_table_stress_by_memory(const struct anvil_table *t)
{
	return t->stress_memory;
}

int
anvil_table_stress_update(struct anvil_table *t, int64_t now)
{
	int on;

	t->stress_conns = anvil_stress_decide(t->stress_conns,
	    t->connections, t->lim.max_connections, t->lim.stress_threshold);
	t->stress_memory = anvil_memory_stress_decide(t->stress_memory,
	    t->mem_avail, t->mem_total, t->lim.stress_memory_available);
	on = t->stress_conns || t->stress_memory;
	if (on == t->stress)
		return 0;
	t->stress = on;
	t->stress_since = now;
	if (on) {
		t->stress_entered++;
		return 1;
	}
	return -1;
}

int
anvil_table_stress(const struct anvil_table *t)
{
	return t->stress;
}

int64_t
anvil_table_stress_since(const struct anvil_table *t)
{
	return t->stress_since;
}

uint64_t
anvil_table_stress_entered(const struct anvil_table *t)
{
	return t->stress_entered;
}
