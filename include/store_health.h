/*
 * store_health.h - what the queue runner knows about its store's health:
 * whether commits fail (since when, why, how often), when the next
 * attempt is due under a capped back-off, and whether the spool's free
 * space is below the configured threshold (queue { min_free }).
 *
 * It decides and logs: one line when a state is entered, one when it is
 * left, and while commits keep failing a summary every
 * STORE_HEALTH_SUMMARY_MS - never a line per attempt.  The clocks are
 * arguments, so the schedule and the transitions are unit-tested.
 */
#ifndef FERRY_STORE_HEALTH_H
#define FERRY_STORE_HEALTH_H

#include <stdint.h>

/* The state the runner announces to the SMTP workers (IMSG_QUEUE_STATE)
 * and shows in ferryctl status. */
enum queue_state {
	QUEUE_STATE_OK = 0,
	QUEUE_STATE_LOW_SPACE = 1,     /* below min_free: intake refused */
	QUEUE_STATE_FAILING = 2        /* commits fail: intake refused, no
	                                  dispatch */
};

#define STORE_BACKOFF_FIRST_MS 250
#define STORE_BACKOFF_MAX_MS 5000
#define STORE_HEALTH_SUMMARY_MS 60000
/* Free bytes a delivery's outcome may need (the result rows, a bounce's
 * headers): below this no job is handed out, whatever min_free says. */
#define STORE_DISPATCH_RESERVE (1024 * 1024)

struct store_health {
	/* commits */
	int failing;
	double failing_since;          /* wall clock */
	char error[256];               /* the last failure */
	unsigned failures;             /* in a row */
	unsigned failures_logged;      /* of them, up to the last summary */
	int64_t next_try_ms;           /* monotonic: the next attempt */
	int64_t next_summary_ms;
	/* space */
	int space_known;
	int low_space;
	uint64_t free_bytes;           /* at the last look */
	uint64_t min_free_bytes;       /* the threshold at the last look */
};

/* Milliseconds to wait after the n-th failure in a row (n >= 1):
 * STORE_BACKOFF_FIRST_MS doubling up to STORE_BACKOFF_MAX_MS. */
int64_t store_backoff_ms(unsigned n);
/* The threshold in bytes: min_free_bytes, or min_free_percent (>= 0) of
 * the filesystem's total. */
uint64_t store_min_free(int64_t min_free_bytes, int min_free_percent,
    uint64_t total);

/* A commit (or probe) failed with why / succeeded. */
void store_health_failed(struct store_health *h, const char *why,
    int64_t now_ms, double now_wall);
void store_health_ok(struct store_health *h);
/* Nonzero when a commit may be attempted now (not failing, or the
 * back-off is over). */
int store_health_may_try(const struct store_health *h, int64_t now_ms);
/* Milliseconds until the next attempt is due (0 when not failing). */
int store_health_wait_ms(const struct store_health *h, int64_t now_ms);
/* While failing: logs the periodic summary when it is due. */
void store_health_tick(struct store_health *h, int64_t now_ms);
/* The free space seen now against the threshold; logs on a change.
 * Returns nonzero when the announced state changed. */
int store_health_space(struct store_health *h, uint64_t free_bytes,
    uint64_t min_free_bytes);
enum queue_state store_health_state(const struct store_health *h);
/* Nonzero when a delivery may be handed out: commits work and there is
 * room for its outcome. */
int store_health_may_dispatch(const struct store_health *h);
/* Bytes free above the threshold (0 when below; UINT64_MAX before the
 * first look at the free space). */
uint64_t store_health_headroom(const struct store_health *h);
/* "83 MB" style, for the log and ferryctl. */
const char *store_fmt_bytes(char *out, size_t len, uint64_t n);

#endif
