/*
 * resolve.c - the ferry-resolve process: the names of SMTP clients,
 * looked up for all workers (Postfix's smtpd does this itself; ferry's
 * workers are chrooted without a resolver, and a lookup must not hold up
 * a worker's other sessions).
 *
 * A worker asks with the client's address (IMSG_RESOLVE_QUERY); the
 * answer (IMSG_RESOLVE_ANSWER) is the client's name, or "" for unknown,
 * and how long the worker may give it again itself (a definite answer:
 * up to RESOLVE_KEEP_MS; a timeout or failure: not at all).
 * The name is the first PTR record of the address that is a plain host
 * name (hostname.h), and only when its A records (AAAA for an IPv6
 * client) contain the address again: forward-confirmed, so that nobody
 * names their address after somebody else's domain.  Every lookup,
 * both queries together, gets workers.client_name_timeout; then it is
 * answered unknown, and the queries still out are left to c-ares, which
 * gives each up after that time too.  Lookups of every worker run at
 * once through one c-ares channel, driven by this process's poll loop;
 * answers go back in whatever order the lookups end, each with the
 * worker's sequence number.  The DNS server asked is delivery.resolver,
 * or the system's.  What a lookup found, a name or that there is none,
 * is kept for CACHE_MS (a timeout or a server failure is not), so that a
 * client that connects again and again costs no lookup each time.
 *
 * Privileges: started by the master as root, it sets up c-ares (which
 * reads /etc/resolv.conf and its random key now), then drops to the SMTP
 * user in the workers' empty chroot with no new privileges, no forking
 * and no writing files, like ferry-anvil.  c-ares needs nothing from the
 * file system after its set-up: ares_query asks the servers only (no
 * hosts file, no search list).  A changed /etc/resolv.conf is read when
 * the master restarts this process, which it does on every reload.  It
 * is not started at all when workers.client_names is off.
 *
 * On demand, like ferry-anvil: the master starts it when a worker first
 * connects to its socket (held by the master, so the connection waits in
 * the backlog), and it exits with status 0 once no worker has been
 * connected and no lookup has been out for workers.helper_idle seconds.
 * Its cache goes with it: a client seen again after that long costs one
 * lookup.
 *
 * Security stance: two kinds of peer.  The workers face the internet and
 * may be compromised: only the SMTP user may connect (the socket's mode
 * and SO_PEERCRED), each connection admits only well-formed queries, and
 * anything else drops that connection.  The DNS answers come from the
 * network, in the end from whoever controls the client's reverse zone:
 * they are parsed by c-ares's bounds-checked parsers, and a name is used
 * only when hostname_valid() passes it.  Memory is bounded: a fixed
 * number of connections and lookups in flight (beyond them the answer
 * is unknown at once), a fixed cache, small frames.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ares.h>

#include "channel.h"
#include "child.h"
#include "config.h"
#include "dns_mx.h"
#include "hostname.h"
#include "ipc.h"
#include "log.h"
#include "privsep.h"
#include "procfd.h"
#include "resolve.h"
#include "util.h"

#define MAX_CONNS 4096
#define MAX_LOOKUPS 4096        /* in flight, abandoned ones included */
#define QUERY_CAP 256           /* larger than any valid query */
#define WBUF_MAX 65536          /* unread answers before we give up */
#define ADDR_MAX 64

#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_PTR 12
#define DNS_TYPE_AAAA 28
#define MAX_ADDRS 32            /* forward records looked at */
#define CACHE_MS 60000          /* a lookup's outcome is kept this long */
#define CACHE_SIZE 4096         /* addresses kept at most */

static volatile sig_atomic_t resolve_stop;

static void
on_term(int sig)
{
	(void)sig;
	resolve_stop = 1;
}

/* What a worker may ask. */
static const struct channel_rule worker_may_send[] = {
	{ IMSG_RESOLVE_QUERY, 0 },
	{ 0, 0 }
};

