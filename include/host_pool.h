/*
 * host_pool.h - the hosts of one route's smarthost pool, for the queue
 * runner: which host a job goes to first, which ones it may fail over
 * to, and each host's circuit breaker (host_pool.c).
 *
 * Hosts are grouped by priority (smaller is preferred, as MX
 * preferences).  A job goes to the best priority that has a host up,
 * spread over that priority's hosts by weight with a smooth weighted
 * round robin (nginx's: each choice adds every host's weight to its
 * credit, takes the host with the most credit and charges it the total;
 * over a cycle of sum(weights) choices each host is taken exactly
 * weight times, interleaved).  A lower priority is used only when every
 * better host is down.
 *
 * Breaker: `failures` failures in a row (connection refused or timed
 * out, TLS handshake failed, a 421) open a host's circuit: it is
 * skipped for `cooldown` seconds.  Then ONE probe decides - the first
 * job that would go to it, or the active probe: success closes the
 * circuit, failure opens it again for twice the last cooldown (at most
 * cooldown_max).  Pure: no I/O, the caller passes the time.
 */
#ifndef FERRY_HOST_POOL_H
#define FERRY_HOST_POOL_H

#include <stddef.h>
#include <stdint.h>

#define HOST_POOL_MAX 32          /* hosts in a pool (= JOB_MAX_HOSTS) */
#define HOST_NAME_MAX_LEN 256
#define HOST_ERROR_MAX 512

enum host_state {
	HOST_UP,                  /* circuit closed */
	HOST_OPEN,                /* skipped until open_until */
	HOST_PROBING              /* cooldown over, its one probe in flight */
};

/* What a delivery agent reports of one host it tried. */
enum host_outcome {
	HOST_OK = 0,              /* it answered (whatever it said of the
	                             recipients) */
	HOST_CONNECT_FAILED,      /* refused, timed out, lost, no greeting */
	HOST_TLS_FAILED,          /* the TLS handshake failed */
	HOST_421,                 /* 421 at the greeting or later */
	HOST_OUTCOME_MAX = HOST_421
};

/* What a result did to the host's circuit (for the log). */
enum host_change {
	HOST_SAME,
	HOST_OPENED,              /* failures reached the threshold */
	HOST_REOPENED,            /* its probe failed */
	HOST_CLOSED               /* it answered after being open */
};

struct host_pool_policy {
	int failures;             /* failures in a row that open a circuit */
	int cooldown;             /* seconds an open circuit is skipped */
	int cooldown_max;         /* cap of the doubling cooldown */
	int probe_interval;       /* active probe every N seconds; 0 = off */
};

/* One host as status and metrics show it. */
struct host_pool_view {
	const char *name;         /* "host:port" */
	int priority, weight;
	enum host_state state;
	double open_until;        /* HOST_OPEN: when its probe may go */
	int failures;             /* in a row */
	uint64_t failures_total;
	const char *last_error;   /* "" when none */
};

struct host_pool;

/* A pool of names[0..n) (at most HOST_POOL_MAX), with priority[i] and
 * weight[i] (weight >= 1). */
struct host_pool *host_pool_new(const char *const *names,
    const int *priority, const int *weight, size_t n,
    const struct host_pool_policy *pol);
void host_pool_free(struct host_pool *p);
size_t host_pool_size(const struct host_pool *p);
/* The index of the host called name, -1 when it is not in the pool. */
int host_pool_find(const struct host_pool *p, const char *name);
void host_pool_view(const struct host_pool *p, size_t i,
    struct host_pool_view *v);
const char *host_state_name(enum host_state s);
const char *host_outcome_name(enum host_outcome o);

/* After a reload: each host of to that from also has (same name) takes
 * its state, failures and cooldown, so a reload does not bring back a
 * host that is down. */
void host_pool_adopt(struct host_pool *to, const struct host_pool *from);

/* Whether a job could go somewhere now: a host up, or one whose
 * cooldown is over (it would be the probe).  No side effect. */
int host_pool_usable(const struct host_pool *p, double now);
/* Whether a host's circuit is closed. */
int host_pool_any_up(const struct host_pool *p);
/* When a host of an all-down pool may next be probed (the earliest end
 * of a cooldown); 0 when no host is open. */
double host_pool_next_probe(const struct host_pool *p);
/* The last error of the pool (the host that failed last), "" if none. */
const char *host_pool_last_error(const struct host_pool *p);

/* The hosts for one job, into order[0..max): the chosen host first,
 * then the other hosts up, by priority and pool order, as fallback.
 * When the chosen host's cooldown was over it is now probing and
 * *probe is set.  Returns how many (0: every host down). */
size_t host_pool_choose(struct host_pool *p, double now, size_t *order,
    size_t max, int *probe);
/* What a job or probe found at host i.  error: why it failed (kept for
 * status).  Returns what changed. */
enum host_change host_pool_result(struct host_pool *p, size_t i,
    enum host_outcome outcome, const char *error, double now);
/* Host i's probe went without a word (its job never reached it, or the
 * agent died): it may be probed again. */
void host_pool_probe_lost(struct host_pool *p, size_t i);

/* The active probe: the index of a host due for one at now (marked as
 * probed; an open host only once its cooldown is over, and it is then
 * probing), or -1.  Never when probe_interval is 0. */
int host_pool_probe_due(struct host_pool *p, double now);
/* When the next active probe is due (0: off). */
double host_pool_next_active(const struct host_pool *p, double now);

#endif
