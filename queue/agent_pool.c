/*
 * agent_pool.c - the delivery agents connected to the queue runner
 * (agent_pool.h): accepting them (the delivery user only), a channel to
 * each, and streaming each job's body from the store in its chunks as an
 * agent's socket drains (never more than WBUF_HIGH buffered per agent).
 * A chunk is copied once: from the row the store lends straight into the
 * JOB_DATA frame in the channel's write buffer.  An agent free for
 * delivery { agent_idle } is let go: the runner closes its connection and
 * the agent exits (agents start when there is work; see master.c).
 *
 * Security stance: agents are peers that may lie.  A frame outside
 * agent_may_send, over AGENT_FRAME_CAP, or that does not decode drops the
 * agent (channel_violation); what a well-formed frame means for the
 * queue is decided by the scheduler's hooks.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_pool.h"
#include "log.h"
#include "util.h"

#define WBUF_HIGH (256 * 1024)
#define AGENT_FRAME_CAP 65536   /* a result carries at most a few KiB */

/* What a delivery agent may send the runner. */
static const struct channel_rule agent_may_send[] = {
	{ IMSG_AGENT_HELLO, 0 },
	{ IMSG_RCPT_RESULT, 0 },
	{ IMSG_JOB_DONE, 0 },
	{ IMSG_AGENT_LEAVING, 0 },
	{ 0, 0 }
};

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

/* Tops up the agent's output with body chunks, then JOB_END. */
static int
agent_fill(struct agent_pool *p, struct pool_agent *a)
{
	int rc = 0;

	while (a->busy && !a->data_done && channel_pending(&a->ch) <
	    WBUF_HIGH) {
		const uint8_t *data;
		size_t len;

		rc = store_body_chunk_view(p->st, a->msgid, a->next_seq,
		    &data, &len);
		if (rc < 0) {
			log_error("%s: cannot read the message: %s", a->qid,
			    store_errmsg(p->st));
			break;
		}
		if (rc == 0) {
			(void)channel_begin(&a->ch, IMSG_JOB_END);
			(void)channel_end(&a->ch);
			a->data_done = 1;
			break;
		}
		{
			struct ipc_out *m = channel_begin(&a->ch,
			    IMSG_JOB_DATA);

			ipc_add_u32(m, a->next_seq++);
			ipc_add_data(m, data, len);
			(void)channel_end(&a->ch);
		}
	}
	store_body_view_end(p->st);
	return rc < 0 ? -1 : 0;
}

static int
agent_flush(struct agent_pool *p, struct pool_agent *a)
{
	for (;;) {
		if (agent_fill(p, a) < 0)
			return -1;
		if (channel_pending(&a->ch) == 0)
			return 0;
		if (channel_flush(&a->ch) < 0)
			return -1;
		if (channel_pending(&a->ch) > 0)
			return 0;       /* the socket is full: POLLOUT */
	}
}

static void
agent_drop(struct agent_pool *p, size_t i, const char *why)
{
	struct pool_agent *a = p->agents[i];

	if (a->busy)
		p->hooks.vanished(p->arg, a, why);
	else if (strcmp(why, "closed the connection") != 0 &&
	    strcmp(why, "left") != 0 && strcmp(why, "broke the protocol") != 0)
		log_warn("delivery agent (pid %ld) %s", (long)a->pid, why);
	channel_free(&a->ch);
	free(a);
	p->agents[i] = p->agents[--p->nagents];
	p->hooks.idle(p->arg);
}

/* One frame from the agent: 0, -1 when it lied (the channel is closed),
 * -3 when it leaves now. */
