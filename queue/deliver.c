/*
 * deliver.c - the delivery agent process (ferry-deliver): takes one job
 * at a time from the queue runner, has it carried to the next hop, and
 * reports one result per recipient.  This file is the agent's role:
 * privileges, the link to the runner, the job loop.  The SMTP client
 * session is smtp_client.c, one mail transaction smtp_client_tx.c, the
 * choice of next hop nexthop.c, and what a failure means smtp_trouble.c.
 *
 * Security stance: started by the master as root, the agent reads its
 * configuration and the AUTH credentials file, sets up the resolver,
 * makes the TLS contexts of CA files that only root may read (the
 * system store, readable by anyone, is parsed at the first STARTTLS),
 * then drops to the delivery user for good (no new privileges, no
 * forking, no writing files).  It never sees the
 * queue's files: envelope and body arrive over the runner's socket.
 * Everything a remote server sends is untrusted: replies go through the
 * strict parser in smtp_client_reply.c, every socket operation has a
 * deadline, and a server that misbehaves only loses its recipients a
 * 4xx result.  The runner's socket is a channel (channel.h) on which
 * only JOB, JOB_DATA and JOB_END may come; any other frame, or one that
 * does not decode, is fatal.  Credentials
 * are never logged.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "child.h"
#include "config.h"
#include "credentials.h"
#include "deliver.h"
#include "deliver_agent.h"
#include "deliver_proto.h"
#include "dns_mx.h"
#include "host_pool.h"
#include "netaddr.h"
#include "ipc.h"
#include "log.h"
#include "nexthop.h"
#include "privsep.h"
#include "route_shaper.h"
#include "procfd.h"
#include "route_caps.h"
#include "smtp_client.h"
#include "tls_client.h"
#include "util.h"

#define RUNNER_CONNECT_WAIT 30000 /* ms */

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}


/* --- the runner's socket ------------------------------------------------ */

/* What the runner may send an agent. */
static const struct channel_rule runner_may_send[] = {
	{ IMSG_JOB, 0 },
	{ IMSG_JOB_DATA, 0 },
	{ IMSG_JOB_END, 0 },
	{ IMSG_PROBE, 0 },
	{ 0, 0 }
};

static void
runner_connect(struct runner_link *r, const char *path)
{
	struct sockaddr_un sun;
	int64_t until = now_ms() + RUNNER_CONNECT_WAIT;
	int warned = 0, fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		log_fatal("agent socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			log_fatal("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		if (now_ms() > until || stop)
			log_fatal("cannot connect to the queue runner at %s: "
			    "%s", path, strerror(errno));
		if (!warned++)
			log_debug("queue runner not up yet (%s): %s; waiting",
			    path, strerror(errno));
		close(fd);
		usleep(250 * 1000);
	}
	/* a frame the runner may not send is fatal: it is our queue */
	channel_init(&r->ch, fd, "queue runner", runner_may_send,
	    IPC_MAX_PAYLOAD, CHANNEL_FATAL);
}

/* A frame for the runner, begun in the write buffer; runner_send ends
 * and writes it (blocking: the runner always reads us). */
static struct ipc_out *
runner_begin(struct deliver_agent *ag, int type)
{
	return channel_begin(&ag->runner.ch, type);
}

static void
runner_flush(struct deliver_agent *ag)
{
	ag->results_held = 0;
	if (channel_flush_wait(&ag->runner.ch, INT64_MAX) < 0) {
		log_error("%s; exiting", ag->runner.ch.error);
		exit(0);
	}
}

static void
runner_send(struct deliver_agent *ag)
{
	(void)channel_end(&ag->runner.ch);
	runner_flush(ag);
}

void
job_results_send(struct job_ctx *x)
{
	if (x->ag->results_held)
		runner_flush(x->ag);
}

/* The next frame from the runner into *in.  1: a frame; 0: timeout_ms
 * passed first (-1 waits for ever); -1: the runner closed. */
