/*
 * master.c - the master process (ferryd).
 *
 * It runs as root and never reads network input.  It validates the
 * configuration and keeps the text it validated (the checks that need
 * OpenSSL, libxcrypt or SQLite - certificates, keys, users - are made by
 * ferry-check, which it runs on that text: master_check.h; a reload's
 * check runs while the event loop goes on); sets the open-file
 * limit that limits.max_connections needs, which every child inherits,
 * or refuses to start (machine_limits.h); binds every listener with a
 * backlog that follows max_connections;
 * prepares the spool (the queue directory for the queue user, the empty
 * chroot of the workers holding the intake and anvil sockets, which it
 * creates so that they outlive a restart of the runner or anvil, and the
 * agents' and ferryctl's sockets); then fork+execs the queue runner, a
 * pool of SMTP workers and
 * delivery agents on demand, each with its descriptors at fixed
 * numbers (procfd.h).  No agent runs at rest: the runner notes how many
 * it has work for (IMSG_NOTE_AGENTS, busy ones and due mail without a
 * free agent) and the master keeps that many running, delivery.agents at
 * most; the runner lets an agent go when it has been idle for
 * delivery.agent_idle.  The pooled children (workers and agents) are the
 * children[] table; the runner and anvil are tracked by pid.
 *
 * ferry-anvil (the workers' shared abuse counts) and ferry-resolve
 * (the clients' names, while workers.client_names is on) run on demand,
 * as Postfix's master runs its services: the master holds their
 * listening sockets in the workers' chroot and, while one is not
 * running, polls its socket and starts it when the socket becomes
 * readable (a worker connected; its question waits in the backlog
 * meanwhile); ferry-resolve starts together with anvil, since the
 * session anvil lets in asks for its name next.  Each leaves by itself
 * with status 0 after workers.helper_idle without a worker, which is not
 * a crash (no warning, no back-off); one that dies otherwise is started
 * again on the next connection, after the back-off that grows while it
 * keeps dying young.  Anvil gets the limits in force from the configuration it
 * reads at start, and a reload's limits as a note while it runs; notes
 * a stopped anvil left unread are dropped before the next one starts.
 * While anvil is down its counts read zero (ferryctl status, metrics).
 * ferry-resolve is also stopped at every reload, so that the next one
 * reads the new file and resolv.conf.  Both are stopped after the
 * workers.
 *
 * The worker pool is kept between workers.min_idle idle workers and
 * workers.max in all (workers report busy/idle as typed messages over the
 * status pipe; extra idle ones beyond max_idle are asked to leave, and
 * those beyond min_idle once idle for workers.spare_idle); once half
 * the CPUs' worth of workers hold sessions it is packed (NOTE_POOL_PACKED):
 * workers with a free slot take new sessions and count as spare.  The
 * master talks to the runner (worker counts, reloads with the new
 * configuration's memfd) and to anvil (reloaded limits) with typed notes
 * over channel.h channels.  A child that dies is restarted,
 * with a back-off that grows while it keeps dying young.  SIGHUP re-reads
 * the configuration: a bad file is logged and the running one kept; a good
 * one starts a new generation of workers while the old generation finishes
 * its sessions.  SIGTERM stops accepting, lets sessions finish within
 * shutdown_timeout (then they answer 421), answers 421 to connections
 * still waiting in the listen queue, and stops the runner last.
 *
 * Drain ("ferryctl drain", which the runner passes on as NOTE_DRAIN) is
 * a state the master holds: it pushes NOTE_DRAINING to every SMTP
 * worker on the worker's own notes socket (FD_WORKER_NOTES, also sent
 * to each worker it starts), tells the runner (for ferryctl status) and
 * writes ferry_draining on its metrics socket (for /readyz).  Workers
 * then answer new connections 421 4.3.2 and close them; the listening
 * sockets stay bound, so undrain is immediate.  A reload keeps the
 * state (it lives here, not in the file); a restart starts undrained.
 * The runner is trusted with the request as it is with all intake (a
 * subverted runner could refuse every message anyway); the note is
 * checked field by field like every other it sends.
 *
 * Under systemd with WatchdogSec= the master sends WATCHDOG=1 only while
 * the queue runner answers its liveness check (NOTE_PING/NOTE_PONG on
 * the runner's notes, a quarter of the period apart): a runner that is
 * stopped or stuck in its event loop for half the period gets no more
 * pings sent for it, and systemd restarts the service.  The runner's
 * answer is the one frame the master reads from it; anything else is
 * the runner lying, and the master restarts it on a fresh socket pair.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "anvil_figures.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "log_journald.h"
#include "master_metrics.h"
#include "machine_limits.h"
#include "master.h"
#include "master_check.h"
#include "master_token.h"
#include "notify.h"
#include "path_access.h"
#include "privsep.h"
#include "procfd.h"
#include "util.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* While the runner is down every message is refused: it comes back
 * sooner.  (A store it cannot open no longer ends it: it stays up and
 * refuses, saying why once.) */
#define RUNNER_BACKOFF_MAX_MS 10000
#define YOUNG_MS 10000        /* a child that dies younger is crashing */
#define MAX_LISTENERS 64
#define WORKER_IDLE_RETIRE_MS 2000    /* idle this long before a spare leaves */
/* Sessions spread one per worker (a new one goes to an idle worker, and
 * min_idle idle ones are kept) until one worker per two CPUs holds
 * sessions (at least one): the other half of the CPUs is for the
 * runner, the delivery agents and the kernel's network work.  Beyond it
 * the pool is packed: a new session goes to a worker with a free slot,
 * and a worker is added only when none has one.  More workers than that
 * only add sleeps and wake-ups: on 2 CPUs, packing from 1 worker instead
 * of 8 took the CPU per relayed message from 1.49 to 1.02 ms at 10
 * sessions, and at 100 KiB from 2.61 to 1.82 ms (tests/bench/relay.py).
 * Each worker costs about 1.6 MiB under load. */
static int
spread_workers_for(long cpus)
{
	return cpus >= 4 && cpus < 8192 ? (int)(cpus / 2) : 1;
}

enum child_role { ROLE_WORKER, ROLE_RUNNER, ROLE_AGENT, ROLE_ANVIL,
    ROLE_METRICS, ROLE_RESOLVE, ROLE_TOKEN };

static const char *
role_name(enum child_role role)
{
	switch (role) {
	case ROLE_WORKER: return "SMTP worker";
	case ROLE_RUNNER: return "queue runner";
	case ROLE_AGENT: return "delivery agent";
	case ROLE_ANVIL: return "anvil";
	case ROLE_METRICS: return "metrics";
	case ROLE_RESOLVE: return "resolve";
	case ROLE_TOKEN: return "token";
	}
	return "child";
}
enum worker_state { W_STARTING, W_IDLE, W_BUSY };

/* One pooled child: an SMTP worker or a delivery agent (the runner and
 * anvil, one of each, are tracked by pid in the master's state). */
struct child_proc {
	enum child_role role;     /* ROLE_WORKER or ROLE_AGENT */
	pid_t pid;
	uint32_t generation;
	enum worker_state state;  /* workers report it; agents stay STARTING */
	int64_t started;
	int told_to_leave;
	int full;                 /* W_BUSY with no room for a session */
	int64_t idle_since;       /* when it last reported idle */
	int notes_fd;             /* workers: our end of FD_WORKER_NOTES */
};

struct listener {
	char *name;
	char *address;
	int port;
	int fd;
};

struct backoff {
	int streak;
	int64_t not_before;
	int64_t max_ms;           /* 0: BACKOFF_MAX_MS */
};

struct master_state {
	const struct master_args *args;
	struct ferry_config *cfg;
	char *cfg_text;
	size_t cfg_len;
	int cfg_fd;                 /* sealed memfd with cfg_text */
	uint32_t generation;
	/* ferry-check: its path, and the check of a reload while it runs */
	char check_path[PATH_MAX];
	struct master_check check;

	struct listener listeners[MAX_LISTENERS];
	size_t nlisteners;
	int intake_fd;              /* listening unix socket */
	int control_fd;             /* ferryctl's listening socket */
	int agent_fd;               /* the delivery agents' socket */
	int anvil_fd;               /* ferry-anvil's socket, in the chroot */
	int anvil_notes_rd;         /* anvil's end of its notes */
	struct channel to_anvil;    /* master -> anvil: limits */
	int resolve_fd;             /* ferry-resolve's socket, in the chroot */
	int metrics_http_fd;        /* ferry-metrics' TCP listener, or -1 */
	int metrics_src_fd;         /* the runner's metrics socket, or -1 */
	int metrics_own_fd;         /* the master's metrics socket, or -1 */
	struct wc_totals worker_counts;   /* the workers' counters, added */
	/* anvil's counts, as it last told them; what the runner was last
	 * told of anvil (anvil_figures.h), which runner, and when */
	uint32_t anvil_connections, anvil_clients;
	struct anvil_figures anvil_told;
	pid_t anvil_told_runner;
	int64_t anvil_told_at;
	struct backoff agent_backoff;

	struct channel status;      /* workers -> master (read end) */
	int status_wr;              /* the workers' end */
	int pool_rd;                /* the runner's end of its notes */
	int pool_full;              /* "pool full" logged, not yet over */
	struct channel to_runner;   /* master -> runner: counts, reloads;
	                               runner -> master: agents wanted */
	int agents_wanted;          /* the runner's last word on it */
	uint32_t last_workers, last_busy;   /* last counts it was told */
	int64_t pool_told_ms;       /* when; a change waits POOL_TELL_MS */
	int log_rd, log_wr;         /* children's stderr, when foreground */
	int64_t log_next_ms;        /* the pipe is read again from then */
	int log_journal;            /* their lines go to the journal */
	int sig_rd, sig_wr;         /* self-pipe for signals */

	struct child_proc *children;    /* SMTP workers and delivery agents */
	size_t nchildren, children_cap;
	struct backoff worker_backoff;

	pid_t runner_pid;
	int64_t runner_started;
	struct backoff runner_backoff;

	/* the systemd watchdog (notify.h): 0 when systemd asked for none */
	int64_t watchdog_ms;        /* its period */
	int64_t watchdog_next;      /* the next liveness round */
	uint32_t ping_seq;          /* the last NOTE_PING sent to the runner */
	int64_t ping_sent;          /* when; 0 once it was answered */
	int64_t runner_answered;    /* the runner's last NOTE_PONG, 0: none */

	pid_t anvil_pid;
	int64_t anvil_started;
	struct backoff anvil_backoff;

	pid_t metrics_pid;
	int64_t metrics_started;
	struct backoff metrics_backoff;

	int draining;               /* ferryctl drain: new sessions get 421 */
	int packed;                 /* the worker pool is packed */
	int spread_workers;         /* spread_workers_for(the CPUs) */
	int drain_told;             /* what the runner was last told, -1 */
	pid_t resolve_pid;          /* 0 also while client_names is off */
	int64_t resolve_started;
	struct backoff resolve_backoff;
	int resolve_told_to_go;     /* a reload: no back-off for the next */
	/* ferry-token, while some route's credentials use oauth2 */
	int token_wanted;
	int token_fd;               /* spool/token.sock, or -1 */
	int token_notes_child;      /* its end of the notes (FD_TOKEN_NOTES) */
	int token_notes;            /* ours: rotated refresh tokens */
	pid_t token_pid;
	int64_t token_started;
	struct backoff token_backoff;
	int token_told_to_go;

	int shutting_down;
	int64_t shutdown_deadline;
	char smtpd_path[PATH_MAX + 32], queue_path[PATH_MAX + 32];
	char deliver_path[PATH_MAX + 32];
	char anvil_path[PATH_MAX + 32];
	char metrics_path[PATH_MAX + 32];
	char resolve_path[PATH_MAX + 32];
	char token_path[PATH_MAX + 32];
};

