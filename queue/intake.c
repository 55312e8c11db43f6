/*
 * intake.c - the queue runner's side of the intake protocol: one
 * connection per SMTP worker.
 *
 * Security stance: a worker may be compromised, so its frames are decoded
 * strictly and checked against the protocol's order (BEGIN, DATA..., then
 * COMMIT or ABORT), sequence numbers and sizes.  A worker that breaks the
 * protocol is disconnected and its message in flight deleted; it can add
 * messages and nothing else.
 *
 * While the store cannot take mail (below queue { min_free }, or commits
 * failing) a TX_BEGIN is answered TX_FAIL at once with the SMTP reply the
 * worker is to give, and every worker is told the queue's state
 * (IMSG_QUEUE_STATE) when it connects and whenever the state changes, so
 * that it can refuse at MAIL before any data is sent.
 *
 * DKIM: when the runner has signing keys (intake_set_dkim) and the client
 * is one whose mail is signed, the message is fed to the signer as it
 * arrives and its first chunk is held back; at COMMIT the DKIM-Signature
 * fields are put before it and it is stored then, so the stored message
 * - what every delivery attempt sends - is the signed one.  A message
 * that cannot be signed is stored as it came, with a log line.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "channel.h"
#include "dkim.h"
#include "envelope.h"
#include "intake.h"
#include "ipc.h"
#include "log.h"
#include "route_caps.h"
#include "store.h"
#include "util.h"

#define CHUNK_MAX (256 * 1024)

enum conn_state {
	C_IDLE,          /* expecting TX_BEGIN */
	C_RECEIVING,     /* expecting TX_DATA, TX_COMMIT or TX_ABORT */
	C_COMMIT_WAIT,   /* complete; waiting for the turn's commit */
	C_FAILED,        /* the store failed; the COMMIT will get TX_FAIL */
};

/* What a worker may send the runner. */
static const struct channel_rule worker_may_send[] = {
	{ IMSG_TX_BEGIN, 0 },
	{ IMSG_TX_DATA, 0 },
	{ IMSG_TX_COMMIT, 0 },
	{ IMSG_TX_ABORT, 0 },
	{ 0, 0 }
};

struct intake_conn {
	struct channel ch;
	uint64_t id;
	enum conn_state state;
	int64_t msgid;
	char qid[QID_LEN + 1];
	char *sender;
	char *client;        /* "name[address]", for the log */
	char *helo;
	size_t nrcpt;
	uint32_t next_seq;
	uint64_t received;
	struct dkim_msg *dkim;     /* signing this message, or NULL */
	uint8_t *first;            /* chunk 0, held back while signing */
	size_t first_len;
};

/* The runner's signing keys; NULL when it has none. */
static const struct dkim_signing *signing;

void
intake_set_dkim(const struct dkim_signing *s)
{
	signing = s;
}

struct intake_conn *
intake_conn_new(int fd, uint64_t id)
{
	struct intake_conn *c = xcalloc(1, sizeof(*c));
	char peer[64];

	snprintf(peer, sizeof(peer), "SMTP worker on intake connection %llu",
	    (unsigned long long)id);
	channel_init(&c->ch, fd, peer, worker_may_send, IPC_MAX_PAYLOAD, 0);
	c->id = id;
	c->state = C_IDLE;
	c->msgid = -1;
	return c;
}

int
intake_conn_fd(const struct intake_conn *c)
{
	return c->ch.fd;
}

int
intake_conn_pending(const struct intake_conn *c)
{
	return c->state == C_COMMIT_WAIT;
}

int
intake_conn_want_write(const struct intake_conn *c)
{
	return channel_pending(&c->ch) > 0;
}

int
intake_conn_flush(struct intake_conn *c)
{
	return channel_flush(&c->ch);
}

static void
send_answer(struct intake_conn *c, int type, const char *text)
{
	ipc_add_str(channel_begin(&c->ch, type), text);
	(void)channel_end(&c->ch);
	(void)channel_flush(&c->ch);
}

static void
forget_message(struct intake_conn *c)
{
	free(c->sender);
	c->sender = NULL;
	free(c->client);
	c->client = NULL;
	free(c->helo);
	c->helo = NULL;
	dkim_msg_free(c->dkim);
	c->dkim = NULL;
	free(c->first);
	c->first = NULL;
	c->first_len = 0;
	c->msgid = -1;
	c->qid[0] = '\0';
	c->nrcpt = 0;
	c->next_seq = 0;
	c->received = 0;
	c->state = C_IDLE;
}

/* Deletes the message in flight (inside the open transaction; the runner
 * commits it at the end of the turn, so its committed 'incoming' rows do
 * not linger). */
static void
drop_message(struct intake_conn *c, struct store *st)
{
	if (c->msgid >= 0 && store_begin(st) == 0)
		(void)store_message_delete(st, c->msgid);
	forget_message(c);
}

static int
violation(struct intake_conn *c, const char *what, int type)
{
	char why[160];

	snprintf(why, sizeof(why), "%s (%s)", what, ipc_type_name(type));
	return channel_violation(&c->ch, why);
}

