/*
 * scheduler.c - the queue runner's delivery decisions.
 *
 * Delivery agents (ferry-deliver, started by the master as their own
 * unprivileged user) connect to the runner's agent socket; the I/O with
 * them is agent_pool.c's, which calls the hooks here for what they say.
 * Each turn, the scheduler asks the store what is
 * due (through the recipient_due index), groups a message's due
 * recipients by domain, decides the route again from the sender and the
 * domain (config_route_select; a configuration change applies to mail
 * already queued), and hands each group to an idle agent
 * - one connected to the same next hop when there is one - within the
 * per-destination limit; the pool streams the body after the JOB.
 *
 * Results are written in the runner's open transaction as the pure
 * lifecycle_decide() says: delivered, failed (with a bounce queued in the
 * same transaction), or deferred with the next attempt from the retry
 * schedule, capped at the end of the queue lifetime, when the recipient
 * expires with 4.4.7.  A message whose
 * recipients are all final is removed.
 *
 * The runner alone decides when an agent retires: it counts the jobs it
 * hands each agent and marks the agent_jobs-th as its last, and an agent
 * told to stop says so in its JOB_DONE; neither gets another job.  Agents
 * run only while there is mail to send: each turn counts the agents it
 * has work for (busy ones, and due jobs no free agent could take) for
 * the master, which starts agents up to that many (delivery { agents }
 * at most), and an agent free for delivery { agent_idle } is let go.  Agents
 * are peers that may lie: a malformed or unexpected frame drops the
 * agent.  An agent that goes away with a job in flight is no outcome of
 * the delivery: its unanswered recipients stay due and are dispatched
 * again at once, with no attempt counted; a message that takes
 * AGENT_DEATHS_HOLD agents with it in a row is held with a reason.
 *
 * A next hop that cannot be reached (HOP_DOWN_AFTER jobs in a row end
 * with every recipient deferred for a connection-level 4.4.x reason) is
 * down, as hop_health.c keeps it: its due mail is deferred in bulk, each
 * recipient logged once with "delivery temporarily suspended: REASON"
 * and counted as an attempt, without a connection each, and held until
 * the hop's next probe (not due again before it); one probe job
 * per retry step goes through, and when a job reaches the hop again the
 * recipients deferred meanwhile are made due at once.  (The list of
 * those is kept in memory: after a restart they wait for the time they
 * were held to, at most one probe step, or for "ferryctl queue flush".)
 *
 * A route with two hosts or more is a smarthost pool (upstream_pools.h,
 * host_pool.h): the runner chooses each job's host order (the host the
 * pool picks by priority and weight first, the other hosts up after it
 * as fallback within the attempt), agents report what they found at each
 * host, and those reports drive each host's circuit breaker.  The route
 * is down, its mail deferred in bulk as above, only while every host's
 * circuit is open; it is back when a host answers.  The split: the
 * runner sees every job's outcome, so weights hold across agents and a
 * host skipped is skipped by all; the agent still fails over at once
 * within a job, so a host that just died costs no message a retry.
 * Active probes (probe_interval) go to a free agent as PROBE frames.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "agent_pool.h"
#include "bounce_queue.h"
#include "config.h"
#include "deliver_proto.h"
#include "hop_health.h"
#include "ipc.h"
#include "lifecycle.h"
#include "log.h"
#include "route_shaping.h"
#include "route_learn.h"
#include "scheduler.h"
#include "smtp_parse.h"
#include "store.h"
#include "token_client.h"
#include "upstream_pools.h"
#include "util.h"

#define DUE_BATCH 1000
#define MAX_WAIT_MS 30000
/* Bulk deferral for a next hop marked down is cut into turns of this
 * many milliseconds: the rest waits for the next turn of the runner's
 * loop, so intake and ferryctl are answered between two turns rather
 * than after a whole batch of DUE_BATCH recipients. */
#define SUSPEND_TURN_MS 20
/* A turn cut short reads only about what it handled the next time (a
 * quarter more, at least DUE_MIN), not DUE_BATCH rows to handle a few
 * of them; a turn that handles all it read may read twice as many. */
#define DUE_MIN 32
#define KEY_POOL_MAX 512      /* = sizeof(pool_agent.hop) */
#define AGENT_DEATHS_HOLD 3   /* agents lost in a row on one message */
#define HOLD_REASON_AGENTS "delivery agent died 3 times in a row while " \
	"delivering it"

struct job_rcpt {
	int64_t rcpt_id;
	char *addr, *orcpt;
	uint32_t notify;
	int attempts;
	char *last_reply;
	int answered;             /* the agent gave its outcome */
	/* The outcome, decided once and kept until it is durable: a commit
	 * that fails loses the writes, not what the agent said. */
	struct transition t;
	double at;
	char *dsn, *reply, *relay, *tls;
	int written;              /* in the open transaction */
	int committed;            /* durable */
	int logged;
	enum attempt_outcome outcome;
};

struct failure {
	char *addr, *orcpt, *status, *mta, *diag, *detail;
	double at;
};

/* What the scheduler keeps about a job: in flight on an agent, then, once
 * over, until the commit that holds its outcome succeeds. */
struct sched_job {
	int64_t msgid;
	char qid[QID_LEN + 1];
	double received_at, started;
	char route[64];           /* for the metrics */
	uint32_t token_serial;    /* the OAuth2 token it was sent with */
	struct job_rcpt *rcpts;
	size_t nrcpts;
	int agent_deaths;         /* the message's count when dispatched */
	char dest[320];           /* next hop ("route:NAME", "mx:DOMAIN"),
	                             "" for a job that had none */
	int probe;                /* sent to a down next hop as its probe */
	int vanished;             /* the agent went with the job */
	int finish_written;       /* its end (bounces, removal) is in the
	                             open transaction */
	int removal_logged;
	struct failure *fails;
	size_t nfails;
	struct failure *delays;   /* deferred past delivery.delay_warning */
	size_t ndelays;
	struct sched_job *next;   /* on the list of jobs over, not durable */
	/* smarthost pools (upstream_pools.h) */
	char probe_host[256];     /* the pool host this job probes, "" */
	int active_probe;         /* no mail: connect, EHLO, QUIT */
};

struct scheduler {
	const struct ferry_config *cfg;
	struct store *st;
	struct agent_pool pool;
	uint64_t next_job_id;
	int64_t next_run_ms;
	int wake;
	struct sched_job *unsaved;   /* jobs over whose outcome is not yet
	                                committed */
	int write_failed;         /* a write failed in the open
	                             transaction: it cannot be committed */
	struct hop_health *hops;  /* next hops that failed lately */
	int agents_wanted;        /* busy agents and due jobs without one */
	size_t due_limit;         /* due rows read per turn, up to
	                             DUE_BATCH */
	int64_t next_retire_ms;   /* when an idle agent is next let go;
	                             0: none is free */
	struct shaping *shaping;  /* routes' rates and back-off */
	struct sched_metrics metrics;
	struct token_client *tokens;   /* OAuth2 routes' access tokens */
	struct upstream_pools *pools;   /* routes with several hosts */
	int probes_wanted;        /* active probes due without a free agent */
	struct route_learn *learn;   /* the upstreams' capabilities */
};

/* Seconds from arrival to a final result: a second to five days. */
static const double delivery_bounds[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 432000 };

/* Counts one recorded result of a recipient of job. */
static void
count_result(struct scheduler *s, const struct sched_job *job,
    enum attempt_status status, double at, const char *reply)
{
	struct sched_metrics *m = &s->metrics;
	size_t i;

	if ((unsigned)status >= SCHED_METRIC_STATUSES)
		return;
	for (i = 0; i < m->nroutes; i++)
		if (strcmp(m->routes[i].route, job->route) == 0)
			break;
	if (i == m->nroutes) {
		if (m->nroutes < SCHED_METRIC_ROUTES) {
			m->nroutes++;
			ferry_strlcpy(m->routes[i].route, job->route,
			    sizeof(m->routes[i].route));
		} else {
			i = SCHED_METRIC_ROUTES;
			ferry_strlcpy(m->routes[i].route, "other",
			    sizeof(m->routes[i].route));
		}
	}
	m->routes[i].by_status[status]++;
	if (status == STATUS_SENT) {
		m->routes[i].last_sent_at = at;
		m->last_delivered = at;
	} else {
		ferry_strlcpy(m->routes[i].last_error, reply,
		    sizeof(m->routes[i].last_error));
		m->routes[i].last_error_at = at;
	}
	if (status != STATUS_DEFERRED)
		histogram_observe(&m->delivery_seconds, at > job->received_at ?
		    at - job->received_at : 0);
}

const struct sched_metrics *
scheduler_metrics(const struct scheduler *s)
{
	return &s->metrics;
}

static void
free_failures(struct failure **list, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		free((*list)[i].addr);
		free((*list)[i].orcpt);
		free((*list)[i].status);
		free((*list)[i].mta);
		free((*list)[i].diag);
		free((*list)[i].detail);
	}
	free(*list);
	*list = NULL;
	*n = 0;
}

