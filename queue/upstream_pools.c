/*
 * upstream_pools.c - the queue runner's smarthost pools (see
 * upstream_pools.h).  A handful of routes at most: found by a linear
 * search on the route's name.  The pools' logic is host_pool.c's; this
 * file ties it to the configuration, the log, status and metrics.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "upstream_pools.h"
#include "util.h"

#define POOL_COOLDOWN_CAP 600     /* seconds: the doubling stops there */

struct upstream_pool {
	char *route;
	struct host_pool *pool;
};

struct upstream_pools {
	struct upstream_pool *pools;
	size_t n;
};

int
upstream_pooled(const struct route_config *r)
{
	return r != NULL && r->nhosts >= 2;
}

static void
build(struct upstream_pools *u, const struct ferry_config *cfg)
{
	size_t i, k;

	u->pools = xcalloc(cfg->nroutes ? cfg->nroutes : 1,
	    sizeof(*u->pools));
	u->n = 0;
	for (i = 0; i < cfg->nroutes; i++) {
		const struct route_config *r = &cfg->routes[i];
		struct host_pool_policy pol;
		int prio[HOST_POOL_MAX], weight[HOST_POOL_MAX];
		size_t n = r->nhosts < HOST_POOL_MAX ? r->nhosts :
		    HOST_POOL_MAX;

		if (!upstream_pooled(r))
			continue;
		for (k = 0; k < n; k++) {
			prio[k] = r->host_priority ? r->host_priority[k] :
			    (int)k;
			weight[k] = r->host_weight ? r->host_weight[k] : 1;
		}
		pol.failures = r->host_failures;
		pol.cooldown = r->host_cooldown;
		pol.cooldown_max = r->host_cooldown > POOL_COOLDOWN_CAP ?
		    r->host_cooldown : POOL_COOLDOWN_CAP;
		pol.probe_interval = r->probe_interval;
		u->pools[u->n].route = xstrdup(r->name);
		u->pools[u->n].pool = host_pool_new(
		    (const char *const *)r->hosts, prio, weight, n, &pol);
		u->n++;
	}
}

static void
clear(struct upstream_pools *u)
{
	size_t i;

	for (i = 0; i < u->n; i++) {
		free(u->pools[i].route);
		host_pool_free(u->pools[i].pool);
	}
	free(u->pools);
	u->pools = NULL;
	u->n = 0;
}

struct upstream_pools *
upstream_pools_new(const struct ferry_config *cfg)
{
	struct upstream_pools *u = xcalloc(1, sizeof(*u));

	build(u, cfg);
	return u;
}

void
upstream_pools_free(struct upstream_pools *u)
{
	if (u == NULL)
		return;
	clear(u);
	free(u);
}

void
upstream_pools_reload(struct upstream_pools *u,
    const struct ferry_config *cfg)
{
	struct upstream_pools old = *u;
	size_t i;

	build(u, cfg);
	for (i = 0; i < u->n; i++) {
		struct host_pool *was = upstream_pools_find(&old,
		    u->pools[i].route);

		if (was != NULL)
			host_pool_adopt(u->pools[i].pool, was);
	}
	clear(&old);
}

void
upstream_pools_reset(struct upstream_pools *u, const struct ferry_config *cfg)
{
	clear(u);
	build(u, cfg);
}

struct host_pool *
upstream_pools_find(const struct upstream_pools *u, const char *route)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (strcmp(u->pools[i].route, route) == 0)
			return u->pools[i].pool;
	return NULL;
}

size_t
upstream_pools_count(const struct upstream_pools *u)
{
	return u->n;
}

struct host_pool *
upstream_pools_at(const struct upstream_pools *u, size_t i,
    const char **route)
{
	*route = u->pools[i].route;
	return u->pools[i].pool;
}

