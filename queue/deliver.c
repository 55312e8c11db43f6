/*
 * deliver.c - the delivery agent process (ferry-deliver): an SMTP client
 * (RFC 5321) that takes one job at a time from the queue runner, carries
 * the message to the next hop, and reports one result per recipient.
 *
 * Security stance: started by the master as root, the agent reads its
 * configuration and the AUTH credentials file, sets up the resolver,
 * makes its TLS contexts, then drops to the delivery user for good (no
 * new privileges, no forking, no writing files).  It never sees the
 * queue's files: envelope and body arrive over the runner's socket.
 * Everything a remote server sends is untrusted: replies go through the
 * strict parser in smtp_client_reply.c, every socket operation has a
 * deadline, and a server that misbehaves only loses its recipients a
 * 4xx result.  A malformed frame from the runner is fatal.  Credentials
 * are never logged.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "config.h"
#include "credentials.h"
#include "deliver.h"
#include "deliver_proto.h"
#include "dns_mx.h"
#include "ipc.h"
#include "log.h"
#include "privsep.h"
#include "procfd.h"
#include "smtp_client_reply.h"
#include "smtp_parse.h"
#include "smtpd.h"
#include "tls_client.h"
#include "util.h"

#define RBUF_CAP (SCR_MAX_LINES * SCR_LINE_MAX + 4096)
#define PIPELINE_GROUP 100        /* RCPTs per pipelined write */
#define MAX_SESSIONS 10           /* connection attempts per job */
#define MAX_ADDRS 8               /* addresses per host name */
#define KEY_MAX 1100
#define RUNNER_CONNECT_WAIT 30000 /* ms */
#define QUIT_TIMEOUT 5

enum rcpt_state { R_PENDING = 0, R_ACCEPTED, R_DONE };

/* One SMTP connection to a next hop. */
struct conn {
	int fd;                   /* -1 when closed */
	SSL *ssl;
	char *rbuf;
	size_t rlen;
	char host[256];           /* the name we connected to (or address) */
	char relay[320];          /* "host[addr]:port" */
	char tls[128];            /* "TLSv1.3 cipher" or "" */
	struct ehlo_caps caps;
	char key[KEY_MAX];        /* deliver_hop_key of the jobs it serves */
	int64_t idle_since;
	int secret;               /* what is sent now must not be logged */
};

/* The queue runner's socket. */
struct runner {
	int fd;
	uint8_t *buf;
	size_t len, cap, used;    /* used: the frame handed out last */
};

/* What went wrong with the last next hop tried. */
struct failure {
	uint32_t status;
	char dsn[16];
	char text[2048];
	char relay[320];
	char tls[128];
};

struct agent {
	struct ferry_config *cfg;
	struct credentials creds;
	struct runner runner;
	struct conn conn;
	struct ipc_out out;
};

/* One job in progress. */
struct job_ctx {
	struct agent *ag;
	struct deliver_job *job;
	unsigned char *state;     /* enum rcpt_state per recipient */
	size_t npending;          /* recipients without a result */
	struct failure last;
	int data_done;            /* JOB_END seen */
	int have_seq;
	uint32_t next_seq;
};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;   /* no SA_RESTART: poll must wake up */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
	sigemptyset(&sa.sa_mask);
	sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);
}

/* --- the runner's socket ------------------------------------------------ */

static void
runner_connect(struct runner *r, const char *path)
{
	struct sockaddr_un sun;
	int64_t until = now_ms() + RUNNER_CONNECT_WAIT;
	int warned = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		log_fatal("agent socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	for (;;) {
		r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r->fd < 0)
			log_fatal("socket: %s", strerror(errno));
		if (connect(r->fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		if (now_ms() > until || stop)
			log_fatal("cannot connect to the queue runner at %s: "
			    "%s", path, strerror(errno));
		if (!warned++)
			log_debug("queue runner not up yet (%s): %s; waiting",
			    path, strerror(errno));
		close(r->fd);
		usleep(250 * 1000);
	}
	r->cap = 65536;
	r->buf = xmalloc(r->cap);
	r->len = r->used = 0;
}

static void
runner_send(struct agent *ag)
{
	size_t len;
	const uint8_t *f = ipc_out_finish(&ag->out, &len);

	if (write_all(ag->runner.fd, f, len) < 0) {
		log_error("queue runner: write: %s; exiting", strerror(errno));
		exit(0);
	}
}

/* The next frame from the runner into *in.  1: a frame; 0: timeout_ms
 * passed first (-1 waits for ever); -1: the runner closed. */
static int
runner_next(struct runner *r, struct ipc_in *in, int timeout_ms,
    int extra_fd, int *extra_ready, int interruptible)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

	if (r->used > 0) {
		memmove(r->buf, r->buf + r->used, r->len - r->used);
		r->len -= r->used;
		r->used = 0;
	}
	for (;;) {
		long fl = ipc_frame(r->buf, r->len, in);
		struct pollfd pfd[2];
		ssize_t n;
		int rc, wait;

		if (fl < 0)
			log_fatal("queue runner sent an invalid frame header");
		if (fl > 0) {
			r->used = (size_t)fl;
			return 1;
		}
		if (r->len == r->cap) {
			r->cap *= 2;
			if (r->cap > IPC_MAX_PAYLOAD * 2 + IPC_HEADER_SIZE)
				log_fatal("queue runner frame too large");
			r->buf = xrealloc(r->buf, r->cap);
		}
		wait = -1;
		if (timeout_ms >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return 0;
			wait = (int)left;
		}
		if (interruptible) {
			/* bounded: SIGTERM may land just before poll() */
			if (stop)
				return 0;
			if (wait < 0 || wait > 1000)
				wait = 1000;
		}
		pfd[0].fd = r->fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = extra_fd;
		pfd[1].events = POLLIN;
		rc = poll(pfd, extra_fd >= 0 ? 2 : 1, wait);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		if (rc == 0)
			continue;
		if (extra_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)) && extra_ready != NULL) {
			*extra_ready = 1;
			extra_fd = -1;
			if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
		}
		n = read(r->fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		r->len += (size_t)n;
	}
}

/* --- job results -------------------------------------------------------- */

