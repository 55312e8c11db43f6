/*
 * metrics.c - the ferry-metrics process: a minimal HTTP/1.x server for
 * monitoring on the listener of metrics { address port } that the master
 * bound and handed over (FD_METRICS_HTTP).  It serves
 *   GET /metrics  the queue runner's snapshot (Prometheus text format
 *                 0.0.4) followed by this process's own lines;
 *   GET /healthz  200 while the process tree is alive (this process dies
 *                 with the master);
 *   GET /readyz   200 when the runner answered and said "ferry_ready 1"
 *                 (its store is open and writable, ferry is not stopping,
 *                 SMTP workers are up) and the master said
 *                 "ferry_draining 0" (no ferryctl drain holds), else 503;
 * HEAD likewise without the body; every answer closes the connection.
 *
 * Where the numbers come from: for each /metrics or /readyz request it
 * connects to the runner's metrics socket (created by the master in the
 * workers' chroot) and reads one snapshot to EOF, bounded in size and
 * time.  It keeps nothing between requests: no queue data, no counters
 * of the runner.  The runner writes the snapshot without reading, so
 * this process cannot stall or steer it.
 *
 * Why a hand-written server and not libmicrohttpd: the endpoint needs
 * three fixed paths, GET/HEAD and Connection: close; the parser is one
 * pure function (http_request.c) that is unit-tested and fuzzed, and the
 * process needs no new library in its chroot.
 *
 * Security stance: the clients are anyone who can reach the address (it
 * should be loopback or a management network; there is no
 * authentication and nothing secret is served).  The process starts as
 * root only to drop at once to the SMTP user, chrooted in the workers'
 * empty directory, with no new privileges, no forking and no writing
 * files.  Every request is bounded: METRICS_CLIENTS at once (more wait in
 * the backlog), a head of HTTP_HEAD_MAX bytes (431), METRICS_REQUEST_MS
 * from connect to a whole head (408), METRICS_WRITE_MS to take the
 * answer; anything but GET and HEAD is 405, an unknown path 404.  A
 * client that misbehaves costs only its own connection.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "child.h"
#include "config.h"
#include "http_request.h"
#include "log.h"
#include "metrics.h"
#include "metrics_text.h"
#include "privsep.h"
#include "procfd.h"
#include "util.h"

#define METRICS_CLIENTS 16
#define METRICS_REQUEST_MS 5000     /* connect to a whole request head */
#define METRICS_WRITE_MS 5000       /* to take the answer */
#define METRICS_RUNNER_MS 2000      /* the runner's snapshot */
#define METRICS_SNAPSHOT_MAX (1024 * 1024)

static volatile sig_atomic_t metrics_stop;

static void
on_term(int sig)
{
	(void)sig;
	metrics_stop = 1;
}


struct client {
	int fd;
	char head[HTTP_HEAD_MAX];
	size_t len;
	int64_t deadline;
	int writing;
	struct mtext out;
	size_t sent;
};

struct metrics_state {
	char runner_path[4300];
	char master_path[4300];     /* the workers' counters */
	struct client clients[METRICS_CLIENTS];
	size_t nclients;
	uint64_t requests, runner_failures, master_failures;
};

/* Reads the runner's snapshot into t; 0, or -1 (it did not answer in
 * time, or said too much). */
static int
fetch_snapshot(const char *path, struct mtext *t)
{
	struct sockaddr_un sun;
	int64_t deadline = now_ms() + METRICS_RUNNER_MS;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ferry_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int64_t left = deadline - now_ms();
		char buf[8192];
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			if (left > 0 && errno == EINTR)
				continue;
			break;
		}
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			break;
		if (n == 0) {
			close(fd);
			return t->len > 0 ? 0 : -1;
		}
		if (t->len + (size_t)n > METRICS_SNAPSHOT_MAX)
			break;
		mtext_printf(t, "%.*s", (int)n, buf);
	}
	close(fd);
	return -1;
}

/* Whether the snapshot t holds the line "name value\n". */
static int
snapshot_says(const struct mtext *t, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	if (t->len == 0)
		return 0;
	if (strncmp(t->buf, line, n) == 0)
		return 1;
	for (p = strstr(t->buf, line); p != NULL; p = strstr(p + 1, line))
		if (p[-1] == '\n')
			return 1;
	return 0;
}

static int
snapshot_ready(const struct mtext *t)
{
	return snapshot_says(t, "ferry_ready 1\n");
}

/* The master's drain state, from its own snapshot (the master holds it:
 * ferryctl drain): 1 draining, 0 not, -1 the master did not answer. */
