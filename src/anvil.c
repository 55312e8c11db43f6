/*
 * anvil.c - the ferry-anvil process: one count of connections, rates and
 * authentication failures for all SMTP workers (Postfix anvil(8) is the
 * model).
 *
 * Started by the master as root, it reads the configuration, then drops
 * to the SMTP user (it holds no data) in the workers' empty chroot with
 * no new privileges, no forking and no writing files.  It serves every
 * worker from one poll loop over the listening socket the master created
 * at <spool>/smtpd/anvil.sock.  Requests and answers are ipc.h frames.
 * Each worker connection remembers the connections it holds, so when a
 * worker dies (its connection closes) what it held is released.
 *
 * Connection leases (anvil_client.h has the rule): a CONNECTS question
 * may be granted up to ANVIL_LEASE_MAX connection-rate events at once,
 * and its answer says whether the worker may keep the slot once the
 * session ends (anvil_table_connects); such a slot stays in the
 * worker's held list and in the counts until the worker gives it back
 * (CONNECTS_BACK), takes it for a new connection (CONNECTS on a slot
 * held: only the rate is asked), or goes away.  When an answer no longer
 * allows keeping after one did, every worker is sent IMSG_ANVIL_RECALL,
 * which it answers once its kept slots went back; until then a
 * connection refused for a concurrency limit is answered "ask again", so
 * kept slots never refuse a client that is within its limit.
 *
 * Stress mode: after every turn of the loop the connections in all are
 * held against limits.stress_threshold, and the machine's available
 * memory against limits.stress_memory_available (the rules are
 * anvil_table.c's).  Memory is read from /proc/meminfo, opened before
 * the chroot and read again through that descriptor once a second: one
 * figure for the whole machine, which is what runs out, whoever holds
 * it.
 * When stress begins or ends it is logged once and IMSG_ANVIL_STRESS
 * (on or off, and limits.stress_timeout) is pushed to every connected
 * worker; a worker that connects while it lasts is told at once.  A
 * worker that connects outside stress is told nothing: off is where
 * every worker starts.  The times it began are counted and logged.
 *
 * On demand: the master starts anvil when a worker first connects to
 * its socket (which the master holds, so the connection waits in the
 * backlog meanwhile).  Once no worker has been connected for
 * workers.helper_idle seconds and the table holds nothing that still
 * matters (every entry has expired: no rate window, lockout or
 * authentication failure left), anvil exits with status 0, which the
 * master takes for an idle exit (no warning, no back-off); the next
 * connection starts a new one, which reads the limits in force from the
 * configuration the master hands it.
 *
 * Reload: the master sends the new limits as a typed note over
 * FD_ANVIL_NOTES (anvil cannot re-read the file from its chroot); the
 * counts are kept.  A malformed note is the master lying: anvil exits.  When
 * anvil itself dies the master restarts it and the counts start over;
 * meanwhile the workers allow everything (fail open).
 *
 * Security stance: the peers are the SMTP workers, which face the
 * internet and may be compromised.  Only the SMTP user may connect (the
 * socket's mode and SO_PEERCRED); each worker's connection is a channel
 * (channel.h) that admits only the anvil requests, and a malformed or
 * unexpected frame drops that worker's connection.  Memory is bounded: a
 * fixed number of connections, small frames, a capped table, and the
 * list of connections one worker holds no longer than max_connections.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "anvil.h"
#include "anvil_figures.h"
#include "anvil_table.h"
#include "channel.h"
#include "child.h"
#include "config.h"
#include "ipc.h"
#include "log.h"
#include "privsep.h"
#include "procfd.h"
#include "util.h"

#define MAX_CONNS 4096
#define REQUEST_CAP 2040        /* larger than any valid request */
#define WBUF_MAX 65536          /* unread answers before we give up */
#define HELD_FIRST 16           /* room for held connections, grown */
#define MAX_USER 512
#define EXPIRE_EVERY_MS 10000
#define MEMORY_EVERY_MS 1000
#define COUNTS_EVERY_MS 1000    /* the master hears the counts at most */
#define MEMINFO_MAX 16384

static volatile sig_atomic_t anvil_stop;

static void
on_term(int sig)
{
	(void)sig;
	anvil_stop = 1;
}