static void
send_result(struct job_ctx *x, size_t i, uint32_t status, const char *dsn,
    const char *reply, const char *relay, const char *tls)
{
	struct deliver_result r;

	if (x->state[i] == R_DONE)
		log_panic("recipient %zu of job %llu answered twice", i,
		    (unsigned long long)x->job->job_id);
	memset(&r, 0, sizeof(r));
	r.rcpt_id = x->job->rcpts[i].id;
	r.status = status;
	r.dsn = (char *)dsn;
	r.reply = (char *)reply;
	r.relay = (char *)(relay != NULL && relay[0] ? relay : "none");
	r.tls = (char *)(tls != NULL ? tls : "");
	ipc_out_init(&x->ag->out, IMSG_RCPT_RESULT);
	deliver_result_encode(&r, &x->ag->out);
	runner_send(x->ag);
	x->state[i] = R_DONE;
	x->npending--;
	log_debug("%s: <%s>: %s %s (%s)", x->job->qid, x->job->rcpts[i].addr,
	    status == DS_DELIVERED ? "sent" : status == DS_DEFERRED ?
	    "deferred" : "bounced", dsn, reply);
}

/* Every recipient still without a result (and, when accepted too, those
 * a server accepted) gets the same one. */
static void
result_all(struct job_ctx *x, int with_accepted, uint32_t status,
    const char *dsn, const char *reply, const char *relay, const char *tls)
{
	size_t i;

	for (i = 0; i < x->job->nrcpts; i++)
		if (x->state[i] == R_PENDING ||
		    (with_accepted && x->state[i] == R_ACCEPTED))
			send_result(x, i, status, dsn, reply, relay, tls);
}

/* Records a next-hop failure (always a deferral: another host, or a later
 * try, may do better). */
static void __attribute__((format(printf, 4, 5)))
fail(struct job_ctx *x, const struct conn *c, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	x->last.status = DS_DEFERRED;
	ferry_strlcpy(x->last.dsn, dsn, sizeof(x->last.dsn));
	x->last.dsn[0] = '4';
	va_start(ap, fmt);
	vsnprintf(x->last.text, sizeof(x->last.text), fmt, ap);
	va_end(ap);
	ferry_strlcpy(x->last.relay, c != NULL && c->fd >= 0 ? c->relay :
	    "none", sizeof(x->last.relay));
	ferry_strlcpy(x->last.tls, c != NULL ? c->tls : "",
	    sizeof(x->last.tls));
	log_debug("%s: %s", x->job->qid, x->last.text);
}

/* --- the SMTP connection ------------------------------------------------ */

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->rlen = 0;
	c->tls[0] = '\0';
	c->key[0] = '\0';
	memset(&c->caps, 0, sizeof(c->caps));
}

/* Waits for fd; 1 ready, 0 deadline passed, -1 error. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int rc;

	pfd.fd = fd;
	pfd.events = events;
	for (;;) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Writes all of buf before deadline: 0, -1 error, -2 timeout. */
static int
conn_write(struct conn *c, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n;
		int w;

		if (c->ssl != NULL) {
			int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
			int rc;

			ERR_clear_error();
			rc = SSL_write(c->ssl, buf, chunk);
			if (rc > 0) {
				buf += rc;
				len -= (size_t)rc;
				continue;
			}
			w = tls_client_wait(c->ssl, c->fd, rc, deadline);
		} else {
			n = write(c->fd, buf, len);
			if (n > 0) {
				buf += n;
				len -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN)
				return -1;
			w = wait_fd(c->fd, POLLOUT, deadline);
		}
		if (w == 0)
			return -2;
		if (w < 0)
			return -1;
	}
	return 0;
}

/* Reads more into rbuf: >0 bytes, 0 EOF, -1 error, -2 timeout. */
static ssize_t
conn_read(struct conn *c, int64_t deadline)
{
	for (;;) {
		size_t room = RBUF_CAP - c->rlen;
		ssize_t n;
		int w;

		if (c->ssl != NULL) {
			int rc, e;

			ERR_clear_error();
			errno = 0;
			rc = SSL_read(c->ssl, c->rbuf + c->rlen, (int)room);
			if (rc > 0) {
				c->rlen += (size_t)rc;
				return rc;
			}
			e = SSL_get_error(c->ssl, rc);
			if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
			    (rc == 0 || errno == 0)))
				return 0;
			if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL) {
				if (e == SSL_ERROR_SSL)
					errno = EPROTO;
				return -1;
			}
			w = tls_client_wait(c->ssl, c->fd, rc, deadline);
		} else {
			n = read(c->fd, c->rbuf + c->rlen, room);
			if (n > 0) {
				c->rlen += (size_t)n;
				return n;
			}
			if (n == 0)
				return 0;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			w = wait_fd(c->fd, POLLIN, deadline);
		}
		if (w == 0)
			return -2;
		if (w < 0)
			return -1;
	}
}

static int64_t
deadline_s(int seconds)
{
	return now_ms() + (int64_t)seconds * 1000;
}

/* Reads one reply.  0, or -1 with x->last set (the connection is then
 * useless).  caps: also read the EHLO keywords. */
static int
conn_reply(struct job_ctx *x, struct conn *c, struct smtp_client_reply *r,
    int64_t deadline, struct ehlo_caps *caps, const char *stage)
{
	struct scr_parser p;
	const char *why;
	ssize_t n;
	int rc;

	scr_init(&p, SCR_LINE_MAX);
	for (;;) {
		if (c->rlen > 0) {
			rc = scr_parse(&p, c->rbuf, c->rlen, r, &why);
			if (rc == SCR_DONE) {
				if (caps != NULL)
					scr_ehlo_caps(c->rbuf, r->len, caps);
				memmove(c->rbuf, c->rbuf + r->len,
				    c->rlen - r->len);
				c->rlen -= r->len;
				log_debug("%s: < %s", c->relay, r->text);
				return 0;
			}
			if (rc == SCR_ERROR) {
				log_info("%s: protocol error from %s while %s:"
				    " %s", x->job->qid, c->relay, stage, why);
				fail(x, c, "4.5.0", "protocol error from %s "
				    "while %s: %s", c->relay, stage, why);
				return -1;
			}
		}
		if (c->rlen >= RBUF_CAP) {
			fail(x, c, "4.5.0", "protocol error from %s while %s: "
			    "reply too long", c->relay, stage);
			return -1;
		}
		n = conn_read(c, deadline);
		if (n > 0)
			continue;
		if (n == -2)
			fail(x, c, "4.4.2", "conversation with %s timed out "
			    "while %s", c->relay, stage);
		else
			fail(x, c, "4.4.2", "lost connection with %s while %s%s%s",
			    c->relay, stage, n < 0 ? ": " : "",
			    n < 0 ? strerror(errno) : "");
		return -1;
	}
}

