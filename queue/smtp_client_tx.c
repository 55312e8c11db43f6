/*
 * smtp_client_tx.c - one mail transaction on an open SMTP client
 * session: MAIL FROM with the extensions the server offers (SIZE,
 * 8BITMIME, SMTPUTF8, DSN), the RCPTs - in pipelined groups when the
 * server offers PIPELINING (RFC 2920), one at a time otherwise - DATA,
 * the message body dot-stuffed as it streams from the runner (its header
 * block through the route's rewrite_from, from_rewrite.c), and a result
 * for every recipient.
 *
 * Security stance: the envelope was checked for control characters
 * before the session (deliver.c), so no command line can be split; the
 * replies are read by smtp_client.c under deadlines.  From the final dot
 * on, a failure may mean the server has the message: those recipients
 * are deferred, never offered to another host in the same attempt.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "deliver_agent.h"
#include "deliver_proto.h"
#include "from_rewrite.h"
#include "log.h"
#include "route_shaper.h"
#include "smtp_client.h"
#include "smtp_client_reply.h"
#include "smtp_client_tx.h"
#include "smtp_parse.h"
#include "smtp_trouble.h"
#include "util.h"

#define PIPELINE_GROUP 100        /* RCPTs per pipelined write */
#define BODY_WRITE 65536          /* stuffed body bytes gathered per write */

/* The body as it goes out: dot-stuffing state, the last two bytes, and
 * the stuffed bytes not yet written (out[0..olen)): written when
 * BODY_WRITE bytes are gathered or the next chunk is not yet at hand,
 * else with the end of data, so a small message is one write. */
struct body_out {
	char *out;
	size_t cap, olen;
	char tail[2];             /* CRLF: an empty message ends "clean" */
	int bol;
	int rc;
};

/* Writes what is gathered, with more[0..morelen) after it when more is
 * not NULL (the end of data). */
static void
body_write(struct job_ctx *x, struct smtp_conn *c, struct body_out *b,
    const char *more, size_t morelen, const char *stage)
{
	if (b->rc < 0)
		return;
	if (more != NULL) {
		if (b->cap < b->olen + morelen) {
			b->cap = b->olen + morelen;
			b->out = xrealloc(b->out, b->cap);
		}
		memcpy(b->out + b->olen, more, morelen);
		b->olen += morelen;
	}
	if (b->olen > 0 && client_send(x, c, b->out, b->olen,
	    deadline_s(x->ag->cfg->client_data_timeout), stage) < 0)
		b->rc = -1;
	b->olen = 0;
}

/* Adds p[0..len) dot-stuffed, written once BODY_WRITE bytes gathered. */
static void
send_piece(struct job_ctx *x, struct smtp_conn *c, struct body_out *b,
    const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	size_t ol = b->olen;

	if (len == 0 || b->rc < 0)
		return;
	if (len >= 2) {
		b->tail[0] = (char)p[len - 2];
		b->tail[1] = (char)p[len - 1];
	} else {
		b->tail[0] = b->tail[1];
		b->tail[1] = (char)p[0];
	}
	if (b->cap < ol + len * 2) {
		b->cap = ol + len * 2;
		b->out = xrealloc(b->out, b->cap);
	}
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

		if (b->bol && *p == '.')
			b->out[ol++] = '.';
		memcpy(b->out + ol, p, n);
		ol += n;
		p += n;
		b->bol = nl != NULL;
	}
	b->olen = ol;
	if (b->olen >= BODY_WRITE)
		body_write(x, c, b, NULL, 0, "sending message body");
}

/* The route's rewrite_from on the held-back header hdr[0..len), then
 * the header (rewritten or not) goes out; logged when it changed. */