static void
sched_job_free(struct sched_job *j)
{
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->nrcpts; i++) {
		free(j->rcpts[i].addr);
		free(j->rcpts[i].orcpt);
		free(j->rcpts[i].last_reply);
		free(j->rcpts[i].dsn);
		free(j->rcpts[i].reply);
		free(j->rcpts[i].relay);
		free(j->rcpts[i].tls);
	}
	free(j->rcpts);
	free_failures(&j->fails, &j->nfails);
	free_failures(&j->delays, &j->ndelays);
	free(j);
}

static void
job_clear(struct pool_agent *a)
{
	sched_job_free(a->job);
	a->job = NULL;
	a->busy = 0;
	a->msgid = -1;
	a->qid[0] = '\0';
	a->dest[0] = '\0';
	a->data_done = 0;
	a->next_seq = 0;
}

/* ----------------------------------------------------------- results */

static struct lifecycle_policy
policy_of(const struct ferry_config *cfg)
{
	struct lifecycle_policy p;

	p.retry_schedule = cfg->retry_schedule;
	p.nretry_schedule = cfg->nretry_schedule;
	p.max_lifetime = cfg->max_lifetime;
	p.delay_warning = cfg->delay_warning;
	return p;
}

static enum attempt_outcome
outcome_of(uint32_t status)
{
	switch (status) {
	case DS_DELIVERED: return OUTCOME_DELIVERED;
	case DS_FAILED: return OUTCOME_PERMANENT;
	default: return OUTCOME_TEMPORARY;
	}
}

/* Seconds the way Postfix prints them: two significant digits below 10
 * ("0.42", "3.1"), whole seconds above. */
static const char *
fmt_delay(char *out, size_t len, double sec)
{
	if (sec < 0)
		sec = 0;
	if (sec < 10)
		snprintf(out, len, "%.2g", sec);
	else
		snprintf(out, len, "%.0f", sec);
	return out;
}

/* The remote reply alone, for Diagnostic-Code (RFC 3464 2.3.6): the
 * agent words it "host H said: REPLY (in reply to X command)". */
static char *
bare_reply(const char *reply)
{
	const char *p = strstr(reply, " said: ");
	const char *end;
	char *out;

	if (p == NULL)
		return xstrdup(reply);
	p += 7;
	end = strstr(p, " (in reply to ");
	if (end == NULL)
		end = p + strlen(p);
	out = xstrndup(p, (size_t)(end - p));
	return out;
}

/* Notes a recipient for a report: detail for people, the bare remote
 * reply for Diagnostic-Code, the relay's host name for Remote-MTA. */
static void
add_failure(struct failure **list, size_t *n, const struct job_rcpt *jr,
    const char *status, const char *relay, const char *detail,
    const char *reply, double at)
{
	struct failure *f;
	char *b;

	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	f = &(*list)[(*n)++];
	f->addr = xstrdup(jr->addr);
	f->orcpt = xstrdup(jr->orcpt);
	f->status = xstrdup(status);
	f->mta = xstrdup(relay);
	if ((b = strchr(f->mta, '[')) != NULL)   /* "host[addr]:port" */
		*b = '\0';
	if (strcmp(f->mta, "none") == 0)
		f->mta[0] = '\0';
	f->detail = xstrdup(detail);
	f->diag = bare_reply(reply);
	f->at = at;
}

static double held_next_attempt(struct scheduler *s, const char *dest,
    const struct transition *t, double received_at, double due_at,
    double now, const struct lifecycle_policy *pol);

/* Takes one recipient's outcome: lifecycle_decide() says what it comes
 * to (once: a write lost with a failed commit is made again the same),
 * and the notice it owes is noted for the end of the job. */
static void
decide(struct scheduler *s, struct sched_job *job, struct job_rcpt *jr,
    enum attempt_outcome outcome, const char *dsn, const char *reply,
    const char *relay, const char *tls)
{
	struct lifecycle_policy pol = policy_of(s->cfg);

	jr->at = now_wall();
	jr->outcome = outcome;
	jr->t = lifecycle_decide(outcome, jr->attempts, job->received_at,
	    jr->at, &pol, jr->notify);
	if (job->probe && job->dest[0] != '\0' && job->started > 0 &&
	    jr->t.state == RCPT_PENDING && jr->t.status == STATUS_DEFERRED)
		/* a failed probe's mail waits for the next probe, with the
		 * mail held meanwhile: its step counts from when the probe
		 * went, as the held mail's does, not from when it failed,
		 * which would put it a whole probe step later */
		jr->t.next_attempt = held_next_attempt(s, job->dest, &jr->t,
		    job->received_at, job->started, jr->at, &pol);
	jr->answered = 1;
	jr->dsn = xstrdup(dsn);
	jr->reply = xstrdup(reply);
	jr->relay = xstrdup(relay);
	jr->tls = xstrdup(tls);
	if (tls != NULL && tls[0] != '\0')
		s->metrics.tls_out[tls_version_slot(tls)]++;
	if (!jr->t.counts_attempt)
		return;
	if (jr->t.notice == NOTICE_DELAY)
		add_failure(&job->delays, &job->ndelays, jr, dsn, relay, reply,
		    reply, jr->at);
	if (jr->t.notice == NOTICE_BOUNCE) {
		char diag[1300];

		if (jr->t.status == STATUS_EXPIRED)
			snprintf(diag, sizeof(diag), "delivery time expired; "
			    "last error: %s", reply);
		else
			snprintf(diag, sizeof(diag), "%s", reply);
		add_failure(&job->fails, &job->nfails, jr,
		    jr->t.status == STATUS_EXPIRED ? "4.4.7" : dsn, relay, diag,
		    reply, jr->at);
	}
}

/* A write failed: the open transaction cannot be committed as it is. */
static void
write_error(struct scheduler *s, const char *qid, const char *what)
{
	log_error("%s: cannot record %s: %s", qid, what, store_errmsg(s->st));
	s->write_failed = 1;
}

/* Writes one decided outcome into the open transaction and logs it the
 * way Postfix does (once, however often it is written). */
static void
write_rcpt(struct scheduler *s, struct sched_job *job, struct job_rcpt *jr)
{
	const struct transition *t = &jr->t;
	char safe_reply[1200], safe_addr[600];
	char d_total[32], d_queue[32], d_send[32];
	struct log_fields f = { .event = "delivery" };

	if (!jr->answered || jr->written || jr->committed)
		return;
	if (!t->counts_attempt) {
		jr->written = 1;
		return;
	}
	if (store_begin(s->st) < 0 || store_rcpt_result(s->st, jr->rcpt_id,
	    t->state, t->next_attempt, jr->relay, jr->tls, t->status, jr->dsn,
	    jr->reply) < 0) {
		write_error(s, job->qid, "a result");
		return;
	}
	jr->written = 1;
	if (jr->logged)
		return;
	jr->logged = 1;
	count_result(s, job, t->status, jr->at, jr->reply);
	log_sanitize(safe_reply, sizeof(safe_reply), jr->reply,
	    strlen(jr->reply));
	log_sanitize(safe_addr, sizeof(safe_addr), jr->addr,
	    strlen(jr->addr));
	f.qid = job->qid;
	f.to = jr->addr;
	f.relay = jr->relay[0] ? jr->relay : "none";
	f.dsn = jr->dsn;
	f.status = attempt_status_name(t->status == STATUS_EXPIRED ?
	    STATUS_BOUNCED : t->status);
	f.has_delay = 1;
	f.delay = jr->at - job->received_at < 0 ? 0 :
	    jr->at - job->received_at;
	f.reason = jr->reply;
	log_event(LOG_INFO, &f, "%s: to=<%s>, relay=%s, delay=%s, "
	    "delays=%s/%s, tls=%s, dsn=%s, status=%s (%s)", job->qid,
	    safe_addr,
	    jr->relay[0] ? jr->relay : "none",
	    fmt_delay(d_total, sizeof(d_total), jr->at - job->received_at),
	    fmt_delay(d_queue, sizeof(d_queue), job->started -
	    job->received_at),
	    fmt_delay(d_send, sizeof(d_send), jr->at - job->started),
	    jr->tls[0] ? jr->tls : "none", jr->dsn,
	    attempt_status_name(t->status == STATUS_EXPIRED ? STATUS_BOUNCED :
	    t->status), safe_reply);
}

/* After a job: bounce what failed, remove the message when done. */
/* Queues a failure report (or a delay warning) for list[0..n). */
static void
report(struct scheduler *s, int64_t msgid, const char *qid,
    const struct failure *list, size_t n, int delayed)
{
	struct bounce_rcpt *br;
	char bqid[QID_LEN + 1];
	size_t i;
	int rc;

	if (n == 0)
		return;
	br = xcalloc(n, sizeof(*br));
	for (i = 0; i < n; i++) {
		br[i].addr = list[i].addr;
		br[i].orcpt = list[i].orcpt;
		br[i].status = list[i].status;
		br[i].remote_mta = list[i].mta;
		br[i].diagnostic = list[i].diag;
		br[i].detail = list[i].detail;
		br[i].last_attempt = list[i].at;
	}
	rc = delayed ? bounce_queue_delay(s->st, s->cfg, msgid, br, n, bqid) :
	    bounce_queue(s->st, s->cfg, msgid, br, n, bqid);
	if (rc < 0)
		write_error(s, qid, delayed ? "a delay warning" : "a bounce");
	free(br);
	s->wake = 1;
}