static int
runner_next(struct runner_link *r, struct ipc_in *in, int timeout_ms,
    int extra_fd, int *extra_ready, int interruptible)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

	for (;;) {
		struct pollfd pfd[2];
		int rc, wait;

		/* a frame the table refuses ends the process (fatal) */
		if (channel_next(&r->ch, in) == 1)
			return 1;
		wait = -1;
		if (timeout_ms >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return 0;
			wait = (int)left;
		}
		if (interruptible) {
			/* bounded: SIGTERM may land just before poll() */
			if (stop)
				return 0;
			if (wait < 0 || wait > 1000)
				wait = 1000;
		}
		pfd[0].fd = r->ch.fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = extra_fd;
		pfd[1].events = POLLIN;
		rc = poll(pfd, extra_fd >= 0 ? 2 : 1, wait);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		if (rc == 0)
			continue;
		if (extra_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)) && extra_ready != NULL) {
			*extra_ready = 1;
			extra_fd = -1;
			if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
		}
		if (channel_fill(&r->ch) < 0)
			return -1;
	}
}

/* --- job results -------------------------------------------------------- */

void
job_result(struct job_ctx *x, size_t i, uint32_t status, const char *dsn,
    const char *reply, const char *relay, const char *tls)
{
	struct deliver_result r;

	if (x->state[i] == R_DONE)
		log_panic("recipient %zu of job %llu answered twice", i,
		    (unsigned long long)x->job->job_id);
	memset(&r, 0, sizeof(r));
	r.rcpt_id = x->job->rcpts[i].id;
	r.status = status;
	r.dsn = (char *)dsn;
	r.reply = (char *)reply;
	r.relay = (char *)(relay != NULL && relay[0] ? relay : "none");
	r.tls = (char *)(tls != NULL ? tls : "");
	deliver_result_encode(&r, runner_begin(x->ag, IMSG_RCPT_RESULT));
	(void)channel_end(&x->ag->runner.ch);
	x->ag->results_held = 1;
	x->state[i] = R_DONE;
	x->npending--;
	if (status == DS_DEFERRED && x->throttle[0] == '\0' &&
	    route_shaper_classify(route_shaper_reply_code(reply), dsn,
	    reply) == SHAPER_REPLY_THROTTLE)
		ferry_strlcpy(x->throttle, reply, sizeof(x->throttle));
	log_debug("%s: <%s>: %s %s (%s)", x->job->qid, x->job->rcpts[i].addr,
	    status == DS_DELIVERED ? "sent" : status == DS_DEFERRED ?
	    "deferred" : "bounced", dsn, reply);
}

/* Every recipient still without a result (and, when accepted too, those
 * a server accepted) gets the same one. */
void
job_result_all(struct job_ctx *x, int with_accepted, uint32_t status,
    const char *dsn, const char *reply, const char *relay, const char *tls)
{
	size_t i;

	for (i = 0; i < x->job->nrcpts; i++)
		if (x->state[i] == R_PENDING ||
		    (with_accepted && x->state[i] == R_ACCEPTED))
			job_result(x, i, status, dsn, reply, relay, tls);
}

/* --- the message body --------------------------------------------------- */

/* The next JOB_DATA chunk, or NULL at JOB_END. */
int
job_chunk_ready(const struct job_ctx *x)
{
	return x->data_done || channel_has_frame(&x->ag->runner.ch);
}

const uint8_t *
job_next_chunk(struct job_ctx *x, size_t *len)
{
	struct ipc_in in;
	const uint8_t *p;
	uint32_t seq;

	if (x->data_done)
		return NULL;
	job_results_send(x);
	if (runner_next(&x->ag->runner, &in, -1, -1, NULL, 0) <= 0) {
		log_error("queue runner closed the connection during job "
		    "%s; exiting", x->job->qid);
		exit(0);
	}
	if (in.type == IMSG_JOB_END) {
		if (ipc_end(&in) < 0)
			log_fatal("queue runner sent a malformed JOB_END");
		x->data_done = 1;
		return NULL;
	}
	if (in.type != IMSG_JOB_DATA || ipc_get_u32(&in, &seq) < 0 ||
	    ipc_get_data(&in, &p, len) < 0 || ipc_end(&in) < 0 ||
	    (x->have_seq && seq != x->next_seq))
		log_fatal("queue runner sent %s where JOB_DATA or JOB_END "
		    "belongs", ipc_type_name(in.type));
	x->have_seq = 1;
	x->next_seq = seq + 1;
	return p;
}