int
upstream_pools_report(struct upstream_pools *u, const char *route,
    const struct deliver_host_report *hosts, size_t n, double now)
{
	struct host_pool *p = upstream_pools_find(u, route);
	struct host_pool_view v;
	char safe[600];
	size_t i;
	int back = 0, k;

	if (p == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		enum host_change ch;

		if ((k = host_pool_find(p, hosts[i].host)) < 0)
			continue;   /* a job from before a reload */
		ch = host_pool_result(p, (size_t)k,
		    (enum host_outcome)hosts[i].outcome, hosts[i].error, now);
		host_pool_view(p, (size_t)k, &v);
		log_sanitize(safe, sizeof(safe), v.last_error,
		    strlen(v.last_error));
		switch (ch) {
		case HOST_OPENED:
			log_warn("route %s: host %s is down after %d "
			    "failure(s) in a row, skipped for %.0f s: %s",
			    route, v.name, v.failures, v.open_until - now,
			    safe);
			break;
		case HOST_REOPENED:
			log_warn("route %s: probe of host %s failed, skipped "
			    "for %.0f s: %s", route, v.name,
			    v.open_until - now, safe);
			break;
		case HOST_CLOSED:
			log_info("route %s: host %s is up again", route,
			    v.name);
			back = 1;
			break;
		case HOST_SAME:
			break;
		}
	}
	return back;
}

void
upstream_pools_json(const struct upstream_pools *u, json_t *doc)
{
	json_t *pools = json_array();
	size_t i, k;

	for (i = 0; u != NULL && i < u->n; i++) {
		const struct host_pool *p = u->pools[i].pool;
		json_t *o = json_object(), *hosts = json_array();

		json_object_set_new(o, "route",
		    json_string(u->pools[i].route));
		for (k = 0; k < host_pool_size(p); k++) {
			struct host_pool_view v;
			json_t *h = json_object();

			host_pool_view(p, k, &v);
			json_object_set_new(h, "host", json_string(v.name));
			json_object_set_new(h, "priority",
			    json_integer(v.priority));
			json_object_set_new(h, "weight",
			    json_integer(v.weight));
			json_object_set_new(h, "state",
			    json_string(host_state_name(v.state)));
			json_object_set_new(h, "open_until",
			    v.state == HOST_OPEN ? json_real(v.open_until) :
			    json_null());
			json_object_set_new(h, "failures",
			    json_integer(v.failures));
			json_object_set_new(h, "failures_total",
			    json_integer((json_int_t)v.failures_total));
			/* an error text is a remote reply: made printable */
			{
				char safe[HOST_ERROR_MAX + 64];

				log_sanitize(safe, sizeof(safe), v.last_error,
				    strlen(v.last_error));
				json_object_set_new(h, "last_error",
				    json_string(safe));
			}
			json_array_append_new(hosts, h);
		}
		json_object_set_new(o, "hosts", hosts);
		json_array_append_new(pools, o);
	}
	json_object_set_new(doc, "pools", pools);
}

void
upstream_pools_metrics(const struct upstream_pools *u, struct mtext *t)
{
	size_t i, k;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		if (pass == 0)
			mtext_family(t, "ferry_upstream_host_up", "gauge",
			    "1 when a pool host's circuit is closed, 0 while "
			    "it is open or probing.");
		else
			mtext_family(t, "ferry_upstream_host_failures_total",
			    "counter", "Failures of a pool host (connection, "
			    "TLS handshake, 421) since the runner started.");
		for (i = 0; u != NULL && i < u->n; i++) {
			const struct host_pool *p = u->pools[i].pool;

			for (k = 0; k < host_pool_size(p); k++) {
				struct host_pool_view v;

				host_pool_view(p, k, &v);
				mtext_printf(t, "%s{route=\"", pass == 0 ?
				    "ferry_upstream_host_up" :
				    "ferry_upstream_host_failures_total");
				mtext_label(t, u->pools[i].route);
				mtext_printf(t, "\",host=\"");
				mtext_label(t, v.name);
				if (pass == 0)
					mtext_printf(t, "\"} %d\n",
					    v.state == HOST_UP ? 1 : 0);
				else
					mtext_printf(t, "\"} %llu\n",
					    (unsigned long long)
					    v.failures_total);
			}
		}
	}
}
