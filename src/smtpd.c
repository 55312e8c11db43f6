/*
 * smtpd.c - the SMTP worker process.
 *
 * Security stance: this is the process that faces the internet, so it
 * holds nothing worth stealing but its TLS keys.  Started by the master
 * as root, it reads its configuration, the listeners' certificates and
 * keys and the AUTH users file, then drops for good: the SMTP user,
 * chroot to the spool's empty smtpd directory (which holds only the
 * runner's intake socket and anvil's), no new privileges, no forking, no writing
 * files.  It never sees the queue database.  It accepts from the
 * listening sockets the master passed, serves one session at a time,
 * tells the master when it is busy or idle, and exits after the
 * configured number of sessions so the master can start a fresh one.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "anvil_client.h"
#include "channel.h"
#include "auth_users.h"
#include "child.h"
#include "config.h"
#include "intake_client.h"
#include "log.h"
#include "netaddr.h"
#include "privsep.h"
#include "procfd.h"
#include "smtp_reply.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "tls_server.h"
#include "util.h"

static struct session_control control;
static volatile sig_atomic_t stop_after_session;

static void
on_term(int sig)
{
	(void)sig;
	control.drain = 1;
	stop_after_session = 1;
}

static void
on_usr1(int sig)
{
	(void)sig;
	stop_after_session = 1;
}

/* The status pipe: a typed WORKER_STATUS per change, written whole
 * (far below PIPE_BUF, so it never mixes with a sibling's). */
static struct channel status_ch;

static void
report(pid_t pid, uint32_t gen, enum worker_status st)
{
	struct ipc_out *m;

	if (status_ch.peer[0] == '\0')
		channel_init(&status_ch, FD_STATUS, "the master", NULL, 0, 0);
	m = channel_begin(&status_ch, IMSG_WORKER_STATUS);
	ipc_add_u32(m, (uint32_t)pid);
	ipc_add_u32(m, gen);
	ipc_add_u32(m, (uint32_t)st);
	(void)channel_end(&status_ch);
	if (channel_flush(&status_ch) < 0 || channel_pending(&status_ch) > 0) {
		/* the master is gone: nobody would supervise us */
		log_error("status pipe: %s; exiting", status_ch.error[0] ?
		    status_ch.error : "short write");
		_exit(0);
	}
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
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
	/* the master starts us with signals blocked: take them now */
	sigemptyset(&sa.sa_mask);
	sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);
}

/* Asks anvil about a new connection; over a limit, the client gets 421
 * in one write and no session.  1 when refused. */
static int
refuse_over_limit(const struct ferry_config *cfg, struct anvil_client *ac,
    int fd, const char *addr)
{
	char line[512];
	const char *what;
	enum reply_id id;
	size_t n;

	switch (anvil_connect(ac, addr)) {
	case ANVIL_TOO_MANY_CONNECTIONS:
		id = R_TOO_MANY_CONNECTIONS;
		what = "connection limit exceeded (all clients)";
		break;
	case ANVIL_TOO_MANY_FROM_CLIENT:
		id = R_TOO_MANY_FROM_CLIENT;
		what = "connection limit exceeded (this client)";
		break;
	case ANVIL_CONNECTION_RATE:
		id = R_CONNECTION_RATE;
		what = "connection rate limit exceeded";
		break;
	default:
		return 0;
	}
	n = id == R_TOO_MANY_FROM_CLIENT ?
	    reply_formatf(line, sizeof(line), id, cfg->hostname, addr) :
	    reply_formatf(line, sizeof(line), id, cfg->hostname);
	log_warn("refusing unknown[%s]: %s", addr, what);
	if (send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client is gone already */
	}
	return 1;
}

