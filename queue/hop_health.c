/*
 * hop_health.c - which next hops are down (see hop_health.h).
 *
 * One entry per next hop that failed lately, found by a linear search:
 * a relay has few next hops in trouble at once, and an entry goes when
 * its hop answers again.  Pure bookkeeping: no I/O, the caller passes
 * the time.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "hop_health.h"
#include "util.h"

struct hop {
	char *dest;
	int failures;             /* connection failures in a row */
	int down;
	int probing;              /* a probe job is in flight */
	int probes_failed;        /* since it went down: spaces the probes */
	double probe_at;          /* when the next probe may go */
	double probe_sent_at;     /* when the one in flight went */
	char dsn[16];
	char reason[HOP_REASON_MAX];
	int64_t *held;            /* recipients deferred in bulk */
	size_t nheld, held_cap;
};

struct hop_health {
	struct hop *hops;
	size_t nhops;
};

struct hop_health *
hop_health_new(void)
{
	return xcalloc(1, sizeof(struct hop_health));
}

void
hop_health_free(struct hop_health *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->nhops; i++) {
		free(h->hops[i].dest);
		free(h->hops[i].held);
	}
	free(h->hops);
	free(h);
}

static struct hop *
find(const struct hop_health *h, const char *dest)
{
	size_t i;

	for (i = 0; i < h->nhops; i++)
		if (strcmp(h->hops[i].dest, dest) == 0)
			return &h->hops[i];
	return NULL;
}

static struct hop *
find_or_add(struct hop_health *h, const char *dest)
{
	struct hop *p = find(h, dest);

	if (p != NULL)
		return p;
	h->hops = xrealloc(h->hops, (h->nhops + 1) * sizeof(*h->hops));
	p = &h->hops[h->nhops++];
	memset(p, 0, sizeof(*p));
	p->dest = xstrdup(dest);
	return p;
}

static void
forget(struct hop_health *h, struct hop *p)
{
	size_t i = (size_t)(p - h->hops);

	free(p->dest);
	free(p->held);
	h->hops[i] = h->hops[--h->nhops];
}

/* The wait before probe number n (0 for the first) of a down hop. */
static double
probe_step(int n, const int *steps, size_t nsteps)
{
	if (nsteps == 0)
		return 60;
	if ((size_t)n >= nsteps)
		n = (int)nsteps - 1;
	return steps[n] > 0 ? steps[n] : 1;
}

enum hop_verdict
hop_health_verdict(struct hop_health *h, const char *dest, double now,
    const char **dsn, const char **reason)
{
	struct hop *p = find(h, dest);

	if (p == NULL || !p->down)
		return HOP_SEND;
	*dsn = p->dsn;
	*reason = p->reason;
	if (!p->probing && now >= p->probe_at)
		return HOP_PROBE;
	return HOP_SUSPEND;
}

void
hop_health_probe_sent(struct hop_health *h, const char *dest, double now)
{
	struct hop *p = find(h, dest);

	if (p != NULL && p->down) {
		p->probing = 1;
		p->probe_sent_at = now;
	}
}

int
hop_health_result(struct hop_health *h, const char *dest, int hop_failed,
    const char *dsn, const char *reason, double now, const int *steps,
    size_t nsteps)
{
	struct hop *p = find(h, dest);

	if (!hop_failed) {
		/* the hop answered: it is up, whatever came before */
		if (p == NULL)
			return 0;
		if (!p->down) {
			forget(h, p);
			return 0;
		}
		p->down = 0;
		p->probing = 0;
		p->failures = 0;
		return 1;   /* the caller takes the held ones, then forgets */
	}
	p = find_or_add(h, dest);
	ferry_strlcpy(p->dsn, dsn, sizeof(p->dsn));
	ferry_strlcpy(p->reason, reason, sizeof(p->reason));
	if (p->down) {
		if (p->probing) {
			/* the probe failed: the next one a step after it
			 * went, when the mail held meanwhile comes due
			 * (hop_health_held_until), or now if it took longer */
			p->probing = 0;
			p->probes_failed++;
			p->probe_at = p->probe_sent_at + probe_step(
			    p->probes_failed, steps, nsteps);
			if (p->probe_at < now)
				p->probe_at = now;
		}
		return 0;
	}
	if (++p->failures >= HOP_DOWN_AFTER) {
		p->down = 1;
		p->probing = 0;
		p->probes_failed = 0;
		p->probe_at = now + probe_step(0, steps, nsteps);
	}
	return 0;
}

