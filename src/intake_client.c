/*
 * intake_client.c - the SMTP worker's side of the intake protocol (see
 * intake_client.h and ipc.h).
 *
 * Security stance: the runner is trusted more than the client but its
 * answers are still decoded strictly; a malformed answer fails the
 * transaction and drops the connection.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "intake_client.h"
#include "ipc.h"
#include "log.h"
#include "route_caps.h"
#include "store_health.h"
#include "util.h"

/* What the runner may answer a worker. */
static const struct channel_rule runner_may_send[] = {
	{ IMSG_TX_BEGUN, 0 },
	{ IMSG_TX_COMMITTED, 0 },
	{ IMSG_TX_FAIL, 0 },
	{ IMSG_QUEUE_STATE, 0 },
	{ IMSG_ROUTE_CAPS, 0 },
	{ 0, 0 }
};

/* An answer is a short string; the longest frame is the routes' note. */
#define ANSWER_CAP 512

/* The event loop's turn (intake_turn_begin); 0: turns are not told, so
 * every read is made. */
static uint64_t loop_turn;
#define FRAME_CAP (ROUTE_CAPS_FRAME_MAX > ANSWER_CAP ? \
	ROUTE_CAPS_FRAME_MAX : ANSWER_CAP)

void
intake_client_init(struct intake_client *ic, const char *path)
{
	memset(ic, 0, sizeof(*ic));
	ic->path = xstrdup(path);
	channel_init(&ic->ch, -1, "the queue runner", runner_may_send,
	    FRAME_CAP, 0);
	route_caps_table_init(&ic->routes);
}

static void
disconnect(struct intake_client *ic)
{
	channel_close(&ic->ch);
}

void
intake_client_close(struct intake_client *ic)
{
	channel_free(&ic->ch);
	free(ic->path);
	route_caps_table_free(&ic->routes);
	memset(ic, 0, sizeof(*ic));
	ic->ch.fd = -1;
}

static int
fail(struct intake_client *ic, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct intake_client *ic, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ic->reason, sizeof(ic->reason), fmt, ap);
	va_end(ap);
	disconnect(ic);
	return -1;
}

static int
ensure_connected(struct intake_client *ic)
{
	char why[256];
	int fd;

	if (ic->ch.fd >= 0)
		return 0;
	if ((fd = unix_connect_nonblock(ic->path, why, sizeof(why))) < 0)
		return fail(ic, "%s: %s", ic->path, why);
	channel_reopen(&ic->ch, fd);
	ic->noted = 0;
	ic->quiet_turn = 0;
	route_caps_table_free(&ic->routes);   /* this runner will say */
	ic->opened_ms = now_ms();
	return 0;
}

/* Ends the frame begun on the channel and writes it out. */
static int
send_frame(struct intake_client *ic, int64_t deadline)
{
	(void)channel_end(&ic->ch);
	if (channel_flush_wait(&ic->ch, deadline) < 0)
		return fail(ic, "%s", ic->ch.error);
	return 0;
}

/* The runner's state note (IMSG_QUEUE_STATE), sent unasked when the
 * connection opens and when the state changes: kept in ic.  0, or -1
 * when malformed (the connection is dropped). */
static int
take_queue_state(struct intake_client *ic, struct ipc_in *in)
{
	uint8_t state;
	uint64_t headroom;

	if (ipc_get_u8(in, &state) < 0 || state > QUEUE_STATE_FAILING ||
	    ipc_get_u64(in, &headroom) < 0 || ipc_end(in) < 0) {
		channel_violation(&ic->ch, "malformed QUEUE_STATE");
		return fail(ic, "malformed QUEUE_STATE from the queue runner");
	}
	ic->queue_state = state;
	ic->queue_headroom = headroom;
	ic->noted = 1;
	return 0;
}

/* A note the runner sends unasked (QUEUE_STATE, ROUTE_CAPS): 1 when in
 * was one and is taken, 0 when it is something else, -1 when malformed
 * (the connection is dropped). */
