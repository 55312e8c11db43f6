/*
 * check_stall.c - the stall warning's decision and report
 * (queue/stall.c): each reason begins at its threshold and not before,
 * a warning is due once when it begins and again only after
 * STALL_REPEAT, the end is said once, the report is due at most once per
 * STALL_REPEAT however often the stall comes and goes, the idle time
 * counts from the later of the last delivery and when mail began to
 * wait, pause and 0 turn checks off, and the report says what it must.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stall.h"

#define T0 1700000000.0

static struct stall_policy
policy(int64_t age, int64_t stall, int notify)
{
	struct stall_policy p;

	p.warn_age = age;
	p.warn_stall = stall;
	p.notify = notify;
	return p;
}

/* A queue whose oldest message arrived at oldest (-1: empty), with
 * pending recipients waiting, the last delivery at last (-1: none). */
static struct stall_input
input(double now, double oldest, int64_t pending, double last)
{
	struct stall_input in;

	memset(&in, 0, sizeof(in));
	in.now = now;
	in.oldest_received_at = oldest;
	in.rcpts_pending = pending;
	in.last_delivered = last;
	return in;
}

START_TEST(test_age_begins_at_threshold_warns_once)
{
	struct stall_state s;
	struct stall_policy p = policy(60, 0, 0);
	struct stall_input in;
	struct stall_verdict v;
	double t;

	stall_init(&s);
	in = input(T0 + 59, T0, 1, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert_int_eq(v.warn, 0);
	ck_assert_int_eq(v.cleared, 0);
	in = input(T0 + 60, T0, 1, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, STALL_AGE);
	ck_assert_int_eq(v.warn, 1);
	ck_assert_int_eq(v.notify, 0);     /* none wanted */
	ck_assert(v.oldest_age == 60);
	/* every tick of the next hour: stalled, no new warning */
	for (t = T0 + 61; t < T0 + 60 + STALL_REPEAT; t += 1) {
		in = input(t, T0, 1, -1);
		v = stall_decide(&s, &p, &in);
		ck_assert_uint_eq(v.reasons, STALL_AGE);
		ck_assert_int_eq(v.warn, 0);
	}
	/* an hour after the first: once more */
	in = input(T0 + 60 + STALL_REPEAT, T0, 1, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_int_eq(v.warn, 1);
	/* the old message went: cleared once */
	in = input(T0 + 61 + STALL_REPEAT, -1, 0, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert_int_eq(v.cleared, 1);
	ck_assert(v.oldest_age < 0);
	in = input(T0 + 62 + STALL_REPEAT, -1, 0, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_int_eq(v.cleared, 0);
}
END_TEST

START_TEST(test_stall_counts_from_later_of_delivery_and_waiting)
{
	struct stall_state s;
	struct stall_policy p = policy(0, 30, 0);
	struct stall_input in;
	struct stall_verdict v;

	stall_init(&s);
	/* nothing waits: never stalled, however old the last delivery */
	in = input(T0, -1, 0, T0 - 1000);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert(v.idle_for < 0);
	/* mail begins to wait at T0 + 100: counted from then, not from
	 * the delivery long before */
	in = input(T0 + 100, T0 + 100, 2, T0 - 1000);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert(v.idle_for == 0);
	in = input(T0 + 129, T0 + 100, 2, T0 - 1000);
	ck_assert_uint_eq(stall_decide(&s, &p, &in).reasons, 0);
	in = input(T0 + 130, T0 + 100, 2, T0 - 1000);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, STALL_STALL);
	ck_assert_int_eq(v.warn, 1);
	ck_assert(v.idle_for == 30);
	/* a delivery: counted from it, so no longer stalled */
	in = input(T0 + 131, T0 + 100, 1, T0 + 131);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert_int_eq(v.cleared, 1);
	in = input(T0 + 161, T0 + 100, 1, T0 + 131);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, STALL_STALL);
	/* the stall began again: a new warning (the last one was cleared) */
	ck_assert_int_eq(v.warn, 1);
	/* paused by the operator: not a stall */
	in = input(T0 + 200, T0 + 100, 1, T0 + 131);
	in.paused = 1;
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert_int_eq(v.cleared, 1);
}
END_TEST

START_TEST(test_zero_turns_checks_off)
{
	struct stall_state s;
	struct stall_policy p = policy(0, 0, 1);
	struct stall_input in = input(T0 + 86400 * 30, T0, 5, -1);
	struct stall_verdict v;

	stall_init(&s);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, 0);
	ck_assert_int_eq(v.warn, 0);
	ck_assert_int_eq(v.notify, 0);
}
END_TEST

START_TEST(test_new_reason_warns_again)
{
	struct stall_state s;
	struct stall_policy p = policy(100, 30, 0);
	struct stall_input in;
	struct stall_verdict v;

	stall_init(&s);
	in = input(T0, T0, 1, -1);
	(void)stall_decide(&s, &p, &in);
	in = input(T0 + 30, T0, 1, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, STALL_STALL);
	ck_assert_int_eq(v.warn, 1);
	in = input(T0 + 50, T0, 1, -1);
	ck_assert_int_eq(stall_decide(&s, &p, &in).warn, 0);
	in = input(T0 + 100, T0, 1, -1);
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, STALL_STALL | STALL_AGE);
	ck_assert_int_eq(v.warn, 1);       /* age joined */
	in = input(T0 + 101, T0, 1, -1);
	ck_assert_int_eq(stall_decide(&s, &p, &in).warn, 0);
}
END_TEST

