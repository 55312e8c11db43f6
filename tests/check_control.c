/*
 * check_control.c - unit tests for queue/control.c: control_serve over a
 * real socketpair, against a real store in a temporary directory.  Each
 * test writes a CTL_REQUEST frame to one end, lets control_serve answer
 * on the other, checks the answer's framing (CTL_ANSWER pieces, then
 * CTL_ANSWER_END) and parses the document with jansson: the shapes of
 * status and queue list/show, the writes and their effect on the store,
 * the wake and busy hooks, every way a request can be malformed, and a
 * peer that breaks the protocol dropped unanswered.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "control.h"
#include "envelope.h"
#include "ipc.h"
#include "json_bytes.h"
#include "log.h"
#include "smtp_parse.h"
#include "store.h"
#include "util.h"

static char tmpdir[64];
static struct store *st;
static struct control_ctx ctx;
static int wakes, busy_calls, busy_answer;
static char busy_qid[QID_LEN + 1];

static void
on_wake(void *arg)
{
	ck_assert_ptr_eq(arg, &ctx);
	wakes++;
}

static int
on_busy(void *arg, const char *qid)
{
	ck_assert_ptr_eq(arg, &ctx);
	busy_calls++;
	snprintf(busy_qid, sizeof(busy_qid), "%s", qid);
	return busy_answer;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void
setup(void)
{
	char path[128], err[256];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_control.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/queue.db", tmpdir);
	st = store_open(path, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	memset(&ctx, 0, sizeof(ctx));
	ctx.st = st;
	ctx.agents_total = 4;
	ctx.agents_busy = 1;
	ctx.workers_total = -1;
	ctx.workers_busy = -1;
	ctx.messages_in = 17;
	ctx.commits = 9;
	ctx.wake = on_wake;
	ctx.wake_arg = &ctx;
	ctx.busy = on_busy;
	wakes = busy_calls = busy_answer = 0;
	busy_qid[0] = '\0';
}

static void
teardown(void)
{
	store_close(st);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- helpers ------------------------------------------------------------- */

static struct envelope_rcpt rcpts[] = {
	{ "alice@example.org", NOTIFY_SUCCESS | NOTIFY_FAILURE,
	  "rfc822;alice@example.org" },
	{ "bob@example.net", 0, "" },
};

/* A complete message; its qid in qid. */
static int64_t
add_msg(char *qid, const char *body)
{
	struct envelope e;
	int64_t id;

	memset(&e, 0, sizeof(e));
	e.sender = "sender@example.com";
	e.client_addr = "192.0.2.7";
	e.client_name = "client.example";
	e.helo = "client.example";
	e.protocol = "ESMTP";
	e.auth_user = "";
	e.received_at_us = (int64_t)((now_wall() - 3600) * 1e6);
	e.size_declared = -1;
	e.dsn_envid = "";
	e.rcpts = rcpts;
	e.nrcpts = e.rcpts_cap = 2;
	ck_assert_int_eq(store_begin(st), 0);
	id = store_message_create(st, &e, qid);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(store_body_append(st, id, 0, body, strlen(body)), 0);
	ck_assert_int_eq(store_message_ready(st, id, (int64_t)strlen(body)),
	    0);
	ck_assert_int_eq(store_commit(st), 0);
	return id;
}

/* What came back on the client's end, read by a thread while
 * control_serve writes (a big answer does not fit the socket's buffer). */
struct reader {
	int fd;
	uint8_t *buf;
	size_t len;
	ssize_t last;                      /* the last read's result */
};

static void *
read_to_eof(void *arg)
{
	struct reader *r = arg;
	size_t cap = 1 << 16;

	r->buf = xmalloc(cap);
	for (;;) {
		if (r->len == cap) {
			cap *= 2;
			r->buf = xrealloc(r->buf, cap);
		}
		r->last = read(r->fd, r->buf + r->len, cap - r->len);
		if (r->last <= 0)
			break;
		r->len += (size_t)r->last;
	}
	return NULL;
}

/* Sends len bytes of req (and shuts the write side when eof), lets
 * control_serve answer, returns the raw bytes that came back (malloc'd;
 * *rawlen of them). */
static uint8_t *
exchange_raw(const void *req, size_t len, int eof, size_t *rawlen)
{
	struct reader r;
	pthread_t t;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	if (len > 0)
		ck_assert_int_eq(write_all(sv[0], req, len), 0);
	if (eof)
		shutdown(sv[0], SHUT_WR);
	memset(&r, 0, sizeof(r));
	r.fd = sv[0];
	ck_assert_int_eq(pthread_create(&t, NULL, read_to_eof, &r), 0);
	control_serve(sv[1], &ctx);        /* closes sv[1] */
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(r.last, 0);       /* closed after the answer */
	close(sv[0]);
	*rawlen = r.len;
	return r.buf;
}