static void
send_header(struct job_ctx *x, struct smtp_conn *c, struct body_out *b,
    const char *hdr, size_t len)
{
	const struct deliver_job *j = x->job;
	struct from_rewrite_out fr;

	if (from_rewrite_header(hdr, len, j->rewrite_from, j->allowed_from,
	    j->nallowed_from, &fr) == 1) {
		log_info("%s: header From rewritten: %s -> <%s> (route %s)",
		    j->qid, fr.old, j->rewrite_from, j->route);
		send_piece(x, c, b, (const uint8_t *)fr.buf, fr.len);
		free(fr.buf);
	} else
		send_piece(x, c, b, (const uint8_t *)hdr, len);
}

/* The next piece of the body: from the runner the first time (kept as
 * it comes when a further transaction will need it), then from what was
 * kept.  NULL at its end. */
static const uint8_t *
body_next(struct job_ctx *x, size_t *pos, size_t *len)
{
	const uint8_t *p;

	if (x->body_kept) {
		if (*pos >= x->body_len)
			return NULL;
		p = x->body + *pos;
		*len = x->body_len - *pos;
		*pos = x->body_len;
		return p;
	}
	p = job_next_chunk(x, len);
	if (p == NULL) {
		x->body_kept = x->keep_body;
		return NULL;
	}
	if (x->keep_body) {
		if (x->body_len + *len > x->body_cap) {
			while (x->body_len + *len > x->body_cap)
				x->body_cap = x->body_cap ? x->body_cap * 2 :
				    65536;
			x->body = xrealloc(x->body, x->body_cap);
		}
		memcpy(x->body + x->body_len, p, *len);
		x->body_len += *len;
	}
	return p;
}

/* Streams the message dot-stuffed, then CRLF.CRLF.  With the route's
 * rewrite_from, the header block is held back (at most
 * FROM_REWRITE_MAX_HEADER bytes) and goes out rewritten; the rest of the
 * message streams as it comes.  0, or -1 with x->last set (the rest of
 * the data is then drained). */
static int
send_body(struct job_ctx *x, struct smtp_conn *c)
{
	struct body_out b = { NULL, 0, 0, { '\r', '\n' }, 1, 0 };
	char *hdr = NULL;
	size_t hlen = 0, len;
	const uint8_t *p;
	int holding = x->job->rewrite_from[0] != '\0';
	size_t pos = 0;

	if (holding)
		hdr = xmalloc(FROM_REWRITE_MAX_HEADER);
	for (;;) {
		/* what is gathered goes out before the runner is waited for:
		 * a big message streams, a small one is one write */
		if (b.olen > 0 && !x->body_kept && !job_chunk_ready(x))
			body_write(x, c, &b, NULL, 0, "sending message body");
		if ((p = body_next(x, &pos, &len)) == NULL)
			break;
		if (holding) {
			size_t take = FROM_REWRITE_MAX_HEADER - hlen, end;

			if (take > len)
				take = len;
			memcpy(hdr + hlen, p, take);
			hlen += take;
			end = from_rewrite_header_end(hdr, hlen);
			if (end == 0 && hlen < FROM_REWRITE_MAX_HEADER)
				continue;
			holding = 0;
			if (end > 0) {
				send_header(x, c, &b, hdr, end);
				send_piece(x, c, &b, (const uint8_t *)hdr + end,
				    hlen - end);
			} else {
				log_warn("%s: header over %d bytes: From "
				    "not rewritten", x->job->qid,
				    FROM_REWRITE_MAX_HEADER);
				send_piece(x, c, &b, (const uint8_t *)hdr, hlen);
			}
			p += take;
			len -= take;
		}
		send_piece(x, c, &b, p, len);
	}
	if (holding)   /* the message ended inside its header */
		send_header(x, c, &b, hdr, hlen);
	free(hdr);
	if (b.tail[0] == '\r' && b.tail[1] == '\n')
		body_write(x, c, &b, ".\r\n", 3, "sending end of data");
	else
		body_write(x, c, &b, "\r\n.\r\n", 5, "sending end of data");
	free(b.out);
	return b.rc;
}

static void
append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 4096;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

