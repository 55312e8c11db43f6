/*
 * upstream_pools.h - the queue runner's smarthost pools: one host_pool
 * (host_pool.h) for each route with two hosts or more, built from the
 * configuration (rebuilt on reload, each host keeping its state), fed
 * with what delivery agents report of every host they tried, and shown
 * by "ferryctl status" and the metrics (upstream_pools.c).
 */
#ifndef FERRY_UPSTREAM_POOLS_H
#define FERRY_UPSTREAM_POOLS_H

#include <stddef.h>
#include <jansson.h>

#include "deliver_proto.h"
#include "host_pool.h"
#include "metrics_text.h"

struct ferry_config;
struct route_config;
struct upstream_pools;

/* Whether a route's hosts make a pool (two or more). */
int upstream_pooled(const struct route_config *r);

struct upstream_pools *upstream_pools_new(const struct ferry_config *cfg);
void upstream_pools_free(struct upstream_pools *u);
/* After a reload: the pools of cfg; a host of a pool that was there
 * before keeps its state. */
void upstream_pools_reload(struct upstream_pools *u,
    const struct ferry_config *cfg);
/* The operator flushed the queue: every host starts up again. */
void upstream_pools_reset(struct upstream_pools *u,
    const struct ferry_config *cfg);
/* The pool of the route called route, NULL when it is no pool. */
struct host_pool *upstream_pools_find(const struct upstream_pools *u,
    const char *route);
size_t upstream_pools_count(const struct upstream_pools *u);
/* Pool i and its route's name. */
struct host_pool *upstream_pools_at(const struct upstream_pools *u,
    size_t i, const char **route);

/* What an agent found at the hosts of route it tried: each host's
 * circuit follows, and every change is logged.  Returns 1 when a host
 * came back (its circuit closed). */
int upstream_pools_report(struct upstream_pools *u, const char *route,
    const struct deliver_host_report *hosts, size_t n, double now);

/* "pools" of ferryctl status: each pool host's state, failures in a
 * row, last error. */
void upstream_pools_json(const struct upstream_pools *u, json_t *doc);
/* ferry_upstream_host_up and ferry_upstream_host_failures_total. */
void upstream_pools_metrics(const struct upstream_pools *u,
    struct mtext *t);

#endif
