/*
 * route_learn.h - the queue runner's memory of what each route's
 * upstream offers (route_caps.h): learned from the EHLO the delivery
 * agents report with each JOB_DONE, kept in the store so that a restart
 * does not forget it, and told to the SMTP workers (IMSG_ROUTE_CAPS).
 *
 * Only routes with hosts of their own are learned (MX delivery has many
 * upstreams: unknown).  What was learned belongs to the route's hosts as
 * they were: when a reload changes a route's hosts, what was learned of
 * the old ones is forgotten until the next delivery.
 */
#ifndef FERRY_ROUTE_LEARN_H
#define FERRY_ROUTE_LEARN_H

#include <stdint.h>
#include "route_caps.h"

struct ferry_config;
struct store;

struct route_learn {
	struct route_caps_table table;   /* the routes known for the
	                                    running configuration */
	uint64_t changes;                /* bumped at each change of table */
};

void route_learn_init(struct route_learn *rl);
void route_learn_free(struct route_learn *rl);
/* Starts again from what the store remembers, for cfg's routes (at
 * start, when the store is opened again, after a reload). */
void route_learn_load(struct route_learn *rl, struct store *st,
    const struct ferry_config *cfg);
/* An agent's report: route's upstream offers c.  Logged and written to
 * the store (in the open transaction) when it changed. */
void route_learn_seen(struct route_learn *rl, struct store *st,
    const struct ferry_config *cfg, const char *route,
    const struct route_caps *c);

#endif
