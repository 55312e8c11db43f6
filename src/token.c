/*
 * token.c - the ferry-token process: an OAuth2 access token for every
 * route whose credentials line uses oauth2 (credentials.h), got with the
 * refresh-token grant (token_http.c), cached, and refreshed at 80 % of
 * its lifetime, after a failure (with back-off), and when the runner
 * says a server refused it (535 or a 334 error challenge).
 *
 * The queue runner connects to spool/token.sock and is told each
 * route's state (TOKEN_STATE: ok / refreshing / failed, the reason, the
 * access token and its expiry) when it connects and at every change; it
 * puts the token into the jobs of the route (deliver_proto.h).  The
 * delivery agents see access tokens only, never a refresh token or a
 * client secret.  A refresh token the provider rotates is kept here and
 * sent to the master (TOKEN_ROTATED on FD_TOKEN_NOTES), which writes it
 * into the credentials file, root's, atomically.
 *
 * Privileges: started by the master as root only when some route uses
 * oauth2.  Reads the credentials file (and the ca_file of each oauth2
 * line) as root, keeps the oauth2 lines only, then drops to token_user,
 * a user of its own (not the queue owner: no access to the queue; not
 * deliver_user or smtpd_user: those face the internet's SMTP servers and
 * clients), with no new privileges and no writing of files.  It is not
 * chrooted: libcurl resolves the token endpoint's name with the system's
 * resolver (resolv.conf, nsswitch, their libraries) and reads the system
 * CA store when a line gives no ca_file, none of which an empty chroot
 * holds; what a compromise of this process exposes is the refresh tokens
 * it holds by design and nothing of the queue, which a separate uid
 * protects as well as a chroot would.
 *
 * Security stance: the token endpoint is on the network; its answer is
 * read over verified HTTPS, bounded and parsed strictly.  The only local
 * peer is the runner (the queue user, checked with SO_PEERCRED); a
 * malformed frame drops it.  No token or secret is ever logged: log
 * lines name the route and the endpoint's error only.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "channel.h"
#include "child.h"
#include "config.h"
#include "credentials.h"
#include "ipc.h"
#include "log.h"
#include "privsep.h"
#include "procfd.h"
#include "token.h"
#include "token_http.h"
#include "token_proto.h"
#include "token_response.h"
#include "util.h"

#define MAX_CONNS 8               /* the runner, and one restarting */
#define REQUEST_CAP 512
#define WBUF_MAX (1024 * 1024)
#define RETRY_MIN_MS 2000         /* after a failed refresh, doubling */
#define RETRY_MAX_MS 300000
#define REFUSED_AGAIN_MS 1000     /* after a refused token, a refresh
                                     this long after the last at the
                                     soonest (the runner asks once per
                                     token; this bounds a runner gone
                                     wrong) */
#define CA_MAX (1024 * 1024)

static volatile sig_atomic_t token_stop;

static void
on_term(int sig)
{
	(void)sig;
	token_stop = 1;
}

static const struct channel_rule runner_may_send[] = {
	{ IMSG_TOKEN_REFRESH, 0 },
	{ 0, 0 }
};

struct route_token {
	const struct credential *cr;
	char *refresh_token;      /* the current one (rotated in place) */
	char *ca_pem;             /* cr->ca_file's text, or NULL */
	size_t ca_len;
	struct token_state st;
	int64_t next_ms;          /* the next refresh */
	int64_t last_ms;          /* the last one */
	int streak;               /* failed refreshes in a row */
};

static struct {
	struct credentials creds;
	struct route_token *r;
	size_t nr;
	struct channel *conns[MAX_CONNS];
	size_t nconns;
	struct channel notes;     /* to the master */
	uid_t peer_uid;
} ts;

/* ------------------------------------------------------------- telling */

static void
tell_one(struct channel *ch, const struct route_token *rt)
{
	token_state_encode(&rt->st, channel_begin(ch, IMSG_TOKEN_STATE));
	if (channel_end(ch) < 0 || channel_flush(ch) < 0)
		channel_close(ch);
}

static void
tell_all(const struct route_token *rt)
{
	size_t i;

	for (i = 0; i < ts.nconns; i++)
		if (ts.conns[i]->fd >= 0)
			tell_one(ts.conns[i], rt);
}

static void
set_token(struct route_token *rt, const char *tok, int64_t expires)
{
	if (rt->st.access_token != NULL) {
		explicit_bzero(rt->st.access_token,
		    strlen(rt->st.access_token));
		free(rt->st.access_token);
	}
	rt->st.access_token = xstrdup(tok);
	rt->st.expires = expires;
}

/* ----------------------------------------------------------- refreshing */