/* What a worker may ask. */
static const struct channel_rule worker_may_send[] = {
	{ IMSG_ANVIL_CONNECT, 0 },
	{ IMSG_ANVIL_DISCONNECT, 0 },
	{ IMSG_ANVIL_MESSAGE, 0 },
	{ IMSG_ANVIL_AUTH_CHECK, 0 },
	{ IMSG_ANVIL_AUTH_FAILED, 0 },
	{ IMSG_ANVIL_MESSAGES_BACK, 0 },
	{ IMSG_ANVIL_CONNECTS, 0 },
	{ IMSG_ANVIL_CONNECTS_BACK, 0 },
	{ IMSG_ANVIL_RECALL, 0 },
	{ 0, 0 }
};

/* What the master may note. */
static const struct channel_rule master_may_send[] = {
	{ IMSG_NOTE_ANVIL_LIMITS, 0 },
	{ 0, 0 }
};

struct anvil_conn {
	struct channel ch;
	pid_t pid;                        /* the worker, for logs */
	char (*held)[ANVIL_KEY_MAX];      /* connections it holds: a worker
	                                     serves many sessions at once */
	size_t nheld, held_cap;
	int broken;                       /* a push failed: drop it */
	uint64_t leased;                  /* messages granted beyond the
	                                     one asked for, not given back */
	uint64_t conns_leased;            /* connection-rate events, the
	                                     same */
	uint32_t recalls_unacked;         /* RECALLs it has not answered */
};

struct anvil_state {
	struct anvil_table *table;
	struct anvil_conn **conns;
	size_t nconns;
	uid_t peer_uid;
	struct channel notes;             /* from the master */
	int notes_open;
	uint64_t overflows_logged;
	int64_t overflow_logged_at;
	struct anvil_limits lim;          /* as in force now */
	uint64_t mem_total_kb;            /* as last read */
	int meminfo_fd;                   /* /proc/meminfo; -1: not read */
	int meminfo_failed_logged;
	/* the counts as the master last heard them (ferryctl status) */
	uint32_t told_connections, told_clients;
	int told_counts;
	int64_t next_counts;
	int64_t idle_ms;                  /* workers.helper_idle; 0: stay */
	int64_t alone_since;              /* no worker connected since */
	uint64_t recalls_unacked;         /* over all workers */
};

static void
limits_from_config(const struct ferry_config *cfg, struct anvil_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_connections = cfg->max_connections;
	l->max_connections_per_client = cfg->max_connections_per_client;
	l->connection_rate = cfg->connection_rate;
	l->message_rate = cfg->message_rate;
	l->auth_max_failures = cfg->auth_max_failures;
	l->auth_lockout = cfg->auth_lockout;
	l->stress_threshold = cfg->stress_threshold;
	l->stress_timeout = cfg->stress_timeout;
	l->stress_memory_available = cfg->stress_memory_available;
}

static int tell_stress(struct anvil_state *av, struct anvil_conn *c);

/* ---------------------------------------------------------- connections */

static void
accept_workers(struct anvil_state *av)
{
	for (;;) {
		struct anvil_conn *c;
		char peer[64];
		pid_t pid = 0;
		int fd = accept_from_uid(FD_ANVIL, av->peer_uid, &pid, "anvil",
		    "only the SMTP user may ask");

		if (fd == -2)
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("anvil: accept: %s", strerror(errno));
			return;
		}
		if (av->nconns >= MAX_CONNS) {
			log_warn("anvil: too many worker connections");
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		snprintf(peer, sizeof(peer), "SMTP worker pid %ld", (long)pid);
		channel_init(&c->ch, fd, peer, worker_may_send, REQUEST_CAP, 0);
		c->ch.wmax = WBUF_MAX;
		c->pid = pid;
		av->conns[av->nconns++] = c;
		if (anvil_table_stress(av->table))
			(void)tell_stress(av, c);
	}
}

/* The worker is gone (or lied): release what it held. */
static void
close_conn(struct anvil_state *av, size_t i)
{
	struct anvil_conn *c = av->conns[i];
	int64_t now = now_ms();
	size_t k;

	for (k = 0; k < c->nheld; k++)
		anvil_table_disconnect(av->table, c->held[k], now);
	av->recalls_unacked -= c->recalls_unacked;
	if (c->nheld > 0)
		log_debug("anvil: worker pid %ld went away holding %zu "
		    "connection(s); released", (long)c->pid, c->nheld);
	channel_free(&c->ch);
	free(c->held);
	free(c);
	av->conns[i] = av->conns[--av->nconns];
}

