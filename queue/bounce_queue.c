/*
 * bounce_queue.c - queues the delivery status notifications that
 * bounce_report() builds: reads the original's envelope and body from the
 * store, and writes the report as a new message from <> to the original
 * sender, in the runner's open transaction (the one recording the
 * failure).  Marks it as ferry's own notification, so it never bounces.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounce_queue.h"
#include "config.h"
#include "envelope.h"
#include "log.h"
#include "smtp_parse.h"
#include "util.h"

#define CHUNK_OUT (64 * 1024)   /* body chunks of the report */

/* The original, whole or (headers_only) its first BOUNCE_HEADERS_MAX
 * bytes, malloc'd. */
static int
read_original(struct store *st, int64_t msgid, int headers_only,
    uint8_t **out, size_t *outlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	uint32_t seq = 0;

	for (;;) {
		uint8_t *data;
		size_t n;
		int rc = store_body_chunk(st, msgid, seq++, &data, &n);

		if (rc < 0) {
			free(buf);
			return -1;
		}
		if (rc == 0)
			break;
		buf = xrealloc(buf, len + n + 1);
		memcpy(buf + len, data, n);
		len += n;
		free(data);
		if (headers_only && len >= BOUNCE_HEADERS_MAX)
			break;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static int
queue_report(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, int delayed,
    char *qid_out)
{
	struct store_msginfo mi;
	struct bounce_input in;
	struct envelope env;
	char qid[QID_LEN + 1];
	uint8_t *original = NULL, *report = NULL;
	size_t original_len = 0, report_len = 0, off;
	uint32_t seq = 0;
	int64_t id;
	int rc = -1;

	if (n == 0 || store_message_info(st, msgid, &mi) < 0)
		return n == 0 ? 0 : -1;
	if (!bounce_owed(mi.sender, mi.is_dsn, delayed, mi.warned)) {
		store_msginfo_free(&mi);
		return 0;
	}
	memset(&in, 0, sizeof(in));
	in.delayed = delayed;
	in.headers_only = delayed || mi.dsn_ret == RET_HDRS ||
	    mi.size > BOUNCE_RETURN_FULL_MAX;
	if (read_original(st, msgid, in.headers_only, &original,
	    &original_len) < 0)
		goto out;

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
	id = store_message_create(st, &env, qid);
	envelope_free(&env);
	if (id < 0)
		goto out;

	in.hostname = cfg->hostname;
	in.report_qid = qid;
	in.qid = mi.qid;
	in.sender = mi.sender;
	in.envid = mi.envid;
	in.received_at = mi.received_at;
	in.retry_until = mi.received_at + cfg->max_lifetime;
	in.original = original;
	in.original_len = original_len;
	in.now = time(NULL);
	random_bytes(in.random, sizeof(in.random));
	bounce_report(&in, r, n, &report, &report_len);

	for (off = 0; off < report_len; off += CHUNK_OUT) {
		size_t len = report_len - off < CHUNK_OUT ? report_len - off :
		    CHUNK_OUT;

		if (store_body_append(st, id, seq++, report + off, len) < 0)
			goto out;
	}
	if (store_message_ready(st, id, (int64_t)report_len) < 0 ||
	    store_mark_dsn(st, id, mi.qid) < 0 ||
	    (delayed && store_mark_warned(st, msgid) < 0))
		goto out;
	{
		struct log_fields nf = {
			.event = delayed ? "delay_notice" : "bounce",
			.qid = mi.qid,
		};
		struct log_fields af = {
			.event = "accepted", .qid = qid, .from = "",
			.has_size = 1, .size = report_len,
			.has_nrcpt = 1, .nrcpt = 1,
		};

		log_event(LOG_INFO, &nf, "%s: sender %s notification: %s",
		    mi.qid, delayed ? "delay" : "non-delivery", qid);
		log_event(LOG_INFO, &af, "%s: from=<>, size=%zu, nrcpt=1 "
		    "(queue active)", qid, report_len);
	}
	if (qid_out)
		memcpy(qid_out, qid, QID_LEN + 1);
	rc = 1;
out:
	free(original);
	free(report);
	store_msginfo_free(&mi);
	return rc;
}

int
bounce_queue(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out)
{
	return queue_report(st, cfg, msgid, r, n, 0, qid_out);
}

int
bounce_queue_delay(struct store *st, const struct ferry_config *cfg,
    int64_t msgid, const struct bounce_rcpt *r, size_t n, char *qid_out)
{
	return queue_report(st, cfg, msgid, r, n, 1, qid_out);
}