static void
rotated(struct route_token *rt, const char *fresh)
{
	if (strcmp(fresh, rt->refresh_token) == 0)
		return;
	explicit_bzero(rt->refresh_token, strlen(rt->refresh_token));
	free(rt->refresh_token);
	rt->refresh_token = xstrdup(fresh);
	{
		struct ipc_out *m = channel_begin(&ts.notes,
		    IMSG_TOKEN_ROTATED);

		ipc_add_str(m, rt->st.route);
		ipc_add_str(m, fresh);
	}
	if (channel_end(&ts.notes) < 0 ||
	    channel_flush_wait(&ts.notes, now_ms() + 5000) < 0)
		log_error("oauth2: route %s: the provider rotated the refresh "
		    "token but the master could not be told to save it: %s",
		    rt->st.route, ts.notes.error);
	else
		log_info("oauth2: route %s: the provider rotated the refresh "
		    "token; saving it in the credentials file",
		    rt->st.route);
}

static void
refresh(struct route_token *rt)
{
	struct token_grant g;
	char err[TOKEN_REASON_MAX];
	int64_t now = now_ms();
	uint32_t was = rt->st.status;

	rt->last_ms = now;
	rt->st.status = TOKEN_REFRESHING;
	tell_all(rt);
	if (token_http_grant(rt->cr, rt->refresh_token, rt->ca_pem,
	    rt->ca_len, &g, err, sizeof(err)) == 0) {
		int64_t life_ms = g.expires_in * 1000;

		rt->st.refresh_ok++;
		set_token(rt, g.access_token, (int64_t)time(NULL) +
		    g.expires_in);
		if (g.refresh_token != NULL)
			rotated(rt, g.refresh_token);
		rt->st.status = TOKEN_OK;
		free(rt->st.reason);
		rt->st.reason = xstrdup("");
		rt->streak = 0;
		/* at 80 % of its life: time to spare for a slow endpoint */
		rt->next_ms = now_ms() + (life_ms * 8 / 10 > 1000 ?
		    life_ms * 8 / 10 : 1000);
		if (was == TOKEN_FAILED || rt->st.refresh_ok == 1)
			log_info("oauth2: route %s: access token obtained, "
			    "valid %lld s", rt->st.route,
			    (long long)g.expires_in);
		else
			log_debug("oauth2: route %s: access token refreshed, "
			    "valid %lld s", rt->st.route,
			    (long long)g.expires_in);
		token_grant_free(&g);
	} else {
		int64_t delay = (int64_t)RETRY_MIN_MS << (rt->streak < 10 ?
		    rt->streak : 10);

		if (delay > RETRY_MAX_MS)
			delay = RETRY_MAX_MS;
		rt->st.refresh_failed++;
		rt->streak++;
		if (was != TOKEN_FAILED || strcmp(rt->st.reason, err) != 0)
			log_warn("oauth2: route %s: refreshing the access "
			    "token failed: %s; its mail is deferred until a "
			    "refresh succeeds", rt->st.route, err);
		free(rt->st.reason);
		rt->st.reason = xstrdup(err);
		rt->st.status = TOKEN_FAILED;
		/* a token that has not expired yet may still serve */
		if (rt->st.expires <= (int64_t)time(NULL))
			set_token(rt, "", 0);
		rt->next_ms = now_ms() + delay;
	}
	tell_all(rt);
}

/* -------------------------------------------------------------- runner */

static int
handle_frame(struct channel *ch, struct ipc_in *in)
{
	char *route;
	size_t i;

	if (token_refresh_decode(in, &route) < 0)
		return channel_violation(ch, "malformed TOKEN_REFRESH");
	for (i = 0; i < ts.nr; i++) {
		struct route_token *rt = &ts.r[i];

		if (strcmp(rt->st.route, route) != 0)
			continue;
		/* (a failed route retries on its own back-off) */
		if (rt->st.status != TOKEN_FAILED &&
		    rt->next_ms > rt->last_ms + REFUSED_AGAIN_MS) {
			log_info("oauth2: route %s: the server refused the "
			    "access token; refreshing it", route);
			rt->next_ms = rt->last_ms + REFUSED_AGAIN_MS;
		}
	}
	free(route);
	return 0;
}

static void
accept_runner(void)
{
	for (;;) {
		struct channel *ch;
		char peer[64];
		pid_t pid = 0;
		size_t i;
		int fd = accept_from_uid(FD_TOKEN, ts.peer_uid, &pid,
		    "token", "only the queue runner may ask");

		if (fd == -2)
			continue;
		if (fd < 0)
			return;
		if (ts.nconns >= MAX_CONNS) {
			log_warn("token: too many connections");
			close(fd);
			continue;
		}
		fd_set_nonblock(fd, 1);
		ch = xcalloc(1, sizeof(*ch));
		snprintf(peer, sizeof(peer), "queue runner pid %ld",
		    (long)pid);
		channel_init(ch, fd, peer, runner_may_send, REQUEST_CAP, 0);
		ch->wmax = WBUF_MAX;
		ts.conns[ts.nconns++] = ch;
		for (i = 0; i < ts.nr; i++)
			tell_one(ch, &ts.r[i]);
	}
}

static int
read_conn(struct channel *ch)
{
	for (;;) {
		struct ipc_in in;
		int got, n = channel_fill(ch);

		if (n < 0)
			return -1;
		while ((got = channel_next(ch, &in)) > 0)
			if (handle_frame(ch, &in) < 0)
				return -1;
		if (got < 0 || ch->fd < 0)
			return -1;
		if (n == 0)
			return 0;
	}
}

