/*
 * deliver_proto.c - encoding and strict decoding of what the queue runner
 * and a delivery agent say to each other (deliver_proto.h).
 *
 * Security stance: both peers are ferry processes, but a frame is checked
 * as if it came from an enemy: every string is length-limited and
 * NUL-free, counts and enumerations are range-checked, and a frame with
 * bytes left over is rejected.  A decoder that fails frees what it built,
 * so the caller has nothing to clean up.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "credentials.h"
#include "deliver_proto.h"
#include "host_pool.h"
#include "route_caps.h"
#include "smtp_parse.h"
#include "util.h"

_Static_assert(JOB_MAX_ALLOWED_FROM == CONFIG_MAX_ALLOWED_FROM,
    "a route's allowed_from fits in a job");
_Static_assert(JOB_MAX_HOSTS == CONFIG_MAX_POOL_HOSTS &&
    JOB_MAX_HOSTS == HOST_POOL_MAX, "a route's hosts fit in a job");
_Static_assert(DELIVER_HOST_OUTCOME_MAX == HOST_OUTCOME_MAX,
    "host outcomes as host_pool.h counts them");

#define DP_MAX_STR 1024        /* addresses, names, parameters */
#define DP_MAX_PATH 4096       /* ca_file */
#define DP_MAX_REPLY 2048      /* a remote reply or error text */

void
deliver_job_encode(const struct deliver_job *j, struct ipc_out *m)
{
	size_t i;

	ipc_add_u64(m, j->job_id);
	ipc_add_u32(m, j->last_job);
	ipc_add_str(m, j->qid);
	ipc_add_str(m, j->sender);
	ipc_add_i64(m, j->size);
	ipc_add_u32(m, j->body_type);
	ipc_add_u32(m, j->smtputf8);
	ipc_add_u32(m, j->dsn_ret);
	ipc_add_str(m, j->envid);
	ipc_add_str(m, j->helo);
	ipc_add_str(m, j->route);
	ipc_add_str(m, j->domain);
	ipc_add_u32(m, (uint32_t)j->nhosts);
	for (i = 0; i < j->nhosts; i++)
		ipc_add_str(m, j->hosts[i]);
	ipc_add_u32(m, j->mx_port);
	ipc_add_u32(m, j->tls);
	ipc_add_str(m, j->ca_file);
	ipc_add_u32(m, j->tls_min_version);
	ipc_add_u32(m, j->auth);
	ipc_add_u32(m, j->auth_plaintext);
	ipc_add_str(m, j->rewrite_sender);
	ipc_add_str(m, j->rewrite_from);
	ipc_add_u32(m, (uint32_t)j->nallowed_from);
	for (i = 0; i < j->nallowed_from; i++)
		ipc_add_str(m, j->allowed_from[i]);
	ipc_add_u32(m, (uint32_t)j->nrcpts);
	for (i = 0; i < j->nrcpts; i++) {
		ipc_add_u64(m, j->rcpts[i].id);
		ipc_add_str(m, j->rcpts[i].addr);
		ipc_add_u32(m, j->rcpts[i].notify);
		ipc_add_str(m, j->rcpts[i].orcpt);
	}
	ipc_add_str(m, j->oauth_token != NULL ? j->oauth_token : "");
}

void
deliver_job_free(struct deliver_job *j)
{
	size_t i;

	if (j == NULL)
		return;
	free(j->qid);
	free(j->sender);
	free(j->envid);
	free(j->helo);
	free(j->route);
	free(j->domain);
	if (j->hosts != NULL)
		for (i = 0; i < j->nhosts; i++)
			free(j->hosts[i]);
	free(j->hosts);
	free(j->ca_file);
	free(j->rewrite_sender);
	free(j->rewrite_from);
	if (j->allowed_from != NULL)
		for (i = 0; i < j->nallowed_from; i++)
			free(j->allowed_from[i]);
	free(j->allowed_from);
	if (j->rcpts != NULL)
		for (i = 0; i < j->nrcpts; i++) {
			free(j->rcpts[i].addr);
			free(j->rcpts[i].orcpt);
		}
	free(j->rcpts);
	if (j->oauth_token != NULL) {
		/* glibc's explicit_bzero is not optimised away (the fuzz
		 * harnesses link this file without OpenSSL) */
		explicit_bzero(j->oauth_token, strlen(j->oauth_token));
		free(j->oauth_token);
	}
	memset(j, 0, sizeof(*j));
}

/* A u32 that must be <= max. */
static int
get_u32_max(struct ipc_in *in, uint32_t *v, uint32_t max)
{
	return ipc_get_u32(in, v) < 0 || *v > max ? -1 : 0;
}

