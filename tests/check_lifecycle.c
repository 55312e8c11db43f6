/*
 * check_lifecycle.c - every transition of a queued recipient
 * (queue/lifecycle.c), without a daemon, a store or a clock: the time is
 * a parameter.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "lifecycle.h"
#include "smtp_parse.h"

#define T0 1700000000.0         /* the message arrived */

static const int schedule[] = { 60, 300, 1800 };
static const struct lifecycle_policy policy = {
	schedule, 3, 5.0 * 86400, 4.0 * 3600
};

static struct transition
decide(enum attempt_outcome o, int attempts, double age, uint32_t notify)
{
	return lifecycle_decide(o, attempts, T0, T0 + age, &policy, notify);
}

START_TEST(test_delivered)
{
	struct transition t = decide(OUTCOME_DELIVERED, 3, 7200, 0);

	ck_assert_int_eq(t.state, RCPT_DELIVERED);
	ck_assert_int_eq(t.status, STATUS_SENT);
	ck_assert_int_eq(t.counts_attempt, 1);
	ck_assert(t.next_attempt == 0);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
	/* past the lifetime a delivery is still a delivery */
	t = decide(OUTCOME_DELIVERED, 9, 6 * 86400, 0);
	ck_assert_int_eq(t.state, RCPT_DELIVERED);
}
END_TEST

START_TEST(test_permanent_bounces)
{
	struct transition t = decide(OUTCOME_PERMANENT, 0, 1, 0);

	ck_assert_int_eq(t.state, RCPT_FAILED);
	ck_assert_int_eq(t.status, STATUS_BOUNCED);
	ck_assert_int_eq(t.counts_attempt, 1);
	ck_assert(t.next_attempt == 0);
	ck_assert_int_eq(t.notice, NOTICE_BOUNCE);
	/* NOTIFY=FAILURE asks for it; NOTIFY=NEVER or SUCCESS,DELAY not */
	t = decide(OUTCOME_PERMANENT, 0, 1, NOTIFY_FAILURE);
	ck_assert_int_eq(t.notice, NOTICE_BOUNCE);
	t = decide(OUTCOME_PERMANENT, 0, 1, NOTIFY_NEVER);
	ck_assert_int_eq(t.state, RCPT_FAILED);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
	t = decide(OUTCOME_PERMANENT, 0, 1, NOTIFY_SUCCESS | NOTIFY_DELAY);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
}
END_TEST

START_TEST(test_temporary_follows_schedule)
{
	struct transition t = decide(OUTCOME_TEMPORARY, 0, 10, 0);

	ck_assert_int_eq(t.state, RCPT_PENDING);
	ck_assert_int_eq(t.status, STATUS_DEFERRED);
	ck_assert_int_eq(t.counts_attempt, 1);
	ck_assert(t.next_attempt == T0 + 10 + 60);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
	t = decide(OUTCOME_TEMPORARY, 1, 100, 0);
	ck_assert(t.next_attempt == T0 + 100 + 300);
	t = decide(OUTCOME_TEMPORARY, 2, 500, 0);
	ck_assert(t.next_attempt == T0 + 500 + 1800);
	/* the last step repeats */
	t = decide(OUTCOME_TEMPORARY, 7, 9000, 0);
	ck_assert(t.next_attempt == T0 + 9000 + 1800);
}
END_TEST

START_TEST(test_temporary_capped_at_lifetime)
{
	/* 100 s before the end: the next try is the end, not 1800 s on */
	struct transition t = decide(OUTCOME_TEMPORARY, 5,
	    policy.max_lifetime - 100, 0);

	ck_assert_int_eq(t.state, RCPT_PENDING);
	ck_assert(t.next_attempt == T0 + policy.max_lifetime);
}
END_TEST