struct resolve_conn {
	struct channel ch;
	pid_t pid;                  /* the worker, for logs */
	int broken;                 /* an answer could not be written */
};

struct lookup {
	struct resolve_conn *conn;  /* NULL once its worker is gone */
	uint32_t seq;
	int family;
	unsigned char addr[16];
	char addr_text[ADDR_MAX];
	char name[HOSTNAME_MAX + 1];
	int64_t deadline;
	int answered;               /* the worker has its answer */
	int pending;                /* a c-ares query is out for it */
};

/* The outcome of a lookup that ended with an answer. */
struct cached {
	int family;                 /* 0: a free entry */
	unsigned char addr[16];
	char name[HOSTNAME_MAX + 1];   /* "" = no name */
	int64_t expires;
};

static struct {
	ares_channel dns;
	struct cached *cache;       /* CACHE_SIZE entries, ncached in use */
	size_t ncached;
	struct resolve_conn **conns;
	size_t nconns;
	struct lookup **lookups;
	size_t nlookups;
	uid_t peer_uid;
	int64_t timeout_ms;
	uint64_t full_logged;       /* lookups refused for lack of room */
	int64_t idle_ms;            /* workers.helper_idle; 0: stay */
	int64_t alone_since;        /* no worker and no lookup since */
} rs;

/* ------------------------------------------------------------------ cache */

static size_t
addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* The entry of an address that has not expired, or NULL. */
static struct cached *
cache_find(int family, const unsigned char *addr, int64_t now)
{
	size_t i;

	for (i = 0; i < rs.ncached; i++) {
		struct cached *e = &rs.cache[i];

		if (e->family == family && now < e->expires &&
		    memcmp(e->addr, addr, addr_len(family)) == 0)
			return e;
	}
	return NULL;
}

/* Keeps an outcome, in place of the entry of the same address, in a
 * new entry while there is room, or in place of the one that expires
 * first.  Entries are taken in order and only those in use are looked
 * at: a cache page that no client needed is never touched (1.1 MiB of
 * the process at rest, when every lookup scanned the whole table). */
static void
cache_put(int family, const unsigned char *addr, const char *name,
    int64_t now)
{
	struct cached *e = NULL;
	size_t i;

	for (i = 0; i < rs.ncached; i++) {
		struct cached *c = &rs.cache[i];

		if (c->family == family &&
		    memcmp(c->addr, addr, addr_len(family)) == 0) {
			e = c;
			break;
		}
		if (e == NULL || c->expires < e->expires)
			e = c;
	}
	if (i == rs.ncached && rs.ncached < CACHE_SIZE)
		e = &rs.cache[rs.ncached++];
	e->family = family;
	memcpy(e->addr, addr, addr_len(family));
	ferry_strlcpy(e->name, name, sizeof(e->name));
	e->expires = now + CACHE_MS;
}

/* ---------------------------------------------------------------- lookups */

/* Answers a worker's query (when it is still there); keep_ms: how long
 * the worker may give the same answer itself (0 for an answer that says
 * nothing, such as a timeout). */
static void
tell(struct resolve_conn *c, uint32_t seq, const char *name, int64_t keep_ms)
{
	struct ipc_out *m;

	if (c == NULL || c->broken)
		return;
	if (keep_ms > RESOLVE_KEEP_MS)
		keep_ms = RESOLVE_KEEP_MS;
	m = channel_begin(&c->ch, IMSG_RESOLVE_ANSWER);
	ipc_add_u32(m, seq);
	ipc_add_str(m, name);
	ipc_add_u32(m, keep_ms > 0 ? (uint32_t)keep_ms : 0);
	if (channel_end(&c->ch) < 0 || channel_flush(&c->ch) < 0) {
		log_warn("resolve: worker pid %ld does not read its answers; "
		    "dropping its connection", (long)c->pid);
		c->broken = 1;
	}
}