static int
agent_frame(struct agent_pool *p, struct pool_agent *a, struct ipc_in *in)
{
	char why[64];

	switch (in->type) {
	case IMSG_AGENT_HELLO: {
		uint32_t pid;

		if (ipc_get_u32(in, &pid) < 0 || ipc_end(in) < 0 || pid == 0)
			break;
		a->pid = (pid_t)pid;
		a->idle_since = now_ms();
		snprintf(a->ch.peer, sizeof(a->ch.peer), "delivery agent "
		    "(pid %ld)", (long)a->pid);
		p->hooks.idle(p->arg);
		return 0;
	}
	case IMSG_RCPT_RESULT:
		if (p->hooks.result(p->arg, a, in) < 0)
			break;
		return 0;
	case IMSG_JOB_DONE:
		if (p->hooks.done(p->arg, a, in) < 0)
			break;
		a->idle_since = now_ms();
		return a->leaving ? -3 : 0;   /* a leaving agent exits now */
	case IMSG_AGENT_LEAVING:
		/* told to stop: no more jobs; if one crossed this notice,
		 * it is run before the agent goes */
		if (ipc_end(in) < 0 || a->leaving)
			break;
		a->leaving = a->retiring = 1;
		return a->busy ? 0 : -3;
	}
	snprintf(why, sizeof(why), "a malformed or unexpected %s",
	    ipc_type_name(in->type));
	return channel_violation(&a->ch, why);
}

/* What the agent sent: 0, -1 when it lied, -2 when it closed, -3 when it
 * leaves. */
static int
agent_read(struct agent_pool *p, struct pool_agent *a)
{
	struct ipc_in in;
	int got, rc;

	if (channel_fill(&a->ch) < 0)
		return a->ch.fd < 0 ? -1 : -2;
	while ((got = channel_next(&a->ch, &in)) == 1)
		if ((rc = agent_frame(p, a, &in)) < 0)
			return rc;
	return got < 0 ? -1 : 0;
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
		a->idle_since = now_ms();
		channel_init(&a->ch, fd, "delivery agent", agent_may_send,
		    AGENT_FRAME_CAP, 0);
		a->msgid = -1;
		p->agents[p->nagents++] = a;
	}
}

size_t
agent_pool_pollfds(struct agent_pool *p, struct pollfd *pfds, size_t max)
{
	size_t i;

	for (i = 0; i < p->nagents && i < max; i++) {
		struct pool_agent *a = p->agents[i];

		pfds[i].fd = a->ch.fd;
		pfds[i].events = POLLIN | (channel_pending(&a->ch) > 0 ||
		    (a->busy && !a->data_done) ? POLLOUT : 0);
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
		if (a->ch.fd != pfds[i].fd)
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

struct ipc_out *
agent_pool_job(struct agent_pool *p, struct pool_agent *a)
{
	(void)p;
	return channel_begin(&a->ch, IMSG_JOB);
}

struct ipc_out *
agent_pool_probe(struct agent_pool *p, struct pool_agent *a)
{
	(void)p;
	return channel_begin(&a->ch, IMSG_PROBE);
}

void
agent_pool_start_probe(struct agent_pool *p, struct pool_agent *a)
{
	(void)channel_end(&a->ch);
	a->busy = 1;
	a->next_seq = 0;
	a->data_done = 1;         /* no message goes with a probe */
	(void)agent_flush(p, a);
}

void
agent_pool_start(struct agent_pool *p, struct pool_agent *a)
{
	(void)channel_end(&a->ch);
	a->busy = 1;
	a->next_seq = 0;
	a->data_done = 0;
	(void)agent_flush(p, a);
}

int64_t
agent_pool_retire_idle(struct agent_pool *p, int64_t idle_ms)
{
	int64_t now = now_ms(), next = -1;
	size_t i;

	for (i = p->nagents; i-- > 0;) {
		struct pool_agent *a = p->agents[i];
		int64_t left;

		if (a->busy || a->pid == 0 || a->retiring)
			continue;
		left = a->idle_since + idle_ms - now;
		if (left <= 0) {
			log_debug("delivery agent (pid %ld) retires: idle for "
			    "%lld s", (long)a->pid, (long long)(idle_ms / 1000));
			agent_drop(p, i, "left");
			continue;
		}
		if (next < 0 || left < next)
			next = left;
	}
	return next;
}

void
agent_pool_close(struct agent_pool *p)
{
	while (p->nagents > 0) {
		struct pool_agent *a = p->agents[--p->nagents];

		channel_free(&a->ch);
		free(a);
	}
}