/* A CTL_REQUEST frame of the words in req, split at each space exactly
 * (two spaces make an empty word); its size in *len (malloc'd). */
static uint8_t *
request_frame(const char *req, size_t *len)
{
	struct ipc_out m = { 0 };
	const uint8_t *f;
	char *copy = xstrdup(req), *p, *sp;
	uint32_t n = 0;
	uint8_t *out;

	if (req[0] != '\0')
		for (n = 1, p = copy; *p != '\0'; p++)
			n += *p == ' ';
	ipc_out_init(&m, IMSG_CTL_REQUEST);
	ipc_add_u32(&m, n);
	for (p = copy; n > 0; n--, p = sp + 1) {
		sp = strchr(p, ' ');
		if (sp == NULL)
			sp = p + strlen(p);
		*sp = '\0';
		ipc_add_str(&m, p);
	}
	f = ipc_out_finish(&m, len);
	out = xmalloc(*len);
	memcpy(out, f, *len);
	ipc_out_free(&m);
	free(copy);
	return out;
}

/* The document carried by the answer frames in raw: CTL_ANSWER pieces of
 * at most CONTROL_ANSWER_PIECE bytes, then CTL_ANSWER_END and nothing
 * after it (malloc'd, NUL-terminated; its length in *len, the number of
 * pieces in *pieces). */
static char *
answer_doc(const uint8_t *raw, size_t rawlen, size_t *len, size_t *pieces)
{
	char *doc = xmalloc(rawlen + 1);
	size_t off = 0;

	*len = *pieces = 0;
	for (;;) {
		struct ipc_in in;
		long flen = ipc_frame(raw + off, rawlen - off, &in);
		const uint8_t *p;
		size_t n;

		ck_assert_msg(flen > 0, "an incomplete or bad frame at %zu of "
		    "%zu", off, rawlen);
		off += (size_t)flen;
		if (in.type == IMSG_CTL_ANSWER_END) {
			ck_assert_int_eq(ipc_end(&in), 0);
			break;
		}
		ck_assert_int_eq(in.type, IMSG_CTL_ANSWER);
		ck_assert_int_eq(ipc_get_data(&in, &p, &n), 0);
		ck_assert_int_eq(ipc_end(&in), 0);
		ck_assert_uint_le(n, CONTROL_ANSWER_PIECE);
		memcpy(doc + *len, p, n);
		*len += n;
		(*pieces)++;
	}
	ck_assert_uint_eq(off, rawlen);
	doc[*len] = '\0';
	return doc;
}

/* Asks req (words split at spaces) and returns the answer's document
 * (malloc'd). */
static char *
exchange(const char *req, size_t *anslen)
{
	uint8_t *f, *raw;
	size_t flen, rawlen, pieces;
	char *doc;

	f = request_frame(req, &flen);
	raw = exchange_raw(f, flen, 0, &rawlen);
	doc = answer_doc(raw, rawlen, anslen, &pieces);
	free(f);
	free(raw);
	return doc;
}

/* Asks req and parses the answer, which must be one JSON document. */
static json_t *
ask(const char *req)
{
	json_t *v;
	json_error_t jerr;
	char *ans;
	size_t len;

	ans = exchange(req, &len);
	v = json_loadb(ans, len, 0, &jerr);
	ck_assert_msg(v != NULL, "%s: %s", ans, jerr.text);
	free(ans);
	return v;
}

/* Sends raw bytes (then shuts the write side when eof): the peer broke
 * the protocol or went away, so it is dropped without a byte of answer. */
static void
ck_dropped(const void *req, size_t len, int eof)
{
	size_t rawlen;
	uint8_t *raw = exchange_raw(req, len, eof, &rawlen);

	ck_assert_uint_eq(rawlen, 0);
	free(raw);
}

static void
ck_ok(const json_t *v)
{
	ck_assert_msg(json_member_bool(v, "ok", -1) == 1, "error: %s",
	    json_member_str(v, "error", "(none)"));
}

/* The answer is {"ok":false,"error":...} containing want. */
static void
ck_error(const char *req, const char *want)
{
	json_t *v = ask(req);

	ck_assert_int_eq(json_member_bool(v, "ok", -1), 0);
	ck_assert_msg(strstr(json_member_str(v, "error", ""), want) != NULL,
	    "%s: error \"%s\", wanted \"%s\"", req,
	    json_member_str(v, "error", ""), want);
	ck_assert_uint_eq(json_object_size(v), 2);
	json_decref(v);
}

static void
state_of(const char *qid, char *state)
{
	if (store_admin_state(st, qid, state) != 0)
		strcpy(state, "<none>");
}

