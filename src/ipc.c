/*
 * ipc.c - building and reading typed frames between ferry's processes.
 *
 * Security stance: frames come from other ferry processes, some of which
 * (the SMTP workers) face the internet and may be compromised.  Every read
 * is bounds-checked, strings are length-limited and NUL-free, and a frame
 * with leftover bytes is rejected.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "ipc.h"
#include "log.h"
#include "util.h"

static const char *const ipc_names[IMSG_TYPE_MAX] = {
	[IMSG_TX_BEGIN] = "TX_BEGIN",
	[IMSG_TX_DATA] = "TX_DATA",
	[IMSG_TX_COMMIT] = "TX_COMMIT",
	[IMSG_TX_ABORT] = "TX_ABORT",
	[IMSG_TX_BEGUN] = "TX_BEGUN",
	[IMSG_TX_COMMITTED] = "TX_COMMITTED",
	[IMSG_TX_FAIL] = "TX_FAIL",
	[IMSG_AGENT_HELLO] = "AGENT_HELLO",
	[IMSG_JOB] = "JOB",
	[IMSG_JOB_DATA] = "JOB_DATA",
	[IMSG_JOB_END] = "JOB_END",
	[IMSG_RCPT_RESULT] = "RCPT_RESULT",
	[IMSG_JOB_DONE] = "JOB_DONE",
	[IMSG_AGENT_LEAVING] = "AGENT_LEAVING",
	[IMSG_ANVIL_CONNECT] = "ANVIL_CONNECT",
	[IMSG_ANVIL_DISCONNECT] = "ANVIL_DISCONNECT",
	[IMSG_ANVIL_MESSAGE] = "ANVIL_MESSAGE",
	[IMSG_ANVIL_AUTH_CHECK] = "ANVIL_AUTH_CHECK",
	[IMSG_ANVIL_AUTH_FAILED] = "ANVIL_AUTH_FAILED",
	[IMSG_ANVIL_ANSWER] = "ANVIL_ANSWER",
	[IMSG_WORKER_STATUS] = "WORKER_STATUS",
	[IMSG_NOTE_POOL] = "NOTE_POOL",
	[IMSG_NOTE_RELOAD] = "NOTE_RELOAD",
	[IMSG_NOTE_ANVIL_LIMITS] = "NOTE_ANVIL_LIMITS",
	[IMSG_ANVIL_STRESS] = "ANVIL_STRESS",
	[IMSG_QUEUE_STATE] = "QUEUE_STATE",
	[IMSG_CTL_REQUEST] = "CTL_REQUEST",
	[IMSG_CTL_ANSWER] = "CTL_ANSWER",
	[IMSG_CTL_ANSWER_END] = "CTL_ANSWER_END",
	[IMSG_NOTE_PING] = "NOTE_PING",
	[IMSG_NOTE_PONG] = "NOTE_PONG",
	[IMSG_NOTE_GENERATION] = "NOTE_GENERATION",
	[IMSG_NOTE_AGENTS] = "NOTE_AGENTS",
	[IMSG_WORKER_COUNTERS] = "WORKER_COUNTERS",
	[IMSG_NOTE_ANVIL_STRESS] = "NOTE_ANVIL_STRESS",
	[IMSG_NOTE_DRAIN] = "NOTE_DRAIN",
	[IMSG_NOTE_DRAINING] = "NOTE_DRAINING",
	[IMSG_RESOLVE_QUERY] = "RESOLVE_QUERY",
	[IMSG_RESOLVE_ANSWER] = "RESOLVE_ANSWER",
	[IMSG_NOTE_DKIM_KEYS] = "NOTE_DKIM_KEYS",
	[IMSG_NOTE_ANVIL_COUNTS] = "NOTE_ANVIL_COUNTS",
	[IMSG_NOTE_ANVIL] = "NOTE_ANVIL",
	[IMSG_NOTE_POOL_PACKED] = "NOTE_POOL_PACKED",
	[IMSG_TOKEN_STATE] = "TOKEN_STATE",
	[IMSG_TOKEN_REFRESH] = "TOKEN_REFRESH",
	[IMSG_TOKEN_ROTATED] = "TOKEN_ROTATED",
	[IMSG_PROBE] = "PROBE",
	[IMSG_ROUTE_CAPS] = "ROUTE_CAPS",
	[IMSG_ANVIL_MESSAGES_BACK] = "ANVIL_MESSAGES_BACK",
	[IMSG_ANVIL_CONNECTS] = "ANVIL_CONNECTS",
	[IMSG_ANVIL_CONNECTS_ANSWER] = "ANVIL_CONNECTS_ANSWER",
	[IMSG_ANVIL_CONNECTS_BACK] = "ANVIL_CONNECTS_BACK",
	[IMSG_ANVIL_RECALL] = "ANVIL_RECALL",
};

const char *
ipc_type_name(int type)
{
	if (type <= 0 || type >= IMSG_TYPE_MAX || ipc_names[type] == NULL)
		return "unknown";
	return ipc_names[type];
}

static void
out_reserve(struct ipc_out *m, size_t more)
{
	if (m->len + more > m->cap) {
		size_t cap = m->cap ? m->cap : 256;

		while (cap < m->len + more)
			cap *= 2;
		m->buf = xrealloc(m->buf, cap);
		m->cap = cap;
	}
}

static void
out_put(struct ipc_out *m, const void *p, size_t n)
{
	out_reserve(m, n);
	memcpy(m->buf + m->len, p, n);
	m->len += n;
}

void
ipc_out_begin(struct ipc_out *m, int type)
{
	uint16_t t = htons((uint16_t)type), v = htons(IPC_VERSION);
	uint32_t zero = 0;

	if (m->cap == 0) {
		m->buf = NULL;
		m->len = 0;
	}
	m->start = m->len;
	out_put(m, &zero, 4);
	out_put(m, &t, 2);
	out_put(m, &v, 2);
}

void
ipc_out_init(struct ipc_out *m, int type)
{
	m->len = 0;
	ipc_out_begin(m, type);
}

size_t
ipc_out_end(struct ipc_out *m)
{
	size_t flen = m->len - m->start;
	uint32_t plen;

	if (flen - IPC_HEADER_SIZE > IPC_MAX_PAYLOAD)
		log_panic("ipc: frame of %zu bytes is too long", flen);
	plen = htonl((uint32_t)(flen - IPC_HEADER_SIZE));
	memcpy(m->buf + m->start, &plen, 4);
	return flen;
}

void
ipc_out_free(struct ipc_out *m)
{
	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
}

void
ipc_add_u8(struct ipc_out *m, uint8_t v)
{
	out_put(m, &v, 1);
}

void
ipc_add_u32(struct ipc_out *m, uint32_t v)
{
	v = htonl(v);
	out_put(m, &v, 4);
}

void
ipc_add_i32(struct ipc_out *m, int32_t v)
{
	ipc_add_u32(m, (uint32_t)v);
}

void
ipc_add_u64(struct ipc_out *m, uint64_t v)
{
	ipc_add_u32(m, (uint32_t)(v >> 32));
	ipc_add_u32(m, (uint32_t)v);
}

void
ipc_add_i64(struct ipc_out *m, int64_t v)
{
	ipc_add_u64(m, (uint64_t)v);
}

void
ipc_add_data(struct ipc_out *m, const void *p, size_t len)
{
	if (len > IPC_MAX_PAYLOAD)
		log_panic("ipc: field of %zu bytes is too long", len);
	ipc_add_u32(m, (uint32_t)len);
	if (len)
		out_put(m, p, len);
}

void
ipc_add_str(struct ipc_out *m, const char *s)
{
	if (s == NULL)
		s = "";
	ipc_add_data(m, s, strlen(s));
}

const uint8_t *
ipc_out_finish(struct ipc_out *m, size_t *lenp)
{
	(void)ipc_out_end(m);
	*lenp = m->len;
	return m->buf;
}

int
ipc_header(const uint8_t *buf, size_t len, int *typep, size_t *plenp)
{
	uint32_t plen;
	uint16_t type, version;

	if (len < IPC_HEADER_SIZE)
		return 0;
	memcpy(&plen, buf, 4);
	memcpy(&type, buf + 4, 2);
	memcpy(&version, buf + 6, 2);
	plen = ntohl(plen);
	type = ntohs(type);
	version = ntohs(version);
	if (version != IPC_VERSION || plen > IPC_MAX_PAYLOAD || type == 0 ||
	    type >= IMSG_TYPE_MAX)
		return -1;
	*typep = type;
	*plenp = plen;
	return 1;
}

long
ipc_frame(const uint8_t *buf, size_t len, struct ipc_in *in)
{
	size_t plen;
	int type, rc = ipc_header(buf, len, &type, &plen);

	if (rc <= 0)
		return rc;
	if (len < IPC_HEADER_SIZE + plen)
		return 0;
	in->type = type;
	in->p = buf + IPC_HEADER_SIZE;
	in->left = plen;
	return (long)(IPC_HEADER_SIZE + plen);
}

static int
in_take(struct ipc_in *in, void *out, size_t n)
{
	if (in->left < n)
		return -1;
	memcpy(out, in->p, n);
	in->p += n;
	in->left -= n;
	return 0;
}

int
ipc_get_u8(struct ipc_in *in, uint8_t *v)
{
	return in_take(in, v, 1);
}

int
ipc_get_u32(struct ipc_in *in, uint32_t *v)
{
	if (in_take(in, v, 4) < 0)
		return -1;
	*v = ntohl(*v);
	return 0;
}

int
ipc_get_i32(struct ipc_in *in, int32_t *v)
{
	uint32_t u;

	if (ipc_get_u32(in, &u) < 0)
		return -1;
	*v = (int32_t)u;
	return 0;
}

int
ipc_get_u64(struct ipc_in *in, uint64_t *v)
{
	uint32_t hi, lo;

	if (ipc_get_u32(in, &hi) < 0 || ipc_get_u32(in, &lo) < 0)
		return -1;
	*v = ((uint64_t)hi << 32) | lo;
	return 0;
}

int
ipc_get_i64(struct ipc_in *in, int64_t *v)
{
	uint64_t u;

	if (ipc_get_u64(in, &u) < 0)
		return -1;
	*v = (int64_t)u;
	return 0;
}

int
ipc_get_data(struct ipc_in *in, const uint8_t **p, size_t *len)
{
	uint32_t n;

	if (ipc_get_u32(in, &n) < 0 || in->left < n)
		return -1;
	*p = in->p;
	*len = n;
	in->p += n;
	in->left -= n;
	return 0;
}

int
ipc_get_str(struct ipc_in *in, char **s, size_t maxlen)
{
	const uint8_t *p;
	size_t n;

	if (ipc_get_data(in, &p, &n) < 0 || n > maxlen ||
	    memchr(p, '\0', n) != NULL)
		return -1;
	*s = xstrndup((const char *)p, n);
	return 0;
}

int
ipc_end(const struct ipc_in *in)
{
	return in->left == 0 ? 0 : -1;
}

long
ipc_send_fd(int sock, const void *buf, size_t len, int fd, int flags)
{
	struct iovec iov = { (void *)(uintptr_t)buf, len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg;

	memset(&msg, 0, sizeof(msg));
	memset(&u, 0, sizeof(u));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *cm;

		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return (long)sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
}

long
ipc_recv_fd(int sock, void *buf, size_t len, int *fd, int *truncated,
    int flags)
{
	struct iovec iov = { buf, len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	*truncated = 0;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k, nfds;

		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nfds; k++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + k * sizeof(int),
			    sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				close(got);   /* one per message */
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		*truncated = 1;
	return (long)n;
}
