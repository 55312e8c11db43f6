/*
 * smtp_trouble.c - what a failure with a next hop means for the job's
 * recipients (in the manner of Postfix's smtp_trouble.c): a failure of
 * the host records why and lets the pending recipients fail over to the
 * next host, or to a later try, as a deferral.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>

#include "deliver_agent.h"
#include "deliver_proto.h"
#include "log.h"
#include "smtp_client.h"
#include "smtp_trouble.h"
#include "util.h"

/* Records a next-hop failure (always a deferral: another host, or a later
 * try, may do better). */
void
hop_fail(struct job_ctx *x, const struct smtp_conn *c, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	x->last.status = DS_DEFERRED;
	ferry_strlcpy(x->last.dsn, dsn, sizeof(x->last.dsn));
	x->last.dsn[0] = '4';
	va_start(ap, fmt);
	vsnprintf(x->last.text, sizeof(x->last.text), fmt, ap);
	va_end(ap);
	ferry_strlcpy(x->last.relay, c != NULL && c->fd >= 0 ? c->relay :
	    "none", sizeof(x->last.relay));
	ferry_strlcpy(x->last.tls, c != NULL ? c->tls : "",
	    sizeof(x->last.tls));
	log_debug("%s: %s", x->job->qid, x->last.text);
}
