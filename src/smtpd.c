/*
 * smtpd.c - the SMTP worker process: privileges dropped, then one event
 * loop over up to workers.sessions_per_worker sessions at once.
 *
 * Security stance: this is the process that faces the internet, so it
 * holds nothing worth stealing but its TLS keys.  Started by the master
 * as root, it reads its configuration, the listeners' certificates and
 * keys and the AUTH users file, then drops for good: the SMTP user,
 * chroot to the spool's empty smtpd directory (which holds only the
 * runner's intake socket and anvil's), no new privileges, no forking, no
 * writing files.  It never sees the queue database.
 *
 * It accepts from the listening sockets the master passed and serves
 * every session it holds from one poll loop: sockets are non-blocking,
 * TLS too, each session is a state machine (smtp_session.c) with one
 * deadline in the worker's timer heap (session_timer.c), and the loop
 * sleeps until the nearest deadline or the next ready socket.  It tells
 * the master whether it holds no session, some, or no room for more, and
 * stops accepting after workers.sessions sessions so the master can
 * start a fresh one.  Anvil's stress notes shorten every idle limit.
 * A worker connects to anvil when a session first asks and stays
 * connected while it holds sessions; at rest (no session for
 * REST_HEAP_QUIET_MS) it gives its free heap back and lets go of anvil
 * and ferry-resolve, so that they can leave (workers.helper_idle).
 * While the master says the relay drains (ferryctl drain, its notes on
 * FD_WORKER_NOTES, polled after the listeners so that a note sent
 * before a connection came is read before it is accepted), a new
 * connection is answered 421 4.3.2 and closed; the sessions it holds
 * go on.
 * Anvil's checks (a new connection, MAIL, AUTH) never stall the loop: a
 * connection waits in its slot and a session is parked while its
 * question is out, and the others are served meanwhile; an answer that
 * does not come within ANVIL_DEADLINE_MS allows the action.  With
 * workers.client_names on, a connection anvil allowed then waits in its
 * slot for its name from ferry-resolve (resolve_client.h), at most
 * client_name_timeout and a margin, before its session and greeting
 * start; the others are served meanwhile.
 *
 * Behind a load balancer (listen { proxy_protocol }) a connection first
 * waits in its slot for the PROXY header, read without blocking and
 * without taking a byte past it (peeked, then consumed as far as the
 * parser vouches), under its own deadline (proxy_timeout), before
 * anvil's check and before any TLS handshake; the header's client
 * address then replaces the peer's for anvil, the session's policy and
 * its logs.  A connection from outside proxy_networks is closed unread;
 * a bad, short or late header closes it: never plain SMTP instead.
 *
 * Isolation.  Sessions of one worker share its address space.  A client
 * that took over a worker (a memory-safety bug in this code or in
 * OpenSSL) would see the sessions that worker holds at that moment -
 * their envelopes, message data and AUTH exchanges in flight - and
 * nothing else: not the queue (the runner owns it, the worker only
 * streams to it), not the other workers (separate processes, separately
 * exec'd, so separate address-space randomisation), not anvil's or the
 * master's state, and no key but the listeners' TLS keys, which every
 * worker holds anyway.  Past sessions are gone from it (buffers holding
 * input and passwords are wiped when a session ends), and a worker is
 * replaced after workers.sessions sessions.  The default of 64 sessions
 * per worker with 32 workers makes room for 2048 sessions, above the
 * default limits.max_connections (256), so that idle and slow clients
 * cost sockets and not processes; sessions_per_worker = 1 restores one
 * process per session for operators who weigh that isolation higher.
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
#include "hostname.h"
#include "resolve_client.h"
#include "rest_heap.h"
#include "proxy_header.h"
#include "session_timer.h"
#include "smtp_reply.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "tls_server.h"
#include "util.h"
#include "worker_counters.h"

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

/* What this worker counted since its last report, as one
 * WORKER_COUNTERS frame: when its last session ends (force), else at most
 * every WORKER_COUNTERS_MS. */
static void
report_counters(pid_t pid, int force)
{
	static int64_t last;
	int64_t now = now_ms();
	struct ipc_out *m;

	if (!wcount_pending() || (!force && now - last < WORKER_COUNTERS_MS))
		return;
	last = now;
	if (status_ch.peer[0] == '\0')
		channel_init(&status_ch, FD_STATUS, "the master", NULL, 0, 0);
	m = channel_begin(&status_ch, IMSG_WORKER_COUNTERS);
	ipc_add_u32(m, (uint32_t)pid);
	wcount_frame(m);
	(void)channel_end(&status_ch);
	if (channel_flush(&status_ch) < 0 || channel_pending(&status_ch) > 0) {
		log_error("status pipe: %s; exiting", status_ch.error[0] ?
		    status_ch.error : "short write");
		_exit(0);
	}
}


