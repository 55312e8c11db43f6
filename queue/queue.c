/*
 * queue.c - the queue runner process (ferry-queue): sole owner of the
 * queue database, and the one event loop that serves everything that
 * touches it.
 *
 * Started by the master as root, it looks up the SMTP user, the delivery
 * user and the admin group, drops to the queue user (the owner of the
 * spool) before opening the database, and removes messages a crash left
 * half-received.  Then one poll loop serves:
 * - the SMTP workers' intake connections (intake.c).  Writes from every
 *   connection go into one open transaction; at the end of each turn in
 *   which a message completed, that transaction is committed once (one
 *   fsync) and each waiting worker is told its message is durable (group
 *   commit).  A failed commit fails every message in it and nothing
 *   half-stored remains.  While commits fail (a full disk), the runner
 *   refuses new mail, starts no delivery, keeps the outcomes agents
 *   reported (scheduler.c writes them again) and tries again with a
 *   capped back-off, logging once per change of state and a periodic
 *   summary (store_health.c); below queue { min_free } it refuses new
 *   mail while delivery goes on.  Every worker is told the state;
 * - the delivery agents on the agent socket (scheduler.c): jobs out,
 *   per-recipient results, bounces and retries back into the same
 *   transaction;
 * - ferryctl on the control socket (control.c);
 * - ferry-metrics on the metrics socket (metrics { enabled }): each
 *   connection is written one snapshot of the in-memory counters
 *   (metrics_snapshot.c) without waiting - nothing is read from it, so
 *   the peer can neither hold nor steer the runner - and closed;
 * - the master's notes: the worker pool's and anvil's counts for
 *   ferryctl (anvil_figures.h), a new
 *   configuration after SIGHUP (spool and users stay as they were) and
 *   its generation, and the watchdog's NOTE_PING, answered at once with
 *   a NOTE_PONG: the answer says this event loop is turning; back to the
 *   master, the delivery agents it has work for (none at rest: the
 *   master starts them when mail is due).  ferryctl drain and undrain
 *   are passed on to the master (NOTE_DRAIN), which holds that state
 *   and notes it back (NOTE_DRAINING) for ferryctl status.
 * Once a second it also looks whether the queue is stalled (stall.h:
 * queue { warn_age, warn_stall }): a warning logged when it begins and
 * hourly while it lasts, ferry_queue_stalled in the metrics, and with
 * queue { notify } a report queued as a message of its own.
 * SIGUSR1 stops dispatching (ferry is stopping); SIGTERM ends the loop
 * after a last commit.
 *
 * A store it cannot use - the file damaged (quick_check at start), not
 * openable, or its WAL lost (store_wal_lost) - does not end the runner:
 * a runner that exits would only be restarted into the same fault.  It
 * logs the cause once, tells the workers the queue is failing
 * (QUEUE_STATE_FAILING), answers every intake with TX_FAIL at once,
 * tells ferryctl why, delivers nothing, and opens the store again when
 * ferryctl says the fault is dealt with (queue accept-loss, queue reopen
 * after queue salvage).
 *
 * Security stance: every peer is checked by uid.  The intake socket lives
 * in the workers' chroot, is created by the master with access for the
 * SMTP user only, and the runner also checks each worker's uid; only the
 * delivery user may connect to the agent socket, and only root or a
 * member of the admin group to the control socket.  The workers'
 * messages are bounded in size.  A worker or an agent that sends a
 * malformed frame is dropped; a malformed note from the master ends the
 * runner (the master is lying).
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "anvil_figures.h"
#include "channel.h"
#include "child.h"
#include "config.h"
#include "control.h"
#include "dkim.h"
#include "intake.h"
#include "log.h"
#include "metrics_snapshot.h"
#include "privsep.h"
#include "procfd.h"
#include "queue.h"
#include "rest_heap.h"
#include "route_learn.h"
#include "scheduler.h"
#include "stall.h"
#include "stall_queue.h"
#include "store.h"
#include "store_health.h"
#include "token_client.h"
#include "upstream_pools.h"
#include "util.h"

#define MAX_CONNS 4096
/* ferryctl connections accepted before their request came: they wait in
 * the poll set (a client the scheduler has not run yet must not hold
 * the runner's turn), at most this many, for at most this long */
#define CONTROL_WAITING_MAX 8
#define CONTROL_WAIT_MS 2000
/* The workers enforce the configured size limit; this bound only stops a
 * compromised worker from streaming without end (the largest limit the
 * configuration allows, plus room for headers). */
#define INTAKE_MAX_MESSAGE ((uint64_t)2147483647 + 1024 * 1024)
#define SPACE_CHECK_MS 500   /* how often free space is looked at */
#define VACUUM_PAUSE_MS 10   /* idle time between two vacuum steps */
#define HISTORY_PRUNE_MS 1000      /* how often expired history is looked for */
#define HISTORY_PRUNE_AGAIN_MS 20  /* the next batch, when one was full */
#define STALL_CHECK_MS 1000  /* how often the stall warning looks */

static volatile sig_atomic_t runner_stop;
static volatile sig_atomic_t runner_no_dispatch;  /* ferry is stopping */

static void
on_usr1(int sig)
{
	(void)sig;
	runner_no_dispatch = 1;
}

static void
on_term(int sig)
{
	(void)sig;
	runner_stop = 1;
}


struct runner {
	struct ferry_config *cfg;     /* owned; replaced on reload */
	struct rest_heap rest;        /* memory given back when quiet */
	struct dkim_signing *dkim;    /* owned: the signing keys */
	int dkim_keys_fd;             /* the master's copy of the reloaded
	                                 keys, until the reload note; -1 */
	struct store *st;
	struct intake_conn **conns;
	size_t nconns;
	uint64_t next_conn_id;
	uid_t peer_uid;           /* the SMTP user's uid */
	struct intake_stats stats;
	struct scheduler *sched;
	gid_t admin_gid;          /* may use ferryctl besides root */
	struct channel notes;     /* from the master (FD_POOL) */
	uint32_t pool_workers, pool_busy;   /* its last word on workers */
	uint32_t agents_told;     /* agents wanted, as last told the master */
	int64_t agents_told_ms;   /* when: a smaller count waits a while */
	int agents_less_in;       /* ms until a held smaller count goes; -1 */
	int control_waits;        /* a ferryctl change waits for the commit */
	int ctl_waiting[CONTROL_WAITING_MAX];   /* accepted, no request yet */
	int64_t ctl_waiting_since[CONTROL_WAITING_MAX];
	size_t nctl_waiting;
	int have_pool;
	uint32_t generation;      /* the master's configuration generation */
	int draining;             /* the master's drain state, as noted */
	pid_t master_pid;
	int have_admin_gid;
	struct store_health health;
	enum queue_state announced;   /* what the workers were last told */
	uint64_t announced_headroom;  /* and the room it left */
	int64_t next_space_check_ms;
	uid_t agent_uid;
	int vacuum_more;          /* freed pages remain to give back */
	char dbpath[1024];
	/* for the metrics endpoint */
	int metrics_fd;               /* FD_METRICS, or -1 */
	struct histogram commit_batch, commit_seconds;
	struct store_queue_stats queue_counts;
	int queue_counts_ok;
	int64_t queue_counts_at_ms;
	/* why the store is closed (st NULL): one line naming the file */
	char store_trouble[2048];
	int64_t next_prune_ms;    /* when expired history is looked for */
	/* the stall warning (stall.h) */
	struct stall_state stall;
	unsigned stall_reasons;       /* STALL_* bits, as last decided */
	int stall_known;
	int64_t next_stall_ms;
	struct anvil_figures anvil;   /* the master's last word on anvil */
	int have_anvil;
	/* what the routes' upstreams offer (route_learn.h), and the change
	 * the workers were last told */
	struct route_learn learn;
	uint64_t learn_told;
};

