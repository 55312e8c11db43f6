/*
 * control.c - the queue runner's side of ferryctl: reads one request
 * frame from an accepted control connection, runs it against the store,
 * answers with one JSON document in CTL_ANSWER frames and closes (see
 * control.h).
 *
 * Security stance: the master creates the control socket for root (and
 * the admin group) only and the runner checks the peer's credentials
 * before calling control_serve, so the peer is trusted to administer
 * the queue - but not to be well-behaved: the connection is a channel
 * (channel.h) on which it may send one CTL_REQUEST of at most
 * CONTROL_REQUEST_MAX bytes, anything else or a frame that does not
 * decode drops it unanswered; the request is bounded in time (a silent
 * or slow client cannot hold the runner for more than CONTROL_READ_MS +
 * CONTROL_WRITE_MS), its words must be printable ASCII, queue ids are
 * checked for their exact shape, and every value reaches SQLite as a
 * bound parameter.  Text from the queue (addresses, headers, replies) is
 * never trusted to be clean: it enters the answer through
 * json_bytes_string (invalid UTF-8 kept as U+00XX) and jansson writes the
 * answer as ASCII only, every control character and non-ASCII character
 * escaped.
 */
#include "autoconfig.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "anvil_figures.h"
#include "channel.h"
#include "config.h"
#include "control.h"
#include "control_proto.h"
#include "json_bytes.h"
#include "log.h"
#include "lifecycle.h"
#include "route_caps.h"
#include "smtp_parse.h"
#include "stall.h"
#include "store.h"
#include "token_client.h"
#include "upstream_pools.h"
#include "util.h"

#define CONTROL_READ_MS 2000       /* to receive the request */
#define CONTROL_WRITE_MS 5000      /* to hand over the answer */
#define CONTROL_MAX_WORDS 4
#define CONTROL_LIST_WORDS 10      /* "queue list" and its options */
#define LIST_PAGE_MAX 500          /* messages in one page at most */
#define LIST_PAGE_MS 10            /* CPU time a page's walk may take */
/* about this much JSON in one page at most: dumped in a few ms and
 * taken whole by the connection's send buffer (CONTROL_SNDBUF), so
 * neither holds the runner long when ferryctl is slow to read */
#define LIST_PAGE_BYTES (128 * 1024)
#define CONTROL_SNDBUF (512 * 1024)
#define HISTORY_MAX_WORDS 9        /* history and its 8 filters */
#define REQUEST_WORDS_KEPT (CONTROL_LIST_WORDS + 1)

/* What a command handler answers: a document, or an error. */
struct answer {
	json_t *doc;                   /* the {"ok":true,...} object */
	char err[512];                 /* set: answer {"ok":false,...} */
};

/* --- building the document (out of memory is fatal, as for xmalloc) --- */

static json_t *
checked(json_t *v)
{
	if (v == NULL)
		log_fatal("out of memory (JSON value)");
	return v;
}

static json_t *
new_object(void)
{
	return checked(json_object());
}

static json_t *
new_array(void)
{
	return checked(json_array());
}

/* Adds v (whose reference it takes) as member key of o; returns v. */
static json_t *
put(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, checked(v)) != 0)
		log_fatal("out of memory (JSON member %s)", key);
	return v;
}

static void
push(json_t *a, json_t *v)
{
	if (json_array_append_new(a, checked(v)) != 0)
		log_fatal("out of memory (JSON array)");
}

static void
put_str(json_t *o, const char *key, const char *s)
{
	put(o, key, json_bytes_cstring(s));
}

static void
put_int(json_t *o, const char *key, int64_t v)
{
	put(o, key, json_integer((json_int_t)v));
}

static void
put_bool(json_t *o, const char *key, int v)
{
	put(o, key, json_boolean(v));
}

/* A time or size stored as "negative means unknown": null when v < 0 (and
 * for a non-finite number, which JSON cannot carry). */
static void
put_double_opt(json_t *o, const char *key, double v)
{
	put(o, key, v < 0 || !isfinite(v) ? json_null() : json_real(v));
}

static void
put_int_opt(json_t *o, const char *key, int64_t v)
{
	put(o, key, v < 0 ? json_null() : json_integer((json_int_t)v));
}

/* The answer's top object, {"ok":true}, for a handler to fill. */
static json_t *
answer_ok(struct answer *a)
{
	json_decref(a->doc);
	a->doc = new_object();
	put_bool(a->doc, "ok", 1);
	return a->doc;
}