#define LOG_RELAY_MS 20            /* children's lines wait this at most */
#define LOG_BUSY_BYTES 512         /* read at once: lines come in batches */
#define POOL_TELL_MS 200           /* worker counts reach the runner */

static int sig_write_fd = -1;
/* Set by SIGCHLD even when the signal pipe is full: the main loop reaps
 * only after one, rather than calling waitpid() on every wake-up. */
static volatile sig_atomic_t child_exited;

static void
on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	if (sig == SIGCHLD)
		child_exited = 1;

	if (write(sig_write_fd, &c, 1) < 0) {
		/* the pipe is full: a signal is already pending */
	}
	errno = saved;
}

static void
install_signals(struct master_state *m)
{
	struct sigaction sa;
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		log_fatal("pipe: %s", strerror(errno));
	m->sig_rd = p[0];
	m->sig_wr = p[1];
	sig_write_fd = p[1];
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* ------------------------------------------------------- configuration */

static int
make_config_fd(const char *text, size_t len)
{
	int fd = memfd_create("ferry.conf", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (write_all(fd, text, len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads the file and has ferry-check check the text read, waiting for
 * its verdict (at start, before the event loop): the certificates, keys
 * and users the workers load, and the DKIM keys (master_check.h).  NULL
 * (and err) when it is unusable. */
static struct ferry_config *
read_config(struct master_state *m, char **textp, size_t *lenp, char *err,
    size_t errlen)
{
	const char *path = m->args->config_path;
	struct ferry_config *cfg;
	char *text = config_read_file(path, 1 << 20, lenp);

	if (text == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (master_check_start(&m->check, m->check_path, path, text, *lenp,
	    err, errlen) < 0)
		return NULL;
	if (master_check_wait(&m->check, err, errlen) < 0) {
		master_check_clear(&m->check);
		return NULL;
	}
	m->check.text = NULL;   /* ours again */
	master_check_clear(&m->check);
	cfg = config_load(path, text, err, errlen);
	if (cfg == NULL) {
		free(text);
		return NULL;
	}
	*textp = text;
	return cfg;
}

/* ------------------------------------------------------------- sockets */

/* The listen backlog for cfg (machine_limits.h), with a warning when the
 * kernel caps it under max_connections. */
static int
listen_backlog(const struct ferry_config *cfg)
{
	int somaxconn = machine_somaxconn();

	if (somaxconn > 0 && somaxconn < cfg->max_connections)
		log_warn("net.core.somaxconn is %d, under limits { "
		    "max_connections = %d }: the listen backlog is capped "
		    "at %d, and connections beyond it wait in the kernel or "
		    "are dropped (raise it: sysctl net.core.somaxconn=%d)",
		    somaxconn, cfg->max_connections, somaxconn,
		    cfg->max_connections);
	return machine_backlog(cfg->max_connections, somaxconn);
}

/* RLIMIT_NOFILE for cfg: every child inherits it from here (before it
 * drops privileges).  -1 with err when it cannot be had. */
static int
raise_fd_limit(const struct ferry_config *cfg, char *err, size_t errlen)
{
	uint64_t need = machine_fds_needed(cfg->max_connections,
	    cfg->workers_max);
	char why[512];

	if (machine_raise_nofile(need, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "limits { max_connections = %d } with "
		    "workers { max = %d } needs %llu open files per process, "
		    "but %s; raise the hard limit (LimitNOFILE= in the "
		    "systemd unit, ulimit -Hn) or lower max_connections",
		    cfg->max_connections, cfg->workers_max,
		    (unsigned long long)need, why);
		return -1;
	}
	log_debug("open files: at least %llu per process for %d "
	    "connections", (unsigned long long)need, cfg->max_connections);
	return 0;
}

static int
bind_listener(const char *address, int port, int backlog, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, address,
	    &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		slen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, address,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		slen = sizeof(*sin6);
	} else {
		snprintf(err, errlen, "%s: not a numeric address", address);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0 ||
	    listen(fd, backlog) < 0) {
		snprintf(err, errlen, "bind %s port %d: %s", address, port,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Binds the listeners of cfg into out, reusing any of the current ones
 * with the same address and port.  -1 (nothing changed) on failure. */
static int
bind_listeners(struct master_state *m, const struct ferry_config *cfg,
    struct listener *out, char *err, size_t errlen)
{
	size_t i, j;
	int backlog;

	if (cfg->nlisteners > MAX_LISTENERS) {
		snprintf(err, errlen, "more than %d listeners", MAX_LISTENERS);
		return -1;
	}
	backlog = listen_backlog(cfg);
	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *lc = &cfg->listeners[i];

		out[i].name = xstrdup(lc->name);
		out[i].address = xstrdup(lc->address);
		out[i].port = lc->port;
		out[i].fd = -1;
		for (j = 0; j < m->nlisteners; j++)
			if (m->listeners[j].fd >= 0 &&
			    m->listeners[j].port == lc->port &&
			    strcmp(m->listeners[j].address, lc->address) == 0)
				out[i].fd = m->listeners[j].fd;
		/* a kept listener takes the new backlog: listen() again */
		if (out[i].fd >= 0 && listen(out[i].fd, backlog) < 0)
			log_warn("listen %s port %d: %s", lc->address,
			    lc->port, strerror(errno));
		if (out[i].fd < 0)
			out[i].fd = bind_listener(lc->address, lc->port,
			    backlog, err, errlen);
		if (out[i].fd < 0) {
			/* undo what this call bound */
			for (j = 0; j <= i; j++) {
				size_t k;
				int reused = 0;

				for (k = 0; k < m->nlisteners; k++)
					if (m->listeners[k].fd == out[j].fd)
						reused = 1;
				if (!reused && out[j].fd >= 0)
					close(out[j].fd);
				free(out[j].name);
				free(out[j].address);
			}
			return -1;
		}
	}
	return 0;
}

static void
make_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, int as_root)
{
	struct stat st;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %s", path, strerror(errno));
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		log_fatal("%s: not a directory", path);
	if (as_root && (st.st_uid != uid || st.st_gid != gid) &&
	    chown(path, uid, gid) < 0)
		log_fatal("chown %s: %s", path, strerror(errno));
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		log_fatal("chmod %s: %s", path, strerror(errno));
}

/* A listening unix socket at path, owned by root and group gid with mode
 * 0660 when group_access, else 0600. */
static int
make_unix_listener(const char *path, gid_t gid, int group_access)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		log_fatal("%s: path too long for a unix socket", path);
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		log_fatal("socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		log_fatal("bind %s: %s", path, strerror(errno));
	if (group_access && chown(path, 0, gid) < 0)
		log_fatal("chown %s: %s", path, strerror(errno));
	if (chmod(path, group_access ? 0660 : 0600) < 0)
		log_fatal("chmod %s: %s", path, strerror(errno));
	if (listen(fd, 1024) < 0)
		log_fatal("listen %s: %s", path, strerror(errno));
	return fd;
}

/* spool/            root 0755
 * spool/queue/      queue user 0700: the database
 * spool/smtpd/      root 0755: the workers' chroot, holding only
 * spool/smtpd/queue.sock  root:<smtpd group> 0660 */
/* The runner (queue user) and the agents (deliver_user) reach the spool
 * by its path after dropping root: a directory on the way that they
 * cannot search (a checkout in root's home, mode 0700) would leave the
 * runner without its queue.  Said at start, naming the directory. */
static void
check_spool_reachable(const struct ferry_config *cfg, uid_t quid,
    gid_t qgid)
{
	const char *who[2] = { cfg->user, cfg->deliver_user };
	char blocker[PATH_MAX + 64];
	uid_t uid[2];
	gid_t gid[2];
	mode_t mode = 0;
	int i;

	uid[0] = quid;
	gid[0] = qgid;
	if (privsep_lookup(cfg->deliver_user, &uid[1], &gid[1]) < 0)
		log_fatal("deliver_user %s does not exist", cfg->deliver_user);
	for (i = 0; i < 2; i++)
		if (path_searchable(cfg->spool_dir, uid[i], gid[i], blocker,
		    sizeof(blocker), &mode) < 0)
			log_fatal("spool_dir %s: the user %s cannot reach it: "
			    "%s (mode %04o) is closed to it; put spool_dir "
			    "(or the checkout, with etc/ferry-dev.conf) where "
			    "other users may pass, or chmod o+x %s",
			    cfg->spool_dir, who[i], blocker, (unsigned)mode,
			    blocker);
}

/* ferry-resolve's socket in the workers' chroot, for the SMTP user's
 * group, like anvil's.  Made once, when client names are first on. */
static void
open_resolve_socket(struct master_state *m)
{
	char path[PATH_MAX];
	uid_t suid;
	gid_t sgid = 0;
	int as_root = geteuid() == 0;

	if (m->resolve_fd >= 0)
		return;
	if (as_root && privsep_lookup(m->cfg->smtpd_user, &suid, &sgid) < 0)
		log_fatal("smtpd_user %s does not exist", m->cfg->smtpd_user);
	snprintf(path, sizeof(path), "%s/%s/%s", m->cfg->spool_dir,
	    SPOOL_SMTPD_DIR, RESOLVE_SOCKET_NAME);
	m->resolve_fd = make_unix_listener(path, sgid, as_root);
}

static void
prepare_spool(struct master_state *m)
{
	const struct ferry_config *cfg = m->cfg;
	char path[PATH_MAX];
	uid_t quid = 0, suid = 0;
	gid_t qgid = 0, sgid = 0, dgid = 0, agid = 0;
	int as_root = geteuid() == 0;

	if (as_root) {
		if (privsep_lookup(cfg->user, &quid, &qgid) < 0)
			log_fatal("user %s does not exist", cfg->user);
		if (privsep_lookup(cfg->smtpd_user, &suid, &sgid) < 0)
			log_fatal("smtpd_user %s does not exist",
			    cfg->smtpd_user);
		if (quid == suid)
			log_warn("user and smtpd_user are both %s: the SMTP "
			    "workers should not share the queue owner's uid",
			    cfg->user);
	}
	/* parents of the spool, as mkdir -p would */
	ferry_strlcpy(path, cfg->spool_dir, sizeof(path));
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			log_fatal("mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
	make_dir(cfg->spool_dir, 0755, 0, 0, as_root);
	if (as_root)
		check_spool_reachable(cfg, quid, qgid);
	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir,
	    SPOOL_QUEUE_DIR);
	make_dir(path, 0700, quid, qgid, as_root);
	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR);
	make_dir(path, 0755, 0, 0, as_root);

	snprintf(path, sizeof(path), "%s/%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR, INTAKE_SOCKET_NAME);
	m->intake_fd = make_unix_listener(path, sgid, as_root);
	/* ferry-anvil's, beside it: the workers ask it about limits */
	snprintf(path, sizeof(path), "%s/%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR, ANVIL_SOCKET_NAME);
	m->anvil_fd = make_unix_listener(path, sgid, as_root);
	/* ferry-resolve's, beside it, while client_names is on (else when
	 * a reload turns it on: open_resolve_socket) */
	m->resolve_fd = -1;
	if (cfg->client_names)
		open_resolve_socket(m);
	/* the runner's metrics socket, beside them: ferry-metrics (the SMTP
	 * user, in this chroot) asks it for the counters */
	m->metrics_src_fd = -1;
	m->metrics_own_fd = -1;
	if (cfg->metrics_enabled) {
		snprintf(path, sizeof(path), "%s/%s/%s", cfg->spool_dir,
		    SPOOL_SMTPD_DIR, METRICS_SOCKET_NAME);
		m->metrics_src_fd = make_unix_listener(path, sgid, as_root);
		/* and the master's own: the workers' counters */
		snprintf(path, sizeof(path), "%s/%s/%s", cfg->spool_dir,
		    SPOOL_SMTPD_DIR, MASTER_METRICS_SOCKET_NAME);
		m->metrics_own_fd = make_unix_listener(path, sgid, as_root);
		fd_set_nonblock(m->metrics_own_fd, 1);
	}

	/* the delivery agents' socket, for the delivery user's group */
	if (as_root) {
		uid_t duid;

		if (privsep_lookup(cfg->deliver_user, &duid, &dgid) < 0)
			log_fatal("deliver_user %s does not exist",
			    cfg->deliver_user);
		if (duid == quid || duid == suid)
			log_warn("deliver_user %s shares a uid with another "
			    "ferry user: use an account of its own",
			    cfg->deliver_user);
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir,
	    AGENT_SOCKET_NAME);
	m->agent_fd = make_unix_listener(path, dgid, as_root);

	/* ferryctl: root, and the admin group when one is configured */
	if (as_root && cfg->admin_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->admin_group);

		if (gr == NULL)
			log_fatal("admin_group %s does not exist",
			    cfg->admin_group);
		agid = gr->gr_gid;
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir,
	    CONTROL_SOCKET_NAME);
	m->control_fd = make_unix_listener(path, agid,
	    as_root && agid != 0);
}

/* --------------------------------------------------------------- children */

/* Puts each of src[i] at descriptor i + first, safely even when sources
 * overlap the targets. */
static void
place_fds(const int *src, size_t n, int first)
{
	int tmp[MAX_LISTENERS + 4];
	size_t i;

	for (i = 0; i < n; i++) {
		tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 256);
		if (tmp[i] < 0)
			_exit(EXIT_CONFIG);
	}
	for (i = 0; i < n; i++)
		if (dup2(tmp[i], first + (int)i) < 0)
			_exit(EXIT_CONFIG);
}

/* child_notes: a worker's end of its notes (FD_WORKER_NOTES), else -1. */
static pid_t
spawn(struct master_state *m, enum child_role role, int child_notes)
{
	const char *path = role == ROLE_WORKER ? m->smtpd_path :
	    role == ROLE_AGENT ? m->deliver_path :
	    role == ROLE_ANVIL ? m->anvil_path :
	    role == ROLE_METRICS ? m->metrics_path :
	    role == ROLE_RESOLVE ? m->resolve_path :
	    role == ROLE_TOKEN ? m->token_path : m->queue_path;
	char gen[16];
	sigset_t all, old;
	pid_t pid;

	snprintf(gen, sizeof(gen), "%u", m->generation);
	/* Signals stay blocked from here in the child, across exec, until
	 * the program has installed its own handlers and unblocks them
	 * (smtpd.c, queue.c): a SIGTERM sent to a child that is just
	 * starting is then held, not run by the master's handler copy in
	 * the fork (and lost). */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return -1;
	}
	if (pid == 0) {
		int fds[MAX_LISTENERS + 4];
		size_t n = 0, i;
		struct sigaction sa;
		int devnull;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		for (i = 1; i < NSIG; i++)
			sigaction((int)i, &sa, NULL);

		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		/* The children's lines reach stderr through the master's
		 * pipe: they may not write files (RLIMIT_FSIZE is 0), and the
		 * journal's fields are made here.  The runner, which writes
		 * most lines and may write files, writes to the master's own
		 * stderr (one write per line, so lines do not mix), which
		 * saves the master a wake-up, a read and a write per line. */
		if (m->log_wr >= 0 &&
		    (role != ROLE_RUNNER || m->log_journal))
			dup2(m->log_wr, STDERR_FILENO);

		fds[n++] = m->cfg_fd;                            /* 3 */
		if (role == ROLE_WORKER) {
			fds[n++] = m->status_wr;                 /* 4 */
			fds[n++] = child_notes;                  /* 5 */
			for (i = 0; i < m->nlisteners; i++)
				fds[n++] = m->listeners[i].fd;   /* 6.. */
		} else if (role == ROLE_RUNNER) {
			fds[n++] = m->intake_fd;                 /* 4 */
			fds[n++] = m->control_fd;                /* 5 */
			fds[n++] = m->agent_fd;                  /* 6 */
			fds[n++] = m->pool_rd;                   /* 7 */
			if (m->metrics_src_fd >= 0)
				fds[n++] = m->metrics_src_fd;    /* 8 */
		} else if (role == ROLE_ANVIL) {
			fds[n++] = m->anvil_fd;                  /* 4 */
			fds[n++] = m->anvil_notes_rd;            /* 5 */
		} else if (role == ROLE_METRICS) {
			fds[n++] = m->metrics_http_fd;           /* 4 */
		} else if (role == ROLE_RESOLVE) {
			fds[n++] = m->resolve_fd;                /* 4 */
		} else if (role == ROLE_TOKEN) {
			fds[n++] = m->token_fd;                  /* 4 */
			fds[n++] = m->token_notes_child;         /* 5 */
		}
		place_fds(fds, n, FD_CONFIG);
		execl(path, path, "-f", m->cfg->path, "-g", gen,
		    m->args->foreground ? "-d" : (char *)NULL, (char *)NULL);
		fprintf(stderr, "ferryd: exec %s: %s\n", path,
		    strerror(errno));
		_exit(EXIT_CONFIG);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

static int64_t
backoff_delay(struct backoff *b, int64_t lived_ms, int status)
{
	int64_t delay;

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    lived_ms >= YOUNG_MS) {
		b->streak = 0;
		return 0;
	}
	if (lived_ms >= YOUNG_MS)
		b->streak = 0;
	b->streak++;
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_CONFIG)
		delay = BACKOFF_MAX_MS;
	else if (b->streak == 1 && lived_ms >= YOUNG_MS)
		delay = 0;
	else {
		int s = b->streak > 7 ? 7 : b->streak - 1;

		delay = (int64_t)BACKOFF_MIN_MS << s;
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
	}
	if (b->max_ms > 0 && delay > b->max_ms)
		delay = b->max_ms;
	b->not_before = now_ms() + delay;
	return delay;
}

static void report_pool(struct master_state *m, int force);

static void
spawn_runner(struct master_state *m)
{
	pid_t pid = spawn(m, ROLE_RUNNER, -1);

	if (pid > 0) {
		m->last_workers = UINT32_MAX;   /* tell the new one */
		m->drain_told = -1;
		m->runner_pid = pid;
		m->runner_started = now_ms();
		m->ping_sent = 0;       /* ping the new one at once */
		m->watchdog_next = 0;
		log_debug("started queue runner, pid %ld", (long)pid);
	}
}

static void read_anvil_notes(struct master_state *m);

/* What a stopped anvil left unread on its notes is for nobody now: the
 * next anvil reads the limits in force from the configuration.  Its own
 * last notes (counts, stress) are dropped with it. */
static void
drop_stale_anvil_notes(struct master_state *m)
{
	uint8_t rec[256];
	int k;

	read_anvil_notes(m);      /* anvil_pid is 0: read and dropped */
	for (k = 0; k < 1024; k++) {
		(void)channel_flush(&m->to_anvil);
		for (;;) {
			ssize_t got = recv(m->anvil_notes_rd, rec,
			    sizeof(rec), MSG_DONTWAIT | MSG_TRUNC);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				break;
		}
		if (channel_pending(&m->to_anvil) == 0)
			break;
	}
}

static void
spawn_anvil(struct master_state *m)
{
	pid_t pid;

	drop_stale_anvil_notes(m);
	pid = spawn(m, ROLE_ANVIL, -1);

	if (pid > 0) {
		m->anvil_pid = pid;
		m->anvil_started = now_ms();
		log_debug("started anvil, pid %ld", (long)pid);
	} else {
		/* fork failed (logged): its socket stays readable, so
		 * wait a moment rather than try on every turn */
		m->anvil_backoff.not_before = now_ms() + BACKOFF_MIN_MS;
	}
}

static void
spawn_resolve(struct master_state *m)
{
	pid_t pid;

	open_resolve_socket(m);
	pid = spawn(m, ROLE_RESOLVE, -1);

	if (pid > 0) {
		m->resolve_pid = pid;
		m->resolve_started = now_ms();
		log_debug("started resolve, pid %ld", (long)pid);
	} else {
		/* fork failed (logged): its socket stays readable, so
		 * wait a moment rather than try on every turn */
		m->resolve_backoff.not_before = now_ms() + BACKOFF_MIN_MS;
	}
}

/* ferry-token's socket in the spool for the queue user's group, and
 * the notes it sends the master (made once); or, when no route uses
 * oauth2, no socket at all: the runner takes its absence for "no
 * OAuth2 here".  A problem is fatal at start; at a reload it is logged
 * and ferry-token is not run (OAuth2 routes then defer). */
static void
configure_token(struct master_state *m, int at_start)
{
	char path[PATH_MAX], err[PATH_MAX + 600];
	uid_t quid;
	gid_t qgid = 0;
	int as_root = geteuid() == 0, n, p[2];

	err[0] = '\0';
	n = master_token_routes(m->cfg->credentials_file, err, sizeof(err));
	if (n < 0)
		log_error("credentials file: %s", err);
	m->token_wanted = n > 0;
	err[0] = '\0';
	if (m->token_wanted && as_root) {
		uid_t tuid, duid, suid;
		gid_t g;

		if (privsep_lookup(m->cfg->user, &quid, &qgid) < 0)
			snprintf(err, sizeof(err), "user %s does not exist",
			    m->cfg->user);
		else if (privsep_lookup(m->cfg->token_user, &tuid, &g) < 0)
			snprintf(err, sizeof(err), "token_user %s does not "
			    "exist (a route's credentials use oauth2)",
			    m->cfg->token_user);
		else if (privsep_lookup(m->cfg->deliver_user, &duid, &g) < 0 ||
		    privsep_lookup(m->cfg->smtpd_user, &suid, &g) < 0 ||
		    tuid == quid || tuid == duid || tuid == suid || tuid == 0)
			snprintf(err, sizeof(err), "token_user %s shares a uid "
			    "with another ferry user or root: give it an "
			    "account of its own", m->cfg->token_user);
	}
	if (m->token_wanted && err[0] == '\0' &&
	    access(m->token_path, X_OK) < 0)
		snprintf(err, sizeof(err), "%s: %s (a route's credentials "
		    "use oauth2)", m->token_path, strerror(errno));
	if (err[0] != '\0') {
		if (at_start)
			log_fatal("%s", err);
		log_error("%s; OAuth2 routes get no token", err);
		m->token_wanted = 0;
	}
	snprintf(path, sizeof(path), "%s/%s", m->cfg->spool_dir,
	    TOKEN_SOCKET_NAME);
	if (!m->token_wanted) {
		if (m->token_fd >= 0) {
			close(m->token_fd);
			m->token_fd = -1;
		}
		unlink(path);
		return;
	}
	if (m->token_fd < 0)
		m->token_fd = make_unix_listener(path, qgid, as_root);
	if (m->token_notes < 0) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    p) < 0)
			log_fatal("socketpair: %s", strerror(errno));
		m->token_notes_child = p[0];
		m->token_notes = p[1];
		fd_set_nonblock(p[1], 1);
	}
}

static void
spawn_token(struct master_state *m)
{
	pid_t pid = spawn(m, ROLE_TOKEN, -1);

	if (pid > 0) {
		m->token_pid = pid;
		m->token_started = now_ms();
		log_debug("started token, pid %ld", (long)pid);
	}
}

/* Rotated refresh tokens from ferry-token, to write into the file. */
static void
read_token_notes(struct master_state *m)
{
	int k;

	for (k = 0; k < 16 && m->token_notes >= 0; k++) {
		uint8_t rec[8192];
		struct ipc_in in;
		ssize_t n = recv(m->token_notes, rec, sizeof(rec),
		    MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if ((size_t)n > sizeof(rec) ||
		    ipc_frame(rec, (size_t)n, &in) != (long)n ||
		    in.type != IMSG_TOKEN_ROTATED ||
		    master_token_rotated(m->cfg->credentials_file, &in) < 0) {
			log_warn("token sent a malformed note; restarting it");
			if (m->token_pid > 0)
				kill(m->token_pid, SIGKILL);
		}
		explicit_bzero(rec, sizeof(rec));
	}
}

static void
spawn_metrics(struct master_state *m)
{
	pid_t pid;

	if (m->metrics_http_fd < 0)
		return;
	pid = spawn(m, ROLE_METRICS, -1);
	if (pid > 0) {
		m->metrics_pid = pid;
		m->metrics_started = now_ms();
		log_debug("started metrics, pid %ld", (long)pid);
	}
}

static void tell_worker_packed(struct master_state *m,
    struct child_proc *w);
static void set_packed(struct master_state *m, size_t holding);
static void tell_worker_drain(struct master_state *m,
    struct child_proc *w);

static void
spawn_child(struct master_state *m, enum child_role role)
{
	struct child_proc *w;
	int notes[2] = { -1, -1 };
	pid_t pid;

	/* a worker's notes: records, so a note is read whole or not at all */
	if (role == ROLE_WORKER && socketpair(AF_UNIX, SOCK_SEQPACKET |
	    SOCK_CLOEXEC, 0, notes) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return;
	}
	pid = spawn(m, role, notes[1]);
	if (notes[1] >= 0)
		close(notes[1]);
	if (pid < 0) {
		if (notes[0] >= 0)
			close(notes[0]);
		return;
	}
	if (notes[0] >= 0)
		fd_set_nonblock(notes[0], 1);
	if (m->nchildren == m->children_cap) {
		m->children_cap = m->children_cap ? m->children_cap * 2 : 16;
		m->children = xrealloc(m->children,
		    m->children_cap * sizeof(*m->children));
	}
	w = &m->children[m->nchildren++];
	memset(w, 0, sizeof(*w));
	w->role = role;
	w->pid = pid;
	w->generation = m->generation;
	w->state = W_STARTING;
	w->started = now_ms();
	w->notes_fd = notes[0];
	log_debug("started %s, pid %ld", role_name(role), (long)pid);
	/* it learns the drain state before it takes a connection */
	if (role == ROLE_WORKER) {
		tell_worker_drain(m, w);
		if (m->packed)
			tell_worker_packed(m, w);
	}
}

static void
spawn_worker(struct master_state *m)
{
	spawn_child(m, ROLE_WORKER);
}

static struct child_proc *
find_child(struct master_state *m, pid_t pid)
{
	size_t i;

	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].pid == pid)
			return &m->children[i];
	return NULL;
}