static int
master_draining(struct metrics_state *ms)
{
	struct mtext own;
	int draining;

	mtext_init(&own);
	if (fetch_snapshot(ms->master_path, &own) < 0) {
		ms->master_failures++;
		mtext_free(&own);
		return -1;
	}
	draining = snapshot_says(&own, "ferry_draining 0\n") ? 0 : 1;
	mtext_free(&own);
	return draining;
}

static const char *
reason_of(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}

/* Puts the whole answer in c->out and turns c to writing. */
static void
answer(struct client *c, int code, const char *type, const char *body,
    size_t body_len, int head_only)
{
	mtext_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n"
	    "Cache-Control: no-store\r\n%s\r\n", code, reason_of(code), type,
	    body_len, code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only && body_len > 0)
		mtext_printf(&c->out, "%.*s", (int)body_len, body);
	c->writing = 1;
	c->sent = 0;
	c->deadline = now_ms() + METRICS_WRITE_MS;
}

static void
answer_text(struct client *c, int code, const char *text, int head_only)
{
	answer(c, code, "text/plain; charset=utf-8", text, strlen(text),
	    head_only);
}

static void
serve_request(struct metrics_state *ms, struct client *c,
    const struct http_request *req)
{
	int head_only = strcmp(req->method, "HEAD") == 0;
	struct mtext snap;

	ms->requests++;
	if (strcmp(req->path, "/metrics") != 0 &&
	    strcmp(req->path, "/healthz") != 0 &&
	    strcmp(req->path, "/readyz") != 0) {
		answer_text(c, 404, "not found\n", head_only);
		return;
	}
	if (!head_only && strcmp(req->method, "GET") != 0) {
		answer_text(c, 405, "method not allowed\n", 0);
		return;
	}
	if (strcmp(req->path, "/healthz") == 0) {
		answer_text(c, 200, "ok\n", head_only);
		return;
	}
	mtext_init(&snap);
	if (fetch_snapshot(ms->runner_path, &snap) < 0) {
		ms->runner_failures++;
		answer_text(c, 503, "the queue runner does not answer\n",
		    head_only);
	} else if (strcmp(req->path, "/readyz") == 0) {
		int draining;

		if (!snapshot_ready(&snap))
			answer_text(c, 503, "not ready\n", head_only);
		else if ((draining = master_draining(ms)) != 0)
			answer_text(c, 503, draining > 0 ? "draining\n" :
			    "the master does not answer\n", head_only);
		else
			answer_text(c, 200, "ready\n", head_only);
	} else {
		/* the master's part: the SMTP workers' counters */
		struct mtext own;

		mtext_init(&own);
		if (fetch_snapshot(ms->master_path, &own) < 0)
			ms->master_failures++;
		else
			mtext_printf(&snap, "%.*s", (int)own.len, own.buf);
		mtext_free(&own);
		mtext_family(&snap, "ferry_metrics_requests_total",
		    "counter", "HTTP requests the metrics endpoint answered.");
		mtext_printf(&snap, "ferry_metrics_requests_total %llu\n",
		    (unsigned long long)ms->requests);
		mtext_family(&snap, "ferry_metrics_runner_failures_total",
		    "counter", "Scrapes the queue runner did not answer.");
		mtext_printf(&snap, "ferry_metrics_runner_failures_total "
		    "%llu\n", (unsigned long long)ms->runner_failures);
		mtext_family(&snap, "ferry_metrics_master_failures_total",
		    "counter", "Scrapes the master did not answer.");
		mtext_printf(&snap, "ferry_metrics_master_failures_total "
		    "%llu\n", (unsigned long long)ms->master_failures);
		answer(c, 200, "text/plain; version=0.0.4; charset=utf-8",
		    snap.buf, snap.len, head_only);
	}
	mtext_free(&snap);
}

static void
close_client(struct metrics_state *ms, size_t i)
{
	struct client *c = &ms->clients[i];
	char sink[4096];
	int k;

	/* Unread input makes close() reset the connection, and a reset can
	 * destroy the answer before the client reads it (a refused
	 * oversized head): end our side, and drop what already arrived -
	 * a bounded amount, without waiting. */
	shutdown(c->fd, SHUT_WR);
	for (k = 0; k < 16 && read(c->fd, sink, sizeof(sink)) > 0; k++)
		;
	close(c->fd);
	mtext_free(&c->out);
	ms->nclients--;
	if (i != ms->nclients)
		ms->clients[i] = ms->clients[ms->nclients];
}

/* Reads what the client sent; answers when the head is whole or
 * wrong. */