/* Queues the reports a job owes and removes the message when nothing is
 * pending; 1 when it removed it.  left_pending: the job itself left a
 * recipient pending (deferred), so the store need not be asked. */
static int
finish_message(struct scheduler *s, int64_t msgid, const char *qid,
    struct failure *fails, size_t nfails, struct failure *delays,
    size_t ndelays, int left_pending)
{
	int64_t pending, delivered, total;

	if (store_begin(s->st) < 0) {
		write_error(s, qid, "the end of a job");
		return 0;
	}
	report(s, msgid, qid, fails, nfails, 0);
	report(s, msgid, qid, delays, ndelays, 1);
	if (left_pending)
		return 0;   /* one of the job's own is still to be sent */
	if (store_message_progress(s->st, msgid, &pending, &delivered,
	    &total) == 0 && pending == 0) {
		if (store_message_delete(s->st, msgid) == 0)
			return 1;
		write_error(s, qid, "the removal");
	}
	return 0;
}

/* Writes the end of a job that is over: its outcomes, the reports it
 * owes, the message's removal when nothing is pending, and the count of
 * agents lost on it. */
static void
write_job(struct scheduler *s, struct sched_job *j)
{
	size_t k, unanswered = 0;
	int deaths = 0, left_pending = 0;

	if (j->finish_written)
		return;
	for (k = 0; k < j->nrcpts; k++) {
		write_rcpt(s, j, &j->rcpts[k]);
		if (!j->rcpts[k].answered)
			unanswered++;
		else if (j->rcpts[k].written &&
		    j->rcpts[k].t.counts_attempt &&
		    j->rcpts[k].t.state == RCPT_PENDING)
			left_pending = 1;
	}
	if (finish_message(s, j->msgid, j->qid, j->fails, j->nfails,
	    j->delays, j->ndelays, left_pending) && !j->removal_logged) {
		j->removal_logged = 1;   /* once, however often written */
		struct log_fields f = { .event = "removed", .qid = j->qid };

		log_event(LOG_INFO, &f, "%s: removed", j->qid);
	}
	if (j->vanished && unanswered > 0) {
		if ((deaths = store_agent_died(s->st, j->msgid)) < 0)
			write_error(s, j->qid, "an agent's death");
		if (deaths >= AGENT_DEATHS_HOLD) {
			if (store_message_hold(s->st, j->msgid,
			    HOLD_REASON_AGENTS) < 0)
				write_error(s, j->qid, "a hold");
			else
				log_warn("%s: held: %s", j->qid,
				    HOLD_REASON_AGENTS);
		}
	} else if (!j->vanished && j->agent_deaths > 0 &&
	    store_agent_survived(s->st, j->msgid) < 0)
		write_error(s, j->qid, "a job's end");
	j->finish_written = 1;
}

/* The job is over: it waits on the unsaved list for the commit that
 * makes its outcome durable (and is written again if that commit
 * fails). */
static void
job_over(struct scheduler *s, struct sched_job *j)
{
	j->next = s->unsaved;
	s->unsaved = j;
	write_job(s, j);
}

/* ---------------------------------------------------------- next hops */

/* Whether a finished job says its next hop cannot be reached: every
 * recipient deferred with a 4.4.x (no answer, bad connection, routing)
 * status. */
static int
job_hop_failed(const struct sched_job *j)
{
	size_t k;

	if (j->nrcpts == 0)
		return 0;
	for (k = 0; k < j->nrcpts; k++) {
		const struct job_rcpt *jr = &j->rcpts[k];

		if (!jr->answered || jr->outcome != OUTCOME_TEMPORARY ||
		    jr->dsn == NULL || strncmp(jr->dsn, "4.4.", 4) != 0)
			return 0;
	}
	return 1;
}

/* A job to a next hop is over: note whether the hop answered; when that
 * brings a down hop back, the mail deferred in bulk for it is due now. */
static void
hop_result(struct scheduler *s, struct sched_job *j)
{
	int failed = job_hop_failed(j), was_down, back;
	int64_t *ids;
	size_t n;

	if (j->dest[0] == '\0')
		return;
	was_down = hop_health_is_down(s->hops, j->dest);
	back = hop_health_result(s->hops, j->dest, failed,
	    failed ? j->rcpts[0].dsn : "", failed ? j->rcpts[0].reply : "",
	    now_wall(), s->cfg->retry_schedule, s->cfg->nretry_schedule);
	if (!was_down && hop_health_is_down(s->hops, j->dest)) {
		char safe[700];

		log_sanitize(safe, sizeof(safe), j->rcpts[0].reply,
		    strlen(j->rcpts[0].reply));
		log_warn("next hop %s is down after %d connection failures in "
		    "a row; its mail is deferred without a connection until a "
		    "probe reaches it: %s", j->dest, HOP_DOWN_AFTER, safe);
	}
	if (!back)
		return;
	n = hop_health_take_held(s->hops, j->dest, &ids);
	log_info("next hop %s is back; %zu recipient(s) deferred while it "
	    "was down are due now", j->dest, n);
	if (n > 0 && (store_begin(s->st) < 0 ||
	    store_rcpt_due_at(s->st, ids, n, now_wall()) < 0))
		write_error(s, j->qid, "the return of its next hop");
	free(ids);
	s->wake = 1;
}

/* A probe's agent went away without an answer: the probe failed. */
static void
hop_probe_lost(struct scheduler *s, struct sched_job *j)
{
	const char *dsn = "4.4.1", *reason = "probe lost";

	if (!j->probe || j->dest[0] == '\0')
		return;
	(void)hop_health_verdict(s->hops, j->dest, 0, &dsn, &reason);
	(void)hop_health_result(s->hops, j->dest, 1, dsn, reason, now_wall(),
	    s->cfg->retry_schedule, s->cfg->nretry_schedule);
}

/* --------------------------------------------------- smarthost pools */

/* A probe of a pool host that came back without a word of that host
 * (its job never reached it, or the agent went): it may go again. */
static void
pool_probe_lost(struct scheduler *s, const struct sched_job *j,
    const struct deliver_host_report *hosts, size_t n)
{
	struct host_pool *pool;
	size_t i;
	int k;

	if (j->probe_host[0] == '\0' ||
	    (pool = upstream_pools_find(s->pools, j->route)) == NULL)
		return;
	for (i = 0; i < n; i++)
		if (strcmp(hosts[i].host, j->probe_host) == 0)
			return;
	if ((k = host_pool_find(pool, j->probe_host)) >= 0)
		host_pool_probe_lost(pool, (size_t)k);
}

/* A route whose every host was down has one up again: the mail
 * deferred in bulk meanwhile is due now. */
static void
pool_back(struct scheduler *s, const char *route, const char *qid)
{
	char dest[320];
	int64_t *ids;
	size_t n;

	snprintf(dest, sizeof(dest), "route:%s", route);
	if (!hop_health_is_down(s->hops, dest))
		return;
	(void)hop_health_result(s->hops, dest, 0, "", "", now_wall(),
	    s->cfg->retry_schedule, s->cfg->nretry_schedule);
	n = hop_health_take_held(s->hops, dest, &ids);
	log_info("route %s has a host up again; %zu recipient(s) deferred "
	    "while every host was down are due now", route, n);
	if (n > 0 && (store_begin(s->st) < 0 ||
	    store_rcpt_due_at(s->st, ids, n, now_wall()) < 0))
		write_error(s, qid, "the return of its route");
	free(ids);
	s->wake = 1;
}

/* What a job or an active probe found at the hosts of its route's
 * pool. */
static void
pool_result(struct scheduler *s, struct sched_job *j,
    const struct deliver_done *d)
{
	struct host_pool *pool = upstream_pools_find(s->pools, j->route);

	if (pool == NULL)
		return;
	(void)upstream_pools_report(s->pools, j->route, d->hosts, d->nhosts,
	    now_wall());
	pool_probe_lost(s, j, d->hosts, d->nhosts);
	if (host_pool_any_up(pool))
		pool_back(s, j->route, j->qid[0] ? j->qid : "probe");
}

/* What due mail for a pool route may do: go while a host is up or may
 * be probed; else the route is down (hop_health.h) until the first
 * cooldown ends, and its mail is deferred in bulk. */
