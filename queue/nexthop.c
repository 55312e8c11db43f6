/*
 * nexthop.c - where a delivery agent takes a job.  First the connection
 * kept from the last job, when it serves the same next hop (the key is
 * deliver_hop_key: the route and the job's first host); then either the
 * route's hosts in the job's order (the runner's choice for a pool: its
 * chosen host first), noting what each host did for the runner's
 * circuit breakers, or the recipient domain's MX hosts by preference
 * (RFC 5321 section 5: the implicit MX, nullMX, never ourselves or an MX
 * not better than us).  Each host's addresses are tried in turn, at most
 * MAX_SESSIONS connections per job, until every recipient has a result.
 *
 * Security stance: host names come from the configuration or from DNS;
 * DNS answers are parsed in dns_mx.c and only name the hosts to try.
 */
#include "autoconfig.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config.h"
#include "deliver_agent.h"
#include "deliver_proto.h"
#include "dns_mx.h"
#include "host_pool.h"
#include "log.h"
#include "netaddr.h"
#include "nexthop.h"
#include "smtp_client.h"
#include "smtp_client_reply.h"
#include "smtp_client_tx.h"
#include "smtp_trouble.h"
#include "util.h"

#define MAX_SESSIONS 10           /* connection attempts per job */
#define MAX_ADDRS 8               /* addresses per host name */

void
nexthop_reuse(struct job_ctx *x, const char *key)
{
	struct deliver_agent *ag = x->ag;
	struct smtp_conn *c = &ag->conn;
	int rc;

	job_results_send(x);
	if (c->fd >= 0 && strcmp(c->key, key) != 0) {
		if (x->npending > 0)
			log_debug("%s: not reusing the connection to %s",
			    x->job->qid, c->relay);
		client_quit(ag->cfg, c);
		return;
	}
	if (x->npending == 0 || c->fd < 0)
		return;
	/* a kept connection to the same next hop: its RSET goes out with
	 * MAIL, and a server that has left costs only a new session */
	x->saw_421 = 0;
	rc = client_transaction_kept(x, c);
	if (rc == CLIENT_TX_STALE) {
		log_debug("%s: not reusing the connection to %s: no 250 "
		    "to RSET", x->job->qid, c->relay);
		client_close(c);
		x->saw_421 = 0;
		return;
	}
	log_debug("%s: reused the connection to %s", x->job->qid, c->relay);
	if (rc < 0)
		client_close(c);
	if (x->job->nhosts > 0)
		nexthop_note_host(x, x->job->hosts[0],
		    x->saw_421 ? HOST_421 : HOST_OK);
}

void
nexthop_note_host(struct job_ctx *x, const char *host, uint32_t outcome)
{
	struct host_tried *t;

	if (x->tried == NULL || x->ntried >= JOB_MAX_HOSTS)
		return;
	t = &x->tried[x->ntried++];
	ferry_strlcpy(t->host, host, sizeof(t->host));
	t->outcome = outcome;
	if (outcome == HOST_OK)
		t->error[0] = '\0';
	else if (outcome == HOST_421 && strstr(x->last.text, "421") == NULL)
		snprintf(t->error, sizeof(t->error), "421 from %s", host);
	else
		ferry_strlcpy(t->error, x->last.text, sizeof(t->error));
}

/* What a host that never gave a session ready for MAIL did: TLS that
 * failed, AUTH refused (the host answered: not its health), or no
 * usable connection. */
static uint32_t
open_failure(const struct job_ctx *x)
{
	if (x->saw_421)
		return HOST_421;
	if (strcmp(x->last.dsn, "4.7.5") == 0 ||
	    strcmp(x->last.dsn, "4.7.4") == 0)
		return HOST_TLS_FAILED;
	if (strcmp(x->last.dsn, "4.7.0") == 0 ||
	    strcmp(x->last.dsn, "4.7.8") == 0)
		return HOST_OK;
	return HOST_CONNECT_FAILED;
}

/* Tries one host's addresses in turn.  Returns 1 when the job needs no
 * other host (every recipient has a result, or the connection is kept
 * with all done), 0 to go on.  *answered: a session got ready for MAIL
 * on one of them. */
static int
try_addrs(struct job_ctx *x, const char *host,
    const struct sockaddr_storage *addrs, size_t naddrs, int *sessions,
    int *answered)
{
	struct smtp_conn *c = &x->ag->conn;
	size_t i;

	/* SIGTERM means "finish the job": every next hop is still tried */
	for (i = 0; i < naddrs && *sessions < MAX_SESSIONS; i++) {
		socklen_t sl = addrs[i].ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

		(*sessions)++;
		if (client_open(x, c, host, (const struct sockaddr *)&addrs[i],
		    sl) < 0)
			continue;
		*answered = 1;
		deliver_hop_key(x->job, c->key, sizeof(c->key));
		if (client_transaction(x, c) < 0)
			client_close(c);
		if (x->npending == 0)
			return 1;
	}
	return 0;
}