/* Tells the worker and marks the lookup done; keep: the DNS answered,
 * so the outcome is kept for the next connection from there. */
static void
finish(struct lookup *lk, const char *name, int keep)
{
	if (lk->answered)
		return;
	lk->answered = 1;
	log_debug("resolve: %s is %s", lk->addr_text,
	    name[0] ? name : "unknown");
	if (keep)
		cache_put(lk->family, lk->addr, name, now_ms());
	tell(lk->conn, lk->seq, name, keep ? RESOLVE_KEEP_MS : 0);
}

/* An answer that says what there is (a name, or none): worth keeping.
 * A timeout or a server failure says nothing. */
static int
definite(int status)
{
	return status == ARES_SUCCESS || status == ARES_ENOTFOUND ||
	    status == ARES_ENODATA;
}

/* Frees a lookup that is answered and has no query out. */
static void
settle(struct lookup *lk)
{
	size_t i;

	if (!lk->answered || lk->pending)
		return;
	for (i = 0; i < rs.nlookups; i++)
		if (rs.lookups[i] == lk) {
			rs.lookups[i] = rs.lookups[--rs.nlookups];
			break;
		}
	free(lk);
}

/* The A or AAAA answer: does it contain the client's address? */
static int
forward_confirms(const struct lookup *lk, const unsigned char *abuf,
    int alen)
{
	int n = MAX_ADDRS, k;

	if (lk->family == AF_INET) {
		struct ares_addrttl a4[MAX_ADDRS];

		if (ares_parse_a_reply(abuf, alen, NULL, a4, &n) !=
		    ARES_SUCCESS)
			return 0;
		for (k = 0; k < n && k < MAX_ADDRS; k++)
			if (memcmp(&a4[k].ipaddr, lk->addr, 4) == 0)
				return 1;
	} else {
		struct ares_addr6ttl a6[MAX_ADDRS];

		if (ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n) !=
		    ARES_SUCCESS)
			return 0;
		for (k = 0; k < n && k < MAX_ADDRS; k++)
			if (memcmp(&a6[k].ip6addr, lk->addr, 16) == 0)
				return 1;
	}
	return 0;
}

static void
on_forward(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct lookup *lk = arg;

	(void)timeouts;
	lk->pending = 0;
	if (!lk->answered) {
		if (status == ARES_SUCCESS && abuf != NULL &&
		    forward_confirms(lk, abuf, alen))
			finish(lk, lk->name, 1);
		else {
			log_debug("resolve: %s: %s does not lead back to it "
			    "(%s)", lk->addr_text, lk->name,
			    status == ARES_SUCCESS ? "other addresses" :
			    ares_strerror(status));
			finish(lk, "", definite(status));
		}
	}
	settle(lk);
}

/* The first name of a PTR answer that is a plain host name, into
 * lk->name without the trailing dot; 0 when there is none. */
static int
pick_name(struct lookup *lk, const unsigned char *abuf, int alen)
{
	struct hostent *he = NULL;
	const char *cand;
	size_t k, len;
	int found = 0;

	if (ares_parse_ptr_reply(abuf, alen, lk->addr,
	    lk->family == AF_INET ? 4 : 16, lk->family, &he) !=
	    ARES_SUCCESS || he == NULL)
		return 0;
	for (k = 0; !found; k++) {
		cand = k == 0 ? he->h_name : he->h_aliases != NULL ?
		    he->h_aliases[k - 1] : NULL;
		if (cand == NULL)
			break;
		len = strlen(cand);
		if (!hostname_valid(cand, len))
			continue;
		if (cand[len - 1] == '.')
			len--;
		memcpy(lk->name, cand, len);
		lk->name[len] = '\0';
		found = 1;
	}
	ares_free_hostent(he);
	return found;
}