int
deliver_job_decode(struct ipc_in *in, struct deliver_job *j)
{
	uint32_t n, notify_all = NOTIFY_NEVER | NOTIFY_SUCCESS |
	    NOTIFY_FAILURE | NOTIFY_DELAY;
	size_t i;

	memset(j, 0, sizeof(*j));
	if (ipc_get_u64(in, &j->job_id) < 0 ||
	    get_u32_max(in, &j->last_job, 1) < 0 ||
	    ipc_get_str(in, &j->qid, DP_MAX_STR) < 0 ||
	    ipc_get_str(in, &j->sender, DP_MAX_STR) < 0 ||
	    ipc_get_i64(in, &j->size) < 0 || j->size < 0 ||
	    get_u32_max(in, &j->body_type, BODY_8BITMIME) < 0 ||
	    get_u32_max(in, &j->smtputf8, 1) < 0 ||
	    get_u32_max(in, &j->dsn_ret, RET_HDRS) < 0 ||
	    ipc_get_str(in, &j->envid, DP_MAX_STR) < 0 ||
	    ipc_get_str(in, &j->helo, DP_MAX_STR) < 0 ||
	    ipc_get_str(in, &j->route, DP_MAX_STR) < 0 ||
	    ipc_get_str(in, &j->domain, DP_MAX_STR) < 0 ||
	    get_u32_max(in, &n, JOB_MAX_HOSTS) < 0)
		goto fail;
	if (n > 0) {
		j->hosts = xcalloc(n, sizeof(*j->hosts));
		for (j->nhosts = 0; j->nhosts < n; j->nhosts++)
			if (ipc_get_str(in, &j->hosts[j->nhosts],
			    DP_MAX_STR) < 0 || j->hosts[j->nhosts][0] == '\0') {
				j->nhosts++;   /* free the empty string too */
				goto fail;
			}
	}
	if (get_u32_max(in, &j->mx_port, 65535) < 0 || j->mx_port == 0 ||
	    get_u32_max(in, &j->tls, TLS_VERIFY) < 0 ||
	    ipc_get_str(in, &j->ca_file, DP_MAX_PATH) < 0 ||
	    get_u32_max(in, &j->tls_min_version, 0x0304) < 0 ||
	    get_u32_max(in, &j->auth, 1) < 0 ||
	    get_u32_max(in, &j->auth_plaintext, 1) < 0 ||
	    ipc_get_str(in, &j->rewrite_sender, DP_MAX_STR) < 0 ||
	    ipc_get_str(in, &j->rewrite_from, DP_MAX_STR) < 0 ||
	    get_u32_max(in, &n, JOB_MAX_ALLOWED_FROM) < 0)
		goto fail;
	if (n > 0) {
		j->allowed_from = xcalloc(n, sizeof(*j->allowed_from));
		for (j->nallowed_from = 0; j->nallowed_from < n;
		    j->nallowed_from++)
			if (ipc_get_str(in, &j->allowed_from[j->nallowed_from],
			    DP_MAX_STR) < 0) {
				j->nallowed_from++;
				goto fail;
			}
	}
	if (get_u32_max(in, &n, JOB_MAX_RCPTS) < 0 || n == 0)
		goto fail;
	/* a rcpt takes at least 20 bytes: do not allocate for a lie */
	if (in->left / 20 < n)
		goto fail;
	j->rcpts = xcalloc(n, sizeof(*j->rcpts));
	j->nrcpts = n;
	for (i = 0; i < n; i++) {
		struct deliver_rcpt *r = &j->rcpts[i];

		if (ipc_get_u64(in, &r->id) < 0 ||
		    ipc_get_str(in, &r->addr, DP_MAX_STR) < 0 ||
		    r->addr[0] == '\0' ||
		    ipc_get_u32(in, &r->notify) < 0 ||
		    (r->notify & ~notify_all) != 0 ||
		    ipc_get_str(in, &r->orcpt, DP_MAX_STR) < 0)
			goto fail;
	}
	if (ipc_get_str(in, &j->oauth_token, CRED_TOKEN_MAX) < 0 ||
	    ipc_end(in) < 0)
		goto fail;
	return 0;
fail:
	deliver_job_free(j);
	return -1;
}

void
deliver_result_encode(const struct deliver_result *r, struct ipc_out *m)
{
	ipc_add_u64(m, r->rcpt_id);
	ipc_add_u32(m, r->status);
	ipc_add_str(m, r->dsn);
	ipc_add_str(m, r->reply);
	ipc_add_str(m, r->relay);
	ipc_add_str(m, r->tls);
}

void
deliver_result_free(struct deliver_result *r)
{
	if (r == NULL)
		return;
	free(r->dsn);
	free(r->reply);
	free(r->relay);
	free(r->tls);
	memset(r, 0, sizeof(*r));
}

/* "d.ddd.ddd" whose class matches status. */
static int
dsn_ok(const char *dsn, uint32_t status)
{
	const char *p = dsn;
	int part, digits;

	if (p[0] != (char)('0' + status) || p[1] != '.')
		return 0;
	p += 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; *p >= '0' && *p <= '9'; p++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
		if (part == 0 && *p++ != '.')
			return 0;
	}
	return *p == '\0';
}

