/*
 * smtp_trouble.c - what a failure with a next hop means for the job's
 * recipients, in the manner of Postfix's smtp_trouble.c.  The rules, by
 * stage, for a reply code c:
 *
 *   greeting, HELO   2xx go on; anything else: fail over
 *   EHLO             2xx go on; 5xx try HELO; anything else: fail over
 *   STARTTLS         220 go on; else plain text under "may", fail over
 *                    under "encrypt" and "verify" (likewise when it is
 *                    not offered); a failed handshake always fails over
 *   AUTH             235 go on; anything else: fail over
 *   MAIL             2xx go on; 5xx bounce every recipient; else fail over
 *   RCPT             2xx accepted; 421 fail over; 5xx bounce that
 *                    recipient; anything else defers it
 *   DATA             354 go on; 421 fail over; 5xx bounce the accepted
 *                    recipients; anything else defers them
 *   end of DATA      2xx delivered; 5xx bounce; anything else defers
 *
 * A 421 anywhere also ends the session.  A lost connection or a timeout
 * fails over, except once the body is under way, where the server may
 * end up with the message: then the accepted recipients are deferred and
 * no other host gets it in this attempt.  A failover is recorded by hop_fail():
 * whatever is pending when no host is left is deferred with the last
 * reason.
 *
 * Security stance: pure functions of a reply code the parser in
 * smtp_client_reply.c already checked (three digits, the first 2 to 5).
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>

#include "config.h"
#include "deliver_agent.h"
#include "deliver_proto.h"
#include "log.h"
#include "route_shaper.h"
#include "smtp_client.h"
#include "smtp_trouble.h"
#include "util.h"

enum trouble
smtp_trouble_reply(enum smtp_stage stage, int code, uint32_t tls_policy)
{
	int class = code / 100;

	switch (stage) {
	case STAGE_GREETING:
	case STAGE_HELO:
		/* even a 5xx greeting only skips this host (Postfix's
		 * smtp_skip_5xx_greeting) */
		return class == 2 ? TROUBLE_NONE : TROUBLE_FAILOVER;
	case STAGE_EHLO:
		if (class == 2)
			return TROUBLE_NONE;
		return class == 5 ? TROUBLE_FALLBACK : TROUBLE_FAILOVER;
	case STAGE_STARTTLS:
		if (code == 220)
			return TROUBLE_NONE;
		return tls_policy == TLS_MAY ? TROUBLE_FALLBACK :
		    TROUBLE_FAILOVER;
	case STAGE_AUTH:
		return code == 235 ? TROUBLE_NONE : TROUBLE_FAILOVER;
	case STAGE_MAIL:
		if (class == 2)
			return TROUBLE_NONE;
		/* 4xx: another host may take the message */
		return class == 5 ? TROUBLE_BOUNCE : TROUBLE_FAILOVER;
	case STAGE_RCPT:
		if (class == 2)
			return TROUBLE_NONE;
		break;
	case STAGE_DATA:
		if (code == 354)
			return TROUBLE_NONE;
		break;
	case STAGE_END_OF_DATA:
		if (class == 2)
			return TROUBLE_NONE;
		return class == 5 ? TROUBLE_BOUNCE : TROUBLE_DEFER;
	}
	/* RCPT and DATA: the recipients at stake take the reply, unless the
	 * server is closing: then they may try another host */
	if (code == 421)
		return TROUBLE_FAILOVER;
	return class == 5 ? TROUBLE_BOUNCE : TROUBLE_DEFER;
}

enum trouble
smtp_trouble_no_starttls(uint32_t tls_policy)
{
	if (tls_policy == TLS_NONE)
		return TROUBLE_NONE;
	return tls_policy == TLS_MAY ? TROUBLE_FALLBACK : TROUBLE_FAILOVER;
}

enum trouble
smtp_trouble_lost(enum smtp_stage stage)
{
	return stage == STAGE_END_OF_DATA ? TROUBLE_DEFER : TROUBLE_FAILOVER;
}

int
smtp_trouble_closes(int code)
{
	return code == 421;
}

uint32_t
smtp_trouble_status(enum trouble t)
{
	switch (t) {
	case TROUBLE_NONE:
		return DS_DELIVERED;
	case TROUBLE_BOUNCE:
		return DS_FAILED;
	default:
		return DS_DEFERRED;
	}
}

const char *
smtp_trouble_name(enum trouble t)
{
	switch (t) {
	case TROUBLE_NONE:
		return "none";
	case TROUBLE_FALLBACK:
		return "fallback";
	case TROUBLE_DEFER:
		return "defer";
	case TROUBLE_BOUNCE:
		return "bounce";
	case TROUBLE_FAILOVER:
		return "failover";
	}
	return "?";
}

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
	/* the route slows down even when another host takes the mail */
	if (x->throttle[0] == '\0' && route_shaper_classify(
	    route_shaper_reply_code(x->last.text), dsn, x->last.text) ==
	    SHAPER_REPLY_THROTTLE)
		ferry_strlcpy(x->throttle, x->last.text, sizeof(x->throttle));
}
