/*
 * control.c - the queue runner's side of ferryctl: reads one request
 * line from an accepted control connection, runs it against the store,
 * answers with one JSON document and closes (see control.h).
 *
 * Security stance: the master creates the control socket for root (and
 * the admin group) only and the runner checks the peer's credentials
 * before calling control_serve, so the peer is trusted to administer
 * the queue - but not to be well-behaved: the request is bounded in size
 * and time (a silent or slow client cannot hold the runner for more than
 * CONTROL_READ_MS + CONTROL_WRITE_MS), must be printable ASCII, queue ids
 * are checked for their exact shape, and every value reaches SQLite as a
 * bound parameter.  Text from the queue (addresses, headers, replies) is
 * escaped by the JSON writer, never trusted to be clean.
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

#include "control.h"
#include "json.h"
#include "log.h"
#include "smtp_parse.h"
#include "store.h"
#include "util.h"

#define CONTROL_LINE_MAX 512       /* request line, with its LF */
#define CONTROL_READ_MS 2000       /* to receive the request */
#define CONTROL_WRITE_MS 5000      /* to hand over the answer */
#define CONTROL_MAX_WORDS 4

/* What a command handler reports back besides the JSON it wrote. */
struct answer {
	struct json_w w;
	char err[512];                 /* set: answer {"ok":false,...} */
};