const char *
intake_refusal(enum queue_state state)
{
	switch (state) {
	case QUEUE_STATE_LOW_SPACE:
		return INTAKE_REFUSE_LOW_SPACE;
	case QUEUE_STATE_FAILING:
		return INTAKE_REFUSE_FAILING;
	default:
		return NULL;
	}
}

void
intake_conn_send_state(struct intake_conn *c, enum queue_state state,
    uint64_t headroom)
{
	struct ipc_out *m = channel_begin(&c->ch, IMSG_QUEUE_STATE);

	ipc_add_u8(m, (uint8_t)state);
	ipc_add_u64(m, headroom);
	(void)channel_end(&c->ch);
	(void)channel_flush(&c->ch);
}

void
intake_conn_send_route_caps(struct intake_conn *c,
    const struct route_caps_table *t, const struct ferry_config *cfg)
{
	(void)route_caps_encode(t, cfg, channel_begin(&c->ch,
	    IMSG_ROUTE_CAPS));
	(void)channel_end(&c->ch);
	(void)channel_flush(&c->ch);
}

static int
on_begin(struct intake_conn *c, struct store *st, struct ipc_in *in,
    enum queue_state state)
{
	struct envelope env;
	const char *refusal = intake_refusal(state);

	if (c->state != C_IDLE)
		return violation(c, "BEGIN inside a transaction", in->type);
	if (envelope_decode(in, &env) < 0)
		return violation(c, "malformed envelope", in->type);
	if (st == NULL) {
		/* the runner has no usable store: refuse at once */
		envelope_free(&env);
		send_answer(c, IMSG_TX_FAIL, "queue unavailable");
		return 0;
	}
	if (refusal != NULL) {
		/* no log line: the worker logs its refusal, and the runner
		 * logged the state once when it began */
		envelope_free(&env);
		send_answer(c, IMSG_TX_FAIL, refusal);
		return 0;
	}
	if (store_begin(st) < 0 ||
	    (c->msgid = store_message_create(st, &env, c->qid)) < 0) {
		log_error("queue: cannot create a message: %s",
		    store_errmsg(st));
		envelope_free(&env);
		c->msgid = -1;
		send_answer(c, IMSG_TX_FAIL, "queue write error");
		return 0;
	}
	c->sender = xstrdup(env.sender);
	{
		char client[600];

		snprintf(client, sizeof(client), "%s[%s]",
		    env.client_name ? env.client_name : "unknown",
		    env.client_addr ? env.client_addr : "");
		c->client = xstrdup(client);
	}
	c->helo = env.helo != NULL ? xstrdup(env.helo) : NULL;
	c->nrcpt = env.nrcpts;
	/* not for a listener with dkim = false, nor an untrusted client */
	if (signing != NULL && !env.no_dkim &&
	    dkim_signing_wanted(signing, env.auth_user, env.client_addr))
		c->dkim = dkim_msg_new();
	c->state = C_RECEIVING;
	c->next_seq = 0;
	c->received = 0;
	envelope_free(&env);
	send_answer(c, IMSG_TX_BEGUN, c->qid);
	return 0;
}

static int
on_data(struct intake_conn *c, struct store *st, struct ipc_in *in,
    uint64_t max_size)
{
	const uint8_t *p;
	uint32_t seq;
	size_t len;

	if (c->state != C_RECEIVING && c->state != C_FAILED)
		return violation(c, "DATA outside a transaction", in->type);
	if (ipc_get_u32(in, &seq) < 0 || ipc_get_data(in, &p, &len) < 0 ||
	    ipc_end(in) < 0)
		return violation(c, "malformed DATA", in->type);
	if (seq != c->next_seq || len == 0 || len > CHUNK_MAX)
		return violation(c, "DATA out of sequence or size", in->type);
	c->next_seq++;
	c->received += len;
	if (c->received > max_size)
		return violation(c, "message larger than the limit", in->type);
	if (c->state == C_FAILED)
		return 0;
	if (c->dkim != NULL) {
		dkim_msg_feed(c->dkim, p, len);
		if (seq == 0) {
			/* stored at COMMIT, after the signature */
			c->first = xmalloc(len);
			memcpy(c->first, p, len);
			c->first_len = len;
			return 0;
		}
	}
	if (store_begin(st) < 0 ||
	    store_body_append(st, c->msgid, seq, p, len) < 0) {
		log_error("%s: queue write error: %s", c->qid,
		    store_errmsg(st));
		return -2;   /* the whole transaction is lost */
	}
	return 0;
}

/* Signs the message and stores its first chunk behind the signature
 * (or as it came, when it cannot be signed); *size grows by the
 * signature's length.  0, or -1 when the store failed. */