int
deliver_result_decode(struct ipc_in *in, struct deliver_result *r)
{
	memset(r, 0, sizeof(*r));
	if (ipc_get_u64(in, &r->rcpt_id) < 0 ||
	    ipc_get_u32(in, &r->status) < 0 ||
	    (r->status != DS_DELIVERED && r->status != DS_DEFERRED &&
	    r->status != DS_FAILED) ||
	    ipc_get_str(in, &r->dsn, 16) < 0 ||
	    !dsn_ok(r->dsn, r->status) ||
	    ipc_get_str(in, &r->reply, DP_MAX_REPLY) < 0 ||
	    ipc_get_str(in, &r->relay, DP_MAX_STR) < 0 ||
	    r->relay[0] == '\0' ||
	    ipc_get_str(in, &r->tls, DP_MAX_STR) < 0 ||
	    ipc_end(in) < 0) {
		deliver_result_free(r);
		return -1;
	}
	return 0;
}

void
deliver_done_encode(const struct deliver_done *d, struct ipc_out *m)
{
	size_t i;

	ipc_add_u64(m, d->job_id);
	ipc_add_str(m, d->hop);
	ipc_add_u32(m, d->leaving);
	ipc_add_u32(m, (uint32_t)d->nhosts);
	for (i = 0; i < d->nhosts; i++) {
		ipc_add_str(m, d->hosts[i].host);
		ipc_add_u32(m, d->hosts[i].outcome);
		ipc_add_str(m, d->hosts[i].error);
	}
	ipc_add_str(m, d->throttle != NULL ? d->throttle : "");
	ipc_add_u32(m, d->caps_seen);
	ipc_add_u32(m, d->caps_flags);
	ipc_add_u64(m, d->caps_size);
}

void
deliver_done_free(struct deliver_done *d)
{
	size_t i;

	if (d == NULL)
		return;
	free(d->hop);
	if (d->hosts != NULL)
		for (i = 0; i < d->nhosts; i++) {
			free(d->hosts[i].host);
			free(d->hosts[i].error);
		}
	free(d->hosts);
	free(d->throttle);
	memset(d, 0, sizeof(*d));
}

int
deliver_done_decode(struct ipc_in *in, struct deliver_done *d)
{
	uint32_t n;

	memset(d, 0, sizeof(*d));
	if (ipc_get_u64(in, &d->job_id) < 0 ||
	    ipc_get_str(in, &d->hop, DP_MAX_STR) < 0 ||
	    get_u32_max(in, &d->leaving, 1) < 0 ||
	    get_u32_max(in, &n, JOB_MAX_HOSTS) < 0)
		goto fail;
	if (n > 0) {
		d->hosts = xcalloc(n, sizeof(*d->hosts));
		for (d->nhosts = 0; d->nhosts < n; d->nhosts++) {
			struct deliver_host_report *h = &d->hosts[d->nhosts];

			if (ipc_get_str(in, &h->host, DP_MAX_STR) < 0 ||
			    h->host[0] == '\0' ||
			    get_u32_max(in, &h->outcome,
			    DELIVER_HOST_OUTCOME_MAX) < 0 ||
			    ipc_get_str(in, &h->error, DP_MAX_REPLY) < 0) {
				d->nhosts++;   /* free what it holds */
				goto fail;
			}
		}
	}
	if (ipc_get_str(in, &d->throttle, DP_MAX_REPLY) < 0 ||
	    get_u32_max(in, &d->caps_seen, 1) < 0 ||
	    get_u32_max(in, &d->caps_flags, RCAP_ALL) < 0 ||
	    ipc_get_u64(in, &d->caps_size) < 0 ||
	    (!(d->caps_flags & RCAP_SIZE) && d->caps_size != 0) ||
	    ipc_end(in) < 0)
		goto fail;
	return 0;
fail:
	deliver_done_free(d);
	return -1;
}

void
deliver_probe_encode(const struct deliver_probe *p, struct ipc_out *m)
{
	ipc_add_u64(m, p->job_id);
	ipc_add_str(m, p->route);
	ipc_add_str(m, p->host);
	ipc_add_str(m, p->helo);
}

void
deliver_probe_free(struct deliver_probe *p)
{
	if (p == NULL)
		return;
	free(p->route);
	free(p->host);
	free(p->helo);
	memset(p, 0, sizeof(*p));
}

int
deliver_probe_decode(struct ipc_in *in, struct deliver_probe *p)
{
	memset(p, 0, sizeof(*p));
	if (ipc_get_u64(in, &p->job_id) < 0 ||
	    ipc_get_str(in, &p->route, DP_MAX_STR) < 0 ||
	    ipc_get_str(in, &p->host, DP_MAX_STR) < 0 ||
	    p->host[0] == '\0' ||
	    ipc_get_str(in, &p->helo, DP_MAX_STR) < 0 ||
	    ipc_end(in) < 0) {
		deliver_probe_free(p);
		return -1;
	}
	return 0;
}

void
deliver_hop_key(const struct deliver_job *j, char *out, size_t outlen)
{

	if (j->nhosts == 0) {
		snprintf(out, outlen, "%s:%s:%u", j->route, j->domain,
		    j->mx_port);
		return;
	}
	snprintf(out, outlen, "%s:%s", j->route, j->hosts[0]);
}
