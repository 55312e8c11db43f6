/*
 * lifecycle.c - the transitions of a queued recipient (lifecycle.h).
 *
 * Pure: no clock, no store, no allocation.  The scheduler gives it an
 * outcome and the facts, records what it returns and queues the notice
 * it names.  A delivery agent that went away is not an outcome of the
 * delivery: it changes nothing but the dispatch (due again at once, no
 * attempt counted).
 */
#include "autoconfig.h"

#include "lifecycle.h"
#include "smtp_parse.h"

int
lifecycle_expired(double received_at, double now,
    const struct lifecycle_policy *policy)
{
	return now - received_at >= policy->max_lifetime;
}

/* The retry schedule's step after attempts failed attempts, never past
 * the end of the lifetime (the last try is when it ends). */
static double
next_retry(const struct lifecycle_policy *p, int attempts,
    double received_at, double now)
{
	size_t i = attempts > 0 ? (size_t)attempts : 0;
	double next, end = received_at + p->max_lifetime;

	if (i >= p->nretry_schedule)
		i = p->nretry_schedule - 1;
	next = now + p->retry_schedule[i];
	return next > end ? (end > now ? end : now) : next;
}

static int
wants(uint32_t notify, uint32_t bit)
{
	return notify == 0 || (notify & bit) != 0;
}

struct transition
lifecycle_decide(enum attempt_outcome outcome, int attempts,
    double received_at, double now, const struct lifecycle_policy *p,
    uint32_t notify)
{
	struct transition t = { RCPT_PENDING, STATUS_NONE, 0, now,
	    NOTICE_NONE };

	switch (outcome) {
	case OUTCOME_AGENT_GONE:
		return t;             /* due again at once, nothing counted */
	case OUTCOME_DELIVERED:
		t.state = RCPT_DELIVERED;
		t.status = STATUS_SENT;
		t.counts_attempt = 1;
		t.next_attempt = 0;
		return t;
	case OUTCOME_PERMANENT:
		t.state = RCPT_FAILED;
		t.status = STATUS_BOUNCED;
		t.counts_attempt = 1;
		t.next_attempt = 0;
		t.notice = wants(notify, NOTIFY_FAILURE) ? NOTICE_BOUNCE :
		    NOTICE_NONE;
		return t;
	case OUTCOME_NOT_TRIED:
		if (!lifecycle_expired(received_at, now, p))
			return t;     /* nothing to decide yet */
		break;
	case OUTCOME_TEMPORARY:
		break;
	}
	t.counts_attempt = 1;
	if (lifecycle_expired(received_at, now, p)) {
		t.state = RCPT_FAILED;
		t.status = STATUS_EXPIRED;
		t.next_attempt = 0;
		t.notice = wants(notify, NOTIFY_FAILURE) ? NOTICE_BOUNCE :
		    NOTICE_NONE;
		return t;
	}
	t.status = STATUS_DEFERRED;
	t.next_attempt = next_retry(p, attempts, received_at, now);
	if (p->delay_warning > 0 && now - received_at >= p->delay_warning &&
	    wants(notify, NOTIFY_DELAY))
		t.notice = NOTICE_DELAY;
	return t;
}

double
lifecycle_hold_until(const struct transition *t, double until,
    double received_at, const struct lifecycle_policy *p)
{
	double end = received_at + p->max_lifetime;

	if (t->state != RCPT_PENDING || t->status != STATUS_DEFERRED ||
	    until <= t->next_attempt)
		return t->next_attempt;
	if (until > end)
		until = end > t->next_attempt ? end : t->next_attempt;
	return until;
}

const char *
rcpt_state_name(enum rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING: return "pending";
	case RCPT_DELIVERED: return "delivered";
	case RCPT_FAILED: return "failed";
	}
	return "pending";
}

const char *
attempt_status_name(enum attempt_status s)
{
	switch (s) {
	case STATUS_SENT: return "sent";
	case STATUS_DEFERRED: return "deferred";
	case STATUS_BOUNCED: return "bounced";
	case STATUS_EXPIRED: return "expired";
	case STATUS_NONE: break;
	}
	return "none";
}