static void
fail(struct answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(struct answer *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
}

static void
store_failed(struct answer *a, struct control_ctx *ctx, const char *what)
{
	log_warn("control: %s: %s", what, store_errmsg(ctx->st));
	fail(a, "queue store error (%s): %s", what, store_errmsg(ctx->st));
}

/* Exactly QID_LEN upper-case hex characters. */
static int
valid_qid(const char *q)
{
	size_t i;

	for (i = 0; i < QID_LEN; i++)
		if (!((q[i] >= '0' && q[i] <= '9') ||
		    (q[i] >= 'A' && q[i] <= 'F')))
			return 0;
	return q[QID_LEN] == '\0';
}

/* The store's not-found / wrong-state codes as an operator reads them. */
static void
state_error(struct answer *a, struct control_ctx *ctx, const char *qid,
    int rc, const char *op)
{
	char state[16];

	if (rc == STORE_NOT_FOUND) {
		fail(a, "no message %s in the queue", qid);
		return;
	}
	if (rc == STORE_WRONG_STATE) {
		if (store_admin_state(ctx->st, qid, state) != 0)
			ferry_strlcpy(state, "?", sizeof(state));
		if (strcmp(state, "hold") == 0)
			fail(a, "message %s is on hold (queue release %s "
			    "first)", qid, qid);
		else
			fail(a, "message %s is %s, cannot %s it", qid, state,
			    op);
		return;
	}
	store_failed(a, ctx, op);
}

static void
ok_changed(struct answer *a, int64_t n)
{
	put_int(answer_ok(a), "changed", n);
}

/* A change is made inside the runner's transaction (so that a failure
 * to commit it is the runner's to handle).  0, or -1 with the answer set
 * to the error. */
static int
begin_change(struct control_ctx *ctx, struct answer *a, const char *op)
{
	char why[300];

	if (ctx->begin == NULL || ctx->begin(ctx->wake_arg, why,
	    sizeof(why)) == 0)
		return 0;
	fail(a, "%s not done: the queue cannot write (%s)", op, why);
	return -1;
}

/* A change is answered only once it is durable: the runner commits it
 * now.  0, or -1 with the answer set to the error. */
static int
committed(struct control_ctx *ctx, struct answer *a, const char *op,
    const char *qid)
{
	char why[300];

	if (ctx->commit == NULL || ctx->commit(ctx->wake_arg, why,
	    sizeof(why)) == 0)
		return 0;
	log_warn("control: %s%s%s not committed: %s", op, qid ? " " : "",
	    qid ? qid : "", why);
	fail(a, "%s not done: the queue could not commit it (%s)", op, why);
	return -1;
}

/* --- commands -------------------------------------------------------------- */

/* "routes" of status: each route's recipients' results since the runner
 * started, its last delivery and its last error (the reply and when). */
static void
put_routes(json_t *doc, const struct sched_metrics *d)
{
	json_t *routes = put(doc, "routes", new_array());
	size_t i, n;

	if (d == NULL)
		return;
	n = d->routes[SCHED_METRIC_ROUTES].route[0] != '\0' ?
	    SCHED_METRIC_ROUTES + 1 : d->nroutes;
	for (i = 0; i < n; i++) {
		const struct sched_route_count *rc = &d->routes[i];
		json_t *o;

		if (rc->route[0] == '\0')
			continue;
		o = new_object();
		push(routes, o);
		put_str(o, "route", rc->route);
		put_int(o, "sent", (int64_t)rc->by_status[STATUS_SENT]);
		put_int(o, "deferred", (int64_t)rc->by_status[STATUS_DEFERRED]);
		put_int(o, "bounced", (int64_t)rc->by_status[STATUS_BOUNCED]);
		put_int(o, "expired", (int64_t)rc->by_status[STATUS_EXPIRED]);
		put_double_opt(o, "last_sent_at", rc->last_sent_at > 0 ?
		    rc->last_sent_at : -1);
		put_str(o, "last_error", rc->last_error);
		put_double_opt(o, "last_error_at", rc->last_error_at > 0 ?
		    rc->last_error_at : -1);
	}
}

/* "oauth2" of status: each OAuth2 route's token state (never the token
 * itself): ok / refreshing / failed, why, and when the token expires. */
static void
put_oauth2(json_t *doc, const struct token_client *tc)
{
	json_t *arr = put(doc, "oauth2", new_array());
	size_t i;

	for (i = 0; i < token_client_count(tc); i++) {
		const struct token_state *t = token_client_at(tc, i);
		json_t *o = new_object();

		push(arr, o);
		put_str(o, "route", t->route);
		put_str(o, "state", token_status_name(t->status));
		put_str(o, "reason", t->reason);
		put_bool(o, "have_token", t->access_token[0] != '\0');
		put_double_opt(o, "expires_at", t->expires > 0 ?
		    (double)t->expires : -1);
		put_int(o, "refresh_ok", (int64_t)t->refresh_ok);
		put_int(o, "refresh_failed", (int64_t)t->refresh_failed);
	}
}

/* "shaping" of status: each route with rate shaping, its limits, the
 * tokens left in each, its rate and connections after back-off, its
 * back-off level and the recipients waiting over its quota. */
static void
put_shaping(json_t *doc, const struct sched_metrics *d)
{
	json_t *list = put(doc, "shaping", new_array());
	size_t i;
	int w;

	for (i = 0; d != NULL && i < d->shaping.n; i++) {
		const struct shaping_figure *f = &d->shaping.route[i];
		json_t *o = new_object(), *q;

		push(list, o);
		put_str(o, "route", f->route);
		put_double_opt(o, "rate", f->rate > 0 ? f->rate : -1);
		put_int(o, "connections", f->connections);
		put_int(o, "backoff_level", f->level);
		put_double_opt(o, "paused_until", f->paused_until > 0 ?
		    f->paused_until : -1);
		put_int(o, "waiting", f->waiting);
		put_int(o, "throttles", (int64_t)f->throttles);
		q = put(o, "quotas", new_object());
		for (w = 0; w < SHAPE_WINDOWS; w++) {
			json_t *b;

			if (f->limit[w] <= 0)
				continue;
			b = put(q, shaper_window_name((enum shaper_window)w),
			    new_object());
			put_int(b, "limit", f->limit[w]);
			put_double_opt(b, "tokens", f->tokens[w]);
		}
	}
}

/* "anvil" of status: what the master told of ferry-anvil, or null. */
static void
put_anvil(json_t *doc, const struct anvil_figures *f)
{
	json_t *o, *hits;
	size_t i;

	if (f == NULL) {
		put(doc, "anvil", json_null());
		return;
	}
	o = put(doc, "anvil", new_object());
	put_bool(o, "running", f->running);
	put_bool(o, "stress", f->stress);
	put_int(o, "stress_entered", (int64_t)f->stress_entered);
	put_int(o, "connections", f->connections);
	put_int(o, "clients", f->clients);
	hits = put(o, "limit_hits", new_object());
	for (i = 0; i < ANVIL_HIT_MAX; i++)
		put_int(hits, anvil_hit_names[i], (int64_t)f->hits[i]);
}

/* "upstreams" of status: what each route's upstream offered in the EHLO
 * of the agents' last connection (route_caps.h). */
static void
put_upstreams(json_t *doc, const struct control_ctx *ctx)
{
	json_t *list = put(doc, "upstreams", new_array());
	size_t i;

	for (i = 0; ctx->upstreams != NULL && i < ctx->upstreams->n; i++) {
		const struct route_caps_entry *e = &ctx->upstreams->v[i];
		char words[128];
		json_t *o = new_object();

		push(list, o);
		route_caps_describe(&e->caps, words, sizeof(words));
		put_str(o, "route", e->name);
		put_str(o, "offers", words);
		put_int(o, "size_limit", (int64_t)route_caps_limit(&e->caps));
	}
}

static void
cmd_status(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	struct store_queue_stats qs;
	json_t *doc, *o;

	(void)qid;
	if (ctx->st == NULL) {
		fail(a, "the queue is unavailable: %s", ctx->store_trouble);
		return;
	}
	if (store_admin_stats(ctx->st, &qs) == -1) {
		store_failed(a, ctx, "status");
		return;
	}
	doc = answer_ok(a);
	o = put(doc, "master", new_object());
	put_int(o, "pid", ctx->master_pid);
	put_int(o, "generation", ctx->generation);
	put_str(o, "config", ctx->config_path ? ctx->config_path : "");
	put_bool(o, "draining", ctx->draining);
	o = put(doc, "workers", new_object());
	put_int_opt(o, "total", ctx->workers_total);
	put_int_opt(o, "busy", ctx->workers_busy);
	o = put(doc, "agents", new_object());
	put_int_opt(o, "total", ctx->agents_total);
	put_int_opt(o, "busy", ctx->agents_busy);
	o = put(doc, "queue", new_object());
	put_int(o, "messages", qs.active + qs.hold);
	put_int(o, "active", qs.active);
	put_int(o, "hold", qs.hold);
	put_int(o, "recipients_pending", qs.rcpts_pending);
	put_double_opt(o, "oldest_received_at", qs.oldest_received_at);
	o = put(doc, "intake", new_object());
	put_int(o, "messages", (int64_t)ctx->messages_in);
	put_int(o, "commits", (int64_t)ctx->commits);
	put_bool(o, "refusing", ctx->store_state != 0);
	o = put(doc, "store", new_object());
	put_str(o, "state", ctx->store_state == 2 ? "failing" :
	    ctx->store_state == 1 ? "low_space" : "ok");
	put_double_opt(o, "failing_since", ctx->failing_since);
	put_str(o, "error", ctx->failing_since >= 0 && ctx->store_error ?
	    ctx->store_error : "");
	put_int(o, "commit_failures", ctx->commit_failures);
	put_int(o, "outcomes_unsaved", (int64_t)ctx->outcomes_unsaved);
	put_int_opt(o, "free_bytes", ctx->space_known ?
	    (int64_t)ctx->free_bytes : -1);
	put_int_opt(o, "min_free_bytes", ctx->space_known ?
	    (int64_t)ctx->min_free_bytes : -1);
	put_routes(doc, ctx->deliveries);
	put_oauth2(doc, ctx->tokens);
	upstream_pools_json(ctx->pools, doc);
	put_shaping(doc, ctx->deliveries);
	put_upstreams(doc, ctx);
	put_anvil(doc, ctx->anvil);
	o = put(doc, "stall", new_object());
	put_bool(o, "known", ctx->stall_known);
	put_bool(o, "age", (ctx->stall_reasons & STALL_AGE) != 0);
	put_bool(o, "stall", (ctx->stall_reasons & STALL_STALL) != 0);
	if (ctx->cfg != NULL) {
		put_int(o, "warn_age", ctx->cfg->warn_age);
		put_int(o, "warn_stall", ctx->cfg->warn_stall);
	}
	put_double_opt(doc, "now", now_wall());
}

struct list_walk {
	json_t *messages;              /* the array the entries go to */
	double now;
	const struct ferry_config *cfg;
	const char *route;             /* only messages routed so, or NULL */
	size_t bytes;                  /* the page's JSON so far, about */
};

/* About the JSON one entry takes (plain ASCII; escapes make it more). */
static size_t
entry_bytes(const struct store_list_entry *e)
{
	size_t n = 240 + strlen(e->sender), i;

	for (i = 0; i < e->nrcpts; i++)
		n += strlen(e->rcpts[i]) + 4;
	if (e->last_reply != NULL)
		n += strlen(e->last_reply);
	if (e->last_dsn != NULL)
		n += strlen(e->last_dsn);
	return n;
}

/* Whether one of the listed recipients goes by the route named route
 * ("mx" for those no route takes). */
static int
routed_by(const struct list_walk *lw, const struct store_list_entry *e)
{
	size_t i;

	for (i = 0; i < e->nrcpts; i++) {
		const char *at = strrchr(e->rcpts[i], '@');
		const struct route_config *r = config_route_select(lw->cfg,
		    e->sender, at != NULL ? at + 1 : "");

		if (strcmp(r != NULL ? r->name : "mx", lw->route) == 0)
			return 1;
	}
	return 0;
}

static int
list_one(void *arg, const struct store_list_entry *e)
{
	struct list_walk *lw = arg;
	json_t *o, *rcpts;
	size_t i;

	if (lw->route != NULL && (lw->cfg == NULL || !routed_by(lw, e)))
		return 0;
	o = new_object();
	push(lw->messages, o);
	put_str(o, "id", e->qid);
	put_str(o, "state", e->state);
	put_double_opt(o, "received_at", e->received_at);
	put_int(o, "age", e->received_at >= 0 && lw->now > e->received_at ?
	    (int64_t)(lw->now - e->received_at) : 0);
	put_int_opt(o, "size", e->size);
	put_str(o, "sender", e->sender);
	rcpts = put(o, "recipients", new_array());
	for (i = 0; i < e->nrcpts; i++)
		push(rcpts, json_bytes_cstring(e->rcpts[i]));
	put_int(o, "recipients_total", e->rcpts_total);
	put_int(o, "pending", e->pending);
	put_double_opt(o, "next_attempt", e->next_attempt);
	put_str(o, "last_reply", e->last_reply);
	put_str(o, "last_dsn", e->last_dsn);
	lw->bytes += entry_bytes(e);
	return lw->bytes >= LIST_PAGE_BYTES ? 2 : 1;
}

/* A decimal number in [min, max] from all of s: 0, or -1. */
static int
parse_num(const char *s, long long min, long long max, long long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && *out >= min && *out <= max ?
	    0 : -1;
}

/* queue list [after=CURSOR] [limit=N] [sender=S] [rcpt=S] [route=NAME]
 * [older-than=SECONDS] [state=active|hold|deferred]: one page of at most
 * limit (and LIST_PAGE_MAX) messages, LIST_PAGE_BYTES of JSON and what
 * was found in about LIST_PAGE_MS, so the runner is never held long and
 * serves intake between pages; "next" is the cursor of the following
 * page (which may be empty when a filter kept nothing in the time),
 * null after the last.  ferryctl asks page after page. */
static void
cmd_list_opts(struct control_ctx *ctx, char *const *opts, size_t nopts,
    struct answer *a)
{
	struct store_list_filter f;
	struct list_walk lw;
	long long after = 0, limit = LIST_PAGE_MAX, age = 0;
	int64_t next = 0;
	json_t *doc;
	size_t i;

	memset(&f, 0, sizeof(f));
	memset(&lw, 0, sizeof(lw));
	lw.now = now_wall();
	lw.cfg = ctx->cfg;
	for (i = 0; i < nopts; i++) {
		const char *eq = strchr(opts[i], '=');
		const char *v = eq != NULL ? eq + 1 : "";
		size_t klen = eq != NULL ? (size_t)(eq - opts[i]) : 0;

#define KEY(k) (klen == strlen(k) && strncmp(opts[i], k, klen) == 0)
		if (eq == NULL || *v == '\0')
			goto usage;
		if (KEY("after")) {
			if (parse_num(v, 0, INT64_MAX, &after) < 0)
				goto usage;
		} else if (KEY("limit")) {
			if (parse_num(v, 1, LIST_PAGE_MAX, &limit) < 0)
				goto usage;
		} else if (KEY("older-than")) {
			if (parse_num(v, 0, 100LL * 365 * 86400, &age) < 0)
				goto usage;
			f.received_before = lw.now - (double)age;
		} else if (KEY("sender"))
			f.sender = v;
		else if (KEY("rcpt"))
			f.rcpt = v;
		else if (KEY("route"))
			lw.route = v;
		else if (KEY("state")) {
			if (strcmp(v, "active") != 0 && strcmp(v, "hold") != 0 &&
			    strcmp(v, "deferred") != 0)
				goto usage;
			f.state = v;
		} else
			goto usage;
#undef KEY
	}
	doc = answer_ok(a);
	put_double_opt(doc, "now", lw.now);
	lw.messages = put(doc, "messages", new_array());
	if (store_admin_list_page(ctx->st, after, (size_t)limit,
	    LIST_PAGE_MS, &f, list_one, &lw, &next) != 0) {
		store_failed(a, ctx, "queue list");
		return;
	}
	if (next > 0) {
		char cursor[32];

		snprintf(cursor, sizeof(cursor), "%lld", (long long)next);
		put_str(doc, "next", cursor);
	} else
		put(doc, "next", json_null());
	put_bool(doc, "truncated", next > 0);
	return;
usage:
	fail(a, "usage: queue list [after=CURSOR] [limit=N] [sender=TEXT] "
	    "[rcpt=TEXT] [route=NAME] [older-than=SECONDS] "
	    "[state=active|hold|deferred]");
}

static void
cmd_list(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	(void)qid;
	cmd_list_opts(ctx, NULL, 0, a);
}

static void
notify_json(json_t *o, uint32_t n)
{
	json_t *a;

	if (n == 0) {
		put(o, "dsn_notify", json_null());
		return;
	}
	a = put(o, "dsn_notify", new_array());
	if (n & NOTIFY_NEVER)
		push(a, json_string("NEVER"));
	if (n & NOTIFY_SUCCESS)
		push(a, json_string("SUCCESS"));
	if (n & NOTIFY_FAILURE)
		push(a, json_string("FAILURE"));
	if (n & NOTIFY_DELAY)
		push(a, json_string("DELAY"));
}

static void
cmd_show(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	struct store_msg_info m;
	json_t *doc, *o, *rcpts, *ro, *hist, *ho;
	double now = now_wall();
	size_t i, j;
	int rc, from_history = 0;


	/* a message that left the queue is shown from the history */
	rc = store_admin_show(ctx->st, qid, &m);
	if (rc == STORE_NOT_FOUND && (rc = store_history_show(ctx->st, qid,
	    &m)) == 0)
		from_history = 1;
	if (rc != 0) {
		state_error(a, ctx, qid, rc, "show");
		return;
	}
	doc = answer_ok(a);
	put_double_opt(doc, "now", now);
	o = put(doc, "message", new_object());
	put_bool(o, "in_history", from_history);
	put_str(o, "id", m.qid);
	put_str(o, "state", m.state);
	put_str(o, "hold_reason", m.hold_reason);
	put_double_opt(o, "received_at", m.received_at);
	put_int(o, "age", m.received_at >= 0 && now > m.received_at ?
	    (int64_t)(now - m.received_at) : 0);
	put_int_opt(o, "size", m.size);
	put_str(o, "sender", m.sender);
	put_str(o, "client_addr", m.client_addr);
	put_str(o, "client_name", m.client_name);
	put_str(o, "helo", m.helo);
	put_str(o, "protocol", m.protocol);
	put_str(o, "auth_user", m.auth_user);
	put_str(o, "body_type", m.body_type);
	put_bool(o, "smtputf8", m.smtputf8);
	put_int_opt(o, "size_declared", m.size_declared);
	put_str(o, "dsn_ret", m.dsn_ret);
	put_str(o, "dsn_envid", m.dsn_envid);
	put_str(o, "dsn_of", m.dsn_of);
	put_bool(o, "warned", m.warned);
	put(o, "headers", json_bytes_string(m.headers, m.headers != NULL ?
	    m.headers_len : 0));
	put_bool(o, "headers_truncated", m.headers_truncated);
	put_int(o, "recipients_total", m.rcpts_total);
	rcpts = put(o, "recipients", new_array());
	for (i = 0; i < m.nrcpts; i++) {
		const struct store_rcpt_info *r = &m.rcpts[i];

		ro = new_object();
		push(rcpts, ro);
		put_str(ro, "address", r->address);
		put_str(ro, "state", r->state);
		notify_json(ro, r->dsn_notify);
		put_str(ro, "dsn_orcpt", r->dsn_orcpt);
		put_int(ro, "attempts", r->attempts);
		put_double_opt(ro, "next_attempt", r->next_attempt);
		put_double_opt(ro, "last_attempt", r->last_attempt);
		put_str(ro, "last_reply", r->last_reply);
		put_str(ro, "last_dsn", r->last_dsn);
		put_int(ro, "history_total", r->history_total);
		hist = put(ro, "history", new_array());
		for (j = 0; j < r->nhistory; j++) {
			const struct store_attempt_info *h = &r->history[j];

			ho = new_object();
			push(hist, ho);
			put_double_opt(ho, "at", h->at);
			put_str(ho, "relay", h->relay);
			put_str(ho, "tls", h->tls);
			put_str(ho, "status", h->status);
			put_str(ho, "dsn", h->dsn);
			put_str(ho, "reply", h->reply);
		}
	}
	store_admin_show_free(&m);
}

/* --- history ------------------------------------------------------------- */

#define HISTORY_VALUE_MAX 320          /* an address, domain or host */

static int
history_one(void *arg, const struct store_history_entry *e)
{
	json_t *o = new_object();

	push(arg, o);
	put_str(o, "id", e->qid);
	put_double_opt(o, "received_at", e->received_at);
	put_double_opt(o, "left_at", e->left_at);
	put_str(o, "sender", e->sender);
	put_str(o, "recipient", e->rcpt);
	put_str(o, "status", e->status);
	put_str(o, "relay", e->relay);
	put_str(o, "dsn", e->dsn);
	put_str(o, "reply", e->reply);
	put_double_opt(o, "delay", e->delay);
	put_double_opt(o, "last_attempt", e->last_attempt);
	put_int(o, "attempts", e->attempts);
	put_int(o, "deferred", e->deferred);
	put_int_opt(o, "size", e->size);
	put_str(o, "client_addr", e->client_addr);
	put_str(o, "client_name", e->client_name);
	return 0;
}

/* A time word: unix seconds, as ferryctl sends it. */
static int
history_time(const char *v, double *t)
{
	char *end;
	long long n;

	if (*v < '0' || *v > '9')
		return -1;
	n = strtoll(v, &end, 10);
	if (*end != '\0' || n < 0 || n > 1LL << 40)
		return -1;
	*t = (double)n;
	return 0;
}

/* history [key=value ...]: keys sender, rcpt, since, until, status,
 * route, limit, each at most once. */
static void
cmd_history(struct control_ctx *ctx, char **words, size_t nw,
    struct answer *a)
{
	struct store_history_filter f;
	json_t *doc, *rows;
	size_t i;
	int truncated;

	memset(&f, 0, sizeof(f));
	f.since = f.until = -1;
	f.limit = 100;
	for (i = 0; i < nw; i++) {
		char *v = strchr(words[i], '=');
		const char **slot = NULL;

		if (v == NULL || v[1] == '\0' ||
		    strlen(v + 1) > HISTORY_VALUE_MAX) {
			fail(a, "history: filters are key=value, values of at "
			    "most %d characters", HISTORY_VALUE_MAX);
			return;
		}
		*v++ = '\0';
		if (strcmp(words[i], "sender") == 0)
			slot = &f.sender;
		else if (strcmp(words[i], "rcpt") == 0)
			slot = &f.rcpt;
		else if (strcmp(words[i], "route") == 0)
			slot = &f.route;
		else if (strcmp(words[i], "status") == 0) {
			if (strcmp(v, "sent") != 0 && strcmp(v, "deferred") != 0 &&
			    strcmp(v, "bounced") != 0 &&
			    strcmp(v, "expired") != 0 &&
			    strcmp(v, "deleted") != 0) {
				fail(a, "history: status is sent, deferred, "
				    "bounced, expired or deleted");
				return;
			}
			slot = &f.status;
		} else if (strcmp(words[i], "since") == 0 ||
		    strcmp(words[i], "until") == 0) {
			double *t = words[i][0] == 's' ? &f.since : &f.until;

			if (*t >= 0 || history_time(v, t) < 0) {
				fail(a, "history: %s is unix seconds, once",
				    words[i]);
				return;
			}
			continue;
		} else if (strcmp(words[i], "limit") == 0) {
			char *end;
			long n = strtol(v, &end, 10);

			if (*v < '0' || *v > '9' || *end != '\0' || n < 1 ||
			    n > STORE_HISTORY_MAX) {
				fail(a, "history: limit is 1 to %d",
				    STORE_HISTORY_MAX);
				return;
			}
			f.limit = (size_t)n;
			continue;
		} else {
			fail(a, "history: unknown filter %s (sender, rcpt, "
			    "since, until, status, route, limit)", words[i]);
			return;
		}
		if (*slot != NULL) {
			fail(a, "history: %s given twice", words[i]);
			return;
		}
		*slot = v;
	}
	doc = answer_ok(a);
	put_double_opt(doc, "now", now_wall());
	rows = put(doc, "history", new_array());
	if (store_history_search(ctx->st, &f, history_one, rows,
	    &truncated) != 0) {
		store_failed(a, ctx, "history");
		return;
	}
	put_bool(doc, "truncated", truncated);
}

static void
wake(struct control_ctx *ctx)
{
	if (ctx->wake != NULL)
		ctx->wake(ctx->wake_arg);
}

static void
cmd_flush(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	int64_t n;
	int rc;

	if (begin_change(ctx, a, "flush") < 0)
		return;
	if ((rc = store_admin_flush(ctx->st, qid, &n)) != 0) {
		state_error(a, ctx, qid != NULL ? qid : "", rc, "flush");
		return;
	}
	if (committed(ctx, a, "flush", qid) < 0)
		return;
	if (qid == NULL && ctx->flush_hops != NULL)
		ctx->flush_hops(ctx->wake_arg);
	if (qid != NULL)
		log_info("%s: flushed by the operator", qid);
	else
		log_info("queue: flushed by the operator (%lld message(s))",
		    (long long)n);
	if (n > 0)
		wake(ctx);
	ok_changed(a, n);
}

/* Before hold and delete: the runner cancels an attempt in flight. */
static int
check_busy(struct control_ctx *ctx, const char *qid, struct answer *a,
    const char *op)
{
	if (ctx->busy != NULL && ctx->busy(ctx->wake_arg, qid) != 0) {
		fail(a, "message %s is being delivered right now, cannot %s "
		    "it (try again shortly)", qid, op);
		return -1;
	}
	return 0;
}

static void
cmd_hold(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	char state[16];
	int rc;

	rc = store_admin_state(ctx->st, qid, state);
	if (rc == 0 && strcmp(state, "incoming") == 0)
		rc = STORE_NOT_FOUND;
	else if (rc == 0 && strcmp(state, "active") != 0) {
		fail(a, "message %s is already on hold", qid);
		return;
	}
	if (rc != 0) {
		state_error(a, ctx, qid, rc, "hold");
		return;
	}
	if (check_busy(ctx, qid, a, "hold") == -1 ||
	    begin_change(ctx, a, "hold") < 0)
		return;
	if ((rc = store_admin_hold(ctx->st, qid)) != 0) {
		state_error(a, ctx, qid, rc, "hold");
		return;
	}
	if (committed(ctx, a, "hold", qid) < 0)
		return;
	log_info("%s: put on hold by the operator", qid);
	ok_changed(a, 1);
}

static void
cmd_release(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	int rc;

	if (begin_change(ctx, a, "release") < 0)
		return;
	if ((rc = store_admin_release(ctx->st, qid)) != 0) {
		if (rc == STORE_WRONG_STATE)
			fail(a, "message %s is not on hold", qid);
		else
			state_error(a, ctx, qid, rc, "release");
		return;
	}
	if (committed(ctx, a, "release", qid) < 0)
		return;
	log_info("%s: released from hold by the operator", qid);
	wake(ctx);
	ok_changed(a, 1);
}

static void
cmd_delete(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	char state[16];
	int rc;

	rc = store_admin_state(ctx->st, qid, state);
	if (rc == 0 && strcmp(state, "incoming") == 0)
		rc = STORE_NOT_FOUND;
	if (rc != 0) {
		state_error(a, ctx, qid, rc, "delete");
		return;
	}
	if (check_busy(ctx, qid, a, "delete") == -1 ||
	    begin_change(ctx, a, "delete") < 0)
		return;
	if ((rc = store_admin_delete(ctx->st, qid)) != 0) {
		state_error(a, ctx, qid, rc, "delete");
		return;
	}
	if (committed(ctx, a, "delete", qid) < 0)
		return;
	log_info("%s: removed by the operator", qid);
	ok_changed(a, 1);
}

/* integrity_check: reads every page, so the runner stands still for as
 * long as that takes (an operator's command, run when in doubt). */
static void
cmd_check(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	char err[512];

	(void)qid;
	if (ctx->st == NULL) {
		fail(a, "the queue is unavailable: %s", ctx->store_trouble);
		return;
	}
	if (store_check(ctx->st, ctx->store_path, 1, err, sizeof(err)) < 0) {
		log_error("queue: %s", err);
		fail(a, "%s", err);
		return;
	}
	put_str(answer_ok(a), "file", ctx->store_path);
}

static void
reopen(struct control_ctx *ctx, int accept_loss, struct answer *a)
{
	char err[1024];

	if (ctx->reopen(ctx->reopen_arg, accept_loss, err, sizeof(err)) < 0) {
		fail(a, "%s", err);
		return;
	}
	put_str(answer_ok(a), "file", ctx->store_path);
}

static void
cmd_accept_loss(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	(void)qid;
	reopen(ctx, 1, a);
}

static void
cmd_reopen(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	(void)qid;
	reopen(ctx, 0, a);
}

/* drain / undrain: asked of the master, which holds the state; the
 * answer says what was asked and the state before it ("status" shows
 * the master's answer). */
static void
ask_drain(struct control_ctx *ctx, int on, struct answer *a)
{
	char err[256];
	json_t *doc;

	if (ctx->drain == NULL) {
		fail(a, "%s: not available", on ? "drain" : "undrain");
		return;
	}
	if (ctx->drain(ctx->drain_arg, on, err, sizeof(err)) < 0) {
		fail(a, "%s: %s", on ? "drain" : "undrain", err);
		return;
	}
	doc = answer_ok(a);
	put_bool(doc, "asked", on);
	put_bool(doc, "draining", ctx->draining);
}

static void
cmd_drain(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	(void)qid;
	ask_drain(ctx, 1, a);
}

static void
cmd_undrain(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	(void)qid;
	ask_drain(ctx, 0, a);
}

/* The commands that work while the store is unusable (each says so). */
static int
works_without_store(void (*run)(struct control_ctx *, const char *,
    struct answer *))
{
	return run == cmd_status || run == cmd_check ||
	    run == cmd_accept_loss || run == cmd_reopen ||
	    run == cmd_drain || run == cmd_undrain;
}

enum arg_kind { ARG_NONE, ARG_QID, ARG_OPT_QID, ARG_OPTS };

/* The commands: one row each (control.h lists them). */
static const struct command {
	const char *word1, *word2;     /* word2 NULL: one-word command */
	enum arg_kind arg;
	void (*run)(struct control_ctx *, const char *, struct answer *);
} commands[] = {
	{ "status", NULL, ARG_NONE, cmd_status },
	{ "queue", "list", ARG_OPTS, cmd_list },
	{ "queue", "show", ARG_QID, cmd_show },
	{ "queue", "flush", ARG_OPT_QID, cmd_flush },
	{ "queue", "delete", ARG_QID, cmd_delete },
	{ "queue", "hold", ARG_QID, cmd_hold },
	{ "queue", "release", ARG_QID, cmd_release },
	{ "queue", "check", ARG_NONE, cmd_check },
	{ "queue", "accept-loss", ARG_NONE, cmd_accept_loss },
	{ "queue", "reopen", ARG_NONE, cmd_reopen },
	{ "drain", NULL, ARG_NONE, cmd_drain },
	{ "undrain", NULL, ARG_NONE, cmd_undrain },
};

/* Runs one request, its nw words, into a. */
static void
run_request(struct control_ctx *ctx, char **words, size_t nw,
    struct answer *a)
{
	const struct command *c = NULL;
	size_t i, used;
	const char *qid;

	if (nw > (nw >= 2 && strcmp(words[0], "queue") == 0 &&
	    strcmp(words[1], "list") == 0 ? CONTROL_LIST_WORDS :
	    nw > 0 && strcmp(words[0], "history") == 0 ?
	    HISTORY_MAX_WORDS : CONTROL_MAX_WORDS)) {
		fail(a, "too many words in the request");
		return;
	}
	for (i = 0; i < nw; i++) {
		const char *p;

		for (p = words[i]; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 ||
			    (unsigned char)*p > 0x7e) {
				fail(a, "malformed request (not printable "
				    "ASCII, or white space in a word)");
				return;
			}
	}
	if (nw == 0) {
		fail(a, "empty request");
		return;
	}
	if (strcmp(words[0], "history") == 0) {
		if (ctx->st == NULL)
			fail(a, "the queue is unavailable: %s",
			    ctx->store_trouble);
		else
			cmd_history(ctx, words + 1, nw - 1, a);
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].word1, words[0]) != 0)
			continue;
		if (commands[i].word2 == NULL ||
		    (nw > 1 && strcmp(commands[i].word2, words[1]) == 0)) {
			c = &commands[i];
			break;
		}
	}
	if (c == NULL) {
		if (strcmp(words[0], "queue") == 0)
			fail(a, "unknown queue command (list, show, flush, "
			    "delete, hold, release, check, accept-loss, "
			    "reopen)");
		else
			fail(a, "unknown command (status, queue ..., "
			    "history ..., drain, undrain)");
		return;
	}
	used = c->word2 != NULL ? 2 : 1;
	if (c->arg == ARG_OPTS) {
		if (ctx->st == NULL) {
			fail(a, "the queue is unavailable: %s",
			    ctx->store_trouble);
			return;
		}
		cmd_list_opts(ctx, words + used, nw - used, a);
		return;
	}
	qid = nw > used ? words[used] : NULL;
	if (nw > used + (c->arg != ARG_NONE) ||
	    (c->arg == ARG_QID && qid == NULL)) {
		fail(a, "usage: %s%s%s%s", c->word1, c->word2 ? " " : "",
		    c->word2 ? c->word2 : "", c->arg == ARG_QID ? " ID" :
		    c->arg == ARG_OPT_QID ? " [ID]" : "");
		return;
	}
	if (qid != NULL && !valid_qid(qid)) {
		fail(a, "invalid queue id (%d upper-case hex characters "
		    "expected)", QID_LEN);
		return;
	}
	if (ctx->st == NULL && !works_without_store(c->run)) {
		fail(a, "the queue is unavailable: %s", ctx->store_trouble);
		return;
	}
	c->run(ctx, qid, a);
}