static void
close_conn(size_t i)
{
	channel_free(ts.conns[i]);
	free(ts.conns[i]);
	ts.conns[i] = ts.conns[--ts.nconns];
}

static void
run_loop(void)
{
	while (!token_stop) {
		struct pollfd pfd[MAX_CONNS + 1];
		int64_t now = now_ms(), wait = 60000;
		size_t i, n = 0;

		for (i = 0; i < ts.nr; i++) {
			if (ts.r[i].next_ms <= now) {
				refresh(&ts.r[i]);
				now = now_ms();
			}
			if (ts.r[i].next_ms - now < wait)
				wait = ts.r[i].next_ms - now;
		}
		if (wait < 0)
			wait = 0;
		pfd[n].fd = FD_TOKEN;
		pfd[n++].events = POLLIN;
		for (i = 0; i < ts.nconns; i++) {
			pfd[n].fd = ts.conns[i]->fd;
			pfd[n++].events = POLLIN |
			    (channel_pending(ts.conns[i]) ? POLLOUT : 0);
		}
		if (poll(pfd, n, (int)wait) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("token: poll: %s", strerror(errno));
		}
		for (i = ts.nconns; i-- > 0;) {
			short ev = pfd[i + 1].revents;
			int res = ts.conns[i]->fd < 0 ? -1 : 0;

			if (res == 0 && (ev & POLLOUT))
				res = channel_flush(ts.conns[i]);
			if (res == 0 && (ev & (POLLIN | POLLHUP | POLLERR)))
				res = read_conn(ts.conns[i]);
			if (res < 0 || ts.conns[i]->fd < 0)
				close_conn(i);
		}
		if (pfd[0].revents & POLLIN)
			accept_runner();
	}
}

/* ------------------------------------------------------------- set-up */

/* A ca_file's text, read as root (the CA the endpoint is checked with
 * after the drop, when the file may be out of reach). */
static char *
read_ca(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		log_fatal("oauth2 ca_file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CA_MAX)
		log_fatal("oauth2 ca_file %s: not a regular file under 1 MiB",
		    path);
	buf = xmalloc((size_t)st.st_size + 1);
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size)
		log_fatal("oauth2 ca_file %s: short read", path);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

int
token(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct privsep_target target;
	char err[512];
	gid_t gid;
	pid_t master = getppid();
	size_t i;

	child_signals(on_term, NULL);
	cfg = child_load_config(a, "ferry-token");
	memset(&ts, 0, sizeof(ts));
	if (credentials_load(cfg->credentials_file, &ts.creds, err,
	    sizeof(err)) < 0)
		log_fatal("credentials file: %s", err);
	ts.r = xcalloc(ts.creds.n ? ts.creds.n : 1, sizeof(*ts.r));
	for (i = 0; i < ts.creds.n; i++) {
		const struct credential *cr = &ts.creds.v[i];
		struct route_token *rt;

		if (!cr->oauth2)
			continue;
		rt = &ts.r[ts.nr++];
		rt->cr = cr;
		rt->refresh_token = xstrdup(cr->refresh_token);
		if (cr->ca_file != NULL)
			rt->ca_pem = read_ca(cr->ca_file, &rt->ca_len);
		rt->st.route = xstrdup(cr->route);
		rt->st.status = TOKEN_REFRESHING;
		rt->st.reason = xstrdup("");
		rt->st.access_token = xstrdup("");
	}
	if (geteuid() == 0) {
		if (privsep_lookup(cfg->user, &ts.peer_uid, &gid) < 0)
			log_fatal("user %s does not exist", cfg->user);
	} else {
		ts.peer_uid = geteuid();   /* a developer's run */
	}
	token_http_init();
	memset(&target, 0, sizeof(target));
	target.user = cfg->token_user;
	target.no_files = 1;
	/* no_fork stays off: libcurl resolves names in a thread */
	privsep_drop(&target);
	child_follow_master(master);
	channel_init(&ts.notes, FD_TOKEN_NOTES, "the master", NULL, 0,
	    CHANNEL_RECORDS);
	ts.notes.wmax = WBUF_MAX;
	fd_set_nonblock(FD_TOKEN, 1);
	log_info("token started: %zu OAuth2 route%s", ts.nr,
	    ts.nr == 1 ? "" : "s");
	config_free(cfg);
	run_loop();
	while (ts.nconns > 0)
		close_conn(ts.nconns - 1);
	for (i = 0; i < ts.nr; i++) {
		explicit_bzero(ts.r[i].refresh_token,
		    strlen(ts.r[i].refresh_token));
		free(ts.r[i].refresh_token);
		free(ts.r[i].ca_pem);
		token_state_free(&ts.r[i].st);
	}
	free(ts.r);
	credentials_free(&ts.creds);
	channel_free(&ts.notes);
	log_debug("token stopping");
	return 0;
}