int
smtpd(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct intake_client queue;
	struct anvil_client anvil_cl;
	struct tls_server **tls;
	struct auth_users *users = NULL;
	struct pollfd *pfds;
	char sockpath[4200], chroot_dir[4096];
	struct privsep_target target;
	int sessions = 0, dropped;
	size_t i, n;
	pid_t self = getpid(), master = getppid();

	install_signals();
	cfg = child_load_config(a, "ferry-smtpd");
	n = cfg->nlisteners;

	/* Keys and the users file may be root's only: read them now.  The
	 * master checked both, so a failure here is the environment's. */
	tls = xcalloc(n, sizeof(*tls));
	for (i = 0; i < n; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		char err[2048];

		if (l->tls != LTLS_NONE) {
			tls[i] = tls_server_new(cfg, l, err, sizeof(err));
			if (tls[i] == NULL)
				log_fatal("listen \"%s\": %s", l->name, err);
		}
		if (l->auth && users == NULL) {
			users = auth_users_load(cfg->auth_users_file, err,
			    sizeof(err));
			if (users == NULL)
				log_fatal("%s", err);
		}
	}

	snprintf(chroot_dir, sizeof(chroot_dir), "%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR);
	memset(&target, 0, sizeof(target));
	target.user = cfg->smtpd_user;
	target.chroot_dir = chroot_dir;
	target.no_fork = 1;
	target.no_files = 1;
	dropped = privsep_drop(&target);
	child_follow_master(master);
	if (dropped)
		snprintf(sockpath, sizeof(sockpath), "/%s",
		    INTAKE_SOCKET_NAME);
	else
		snprintf(sockpath, sizeof(sockpath), "%s/%s", chroot_dir,
		    INTAKE_SOCKET_NAME);
	intake_client_init(&queue, sockpath);
	if (dropped)
		snprintf(sockpath, sizeof(sockpath), "/%s",
		    ANVIL_SOCKET_NAME);
	else
		snprintf(sockpath, sizeof(sockpath), "%s/%s", chroot_dir,
		    ANVIL_SOCKET_NAME);
	anvil_client_init(&anvil_cl, sockpath);

	pfds = xcalloc(n, sizeof(*pfds));
	for (i = 0; i < n; i++) {
		pfds[i].fd = FD_LISTEN + (int)i;
		pfds[i].events = POLLIN;
		fd_set_nonblock(pfds[i].fd, 1);
	}
	log_debug("worker ready (generation %u, %zu listeners)",
	    a->generation, n);
	report(self, a->generation, WORKER_IDLE);

	while (!stop_after_session && sessions < cfg->worker_sessions) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		char peer_addr[64];
		int fd = -1, one = 1, rc;

		/* bounded: a signal landing between the loop test and
		 * poll() must not leave us asleep for good */
		rc = poll(pfds, n, 1000);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		for (i = 0; i < n && fd < 0; i++) {
			if (!(pfds[i].revents & POLLIN))
				continue;
			fd = accept4(pfds[i].fd, (struct sockaddr *)&peer,
			    &plen, SOCK_CLOEXEC);
			if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ECONNABORTED && errno != EINTR)
				log_warn("accept: %s", strerror(errno));
		}
		if (fd < 0)
			continue;   /* a sibling won the race */
		report(self, a->generation, WORKER_BUSY);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sockaddr_ntop((struct sockaddr *)&peer, peer_addr,
		    sizeof(peer_addr));
		if (refuse_over_limit(cfg, &anvil_cl, fd, peer_addr)) {
			close(fd);
			if (!stop_after_session)
				report(self, a->generation, WORKER_IDLE);
			continue;
		}
		{
			struct session_params sp;

			memset(&sp, 0, sizeof(sp));
			sp.cfg = cfg;
			sp.queue = &queue;
			sp.control = &control;
			sp.fd = fd;
			sp.peer = (struct sockaddr *)&peer;
			sp.listener = cfg->listeners[i - 1].name;
			sp.lcfg = &cfg->listeners[i - 1];
			sp.tls = tls[i - 1];
			sp.users = users;
			sp.anvil = &anvil_cl;
			smtp_session_run(&sp);
		}
		close(fd);
		anvil_disconnect(&anvil_cl, peer_addr);
		sessions++;
		if (!stop_after_session && sessions < cfg->worker_sessions)
			report(self, a->generation, WORKER_IDLE);
	}
	log_debug("worker exiting after %d sessions", sessions);
	intake_client_close(&queue);
	anvil_client_close(&anvil_cl);
	for (i = 0; i < n; i++)
		tls_server_free(tls[i]);
	free(tls);
	auth_users_free(users);
	free(pfds);
	config_free(cfg);
	return 0;
}