static int
answer(struct anvil_conn *c, uint32_t seq, int result, uint32_t granted)
{
	struct ipc_out *m = channel_begin(&c->ch, IMSG_ANVIL_ANSWER);

	ipc_add_u32(m, seq);
	ipc_add_u32(m, (uint32_t)result);
	ipc_add_u32(m, granted);
	if (channel_end(&c->ch) < 0) {
		log_warn("anvil: worker pid %ld does not read its answers; "
		    "dropping its connection", (long)c->pid);
		return -1;
	}
	return channel_flush(&c->ch);
}

static const char *result_name(int r);
static void recall_slots(struct anvil_state *av);

/* The answer to a CONNECTS question: the rate events granted and
 * whether the slot may be kept after its session. */
static int
answer_connects(struct anvil_conn *c, uint32_t seq, int result,
    uint32_t granted, int keep)
{
	struct ipc_out *m = channel_begin(&c->ch, IMSG_ANVIL_CONNECTS_ANSWER);

	ipc_add_u32(m, seq);
	ipc_add_u32(m, (uint32_t)result);
	ipc_add_u32(m, granted);
	ipc_add_u8(m, (uint8_t)keep);
	if (channel_end(&c->ch) < 0) {
		log_warn("anvil: worker pid %ld does not read its answers; "
		    "dropping its connection", (long)c->pid);
		return -1;
	}
	return channel_flush(&c->ch);
}

/* The index of a connection of key c holds, or -1. */
static ssize_t
held_index(const struct anvil_conn *c, const char *key)
{
	size_t k;

	for (k = 0; k < c->nheld; k++)
		if (strcmp(c->held[k], key) == 0)
			return (ssize_t)k;
	return -1;
}

static void
held_add(struct anvil_conn *c, const char *key)
{
	if (c->nheld == c->held_cap) {
		c->held_cap = c->held_cap ? c->held_cap * 2 : HELD_FIRST;
		c->held = xrealloc(c->held, c->held_cap * sizeof(c->held[0]));
	}
	ferry_strlcpy(c->held[c->nheld++], key, sizeof(c->held[0]));
}

static void
held_drop(struct anvil_conn *c, size_t k)
{
	memcpy(c->held[k], c->held[--c->nheld], sizeof(c->held[0]));
}

/* A CONNECTS question (see anvil_client.h for the lease). */
static int
connects(struct anvil_state *av, struct anvil_conn *c, uint32_t seq,
    const char *key, uint32_t want, uint8_t on_held, int64_t now)
{
	ssize_t hk = on_held ? held_index(c, key) : -1;
	uint32_t granted = 0;
	int res, counted = 0, keep = 0;

	if (hk < 0 && c->nheld >= (size_t)av->lim.max_connections) {
		log_warn("anvil: worker pid %ld holds %zu connections "
		    "already", (long)c->pid, c->nheld);
		res = ANVIL_TOO_MANY_CONNECTIONS;
	} else {
		/* a kept slot this connection does not hold any more (it
		 * was released, or counted by an anvil before us) is
		 * counted again */
		res = anvil_table_connects(av->table, key, now, hk >= 0,
		    want, &counted, &granted, &keep);
	}
	if (anvil_table_recall_due(av->table))
		recall_slots(av);
	/* refused while slots kept may still be on their way back: the
	 * worker asks again (after its own, pushed before this answer) */
	if ((res == ANVIL_TOO_MANY_CONNECTIONS ||
	    res == ANVIL_TOO_MANY_FROM_CLIENT) && av->recalls_unacked > 0)
		keep = ANVIL_ASK_AGAIN;
	if (hk >= 0 && res != ANVIL_OK)
		held_drop(c, (size_t)hk);   /* the table released it */
	if (counted)
		held_add(c, key);
	if (granted > 1)
		c->conns_leased += granted - 1;
	if (res != ANVIL_OK)
		log_debug("anvil: %s: %s", key, result_name(res));
	return answer_connects(c, seq, res, granted, keep);
}

/* A worker gives back what is left of a connection lease: rate events,
 * and slots it kept (never more than this worker was lent or holds). */