/* Anvil's answer about a new connection; over a limit, the client gets
 * 421 in one write and no session.  1 when refused. */
static int
refuse_over_limit(const struct ferry_config *cfg, int result, int fd,
    const char *addr)
{
	char line[512];
	const char *what;
	enum reply_id id;
	size_t n;

	switch (result) {
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
	wcount_reply((int)id);
	if (send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client is gone already */
	}
	return 1;
}

/* A worker that already holds sessions leaves a new connection to an
 * idle sibling for this long (the master keeps workers.min_idle of
 * them), so that sessions spread over processes while there are some.
 * When none took it, it takes the next ones almost at once for a while.
 * Once the master says the pool is packed (enough workers hold
 * sessions to use every CPU), it takes them at once. */
#define ACCEPT_DEFER_MS 200
/* At most this often, a worker whose sessions ended gives the free
 * pages inside its heap back (child_trim_heap). */
#define HEAP_TRIM_MS 1000
#define ACCEPT_DEFER_SHORT_MS 10
#define ACCEPT_SHORT_FOR_MS 1000

/* One session slot of the worker: free, a connection waiting for its
 * PROXY header, for anvil's connect check or for its name, or a
 * session. */
struct slot {
	struct smtp_session *s;      /* NULL: no session (yet) */
	char peer_addr[64];          /* what anvil counted it as */
	int proxying;                /* accepted, reading its PROXY header */
	uint8_t proxy_buf[PROXY_HEADER_MAX];  /* the header's bytes taken */
	size_t proxy_len;
	char via_addr[64];           /* the balancer, while proxying */
	int via_port;
	int64_t proxy_deadline;
	int checking;                /* accepted, anvil asked: no session */
	int fd;                      /* while proxying or checking */
	struct sockaddr_storage peer;
	size_t listener;
	int answered;                /* anvil answered (with answer): acted
	                                on by take_answers() */
	int answer;
	int naming;                  /* allowed, its name asked: no session */
	int named;                   /* the name came: take_names() acts */
	char name[HOSTNAME_MAX + 1]; /* "" = unknown */
};

struct worker {
	const struct ferry_config *cfg;
	const struct child_args *args;
	pid_t self;
	struct slot *slots;
	size_t nslots, nsessions;
	int started;                 /* sessions started, for recycling */
	struct session_timer timer;
	struct anvil_client anvil;
	char intake_path[4200];
	struct intake_client *spare;  /* idle connections to the runner that
	                                 sessions left, for the next ones */
	size_t nspare;
	struct tls_server **tls;
	struct auth_users *users;
	int last_status;             /* last enum worker_status reported */
	int64_t idle_report_at;      /* busy to idle: told the master then */
	int64_t defer_until;         /* accepting deferred to an idle worker */
	int64_t short_defer_until;
	int64_t next_trim;           /* child_trim_heap() not before */
	struct rest_heap rest;       /* all free heap back when quiet */
	int ended;                   /* sessions ended since the last trim */
	int answers;                 /* slots with answered set */
	int draining;                /* the master's last NOTE_DRAINING */
	int packed;                  /* its last NOTE_POOL_PACKED */
	int notes_open;              /* FD_WORKER_NOTES not yet at EOF */
	struct resolve_client resolve;   /* the clients' names */
	int names;                   /* slots with named set */
};

/* A worker with room whose last session ended tells the master it is
 * idle only when no new one came within IDLE_REPORT_MS: a client that
 * opens a connection per message would otherwise wake the master twice
 * per message, to no end (a worker with room counts as spare either way
 * once the pool is packed). */
#define IDLE_REPORT_MS 100

static void
report_status(struct worker *w, int accepting)
{
	int st = w->nsessions == 0 ? WORKER_IDLE :
	    w->nsessions >= w->nslots ? WORKER_FULL : WORKER_BUSY;

	/* one that is leaving must not look idle to the master */
	if (!accepting && st == WORKER_IDLE)
		return;
	if (st == w->last_status) {
		w->idle_report_at = 0;
		return;
	}
	if (st == WORKER_IDLE && w->last_status == WORKER_BUSY) {
		int64_t now = now_ms();

		if (w->idle_report_at == 0)
			w->idle_report_at = now + IDLE_REPORT_MS;
		if (now < w->idle_report_at)
			return;
	}
	w->idle_report_at = 0;
	w->last_status = st;
	report(w->self, w->args->generation, (enum worker_status)st);
}

static void
arm(struct worker *w, size_t k)
{
	session_timer_set(&w->timer, k, smtp_session_deadline(w->slots[k].s));
}

/* Every session's deadline again: stress mode or draining changed. */
static void
arm_all(struct worker *w)
{
	size_t k;

	for (k = 0; k < w->nslots; k++)
		if (w->slots[k].s != NULL)
			arm(w, k);
}

/* anvil_client's on_answer: only noted here, so that no session runs
 * inside the anvil client; take_answers() acts on it. */
static void
on_anvil_answer(void *arg, uint32_t owner, int result)
{
	struct worker *w = arg;

	if (owner >= w->nslots)
		log_panic("anvil answer for slot %u of %zu", owner, w->nslots);
	/* a session whose own backstop deadline resumed it may hear late:
	 * smtp_session_anvil_answer ignores a session that does not wait */
	if (!w->slots[owner].answered)
		w->answers++;
	w->slots[owner].answered = 1;
	w->slots[owner].answer = result;
}

/* resolve_client's on_answer: noted, like anvil's; take_names() acts. */
static void
on_name(void *arg, uint32_t owner, const char *name)
{
	struct worker *w = arg;
	struct slot *sl;

	if (owner >= w->nslots)
		log_panic("name for slot %u of %zu", owner, w->nslots);
	sl = &w->slots[owner];
	if (!sl->naming || sl->named)
		return;
	ferry_strlcpy(sl->name, name, sizeof(sl->name));
	sl->named = 1;
	w->names++;
}

static void
end_session(struct worker *w, size_t k)
{
	struct slot *sl = &w->slots[k];

	if (smtp_session_end(sl->s, &w->spare[w->nspare]))
		w->nspare++;
	sl->s = NULL;
	session_timer_cancel(&w->timer, k);
	anvil_end_connection(&w->anvil, sl->peer_addr);
	w->nsessions--;
	w->ended++;
	/* at once when it was the last; else with the next report, at most
	 * WORKER_COUNTERS_MS away (the loop turns at least every second),
	 * so a busy worker does not wake the master at every session */
	report_counters(w->self, w->nsessions == 0);
}

static void
run_session(struct worker *w, size_t k, int64_t now)
{
	smtp_session_run(w->slots[k].s, now);
	if (smtp_session_over(w->slots[k].s))
		end_session(w, k);
	else
		arm(w, k);
}

/* With client names on, slot k's client is named before its session
 * starts: 1 when its name is asked for (the session starts when it
 * comes, take_names()), 0 when it stays unknown and starts now. */
static int
name_wanted(struct worker *w, size_t k)
{
	struct slot *sl = &w->slots[k];

	sl->name[0] = '\0';
	sl->named = 0;
	sl->naming = 1;
	if (resolve_ask(&w->resolve, (uint32_t)k, sl->peer_addr))
		return 1;
	sl->naming = 0;
	return 0;
}

static void start_session(struct worker *w, size_t k);

/* Anvil answered the connect check of slot k (or allowed it unasked):
 * the session starts, or the client is refused. */
static void
connect_checked(struct worker *w, size_t k, int result)
{
	const struct ferry_config *cfg = w->cfg;
	struct slot *sl = &w->slots[k];
	size_t i = sl->listener;

	sl->checking = 0;
	if (refuse_over_limit(cfg, result, sl->fd, sl->peer_addr)) {
		wcount_conn(i, WC_CONN_REFUSED_LIMIT);
		close(sl->fd);
		w->nsessions--;
		return;
	}
	wcount_conn(i, WC_CONN_ACCEPTED);
	if (name_wanted(w, k))
		return;
	start_session(w, k);
}

/* The session of slot k starts, its client named sl->name ("" is
 * unknown). */
static void
start_session(struct worker *w, size_t k)
{
	const struct ferry_config *cfg = w->cfg;
	struct slot *sl = &w->slots[k];
	struct session_params sp;
	size_t i = sl->listener;

	sl->naming = 0;
	memset(&sp, 0, sizeof(sp));
	sp.peer_name = sl->name;
	sp.cfg = cfg;
	sp.queue_path = w->intake_path;
	if (w->nspare > 0)
		sp.intake = &w->spare[--w->nspare];
	sp.control = &control;
	sp.fd = sl->fd;
	sp.peer = (struct sockaddr *)&sl->peer;
	sp.listener = cfg->listeners[i].name;
	sp.lcfg = &cfg->listeners[i];
	sp.tls = w->tls[i];
	sp.users = w->users;
	sp.anvil = &w->anvil;
	sp.anvil_owner = (uint32_t)k;
	sl->s = smtp_session_start(&sp);
	run_session(w, k, now_ms());
}

/* Slot k holds a connection whose client is known: anvil is asked about
 * it, and the session starts when it answers. */
static void
ask_connect(struct worker *w, size_t k)
{
	struct slot *sl = &w->slots[k];

	sl->checking = 1;
	if (!anvil_ask_connects(&w->anvil, (uint32_t)k, sl->peer_addr))
		connect_checked(w, k, ANVIL_OK);
}

/* Slot k's connection is closed before any session (outcome counted by
 * the caller, or not at all for a health check). */
static void
proxy_close(struct worker *w, size_t k)
{
	struct slot *sl = &w->slots[k];

	session_timer_cancel(&w->timer, k);
	sl->proxying = 0;
	sl->checking = 0;   /* set at accept: the slot is free again */
	close(sl->fd);
	sl->fd = -1;
	w->nsessions--;
}

static void
proxy_fail(struct worker *w, size_t k, const char *why)
{
	struct slot *sl = &w->slots[k];

	log_warn("listen \"%s\": PROXY header from %s port %d: %s; "
	    "connection closed", w->cfg->listeners[sl->listener].name,
	    sl->via_addr, sl->via_port, why);
	wcount_conn(sl->listener, WC_CONN_PROXY_FAILED);
	proxy_close(w, k);
}

/* Reads what slot k's balancer sent so far without taking a byte that
 * is not the header's: peeked, then consumed as far as the parser says
 * the header goes.  A complete header hands the connection on to
 * anvil's check with the client's address in place of the balancer's. */
static void
proxy_read(struct worker *w, size_t k)
{
	struct slot *sl = &w->slots[k];
	const struct listener_config *l = &w->cfg->listeners[sl->listener];
	struct proxy_result res;
	enum proxy_status st;
	ssize_t n, got;
	size_t want;
	char why[160];

	n = recv(sl->fd, sl->proxy_buf + sl->proxy_len,
	    sizeof(sl->proxy_buf) - sl->proxy_len, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n < 0 && !(errno == ECONNRESET && sl->proxy_len == 0)) {
		snprintf(why, sizeof(why), "read: %s", strerror(errno));
		proxy_fail(w, k, why);
		return;
	}
	if (n <= 0) {
		if (sl->proxy_len == 0) {
			/* a balancer's TCP check: connected, said nothing
			 * (and may have reset rather than closed) */
			log_debug("listen \"%s\": %s port %d closed before "
			    "a PROXY header", l->name, sl->via_addr,
			    sl->via_port);
			proxy_close(w, k);
			return;
		}
		snprintf(why, sizeof(why), "truncated: closed after %zu "
		    "bytes", sl->proxy_len);
		proxy_fail(w, k, why);
		return;
	}
	st = proxy_header_parse(l->proxy == LPROXY_V1 ? 1 : 2, sl->proxy_buf,
	    sl->proxy_len + (size_t)n, &res);
	if (st == PROXY_ERROR) {
		proxy_fail(w, k, res.error);
		return;
	}
	/* every byte seen is the header's, or the header ends within them */
	want = st == PROXY_NEED_MORE ? (size_t)n : res.length - sl->proxy_len;
	got = recv(sl->fd, sl->proxy_buf + sl->proxy_len, want, 0);
	if (got != (ssize_t)want) {
		proxy_fail(w, k, got < 0 ? strerror(errno) :
		    "short read of bytes peeked");
		return;
	}
	sl->proxy_len += want;
	if (st == PROXY_NEED_MORE)
		return;
	if (res.local) {
		/* the balancer's own connection: a health check */
		log_debug("listen \"%s\": PROXY v2 LOCAL from %s port %d: "
		    "closed", l->name, sl->via_addr, sl->via_port);
		proxy_close(w, k);
		return;
	}
	if (res.has_addr) {
		memcpy(&sl->peer, &res.src, sizeof(sl->peer));
		sockaddr_ntop((struct sockaddr *)&sl->peer, sl->peer_addr,
		    sizeof(sl->peer_addr));
	}
	log_info("listen \"%s\": PROXY v%d from %s port %d: client %s "
	    "port %d%s", l->name, res.version, sl->via_addr, sl->via_port,
	    sl->peer_addr, sockaddr_port((struct sockaddr *)&sl->peer),
	    res.has_addr ? "" : " (no address in the header: the "
	    "balancer's own)");
	session_timer_cancel(&w->timer, k);
	sl->proxying = 0;
	ask_connect(w, k);
}

/* Slot k's connection came on a listener that takes a PROXY header:
 * from a trusted balancer it waits for the header (proxy_timeout), from
 * anyone else it is closed unread. */
static void
proxy_begin(struct worker *w, size_t k)
{
	struct slot *sl = &w->slots[k];
	const struct listener_config *l = &w->cfg->listeners[sl->listener];

	memcpy(sl->via_addr, sl->peer_addr, sizeof(sl->via_addr));
	sl->via_port = sockaddr_port((struct sockaddr *)&sl->peer);
	sl->proxying = 1;
	sl->proxy_len = 0;
	if (!cidr_match_any(l->proxy_networks, l->nproxy_networks,
	    (struct sockaddr *)&sl->peer)) {
		log_warn("listen \"%s\": connection from %s port %d, which "
		    "is not in proxy_networks: closed", l->name, sl->via_addr,
		    sl->via_port);
		wcount_conn(sl->listener, WC_CONN_PROXY_REFUSED);
		proxy_close(w, k);
		return;
	}
	sl->proxy_deadline = now_ms() + (int64_t)l->proxy_timeout * 1000;
	session_timer_set(&w->timer, k, sl->proxy_deadline);
	proxy_read(w, k);
}

/* Slot k's deadline came or its socket is ready: a session runs, a
 * connection waiting for its PROXY header reads or times out. */
static void
run_slot(struct worker *w, size_t k, int64_t now, short revents)
{
	struct slot *sl = &w->slots[k];
	char why[80];

	if (sl->proxying) {
		if (revents != 0)
			proxy_read(w, k);
		if (sl->proxying && now >= sl->proxy_deadline) {
			snprintf(why, sizeof(why), "timed out after %d s with "
			    "%zu bytes", w->cfg->listeners[sl->listener]
			    .proxy_timeout, sl->proxy_len);
			proxy_fail(w, k, why);
		}
		return;
	}
	if (sl->s != NULL)
		run_session(w, k, now);
}

/* The master's notes on FD_WORKER_NOTES (records, non-blocking): the
 * drain state, and whether the pool is packed.  A note that does not decode is the master lying, which
 * ends this worker; at EOF (the master is gone) the last state holds. */
static void
read_master_notes(struct worker *w)
{
	while (w->notes_open) {
		uint8_t rec[64], on;
		struct ipc_in in;
		ssize_t n = recv(FD_WORKER_NOTES, rec, sizeof(rec),
		    MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			w->notes_open = 0;
			return;
		}
		if ((size_t)n > sizeof(rec) ||
		    ipc_frame(rec, (size_t)n, &in) != (long)n ||
		    (in.type != IMSG_NOTE_DRAINING &&
		    in.type != IMSG_NOTE_POOL_PACKED) ||
		    ipc_get_u8(&in, &on) < 0 || ipc_end(&in) < 0 || on > 1)
			log_fatal("the master sent a malformed note");
		if (in.type == IMSG_NOTE_POOL_PACKED) {
			w->packed = on;
			continue;
		}
		if (on != w->draining)
			log_debug("worker %s", on ? "drains: new connections "
			    "get 421" : "takes new sessions again");
		w->draining = on;
	}
}

/* A connection that came while the relay drains: 421 4.3.2 in one write
 * and no session (no slot, no anvil question). */
static void
refuse_draining(const struct ferry_config *cfg, int fd)
{
	char line[512];
	size_t n = reply_formatf(line, sizeof(line), R_SHUTDOWN,
	    cfg->hostname);

	if (send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client is gone already */
	}
	close(fd);
}

/* Acts on the names that came: those sessions start. */
static void
take_names(struct worker *w)
{
	size_t k;

	for (k = 0; k < w->nslots && w->names > 0; k++) {
		struct slot *sl = &w->slots[k];

		if (!sl->named)
			continue;
		sl->named = 0;
		w->names--;
		if (sl->naming)
			start_session(w, k);
	}
}

/* Takes one connection from listener i, if one is waiting, into a free
 * slot, and reads its PROXY header (when the listener takes one) or asks
 * anvil about it; the session starts when anvil answers.
 * 1 when a connection was taken. */
static int
accept_one(struct worker *w, size_t i)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	struct slot *sl;
	int fd;
	size_t k;

	fd = accept4(FD_LISTEN + (int)i, (struct sockaddr *)&peer, &plen,
	    SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ECONNABORTED && errno != EINTR)
			log_warn("accept: %s", strerror(errno));
		return 0;       /* a sibling won the race */
	}
	if (w->draining) {
		refuse_draining(w->cfg, fd);
		return 1;
	}
	for (k = 0; k < w->nslots && (w->slots[k].s != NULL ||
	    w->slots[k].checking || w->slots[k].naming ||
	    w->slots[k].proxying); k++)
		continue;
	if (k == w->nslots)
		log_panic("accepted with every slot taken");
	sl = &w->slots[k];
	sl->checking = 1;
	sl->fd = fd;
	memcpy(&sl->peer, &peer, sizeof(peer));
	sl->listener = i;
	sockaddr_ntop((struct sockaddr *)&peer, sl->peer_addr,
	    sizeof(sl->peer_addr));
	w->nsessions++;
	w->started++;
	report_status(w, 1);
	if (w->cfg->listeners[i].proxy != LPROXY_NONE)
		proxy_begin(w, k);
	else
		ask_connect(w, k);
	return 1;
}