/* What the workers are told: the store's health, or failing while the
 * runner has no usable store (intake is refused at once then). */
static enum queue_state
runner_state(const struct runner *r)
{
	if (r->st == NULL)
		return QUEUE_STATE_FAILING;
	return store_health_state(&r->health);
}

/* Nonzero when the room left moved enough that the workers, who refuse
 * a declared SIZE above it at MAIL, must hear of it: by an eighth, or
 * by 1 MiB when that is more. */
static int
headroom_moved(uint64_t was, uint64_t now)
{
	uint64_t d = was > now ? was - now : now - was;
	uint64_t step = was / 8 > (1 << 20) ? was / 8 : (1 << 20);

	return d > step;
}

/* Tells every worker the queue's state when it changed. */
static void
announce_state(struct runner *r)
{
	enum queue_state now = runner_state(r);
	uint64_t headroom = store_health_headroom(&r->health);
	size_t i;

	if (now == r->announced &&
	    !headroom_moved(r->announced_headroom, headroom))
		return;
	r->announced = now;
	r->announced_headroom = headroom;
	for (i = 0; i < r->nconns; i++)
		intake_conn_send_state(r->conns[i], now, headroom);
}

/* Tells one worker what the routes' upstreams offer: a new connection
 * only when something is known (it starts knowing nothing). */
static void
send_route_caps(struct runner *r, struct intake_conn *c, int always)
{
	if (always || route_caps_count(&r->learn.table, r->cfg) > 0)
		intake_conn_send_route_caps(c, &r->learn.table, r->cfg);
}

/* Tells every worker what the routes' upstreams offer when it changed. */
static void
announce_route_caps(struct runner *r)
{
	size_t i;

	if (r->learn.changes == r->learn_told)
		return;
	r->learn_told = r->learn.changes;
	for (i = 0; i < r->nconns; i++)
		send_route_caps(r, r->conns[i], 1);
}

/* Free space against queue { min_free }, at most every SPACE_CHECK_MS
 * (or at once when forced). */
static void
check_space(struct runner *r, int force)
{
	uint64_t avail, total;
	int64_t now = now_ms();

	if (r->st == NULL || (!force && now < r->next_space_check_ms))
		return;
	r->next_space_check_ms = now + SPACE_CHECK_MS;
	if (store_free_space(r->st, &avail, &total) < 0) {
		log_debug("queue: %s", store_errmsg(r->st));
		return;
	}
	if (store_health_space(&r->health, avail,
	    store_min_free(r->cfg->min_free_bytes, r->cfg->min_free_percent,
	    total)))
		scheduler_wake(r->sched);
	announce_state(r);
}

static void
accept_workers(struct runner *r)
{
	for (;;) {
		int fd = accept_from_uid(FD_INTAKE, r->peer_uid, NULL, "intake",
		    "only the SMTP user may hand in mail");

		if (fd == -2)
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("intake accept: %s", strerror(errno));
			return;
		}
		if (r->nconns >= MAX_CONNS) {
			log_warn("intake: too many worker connections");
			close(fd);
			continue;
		}
		r->conns[r->nconns] = intake_conn_new(fd, ++r->next_conn_id);
		intake_conn_send_state(r->conns[r->nconns], runner_state(r),
		    store_health_headroom(&r->health));
		send_route_caps(r, r->conns[r->nconns++], 0);
	}
}

static void
close_conn(struct runner *r, size_t i)
{
	intake_conn_free(r->conns[i], r->st);
	r->conns[i] = r->conns[--r->nconns];
}

/* The store failed mid-turn: roll back, and fail every message that had
 * rows in the lost transaction.  The agents' outcomes in it are kept to
 * be written again. */
static void
lose_transaction(struct runner *r)
{
	size_t i;

	store_rollback(r->st);
	for (i = 0; i < r->nconns; i++) {
		intake_conn_rolled_back(r->conns[i]);
		intake_conn_committed(r->conns[i], 0, &r->stats);
	}
	scheduler_committed(r->sched, 0);
}

/* A write or commit failed with why: the store is failing until a
 * commit succeeds. */
static void
store_failed(struct runner *r, const char *why)
{
	char msg[256];

	ferry_strlcpy(msg, why, sizeof(msg));   /* rollback may reset it */
	lose_transaction(r);
	store_health_failed(&r->health, msg, now_ms(), now_wall());
	announce_state(r);
}

static double
monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Commits the open transaction now - or, while commits fail, the
 * outcomes kept from the lost ones, or a probe when there are none.
 * 0 when committed, -1 when not (the store is then failing). */
static int
commit_now(struct runner *r)
{
	size_t i, waiting = 0;
	int was_failing = r->health.failing;

	for (i = 0; i < r->nconns; i++)
		if (intake_conn_pending(r->conns[i]))
			waiting++;
	if (was_failing)
		scheduler_replay(r->sched);
	if (scheduler_write_failed(r->sched)) {
		store_failed(r, store_errmsg(r->st));
		return -1;
	}
	/* While failing, only a commit that writes proves anything: an
	 * empty transaction is dropped and a probe written instead. */
	if (store_in_transaction(r->st) && (!was_failing || waiting > 0 ||
	    store_has_writes(r->st))) {
		double t0 = monotonic_seconds();
		/* a commit that acknowledges nothing (no 250, no ferryctl
		 * answer) need not wait for the disk: see store_commit_lazy */
		int durable = waiting > 0 || r->control_waits || was_failing;

		r->control_waits = 0;
		if ((durable ? store_commit(r->st) :
		    store_commit_lazy(r->st)) < 0) {
			store_failed(r, store_errmsg(r->st));
			return -1;
		}
		r->stats.commits++;
		histogram_observe(&r->commit_seconds,
		    monotonic_seconds() - t0);
		if (waiting > 0)
			histogram_observe(&r->commit_batch, (double)waiting);
	} else if (was_failing) {
		store_rollback(r->st);
		if (store_probe(r->st) < 0) {
			store_failed(r, store_errmsg(r->st));
			return -1;
		}
	}
	for (i = 0; i < r->nconns; i++)
		intake_conn_committed(r->conns[i], 1, &r->stats);
	scheduler_committed(r->sched, 1);
	if (was_failing) {
		store_health_ok(&r->health);
		check_space(r, 1);
		announce_state(r);
		scheduler_wake(r->sched);
	}
	if (waiting > 0)
		scheduler_wake(r->sched);   /* new mail is due now */
	return 0;
}