static void
on_ptr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *lk = arg;

	(void)timeouts;
	lk->pending = 0;
	if (lk->answered) {
		settle(lk);
		return;
	}
	if (status == ARES_SUCCESS && abuf != NULL &&
	    pick_name(lk, abuf, alen)) {
		/* the callback may run inside ares_query and free lk: it is
		 * not touched after this */
		lk->pending = 1;
		ares_query(rs.dns, lk->name, DNS_CLASS_IN,
		    lk->family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA,
		    on_forward, lk);
		return;
	}
	log_debug("resolve: %s: no usable PTR record (%s)", lk->addr_text,
	    status == ARES_SUCCESS ? "no plain host name" :
	    ares_strerror(status));
	finish(lk, "", definite(status));
	settle(lk);
}

/* A worker's query: answered from the cache, or the lookup starts, or
 * it is answered unknown at once when there is no room for it. */
static void
start_lookup(struct resolve_conn *c, uint32_t seq, const char *addr)
{
	struct lookup *lk = xcalloc(1, sizeof(*lk));
	struct cached *hit;
	char qname[128];

	lk->conn = c;
	lk->seq = seq;
	ferry_strlcpy(lk->addr_text, addr, sizeof(lk->addr_text));
	lk->deadline = now_ms() + rs.timeout_ms;
	if (inet_pton(AF_INET, addr, lk->addr) == 1)
		lk->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, lk->addr) == 1)
		lk->family = AF_INET6;
	if (lk->family != 0 && (hit = cache_find(lk->family, lk->addr,
	    now_ms())) != NULL) {
		tell(c, seq, hit->name, hit->expires - now_ms());
		free(lk);
		return;
	}
	if (lk->family == 0 || hostname_ptr_query(lk->family, lk->addr,
	    qname, sizeof(qname)) < 0 || rs.nlookups >= MAX_LOOKUPS) {
		if (lk->family != 0 && rs.full_logged++ % 1000 == 0)
			log_warn("resolve: %d lookups in flight; clients are "
			    "unknown until some end", MAX_LOOKUPS);
		finish(lk, "", 0);
		free(lk);
		return;
	}
	rs.lookups[rs.nlookups++] = lk;
	lk->pending = 1;
	ares_query(rs.dns, qname, DNS_CLASS_IN, DNS_TYPE_PTR, on_ptr, lk);
}

/* Lookups past their time are answered unknown. */
static int64_t
expire_lookups(int64_t now)
{
	int64_t next = 0;
	size_t i;

	for (i = rs.nlookups; i-- > 0;) {
		struct lookup *lk = rs.lookups[i];

		if (lk->answered)
			continue;
		if (now >= lk->deadline) {
			log_debug("resolve: %s: no answer within %lld ms",
			    lk->addr_text, (long long)rs.timeout_ms);
			finish(lk, "", 0);
			settle(lk);
		} else if (next == 0 || lk->deadline < next)
			next = lk->deadline;
	}
	return next;
}

/* ------------------------------------------------------------ connections */

static void
accept_workers(void)
{
	for (;;) {
		struct resolve_conn *c;
		char peer[64];
		pid_t pid = 0;
		int fd = accept_from_uid(FD_RESOLVE, rs.peer_uid, &pid,
		    "resolve", "only the SMTP user may ask");

		if (fd == -2)
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("resolve: accept: %s",
				    strerror(errno));
			return;
		}
		if (rs.nconns >= MAX_CONNS) {
			log_warn("resolve: too many worker connections");
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		snprintf(peer, sizeof(peer), "SMTP worker pid %ld", (long)pid);
		channel_init(&c->ch, fd, peer, worker_may_send, QUERY_CAP, 0);
		c->ch.wmax = WBUF_MAX;
		c->pid = pid;
		rs.conns[rs.nconns++] = c;
	}
}