static void
connects_back(struct anvil_state *av, struct anvil_conn *c,
    const char *key, uint32_t rate, uint32_t slots, int64_t now)
{
	ssize_t hk;

	if (rate > c->conns_leased)
		rate = (uint32_t)c->conns_leased;
	c->conns_leased -= rate;
	if (rate > 0)
		anvil_table_connects_back(av->table, key, rate, now);
	while (slots-- > 0 && (hk = held_index(c, key)) >= 0) {
		anvil_table_disconnect(av->table, key, now);
		held_drop(c, (size_t)hk);
	}
}

/* Every worker gives back the slots it kept (anvil_table_recall_due). */
static void
recall_slots(struct anvil_state *av)
{
	size_t i;

	for (i = 0; i < av->nconns; i++) {
		struct anvil_conn *c = av->conns[i];

		if (c->broken)
			continue;
		c->recalls_unacked++;
		av->recalls_unacked++;
		(void)channel_begin(&c->ch, IMSG_ANVIL_RECALL);
		if (channel_end(&c->ch) < 0 || channel_flush(&c->ch) < 0) {
			log_warn("anvil: worker pid %ld does not read what "
			    "it is told; dropping its connection",
			    (long)c->pid);
			c->broken = 1;
		}
	}
}

static const char *
result_name(int r)
{
	switch (r) {
	case ANVIL_OK: return "ok";
	case ANVIL_TOO_MANY_CONNECTIONS: return "too many connections";
	case ANVIL_TOO_MANY_FROM_CLIENT: return "too many connections "
	    "from the client";
	case ANVIL_CONNECTION_RATE: return "connection rate";
	case ANVIL_MESSAGE_RATE: return "message rate";
	case ANVIL_AUTH_LOCKED: return "authentication lockout";
	default: return "?";
	}
}

/* One request.  -1: malformed, drop the worker. */
static int
handle_frame(struct anvil_state *av, struct anvil_conn *c,
    struct ipc_in *in)
{
	int64_t now = now_ms();
	char key[ANVIL_KEY_MAX], *addr = NULL, *user = NULL;
	uint32_t seq, count = 0, granted = 0, slots = 0;
	uint8_t on_held = 0;
	int with_user, with_count, res = ANVIL_OK, counted = 0, rc = -1;
	size_t k;