/* End of a turn: one commit for everything that completed; while commits
 * fail, one attempt when the back-off allows. */
static void
group_commit(struct runner *r)
{
	size_t i, waiting = 0;

	if (r->health.failing) {
		if (store_health_may_try(&r->health, now_ms()))
			(void)commit_now(r);
		return;
	}
	if (scheduler_write_failed(r->sched)) {
		store_failed(r, store_errmsg(r->st));
		return;
	}
	for (i = 0; i < r->nconns; i++)
		if (intake_conn_pending(r->conns[i]))
			waiting++;
	/* the store knows whether the turn wrote anything; when it did not,
	 * what the scheduler wrote is durable already */
	if (!store_in_transaction(r->st) || (waiting == 0 &&
	    !store_has_writes(r->st))) {
		scheduler_committed(r->sched, 1);
		return;
	}
	(void)commit_now(r);
}

/* A new configuration from the master after SIGHUP. Spool and users stay
 * as they were (they change with a restart, as in the master). */
/* The signing keys of a reloaded configuration, from the copy the
 * master sent just before it (this process can no longer read the key
 * files).  NULL with a reason in err. */
static struct dkim_signing *
reload_dkim(struct runner *r, const struct ferry_config *fresh, char *err,
    size_t errlen)
{
	struct dkim_signing *s;
	char *pem = NULL;
	size_t len = 0;

	if (fresh->ndkim_keys > 0) {
		if (r->dkim_keys_fd < 0) {
			snprintf(err, errlen, "the master sent no DKIM keys");
			return NULL;
		}
		pem = child_read_config_fd(r->dkim_keys_fd);
		if (pem == NULL) {
			snprintf(err, errlen, "cannot read the DKIM keys: %s",
			    strerror(errno));
			return NULL;
		}
		len = strlen(pem);
	}
	if (r->dkim_keys_fd >= 0)
		close(r->dkim_keys_fd);
	r->dkim_keys_fd = -1;
	s = dkim_signing_new(fresh, pem != NULL ? pem : "", len, err,
	    errlen);
	if (pem != NULL) {
		explicit_bzero(pem, len);
		free(pem);
	}
	if (s != NULL && s->nsigners > 0)
		log_info("queue runner: DKIM signing with %zu key(s)",
		    s->nsigners);
	return s;
}

static void
reload_config(struct runner *r, int fd)
{
	struct dkim_signing *dkim;
	struct ferry_config *fresh;
	char *text, err[1024];

	text = child_read_config_fd(fd);
	close(fd);
	if (text == NULL) {
		log_error("reload: cannot read the new configuration: %s; "
		    "keeping the running configuration", strerror(errno));
		return;
	}
	/* reloads: the master checked the files */
	fresh = config_load_flags(r->cfg->path, text, CONFIG_NO_FILE_CHECKS,
	    err, sizeof(err));
	free(text);
	if (fresh == NULL) {
		log_error("reload: %s; keeping the running configuration", err);
		return;
	}
	if ((dkim = reload_dkim(r, fresh, err, sizeof(err))) == NULL) {
		log_error("reload: %s; keeping the running configuration", err);
		config_free(fresh);
		return;
	}
	intake_set_dkim(dkim);
	dkim_signing_free(r->dkim);
	r->dkim = dkim;
	free(fresh->spool_dir);
	fresh->spool_dir = xstrdup(r->cfg->spool_dir);
	if (r->sched != NULL)
		scheduler_set_config(r->sched, fresh);
	config_free(r->cfg);
	r->cfg = fresh;
	if (r->st != NULL)
		store_history_keep(r->st, fresh->history_retention > 0);
	/* a route whose hosts changed is unknown again */
	route_learn_load(&r->learn, r->st, r->cfg);
	r->next_prune_ms = 0;
	if (r->sched != NULL)
		scheduler_wake(r->sched);
	log_set_format((enum log_format)fresh->log_format);
	log_info("queue runner: configuration reloaded (%zu route(s))",
	    fresh->nroutes);
}

/* What the master may note. */
static const struct channel_rule master_may_send[] = {
	{ IMSG_NOTE_POOL, 0 },
	{ IMSG_NOTE_RELOAD, CHANNEL_RULE_FD },
	{ IMSG_NOTE_PING, 0 },
	{ IMSG_NOTE_GENERATION, 0 },
	{ IMSG_NOTE_DRAINING, 0 },
	{ IMSG_NOTE_DKIM_KEYS, CHANNEL_RULE_FD },
	{ IMSG_NOTE_ANVIL, 0 },
	{ 0, 0 }
};

/* The master's notes; a malformed one is the master lying, which ends
 * this process (the channel is fatal). */