static int
take_note(struct intake_client *ic, struct ipc_in *in)
{
	if (in->type == IMSG_QUEUE_STATE)
		return take_queue_state(ic, in) < 0 ? -1 : 1;
	if (in->type != IMSG_ROUTE_CAPS)
		return 0;
	if (route_caps_decode(in, &ic->routes) < 0) {
		channel_violation(&ic->ch, "malformed ROUTE_CAPS");
		return fail(ic, "malformed ROUTE_CAPS from the queue runner");
	}
	return 1;
}

void
intake_turn_begin(void)
{
	loop_turn++;
}

void
intake_quiet(struct intake_client *ic)
{
	ic->quiet_turn = loop_turn;
}

/* Reads what the runner sent while nothing is in flight: only notes may
 * come then.  0, or -1 when the connection is gone (reason set). */
static int
read_notes(struct intake_client *ic)
{
	struct ipc_in in;
	int n, got;

	if (loop_turn != 0 && ic->quiet_turn == loop_turn &&
	    ic->ch.rlen == ic->ch.roff)
		return 0;       /* poll saw nothing this turn */
	for (;;) {
		n = channel_fill(&ic->ch);
		if (n < 0 && ic->ch.fd < 0)
			return fail(ic, "the queue runner broke the protocol");
		while ((got = channel_next(&ic->ch, &in)) == 1) {
			int note = take_note(ic, &in);

			if (note < 0)
				return -1;
			if (note == 0) {
				channel_violation(&ic->ch,
				    "an answer nothing asked for");
				return fail(ic, "unexpected %s from the queue "
				    "runner", ipc_type_name(in.type));
			}
		}
		if (got < 0)
			return fail(ic, "the queue runner broke the protocol");
		if (n < 0)
			return fail(ic, "the queue runner closed the "
			    "connection");
		if (n == 0) {
			ic->quiet_turn = loop_turn;
			return 0;
		}
	}
}

/* Decodes the answer to BEGIN or COMMIT: want (with a qid) or TX_FAIL.
 * 0 yes, -1 no (reason set; the connection is dropped when the answer
 * was malformed). */
static int
decode_answer(struct intake_client *ic, struct ipc_in *inp, int want,
    char *qid, size_t qidlen)
{
	struct ipc_in in = *inp;
	char *text = NULL;

	if (in.type == want) {
		if (ipc_get_str(&in, &text, 64) < 0 || ipc_end(&in) < 0) {
			free(text);
			channel_violation(&ic->ch, "malformed answer");
			return fail(ic, "malformed %s from the queue runner",
			    ipc_type_name(want));
		}
		if (qid)
			ferry_strlcpy(qid, text, qidlen);
		free(text);
		return 0;
	}
	if (in.type == IMSG_TX_FAIL) {
		if (ipc_get_str(&in, &text, 200) < 0 || ipc_end(&in) < 0) {
			free(text);
			channel_violation(&ic->ch, "malformed TX_FAIL");
			return fail(ic, "malformed TX_FAIL from the queue "
			    "runner");
		}
		snprintf(ic->reason, sizeof(ic->reason), "%s", text);
		free(text);
		return -1;
	}
	channel_violation(&ic->ch, "an answer out of turn");
	return fail(ic, "unexpected %s from the queue runner",
	    ipc_type_name(in.type));
}

/* Reads the answer to BEGIN or COMMIT: want (with a qid) or TX_FAIL. */
static int
await_answer(struct intake_client *ic, int want, char *qid, size_t qidlen,
    int64_t deadline)
{
	struct ipc_in in;
	int note;

	do {
		if (channel_read_wait(&ic->ch, &in, deadline) < 0)
			return fail(ic, "%s", ic->ch.error);
		if ((note = take_note(ic, &in)) < 0)
			return -1;
	} while (note == 1);
	return decode_answer(ic, &in, want, qid, qidlen);
}