/* Acts on anvil's answers: a connection checked starts its session (or
 * is refused), a session parked on a check goes on. */
static void
take_answers(struct worker *w)
{
	size_t k;

	for (k = 0; k < w->nslots && w->answers > 0; k++) {
		struct slot *sl = &w->slots[k];

		if (!sl->answered)
			continue;
		sl->answered = 0;
		w->answers--;
		if (sl->checking)
			connect_checked(w, k, sl->answer);
		else if (sl->s != NULL) {
			smtp_session_anvil_answer(sl->s, sl->answer);
			run_session(w, k, now_ms());
		}
	}
}

/* Stress mode as anvil last said it: every idle limit is cut to its
 * timeout, for the sessions held now too. */
static void
take_stress(struct worker *w)
{
	int64_t ms;

	if (!w->anvil.stress_changed)
		return;
	w->anvil.stress_changed = 0;
	ms = w->anvil.stress ? (int64_t)w->anvil.stress_timeout * 1000 : 0;
	if (ms == control.stress_ms)
		return;
	/* ferry-anvil logs the relay's stress once; each worker only
	 * notes that it applies it */
	if (ms > 0)
		log_debug("worker applies stress: idle limit %u s for every "
		    "session", w->anvil.stress_timeout);
	else
		log_debug("worker leaves stress");
	control.stress_ms = ms;
	arm_all(w);
}