static void
fail(struct answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(struct answer *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
}

static void
store_failed(struct answer *a, struct control_ctx *ctx, const char *what)
{
	log_warn("control: %s: %s", what, store_errmsg(ctx->st));
	fail(a, "queue store error (%s): %s", what, store_errmsg(ctx->st));
}

/* Exactly QID_LEN upper-case hex characters. */
static int
valid_qid(const char *q)
{
	size_t i;

	for (i = 0; i < QID_LEN; i++)
		if (!((q[i] >= '0' && q[i] <= '9') ||
		    (q[i] >= 'A' && q[i] <= 'F')))
			return 0;
	return q[QID_LEN] == '\0';
}

/* The store's not-found / wrong-state codes as an operator reads them. */
static void
state_error(struct answer *a, struct control_ctx *ctx, const char *qid,
    int rc, const char *op)
{
	char state[16];

	if (rc == STORE_NOT_FOUND) {
		fail(a, "no message %s in the queue", qid);
		return;
	}
	if (rc == STORE_WRONG_STATE) {
		if (store_admin_state(ctx->st, qid, state) != 0)
			ferry_strlcpy(state, "?", sizeof(state));
		if (strcmp(state, "hold") == 0)
			fail(a, "message %s is on hold (queue release %s "
			    "first)", qid, qid);
		else
			fail(a, "message %s is %s, cannot %s it", qid, state,
			    op);
		return;
	}
	store_failed(a, ctx, op);
}

static void
ok_changed(struct answer *a, int64_t n)
{
	json_obj_begin(&a->w);
	json_kv_bool(&a->w, "ok", 1);
	json_kv_int(&a->w, "changed", n);
	json_obj_end(&a->w);
}

/* --- commands -------------------------------------------------------------- */

static void
cmd_status(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	struct store_queue_stats qs;
	struct json_w *w = &a->w;

	(void)qid;
	if (store_admin_stats(ctx->st, &qs) == -1) {
		store_failed(a, ctx, "status");
		return;
	}
	json_obj_begin(w);
	json_kv_bool(w, "ok", 1);
	json_key(w, "workers");
	json_obj_begin(w);
	json_kv_int_opt(w, "total", ctx->workers_total);
	json_kv_int_opt(w, "busy", ctx->workers_busy);
	json_obj_end(w);
	json_key(w, "agents");
	json_obj_begin(w);
	json_kv_int_opt(w, "total", ctx->agents_total);
	json_kv_int_opt(w, "busy", ctx->agents_busy);
	json_obj_end(w);
	json_key(w, "queue");
	json_obj_begin(w);
	json_kv_int(w, "messages", qs.active + qs.hold);
	json_kv_int(w, "active", qs.active);
	json_kv_int(w, "hold", qs.hold);
	json_kv_int(w, "recipients_pending", qs.rcpts_pending);
	json_kv_double_opt(w, "oldest_received_at", qs.oldest_received_at);
	json_obj_end(w);
	json_key(w, "intake");
	json_obj_begin(w);
	json_kv_int(w, "messages", (int64_t)ctx->messages_in);
	json_kv_int(w, "commits", (int64_t)ctx->commits);
	json_obj_end(w);
	json_kv_double_opt(w, "now", now_wall());
	json_obj_end(w);
}

struct list_walk {
	struct json_w *w;
	double now;
};

static int
list_one(void *arg, const struct store_list_entry *e)
{
	struct list_walk *lw = arg;
	struct json_w *w = lw->w;
	size_t i;

	json_obj_begin(w);
	json_kv_str(w, "id", e->qid);
	json_kv_str(w, "state", e->state);
	json_kv_double_opt(w, "received_at", e->received_at);
	json_kv_int(w, "age", e->received_at >= 0 && lw->now > e->received_at ?
	    (int64_t)(lw->now - e->received_at) : 0);
	json_kv_int_opt(w, "size", e->size);
	json_kv_str(w, "sender", e->sender);
	json_key(w, "recipients");
	json_arr_begin(w);
	for (i = 0; i < e->nrcpts; i++)
		json_str(w, e->rcpts[i]);
	json_arr_end(w);
	json_kv_int(w, "recipients_total", e->rcpts_total);
	json_kv_int(w, "pending", e->pending);
	json_kv_double_opt(w, "next_attempt", e->next_attempt);
	json_kv_str(w, "last_reply", e->last_reply);
	json_kv_str(w, "last_dsn", e->last_dsn);
	json_obj_end(w);
	return 0;
}

static void
cmd_list(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	struct list_walk lw;
	int truncated;

	(void)qid;
	lw.w = &a->w;
	lw.now = now_wall();
	json_obj_begin(&a->w);
	json_kv_bool(&a->w, "ok", 1);
	json_kv_double_opt(&a->w, "now", lw.now);
	json_key(&a->w, "messages");
	json_arr_begin(&a->w);
	if (store_admin_list(ctx->st, STORE_LIST_MAX, list_one, &lw,
	    &truncated) != 0) {
		store_failed(a, ctx, "queue list");
		return;
	}
	json_arr_end(&a->w);
	json_kv_bool(&a->w, "truncated", truncated);
	json_obj_end(&a->w);
}

static void
notify_json(struct json_w *w, uint32_t n)
{
	json_key(w, "dsn_notify");
	if (n == 0) {
		json_null(w);
		return;
	}
	json_arr_begin(w);
	if (n & NOTIFY_NEVER)
		json_str(w, "NEVER");
	if (n & NOTIFY_SUCCESS)
		json_str(w, "SUCCESS");
	if (n & NOTIFY_FAILURE)
		json_str(w, "FAILURE");
	if (n & NOTIFY_DELAY)
		json_str(w, "DELAY");
	json_arr_end(w);
}

static void
cmd_show(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	struct store_msg_info m;
	struct json_w *w = &a->w;
	double now = now_wall();
	size_t i, j;
	int rc;

	if ((rc = store_admin_show(ctx->st, qid, &m)) != 0) {
		state_error(a, ctx, qid, rc, "show");
		return;
	}
	json_obj_begin(w);
	json_kv_bool(w, "ok", 1);
	json_kv_double_opt(w, "now", now);
	json_key(w, "message");
	json_obj_begin(w);
	json_kv_str(w, "id", m.qid);
	json_kv_str(w, "state", m.state);
	json_kv_str(w, "hold_reason", m.hold_reason);
	json_kv_double_opt(w, "received_at", m.received_at);
	json_kv_int(w, "age", m.received_at >= 0 && now > m.received_at ?
	    (int64_t)(now - m.received_at) : 0);
	json_kv_int_opt(w, "size", m.size);
	json_kv_str(w, "sender", m.sender);
	json_kv_str(w, "client_addr", m.client_addr);
	json_kv_str(w, "client_name", m.client_name);
	json_kv_str(w, "helo", m.helo);
	json_kv_str(w, "protocol", m.protocol);
	json_kv_str(w, "auth_user", m.auth_user);
	json_kv_str(w, "body_type", m.body_type);
	json_kv_bool(w, "smtputf8", m.smtputf8);
	json_kv_int_opt(w, "size_declared", m.size_declared);
	json_kv_str(w, "dsn_ret", m.dsn_ret);
	json_kv_str(w, "dsn_envid", m.dsn_envid);
	json_kv_str(w, "dsn_of", m.dsn_of);
	json_kv_bool(w, "warned", m.warned);
	json_key(w, "headers");
	json_strn(w, m.headers != NULL ? m.headers : "", m.headers_len);
	json_kv_bool(w, "headers_truncated", m.headers_truncated);
	json_kv_int(w, "recipients_total", m.rcpts_total);
	json_key(w, "recipients");
	json_arr_begin(w);
	for (i = 0; i < m.nrcpts; i++) {
		const struct store_rcpt_info *r = &m.rcpts[i];

		json_obj_begin(w);
		json_kv_str(w, "address", r->address);
		json_kv_str(w, "state", r->state);
		notify_json(w, r->dsn_notify);
		json_kv_str(w, "dsn_orcpt", r->dsn_orcpt);
		json_kv_int(w, "attempts", r->attempts);
		json_kv_double_opt(w, "next_attempt", r->next_attempt);
		json_kv_double_opt(w, "last_attempt", r->last_attempt);
		json_kv_str(w, "last_reply", r->last_reply);
		json_kv_str(w, "last_dsn", r->last_dsn);
		json_kv_int(w, "history_total", r->history_total);
		json_key(w, "history");
		json_arr_begin(w);
		for (j = 0; j < r->nhistory; j++) {
			const struct store_attempt_info *h = &r->history[j];

			json_obj_begin(w);
			json_kv_double_opt(w, "at", h->at);
			json_kv_str(w, "relay", h->relay);
			json_kv_str(w, "tls", h->tls);
			json_kv_str(w, "status", h->status);
			json_kv_str(w, "dsn", h->dsn);
			json_kv_str(w, "reply", h->reply);
			json_obj_end(w);
		}
		json_arr_end(w);
		json_obj_end(w);
	}
	json_arr_end(w);
	json_obj_end(w);
	json_obj_end(w);
	store_admin_show_free(&m);
}

static void
wake(struct control_ctx *ctx)
{
	if (ctx->wake != NULL)
		ctx->wake(ctx->wake_arg);
}

static void
cmd_flush(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	int64_t n;
	int rc;

	if ((rc = store_admin_flush(ctx->st, qid, &n)) != 0) {
		state_error(a, ctx, qid != NULL ? qid : "", rc, "flush");
		return;
	}
	if (qid != NULL)
		log_info("%s: flushed by the operator", qid);
	else
		log_info("queue: flushed by the operator (%lld message(s))",
		    (long long)n);
	if (n > 0)
		wake(ctx);
	ok_changed(a, n);
}

/* Before hold and delete: the runner cancels an attempt in flight. */
static int
check_busy(struct control_ctx *ctx, const char *qid, struct answer *a,
    const char *op)
{
	if (ctx->busy != NULL && ctx->busy(ctx->wake_arg, qid) != 0) {
		fail(a, "message %s is being delivered right now, cannot %s "
		    "it (try again shortly)", qid, op);
		return -1;
	}
	return 0;
}

static void
cmd_hold(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	char state[16];
	int rc;

	rc = store_admin_state(ctx->st, qid, state);
	if (rc == 0 && strcmp(state, "incoming") == 0)
		rc = STORE_NOT_FOUND;
	else if (rc == 0 && strcmp(state, "active") != 0) {
		fail(a, "message %s is already on hold", qid);
		return;
	}
	if (rc != 0) {
		state_error(a, ctx, qid, rc, "hold");
		return;
	}
	if (check_busy(ctx, qid, a, "hold") == -1)
		return;
	if ((rc = store_admin_hold(ctx->st, qid)) != 0) {
		state_error(a, ctx, qid, rc, "hold");
		return;
	}
	log_info("%s: put on hold by the operator", qid);
	ok_changed(a, 1);
}

static void
cmd_release(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	int rc;

	if ((rc = store_admin_release(ctx->st, qid)) != 0) {
		if (rc == STORE_WRONG_STATE)
			fail(a, "message %s is not on hold", qid);
		else
			state_error(a, ctx, qid, rc, "release");
		return;
	}
	log_info("%s: released from hold by the operator", qid);
	wake(ctx);
	ok_changed(a, 1);
}

static void
cmd_delete(struct control_ctx *ctx, const char *qid, struct answer *a)
{
	char state[16];
	int rc;

	rc = store_admin_state(ctx->st, qid, state);
	if (rc == 0 && strcmp(state, "incoming") == 0)
		rc = STORE_NOT_FOUND;
	if (rc != 0) {
		state_error(a, ctx, qid, rc, "delete");
		return;
	}
	if (check_busy(ctx, qid, a, "delete") == -1)
		return;
	if ((rc = store_admin_delete(ctx->st, qid)) != 0) {
		state_error(a, ctx, qid, rc, "delete");
		return;
	}
	log_info("%s: removed by the operator", qid);
	ok_changed(a, 1);
}

enum arg_kind { ARG_NONE, ARG_QID, ARG_OPT_QID };

/* The commands: one row each (control.h lists them). */
static const struct command {
	const char *word1, *word2;     /* word2 NULL: one-word command */
	enum arg_kind arg;
	void (*run)(struct control_ctx *, const char *, struct answer *);
} commands[] = {
	{ "status", NULL, ARG_NONE, cmd_status },
	{ "queue", "list", ARG_NONE, cmd_list },
	{ "queue", "show", ARG_QID, cmd_show },
	{ "queue", "flush", ARG_OPT_QID, cmd_flush },
	{ "queue", "delete", ARG_QID, cmd_delete },
	{ "queue", "hold", ARG_QID, cmd_hold },
	{ "queue", "release", ARG_QID, cmd_release },
};

/* Runs one request line (without its line end) into a. */
static void
run_request(struct control_ctx *ctx, char *line, struct answer *a)
{
	char *words[CONTROL_MAX_WORDS + 1], *p, *qid;
	const struct command *c = NULL;
	size_t nw = 0, i, used;

	for (p = line; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 ? ch != '\t' : ch > 0x7e) {
			fail(a, "malformed request (not printable ASCII)");
			return;
		}
	}
	for (p = strtok(line, " \t"); p != NULL; p = strtok(NULL, " \t")) {
		if (nw == CONTROL_MAX_WORDS) {
			fail(a, "too many words in the request");
			return;
		}
		words[nw++] = p;
	}
	if (nw == 0) {
		fail(a, "empty request");
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].word1, words[0]) != 0)
			continue;
		if (commands[i].word2 == NULL ||
		    (nw > 1 && strcmp(commands[i].word2, words[1]) == 0)) {
			c = &commands[i];
			break;
		}
	}
	if (c == NULL) {
		if (strcmp(words[0], "queue") == 0)
			fail(a, "unknown queue command (list, show, flush, "
			    "delete, hold, release)");
		else
			fail(a, "unknown command (status, queue ...)");
		return;
	}
	used = c->word2 != NULL ? 2 : 1;
	qid = nw > used ? words[used] : NULL;
	if (nw > used + (c->arg != ARG_NONE) ||
	    (c->arg == ARG_QID && qid == NULL)) {
		fail(a, "usage: %s%s%s%s", c->word1, c->word2 ? " " : "",
		    c->word2 ? c->word2 : "", c->arg == ARG_QID ? " ID" :
		    c->arg == ARG_OPT_QID ? " [ID]" : "");
		return;
	}
	if (qid != NULL && !valid_qid(qid)) {
		fail(a, "invalid queue id (%d upper-case hex characters "
		    "expected)", QID_LEN);
		return;
	}
	c->run(ctx, qid, a);
}

