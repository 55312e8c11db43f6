/*
 * route_shaping.c - the queue runner's rate shaping of its routes (see
 * route_shaping.h).  The decisions are route_shaper.c's; this file keeps
 * one shaper per configured route with limits, logs what changes (once
 * per change, never once per message), and keeps the hour and day counts
 * in the store, written in the runner's open transaction with the
 * results of the job that spent them.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "route_shaping.h"
#include "store.h"
#include "util.h"

/* Seconds without a turn over quota before a route is said to wait no
 * more: a turn that found its agents busy says nothing of its quota. */
#define WAIT_OVER_AFTER 2.0

struct shaped_route {
	char name[64];
	struct route_shaper sh;
	size_t recipients;        /* per transaction; 0 = any */
	int waiting;              /* recipients over a quota this turn */
	int waiting_last;         /* the same, at the last turn's end */
	int was_waiting;          /* logged as waiting */
	double last_waited;       /* the last turn it waited */
	int dirty;                /* hour/day counts changed since saved */
	uint64_t quota_waits;
	int seen;                 /* still configured (during a reload) */
};

struct shaping {
	struct store *st;
	struct shaped_route *r;
	size_t n;
};

static const char *const limit_names[SHAPE_WINDOWS] = { "rate_per_second",
    "rate_per_minute", "rate_per_hour", "rate_per_day" };

static struct shaper_limits
limits_of(const struct route_config *rc)
{
	struct shaper_limits l;

	memset(&l, 0, sizeof(l));
	l.rate[SHAPE_SECOND] = rc->rate_per_second;
	l.rate[SHAPE_MINUTE] = rc->rate_per_minute;
	l.rate[SHAPE_HOUR] = rc->rate_per_hour;
	l.rate[SHAPE_DAY] = rc->rate_per_day;
	l.max_connections = rc->max_connections;
	return l;
}

static struct shaped_route *
find(const struct shaping *sh, const char *name)
{
	size_t i;

	if (sh == NULL || name == NULL)
		return NULL;
	for (i = 0; i < sh->n; i++)
		if (strcmp(sh->r[i].name, name) == 0)
			return &sh->r[i];
	return NULL;
}

/* The hour and day counts the store kept for r. */
static void
restore(struct shaping *sh, struct shaped_route *r, double now)
{
	int w;

	if (sh->st == NULL)
		return;
	for (w = SHAPE_HOUR; w <= SHAPE_DAY; w++) {
		double tokens, stamp;

		if (r->sh.lim.rate[w] <= 0)
			continue;
		if (store_route_quota_get(sh->st, r->name, w, &tokens,
		    &stamp) == 1) {
			route_shaper_restore(&r->sh, (enum shaper_window)w,
			    tokens, stamp, now);
			log_info("route %s: %s count restored: %.0f of %d "
			    "left", r->name, shaper_window_name(w),
			    route_shaper_tokens(&r->sh, w, now),
			    r->sh.lim.rate[w]);
		}
	}
}

/* Routes with limits from cfg; the ones already known keep their
 * state. */
static void
configure(struct shaping *sh, const struct ferry_config *cfg, double now)
{
	size_t i, k;

	for (k = 0; k < sh->n; k++)
		sh->r[k].seen = 0;
	for (i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		struct shaper_limits l = limits_of(rc);
		struct shaped_route *r;

		if (!route_shaper_active(&l) && rc->recipients_per_message <= 0)
			continue;
		if ((r = find(sh, rc->name)) != NULL) {
			route_shaper_set_limits(&r->sh, &l, now);
		} else {
			sh->r = xrealloc(sh->r, (sh->n + 1) * sizeof(*sh->r));
			r = &sh->r[sh->n++];
			memset(r, 0, sizeof(*r));
			ferry_strlcpy(r->name, rc->name, sizeof(r->name));
			route_shaper_init(&r->sh, &l, now);
			restore(sh, r, now);
		}
		r->recipients = rc->recipients_per_message > 0 ?
		    (size_t)rc->recipients_per_message : 0;
		r->seen = 1;
	}
	for (k = 0; k < sh->n;) {
		if (!sh->r[k].seen) {
			sh->r[k] = sh->r[--sh->n];
			continue;
		}
		k++;
	}
}