static void
mail_line(const struct job_ctx *x, const struct smtp_conn *c, char *out,
    size_t outlen)
{
	const struct deliver_job *j = x->job;
	size_t l;

	snprintf(out, outlen, "MAIL FROM:<%s>", j->sender);
	l = strlen(out);
	if (c->caps.size)
		l += (size_t)snprintf(out + l, outlen - l, " SIZE=%lld",
		    (long long)j->size);
	if (j->body_type == BODY_8BITMIME && c->caps.eightbitmime && l < outlen)
		l += (size_t)snprintf(out + l, outlen - l, " BODY=8BITMIME");
	if (j->smtputf8 && c->caps.smtputf8 && l < outlen)
		l += (size_t)snprintf(out + l, outlen - l, " SMTPUTF8");
	if (c->caps.dsn && j->dsn_ret != RET_UNSPEC && l < outlen)
		l += (size_t)snprintf(out + l, outlen - l, " RET=%s",
		    j->dsn_ret == RET_FULL ? "FULL" : "HDRS");
	if (c->caps.dsn && j->envid[0] != '\0' && l < outlen)
		snprintf(out + l, outlen - l, " ENVID=%s", j->envid);
}

static void
rcpt_line(const struct job_ctx *x, const struct smtp_conn *c, size_t i,
    char *out, size_t outlen)
{
	const struct deliver_rcpt *r = &x->job->rcpts[i];
	size_t l;

	l = (size_t)snprintf(out, outlen, "RCPT TO:<%s>", r->addr);
	if (c->caps.dsn && r->notify != 0 && l < outlen) {
		if (r->notify & NOTIFY_NEVER)
			l += (size_t)snprintf(out + l, outlen - l,
			    " NOTIFY=NEVER");
		else
			l += (size_t)snprintf(out + l, outlen - l,
			    " NOTIFY=%s%s%s%s%s",
			    r->notify & NOTIFY_SUCCESS ? "SUCCESS" : "",
			    (r->notify & NOTIFY_SUCCESS) &&
			    (r->notify & (NOTIFY_FAILURE | NOTIFY_DELAY)) ?
			    "," : "",
			    r->notify & NOTIFY_FAILURE ? "FAILURE" : "",
			    (r->notify & NOTIFY_FAILURE) &&
			    (r->notify & NOTIFY_DELAY) ? "," : "",
			    r->notify & NOTIFY_DELAY ? "DELAY" : "");
	}
	if (c->caps.dsn && r->orcpt[0] != '\0' && l < outlen)
		snprintf(out + l, outlen - l, " ORCPT=%s", r->orcpt);
}

/* Accepted recipients go back to pending: the session broke before the
 * message was sent, another host may take them. */
static void
unaccept(struct job_ctx *x)
{
	size_t i;

	for (i = 0; i < x->job->nrcpts; i++)
		if (x->state[i] == R_ACCEPTED)
			x->state[i] = R_PENDING;
}

/* A RCPT reply.  0, or -1 when the session is over (421). */
static int
rcpt_reply(struct job_ctx *x, struct smtp_conn *c, size_t i,
    const struct smtp_client_reply *r, size_t *naccepted)
{
	enum trouble t = smtp_trouble_reply(STAGE_RCPT, r->code, 0);
	char text[2048];

	if (*naccepted > 0 && route_shaper_classify(r->code, scr_dsn(r),
	    r->text) == SHAPER_REPLY_TOO_MANY_RCPTS &&
	    (!x->data_done || x->body_kept)) {
		/* too many recipients for one transaction: this one and
		 * the rest go in the next, on the same connection */
		x->state[i] = R_LATER;
		x->split = 1;
		x->keep_body = 1;
		x->last.status = DS_DEFERRED;
		snprintf(x->last.dsn, sizeof(x->last.dsn), "%s", scr_dsn(r));
		snprintf(x->last.text, sizeof(x->last.text), "host %s said: "
		    "%.1600s (in reply to RCPT TO command)", c->relay,
		    r->text);
		snprintf(x->last.relay, sizeof(x->last.relay), "%s",
		    c->relay);
		snprintf(x->last.tls, sizeof(x->last.tls), "%s", c->tls);
		return 0;
	}
	if (t == TROUBLE_FAILOVER) {
		hop_fail(x, c, scr_dsn(r),
		    "host %s said: %.1600s (in reply to RCPT "
		    "TO command)", c->relay, r->text);
		return -1;
	}
	if (t == TROUBLE_NONE) {
		x->state[i] = R_ACCEPTED;
		(*naccepted)++;
		return 0;
	}
	snprintf(text, sizeof(text), "host %s said: %.1600s (in reply to RCPT TO "
	    "command)", c->relay, r->text);
	job_result(x, i, smtp_trouble_status(t), scr_dsn(r), text, c->relay,
	    c->tls);
	return 0;
}

