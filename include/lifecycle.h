/*
 * lifecycle.h - the life of a queued recipient, as a pure function.
 *
 * A recipient is pending until an attempt makes it delivered or failed,
 * or its lifetime in the queue ends (expired, which fails it with
 * 4.4.7).  lifecycle_decide() takes an attempt's outcome, the attempts
 * made so far, the message's arrival, the clock and the policy, and
 * returns the new state, when to try next and which notice is owed.  It
 * reads no clock and touches no store: the caller records the result.
 * Strings for states and statuses exist only at the store's boundary
 * (store_sqlite.c).
 */
#ifndef FERRY_LIFECYCLE_H
#define FERRY_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>

enum rcpt_state {
	RCPT_PENDING,             /* still to deliver */
	RCPT_DELIVERED,           /* final: the next hop took it */
	RCPT_FAILED               /* final: bounced or expired */
};

/* What one attempt (or its absence) came to. */
enum attempt_outcome {
	OUTCOME_DELIVERED,        /* 2xx */
	OUTCOME_TEMPORARY,        /* 4xx, or no next hop answered */
	OUTCOME_PERMANENT,        /* 5xx */
	OUTCOME_NOT_TRIED,        /* due, but not attempted (lifetime check) */
	OUTCOME_AGENT_GONE        /* the delivery agent went away first */
};

/* The attempt's row of history, as the log and the store name it. */
enum attempt_status {
	STATUS_NONE,              /* nothing to record */
	STATUS_SENT,
	STATUS_DEFERRED,
	STATUS_BOUNCED,
	STATUS_EXPIRED
};

enum notice {
	NOTICE_NONE,
	NOTICE_BOUNCE,            /* an RFC 3464 failure report */
	NOTICE_DELAY              /* an RFC 3464 delay warning */
};

struct lifecycle_policy {
	const int *retry_schedule;     /* seconds; the last value repeats */
	size_t nretry_schedule;        /* at least 1 */
	double max_lifetime;           /* seconds in the queue */
	double delay_warning;          /* seconds; 0 = never */
};

struct transition {
	enum rcpt_state state;
	enum attempt_status status;
	int counts_attempt;       /* the attempt is recorded and counted */
	double next_attempt;      /* when pending: when to try next */
	enum notice notice;       /* owed to the sender (NOTIFY allowing) */
};

/* attempts: attempts made before this one; notify: the recipient's
 * NOTIFY_* bits (0 = not given, the defaults apply). */
struct transition lifecycle_decide(enum attempt_outcome outcome,
    int attempts, double received_at, double now,
    const struct lifecycle_policy *policy, uint32_t notify);

/* The next attempt of a recipient deferred (t from lifecycle_decide)
 * while its next hop is down, held until at least until (the hop's next
 * probe): never before t's own next attempt, never past the end of the
 * lifetime unless t's already is.  Any other transition is unchanged. */
double lifecycle_hold_until(const struct transition *t, double until,
    double received_at, const struct lifecycle_policy *policy);

/* Nonzero when the recipient's time in the queue is over at now. */
int lifecycle_expired(double received_at, double now,
    const struct lifecycle_policy *policy);

/* The store's and the log's words for states and statuses. */
const char *rcpt_state_name(enum rcpt_state s);
const char *attempt_status_name(enum attempt_status s);

#endif