/* --- reading ------------------------------------------------------------- */

START_TEST(test_status)
{
	char q[QID_LEN + 1];
	json_t *v;
	const json_t *o;

	add_msg(q, "Subject: a\r\n\r\nx\r\n");
	add_msg(q, "Subject: b\r\n\r\nx\r\n");
	ck_assert_int_eq(store_admin_hold(st, q), 0);
	v = ask("status");
	ck_ok(v);
	o = json_object_get(v, "workers");
	ck_assert_int_eq(json_typeof(json_object_get(o, "total")), JSON_NULL);
	ck_assert_int_eq(json_typeof(json_object_get(o, "busy")), JSON_NULL);
	o = json_object_get(v, "agents");
	ck_assert(json_member_num(o, "total", 0) == 4);
	ck_assert(json_member_num(o, "busy", 0) == 1);
	o = json_object_get(v, "queue");
	ck_assert(json_member_num(o, "messages", 0) == 2);
	ck_assert(json_member_num(o, "active", 0) == 1);
	ck_assert(json_member_num(o, "hold", 0) == 1);
	ck_assert(json_member_num(o, "recipients_pending", 0) == 4);
	ck_assert(json_member_num(o, "oldest_received_at", 0) > 1e9);
	o = json_object_get(v, "intake");
	ck_assert(json_member_num(o, "messages", 0) == 17);
	ck_assert(json_member_num(o, "commits", 0) == 9);
	json_decref(v);

	/* an empty queue has no oldest message */
	ck_assert_int_eq(store_admin_delete(st, q), 0);
	ctx.workers_total = 8;
	ctx.workers_busy = 2;
	v = ask("status");
	ck_ok(v);
	ck_assert(json_member_num(json_object_get(v, "workers"), "total",
	    0) == 8);
	o = json_object_get(v, "queue");
	ck_assert(json_member_num(o, "messages", 0) == 1);
	json_decref(v);
}
END_TEST

START_TEST(test_list)
{
	char qa[QID_LEN + 1], qb[QID_LEN + 1];
	json_t *v;
	const json_t *msgs, *m, *r;

	v = ask("queue list");
	ck_ok(v);
	ck_assert_uint_eq(json_array_size(json_object_get(v, "messages")), 0);
	ck_assert_int_eq(json_member_bool(v, "truncated", -1), 0);
	json_decref(v);

	add_msg(qa, "Subject: a\r\n\r\nx\r\n");
	add_msg(qb, "Subject: b\r\n\r\nxy\r\n");
	ck_assert_int_eq(store_admin_hold(st, qb), 0);
	v = ask("queue  list");          /* an empty word is left out */
	ck_ok(v);
	msgs = json_object_get(v, "messages");
	ck_assert_uint_eq(json_array_size(msgs), 2);
	m = json_array_get(msgs, 0);
	ck_assert_str_eq(json_member_str(m, "id", ""), qa);
	ck_assert_str_eq(json_member_str(m, "state", ""), "active");
	ck_assert_str_eq(json_member_str(m, "sender", ""),
	    "sender@example.com");
	ck_assert(json_member_num(m, "size", 0) == 17);
	ck_assert(json_member_num(m, "age", 0) >= 3599);
	ck_assert(json_member_num(m, "age", 0) <= 3700);
	ck_assert(json_member_num(m, "received_at", 0) > 1e9);
	ck_assert(json_member_num(m, "pending", 0) == 2);
	ck_assert(json_member_num(m, "next_attempt", 0) > 1e9);
	ck_assert_int_eq(json_typeof(json_object_get(m, "last_reply")),
	    JSON_NULL);
	r = json_object_get(m, "recipients");
	ck_assert_uint_eq(json_array_size(r), 2);
	ck_assert_str_eq(json_string_value(json_array_get(r, 0)),
	    "alice@example.org");
	ck_assert_str_eq(json_string_value(json_array_get(r, 1)),
	    "bob@example.net");
	ck_assert_str_eq(json_member_str(json_array_get(msgs, 1), "state", ""),
	    "hold");
	ck_assert_int_eq(json_member_bool(v, "truncated", -1), 0);
	json_decref(v);
}
END_TEST

