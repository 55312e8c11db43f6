/*
 * session_timer.c - a min-heap of session deadlines, indexed by slot (see
 * session_timer.h).
 */
#include "autoconfig.h"

#include <stdlib.h>

#include "log.h"
#include "session_timer.h"
#include "util.h"

#define NOWHERE ((size_t)-1)

void
session_timer_init(struct session_timer *t, size_t nslots)
{
	size_t i;

	t->heap = xcalloc(nslots ? nslots : 1, sizeof(*t->heap));
	t->pos = xcalloc(nslots ? nslots : 1, sizeof(*t->pos));
	t->n = 0;
	t->nslots = nslots;
	for (i = 0; i < nslots; i++)
		t->pos[i] = NOWHERE;
}

void
session_timer_free(struct session_timer *t)
{
	free(t->heap);
	free(t->pos);
	t->heap = NULL;
	t->pos = NULL;
	t->n = t->nslots = 0;
}

static void
place(struct session_timer *t, size_t i, struct timer_entry e)
{
	t->heap[i] = e;
	t->pos[e.slot] = i;
}

static void
sift_up(struct session_timer *t, size_t i)
{
	struct timer_entry e = t->heap[i];

	while (i > 0 && t->heap[(i - 1) / 2].when > e.when) {
		place(t, i, t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(t, i, e);
}

static void
sift_down(struct session_timer *t, size_t i)
{
	struct timer_entry e = t->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= t->n)
			break;
		if (c + 1 < t->n && t->heap[c + 1].when < t->heap[c].when)
			c++;
		if (t->heap[c].when >= e.when)
			break;
		place(t, i, t->heap[c]);
		i = c;
	}
	place(t, i, e);
}

void
session_timer_set(struct session_timer *t, size_t slot, int64_t when)
{
	size_t i;

	if (slot >= t->nslots)
		log_panic("timer slot %zu out of %zu", slot, t->nslots);
	i = t->pos[slot];
	if (i == NOWHERE) {
		struct timer_entry e = { when, slot };

		i = t->n++;
		place(t, i, e);
		sift_up(t, i);
		return;
	}
	if (when < t->heap[i].when) {
		t->heap[i].when = when;
		sift_up(t, i);
	} else {
		t->heap[i].when = when;
		sift_down(t, i);
	}
}

void
session_timer_cancel(struct session_timer *t, size_t slot)
{
	size_t i;

	if (slot >= t->nslots || (i = t->pos[slot]) == NOWHERE)
		return;
	t->pos[slot] = NOWHERE;
	if (i == --t->n)
		return;
	{
		struct timer_entry last = t->heap[t->n];

		place(t, i, last);
		sift_up(t, i);
		sift_down(t, t->pos[last.slot]);
	}
}

int
session_timer_first(const struct session_timer *t, size_t *slot,
    int64_t *when)
{
	if (t->n == 0)
		return 0;
	*slot = t->heap[0].slot;
	*when = t->heap[0].when;
	return 1;
}
