/*
 * rest_heap.c - giving memory back once a process has been quiet (see
 * rest_heap.h).  No I/O: a clock the caller feeds, and malloc_trim.
 */
#include "autoconfig.h"

#include <malloc.h>

#include "channel.h"
#include "rest_heap.h"

void
rest_heap_init(struct rest_heap *rh, int64_t now)
{
	rh->busy_ms = now;
	rh->given_back = 0;
}

void
rest_heap_busy(struct rest_heap *rh, int64_t now)
{
	rh->busy_ms = now;
	rh->given_back = 0;
}

int
rest_heap_due(const struct rest_heap *rh, int64_t now)
{
	return !rh->given_back && now - rh->busy_ms >= REST_HEAP_QUIET_MS;
}

void
rest_heap_give_back(struct rest_heap *rh)
{
	channel_spares_free();   /* read buffers kept for the next reads */
#ifdef HAVE_MALLOC_TRIM
	(void)malloc_trim(0);
#endif
	rh->given_back = 1;
}