struct shaping *
shaping_new(const struct ferry_config *cfg, struct store *st, double now)
{
	struct shaping *sh = xcalloc(1, sizeof(*sh));

	sh->st = st;
	configure(sh, cfg, now);
	return sh;
}

void
shaping_free(struct shaping *sh)
{
	if (sh == NULL)
		return;
	free(sh->r);
	free(sh);
}

void
shaping_set_config(struct shaping *sh, const struct ferry_config *cfg,
    double now)
{
	configure(sh, cfg, now);
}

int
shaping_may_dispatch(struct shaping *sh, const struct route_config *route,
    int busy, int per_destination, double now, int64_t *look_again_ms,
    double *hold_until)
{
	struct shaped_route *r = find(sh, route != NULL ? route->name : NULL);
	enum shaper_wait w;
	double at;

	*hold_until = 0;
	if (r == NULL)
		return 1;
	w = route_shaper_may_send(&r->sh, now, busy, per_destination, &at);
	if (w == SHAPER_GO)
		return 1;
	if (w == SHAPER_WAIT_RATE || w == SHAPER_WAIT_PAUSE) {
		int64_t ms = now_ms() + (int64_t)((at - now) * 1000.0) + 1;

		*hold_until = route_shaper_hold_until(&r->sh, now,
		    (size_t)r->waiting);
		r->waiting++;
		if (*look_again_ms == 0 || ms < *look_again_ms)
			*look_again_ms = ms;
	}
	return 0;
}

void
shaping_dispatched(struct shaping *sh, const struct route_config *route,
    double now)
{
	struct shaped_route *r = find(sh, route != NULL ? route->name : NULL);

	if (r == NULL)
		return;
	route_shaper_take(&r->sh, now);
	if (r->sh.lim.rate[SHAPE_HOUR] > 0 || r->sh.lim.rate[SHAPE_DAY] > 0)
		r->dirty = 1;
}

size_t
shaping_recipients(const struct shaping *sh, const struct route_config *route)
{
	const struct shaped_route *r = find(sh, route != NULL ? route->name :
	    NULL);

	return r != NULL ? r->recipients : 0;
}

/* "10 msg/s, 2 connection(s)" for the log. */
static void
describe(const struct shaped_route *r, char *out, size_t len)
{
	double rate = route_shaper_rate(&r->sh);

	if (rate > 0)
		snprintf(out, len, "%.3g message(s)/s, ", rate);
	else
		snprintf(out, len, "unlimited rate, ");
	if (r->sh.lim.max_connections > 0)
		snprintf(out + strlen(out), len - strlen(out),
		    "%d connection(s)", route_shaper_connections(&r->sh, 1));
	else
		snprintf(out + strlen(out), len - strlen(out),
		    "per_destination/%d connection(s)", 1 << r->sh.level);
}

void
shaping_result(struct shaping *sh, const char *route, const char *dsn,
    const char *reply, double now)
{
	struct shaped_route *r = find(sh, route);
	int code;
	char what[128], safe[700];

	if (r == NULL || reply == NULL)
		return;
	code = route_shaper_reply_code(reply);
	if (route_shaper_classify(code, dsn, reply) != SHAPER_REPLY_THROTTLE)
		return;
	if (!route_shaper_throttled(&r->sh, now))
		return;
	describe(r, what, sizeof(what));
	log_sanitize(safe, sizeof(safe), reply, strlen(reply));
	log_warn("route %s: throttled by the next hop, backing off to level "
	    "%d (%s), paused %.0f s: %s", r->name, r->sh.level, what,
	    r->sh.pause_until - now, safe);
}

