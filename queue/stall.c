/*
 * stall.c - the stall warning's decision and its report (see stall.h).
 * Pure: no clock, no I/O; the runner passes the time and the figures in.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stall.h"
#include "util.h"

void
stall_init(struct stall_state *s)
{
	memset(s, 0, sizeof(*s));
	s->warned_at = -1;
	s->notified_at = -1;
	s->waiting_since = -1;
}

struct stall_verdict
stall_decide(struct stall_state *s, const struct stall_policy *p,
    const struct stall_input *in)
{
	struct stall_verdict v;
	double since;

	memset(&v, 0, sizeof(v));
	v.oldest_age = -1;
	v.idle_for = -1;
	if (in->oldest_received_at >= 0)
		v.oldest_age = in->now > in->oldest_received_at ?
		    in->now - in->oldest_received_at : 0;
	if (in->rcpts_pending > 0) {
		if (s->waiting_since < 0)
			s->waiting_since = in->now;
		since = in->last_delivered > s->waiting_since ?
		    in->last_delivered : s->waiting_since;
		v.idle_for = in->now > since ? in->now - since : 0;
	} else {
		s->waiting_since = -1;
	}
	if (p->warn_age > 0 && v.oldest_age >= (double)p->warn_age)
		v.reasons |= STALL_AGE;
	if (p->warn_stall > 0 && !in->paused && v.idle_for >= 0 &&
	    v.idle_for >= (double)p->warn_stall)
		v.reasons |= STALL_STALL;

	if (v.reasons == 0) {
		v.cleared = s->reasons != 0;
		s->reasons = 0;
		s->warned = 0;
		return v;
	}
	s->reasons = v.reasons;
	if ((v.reasons & ~s->warned) != 0 || s->warned_at < 0 ||
	    in->now - s->warned_at >= STALL_REPEAT) {
		v.warn = 1;
		s->warned |= v.reasons;
		s->warned_at = in->now;
		if (p->notify && (s->notified_at < 0 ||
		    in->now - s->notified_at >= STALL_REPEAT)) {
			v.notify = 1;
			s->notified_at = in->now;
		}
	}
	return v;
}

/* "2d 3h", "45m", "12s": the two largest units. */
static void
fmt_span(char *out, size_t len, double secs)
{
	static const struct { const char *unit; long secs; } u[] = {
	    { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
	long s = secs < 0 ? 0 : (long)secs;
	size_t i;

	for (i = 0; i < 3 && s < u[i].secs; i++)
		;
	if (i < 3 && s % u[i].secs >= u[i + 1].secs)
		snprintf(out, len, "%ld%s %ld%s", s / u[i].secs, u[i].unit,
		    s % u[i].secs / u[i + 1].secs, u[i + 1].unit);
	else
		snprintf(out, len, "%ld%s", s / u[i].secs, u[i].unit);
}

void
stall_describe(char *out, size_t len, const struct stall_verdict *v,
    const struct stall_policy *p, const struct stall_input *in)
{
	char a[32], b[32];
	size_t n = 0;

	out[0] = '\0';
	if (v->reasons & STALL_AGE) {
		fmt_span(a, sizeof(a), v->oldest_age);
		fmt_span(b, sizeof(b), (double)p->warn_age);
		n += (size_t)snprintf(out, len, "oldest message %s old "
		    "(warn_age %s)", a, b);
	}
	if ((v->reasons & STALL_STALL) && n < len) {
		fmt_span(a, sizeof(a), v->idle_for);
		fmt_span(b, sizeof(b), (double)p->warn_stall);
		snprintf(out + n, len - n, "%snothing delivered for %s while "
		    "%lld recipient(s) wait (warn_stall %s)", n > 0 ? "; " : "",
		    a, (long long)in->rcpts_pending, b);
	}
}

struct writer {
	char *buf;
	size_t len, cap;
};

static void
putf(struct writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
putf(struct writer *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < w->cap - w->len) {
			w->len += (size_t)n;
			return;
		}
		w->cap = w->cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
		w->buf = xrealloc(w->buf, w->cap);
	}
}

void
stall_report(const struct stall_report_input *r, uint8_t **out,
    size_t *outlen)
{
	struct writer w = { NULL, 0, 0 };
	const struct stall_input *in = r->in;
	const uint8_t *rnd = r->random;
	char date[64], when[64], age[32];

	w.cap = 2048;
	w.buf = xmalloc(w.cap);
	w.buf[0] = '\0';
	rfc5322_date(date, sizeof(date), r->now);
	putf(&w, "Received: by %s (ferry); %s\r\n", r->hostname, date);
	putf(&w, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    r->hostname);
	putf(&w, "To: <%s>\r\n", r->rcpt);
	putf(&w, "Subject: Mail queue on %s is stalled\r\n", r->hostname);
	putf(&w, "Date: %s\r\n", date);
	putf(&w, "Message-ID: <stall.%02x%02x%02x%02x%02x%02x%02x%02x@%s>\r\n",
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7],
	    r->hostname);
	putf(&w, "Auto-Submitted: auto-generated\r\n");
	putf(&w, "MIME-Version: 1.0\r\n");
	putf(&w, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	putf(&w, "This is the mail system at host %s.\r\n\r\n", r->hostname);
	putf(&w, "The mail queue is stalled: %s.\r\n\r\n", r->what);
	if (in->oldest_received_at >= 0) {
		rfc5322_date(when, sizeof(when), (time_t)in->oldest_received_at);
		fmt_span(age, sizeof(age), in->now - in->oldest_received_at);
		putf(&w, "Oldest message: %s old (received %s)\r\n", age, when);
	}
	if (in->last_delivered >= 0) {
		rfc5322_date(when, sizeof(when), (time_t)in->last_delivered);
		putf(&w, "Last delivery:  %s\r\n", when);
	} else {
		putf(&w, "Last delivery:  none since the queue runner "
		    "started\r\n");
	}
	putf(&w, "Queue depth:    %lld message(s), %lld recipient(s) "
	    "waiting\r\n\r\n", (long long)r->messages,
	    (long long)in->rcpts_pending);
	putf(&w, "\"ferryctl status\" and \"ferryctl queue list\" on %s show "
	    "more.\r\nAt most one such report is sent per hour.\r\n",
	    r->hostname);
	*out = (uint8_t *)w.buf;
	*outlen = w.len;
}