static enum hop_verdict
pool_verdict(struct scheduler *s, struct host_pool *pool,
    const struct route_config *r, const char *dest, double now,
    const char **dsn, const char **reason)
{
	const char *route = r->name;
	char why[HOP_REASON_MAX];
	double at;
	enum hop_verdict v;

	if (host_pool_usable(pool, now))
		return HOP_SEND;
	at = host_pool_next_probe(pool);
	if (at <= now)
		/* only probes are out: their answer brings the held mail
		 * back at once, so it need not come asking before */
		at = now + r->host_cooldown;
	if (!hop_health_is_down(s->hops, dest)) {
		char safe[HOP_REASON_MAX];
		const char *last = host_pool_last_error(pool);

		log_sanitize(safe, sizeof(safe), last, strlen(last));
		log_warn("route %s: every host is down; its mail is deferred "
		    "without a connection until a host is probed again in "
		    "%.0f s: %s", route, at - now, safe);
	}
	snprintf(why, sizeof(why), "every host of route %s is down: %s",
	    route, host_pool_last_error(pool));
	hop_health_mark_down(s->hops, dest, "4.4.1", why, at);
	v = hop_health_verdict(s->hops, dest, now, dsn, reason);
	return v == HOP_SEND ? HOP_SUSPEND : v == HOP_PROBE ? HOP_SUSPEND : v;
}

/* Sends an active probe of host k of the pool of route to agent a. */
static void
send_probe(struct scheduler *s, struct pool_agent *a, const char *route,
    struct host_pool *pool, size_t k)
{
	struct deliver_probe pr;
	struct host_pool_view v;
	struct sched_job *job;

	host_pool_view(pool, k, &v);
	memset(&pr, 0, sizeof(pr));
	pr.job_id = ++s->next_job_id;
	pr.route = (char *)route;
	pr.host = (char *)v.name;
	pr.helo = s->cfg->hostname;
	job = xcalloc(1, sizeof(*job));
	job->active_probe = 1;
	job->msgid = -1;
	ferry_strlcpy(job->route, route, sizeof(job->route));
	ferry_strlcpy(job->probe_host, v.name, sizeof(job->probe_host));
	a->job = job;
	a->job_id = pr.job_id;
	a->msgid = -1;
	a->qid[0] = '\0';
	snprintf(a->dest, sizeof(a->dest), "probe:%s", route);
	deliver_probe_encode(&pr, agent_pool_probe(&s->pool, a));
	agent_pool_start_probe(&s->pool, a);
	log_debug("probing host %s of route %s (%s)", v.name, route,
	    host_state_name(v.state));
}

static struct pool_agent *idle_agent(struct scheduler *s, const char *dest);

/* The active probes due now, each to a free agent; returns how many
 * found none (an agent more is wanted for them). */
static int
run_probes(struct scheduler *s, double now)
{
	size_t i;
	int wanted = 0;

	for (i = 0; i < upstream_pools_count(s->pools); i++) {
		const char *route;
		struct host_pool *pool = upstream_pools_at(s->pools, i,
		    &route);
		double at;
		int k;

		while ((at = host_pool_next_active(pool, now)) > 0 &&
		    at <= now) {
			struct pool_agent *a = idle_agent(s, "");

			if (a == NULL) {
				wanted++;
				break;
			}
			if ((k = host_pool_probe_due(pool, now)) < 0)
				break;
			send_probe(s, a, route, pool, (size_t)k);
		}
	}
	return wanted;
}

/* When the next active probe of any pool is due (0: none). */
static double
next_probe_at(struct scheduler *s, double now)
{
	size_t i;
	double next = 0, at;

	for (i = 0; i < upstream_pools_count(s->pools); i++) {
		const char *route;

		at = host_pool_next_active(upstream_pools_at(s->pools, i,
		    &route), now);
		if (at > 0 && (next == 0 || at < next))
			next = at;
	}
	return next;
}

/* ------------------------------------------------------------- agents */

/* A delivery agent that goes away with a job in flight is not an
 * outcome of the delivery: the recipients it did not answer stay pending
 * as they were (no attempt counted, no retry step) and are dispatched
 * again at once.  Only a message whose deliveries keep killing agents is
 * held, so that it cannot crash-loop the pool. */
static void
job_vanished(void *arg, struct pool_agent *a, const char *why)
{
	struct scheduler *s = arg;
	struct sched_job *j = a->job;
	size_t k, unanswered = 0;

	pool_probe_lost(s, j, NULL, 0);
	if (j->active_probe) {
		log_warn("delivery agent (pid %ld) %s during a probe of %s",
		    (long)a->pid, why, j->probe_host);
		s->wake = 1;
		job_clear(a);
		return;
	}
	for (k = 0; k < j->nrcpts; k++)
		if (!j->rcpts[k].answered)
			unanswered++;
	log_warn("%s: delivery agent (pid %ld) %s; %zu recipient(s) go back "
	    "to the queue", a->qid, (long)a->pid, why, unanswered);
	s->wake = 1;
	j->vanished = 1;
	a->job = NULL;
	hop_probe_lost(s, j);
	job_over(s, j);
	job_clear(a);
}

static int
on_result(void *arg, struct pool_agent *a, struct ipc_in *in)
{
	struct scheduler *s = arg;
	struct sched_job *j = a->job;
	struct deliver_result r;
	size_t k;

	if (!a->busy || deliver_result_decode(in, &r) < 0)
		return -1;
	for (k = 0; k < j->nrcpts; k++)
		if ((uint64_t)j->rcpts[k].rcpt_id == r.rcpt_id &&
		    !j->rcpts[k].answered)
			break;
	if (k == j->nrcpts) {
		deliver_result_free(&r);
		return -1;
	}
	decide(s, j, &j->rcpts[k], outcome_of(r.status), r.dsn, r.reply,
	    r.relay, r.tls);
	write_rcpt(s, j, &j->rcpts[k]);
	/* the server refused the route's credentials: for an OAuth2 route,
	 * ferry-token gets a new access token for the next attempt */
	if (strcmp(r.dsn, "4.7.8") == 0)
		token_client_refused(s->tokens, j->route, j->token_serial);
	deliver_result_free(&r);
	return 0;
}

static int
on_done(void *arg, struct pool_agent *a, struct ipc_in *in)
{
	struct scheduler *s = arg;
	struct sched_job *j = a->job;
	struct deliver_done d;
	size_t k;

	if (!a->busy || deliver_done_decode(in, &d) < 0 ||
	    d.job_id != a->job_id) {
		if (a->busy)
			deliver_done_free(&d);
		return -1;
	}
	for (k = 0; k < j->nrcpts; k++)
		if (!j->rcpts[k].answered) {
			deliver_done_free(&d);
			return -1;
		}
	/* (a name cut to fit j->route would be another route's) */
	if (d.caps_seen && s->learn != NULL &&
	    strlen(j->route) < sizeof(j->route) - 1) {
		struct route_caps c = { d.caps_flags, d.caps_size };

		route_learn_seen(s->learn, s->st, s->cfg, j->route, &c);
	}
	a->job = NULL;
	{
		int pooled = !j->active_probe &&
		    upstream_pools_find(s->pools, j->route) != NULL;

		if (j->active_probe) {
			pool_result(s, j, &d);
			sched_job_free(j);
		} else {
			job_over(s, j);
			if (pooled)
				pool_result(s, j, &d);
			else
				hop_result(s, j);
			if (d.throttle[0] != '\0')
				shaping_result(s->shaping, j->route, "",
				    d.throttle, now_wall());
			if (shaping_save(s->shaping, j->route,
			    now_wall()) < 0)
				write_error(s, j->qid,
				    "the route's quota counts");
		}
		/* the agent kept its connection: a pool's by the host it
		 * reached (the key dispatch looks for), another's by the
		 * name the scheduler gives its next hop (idle_agent) */
		if (pooled)
			ferry_strlcpy(a->hop, d.hop, sizeof(a->hop));
		else
			ferry_strlcpy(a->hop, d.hop[0] != '\0' ? a->dest : "",
			    sizeof(a->hop));
	}
	if (d.leaving)
		a->retiring = 1;   /* told to stop: it exits now */
	deliver_done_free(&d);
	job_clear(a);
	s->wake = 1;
	return 0;
}

static void
on_idle(void *arg)
{
	((struct scheduler *)arg)->wake = 1;
}

static const struct pool_hooks scheduler_hooks = {
	on_result, on_done, job_vanished, on_idle
};

struct scheduler *
scheduler_new(const struct ferry_config *cfg, struct store *st,
    uid_t agent_uid)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->st = st;
	s->hops = hop_health_new();
	s->pools = upstream_pools_new(cfg);
	s->shaping = shaping_new(cfg, st, now_wall());
	s->due_limit = DUE_BATCH;
	agent_pool_init(&s->pool, st, agent_uid, &scheduler_hooks, s);
	s->wake = 1;
	histogram_init(&s->metrics.delivery_seconds, delivery_bounds,
	    sizeof(delivery_bounds) / sizeof(delivery_bounds[0]));
	s->tokens = token_client_new(cfg->spool_dir);
	return s;
}

void
scheduler_accept(struct scheduler *s, int listen_fd)
{
	agent_pool_accept(&s->pool, listen_fd);
}

/* The agents' descriptors, then ferry-token's (always the last one). */
size_t
scheduler_pollfds(struct scheduler *s, struct pollfd *pfds, size_t max)
{
	size_t n = agent_pool_pollfds(&s->pool, pfds, max - 1);

	token_client_pollfd(s->tokens, &pfds[n]);
	return n + 1;
}