	if (in->type == IMSG_ANVIL_RECALL) {
		/* the worker gave back what it kept (CONNECTS_BACK before
		 * this) */
		if (ipc_end(in) < 0 || c->recalls_unacked == 0) {
			channel_violation(&c->ch, "a RECALL nobody sent");
			return -1;
		}
		c->recalls_unacked--;
		av->recalls_unacked--;
		return 0;
	}
	with_user = in->type == IMSG_ANVIL_AUTH_CHECK ||
	    in->type == IMSG_ANVIL_AUTH_FAILED;
	with_count = in->type == IMSG_ANVIL_MESSAGE ||
	    in->type == IMSG_ANVIL_MESSAGES_BACK ||
	    in->type == IMSG_ANVIL_CONNECTS ||
	    in->type == IMSG_ANVIL_CONNECTS_BACK;
	if (ipc_get_u32(in, &seq) < 0 ||
	    ipc_get_str(in, &addr, ANVIL_KEY_MAX) < 0 ||
	    (with_user && ipc_get_str(in, &user, MAX_USER) < 0) ||
	    (with_count && (ipc_get_u32(in, &count) < 0 ||
	    count > ANVIL_LEASE_MAX)) ||
	    (in->type == IMSG_ANVIL_CONNECTS &&
	    (ipc_get_u8(in, &on_held) < 0 || on_held > 1)) ||
	    (in->type == IMSG_ANVIL_CONNECTS_BACK &&
	    (ipc_get_u32(in, &slots) < 0 || slots > ANVIL_LEASE_MAX)) ||
	    ipc_end(in) < 0 ||
	    anvil_client_key(addr, key, sizeof(key)) < 0) {
		char why[64];

		snprintf(why, sizeof(why), "malformed %s",
		    ipc_type_name(in->type));
		channel_violation(&c->ch, why);
		goto out;
	}
	switch (in->type) {
	case IMSG_ANVIL_CONNECT:
		/* one worker cannot hold more than all may: its list is
		 * bounded by max_connections */
		if (c->nheld >= (size_t)av->lim.max_connections) {
			log_warn("anvil: worker pid %ld holds %zu connections "
			    "already", (long)c->pid, c->nheld);
			res = ANVIL_TOO_MANY_CONNECTIONS;
		} else {
			res = anvil_table_connect(av->table, key, now,
			    &counted);
		}
		if (counted && c->nheld == c->held_cap) {
			c->held_cap = c->held_cap ? c->held_cap * 2 :
			    HELD_FIRST;
			c->held = xrealloc(c->held, c->held_cap *
			    sizeof(c->held[0]));
		}
		if (counted)
			ferry_strlcpy(c->held[c->nheld++], key,
			    sizeof(c->held[0]));
		if (answer(c, seq, res, 0) < 0)
			goto out;
		break;
	case IMSG_ANVIL_DISCONNECT:
		/* only what this connection holds: after a reconnect the
		 * old holdings were released already */
		for (k = 0; k < c->nheld; k++)
			if (strcmp(c->held[k], key) == 0) {
				anvil_table_disconnect(av->table, key, now);
				memcpy(c->held[k], c->held[--c->nheld],
				    sizeof(c->held[0]));
				break;
			}
		break;
	case IMSG_ANVIL_MESSAGE:
		res = anvil_table_messages(av->table, key, now,
		    count > 0 ? count : 1, &granted);
		if (granted > 1)
			c->leased += granted - 1;
		if (answer(c, seq, res, granted) < 0)
			goto out;
		break;
	case IMSG_ANVIL_MESSAGES_BACK:
		/* never more than this worker was lent */
		if (count > c->leased)
			count = (uint32_t)c->leased;
		c->leased -= count;
		anvil_table_messages_back(av->table, key, count, now);
		break;
	case IMSG_ANVIL_CONNECTS:
		if (connects(av, c, seq, key, count, on_held, now) < 0)
			goto out;
		break;
	case IMSG_ANVIL_CONNECTS_BACK:
		connects_back(av, c, key, count, slots, now);
		break;
	case IMSG_ANVIL_AUTH_CHECK:
		res = anvil_table_auth_check(av->table, key, user, now);
		if (answer(c, seq, res, 0) < 0)
			goto out;
		break;
	case IMSG_ANVIL_AUTH_FAILED:
		anvil_table_auth_failed(av->table, key, user, now);
		break;
	default:
		break;
	}
	if (res != ANVIL_OK)
		log_debug("anvil: %s: %s", key, result_name(res));
	rc = 0;
out:
	free(addr);
	free(user);
	return rc;
}

/* Reads and answers what the worker sent.  -1: drop it. */
static int
read_conn(struct anvil_state *av, struct anvil_conn *c)
{
	for (;;) {
		struct ipc_in in;
		int got, n = channel_fill(&c->ch);

		if (n < 0)
			return -1;
		while ((got = channel_next(&c->ch, &in)) > 0)
			if (handle_frame(av, c, &in) < 0)
				return -1;
		if (got < 0)
			return -1;
		if (n == 0)
			return 0;
	}
}

/* --------------------------------------------------------------- stress */

/* Pushes the stress state to one worker; one that cannot take it is
 * marked to be dropped after this turn (not at once: the caller may be
 * walking the connections). */
static int
tell_stress(struct anvil_state *av, struct anvil_conn *c)
{
	struct ipc_out *m;

	if (c->broken)
		return -1;
	m = channel_begin(&c->ch, IMSG_ANVIL_STRESS);
	ipc_add_u8(m, (uint8_t)anvil_table_stress(av->table));
	ipc_add_u32(m, (uint32_t)av->lim.stress_timeout);
	if (channel_end(&c->ch) < 0 || channel_flush(&c->ch) < 0) {
		log_warn("anvil: worker pid %ld does not read what it is "
		    "told; dropping its connection", (long)c->pid);
		c->broken = 1;
		return -1;
	}
	return 0;
}

/* Tells the master (for the metrics) that stress began or ended; a
 * master that cannot take it loses only that. */
static void
tell_master_stress(struct anvil_state *av, int on)
{
	struct ipc_out *m;

	if (!av->notes_open)
		return;
	m = channel_begin(&av->notes, IMSG_NOTE_ANVIL_STRESS);
	ipc_add_u8(m, (uint8_t)on);
	if (channel_end(&av->notes) < 0 || channel_flush(&av->notes) < 0)
		log_warn("could not tell the master about stress mode");
}