static void
describe_exit(char *out, size_t len, int status)
{
	if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(out, len, "exit status %d", WEXITSTATUS(status));
}

static void
reap_children(struct master_state *m)
{
	for (;;) {
		int status;
		char how[64];
		pid_t pid = waitpid(-1, &status, WNOHANG);
		struct child_proc *w;

		if (pid <= 0)
			return;
		describe_exit(how, sizeof(how), status);
		if (pid == m->runner_pid) {
			int64_t lived = now_ms() - m->runner_started;
			int64_t delay;

			m->runner_pid = 0;
			m->agents_wanted = 0;   /* the next one says */
			if (m->shutting_down) {
				log_info("queue runner stopped (%s)", how);
				continue;
			}
			delay = backoff_delay(&m->runner_backoff, lived, status);
			log_warn("queue runner (pid %ld) died: %s; restarting "
			    "in %lld ms", (long)pid, how, (long long)delay);
			continue;
		}
		if (pid == m->metrics_pid) {
			int64_t lived = now_ms() - m->metrics_started;
			int64_t delay;

			m->metrics_pid = 0;
			if (m->shutting_down) {
				log_debug("metrics stopped (%s)", how);
				continue;
			}
			delay = backoff_delay(&m->metrics_backoff, lived,
			    status);
			log_warn("metrics (pid %ld) died: %s; restarting in "
			    "%lld ms", (long)pid, how, (long long)delay);
			continue;
		}
		if (pid == m->token_pid) {
			int64_t lived = now_ms() - m->token_started;
			int64_t delay;

			m->token_pid = 0;
			if (m->shutting_down)
				continue;
			if (m->token_told_to_go) {
				m->token_told_to_go = 0;
				m->token_backoff.not_before = 0;
				continue;
			}
			delay = backoff_delay(&m->token_backoff, lived, status);
			log_warn("token (pid %ld) died: %s; restarting in %lld "
			    "ms (OAuth2 routes wait meanwhile)", (long)pid,
			    how, (long long)delay);
			continue;
		}
		if (pid == m->resolve_pid) {
			int64_t lived = now_ms() - m->resolve_started;
			int64_t delay;

			m->resolve_pid = 0;
			if (m->shutting_down) {
				log_debug("resolve stopped (%s)", how);
				continue;
			}
			if (m->resolve_told_to_go) {
				m->resolve_told_to_go = 0;
				m->resolve_backoff.not_before = 0;
				log_debug("resolve stopped for the reload (%s)",
				    how);
				continue;
			}
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				m->resolve_backoff.streak = 0;
				m->resolve_backoff.not_before = 0;
				log_debug("resolve left when idle; it starts "
				    "again when a worker asks");
				continue;
			}
			delay = backoff_delay(&m->resolve_backoff, lived,
			    status);
			log_warn("resolve (pid %ld) died: %s; starting it "
			    "again on demand in %lld ms (clients are unknown "
			    "meanwhile)",
			    (long)pid, how, (long long)delay);
			continue;
		}
		if (pid == m->anvil_pid) {
			int64_t lived = now_ms() - m->anvil_started;
			int64_t delay;

			m->anvil_pid = 0;
			m->worker_counts.stress_on = 0;   /* a new one
			                                     * starts outside */
			m->anvil_connections = 0;
			m->anvil_clients = 0;
			if (m->shutting_down) {
				log_debug("anvil stopped (%s)", how);
				continue;
			}
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				m->anvil_backoff.streak = 0;
				m->anvil_backoff.not_before = 0;
				log_debug("anvil left when idle; it starts again "
				    "when a worker asks");
				continue;
			}
			delay = backoff_delay(&m->anvil_backoff, lived, status);
			log_warn("anvil (pid %ld) died: %s; starting it again on "
			    "demand in %lld ms (the workers allow everything "
			    "meanwhile)",
			    (long)pid, how, (long long)delay);
			continue;
		}
		w = find_child(m, pid);
		if (w == NULL)
			continue;
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			int64_t delay = backoff_delay(w->role == ROLE_AGENT ?
			    &m->agent_backoff : &m->worker_backoff,
			    now_ms() - w->started, status);

			log_warn("%s (pid %ld) died: %s%s", role_name(w->role),
			    (long)pid, how,
			    delay > 0 ? "; throttling restarts" : "");
		} else {
			log_debug("%s (pid %ld) exited", role_name(w->role),
			    (long)pid);
		}
		if (w->notes_fd >= 0)
			close(w->notes_fd);
		*w = m->children[--m->nchildren];
	}
}

