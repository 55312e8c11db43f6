/*
 * route_shaping.h - the queue runner's rate shaping of its routes: one
 * route_shaper (route_shaper.h) per configured route that has limits,
 * the narrow hook the scheduler asks before it dispatches ("may one
 * more job go to route R now, and when to look again"), what it learns
 * from results (throttling replies), the hour and day counts kept in the
 * store, the log lines, and the figures for status and metrics.
 */
#ifndef FERRY_ROUTE_SHAPING_H
#define FERRY_ROUTE_SHAPING_H

#include <stddef.h>
#include <stdint.h>

#include "route_shaper.h"

struct ferry_config;
struct route_config;
struct store;
struct shaping;

#define SHAPING_ROUTES_SHOWN 32

/* One shaped route as status and metrics show it. */
struct shaping_figure {
	char route[64];
	int limit[SHAPE_WINDOWS];       /* configured; 0 = none */
	double tokens[SHAPE_WINDOWS];   /* left now; -1 = not limited */
	double rate;                    /* messages per second now (after
	                                   back-off); 0 = unlimited */
	int connections;                /* allowed at once now; 0 = the
	                                   scheduler's per_destination */
	int level;                      /* back-off level */
	double paused_until;            /* 0: not paused */
	int waiting;                    /* recipients over a quota at the
	                                   last turn */
	uint64_t throttles;             /* throttling replies seen */
	uint64_t quota_waits;           /* times the route began to wait */
};

struct shaping_figures {
	struct shaping_figure route[SHAPING_ROUTES_SHOWN];
	size_t n;
};

/* st may be NULL (no counts kept). */
struct shaping *shaping_new(const struct ferry_config *cfg, struct store *st,
    double now);
void shaping_free(struct shaping *sh);
/* After a reload: routes kept by name keep their buckets and back-off. */
void shaping_set_config(struct shaping *sh, const struct ferry_config *cfg,
    double now);

/* The scheduler's hook: may a job for route (NULL: MX, never shaped)
 * start now, with busy of its agents at work and per_destination the
 * scheduler's own limit?  When not, *look_again_ms (now_ms() clock) is
 * lowered to when it may (left alone when a free connection will wake
 * the scheduler).  A "no" for a quota counts the recipient as waiting,
 * and *hold_until says until when to hold it out of the due mail
 * (route_shaper_hold_until; 0: it stays due). */
int shaping_may_dispatch(struct shaping *sh, const struct route_config *route,
    int busy, int per_destination, double now, int64_t *look_again_ms,
    double *hold_until);
/* A job (one transaction) went to route: its tokens are spent. */
void shaping_dispatched(struct shaping *sh, const struct route_config *route,
    double now);
/* Recipients one job to route may carry; 0 = any. */
size_t shaping_recipients(const struct shaping *sh,
    const struct route_config *route);
/* A job to route (by name) met reply, a throttling reply by the agent's
 * word (JOB_DONE): checked again, it slows the route down (logged once
 * per change). */
void shaping_result(struct shaping *sh, const char *route, const char *dsn,
    const char *reply, double now);
/* The end of a scheduler turn: back-off steps down after quiet periods,
 * routes that start or stop waiting are logged; *look_again_ms is
 * lowered to the next step down. */
void shaping_turn_end(struct shaping *sh, double now,
    int64_t *look_again_ms);
/* Writes route's hour and day counts into the store's open transaction
 * when they changed.  0, or -1 (a write failed). */
int shaping_save(struct shaping *sh, const char *route, double now);
/* The figures of the shaped routes at now. */
void shaping_figures(const struct shaping *sh, double now,
    struct shaping_figures *out);

#endif