static void
read_master_notes(struct runner *r)
{
	struct ipc_in in;
	int got;

	while (channel_fill(&r->notes) > 0) {
		while ((got = channel_next(&r->notes, &in)) > 0) {
			if (in.type == IMSG_NOTE_POOL) {
				if (ipc_get_u32(&in, &r->pool_workers) < 0 ||
				    ipc_get_u32(&in, &r->pool_busy) < 0 ||
				    ipc_end(&in) < 0) {
					channel_violation(&r->notes,
					    "malformed NOTE_POOL");
					return;
				}
				r->have_pool = 1;
			} else if (in.type == IMSG_NOTE_PING) {
				uint32_t seq;
				struct ipc_out *pong;

				if (ipc_get_u32(&in, &seq) < 0 ||
				    ipc_end(&in) < 0) {
					channel_violation(&r->notes,
					    "malformed NOTE_PING");
					return;
				}
				/* the watchdog's question: this loop turns */
				pong = channel_begin(&r->notes,
				    IMSG_NOTE_PONG);
				ipc_add_u32(pong, seq);
				(void)channel_end(&r->notes);
				(void)channel_flush(&r->notes);
			} else if (in.type == IMSG_NOTE_DRAINING) {
				uint8_t on;

				if (ipc_get_u8(&in, &on) < 0 ||
				    ipc_end(&in) < 0 || on > 1) {
					channel_violation(&r->notes,
					    "malformed NOTE_DRAINING");
					return;
				}
				r->draining = on;
			} else if (in.type == IMSG_NOTE_ANVIL) {
				if (anvil_figures_take(&in, &r->anvil) < 0) {
					channel_violation(&r->notes,
					    "malformed NOTE_ANVIL");
					return;
				}
				r->have_anvil = 1;
			} else if (in.type == IMSG_NOTE_GENERATION) {
				if (ipc_get_u32(&in, &r->generation) < 0 ||
				    ipc_end(&in) < 0) {
					channel_violation(&r->notes,
					    "malformed NOTE_GENERATION");
					return;
				}
			} else if (in.type == IMSG_NOTE_DKIM_KEYS) {
				int fd = channel_take_fd(&r->notes);

				if (ipc_end(&in) < 0) {
					close(fd);
					channel_violation(&r->notes,
					    "malformed NOTE_DKIM_KEYS");
					return;
				}
				/* kept for the NOTE_RELOAD that follows */
				if (r->dkim_keys_fd >= 0)
					close(r->dkim_keys_fd);
				r->dkim_keys_fd = fd;
			} else {
				int fd = channel_take_fd(&r->notes);

				if (ipc_end(&in) < 0) {
					close(fd);
					channel_violation(&r->notes,
					    "malformed NOTE_RELOAD");
					return;
				}
				reload_config(r, fd);
			}
		}
	}
}

/* Tells the master how many delivery agents there is work for, when that
 * changed: it starts agents up to that many, so none runs at rest.  A
 * note that cannot go now (the socket is full) goes on a later turn.
 *
 * The count moves with every job that starts or ends.  A larger count
 * goes at once (the master starts agents for it); a smaller one only
 * AGENTS_TELL_LESS_MS after the last note, because the master stops no
 * agent for it (the runner retires idle ones itself, much later), and
 * so a busy relay does not wake the master for every job.  Returns the
 * milliseconds until a held smaller count may go, or -1 when none is
 * held. */
#define AGENTS_TELL_LESS_MS 1000

static int
tell_master_agents(struct runner *r)
{
	uint32_t wanted = r->sched != NULL ?
	    (uint32_t)scheduler_agents_wanted(r->sched) : 0;
	int64_t now = now_ms();

	(void)channel_flush(&r->notes);
	if (wanted == r->agents_told || channel_pending(&r->notes) > 0)
		return -1;
	if (wanted < r->agents_told && r->agents_told != UINT32_MAX &&
	    now - r->agents_told_ms < AGENTS_TELL_LESS_MS)
		return (int)(r->agents_told_ms + AGENTS_TELL_LESS_MS - now);
	ipc_add_u32(channel_begin(&r->notes, IMSG_NOTE_AGENTS), wanted);
	(void)channel_end(&r->notes);
	(void)channel_flush(&r->notes);
	r->agents_told = wanted;
	r->agents_told_ms = now;
	return -1;
}

/* ferryctl drain / undrain: passed on to the master, which holds the
 * state (a note that cannot go now goes with the next flush). */
static int
ask_master_drain(void *arg, int on, char *err, size_t errlen)
{
	struct runner *r = arg;

	if (r->notes.fd < 0) {
		snprintf(err, errlen, "the master's notes are closed");
		return -1;
	}
	ipc_add_u8(channel_begin(&r->notes, IMSG_NOTE_DRAIN), (uint8_t)on);
	if (channel_end(&r->notes) < 0 || channel_flush(&r->notes) < 0) {
		snprintf(err, errlen, "cannot tell the master: %s",
		    r->notes.error);
		return -1;
	}
	return 0;
}

/* ferryctl: root, or a member of the admin group. */
static int
control_peer_ok(struct runner *r, int fd)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		return 0;
	if (cred.uid == 0 || cred.uid == geteuid())
		return 1;
	if (r->have_admin_gid) {
		struct passwd *pw = getpwuid(cred.uid);
		gid_t groups[256];
		int ng = 256, i;

		if (cred.gid == r->admin_gid)
			return 1;
		if (pw != NULL && getgrouplist(pw->pw_name, pw->pw_gid,
		    groups, &ng) >= 0)
			for (i = 0; i < ng; i++)
				if (groups[i] == r->admin_gid)
					return 1;
	}
	return 0;
}

static void
wake_scheduler(void *arg)
{
	scheduler_wake(((struct runner *)arg)->sched);
}

static void
flush_hops(void *arg)
{
	scheduler_flush_hops(((struct runner *)arg)->sched);
}

static int
qid_busy(void *arg, const char *qid)
{
	return scheduler_busy_qid(((struct runner *)arg)->sched, qid);
}

/* ferryctl's change is made in the runner's transaction... */
static int
begin_for_control(void *arg, char *err, size_t errlen)
{
	struct runner *r = arg;

	r->control_waits = 1;
	if (store_begin(r->st) == 0)
		return 0;
	snprintf(err, errlen, "%s", store_errmsg(r->st));
	store_failed(r, err);
	return -1;
}

/* ...and answered only once it is durable. */
static int
commit_for_control(void *arg, char *err, size_t errlen)
{
	struct runner *r = arg;

	if (commit_now(r) == 0)
		return 0;
	snprintf(err, errlen, "%s", r->health.error);
	return -1;
}

/* Opens and checks the store.  On a fault the runner keeps going without
 * one: store_trouble says why, logged here once. */
static int
open_store(struct runner *r)
{
	char err[sizeof(r->store_trouble) - 128];
	int64_t active = 0;
	int purged;

	r->store_trouble[0] = '\0';
	if (store_wal_lost(r->dbpath, err, sizeof(err))) {
		snprintf(r->store_trouble, sizeof(r->store_trouble), "%s; "
		    "refusing mail until \"ferryctl queue accept-loss\"", err);
		goto refuse;
	}
	if ((r->st = store_open(r->dbpath, err, sizeof(err))) == NULL) {
		snprintf(r->store_trouble, sizeof(r->store_trouble), "%s; "
		    "refusing mail (see \"ferryctl queue salvage\")", err);
		goto refuse;
	}
	if (store_check(r->st, r->dbpath, 0, err, sizeof(err)) < 0) {
		snprintf(r->store_trouble, sizeof(r->store_trouble), "%s; "
		    "refusing mail (see \"ferryctl queue salvage\")", err);
		store_close(r->st);
		r->st = NULL;
		goto refuse;
	}
	purged = store_purge_incoming(r->st);
	if (purged < 0) {
		snprintf(r->store_trouble, sizeof(r->store_trouble),
		    "%s: cannot clean up: %s; refusing mail", r->dbpath,
		    store_errmsg(r->st));
		store_close(r->st);
		r->st = NULL;
		goto refuse;
	}
	if (purged > 0)
		log_info("queue: removed %d message(s) left incomplete by an "
		    "interrupted session", purged);
	store_count(r->st, "active", &active);
	log_info("queue runner started: %s, %lld message(s) queued%s",
	    r->dbpath, (long long)active, r->cfg->delivery_paused ?
	    "; delivery is paused (delivery.paused)" : "");
	store_history_keep(r->st, r->cfg->history_retention > 0);
	r->sched = scheduler_new(r->cfg, r->st, r->agent_uid);
	route_learn_load(&r->learn, r->st, r->cfg);
	scheduler_set_route_learn(r->sched, &r->learn);
	return 0;

refuse:
	log_error("queue: %s", r->store_trouble);
	return -1;
}