/* What a worker may write on the status pipe. */
static const struct channel_rule worker_may_send[] = {
	{ IMSG_WORKER_STATUS, 0 },
	{ IMSG_WORKER_COUNTERS, 0 },
	{ 0, 0 }
};

static void
open_status_pipe(struct master_state *m)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		log_fatal("pipe: %s", strerror(errno));
	fd_set_nonblock(p[0], 1);
	channel_init(&m->status, p[0], "an SMTP worker on the status pipe",
	    worker_may_send, WORKER_STATUS_PAYLOAD_MAX, 0);
	m->status_wr = p[1];
}

/* A worker wrote nonsense on the shared status pipe, which is now
 * closed.  Which worker lied cannot be told, so every worker holding
 * the pipe is asked to leave after its session, and new ones get a new
 * pipe. */
static void
replace_status_pipe(struct master_state *m)
{
	size_t i;

	channel_free(&m->status);
	close(m->status_wr);
	open_status_pipe(m);
	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].role == ROLE_WORKER &&
		    !m->children[i].told_to_leave) {
			kill(m->children[i].pid, SIGUSR1);
			m->children[i].told_to_leave = 1;
		}
	log_warn("status pipe replaced; the SMTP workers that held it leave "
	    "after their sessions");
}

static void
read_status(struct master_state *m)
{
	for (;;) {
		struct ipc_in in;
		int got, n = channel_fill(&m->status);

		if (n < 0 && m->status.fd < 0) {
			replace_status_pipe(m);
			return;
		}
		while ((got = channel_next(&m->status, &in)) > 0) {
			uint32_t pid, generation, status;
			struct child_proc *w;

			if (in.type == IMSG_WORKER_COUNTERS) {
				if (ipc_get_u32(&in, &pid) < 0 ||
				    wc_totals_take(&m->worker_counts,
				    &in) < 0) {
					channel_violation(&m->status,
					    "malformed WORKER_COUNTERS");
					got = -1;
					break;
				}
				continue;
			}
			if (ipc_get_u32(&in, &pid) < 0 ||
			    ipc_get_u32(&in, &generation) < 0 ||
			    ipc_get_u32(&in, &status) < 0 ||
			    ipc_end(&in) < 0 || (status != WORKER_IDLE &&
			    status != WORKER_BUSY && status != WORKER_FULL)) {
				channel_violation(&m->status,
				    "malformed WORKER_STATUS");
				got = -1;
				break;
			}
			w = find_child(m, (pid_t)pid);
			if (w == NULL || w->role != ROLE_WORKER)
				continue;
			if (status == WORKER_IDLE && w->state != W_IDLE)
				w->idle_since = now_ms();
			w->state = status == WORKER_IDLE ? W_IDLE : W_BUSY;
			w->full = status == WORKER_FULL;
		}
		if (got < 0) {
			replace_status_pipe(m);
			return;
		}
		if (n <= 0)
			return;
	}
}

/* ferry-anvil's notes to the master: stress mode began or ended.  Read
 * record by record from the notes socket (the master's end, non-
 * blocking); one that does not decode is anvil lying, and it is
 * replaced. */
