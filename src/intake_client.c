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
#include "util.h"

void
intake_client_init(struct intake_client *ic, const char *path)
{
	memset(ic, 0, sizeof(*ic));
	ic->path = xstrdup(path);
	ic->fd = -1;
}

static void
disconnect(struct intake_client *ic)
{
	if (ic->fd >= 0)
		close(ic->fd);
	ic->fd = -1;
	ic->rlen = 0;
}

void
intake_client_close(struct intake_client *ic)
{
	disconnect(ic);
	free(ic->path);
	free(ic->rbuf);
	ipc_out_free(&ic->out);
	memset(ic, 0, sizeof(*ic));
	ic->fd = -1;
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
	struct sockaddr_un sun;
	int fd;

	if (ic->fd >= 0)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ic->path) >= sizeof(sun.sun_path))
		return fail(ic, "socket path too long: %s", ic->path);
	strcpy(sun.sun_path, ic->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(ic, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		return fail(ic, "connect %s: %s", ic->path, strerror(e));
	}
	ic->fd = fd;
	ic->rlen = 0;
	return 0;
}

static int
send_frame(struct intake_client *ic, int64_t deadline)
{
	size_t len, off = 0;
	const uint8_t *p = ipc_out_finish(&ic->out, &len);

	while (off < len) {
		ssize_t n = send(ic->fd, p + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { ic->fd, POLLOUT, 0 };
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return fail(ic, "timeout writing to the queue "
				    "runner");
			if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
				return fail(ic, "poll: %s", strerror(errno));
			continue;
		}
		return fail(ic, "write to the queue runner: %s",
		    n == 0 ? "closed" : strerror(errno));
	}
	return 0;
}

/* Waits for one frame; in is valid until the next call. */
static int
recv_frame(struct intake_client *ic, struct ipc_in *in, int64_t deadline)
{
	for (;;) {
		long flen;
		ssize_t n;

		/* drop the previous frame, if any was returned */
		flen = ipc_frame(ic->rbuf, ic->rlen, in);
		if (flen < 0)
			return fail(ic, "malformed frame from the queue runner");
		if (flen > 0)
			return 0;
		if (ic->rcap - ic->rlen < 4096) {
			ic->rcap = ic->rcap ? ic->rcap * 2 : 8192;
			if (ic->rcap > IPC_MAX_PAYLOAD + IPC_HEADER_SIZE + 8192)
				return fail(ic, "oversized frame from the "
				    "queue runner");
			ic->rbuf = xrealloc(ic->rbuf, ic->rcap);
		}
		n = recv(ic->fd, ic->rbuf + ic->rlen, ic->rcap - ic->rlen, 0);
		if (n > 0) {
			ic->rlen += (size_t)n;
			continue;
		}
		if (n == 0)
			return fail(ic, "the queue runner closed the "
			    "connection");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { ic->fd, POLLIN, 0 };
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return fail(ic, "timeout waiting for the queue "
				    "runner");
			if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
				return fail(ic, "poll: %s", strerror(errno));
			continue;
		}
		return fail(ic, "read from the queue runner: %s",
		    strerror(errno));
	}
}

static void
drop_frame(struct intake_client *ic, const struct ipc_in *in)
{
	size_t used = (size_t)(in->p + in->left - ic->rbuf);

	memmove(ic->rbuf, ic->rbuf + used, ic->rlen - used);
	ic->rlen -= used;
}

/* Reads the answer to BEGIN or COMMIT: want (with a qid) or TX_FAIL. */
static int
await_answer(struct intake_client *ic, int want, char *qid, size_t qidlen,
    int64_t deadline)
{
	struct ipc_in in;
	char *text = NULL;

	if (recv_frame(ic, &in, deadline) < 0)
		return -1;
	if (in.type == want) {
		if (ipc_get_str(&in, &text, 64) < 0 || ipc_end(&in) < 0) {
			free(text);
			return fail(ic, "malformed %s from the queue runner",
			    ipc_type_name(want));
		}
		if (qid)
			ferry_strlcpy(qid, text, qidlen);
		free(text);
		drop_frame(ic, &in);
		return 0;
	}
	if (in.type == IMSG_TX_FAIL) {
		if (ipc_get_str(&in, &text, 200) < 0 || ipc_end(&in) < 0) {
			free(text);
			return fail(ic, "malformed TX_FAIL from the queue "
			    "runner");
		}
		snprintf(ic->reason, sizeof(ic->reason), "%s", text);
		free(text);
		drop_frame(ic, &in);
		return -1;
	}
	return fail(ic, "unexpected %s from the queue runner",
	    ipc_type_name(in.type));
}

int
intake_begin(struct intake_client *ic, const struct envelope *env,
    char *qid, size_t qidlen, int64_t deadline)
{
	int attempt;

	/* A connection left from an earlier runner may be dead: one retry
	 * on a fresh connection. */
	for (attempt = 0; attempt < 2; attempt++) {
		int reused = ic->fd >= 0;

		if (ensure_connected(ic) < 0)
			return -1;
		ipc_out_init(&ic->out, IMSG_TX_BEGIN);
		envelope_encode(env, &ic->out);
		ic->seq = 0;
		if (send_frame(ic, deadline) == 0) {
			if (await_answer(ic, IMSG_TX_BEGUN, qid, qidlen,
			    deadline) == 0)
				return 0;
			if (ic->fd >= 0)
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
	if (ic->fd < 0)
		return fail(ic, "not connected to the queue runner");
	ipc_out_init(&ic->out, IMSG_TX_DATA);
	ipc_add_u32(&ic->out, ic->seq++);
	ipc_add_data(&ic->out, buf, len);
	return send_frame(ic, deadline);
}

int
intake_commit(struct intake_client *ic, uint64_t size, int64_t deadline)
{
	if (ic->fd < 0)
		return fail(ic, "not connected to the queue runner");
	ipc_out_init(&ic->out, IMSG_TX_COMMIT);
	ipc_add_u64(&ic->out, size);
	if (send_frame(ic, deadline) < 0)
		return -1;
	return await_answer(ic, IMSG_TX_COMMITTED, NULL, 0, deadline);
}

void
intake_abort(struct intake_client *ic, int64_t deadline)
{
	if (ic->fd < 0)
		return;
	ipc_out_init(&ic->out, IMSG_TX_ABORT);
	(void)send_frame(ic, deadline);
}