static int
sign_and_store_first(struct intake_conn *c, struct store *st,
    uint64_t *size)
{
	char why[256];
	char *sig = dkim_msg_sign(c->dkim, signing, time(NULL), why,
	    sizeof(why));
	size_t siglen = sig != NULL ? strlen(sig) : 0;
	uint8_t *chunk;
	int rc = 0;

	if (sig == NULL && why[0] != '\0')
		log_warn("%s: not DKIM-signed: %s; relayed unsigned", c->qid,
		    why);
	if (siglen + c->first_len > 0) {
		chunk = xmalloc(siglen + c->first_len);
		if (siglen > 0)
			memcpy(chunk, sig, siglen);
		if (c->first_len > 0)
			memcpy(chunk + siglen, c->first, c->first_len);
		if (store_begin(st) < 0 || store_body_append(st, c->msgid, 0,
		    chunk, siglen + c->first_len) < 0)
			rc = -1;
		free(chunk);
	}
	free(sig);
	*size += siglen;
	c->received += siglen;
	return rc;
}

static int
on_commit(struct intake_conn *c, struct store *st, struct ipc_in *in)
{
	uint64_t size;

	if (c->state != C_RECEIVING && c->state != C_FAILED)
		return violation(c, "COMMIT outside a transaction", in->type);
	if (ipc_get_u64(in, &size) < 0 || ipc_end(in) < 0)
		return violation(c, "malformed COMMIT", in->type);
	if (size != c->received)
		return violation(c, "COMMIT size differs from the data",
		    in->type);
	if (c->state == C_FAILED) {
		send_answer(c, IMSG_TX_FAIL, "queue write error");
		drop_message(c, st);
		return 0;
	}
	if (c->dkim != NULL && sign_and_store_first(c, st, &size) < 0) {
		log_error("%s: queue write error: %s", c->qid,
		    store_errmsg(st));
		return -2;
	}
	if (store_begin(st) < 0 ||
	    store_message_ready(st, c->msgid, (int64_t)size) < 0) {
		log_error("%s: queue write error: %s", c->qid,
		    store_errmsg(st));
		return -2;
	}
	c->state = C_COMMIT_WAIT;
	return 0;
}

static int
on_abort(struct intake_conn *c, struct store *st, struct ipc_in *in)
{
	if (ipc_end(in) < 0)
		return violation(c, "malformed ABORT", in->type);
	if (c->state == C_IDLE)
		return 0;   /* nothing in flight: harmless */
	if (c->state == C_COMMIT_WAIT)
		return violation(c, "ABORT after COMMIT", in->type);
	drop_message(c, st);
	return 0;
}

int
intake_conn_read(struct intake_conn *c, struct store *st, uint64_t max_size,
    enum queue_state state)
{
	struct ipc_in in;
	int rc = 0, got;

	if (channel_fill(&c->ch) < 0)
		return -1;
	while ((got = channel_next(&c->ch, &in)) > 0) {
		if (c->state == C_COMMIT_WAIT)
			return violation(c, "frame while awaiting commit",
			    in.type);
		switch (in.type) {
		case IMSG_TX_BEGIN:
			rc = on_begin(c, st, &in, state);
			break;
		case IMSG_TX_DATA:
			rc = on_data(c, st, &in, max_size);
			break;
		case IMSG_TX_COMMIT:
			rc = on_commit(c, st, &in);
			break;
		case IMSG_TX_ABORT:
			rc = on_abort(c, st, &in);
			break;
		}
		if (rc != 0)
			return rc;
	}
	return got < 0 ? -1 : 0;
}

void
intake_conn_committed(struct intake_conn *c, int ok,
    struct intake_stats *stats)
{
	if (c->state != C_COMMIT_WAIT)
		return;
	if (ok) {
		char sender[1100];
		struct log_fields f = {
			.event = "accepted", .qid = c->qid, .from = c->sender,
			.client = c->client, .helo = c->helo,
			.has_size = 1, .size = c->received,
			.has_nrcpt = 1, .nrcpt = c->nrcpt,
		};

		log_event(LOG_INFO, &f,
		    "%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)",
		    c->qid, log_sanitize(sender, sizeof(sender), c->sender,
		    strlen(c->sender)), (unsigned long long)c->received,
		    c->nrcpt);
		send_answer(c, IMSG_TX_COMMITTED, c->qid);
		stats->messages++;
	} else {
		send_answer(c, IMSG_TX_FAIL, "queue commit failed");
		stats->failed++;
	}
	forget_message(c);
}

void
intake_conn_rolled_back(struct intake_conn *c)
{
	switch (c->state) {
	case C_RECEIVING:
		/* its rows from this transaction are gone; rows committed
		 * earlier are removed when the worker ends the message */
		c->state = C_FAILED;
		break;
	case C_COMMIT_WAIT:
		/* answered by intake_conn_committed(c, 0) */
		break;
	default:
		break;
	}
}

void
intake_conn_free(struct intake_conn *c, struct store *st)
{
	if (c->state == C_RECEIVING || c->state == C_FAILED)
		drop_message(c, st);
	channel_free(&c->ch);
	free(c->sender);
	free(c->client);
	free(c->helo);
	free(c);
}
