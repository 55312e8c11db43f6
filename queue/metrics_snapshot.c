/*
 * metrics_snapshot.c - the queue runner's counters as Prometheus text
 * (see metrics_snapshot.h).  Metric names start with ferry_; label sets
 * are small and fixed (state, route, status), route names come from the
 * configuration and are escaped.
 */
#include "autoconfig.h"

#include "lifecycle.h"
#include "metrics_snapshot.h"
#include "stall.h"
#include "store_health.h"

static void
gauge(struct mtext *t, const char *name, const char *help, double v)
{
	mtext_family(t, name, "gauge", help);
	mtext_printf(t, "%s %.17g\n", name, v);
}

static void
counter(struct mtext *t, const char *name, const char *help, uint64_t v)
{
	mtext_family(t, name, "counter", help);
	mtext_printf(t, "%s %llu\n", name, (unsigned long long)v);
}

/* One gauge per shaped route. */
static void
route_gauge(struct mtext *t, const char *name, const char *help,
    const struct shaping_figures *f, int which)
{
	size_t i;

	mtext_family(t, name, which == 3 ? "counter" : "gauge", help);
	for (i = 0; i < f->n; i++) {
		const struct shaping_figure *r = &f->route[i];
		double v = which == 0 ? r->level : which == 1 ? r->waiting :
		    which == 2 ? r->rate : (double)r->throttles;

		mtext_printf(t, "%s{route=\"", name);
		mtext_label(t, r->route);
		mtext_printf(t, "\"} %.17g\n", v);
	}
}

static void
write_shaping(struct mtext *t, const struct shaping_figures *f)
{
	size_t i;
	int w;

	if (f->n == 0)
		return;
	route_gauge(t, "ferry_route_throttled", "Back-off level of a route "
	    "slowed down by throttling replies (0: not throttled; each level "
	    "halves its rates and connections).", f, 0);
	route_gauge(t, "ferry_route_quota_waiting", "Recipients due for a "
	    "route that wait for its quota (not deferred).", f, 1);
	route_gauge(t, "ferry_route_rate", "Messages per second a shaped "
	    "route may send now (0: unlimited).", f, 2);
	route_gauge(t, "ferry_route_throttles_total", "Throttling replies "
	    "from a route's next hop.", f, 3);
	mtext_family(t, "ferry_route_tokens", "gauge", "Messages a shaped "
	    "route may still send in each quota window.");
	for (i = 0; i < f->n; i++)
		for (w = 0; w < SHAPE_WINDOWS; w++) {
			if (f->route[i].limit[w] <= 0)
				continue;
			mtext_printf(t, "ferry_route_tokens{route=\"");
			mtext_label(t, f->route[i].route);
			mtext_printf(t, "\",window=\"%s\"} %.17g\n",
			    shaper_window_name((enum shaper_window)w),
			    f->route[i].tokens[w]);
		}
}

static void
write_deliveries(struct mtext *t, const struct sched_metrics *d)
{
	static const enum attempt_status shown[] = { STATUS_SENT,
	    STATUS_DEFERRED, STATUS_BOUNCED, STATUS_EXPIRED };
	size_t i, k, n = d->nroutes;

	mtext_family(t, "ferry_deliveries_total", "counter",
	    "Recipients' delivery results by route and status.");
	if (d->routes[SCHED_METRIC_ROUTES].route[0] != '\0')
		n = SCHED_METRIC_ROUTES + 1;
	for (i = 0; i < n; i++) {
		if (d->routes[i].route[0] == '\0')
			continue;
		for (k = 0; k < sizeof(shown) / sizeof(shown[0]); k++) {
			mtext_printf(t, "ferry_deliveries_total{route=\"");
			mtext_label(t, d->routes[i].route);
			mtext_printf(t, "\",status=\"%s\"} %llu\n",
			    attempt_status_name(shown[k]),
			    (unsigned long long)
			    d->routes[i].by_status[shown[k]]);
		}
	}
	mtext_family(t, "ferry_tls_out_total", "counter",
	    "Recipients' results from next hops reached over TLS, by "
	    "protocol version.");
	for (i = 0; i < TLSV_COUNT; i++)
		mtext_printf(t, "ferry_tls_out_total{version=\"%s\"} %llu\n",
		    tls_version_names[i], (unsigned long long)d->tls_out[i]);
	write_shaping(t, &d->shaping);
	mtext_family(t, "ferry_delivery_seconds", "histogram",
	    "Time from arrival to a recipient's final result.");
	mtext_histogram(t, "ferry_delivery_seconds", &d->delivery_seconds);
}

/* OAuth2: refreshes by route and result, and each route's token state
 * (1 for the state it is in).  Never a token. */