START_TEST(test_show)
{
	char q[QID_LEN + 1], req[64], *ans;
	json_t *v;
	const json_t *m, *r, *notify, *hist;
	size_t len, i;

	/* headers carry a control character and invalid UTF-8 */
	add_msg(q, "Subject: caf\xe9 \x1b[2J\r\nX-A: 1\r\n\r\nbody\r\n");
	ck_error("queue show 0123456789AB", "no message 0123456789AB");
	snprintf(req, sizeof(req), "queue show %s", q);
	/* on the wire (what ferryctl --json prints): ASCII only, the ESC and
	 * the invalid byte escaped */
	ans = exchange(req, &len);
	ck_assert_msg(strstr(ans, "\"Subject: caf\\u00E9 \\u001B[2J\\r\\n"
	    "X-A: 1\\r\\n\"") != NULL, "answer %s", ans);
	for (i = 0; i < len; i++)
		ck_assert_msg((unsigned char)ans[i] >= 0x20 &&
		    (unsigned char)ans[i] < 0x7f,
		    "byte %zu of the answer is 0x%02x", i,
		    (unsigned char)ans[i]);
	free(ans);
	v = ask(req);
	ck_ok(v);
	m = json_object_get(v, "message");
	ck_assert_str_eq(json_member_str(m, "id", ""), q);
	ck_assert_str_eq(json_member_str(m, "state", ""), "active");
	ck_assert_str_eq(json_member_str(m, "client_addr", ""), "192.0.2.7");
	ck_assert_str_eq(json_member_str(m, "client_name", ""),
	    "client.example");
	ck_assert_str_eq(json_member_str(m, "helo", ""), "client.example");
	ck_assert_str_eq(json_member_str(m, "protocol", ""), "ESMTP");
	ck_assert_int_eq(json_typeof(json_object_get(m, "auth_user")),
	    JSON_NULL);
	ck_assert_int_eq(json_typeof(json_object_get(m, "dsn_ret")), JSON_NULL);
	ck_assert_int_eq(json_typeof(json_object_get(m, "size_declared")),
	    JSON_NULL);
	ck_assert_int_eq(json_member_bool(m, "smtputf8", -1), 0);
	/* the invalid byte came through as U+00E9, the ESC as itself */
	ck_assert_str_eq(json_member_str(m, "headers", ""),
	    "Subject: caf\xc3\xa9 \x1b[2J\r\nX-A: 1\r\n");
	ck_assert_int_eq(json_member_bool(m, "headers_truncated", -1), 0);
	r = json_object_get(m, "recipients");
	ck_assert_uint_eq(json_array_size(r), 2);
	ck_assert_str_eq(json_member_str(json_array_get(r, 0), "address", ""),
	    "alice@example.org");
	ck_assert_str_eq(json_member_str(json_array_get(r, 0), "state", ""),
	    "pending");
	ck_assert(json_member_num(json_array_get(r, 0), "attempts", -1) == 0);
	notify = json_object_get(json_array_get(r, 0), "dsn_notify");
	ck_assert_uint_eq(json_array_size(notify), 2);
	ck_assert_str_eq(json_string_value(json_array_get(notify, 0)),
	    "SUCCESS");
	ck_assert(json_is_null(json_object_get(json_array_get(r, 1),
	    "dsn_notify")));
	hist = json_object_get(json_array_get(r, 0), "history");
	ck_assert(json_is_array(hist));
	ck_assert_uint_eq(json_array_size(hist), 0);
	json_decref(v);
}
END_TEST

/* A message leaves the queue into the history: "history" finds it by its
 * filters, "queue show" shows it from there. */
START_TEST(test_history)
{
	char q[QID_LEN + 1], req[128];
	struct store_due *due;
	size_t n, i;
	int64_t id;
	json_t *v;
	const json_t *h, *m;

	store_history_keep(st, 1);
	id = add_msg(q, "Subject: x\r\n\r\nbody\r\n");
	ck_assert_int_eq(store_begin(st), 0);
	ck_assert_int_eq(store_due(st, 1e10, 10, &due, &n), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(store_rcpt_result(st, due[i].rcpt_id,
		    i == 0 ? RCPT_DELIVERED : RCPT_FAILED, 0,
		    "mx.example.org[192.0.2.9]:25", NULL, i == 0 ?
		    STATUS_SENT : STATUS_BOUNCED, i == 0 ? "2.0.0" : "5.1.1",
		    i == 0 ? "250 ok" : "550 unknown user"), 0);
	store_due_free(due, n);
	ck_assert_int_eq(store_message_delete(st, id), 0);
	ck_assert_int_eq(store_commit(st), 0);

	v = ask("history");
	ck_ok(v);
	h = json_object_get(v, "history");
	ck_assert_uint_eq(json_array_size(h), 2);
	json_decref(v);
	v = ask("history rcpt=BOB@example.net status=bounced "
	    "sender=@example.com route=mx.example.org since=1 limit=5");
	ck_ok(v);
	h = json_object_get(v, "history");
	ck_assert_uint_eq(json_array_size(h), 1);
	ck_assert_str_eq(json_member_str(json_array_get(h, 0), "id", ""), q);
	ck_assert_str_eq(json_member_str(json_array_get(h, 0), "recipient",
	    ""), "bob@example.net");
	ck_assert_str_eq(json_member_str(json_array_get(h, 0), "reply", ""),
	    "550 unknown user");
	ck_assert_int_eq(json_member_bool(v, "truncated", -1), 0);
	json_decref(v);
	v = ask("history rcpt=@example.org status=bounced");
	ck_ok(v);
	ck_assert_uint_eq(json_array_size(json_object_get(v, "history")), 0);
	json_decref(v);
	v = ask("history until=1");
	ck_ok(v);
	ck_assert_uint_eq(json_array_size(json_object_get(v, "history")), 0);
	json_decref(v);

	snprintf(req, sizeof(req), "queue show %s", q);
	v = ask(req);
	ck_ok(v);
	m = json_object_get(v, "message");
	ck_assert_str_eq(json_member_str(m, "state", ""), "done");
	ck_assert_int_eq(json_member_bool(m, "in_history", -1), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(m, "recipients")),
	    2);
	json_decref(v);

	ck_error("history foo", "filters are key=value");
	ck_error("history rcpt=", "filters are key=value");
	ck_error("history status=lost", "status is sent, deferred");
	ck_error("history limit=0", "limit is 1 to");
	ck_error("history limit=10001", "limit is 1 to");
	ck_error("history since=yesterday", "since is unix seconds");
	ck_error("history since=1 since=2", "since is unix seconds");
	ck_error("history rcpt=a rcpt=b", "rcpt given twice");
	ck_error("history size=1", "unknown filter size");
	ck_error("history a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9",
	    "too many words");
}
END_TEST

