/*
 * smtp_client.c - the delivery agent's SMTP client session (RFC 5321)
 * with one next hop: the TCP connection, the greeting, EHLO (HELO when
 * EHLO is refused), STARTTLS by the job's policy (RFC 3207), AUTH PLAIN
 * or LOGIN with the route's credentials (RFC 4954), or OAUTHBEARER (RFC
 * 7628) / XOAUTH2 with the job's OAuth2 access token, single commands and
 * their replies, and QUIT.
 *
 * Security stance: everything the server sends is untrusted.  Replies
 * are read through the strict parser in smtp_client_reply.c into a
 * bounded buffer; every read, write and connect has a deadline; bytes a
 * server sends after its STARTTLS reply are discarded (response
 * injection); AUTH is refused without TLS unless the route allows it,
 * and credentials are never logged and are wiped from the stack after
 * use.  Any trouble is recorded with hop_fail() (smtp_trouble.c) and
 * ends the session, never the process.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "config.h"
#include "credentials.h"
#include "deliver_agent.h"
#include "deliver_proto.h"
#include "log.h"
#include "sasl_oauth.h"
#include "smtp_client.h"
#include "smtp_client_reply.h"
#include "smtp_trouble.h"
#include "tls_client.h"
#include "util.h"

#define QUIT_TIMEOUT 5

void
client_close(struct smtp_conn *c)
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
	c->transactions = 0;
	c->poll_first = 0;
	c->reads_waited = 0;
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
client_write(struct smtp_conn *c, const char *buf, size_t len,
    int64_t deadline)
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

/* Whether to wait for the socket before reading from it.  A server's
 * reply is seldom there the moment our commands have gone: reading
 * first then costs a read that fails with EAGAIN, a poll and the read
 * again.  Once a read found nothing, the connection waits first; every
 * READ_FIRST_EVERY-th reply it reads first again, to notice a server
 * that has become quicker than we are (a read that finds the reply
 * there goes back to reading first).  Only without TLS: a TLS record
 * already read may hold the reply while the socket has nothing. */
#define READ_FIRST_EVERY 16

static int
wait_before_read(struct smtp_conn *c)
{
	if (c->ssl != NULL || !c->poll_first)
		return 0;
	if (++c->reads_waited >= READ_FIRST_EVERY) {
		c->reads_waited = 0;
		return 0;
	}
	return 1;
}

/* Reads more into rbuf: >0 bytes, 0 EOF, -1 error, -2 timeout. */
static ssize_t
client_read(struct smtp_conn *c, int64_t deadline)
{
	int waited = 0;

	if (wait_before_read(c)) {
		int w = wait_fd(c->fd, POLLIN, deadline);

		if (w == 0)
			return -2;
		if (w < 0)
			return -1;
		waited = 1;
	}
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
				if (!waited)
					c->poll_first = 0;   /* it was there */
				c->rlen += (size_t)n;
				return n;
			}
			if (n == 0)
				return 0;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			c->poll_first = 1;
			waited = 1;
			w = wait_fd(c->fd, POLLIN, deadline);
		}
		if (w == 0)
			return -2;
		if (w < 0)
			return -1;
	}
}

/* Reads one reply.  0, or -1 with x->last set (the connection is then
 * useless).  caps: also read the EHLO keywords. */
int
client_reply(struct job_ctx *x, struct smtp_conn *c,
    struct smtp_client_reply *r, int64_t deadline, struct ehlo_caps *caps,
    const char *stage)
{
	struct scr_parser p;
	const char *why;
	ssize_t n;
	int rc;

	job_results_send(x);
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
				if (r->code == 421)
					x->saw_421 = 1;   /* host health */
				return 0;
			}
			if (rc == SCR_ERROR) {
				log_info("%s: protocol error from %s while %s:"
				    " %s", x->job->qid, c->relay, stage, why);
				hop_fail(x, c, "4.5.0",
				    "protocol error from %s "
				    "while %s: %s", c->relay, stage, why);
				return -1;
			}
		}
		if (c->rlen >= RBUF_CAP) {
			hop_fail(x, c, "4.5.0",
			    "protocol error from %s while %s: "
			    "reply too long", c->relay, stage);
			return -1;
		}
		n = client_read(c, deadline);
		if (n > 0)
			continue;
		if (n == -2)
			hop_fail(x, c, "4.4.2",
			    "conversation with %s timed out "
			    "while %s", c->relay, stage);
		else
			hop_fail(x, c, "4.4.2",
			    "lost connection with %s while %s%s%s",
			    c->relay, stage, n < 0 ? ": " : "",
			    n < 0 ? strerror(errno) : "");
		return -1;
	}
}