/* What a step of the transaction leaves to do. */
enum tx_next {
	TX_GO_ON,                 /* the next step */
	TX_RESET,                 /* nothing was sent: RSET, keep the session */
	TX_KEEP,                  /* done; the session may be kept */
	TX_CLOSE,                 /* done; the session must be closed */
	TX_STALE                  /* a kept session failed its RSET: nothing
	                             was done, another session may be opened */
};

/* One transaction in progress. */
struct tx {
	struct job_ctx *x;
	struct smtp_conn *c;
	size_t *idx, nidx;        /* the recipients it carries */
	char *buf;                /* the commands of one write */
	size_t blen, bcap;
	struct smtp_client_reply mail;   /* the reply to MAIL */
	int mail_done, mail_ok;
	int data_sent;            /* DATA went out (pipelined, or alone) */
	size_t naccepted;         /* recipients the server accepted */
	int rset;                 /* a kept session: RSET first, pipelined
	                             with MAIL when the server allows */
};

/* What the server said it cannot take fails before MAIL.  1 when every
 * pending recipient has its result. */
static int
tx_refused_by_caps(struct job_ctx *x, const struct smtp_conn *c)
{
	const struct deliver_job *j = x->job;
	char text[2048];

	if (c->caps.size && c->caps.size_max > 0 &&
	    (uint64_t)j->size > c->caps.size_max) {
		snprintf(text, sizeof(text), "message size %lld exceeds size "
		    "limit %llu of server %s", (long long)j->size,
		    (unsigned long long)c->caps.size_max, c->relay);
		job_result_all(x, 0, DS_FAILED, "5.3.4", text, c->relay,
		    c->tls);
		return 1;
	}
	if (j->body_type == BODY_8BITMIME && !c->caps.eightbitmime) {
		snprintf(text, sizeof(text), "host %s does not support "
		    "8BITMIME and the message is 8-bit", c->relay);
		job_result_all(x, 0, DS_FAILED, "5.6.3", text, c->relay,
		    c->tls);
		return 1;
	}
	if (j->smtputf8 && !c->caps.smtputf8) {
		snprintf(text, sizeof(text), "host %s does not support "
		    "SMTPUTF8, required for this message", c->relay);
		job_result_all(x, 0, DS_FAILED, "5.6.7", text, c->relay,
		    c->tls);
		return 1;
	}
	return 0;
}

/* MAIL and the RCPTs, in groups: all of them at once with PIPELINING
 * (DATA with the last group), else one command at a time.  TX_GO_ON
 * (the server may have refused MAIL: t->mail_ok) or TX_CLOSE. */