static void
read_anvil_notes(struct master_state *m)
{
	int k;

	for (k = 0; k < 64 && m->to_anvil.fd >= 0; k++) {
		uint8_t rec[64], on;
		struct ipc_in in;
		ssize_t n = recv(m->to_anvil.fd, rec, sizeof(rec),
		    MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (m->anvil_pid <= 0)
			continue;   /* the last words of one that is gone */
		if ((size_t)n <= sizeof(rec) &&
		    ipc_frame(rec, (size_t)n, &in) == (long)n &&
		    in.type == IMSG_NOTE_ANVIL_COUNTS) {
			if (anvil_counts_take(&in, &m->anvil_connections,
			    &m->anvil_clients) == 0)
				continue;
			log_warn("anvil sent a malformed note; restarting it");
			if (m->anvil_pid > 0)
				kill(m->anvil_pid, SIGKILL);
			continue;
		}
		if ((size_t)n > sizeof(rec) ||
		    ipc_frame(rec, (size_t)n, &in) != (long)n ||
		    in.type != IMSG_NOTE_ANVIL_STRESS ||
		    ipc_get_u8(&in, &on) < 0 || ipc_end(&in) < 0 || on > 1) {
			log_warn("anvil sent a malformed note; restarting it");
			if (m->anvil_pid > 0)
				kill(m->anvil_pid, SIGKILL);
			continue;
		}
		if (on && !m->worker_counts.stress_on)
			m->worker_counts.stress_entered++;
		m->worker_counts.stress_on = on;
	}
}

/* Tells the runner anvil's figures for ferryctl status when they
 * changed (at most once a second), and a new runner at once; like
 * report_pool, a note still waiting goes first. */
#define ANVIL_TELL_MS 1000
static void
report_anvil(struct master_state *m)
{
	static const enum wc_id hit_ids[ANVIL_HIT_MAX] = {
	    WC_ANVIL_CONNECTIONS, WC_ANVIL_CLIENT_CONNECTIONS,
	    WC_ANVIL_CONNECTION_RATE, WC_ANVIL_MESSAGE_RATE,
	    WC_ANVIL_AUTH_LOCKOUT };
	struct anvil_figures f;
	int64_t now = now_ms();
	size_t i;

	if (m->runner_pid <= 0 || channel_pending(&m->to_runner) > 0)
		return;
	memset(&f, 0, sizeof(f));
	f.running = m->anvil_pid > 0;
	f.stress = m->worker_counts.stress_on != 0;
	f.stress_entered = m->worker_counts.stress_entered;
	f.connections = m->anvil_connections;
	f.clients = m->anvil_clients;
	for (i = 0; i < ANVIL_HIT_MAX; i++)
		f.hits[i] = m->worker_counts.other[hit_ids[i]];
	if (m->anvil_told_runner == m->runner_pid &&
	    (memcmp(&f, &m->anvil_told, sizeof(f)) == 0 ||
	    now - m->anvil_told_at < ANVIL_TELL_MS))
		return;
	anvil_figures_add(channel_begin(&m->to_runner, IMSG_NOTE_ANVIL), &f);
	(void)channel_end(&m->to_runner);
	(void)channel_flush(&m->to_runner);
	m->anvil_told = f;
	m->anvil_told_runner = m->runner_pid;
	m->anvil_told_at = now;
}

/* ferry-metrics asks for the workers' counters. */
static void
serve_metrics(struct master_state *m)
{
	const char *names[WC_LISTENERS];
	size_t i, n = m->cfg->nlisteners;

	if (m->metrics_own_fd < 0)
		return;
	if (n > WC_LISTENERS)
		n = WC_LISTENERS;
	for (i = 0; i < n; i++)
		names[i] = m->cfg->listeners[i].name;
	master_metrics_serve(m->metrics_own_fd, &m->worker_counts, names, n,
	    m->draining);
}

/* The children's stderr: copied to ours, or, for the journal, cut into
 * lines that carry their fields (log_journald.c). */
static size_t
relay_logs(struct master_state *m)
{
	static struct log_lines journal_lines;
	char buf[8192];
	size_t total = 0;

	for (;;) {
		ssize_t n = read(m->log_rd, buf, sizeof(buf));

		if (n <= 0)
			return total;
		total += (size_t)n;
		if (m->log_journal) {
			log_journald_feed(&journal_lines, buf, (size_t)n);
			continue;
		}
		if (write_all(STDERR_FILENO, buf, (size_t)n) < 0)
			return total;
	}
}

/* Lets the current generation's idle workers beyond min_idle (want) go
 * once each has been idle workers.spare_idle seconds, longest idle
 * first, as Postfix's max_idle does for its daemons: a burst grows the
 * pool, and a quiet relay shrinks back to min_idle ready workers, so a
 * new session is still served at once. */
static void
retire_spares(struct master_state *m, size_t idle, size_t want)
{
	int64_t keep_ms = (int64_t)m->cfg->workers_spare_idle * 1000;

	if (keep_ms <= 0)
		return;
	while (idle > want) {
		struct child_proc *oldest = NULL;
		size_t i;

		for (i = 0; i < m->nchildren; i++) {
			struct child_proc *w = &m->children[i];

			if (w->role == ROLE_WORKER &&
			    w->generation == m->generation &&
			    w->state == W_IDLE && !w->told_to_leave &&
			    now_ms() - w->idle_since >= keep_ms &&
			    (oldest == NULL ||
			    w->idle_since < oldest->idle_since))
				oldest = w;
		}
		if (oldest == NULL)
			return;
		kill(oldest->pid, SIGUSR1);
		oldest->told_to_leave = 1;
		idle--;
	}
}

/* Keeps the current generation's pool between min_idle and max_idle idle
 * workers, and at most max in all; spares beyond min_idle leave after
 * workers.spare_idle seconds idle (retire_spares). */
static void
manage_pool(struct master_state *m)
{
	const struct ferry_config *cfg = m->cfg;
	size_t i, idle = 0, total = 0, full = 0, holding = 0, room = 0;
	int want;

	if (m->shutting_down)
		return;
	for (i = 0; i < m->nchildren; i++) {
		struct child_proc *w = &m->children[i];

		if (w->role != ROLE_WORKER)
			continue;
		total++;   /* old generations still hold slots */
		if (w->state == W_BUSY && w->full)
			full++;
		if (w->generation != m->generation || w->told_to_leave)
			continue;
		if (w->state != W_BUSY)
			idle++;
		else {
			holding++;
			if (!w->full)
				room++;
		}
	}
	set_packed(m, holding);
	/* every slot of every worker taken: new connections wait in the
	 * listen queue.  Said once when it starts and once when it ends. */
	if (!m->pool_full && total > 0 && full == total &&
	    (int)total >= cfg->workers_max) {
		log_warn("SMTP pool full: %zu workers with %d sessions each; "
		    "new connections wait (workers max, sessions_per_worker)",
		    total, cfg->sessions_per_worker);
		m->pool_full = 1;
	} else if (m->pool_full && full < total) {
		log_info("SMTP pool no longer full");
		m->pool_full = 0;
	}
	want = cfg->workers_min_idle > 0 ? cfg->workers_min_idle : 1;
	/* packed: a worker with a free slot takes a new session at once */
	while ((int)(idle + (m->packed ? room : 0)) < want &&
	    (int)total < cfg->workers_max &&
	    now_ms() >= m->worker_backoff.not_before) {
		spawn_worker(m);
		idle++;
		total++;
		if (m->worker_backoff.streak > 0)
			break;   /* one at a time while crashing */
	}
	/* only a worker idle for a while leaves: under a stream of short
	 * sessions workers turn idle and busy many times a second, and
	 * retiring one the moment the idle count peaks meant starting
	 * another a moment later (a process start and exit per few dozen
	 * sessions) */
	for (i = 0; i < m->nchildren && (int)idle > cfg->workers_max_idle;
	    i++) {
		struct child_proc *w = &m->children[i];

		if (w->role == ROLE_WORKER &&
		    w->generation == m->generation && w->state == W_IDLE &&
		    !w->told_to_leave &&
		    now_ms() - w->idle_since >= WORKER_IDLE_RETIRE_MS) {
			kill(w->pid, SIGUSR1);
			w->told_to_leave = 1;
			idle--;
		}
	}
	retire_spares(m, idle, (size_t)want);
}

/* Tells the runner how many workers there are, when that changes. */
/* Whether the workers' counts differ from what the runner was told. */
static int
pool_changed(const struct master_state *m)
{
	uint32_t workers = 0, busy = 0;
	size_t i;

	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].role == ROLE_WORKER) {
			workers++;
			if (m->children[i].state == W_BUSY)
				busy++;
		}
	return workers != m->last_workers || busy != m->last_busy;
}

static void
report_pool(struct master_state *m, int force)
{
	uint32_t workers = 0, busy = 0;
	struct ipc_out *note;
	size_t i;

	/* a note still waiting (the runner is slow or restarting) goes
	 * first; a newer count follows once it is out */
	(void)channel_flush(&m->to_runner);
	if (channel_pending(&m->to_runner) > 0)
		return;
	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].role == ROLE_WORKER) {
			workers++;
			if (m->children[i].state == W_BUSY)
				busy++;
		}
	if (!force && workers == m->last_workers && busy == m->last_busy)
		return;
	/* the counts are for status and metrics: a busy relay's changes
	 * go together, not one note (and runner wake-up) per session */
	if (!force && m->last_workers != UINT32_MAX &&
	    now_ms() - m->pool_told_ms < POOL_TELL_MS)
		return;
	m->pool_told_ms = now_ms();
	note = channel_begin(&m->to_runner, IMSG_NOTE_POOL);
	ipc_add_u32(note, workers);
	ipc_add_u32(note, busy);
	(void)channel_end(&m->to_runner);
	(void)channel_flush(&m->to_runner);
	m->last_workers = workers;
	m->last_busy = busy;
}

/* Keeps as many agents of the current generation running as the runner
 * has work for, delivery.agents at most.  Agents leave on their own (the
 * runner closes an idle one, or marks a last job): none is killed here. */
static void
manage_agents(struct master_state *m)
{
	size_t i;
	int have = 0, want = m->agents_wanted;

	if (m->shutting_down || m->runner_pid <= 0)
		return;
	if (want > m->cfg->delivery_agents)
		want = m->cfg->delivery_agents;
	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].role == ROLE_AGENT &&
		    m->children[i].generation == m->generation &&
		    !m->children[i].told_to_leave)
			have++;
	while (have < want && now_ms() >= m->agent_backoff.not_before) {
		spawn_child(m, ROLE_AGENT);
		have++;
		if (m->agent_backoff.streak > 0)
			break;
	}
}

/* ----------------------------------------------------------------- drain */

/* Sends worker w a one-byte note (drain state, packed pool) on the
 * socket of its own that it reads before every accept; one that cannot
 * be written (the worker has not read hundreds of them: it is stuck) is
 * a worker asked to leave, and its successor starts with the state. */
static void
tell_worker_note(struct child_proc *w, enum ipc_type type, int on)
{
	struct ipc_out note;
	const uint8_t *buf;
	size_t len;

	if (w->notes_fd < 0)
		return;
	memset(&note, 0, sizeof(note));
	ipc_out_init(&note, type);
	ipc_add_u8(&note, (uint8_t)on);
	buf = ipc_out_finish(&note, &len);
	if (send(w->notes_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) !=
	    (ssize_t)len && errno != EPIPE && errno != ECONNRESET &&
	    !w->told_to_leave) {
		log_warn("SMTP worker (pid %ld) does not read its notes (%s); "
		    "asking it to leave", (long)w->pid, strerror(errno));
		kill(w->pid, SIGUSR1);
		w->told_to_leave = 1;
	}
	ipc_out_free(&note);
}

static void
tell_worker_drain(struct master_state *m, struct child_proc *w)
{
	tell_worker_note(w, IMSG_NOTE_DRAINING, m->draining);
}

static void
tell_worker_packed(struct master_state *m, struct child_proc *w)
{
	tell_worker_note(w, IMSG_NOTE_POOL_PACKED, m->packed);
}

/* Packs the pool when enough workers hold sessions (spread_workers),
 * spreads it again when fewer than half of that do, and tells every
 * worker of the change. */
static void
set_packed(struct master_state *m, size_t holding)
{
	/* with a margin, so that a pool about spread_workers busy does
	 * not flip (and tell every worker) at each session's start and
	 * end: packed from spread_workers holding, spread again below
	 * half of that */
	int packed = m->packed ? (int)holding >= m->spread_workers / 2 :
	    (int)holding >= m->spread_workers;
	size_t i;

	if (packed == m->packed)
		return;
	m->packed = packed;
	log_debug("SMTP pool %s (%zu workers hold sessions)",
	    packed ? "packed: new sessions go to workers with room" :
	    "spread: new sessions go to idle workers", holding);
	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].role == ROLE_WORKER)
			tell_worker_packed(m, &m->children[i]);
}

/* Tells the runner the drain state (ferryctl status shows it, and
 * ferryctl drain waits for it) when it changed or the runner is new. */
static void
report_drain(struct master_state *m)
{
	if (m->drain_told == m->draining || m->runner_pid <= 0)
		return;
	(void)channel_flush(&m->to_runner);
	if (channel_pending(&m->to_runner) > 0)
		return;          /* after the note still waiting */
	ipc_add_u8(channel_begin(&m->to_runner, IMSG_NOTE_DRAINING),
	    (uint8_t)m->draining);
	(void)channel_end(&m->to_runner);
	(void)channel_flush(&m->to_runner);
	m->drain_told = m->draining;
}