/* --- the connection ------------------------------------------------------ */

/* Reads the request line into line (NUL-terminated, without its end).
 * 1 with a line, 0 when the peer sent nothing, -1 with a reason. */
static int
read_request(int fd, char *line, size_t size, const char **why)
{
	int64_t deadline = now_ms() + CONTROL_READ_MS;
	size_t len = 0;
	char *nl;

	for (;;) {
		struct pollfd pfd;
		int64_t left;
		ssize_t n;

		n = recv(fd, line + len, size - 1 - len, 0);
		if (n > 0) {
			len += (size_t)n;
			line[len] = '\0';
			if ((nl = memchr(line, '\n', len)) != NULL) {
				*nl = '\0';
				len = (size_t)(nl - line);
				break;
			}
			if (len == size - 1) {
				*why = "request too long";
				return -1;
			}
			continue;
		}
		if (n == 0) {
			if (len == 0)
				return 0;
			break;                     /* unterminated: take it */
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*why = strerror(errno);
			return -1;
		}
		left = deadline - now_ms();
		if (left <= 0) {
			*why = "timed out waiting for the request";
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			*why = strerror(errno);
			return -1;
		}
	}
	if (memchr(line, '\0', len) != NULL) {
		*why = "NUL in the request";
		return -1;
	}
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	return 1;
}

