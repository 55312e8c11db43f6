/*
 * token_client.c - the queue runner's side of ferry-token
 * (token_client.h).
 *
 * ferry-token's socket exists only while some route's credentials use
 * oauth2 (the master makes it then, and removes it otherwise): while it
 * is absent, no route is an OAuth2 route and the gate is NONE for all.
 * While it is there but ferry-token has not told a route's state yet
 * (at start, or while it restarts), mail of routes that authenticate
 * waits: sending it without a token would only defer it.  A route's
 * last known token stays usable until it expires, also while ferry-token
 * is away or refreshing, or after a refresh failed.
 *
 * Security stance: ferry-token is a ferry process, but its frames are
 * decoded strictly and a malformed one drops the connection.  Access
 * tokens are wiped when replaced; none is ever logged.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "procfd.h"
#include "token_client.h"
#include "util.h"

#define RECONNECT_MS 1000
#define TOKEN_MARGIN_S 2          /* a token this close to its end is not
                                     handed to an agent (ferry-token
                                     renews at 80 % of a token's life) */
#define ANSWER_CAP (16 * 1024)

static const struct channel_rule token_may_send[] = {
	{ IMSG_TOKEN_STATE, 0 },
	{ 0, 0 }
};

struct route_entry {
	struct token_state st;
	uint32_t serial;          /* counts the route's access tokens */
	uint32_t asked;           /* the serial a refresh was asked for */
};

struct token_client {
	char path[4200];
	struct channel ch;
	int connected;
	int present;              /* the socket file exists */
	int64_t next_try_ms;
	struct route_entry *v;
	size_t n;
};

static void
try_connect(struct token_client *tc)
{
	char why[256];
	int fd;

	tc->next_try_ms = now_ms() + RECONNECT_MS;
	if (access(tc->path, F_OK) < 0) {
		if (tc->present)
			log_info("oauth2: no route uses OAuth2 any more");
		tc->present = 0;
		return;
	}
	tc->present = 1;
	fd = unix_connect_nonblock(tc->path, why, sizeof(why));
	if (fd < 0) {
		log_debug("oauth2: token process: %s", why);
		return;
	}
	channel_reopen(&tc->ch, fd);
	tc->ch.rlen = tc->ch.roff = 0;
	tc->connected = 1;
}

struct token_client *
token_client_new(const char *spool_dir)
{
	struct token_client *tc = xcalloc(1, sizeof(*tc));

	snprintf(tc->path, sizeof(tc->path), "%s/%s", spool_dir,
	    TOKEN_SOCKET_NAME);
	channel_init(&tc->ch, -1, "the token process", token_may_send,
	    ANSWER_CAP, 0);
	tc->ch.wmax = 65536;
	try_connect(tc);
	return tc;
}

void
token_client_free(struct token_client *tc)
{
	size_t i;

	if (tc == NULL)
		return;
	channel_free(&tc->ch);
	for (i = 0; i < tc->n; i++)
		token_state_free(&tc->v[i].st);
	free(tc->v);
	free(tc);
}

void
token_client_pollfd(struct token_client *tc, struct pollfd *p)
{
	p->fd = tc->connected ? tc->ch.fd : -1;
	p->events = POLLIN | (channel_pending(&tc->ch) ? POLLOUT : 0);
	p->revents = 0;
}

int
token_client_timeout_ms(const struct token_client *tc)
{
	int64_t d;

	if (tc->connected)
		return -1;
	d = tc->next_try_ms - now_ms();
	return d < 0 ? 0 : (int)d;
}

/* Takes one state: replaces the route's, or adds it. */
static void
take_state(struct token_client *tc, struct token_state *t)
{
	size_t i;

	for (i = 0; i < tc->n; i++)
		if (strcmp(tc->v[i].st.route, t->route) == 0)
			break;
	if (i == tc->n) {
		tc->v = xrealloc(tc->v, (tc->n + 1) * sizeof(*tc->v));
		memset(&tc->v[i], 0, sizeof(tc->v[i]));
		tc->n++;
	} else {
		if (tc->v[i].st.status != t->status)
			log_debug("oauth2: route %s: token %s", t->route,
			    token_status_name(t->status));
		if (strcmp(tc->v[i].st.access_token, t->access_token) != 0)
			tc->v[i].serial++;
		token_state_free(&tc->v[i].st);
	}
	tc->v[i].st = *t;
}

static void
disconnect(struct token_client *tc)
{
	channel_close(&tc->ch);
	tc->connected = 0;
	tc->next_try_ms = now_ms() + RECONNECT_MS;
}

int
token_client_events(struct token_client *tc, short revents)
{
	int changed = 0;

	if (!tc->connected) {
		if (now_ms() >= tc->next_try_ms)
			try_connect(tc);
		return 0;
	}
	if ((revents & POLLOUT) && channel_flush(&tc->ch) < 0) {
		disconnect(tc);
		return 0;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	for (;;) {
		struct ipc_in in;
		struct token_state t;
		int got, n = channel_fill(&tc->ch);

		if (n < 0) {
			disconnect(tc);
			return changed;
		}
		while ((got = channel_next(&tc->ch, &in)) > 0) {
			if (token_state_decode(&in, &t) < 0) {
				channel_violation(&tc->ch, "malformed "
				    "TOKEN_STATE");
				disconnect(tc);
				return changed;
			}
			take_state(tc, &t);
			changed = 1;
		}
		if (got < 0 || tc->ch.fd < 0) {
			disconnect(tc);
			return changed;
		}
		if (n == 0)
			return changed;
	}
}

static struct route_entry *
find(const struct token_client *tc, const char *route)
{
	size_t i;

	for (i = 0; i < tc->n; i++)
		if (strcmp(tc->v[i].st.route, route) == 0)
			return &tc->v[i];
	return NULL;
}

enum token_gate
token_client_gate(struct token_client *tc, const char *route, int auth,
    const char **token, const char **reason, uint32_t *serial)
{
	const struct route_entry *e;
	const struct token_state *t;

	*token = "";
	*reason = "";
	*serial = 0;
	if (tc == NULL || !tc->present)
		return TOKEN_GATE_NONE;
	e = find(tc, route);
	if (e == NULL)
		/* not told yet: ferry-token tells every route at once */
		return auth && tc->n == 0 ? TOKEN_GATE_WAIT : TOKEN_GATE_NONE;
	t = &e->st;
	*serial = e->serial;
	if (t->access_token[0] != '\0' &&
	    t->expires > (int64_t)time(NULL) + TOKEN_MARGIN_S) {
		*token = t->access_token;
		return TOKEN_GATE_SEND;
	}
	if (t->status == TOKEN_FAILED) {
		*reason = t->reason;
		return TOKEN_GATE_DEFER;
	}
	return TOKEN_GATE_WAIT;
}

void
token_client_refused(struct token_client *tc, const char *route,
    uint32_t serial)
{
	struct route_entry *e;

	if (tc == NULL || !tc->connected || (e = find(tc, route)) == NULL ||
	    e->serial != serial || e->asked == serial + 1)
		return;
	e->asked = serial + 1;    /* 0: never asked */
	ipc_add_str(channel_begin(&tc->ch, IMSG_TOKEN_REFRESH), route);
	if (channel_end(&tc->ch) < 0 || channel_flush(&tc->ch) < 0)
		disconnect(tc);
}

size_t
token_client_count(const struct token_client *tc)
{
	return tc != NULL ? tc->n : 0;
}

const struct token_state *
token_client_at(const struct token_client *tc, size_t i)
{
	return &tc->v[i].st;
}