/* The worker is gone (or lied): its lookups go on, unheard. */
static void
close_conn(size_t i)
{
	struct resolve_conn *c = rs.conns[i];
	size_t k;

	for (k = 0; k < rs.nlookups; k++)
		if (rs.lookups[k]->conn == c)
			rs.lookups[k]->conn = NULL;
	channel_free(&c->ch);
	free(c);
	rs.conns[i] = rs.conns[--rs.nconns];
}

/* One query.  -1: malformed, drop the worker. */
static int
handle_frame(struct resolve_conn *c, struct ipc_in *in)
{
	char *addr = NULL;
	uint32_t seq;

	if (ipc_get_u32(in, &seq) < 0 ||
	    ipc_get_str(in, &addr, ADDR_MAX - 1) < 0 || ipc_end(in) < 0) {
		free(addr);
		return channel_violation(&c->ch, "malformed RESOLVE_QUERY");
	}
	start_lookup(c, seq, addr);
	free(addr);
	return 0;
}

/* Reads what the worker sent.  -1: drop it. */
static int
read_conn(struct resolve_conn *c)
{
	for (;;) {
		struct ipc_in in;
		int got, n = channel_fill(&c->ch);

		if (n < 0)
			return -1;
		while ((got = channel_next(&c->ch, &in)) > 0)
			if (handle_frame(c, &in) < 0 || c->broken)
				return -1;
		if (got < 0)
			return -1;
		if (n == 0)
			return 0;
	}
}

/* ------------------------------------------------------------------- loop */

/* 1 when ferry-resolve may leave now: no worker connected and no lookup
 * out for helper_idle, and no worker waiting in the socket's backlog. */
static int
idle_enough(int64_t now)
{
	struct pollfd p;
	int busy = rs.nconns > 0 || rs.nlookups > 0;

	if (busy || rs.alone_since == 0)
		rs.alone_since = busy ? 0 : now;
	if (rs.idle_ms <= 0 || busy || now - rs.alone_since < rs.idle_ms)
		return 0;
	p.fd = FD_RESOLVE;
	p.events = POLLIN;
	p.revents = 0;
	return poll(&p, 1, 0) == 0;
}