/* Tells the master the counts now when they changed, at most every
 * COUNTS_EVERY_MS; a master that cannot take them loses only that. */
static void
tell_master_counts(struct anvil_state *av, int64_t now)
{
	uint32_t conns = (uint32_t)anvil_table_connections(av->table);
	uint32_t clients = (uint32_t)anvil_table_entries(av->table);
	struct ipc_out *m;

	if (!av->notes_open || now < av->next_counts || (av->told_counts &&
	    conns == av->told_connections && clients == av->told_clients))
		return;
	av->next_counts = now + COUNTS_EVERY_MS;
	m = channel_begin(&av->notes, IMSG_NOTE_ANVIL_COUNTS);
	anvil_counts_add(m, conns, clients);
	if (channel_end(&av->notes) < 0 || channel_flush(&av->notes) < 0)
		return;
	av->told_counts = 1;
	av->told_connections = conns;
	av->told_clients = clients;
}

/* Applies the stress rule to the count now; on a change logs it and
 * tells every worker and the master. */
static void
check_stress(struct anvil_state *av, int64_t now)
{
	int64_t since = anvil_table_stress_since(av->table);
	int change = anvil_table_stress_update(av->table, now);
	int conns = anvil_table_connections(av->table);
	size_t i;

	if (change == 0)
		return;
	if (change > 0 && anvil_table_stress_by_connections(av->table))
		log_warn("stress mode on: %d of %d connections (threshold "
		    "%d%%); idle limit %d s for every session; entered %llu "
		    "time(s) since start", conns, av->lim.max_connections,
		    av->lim.stress_threshold, av->lim.stress_timeout,
		    (unsigned long long)anvil_table_stress_entered(
		    av->table));
	else if (change > 0)
		log_warn("stress mode on: memory available %d%% of %llu MB "
		    "(threshold %d%%), %d of %d connections; idle limit %d s "
		    "for every session; entered %llu time(s) since start",
		    anvil_table_memory_percent(av->table),
		    (unsigned long long)(av->mem_total_kb / 1024),
		    av->lim.stress_memory_available, conns,
		    av->lim.max_connections, av->lim.stress_timeout,
		    (unsigned long long)anvil_table_stress_entered(
		    av->table));
	else
		log_info("stress mode off: %d of %d connections, after "
		    "%lld s; memory available %d%%", conns,
		    av->lim.max_connections,
		    (long long)((now - since + 500) / 1000),
		    anvil_table_memory_percent(av->table));
	for (i = 0; i < av->nconns; i++)
		(void)tell_stress(av, av->conns[i]);
	tell_master_stress(av, change > 0);
}

/* Drops the workers a push failed for; 1 when there were any (their
 * connections are released, so the count changed). */
static int
drop_broken(struct anvil_state *av)
{
	size_t i;
	int any = 0;

	for (i = av->nconns; i-- > 0;)
		if (av->conns[i]->broken) {
			close_conn(av, i);
			any = 1;
		}
	return any;
}

/* ---------------------------------------------------------------- notes */

static int
limits_sane(const struct anvil_limits *l)
{
	return l->max_connections > 0 && l->max_connections_per_client > 0 &&
	    l->connection_rate > 0 && l->message_rate > 0 &&
	    l->auth_max_failures > 0 && l->auth_lockout > 0 &&
	    l->stress_threshold > 0 && l->stress_threshold <= 100 &&
	    l->stress_timeout > 0 && l->stress_memory_available >= 0 &&
	    l->stress_memory_available <= 100;
}

/* The master's notes: a malformed one is the master lying, which ends
 * this process (the channel is fatal). */