/* --- writing ------------------------------------------------------------- */

static void
ck_changed(const char *req, double n)
{
	json_t *v = ask(req);

	ck_ok(v);
	ck_assert_msg(json_member_num(v, "changed", -1) == n, "%s: changed %g",
	    req, json_member_num(v, "changed", -1));
	json_decref(v);
}

START_TEST(test_hold_release)
{
	char q[QID_LEN + 1], req[64], state[16];

	add_msg(q, "S: x\r\n\r\n");
	snprintf(req, sizeof(req), "queue hold %s", q);
	ck_changed(req, 1);
	ck_assert_int_eq(busy_calls, 1);
	ck_assert_str_eq(busy_qid, q);
	state_of(q, state);
	ck_assert_str_eq(state, "hold");
	ck_error(req, "already on hold");
	snprintf(req, sizeof(req), "queue flush %s", q);
	ck_error(req, "on hold");

	snprintf(req, sizeof(req), "queue release %s", q);
	ck_changed(req, 1);
	ck_assert_int_eq(wakes, 1);
	state_of(q, state);
	ck_assert_str_eq(state, "active");
	ck_error(req, "not on hold");
	ck_error("queue release 0123456789AB", "no message");
	ck_error("queue hold 0123456789AB", "no message");
	ck_assert_int_eq(wakes, 1);

	/* the runner could not stop a delivery in flight: refused */
	busy_answer = 1;
	snprintf(req, sizeof(req), "queue hold %s", q);
	ck_error(req, "being delivered");
	state_of(q, state);
	ck_assert_str_eq(state, "active");
}
END_TEST

START_TEST(test_flush)
{
	char qa[QID_LEN + 1], qb[QID_LEN + 1], req[64];

	ck_changed("queue flush", 0);
	ck_assert_int_eq(wakes, 0);
	add_msg(qa, "S: x\r\n\r\n");
	add_msg(qb, "S: x\r\n\r\n");
	ck_changed("queue flush", 2);
	ck_assert_int_eq(wakes, 1);
	snprintf(req, sizeof(req), "queue flush %s", qa);
	ck_changed(req, 1);
	ck_assert_int_eq(wakes, 2);
	ck_error("queue flush 0123456789AB", "no message");
	ck_assert_int_eq(busy_calls, 0);
}
END_TEST

/* ferryctl drain / undrain: what the runner passes on to the master. */
static int drain_calls, drain_last = -1, drain_fails;

static int
on_drain(void *arg, int on, char *err, size_t errlen)
{
	ck_assert_ptr_eq(arg, &ctx);
	drain_calls++;
	drain_last = on;
	if (drain_fails) {
		snprintf(err, errlen, "the master's notes are closed");
		return -1;
	}
	return 0;
}