/* A spare connection to the runner was readable: its notes are read
 * (a runner gone is replaced by a new connection that waits for the
 * next runner's first note).  One that cannot be kept is dropped. */
static void
watch_spare(struct worker *w, size_t i, int64_t now)
{
	int64_t until;

	(void)intake_queue_check(&w->spare[i], now, &until);
	if (intake_fd(&w->spare[i]) >= 0 && intake_reusable(&w->spare[i]))
		return;
	intake_client_close(&w->spare[i]);
	w->spare[i] = w->spare[--w->nspare];
}

/* The event loop: until told to stop (or recycled) and every session
 * held is over.  Spare connections to the runner are watched too, so
 * that the worker's picture of the queue stays fresh while it is idle:
 * a state the runner pushes is read, and a runner that dies is noticed
 * at once (the next session then knows without waiting). */
static void
serve(struct worker *w)
{
	const struct ferry_config *cfg = w->cfg;
	size_t nl = cfg->nlisteners, cap = nl + 3 + 3 * w->nslots, i;
	struct pollfd *pfds = xcalloc(cap, sizeof(*pfds));
	size_t *slot_of = xcalloc(cap, sizeof(*slot_of));
	char *is_queue = xcalloc(cap, 1);   /* a session's runner socket */

	log_hold();     /* a turn's lines in one write, before poll */
	for (;;) {
		int64_t now = now_ms(), first, timeout = 1000;
		int accepting, listening, rc, any_ready = 0, more = 0;
		size_t n = 0, k, anvil_at = (size_t)-1, spares_at, nspare;
		size_t sessions_at, notes_at = (size_t)-1;
		size_t resolve_at = (size_t)-1;

		accepting = !stop_after_session &&
		    w->started < cfg->worker_sessions;
		if (!accepting && w->nsessions == 0)
			break;
		if (control.drain && control.drain_deadline == 0) {
			control.drain_deadline = now +
			    (int64_t)cfg->shutdown_timeout * 1000;
			arm_all(w);
		}
		if (w->nsessions > 0)
			anvil_client_keep_connected(&w->anvil);
		take_stress(w);
		report_status(w, accepting);
		report_counters(w->self, 0);
		if (w->ended > 0 && now >= w->next_trim) {
			/* what ended sessions left free goes back */
			child_trim_heap();
			w->ended = 0;
			w->next_trim = now + HEAP_TRIM_MS;
		}
		if (w->nsessions > 0) {
			rest_heap_busy(&w->rest, now);
		} else if (rest_heap_due(&w->rest, now) ||
		    w->rest.given_back) {
			/* at rest: let anvil and resolve go idle too */
			anvil_client_release(&w->anvil);
			resolve_client_release(&w->resolve);
			if (!w->rest.given_back)
				rest_heap_give_back(&w->rest);
		}

		listening = accepting && w->nsessions < w->nslots &&
		    (w->defer_until == 0 || now >= w->defer_until);
		if (listening)
			for (i = 0; i < nl; i++) {
				pfds[n].fd = FD_LISTEN + (int)i;
				pfds[n].events = POLLIN;
				pfds[n].revents = 0;
				n++;
			}
		if (anvil_client_fd(&w->anvil) >= 0) {
			anvil_at = n;
			pfds[n].fd = anvil_client_fd(&w->anvil);
			pfds[n].events = anvil_client_events(&w->anvil);
			pfds[n].revents = 0;
			n++;
		}
		if (resolve_client_fd(&w->resolve) >= 0) {
			resolve_at = n;
			pfds[n].fd = resolve_client_fd(&w->resolve);
			pfds[n].events = resolve_client_events(&w->resolve);
			pfds[n].revents = 0;
			n++;
		}
		sessions_at = n;
		for (k = 0; k < w->nslots; k++) {
			if (w->slots[k].proxying) {
				is_queue[n] = 0;
				slot_of[n] = k;
				pfds[n].fd = w->slots[k].fd;
				pfds[n].events = POLLIN;
				pfds[n].revents = 0;
				n++;
				continue;
			}
			if (w->slots[k].s == NULL)
				continue;
			if (smtp_session_more(w->slots[k].s))
				more = 1;
			is_queue[n] = 0;
			slot_of[n] = k;
			pfds[n].events = smtp_session_events(w->slots[k].s);
			/* nothing wanted: not even a hang-up may wake us */
			pfds[n].fd = pfds[n].events ?
			    smtp_session_fd(w->slots[k].s) : -1;
			pfds[n].revents = 0;
			n++;
			if (smtp_session_queue_fd(w->slots[k].s) < 0)
				continue;
			is_queue[n] = 1;
			slot_of[n] = k;
			pfds[n].fd = smtp_session_queue_fd(w->slots[k].s);
			pfds[n].events =
			    smtp_session_queue_events(w->slots[k].s);
			pfds[n].revents = 0;
			n++;
		}
		spares_at = n;
		nspare = w->nspare;
		for (k = 0; k < nspare; k++) {
			pfds[n].fd = intake_fd(&w->spare[k]);
			pfds[n].events = POLLIN;
			pfds[n].revents = 0;
			n++;
		}
		/* The master's notes, after the listeners: poll looks at its
		 * entries in order, so a connection it reports came after
		 * any note it does not (a drain said before the connection
		 * came is seen before it is accepted). */
		if (w->notes_open) {
			notes_at = n;
			pfds[n].fd = FD_WORKER_NOTES;
			pfds[n].events = POLLIN;
			pfds[n].revents = 0;
			n++;
		}
		if (session_timer_first(&w->timer, &k, &first))
			timeout = first - now;
		if (accepting && w->defer_until > now &&
		    w->defer_until - now < timeout)
			timeout = w->defer_until - now;
		first = anvil_client_deadline(&w->anvil);
		if (first != 0 && first - now < timeout)
			timeout = first - now;
		first = resolve_client_deadline(&w->resolve);
		if (first != 0 && first - now < timeout)
			timeout = first - now;
		if (w->idle_report_at != 0 && w->idle_report_at - now < timeout)
			timeout = w->idle_report_at - now;
		if (timeout > 1000)
			timeout = 1000;   /* signals between test and poll */
		if (timeout < 0 || more || w->answers > 0 || w->names > 0)
			timeout = 0;
		log_flush();
		rc = poll(pfds, n, (int)timeout);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		now = now_ms();
		/* the runner's sockets poll found empty need no read this
		 * turn (intake_client.h), spares first: a session starting
		 * below takes one */
		intake_turn_begin();
		for (k = 0; k < nspare; k++)
			if (pfds[spares_at + k].revents == 0)
				intake_quiet(&w->spare[k]);
		for (i = sessions_at; i < spares_at; i++)
			if (is_queue[i] && pfds[i].revents == 0)
				smtp_session_queue_polled(
				    w->slots[slot_of[i]].s, pfds[i].events, 0);
		if (notes_at != (size_t)-1 && pfds[notes_at].revents != 0)
			read_master_notes(w);
		if (anvil_at != (size_t)-1 && pfds[anvil_at].revents)
			anvil_client_io(&w->anvil, pfds[anvil_at].revents);
		anvil_client_tick(&w->anvil, now);
		take_answers(w);
		if (resolve_at != (size_t)-1 && pfds[resolve_at].revents)
			resolve_client_io(&w->resolve,
			    pfds[resolve_at].revents);
		resolve_client_tick(&w->resolve, now);
		take_names(w);
		take_stress(w);
		/* backwards: a spare dropped takes the last one's place */
		for (k = nspare; k-- > 0;)
			if (pfds[spares_at + k].revents != 0 && k < w->nspare)
				watch_spare(w, k, now);
		for (i = (listening ? nl : 0) + (anvil_at != (size_t)-1) +
		    (resolve_at != (size_t)-1); i < spares_at; i++) {
			k = slot_of[i];
			if (w->slots[k].proxying) {
				if (pfds[i].revents != 0)
					run_slot(w, k, now, pfds[i].revents);
				continue;
			}
			if (w->slots[k].s == NULL)
				continue;
			if (pfds[i].revents != 0 && is_queue[i])
				smtp_session_queue_polled(w->slots[k].s,
				    pfds[i].events, pfds[i].revents);
			else if (pfds[i].revents != 0 &&
			    pfds[i].fd == smtp_session_fd(w->slots[k].s))
				smtp_session_readable(w->slots[k].s);
			if (pfds[i].revents != 0 ||
			    smtp_session_more(w->slots[k].s) ||
			    now >= smtp_session_deadline(w->slots[k].s))
				run_session(w, k, now);
		}
		/* deadlines of sessions not polled above */
		while (session_timer_first(&w->timer, &k, &first) &&
		    first <= now)
			run_slot(w, k, now, 0);
		if (!listening)
			continue;
		for (i = 0; i < nl; i++)
			if (pfds[i].revents & POLLIN)
				any_ready = 1;
		if (!any_ready) {
			w->defer_until = 0;
			continue;
		}
		if (w->nsessions > 0 && w->defer_until == 0 && !w->packed) {
			/* an idle sibling should take it */
			w->defer_until = now + (now < w->short_defer_until ?
			    ACCEPT_DEFER_SHORT_MS : ACCEPT_DEFER_MS);
			continue;
		}
		if (w->defer_until != 0)
			w->short_defer_until = now + ACCEPT_SHORT_FOR_MS;
		w->defer_until = 0;
		for (i = 0; i < nl && w->nsessions < w->nslots &&
		    !stop_after_session && w->started < cfg->worker_sessions;
		    i++)
			if (pfds[i].revents & POLLIN)
				(void)accept_one(w, i);
		report_status(w, !stop_after_session &&
		    w->started < cfg->worker_sessions);
	}
	report_counters(w->self, 1);
	free(pfds);
	free(slot_of);
	free(is_queue);
}

