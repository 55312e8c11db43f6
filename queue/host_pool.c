/*
 * host_pool.c - one route's smarthost pool: host choice by priority and
 * smooth weighted round robin, and a circuit breaker per host (see
 * host_pool.h).  Pure bookkeeping over a small array: no I/O, the caller
 * passes the time.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "host_pool.h"
#include "util.h"

struct pool_host {
	char name[HOST_NAME_MAX_LEN];
	int priority, weight;
	long credit;              /* smooth weighted round robin */
	enum host_state state;
	int failures;             /* in a row */
	uint64_t failures_total;
	int cooldown;             /* the current one, seconds */
	double open_until;
	double active_at;         /* next active probe */
	char last_error[HOST_ERROR_MAX];
};

struct host_pool {
	struct pool_host hosts[HOST_POOL_MAX];
	size_t n;
	struct host_pool_policy pol;
	int last_failed;          /* the host that failed last, -1: none */
};

struct host_pool *
host_pool_new(const char *const *names, const int *priority,
    const int *weight, size_t n, const struct host_pool_policy *pol)
{
	struct host_pool *p = xcalloc(1, sizeof(*p));
	size_t i;

	if (n > HOST_POOL_MAX)
		n = HOST_POOL_MAX;
	p->pol = *pol;
	if (p->pol.failures < 1)
		p->pol.failures = 1;
	if (p->pol.cooldown < 1)
		p->pol.cooldown = 1;
	if (p->pol.cooldown_max < p->pol.cooldown)
		p->pol.cooldown_max = p->pol.cooldown;
	p->last_failed = -1;
	p->n = n;
	for (i = 0; i < n; i++) {
		struct pool_host *h = &p->hosts[i];

		ferry_strlcpy(h->name, names[i], sizeof(h->name));
		h->priority = priority[i];
		h->weight = weight[i] > 0 ? weight[i] : 1;
		h->state = HOST_UP;
		h->cooldown = p->pol.cooldown;
	}
	return p;
}

void
host_pool_free(struct host_pool *p)
{
	free(p);
}

size_t
host_pool_size(const struct host_pool *p)
{
	return p->n;
}

int
host_pool_find(const struct host_pool *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->hosts[i].name, name) == 0)
			return (int)i;
	return -1;
}

void
host_pool_view(const struct host_pool *p, size_t i, struct host_pool_view *v)
{
	const struct pool_host *h = &p->hosts[i];

	v->name = h->name;
	v->priority = h->priority;
	v->weight = h->weight;
	v->state = h->state;
	v->open_until = h->open_until;
	v->failures = h->failures;
	v->failures_total = h->failures_total;
	v->last_error = h->last_error;
}

const char *
host_state_name(enum host_state s)
{
	switch (s) {
	case HOST_UP: return "up";
	case HOST_OPEN: return "open";
	case HOST_PROBING: return "probing";
	}
	return "?";
}

const char *
host_outcome_name(enum host_outcome o)
{
	switch (o) {
	case HOST_OK: return "ok";
	case HOST_CONNECT_FAILED: return "connection failed";
	case HOST_TLS_FAILED: return "TLS handshake failed";
	case HOST_421: return "421";
	}
	return "?";
}

void
host_pool_adopt(struct host_pool *to, const struct host_pool *from)
{
	size_t i;
	int k;

	for (i = 0; i < to->n; i++) {
		struct pool_host *h = &to->hosts[i];
		const struct pool_host *o;

		if ((k = host_pool_find(from, h->name)) < 0)
			continue;
		o = &from->hosts[k];
		h->state = o->state;
		h->failures = o->failures;
		h->failures_total = o->failures_total;
		h->cooldown = o->cooldown > to->pol.cooldown_max ?
		    to->pol.cooldown_max : o->cooldown < to->pol.cooldown ?
		    to->pol.cooldown : o->cooldown;
		h->open_until = o->open_until;
		h->active_at = o->active_at;
		memcpy(h->last_error, o->last_error, sizeof(h->last_error));
		if (from->last_failed == k)
			to->last_failed = (int)i;
	}
}

/* Whether a job may go to host h now; *probe: it would be the probe. */
static int
usable(const struct pool_host *h, double now, int *probe)
{
	*probe = 0;
	if (h->state == HOST_UP)
		return 1;
	if (h->state == HOST_OPEN && now >= h->open_until) {
		*probe = 1;
		return 1;
	}
	return 0;
}

/* The best priority with a usable host; 0 when there is none. */
static int
best_priority(const struct host_pool *p, double now, int *prio)
{
	size_t i;
	int found = 0, probe;

	for (i = 0; i < p->n; i++)
		if (usable(&p->hosts[i], now, &probe) &&
		    (!found || p->hosts[i].priority < *prio)) {
			*prio = p->hosts[i].priority;
			found = 1;
		}
	return found;
}

int
host_pool_usable(const struct host_pool *p, double now)
{
	int prio;

	return best_priority(p, now, &prio);
}

int
host_pool_any_up(const struct host_pool *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->hosts[i].state == HOST_UP)
			return 1;
	return 0;
}

double
host_pool_next_probe(const struct host_pool *p)
{
	double at = 0;
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->hosts[i].state == HOST_OPEN &&
		    (at == 0 || p->hosts[i].open_until < at))
			at = p->hosts[i].open_until;
	return at;
}