/* Hands over the whole answer within CONTROL_WRITE_MS. */
static int
write_answer(int fd, const char *buf, size_t len)
{
	int64_t deadline = now_ms() + CONTROL_WRITE_MS;
	size_t off = 0;

	while (off < len) {
		struct pollfd pfd;
		int64_t left;
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* Reads what the peer sent beyond the request (without waiting, at most
 * a bounded amount): closing a unix socket with unread input resets the
 * connection, and the peer could lose the answer to ECONNRESET. */
static void
drain(int fd)
{
	char buf[4096];
	int i;

	for (i = 0; i < 16; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

void
control_serve(int fd, struct control_ctx *ctx)
{
	char line[CONTROL_LINE_MAX + 1];
	const char *why = NULL;
	struct answer a;
	char *out;
	size_t len;
	int rc;

	fd_set_nonblock(fd, 1);
	memset(&a, 0, sizeof(a));
	json_w_init(&a.w);
	rc = read_request(fd, line, sizeof(line), &why);
	if (rc == 0) {
		json_w_free(&a.w);
		close(fd);
		return;
	}
	if (rc < 0)
		fail(&a, "%s", why);
	else
		run_request(ctx, line, &a);
	if (a.err[0] != '\0') {
		/* whatever a handler began is dropped for the error */
		json_w_free(&a.w);
		json_w_init(&a.w);
		json_obj_begin(&a.w);
		json_kv_bool(&a.w, "ok", 0);
		json_kv_str(&a.w, "error", a.err);
		json_obj_end(&a.w);
	}
	out = json_w_take(&a.w, &len);
	out = xrealloc(out, len + 2);
	out[len++] = '\n';
	out[len] = '\0';
	if (write_answer(fd, out, len) == -1)
		log_warn("control: cannot send the answer: %s",
		    strerror(errno));
	free(out);
	drain(fd);
	close(fd);
}
