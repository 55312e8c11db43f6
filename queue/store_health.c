/*
 * store_health.c - the queue runner's view of its store: commit
 * failures with a capped back-off, and the free-space threshold (see
 * store_health.h).  Pure but for the log lines it writes on a change of
 * state and the periodic summary while commits fail.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store_health.h"
#include "util.h"

int64_t
store_backoff_ms(unsigned n)
{
	int64_t ms = STORE_BACKOFF_FIRST_MS;

	while (n > 1 && ms < STORE_BACKOFF_MAX_MS) {
		ms *= 2;
		n--;
	}
	return ms > STORE_BACKOFF_MAX_MS ? STORE_BACKOFF_MAX_MS : ms;
}

uint64_t
store_min_free(int64_t min_free_bytes, int min_free_percent,
    uint64_t total)
{
	if (min_free_percent >= 0)
		return total / 100 * (uint64_t)min_free_percent +
		    total % 100 * (uint64_t)min_free_percent / 100;
	return min_free_bytes > 0 ? (uint64_t)min_free_bytes : 0;
}

const char *
store_fmt_bytes(char *out, size_t len, uint64_t n)
{
	if (n >= 10ULL * 1024 * 1024 * 1024)
		snprintf(out, len, "%llu GB", (unsigned long long)(n >> 30));
	else if (n >= 10ULL * 1024 * 1024)
		snprintf(out, len, "%llu MB", (unsigned long long)(n >> 20));
	else if (n >= 10ULL * 1024)
		snprintf(out, len, "%llu KB", (unsigned long long)(n >> 10));
	else
		snprintf(out, len, "%llu bytes", (unsigned long long)n);
	return out;
}

static const char *
fmt_clock(char *out, size_t len, double wall)
{
	time_t t = (time_t)wall;
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(out, len, "%H:%M:%S",
	    &tm) == 0)
		snprintf(out, len, "?");
	return out;
}

void
store_health_failed(struct store_health *h, const char *why,
    int64_t now_ms, double now_wall)
{
	ferry_strlcpy(h->error, why, sizeof(h->error));
	h->failures++;
	h->next_try_ms = now_ms + store_backoff_ms(h->failures);
	if (h->failing)
		return;
	h->failing = 1;
	h->failing_since = now_wall;
	h->failures_logged = 1;
	h->next_summary_ms = now_ms + STORE_HEALTH_SUMMARY_MS;
	log_error("queue: commits failing: %s; intake refused and no "
	    "delivery started until a commit succeeds (retried with "
	    "back-off up to %d s)", why, STORE_BACKOFF_MAX_MS / 1000);
}

void
store_health_ok(struct store_health *h)
{
	char since[16];

	if (h->failing)
		log_info("queue: commits work again (failing since %s, %u "
		    "failed attempt(s), last error: %s)", fmt_clock(since,
		    sizeof(since), h->failing_since), h->failures, h->error);
	h->failing = 0;
	h->failures = 0;
	h->failures_logged = 0;
	h->next_try_ms = 0;
}

int
store_health_may_try(const struct store_health *h, int64_t now_ms)
{
	return !h->failing || now_ms >= h->next_try_ms;
}

int
store_health_wait_ms(const struct store_health *h, int64_t now_ms)
{
	int64_t d;

	if (!h->failing)
		return 0;
	d = h->next_try_ms - now_ms;
	if (d < 0)
		return 0;
	return d > STORE_BACKOFF_MAX_MS ? STORE_BACKOFF_MAX_MS : (int)d;
}

void
store_health_tick(struct store_health *h, int64_t now_ms)
{
	char since[16];

	if (!h->failing || now_ms < h->next_summary_ms)
		return;
	log_warn("queue: commits still failing since %s: %u attempt(s) in "
	    "the last %d s, %u in all; last error: %s", fmt_clock(since,
	    sizeof(since), h->failing_since), h->failures -
	    h->failures_logged, STORE_HEALTH_SUMMARY_MS / 1000, h->failures,
	    h->error);
	h->failures_logged = h->failures;
	h->next_summary_ms = now_ms + STORE_HEALTH_SUMMARY_MS;
}

int
store_health_space(struct store_health *h, uint64_t free_bytes,
    uint64_t min_free_bytes)
{
	enum queue_state before = store_health_state(h);
	int low = free_bytes < min_free_bytes;
	char f[32], m[32];

	h->free_bytes = free_bytes;
	h->min_free_bytes = min_free_bytes;
	if (!h->space_known || low != h->low_space) {
		if (low)
			log_warn("queue: intake refusing new mail: %s free, "
			    "below min_free %s", store_fmt_bytes(f, sizeof(f),
			    free_bytes), store_fmt_bytes(m, sizeof(m),
			    min_free_bytes));
		else if (h->space_known)
			log_info("queue: intake accepting mail again: %s free, "
			    "min_free %s", store_fmt_bytes(f, sizeof(f),
			    free_bytes), store_fmt_bytes(m, sizeof(m),
			    min_free_bytes));
	}
	h->space_known = 1;
	h->low_space = low;
	return store_health_state(h) != before;
}

enum queue_state
store_health_state(const struct store_health *h)
{
	if (h->failing)
		return QUEUE_STATE_FAILING;
	if (h->low_space)
		return QUEUE_STATE_LOW_SPACE;
	return QUEUE_STATE_OK;
}

int
store_health_may_dispatch(const struct store_health *h)
{
	return !h->failing && (!h->space_known ||
	    h->free_bytes >= STORE_DISPATCH_RESERVE);
}

uint64_t
store_health_headroom(const struct store_health *h)
{
	if (!h->space_known)
		return UINT64_MAX;   /* not looked at yet: no limit known */
	return h->free_bytes > h->min_free_bytes ? h->free_bytes -
	    h->min_free_bytes : 0;
}
