/*
 * stall_queue.c - queues the stall report (stall.h) as a new message
 * from the null sender to queue { notify }, in the runner's open
 * transaction, as bounce_queue.c queues a bounce: it takes the usual
 * routes, and having the null sender it is never bounced (no loops).
 */
#include "autoconfig.h"

#include <string.h>

#include "config.h"
#include "envelope.h"
#include "log.h"
#include "smtp_parse.h"
#include "stall_queue.h"
#include "util.h"

#define CHUNK_OUT (64 * 1024)

int
stall_queue_report(struct store *st, const struct ferry_config *cfg,
    const uint8_t *report, size_t len, char *qid_out)
{
	struct envelope env;
	char qid[QID_LEN + 1];
	uint32_t seq = 0;
	size_t off;
	int64_t id;

	envelope_init(&env);
	env.sender = xstrdup("");
	env.client_addr = xstrdup("127.0.0.1");
	env.client_name = xstrdup("localhost");
	env.helo = xstrdup(cfg->hostname);
	env.protocol = xstrdup("local");
	env.auth_user = xstrdup("");
	env.received_at_us = (int64_t)(now_wall() * 1e6);
	env.dsn_envid = xstrdup("");
	envelope_add_rcpt(&env, cfg->stall_notify, NOTIFY_NEVER, "");
	id = store_message_create(st, &env, qid);
	envelope_free(&env);
	if (id < 0)
		return -1;
	for (off = 0; off < len; off += CHUNK_OUT) {
		size_t n = len - off < CHUNK_OUT ? len - off : CHUNK_OUT;

		if (store_body_append(st, id, seq++, report + off, n) < 0)
			return -1;
	}
	if (store_message_ready(st, id, (int64_t)len) < 0)
		return -1;
	log_info("%s: from=<>, size=%zu, nrcpt=1 (queue active)", qid, len);
	memcpy(qid_out, qid, QID_LEN + 1);
	return 0;
}