static void
client_read(struct metrics_state *ms, struct client *c)
{
	struct http_request req;
	ssize_t n;

	n = read(c->fd, c->head + c->len, sizeof(c->head) - c->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		c->deadline = 0;   /* gone: closed at the next look */
		return;
	}
	c->len += (size_t)n;
	switch (http_parse_head(c->head, c->len, &req)) {
	case HTTP_INCOMPLETE:
		if (c->len == sizeof(c->head))
			answer_text(c, 431, "request head too large\n", 0);
		break;
	case HTTP_COMPLETE:
		serve_request(ms, c, &req);
		break;
	case HTTP_TOO_LONG_URI:
		answer_text(c, 414, "uri too long\n", 0);
		break;
	case HTTP_BAD_VERSION:
		answer_text(c, 505, "http version not supported\n", 0);
		break;
	case HTTP_BAD:
		answer_text(c, 400, "bad request\n", 0);
		break;
	}
}

/* Writes what the socket takes; nonzero when the answer is all out. */
static int
client_write(struct client *c)
{
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.buf + c->sent,
		    c->out.len - c->sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return 1;   /* gone: nothing more to do */
		c->sent += (size_t)n;
	}
	return 1;
}

static void
accept_clients(struct metrics_state *ms)
{
	while (ms->nclients < METRICS_CLIENTS) {
		int fd = accept4(FD_METRICS_HTTP, NULL, NULL, SOCK_CLOEXEC |
		    SOCK_NONBLOCK);
		struct client *c;

		if (fd < 0)
			return;
		c = &ms->clients[ms->nclients++];
		c->fd = fd;
		c->len = 0;
		c->writing = 0;
		c->sent = 0;
		c->deadline = now_ms() + METRICS_REQUEST_MS;
		mtext_init(&c->out);
	}
}

static void
run_loop(struct metrics_state *ms)
{
	while (!metrics_stop) {
		struct pollfd pfds[METRICS_CLIENTS + 1];
		int64_t now = now_ms(), wait = 1000;
		size_t i, n = 0;

		/* answer 408 to clients out of time; drop stalled readers */
		for (i = ms->nclients; i-- > 0;) {
			struct client *c = &ms->clients[i];

			if (c->deadline > now)
				continue;
			if (c->writing || c->deadline == 0) {
				close_client(ms, i);
			} else {
				answer_text(c, 408, "request timeout\n", 0);
				if (client_write(c))
					close_client(ms, i);
			}
		}
		for (i = 0; i < ms->nclients; i++) {
			pfds[n].fd = ms->clients[i].fd;
			pfds[n++].events = ms->clients[i].writing ? POLLOUT :
			    POLLIN;
			if (ms->clients[i].deadline - now < wait)
				wait = ms->clients[i].deadline - now;
		}
		pfds[n].fd = ms->nclients < METRICS_CLIENTS ? FD_METRICS_HTTP :
		    -1;
		pfds[n++].events = POLLIN;
		if (wait < 0)
			wait = 0;
		if (poll(pfds, n, (int)wait) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		/* clients first: pfds[0..nclients) match clients[] now */
		for (i = ms->nclients; i-- > 0;) {
			struct client *c = &ms->clients[i];

			if (pfds[i].revents == 0)
				continue;
			if (!c->writing)
				client_read(ms, c);
			if (c->writing && client_write(c))
				close_client(ms, i);
		}
		if (pfds[n - 1].revents & POLLIN)
			accept_clients(ms);
	}
}

int
metrics(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct privsep_target target;
	struct metrics_state *ms;
	char chroot_dir[4200];
	pid_t master = getppid();
	int dropped;

	child_signals(on_term, NULL);
	cfg = child_load_config(a, "ferry-metrics");
	ms = xcalloc(1, sizeof(*ms));
	snprintf(chroot_dir, sizeof(chroot_dir), "%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR);
	memset(&target, 0, sizeof(target));
	target.user = cfg->smtpd_user;
	target.chroot_dir = chroot_dir;
	target.no_fork = 1;
	target.no_files = 1;
	dropped = privsep_drop(&target);
	child_follow_master(master);
	/* inside the chroot the socket is at its top */
	snprintf(ms->runner_path, sizeof(ms->runner_path), "%s/%s",
	    dropped ? "" : chroot_dir, METRICS_SOCKET_NAME);
	snprintf(ms->master_path, sizeof(ms->master_path), "%s/%s",
	    dropped ? "" : chroot_dir, MASTER_METRICS_SOCKET_NAME);
	log_info("metrics endpoint on %s port %d", cfg->metrics_address,
	    cfg->metrics_port);
	config_free(cfg);
	fd_set_nonblock(FD_METRICS_HTTP, 1);
	run_loop(ms);
	while (ms->nclients > 0)
		close_client(ms, ms->nclients - 1);
	free(ms);
	return 0;
}