void
nexthop_hosts(struct job_ctx *x)
{
	int sessions = 0;
	size_t h;

	job_results_send(x);   /* names may take a while */
	for (h = 0; h < x->job->nhosts && x->npending > 0; h++) {
		struct addrinfo hints, *res = NULL, *ai;
		struct sockaddr_storage addrs[MAX_ADDRS];
		struct hostport hp;
		char portstr[8], err[128];
		size_t n = 0;
		int rc;

		int answered = 0, done, before = sessions;

		x->saw_421 = 0;
		if (netaddr_parse_hostport(x->job->hosts[h], 25, 0, &hp, err,
		    sizeof(err)) < 0) {
			hop_fail(x, NULL, "4.3.5",
			    "next hop \"%s\" is not host, "
			    "host:port or [address]:port", x->job->hosts[h]);
			continue;
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV |
		    (hp.bracketed ? AI_NUMERICHOST : 0);
		snprintf(portstr, sizeof(portstr), "%d", hp.port);
		rc = getaddrinfo(hp.host, portstr, &hints, &res);
		if (rc != 0) {
			hop_fail(x, NULL, "4.4.3",
			    "Host or domain name not found. "
			    "Name service error for name=%s: %s", hp.host,
			    gai_strerror(rc));
			nexthop_note_host(x, x->job->hosts[h],
			    HOST_CONNECT_FAILED);
			continue;
		}
		for (ai = res; ai != NULL && n < MAX_ADDRS; ai = ai->ai_next)
			if ((ai->ai_family == AF_INET ||
			    ai->ai_family == AF_INET6) &&
			    ai->ai_addrlen <= sizeof(addrs[n])) {
				memset(&addrs[n], 0, sizeof(addrs[n]));
				memcpy(&addrs[n++], ai->ai_addr, ai->ai_addrlen);
			}
		freeaddrinfo(res);
		done = try_addrs(x, hp.host, addrs, n, &sessions, &answered);
		if (x->ag->conn.fd >= 0)
			/* kept for the next job that chooses this host */
			snprintf(x->ag->conn.key, sizeof(x->ag->conn.key),
			    "%s:%s", x->job->route, x->job->hosts[h]);
		if (sessions > before)
			nexthop_note_host(x, x->job->hosts[h], x->saw_421 ?
			    HOST_421 : answered ? HOST_OK : open_failure(x));
		if (done)
			return;
	}
}

/* The MX hosts to try for the job's domain, by preference: the domain
 * itself when it has no MX (*implicit).  NULL when there is none to try:
 * the recipients then have their results, or x->last says why. */
static struct dns_mx *
mx_hosts(struct job_ctx *x, size_t *nmx, int *implicit)
{
	const struct deliver_job *j = x->job;
	struct dns_mx *mx = NULL;
	size_t i, keep;
	enum dns_status st;
	char text[1200];

	st = dns_mx_lookup(j->domain, &mx, nmx);
	switch (st) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		/* RFC 5321 5.1: the domain itself is the implicit MX */
		mx = xcalloc(1, sizeof(*mx));
		ferry_strlcpy(mx[0].host, j->domain, sizeof(mx[0].host));
		*nmx = 1;
		*implicit = 1;
		break;
	case DNS_NXDOMAIN:
		snprintf(text, sizeof(text), "Host or domain name not found. "
		    "Name service error for name=%s type=MX: Host not found",
		    j->domain);
		job_result_all(x, 0, DS_FAILED, "5.1.2", text, "none", "");
		return NULL;
	case DNS_NULLMX:
		snprintf(text, sizeof(text), "Domain %s does not accept mail "
		    "(nullMX)", j->domain);
		job_result_all(x, 0, DS_FAILED, "5.1.10", text, "none", "");
		return NULL;
	default:
		hop_fail(x, NULL, "4.4.3",
		    "Host or domain name not found. Name "
		    "service error for name=%s type=MX: Host not found, try "
		    "again", j->domain);
		return NULL;
	}
	/* RFC 5321 5.1: drop ourselves and every MX not better than us */
	for (i = 0; i < *nmx; i++)
		if (strcasecmp(mx[i].host, j->helo) == 0)
			break;
	if (i < *nmx && !*implicit) {
		unsigned self = mx[i].pref;

		for (keep = 0; keep < *nmx && mx[keep].pref < self; keep++)
			;
		*nmx = keep;
		if (*nmx == 0) {
			snprintf(text, sizeof(text), "mail for %s loops back "
			    "to myself", j->domain);
			job_result_all(x, 0, DS_FAILED, "5.4.6", text, "none",
			    "");
			free(mx);
			return NULL;
		}
	}
	return mx;
}

void
nexthop_mx(struct job_ctx *x)
{
	const struct deliver_job *j = x->job;
	struct dns_mx *mx;
	size_t nmx = 0, i;
	enum dns_status st;
	int sessions = 0, implicit = 0;
	char text[1200];

	job_results_send(x);   /* names may take a while */
	mx = mx_hosts(x, &nmx, &implicit);
	if (mx == NULL)
		return;
	for (i = 0; i < nmx && x->npending > 0 && sessions < MAX_SESSIONS;
	    i++) {
		struct sockaddr_storage addrs[MAX_ADDRS];
		size_t n = 0;

		st = dns_addr_lookup(mx[i].host, (int)j->mx_port, addrs,
		    MAX_ADDRS, &n);
		if (st != DNS_OK) {
			if (implicit && st != DNS_TEMP) {
				snprintf(text, sizeof(text), "Host or domain "
				    "name not found. Name service error for "
				    "name=%s type=A: %s", mx[i].host,
				    dns_status_name(st));
				job_result_all(x, 0, DS_FAILED, "5.4.4", text,
				    "none", "");
				break;
			}
			hop_fail(x, NULL, "4.4.3",
			    "Host or domain name not found. "
			    "Name service error for name=%s type=A: %s",
			    mx[i].host, dns_status_name(st));
			continue;
		}
		{
			int answered = 0;

			if (try_addrs(x, mx[i].host, addrs, n, &sessions,
			    &answered))
				break;
		}
	}
	free(mx);
}
