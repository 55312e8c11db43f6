/*
 * session_timer.h - the SMTP worker's one timer structure: a deadline per
 * session slot in a binary min-heap, so the event loop's poll timeout is
 * the nearest deadline and a session's deadline moves in O(log n).
 */
#ifndef FERRY_SESSION_TIMER_H
#define FERRY_SESSION_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct timer_entry {
	int64_t when;              /* now_ms() clock */
	size_t slot;
};

struct session_timer {
	struct timer_entry *heap;  /* heap[0] is the nearest */
	size_t n;
	size_t *pos;               /* slot -> index in heap, or (size_t)-1 */
	size_t nslots;
};

void session_timer_init(struct session_timer *t, size_t nslots);
void session_timer_free(struct session_timer *t);
/* Sets (or moves) the deadline of slot. */
void session_timer_set(struct session_timer *t, size_t slot, int64_t when);
void session_timer_cancel(struct session_timer *t, size_t slot);
/* The nearest deadline: 1 with *slot and *when, 0 when none is set. */
int session_timer_first(const struct session_timer *t, size_t *slot,
    int64_t *when);

#endif