/* Sends buf (one or more commands with their CRLF) in one write. */
static int
conn_send(struct job_ctx *x, struct conn *c, const char *buf, size_t len,
    int64_t deadline, const char *stage)
{
	int rc;

	if (log_is_debug() && strcmp(stage, "sending message body") != 0) {
		char safe[600];

		if (c->secret || strncasecmp(buf, "AUTH ", 5) == 0)
			log_debug("%s: > (credentials)", c->relay);
		else
			log_debug("%s: > %s", c->relay, log_sanitize(safe,
			    sizeof(safe), buf, len > 2 ? len - 2 : len));
	}
	rc = conn_write(c, buf, len, deadline);
	if (rc == 0)
		return 0;
	if (rc == -2)
		fail(x, c, "4.4.2", "conversation with %s timed out while %s",
		    c->relay, stage);
	else
		fail(x, c, "4.4.2", "lost connection with %s while %s: %s",
		    c->relay, stage, strerror(errno));
	return -1;
}

/* One command and its reply. */
static int
command(struct job_ctx *x, struct conn *c, const char *line,
    struct smtp_client_reply *r, struct ehlo_caps *caps, const char *stage)
{
	char buf[1200];
	int64_t dl = deadline_s(x->ag->cfg->client_command_timeout);
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (n < 0 || (size_t)n >= sizeof(buf))
		log_panic("command too long");
	if (conn_send(x, c, buf, (size_t)n, dl, stage) < 0)
		return -1;
	OPENSSL_cleanse(buf, sizeof(buf));
	return conn_reply(x, c, r, dl, caps, stage);
}

static void
conn_quit(struct agent *ag, struct conn *c)
{
	if (c->fd < 0)
		return;
	if (conn_write(c, "QUIT\r\n", 6, deadline_s(QUIT_TIMEOUT)) == 0) {
		/* the answer is a courtesy: wait a little for it */
		(void)conn_read(c, deadline_s(ag->cfg->client_command_timeout <
		    QUIT_TIMEOUT ? ag->cfg->client_command_timeout :
		    QUIT_TIMEOUT));
	}
	if (c->ssl != NULL)
		SSL_shutdown(c->ssl);
	log_debug("%s: closed", c->relay);
	conn_close(c);
}

/* Connects to addr before the connect deadline; 0 or -1 (x->last). */
static int
conn_connect(struct job_ctx *x, struct conn *c, const char *host,
    const struct sockaddr *sa, socklen_t salen)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0, fd, one = 1, err = 0, w;
	socklen_t el = sizeof(err);

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		port = ntohs(s6->sin6_port);
	}
	conn_close(c);
	ferry_strlcpy(c->host, host, sizeof(c->host));
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", host, addr, port);
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		fail(x, NULL, "4.4.1", "connect to %s: %s", c->relay,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	log_debug("%s: connecting to %s", x->job->qid, c->relay);
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto failed;
		}
		w = wait_fd(fd, POLLOUT,
		    deadline_s(x->ag->cfg->connect_timeout));
		if (w == 0) {
			close(fd);
			fail(x, NULL, "4.4.1", "connect to %s: Connection "
			    "timed out", c->relay);
			return -1;
		}
		if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
		    &el) < 0)
			err = errno;
		if (err != 0)
			goto failed;
	}
	c->fd = fd;
	return 0;
failed:
	close(fd);
	fail(x, NULL, "4.4.1", "connect to %s: %s", c->relay, strerror(err));
	return -1;
}