/* ferryctl: the fault is dealt with (accept_loss: the operator accepts
 * that the mail in a lost WAL is gone); try the store again. */
static int
reopen_store(void *arg, int accept_loss, char *err, size_t errlen)
{
	struct runner *r = arg;

	if (r->st != NULL) {
		snprintf(err, errlen, "the queue is open and sound; nothing "
		    "to do");
		return -1;
	}
	if (accept_loss) {
		if (store_accept_loss(r->dbpath, err, errlen) < 0)
			return -1;
		log_warn("queue: %s: the operator accepted the loss of the "
		    "mail in the lost WAL", r->dbpath);
	}
	if (open_store(r) < 0) {
		snprintf(err, errlen, "%s", r->store_trouble);
		return -1;
	}
	/* the workers are told intake is open again (or why not) */
	check_space(r, 1);
	announce_state(r);
	return 0;
}

/* Answers the request on fd, an accepted ferryctl connection. */
static void
serve_control_fd(struct runner *r, int fd)
{
	{
		struct control_ctx ctx;

		memset(&ctx, 0, sizeof(ctx));
		ctx.st = r->st;
		ctx.cfg = r->cfg;
		ctx.store_path = r->dbpath;
		ctx.store_trouble = r->st == NULL ? r->store_trouble : NULL;
		ctx.reopen = reopen_store;
		ctx.reopen_arg = r;
		if (r->sched != NULL)
			scheduler_counts(r->sched, &ctx.agents_total,
			    &ctx.agents_busy);
		ctx.workers_total = r->have_pool ? (int)r->pool_workers : -1;
		ctx.workers_busy = r->have_pool ? (int)r->pool_busy : -1;
		ctx.generation = r->generation;
		ctx.master_pid = (long)r->master_pid;
		ctx.draining = r->draining;
		ctx.drain = ask_master_drain;
		ctx.drain_arg = r;
		ctx.config_path = r->cfg->path;
		ctx.messages_in = r->stats.messages;
		ctx.commits = r->stats.commits;
		ctx.wake = wake_scheduler;
		ctx.flush_hops = flush_hops;
		ctx.wake_arg = r;
		ctx.busy = qid_busy;
		ctx.begin = begin_for_control;
		ctx.commit = commit_for_control;
		ctx.store_state = (int)store_health_state(&r->health);
		ctx.failing_since = r->health.failing ?
		    r->health.failing_since : -1;
		ctx.store_error = r->health.error;
		ctx.commit_failures = r->health.failures;
		ctx.space_known = r->health.space_known;
		ctx.free_bytes = r->health.free_bytes;
		ctx.min_free_bytes = r->health.min_free_bytes;
		ctx.outcomes_unsaved = r->sched != NULL ?
		    scheduler_unsaved(r->sched) : 0;
		ctx.deliveries = r->sched != NULL ?
		    scheduler_metrics(r->sched) : NULL;
		ctx.anvil = r->have_anvil ? &r->anvil : NULL;
		ctx.upstreams = &r->learn.table;
		ctx.stall_known = r->stall_known;
		ctx.stall_reasons = r->stall_reasons;
		ctx.tokens = r->sched != NULL ? scheduler_tokens(r->sched) :
		    NULL;
		ctx.pools = r->sched != NULL ? scheduler_pools(r->sched) :
		    NULL;
		control_serve(fd, &ctx);
	}
}

/* Whether what the client sent (or its close) is there to read. */
static int
control_request_here(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 ||
	    (errno != EAGAIN && errno != EWOULDBLOCK);
}

static void
serve_control(struct runner *r)
{
	int fd;

	while ((fd = accept4(FD_CONTROL, NULL, NULL, SOCK_CLOEXEC |
	    SOCK_NONBLOCK)) >= 0) {
		if (!control_peer_ok(r, fd)) {
			log_warn("ferryctl: refused a client without "
			    "permission");
			control_refuse(fd, "permission denied");
			continue;
		}
		if (!control_request_here(fd) &&
		    r->nctl_waiting < CONTROL_WAITING_MAX) {
			r->ctl_waiting[r->nctl_waiting] = fd;
			r->ctl_waiting_since[r->nctl_waiting++] = now_ms();
			continue;
		}
		serve_control_fd(r, fd);
	}
}

/* The waiting connections of this turn's poll (pfds, n of them): served
 * once their request came, closed unanswered after CONTROL_WAIT_MS. */
static void
serve_waiting_control(struct runner *r, const struct pollfd *pfds,
    size_t n)
{
	size_t i;

	for (i = n; i-- > 0;) {
		int fd = r->ctl_waiting[i];

		if (pfds[i].revents == 0 && now_ms() -
		    r->ctl_waiting_since[i] < CONTROL_WAIT_MS)
			continue;
		r->ctl_waiting[i] = r->ctl_waiting[--r->nctl_waiting];
		r->ctl_waiting_since[i] =
		    r->ctl_waiting_since[r->nctl_waiting];
		if (pfds[i].revents == 0) {
			log_debug("ferryctl: no request in %d ms, closed",
			    CONTROL_WAIT_MS);
			close(fd);
		} else
			serve_control_fd(r, fd);
	}
}

/* The queue's counts by state, read again when older than
 * METRICS_QUEUE_COUNT_MS (one cheap query a second at most). */
static void
refresh_queue_counts(struct runner *r, int64_t now)
{
	if (r->st != NULL && !r->health.failing &&
	    (!r->queue_counts_ok ||
	    now - r->queue_counts_at_ms >= METRICS_QUEUE_COUNT_MS)) {
		r->queue_counts_ok = store_admin_stats(r->st,
		    &r->queue_counts) == 0;
		r->queue_counts_at_ms = now;
	}
}