/* ferryctl drain (on) or undrain: every worker is told at once, then the
 * runner, so that when ferryctl sees the state in "status" no worker
 * takes a new session any more. */
static void
set_draining(struct master_state *m, int on)
{
	size_t i, workers = 0;

	if (m->draining == on) {
		log_debug("%s: already %s", on ? "drain" : "undrain",
		    on ? "draining" : "taking sessions");
		return;
	}
	m->draining = on;
	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].role == ROLE_WORKER) {
			tell_worker_drain(m, &m->children[i]);
			workers++;
		}
	if (on)
		log_info("drain: new SMTP sessions are answered 421 4.3.2 "
		    "(%zu worker(s) told); sessions in progress finish and "
		    "delivery goes on; \"ferryctl undrain\" resumes", workers);
	else
		log_info("undrain: taking new SMTP sessions again");
	report_drain(m);
}

/* ---------------------------------------------------------------- reload */

/* Hands the runner the new configuration, so routes, retry schedule and
 * limits apply to mail already queued without restarting it; with the
 * DKIM keys' bytes that ferry-check copied as root into keys (and parsed
 * as the runner will: the runner cannot read the key files itself). */
static void
tell_runner_reload(struct master_state *m, int keys)
{
	struct ipc_out *note;

	if (m->runner_pid <= 0)
		return;   /* a runner started later reads the new file */
	if (m->cfg->ndkim_keys > 0 && keys >= 0) {
		(void)channel_begin(&m->to_runner, IMSG_NOTE_DKIM_KEYS);
		/* one descriptor in flight at a time: sent before the
		 * configuration's */
		if (channel_end_fd(&m->to_runner, keys) == 0)
			(void)channel_flush(&m->to_runner);
	}
	(void)channel_begin(&m->to_runner, IMSG_NOTE_RELOAD);
	if (channel_end_fd(&m->to_runner, m->cfg_fd) < 0 ||
	    channel_flush(&m->to_runner) < 0) {
		log_warn("reload: could not hand the queue runner the new "
		    "configuration (%s); it keeps the old one until it "
		    "restarts", m->to_runner.error[0] ? m->to_runner.error :
		    "a reload is still on its way");
		return;
	}
	/* what "ferryctl status" reports, and "ferryctl reload" waits for */
	note = channel_begin(&m->to_runner, IMSG_NOTE_GENERATION);
	ipc_add_u32(note, m->generation);
	(void)channel_end(&m->to_runner);
	(void)channel_flush(&m->to_runner);
}

/* ------------------------------------------------- the systemd watchdog */

/* What the runner may send on its notes: the answer to a NOTE_PING, and
 * how many delivery agents it has work for. */
static const struct channel_rule runner_may_send[] = {
	{ IMSG_NOTE_PONG, 0 },
	{ IMSG_NOTE_AGENTS, 0 },
	{ IMSG_NOTE_DRAIN, 0 },
	{ 0, 0 }
};

/* The runner broke the protocol on its notes (the channel is closed):
 * a new socket pair, and the runner restarted on it. */
static void
renew_runner_notes(struct master_state *m)
{
	int p[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) < 0)
		log_fatal("socketpair: %s", strerror(errno));
	close(m->pool_rd);
	m->pool_rd = p[0];
	fd_set_nonblock(p[1], 1);
	channel_reopen(&m->to_runner, p[1]);
	m->last_workers = UINT32_MAX;
	m->drain_told = -1;
	m->ping_sent = 0;
	m->agents_wanted = 0;
	if (m->runner_pid > 0) {
		log_error("restarting the queue runner (pid %ld)",
		    (long)m->runner_pid);
		kill(m->runner_pid, SIGKILL);
	}
}

/* The runner's notes: answers to the liveness check, and how many
 * delivery agents it has work for.  A runner that lies is killed (it is
 * restarted like one that crashed) and its successor gets a fresh pair. */
static void
read_runner_notes(struct master_state *m)
{
	struct ipc_in in;
	uint32_t v;
	int got = 0;

	while (m->to_runner.fd >= 0 && channel_fill(&m->to_runner) > 0) {
		while ((got = channel_next(&m->to_runner, &in)) > 0) {
			if (in.type == IMSG_NOTE_AGENTS) {
				if (ipc_get_u32(&in, &v) < 0 ||
				    ipc_end(&in) < 0) {
					(void)channel_violation(&m->to_runner,
					    "malformed NOTE_AGENTS");
					break;
				}
				m->agents_wanted = v > (uint32_t)INT_MAX ?
				    INT_MAX : (int)v;
				continue;
			}
			if (in.type == IMSG_NOTE_DRAIN) {
				uint8_t on;

				if (ipc_get_u8(&in, &on) < 0 ||
				    ipc_end(&in) < 0 || on > 1) {
					(void)channel_violation(&m->to_runner,
					    "malformed NOTE_DRAIN");
					break;
				}
				set_draining(m, on);
				continue;
			}
			if (ipc_get_u32(&in, &v) < 0 || ipc_end(&in) < 0 ||
			    v == 0 || v > m->ping_seq) {
				(void)channel_violation(&m->to_runner,
				    "malformed NOTE_PONG");
				break;
			}
			m->runner_answered = now_ms();
			if (v == m->ping_seq)
				m->ping_sent = 0;
		}
		if (got < 0)
			break;
	}
	if (m->to_runner.fd < 0)
		renew_runner_notes(m);
}

/* The runner answered within half the watchdog period (or ferryd is
 * stopping, which TimeoutStopSec bounds instead). */
static int
runner_alive(const struct master_state *m, int64_t now)
{
	if (m->shutting_down)
		return 1;
	return m->runner_answered > 0 &&
	    now - m->runner_answered <= m->watchdog_ms / 2;
}

/* One liveness round a quarter period apart: ping the runner (again, if
 * the last ping went unanswered for a whole period: a runner restarted
 * since never saw it), and tell systemd WATCHDOG=1 if it answered.
 * Returns the milliseconds until the next round. */
static int64_t
watchdog_round(struct master_state *m)
{
	int64_t now = now_ms();

	if (m->watchdog_ms <= 0)
		return INT64_MAX;
	if (now < m->watchdog_next)
		return m->watchdog_next - now;
	m->watchdog_next = now + m->watchdog_ms / 4;
	if (m->runner_pid > 0 && (m->ping_sent == 0 ||
	    now - m->ping_sent >= m->watchdog_ms)) {
		struct ipc_out *note;

		note = channel_begin(&m->to_runner, IMSG_NOTE_PING);
		ipc_add_u32(note, ++m->ping_seq);
		(void)channel_end(&m->to_runner);
		(void)channel_flush(&m->to_runner);
		m->ping_sent = now;
	}
	if (runner_alive(m, now))
		notify_watchdog();
	else
		log_debug("watchdog: the queue runner has not answered for "
		    "%lld ms; not telling systemd it is well",
		    (long long)(m->runner_answered > 0 ?
		    now - m->runner_answered : now - m->runner_started));
	return m->watchdog_ms / 4;
}

/* Hands anvil the new limits; it keeps its counts (it cannot read the
 * file from its chroot, so it gets the numbers). */
static void
tell_anvil_reload(struct master_state *m)
{
	struct ipc_out *note;

	if (m->anvil_pid <= 0)
		return;   /* an anvil started later reads the new file */
	note = channel_begin(&m->to_anvil, IMSG_NOTE_ANVIL_LIMITS);
	ipc_add_i32(note, m->cfg->max_connections);
	ipc_add_i32(note, m->cfg->max_connections_per_client);
	ipc_add_i32(note, m->cfg->connection_rate);
	ipc_add_i32(note, m->cfg->message_rate);
	ipc_add_i32(note, m->cfg->auth_max_failures);
	ipc_add_i32(note, m->cfg->auth_lockout);
	ipc_add_i32(note, m->cfg->stress_threshold);
	ipc_add_i32(note, m->cfg->stress_timeout);
	ipc_add_i32(note, m->cfg->stress_memory_available);
	if (channel_end(&m->to_anvil) < 0 || channel_flush(&m->to_anvil) < 0)
		log_warn("reload: could not hand anvil the new limits (%s); "
		    "it keeps the old ones until it restarts",
		    m->to_anvil.error);
}

/* SIGHUP: reads the file and starts ferry-check on it; the event loop
 * watches the check (reload_check_progress) and the reload is applied
 * (apply_reload) or refused when it ends.  A SIGHUP while a check runs
 * has the file read and checked again when that check ends: the last
 * file asked for is the one applied.  Ends with notify_ready() unless a
 * check is under way. */
static void
reload(struct master_state *m)
{
	const char *path = m->args->config_path;
	char err[1024], *text;
	size_t len = 0;

	if (m->check.pid > 0) {
		m->check.again = 1;
		log_info("reload: a check of the file is under way; the file "
		    "is read again when it ends");
		return;
	}
	if ((text = config_read_file(path, 1 << 20, &len)) == NULL) {
		log_error("reload refused: %s: %s; keeping the running "
		    "configuration", path, strerror(errno));
		notify_ready();
		return;
	}
	if (master_check_start(&m->check, m->check_path, path, text, len,
	    err, sizeof(err)) < 0) {
		log_error("reload refused: %s; keeping the running "
		    "configuration", err);
		notify_ready();
		return;
	}
	log_debug("reload: checking %s (ferry-check pid %ld)", path,
	    (long)m->check.pid);
}

static void apply_reload(struct master_state *m, char *text, size_t len,
    int keys);

/* The check of a reload: what its checker wrote, or its deadline. */
static void
reload_check_progress(struct master_state *m)
{
	char err[1024];
	int rc;

	if (m->shutting_down) {
		master_check_clear(&m->check);
		return;
	}
	if ((rc = master_check_poll(&m->check, err, sizeof(err))) > 0)
		return;
	if (m->check.again) {
		master_check_clear(&m->check);
		reload(m);
		return;
	}
	if (rc < 0) {
		log_error("reload refused: %s; keeping the running "
		    "configuration", err);
	} else {
		char *text = m->check.text;

		m->check.text = NULL;   /* apply_reload takes it */
		apply_reload(m, text, m->check.len, m->check.keys_fd);
	}
	master_check_clear(&m->check);
	notify_ready();
}

/* Applies the text ferry-check passed; keys holds the DKIM keys' copy
 * for the runner.  Takes text. */