static void
read_notes(struct anvil_state *av)
{
	for (;;) {
		struct anvil_limits l;
		struct ipc_in in;
		int32_t v[9];
		int got, n = channel_fill(&av->notes);

		if (n < 0 && av->notes.eof) {
			av->notes_open = 0;   /* the master is going */
			return;
		}
		if (n <= 0)
			return;
		while ((got = channel_next(&av->notes, &in)) > 0) {
			size_t k;

			for (k = 0; k < 9; k++)
				if (ipc_get_i32(&in, &v[k]) < 0)
					break;
			memset(&l, 0, sizeof(l));
			l.max_connections = v[0];
			l.max_connections_per_client = v[1];
			l.connection_rate = v[2];
			l.message_rate = v[3];
			l.auth_max_failures = v[4];
			l.auth_lockout = v[5];
			l.stress_threshold = v[6];
			l.stress_timeout = v[7];
			l.stress_memory_available = v[8];
			if (k < 9 || ipc_end(&in) < 0 || !limits_sane(&l)) {
				channel_violation(&av->notes,
				    "malformed NOTE_ANVIL_LIMITS");
				return;
			}
			anvil_table_set_limits(av->table, &l);
			av->lim = l;
			log_info("anvil: limits reloaded: %d connections, %d "
			    "per client, %d connections and %d messages per "
			    "client per minute, stress at %d%% with %d s, "
			    "or under %d%% memory available",
			    l.max_connections, l.max_connections_per_client,
			    l.connection_rate, l.message_rate,
			    l.stress_threshold, l.stress_timeout,
			    l.stress_memory_available);
		}
	}
}

/* --------------------------------------------------------------- memory */

/* The machine's memory now, into the table.  A failure leaves the
 * memory rule out (logged once): memory is a reason for stress, never a
 * reason to stop counting. */
static void
read_memory(struct anvil_state *av)
{
	char buf[MEMINFO_MAX];
	uint64_t total = 0, avail = 0;
	ssize_t n;

	if (av->meminfo_fd < 0)
		return;
	n = pread(av->meminfo_fd, buf, sizeof(buf), 0);
	if (n <= 0 || anvil_meminfo_parse(buf, (size_t)n, &total, &avail) < 0 ||
	    total == 0) {
		if (!av->meminfo_failed_logged)
			log_warn("anvil: /proc/meminfo: %s; memory does not "
			    "count for stress mode", n < 0 ? strerror(errno) :
			    "no MemTotal or MemAvailable");
		av->meminfo_failed_logged = 1;
		anvil_table_set_memory(av->table, 0, 0);
		return;
	}
	av->mem_total_kb = total;
	anvil_table_set_memory(av->table, avail, total);
}

/* ----------------------------------------------------------------- loop */

static void
housekeeping(struct anvil_state *av, int64_t now)
{
	uint64_t ov = anvil_table_overflows(av->table);

	anvil_table_expire(av->table, now);
	/* once, then at most hourly while it goes on */
	if (ov > av->overflows_logged && (av->overflows_logged == 0 ||
	    now - av->overflow_logged_at >= 3600 * 1000)) {
		log_warn("anvil: table full (%zu entries): %llu new client(s) "
		    "not counted and allowed", anvil_table_entries(av->table),
		    (unsigned long long)(ov - av->overflows_logged));
		av->overflows_logged = ov;
		av->overflow_logged_at = now;
	}
}

/* 1 when anvil may leave now: no worker for helper_idle, nothing in
 * the table that still counts (expired now), and no worker waiting in
 * the backlog of the socket. */
static int
idle_enough(struct anvil_state *av, int64_t now)
{
	struct pollfd p;

	if (av->nconns > 0 || av->alone_since == 0)
		av->alone_since = av->nconns > 0 ? 0 : now;
	if (av->idle_ms <= 0 || av->nconns > 0 ||
	    now - av->alone_since < av->idle_ms)
		return 0;
	(void)anvil_table_expire(av->table, now);
	if (anvil_table_entries(av->table) > 0)
		return 0;
	p.fd = FD_ANVIL;
	p.events = POLLIN;
	p.revents = 0;
	return poll(&p, 1, 0) == 0;
}