void
shaping_turn_end(struct shaping *sh, double now, int64_t *look_again_ms)
{
	size_t i;

	for (i = 0; sh != NULL && i < sh->n; i++) {
		struct shaped_route *r = &sh->r[i];
		double next;
		char what[128];

		if (route_shaper_tick(&r->sh, now)) {
			describe(r, what, sizeof(what));
			if (r->sh.level == 0)
				log_info("route %s: no throttling for %.0f s, "
				    "back to its configured rates (%s)",
				    r->name, SHAPER_QUIET, what);
			else
				log_info("route %s: no throttling for %.0f s, "
				    "back-off level %d (%s)", r->name,
				    SHAPER_QUIET, r->sh.level, what);
		}
		if ((next = route_shaper_next_tick(&r->sh)) > 0) {
			int64_t ms = now_ms() + (int64_t)((next - now) *
			    1000.0) + 1;

			if (*look_again_ms == 0 || ms < *look_again_ms)
				*look_again_ms = ms;
		}
		if (r->waiting > 0 && !r->was_waiting) {
			char limits[200] = "";
			int w;

			for (w = 0; w < SHAPE_WINDOWS; w++)
				if (r->sh.lim.rate[w] > 0)
					snprintf(limits + strlen(limits),
					    sizeof(limits) - strlen(limits),
					    "%s%s %d", limits[0] ? ", " : "",
					    limit_names[w], r->sh.lim.rate[w]);
			if (now < r->sh.pause_until)
				log_info("route %s: paused by back-off; its "
				    "mail waits in the queue (not deferred)",
				    r->name);
			else
				log_info("route %s: over its quota (%s); its "
				    "mail waits in the queue (not deferred)",
				    r->name, limits);
			r->was_waiting = 1;
			r->quota_waits++;
		} else if (r->waiting == 0 && r->was_waiting &&
		    now - r->last_waited >= WAIT_OVER_AFTER) {
			log_info("route %s: within its quota again; its mail "
			    "goes", r->name);
			r->was_waiting = 0;
			r->waiting_last = 0;
		}
		if (r->waiting > 0) {
			r->last_waited = now;
			r->waiting_last = r->waiting;
		}
		if (r->was_waiting) {
			/* a look when it may be said to wait no more */
			int64_t ms = now_ms() + (int64_t)((r->last_waited +
			    WAIT_OVER_AFTER - now) * 1000.0) + 1;

			if (*look_again_ms == 0 || ms < *look_again_ms)
				*look_again_ms = ms;
		}
		r->waiting = 0;
	}
}

int
shaping_save(struct shaping *sh, const char *route, double now)
{
	struct shaped_route *r = find(sh, route);
	int w;

	if (r == NULL || !r->dirty || sh->st == NULL)
		return 0;
	if (store_begin(sh->st) < 0)
		return -1;
	for (w = SHAPE_HOUR; w <= SHAPE_DAY; w++) {
		double tokens, stamp;

		if (r->sh.lim.rate[w] <= 0)
			continue;
		route_shaper_saved(&r->sh, (enum shaper_window)w, now, &tokens,
		    &stamp);
		if (store_route_quota_put(sh->st, r->name, w, tokens,
		    stamp) < 0)
			return -1;
	}
	r->dirty = 0;
	return 0;
}

void
shaping_figures(const struct shaping *sh, double now,
    struct shaping_figures *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; sh != NULL && i < sh->n && i < SHAPING_ROUTES_SHOWN;
	    i++) {
		const struct shaped_route *r = &sh->r[i];
		struct shaping_figure *f = &out->route[out->n++];
		int w;

		ferry_strlcpy(f->route, r->name, sizeof(f->route));
		for (w = 0; w < SHAPE_WINDOWS; w++) {
			f->limit[w] = r->sh.lim.rate[w];
			f->tokens[w] = route_shaper_tokens(&r->sh,
			    (enum shaper_window)w, now);
		}
		f->rate = route_shaper_rate(&r->sh);
		f->connections = r->sh.lim.max_connections > 0 ?
		    route_shaper_connections(&r->sh, 1) : 0;
		f->level = r->sh.level;
		f->paused_until = now < r->sh.pause_until ?
		    r->sh.pause_until : 0;
		f->waiting = r->waiting_last;
		f->throttles = r->sh.throttles;
		f->quota_waits = r->quota_waits;
	}
}