static void
drain_data(struct job_ctx *x)
{
	size_t len;

	while (job_next_chunk(x, &len) != NULL)
		;
}

/* A string we may put in a command: no control characters (CR, LF...). */
static int
clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* --- one job ------------------------------------------------------------ */

/* JOB_DONE's host reports: what the job found at each host it tried
 * (pointing into x->tried; the caller frees done->hosts). */
static void
done_hosts(struct deliver_done *done, struct job_ctx *x)
{
	size_t i;

	done->nhosts = x->ntried;
	done->hosts = x->ntried ? xcalloc(x->ntried, sizeof(*done->hosts)) :
	    NULL;
	for (i = 0; i < x->ntried; i++) {
		done->hosts[i].host = x->tried[i].host;
		done->hosts[i].outcome = x->tried[i].outcome;
		done->hosts[i].error = x->tried[i].error;
	}
}

/* The route's messages_per_connection were sent on c: the next job
 * opens a new connection. */
static int
connection_used_up(const struct ferry_config *cfg,
    const struct deliver_job *job, const struct smtp_conn *c)
{
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (strcmp(cfg->routes[i].name, job->route) == 0)
			return cfg->routes[i].messages_per_connection > 0 &&
			    c->transactions >=
			    cfg->routes[i].messages_per_connection;
	return 0;
}

/* What the upstream offered, as the runner keeps it per route. */
static void
ehlo_to_route_caps(const struct ehlo_caps *e, struct deliver_done *d)
{
	d->caps_seen = 1;
	d->caps_flags = (e->size ? RCAP_SIZE : 0) |
	    (e->eightbitmime ? RCAP_8BITMIME : 0) |
	    (e->smtputf8 ? RCAP_SMTPUTF8 : 0) | (e->dsn ? RCAP_DSN : 0) |
	    (e->requiretls ? RCAP_REQUIRETLS : 0);
	d->caps_size = e->size ? e->size_max : 0;
}