START_TEST(test_drain)
{
	json_t *v;

	/* no way to ask the master: refused, nothing asked */
	ck_error("drain", "drain: not available");
	ctx.drain = on_drain;
	ctx.drain_arg = &ctx;
	drain_calls = 0;
	drain_fails = 0;
	v = ask("drain");
	ck_ok(v);
	ck_assert_int_eq(json_member_bool(v, "asked", -1), 1);
	ck_assert_int_eq(json_member_bool(v, "draining", -1), 0);
	json_decref(v);
	ck_assert_int_eq(drain_calls, 1);
	ck_assert_int_eq(drain_last, 1);
	/* the master's answer shows in status */
	v = ask("status");
	ck_ok(v);
	ck_assert_int_eq(json_member_bool(json_object_get(v, "master"),
	    "draining", -1), 0);
	json_decref(v);
	ctx.draining = 1;
	v = ask("status");
	ck_assert_int_eq(json_member_bool(json_object_get(v, "master"),
	    "draining", -1), 1);
	json_decref(v);
	v = ask("undrain");
	ck_ok(v);
	ck_assert_int_eq(json_member_bool(v, "asked", -1), 0);
	ck_assert_int_eq(json_member_bool(v, "draining", -1), 1);
	json_decref(v);
	ck_assert_int_eq(drain_calls, 2);
	ck_assert_int_eq(drain_last, 0);
	/* it works while the store is unusable */
	ctx.st = NULL;
	ctx.store_trouble = "damaged";
	v = ask("drain");
	ck_ok(v);
	json_decref(v);
	ck_assert_int_eq(drain_calls, 3);
	ctx.st = st;
	/* a master that cannot be told, and words too many */
	drain_fails = 1;
	ck_error("undrain", "undrain: the master's notes are closed");
	ck_error("drain now", "usage: drain");
	ck_assert_int_eq(drain_calls, 4);
}
END_TEST

START_TEST(test_delete)
{
	char qa[QID_LEN + 1], qb[QID_LEN + 1], req[64], state[16];
	int64_t n;

	add_msg(qa, "S: x\r\n\r\n");
	add_msg(qb, "S: x\r\n\r\n");
	busy_answer = 1;
	snprintf(req, sizeof(req), "queue delete %s", qa);
	ck_error(req, "being delivered");
	state_of(qa, state);
	ck_assert_str_eq(state, "active");
	busy_answer = 0;
	ck_changed(req, 1);
	ck_assert_str_eq(busy_qid, qa);
	state_of(qa, state);
	ck_assert_str_eq(state, "<none>");
	ck_error(req, "no message");
	ck_assert_int_eq(store_count(st, NULL, &n), 0);
	ck_assert_int_eq(n, 1);
	/* inside an open runner transaction: done there, not committed */
	ck_assert_int_eq(store_begin(st), 0);
	snprintf(req, sizeof(req), "queue delete %s", qb);
	ck_changed(req, 1);
	ck_assert_int_eq(store_in_transaction(st), 1);
	store_rollback(st);
	state_of(qb, state);
	ck_assert_str_eq(state, "active");
}
END_TEST

/* --- bad requests ----------------------------------------------------------- */

START_TEST(test_bad_requests)
{
	char longreq[CONTROL_REQUEST_MAX];
	uint8_t *f;
	size_t flen;

	ck_error("", "empty request");
	ck_error("   ", "empty request");
	ck_error("stats", "unknown command");
	ck_error("queue", "unknown queue command");
	ck_error("queue purge", "unknown queue command");
	ck_error("QUEUE LIST", "unknown command");
	ck_error("status now", "usage: status");
	ck_error("queue list all", "usage: queue list");
	ck_error("queue show", "usage: queue show ID");
	ck_error("queue delete", "usage: queue delete ID");
	ck_error("queue hold", "usage: queue hold ID");
	ck_error("queue release", "usage: queue release ID");
	ck_error("queue flush 0123456789AB 0123456789AB",
	    "usage: queue flush [ID]");
	ck_error("queue show 0123456789ab", "invalid queue id");
	ck_error("queue show 0123456789A", "invalid queue id");
	ck_error("queue show 0123456789ABC", "invalid queue id");
	ck_error("queue show 0123456789AG", "invalid queue id");
	ck_error("queue delete ' OR 1=1 --", "too many words");
	ck_error("queue delete '--", "invalid queue id");
	ck_error("queue show caf\xc3\xa9", "not printable");
	ck_error("queue\x1b list", "not printable");
	ck_error("queue\tlist", "white space in a word");
	ck_error("queue show\r", "not printable");
	ck_error("a b c d e", "too many words");

	/* a request of exactly CONTROL_REQUEST_MAX bytes is answered: one
	 * word, after the count and its length (and unknown) */
	memset(longreq, 'x', sizeof(longreq));
	longreq[CONTROL_REQUEST_MAX - 8] = '\0';
	f = request_frame(longreq, &flen);
	ck_assert_uint_eq(flen, IPC_HEADER_SIZE + CONTROL_REQUEST_MAX);
	free(f);
	ck_error(longreq, "unknown command");
}
END_TEST

/* The request's codec, without a connection: what ferryctl encodes
 * decodes to its words, empty words are left out, words past max are
 * counted but not kept, and a payload that does not decode keeps
 * nothing. */