/* Sends buf (one or more commands with their CRLF) in one write. */
int
client_send(struct job_ctx *x, struct smtp_conn *c, const char *buf,
    size_t len, int64_t deadline, const char *stage)
{
	int rc;

	job_results_send(x);
	if (log_is_debug() && strcmp(stage, "sending message body") != 0) {
		char safe[600];

		if (c->secret || strncasecmp(buf, "AUTH ", 5) == 0)
			log_debug("%s: > (credentials)", c->relay);
		else
			log_debug("%s: > %s", c->relay, log_sanitize(safe,
			    sizeof(safe), buf, len > 2 ? len - 2 : len));
	}
	rc = client_write(c, buf, len, deadline);
	if (rc == 0)
		return 0;
	if (rc == -2)
		hop_fail(x, c, "4.4.2",
		    "conversation with %s timed out while %s",
		    c->relay, stage);
	else
		hop_fail(x, c, "4.4.2", "lost connection with %s while %s: %s",
		    c->relay, stage, strerror(errno));
	return -1;
}

/* One command and its reply. */
int
client_command(struct job_ctx *x, struct smtp_conn *c, const char *line,
    struct smtp_client_reply *r, struct ehlo_caps *caps, const char *stage)
{
	char buf[1200];
	int64_t dl = deadline_s(x->ag->cfg->client_command_timeout);
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (n < 0 || (size_t)n >= sizeof(buf))
		log_panic("command too long");
	if (client_send(x, c, buf, (size_t)n, dl, stage) < 0)
		return -1;
	OPENSSL_cleanse(buf, sizeof(buf));
	return client_reply(x, c, r, dl, caps, stage);
}

void
client_quit(const struct ferry_config *cfg, struct smtp_conn *c)
{
	if (c->fd < 0)
		return;
	if (client_write(c, "QUIT\r\n", 6, deadline_s(QUIT_TIMEOUT)) == 0) {
		/* the answer is a courtesy: wait a little for it */
		(void)client_read(c, deadline_s(cfg->client_command_timeout <
		    QUIT_TIMEOUT ? cfg->client_command_timeout :
		    QUIT_TIMEOUT));
	}
	if (c->ssl != NULL)
		SSL_shutdown(c->ssl);
	log_debug("%s: closed", c->relay);
	client_close(c);
}

