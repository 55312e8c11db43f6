/*
 * resolve_client.c - the SMTP worker's side of ferry-resolve (see
 * resolve_client.h and resolve.c): one connection kept while there are
 * questions, requests written without waiting, answers taken when the
 * worker's loop sees the connection readable.  A worker at rest lets it
 * go (resolve_client_release), so that ferry-resolve may leave when idle.
 *
 * Matching: every request carries a sequence number that ferry-resolve
 * echoes.  Lookups end in any order, so an answer may be for any question
 * waiting; one for no question waiting is ferry-resolve lying.  Every
 * question waits equally long, so the oldest has the nearest deadline.
 *
 * Failing: when ferry-resolve cannot be reached, answers wrongly or not
 * in time, the connection is closed, every question waiting is answered
 * unknown, and the outage is logged once (and its end once).  For a
 * short while after a failure no new attempt is made, so a dead or
 * stuck ferry-resolve does not cost every client a wait.
 *
 * Security stance: ferry-resolve is trusted more than the SMTP client,
 * but what it says is still decoded strictly, and a name is checked
 * again (hostname_valid) before the session may print it.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "hostname.h"
#include "ipc.h"
#include "log.h"
#include "resolve.h"
#include "resolve_client.h"
#include "util.h"

#define RESOLVE_RETRY_MS 2000   /* after a failure: unknown at once */
#define ANSWER_CAP (4 + 4 + HOSTNAME_MAX + 8)   /* seq and a name */

static const struct channel_rule resolve_may_send[] = {
	{ IMSG_RESOLVE_ANSWER, 0 },
	{ 0, 0 }
};

void
resolve_client_init(struct resolve_client *rc, const char *path,
    int timeout_s, resolve_answer_fn *on_answer, void *arg)
{
	memset(rc, 0, sizeof(*rc));
	rc->path = path != NULL ? xstrdup(path) : NULL;
	rc->on_answer = on_answer;
	rc->arg = arg;
	rc->wait_ms = (int64_t)timeout_s * 1000 + RESOLVE_MARGIN_MS;
	channel_init(&rc->ch, -1, "resolve", resolve_may_send, ANSWER_CAP, 0);
}

void
resolve_client_close(struct resolve_client *rc)
{
	channel_free(&rc->ch);
	free(rc->path);
	rc->path = NULL;
	free(rc->waiting);
	rc->waiting = NULL;
	rc->nwaiting = rc->waiting_cap = 0;
}

/* Every question waiting is answered unknown: nobody will answer it. */
static void
fail_waiting(struct resolve_client *rc)
{
	while (rc->nwaiting > 0) {
		struct resolve_waiter w = rc->waiting[--rc->nwaiting];

		if (w.live && rc->on_answer != NULL)
			rc->on_answer(rc->arg, w.owner, "");
	}
}

static void
fail(struct resolve_client *rc, const char *why)
{
	channel_close(&rc->ch);
	fail_waiting(rc);
	rc->retry_after = now_ms() + RESOLVE_RETRY_MS;
	if (!rc->outage_logged) {
		log_warn("resolve %s: %s; clients are unknown until it is "
		    "back", rc->path, why);
		rc->outage_logged = 1;
	}
}

static int
ensure_connected(struct resolve_client *rc, char *why, size_t whylen)
{
	int fd;

	if (rc->ch.fd >= 0)
		return 0;
	if ((fd = unix_connect_nonblock(rc->path, why, whylen)) < 0)
		return -1;
	channel_reopen(&rc->ch, fd);
	return 0;
}

/* The kept answer for addr, or NULL. */
static const struct resolve_kept *
kept_find(const struct resolve_client *rc, const char *addr, int64_t now)
{
	size_t i;

	for (i = 0; i < RESOLVE_KEPT; i++)
		if (rc->kept[i].addr[0] != '\0' && rc->kept[i].expires > now &&
		    strcmp(rc->kept[i].addr, addr) == 0)
			return &rc->kept[i];
	return NULL;
}

/* Keeps an answer in the entry for addr, a free or stale one, or the one
 * that expires first. */
static void
kept_put(struct resolve_client *rc, const char *addr, const char *name,
    int64_t until)
{
	struct resolve_kept *e = &rc->kept[0];
	size_t i;

	for (i = 0; i < RESOLVE_KEPT; i++) {
		struct resolve_kept *k = &rc->kept[i];

		if (strcmp(k->addr, addr) == 0) {
			e = k;
			break;
		}
		if (k->expires < e->expires)
			e = k;
	}
	ferry_strlcpy(e->addr, addr, sizeof(e->addr));
	ferry_strlcpy(e->name, name, sizeof(e->name));
	e->expires = until;
}

