/*
 * anvil_client.c - the SMTP worker's side of ferry-anvil (see
 * anvil_client.h and anvil.c): one connection kept open, one request
 * and (for the questions) one answer at a time, each with a short
 * deadline.
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

void
anvil_client_init(struct anvil_client *ac, const char *path)
{
	ac->path = xstrdup(path);
	ac->fd = -1;
}

void
anvil_client_close(struct anvil_client *ac)
{
	if (ac->fd >= 0)
		close(ac->fd);
	ac->fd = -1;
	free(ac->path);
	ac->path = NULL;
}

static void
drop(struct anvil_client *ac)
{
	if (ac->fd >= 0)
		close(ac->fd);
	ac->fd = -1;
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

	if (ac->fd >= 0)
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
	ac->fd = fd;
	return 0;
}

/* Waits for fd to be ready for events; -1 when the deadline passed. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { fd, events, 0 };
		int64_t left = deadline - now_ms();
		int rc;

		if (left <= 0)
			return -1;
		rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static int
send_all(int fd, const uint8_t *p, size_t len, int64_t deadline,
    char *why, size_t whylen)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    wait_fd(fd, POLLOUT, deadline) == 0)
			continue;
		snprintf(why, whylen, "write: %s", n < 0 && errno != EAGAIN ?
		    strerror(errno) : "timeout");
		return -1;
	}
	return 0;
}

/* Reads the answer to request seq: its result, or -1 (why says). */
static int
read_answer(int fd, uint32_t seq, int64_t deadline, char *why,
    size_t whylen)
{
	uint8_t buf[64];
	size_t len = 0;

	for (;;) {
		struct ipc_in in;
		uint32_t aseq, res;
		long flen = ipc_frame(buf, len, &in);
		ssize_t n;

		if (flen < 0) {
			snprintf(why, whylen, "malformed answer");
			return -1;
		}
		if (flen > 0) {
			if ((size_t)flen != len || in.type != IMSG_ANVIL_ANSWER ||
			    ipc_get_u32(&in, &aseq) < 0 ||
			    ipc_get_u32(&in, &res) < 0 || ipc_end(&in) < 0 ||
			    aseq != seq || res > ANVIL_AUTH_LOCKED) {
				snprintf(why, whylen, "malformed answer");
				return -1;
			}
			return (int)res;
		}
		if (len == sizeof(buf)) {
			snprintf(why, whylen, "oversized answer");
			return -1;
		}
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0) {
			snprintf(why, whylen, "connection closed");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
		    wait_fd(fd, POLLIN, deadline) == 0)
			continue;
		snprintf(why, whylen, "read: %s", errno == EAGAIN ||
		    errno == EWOULDBLOCK ? "no answer in time" :
		    strerror(errno));
		return -1;
	}
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
	if (ac->fd < 0 && now_ms() < retry_after)
		return ANVIL_OK;
	/* A kept connection may lead to an anvil that has since died:
	 * one more try on a fresh one. */
	for (attempt = 0; attempt < 2; attempt++) {
		struct ipc_out out;
		const uint8_t *f;
		size_t len;
		uint32_t seq = ++next_seq;
		int reused = ac->fd >= 0, rc;

		if (ensure_connected(ac, why, sizeof(why)) < 0)
			break;
		memset(&out, 0, sizeof(out));
		ipc_out_init(&out, type);
		ipc_add_u32(&out, seq);
		ipc_add_str(&out, addr);
		if (type == IMSG_ANVIL_AUTH_CHECK ||
		    type == IMSG_ANVIL_AUTH_FAILED) {
			/* the client chose it: anvil takes at most
			 * ANVIL_USER_MAX bytes */
			size_t ulen = strlen(user);

			ipc_add_data(&out, user, ulen > ANVIL_USER_MAX ?
			    ANVIL_USER_MAX : ulen);
		}
		f = ipc_out_finish(&out, &len);
		rc = send_all(ac->fd, f, len, deadline, why, sizeof(why));
		ipc_out_free(&out);
		if (rc == 0 && !want_answer)
			return ANVIL_OK;
		if (rc == 0)
			rc = read_answer(ac->fd, seq, deadline, why,
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
