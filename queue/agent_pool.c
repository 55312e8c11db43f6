/*
 * agent_pool.c - the delivery agents connected to the queue runner
 * (agent_pool.h): accepting them (the delivery user only), reading their
 * frames, writing jobs and streaming each job's body from the store in
 * its chunks as an agent's socket drains (never more than WBUF_HIGH
 * buffered per agent).
 *
 * Security stance: agents are peers that may lie.  A frame that is
 * malformed, unexpected or too large drops the agent; what a well-formed
 * frame means for the queue is decided by the scheduler's hooks.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "agent_pool.h"
#include "log.h"
#include "util.h"

#define WBUF_HIGH (256 * 1024)

void
agent_pool_init(struct agent_pool *p, struct store *st, uid_t agent_uid,
    const struct pool_hooks *hooks, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->st = st;
	p->agent_uid = agent_uid;
	p->hooks = *hooks;
	p->arg = arg;
}

static void
agent_queue(struct pool_agent *a, struct ipc_out *m)
{
	size_t len;
	const uint8_t *p = ipc_out_finish(m, &len);

	if (a->wlen + len > a->wcap) {
		a->wcap = a->wlen + len + 65536;
		a->wbuf = xrealloc(a->wbuf, a->wcap);
	}
	memcpy(a->wbuf + a->wlen, p, len);
	a->wlen += len;
}

/* Tops up the agent's output with body chunks, then JOB_END. */
static int
agent_fill(struct agent_pool *p, struct pool_agent *a)
{
	struct ipc_out m = { 0 };

	while (a->busy && !a->data_done && a->wlen < WBUF_HIGH) {
		uint8_t *data;
		size_t len;
		int rc = store_body_chunk(p->st, a->msgid, a->next_seq, &data,
		    &len);

		if (rc < 0) {
			log_error("%s: cannot read the message: %s", a->qid,
			    store_errmsg(p->st));
			ipc_out_free(&m);
			return -1;
		}
		if (rc == 0) {
			ipc_out_init(&m, IMSG_JOB_END);
			agent_queue(a, &m);
			a->data_done = 1;
			break;
		}
		ipc_out_init(&m, IMSG_JOB_DATA);
		ipc_add_u32(&m, a->next_seq++);
		ipc_add_data(&m, data, len);
		agent_queue(a, &m);
		free(data);
	}
	ipc_out_free(&m);
	return 0;
}

static int
agent_flush(struct agent_pool *p, struct pool_agent *a)
{
	for (;;) {
		ssize_t n;

		if (a->wlen == 0 && agent_fill(p, a) < 0)
			return -1;
		if (a->wlen == 0)
			return 0;
		n = send(a->fd, a->wbuf, a->wlen, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		memmove(a->wbuf, a->wbuf + n, a->wlen - (size_t)n);
		a->wlen -= (size_t)n;
		if (agent_fill(p, a) < 0)
			return -1;
	}
}

static void
agent_drop(struct agent_pool *p, size_t i, const char *why)
{
	struct pool_agent *a = p->agents[i];

	if (a->busy)
		p->hooks.vanished(p->arg, a, why);
	else if (strcmp(why, "closed the connection") != 0 &&
	    strcmp(why, "left") != 0)
		log_warn("delivery agent (pid %ld) %s", (long)a->pid, why);
	close(a->fd);
	free(a->rbuf);
	free(a->wbuf);
	free(a);
	p->agents[i] = p->agents[--p->nagents];
	p->hooks.idle(p->arg);
}


static int
agent_read(struct agent_pool *p, struct pool_agent *a)
{
	ssize_t n;

	if (a->rcap - a->rlen < 16384) {
		a->rcap = a->rcap ? a->rcap * 2 : 65536;
		if (a->rcap > 4 * 1024 * 1024)
			return -1;
		a->rbuf = xrealloc(a->rbuf, a->rcap);
	}
	n = recv(a->fd, a->rbuf + a->rlen, a->rcap - a->rlen, 0);
	if (n == 0)
		return -2;
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR) ? 0 : -2;
	a->rlen += (size_t)n;
	for (;;) {
		struct ipc_in in;
		long flen = ipc_frame(a->rbuf, a->rlen, &in);
		int rc = 0;

		if (flen == 0)
			return 0;
		if (flen < 0)
			return -1;
		switch (in.type) {
		case IMSG_AGENT_HELLO: {
			uint32_t pid;

			if (ipc_get_u32(&in, &pid) < 0 || ipc_end(&in) < 0 ||
			    pid == 0)
				rc = -1;
			else {
				a->pid = (pid_t)pid;
				p->hooks.idle(p->arg);
			}
			break;
		}
		case IMSG_RCPT_RESULT:
			rc = p->hooks.result(p->arg, a, &in);
			break;
		case IMSG_JOB_DONE:
			rc = p->hooks.done(p->arg, a, &in);
			if (rc == 0 && a->leaving)
				rc = -3;   /* it exits now */
			break;
		case IMSG_AGENT_LEAVING:
			/* told to stop: no more jobs; if one crossed this
			 * notice, it is run before the agent goes */
			if (ipc_end(&in) < 0 || a->leaving)
				rc = -1;
			else {
				a->leaving = a->retiring = 1;
				if (!a->busy)
					rc = -3;
			}
			break;
		default:
			rc = -1;
		}
		if (rc < 0)
			return rc;
		memmove(a->rbuf, a->rbuf + flen, a->rlen - (size_t)flen);
		a->rlen -= (size_t)flen;
	}
}

