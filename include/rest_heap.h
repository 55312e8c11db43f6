/*
 * rest_heap.h - giving memory back once a process has been quiet.
 *
 * The runner, the workers and the agents keep up to 1 MiB of freed heap
 * while they work (child_keep_heap), and the runner keeps SQLite's page
 * cache: pages the next message reuses.  A relay at rest needs none of
 * it.  A process notes each turn that did work (rest_heap_busy); once it
 * has done none for REST_HEAP_QUIET_MS, rest_heap_due says so once, and
 * the process lets its caches go and calls rest_heap_give_back, which
 * returns every free page of the heap to the system.  The next burst
 * faults a few hundred pages in again: once per quiet spell, not per
 * message.
 */
#ifndef FERRY_REST_HEAP_H
#define FERRY_REST_HEAP_H

#include <stdint.h>

/* Quiet this long (no work at all) before the memory goes back; well
 * above the gaps inside a stream of messages, well below the minute after
 * which the spare workers and agents themselves leave. */
#define REST_HEAP_QUIET_MS 10000

struct rest_heap {
	int64_t busy_ms;   /* when the process last did work */
	int given_back;    /* nothing done since the memory went back */
};

/* Starts the clock: the process is quiet from now on. */
void rest_heap_init(struct rest_heap *rh, int64_t now);
/* The process did work at now. */
void rest_heap_busy(struct rest_heap *rh, int64_t now);
/* 1, once per quiet spell, when quiet for REST_HEAP_QUIET_MS. */
int rest_heap_due(const struct rest_heap *rh, int64_t now);
/* Frees the channels' spare read buffers, returns every free page of
 * the heap (malloc_trim(0)) and marks the spell as done. */
void rest_heap_give_back(struct rest_heap *rh);

#endif
