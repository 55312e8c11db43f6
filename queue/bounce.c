/*
 * bounce.c - builds RFC 3464 delivery status notifications (bounce.h).
 *
 * Pure: the original's data, the recipients, the clock and the random
 * bytes come in; the report's bytes go out.  No store, no clock, no
 * randomness of its own, so check_bounce.c can check every shape.
 *
 * Remote replies are untrusted: only printable ASCII of them reaches a
 * header field or the report.  RET=HDRS, a delay warning or a very large
 * original return only the header block.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"
#include "util.h"

struct writer {
	uint8_t *buf;
	size_t len, cap;
};

static void
put(struct writer *w, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2 + 4096;
		w->buf = xrealloc(w->buf, w->cap);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void
putf(struct writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
putf(struct writer *w, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	put(w, buf, (size_t)n);
}

/* Text safe inside a header field or the report: printable ASCII, no
 * CR/LF (a remote reply is untrusted). */
static void
clean(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; *in && o + 1 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
	}
	out[o] = '\0';
}

/* The original (or its header block, up to the empty line that ends it
 * and at most BOUNCE_HEADERS_MAX bytes), ended by a line break. */
static void
return_original(struct writer *w, const struct bounce_input *in)
{
	size_t take = in->original_len;

	if (in->headers_only) {
		static const char end[] = "\r\n\r\n";
		size_t i;
		int tail = 0;   /* how many of "\r\n\r\n" have been seen */

		for (i = 0; i < in->original_len; i++) {
			tail = in->original[i] == (uint8_t)end[tail] ?
			    tail + 1 : (in->original[i] == '\r' ? 1 : 0);
			if (tail == 4) {
				take = i + 1;
				break;
			}
		}
		if (take > BOUNCE_HEADERS_MAX)
			take = BOUNCE_HEADERS_MAX;
	}
	put(w, in->original, take);
	/* the part must end with a line break before the boundary */
	put(w, "\r\n", 2);
}

int
bounce_owed(const char *sender, int is_dsn, int delayed, int warned)
{
	return sender[0] != '\0' && !is_dsn && !(delayed && warned);
}

void
bounce_report(const struct bounce_input *in, const struct bounce_rcpt *r,
    size_t n, uint8_t **out, size_t *outlen)
{
	struct writer w = { NULL, 0, 0 };
	char date[64], arrival[64], until[64], boundary[128];
	const uint8_t *rnd = in->random;
	size_t i;

	snprintf(boundary, sizeof(boundary),
	    "%s.%02x%02x%02x%02x%02x%02x/%s", in->report_qid, rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5], in->hostname);
	rfc5322_date(date, sizeof(date), in->now);
	rfc5322_date(arrival, sizeof(arrival), (time_t)in->received_at);
	rfc5322_date(until, sizeof(until), (time_t)in->retry_until);

	putf(&w, "Received: by %s (ferry) id %s; %s\r\n", in->hostname,
	    in->report_qid, date);
	putf(&w, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    in->hostname);
	putf(&w, "To: <%s>\r\n", in->sender);
	putf(&w, "Subject: %s\r\n", in->delayed ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender");
	putf(&w, "Date: %s\r\n", date);
	putf(&w, "Message-ID: <%s.%02x%02x@%s>\r\n", in->report_qid, rnd[6],
	    rnd[7], in->hostname);
	putf(&w, "Auto-Submitted: auto-replied\r\n");
	putf(&w, "MIME-Version: 1.0\r\n");
	putf(&w, "Content-Type: multipart/report; report-type=delivery-status;"
	    "\r\n\tboundary=\"%s\"\r\n", boundary);
	putf(&w, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people */
	putf(&w, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	if (in->delayed)
		putf(&w, "This is the mail system at host %s.\r\n\r\n"
		    "Your message (queue id %s) has not been delivered to one\r\n"
		    "or more recipients yet. It is still being retried until\r\n"
		    "%s; you need not send it again.\r\n\r\n",
		    in->hostname, in->qid, until);
	else
		putf(&w, "This is the mail system at host %s.\r\n\r\n"
		    "Your message (queue id %s) could not be delivered to one "
		    "or\r\nmore recipients. It is attached below.\r\n\r\n",
		    in->hostname, in->qid);
	for (i = 0; i < n; i++) {
		char diag[1024];

		clean(diag, sizeof(diag), r[i].detail && r[i].detail[0] ?
		    r[i].detail : r[i].diagnostic);
		putf(&w, "<%s>: %s\r\n\r\n", r[i].addr, diag);
	}

	/* 2: for programs (RFC 3464 section 2) */
	putf(&w, "--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	putf(&w, "Reporting-MTA: dns; %s\r\n", in->hostname);
	putf(&w, "X-Ferry-Queue-ID: %s\r\n", in->qid);
	if (in->envid[0] != '\0')
		putf(&w, "Original-Envelope-Id: %s\r\n", in->envid);
	putf(&w, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < n; i++) {
		char diag[1024], when[64];

		clean(diag, sizeof(diag), r[i].diagnostic);
		rfc5322_date(when, sizeof(when), r[i].last_attempt > 0 ?
		    (time_t)r[i].last_attempt : in->now);
		putf(&w, "\r\n");
		if (r[i].orcpt && r[i].orcpt[0])
			putf(&w, "Original-Recipient: %s\r\n", r[i].orcpt);
		putf(&w, "Final-Recipient: rfc822; %s\r\n", r[i].addr);
		putf(&w, "Action: %s\r\n", in->delayed ? "delayed" : "failed");
		putf(&w, "Status: %s\r\n", r[i].status);
		if (r[i].remote_mta && r[i].remote_mta[0])
			putf(&w, "Remote-MTA: dns; %s\r\n", r[i].remote_mta);
		putf(&w, "Diagnostic-Code: %s; %s\r\n",
		    r[i].remote_mta && r[i].remote_mta[0] ? "smtp" : "x-ferry",
		    diag);
		putf(&w, "Last-Attempt-Date: %s\r\n", when);
		if (in->delayed)
			putf(&w, "Will-Retry-Until: %s\r\n", until);
	}

	/* 3: the message, or its headers */
	putf(&w, "\r\n--%s\r\nContent-Description: %s\r\n"
	    "Content-Type: %s\r\n\r\n", boundary,
	    in->headers_only ? (in->delayed ? "Delayed Message Headers" :
	    "Undelivered Message Headers") : "Undelivered Message",
	    in->headers_only ? "text/rfc822-headers" : "message/rfc822");
	return_original(&w, in);
	putf(&w, "--%s--\r\n", boundary);
	*out = w.buf;
	*outlen = w.len;
}