void
scheduler_events(struct scheduler *s, const struct pollfd *pfds, size_t n)
{
	agent_pool_events(&s->pool, pfds, n - 1);
	if (token_client_events(s->tokens, pfds[n - 1].revents))
		s->wake = 1;
}

const struct token_client *
scheduler_tokens(const struct scheduler *s)
{
	return s->tokens;
}

/* ----------------------------------------------------------- dispatch */

static int
message_in_flight(struct scheduler *s, int64_t msgid)
{
	size_t i;

	for (i = 0; i < s->pool.nagents; i++)
		if (s->pool.agents[i]->busy && s->pool.agents[i]->msgid == msgid)
			return 1;
	return 0;
}

int
scheduler_busy_qid(struct scheduler *s, const char *qid)
{
	size_t i;

	for (i = 0; i < s->pool.nagents; i++)
		if (s->pool.agents[i]->busy && strcmp(s->pool.agents[i]->qid, qid) == 0)
			return 1;
	return 0;
}

static int
dest_busy(struct scheduler *s, const char *dest)
{
	size_t i;
	int n = 0;

	for (i = 0; i < s->pool.nagents; i++)
		if (s->pool.agents[i]->busy && strcmp(s->pool.agents[i]->dest, dest) == 0)
			n++;
	return n;
}