void
agent_pool_accept(struct agent_pool *p, int listen_fd)
{
	for (;;) {
		struct pool_agent *a;
		int fd = accept_from_uid(listen_fd, p->agent_uid, NULL,
		    "agent socket", "only the delivery user may connect");

		if (fd == -2)
			continue;
		if (fd < 0)
			return;
		if (p->nagents >= POOL_MAX_AGENTS) {
			close(fd);
			continue;
		}
		a = xcalloc(1, sizeof(*a));
		a->fd = fd;
		a->msgid = -1;
		p->agents[p->nagents++] = a;
	}
}

size_t
agent_pool_pollfds(struct agent_pool *p, struct pollfd *pfds, size_t max)
{
	size_t i;

	for (i = 0; i < p->nagents && i < max; i++) {
		pfds[i].fd = p->agents[i]->fd;
		pfds[i].events = POLLIN | (p->agents[i]->wlen > 0 ||
		    (p->agents[i]->busy && !p->agents[i]->data_done) ?
		    POLLOUT : 0);
		pfds[i].revents = 0;
	}
	return i;
}

void
agent_pool_events(struct agent_pool *p, const struct pollfd *pfds, size_t n)
{
	size_t i;

	/* backwards: agent_drop moves the last agent into slot i */
	for (i = n; i-- > 0;) {
		struct pool_agent *a;
		int rc = 0;

		if (i >= p->nagents || pfds[i].revents == 0)
			continue;
		a = p->agents[i];
		if (a->fd != pfds[i].fd)
			continue;
		if (pfds[i].revents & POLLOUT)
			rc = agent_flush(p, a) < 0 ? -2 : 0;
		if (rc == 0 && (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
			rc = agent_read(p, a);
		if (rc == -1)
			agent_drop(p, i, "broke the protocol");
		else if (rc == -2)
			agent_drop(p, i, "closed the connection");
		else if (rc == -3)
			agent_drop(p, i, "left");
	}
}

void
agent_pool_start(struct agent_pool *p, struct pool_agent *a,
    struct ipc_out *m)
{
	agent_queue(a, m);
	a->busy = 1;
	a->next_seq = 0;
	a->data_done = 0;
	(void)agent_flush(p, a);
}

void
agent_pool_close(struct agent_pool *p)
{
	while (p->nagents > 0) {
		struct pool_agent *a = p->agents[--p->nagents];

		close(a->fd);
		free(a->rbuf);
		free(a->wbuf);
		free(a);
	}
}