START_TEST(test_temporary_expires)
{
	struct transition t = decide(OUTCOME_TEMPORARY, 40,
	    policy.max_lifetime, 0);

	ck_assert_int_eq(t.state, RCPT_FAILED);
	ck_assert_int_eq(t.status, STATUS_EXPIRED);
	ck_assert_int_eq(t.counts_attempt, 1);
	ck_assert(t.next_attempt == 0);
	ck_assert_int_eq(t.notice, NOTICE_BOUNCE);
	t = decide(OUTCOME_TEMPORARY, 40, policy.max_lifetime + 5,
	    NOTIFY_NEVER);
	ck_assert_int_eq(t.status, STATUS_EXPIRED);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
}
END_TEST

START_TEST(test_delay_warning)
{
	struct transition t;

	/* before delay_warning: none; from it on: a warning, while the
	 * recipient stays pending (the store sends it once) */
	t = decide(OUTCOME_TEMPORARY, 3, policy.delay_warning - 1, 0);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
	t = decide(OUTCOME_TEMPORARY, 3, policy.delay_warning, 0);
	ck_assert_int_eq(t.state, RCPT_PENDING);
	ck_assert_int_eq(t.notice, NOTICE_DELAY);
	t = decide(OUTCOME_TEMPORARY, 3, policy.delay_warning,
	    NOTIFY_DELAY);
	ck_assert_int_eq(t.notice, NOTICE_DELAY);
	t = decide(OUTCOME_TEMPORARY, 3, policy.delay_warning,
	    NOTIFY_FAILURE);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
	t = decide(OUTCOME_TEMPORARY, 3, policy.delay_warning, NOTIFY_NEVER);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
}
END_TEST

START_TEST(test_delay_warning_off)
{
	struct lifecycle_policy p = policy;
	struct transition t;

	p.delay_warning = 0;
	t = lifecycle_decide(OUTCOME_TEMPORARY, 3, T0, T0 + 86400, &p, 0);
	ck_assert_int_eq(t.status, STATUS_DEFERRED);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
}
END_TEST

START_TEST(test_not_tried)
{
	/* due but not tried: nothing until the lifetime is over */
	struct transition t = decide(OUTCOME_NOT_TRIED, 4, 3600, 0);

	ck_assert_int_eq(t.state, RCPT_PENDING);
	ck_assert_int_eq(t.status, STATUS_NONE);
	ck_assert_int_eq(t.counts_attempt, 0);
	ck_assert_int_eq(t.notice, NOTICE_NONE);
	t = decide(OUTCOME_NOT_TRIED, 4, policy.max_lifetime + 1, 0);
	ck_assert_int_eq(t.state, RCPT_FAILED);
	ck_assert_int_eq(t.status, STATUS_EXPIRED);
	ck_assert_int_eq(t.notice, NOTICE_BOUNCE);
	ck_assert(lifecycle_expired(T0, T0 + policy.max_lifetime, &policy));
	ck_assert(!lifecycle_expired(T0, T0 + policy.max_lifetime - 1,
	    &policy));
}
END_TEST

START_TEST(test_agent_gone_changes_nothing)
{
	/* the agent went away: due again now, no attempt, no retry step,
	 * no notice - even at an age that would warn or expire */
	double ages[] = { 0, 10, policy.delay_warning,
	    policy.max_lifetime + 10 };
	size_t i;

	for (i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
		struct transition t = decide(OUTCOME_AGENT_GONE, 2, ages[i],
		    0);

		ck_assert_int_eq(t.state, RCPT_PENDING);
		ck_assert_int_eq(t.status, STATUS_NONE);
		ck_assert_int_eq(t.counts_attempt, 0);
		ck_assert(t.next_attempt == T0 + ages[i]);
		ck_assert_int_eq(t.notice, NOTICE_NONE);
	}
}
END_TEST

/* Held for a down next hop: the bulk path takes lifecycle_decide's
 * transition and only moves a deferral's next attempt later, to the
 * hop's next probe, never past the end of the lifetime; the attempt is
 * counted, and expiry, bounces and delivery are left as decided. */
