/*
 * anvil_client.c - the SMTP worker's side of ferry-anvil (see
 * anvil_client.h and anvil.c): one connection kept open, requests
 * written without waiting, answers taken when the worker's loop sees the
 * connection readable.  Anvil also pushes stress mode on and off over
 * it, at any time, between answers.  A worker at rest lets the
 * connection go (anvil_client_release), so that anvil may leave when
 * idle; the next question connects again, to the socket the master
 * holds, which waits in its backlog while the master starts anvil.
 *
 * Matching: every request carries a sequence number that anvil echoes,
 * and anvil answers one connection's questions in the order asked.  So
 * the questions waiting are a FIFO, and an answer must carry the oldest
 * one's number; anything else (another number, an answer when nothing
 * waits, a result we do not know) is anvil lying, and drops the
 * connection.  Every question has the same deadline length, so the
 * oldest one also has the nearest deadline.
 *
 * Failing open: when anvil cannot be reached, does not answer before the
 * deadline, or answers wrongly, the connection is closed (anvil then
 * releases what this worker held), every question waiting is allowed,
 * and the outage is logged once (and its end once).  For a short while
 * after a failure no new attempt is made, so a dead or stuck anvil does
 * not cost every client a deadline.  A worker has a single anvil client,
 * so that bit of state lives in this file.
 *
 * Security stance: anvil is trusted more than the SMTP client, but its
 * answers are still decoded strictly.
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

#include "anvil_client.h"
#include "ipc.h"
#include "log.h"
#include "util.h"

#define ANVIL_RETRY_MS 2000     /* after a failure: fail open at once */
#define ANVIL_USER_MAX 255      /* anvil.c accepts up to 512 */

static uint32_t next_seq;
static int64_t retry_after;     /* now_ms() before which we do not try */
static int outage_logged;

/* What anvil may answer. */
static const struct channel_rule anvil_may_send[] = {
	{ IMSG_ANVIL_ANSWER, 0 },
	{ IMSG_ANVIL_STRESS, 0 },
	{ IMSG_ANVIL_CONNECTS_ANSWER, 0 },
	{ IMSG_ANVIL_RECALL, 0 },
	{ 0, 0 }
};

#define ANSWER_CAP 13           /* seq, result, granted, kept (CONNECTS) */

static void lease_keep(struct anvil_client *ac, const char *addr,
    uint32_t n);
static void slots_answered(struct anvil_client *ac, const char *addr,
    int res, uint32_t granted, int keep);
static int request_x(struct anvil_client *ac, int type, const char *addr,
    const char *user, int want_answer, uint32_t owner, uint32_t count,
    uint32_t extra);

void
anvil_client_init(struct anvil_client *ac, const char *path,
    anvil_answer_fn *on_answer, void *arg)
{
	memset(ac, 0, sizeof(*ac));
	ac->path = xstrdup(path);
	ac->on_answer = on_answer;
	ac->arg = arg;
	channel_init(&ac->ch, -1, "anvil", anvil_may_send, ANSWER_CAP, 0);
}

void
anvil_client_close(struct anvil_client *ac)
{
	channel_free(&ac->ch);
	free(ac->path);
	ac->path = NULL;
	free(ac->waiting);
	ac->waiting = NULL;
	ac->nwaiting = ac->waiting_cap = 0;
}

/* Every question waiting is allowed: nobody will answer it now. */
static void
allow_waiting(struct anvil_client *ac)
{
	while (ac->nwaiting > 0) {
		struct anvil_waiter w = ac->waiting[--ac->nwaiting];

		if (w.live && ac->on_answer != NULL)
			ac->on_answer(ac->arg, w.owner, ANVIL_OK);
	}
}

/* The connection is gone: what anvil held for us is released there,
 * stress mode ends with it, and the questions waiting are allowed. */
static void
drop(struct anvil_client *ac)
{
	channel_close(&ac->ch);
	/* a new anvil does not know them; the old one let them drain */
	memset(ac->leases, 0, sizeof(ac->leases));
	memset(ac->slots, 0, sizeof(ac->slots));
	if (ac->stress) {
		ac->stress = 0;
		ac->stress_timeout = 0;
		ac->stress_changed = 1;
	}
	allow_waiting(ac);
}