/* Answers each waiting ferry-metrics connection with one snapshot and
 * closes it.  The snapshot is small and the socket new, so the write
 * does not block; one that would is cut short (the peer sees a short
 * answer, never a stalled runner). */
static void
serve_metrics(struct runner *r)
{
	int fd;

	while ((fd = accept4(r->metrics_fd, NULL, NULL, SOCK_CLOEXEC |
	    SOCK_NONBLOCK)) >= 0) {
		struct metrics_snapshot ms;
		const struct token_state *oauth[METRICS_OAUTH_ROUTES];
		struct mtext t;
		int64_t now = now_ms();

		memset(&ms, 0, sizeof(ms));
		ms.messages_accepted = r->stats.messages;
		ms.intake_failed = r->stats.failed;
		ms.commits = r->stats.commits;
		ms.commit_batch = &r->commit_batch;
		ms.commit_seconds = &r->commit_seconds;
		ms.store_open = r->st != NULL;
		ms.store_state = (int)store_health_state(&r->health);
		if (r->sched != NULL) {
			ms.deliveries = scheduler_metrics(r->sched);
			scheduler_counts(r->sched, &ms.agents_total,
			    &ms.agents_busy);
		}
		ms.workers_total = r->have_pool ? (int)r->pool_workers : -1;
		ms.workers_busy = r->have_pool ? (int)r->pool_busy : -1;
		/* one cheap query a second at most, never per scrape */
		refresh_queue_counts(r, now);
		if (r->st != NULL && r->queue_counts_ok) {
			ms.queue_known = 1;
			ms.queue_active = r->queue_counts.active;
			ms.queue_hold = r->queue_counts.hold;
			ms.rcpts_pending = r->queue_counts.rcpts_pending;
			ms.oldest_age = r->queue_counts.oldest_received_at < 0 ?
			    -1 : now_wall() -
			    r->queue_counts.oldest_received_at;
		}
		ms.stall_known = r->stall_known;
		ms.stall_reasons = r->stall_reasons;
		if (r->sched != NULL) {
			const struct token_client *tc =
			    scheduler_tokens(r->sched);

			for (ms.noauth = 0; ms.noauth < token_client_count(tc)
			    && ms.noauth < METRICS_OAUTH_ROUTES; ms.noauth++)
				oauth[ms.noauth] = token_client_at(tc,
				    ms.noauth);
			ms.oauth = oauth;
		}
		ms.ready = r->st != NULL &&
		    ms.store_state == QUEUE_STATE_OK &&
		    !runner_no_dispatch && r->have_pool &&
		    r->pool_workers > 0;
		mtext_init(&t);
		metrics_snapshot_write(&t, &ms);
		if (r->sched != NULL)
			upstream_pools_metrics(scheduler_pools(r->sched), &t);
		if (send(fd, t.buf, t.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* it has gone, or does not read: its loss */
		}
		mtext_free(&t);
		close(fd);
	}
}

/* Deliveries start unless ferry is stopping, delivery is paused, or
 * their outcome could not be recorded (commits fail, no room). */
static int
may_dispatch(struct runner *r)
{
	return !runner_no_dispatch && !r->cfg->delivery_paused &&
	    store_health_may_dispatch(&r->health);
}

/* Nothing happened for a while: one bounded step of giving the space
 * of a drained backlog back (never with a transaction open, so intake
 * waits at most one step). */
static void
vacuum_when_idle(struct runner *r)
{
	int rc;

	if (r->st == NULL || r->health.failing ||
	    store_in_transaction(r->st))
		return;
	rc = store_vacuum_step(r->st, STORE_VACUUM_PAGES);
	if (rc < 0)
		log_warn("queue: giving back free space: %s",
		    store_errmsg(r->st));
	r->vacuum_more = rc == 1;
}

/* Quiet for a while (rest_heap.h), with no vacuum step left to make and
 * no transaction open: SQLite's page cache and the free heap go back. */
static void
rest_when_quiet(struct runner *r)
{
	if (!rest_heap_due(&r->rest, now_ms()) || r->vacuum_more)
		return;
	if (r->st != NULL && store_in_transaction(r->st))
		return;
	if (r->st != NULL)
		store_release_memory(r->st);
	rest_heap_give_back(&r->rest);
}

/* One small batch of expired delivery history, only while no message
 * waits for its commit, so intake never waits behind pruning; batches
 * follow each other quickly while there is a backlog. */
static void
prune_history(struct runner *r)
{
	int64_t now = now_ms(), n;
	size_t i;

	/* staged history is filed when idle below; under steady load, once
	 * this much waits (a short step, so intake hardly notices) */
	if (r->st != NULL && !r->health.failing &&
	    store_history_staged(r->st) >= STORE_HISTORY_MOVE_AT &&
	    store_history_move(r->st) == -1)
		log_warn("queue: filing the delivery history: %s",
		    store_errmsg(r->st));
	if (now < r->next_prune_ms)
		return;
	if (r->st == NULL || r->health.failing) {
		r->next_prune_ms = now + HISTORY_PRUNE_MS;
		return;
	}
	for (i = 0; i < r->nconns; i++)
		if (intake_conn_pending(r->conns[i])) {
			r->next_prune_ms = now + HISTORY_PRUNE_AGAIN_MS;
			return;
		}
	/* store_history_prune files the staged history first */
	n = store_history_prune(r->st, now_wall() -
	    (double)r->cfg->history_retention, STORE_HISTORY_PRUNE_BATCH);
	if (n < 0)
		log_warn("queue: pruning the delivery history: %s",
		    store_errmsg(r->st));
	r->next_prune_ms = now + (n == STORE_HISTORY_PRUNE_BATCH ?
	    HISTORY_PRUNE_AGAIN_MS : HISTORY_PRUNE_MS);
}

/* Queues the stall report to queue { notify } in the open transaction;
 * a store error loses the transaction like any failed write. */
static void
send_stall_report(struct runner *r, const struct stall_input *in,
    const char *what)
{
	struct stall_report_input ri;
	uint8_t *report = NULL;
	size_t len = 0;
	char qid[QID_LEN + 1];

	memset(&ri, 0, sizeof(ri));
	ri.hostname = r->cfg->hostname;
	ri.rcpt = r->cfg->stall_notify;
	ri.what = what;
	ri.in = in;
	ri.messages = r->queue_counts.active + r->queue_counts.hold;
	ri.now = (time_t)in->now;
	random_bytes(ri.random, sizeof(ri.random));
	stall_report(&ri, &report, &len);
	if (store_begin(r->st) < 0 ||
	    stall_queue_report(r->st, r->cfg, report, len, qid) < 0) {
		log_error("queue: cannot queue the stall report to <%s>: %s",
		    r->cfg->stall_notify, store_errmsg(r->st));
		store_failed(r, store_errmsg(r->st));
	} else {
		log_info("queue: stall report to <%s> queued as %s",
		    r->cfg->stall_notify, qid);
		scheduler_wake(r->sched);
	}
	free(report);
}

/* The stall warning, once a second: the decision is stall.c's; the
 * warning, its end, the metric and the report are written here. */
static void
check_stall(struct runner *r)
{
	const struct sched_metrics *sm = scheduler_metrics(r->sched);
	struct stall_policy p;
	struct stall_input in;
	struct stall_verdict v;
	int64_t now = now_ms();
	char what[600], last[64];
	int pending = 0;

	if (now < r->next_stall_ms || r->health.failing)
		return;
	r->next_stall_ms = now + STALL_CHECK_MS;
	p.warn_age = r->cfg->warn_age;
	p.warn_stall = r->cfg->warn_stall;
	p.notify = r->cfg->stall_notify[0] != '\0';
	memset(&in, 0, sizeof(in));
	in.oldest_received_at = -1;
	/* two index seeks a second; the counts only for the log lines */
	if ((p.warn_age > 0 || p.warn_stall > 0) &&
	    store_stall_figures(r->st, &in.oldest_received_at, &pending) < 0) {
		log_debug("queue: stall check: %s", store_errmsg(r->st));
		return;
	}
	in.now = now_wall();
	in.rcpts_pending = pending;
	in.last_delivered = sm->last_delivered > 0 ? sm->last_delivered : -1;
	in.paused = r->cfg->delivery_paused;
	v = stall_decide(&r->stall, &p, &in);
	r->stall_reasons = v.reasons;
	r->stall_known = 1;
	if (v.warn || v.cleared) {
		r->queue_counts_ok = store_admin_stats(r->st,
		    &r->queue_counts) == 0;
		r->queue_counts_at_ms = now;
		if (!r->queue_counts_ok)
			memset(&r->queue_counts, 0, sizeof(r->queue_counts));
		in.rcpts_pending = r->queue_counts.rcpts_pending;
	}
	if (v.cleared)
		log_info("queue: no longer stalled (%lld message(s) queued, "
		    "%lld recipient(s) waiting)", (long long)
		    (r->queue_counts.active + r->queue_counts.hold),
		    (long long)r->queue_counts.rcpts_pending);
	if (!v.warn)
		return;
	stall_describe(what, sizeof(what), &v, &p, &in);
	if (in.last_delivered > 0)
		rfc5322_date(last, sizeof(last), (time_t)in.last_delivered);
	else
		ferry_strlcpy(last, "none since start", sizeof(last));
	log_warn("queue: stalled: %s; last delivery: %s; %lld message(s) "
	    "queued, %lld recipient(s) waiting", what, last, (long long)
	    (r->queue_counts.active + r->queue_counts.hold),
	    (long long)r->queue_counts.rcpts_pending);
	if (v.notify)
		send_stall_report(r, &in, what);
}

static void
run_loop(struct runner *r)
{
	struct pollfd *pfds = xcalloc(MAX_CONNS + 4 + 1024 +
	    CONTROL_WAITING_MAX, sizeof(*pfds));

	log_hold();     /* a turn's lines in one write, before poll */
	while (!runner_stop) {
		size_t i, n = 0, nconn_fds, nagent_fds, nwait_fds, wait_base;
		int rc, timeout;

		pfds[n].fd = FD_INTAKE;
		pfds[n++].events = POLLIN;
		for (i = 0; i < r->nconns; i++) {
			pfds[n].fd = intake_conn_fd(r->conns[i]);
			pfds[n++].events = POLLIN |
			    (intake_conn_want_write(r->conns[i]) ? POLLOUT : 0);
		}
		nconn_fds = n;
		pfds[n].fd = FD_CONTROL;
		pfds[n++].events = POLLIN;
		/* without a store, agents wait in the backlog */
		pfds[n].fd = r->sched != NULL ? FD_AGENTS : -1;
		pfds[n++].events = POLLIN;
		pfds[n].fd = r->notes.fd;
		pfds[n++].events = POLLIN;
		pfds[n].fd = r->metrics_fd;
		pfds[n++].events = POLLIN;
		nagent_fds = r->sched != NULL ?
		    scheduler_pollfds(r->sched, pfds + n, 1024) : 0;
		n += nagent_fds;
		wait_base = n;
		for (i = 0; i < r->nctl_waiting; i++) {
			pfds[n].fd = r->ctl_waiting[i];
			pfds[n++].events = POLLIN;
		}
		nwait_fds = r->nctl_waiting;
		/* the scheduler's clock counts only while it may run */
		timeout = r->st != NULL && may_dispatch(r) ?
		    scheduler_timeout_ms(r->sched) : SPACE_CHECK_MS;
		if (timeout > SPACE_CHECK_MS)
			timeout = SPACE_CHECK_MS;
		if (r->health.failing &&
		    store_health_wait_ms(&r->health, now_ms()) < timeout)
			timeout = store_health_wait_ms(&r->health, now_ms());
		if (r->vacuum_more && timeout > VACUUM_PAUSE_MS)
			timeout = VACUUM_PAUSE_MS;
		if (r->st != NULL && r->next_prune_ms - now_ms() < timeout)
			timeout = r->next_prune_ms > now_ms() ?
			    (int)(r->next_prune_ms - now_ms()) : 0;
		if (r->agents_less_in >= 0 && r->agents_less_in < timeout)
			timeout = r->agents_less_in;
		if (nwait_fds > 0 && timeout > CONTROL_WAIT_MS / 4)
			timeout = CONTROL_WAIT_MS / 4;
		log_flush();
		rc = poll(pfds, n, timeout);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %s", strerror(errno));
		}
		if (rc == 0 && timeout > 0)
			vacuum_when_idle(r);
		if (rc > 0)
			rest_heap_busy(&r->rest, now_ms());
		else
			rest_when_quiet(r);
		if (r->sched != NULL)
			scheduler_events(r->sched, pfds + nconn_fds + 4,
			    nagent_fds);
		if (pfds[nconn_fds + 2].revents & POLLIN)
			read_master_notes(r);
		if (pfds[nconn_fds + 1].revents & POLLIN && r->sched != NULL)
			scheduler_accept(r->sched, FD_AGENTS);
		serve_waiting_control(r, pfds + wait_base, nwait_fds);
		if (pfds[nconn_fds].revents & POLLIN)
			serve_control(r);
		if (pfds[nconn_fds + 3].revents & POLLIN)
			serve_metrics(r);
		/* Connections first (pfds[1..] match conns[0..] of this
		 * turn); walk backwards because closing swaps in the last. */
		for (i = r->nconns; i-- > 0;) {
			short ev = pfds[i + 1].revents;
			int res = 0;

			if (ev == 0)
				continue;
			if (ev & POLLOUT)
				res = intake_conn_flush(r->conns[i]);
			if (res == 0 && (ev & (POLLIN | POLLHUP | POLLERR)))
				res = intake_conn_read(r->conns[i], r->st,
				    INTAKE_MAX_MESSAGE, runner_state(r));
			if (res == -2) {
				store_failed(r, store_errmsg(r->st));
				continue;
			}
			if (res < 0)
				close_conn(r, i);
		}
		announce_route_caps(r);
		if (pfds[0].revents & POLLIN)
			accept_workers(r);
		if (r->st == NULL)
			continue;
		group_commit(r);
		check_space(r, 0);
		store_health_tick(&r->health, now_ms());
		check_stall(r);
		if (may_dispatch(r)) {
			/* its queries share one read transaction */
			(void)store_begin_read(r->st);
			scheduler_run(r->sched);
			(void)store_end_read(r->st);
		}
		prune_history(r);
		group_commit(r);
		r->agents_less_in = tell_master_agents(r);
	}
	free(pfds);
}