static void
apply_reload(struct master_state *m, char *text, size_t len, int keys)
{
	struct listener fresh[MAX_LISTENERS];
	struct ferry_config *cfg;
	char err[1024];
	size_t i, j;
	int fd;

	cfg = config_load(m->args->config_path, text, err, sizeof(err));
	if (cfg == NULL) {
		log_error("reload refused: %s; keeping the running "
		    "configuration", err);
		free(text);
		return;
	}
	if (strcmp(cfg->spool_dir, m->cfg->spool_dir) != 0 ||
	    strcmp(cfg->user, m->cfg->user) != 0 ||
	    strcmp(cfg->smtpd_user, m->cfg->smtpd_user) != 0)
		log_warn("reload: spool_dir, user and smtpd_user changes take "
		    "effect at the next restart");
	if (raise_fd_limit(cfg, err, sizeof(err)) < 0 ||
	    bind_listeners(m, cfg, fresh, err, sizeof(err)) < 0) {
		log_error("reload refused: %s; keeping the running "
		    "configuration", err);
		config_free(cfg);
		free(text);
		return;
	}
	fd = make_config_fd(text, len);
	if (fd < 0) {
		log_error("reload refused: memfd: %s", strerror(errno));
		for (i = 0; i < cfg->nlisteners; i++) {
			int reused = 0;

			for (j = 0; j < m->nlisteners; j++)
				if (m->listeners[j].fd == fresh[i].fd)
					reused = 1;
			if (!reused)
				close(fresh[i].fd);
			free(fresh[i].name);
			free(fresh[i].address);
		}
		config_free(cfg);
		free(text);
		return;
	}
	/* Close listeners that are gone; the workers of the old generation
	 * keep their own copies until they leave. */
	for (j = 0; j < m->nlisteners; j++) {
		int kept = 0;

		for (i = 0; i < cfg->nlisteners; i++)
			if (fresh[i].fd == m->listeners[j].fd)
				kept = 1;
		if (!kept) {
			log_info("listener %s (%s port %d) closed",
			    m->listeners[j].name, m->listeners[j].address,
			    m->listeners[j].port);
			close(m->listeners[j].fd);
		}
		free(m->listeners[j].name);
		free(m->listeners[j].address);
	}
	memcpy(m->listeners, fresh, cfg->nlisteners * sizeof(fresh[0]));
	m->nlisteners = cfg->nlisteners;

	/* keep the runner's spool view: the runner is not restarted */
	free(cfg->spool_dir);
	cfg->spool_dir = xstrdup(m->cfg->spool_dir);
	free(cfg->user);
	cfg->user = xstrdup(m->cfg->user);
	free(cfg->smtpd_user);
	cfg->smtpd_user = xstrdup(m->cfg->smtpd_user);

	close(m->cfg_fd);
	m->cfg_fd = fd;
	config_free(m->cfg);
	m->cfg = cfg;
	free(m->cfg_text);
	m->cfg_text = text;
	m->cfg_len = len;
	log_set_format((enum log_format)cfg->log_format);
	m->generation++;
	m->worker_backoff.streak = 0;
	m->worker_backoff.not_before = 0;

	/* The old generation finishes its sessions, then leaves. */
	for (i = 0; i < m->nchildren; i++)
		if (m->children[i].generation != m->generation) {
			/* agents finish their job on SIGTERM */
			kill(m->children[i].pid, m->children[i].role ==
			    ROLE_AGENT ? SIGTERM : SIGUSR1);
			m->children[i].told_to_leave = 1;
		}
	m->agent_backoff.streak = 0;
	m->agent_backoff.not_before = 0;
	tell_runner_reload(m, keys);
	tell_anvil_reload(m);
	/* ferry-resolve reads the new file (and resolv.conf) when it
	 * starts; the next worker that asks starts it again while
	 * client_names is on (its socket is made when first on) */
	if (m->cfg->client_names)
		open_resolve_socket(m);
	if (m->resolve_pid > 0 && !m->resolve_told_to_go) {
		kill(m->resolve_pid, SIGTERM);
		m->resolve_told_to_go = 1;
	}
	m->resolve_backoff.streak = 0;
	m->resolve_backoff.not_before = 0;
	/* ferry-token reads the credentials file again when it starts */
	configure_token(m, 0);
	if (m->token_pid > 0 && !m->token_told_to_go) {
		kill(m->token_pid, SIGTERM);
		m->token_told_to_go = 1;
	}
	m->token_backoff.streak = 0;
	m->token_backoff.not_before = 0;
	log_info("configuration reloaded from %s (generation %u)%s",
	    cfg->path, m->generation, m->draining ? "; still draining" : "");
	manage_pool(m);
	manage_agents(m);
}

/* systemd's STATUS= line (notify.h), sent when the counts change. */
static void
report_status(struct master_state *m)
{
	static size_t last_workers = (size_t)-1, last_busy, last_agents;
	static uint32_t last_generation;
	static int last_runner = -1;
	static int last_draining;
	size_t i, workers = 0, busy = 0, agents = 0;
	int runner = m->runner_pid > 0;

	for (i = 0; i < m->nchildren; i++) {
		if (m->children[i].role == ROLE_AGENT) {
			agents++;
		} else if (m->children[i].role == ROLE_WORKER) {
			workers++;
			if (m->children[i].state == W_BUSY)
				busy++;
		}
	}
	if (workers == last_workers && busy == last_busy &&
	    agents == last_agents && m->generation == last_generation &&
	    runner == last_runner && m->draining == last_draining)
		return;
	last_draining = m->draining;
	last_runner = runner;
	last_workers = workers;
	last_busy = busy;
	last_agents = agents;
	last_generation = m->generation;
	notify_status("%s%zu SMTP worker(s), %zu busy; %zu delivery agent(s); "
	    "queue runner %s; configuration generation %u",
	    m->shutting_down ? "stopping: " : m->draining ? "draining: " : "",
	    workers, busy, agents,
	    runner ? "up" : "down", (unsigned)m->generation);
}

/* --------------------------------------------------------------- shutdown */

static void
begin_shutdown(struct master_state *m)
{
	size_t i;

	if (m->shutting_down)
		return;
	m->shutting_down = 1;
	notify_stopping();
	m->shutdown_deadline = now_ms() +
	    (int64_t)m->cfg->shutdown_timeout * 1000 + 5000;
	log_info("shutting down: %zu worker(s) and agent(s) finishing",
	    m->nchildren);
	/* the runner stops handing out deliveries to agents that leave */
	if (m->runner_pid > 0)
		kill(m->runner_pid, SIGUSR1);
	for (i = 0; i < m->nchildren; i++)
		kill(m->children[i].pid, SIGTERM);
	for (i = 0; i < m->nlisteners; i++)
		fd_set_nonblock(m->listeners[i].fd, 1);
}

/* Connections that arrive while shutting down get a 421 at once. */
static void
refuse_waiting(struct master_state *m)
{
	char line[512];
	size_t i;
	int n;

	n = snprintf(line, sizeof(line), "421 4.3.2 %s Service shutting "
	    "down, closing transmission channel\r\n", m->cfg->hostname);
	for (i = 0; i < m->nlisteners; i++) {
		int fd;

		while ((fd = accept4(m->listeners[i].fd, NULL, NULL,
		    SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
			if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0) {
				/* the client is gone already */
			}
			close(fd);
		}
	}
}

static void
find_programs(struct master_state *m)
{
	char self[PATH_MAX], dir[PATH_MAX + 32];
	const char *libexec = m->args->libexec_dir;
	ssize_t n;

	if (libexec == NULL) {
		/* A build tree: the programs sit beside ferryd. */
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n > 0) {
			char *slash;

			self[n] = '\0';
			slash = strrchr(self, '/');
			if (slash) {
				*slash = '\0';
				snprintf(dir, sizeof(dir), "%s/ferry-smtpd",
				    self);
				if (access(dir, X_OK) == 0)
					libexec = self;
			}
		}
	}
	if (libexec == NULL)
		libexec = LIBEXECDIR;
	snprintf(m->smtpd_path, sizeof(m->smtpd_path), "%s/ferry-smtpd",
	    libexec);
	snprintf(m->queue_path, sizeof(m->queue_path), "%s/ferry-queue",
	    libexec);
	snprintf(m->deliver_path, sizeof(m->deliver_path), "%s/ferry-deliver",
	    libexec);
	snprintf(m->anvil_path, sizeof(m->anvil_path), "%s/ferry-anvil",
	    libexec);
	snprintf(m->metrics_path, sizeof(m->metrics_path), "%s/ferry-metrics",
	    libexec);
	snprintf(m->resolve_path, sizeof(m->resolve_path), "%s/ferry-resolve",
	    libexec);
	snprintf(m->token_path, sizeof(m->token_path), "%s/ferry-token",
	    libexec);
	if (access(m->smtpd_path, X_OK) < 0)
		log_fatal("%s: %s", m->smtpd_path, strerror(errno));
	if (access(m->queue_path, X_OK) < 0)
		log_fatal("%s: %s", m->queue_path, strerror(errno));
	if (access(m->deliver_path, X_OK) < 0)
		log_fatal("%s: %s", m->deliver_path, strerror(errno));
	if (access(m->anvil_path, X_OK) < 0)
		log_fatal("%s: %s", m->anvil_path, strerror(errno));
	if (m->cfg->client_names && access(m->resolve_path, X_OK) < 0)
		log_fatal("%s: %s (needed for workers { client_names })",
		    m->resolve_path, strerror(errno));
}

static void
write_pid_file(const char *path)
{
	FILE *fp;

	if (path == NULL)
		return;
	fp = fopen(path, "we");
	if (fp == NULL)
		log_fatal("pid file %s: %s", path, strerror(errno));
	fprintf(fp, "%ld\n", (long)getpid());
	fclose(fp);
}