int
smtpd(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct worker w;
	char chroot_dir[4096], anvil_path[4200], resolve_path[4200];
	struct privsep_target target;
	int dropped;
	size_t i, n;
	pid_t master = getppid();

	child_signals(on_term, on_usr1);
	cfg = child_load_config(a, "ferry-smtpd");
	n = cfg->nlisteners;
	memset(&w, 0, sizeof(w));
	rest_heap_init(&w.rest, now_ms());
	w.cfg = cfg;
	w.args = a;
	w.self = getpid();
	w.notes_open = 1;

	/* Keys and the users file may be root's only: read them now.  The
	 * master checked both, so a failure here is the environment's. */
	w.tls = xcalloc(n, sizeof(*w.tls));
	for (i = 0; i < n; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		char err[2048];

		if (l->tls != LTLS_NONE) {
			w.tls[i] = tls_server_new(cfg, l, err, sizeof(err));
			if (w.tls[i] == NULL)
				log_fatal("listen \"%s\": %s", l->name, err);
		}
		if (l->auth && w.users == NULL) {
			w.users = auth_users_load(cfg->auth_users_file, err,
			    sizeof(err));
			if (w.users == NULL)
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
	if (dropped) {
		snprintf(w.intake_path, sizeof(w.intake_path), "/%s",
		    INTAKE_SOCKET_NAME);
		snprintf(anvil_path, sizeof(anvil_path), "/%s",
		    ANVIL_SOCKET_NAME);
		snprintf(resolve_path, sizeof(resolve_path), "/%s",
		    RESOLVE_SOCKET_NAME);
	} else {
		snprintf(w.intake_path, sizeof(w.intake_path), "%s/%s",
		    chroot_dir, INTAKE_SOCKET_NAME);
		snprintf(anvil_path, sizeof(anvil_path), "%s/%s",
		    chroot_dir, ANVIL_SOCKET_NAME);
		snprintf(resolve_path, sizeof(resolve_path), "%s/%s",
		    chroot_dir, RESOLVE_SOCKET_NAME);
	}
	anvil_client_init(&w.anvil, anvil_path, on_anvil_answer, &w);
	resolve_client_init(&w.resolve, cfg->client_names ? resolve_path :
	    NULL, cfg->client_name_timeout, on_name, &w);

	w.nslots = (size_t)cfg->sessions_per_worker;
	w.slots = xcalloc(w.nslots, sizeof(*w.slots));
	w.spare = xcalloc(w.nslots, sizeof(*w.spare));
	session_timer_init(&w.timer, w.nslots);
	for (i = 0; i < n; i++) {
		int one = 1;

		fd_set_nonblock(FD_LISTEN + (int)i, 1);
		/* a connection accepted takes the listener's TCP options
		 * (check_netaddr: test_nodelay_inherited): replies go out
		 * at once without a call per connection */
		setsockopt(FD_LISTEN + (int)i, IPPROTO_TCP, TCP_NODELAY,
		    &one, sizeof(one));
	}
	log_debug("worker ready (generation %u, %zu listeners, %zu sessions "
	    "at once)", a->generation, n, w.nslots);
	report_status(&w, 1);

	serve(&w);

	log_debug("worker exiting after %d sessions", w.started);
	anvil_client_close(&w.anvil);
	resolve_client_close(&w.resolve);
	for (i = 0; i < n; i++)
		tls_server_free(w.tls[i]);
	free(w.tls);
	auth_users_free(w.users);
	session_timer_free(&w.timer);
	while (w.nspare > 0)
		intake_client_close(&w.spare[--w.nspare]);
	free(w.spare);
	free(w.slots);
	config_free(cfg);
	return 0;
}
