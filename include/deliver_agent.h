/*
 * deliver_agent.h - what the parts of a delivery agent share: the
 * agent's state, one job in progress, and the calls into deliver.c that
 * report a recipient's result and read the message body from the queue
 * runner.  Only ferry-deliver includes it.
 */
#ifndef FERRY_DELIVER_AGENT_H
#define FERRY_DELIVER_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "credentials.h"
#include "ipc.h"
#include "smtp_client.h"

/* R_LATER: left by a 452 4.5.3 for the next transaction (pending again
 * once this one is over). */
enum rcpt_state { R_PENDING = 0, R_ACCEPTED, R_DONE, R_LATER };

/* The queue runner's socket. */
struct runner_link {
	struct channel ch;
};

/* What went wrong with the last next hop tried. */
struct failure {
	uint32_t status;
	char dsn[16];
	char text[2048];
	char relay[320];
	char tls[128];
};

struct deliver_agent {
	struct ferry_config *cfg;
	struct credentials creds;
	struct runner_link runner;
	struct smtp_conn conn;
	int results_held;         /* RCPT_RESULT frames written to the
	                             runner's buffer, not yet sent */
	struct host_tried *tried; /* JOB_MAX_HOSTS of them, lent to each
	                             job in turn (a job fills what it
	                             counts in ntried) */
};

/* What the job found at one route host (JOB_DONE's host reports). */
struct host_tried {
	char host[256];           /* as in the job's hosts */
	uint32_t outcome;         /* enum host_outcome (host_pool.h) */
	char error[512];
};

/* One job in progress. */
struct job_ctx {
	struct deliver_agent *ag;
	struct deliver_job *job;
	unsigned char *state;     /* enum rcpt_state per recipient */
	size_t npending;          /* recipients without a result */
	struct failure last;
	int data_done;            /* JOB_END seen */
	int have_seq;
	uint32_t next_seq;
	int saw_421;              /* a 421 since the host was last noted */
	struct host_tried *tried; /* the agent's, JOB_MAX_HOSTS of them */
	size_t ntried;
	/* A server that answered 452 4.5.3 (too many recipients) after it
	 * took others: the rest stay pending for a further transaction on
	 * the same connection, and the body is kept for it. */
	int split;                /* this transaction left some */
	int keep_body;            /* keep the body as it streams */
	unsigned char *body;      /* kept: the body as the runner sent it */
	size_t body_len, body_cap;
	int body_kept;            /* body[] holds all of it */
	char throttle[2048];      /* the first throttling reply, for the
	                             runner (JOB_DONE); "" */
	struct ehlo_caps ehlo;    /* the EHLO of the last session that was
	                             ready for a transaction in this job */
	int ehlo_seen;
};

/* Reports recipient i's result to the runner (exactly once each).  The
 * frame waits in the buffer for the job's JOB_DONE, so the runner reads
 * both at one wake-up; job_results_send sends it sooner. */
void job_result(struct job_ctx *x, size_t i, uint32_t status,
    const char *dsn, const char *reply, const char *relay, const char *tls);
/* Sends the results held: called before the agent waits on anything
 * (a server, a name, the runner), so a result never waits behind a
 * network round trip and an agent that dies later has reported it. */
void job_results_send(struct job_ctx *x);
/* Every recipient still without a result (and, when with_accepted, those
 * a server accepted) gets the same one. */
void job_result_all(struct job_ctx *x, int with_accepted, uint32_t status,
    const char *dsn, const char *reply, const char *relay, const char *tls);
/* The next JOB_DATA chunk, or NULL at JOB_END. */
const uint8_t *job_next_chunk(struct job_ctx *x, size_t *len);
/* Nonzero when the next chunk (or the end) is at hand: the next
 * job_next_chunk will not wait for the runner. */
int job_chunk_ready(const struct job_ctx *x);

#endif
