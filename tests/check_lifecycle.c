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