/* --- the connection ------------------------------------------------------ */

/* What ferryctl may send: its one request. */
static const struct channel_rule client_may_send[] = {
	{ IMSG_CTL_REQUEST, 0 },
	{ 0, 0 }
};

/* Reads the request's words (at most REQUEST_WORDS_KEPT kept, *nw
 * counts them all).  1 with the words, 0 when the peer closed or lied
 * (nothing to answer), -1 with a reason to answer. */
static int
read_request(struct channel *ch, char **words, size_t *nw, const char **why)
{
	int64_t deadline = now_ms() + CONTROL_READ_MS;
	struct ipc_in in;

	*nw = 0;
	if (channel_read_wait(ch, &in, deadline) < 0) {
		if (ch->fd < 0 || ch->eof)
			return 0;          /* dropped (logged), or gone */
		*why = now_ms() >= deadline ?
		    "timed out waiting for the request" : ch->error;
		return -1;
	}
	if (control_request_decode(&in, words, REQUEST_WORDS_KEPT, nw) < 0) {
		channel_violation(ch, "a malformed CTL_REQUEST");
		return 0;
	}
	return 1;
}

/* Hands over the whole answer, in pieces of at most CONTROL_ANSWER_PIECE
 * bytes and then CTL_ANSWER_END, within CONTROL_WRITE_MS. */