void
hop_health_mark_down(struct hop_health *h, const char *dest,
    const char *dsn, const char *reason, double probe_at)
{
	struct hop *p = find_or_add(h, dest);

	ferry_strlcpy(p->dsn, dsn, sizeof(p->dsn));
	ferry_strlcpy(p->reason, reason, sizeof(p->reason));
	p->down = 1;
	p->probing = 0;
	p->failures = HOP_DOWN_AFTER;
	p->probe_at = probe_at;
}

double
hop_health_held_until(const struct hop_health *h, const char *dest,
    double now, const int *steps, size_t nsteps)
{
	const struct hop *p = find(h, dest);

	if (p == NULL || !p->down)
		return 0;
	/* one time for all the mail held while a probe is out, however
	 * long the bulk deferral takes: the time of the next probe */
	if (p->probing)
		return p->probe_sent_at + probe_step(p->probes_failed + 1,
		    steps, nsteps);
	if (now >= p->probe_at)
		return now + probe_step(p->probes_failed + 1, steps, nsteps);
	return p->probe_at;
}

#define HELD_SLACK_MAX 2.0   /* seconds a time may be moved earlier */

double
hop_health_held_next(const struct hop_health *h, const char *dest,
    double now, double next, const int *steps, size_t nsteps)
{
	const struct hop *p = find(h, dest);
	double until = hop_health_held_until(h, dest, now, steps, nsteps);
	double step, slack;
	long long k;

	if (until <= 0 || p == NULL)
		return next;
	if (next <= until)
		return until;
	/* the first point of the probes' grid not before it, which is where
	 * the rest of the hop's held mail comes due too, with a probe to
	 * ride on: never before its own time (lifecycle_hold_until moves a
	 * deferral only later), so the hop's held mail comes due in one
	 * batch per step and not in a trickle of wake-ups and commits */
	step = probe_step(p->probes_failed + 1, steps, nsteps);
	/* a time just past a point of the grid (a probe's own mail, due a
	 * step after the probe went, counted from a moment later) takes
	 * that point: a whole step later would leave it out of the batch
	 * for good, one step behind at every probe */
	slack = step / 4 < HELD_SLACK_MAX ? step / 4 : HELD_SLACK_MAX;
	k = (long long)((next - until) / step);
	if (until + (double)k * step < next - slack)
		k++;
	return until + (double)k * step;
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* A recipient deferred at every retry step of a long outage is held once:
 * before the list grows, duplicates go (so it stays within twice the
 * recipients it holds). */
static void
held_unique(struct hop *p)
{
	size_t i, n = 0;

	qsort(p->held, p->nheld, sizeof(*p->held), cmp_id);
	for (i = 0; i < p->nheld; i++)
		if (n == 0 || p->held[n - 1] != p->held[i])
			p->held[n++] = p->held[i];
	p->nheld = n;
}

void
hop_health_hold(struct hop_health *h, const char *dest, int64_t rcpt_id)
{
	struct hop *p = find(h, dest);

	if (p == NULL)
		return;
	if (p->nheld == p->held_cap) {
		if (p->nheld > 0)
			held_unique(p);
		/* grow only when duplicates were not half of it */
		if (p->nheld * 2 > p->held_cap || p->held_cap == 0) {
			p->held_cap = p->held_cap ? p->held_cap * 2 : 256;
			p->held = xrealloc(p->held, p->held_cap *
			    sizeof(*p->held));
		}
	}
	p->held[p->nheld++] = rcpt_id;
}

size_t
hop_health_take_held(struct hop_health *h, const char *dest, int64_t **ids)
{
	struct hop *p = find(h, dest);
	size_t n;

	*ids = NULL;
	if (p == NULL)
		return 0;
	n = p->nheld;
	*ids = p->held;
	p->held = NULL;
	p->nheld = p->held_cap = 0;
	if (!p->down)
		forget(h, p);
	return n;
}

int
hop_health_is_down(const struct hop_health *h, const char *dest)
{
	const struct hop *p = find(h, dest);

	return p != NULL && p->down;
}

size_t
hop_health_down_count(const struct hop_health *h)
{
	size_t i, n = 0;

	for (i = 0; i < h->nhops; i++)
		if (h->hops[i].down)
			n++;
	return n;
}

size_t
hop_health_down_list(const struct hop_health *h, const char **dests,
    size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < h->nhops; i++)
		if (h->hops[i].down) {
			if (n < max)
				dests[n] = h->hops[i].dest;
			n++;
		}
	return n;
}