START_TEST(test_hold_until_probe)
{
	struct transition t;
	double age, until, at;
	int attempts;

	/* a deferral waits for the probe, counted as an attempt */
	t = decide(OUTCOME_TEMPORARY, 0, 100, 0);
	ck_assert(t.next_attempt == T0 + 100 + 60);
	at = lifecycle_hold_until(&t, T0 + 100 + 900, T0, &policy);
	ck_assert(at == T0 + 100 + 900);
	ck_assert_int_eq(t.counts_attempt, 1);
	ck_assert_int_eq(t.status, STATUS_DEFERRED);
	/* a probe sooner than its own step moves nothing earlier */
	t = decide(OUTCOME_TEMPORARY, 2, 100, 0);
	ck_assert(lifecycle_hold_until(&t, T0 + 110, T0, &policy) ==
	    t.next_attempt);
	ck_assert(lifecycle_hold_until(&t, 0, T0, &policy) ==
	    t.next_attempt);
	/* never past the end of the lifetime: the last try is then */
	t = decide(OUTCOME_TEMPORARY, 0, policy.max_lifetime - 1000, 0);
	at = lifecycle_hold_until(&t, T0 + policy.max_lifetime + 3600, T0,
	    &policy);
	ck_assert(at == T0 + policy.max_lifetime);
	/* expired: failed with a bounce, as lifecycle_decide says */
	t = decide(OUTCOME_TEMPORARY, 7, policy.max_lifetime, 0);
	ck_assert_int_eq(t.status, STATUS_EXPIRED);
	ck_assert(lifecycle_hold_until(&t, T0 + policy.max_lifetime + 900,
	    T0, &policy) == 0);
	/* the agreement over many cases: the result is the decided next
	 * attempt or the probe time, within [decided, end of lifetime] */
	for (attempts = 0; attempts < 6; attempts++)
		for (age = 0; age <= policy.max_lifetime + 100; age += 3917)
			for (until = T0; until < T0 + policy.max_lifetime +
			    7200; until += 5003) {
				t = decide(OUTCOME_TEMPORARY, attempts, age, 0);
				at = lifecycle_hold_until(&t, until, T0,
				    &policy);
				if (t.state != RCPT_PENDING) {
					ck_assert(at == t.next_attempt);
					continue;
				}
				ck_assert(at >= t.next_attempt);
				ck_assert(at == t.next_attempt || at == until ||
				    at == T0 + policy.max_lifetime);
				ck_assert(at <= T0 + policy.max_lifetime ||
				    at == t.next_attempt);
				if (until <= T0 + policy.max_lifetime &&
				    until >= t.next_attempt)
					ck_assert(at == until);
			}
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(rcpt_state_name(RCPT_PENDING), "pending");
	ck_assert_str_eq(rcpt_state_name(RCPT_DELIVERED), "delivered");
	ck_assert_str_eq(rcpt_state_name(RCPT_FAILED), "failed");
	ck_assert_str_eq(attempt_status_name(STATUS_SENT), "sent");
	ck_assert_str_eq(attempt_status_name(STATUS_DEFERRED), "deferred");
	ck_assert_str_eq(attempt_status_name(STATUS_BOUNCED), "bounced");
	ck_assert_str_eq(attempt_status_name(STATUS_EXPIRED), "expired");
}
END_TEST

static Suite *
lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("transitions");

	tcase_add_test(tc, test_delivered);
	tcase_add_test(tc, test_permanent_bounces);
	tcase_add_test(tc, test_temporary_follows_schedule);
	tcase_add_test(tc, test_temporary_capped_at_lifetime);
	tcase_add_test(tc, test_temporary_expires);
	tcase_add_test(tc, test_delay_warning);
	tcase_add_test(tc, test_delay_warning_off);
	tcase_add_test(tc, test_not_tried);
	tcase_add_test(tc, test_agent_gone_changes_nothing);
	tcase_add_test(tc, test_hold_until_probe);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(lifecycle_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