static int
write_answer(struct channel *ch, const char *buf, size_t len)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < CONTROL_ANSWER_PIECE ? len - off :
		    CONTROL_ANSWER_PIECE;
		ipc_add_data(channel_begin(ch, IMSG_CTL_ANSWER), buf + off, n);
		(void)channel_end(ch);
	}
	(void)channel_begin(ch, IMSG_CTL_ANSWER_END);
	(void)channel_end(ch);
	return channel_flush_wait(ch, now_ms() + CONTROL_WRITE_MS);
}

/* Reads what the peer sent beyond the request (without waiting, at most
 * a bounded amount): closing a unix socket with unread input resets the
 * connection, and the peer could lose the answer to ECONNRESET. */
static void
drain(int fd)
{
	char buf[4096];
	int i;

	for (i = 0; i < 16; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

void
control_serve(int fd, struct control_ctx *ctx)
{
	char *words[REQUEST_WORDS_KEPT];
	struct channel ch;
	const char *why = NULL;
	struct answer a;
	char *out;
	size_t nw = 0;
	int rc, sndbuf = CONTROL_SNDBUF;

	fd_set_nonblock(fd, 1);
	/* a page is written whole without waiting for ferryctl to read
	 * (the kernel caps this at net.core.wmem_max) */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	channel_init(&ch, fd, "ferryctl (control connection)",
	    client_may_send, CONTROL_REQUEST_MAX, 0);
	memset(&a, 0, sizeof(a));
	rc = read_request(&ch, words, &nw, &why);
	if (rc == 0) {
		channel_free(&ch);
		return;
	}
	if (rc < 0)
		fail(&a, "%s", why);
	else
		run_request(ctx, words, nw, &a);
	if (nw > REQUEST_WORDS_KEPT)
		nw = REQUEST_WORDS_KEPT;
	while (nw > 0)
		free(words[--nw]);
	if (a.err[0] != '\0' || a.doc == NULL) {
		/* whatever a handler began is dropped for the error */
		if (a.err[0] == '\0')
			fail(&a, "no answer");
		json_decref(a.doc);
		a.doc = new_object();
		put_bool(a.doc, "ok", 0);
		put_str(a.doc, "error", a.err);
	}
	out = json_dumps(a.doc, JSON_BYTES_DUMP_FLAGS);
	json_decref(a.doc);
	if (out == NULL)
		log_fatal("out of memory (the control answer)");
	if (write_answer(&ch, out, strlen(out)) == -1)
		log_warn("control: cannot send the answer: %s", ch.error);
	free(out);
	if (ch.fd >= 0)
		drain(ch.fd);
	channel_free(&ch);
}

void
control_refuse(int fd, const char *why)
{
	char *words[CONTROL_MAX_WORDS + 1];
	const char *ignored = NULL;
	struct channel ch;
	json_t *doc = new_object();
	char *out;
	size_t nw = 0;
	int rc;

	put_bool(doc, "ok", 0);
	put_str(doc, "error", why);
	out = json_dumps(doc, JSON_BYTES_DUMP_FLAGS);
	json_decref(doc);
	if (out == NULL)
		log_fatal("out of memory (the control answer)");
	fd_set_nonblock(fd, 1);
	channel_init(&ch, fd, "ferryctl (control connection)",
	    client_may_send, CONTROL_REQUEST_MAX, 0);
	/* its request is read (and not run) first: closing before it came
	 * would fail the client's write instead of answering it */
	rc = read_request(&ch, words, &nw, &ignored);
	if (nw > CONTROL_MAX_WORDS + 1)
		nw = CONTROL_MAX_WORDS + 1;
	while (nw > 0)
		free(words[--nw]);
	if (rc != 0 && write_answer(&ch, out, strlen(out)) == -1)
		log_debug("control: cannot send the refusal: %s", ch.error);
	free(out);
	if (ch.fd >= 0)
		drain(ch.fd);
	channel_free(&ch);
}