int
intake_begin(struct intake_client *ic, const struct envelope *env,
    char *qid, size_t qidlen, int64_t deadline)
{
	int attempt;

	/* A connection left from an earlier runner may be dead: one retry
	 * on a fresh connection. */
	for (attempt = 0; attempt < 2; attempt++) {
		int reused = ic->ch.fd >= 0;

		if (ensure_connected(ic) < 0)
			return -1;
		envelope_encode(env, channel_begin(&ic->ch, IMSG_TX_BEGIN));
		ic->seq = 0;
		if (send_frame(ic, deadline) == 0) {
			if (await_answer(ic, IMSG_TX_BEGUN, qid, qidlen,
			    deadline) == 0)
				return 0;
			if (ic->ch.fd >= 0)
				return -1;   /* the runner said no */
		}
		if (!reused)
			return -1;
	}
	return -1;
}

int
intake_data(struct intake_client *ic, const void *buf, size_t len,
    int64_t deadline)
{
	struct ipc_out *m;

	if (ic->ch.fd < 0)
		return fail(ic, "not connected to the queue runner");
	m = channel_begin(&ic->ch, IMSG_TX_DATA);
	ipc_add_u32(m, ic->seq++);
	ipc_add_data(m, buf, len);
	return send_frame(ic, deadline);
}

int
intake_commit(struct intake_client *ic, uint64_t size, int64_t deadline)
{
	if (ic->ch.fd < 0)
		return fail(ic, "not connected to the queue runner");
	ipc_add_u64(channel_begin(&ic->ch, IMSG_TX_COMMIT), size);
	if (send_frame(ic, deadline) < 0)
		return -1;
	return await_answer(ic, IMSG_TX_COMMITTED, NULL, 0, deadline);
}

void
intake_abort(struct intake_client *ic, int64_t deadline)
{
	if (ic->ch.fd < 0)
		return;
	(void)channel_begin(&ic->ch, IMSG_TX_ABORT);
	(void)send_frame(ic, deadline);
}

/* ---- one step at a time, for an event loop ------------------------------ */

/* Ends the frame begun and writes what the socket takes now. */
static int
send_nowait(struct intake_client *ic)
{
	(void)channel_end(&ic->ch);
	if (channel_flush(&ic->ch) < 0)
		return fail(ic, "lost the connection to the queue runner");
	return 0;
}

int
intake_send_begin(struct intake_client *ic, const struct envelope *env)
{
	if (ensure_connected(ic) < 0)
		return -1;
	envelope_encode(env, channel_begin(&ic->ch, IMSG_TX_BEGIN));
	ic->seq = 0;
	ic->just_asked = 0;
	return send_nowait(ic);
}

int
intake_hold_data(struct intake_client *ic, const void *buf, size_t len)
{
	struct ipc_out *m;

	if (ic->ch.fd < 0)
		return fail(ic, "not connected to the queue runner");
	m = channel_begin(&ic->ch, IMSG_TX_DATA);
	ipc_add_u32(m, ic->seq++);
	ipc_add_data(m, buf, len);
	(void)channel_end(&ic->ch);
	return 0;
}

int
intake_send_data(struct intake_client *ic, const void *buf, size_t len)
{
	if (intake_hold_data(ic, buf, len) < 0)
		return -1;
	return intake_flush(ic);
}

int
intake_send_commit(struct intake_client *ic, uint64_t size)
{
	if (ic->ch.fd < 0)
		return fail(ic, "not connected to the queue runner");
	ipc_add_u64(channel_begin(&ic->ch, IMSG_TX_COMMIT), size);
	if (send_nowait(ic) < 0)
		return -1;
	/* the runner answers after its commit and sync: reading at once
	 * would only find the socket empty */
	ic->just_asked = channel_pending(&ic->ch) == 0;
	return 0;
}

void
intake_send_abort(struct intake_client *ic)
{
	if (ic->ch.fd < 0)
		return;
	(void)channel_begin(&ic->ch, IMSG_TX_ABORT);
	(void)send_nowait(ic);
}