/* Closes the connection and allows the action; logs the first failure
 * of an outage. */
static void
fail_open(struct anvil_client *ac, const char *why)
{
	drop(ac);
	retry_after = now_ms() + ANVIL_RETRY_MS;
	if (!outage_logged) {
		log_warn("anvil %s: %s; allowing connections, messages and "
		    "authentication without the shared limits until it is "
		    "back", ac->path ? ac->path : "(none)", why);
		outage_logged = 1;
	}
}

static int
ensure_connected(struct anvil_client *ac, char *why, size_t whylen)
{
	int fd;

	if (ac->ch.fd >= 0)
		return 0;
	if ((fd = unix_connect_nonblock(ac->path, why, whylen)) < 0)
		return -1;
	channel_reopen(&ac->ch, fd);
	return 0;
}

/* A stress frame: u8 on/off, u32 timeout in seconds.  -1 when it is
 * malformed (the channel is closed). */
static int
take_stress(struct anvil_client *ac, struct ipc_in *in)
{
	uint8_t on;
	uint32_t secs;

	if (ipc_get_u8(in, &on) < 0 || ipc_get_u32(in, &secs) < 0 ||
	    ipc_end(in) < 0 || on > 1 || (on && secs == 0)) {
		channel_violation(&ac->ch, "malformed ANVIL_STRESS");
		return -1;
	}
	ac->stress = on;
	ac->stress_timeout = on ? secs : 0;
	ac->stress_changed = 1;
	return 0;
}

/* An answer: it must be the oldest question's.  -1 when anvil lied (the
 * channel is closed). */
static int
take_answer(struct anvil_client *ac, struct ipc_in *in)
{
	struct anvil_waiter w;
	uint32_t aseq, res, granted;
	uint8_t keep = 0;
	int of_connects = in->type == IMSG_ANVIL_CONNECTS_ANSWER;

	if (ipc_get_u32(in, &aseq) < 0 || ipc_get_u32(in, &res) < 0 ||
	    ipc_get_u32(in, &granted) < 0 ||
	    (of_connects && ipc_get_u8(in, &keep) < 0) ||
	    ipc_end(in) < 0 || res > ANVIL_AUTH_LOCKED ||
	    granted > ANVIL_LEASE_MAX || keep > ANVIL_ASK_AGAIN ||
	    (keep == ANVIL_ASK_AGAIN && res != ANVIL_TOO_MANY_CONNECTIONS &&
	    res != ANVIL_TOO_MANY_FROM_CLIENT))
		return channel_violation(&ac->ch, "malformed answer");
	if (ac->nwaiting == 0)
		return channel_violation(&ac->ch, "an answer nobody asked for");
	if (aseq != ac->waiting[0].seq ||
	    of_connects != ac->waiting[0].connects)
		return channel_violation(&ac->ch, "an answer out of turn");
	if (granted > 0 && ((!ac->waiting[0].lease && !of_connects) ||
	    res != ANVIL_OK))
		return channel_violation(&ac->ch, "a grant nobody asked for");
	if (keep == 1 && res != ANVIL_OK)
		return channel_violation(&ac->ch, "a refused slot kept");
	w = ac->waiting[0];
	if (keep == ANVIL_ASK_AGAIN && w.again < ANVIL_AGAIN_MAX) {
		memmove(&ac->waiting[0], &ac->waiting[1],
		    (ac->nwaiting - 1) * sizeof(ac->waiting[0]));
		ac->nwaiting--;
		if (!w.live)
			return 0;
		if (request_x(ac, IMSG_ANVIL_CONNECTS, w.lease_addr, NULL, 1,
		    w.owner, w.want, 0))
			ac->waiting[ac->nwaiting - 1].again = w.again + 1;
		else if (ac->on_answer != NULL)
			ac->on_answer(ac->arg, w.owner, ANVIL_OK);
		return 0;
	}
	if (keep == ANVIL_ASK_AGAIN)
		keep = 0;
	if (of_connects)
		slots_answered(ac, w.lease_addr, (int)res, granted, keep);
	else if (granted > 1)
		lease_keep(ac, w.lease_addr, granted - 1);
	memmove(&ac->waiting[0], &ac->waiting[1],
	    (ac->nwaiting - 1) * sizeof(ac->waiting[0]));
	ac->nwaiting--;
	if (outage_logged) {
		log_info("anvil is reachable again");
		outage_logged = 0;
	}
	if (w.live && ac->on_answer != NULL)
		ac->on_answer(ac->arg, w.owner, (int)res);
	return 0;
}