START_TEST(test_request_codec)
{
	char *argv[] = { "queue", "", "show", "0123456789AB", "x", "y" };
	struct ipc_out m = { 0 };
	struct ipc_in in;
	char *words[3];
	uint8_t *f;
	size_t nw, len;

	ipc_out_init(&m, IMSG_CTL_REQUEST);
	control_request_encode(&m, 4, argv);
	(void)ipc_out_finish(&m, &len);
	f = request_frame("queue  show 0123456789AB", &nw);
	ck_assert_uint_eq(len, nw);
	ck_assert(memcmp(m.buf, f, len) == 0);     /* the same wire format */
	free(f);
	ck_assert_int_eq(ipc_frame(m.buf, len, &in), (long)len);
	ck_assert_int_eq(control_request_decode(&in, words, 3, &nw), 0);
	ck_assert_uint_eq(nw, 3);
	ck_assert_str_eq(words[0], "queue");
	ck_assert_str_eq(words[1], "show");
	ck_assert_str_eq(words[2], "0123456789AB");
	while (nw > 0)
		free(words[--nw]);

	/* five words, two kept */
	ipc_out_init(&m, IMSG_CTL_REQUEST);
	control_request_encode(&m, 6, argv);
	(void)ipc_out_finish(&m, &len);
	ck_assert_int_eq(ipc_frame(m.buf, len, &in), (long)len);
	ck_assert_int_eq(control_request_decode(&in, words, 2, &nw), 0);
	ck_assert_uint_eq(nw, 5);
	ck_assert_str_eq(words[1], "show");
	free(words[0]);
	free(words[1]);

	/* a word missing: nothing kept */
	ipc_out_init(&m, IMSG_CTL_REQUEST);
	ipc_add_u32(&m, 3);
	ipc_add_str(&m, "queue");
	ipc_add_str(&m, "list");
	(void)ipc_out_finish(&m, &len);
	ck_assert_int_eq(ipc_frame(m.buf, len, &in), (long)len);
	ck_assert_int_eq(control_request_decode(&in, words, 3, &nw), -1);
	ck_assert_uint_eq(nw, 0);
	ipc_out_free(&m);
}
END_TEST

/* A request over the cap, of another type, or that does not decode is a
 * peer breaking the protocol: dropped, not answered. */
START_TEST(test_protocol_violations)
{
	char longreq[CONTROL_REQUEST_MAX + 1];
	struct ipc_out m = { 0 };
	const uint8_t *f;
	uint8_t *rf;
	size_t flen;

	/* one byte over the cap */
	memset(longreq, 'x', sizeof(longreq));
	longreq[CONTROL_REQUEST_MAX - 7] = '\0';
	rf = request_frame(longreq, &flen);
	ck_assert_uint_eq(flen, IPC_HEADER_SIZE + CONTROL_REQUEST_MAX + 1);
	ck_dropped(rf, flen, 0);
	free(rf);

	/* a NUL inside a word */
	ipc_out_init(&m, IMSG_CTL_REQUEST);
	ipc_add_u32(&m, 1);
	ipc_add_data(&m, "status\0x", 8);
	f = ipc_out_finish(&m, &flen);
	ck_dropped(f, flen, 0);

	/* more words counted than sent */
	ipc_out_init(&m, IMSG_CTL_REQUEST);
	ipc_add_u32(&m, 2);
	ipc_add_str(&m, "status");
	f = ipc_out_finish(&m, &flen);
	ck_dropped(f, flen, 0);

	/* bytes after the last word */
	ipc_out_init(&m, IMSG_CTL_REQUEST);
	ipc_add_u32(&m, 1);
	ipc_add_str(&m, "status");
	ipc_add_u8(&m, 0);
	f = ipc_out_finish(&m, &flen);
	ck_dropped(f, flen, 0);

	/* a type the client may not send: the runner's answer */
	ipc_out_init(&m, IMSG_CTL_ANSWER);
	ipc_add_data(&m, "{}", 2);
	f = ipc_out_finish(&m, &flen);
	ck_dropped(f, flen, 0);
	ipc_out_free(&m);

	/* the old line protocol is a bad frame header */
	ck_dropped("queue list\n", 11, 0);
}
END_TEST

START_TEST(test_eof)
{
	json_t *v;
	json_error_t jerr;
	uint8_t *f, *raw;
	char *ans;
	size_t flen, rawlen, len, pieces;

	/* the peer went away without a word: no answer, just closed */
	ck_dropped("", 0, 1);
	/* a whole request, then the end of its writing: answered */
	f = request_frame("status", &flen);
	raw = exchange_raw(f, flen, 1, &rawlen);
	ans = answer_doc(raw, rawlen, &len, &pieces);
	v = json_loadb(ans, len, 0, &jerr);
	ck_assert_msg(v != NULL, "%s", jerr.text);
	ck_ok(v);
	json_decref(v);
	free(ans);
	free(raw);
	/* the end inside the request: nothing to answer */
	ck_dropped(f, flen - 1, 1);
	free(f);
}
END_TEST