static void
write_oauth(struct mtext *t, const struct metrics_snapshot *m)
{
	static const char *const states[] = { "ok", "refreshing", "failed" };
	size_t i, k;

	mtext_family(t, "ferry_oauth_refresh_total", "counter",
	    "OAuth2 access token refreshes by route and result.");
	for (i = 0; i < m->noauth; i++) {
		const struct token_state *o = m->oauth[i];

		mtext_printf(t, "ferry_oauth_refresh_total{route=\"");
		mtext_label(t, o->route);
		mtext_printf(t, "\",result=\"ok\"} %u\n", o->refresh_ok);
		mtext_printf(t, "ferry_oauth_refresh_total{route=\"");
		mtext_label(t, o->route);
		mtext_printf(t, "\",result=\"failed\"} %u\n",
		    o->refresh_failed);
	}
	mtext_family(t, "ferry_oauth_token_state", "gauge",
	    "1 for the state each OAuth2 route's access token is in.");
	for (i = 0; i < m->noauth; i++)
		for (k = 0; k < 3; k++) {
			mtext_printf(t, "ferry_oauth_token_state{route=\"");
			mtext_label(t, m->oauth[i]->route);
			mtext_printf(t, "\",state=\"%s\"} %d\n", states[k],
			    m->oauth[i]->status == k);
		}
	mtext_family(t, "ferry_oauth_token_expiry_timestamp_seconds", "gauge",
	    "When each OAuth2 route's access token expires (0: none).");
	for (i = 0; i < m->noauth; i++) {
		mtext_printf(t, "ferry_oauth_token_expiry_timestamp_seconds"
		    "{route=\"");
		mtext_label(t, m->oauth[i]->route);
		mtext_printf(t, "\"} %lld\n", (long long)m->oauth[i]->expires);
	}
}

void
metrics_snapshot_write(struct mtext *t, const struct metrics_snapshot *m)
{
	static const char *const states[] = { "ok", "low_space", "failing" };
	size_t i;

	gauge(t, "ferry_ready", "1 when the runner has its store, the store "
	    "is writable and SMTP workers are up.", m->ready ? 1 : 0);
	counter(t, "ferry_messages_accepted_total", "Messages made durable "
	    "by the queue runner.", m->messages_accepted);
	counter(t, "ferry_intake_failed_total", "Messages whose intake "
	    "failed in the queue runner.", m->intake_failed);
	counter(t, "ferry_commits_total", "Transactions committed (one fsync "
	    "each).", m->commits);
	mtext_family(t, "ferry_commit_batch_messages", "histogram",
	    "Messages made durable by one commit.");
	mtext_histogram(t, "ferry_commit_batch_messages", m->commit_batch);
	mtext_family(t, "ferry_commit_seconds", "histogram",
	    "Time one commit (with its fsync) took.");
	mtext_histogram(t, "ferry_commit_seconds", m->commit_seconds);
	if (m->deliveries != NULL)
		write_deliveries(t, m->deliveries);
	if (m->noauth > 0)
		write_oauth(t, m);
	if (m->queue_known) {
		mtext_family(t, "ferry_queue_messages", "gauge",
		    "Messages in the queue by state.");
		mtext_printf(t, "ferry_queue_messages{state=\"active\"} %lld\n"
		    "ferry_queue_messages{state=\"hold\"} %lld\n",
		    (long long)m->queue_active, (long long)m->queue_hold);
		gauge(t, "ferry_queue_recipients_pending", "Recipients still "
		    "to be delivered.", (double)m->rcpts_pending);
		gauge(t, "ferry_queue_oldest_message_age_seconds", "Age of the "
		    "oldest queued message (0 when the queue is empty).",
		    m->oldest_age < 0 ? 0 : m->oldest_age);
	}
	if (m->stall_known) {
		mtext_family(t, "ferry_queue_stalled", "gauge", "1 while the "
		    "queue is stalled for the reason: the oldest message older "
		    "than queue.warn_age (age), nothing delivered for "
		    "queue.warn_stall while mail waits (stall).");
		mtext_printf(t, "ferry_queue_stalled{reason=\"age\"} %d\n"
		    "ferry_queue_stalled{reason=\"stall\"} %d\n",
		    (m->stall_reasons & STALL_AGE) ? 1 : 0,
		    (m->stall_reasons & STALL_STALL) ? 1 : 0);
	}
	gauge(t, "ferry_agents", "Delivery agents connected to the runner.",
	    m->agents_total);
	gauge(t, "ferry_agents_busy", "Delivery agents running a job.",
	    m->agents_busy);
	if (m->workers_total >= 0) {
		gauge(t, "ferry_workers", "SMTP worker processes.",
		    m->workers_total);
		gauge(t, "ferry_workers_busy", "SMTP workers holding a "
		    "session.", m->workers_busy);
	}
	mtext_family(t, "ferry_store_state", "gauge",
	    "1 for the store's current state.");
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		mtext_printf(t, "ferry_store_state{state=\"%s\"} %d\n",
		    states[i], m->store_open && m->store_state == (int)i ?
		    1 : (!m->store_open && i == QUEUE_STATE_FAILING ? 1 : 0));
}