int
queue(const struct child_args *a)
{
	struct ferry_config *cfg;
	struct privsep_target target;
	struct runner r;
	gid_t gid;
	uid_t agent_uid;
	pid_t master = getppid();

	child_signals(on_term, on_usr1);
	umask(077);   /* the database, its WAL and shm: queue user only */
	cfg = child_load_config(a, "ferry-queue");
	memset(&r, 0, sizeof(r));
	rest_heap_init(&r.rest, now_ms());
	route_learn_init(&r.learn);
	r.cfg = cfg;
	r.generation = a->generation;
	r.dkim_keys_fd = -1;
	r.master_pid = master;
	if (geteuid() == 0) {
		if (privsep_lookup(cfg->smtpd_user, &r.peer_uid, &gid) < 0)
			log_fatal("smtpd_user %s does not exist",
			    cfg->smtpd_user);
	} else {
		r.peer_uid = geteuid();
	}
	agent_uid = geteuid();
	{
		if (geteuid() == 0 && privsep_lookup(cfg->deliver_user,
		    &agent_uid, &gid) < 0)
			log_fatal("deliver_user %s does not exist",
			    cfg->deliver_user);
		if (cfg->admin_group[0] != '\0') {
			struct group *gr = getgrnam(cfg->admin_group);

			if (gr != NULL) {
				r.admin_gid = gr->gr_gid;
				r.have_admin_gid = 1;
			}
		}
	}

	/* the DKIM keys are read now, as root: never again after the drop
	 * (a reload brings them from the master) */
	{
		char err[512];

		r.dkim = dkim_signing_new(cfg, NULL, 0, err, sizeof(err));
		if (r.dkim == NULL)
			log_fatal("%s", err);
		intake_set_dkim(r.dkim);
		if (r.dkim->nsigners > 0)
			log_info("queue runner: DKIM signing with %zu key(s)",
			    r.dkim->nsigners);
	}

	memset(&target, 0, sizeof(target));
	target.user = cfg->user;
	privsep_drop(&target);
	child_follow_master(master);

	if ((size_t)snprintf(r.dbpath, sizeof(r.dbpath), "%s/%s/%s",
	    cfg->spool_dir, SPOOL_QUEUE_DIR, QUEUE_DB_NAME) >= sizeof(r.dbpath))
		log_fatal("spool_dir is too long: %s", cfg->spool_dir);
	r.agent_uid = agent_uid;
	if (open_store(&r) < 0)
		log_warn("queue runner started without its store: intake "
		    "is refused");

	fd_set_nonblock(FD_INTAKE, 1);
	fd_set_nonblock(FD_CONTROL, 1);
	fd_set_nonblock(FD_AGENTS, 1);
	fd_set_nonblock(FD_POOL, 1);
	r.metrics_fd = -1;
	{
		int listening = 0;
		socklen_t len = sizeof(listening);

		/* the master hands it over only with metrics { enabled } */
		if (getsockopt(FD_METRICS, SOL_SOCKET, SO_ACCEPTCONN,
		    &listening, &len) == 0 && listening) {
			r.metrics_fd = FD_METRICS;
			fd_set_nonblock(FD_METRICS, 1);
		}
	}
	{
		static const double batch[] = { 1, 2, 4, 8, 16, 32, 64, 128,
		    256, 512 };
		static const double secs[] = { 0.0005, 0.001, 0.0025, 0.005,
		    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

		histogram_init(&r.commit_batch, batch,
		    sizeof(batch) / sizeof(batch[0]));
		histogram_init(&r.commit_seconds, secs,
		    sizeof(secs) / sizeof(secs[0]));
	}
	channel_init(&r.notes, FD_POOL, "the master", master_may_send, 64,
	    CHANNEL_RECORDS | CHANNEL_FATAL);
	r.notes.wmax = 4096;
	r.agents_told = UINT32_MAX;   /* the master hears from us first */
	r.agents_less_in = -1;
	stall_init(&r.stall);
	r.conns = xcalloc(MAX_CONNS, sizeof(*r.conns));
	check_space(&r, 1);
	announce_state(&r);
	/* what start-up used (opening and checking the database, recovery)
	 * goes back before the first wait, not after the first quiet spell */
	if (r.st != NULL)
		store_release_memory(r.st);
	rest_heap_give_back(&r.rest);
	run_loop(&r);

	/* Shutdown: finish what completed, drop the rest. */
	if (r.st != NULL)
		group_commit(&r);
	while (r.nconns > 0)
		close_conn(&r, r.nconns - 1);
	if (r.st != NULL && store_in_transaction(r.st) &&
	    store_commit(r.st) == 0)
		r.stats.commits++;
	if (r.health.failing && r.sched != NULL &&
	    scheduler_unsaved(r.sched) > 0)
		log_warn("queue: stopping with %zu delivery outcome(s) that "
		    "could not be committed (%s); those recipients are tried "
		    "again after the restart", scheduler_unsaved(r.sched),
		    r.health.error);
	log_info("queue runner stopping: %llu message(s) stored in %llu "
	    "commit(s)", (unsigned long long)r.stats.messages,
	    (unsigned long long)r.stats.commits);
	if (r.sched != NULL)
		scheduler_free(r.sched);
	route_learn_free(&r.learn);
	store_close(r.st);
	free(r.conns);
	config_free(r.cfg);
	intake_set_dkim(NULL);
	dkim_signing_free(r.dkim);
	channel_free(&r.notes);
	return 0;
}