static enum tx_next
tx_envelope(struct tx *t)
{
	struct job_ctx *x = t->x;
	struct smtp_conn *c = t->c;
	const struct ferry_config *cfg = x->ag->cfg;
	struct smtp_client_reply r;
	char line[2300];
	size_t first, k, i;
	int pipelining = c->caps.pipelining;
	int64_t dl;

	mail_line(x, c, line, sizeof(line));
	if (t->rset && !pipelining) {
		/* a round trip of its own: the server may have left */
		if (client_command(x, c, "RSET", &r, NULL,
		    "sending RSET") < 0 || r.code != 250)
			return TX_STALE;
		t->rset = 0;
	}
	for (first = 0; first < t->nidx; first += k) {
		size_t group = pipelining ? PIPELINE_GROUP : 1, end;
		int last_group;

		end = first + group < t->nidx ? first + group : t->nidx;
		k = end - first;
		last_group = end == t->nidx;
		t->blen = 0;
		if (t->rset)
			append(&t->buf, &t->blen, &t->bcap, "RSET\r\n");
		if (!t->mail_done) {
			append(&t->buf, &t->blen, &t->bcap, line);
			append(&t->buf, &t->blen, &t->bcap, "\r\n");
			if (!pipelining) {
				dl = deadline_s(cfg->client_command_timeout);
				if (client_send(x, c, t->buf, t->blen, dl,
				    "sending MAIL FROM") < 0 ||
				    client_reply(x, c, &t->mail, dl, NULL,
				    "sending MAIL FROM") < 0)
					return TX_CLOSE;
				t->mail_done = 1;
				t->mail_ok = smtp_trouble_reply(STAGE_MAIL,
				    t->mail.code, 0) == TROUBLE_NONE;
				if (!t->mail_ok)
					return TX_GO_ON;
				t->blen = 0;
			}
		}
		for (i = first; i < end; i++) {
			char rl[2300];

			rcpt_line(x, c, t->idx[i], rl, sizeof(rl));
			append(&t->buf, &t->blen, &t->bcap, rl);
			append(&t->buf, &t->blen, &t->bcap, "\r\n");
		}
		if (pipelining && last_group) {
			append(&t->buf, &t->blen, &t->bcap, "DATA\r\n");
			t->data_sent = 1;
		}
		dl = deadline_s(cfg->client_command_timeout);
		if (client_send(x, c, t->buf, t->blen, dl,
		    "sending RCPT TO") < 0)
			return t->rset ? TX_STALE : TX_CLOSE;
		if (t->rset) {
			/* the kept session's RSET answers first; a server
			 * that left (or refuses it) has done nothing */
			if (client_reply(x, c, &r, dl, NULL,
			    "sending RSET") < 0 || r.code != 250)
				return TX_STALE;
			t->rset = 0;
		}
		if (!t->mail_done) {
			if (client_reply(x, c, &t->mail, dl, NULL,
			    "sending MAIL FROM") < 0)
				return TX_CLOSE;
			t->mail_done = 1;
			t->mail_ok = smtp_trouble_reply(STAGE_MAIL,
			    t->mail.code, 0) == TROUBLE_NONE;
			if (smtp_trouble_closes(t->mail.code)) {
				hop_fail(x, c, scr_dsn(&t->mail),
				    "host %s said: %.1600s (in "
				    "reply to MAIL FROM command)", c->relay,
				    t->mail.text);
				return TX_CLOSE;
			}
		}
		for (i = first; i < end; i++) {
			if (client_reply(x, c, &r, dl, NULL,
			    "sending RCPT TO") < 0)
				return TX_CLOSE;
			if (!t->mail_ok)
				continue;   /* replies to RCPTs after a refused
				               MAIL say nothing */
			if (rcpt_reply(x, c, t->idx[i], &r,
			    &t->naccepted) < 0)
				return TX_CLOSE;
		}
		if (!t->mail_ok)
			break;
	}
	return TX_GO_ON;
}

/* MAIL was refused: a 5xx bounces every recipient, a 4xx lets another
 * host try.  TX_RESET or TX_CLOSE. */