int
intake_flush(struct intake_client *ic)
{
	if (ic->ch.fd < 0 || channel_pending(&ic->ch) == 0)
		return 0;
	if (channel_flush(&ic->ch) < 0)
		return fail(ic, "lost the connection to the queue runner");
	return 0;
}

int
intake_poll_answer(struct intake_client *ic, int want, char *qid,
    size_t qidlen)
{
	struct ipc_in in;
	int n, got;

	if (ic->ch.fd < 0)
		return fail(ic, "not connected to the queue runner");
	if (intake_flush(ic) < 0)
		return -1;
	got = channel_next(&ic->ch, &in);
	if (got == 0 && ic->just_asked) {
		ic->just_asked = 0;     /* poll says when it comes */
		return 0;
	}
	ic->just_asked = 0;
	if (got == 0) {
		n = channel_fill(&ic->ch);
		if (n < 0 && ic->ch.fd < 0)
			return fail(ic, "the queue runner broke the protocol");
		got = channel_next(&ic->ch, &in);
		if (got == 0 && n < 0)
			return fail(ic, "the queue runner closed the connection");
	}
	while (got == 1) {
		int note = take_note(ic, &in);

		if (note < 0)
			return -1;
		if (note == 0)
			break;
		got = channel_next(&ic->ch, &in);
	}
	if (got < 0)
		return fail(ic, "the queue runner broke the protocol");
	if (got == 0)
		return 0;
	return decode_answer(ic, &in, want, qid, qidlen) == 0 ? 1 : -1;
}

void
intake_drop(struct intake_client *ic, const char *why)
{
	(void)fail(ic, "%s", why);
}

int
intake_fd(const struct intake_client *ic)
{
	return ic->ch.fd;
}

size_t
intake_unsent(const struct intake_client *ic)
{
	return ic->ch.fd < 0 ? 0 : channel_pending(&ic->ch);
}

int
intake_reusable(struct intake_client *ic)
{
	if (ic->ch.fd < 0 || ic->ch.eof || intake_flush(ic) < 0 ||
	    channel_pending(&ic->ch) > 0 || ic->ch.rlen != ic->ch.roff)
		return 0;
	return 1;
}

void
intake_read_notes(struct intake_client *ic)
{
	if (ic->ch.fd >= 0 && intake_flush(ic) == 0)
		(void)read_notes(ic);
}

enum intake_verdict
intake_queue_check(struct intake_client *ic, int64_t now, int64_t *until)
{
	int pending = ic->ch.fd >= 0 && !ic->noted;

	if (ic->ch.fd >= 0 && intake_flush(ic) == 0)
		(void)read_notes(ic);
	/* A connection closed before its first note: the runner would not
	 * take it (or died taking it).  One that had its notes was an
	 * earlier runner's: it is replaced at once, and the new one asks
	 * the runner now there (or finds none).  At most one connect per
	 * call, so that this never spins. */
	if (ic->ch.fd < 0 && pending)
		return INTAKE_QUEUE_DOWN;
	if (ic->ch.fd < 0 && ensure_connected(ic) < 0)
		return INTAKE_QUEUE_DOWN;
	if (!ic->noted) {
		if (now - ic->opened_ms < INTAKE_ANSWER_MS) {
			*until = ic->opened_ms + INTAKE_ANSWER_MS;
			return INTAKE_QUEUE_WAIT;
		}
		snprintf(ic->reason, sizeof(ic->reason), "the queue runner "
		    "did not answer within %d ms", INTAKE_ANSWER_MS);
		return INTAKE_QUEUE_DOWN;
	}
	switch (ic->queue_state) {
	case QUEUE_STATE_OK:
		return INTAKE_QUEUE_OK;
	case QUEUE_STATE_LOW_SPACE:
		return INTAKE_QUEUE_LOW_SPACE;
	default:
		snprintf(ic->reason, sizeof(ic->reason), "the queue runner "
		    "says its store is failing or unavailable");
		return INTAKE_QUEUE_FAILING;
	}
}