START_TEST(test_timeout)
{
	json_t *v;
	json_error_t jerr;
	uint8_t *f, *raw;
	char *ans;
	int64_t t0 = now_ms();
	size_t flen, rawlen, len, pieces;

	/* half a request, then silence: answered within the deadline */
	f = request_frame("queue list", &flen);
	raw = exchange_raw(f, flen / 2, 0, &rawlen);
	ck_assert_int_ge(now_ms() - t0, 1900);
	ck_assert_int_le(now_ms() - t0, 4000);
	ans = answer_doc(raw, rawlen, &len, &pieces);
	v = json_loadb(ans, len, 0, &jerr);
	ck_assert_msg(v != NULL, "%s", jerr.text);
	ck_assert_int_eq(json_member_bool(v, "ok", -1), 0);
	ck_assert_ptr_nonnull(strstr(json_member_str(v, "error", ""),
	    "timed out"));
	json_decref(v);
	free(ans);
	free(raw);
	free(f);
}
END_TEST

START_TEST(test_peer_gone)
{
	char q[QID_LEN + 1];
	uint8_t *f;
	size_t flen;
	int sv[2];

	/* the client closes before the answer: no SIGPIPE, no hang */
	add_msg(q, "S: x\r\n\r\n");
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f = request_frame("queue list", &flen);
	ck_assert_int_eq(write_all(sv[0], f, flen), 0);
	free(f);
	close(sv[0]);
	control_serve(sv[1], &ctx);
	/* fd closed by control_serve */
	ck_assert_int_eq(close(sv[1]), -1);
	ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* An answer larger than one piece comes in several CTL_ANSWER frames
 * that join into one document.  A page stops at a budget of the
 * runner's CPU time, so on a slow machine the listing may take more
 * than one page: the pages, each from the last one's cursor, hold every
 * message once. */
START_TEST(test_big_answer)
{
	uint8_t *f, *raw;
	char *ans, q[QID_LEN + 1], req[256], after[128] = "";
	size_t flen, rawlen, len, pieces, i, n = 400, total = 0, pages = 0;
	json_error_t jerr;
	json_t *v;

	for (i = 0; i < n; i++)
		add_msg(q, "Subject: x\r\n\r\nx\r\n");
	for (;;) {
		json_t *next;

		snprintf(req, sizeof(req), "queue list%s%s",
		    after[0] ? " after=" : "", after);
		f = request_frame(req, &flen);
		raw = exchange_raw(f, flen, 0, &rawlen);
		ans = answer_doc(raw, rawlen, &len, &pieces);
		if (pages++ == 0)
			ck_assert_uint_gt(len, CONTROL_ANSWER_PIECE);
		ck_assert_uint_eq(pieces, (len + CONTROL_ANSWER_PIECE - 1) /
		    CONTROL_ANSWER_PIECE);
		v = json_loadb(ans, len, 0, &jerr);
		ck_assert_msg(v != NULL, "%s", jerr.text);
		ck_ok(v);
		ck_assert_uint_gt(json_array_size(json_object_get(v,
		    "messages")), 0);
		total += json_array_size(json_object_get(v, "messages"));
		next = json_object_get(v, "next");
		ck_assert(next != NULL);
		if (json_is_null(next)) {
			json_decref(v);
			free(ans);
			free(raw);
			free(f);
			break;
		}
		ck_assert(json_is_string(next) &&
		    strlen(json_string_value(next)) < sizeof(after));
		snprintf(after, sizeof(after), "%s", json_string_value(next));
		json_decref(v);
		free(ans);
		free(raw);
		free(f);
		ck_assert_uint_lt(pages, n);
	}
	ck_assert_uint_eq(total, n);
}
END_TEST

static Suite *
control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc;

	tc = tcase_create("read");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_show);
	tcase_add_test(tc, test_history);
	suite_add_tcase(s, tc);

	tc = tcase_create("write");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_hold_release);
	tcase_add_test(tc, test_flush);
	tcase_add_test(tc, test_drain);
	tcase_add_test(tc, test_delete);
	suite_add_tcase(s, tc);

	tc = tcase_create("requests");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_request_codec);
	tcase_add_test(tc, test_protocol_violations);
	tcase_add_test(tc, test_eof);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_peer_gone);
	tcase_add_test(tc, test_big_answer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	log_init("check_control", LOG_TO_STDERR, 0);
	sr = srunner_create(control_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