static enum tx_next
tx_mail_refused(struct tx *t)
{
	struct job_ctx *x = t->x;
	struct smtp_conn *c = t->c;
	struct smtp_client_reply r;
	char text[2048];

	if (t->data_sent && client_reply(x, c, &r,
	    deadline_s(x->ag->cfg->client_command_timeout), NULL,
	    "sending DATA command") < 0)
		return TX_CLOSE;
	snprintf(text, sizeof(text), "host %s said: %.1600s (in reply to "
	    "MAIL FROM command)", c->relay, t->mail.text);
	if (smtp_trouble_reply(STAGE_MAIL, t->mail.code, 0) ==
	    TROUBLE_BOUNCE) {
		job_result_all(x, 0, DS_FAILED, scr_dsn(&t->mail), text,
		    c->relay, c->tls);
		return TX_RESET;
	}
	/* 4xx: another host may take the message */
	hop_fail(x, c, scr_dsn(&t->mail), "%s", text);
	return TX_CLOSE;
}

/* DATA (unless it went out pipelined) and its reply.  TX_GO_ON when the
 * body may follow (or nobody was accepted), TX_RESET or TX_CLOSE. */
static enum tx_next
tx_data(struct tx *t)
{
	struct job_ctx *x = t->x;
	struct smtp_conn *c = t->c;
	const struct ferry_config *cfg = x->ag->cfg;
	struct smtp_client_reply r;
	char text[2048];
	enum trouble tr;

	if (!t->data_sent && t->naccepted > 0) {
		if (client_send(x, c, "DATA\r\n", 6,
		    deadline_s(cfg->client_command_timeout),
		    "sending DATA command") < 0)
			return TX_CLOSE;
		t->data_sent = 1;
	}
	if (!t->data_sent)
		return TX_GO_ON;
	if (client_reply(x, c, &r, deadline_s(cfg->client_command_timeout),
	    NULL, "sending DATA command") < 0)
		return TX_CLOSE;
	if (r.code == 354 && t->naccepted == 0) {
		/* a server that opens DATA without recipients: end it
		 * empty */
		if (client_send(x, c, ".\r\n", 3,
		    deadline_s(cfg->client_command_timeout),
		    "sending end of data") < 0 ||
		    client_reply(x, c, &r,
		    deadline_s(cfg->client_command_timeout), NULL,
		    "sending end of data") < 0)
			return TX_CLOSE;
		return TX_GO_ON;
	}
	if (t->naccepted == 0)
		return TX_GO_ON;
	tr = smtp_trouble_reply(STAGE_DATA, r.code, 0);
	if (tr == TROUBLE_NONE)
		return TX_GO_ON;
	if (tr == TROUBLE_FAILOVER) {
		hop_fail(x, c, scr_dsn(&r), "host %s said: %.1600s (in reply "
		    "to DATA command)", c->relay, r.text);
		return TX_CLOSE;
	}
	snprintf(text, sizeof(text), "host %s said: %.1600s (in reply to "
	    "DATA command)", c->relay, r.text);
	job_result_all(x, 1, smtp_trouble_status(tr), scr_dsn(&r), text,
	    c->relay, c->tls);
	return TX_RESET;
}

/* The body and the reply to its final dot.  From the body on, a failure
 * may mean the message was delivered: no other host gets it.  TX_KEEP
 * or TX_CLOSE. */
static enum tx_next
tx_body(struct tx *t)
{
	struct job_ctx *x = t->x;
	struct smtp_conn *c = t->c;
	struct smtp_client_reply r;
	char text[2048];
	enum trouble tr;

	if (send_body(x, c) < 0 ||
	    client_reply(x, c, &r, deadline_s(x->ag->cfg->client_data_timeout),
	    NULL, "sending end of data -- message may be sent more than "
	    "once") < 0) {
		job_result_all(x, 1, smtp_trouble_status(smtp_trouble_lost(
		    STAGE_END_OF_DATA)), x->last.dsn, x->last.text,
		    c->relay, c->tls);
		return TX_CLOSE;
	}
	tr = smtp_trouble_reply(STAGE_END_OF_DATA, r.code, 0);
	if (tr == TROUBLE_NONE)
		job_result_all(x, 1, DS_DELIVERED, scr_dsn(&r), r.text,
		    c->relay, c->tls);
	else {
		snprintf(text, sizeof(text), "host %s said: %.1600s (in reply "
		    "to end of DATA command)", c->relay, r.text);
		job_result_all(x, 1, smtp_trouble_status(tr), scr_dsn(&r),
		    text, c->relay, c->tls);
	}
	return smtp_trouble_closes(r.code) ? TX_CLOSE : TX_KEEP;
}