const char *
host_pool_last_error(const struct host_pool *p)
{
	return p->last_failed >= 0 ? p->hosts[p->last_failed].last_error : "";
}

/* Smooth weighted round robin over the hosts up at priority prio. */
static int
swrr(struct host_pool *p, int prio)
{
	long total = 0;
	int best = -1;
	size_t i;

	for (i = 0; i < p->n; i++) {
		struct pool_host *h = &p->hosts[i];

		if (h->state != HOST_UP || h->priority != prio)
			continue;
		h->credit += h->weight;
		total += h->weight;
		if (best < 0 || h->credit > p->hosts[best].credit)
			best = (int)i;
	}
	if (best >= 0)
		p->hosts[best].credit -= total;
	return best;
}

/* The other hosts up after the chosen one, by priority and in pool
 * order within a priority (an insertion sort: it is stable). */
static size_t
fallbacks(const struct host_pool *p, size_t chosen, size_t *order,
    size_t n, size_t max)
{
	size_t i, k, first = n;

	for (i = 0; i < p->n && n < max; i++) {
		if (i == chosen || p->hosts[i].state != HOST_UP)
			continue;
		for (k = n; k > first && p->hosts[order[k - 1]].priority >
		    p->hosts[i].priority; k--)
			order[k] = order[k - 1];
		order[k] = i;
		n++;
	}
	return n;
}

size_t
host_pool_choose(struct host_pool *p, double now, size_t *order,
    size_t max, int *probe)
{
	int prio, chosen = -1, pr;
	size_t i;

	*probe = 0;
	if (max == 0 || !best_priority(p, now, &prio))
		return 0;
	/* a host of that priority whose cooldown is over: its probe */
	for (i = 0; i < p->n; i++)
		if (p->hosts[i].priority == prio &&
		    usable(&p->hosts[i], now, &pr) && pr) {
			chosen = (int)i;
			p->hosts[i].state = HOST_PROBING;
			*probe = 1;
			break;
		}
	if (chosen < 0)
		chosen = swrr(p, prio);
	if (chosen < 0)
		return 0;
	order[0] = (size_t)chosen;
	return fallbacks(p, (size_t)chosen, order, 1, max);
}

static void
open_circuit(struct pool_host *h, double now)
{
	h->state = HOST_OPEN;
	h->open_until = now + h->cooldown;
	h->credit = 0;
}

enum host_change
host_pool_result(struct host_pool *p, size_t i, enum host_outcome outcome,
    const char *error, double now)
{
	struct pool_host *h;

	if (i >= p->n)
		return HOST_SAME;
	h = &p->hosts[i];
	if (outcome == HOST_OK) {
		enum host_state was = h->state;

		h->failures = 0;
		h->state = HOST_UP;
		h->cooldown = p->pol.cooldown;
		return was == HOST_UP ? HOST_SAME : HOST_CLOSED;
	}
	h->failures++;
	h->failures_total++;
	ferry_strlcpy(h->last_error, error != NULL && error[0] ? error :
	    host_outcome_name(outcome), sizeof(h->last_error));
	p->last_failed = (int)i;
	switch (h->state) {
	case HOST_PROBING:
		/* the one probe failed: twice the cooldown, up to the cap */
		h->cooldown = h->cooldown > p->pol.cooldown_max / 2 ?
		    p->pol.cooldown_max : h->cooldown * 2;
		open_circuit(h, now);
		return HOST_REOPENED;
	case HOST_OPEN:
		return HOST_SAME;   /* a job that was under way when it opened */
	case HOST_UP:
		break;
	}
	if (h->failures < p->pol.failures)
		return HOST_SAME;
	h->cooldown = p->pol.cooldown;
	open_circuit(h, now);
	return HOST_OPENED;
}

void
host_pool_probe_lost(struct host_pool *p, size_t i)
{
	if (i < p->n && p->hosts[i].state == HOST_PROBING)
		p->hosts[i].state = HOST_OPEN;   /* its cooldown is over */
}

int
host_pool_probe_due(struct host_pool *p, double now)
{
	size_t i;

	if (p->pol.probe_interval <= 0)
		return -1;
	for (i = 0; i < p->n; i++) {
		struct pool_host *h = &p->hosts[i];

		if (h->state == HOST_PROBING || now < h->active_at)
			continue;
		if (h->state == HOST_OPEN && now < h->open_until)
			continue;
		h->active_at = now + p->pol.probe_interval;
		if (h->state == HOST_OPEN)
			h->state = HOST_PROBING;
		return (int)i;
	}
	return -1;
}

double
host_pool_next_active(const struct host_pool *p, double now)
{
	double at = 0, t;
	size_t i;

	if (p->pol.probe_interval <= 0)
		return 0;
	for (i = 0; i < p->n; i++) {
		const struct pool_host *h = &p->hosts[i];

		if (h->state == HOST_PROBING)
			continue;
		t = h->active_at;
		if (h->state == HOST_OPEN && h->open_until > t)
			t = h->open_until;
		if (t < now)
			t = now;
		if (at == 0 || t < at)
			at = t;
	}
	return at;
}
