/*
 * deliver_proto.h - what the queue runner and a delivery agent
 * (ferry-deliver) say to each other, over the agent's unix socket.
 *
 *   agent  -> runner  AGENT_HELLO  u32 pid
 *   runner -> agent   JOB          struct deliver_job (below)
 *   runner -> agent   JOB_DATA     u32 seq, data   (the stored message:
 *                                  Received header + content, CRLF lines,
 *                                  NOT dot-stuffed; in order)
 *   runner -> agent   JOB_END      (no fields) - every chunk was sent
 *   agent  -> runner  RCPT_RESULT  struct deliver_result, one per
 *                                  recipient of the job, any time after JOB
 *   agent  -> runner  JOB_DONE     struct deliver_done; the agent is free,
 *                                  or, after a job marked last_job, leaves
 *   agent  -> runner  AGENT_LEAVING (no fields) - told to stop (SIGTERM):
 *                                  the runner sends it no more jobs and,
 *                                  once it is idle, closes; a job that
 *                                  crossed the notice is still run
 *
 * The agent answers every recipient exactly once before JOB_DONE (a
 * connection failure gives each recipient a 4xx result).  It reads every
 * JOB_DATA up to JOB_END even when it has no use for them, so the runner
 * never has to guess where the stream stops.  Either side drops the other
 * on a malformed frame.
 */
#ifndef FERRY_DELIVER_PROTO_H
#define FERRY_DELIVER_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"

#define JOB_MAX_RCPTS 10000
#define JOB_MAX_HOSTS 32
#define JOB_MAX_ALLOWED_FROM 256   /* = CONFIG_MAX_ALLOWED_FROM */

struct deliver_rcpt {
	uint64_t id;              /* recipient row id */
	char *addr;
	uint32_t notify;          /* NOTIFY_* bits (smtp_parse.h) */
	char *orcpt;              /* "" when none */
};

struct deliver_job {
	uint64_t job_id;
	uint32_t last_job;        /* 1: the agent's last job; it exits after
	                             JOB_DONE (the runner alone decides when an
	                             agent retires, and sends it nothing more) */
	char *qid;
	char *sender;             /* "" = null sender */
	int64_t size;             /* bytes of the stored message */
	uint32_t body_type;       /* enum body_type */
	uint32_t smtputf8;
	uint32_t dsn_ret;         /* enum dsn_ret */
	char *envid;              /* "" when none; xtext as received */
	char *helo;               /* our name for EHLO */
	/* the next hop */
	char *route;              /* route name, "mx" for MX delivery */
	char *domain;             /* recipients' domain (MX lookups, logs) */
	char **hosts;             /* "host:port" / "[addr]:port"; none = MX */
	size_t nhosts;
	uint32_t mx_port;         /* port for MX hosts (25) */
	uint32_t tls;             /* enum tls_policy (config.h) */
	char *ca_file;            /* "" = system store */
	uint32_t tls_min_version; /* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
	uint32_t auth;            /* AUTH with this route's credentials */
	uint32_t auth_plaintext;  /* AUTH allowed without TLS */
	char *rewrite_sender;     /* MAIL FROM instead of sender unless it is
	                             <>; "" = none */
	char *rewrite_from;       /* header From not allowed -> this; "" */
	char **allowed_from;      /* From patterns left alone */
	size_t nallowed_from;
	struct deliver_rcpt *rcpts;
	size_t nrcpts;
	char *oauth_token;        /* the route's OAuth2 access token from
	                             ferry-token, "" when the route has none
	                             (short-lived; wiped when freed) */
};

enum deliver_status { DS_DELIVERED = 2, DS_DEFERRED = 4, DS_FAILED = 5 };

struct deliver_result {
	uint64_t rcpt_id;
	uint32_t status;          /* enum deliver_status */
	char *dsn;                /* "2.0.0", "4.4.1", "5.1.1"... */
	char *reply;              /* the remote reply (one line, printable) or
	                             what went wrong ("connect to ...: ...") */
	char *relay;              /* "host[address]:port" or "none" */
	char *tls;                /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
};

/* What an agent found at one host of the job's list (enum host_outcome,
 * host_pool.h: 0 it answered, 1 connection failed, 2 TLS handshake
 * failed, 3 a 421). */
#define DELIVER_HOST_OUTCOME_MAX 3
struct deliver_host_report {
	char *host;               /* as in the job's hosts */
	uint32_t outcome;
	char *error;              /* why it failed; "" when it answered */
};

struct deliver_done {
	uint64_t job_id;
	char *hop;                /* next hop the agent stays connected to,
	                             "" when it closed the connection */
	uint32_t leaving;         /* 1: the agent exits now (its last job, or
	                             told to stop): send it nothing more */
	/* each route host it tried, in the order tried (none for MX) */
	struct deliver_host_report *hosts;
	size_t nhosts;
	char *throttle;           /* a throttling reply a next hop gave
	                             during the job (route_shaper.h), even
	                             one another host made up for; "" */
	/* what the upstream offered in the EHLO of the connection the job
	 * used last (route_caps.h), for the runner to keep per route */
	uint32_t caps_seen;       /* 1: an EHLO was answered in this job */
	uint32_t caps_flags;      /* RCAP_* */
	uint64_t caps_size;       /* SIZE's number, 0: none */
};

/* An active probe of one pool host (IMSG_PROBE): connect, greeting,
 * EHLO, QUIT, no mail.  The agent answers JOB_DONE with job_id and one
 * host report. */
struct deliver_probe {
	uint64_t job_id;
	char *route;
	char *host;               /* "host:port" / "[addr]:port" */
	char *helo;
};

/* Encoders append fields to a frame begun with ipc_out_init(type).
 * Decoders read one frame's fields, check ipc_end, and return -1 on any
 * malformation (leaving nothing to free). */
void deliver_job_encode(const struct deliver_job *j, struct ipc_out *m);
int deliver_job_decode(struct ipc_in *in, struct deliver_job *j);
void deliver_job_free(struct deliver_job *j);

void deliver_result_encode(const struct deliver_result *r,
    struct ipc_out *m);
int deliver_result_decode(struct ipc_in *in, struct deliver_result *r);
void deliver_result_free(struct deliver_result *r);

void deliver_done_encode(const struct deliver_done *d, struct ipc_out *m);
int deliver_done_decode(struct ipc_in *in, struct deliver_done *d);
void deliver_done_free(struct deliver_done *d);

void deliver_probe_encode(const struct deliver_probe *p,
    struct ipc_out *m);
int deliver_probe_decode(struct ipc_in *in, struct deliver_probe *p);
void deliver_probe_free(struct deliver_probe *p);

/* The key of a job's next hop: "route:host:port" of its first host for
 * a route with hosts (the host the runner chose: a connection kept to
 * another host of the pool, perhaps one whose circuit opened since,
 * serves no job that did not choose it), "route:domain:port" for MX
 * delivery.  An agent keeps its connection for the next job with the
 * same key and reports it in JOB_DONE.hop. */
void deliver_hop_key(const struct deliver_job *j, char *out, size_t outlen);

#endif