/* One transaction: MAIL, RCPTs, DATA, the body and the final reply;
 * on a kept session (rset) an RSET first.  0: the connection may be
 * kept; -1: it must be closed; CLIENT_TX_STALE: the kept session failed
 * its RSET, nothing was done. */
static int
one_transaction(struct job_ctx *x, struct smtp_conn *c, int rset)
{
	struct smtp_client_reply r;
	struct tx t;
	enum tx_next next;
	size_t i;

	/* what the runner learns of the route (route_caps.h): the EHLO of
	 * a session ready for mail - after STARTTLS and AUTH, never a
	 * plain-text EHLO that TLS was to replace */
	x->ehlo = c->caps;
	x->ehlo_seen = 1;
	if (tx_refused_by_caps(x, c))
		return 0;
	memset(&t, 0, sizeof(t));
	t.x = x;
	t.c = c;
	t.rset = rset;
	t.idx = xcalloc(x->job->nrcpts, sizeof(*t.idx));
	for (i = 0; i < x->job->nrcpts; i++)
		if (x->state[i] == R_PENDING)
			t.idx[t.nidx++] = i;
	if (t.nidx == 0) {
		free(t.idx);
		return 0;
	}
	c->transactions++;
	next = tx_envelope(&t);
	if (next == TX_GO_ON && !t.mail_ok)
		next = tx_mail_refused(&t);
	if (next == TX_GO_ON)
		next = tx_data(&t);
	if (next == TX_GO_ON)
		next = t.naccepted == 0 ? TX_RESET : tx_body(&t);
	if (next == TX_RESET) {
		/* nothing was sent: leave the session clean for the next
		 * job */
		if (client_command(x, c, "RSET", &r, NULL,
		    "sending RSET") < 0 || r.code != 250)
			next = TX_CLOSE;
	}
	if (next == TX_CLOSE)
		unaccept(x);
	free(t.buf);
	free(t.idx);
	if (next == TX_STALE)
		return CLIENT_TX_STALE;
	return next == TX_CLOSE ? -1 : 0;
}

/* MAIL, RCPTs, DATA, the body and the final reply on an open session,
 * and again for the recipients a server wanted in a further transaction
 * (452 4.5.3 after it took others).  0: the connection may be kept; -1:
 * it must be closed (x->last says why; recipients still pending may try
 * another host). */
static int
transactions(struct job_ctx *x, struct smtp_conn *c, int rset)
{
	int rc;

	for (;;) {
		size_t i;

		x->split = 0;
		rc = one_transaction(x, c, rset);
		rset = 0;   /* a further transaction follows a clean end */
		for (i = 0; i < x->job->nrcpts; i++)
			if (x->state[i] == R_LATER)
				x->state[i] = R_PENDING;
		if (rc < 0 || !x->split || x->npending == 0)
			return rc;
		if (x->data_done && !x->body_kept)
			return rc;   /* the body is gone: deferred */
		log_debug("%s: %zu recipient(s) left for a further "
		    "transaction on %s", x->job->qid, x->npending, c->relay);
	}
}

int
client_transaction(struct job_ctx *x, struct smtp_conn *c)
{
	return transactions(x, c, 0);
}

int
client_transaction_kept(struct job_ctx *x, struct smtp_conn *c)
{
	return transactions(x, c, 1);
}