START_TEST(test_report_at_most_once_per_repeat)
{
	struct stall_state s;
	struct stall_policy p = policy(0, 10, 1);
	struct stall_input in;
	struct stall_verdict v;
	double last = -1;
	int reports = 0, warnings = 0, i;

	stall_init(&s);
	/* it stalls, recovers with a delivery, stalls again, ten times
	 * within the hour: a warning each time, one report */
	in = input(T0, T0, 1, -1);
	(void)stall_decide(&s, &p, &in);
	for (i = 0; i < 10; i++) {
		double t = T0 + 10 + i * 60;

		in = input(t, T0, 1, last);
		v = stall_decide(&s, &p, &in);
		ck_assert_uint_eq(v.reasons, STALL_STALL);
		warnings += v.warn;
		reports += v.notify;
		last = t + 1;           /* one delivery, then nothing */
		in = input(t + 1, T0, 1, last);
		ck_assert_uint_eq(stall_decide(&s, &p, &in).reasons, 0);
	}
	ck_assert_int_eq(warnings, 10);
	ck_assert_int_eq(reports, 1);
	/* an hour after the report, the next stall reports again */
	in = input(T0 + 10 + STALL_REPEAT + 20, T0, 1, last);
	v = stall_decide(&s, &p, &in);
	ck_assert_int_eq(v.notify, 1);
}
END_TEST

START_TEST(test_describe_and_report)
{
	struct stall_state s;
	struct stall_policy p = policy(86400, 1800, 1);
	struct stall_input in = input(T0 + 2 * 86400 + 3 * 3600, T0, 12,
	    T0 + 2 * 86400 + 3 * 3600 - 2700);
	struct stall_verdict v;
	struct stall_report_input ri;
	char what[400], *text;
	uint8_t *out;
	size_t len;

	stall_init(&s);
	{
		/* mail waits since well before the last delivery */
		struct stall_policy quiet = policy(0, 0, 0);
		struct stall_input before = in;

		before.now -= 3000;
		(void)stall_decide(&s, &quiet, &before);
	}
	v = stall_decide(&s, &p, &in);
	ck_assert_uint_eq(v.reasons, STALL_AGE | STALL_STALL);
	ck_assert_int_eq(v.notify, 1);
	stall_describe(what, sizeof(what), &v, &p, &in);
	ck_assert_str_eq(what, "oldest message 2d 3h old (warn_age 1d); "
	    "nothing delivered for 45m while 12 recipient(s) wait "
	    "(warn_stall 30m)");
	memset(&ri, 0, sizeof(ri));
	ri.hostname = "relay.example.net";
	ri.rcpt = "postmaster@example.com";
	ri.what = what;
	ri.in = &in;
	ri.messages = 7;
	ri.now = (time_t)in.now;
	stall_report(&ri, &out, &len);
	text = malloc(len + 1);
	memcpy(text, out, len);
	text[len] = '\0';
	ck_assert_ptr_nonnull(strstr(text, "\r\nFrom: Mail Delivery System "
	    "<MAILER-DAEMON@relay.example.net>\r\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\r\nTo: <postmaster@example.com>\r\n"));
	ck_assert_ptr_nonnull(strstr(text, "\r\nSubject: Mail queue on "
	    "relay.example.net is stalled\r\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\r\nAuto-Submitted: auto-generated\r\n"));
	ck_assert_ptr_nonnull(strstr(text, what));
	ck_assert_ptr_nonnull(strstr(text, "Oldest message: 2d 3h old"));
	ck_assert_ptr_nonnull(strstr(text, "Last delivery:  "));
	ck_assert_ptr_nonnull(strstr(text,
	    "Queue depth:    7 message(s), 12 recipient(s) waiting\r\n"));
	/* CRLF lines only, and a header block ended by an empty line */
	ck_assert_ptr_nonnull(strstr(text, "\r\n\r\n"));
	{
		size_t i;

		for (i = 0; i < len; i++)
			if (text[i] == '\n')
				ck_assert(i > 0 && text[i - 1] == '\r');
	}
	free(text);
	free(out);
	/* short spans */
	in = input(T0 + 12, T0, 1, -1);
	stall_init(&s);
	p = policy(2, 0, 0);
	v = stall_decide(&s, &p, &in);
	stall_describe(what, sizeof(what), &v, &p, &in);
	ck_assert_str_eq(what, "oldest message 12s old (warn_age 2s)");
}
END_TEST

static Suite *
stall_suite(void)
{
	Suite *s = suite_create("stall");
	TCase *tc = tcase_create("decide");

	tcase_add_test(tc, test_age_begins_at_threshold_warns_once);
	tcase_add_test(tc, test_stall_counts_from_later_of_delivery_and_waiting);
	tcase_add_test(tc, test_zero_turns_checks_off);
	tcase_add_test(tc, test_new_reason_warns_again);
	tcase_add_test(tc, test_report_at_most_once_per_repeat);
	tcase_add_test(tc, test_describe_and_report);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(stall_suite());
	int failed;

	log_init("check_stall", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