/* The lease held for addr, or NULL. */
static struct anvil_lease *
lease_of(struct anvil_client *ac, const char *addr)
{
	size_t i;

	for (i = 0; i < ANVIL_LEASES; i++)
		if (ac->leases[i].addr[0] != '\0' &&
		    strcmp(ac->leases[i].addr, addr) == 0)
			return &ac->leases[i];
	return NULL;
}

static void give_back(struct anvil_client *ac, struct anvil_lease *l);

/* Keeps n messages granted for addr: in its lease, or a free one, or
 * the one that ends first (given back). */
static void
lease_keep(struct anvil_client *ac, const char *addr, uint32_t n)
{
	struct anvil_lease *l = lease_of(ac, addr);
	size_t i;

	if (l == NULL) {
		l = &ac->leases[0];
		for (i = 0; i < ANVIL_LEASES; i++) {
			if (ac->leases[i].addr[0] == '\0') {
				l = &ac->leases[i];
				break;
			}
			if (ac->leases[i].until < l->until)
				l = &ac->leases[i];
		}
		give_back(ac, l);
		ferry_strlcpy(l->addr, addr, sizeof(l->addr));
	}
	l->left += n;
	l->until = now_ms() + ANVIL_LEASE_MS;
}

/* Writes one request; want_answer: a question for owner.  1 asked, 0
 * not (anvil unreachable: allowed).  count: MESSAGE's lease wanted,
 * MESSAGES_BACK's messages, CONNECTS' rate events wanted or
 * CONNECTS_BACK's rate events; extra: CONNECTS' "on a slot held" or
 * CONNECTS_BACK's slots. */
static int
request_x(struct anvil_client *ac, int type, const char *addr,
    const char *user, int want_answer, uint32_t owner, uint32_t count,
    uint32_t extra)
{
	char why[256] = "";
	int attempt;

	if (ac == NULL || ac->path == NULL)
		return 0;
	if (ac->ch.fd < 0 && now_ms() < retry_after)
		return 0;
	/* A kept connection may lead to an anvil that has since died:
	 * one more try on a fresh one. */
	for (attempt = 0; attempt < 2; attempt++) {
		struct ipc_out *out;
		uint32_t seq = ++next_seq;
		int reused = ac->ch.fd >= 0;

		if (ensure_connected(ac, why, sizeof(why)) < 0)
			break;
		out = channel_begin(&ac->ch, type);
		if (type == IMSG_ANVIL_RECALL)   /* no fields */
			goto written;
		ipc_add_u32(out, seq);
		ipc_add_str(out, addr);
		if (type == IMSG_ANVIL_AUTH_CHECK ||
		    type == IMSG_ANVIL_AUTH_FAILED) {
			/* the client chose it: anvil takes at most
			 * ANVIL_USER_MAX bytes */
			size_t ulen = strlen(user);

			ipc_add_data(out, user, ulen > ANVIL_USER_MAX ?
			    ANVIL_USER_MAX : ulen);
		}
		if (type == IMSG_ANVIL_MESSAGE ||
		    type == IMSG_ANVIL_MESSAGES_BACK ||
		    type == IMSG_ANVIL_CONNECTS ||
		    type == IMSG_ANVIL_CONNECTS_BACK)
			ipc_add_u32(out, count);
		if (type == IMSG_ANVIL_CONNECTS)
			ipc_add_u8(out, (uint8_t)(extra != 0));
		if (type == IMSG_ANVIL_CONNECTS_BACK)
			ipc_add_u32(out, extra);
written:
		(void)channel_end(&ac->ch);
		if (channel_flush(&ac->ch) == 0) {
			if (want_answer) {
				struct anvil_waiter *w;

				if (ac->nwaiting == ac->waiting_cap) {
					ac->waiting_cap = ac->waiting_cap ?
					    ac->waiting_cap * 2 : 16;
					ac->waiting = xrealloc(ac->waiting,
					    ac->waiting_cap *
					    sizeof(ac->waiting[0]));
				}
				w = &ac->waiting[ac->nwaiting++];
				w->seq = seq;
				w->owner = owner;
				w->deadline = now_ms() + ANVIL_DEADLINE_MS;
				w->live = 1;
				w->lease = type == IMSG_ANVIL_MESSAGE &&
				    strlen(addr) < sizeof(w->lease_addr);
				w->connects = type == IMSG_ANVIL_CONNECTS;
				w->want = count;
				w->again = 0;
				w->lease_addr[0] = '\0';
				if (strlen(addr) < sizeof(w->lease_addr))
					memcpy(w->lease_addr, addr,
					    strlen(addr) + 1);
			}
			return want_answer;
		}
		snprintf(why, sizeof(why), "%s", ac->ch.error[0] ?
		    ac->ch.error : "write failed");
		drop(ac);
		if (!reused)
			break;
	}
	fail_open(ac, why[0] ? why : "unreachable");
	return 0;
}