static void
run_job(struct deliver_agent *ag, struct deliver_job *job, int last_job)
{
	struct job_ctx x;
	struct smtp_conn *c = &ag->conn;
	struct deliver_done done;
	char key[KEY_MAX];
	size_t i;

	memset(&x, 0, sizeof(x));
	x.ag = ag;
	x.job = job;
	x.state = xcalloc(job->nrcpts, 1);
	x.tried = ag->tried;
	x.npending = job->nrcpts;
	x.last.status = DS_DEFERRED;
	strcpy(x.last.dsn, "4.4.1");
	strcpy(x.last.text, "no next hop could be reached");
	strcpy(x.last.relay, "none");
	deliver_hop_key(job, key, sizeof(key));
	log_debug("%s: job %llu, %zu recipients, next hop %s", job->qid,
	    (unsigned long long)job->job_id, job->nrcpts, key);

	/* what we cannot put in a command fails before any connection */
	if (!clean(job->sender) || !clean(job->envid) || !clean(job->helo))
		job_result_all(&x, 0, DS_FAILED, "5.1.7", "invalid envelope "
		    "(control characters in sender or parameters)", "none",
		    "");
	for (i = 0; i < job->nrcpts; i++)
		if (x.state[i] == R_PENDING && (!clean(job->rcpts[i].addr) ||
		    !clean(job->rcpts[i].orcpt)))
			job_result(&x, i, DS_FAILED, "5.1.3", "invalid "
			    "recipient address (control characters)", "none",
			    "");
	/* the route's account sends: its address in MAIL FROM (never for
	 * the null sender of bounces) */
	if (x.npending > 0 && job->rewrite_sender[0] != '\0' &&
	    job->sender[0] != '\0' &&
	    strcmp(job->sender, job->rewrite_sender) != 0) {
		log_info("%s: sender rewritten: <%s> -> <%s> (route %s)",
		    job->qid, job->sender, job->rewrite_sender, job->route);
		free(job->sender);
		job->sender = xstrdup(job->rewrite_sender);
	}
	if (x.npending > 0 && job->auth &&
	    credentials_find(&ag->creds, job->route) == NULL) {
		char text[1200];

		snprintf(text, sizeof(text), "AUTH required for route %s but "
		    "no credentials are configured for it", job->route);
		job_result_all(&x, 0, DS_DEFERRED, "4.7.0", text, "none", "");
	}

	nexthop_reuse(&x, key);
	if (x.npending > 0) {
		if (job->nhosts > 0)
			nexthop_hosts(&x);
		else
			nexthop_mx(&x);
	}
	/* whatever is left failed with the last next hop tried */
	job_result_all(&x, 1, DS_DEFERRED, x.last.dsn, x.last.text,
	    x.last.relay, x.last.tls);
	drain_data(&x);

	if (c->fd >= 0 && (ag->cfg->connection_idle == 0 || stop ||
	    last_job || connection_used_up(ag->cfg, job, c))) {
		job_results_send(&x);
		client_quit(ag->cfg, c);
	}
	memset(&done, 0, sizeof(done));
	done.job_id = job->job_id;
	done.hop = c->fd >= 0 ? c->key : (char *)"";
	done.leaving = stop || last_job;
	done_hosts(&done, &x);
	done.throttle = x.throttle;
	if (x.ehlo_seen)
		ehlo_to_route_caps(&x.ehlo, &done);
	deliver_done_encode(&done, runner_begin(ag, IMSG_JOB_DONE));
	runner_send(ag);
	c->idle_since = now_ms();
	free(done.hosts);
	free(x.state);
	free(x.body);
}

/* An active probe of one pool host: connect, greeting, EHLO, QUIT, on a
 * connection of its own (the one kept for jobs stays as it is).  No
 * TLS and no AUTH: it asks only whether the host answers. */