static void
run_loop(void)
{
	size_t cap = MAX_CONNS + 1 + ARES_GETSOCK_MAXNUM;
	struct pollfd *pfds = xcalloc(cap, sizeof(*pfds));

	while (!resolve_stop) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct timeval max, tv, *tvp;
		size_t i, n = 0, dns_at;
		unsigned bits;
		int64_t now = now_ms(), next, wait = 1000;
		int rc, k;

		pfds[n].fd = FD_RESOLVE;
		pfds[n++].events = POLLIN;
		for (i = 0; i < rs.nconns; i++) {
			struct resolve_conn *c = rs.conns[i];

			pfds[n].fd = c->ch.fd;
			pfds[n++].events = POLLIN |
			    (channel_pending(&c->ch) > 0 ? POLLOUT : 0);
		}
		dns_at = n;
		/* bit k: socks[k] readable, bit 16 + k: writable */
		bits = (unsigned)ares_getsock(rs.dns, socks,
		    ARES_GETSOCK_MAXNUM);
		for (k = 0; k < ARES_GETSOCK_MAXNUM; k++) {
			short ev = 0;

			if (bits & (1u << k))
				ev |= POLLIN;
			if (bits & (1u << (k + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfds[n].fd = socks[k];
			pfds[n++].events = ev;
		}
		for (i = 0; i < n; i++)
			pfds[i].revents = 0;
		next = expire_lookups(now);
		if (next != 0 && next - now < wait)
			wait = next - now;
		max.tv_sec = (time_t)(wait / 1000);
		max.tv_usec = (suseconds_t)(wait % 1000 * 1000);
		tvp = ares_timeout(rs.dns, &max, &tv);
		wait = (int64_t)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
		rc = poll(pfds, n, (int)wait);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("resolve: poll: %s", strerror(errno));
		}
		/* the DNS first: answers go to connections that are open */
		for (i = dns_at; i < n; i++) {
			short re = pfds[i].revents;

			if (re == 0)
				continue;
			ares_process_fd(rs.dns,
			    re & (POLLIN | POLLERR | POLLHUP) ? pfds[i].fd :
			    ARES_SOCKET_BAD,
			    re & POLLOUT ? pfds[i].fd : ARES_SOCKET_BAD);
		}
		/* c-ares's own timeouts */
		ares_process_fd(rs.dns, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
		/* backwards: closing swaps the last connection in; the ones
		 * accepted below were not polled */
		for (i = dns_at - 1; i-- > 0;) {
			struct resolve_conn *c = rs.conns[i];
			short ev = pfds[i + 1].revents;
			int res = c->broken ? -1 : 0;

			if (res == 0 && (ev & POLLOUT))
				res = channel_flush(&c->ch);
			if (res == 0 && (ev & (POLLIN | POLLHUP | POLLERR)))
				res = read_conn(c);
			if (res < 0 || c->broken)
				close_conn(i);
		}
		for (i = rs.nconns; i-- > 0;)
			if (rs.conns[i]->broken)
				close_conn(i);
		if (pfds[0].revents & POLLIN)
			accept_workers();
		(void)expire_lookups(now_ms());
		if (idle_enough(now_ms())) {
			log_debug("resolve: no worker for %lld s; leaving "
			    "until one asks again",
			    (long long)(rs.idle_ms / 1000));
			break;
		}
	}
	free(pfds);
}

int
resolve(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct privsep_target target;
	char chroot_dir[4200], err[512];
	gid_t gid;
	int64_t timeout_ms;
	pid_t master = getppid();

	child_signals(on_term, NULL);
	cfg = child_load_config(a, "ferry-resolve");
	memset(&rs, 0, sizeof(rs));
	if (geteuid() == 0) {
		if (privsep_lookup(cfg->smtpd_user, &rs.peer_uid, &gid) < 0)
			log_fatal("smtpd_user %s does not exist",
			    cfg->smtpd_user);
	} else {
		rs.peer_uid = geteuid();   /* a developer's run */
	}
	timeout_ms = (int64_t)cfg->client_name_timeout * 1000;
	rs.timeout_ms = timeout_ms;
	rs.idle_ms = (int64_t)cfg->helper_idle * 1000;
	/* one try per server, as long as the whole lookup may take: a
	 * query given up on costs nothing after that */
	if (dns_channel_open(&rs.dns, cfg->resolver, (int)timeout_ms, 1, err,
	    sizeof(err)) < 0)
		log_fatal("resolve: %s", err);
	snprintf(chroot_dir, sizeof(chroot_dir), "%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR);
	memset(&target, 0, sizeof(target));
	target.user = cfg->smtpd_user;
	target.chroot_dir = chroot_dir;
	target.no_fork = 1;
	target.no_files = 1;
	privsep_drop(&target);
	child_follow_master(master);
	log_info("resolve started: client names within %d s, from %s",
	    cfg->client_name_timeout, cfg->resolver[0] ? cfg->resolver :
	    "the system's resolver");
	config_free(cfg);

	fd_set_nonblock(FD_RESOLVE, 1);
	rs.conns = xcalloc(MAX_CONNS, sizeof(*rs.conns));
	rs.lookups = xcalloc(MAX_LOOKUPS, sizeof(*rs.lookups));
	rs.cache = xcalloc(CACHE_SIZE, sizeof(*rs.cache));
	run_loop();

	while (rs.nconns > 0)
		close_conn(rs.nconns - 1);
	/* the callbacks of what is still out run now, unheard */
	ares_destroy(rs.dns);
	while (rs.nlookups > 0) {
		free(rs.lookups[rs.nlookups - 1]);
		rs.nlookups--;
	}
	free(rs.lookups);
	free(rs.cache);
	free(rs.conns);
	log_debug("resolve stopping");
	return 0;
}