int
resolve_ask(struct resolve_client *rc, uint32_t owner, const char *addr)
{
	char why[256] = "";
	const struct resolve_kept *k;
	int attempt;

	if (rc->path == NULL)
		return 0;
	if ((k = kept_find(rc, addr, now_ms())) != NULL) {
		if (rc->on_answer != NULL)
			rc->on_answer(rc->arg, owner, k->name);
		return 1;
	}
	if (rc->ch.fd < 0 && now_ms() < rc->retry_after)
		return 0;
	/* a kept connection may lead to a process that has since died:
	 * one more try on a fresh one */
	for (attempt = 0; attempt < 2; attempt++) {
		struct ipc_out *out;
		struct resolve_waiter *w;
		uint32_t seq = ++rc->next_seq;
		int reused = rc->ch.fd >= 0;

		if (ensure_connected(rc, why, sizeof(why)) < 0)
			break;
		out = channel_begin(&rc->ch, IMSG_RESOLVE_QUERY);
		ipc_add_u32(out, seq);
		ipc_add_str(out, addr);
		(void)channel_end(&rc->ch);
		if (channel_flush(&rc->ch) < 0) {
			snprintf(why, sizeof(why), "%s", rc->ch.error[0] ?
			    rc->ch.error : "write failed");
			channel_close(&rc->ch);
			/* what waited on the old connection is lost */
			fail_waiting(rc);
			if (!reused)
				break;
			continue;
		}
		if (rc->nwaiting == rc->waiting_cap) {
			rc->waiting_cap = rc->waiting_cap ?
			    rc->waiting_cap * 2 : 16;
			rc->waiting = xrealloc(rc->waiting, rc->waiting_cap *
			    sizeof(rc->waiting[0]));
		}
		w = &rc->waiting[rc->nwaiting++];
		w->seq = seq;
		w->owner = owner;
		ferry_strlcpy(w->addr, addr, sizeof(w->addr));
		w->deadline = now_ms() + rc->wait_ms;
		w->live = 1;
		return 1;
	}
	fail(rc, why[0] ? why : "unreachable");
	return 0;
}

void
resolve_client_forget(struct resolve_client *rc, uint32_t owner)
{
	size_t i;

	for (i = 0; i < rc->nwaiting; i++)
		if (rc->waiting[i].owner == owner)
			rc->waiting[i].live = 0;
}

void
resolve_client_release(struct resolve_client *rc)
{
	if (rc->ch.fd < 0 || rc->nwaiting > 0)
		return;
	if (channel_pending(&rc->ch) > 0 && (channel_flush(&rc->ch) < 0 ||
	    channel_pending(&rc->ch) > 0))
		return;
	channel_close(&rc->ch);
}

int
resolve_client_fd(const struct resolve_client *rc)
{
	return rc->ch.fd;
}

short
resolve_client_events(const struct resolve_client *rc)
{
	if (rc->ch.fd < 0)
		return 0;
	return (short)(POLLIN | (channel_pending(&rc->ch) > 0 ? POLLOUT : 0));
}

/* One answer.  -1 when ferry-resolve lied (the channel is closed). */
static int
take_answer(struct resolve_client *rc, struct ipc_in *in)
{
	struct resolve_waiter w;
	char *name = NULL;
	uint32_t seq, keep_ms;
	size_t i;

	if (ipc_get_u32(in, &seq) < 0 ||
	    ipc_get_str(in, &name, HOSTNAME_MAX) < 0 ||
	    ipc_get_u32(in, &keep_ms) < 0 || ipc_end(in) < 0 ||
	    (name[0] != '\0' && !hostname_valid(name, strlen(name)))) {
		free(name);
		return channel_violation(&rc->ch, "malformed answer");
	}
	for (i = 0; i < rc->nwaiting && rc->waiting[i].seq != seq; i++)
		continue;
	if (i == rc->nwaiting) {
		free(name);
		return channel_violation(&rc->ch, "an answer nobody asked for");
	}
	w = rc->waiting[i];
	memmove(&rc->waiting[i], &rc->waiting[i + 1],
	    (rc->nwaiting - i - 1) * sizeof(rc->waiting[0]));
	rc->nwaiting--;
	if (rc->outage_logged) {
		log_info("resolve is reachable again");
		rc->outage_logged = 0;
	}
	if (keep_ms > RESOLVE_KEEP_MS)
		keep_ms = RESOLVE_KEEP_MS;
	if (keep_ms > 0)
		kept_put(rc, w.addr, name, now_ms() + keep_ms);
	if (w.live && rc->on_answer != NULL)
		rc->on_answer(rc->arg, w.owner, name);
	free(name);
	return 0;
}

void
resolve_client_io(struct resolve_client *rc, short revents)
{
	struct ipc_in in;
	int n, got;

	if (rc->ch.fd < 0)
		return;
	if ((revents & POLLOUT) && channel_flush(&rc->ch) < 0) {
		fail(rc, rc->ch.error[0] ? rc->ch.error : "write failed");
		return;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	n = channel_fill(&rc->ch);
	while (rc->ch.fd >= 0 && (got = channel_next(&rc->ch, &in)) > 0)
		if (take_answer(rc, &in) < 0)
			break;
	if (rc->ch.fd < 0)
		fail(rc, "it broke the protocol");
	else if (n < 0) {
		if (rc->nwaiting > 0)
			fail(rc, "connection closed");
		else {
			/* it went away between questions (a reload) */
			channel_close(&rc->ch);
		}
	}
}

int64_t
resolve_client_deadline(const struct resolve_client *rc)
{
	return rc->nwaiting > 0 ? rc->waiting[0].deadline : 0;
}

void
resolve_client_tick(struct resolve_client *rc, int64_t now)
{
	if (rc->nwaiting > 0 && now >= rc->waiting[0].deadline)
		fail(rc, "no answer in time");
}