static struct pool_agent *
idle_agent(struct scheduler *s, const char *dest)
{
	struct pool_agent *any = NULL;
	size_t i;

	for (i = 0; i < s->pool.nagents; i++) {
		struct pool_agent *a = s->pool.agents[i];

		if (a->busy || a->pid == 0 || a->retiring)
			continue;
		if (strcmp(a->hop, dest) == 0)
			return a;   /* already connected there */
		if (any == NULL || a->hop[0] == '\0')
			any = a;
	}
	return any;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

/* Starts one job: the due recipients v[idx[0..n)] of one message. */
static void
dispatch(struct scheduler *s, struct pool_agent *a, const char *dest,
    const struct route_config *route, const char *domain,
    struct store_due *v, const size_t *idx, size_t n, char **hosts,
    size_t nhosts)
{
	struct deliver_job j;
	const struct store_due *d0 = &v[idx[0]];
	struct sched_job *job;
	const char *token = "";
	uint32_t serial = 0;
	size_t k;

	memset(&j, 0, sizeof(j));
	j.job_id = ++s->next_job_id;
	/* Retirement is decided here alone: the agent runs this job, says
	 * JOB_DONE and leaves, and is sent nothing after it. */
	if (++a->jobs_sent >= s->cfg->agent_jobs) {
		j.last_job = 1;
		a->retiring = 1;
	}
	j.qid = (char *)d0->qid;
	j.sender = d0->sender;
	j.size = d0->size;
	j.body_type = d0->body_type;
	j.smtputf8 = d0->smtputf8;
	j.dsn_ret = d0->dsn_ret;
	j.envid = d0->envid;
	j.helo = s->cfg->hostname;
	j.route = route ? route->name : (char *)"mx";
	j.domain = (char *)domain;
	j.hosts = route ? route->hosts : NULL;
	j.nhosts = route ? route->nhosts : 0;
	if (hosts != NULL) {
		/* a pool's choice: the chosen host, then its fallbacks */
		j.hosts = hosts;
		j.nhosts = nhosts;
	}
	j.mx_port = (uint32_t)s->cfg->mx_port;
	{
		const struct route_config *pol = route ? route :
		    &s->cfg->mx_route;

		j.tls = (uint32_t)pol->tls;
		j.ca_file = pol->ca_file;
		j.tls_min_version = (uint32_t)pol->tls_min_version;
		j.auth = (uint32_t)pol->auth;
		j.auth_plaintext = (uint32_t)pol->auth_plaintext;
		j.rewrite_sender = pol->rewrite_sender ? pol->rewrite_sender :
		    (char *)"";
		j.rewrite_from = pol->rewrite_from ? pol->rewrite_from :
		    (char *)"";
		j.allowed_from = pol->allowed_from;
		j.nallowed_from = pol->allowed_from ? pol->nallowed_from : 0;
	}
	if (route != NULL) {
		const char *why;

		if (token_client_gate(s->tokens, route->name, route->auth,
		    &token, &why, &serial) == TOKEN_GATE_SEND)
			j.oauth_token = (char *)token;
	}
	j.nrcpts = n;
	j.rcpts = xcalloc(n, sizeof(*j.rcpts));
	job = xcalloc(1, sizeof(*job));
	job->rcpts = xcalloc(n, sizeof(*job->rcpts));
	job->nrcpts = n;
	for (k = 0; k < n; k++) {
		const struct store_due *d = &v[idx[k]];

		j.rcpts[k].id = (uint64_t)d->rcpt_id;
		j.rcpts[k].addr = d->address;
		j.rcpts[k].notify = d->notify;
		j.rcpts[k].orcpt = d->orcpt;
		job->rcpts[k].rcpt_id = d->rcpt_id;
		job->rcpts[k].addr = xstrdup(d->address);
		job->rcpts[k].orcpt = xstrdup(d->orcpt);
		job->rcpts[k].notify = d->notify;
		job->rcpts[k].attempts = d->attempts;
		job->rcpts[k].last_reply = xstrdup(d->last_reply);
	}
	job->msgid = d0->msgid;
	ferry_strlcpy(job->qid, d0->qid, sizeof(job->qid));
	job->received_at = d0->received_at;
	job->agent_deaths = d0->agent_deaths;
	ferry_strlcpy(job->dest, dest, sizeof(job->dest));
	job->started = now_wall();
	ferry_strlcpy(job->route, j.route, sizeof(job->route));
	job->token_serial = serial;
	a->job = job;
	a->job_id = j.job_id;
	a->msgid = d0->msgid;
	ferry_strlcpy(a->qid, d0->qid, sizeof(a->qid));
	ferry_strlcpy(a->dest, dest, sizeof(a->dest));
	deliver_job_encode(&j, agent_pool_job(&s->pool, a));
	agent_pool_start(&s->pool, a);
	free(j.rcpts);
}

/* A job for the due recipients v[idx[0..n)] of one message that is
 * deferred without a connection (a next hop down, an OAuth2 token
 * missing): their rows copied, none decided yet. */
static struct sched_job *
connectionless_job(const char *route, const struct store_due *v,
    const size_t *idx, size_t n, double now)
{
	const struct store_due *d0 = &v[idx[0]];
	struct sched_job *job = xcalloc(1, sizeof(*job));
	size_t k;

	job->rcpts = xcalloc(n, sizeof(*job->rcpts));
	job->nrcpts = n;
	job->msgid = d0->msgid;
	ferry_strlcpy(job->qid, d0->qid, sizeof(job->qid));
	job->received_at = d0->received_at;
	job->started = now;
	ferry_strlcpy(job->route, route, sizeof(job->route));
	for (k = 0; k < n; k++) {
		const struct store_due *d = &v[idx[k]];
		struct job_rcpt *jr = &job->rcpts[k];

		jr->rcpt_id = d->rcpt_id;
		jr->addr = xstrdup(d->address);
		jr->orcpt = xstrdup(d->orcpt);
		jr->notify = d->notify;
		jr->attempts = d->attempts;
		jr->last_reply = xstrdup(d->last_reply);
	}
	return job;
}

/* The next attempt of a recipient deferred without a connection for the
 * down hop dest at now, t as lifecycle_decide gave it: on the probes'
 * grid (hop_health_held_next, lifecycle_hold_until).  Its retry step
 * counts from when it came due (due_at), not from the moment the pass
 * over the hop's held mail reached it: mail held until a probe then
 * comes due again with the next probe when its step is the probes',
 * where counted from a few seconds later it would miss that probe by
 * those seconds, wait a whole probe step more, and leave the next probe
 * no mail due to go with. */
static double
held_next_attempt(struct scheduler *s, const char *dest,
    const struct transition *t, double received_at, double due_at,
    double now, const struct lifecycle_policy *pol)
{
	struct transition from_due = *t;
	double held;

	if (t->state == RCPT_PENDING && t->status == STATUS_DEFERRED &&
	    due_at > 0 && due_at < now && t->next_attempt - (now - due_at) >
	    now)
		from_due.next_attempt -= now - due_at;
	held = hop_health_held_next(s->hops, dest, now,
	    from_due.next_attempt, s->cfg->retry_schedule,
	    s->cfg->nretry_schedule);
	/* just before its own time (hop_health_held_next's slack): it
	 * rides on that probe with the rest */
	if (held < from_due.next_attempt && held > now)
		from_due.next_attempt = held;
	return lifecycle_hold_until(&from_due, held, received_at, pol);
}

/* Defers the due recipients v[idx[0..n)] of one message for a next hop
 * that is down, without a connection: one attempt each, counted and
 * logged with the reason the hop went down.  Their next attempt is held
 * until the hop's next probe or a later point of its probe grid
 * (hop_health_held_next, lifecycle_hold_until), so a long outage
 * costs one deferral per recipient per probe step, not one per step of
 * each recipient's own schedule. */
static void
suspend(struct scheduler *s, const char *dest, const char *dsn,
    const char *reason, struct store_due *v, const size_t *idx, size_t n,
    double now)
{
	struct sched_job *job;
	char reply[HOP_REASON_MAX + 64];
	struct lifecycle_policy pol = policy_of(s->cfg);
	size_t k;

	snprintf(reply, sizeof(reply), "delivery temporarily suspended: %s",
	    reason);
	/* counted under the route it was deferred for ("mx" for MX) */
	job = connectionless_job(strncmp(dest, "route:", 6) == 0 ?
	    dest + 6 : "mx", v, idx, n, now);
	for (k = 0; k < n; k++) {
		struct job_rcpt *jr = &job->rcpts[k];

		decide(s, job, jr, OUTCOME_TEMPORARY, dsn, reply, "none", "");
		jr->t.next_attempt = held_next_attempt(s, dest, &jr->t,
		    v[idx[k]].received_at, v[idx[k]].due_at, now, &pol);
		hop_health_hold(s->hops, dest, v[idx[k]].rcpt_id);
	}
	job_over(s, job);
}

/* Defers the due recipients v[idx[0..n)] of an OAuth2 route whose
 * token could not be refreshed, without a connection: one attempt each,
 * on their own retry schedule (never a bounce: only their lifetime ends
 * them). */
static void
token_defer(struct scheduler *s, const char *route, const char *reason,
    struct store_due *v, const size_t *idx, size_t n, double now)
{
	struct sched_job *job = connectionless_job(route, v, idx, n, now);
	char reply[TOKEN_REASON_MAX + 300];
	size_t k;

	snprintf(reply, sizeof(reply), "OAuth2 access token for route %s "
	    "unavailable: %s", route, reason);
	for (k = 0; k < n; k++)
		decide(s, job, &job->rcpts[k], OUTCOME_TEMPORARY, "4.7.0",
		    reply, "none", "");
	job_over(s, job);
}

/* ------------------------------------------------------ bulk deferral */

/* A next hop that is down has its due mail deferred by the store in
 * statements of BULK_BATCH recipients (store_rcpt_defer_bulk): the
 * scheduler sees each row only as the arguments of bulk_take() and
 * bulk_deferred(), with no row read into memory, no job built and no
 * statement of its own.  The batches stop at the end of the turn
 * (SUSPEND_TURN_MS), so intake waits at most about one batch. */
#define BULK_BATCH 256

struct bulk_turn {
	struct scheduler *s;
	const char *dest;
	double now;
	struct lifecycle_policy pol;
	struct sched_job job;     /* the route and arrival, for the metrics */
	char reply[HOP_REASON_MAX + 64];
	char safe_reply[1400];
	const char *dsn;
};

/* Whether sender's mail to address goes to the next hop dest (as
 * scheduler_run names it: "route:NAME" or "mx:DOMAIN"). */
static int
goes_to(const struct scheduler *s, const char *dest, const char *sender,
    const char *address)
{
	const char *domain = domain_of(address);
	const struct route_config *route = config_route_select(s->cfg,
	    sender, domain);

	if (route != NULL)
		return strncmp(dest, "route:", 6) == 0 &&
		    strcmp(dest + 6, route->name) == 0;
	return strncmp(dest, "mx:", 3) == 0 && strcmp(dest + 3, domain) == 0;
}

/* A due row: deferred in bulk when it goes to the hop, is not in flight
 * (a probe's message), and its deferral owes nothing (no expiry, no
 * delay warning yet to send): those take the row-by-row way.  The next
 * attempt is suspend()'s. */
static double
bulk_take(void *arg, const struct store_bulk_row *r)
{
	struct bulk_turn *b = arg;
	struct transition t;

	if (!goes_to(b->s, b->dest, r->sender, r->address) ||
	    message_in_flight(b->s, r->msgid))
		return 0;
	t = lifecycle_decide(OUTCOME_TEMPORARY, r->attempts, r->received_at,
	    b->now, &b->pol, r->notify);
	if (t.status != STATUS_DEFERRED || t.state != RCPT_PENDING ||
	    (t.notice != NOTICE_NONE && !r->warned))
		return 0;
	return held_next_attempt(b->s, b->dest, &t, r->received_at,
	    r->due_at, b->now, &b->pol);
}

/* A recipient deferred in bulk: its log line (write_rcpt's, word for
 * word), its count, and its place among the hop's held mail. */
static void
bulk_deferred(void *arg, const struct store_bulk_row *r)
{
	struct bulk_turn *b = arg;
	char safe_addr[600], d_total[32];
	struct log_fields f = { .event = "delivery" };
	double delay = b->now - r->received_at;

	hop_health_hold(b->s->hops, b->dest, r->rcpt_id);
	b->job.received_at = r->received_at;
	count_result(b->s, &b->job, STATUS_DEFERRED, b->now, b->reply);
	log_sanitize(safe_addr, sizeof(safe_addr), r->address,
	    strlen(r->address));
	f.qid = r->qid;
	f.to = r->address;
	f.relay = "none";
	f.dsn = b->dsn;
	f.status = attempt_status_name(STATUS_DEFERRED);
	f.has_delay = 1;
	f.delay = delay < 0 ? 0 : delay;
	f.reason = b->reply;
	fmt_delay(d_total, sizeof(d_total), delay);
	log_event(LOG_INFO, &f, "%s: to=<%s>, relay=none, delay=%s, "
	    "delays=%s/0, tls=none, dsn=%s, status=deferred (%s)", r->qid,
	    safe_addr, d_total, d_total, b->dsn, b->safe_reply);
}

/* Defers in bulk the due mail of every next hop that is down and not due
 * a probe, until the turn ends at turn_end.  done[i] says whether the
 * i-th of the hops hop_health_down_list gives (ndests of them) was done
 * to the end: a due row of such a hop left in the store is one the bulk
 * left to the row-by-row way.  Returns 1 when the turn ended first. */
static int
bulk_suspend(struct scheduler *s, double now, int64_t turn_end,
    const char **dests, char *done, size_t ndests)
{
	size_t i;

	for (i = 0; i < ndests; i++) {
		struct bulk_turn b;
		struct store_bulk sb;
		const char *dsn = "", *reason = "";
		int k;

		if (hop_health_verdict(s->hops, dests[i], now, &dsn,
		    &reason) != HOP_SUSPEND)
			continue;   /* its probe goes first */
		memset(&b, 0, sizeof(b));
		b.s = s;
		b.dest = dests[i];
		b.now = now;
		b.pol = policy_of(s->cfg);
		b.dsn = dsn;
		snprintf(b.reply, sizeof(b.reply), "delivery temporarily "
		    "suspended: %s", reason);
		log_sanitize(b.safe_reply, sizeof(b.safe_reply), b.reply,
		    strlen(b.reply));
		ferry_strlcpy(b.job.route, strncmp(dests[i], "route:", 6) == 0 ?
		    dests[i] + 6 : "mx", sizeof(b.job.route));
		memset(&sb, 0, sizeof(sb));
		sb.now = now;
		sb.limit = BULK_BATCH;
		sb.dsn = dsn;
		sb.reply = b.reply;
		sb.take = bulk_take;
		sb.deferred = bulk_deferred;
		sb.arg = &b;
		for (;;) {
			if (store_begin(s->st) < 0 ||
			    (k = store_rcpt_defer_bulk(s->st, &sb)) < 0) {
				write_error(s, "scheduler", "a bulk deferral");
				return 0;
			}
			if ((size_t)k < BULK_BATCH) {
				done[i] = 1;
				break;
			}
			if (now_ms() >= turn_end)
				return 1;
		}
	}
	return 0;
}

/* Whether the bulk deferral of dest ran to its end in this turn. */
static int
bulk_finished(const char **down, const char *done, size_t ndown,
    const char *dest)
{
	size_t i;

	for (i = 0; i < ndown; i++)
		if (strcmp(down[i], dest) == 0)
			return done[i];
	return 0;
}

/* Due jobs no free agent could take, by next hop: an agent more is
 * wanted for each only while that hop is under per_destination.  While
 * an agent of the hop is busy, a new message must have waited
 * AGENT_MORE_AFTER_MS for it first: the busy agent is usually free again
 * within a few milliseconds, and an agent started for every message that
 * arrives while another is in flight ran up to delivery.agents processes
 * for a single client sending one message after another (each start
 * costs an exec, the dynamic linker and OpenSSL's set-up). */
#define TALLY_HOPS 64
#define AGENT_MORE_AFTER_MS 25

struct short_tally {
	char dest[TALLY_HOPS][320];
	int waiting[TALLY_HOPS];
	size_t n;
	int wanted;               /* agents more that would be busy */
	int64_t look_again_ms;    /* a job not counted yet: when it counts */
};

static void
tally_short(struct scheduler *s, struct short_tally *t, const char *dest,
    const struct store_due *d, double now)
{
	size_t k;

	if (d->attempts == 0 && dest_busy(s, dest) > 0) {
		double waited_ms = (now - d->received_at) * 1000.0;

		if (waited_ms < AGENT_MORE_AFTER_MS) {
			/* look again once it has waited that long */
			int64_t at = now_ms() + (int64_t)(AGENT_MORE_AFTER_MS -
			    waited_ms) + 1;

			if (t->look_again_ms == 0 || at < t->look_again_ms)
				t->look_again_ms = at;
			return;
		}
	}

	for (k = 0; k < t->n; k++)
		if (strcmp(t->dest[k], dest) == 0)
			break;
	if (k == t->n) {
		if (t->n == TALLY_HOPS) {
			t->wanted++;   /* many hops: count each job */
			return;
		}
		ferry_strlcpy(t->dest[k], dest, sizeof(t->dest[k]));
		t->waiting[k] = 0;
		t->n++;
	}
	if (dest_busy(s, dest) + t->waiting[k] < s->cfg->per_destination) {
		t->waiting[k]++;
		t->wanted++;
	}
}

/* A recipient whose lifetime is over fails without another attempt. */
static int
expire(struct scheduler *s, struct store_due *d, double now)
{
	struct lifecycle_policy pol = policy_of(s->cfg);
	struct sched_job *job;
	struct job_rcpt *jr;
	char reply[1200];

	if (!lifecycle_expired(d->received_at, now, &pol))
		return 0;
	job = xcalloc(1, sizeof(*job));
	job->rcpts = jr = xcalloc(1, sizeof(*jr));
	job->nrcpts = 1;
	job->msgid = d->msgid;
	ferry_strlcpy(job->qid, d->qid, sizeof(job->qid));
	job->received_at = d->received_at;
	job->started = now;
	{
		/* counted under the route it would take ("mx" for MX) */
		const char *at = strrchr(d->address, '@');
		const struct route_config *r = config_route_select(s->cfg,
		    d->sender, at != NULL ? at + 1 : "");

		ferry_strlcpy(job->route, r != NULL ? r->name : "mx",
		    sizeof(job->route));
	}
	jr->rcpt_id = d->rcpt_id;
	jr->addr = xstrdup(d->address);
	jr->orcpt = xstrdup(d->orcpt);
	jr->notify = d->notify;
	jr->attempts = d->attempts;
	jr->last_reply = xstrdup(d->last_reply);
	snprintf(reply, sizeof(reply), "%s", d->last_reply[0] ?
	    d->last_reply : "no attempt succeeded");
	decide(s, job, jr, OUTCOME_NOT_TRIED, "4.4.7", reply, "", "");
	job_over(s, job);
	return 1;
}

void
scheduler_run(struct scheduler *s)
{
	struct store_due *v;
	size_t n, i, *idx, nidx, cut = 0;
	char *taken;
	double now = now_wall(), when;
	int any_idle = 0, blocked = 0, suspended = 0, busy = 0;
	int64_t last_short = -1;
	struct short_tally *tally = NULL;
	int64_t turn_end = now_ms() + SUSPEND_TURN_MS, look_again;
	int64_t shaped_look = 0;
	const char **down = NULL;
	char *bulk_done = NULL;
	size_t ndown;

	if (s->cfg->agent_idle > 0 && s->next_retire_ms > 0 &&
	    now_ms() >= s->next_retire_ms)
		scheduler_retire_idle(s);
	if (!s->wake && now_ms() < s->next_run_ms)
		return;
	if (s->unsaved != NULL)
		return;   /* outcomes wait for their commit: nothing new */
	s->wake = 0;
	s->probes_wanted = run_probes(s, now);
	for (i = 0; i < s->pool.nagents; i++)
		if (!s->pool.agents[i]->busy && s->pool.agents[i]->pid != 0 &&
		    !s->pool.agents[i]->retiring)
			any_idle = 1;
	ndown = hop_health_down_count(s->hops);
	if (ndown > 0) {
		down = xcalloc(ndown, sizeof(*down));
		bulk_done = xcalloc(ndown, 1);
		ndown = hop_health_down_list(s->hops, down, ndown);
		if (bulk_suspend(s, now, turn_end, down, bulk_done, ndown))
			suspended = 1;   /* more of it in the next turn */
	}
	/* while a bulk deferral has more to do, its rows lead the due
	 * order: read only a few, for the probe and the other hops */
	if (store_due(s->st, now, suspended ? DUE_MIN : s->due_limit, &v,
	    &n) < 0) {
		log_error("scheduler: %s", store_errmsg(s->st));
		s->next_run_ms = now_ms() + 1000;
		free(down);
		free(bulk_done);
		return;
	}
	taken = xcalloc(n ? n : 1, 1);
	idx = xcalloc(n ? n : 1, sizeof(*idx));
	for (i = 0; i < n; i++) {
		const struct route_config *route;
		const char *domain;
		char dest[320];
		struct pool_agent *a;
		enum hop_verdict verdict;
		enum token_gate gate;
		const char *hop_dsn = "", *hop_reason = "";
		const char *token, *token_reason;
		uint32_t token_serial;
		struct host_pool *pool;
		char *picked[HOST_POOL_MAX];
		size_t order[HOST_POOL_MAX], npicked = 0;
		int pool_probe = 0;
		size_t k;

		if (taken[i])
			continue;
		taken[i] = 1;
		if (expire(s, &v[i], now))
			continue;
		if (message_in_flight(s, v[i].msgid)) {
			blocked = 1;
			continue;
		}
		domain = domain_of(v[i].address);
		route = config_route_select(s->cfg, v[i].sender, domain);
		if (route)
			snprintf(dest, sizeof(dest), "route:%s", route->name);
		else
			snprintf(dest, sizeof(dest), "mx:%s", domain);
		pool = route != NULL ? upstream_pools_find(s->pools,
		    route->name) : NULL;
		verdict = pool != NULL ? pool_verdict(s, pool, route, dest,
		    now, &hop_dsn, &hop_reason) :
		    hop_health_verdict(s->hops, dest, now, &hop_dsn,
		    &hop_reason);
		gate = route != NULL ? token_client_gate(s->tokens,
		    route->name, route->auth, &token, &token_reason,
		    &token_serial) : TOKEN_GATE_NONE;
		if (gate == TOKEN_GATE_WAIT) {
			/* ferry-token is getting one; its answer wakes us */
			blocked = 1;
			continue;
		}
		if (verdict != HOP_SUSPEND && !shaping_may_dispatch(s->shaping,
		    route, dest_busy(s, dest), s->cfg->per_destination, now,
		    &shaped_look, &when)) {
			/* over the route's quota: not deferred; far from its
			 * turn, held out of the due mail meanwhile */
			if (when > v[i].received_at + s->cfg->max_lifetime)
				when = v[i].received_at + s->cfg->max_lifetime;
			if (when > now && (store_begin(s->st) < 0 ||
			    store_rcpt_hold(s->st, v[i].rcpt_id, when) < 0))
				write_error(s, v[i].qid, "a quota hold");
			blocked = 1;
			continue;
		}
		if (verdict == HOP_SEND && !any_idle &&
		    gate != TOKEN_GATE_DEFER) {
			/* an agent more would take it (one per message) */
			if (v[i].msgid != last_short) {
				if (tally == NULL)
					tally = xcalloc(1, sizeof(*tally));
				tally_short(s, tally, dest, &v[i], now);
			}
			last_short = v[i].msgid;
			blocked = 1;
			continue;
		}
		/* the same message's due recipients for the same domain */
		nidx = 0;
		idx[nidx++] = i;
		for (k = i + 1; k < n; k++)
			if (!taken[k] && v[k].msgid == v[i].msgid &&
			    strcasecmp(domain_of(v[k].address), domain) == 0) {
				if (expire(s, &v[k], now)) {
					taken[k] = 1;
					continue;
				}
				idx[nidx++] = k;
				taken[k] = 1;
			}
		if (gate == TOKEN_GATE_DEFER) {
			token_defer(s, route->name, token_reason, v, idx, nidx,
			    now);
			suspended = 1;
			continue;
		}
		if (verdict == HOP_SUSPEND && !bulk_finished(down, bulk_done,
		    ndown, dest)) {
			/* the bulk takes it in the next turn (the hop went
			 * down, or its probe went, in this one) */
			suspended = 1;
			continue;
		}
		if (verdict == HOP_SUSPEND) {
			/* one the bulk left: its deferral owes a notice */
			suspend(s, dest, hop_dsn, hop_reason, v, idx, nidx,
			    now);
			suspended = 1;
			if (now_ms() >= turn_end) {
				/* the rest in the next turn, which reads
				 * about as many as this one handled */
				cut = i + 1;
				break;
			}
			continue;
		}
		if (dest_busy(s, dest) >= s->cfg->per_destination ||
		    (a = idle_agent(s, dest)) == NULL) {
			if (v[i].msgid != last_short) {
				if (tally == NULL)
					tally = xcalloc(1, sizeof(*tally));
				tally_short(s, tally, dest, &v[i], now);
			}
			last_short = v[i].msgid;
			for (k = 0; k < nidx; k++)
				taken[idx[k]] = 0;
			taken[i] = 1;
			blocked = 1;
			continue;
		}
		if (shaping_recipients(s->shaping, route) > 0 &&
		    nidx > shaping_recipients(s->shaping, route)) {
			/* the rest in further transactions, one at a time */
			for (k = shaping_recipients(s->shaping, route);
			    k < nidx; k++)
				taken[idx[k]] = 0;
			nidx = shaping_recipients(s->shaping, route);
		}
		if (pool != NULL) {
			char key[KEY_POOL_MAX];
			struct pool_agent *same;

			npicked = host_pool_choose(pool, now, order,
			    HOST_POOL_MAX, &pool_probe);
			for (k = 0; k < npicked; k++)
				picked[k] = route->hosts[order[k]];
			/* an agent still connected to the chosen host */
			if (npicked > 0) {
				snprintf(key, sizeof(key), "%s:%s",
				    route->name, picked[0]);
				if ((same = idle_agent(s, key)) != NULL)
					a = same;
			}
		}
		dispatch(s, a, dest, route, domain, v, idx, nidx,
		    npicked > 0 ? picked : NULL, npicked);
		shaping_dispatched(s->shaping, route, now);
		if (pool_probe) {
			ferry_strlcpy(a->job->probe_host, picked[0],
			    sizeof(a->job->probe_host));
			log_info("%s: probing host %s of route %s after its "
			    "cooldown", v[i].qid, picked[0], route->name);
		}
		if (verdict == HOP_PROBE) {
			hop_health_probe_sent(s->hops, dest, now);
			a->job->probe = 1;
			log_info("%s: probing next hop %s, down: %s", v[i].qid,
			    dest, hop_reason);
		}
	}
	if (suspended)
		s->wake = 1;   /* the next batch once this one is committed */
	if (cut > 0) {
		s->due_limit = cut + cut / 4;
		if (s->due_limit < DUE_MIN)
			s->due_limit = DUE_MIN;
	} else if (s->due_limit < DUE_BATCH) {
		s->due_limit *= 2;
		if (s->due_limit > DUE_BATCH)
			s->due_limit = DUE_BATCH;
	}
	free(taken);
	free(idx);
	free(down);
	free(bulk_done);
	store_due_free(v, n);
	for (i = 0; i < s->pool.nagents; i++)
		if (s->pool.agents[i]->busy)
			busy++;
	s->agents_wanted = busy + (tally != NULL ? tally->wanted : 0) +
	    s->probes_wanted;
	look_again = tally != NULL ? tally->look_again_ms : 0;
	free(tally);
	shaping_turn_end(s->shaping, now, &shaped_look);
	shaping_figures(s->shaping, now, &s->metrics.shaping);
	if (s->agents_wanted > s->cfg->delivery_agents)
		s->agents_wanted = s->cfg->delivery_agents;
	scheduler_retire_idle(s);
	/* Next look: when something is due, or at once when an agent frees
	 * up (s->wake); never sleep longer than MAX_WAIT_MS. */
	s->next_run_ms = now_ms() + MAX_WAIT_MS;
	if (!blocked && store_next_due(s->st, &when) == 0 && when > 0) {
		double ms = (when - now_wall()) * 1000.0;

		if (ms < MAX_WAIT_MS)
			s->next_run_ms = now_ms() + (ms > 0 ? (int64_t)ms : 0)
			    + 1;
	}
	if (look_again > 0 && look_again < s->next_run_ms)
		s->next_run_ms = look_again;
	{
		double at = next_probe_at(s, now_wall());

		if (at > 0) {
			int64_t ms = now_ms() + (int64_t)((at - now_wall()) *
			    1000.0) + 1;

			if (ms < s->next_run_ms)
				s->next_run_ms = ms;
		}
	}
	if (shaped_look > 0 && shaped_look < s->next_run_ms)
		s->next_run_ms = shaped_look;
}

void
scheduler_retire_idle(struct scheduler *s)
{
	int64_t left;

	s->next_retire_ms = 0;
	if (s->cfg->agent_idle <= 0)
		return;
	left = agent_pool_retire_idle(&s->pool,
	    (int64_t)s->cfg->agent_idle * 1000);
	if (left >= 0)
		s->next_retire_ms = now_ms() + left + 1;
}

int
scheduler_agents_wanted(const struct scheduler *s)
{
	return s->agents_wanted;
}

int
scheduler_timeout_ms(struct scheduler *s)
{
	int64_t d;

	if (s->wake)
		return 0;
	d = s->next_run_ms - now_ms();
	if (s->next_retire_ms > 0 && s->next_retire_ms - now_ms() < d)
		d = s->next_retire_ms - now_ms();
	if (token_client_timeout_ms(s->tokens) >= 0 &&
	    token_client_timeout_ms(s->tokens) < d)
		d = token_client_timeout_ms(s->tokens);
	if (d < 0)
		return 0;
	return d > MAX_WAIT_MS ? MAX_WAIT_MS : (int)d;
}

void
scheduler_set_config(struct scheduler *s, const struct ferry_config *cfg)
{
	s->cfg = cfg;
	shaping_set_config(s->shaping, cfg, now_wall());
	upstream_pools_reload(s->pools, cfg);
}

const struct upstream_pools *
scheduler_pools(const struct scheduler *s)
{
	return s->pools;
}

void
scheduler_set_route_learn(struct scheduler *s, struct route_learn *rl)
{
	s->learn = rl;
}

void
scheduler_wake(struct scheduler *s)
{
	s->wake = 1;
}

void
scheduler_flush_hops(struct scheduler *s)
{
	size_t n = hop_health_down_count(s->hops);

	hop_health_free(s->hops);
	s->hops = hop_health_new();
	upstream_pools_reset(s->pools, s->cfg);
	s->due_limit = DUE_BATCH;
	if (n > 0)
		log_info("queue: %zu next hop(s) marked down are tried again "
		    "(flushed by the operator)", n);
	s->wake = 1;
}

void
scheduler_counts(struct scheduler *s, int *agents, int *busy)
{
	size_t i;

	*agents = (int)s->pool.nagents;
	*busy = 0;
	for (i = 0; i < s->pool.nagents; i++)
		if (s->pool.agents[i]->busy)
			(*busy)++;
}

static void
free_unsaved(struct scheduler *s)
{
	while (s->unsaved != NULL) {
		struct sched_job *j = s->unsaved;

		s->unsaved = j->next;
		sched_job_free(j);
	}
}

void
scheduler_committed(struct scheduler *s, int ok)
{
	struct sched_job *j;
	size_t i, k;

	s->write_failed = 0;
	if (ok) {
		free_unsaved(s);
	} else {
		for (j = s->unsaved; j != NULL; j = j->next) {
			j->finish_written = 0;
			for (k = 0; k < j->nrcpts; k++)
				j->rcpts[k].written = 0;
		}
	}
	for (i = 0; i < s->pool.nagents; i++) {
		j = s->pool.agents[i]->job;
		if (j == NULL)
			continue;
		for (k = 0; k < j->nrcpts; k++) {
			if (ok && j->rcpts[k].written)
				j->rcpts[k].committed = 1;
			j->rcpts[k].written = 0;
		}
	}
}

size_t
scheduler_replay(struct scheduler *s)
{
	struct sched_job *j;
	size_t i, k, n = 0;

	for (j = s->unsaved; j != NULL; j = j->next)
		if (!j->finish_written) {
			write_job(s, j);
			n++;
		}
	for (i = 0; i < s->pool.nagents; i++) {
		j = s->pool.agents[i]->job;
		if (j == NULL)
			continue;
		for (k = 0; k < j->nrcpts; k++)
			if (j->rcpts[k].answered && !j->rcpts[k].written &&
			    !j->rcpts[k].committed) {
				write_rcpt(s, j, &j->rcpts[k]);
				n++;
			}
	}
	return n;
}

size_t
scheduler_unsaved(struct scheduler *s)
{
	struct sched_job *j;
	size_t i, k, n = 0;

	for (j = s->unsaved; j != NULL; j = j->next)
		for (k = 0; k < j->nrcpts; k++)
			if (j->rcpts[k].answered && !j->rcpts[k].committed)
				n++;
	for (i = 0; i < s->pool.nagents; i++) {
		j = s->pool.agents[i]->job;
		if (j == NULL)
			continue;
		for (k = 0; k < j->nrcpts; k++)
			if (j->rcpts[k].answered && !j->rcpts[k].committed)
				n++;
	}
	return n;
}

int
scheduler_write_failed(const struct scheduler *s)
{
	return s->write_failed;
}

void
scheduler_free(struct scheduler *s)
{
	size_t i;

	for (i = 0; i < s->pool.nagents; i++)
		job_clear(s->pool.agents[i]);
	agent_pool_close(&s->pool);
	free_unsaved(s);
	hop_health_free(s->hops);
	token_client_free(s->tokens);
	upstream_pools_free(s->pools);
	shaping_free(s->shaping);
	free(s);
}
