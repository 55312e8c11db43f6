/*
 * route_learn.c - the queue runner's memory of what each route's
 * upstream offers (route_learn.h).
 *
 * Security stance: what it keeps comes from the delivery agents, which
 * decoded it from a remote server's EHLO; the agent's frame was checked
 * (deliver_proto.c) and only flags and a number are kept, under the
 * name of a route the running configuration has.  A route's name from
 * the store is only used when the configuration has that route.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "route_learn.h"
#include "store.h"
#include "util.h"

void
route_learn_init(struct route_learn *rl)
{
	route_caps_table_init(&rl->table);
	rl->changes = 0;
}

void
route_learn_free(struct route_learn *rl)
{
	route_caps_table_free(&rl->table);
}

/* The configured route named name when its upstream can be learned. */
static const struct route_config *
route_named(const struct ferry_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (strcmp(cfg->routes[i].name, name) == 0)
			return route_caps_learnable(&cfg->routes[i]) ?
			    &cfg->routes[i] : NULL;
	return NULL;
}

/* "host:port,host:port": whose capabilities these are. */
static void
hosts_key(const struct route_config *r, char *out, size_t outlen)
{
	size_t i, len;

	out[0] = '\0';
	for (i = 0; i < r->nhosts; i++) {
		len = strlen(out);
		snprintf(out + len, outlen - len, "%s%s", i ? "," : "",
		    r->hosts[i]);
	}
}

struct load_ctx {
	struct route_learn *rl;
	const struct ferry_config *cfg;
};

static void
load_row(void *arg, const char *route, const char *hosts, uint32_t flags,
    uint64_t size_max, double learned_at)
{
	struct load_ctx *lc = arg;
	const struct route_config *r = route_named(lc->cfg, route);
	struct route_caps c;
	char key[4096];

	(void)learned_at;
	if (r == NULL || strlen(route) > ROUTE_CAPS_NAME_MAX)
		return;
	hosts_key(r, key, sizeof(key));
	if (strcmp(key, hosts) != 0)
		return;          /* learned of other hosts */
	c.flags = flags & RCAP_ALL;
	c.size_max = size_max;
	(void)route_caps_set(&lc->rl->table, route, &c);
}

void
route_learn_load(struct route_learn *rl, struct store *st,
    const struct ferry_config *cfg)
{
	struct load_ctx lc = { rl, cfg };

	route_caps_table_free(&rl->table);
	rl->changes++;
	if (st == NULL)
		return;
	if (store_route_caps_each(st, load_row, &lc) < 0)
		log_warn("queue: cannot read what the routes' upstreams "
		    "offer: %s; learned again at the next delivery",
		    store_errmsg(st));
}

void
route_learn_seen(struct route_learn *rl, struct store *st,
    const struct ferry_config *cfg, const char *route,
    const struct route_caps *c)
{
	const struct route_config *r = route_named(cfg, route);
	char key[4096], words[128];

	if (r == NULL || strlen(route) > ROUTE_CAPS_NAME_MAX ||
	    !route_caps_set(&rl->table, route, c))
		return;
	rl->changes++;
	route_caps_describe(route_caps_find(&rl->table, route), words,
	    sizeof(words));
	log_info("route %s: the upstream offers %s", route, words);
	hosts_key(r, key, sizeof(key));
	if (st != NULL && (store_begin(st) < 0 ||
	    store_route_caps_put(st, route, key, c->flags & RCAP_ALL,
	    (c->flags & RCAP_SIZE) ? c->size_max : 0, now_wall()) < 0))
		log_warn("route %s: cannot remember what its upstream "
		    "offers: %s", route, store_errmsg(st));
}
