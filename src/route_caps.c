/*
 * route_caps.c - each route's upstream capabilities and the session's
 * decisions from them (route_caps.h).
 *
 * Security stance: pure code over the runner's note and the shared
 * configuration; the note is decoded strictly (count, name lengths and
 * flag bits bounded) and a malformed one changes nothing.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address_pattern.h"
#include "config.h"
#include "route_caps.h"
#include "util.h"

void
route_caps_table_init(struct route_caps_table *t)
{
	t->v = NULL;
	t->n = 0;
}

void
route_caps_table_free(struct route_caps_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	route_caps_table_init(t);
}

static struct route_caps_entry *
entry_of(const struct route_caps_table *t, const char *route)
{
	size_t i;

	if (route == NULL)
		return NULL;
	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, route) == 0)
			return &t->v[i];
	return NULL;
}

const struct route_caps *
route_caps_find(const struct route_caps_table *t, const char *route)
{
	const struct route_caps_entry *e = entry_of(t, route);

	return e != NULL ? &e->caps : NULL;
}

int
route_caps_set(struct route_caps_table *t, const char *route,
    const struct route_caps *c)
{
	struct route_caps_entry *e = entry_of(t, route);
	struct route_caps norm = *c;

	norm.flags &= RCAP_ALL;
	if (!(norm.flags & RCAP_SIZE))
		norm.size_max = 0;
	if (e != NULL) {
		if (e->caps.flags == norm.flags &&
		    e->caps.size_max == norm.size_max)
			return 0;
		e->caps = norm;
		return 1;
	}
	t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
	t->v[t->n].name = xstrdup(route);
	t->v[t->n].caps = norm;
	t->n++;
	return 1;
}

int
route_caps_forget(struct route_caps_table *t, const char *route)
{
	struct route_caps_entry *e = entry_of(t, route);

	if (e == NULL)
		return 0;
	free(e->name);
	*e = t->v[--t->n];
	return 1;
}

uint64_t
route_caps_limit(const struct route_caps *c)
{
	return c != NULL && (c->flags & RCAP_SIZE) ? c->size_max : 0;
}

int
route_caps_learnable(const struct route_config *r)
{
	return r != NULL && r->nhosts > 0;
}

/* The configured route named name that the table may speak of. */
static const struct route_config *
learnable_route(const struct ferry_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (strcmp(cfg->routes[i].name, name) == 0)
			return route_caps_learnable(&cfg->routes[i]) ?
			    &cfg->routes[i] : NULL;
	return NULL;
}

size_t
route_caps_count(const struct route_caps_table *t,
    const struct ferry_config *cfg)
{
	size_t i, count = 0;

	for (i = 0; i < t->n && count < ROUTE_CAPS_MAX; i++)
		if (strlen(t->v[i].name) <= ROUTE_CAPS_NAME_MAX &&
		    learnable_route(cfg, t->v[i].name) != NULL)
			count++;
	return count;
}

size_t
route_caps_encode(const struct route_caps_table *t,
    const struct ferry_config *cfg, struct ipc_out *m)
{
	size_t i, count = route_caps_count(t, cfg), at;

	ipc_add_u32(m, (uint32_t)count);
	for (i = 0, at = 0; i < t->n && at < count; i++) {
		if (strlen(t->v[i].name) > ROUTE_CAPS_NAME_MAX ||
		    learnable_route(cfg, t->v[i].name) == NULL)
			continue;
		ipc_add_str(m, t->v[i].name);
		ipc_add_u32(m, t->v[i].caps.flags);
		ipc_add_u64(m, t->v[i].caps.size_max);
		at++;
	}
	return count;
}

int
route_caps_decode(struct ipc_in *in, struct route_caps_table *t)
{
	struct route_caps_table nt;
	uint32_t count, i;

	route_caps_table_init(&nt);
	if (ipc_get_u32(in, &count) < 0 || count > ROUTE_CAPS_MAX)
		return -1;
	for (i = 0; i < count; i++) {
		struct route_caps c;
		char *name = NULL;

		if (ipc_get_str(in, &name, ROUTE_CAPS_NAME_MAX) < 0)
			goto bad;
		if (name[0] == '\0' || route_caps_find(&nt, name) != NULL ||
		    ipc_get_u32(in, &c.flags) < 0 ||
		    (c.flags & ~RCAP_ALL) != 0 ||
		    ipc_get_u64(in, &c.size_max) < 0 ||
		    (!(c.flags & RCAP_SIZE) && c.size_max != 0)) {
			free(name);
			goto bad;
		}
		(void)route_caps_set(&nt, name, &c);
		free(name);
	}
	if (ipc_end(in) < 0)
		goto bad;
	route_caps_table_free(t);
	*t = nt;
	return 0;
bad:
	route_caps_table_free(&nt);
	return -1;
}

