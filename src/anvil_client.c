/*
 * anvil_client.c - the SMTP worker's side of ferry-anvil (see
 * anvil_client.h and anvil.c): one connection kept open, one request
 * and (for the questions) one answer at a time, each with a short
 * deadline.  Anvil also pushes stress mode on and off over it, at any
 * time: those frames are taken wherever they arrive, between answers or
 * when the worker's loop sees the connection readable.
 *
 * Failing open: when anvil cannot be reached, or answers late or
 * wrongly, the connection is closed (anvil then releases what this
 * worker held), the action is allowed, and the outage is logged once.
 * For a short while after a failure no new attempt is made, so a dead
 * anvil does not cost every client a deadline.  A worker has a single
 * anvil client, so that bit of state lives in this file.
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

#define ANVIL_DEADLINE_MS 1000
#define ANVIL_RETRY_MS 2000     /* after a failure: fail open at once */
#define ANVIL_USER_MAX 255      /* anvil.c accepts up to 512 */

static uint32_t next_seq;
static int64_t retry_after;     /* now_ms() before which we do not try */
static int outage_logged;

/* What anvil may answer. */
static const struct channel_rule anvil_may_send[] = {
	{ IMSG_ANVIL_ANSWER, 0 },
	{ IMSG_ANVIL_STRESS, 0 },
	{ 0, 0 }
};

#define ANSWER_CAP 8            /* seq and result */

void
anvil_client_init(struct anvil_client *ac, const char *path)
{
	memset(ac, 0, sizeof(*ac));
	ac->path = xstrdup(path);
	channel_init(&ac->ch, -1, "anvil", anvil_may_send, ANSWER_CAP, 0);
}

void
anvil_client_close(struct anvil_client *ac)
{
	channel_free(&ac->ch);
	free(ac->path);
	ac->path = NULL;
}

static void
drop(struct anvil_client *ac)
{
	channel_close(&ac->ch);
}

/* Closes the connection and allows the action; logs the first failure
 * of an outage. */
static int
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
	return ANVIL_OK;
}

static int
ensure_connected(struct anvil_client *ac, char *why, size_t whylen)
{
	struct sockaddr_un sun;
	int fd;

	if (ac->ch.fd >= 0)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ac->path) >= sizeof(sun.sun_path)) {
		snprintf(why, whylen, "socket path too long");
		return -1;
	}
	strcpy(sun.sun_path, ac->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, whylen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
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

/* Reads the answer to request seq: its result, or -1 (why says). */
static int
read_answer(struct anvil_client *ac, uint32_t seq, int64_t deadline,
    char *why, size_t whylen)
{
	struct ipc_in in;
	uint32_t aseq, res;

	for (;;) {
		if (channel_read_wait(&ac->ch, &in, deadline) < 0) {
			snprintf(why, whylen, "%s", ac->ch.error);
			return -1;
		}
		if (in.type != IMSG_ANVIL_STRESS)
			break;
		if (take_stress(ac, &in) < 0) {
			snprintf(why, whylen, "malformed stress note");
			return -1;
		}
	}
	if (in.type != IMSG_ANVIL_ANSWER || ipc_get_u32(&in, &aseq) < 0 || ipc_get_u32(&in, &res) < 0 ||
	    ipc_end(&in) < 0 || aseq != seq || res > ANVIL_AUTH_LOCKED) {
		channel_violation(&ac->ch, "malformed answer");
		snprintf(why, whylen, "malformed answer");
		return -1;
	}
	/* nothing but stress notes may follow an answer unasked */
	for (;;) {
		int got = channel_next(&ac->ch, &in);

		if (got == 0)
			break;
		if (got < 0 || in.type != IMSG_ANVIL_STRESS) {
			if (got > 0)
				channel_violation(&ac->ch,
				    "an answer out of turn");
			snprintf(why, whylen, "malformed answer");
			return -1;
		}
		if (take_stress(ac, &in) < 0) {
			snprintf(why, whylen, "malformed stress note");
			return -1;
		}
	}
	return (int)res;
}

/* Sends one request and, when want_answer, returns anvil's result;
 * ANVIL_OK whenever anvil cannot be asked. */
static int
request(struct anvil_client *ac, int type, const char *addr,
    const char *user, int want_answer)
{
	int64_t deadline = now_ms() + ANVIL_DEADLINE_MS;
	char why[256] = "";
	int attempt;

	if (ac == NULL || ac->path == NULL)
		return ANVIL_OK;
	if (ac->ch.fd < 0 && now_ms() < retry_after)
		return ANVIL_OK;
	/* A kept connection may lead to an anvil that has since died:
	 * one more try on a fresh one. */
	for (attempt = 0; attempt < 2; attempt++) {
		struct ipc_out *out;
		uint32_t seq = ++next_seq;
		int reused = ac->ch.fd >= 0, rc;

		if (ensure_connected(ac, why, sizeof(why)) < 0)
			break;
		out = channel_begin(&ac->ch, type);
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
		(void)channel_end(&ac->ch);
		rc = channel_flush_wait(&ac->ch, deadline);
		if (rc < 0)
			snprintf(why, sizeof(why), "%s", ac->ch.error);
		if (rc == 0 && !want_answer)
			return ANVIL_OK;
		if (rc == 0)
			rc = read_answer(ac, seq, deadline, why,
			    sizeof(why));
		if (rc >= 0) {
			if (outage_logged) {
				log_info("anvil is reachable again");
				outage_logged = 0;
			}
			return rc;
		}
		drop(ac);
		if (!reused || now_ms() >= deadline)
			break;
	}
	return fail_open(ac, why[0] ? why : "unreachable");
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

int
anvil_client_fd(const struct anvil_client *ac)
{
	return ac->ch.fd;
}

void
anvil_client_readable(struct anvil_client *ac)
{
	struct ipc_in in;
	int n, got;

	if (ac->ch.fd < 0)
		return;
	n = channel_fill(&ac->ch);
	while (ac->ch.fd >= 0 && (got = channel_next(&ac->ch, &in)) > 0) {
		if (in.type != IMSG_ANVIL_STRESS) {
			channel_violation(&ac->ch, "an answer out of turn");
			break;
		}
		if (take_stress(ac, &in) < 0)
			break;
	}
	if (n < 0 && ac->ch.fd >= 0) {
		/* anvil went away: it forgets this worker's connections;
		 * stress mode ends with it */
		drop(ac);
		retry_after = now_ms() + ANVIL_RETRY_MS;
		if (ac->stress) {
			ac->stress = 0;
			ac->stress_timeout = 0;
			ac->stress_changed = 1;
		}
	}
}

int
anvil_connect(struct anvil_client *ac, const char *addr)
{
	return request(ac, IMSG_ANVIL_CONNECT, addr, NULL, 1);
}

void
anvil_disconnect(struct anvil_client *ac, const char *addr)
{
	(void)request(ac, IMSG_ANVIL_DISCONNECT, addr, NULL, 0);
}

int
anvil_message(struct anvil_client *ac, const char *addr)
{
	return request(ac, IMSG_ANVIL_MESSAGE, addr, NULL, 1);
}

int
anvil_auth_check(struct anvil_client *ac, const char *addr,
    const char *user)
{
	return request(ac, IMSG_ANVIL_AUTH_CHECK, addr, user ? user : "", 1);
}

void
anvil_auth_failed(struct anvil_client *ac, const char *addr,
    const char *user)
{
	(void)request(ac, IMSG_ANVIL_AUTH_FAILED, addr, user ? user : "", 0);
}
