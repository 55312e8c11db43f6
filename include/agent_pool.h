/*
 * agent_pool.h - the queue runner's side of the delivery agents' socket:
 * the agents connected to it, a channel to each (channel.h), and the
 * streaming of a job's message body from the store as an agent's socket
 * drains, each chunk copied once: from the store's row into the frame.
 *
 * What a frame means for the queue (a result, the end of a job, an agent
 * gone with a job in flight) is the scheduler's business: the pool calls
 * its hooks.  Agents are peers that may lie: a frame outside their table
 * (AGENT_HELLO, RCPT_RESULT, JOB_DONE, AGENT_LEAVING), over the cap, or
 * that a hook cannot decode drops the agent through channel_violation.
 * The runner also ends an agent's connection when it has been free for
 * delivery { agent_idle }: agents run only while there is mail to send.
 */
#ifndef FERRY_AGENT_POOL_H
#define FERRY_AGENT_POOL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "channel.h"
#include "ipc.h"
#include "store.h"

#define POOL_MAX_AGENTS 1024

struct sched_job;             /* what the scheduler keeps about a job */

struct pool_agent {
	struct channel ch;        /* frames to and from it */
	pid_t pid;                /* 0 until AGENT_HELLO */
	int busy;                 /* a job is in flight */
	int jobs_sent;            /* jobs handed to it so far */
	int retiring;             /* its last job was sent, or it said it
	                             is leaving: it gets no more jobs */
	int leaving;              /* it sent AGENT_LEAVING */
	int64_t idle_since;       /* ms: when it last became free */
	char hop[512];            /* next hop it is still connected to */
	/* the job in flight */
	uint64_t job_id;
	int64_t msgid;
	char qid[QID_LEN + 1];
	char dest[320];
	struct sched_job *job;    /* the scheduler's; NULL when idle */
	uint32_t next_seq;        /* next body chunk to send */
	int data_done;            /* JOB_END queued */
};

/* The scheduler's answers to what agents say.  result and done return
 * 0, or -1 when the frame is a lie (the agent is dropped); vanished is
 * called when an agent goes with a job in flight; idle when an agent
 * became free or new (a chance to dispatch). */
struct pool_hooks {
	int (*result)(void *arg, struct pool_agent *a, struct ipc_in *in);
	int (*done)(void *arg, struct pool_agent *a, struct ipc_in *in);
	void (*vanished)(void *arg, struct pool_agent *a, const char *why);
	void (*idle)(void *arg);
};

struct agent_pool {
	struct store *st;
	uid_t agent_uid;
	struct pool_agent *agents[POOL_MAX_AGENTS];
	size_t nagents;
	struct pool_hooks hooks;
	void *arg;
};

void agent_pool_init(struct agent_pool *p, struct store *st,
    uid_t agent_uid, const struct pool_hooks *hooks, void *arg);
/* Closes every agent (their jobs must be cleared by the caller first). */
void agent_pool_close(struct agent_pool *p);
/* Accepts agents waiting on the listening socket (the delivery user's
 * only). */
void agent_pool_accept(struct agent_pool *p, int listen_fd);
size_t agent_pool_pollfds(struct agent_pool *p, struct pollfd *pfds,
    size_t max);
void agent_pool_events(struct agent_pool *p, const struct pollfd *pfds,
    size_t n);
/* The JOB frame for the idle agent a, begun in its channel's write
 * buffer for the caller to encode the job into; agent_pool_start then
 * sends it and streams the body of a->msgid after it. */
struct ipc_out *agent_pool_job(struct agent_pool *p, struct pool_agent *a);
void agent_pool_start(struct agent_pool *p, struct pool_agent *a);
/* An active probe of a pool host: agent_pool_probe begins the PROBE
 * frame (the scheduler adds its fields), agent_pool_start_probe sends it;
 * the agent is busy until its JOB_DONE, with no body to stream. */
struct ipc_out *agent_pool_probe(struct agent_pool *p, struct pool_agent *a);
void agent_pool_start_probe(struct agent_pool *p, struct pool_agent *a);
/* Closes the connection of every agent that has been free for idle_ms
 * (the agent exits when the runner closes); returns the ms until the next
 * one is due to go, or -1 when none is free.  Only a free agent goes, and
 * it leaves the pool before it is closed: no job can be handed to it. */
int64_t agent_pool_retire_idle(struct agent_pool *p, int64_t idle_ms);

#endif