static void
run_loop(struct anvil_state *av)
{
	struct pollfd *pfds = xcalloc(MAX_CONNS + 2, sizeof(*pfds));
	int64_t next_expire = now_ms() + EXPIRE_EVERY_MS;
	int64_t next_memory = 0;

	while (!anvil_stop) {
		size_t i, n = 0;
		int rc;
		int64_t now;

		pfds[n].fd = FD_ANVIL;
		pfds[n++].events = POLLIN;
		pfds[n].fd = av->notes_open ? FD_ANVIL_NOTES : -1;
		pfds[n++].events = POLLIN;
		for (i = 0; i < av->nconns; i++) {
			struct anvil_conn *c = av->conns[i];

			pfds[n].fd = c->ch.fd;
			pfds[n++].events = POLLIN |
			    (channel_pending(&c->ch) > 0 ? POLLOUT : 0);
		}
		rc = poll(pfds, n, 1000);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("anvil: poll: %s", strerror(errno));
		}
		if (pfds[1].revents & (POLLIN | POLLHUP))
			read_notes(av);
		/* backwards: closing swaps the last connection in */
		for (i = av->nconns; i-- > 0;) {
			short ev = pfds[i + 2].revents;
			int res = 0;

			if (ev == 0)
				continue;
			if (ev & POLLOUT)
				res = channel_flush(&av->conns[i]->ch);
			if (res == 0 && (ev & (POLLIN | POLLHUP | POLLERR)))
				res = read_conn(av, av->conns[i]);
			if (res < 0)
				close_conn(av, i);
		}
		if (pfds[0].revents & POLLIN)
			accept_workers(av);
		now = now_ms();
		if (now >= next_memory) {
			read_memory(av);
			next_memory = now + MEMORY_EVERY_MS;
		}
		/* dropping a worker releases what it held: decide again */
		do
			check_stress(av, now);
		while (drop_broken(av));
		tell_master_counts(av, now);
		if (now >= next_expire) {
			housekeeping(av, now);
			next_expire = now + EXPIRE_EVERY_MS;
		}
		if (idle_enough(av, now)) {
			log_debug("anvil: no worker for %lld s; leaving until "
			    "one asks again", (long long)(av->idle_ms / 1000));
			break;
		}
	}
	free(pfds);
}

int
anvil(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct privsep_target target;
	struct anvil_state av;
	struct anvil_limits lim;
	char chroot_dir[4200];
	gid_t gid;
	pid_t master = getppid();

	child_signals(on_term, NULL);
	cfg = child_load_config(a, "ferry-anvil");
	memset(&av, 0, sizeof(av));
	if (geteuid() == 0) {
		if (privsep_lookup(cfg->smtpd_user, &av.peer_uid, &gid) < 0)
			log_fatal("smtpd_user %s does not exist",
			    cfg->smtpd_user);
	} else {
		av.peer_uid = geteuid();   /* a developer's run */
	}
	limits_from_config(cfg, &lim);
	av.idle_ms = (int64_t)cfg->helper_idle * 1000;
	/* the chroot has no /proc: keep it open */
	av.meminfo_fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	if (av.meminfo_fd < 0)
		log_warn("anvil: /proc/meminfo: %s; memory does not count "
		    "for stress mode", strerror(errno));
	av.meminfo_failed_logged = av.meminfo_fd < 0;
	snprintf(chroot_dir, sizeof(chroot_dir), "%s/%s", cfg->spool_dir,
	    SPOOL_SMTPD_DIR);
	memset(&target, 0, sizeof(target));
	target.user = cfg->smtpd_user;
	target.chroot_dir = chroot_dir;
	target.no_fork = 1;
	target.no_files = 1;
	privsep_drop(&target);
	child_follow_master(master);
	config_free(cfg);

	fd_set_nonblock(FD_ANVIL, 1);
	fd_set_nonblock(FD_ANVIL_NOTES, 1);
	channel_init(&av.notes, FD_ANVIL_NOTES, "the master", master_may_send,
	    64, CHANNEL_RECORDS | CHANNEL_FATAL);
	av.notes_open = 1;
	av.table = anvil_table_new(&lim);
	av.lim = lim;
	av.conns = xcalloc(MAX_CONNS, sizeof(*av.conns));
	log_info("anvil started: %d connections, %d per client, %d "
	    "connections and %d messages per client per minute, stress at "
	    "%d%% with %d s, or under %d%% memory available",
	    lim.max_connections, lim.max_connections_per_client,
	    lim.connection_rate, lim.message_rate, lim.stress_threshold,
	    lim.stress_timeout, lim.stress_memory_available);
	run_loop(&av);

	while (av.nconns > 0)
		close_conn(&av, av.nconns - 1);
	log_debug("anvil stopping");
	anvil_table_free(av.table);
	channel_free(&av.notes);
	free(av.conns);
	if (av.meminfo_fd >= 0)
		close(av.meminfo_fd);
	return 0;
}
