/*
 * bounce.c - builds RFC 3464 delivery status notifications and queues
 * them as new messages (from <>, to the original sender), streaming the
 * returned message from the store in chunks.
 *
 * No notification is made for a message from the null sender or for one
 * of ferry's own notifications, so failures never loop.  RET=HDRS (or a
 * very large original) returns only the header block.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "config.h"
#include "envelope.h"
#include "log.h"
#include "smtp_parse.h"
#include "store.h"
#include "util.h"

#define RETURN_FULL_MAX (1024 * 1024)   /* larger originals: headers only */
#define HEADERS_MAX (64 * 1024)

struct writer {
	struct store *st;
	int64_t msgid;
	uint32_t seq;
	uint64_t size;
	int failed;
};

static void
put(struct writer *w, const void *p, size_t n)
{
	if (w->failed || n == 0)
		return;
	if (store_body_append(w->st, w->msgid, w->seq++, p, n) < 0)
		w->failed = 1;
	w->size += n;
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

/* Copies the original message (or its header block) into the report. */
static void
return_original(struct writer *w, int64_t msgid, int headers_only)
{
	uint32_t seq = 0;
	size_t copied = 0;
	int tail = 0;   /* how many of "\r\n\r\n" have been seen */

	for (;;) {
		uint8_t *data;
		size_t len, i, take;
		int rc = store_body_chunk(w->st, msgid, seq++, &data, &len);

		if (rc <= 0) {
			if (rc < 0)
				w->failed = 1;
			break;
		}
		take = len;
		if (headers_only) {
			for (i = 0; i < len; i++) {
				static const char end[] = "\r\n\r\n";

				tail = data[i] == (uint8_t)end[tail] ? tail + 1 :
				    (data[i] == '\r' ? 1 : 0);
				if (tail == 4) {
					take = i + 1;
					break;
				}
			}
			if (copied + take > HEADERS_MAX)
				take = HEADERS_MAX - copied;
		}
		put(w, data, take);
		copied += take;
		free(data);
		if (headers_only && (tail == 4 || copied >= HEADERS_MAX))
			break;
	}
	/* the part must end with a line break before the boundary */
	put(w, "\r\n", 2);
}

static int
make_report(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, int delayed,
    char *qid_out)
{
	struct store_msginfo mi;
	struct envelope env;
	struct writer w;
	char date[64], arrival[64], boundary[64], qid[QID_LEN + 1];
	unsigned char rnd[8];
	size_t i;
	int headers_only;

	if (n == 0 || store_message_info(st, msgid, &mi) < 0)
		return n == 0 ? 0 : -1;
	if (mi.sender[0] == '\0' || mi.is_dsn || (delayed && mi.warned)) {
		store_msginfo_free(&mi);
		return 0;
	}
	envelope_init(&env);
	env.sender = xstrdup("");
	env.client_addr = xstrdup("127.0.0.1");
	env.client_name = xstrdup("localhost");
	env.helo = xstrdup(cfg->hostname);
	env.protocol = xstrdup("local");
	env.auth_user = xstrdup("");
	env.received_at_us = (int64_t)(now_wall() * 1e6);
	env.dsn_envid = xstrdup("");
	envelope_add_rcpt(&env, mi.sender, NOTIFY_NEVER, "");
	{
		int64_t id = store_message_create(st, &env, qid);

		envelope_free(&env);
		if (id < 0) {
			store_msginfo_free(&mi);
			return -1;
		}
		w.msgid = id;
	}
	w.st = st;
	w.seq = 0;
	w.size = 0;
	w.failed = 0;

	random_bytes(rnd, sizeof(rnd));
	snprintf(boundary, sizeof(boundary),
	    "%s.%02x%02x%02x%02x%02x%02x/%s", qid, rnd[0], rnd[1], rnd[2],
	    rnd[3], rnd[4], rnd[5], cfg->hostname);
	rfc5322_date(date, sizeof(date), time(NULL));
	rfc5322_date(arrival, sizeof(arrival), (time_t)mi.received_at);
	headers_only = delayed || mi.dsn_ret == RET_HDRS ||
	    mi.size > RETURN_FULL_MAX;

	putf(&w, "Received: by %s (ferry) id %s; %s\r\n", cfg->hostname, qid,
	    date);
	putf(&w, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    cfg->hostname);
	putf(&w, "To: <%s>\r\n", mi.sender);
	putf(&w, "Subject: %s\r\n", delayed ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender");
	putf(&w, "Date: %s\r\n", date);
	putf(&w, "Message-ID: <%s.%02x%02x@%s>\r\n", qid, rnd[6], rnd[7],
	    cfg->hostname);
	putf(&w, "Auto-Submitted: auto-replied\r\n");
	putf(&w, "MIME-Version: 1.0\r\n");
	putf(&w, "Content-Type: multipart/report; report-type=delivery-status;"
	    "\r\n\tboundary=\"%s\"\r\n", boundary);
	putf(&w, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people */
	putf(&w, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	if (delayed) {
		char until[64];

		rfc5322_date(until, sizeof(until), (time_t)(mi.received_at +
		    cfg->max_lifetime));
		putf(&w, "This is the mail system at host %s.\r\n\r\n"
		    "Your message (queue id %s) has not been delivered to one\r\n"
		    "or more recipients yet. It is still being retried until\r\n"
		    "%s; you need not send it again.\r\n\r\n",
		    cfg->hostname, mi.qid, until);
	} else {
		putf(&w, "This is the mail system at host %s.\r\n\r\n"
		    "Your message (queue id %s) could not be delivered to one "
		    "or\r\nmore recipients. It is attached below.\r\n\r\n",
		    cfg->hostname, mi.qid);
	}
	for (i = 0; i < n; i++) {
		char diag[1024];

		clean(diag, sizeof(diag), r[i].detail && r[i].detail[0] ?
		    r[i].detail : r[i].diagnostic);
		putf(&w, "<%s>: %s\r\n\r\n", r[i].addr, diag);
	}

	/* 2: for programs (RFC 3464 section 2) */
	putf(&w, "--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	putf(&w, "Reporting-MTA: dns; %s\r\n", cfg->hostname);
	putf(&w, "X-Ferry-Queue-ID: %s\r\n", mi.qid);
	if (mi.envid[0] != '\0')
		putf(&w, "Original-Envelope-Id: %s\r\n", mi.envid);
	putf(&w, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < n; i++) {
		char diag[1024], when[64];

		clean(diag, sizeof(diag), r[i].diagnostic);
		rfc5322_date(when, sizeof(when), r[i].last_attempt > 0 ?
		    (time_t)r[i].last_attempt : time(NULL));
		putf(&w, "\r\n");
		if (r[i].orcpt && r[i].orcpt[0])
			putf(&w, "Original-Recipient: %s\r\n", r[i].orcpt);
		putf(&w, "Final-Recipient: rfc822; %s\r\n", r[i].addr);
		putf(&w, "Action: %s\r\n", delayed ? "delayed" : "failed");
		putf(&w, "Status: %s\r\n", r[i].status);
		if (r[i].remote_mta && r[i].remote_mta[0])
			putf(&w, "Remote-MTA: dns; %s\r\n", r[i].remote_mta);
		putf(&w, "Diagnostic-Code: %s; %s\r\n",
		    r[i].remote_mta && r[i].remote_mta[0] ? "smtp" : "x-ferry",
		    diag);
		putf(&w, "Last-Attempt-Date: %s\r\n", when);
		if (delayed) {
			char until[64];

			rfc5322_date(until, sizeof(until), (time_t)
			    (mi.received_at + cfg->max_lifetime));
			putf(&w, "Will-Retry-Until: %s\r\n", until);
		}
	}

	/* 3: the message, or its headers */
	putf(&w, "\r\n--%s\r\nContent-Description: %s\r\n"
	    "Content-Type: %s\r\n\r\n", boundary,
	    headers_only ? (delayed ? "Delayed Message Headers" :
	    "Undelivered Message Headers") : "Undelivered Message",
	    headers_only ? "text/rfc822-headers" : "message/rfc822");
	return_original(&w, msgid, headers_only);
	putf(&w, "--%s--\r\n", boundary);

	if (w.failed || store_message_ready(st, w.msgid, (int64_t)w.size) < 0 ||
	    store_mark_dsn(st, w.msgid, mi.qid) < 0 ||
	    (delayed && store_mark_warned(st, msgid) < 0)) {
		store_msginfo_free(&mi);
		return -1;
	}
	log_info("%s: sender %s notification: %s", mi.qid,
	    delayed ? "delay" : "non-delivery", qid);
	log_info("%s: from=<>, size=%llu, nrcpt=1 (queue active)", qid,
	    (unsigned long long)w.size);
	if (qid_out)
		memcpy(qid_out, qid, QID_LEN + 1);
	store_msginfo_free(&mi);
	return 1;
}

int
bounce_queue(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out)
{
	return make_report(st, cfg, msgid, r, n, 0, qid_out);
}

int
bounce_queue_delay(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out)
{
	return make_report(st, cfg, msgid, r, n, 1, qid_out);
}
