/*
 * route_shaper.h - the rate shaping of one route, for the queue runner:
 * token buckets for messages per second, minute, hour and day, the
 * connections it may hold at once, and the back-off that throttling
 * replies from the next hop put it in.  Pure: no I/O, the clock is
 * passed in (seconds, wall clock), so every decision can be replayed in
 * a unit test.
 *
 * A message is one token of each configured bucket per transaction.
 * The per-second bucket holds a fifth of a second's worth (at least one
 * token): mail goes out evenly spaced.  The minute, hour and day buckets
 * hold their whole quota: a quiet route may send that many at once, then
 * waits for the bucket to refill.  Each bucket keeps a quarter of a
 * token more than it may spend, so a scheduler that looks a few
 * milliseconds late does not lose them for good.
 *
 * Throttling replies (421/451 4.7.x, "rate limit", "too many",
 * "throttl..." in a temporary reply) raise the back-off level by one,
 * at most once per SHAPER_SETTLE seconds (the transactions in flight
 * when the first reply came tell the same thing): each level halves the
 * rates and the connections (at least one) and pauses the route for
 * 2^(level-1) seconds (at most SHAPER_PAUSE_MAX).  After SHAPER_QUIET
 * seconds without a throttling reply the level steps back down by one,
 * and again after each further quiet period.
 */
#ifndef FERRY_ROUTE_SHAPER_H
#define FERRY_ROUTE_SHAPER_H

#include <stddef.h>
#include <stdint.h>

enum shaper_window {
	SHAPE_SECOND,
	SHAPE_MINUTE,
	SHAPE_HOUR,
	SHAPE_DAY,
	SHAPE_WINDOWS
};

#define SHAPER_MAX_LEVEL 6        /* rates divided by 64 at most */
#define SHAPER_SETTLE 1.0         /* seconds: throttles counted once */
#define SHAPER_QUIET 10.0         /* seconds without a throttle per step
                                     back */
#define SHAPER_PAUSE_MAX 60.0     /* seconds */

/* What the configuration asks of a route; 0 everywhere = no shaping. */
struct shaper_limits {
	int rate[SHAPE_WINDOWS];  /* messages per window; 0 = unlimited */
	int max_connections;      /* 0 = the scheduler's per_destination */
};

struct token_bucket {
	double tokens;            /* at stamp */
	double stamp;             /* seconds */
};

struct route_shaper {
	struct shaper_limits lim;
	struct token_bucket bucket[SHAPE_WINDOWS];
	int level;                /* back-off: 0 = none */
	double pause_until;       /* no new transaction before */
	double last_throttle;     /* the last throttling reply */
	double last_step;         /* the last change of level */
	double last_raise;        /* the last rise of level */
	uint64_t throttles;       /* throttling replies seen */
};

/* Why route_shaper_may_send said no. */
enum shaper_wait {
	SHAPER_GO,                /* it may send now */
	SHAPER_WAIT_RATE,         /* a bucket is empty */
	SHAPER_WAIT_PAUSE,        /* paused by a throttling reply */
	SHAPER_WAIT_CONNECTIONS   /* its connections are all busy */
};

/* How a reply from the next hop bears on the route. */
enum shaper_reply {
	SHAPER_REPLY_OTHER,
	SHAPER_REPLY_THROTTLE,    /* slow the route down */
	SHAPER_REPLY_TOO_MANY_RCPTS   /* 452 4.5.3: the rest in a new
	                                 transaction */
};

/* Every bucket full at now. */
void route_shaper_init(struct route_shaper *sh,
    const struct shaper_limits *lim, double now);
/* After a reload: the new limits; the buckets keep what they spent. */
void route_shaper_set_limits(struct route_shaper *sh,
    const struct shaper_limits *lim, double now);
/* Nonzero when the route has any limit at all. */
int route_shaper_active(const struct shaper_limits *lim);

/* May one more transaction start now, with busy connections in use and
 * base_connections allowed without a max_connections?  When not, *at
 * is when to look again (0: when a connection frees up). */
enum shaper_wait route_shaper_may_send(struct route_shaper *sh, double now,
    int busy, int base_connections, double *at);
/* Mail over the route's quota stays due, but a long line of it would
 * fill every read of what is due and hold other routes' mail up: of the
 * recipients waiting now, n counted from 0 in order, those the buckets
 * will let go within SHAPER_HOLD seconds stay due (0), the others are
 * held until about SHAPER_HOLD before their turn comes, at least
 * SHAPER_HOLD and at most SHAPER_HOLD_MAX seconds from now. */
#define SHAPER_HOLD 2.0
#define SHAPER_HOLD_MAX 60.0
double route_shaper_hold_until(const struct route_shaper *sh, double now,
    size_t n);
/* One transaction started: one token of each bucket. */
void route_shaper_take(struct route_shaper *sh, double now);
/* The connections the route may use now (back-off applied). */
int route_shaper_connections(const struct route_shaper *sh,
    int base_connections);
/* Tokens left in bucket w at now (-1: that window is not limited). */
double route_shaper_tokens(const struct route_shaper *sh,
    enum shaper_window w, double now);
/* Messages per second the route may send now (0: unlimited). */
double route_shaper_rate(const struct route_shaper *sh);

/* A throttling reply came at now: 1 when the level changed. */
int route_shaper_throttled(struct route_shaper *sh, double now);
/* The quiet periods that passed: 1 when the level stepped down. */
int route_shaper_tick(struct route_shaper *sh, double now);
/* When route_shaper_tick next has something to do (0: never). */
double route_shaper_next_tick(const struct route_shaper *sh);

/* A bucket as saved in the store (the hour and day counts survive a
 * restart) and restored from it. */
void route_shaper_saved(const struct route_shaper *sh, enum shaper_window w,
    double now, double *tokens, double *stamp);
void route_shaper_restore(struct route_shaper *sh, enum shaper_window w,
    double tokens, double stamp, double now);

/* What a temporary or permanent reply means for the route: code is the
 * reply code (0: none, a connection failure), dsn the enhanced status
 * ("4.7.0", may be ""), text the server's words. */
enum shaper_reply route_shaper_classify(int code, const char *dsn,
    const char *text);
/* The reply code in a result as agents word it ("host H said: 421 4.7.0
 * ..."); 0 when there is none. */
int route_shaper_reply_code(const char *reply);

const char *shaper_window_name(enum shaper_window w);

#endif