static int
request_n(struct anvil_client *ac, int type, const char *addr,
    const char *user, int want_answer, uint32_t owner, uint32_t count)
{
	return request_x(ac, type, addr, user, want_answer, owner, count, 0);
}

static int
request(struct anvil_client *ac, int type, const char *addr,
    const char *user, int want_answer, uint32_t owner)
{
	return request_n(ac, type, addr, user, want_answer, owner, 0);
}

/* What is left of a lease goes back to anvil; the lease is free. */
static void
give_back(struct anvil_client *ac, struct anvil_lease *l)
{
	if (l->addr[0] != '\0' && l->left > 0 && ac->ch.fd >= 0)
		(void)request_n(ac, IMSG_ANVIL_MESSAGES_BACK, l->addr, NULL,
		    0, 0, l->left);
	memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------ connection leases */

/* The connection lease of addr, or NULL. */
static struct anvil_slots *
slots_of(struct anvil_client *ac, const char *addr)
{
	size_t i;

	for (i = 0; i < ANVIL_LEASES; i++)
		if (ac->slots[i].addr[0] != '\0' &&
		    strcmp(ac->slots[i].addr, addr) == 0)
			return &ac->slots[i];
	return NULL;
}

/* Gives back the rate events (rate) and kept slots (kept) of sl that
 * are set, in one frame. */
static void
slots_give_back(struct anvil_client *ac, struct anvil_slots *sl, int rate,
    int kept)
{
	uint32_t nrate = rate ? sl->rate_left : 0;
	uint32_t nkept = kept ? sl->kept : 0;

	if (rate)
		sl->rate_left = 0;
	if (kept)
		sl->kept = 0;
	if ((nrate > 0 || nkept > 0) && ac->ch.fd >= 0)
		(void)request_x(ac, IMSG_ANVIL_CONNECTS_BACK, sl->addr, NULL,
		    0, 0, nrate, nkept);
	if (sl->rate_left == 0 && sl->kept == 0 && !sl->may_keep)
		memset(sl, 0, sizeof(*sl));
}

/* The lease of addr, made (from a free one, or the one that ends first,
 * given back) when there is none. */
static struct anvil_slots *
slots_get(struct anvil_client *ac, const char *addr)
{
	struct anvil_slots *sl = slots_of(ac, addr);
	size_t i;

	if (sl != NULL || strlen(addr) >= sizeof(sl->addr))
		return sl;
	sl = &ac->slots[0];
	for (i = 0; i < ANVIL_LEASES; i++) {
		struct anvil_slots *o = &ac->slots[i];

		if (o->addr[0] == '\0') {
			sl = o;
			break;
		}
		if ((o->rate_until > o->kept_until ? o->rate_until :
		    o->kept_until) < (sl->rate_until > sl->kept_until ?
		    sl->rate_until : sl->kept_until))
			sl = o;
	}
	if (sl->addr[0] != '\0') {
		sl->may_keep = 0;
		slots_give_back(ac, sl, 1, 1);
	}
	memset(sl, 0, sizeof(*sl));
	ferry_strlcpy(sl->addr, addr, sizeof(sl->addr));
	return sl;
}

/* Anvil answered a CONNECTS question for addr. */
static void
slots_answered(struct anvil_client *ac, const char *addr, int res,
    uint32_t granted, int keep)
{
	struct anvil_slots *sl = granted > 1 || keep ? slots_get(ac, addr) :
	    slots_of(ac, addr);

	if (sl == NULL)
		return;
	if (granted > 1) {
		sl->rate_left += granted - 1;
		sl->rate_until = now_ms() + ANVIL_LEASE_MS;
	}
	sl->may_keep = keep && res == ANVIL_OK;
	sl->keep_until = now_ms() + ANVIL_LEASE_MS;
	if (!sl->may_keep)   /* near a limit: counted one by one */
		slots_give_back(ac, sl, 0, 1);
}

/* Anvil recalls every kept slot; none is kept until it allows it
 * again. */
static void
slots_recalled(struct anvil_client *ac)
{
	size_t i;

	for (i = 0; i < ANVIL_LEASES; i++)
		if (ac->slots[i].addr[0] != '\0') {
			ac->slots[i].may_keep = 0;
			slots_give_back(ac, &ac->slots[i], 0, 1);
		}
}

int
anvil_ask_connects(struct anvil_client *ac, uint32_t owner,
    const char *addr)
{
	struct anvil_slots *sl = ac->path != NULL ? slots_of(ac, addr) : NULL;
	uint32_t want = ANVIL_LEASE_MAX;
	int held = 0;

	if (sl != NULL) {
		int rate = sl->rate_left > 0 && now_ms() < sl->rate_until;

		held = sl->kept > 0;
		if (held && rate) {
			sl->kept--;
			sl->rate_left--;
			return 0;        /* a slot and its rate at hand */
		}
		if (rate) {
			sl->rate_left--;
			want = 0;
		}
		if (held)
			sl->kept--;
	}
	return request_x(ac, IMSG_ANVIL_CONNECTS, addr, NULL, 1, owner, want,
	    (uint32_t)held);
}

void
anvil_end_connection(struct anvil_client *ac, const char *addr)
{
	struct anvil_slots *sl = ac->path != NULL ? slots_of(ac, addr) : NULL;

	if (sl != NULL && sl->may_keep && now_ms() < sl->keep_until &&
	    ac->ch.fd >= 0 && sl->kept < ANVIL_LEASE_MAX) {
		sl->kept++;
		sl->kept_until = now_ms() + ANVIL_LEASE_MS;
		return;
	}
	anvil_disconnect(ac, addr);
}

void
anvil_client_keep_connected(struct anvil_client *ac)
{
	char why[256];

	if (ac->path == NULL || ac->ch.fd >= 0 || now_ms() < retry_after)
		return;
	if (ensure_connected(ac, why, sizeof(why)) < 0)
		retry_after = now_ms() + ANVIL_RETRY_MS;
}

void
anvil_client_release(struct anvil_client *ac)
{
	size_t i;

	if (ac->ch.fd < 0 || ac->nwaiting > 0)
		return;
	for (i = 0; i < ANVIL_LEASES; i++)
		if (ac->leases[i].addr[0] != '\0')
			give_back(ac, &ac->leases[i]);
	for (i = 0; i < ANVIL_LEASES; i++)
		if (ac->slots[i].addr[0] != '\0') {
			ac->slots[i].may_keep = 0;
			slots_give_back(ac, &ac->slots[i], 1, 1);
		}
	if (ac->ch.fd < 0 || (channel_pending(&ac->ch) > 0 &&
	    channel_flush(&ac->ch) == 0 && channel_pending(&ac->ch) > 0))
		return;   /* gone already, or still writing */
	drop(ac);
}

int
anvil_client_fd(const struct anvil_client *ac)
{
	return ac->ch.fd;
}

short
anvil_client_events(const struct anvil_client *ac)
{
	if (ac->ch.fd < 0)
		return 0;
	return (short)(POLLIN | (channel_pending(&ac->ch) > 0 ? POLLOUT : 0));
}

void
anvil_client_io(struct anvil_client *ac, short revents)
{
	struct ipc_in in;
	int n, got;

	if (ac->ch.fd < 0)
		return;
	if ((revents & POLLOUT) && channel_flush(&ac->ch) < 0) {
		fail_open(ac, ac->ch.error[0] ? ac->ch.error : "write failed");
		return;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	n = channel_fill(&ac->ch);
	while (ac->ch.fd >= 0 && (got = channel_next(&ac->ch, &in)) > 0) {
		if (in.type == IMSG_ANVIL_STRESS) {
			if (take_stress(ac, &in) < 0)
				break;
		} else if (in.type == IMSG_ANVIL_RECALL) {
			if (ipc_end(&in) < 0) {
				channel_violation(&ac->ch, "malformed RECALL");
				break;
			}
			slots_recalled(ac);
			/* answered on this connection only: a new one owes
			 * anvil nothing */
			if (ac->ch.fd >= 0)
				(void)request(ac, IMSG_ANVIL_RECALL, NULL,
				    NULL, 0, 0);
		} else if (take_answer(ac, &in) < 0)
			break;
	}
	if (ac->ch.fd < 0) {
		/* a violation closed it */
		fail_open(ac, "it broke the protocol");
	} else if (n < 0) {
		/* anvil went away: it forgets this worker's connections */
		if (ac->nwaiting > 0)
			fail_open(ac, "connection closed");
		else {
			drop(ac);
			retry_after = now_ms() + ANVIL_RETRY_MS;
		}
	}
}

int64_t
anvil_client_deadline(const struct anvil_client *ac)
{
	return ac->nwaiting > 0 ? ac->waiting[0].deadline : 0;
}

void
anvil_client_tick(struct anvil_client *ac, int64_t now)
{
	size_t i;

	if (ac->nwaiting > 0 && now >= ac->waiting[0].deadline)
		fail_open(ac, "no answer in time");
	for (i = 0; i < ANVIL_LEASES; i++)
		if (ac->leases[i].addr[0] != '\0' &&
		    now >= ac->leases[i].until)
			give_back(ac, &ac->leases[i]);
	for (i = 0; i < ANVIL_LEASES; i++) {
		struct anvil_slots *sl = &ac->slots[i];

		if (sl->addr[0] == '\0')
			continue;
		if (now >= sl->keep_until)
			sl->may_keep = 0;   /* anvil's word is that old */
		slots_give_back(ac, sl, sl->rate_left > 0 &&
		    now >= sl->rate_until, sl->kept > 0 &&
		    now >= sl->kept_until);
	}
}

void
anvil_client_forget(struct anvil_client *ac, uint32_t owner)
{
	size_t i;

	for (i = 0; i < ac->nwaiting; i++)
		if (ac->waiting[i].owner == owner)
			ac->waiting[i].live = 0;
}

int
anvil_ask_connect(struct anvil_client *ac, uint32_t owner, const char *addr)
{
	return request(ac, IMSG_ANVIL_CONNECT, addr, NULL, 1, owner);
}

int
anvil_ask_message(struct anvil_client *ac, uint32_t owner, const char *addr)
{
	struct anvil_lease *l = ac->path != NULL ? lease_of(ac, addr) : NULL;

	if (l != NULL && l->left > 0 && now_ms() < l->until) {
		l->left--;
		return 0;        /* lent already */
	}
	return request_n(ac, IMSG_ANVIL_MESSAGE, addr, NULL, 1, owner,
	    ANVIL_LEASE_MAX);
}

int
anvil_ask_auth(struct anvil_client *ac, uint32_t owner, const char *addr,
    const char *user)
{
	return request(ac, IMSG_ANVIL_AUTH_CHECK, addr, user ? user : "", 1,
	    owner);
}

void
anvil_disconnect(struct anvil_client *ac, const char *addr)
{
	(void)request(ac, IMSG_ANVIL_DISCONNECT, addr, NULL, 0, 0);
}

void
anvil_auth_failed(struct anvil_client *ac, const char *addr,
    const char *user)
{
	(void)request(ac, IMSG_ANVIL_AUTH_FAILED, addr, user ? user : "", 0,
	    0);
}
