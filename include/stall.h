/*
 * stall.h - the stall warning (queue { warn_age, warn_stall, notify }):
 * whether the queue is stalled, when to say so, and the report mailed
 * about it.  Pure: stall_decide() reads the figures the runner gathers
 * on its timer (queue.c) and the state it keeps between two calls, and
 * stall_report() builds the bytes of the report; logging, the metric
 * and queueing the report stay with the runner (stall_queue.c).
 *
 * Two reasons, each off when its threshold is 0:
 * - age: the oldest message in the queue is older than warn_age;
 * - stall: recipients are waiting and nothing was delivered for
 *   warn_stall, counted from the last delivery, or from when mail began
 *   to wait (the runner's start at the latest) when that is later; not
 *   while delivery is paused by the operator.
 * A warning is due when a reason begins that was not warned about, and
 * again every STALL_REPEAT seconds while the queue stays stalled; the
 * end is said once.  The report is due with a warning, at most once per
 * STALL_REPEAT however often the state comes and goes.
 */
#ifndef FERRY_STALL_H
#define FERRY_STALL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STALL_REPEAT 3600   /* seconds between two warnings, two reports */

enum stall_reason {
	STALL_AGE = 1,      /* the oldest message is older than warn_age */
	STALL_STALL = 2     /* nothing delivered for warn_stall */
};

struct stall_policy {
	int64_t warn_age;       /* seconds; 0: off */
	int64_t warn_stall;     /* seconds; 0: off */
	int notify;             /* a report is wanted */
};

/* What the runner sees now. */
struct stall_input {
	double now;                   /* wall clock */
	double oldest_received_at;    /* -1: the queue is empty */
	int64_t rcpts_pending;        /* recipients waiting for delivery */
	double last_delivered;        /* -1: none since the runner started */
	int paused;                   /* delivery { paused } */
};

/* Kept by the runner between two calls; zero it, then stall_init. */
struct stall_state {
	unsigned reasons;             /* STALL_* bits stalled now */
	unsigned warned;              /* those a warning named */
	double warned_at;             /* the last warning, -1 */
	double notified_at;           /* the last report, -1 */
	double waiting_since;         /* mail began to wait, -1: none */
};

struct stall_verdict {
	unsigned reasons;             /* STALL_* bits stalled now */
	int warn;                     /* log the warning now */
	int cleared;                  /* it just ended: log that once */
	int notify;                   /* queue a report now */
	double oldest_age;            /* seconds, -1: empty */
	double idle_for;              /* seconds without a delivery while
	                                 mail waits, -1: none waits */
};

void stall_init(struct stall_state *s);
struct stall_verdict stall_decide(struct stall_state *s,
    const struct stall_policy *p, const struct stall_input *in);

/* "oldest message 2d 3h old (warn_age 1d); nothing delivered for 45m
 * while 12 recipient(s) wait (warn_stall 30m)": the reasons in words,
 * for the log line and the report. */
void stall_describe(char *out, size_t len, const struct stall_verdict *v,
    const struct stall_policy *p, const struct stall_input *in);

/* The report's bytes (CRLF lines, a plain text message from
 * MAILER-DAEMON@hostname to rcpt), malloc'd into *out and *outlen. */
struct stall_report_input {
	const char *hostname;
	const char *rcpt;             /* queue { notify } */
	const char *what;             /* stall_describe()'s text */
	const struct stall_input *in;
	int64_t messages;             /* queue depth: messages */
	time_t now;
	uint8_t random[8];            /* for the Message-ID */
};
void stall_report(const struct stall_report_input *r, uint8_t **out,
    size_t *outlen);

#endif