static void
run_probe(struct deliver_agent *ag, const struct deliver_probe *p,
    int last_job)
{
	struct deliver_job job;
	struct job_ctx x;
	struct smtp_conn pc;
	struct deliver_done done;
	struct addrinfo hints, *res = NULL, *ai;
	struct hostport hp;
	char portstr[8], err[128], *hosts[1];
	int rc;

	memset(&job, 0, sizeof(job));
	job.job_id = p->job_id;
	job.qid = (char *)"probe";
	job.helo = p->helo;
	job.route = p->route;
	hosts[0] = p->host;
	job.hosts = hosts;
	job.nhosts = 1;
	job.tls = TLS_NONE;
	memset(&x, 0, sizeof(x));
	x.ag = ag;
	x.job = &job;
	x.tried = ag->tried;
	memset(&pc, 0, sizeof(pc));
	pc.fd = -1;
	pc.rbuf = xmalloc(RBUF_CAP);
	strcpy(x.last.dsn, "4.4.1");
	snprintf(x.last.text, sizeof(x.last.text), "%s could not be reached",
	    p->host);
	if (netaddr_parse_hostport(p->host, 25, 0, &hp, err,
	    sizeof(err)) < 0) {
		snprintf(x.last.text, sizeof(x.last.text), "next hop \"%s\" "
		    "is not host:port or [address]:port", p->host);
		nexthop_note_host(&x, p->host, HOST_CONNECT_FAILED);
		goto out;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (hp.bracketed ? AI_NUMERICHOST : 0);
	snprintf(portstr, sizeof(portstr), "%d", hp.port);
	if ((rc = getaddrinfo(hp.host, portstr, &hints, &res)) != 0) {
		snprintf(x.last.text, sizeof(x.last.text), "Host or domain "
		    "name not found. Name service error for name=%s: %s",
		    hp.host, gai_strerror(rc));
		nexthop_note_host(&x, p->host, HOST_CONNECT_FAILED);
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		x.saw_421 = 0;
		if (client_open(&x, &pc, hp.host, ai->ai_addr,
		    ai->ai_addrlen) == 0) {
			client_quit(ag->cfg, &pc);
			nexthop_note_host(&x, p->host, HOST_OK);
			break;
		}
		if (ai->ai_next == NULL || x.saw_421)
			nexthop_note_host(&x, p->host, x.saw_421 ? HOST_421 :
			    HOST_CONNECT_FAILED);
		if (x.saw_421)
			break;
	}
	freeaddrinfo(res);
	if (x.ntried == 0)
		nexthop_note_host(&x, p->host, HOST_CONNECT_FAILED);
out:
	log_debug("probe of %s (route %s): %s", p->host, p->route,
	    x.tried[0].outcome == HOST_OK ? "answered" : x.tried[0].error);
	client_close(&pc);
	free(pc.rbuf);
	memset(&done, 0, sizeof(done));
	done.job_id = p->job_id;
	done.hop = ag->conn.fd >= 0 ? ag->conn.key : (char *)"";
	done.leaving = stop || last_job;
	done_hosts(&done, &x);
	deliver_done_encode(&done, runner_begin(ag, IMSG_JOB_DONE));
	runner_send(ag);
	free(done.hosts);
}

/* --- the agent ---------------------------------------------------------- */

/* Whether a recipient can go by MX: not when a route takes every domain
 * for every sender ("*" without senders, as the smarthost does), since
 * routes are chosen first (config_route_select). */
static int
mx_reachable(const struct ferry_config *cfg)
{
	size_t i, k;

	for (i = 0; i < cfg->nroutes; i++)
		for (k = 0; cfg->routes[i].nsenders == 0 &&
		    k < cfg->routes[i].ndomains; k++)
			if (strcmp(cfg->routes[i].domains[k], "*") == 0)
				return 0;
	return 1;
}

/* Whether the context for ca_file ("" = the system's store) is made now,
 * before the privilege drop: a route's own CA file may be readable by
 * root alone, so its context always is.  The system's store, when anyone
 * may read it, waits for the first STARTTLS that needs it (the cached
 * context is then made as it would have been now): parsing it cost every
 * agent start some 50 ms of CPU, spent for nothing by an agent that
 * never meets a server offering STARTTLS.  Verification is the same
 * either way: the same store, the same checks (tls_client.c). */
static int
tls_ctx_now(const char *ca_file)
{
	return (ca_file != NULL && ca_file[0] != '\0') ||
	    !tls_client_system_store_public();
}

/* The TLS contexts of the next hops this agent may use that must be made
 * before the privilege drop (tls_ctx_now).  Only those: each context
 * holds the parsed CA store, about 1.4 MiB of heap in every agent (the
 * MX policy's, when a smarthost takes all mail, was loaded for
 * nothing). */
static void
preload_tls(const struct ferry_config *cfg)
{
	char err[512];
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (cfg->routes[i].tls != TLS_NONE &&
		    tls_ctx_now(cfg->routes[i].ca_file) &&
		    tls_client_ctx(cfg->routes[i].ca_file,
		    cfg->routes[i].tls_min_version, err, sizeof(err)) == NULL)
			log_warn("route %s: %s", cfg->routes[i].name, err);
	if (cfg->mx_route.tls != TLS_NONE && mx_reachable(cfg) &&
	    tls_ctx_now(cfg->mx_route.ca_file) &&
	    tls_client_ctx(cfg->mx_route.ca_file,
	    cfg->mx_route.tls_min_version, err, sizeof(err)) == NULL)
		log_warn("mx: %s", err);
}

int
deliver(const struct child_args *a)
{
	struct deliver_agent ag;
	struct privsep_target target;
	char err[1024], path[4200];
	pid_t master = getppid();
	int last_job = 0;   /* the runner marks an agent's last job */
	int leaving = 0;    /* AGENT_LEAVING was sent */

	child_signals(on_term, on_term);
	memset(&ag, 0, sizeof(ag));
	ag.conn.fd = -1;
	ag.runner.ch.fd = -1;
	ag.cfg = child_load_config(a, "ferry-deliver");
	if (credentials_load(ag.cfg->credentials_file, &ag.creds, err,
	    sizeof(err)) < 0) {
		log_error("credentials file: %s", err);
		exit(EXIT_CONFIG);
	}
	/* OAuth2 refresh tokens and client secrets stay with ferry-token:
	 * an agent gets short-lived access tokens in its jobs */
	credentials_drop_secrets(&ag.creds);
	if (dns_resolver_setup(ag.cfg->resolver, err, sizeof(err)) < 0) {
		log_error("%s", err);
		exit(EXIT_CONFIG);
	}
	preload_tls(ag.cfg);

	memset(&target, 0, sizeof(target));
	target.user = ag.cfg->deliver_user;
	target.chroot_dir = NULL;
	target.no_fork = 1;
	target.no_files = 1;
	privsep_drop(&target);
	child_follow_master(master);

	ag.conn.rbuf = xmalloc(RBUF_CAP);
	/* what each job found at its hosts: made once, not per job (it is
	 * 24 KiB that calloc cleared for every message) */
	ag.tried = xcalloc(JOB_MAX_HOSTS, sizeof(*ag.tried));
	snprintf(path, sizeof(path), "%s/%s", ag.cfg->spool_dir,
	    AGENT_SOCKET_NAME);
	runner_connect(&ag.runner, path);
	ipc_add_u32(runner_begin(&ag, IMSG_AGENT_HELLO), (uint32_t)getpid());
	runner_send(&ag);
	log_debug("delivery agent ready (generation %u)", a->generation);

	while (!last_job) {
		struct deliver_job job;
		struct ipc_in in;
		int rc, idle_ms = -1, server_said = 0;

		if (stop && !leaving) {
			/* a job may cross this notice: it is still run, and
			 * the runner closes once it has nothing for us */
			(void)runner_begin(&ag, IMSG_AGENT_LEAVING);
			runner_send(&ag);
			leaving = 1;
		}

		if (ag.conn.fd >= 0) {
			int64_t left = ag.conn.idle_since +
			    (int64_t)ag.cfg->connection_idle * 1000 - now_ms();

			idle_ms = left > 0 ? (int)left : 0;
		}
		rc = runner_next(&ag.runner, &in, idle_ms, ag.conn.fd,
		    &server_said, !leaving);
		if (server_said && ag.conn.fd >= 0) {
			/* the server spoke (or closed) while idle: 421 */
			log_debug("%s: closed by the server while idle",
			    ag.conn.relay);
			client_close(&ag.conn);
		}
		if (rc == 0) {
			if (ag.conn.fd >= 0 && (stop || now_ms() >=
			    ag.conn.idle_since +
			    (int64_t)ag.cfg->connection_idle * 1000))
				client_quit(ag.cfg, &ag.conn);
			continue;
		}
		if (rc < 0) {
			log_debug("queue runner closed the connection");
			break;
		}
		if (in.type == IMSG_PROBE) {
			struct deliver_probe pr;

			if (deliver_probe_decode(&in, &pr) < 0)
				log_fatal("queue runner sent a malformed "
				    "PROBE");
			last_job = leaving;
			run_probe(&ag, &pr, last_job);
			deliver_probe_free(&pr);
			continue;
		}
		if (in.type != IMSG_JOB || deliver_job_decode(&in, &job) < 0)
			log_fatal("queue runner sent a malformed %s where a "
			    "JOB belongs", ipc_type_name(in.type));
		last_job = job.last_job != 0 || leaving;
		run_job(&ag, &job, last_job);
		deliver_job_free(&job);
	}
	client_quit(ag.cfg, &ag.conn);
	credentials_free(&ag.creds);
	tls_client_ctx_free_all();
	free(ag.conn.rbuf);
	free(ag.tried);
	channel_free(&ag.runner.ch);
	config_free(ag.cfg);
	return 0;
}