const struct route_caps *
route_caps_for(const struct ferry_config *cfg,
    const struct route_caps_table *t, const char *sender, const char *domain)
{
	const struct route_config *r = config_route_select(cfg,
	    sender != NULL ? sender : "", domain != NULL ? domain : "");

	if (!route_caps_learnable(r))
		return NULL;
	return route_caps_find(t, r->name);
}

enum route_caps_verdict
route_caps_check_rcpt(const struct route_caps *caps,
    const struct route_caps_need *need)
{
	uint64_t limit = route_caps_limit(caps);

	if (caps == NULL)
		return RCV_OK;
	if (limit > 0 && need->size > limit)
		return RCV_SIZE;
	if (need->smtputf8 && !(caps->flags & RCAP_SMTPUTF8))
		return RCV_SMTPUTF8;
	if (need->eightbit && !(caps->flags & RCAP_8BITMIME))
		return RCV_8BITMIME;
	return RCV_OK;
}

/* Nonzero when r would take mail from sender to some domain, and sets
 * *catch_all when it takes every domain no better route takes. */
static int
route_open_to(const struct route_config *r, const char *sender,
    int *catch_all)
{
	size_t k;

	if (r->nsenders > 0 && address_pattern_rank(r->senders, r->nsenders,
	    sender) == 0)
		return 0;
	if (r->nsenders > 0 && r->ndomains == 0)
		*catch_all = 1;
	for (k = 0; k < r->ndomains; k++)
		if (strcmp(r->domains[k], "*") == 0)
			*catch_all = 1;
	return 1;
}

enum route_caps_verdict
route_caps_check_mail(const struct ferry_config *cfg,
    const struct route_caps_table *t, const char *sender, uint64_t size)
{
	int catch_all = 0;
	size_t i;

	if (size == 0)
		return RCV_OK;
	if (sender == NULL)
		sender = "";
	for (i = 0; i < cfg->nroutes; i++) {
		const struct route_config *r = &cfg->routes[i];
		const struct route_caps *c;
		uint64_t limit;

		if (!route_open_to(r, sender, &catch_all))
			continue;
		c = route_caps_learnable(r) ? route_caps_find(t, r->name) :
		    NULL;
		limit = route_caps_limit(c);
		if (c == NULL || limit == 0 || size <= limit)
			return RCV_OK;   /* this route might take it */
	}
	/* with no catch-all route, some domains go by MX: unknown */
	return catch_all ? RCV_SIZE : RCV_OK;
}

enum route_caps_verdict
route_caps_check_data(const struct route_caps *const *caps, size_t n,
    uint64_t size)
{
	size_t i;

	if (n == 0)
		return RCV_OK;
	for (i = 0; i < n; i++) {
		uint64_t limit = route_caps_limit(caps[i]);

		if (limit == 0 || size <= limit)
			return RCV_OK;
	}
	return RCV_SIZE;
}

uint64_t
route_caps_advertised_size(const struct ferry_config *cfg,
    const struct route_caps_table *t, uint64_t limit)
{
	size_t i;

	for (i = 0; i < cfg->nroutes; i++) {
		const struct route_config *r = &cfg->routes[i];
		uint64_t l;

		if (!route_caps_learnable(r))
			continue;
		l = route_caps_limit(route_caps_find(t, r->name));
		if (l > 0 && (limit == 0 || l < limit))
			limit = l;
	}
	return limit;
}

void
route_caps_describe(const struct route_caps *c, char *out, size_t outlen)
{
	static const struct {
		uint32_t bit;
		const char *word;
	} words[] = {
		{ RCAP_8BITMIME, "8BITMIME" },
		{ RCAP_SMTPUTF8, "SMTPUTF8" },
		{ RCAP_DSN, "DSN" },
		{ RCAP_REQUIRETLS, "REQUIRETLS" },
	};
	size_t i, len;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (c->flags & RCAP_SIZE) {
		if (c->size_max > 0)
			snprintf(out, outlen, "SIZE=%llu",
			    (unsigned long long)c->size_max);
		else
			snprintf(out, outlen, "SIZE");
	}
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!(c->flags & words[i].bit))
			continue;
		len = strlen(out);
		snprintf(out + len, outlen - len, "%s%s", len ? " " : "",
		    words[i].word);
	}
	if (out[0] == '\0')
		snprintf(out, outlen, "none");
}