static int
b64(const void *in, size_t len, char *out, size_t outlen)
{
	if (outlen < 4 * ((len + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return 0;
}

/* AUTH PLAIN or LOGIN with the route's credentials. */
static int
session_auth(struct job_ctx *x, struct conn *c)
{
	const struct credential *cr = credentials_find(&x->ag->creds,
	    x->job->route);
	struct smtp_client_reply r;
	char raw[1100], enc[1600], line[1700];
	size_t ul, pl;
	int rc = -1;

	if (cr == NULL) {
		fail(x, c, "4.7.0", "AUTH required for route %s but no "
		    "credentials are configured for it", x->job->route);
		return -1;
	}
	if (c->ssl == NULL && !x->job->auth_plaintext) {
		fail(x, c, "4.7.0", "AUTH required but %s did not give a TLS "
		    "session and AUTH without TLS is not allowed",
		    c->relay);
		return -1;
	}
	if (!(c->caps.auth_mechs & (AUTH_MECH_PLAIN | AUTH_MECH_LOGIN))) {
		fail(x, c, "4.7.0", "AUTH required but %s offers neither "
		    "AUTH PLAIN nor AUTH LOGIN", c->relay);
		return -1;
	}
	ul = strlen(cr->user);
	pl = strlen(cr->pass);
	if (c->caps.auth_mechs & AUTH_MECH_PLAIN) {
		/* authzid NUL authcid NUL password */
		raw[0] = '\0';
		memcpy(raw + 1, cr->user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, cr->pass, pl);
		if (b64(raw, ul + pl + 2, enc, sizeof(enc)) < 0)
			goto out;
		snprintf(line, sizeof(line), "AUTH PLAIN %s", enc);
		if (command(x, c, line, &r, NULL, "sending AUTH") < 0)
			goto out;
	} else {
		if (command(x, c, "AUTH LOGIN", &r, NULL, "sending AUTH") < 0)
			goto out;
		c->secret = 1;
		if (r.code == 334) {
			b64(cr->user, ul, enc, sizeof(enc));
			if (command(x, c, enc, &r, NULL, "sending AUTH") < 0)
				goto out;
		}
		if (r.code == 334) {
			b64(cr->pass, pl, enc, sizeof(enc));
			if (command(x, c, enc, &r, NULL, "sending AUTH") < 0)
				goto out;
		}
	}
	if (r.code == 235)
		rc = 0;
	else if (r.code == 535)
		fail(x, c, "4.7.8", "authentication failed: host %s said: %s",
		    c->relay, r.text);
	else
		fail(x, c, r.code / 100 == 4 ? scr_dsn(&r) : "4.7.0",
		    "authentication failed: host %s said: %s", c->relay,
		    r.text);
out:
	c->secret = 0;
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(enc, sizeof(enc));
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

/* EHLO, or HELO when EHLO is refused. */
static int
session_hello(struct job_ctx *x, struct conn *c)
{
	struct smtp_client_reply r;
	char line[1100];

	snprintf(line, sizeof(line), "EHLO %s", x->job->helo);
	if (command(x, c, line, &r, &c->caps, "performing the EHLO "
	    "handshake") < 0)
		return -1;
	if (r.code / 100 == 2)
		return 0;
	memset(&c->caps, 0, sizeof(c->caps));
	if (r.code / 100 == 5) {
		snprintf(line, sizeof(line), "HELO %s", x->job->helo);
		if (command(x, c, line, &r, NULL, "performing the HELO "
		    "handshake") < 0)
			return -1;
		if (r.code / 100 == 2)
			return 0;
	}
	fail(x, c, scr_dsn(&r), "host %s refused to talk to me: %s",
	    c->relay, r.text);
	return -1;
}

/* Connect, greeting, EHLO, STARTTLS, AUTH: a session ready for MAIL. */
static int
session_open(struct job_ctx *x, struct conn *c, const char *host,
    const struct sockaddr *sa, socklen_t salen)
{
	const struct ferry_config *cfg = x->ag->cfg;
	struct smtp_client_reply r;
	char err[512];
	uint32_t tls = x->job->tls;

	if (conn_connect(x, c, host, sa, salen) < 0)
		return -1;
	if (conn_reply(x, c, &r, deadline_s(cfg->client_command_timeout),
	    NULL, "receiving the initial server greeting") < 0)
		goto bad;
	if (r.code / 100 != 2) {
		/* even a 5xx greeting only skips this host (Postfix's
		 * smtp_skip_5xx_greeting) */
		fail(x, c, scr_dsn(&r), "host %s refused to talk to me: %s",
		    c->relay, r.text);
		goto bad;
	}
	if (session_hello(x, c) < 0)
		goto bad;
	if (tls != TLS_NONE && !c->caps.starttls) {
		if (tls != TLS_MAY) {
			fail(x, c, "4.7.4", "TLS is required, but was not "
			    "offered by host %s", c->relay);
			goto bad;
		}
	} else if (tls != TLS_NONE) {
		SSL_CTX *ctx;

		if (command(x, c, "STARTTLS", &r, NULL, "sending STARTTLS") < 0)
			goto bad;
		if (r.code != 220) {
			if (tls != TLS_MAY) {
				fail(x, c, "4.7.4", "TLS is required, but "
				    "host %s refused to start TLS: %s",
				    c->relay, r.text);
				goto bad;
			}
			goto plain;
		}
		if (c->rlen > 0) {
			/* STARTTLS response injection: never trust it */
			log_info("%s: %s sent %zu bytes after its STARTTLS "
			    "reply; discarded", x->job->qid, c->relay,
			    c->rlen);
			c->rlen = 0;
		}
		ctx = tls_client_ctx(x->job->ca_file,
		    (int)x->job->tls_min_version, err, sizeof(err));
		if (ctx != NULL)
			c->ssl = tls_client_start(ctx, c->fd, c->host,
			    tls == TLS_VERIFY,
			    deadline_s(cfg->client_command_timeout), err,
			    sizeof(err));
		if (c->ssl == NULL) {
			fail(x, c, "4.7.5", "TLS with %s failed: %s", c->relay,
			    err);
			goto bad;
		}
		tls_client_describe(c->ssl, c->tls, sizeof(c->tls));
		log_debug("%s: TLS %s%s", c->relay, c->tls,
		    tls == TLS_VERIFY ? " (verified)" : "");
		if (session_hello(x, c) < 0)
			goto bad;
	}
plain:
	if (x->job->auth && session_auth(x, c) < 0)
		goto bad;
	return 0;
bad:
	conn_close(c);
	return -1;
}

/* --- the message body --------------------------------------------------- */

/* The next JOB_DATA chunk, or NULL at JOB_END. */
static const uint8_t *
next_chunk(struct job_ctx *x, size_t *len)
{
	struct ipc_in in;
	const uint8_t *p;
	uint32_t seq;

	if (x->data_done)
		return NULL;
	if (runner_next(&x->ag->runner, &in, -1, -1, NULL, 0) <= 0) {
		log_error("queue runner closed the connection during job "
		    "%s; exiting", x->job->qid);
		exit(0);
	}
	if (in.type == IMSG_JOB_END) {
		if (ipc_end(&in) < 0)
			log_fatal("queue runner sent a malformed JOB_END");
		x->data_done = 1;
		return NULL;
	}
	if (in.type != IMSG_JOB_DATA || ipc_get_u32(&in, &seq) < 0 ||
	    ipc_get_data(&in, &p, len) < 0 || ipc_end(&in) < 0 ||
	    (x->have_seq && seq != x->next_seq))
		log_fatal("queue runner sent %s where JOB_DATA or JOB_END "
		    "belongs", ipc_type_name(in.type));
	x->have_seq = 1;
	x->next_seq = seq + 1;
	return p;
}

static void
drain_data(struct job_ctx *x)
{
	size_t len;

	while (next_chunk(x, &len) != NULL)
		;
}

/* Streams the message dot-stuffed, then CRLF.CRLF.  0, or -1 with
 * x->last set (the rest of the data is then drained). */
static int
send_body(struct job_ctx *x, struct conn *c)
{
	const struct ferry_config *cfg = x->ag->cfg;
	char *out = NULL;
	size_t cap = 0, len, ol;
	const uint8_t *p;
	char tail[2] = { '\r', '\n' };   /* an empty message ends "clean" */
	int bol = 1, rc = 0;

	while ((p = next_chunk(x, &len)) != NULL) {
		const uint8_t *end = p + len;

		if (len == 0 || rc < 0)
			continue;
		if (len >= 2) {
			tail[0] = (char)p[len - 2];
			tail[1] = (char)p[len - 1];
		} else {
			tail[0] = tail[1];
			tail[1] = (char)p[0];
		}
		if (cap < len * 2) {
			cap = len * 2;
			out = xrealloc(out, cap);
		}
		ol = 0;
		while (p < end) {
			const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) + 1 :
			    (size_t)(end - p);

			if (bol && *p == '.')
				out[ol++] = '.';
			memcpy(out + ol, p, n);
			ol += n;
			p += n;
			bol = nl != NULL;
		}
		if (conn_send(x, c, out, ol, deadline_s(cfg->client_data_timeout),
		    "sending message body") < 0)
			rc = -1;
	}
	free(out);
	if (rc < 0)
		return -1;
	if (tail[0] == '\r' && tail[1] == '\n')
		return conn_send(x, c, ".\r\n", 3,
		    deadline_s(cfg->client_data_timeout), "sending end of data");
	return conn_send(x, c, "\r\n.\r\n", 5,
	    deadline_s(cfg->client_data_timeout), "sending end of data");
}

/* --- the mail transaction ----------------------------------------------- */

static void
append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 4096;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* A string we may put in a command: no control characters (CR, LF...). */
static int
clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void
mail_line(const struct job_ctx *x, const struct conn *c, char *out,
    size_t outlen)
{
	const struct deliver_job *j = x->job;
	size_t l;

	snprintf(out, outlen, "MAIL FROM:<%s>", j->sender);
	l = strlen(out);
	if (c->caps.size)
		l += (size_t)snprintf(out + l, outlen - l, " SIZE=%lld",
		    (long long)j->size);
	if (j->body_type == BODY_8BITMIME && c->caps.eightbitmime && l < outlen)
		l += (size_t)snprintf(out + l, outlen - l, " BODY=8BITMIME");
	if (j->smtputf8 && c->caps.smtputf8 && l < outlen)
		l += (size_t)snprintf(out + l, outlen - l, " SMTPUTF8");
	if (c->caps.dsn && j->dsn_ret != RET_UNSPEC && l < outlen)
		l += (size_t)snprintf(out + l, outlen - l, " RET=%s",
		    j->dsn_ret == RET_FULL ? "FULL" : "HDRS");
	if (c->caps.dsn && j->envid[0] != '\0' && l < outlen)
		snprintf(out + l, outlen - l, " ENVID=%s", j->envid);
}

static void
rcpt_line(const struct job_ctx *x, const struct conn *c, size_t i, char *out,
    size_t outlen)
{
	const struct deliver_rcpt *r = &x->job->rcpts[i];
	size_t l;

	l = (size_t)snprintf(out, outlen, "RCPT TO:<%s>", r->addr);
	if (c->caps.dsn && r->notify != 0 && l < outlen) {
		if (r->notify & NOTIFY_NEVER)
			l += (size_t)snprintf(out + l, outlen - l,
			    " NOTIFY=NEVER");
		else
			l += (size_t)snprintf(out + l, outlen - l,
			    " NOTIFY=%s%s%s%s%s",
			    r->notify & NOTIFY_SUCCESS ? "SUCCESS" : "",
			    (r->notify & NOTIFY_SUCCESS) &&
			    (r->notify & (NOTIFY_FAILURE | NOTIFY_DELAY)) ?
			    "," : "",
			    r->notify & NOTIFY_FAILURE ? "FAILURE" : "",
			    (r->notify & NOTIFY_FAILURE) &&
			    (r->notify & NOTIFY_DELAY) ? "," : "",
			    r->notify & NOTIFY_DELAY ? "DELAY" : "");
	}
	if (c->caps.dsn && r->orcpt[0] != '\0' && l < outlen)
		snprintf(out + l, outlen - l, " ORCPT=%s", r->orcpt);
}

/* Accepted recipients go back to pending: the session broke before the
 * message was sent, another host may take them. */
static void
unaccept(struct job_ctx *x)
{
	size_t i;

	for (i = 0; i < x->job->nrcpts; i++)
		if (x->state[i] == R_ACCEPTED)
			x->state[i] = R_PENDING;
}

/* A RCPT reply.  0, or -1 when the session is over (421). */
static int
rcpt_reply(struct job_ctx *x, struct conn *c, size_t i,
    const struct smtp_client_reply *r, size_t *naccepted)
{
	char text[2048];

	if (r->code == 421) {
		fail(x, c, scr_dsn(r), "host %s said: %.1600s (in reply to RCPT "
		    "TO command)", c->relay, r->text);
		return -1;
	}
	if (r->code / 100 == 2) {
		x->state[i] = R_ACCEPTED;
		(*naccepted)++;
		return 0;
	}
	snprintf(text, sizeof(text), "host %s said: %.1600s (in reply to RCPT TO "
	    "command)", c->relay, r->text);
	send_result(x, i, r->code / 100 == 5 ? DS_FAILED : DS_DEFERRED,
	    scr_dsn(r), text, c->relay, c->tls);
	return 0;
}

/* MAIL, RCPTs, DATA, the body and the final reply on an open session.
 * 0: the connection may be kept; -1: it must be closed (x->last says
 * why; recipients still pending may try another host). */
static int
transaction(struct job_ctx *x, struct conn *c)
{
	const struct ferry_config *cfg = x->ag->cfg;
	const struct deliver_job *j = x->job;
	struct smtp_client_reply r, mr;
	char line[2300], text[2048];
	char *buf = NULL;
	size_t blen = 0, bcap = 0, naccepted = 0, i, first, k, *idx;
	size_t nidx = 0;
	int pipelining = c->caps.pipelining, mail_ok = 0, data_sent = 0;
	int rc = -1, mail_done = 0;
	int64_t dl;

	if (c->caps.size && c->caps.size_max > 0 &&
	    (uint64_t)j->size > c->caps.size_max) {
		snprintf(text, sizeof(text), "message size %lld exceeds size "
		    "limit %llu of server %s", (long long)j->size,
		    (unsigned long long)c->caps.size_max, c->relay);
		result_all(x, 0, DS_FAILED, "5.3.4", text, c->relay, c->tls);
		return 0;
	}
	if (j->body_type == BODY_8BITMIME && !c->caps.eightbitmime) {
		snprintf(text, sizeof(text), "host %s does not support "
		    "8BITMIME and the message is 8-bit", c->relay);
		result_all(x, 0, DS_FAILED, "5.6.3", text, c->relay, c->tls);
		return 0;
	}
	if (j->smtputf8 && !c->caps.smtputf8) {
		snprintf(text, sizeof(text), "host %s does not support "
		    "SMTPUTF8, required for this message", c->relay);
		result_all(x, 0, DS_FAILED, "5.6.7", text, c->relay, c->tls);
		return 0;
	}

	idx = xcalloc(j->nrcpts, sizeof(*idx));
	for (i = 0; i < j->nrcpts; i++)
		if (x->state[i] == R_PENDING)
			idx[nidx++] = i;
	if (nidx == 0) {
		free(idx);
		return 0;
	}
	mail_line(x, c, line, sizeof(line));
	/* groups of RCPTs: all of them at once with PIPELINING, else one */
	for (first = 0; first < nidx; first += k) {
		size_t group = pipelining ? PIPELINE_GROUP : 1, end;
		int last_group;

		end = first + group < nidx ? first + group : nidx;
		k = end - first;
		last_group = end == nidx;
		blen = 0;
		if (!mail_done) {
			append(&buf, &blen, &bcap, line);
			append(&buf, &blen, &bcap, "\r\n");
			if (!pipelining) {
				dl = deadline_s(cfg->client_command_timeout);
				if (conn_send(x, c, buf, blen, dl,
				    "sending MAIL FROM") < 0 ||
				    conn_reply(x, c, &mr, dl, NULL,
				    "sending MAIL FROM") < 0)
					goto out;
				mail_done = 1;
				mail_ok = mr.code / 100 == 2;
				if (!mail_ok)
					break;
				blen = 0;
			}
		}
		for (i = first; i < end; i++) {
			char rl[2300];

			rcpt_line(x, c, idx[i], rl, sizeof(rl));
			append(&buf, &blen, &bcap, rl);
			append(&buf, &blen, &bcap, "\r\n");
		}
		if (pipelining && last_group) {
			append(&buf, &blen, &bcap, "DATA\r\n");
			data_sent = 1;
		}
		dl = deadline_s(cfg->client_command_timeout);
		if (conn_send(x, c, buf, blen, dl, "sending RCPT TO") < 0)
			goto out;
		if (!mail_done) {
			if (conn_reply(x, c, &mr, dl, NULL,
			    "sending MAIL FROM") < 0)
				goto out;
			mail_done = 1;
			mail_ok = mr.code / 100 == 2;
			if (mr.code == 421) {
				fail(x, c, scr_dsn(&mr), "host %s said: %.1600s (in "
				    "reply to MAIL FROM command)", c->relay,
				    mr.text);
				goto out;
			}
		}
		for (i = first; i < end; i++) {
			if (conn_reply(x, c, &r, dl, NULL, "sending RCPT TO") < 0)
				goto out;
			if (!mail_ok)
				continue;   /* replies to RCPTs after a refused
				               MAIL say nothing */
			if (rcpt_reply(x, c, idx[i], &r, &naccepted) < 0)
				goto out;
		}
		if (!mail_ok)
			break;
	}
	if (!mail_ok) {
		if (data_sent && conn_reply(x, c, &r,
		    deadline_s(cfg->client_command_timeout), NULL,
		    "sending DATA command") < 0)
			goto out;
		snprintf(text, sizeof(text), "host %s said: %.1600s (in reply to "
		    "MAIL FROM command)", c->relay, mr.text);
		if (mr.code / 100 == 5) {
			result_all(x, 0, DS_FAILED, scr_dsn(&mr), text,
			    c->relay, c->tls);
			rc = 0;
			goto reset;
		}
		/* 4xx: another host may take the message */
		fail(x, c, scr_dsn(&mr), "%s", text);
		goto out;
	}
	if (!data_sent && naccepted > 0) {
		dl = deadline_s(cfg->client_command_timeout);
		if (conn_send(x, c, "DATA\r\n", 6, dl, "sending DATA command") < 0)
			goto out;
		data_sent = 1;
	}
	if (data_sent) {
		if (conn_reply(x, c, &r, deadline_s(cfg->client_command_timeout),
		    NULL, "sending DATA command") < 0)
			goto out;
		if (r.code == 354 && naccepted == 0) {
			/* a server that opens DATA without recipients: end
			 * it empty */
			if (conn_send(x, c, ".\r\n", 3,
			    deadline_s(cfg->client_command_timeout),
			    "sending end of data") < 0 ||
			    conn_reply(x, c, &r,
			    deadline_s(cfg->client_command_timeout), NULL,
			    "sending end of data") < 0)
				goto out;
		} else if (naccepted > 0 && r.code != 354) {
			if (r.code == 421) {
				fail(x, c, scr_dsn(&r), "host %s said: %.1600s (in "
				    "reply to DATA command)", c->relay,
				    r.text);
				goto out;
			}
			snprintf(text, sizeof(text), "host %s said: %.1600s (in "
			    "reply to DATA command)", c->relay, r.text);
			result_all(x, 1, r.code / 100 == 5 ? DS_FAILED :
			    DS_DEFERRED, scr_dsn(&r), text, c->relay, c->tls);
			rc = 0;
			goto reset;
		}
	}
	if (naccepted == 0) {
		rc = 0;
		goto reset;
	}
	/* the body; from the final dot on, a failure may mean the message
	 * was delivered: no other host gets it */
	if (send_body(x, c) < 0 ||
	    conn_reply(x, c, &r, deadline_s(cfg->client_data_timeout), NULL,
	    "sending end of data -- message may be sent more than once") < 0) {
		result_all(x, 1, DS_DEFERRED, x->last.dsn, x->last.text,
		    c->relay, c->tls);
		goto out;
	}
	if (r.code / 100 == 2)
		result_all(x, 1, DS_DELIVERED, scr_dsn(&r), r.text, c->relay,
		    c->tls);
	else {
		snprintf(text, sizeof(text), "host %s said: %.1600s (in reply to "
		    "end of DATA command)", c->relay, r.text);
		result_all(x, 1, r.code / 100 == 5 ? DS_FAILED : DS_DEFERRED,
		    scr_dsn(&r), text, c->relay, c->tls);
	}
	rc = r.code == 421 ? -1 : 0;
	goto out;
reset:
	/* nothing was sent: leave the session clean for the next job */
	if (command(x, c, "RSET", &r, NULL, "sending RSET") < 0 ||
	    r.code != 250)
		rc = -1;
out:
	if (rc < 0)
		unaccept(x);
	free(buf);
	free(idx);
	return rc;
}

/* --- next hops ---------------------------------------------------------- */

/* "host:port", "[addr]:port", "host", "[addr]" */
static int
parse_hop(const char *spec, char *host, size_t hostlen, int *port,
    int *literal)
{
	const char *p, *portstr = NULL;
	size_t n;

	*port = 25;
	*literal = 0;
	if (spec[0] == '[') {
		p = strchr(spec, ']');
		if (p == NULL)
			return -1;
		n = (size_t)(p - spec - 1);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, spec + 1, n);
		host[n] = '\0';
		*literal = 1;
		if (p[1] == ':')
			portstr = p + 2;
		else if (p[1] != '\0')
			return -1;
	} else {
		p = strrchr(spec, ':');
		n = p ? (size_t)(p - spec) : strlen(spec);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, spec, n);
		host[n] = '\0';
		if (p != NULL)
			portstr = p + 1;
	}
	if (portstr != NULL) {
		char *e;
		long v = strtol(portstr, &e, 10);

		if (*portstr == '\0' || *e != '\0' || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	return 0;
}

/* Tries one host's addresses in turn.  Returns 1 when the job needs no
 * other host (every recipient has a result, or the connection is kept
 * with all done), 0 to go on. */
static int
try_addrs(struct job_ctx *x, const char *host,
    const struct sockaddr_storage *addrs, size_t naddrs, int *sessions)
{
	struct conn *c = &x->ag->conn;
	size_t i;

	/* SIGTERM means "finish the job": every next hop is still tried */
	for (i = 0; i < naddrs && *sessions < MAX_SESSIONS; i++) {
		socklen_t sl = addrs[i].ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

		(*sessions)++;
		if (session_open(x, c, host, (const struct sockaddr *)&addrs[i],
		    sl) < 0)
			continue;
		deliver_hop_key(x->job, c->key, sizeof(c->key));
		if (transaction(x, c) < 0)
			conn_close(c);
		if (x->npending == 0)
			return 1;
	}
	return 0;
}

static void
hops_explicit(struct job_ctx *x)
{
	int sessions = 0;
	size_t h;

	for (h = 0; h < x->job->nhosts && x->npending > 0; h++) {
		struct addrinfo hints, *res = NULL, *ai;
		struct sockaddr_storage addrs[MAX_ADDRS];
		char host[256], portstr[8];
		size_t n = 0;
		int port, literal, rc;

		if (parse_hop(x->job->hosts[h], host, sizeof(host), &port,
		    &literal) < 0) {
			fail(x, NULL, "4.3.5", "next hop \"%s\" is not host, "
			    "host:port or [address]:port", x->job->hosts[h]);
			continue;
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV | (literal ? AI_NUMERICHOST : 0);
		snprintf(portstr, sizeof(portstr), "%d", port);
		rc = getaddrinfo(host, portstr, &hints, &res);
		if (rc != 0) {
			fail(x, NULL, "4.4.3", "Host or domain name not found. "
			    "Name service error for name=%s: %s", host,
			    gai_strerror(rc));
			continue;
		}
		for (ai = res; ai != NULL && n < MAX_ADDRS; ai = ai->ai_next)
			if ((ai->ai_family == AF_INET ||
			    ai->ai_family == AF_INET6) &&
			    ai->ai_addrlen <= sizeof(addrs[n])) {
				memset(&addrs[n], 0, sizeof(addrs[n]));
				memcpy(&addrs[n++], ai->ai_addr, ai->ai_addrlen);
			}
		freeaddrinfo(res);
		if (try_addrs(x, host, addrs, n, &sessions))
			return;
	}
}

static void
hops_mx(struct job_ctx *x)
{
	const struct deliver_job *j = x->job;
	struct dns_mx *mx = NULL;
	size_t nmx = 0, i, keep;
	enum dns_status st;
	int sessions = 0, implicit = 0;
	char text[1200];

	st = dns_mx_lookup(j->domain, &mx, &nmx);
	switch (st) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		/* RFC 5321 5.1: the domain itself is the implicit MX */
		mx = xcalloc(1, sizeof(*mx));
		ferry_strlcpy(mx[0].host, j->domain, sizeof(mx[0].host));
		nmx = 1;
		implicit = 1;
		break;
	case DNS_NXDOMAIN:
		snprintf(text, sizeof(text), "Host or domain name not found. "
		    "Name service error for name=%s type=MX: Host not found",
		    j->domain);
		result_all(x, 0, DS_FAILED, "5.1.2", text, "none", "");
		return;
	case DNS_NULLMX:
		snprintf(text, sizeof(text), "Domain %s does not accept mail "
		    "(nullMX)", j->domain);
		result_all(x, 0, DS_FAILED, "5.1.10", text, "none", "");
		return;
	default:
		fail(x, NULL, "4.4.3", "Host or domain name not found. Name "
		    "service error for name=%s type=MX: Host not found, try "
		    "again", j->domain);
		return;
	}
	/* RFC 5321 5.1: drop ourselves and every MX not better than us */
	for (i = 0; i < nmx; i++)
		if (strcasecmp(mx[i].host, j->helo) == 0)
			break;
	if (i < nmx && !implicit) {
		unsigned self = mx[i].pref;

		for (keep = 0; keep < nmx && mx[keep].pref < self; keep++)
			;
		nmx = keep;
		if (nmx == 0) {
			snprintf(text, sizeof(text), "mail for %s loops back "
			    "to myself", j->domain);
			result_all(x, 0, DS_FAILED, "5.4.6", text, "none", "");
			free(mx);
			return;
		}
	}
	for (i = 0; i < nmx && x->npending > 0 && sessions < MAX_SESSIONS;
	    i++) {
		struct sockaddr_storage addrs[MAX_ADDRS];
		size_t n = 0;

		st = dns_addr_lookup(mx[i].host, (int)j->mx_port, addrs,
		    MAX_ADDRS, &n);
		if (st != DNS_OK) {
			if (implicit && st != DNS_TEMP) {
				snprintf(text, sizeof(text), "Host or domain "
				    "name not found. Name service error for "
				    "name=%s type=A: %s", mx[i].host,
				    dns_status_name(st));
				result_all(x, 0, DS_FAILED, "5.4.4", text,
				    "none", "");
				break;
			}
			fail(x, NULL, "4.4.3", "Host or domain name not found. "
			    "Name service error for name=%s type=A: %s",
			    mx[i].host, dns_status_name(st));
			continue;
		}
		if (try_addrs(x, mx[i].host, addrs, n, &sessions))
			break;
	}
	free(mx);
}

/* --- one job ------------------------------------------------------------ */

static void
run_job(struct agent *ag, struct deliver_job *job, int last_job)
{
	struct job_ctx x;
	struct conn *c = &ag->conn;
	struct deliver_done done;
	char key[KEY_MAX];
	size_t i;

	memset(&x, 0, sizeof(x));
	x.ag = ag;
	x.job = job;
	x.state = xcalloc(job->nrcpts, 1);
	x.npending = job->nrcpts;
	x.last.status = DS_DEFERRED;
	strcpy(x.last.dsn, "4.4.1");
	strcpy(x.last.text, "no next hop could be reached");
	strcpy(x.last.relay, "none");
	deliver_hop_key(job, key, sizeof(key));
	log_debug("%s: job %llu, %zu recipients, next hop %s", job->qid,
	    (unsigned long long)job->job_id, job->nrcpts, key);

	/* what we cannot put in a command fails before any connection */
	if (!clean(job->sender) || !clean(job->envid) || !clean(job->helo))
		result_all(&x, 0, DS_FAILED, "5.1.7", "invalid envelope "
		    "(control characters in sender or parameters)", "none",
		    "");
	for (i = 0; i < job->nrcpts; i++)
		if (x.state[i] == R_PENDING && (!clean(job->rcpts[i].addr) ||
		    !clean(job->rcpts[i].orcpt)))
			send_result(&x, i, DS_FAILED, "5.1.3", "invalid "
			    "recipient address (control characters)", "none",
			    "");
	if (x.npending > 0 && job->auth &&
	    credentials_find(&ag->creds, job->route) == NULL) {
		char text[1200];

		snprintf(text, sizeof(text), "AUTH required for route %s but "
		    "no credentials are configured for it", job->route);
		result_all(&x, 0, DS_DEFERRED, "4.7.0", text, "none", "");
	}

	/* a kept connection to the same next hop: RSET, then use it */
	if (x.npending > 0 && c->fd >= 0) {
		struct smtp_client_reply r;

		if (strcmp(c->key, key) != 0 ||
		    command(&x, c, "RSET", &r, NULL, "sending RSET") < 0 ||
		    r.code != 250) {
			log_debug("%s: not reusing the connection to %s",
			    job->qid, c->relay);
			if (strcmp(c->key, key) != 0)
				conn_quit(ag, c);
			else
				conn_close(c);
		} else {
			log_debug("%s: reusing the connection to %s",
			    job->qid, c->relay);
			if (transaction(&x, c) < 0)
				conn_close(c);
		}
	} else if (c->fd >= 0 && strcmp(c->key, key) != 0)
		conn_quit(ag, c);
	if (x.npending > 0) {
		if (job->nhosts > 0)
			hops_explicit(&x);
		else
			hops_mx(&x);
	}
	/* whatever is left failed with the last next hop tried */
	result_all(&x, 1, DS_DEFERRED, x.last.dsn, x.last.text,
	    x.last.relay, x.last.tls);
	drain_data(&x);

	if (c->fd >= 0 && (ag->cfg->connection_idle == 0 || stop || last_job))
		conn_quit(ag, c);
	memset(&done, 0, sizeof(done));
	done.job_id = job->job_id;
	done.hop = c->fd >= 0 ? c->key : (char *)"";
	done.leaving = stop || last_job;
	ipc_out_init(&ag->out, IMSG_JOB_DONE);
	deliver_done_encode(&done, &ag->out);
	runner_send(ag);
	c->idle_since = now_ms();
	free(x.state);
}

/* --- the agent ---------------------------------------------------------- */

static void
preload_tls(const struct ferry_config *cfg)
{
	char err[512];
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (cfg->routes[i].tls != TLS_NONE &&
		    tls_client_ctx(cfg->routes[i].ca_file,
		    cfg->routes[i].tls_min_version, err, sizeof(err)) == NULL)
			log_warn("route %s: %s", cfg->routes[i].name, err);
	if (cfg->mx_route.tls != TLS_NONE &&
	    tls_client_ctx(cfg->mx_route.ca_file,
	    cfg->mx_route.tls_min_version, err, sizeof(err)) == NULL)
		log_warn("mx: %s", err);
}

int
deliver(const struct child_args *a)
{
	struct agent ag;
	struct privsep_target target;
	char err[1024], path[4200];
	pid_t master = getppid();
	int last_job = 0;   /* the runner marks an agent's last job */
	int leaving = 0;    /* AGENT_LEAVING was sent */

	install_signals();
	memset(&ag, 0, sizeof(ag));
	ag.conn.fd = -1;
	ag.runner.fd = -1;
	ag.cfg = child_load_config(a, "ferry-deliver");
	if (credentials_load(ag.cfg->credentials_file, &ag.creds, err,
	    sizeof(err)) < 0) {
		log_error("credentials file: %s", err);
		exit(EXIT_CONFIG);
	}
	if (dns_resolver_setup(ag.cfg->resolver, err, sizeof(err)) < 0) {
		log_error("%s", err);
		exit(EXIT_CONFIG);
	}
	preload_tls(ag.cfg);

	memset(&target, 0, sizeof(target));
	target.user = ag.cfg->deliver_user;
	target.chroot_dir = NULL;
	target.no_fork = 1;
	target.no_files = 1;
	privsep_drop(&target);
	child_follow_master(master);

	ag.conn.rbuf = xmalloc(RBUF_CAP);
	snprintf(path, sizeof(path), "%s/%s", ag.cfg->spool_dir,
	    AGENT_SOCKET_NAME);
	runner_connect(&ag.runner, path);
	ipc_out_init(&ag.out, IMSG_AGENT_HELLO);
	ipc_add_u32(&ag.out, (uint32_t)getpid());
	runner_send(&ag);
	log_debug("delivery agent ready (generation %u)", a->generation);

	while (!last_job) {
		struct deliver_job job;
		struct ipc_in in;
		int rc, idle_ms = -1, server_said = 0;

		if (stop && !leaving) {
			/* a job may cross this notice: it is still run, and
			 * the runner closes once it has nothing for us */
			ipc_out_init(&ag.out, IMSG_AGENT_LEAVING);
			runner_send(&ag);
			leaving = 1;
		}

		if (ag.conn.fd >= 0) {
			int64_t left = ag.conn.idle_since +
			    (int64_t)ag.cfg->connection_idle * 1000 - now_ms();

			idle_ms = left > 0 ? (int)left : 0;
		}
		rc = runner_next(&ag.runner, &in, idle_ms, ag.conn.fd,
		    &server_said, !leaving);
		if (server_said && ag.conn.fd >= 0) {
			/* the server spoke (or closed) while idle: 421 */
			log_debug("%s: closed by the server while idle",
			    ag.conn.relay);
			conn_close(&ag.conn);
		}
		if (rc == 0) {
			if (ag.conn.fd >= 0 && (stop || now_ms() >=
			    ag.conn.idle_since +
			    (int64_t)ag.cfg->connection_idle * 1000))
				conn_quit(&ag, &ag.conn);
			continue;
		}
		if (rc < 0) {
			log_debug("queue runner closed the connection");
			break;
		}
		if (in.type != IMSG_JOB || deliver_job_decode(&in, &job) < 0)
			log_fatal("queue runner sent a malformed %s where a "
			    "JOB belongs", ipc_type_name(in.type));
		last_job = job.last_job != 0 || leaving;
		run_job(&ag, &job, last_job);
		deliver_job_free(&job);
	}
	conn_quit(&ag, &ag.conn);
	credentials_free(&ag.creds);
	tls_client_ctx_free_all();
	ipc_out_free(&ag.out);
	free(ag.conn.rbuf);
	free(ag.runner.buf);
	close(ag.runner.fd);
	config_free(ag.cfg);
	return 0;
}