/* Connects to addr before the connect deadline; 0 or -1 (x->last). */
static int
client_connect(struct job_ctx *x, struct smtp_conn *c, const char *host,
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
	client_close(c);
	ferry_strlcpy(c->host, host, sizeof(c->host));
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", host, addr, port);
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		hop_fail(x, NULL, "4.4.1", "connect to %s: %s", c->relay,
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
			hop_fail(x, NULL, "4.4.1", "connect to %s: Connection "
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
	hop_fail(x, NULL, "4.4.1", "connect to %s: %s", c->relay,
	    strerror(err));
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

/* One AUTH line that may be longer than client_command allows (a
 * bearer token runs to kilobytes); the buffer is wiped after use. */
static int
client_auth_line(struct job_ctx *x, struct smtp_conn *c, const char *line,
    struct smtp_client_reply *r)
{
	int64_t dl = deadline_s(x->ag->cfg->client_command_timeout);
	size_t len = strlen(line);
	char *buf = xmalloc(len + 3);
	int rc;

	memcpy(buf, line, len);
	memcpy(buf + len, "\r\n", 3);
	rc = client_send(x, c, buf, len + 2, dl, "sending AUTH");
	OPENSSL_cleanse(buf, len + 2);
	free(buf);
	if (rc < 0)
		return -1;
	return client_reply(x, c, r, dl, NULL, "sending AUTH");
}

/* AUTH OAUTHBEARER (preferred) or XOAUTH2 with the access token the
 * runner put in the job: on TLS only, whatever auth_plaintext says (a
 * bearer token is as good as a password to whoever reads it).  A 535,
 * or a 334 carrying the server's error, is a 4.7.8 deferral: the runner
 * asks ferry-token for a fresh token and the mail is tried again. */
static int
client_auth_oauth2(struct job_ctx *x, struct smtp_conn *c,
    const struct credential *cr)
{
	const char *token = x->job->oauth_token, *colon;
	struct smtp_client_reply r;
	size_t rawcap = strlen(cr->user) * 3 + strlen(c->host) +
	    strlen(token) + 96, rawlen;
	char *raw, *line;
	int bearer = (c->caps.auth_mechs & AUTH_MECH_OAUTHBEARER) != 0;
	int rc = -1;

	if (c->ssl == NULL) {
		hop_fail(x, c, "4.7.0", "OAuth2 AUTH required but %s did not "
		    "give a TLS session (a token is never sent in clear)",
		    c->relay);
		return -1;
	}
	if (!(c->caps.auth_mechs & (AUTH_MECH_OAUTHBEARER |
	    AUTH_MECH_XOAUTH2))) {
		hop_fail(x, c, "4.7.0", "OAuth2 AUTH required but %s offers "
		    "neither AUTH OAUTHBEARER nor AUTH XOAUTH2", c->relay);
		return -1;
	}
	if (token == NULL || token[0] == '\0') {
		hop_fail(x, c, "4.7.0", "no OAuth2 access token for route %s "
		    "yet", x->job->route);
		return -1;
	}
	raw = xmalloc(rawcap);
	line = xmalloc(4 * rawcap / 3 + 32);
	colon = strrchr(c->relay, ':');
	rawlen = bearer ? sasl_oauthbearer(cr->user, c->host,
	    colon ? (unsigned)atoi(colon + 1) : 0, token, raw, rawcap) :
	    sasl_xoauth2(cr->user, token, raw, rawcap);
	if (rawlen == 0)
		log_panic("SASL response does not fit");
	memcpy(line, bearer ? "AUTH OAUTHBEARER " : "AUTH XOAUTH2 ",
	    bearer ? 17 : 13);
	EVP_EncodeBlock((unsigned char *)line + (bearer ? 17 : 13),
	    (unsigned char *)raw, (int)rawlen);
	c->secret = 1;
	if (client_auth_line(x, c, line, &r) < 0)
		goto out;
	if (r.code == 334) {
		/* the server's error, as JSON: RFC 7628 3.2.3 wants a
		 * dummy ^A for OAUTHBEARER, XOAUTH2 servers an empty
		 * line; the final reply follows */
		log_info("%s: %s refused the OAuth2 token of route %s: %s",
		    x->job->qid, c->relay, x->job->route, r.text);
		if (client_auth_line(x, c, bearer ? "AQ==" : "", &r) < 0)
			goto out;
	}
	if (smtp_trouble_reply(STAGE_AUTH, r.code, 0) == TROUBLE_NONE)
		rc = 0;
	else
		hop_fail(x, c, r.code / 100 == 4 ? scr_dsn(&r) : "4.7.8",
		    "authentication failed (OAuth2 %s): host %s said: %s",
		    bearer ? "OAUTHBEARER" : "XOAUTH2", c->relay, r.text);
out:
	c->secret = 0;
	OPENSSL_cleanse(raw, rawcap);
	OPENSSL_cleanse(line, strlen(line));
	free(raw);
	free(line);
	return rc;
}

/* AUTH PLAIN or LOGIN with the route's credentials. */
static int
client_auth(struct job_ctx *x, struct smtp_conn *c)
{
	const struct credential *cr = credentials_find(&x->ag->creds,
	    x->job->route);
	struct smtp_client_reply r;
	char raw[1100], enc[1600], line[1700];
	size_t ul, pl;
	int rc = -1;

	if (cr == NULL) {
		hop_fail(x, c, "4.7.0", "AUTH required for route %s but no "
		    "credentials are configured for it", x->job->route);
		return -1;
	}
	if (cr->oauth2)
		return client_auth_oauth2(x, c, cr);
	if (c->ssl == NULL && !x->job->auth_plaintext) {
		hop_fail(x, c, "4.7.0",
		    "AUTH required but %s did not give a TLS "
		    "session and AUTH without TLS is not allowed",
		    c->relay);
		return -1;
	}
	if (!(c->caps.auth_mechs & (AUTH_MECH_PLAIN | AUTH_MECH_LOGIN))) {
		hop_fail(x, c, "4.7.0", "AUTH required but %s offers neither "
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
		if (client_command(x, c, line, &r, NULL, "sending AUTH") < 0)
			goto out;
	} else {
		if (client_command(x, c, "AUTH LOGIN", &r, NULL,
		    "sending AUTH") < 0)
			goto out;
		c->secret = 1;
		if (r.code == 334) {
			b64(cr->user, ul, enc, sizeof(enc));
			if (client_command(x, c, enc, &r, NULL,
			    "sending AUTH") < 0)
				goto out;
		}
		if (r.code == 334) {
			b64(cr->pass, pl, enc, sizeof(enc));
			if (client_command(x, c, enc, &r, NULL,
			    "sending AUTH") < 0)
				goto out;
		}
	}
	if (smtp_trouble_reply(STAGE_AUTH, r.code, 0) == TROUBLE_NONE)
		rc = 0;
	else if (r.code == 535)
		hop_fail(x, c, "4.7.8",
		    "authentication failed: host %s said: %s",
		    c->relay, r.text);
	else
		hop_fail(x, c, r.code / 100 == 4 ? scr_dsn(&r) : "4.7.0",
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
client_hello(struct job_ctx *x, struct smtp_conn *c)
{
	struct smtp_client_reply r;
	char line[1100];
	enum trouble t;

	snprintf(line, sizeof(line), "EHLO %s", x->job->helo);
	if (client_command(x, c, line, &r, &c->caps, "performing the EHLO "
	    "handshake") < 0)
		return -1;
	t = smtp_trouble_reply(STAGE_EHLO, r.code, 0);
	if (t == TROUBLE_NONE)
		return 0;
	memset(&c->caps, 0, sizeof(c->caps));
	if (t == TROUBLE_FALLBACK) {
		snprintf(line, sizeof(line), "HELO %s", x->job->helo);
		if (client_command(x, c, line, &r, NULL, "performing the HELO "
		    "handshake") < 0)
			return -1;
		if (smtp_trouble_reply(STAGE_HELO, r.code, 0) == TROUBLE_NONE)
			return 0;
	}
	hop_fail(x, c, scr_dsn(&r), "host %s refused to talk to me: %s",
	    c->relay, r.text);
	return -1;
}

/* Connect, greeting, EHLO, STARTTLS, AUTH: a session ready for MAIL. */
int
client_open(struct job_ctx *x, struct smtp_conn *c, const char *host,
    const struct sockaddr *sa, socklen_t salen)
{
	const struct ferry_config *cfg = x->ag->cfg;
	struct smtp_client_reply r;
	char err[512];
	uint32_t tls = x->job->tls;
	enum trouble t;

	job_results_send(x);
	if (client_connect(x, c, host, sa, salen) < 0)
		return -1;
	if (client_reply(x, c, &r, deadline_s(cfg->client_command_timeout),
	    NULL, "receiving the initial server greeting") < 0)
		goto bad;
	if (smtp_trouble_reply(STAGE_GREETING, r.code, tls) != TROUBLE_NONE) {
		hop_fail(x, c, scr_dsn(&r), "host %s refused to talk to me: %s",
		    c->relay, r.text);
		goto bad;
	}
	if (client_hello(x, c) < 0)
		goto bad;
	if (tls != TLS_NONE && !c->caps.starttls) {
		if (smtp_trouble_no_starttls(tls) == TROUBLE_FAILOVER) {
			hop_fail(x, c, "4.7.4", "TLS is required, but was not "
			    "offered by host %s", c->relay);
			goto bad;
		}
	} else if (tls != TLS_NONE) {
		SSL_CTX *ctx;

		if (client_command(x, c, "STARTTLS", &r, NULL,
		    "sending STARTTLS") < 0)
			goto bad;
		t = smtp_trouble_reply(STAGE_STARTTLS, r.code, tls);
		if (t != TROUBLE_NONE) {
			if (t == TROUBLE_FAILOVER) {
				hop_fail(x, c, "4.7.4", "TLS is required, but "
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
			/* the session's state is unknown: never plain text
			 * on it, whatever the policy */
			hop_fail(x, c, "4.7.5", "TLS with %s failed: %s",
			    c->relay, err);
			goto bad;
		}
		tls_client_describe(c->ssl, c->tls, sizeof(c->tls));
		log_debug("%s: TLS %s%s", c->relay, c->tls,
		    tls == TLS_VERIFY ? " (verified)" : "");
		if (client_hello(x, c) < 0)
			goto bad;
	}
plain:
	if (x->job->auth && client_auth(x, c) < 0)
		goto bad;
	return 0;
bad:
	client_close(c);
	return -1;
}