int
master(const struct master_args *args)
{
	struct master_state ms, *m = &ms;
	char err[1024];
	int p[2];
	size_t i;

	memset(m, 0, sizeof(*m));
	m->check.verdict_fd = m->check.keys_fd = -1;
	m->args = args;
	m->log_rd = m->log_wr = -1;
	m->generation = 1;
	m->runner_backoff.max_ms = RUNNER_BACKOFF_MAX_MS;
	m->drain_told = -1;
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		m->spread_workers = spread_workers_for(cpus);
	}

	log_init("ferryd", args->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG,
	    0);
	master_check_program(args->libexec_dir, m->check_path,
	    sizeof(m->check_path));
	m->cfg = read_config(m, &m->cfg_text, &m->cfg_len, err, sizeof(err));
	if (m->cfg == NULL)
		log_fatal("%s", err);
	log_set_format((enum log_format)m->cfg->log_format);
	if (!args->foreground && m->cfg->log_target != LOG_TO_SYSLOG) {
		log_init("ferryd", (enum log_target)m->cfg->log_target,
		    m->cfg->log_debug);
		if (m->cfg->log_target == LOG_TO_JOURNAL) {
			log_set_line_sink(log_journald_line);
			m->log_journal = 1;
		}
	} else
		log_set_debug(m->cfg->log_debug);
	if (geteuid() != 0)
		log_warn("not running as root: workers will not drop "
		    "privileges or chroot (development use only)");
	find_programs(m);
	if (raise_fd_limit(m->cfg, err, sizeof(err)) < 0)
		log_fatal("%s", err);

	m->cfg_fd = make_config_fd(m->cfg_text, m->cfg_len);
	if (m->cfg_fd < 0)
		log_fatal("memfd: %s", strerror(errno));
	{
		struct listener fresh[MAX_LISTENERS];

		if (bind_listeners(m, m->cfg, fresh, err, sizeof(err)) < 0)
			log_fatal("%s", err);
		memcpy(m->listeners, fresh,
		    m->cfg->nlisteners * sizeof(fresh[0]));
		m->nlisteners = m->cfg->nlisteners;
	}
	/* the metrics endpoint, bound here like the mail listeners; a
	 * change of address or port takes a restart */
	m->metrics_http_fd = -1;
	if (m->cfg->metrics_enabled) {
		m->metrics_http_fd = bind_listener(m->cfg->metrics_address,
		    m->cfg->metrics_port, 64, err, sizeof(err));
		if (m->metrics_http_fd < 0)
			log_fatal("metrics: %s", err);
	}
	prepare_spool(m);

	/* The notes are records (SOCK_SEQPACKET): a note and the
	 * descriptor it carries arrive together, and a runner or anvil
	 * that restarts finds whole notes only. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) < 0)
		log_fatal("socketpair: %s", strerror(errno));
	m->pool_rd = p[0];
	fd_set_nonblock(p[1], 1);
	channel_init(&m->to_runner, p[1], "the queue runner",
	    runner_may_send, 64, CHANNEL_RECORDS);
	m->to_runner.wmax = 65536;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) < 0)
		log_fatal("socketpair: %s", strerror(errno));
	m->anvil_notes_rd = p[0];
	fd_set_nonblock(p[1], 1);
	channel_init(&m->to_anvil, p[1], "anvil", NULL, 0, CHANNEL_RECORDS);
	m->to_anvil.wmax = 65536;
	open_status_pipe(m);
	if (args->foreground || m->cfg->log_target != LOG_TO_SYSLOG) {
		if (pipe2(p, O_CLOEXEC) < 0)
			log_fatal("pipe: %s", strerror(errno));
		m->log_rd = p[0];
		m->log_wr = p[1];
		fd_set_nonblock(m->log_rd, 1);
	}
	install_signals(m);
	write_pid_file(args->pid_file);

	for (i = 0; i < m->nlisteners; i++)
		log_info("listening on %s port %d (%s)",
		    m->listeners[i].address, m->listeners[i].port,
		    m->listeners[i].name);
	m->token_fd = -1;
	m->token_notes = -1;
	m->token_notes_child = -1;
	configure_token(m, 1);
	if (m->token_wanted)
		spawn_token(m);
	spawn_runner(m);
	/* anvil and resolve: when a worker first asks (see the loop) */
	spawn_metrics(m);
	manage_pool(m);
	manage_agents(m);
	log_info("ferry %s started: %s", PACKAGE_VERSION, m->cfg->path);
	notify_ready();
	m->watchdog_ms = (int64_t)(notify_watchdog_usec() / 1000);
	if (m->watchdog_ms > 0) {
		if (m->watchdog_ms < 40)
			m->watchdog_ms = 40;
		log_info("systemd watchdog: %lld ms, kept while the queue "
		    "runner answers", (long long)m->watchdog_ms);
	}

	for (;;) {
		struct pollfd pfd[11 + MAX_LISTENERS];
		size_t n = 0;
		int64_t wait = 1000;
		unsigned char sigs[64];
		ssize_t got;
		/* where each source sits in pfd, for its revents */
		size_t at_status, at_metrics = SIZE_MAX, at_anvil, at_runner;
		size_t at_log = SIZE_MAX, at_token = SIZE_MAX;
		size_t at_anvil_wanted = SIZE_MAX, at_resolve_wanted = SIZE_MAX;
		size_t at_check = SIZE_MAX;

		if (m->shutting_down && m->nchildren == 0) {
			/* the workers are gone: nobody asks anvil now */
			if (m->anvil_pid > 0)
				kill(m->anvil_pid, SIGTERM);
			if (m->resolve_pid > 0)
				kill(m->resolve_pid, SIGTERM);
			if (m->token_pid > 0)
				kill(m->token_pid, SIGTERM);
			if (m->metrics_pid > 0)
				kill(m->metrics_pid, SIGTERM);
			if (m->runner_pid > 0) {
				kill(m->runner_pid, SIGTERM);
				m->shutdown_deadline = now_ms() + 10000;
				while (m->runner_pid > 0 &&
				    now_ms() < m->shutdown_deadline) {
					reap_children(m);
					if (m->log_rd >= 0)
						relay_logs(m);
					usleep(20000);
				}
				if (m->runner_pid > 0) {
					kill(m->runner_pid, SIGKILL);
					waitpid(m->runner_pid, NULL, 0);
				}
			}
			m->shutdown_deadline = now_ms() + 5000;
			while (m->anvil_pid > 0 &&
			    now_ms() < m->shutdown_deadline) {
				reap_children(m);
				usleep(20000);
			}
			if (m->anvil_pid > 0) {
				kill(m->anvil_pid, SIGKILL);
				waitpid(m->anvil_pid, NULL, 0);
			}
			while (m->resolve_pid > 0 &&
			    now_ms() < m->shutdown_deadline) {
				reap_children(m);
				usleep(20000);
			}
			if (m->resolve_pid > 0) {
				kill(m->resolve_pid, SIGKILL);
				waitpid(m->resolve_pid, NULL, 0);
			}
			while (m->token_pid > 0 &&
			    now_ms() < m->shutdown_deadline) {
				reap_children(m);
				usleep(20000);
			}
			if (m->token_pid > 0) {
				kill(m->token_pid, SIGKILL);
				waitpid(m->token_pid, NULL, 0);
			}
			while (m->metrics_pid > 0 &&
			    now_ms() < m->shutdown_deadline) {
				reap_children(m);
				usleep(20000);
			}
			if (m->metrics_pid > 0) {
				kill(m->metrics_pid, SIGKILL);
				waitpid(m->metrics_pid, NULL, 0);
			}
			if (m->log_rd >= 0)
				relay_logs(m);
			break;
		}
		if (m->shutting_down && now_ms() >= m->shutdown_deadline) {
			for (i = 0; i < m->nchildren; i++)
				kill(m->children[i].pid, SIGKILL);
		}

		pfd[n].fd = m->sig_rd;
		pfd[n++].events = POLLIN;
		at_status = n;
		pfd[n].fd = m->status.fd;
		pfd[n++].events = POLLIN;
		if (m->metrics_own_fd >= 0) {
			at_metrics = n;
			pfd[n].fd = m->metrics_own_fd;
			pfd[n++].events = POLLIN;
		}
		at_anvil = n;
		pfd[n].fd = m->to_anvil.fd;
		pfd[n++].events = POLLIN;
		at_runner = n;
		pfd[n].fd = m->to_runner.fd;
		pfd[n++].events = POLLIN;
		if (m->token_notes >= 0) {
			at_token = n;
			pfd[n].fd = m->token_notes;
			pfd[n++].events = POLLIN;
		}
		if (m->runner_pid > 0 && m->last_workers != UINT32_MAX) {
			int64_t d = m->pool_told_ms + POOL_TELL_MS - now_ms();

			if (d < 1)
				d = 1;
			if (d < wait && pool_changed(m))
				wait = d;
		}
		/* On a busy relay the log pipe is read at most every
		 * LOG_RELAY_MS, so that lines come a batch per wake-up, not
		 * one each (64 KiB of pipe holds several hundred lines
		 * meanwhile); on a quiet one at once. */
		if (m->log_rd >= 0) {
			int64_t d = m->log_next_ms - now_ms();

			if (d <= 0 || m->shutting_down) {
				at_log = n;
				pfd[n].fd = m->log_rd;
				pfd[n++].events = POLLIN;
			} else if (d < wait) {
				wait = d;
			}
		}
		if (m->check.pid > 0 && !m->shutting_down) {
			/* a reload's check: its verdict, or its deadline */
			int64_t d = m->check.deadline - now_ms();

			at_check = n;
			pfd[n].fd = m->check.verdict_fd;
			pfd[n++].events = POLLIN;
			if (d < wait)
				wait = d < 1 ? 1 : d;
		}
		if (m->shutting_down) {
			for (i = 0; i < m->nlisteners; i++) {
				pfd[n].fd = m->listeners[i].fd;
				pfd[n++].events = POLLIN;
			}
			wait = 200;
		}
		if (!m->shutting_down && m->runner_pid == 0) {
			int64_t d = m->runner_backoff.not_before - now_ms();

			if (d <= 0) {
				spawn_runner(m);
			} else if (d < wait) {
				wait = d;
			}
		}
		/* anvil on demand: its socket is polled while it is not
		 * running (and not held back after a crash); also while
		 * the workers finish their sessions in a shutdown */
		if (m->anvil_pid == 0) {
			int64_t d = m->anvil_backoff.not_before - now_ms();

			if (d <= 0) {
				at_anvil_wanted = n;
				pfd[n].fd = m->anvil_fd;
				pfd[n++].events = POLLIN;
			} else if (d < wait) {
				wait = d;
			}
		}
		if (!m->shutting_down && m->token_pid == 0 &&
		    m->token_wanted) {
			int64_t d = m->token_backoff.not_before - now_ms();

			if (d <= 0) {
				spawn_token(m);
			} else if (d < wait) {
				wait = d;
			}
		}
		if (m->resolve_pid == 0 && m->cfg->client_names &&
		    m->resolve_fd >= 0) {
			int64_t d = m->resolve_backoff.not_before - now_ms();

			if (d <= 0) {
				at_resolve_wanted = n;
				pfd[n].fd = m->resolve_fd;
				pfd[n++].events = POLLIN;
			} else if (d < wait) {
				wait = d;
			}
		}
		{
			int64_t d = watchdog_round(m);

			if (d < wait)
				wait = d;
		}
		if (!m->shutting_down && m->metrics_pid == 0 &&
		    m->metrics_http_fd >= 0) {
			int64_t d = m->metrics_backoff.not_before - now_ms();

			if (d <= 0) {
				spawn_metrics(m);
			} else if (d < wait) {
				wait = d;
			}
		}
		for (i = 0; i < n; i++)
			pfd[i].revents = 0;
		if (poll(pfd, n, (int)wait) < 0 && errno != EINTR)
			log_fatal("poll: %s", strerror(errno));

		while ((got = read(m->sig_rd, sigs, sizeof(sigs))) > 0) {
			ssize_t k;

			for (k = 0; k < got; k++) {
				switch (sigs[k]) {
				case SIGCHLD:   /* child_exited says it */
					break;
				case SIGHUP:
					if (!m->shutting_down) {
						/* reload says ready when
						 * its check has ended */
						notify_reloading();
						reload(m);
					}
					break;
				case SIGTERM:
				case SIGINT:
					begin_shutdown(m);
					break;
				default:
					break;
				}
			}
		}
		if (child_exited) {
			child_exited = 0;
			reap_children(m);
		}
		/* Each source is read when poll says so: the readers go on
		 * until EAGAIN, so a source left unread has nothing. */
		if (pfd[at_status].revents != 0)
			read_status(m);
		if (pfd[at_runner].revents != 0)
			read_runner_notes(m);
		if (m->check.pid > 0 && (m->shutting_down ||
		    (at_check != SIZE_MAX && pfd[at_check].revents != 0) ||
		    now_ms() >= m->check.deadline))
			reload_check_progress(m);
		if (pfd[at_anvil].revents != 0)
			read_anvil_notes(m);
		if (at_token != SIZE_MAX && pfd[at_token].revents != 0)
			read_token_notes(m);
		/* a worker waits in a helper's backlog: start it (a reap
		 * above may have been one that just left: it is 0 then) */
		if (at_anvil_wanted != SIZE_MAX && m->anvil_pid == 0 &&
		    pfd[at_anvil_wanted].revents != 0) {
			spawn_anvil(m);
			/* the session anvil lets in asks for its name next:
			 * resolve starts meanwhile, not after the answer */
			if (at_resolve_wanted != SIZE_MAX &&
			    m->resolve_pid == 0)
				spawn_resolve(m);
		}
		if (at_resolve_wanted != SIZE_MAX && m->resolve_pid == 0 &&
		    m->cfg->client_names && pfd[at_resolve_wanted].revents != 0)
			spawn_resolve(m);
		if (at_metrics != SIZE_MAX && pfd[at_metrics].revents != 0)
			serve_metrics(m);
		if (at_log != SIZE_MAX && pfd[at_log].revents != 0) {
			/* several lines at once: the relay is busy, so the
			 * next ones wait to come as a batch; a line or two
			 * (a quiet relay) and the next is passed on at once */
			if (relay_logs(m) >= LOG_BUSY_BYTES)
				m->log_next_ms = now_ms() + LOG_RELAY_MS;
			else
				m->log_next_ms = 0;
		}
		if (m->shutting_down)
			refuse_waiting(m);
		manage_pool(m);
		manage_agents(m);
		report_pool(m, 0);
		report_drain(m);
		report_anvil(m);
		(void)channel_flush(&m->to_anvil);
		report_status(m);
	}
	for (i = 0; i < m->nlisteners; i++) {
		close(m->listeners[i].fd);
		free(m->listeners[i].name);
		free(m->listeners[i].address);
	}
	if (args->pid_file)
		unlink(args->pid_file);
	log_info("ferry stopped");
	/* what the master held, so that a leak checker sees only leaks */
	channel_free(&m->to_anvil);
	channel_free(&m->status);
	channel_free(&m->to_runner);
	master_check_clear(&m->check);
	free(m->children);
	free(m->cfg_text);
	config_free(m->cfg);
	return 0;
}
