/*
 * check_route_shaper.c - the rate shaping of a route
 * (queue/route_shaper.c): token buckets held to their rate with a
 * passed-in clock (even when the scheduler looks late), quotas that
 * burst then wait, saved and restored counts, connections at once, the
 * back-off state machine and the classification of replies.
 */
#include "autoconfig.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "route_shaper.h"

static struct shaper_limits
limits(int second, int minute, int hour, int day, int conns)
{
	struct shaper_limits l;

	memset(&l, 0, sizeof(l));
	l.rate[SHAPE_SECOND] = second;
	l.rate[SHAPE_MINUTE] = minute;
	l.rate[SHAPE_HOUR] = hour;
	l.rate[SHAPE_DAY] = day;
	l.max_connections = conns;
	return l;
}

/* Sends n messages as fast as the shaper allows, each look `late`
 * seconds after the time it named; returns the time from the first
 * message to the last. */
static double
send_all(struct route_shaper *sh, int n, double start, double late)
{
	double now = start, first = -1, last = 0, at;
	int sent = 0, guard = 0;

	while (sent < n && guard++ < 100 * n) {
		enum shaper_wait w = route_shaper_may_send(sh, now, 0, 2, &at);

		if (w == SHAPER_GO) {
			route_shaper_take(sh, now);
			if (first < 0)
				first = now;
			last = now;
			sent++;
			continue;
		}
		ck_assert_int_eq(w, SHAPER_WAIT_RATE);
		ck_assert(at > now);
		now = at + late;
	}
	ck_assert_int_eq(sent, n);
	return last - first;
}

START_TEST(test_per_second_holds_its_rate)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(20, 0, 0, 0, 0);
	double span;

	route_shaper_init(&sh, &l, 1000);
	span = send_all(&sh, 300, 1000, 0);
	/* 299 intervals at 20/s (after the first fifth of a second's
	 * worth at once), within 1.5 % */
	ck_assert_msg(fabs(299.0 / span - 20.0) < 0.3, "rate %.3f/s",
	    299.0 / span);
	ck_assert(route_shaper_rate(&sh) == 20.0);
}
END_TEST

START_TEST(test_late_looks_keep_the_rate)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(10, 0, 0, 0, 0);
	double span;

	route_shaper_init(&sh, &l, 1000);
	/* every look 4 ms late (a loaded scheduler): the lateness is not
	 * lost, the rate holds within 1 % */
	span = send_all(&sh, 200, 1000, 0.004);
	ck_assert_msg(fabs(199.0 / span - 10.0) < 0.1, "rate %.3f/s",
	    199.0 / span);
}
END_TEST

START_TEST(test_per_second_spreads_messages)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(5, 0, 0, 0, 0);
	double at;

	route_shaper_init(&sh, &l, 1000);
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 0, 2, &at),
	    SHAPER_GO);
	route_shaper_take(&sh, 1000);
	/* the second message waits (no burst of 5 at once) */
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 0, 2, &at),
	    SHAPER_WAIT_RATE);
	ck_assert(at > 1000.1 && at <= 1000.2 + 1e-9);
}
END_TEST

START_TEST(test_minute_quota_bursts_then_waits)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(0, 30, 0, 0, 0);
	double at;
	int i;

	route_shaper_init(&sh, &l, 1000);
	for (i = 0; i < 30; i++) {
		ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 0, 2, &at),
		    SHAPER_GO);
		route_shaper_take(&sh, 1000);
	}
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 0, 2, &at),
	    SHAPER_WAIT_RATE);
	/* one token every 2 s: the 31st goes about 2 s later */
	ck_assert(at > 1001.4 && at <= 1002.0 + 1e-9);
	ck_assert(route_shaper_tokens(&sh, SHAPE_MINUTE, 1000) < 1);
	ck_assert(route_shaper_tokens(&sh, SHAPE_SECOND, 1000) == -1);
	ck_assert_int_eq(route_shaper_may_send(&sh, at, 0, 2, &at),
	    SHAPER_GO);
}
END_TEST

START_TEST(test_every_bucket_must_allow)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(100, 0, 0, 3, 0);
	double at;
	int i;

	route_shaper_init(&sh, &l, 1000);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(route_shaper_may_send(&sh, 1000 + i, 0, 2,
		    &at), SHAPER_GO);
		route_shaper_take(&sh, 1000 + i);
	}
	/* the day's quota is spent: the next token in 8 hours */
	ck_assert_int_eq(route_shaper_may_send(&sh, 1010, 0, 2, &at),
	    SHAPER_WAIT_RATE);
	ck_assert(at > 1000 + 86400 / 3 - 100 && at < 1000 + 86400 / 3 + 10);
}
END_TEST

START_TEST(test_counts_survive_save_and_restore)
{
	struct route_shaper sh, again;
	struct shaper_limits l = limits(0, 0, 100, 1000, 0);
	double tokens, stamp;
	int i;

	route_shaper_init(&sh, &l, 1000);
	for (i = 0; i < 10; i++)
		route_shaper_take(&sh, 1000);
	route_shaper_saved(&sh, SHAPE_HOUR, 1000, &tokens, &stamp);
	ck_assert(fabs(tokens - 90) < 0.01);
	/* a restart: a new shaper starts full, the saved count applies */
	route_shaper_init(&again, &l, 1036);
	route_shaper_restore(&again, SHAPE_HOUR, tokens, stamp, 1036);
	/* 36 s earned one token more */
	ck_assert(fabs(route_shaper_tokens(&again, SHAPE_HOUR, 1036) -
	    91) < 0.01);
	ck_assert(fabs(route_shaper_tokens(&again, SHAPE_DAY, 1036) - 1000) <
	    0.01);
	/* a stamp from the future (the clock went back) counts from now */
	route_shaper_restore(&again, SHAPE_DAY, 5, 99999, 1036);
	ck_assert(fabs(route_shaper_tokens(&again, SHAPE_DAY, 1036) - 5) <
	    0.01);
	/* nonsense is spent, not a free quota */
	route_shaper_restore(&again, SHAPE_DAY, -3, 1036, 1036);
	ck_assert(route_shaper_tokens(&again, SHAPE_DAY, 1036) < 0.01);
}
END_TEST

START_TEST(test_connections_at_once)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(0, 0, 0, 0, 1);
	double at;

	route_shaper_init(&sh, &l, 1000);
	ck_assert(route_shaper_active(&l));
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 0, 4, &at),
	    SHAPER_GO);
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 1, 4, &at),
	    SHAPER_WAIT_CONNECTIONS);
	ck_assert(at == 0);
	/* without max_connections the scheduler's own limit applies */
	l = limits(0, 0, 0, 0, 0);
	ck_assert(!route_shaper_active(&l));
	route_shaper_init(&sh, &l, 1000);
	ck_assert_int_eq(route_shaper_connections(&sh, 4), 4);
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 3, 4, &at),
	    SHAPER_GO);
	ck_assert_int_eq(route_shaper_may_send(&sh, 1000, 4, 4, &at),
	    SHAPER_WAIT_CONNECTIONS);
}
END_TEST

START_TEST(test_backoff_halves_and_recovers)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(20, 0, 0, 0, 4);
	double at, t = 1000;

	route_shaper_init(&sh, &l, t);
	ck_assert(route_shaper_rate(&sh) == 20);
	ck_assert_int_eq(route_shaper_throttled(&sh, t), 1);
	ck_assert_int_eq(sh.level, 1);
	ck_assert(route_shaper_rate(&sh) == 10);
	ck_assert_int_eq(route_shaper_connections(&sh, 2), 2);
	/* paused a second */
	ck_assert_int_eq(route_shaper_may_send(&sh, t + 0.5, 0, 2, &at),
	    SHAPER_WAIT_PAUSE);
	ck_assert(at == t + 1);
	ck_assert_int_eq(route_shaper_may_send(&sh, t + 1, 0, 2, &at),
	    SHAPER_GO);
	/* the other transactions in flight say the same: counted once */
	ck_assert_int_eq(route_shaper_throttled(&sh, t + 0.2), 0);
	ck_assert_int_eq(sh.level, 1);
	/* a new throttle later goes a level up: a quarter, 2 s pause */
	ck_assert_int_eq(route_shaper_throttled(&sh, t + 2), 1);
	ck_assert_int_eq(sh.level, 2);
	ck_assert(route_shaper_rate(&sh) == 5);
	ck_assert_int_eq(route_shaper_connections(&sh, 2), 1);
	ck_assert(sh.pause_until == t + 4);
	ck_assert_uint_eq(sh.throttles, 3);
	/* quiet periods bring it back step by step */
	ck_assert(route_shaper_next_tick(&sh) == t + 2 + SHAPER_QUIET);
	ck_assert_int_eq(route_shaper_tick(&sh, t + 2 + SHAPER_QUIET - 1), 0);
	ck_assert_int_eq(route_shaper_tick(&sh, t + 2 + SHAPER_QUIET), 1);
	ck_assert_int_eq(sh.level, 1);
	ck_assert_int_eq(route_shaper_tick(&sh, t + 2 + SHAPER_QUIET + 1), 0);
	ck_assert_int_eq(route_shaper_tick(&sh, t + 2 + 2 * SHAPER_QUIET), 1);
	ck_assert_int_eq(sh.level, 0);
	ck_assert(route_shaper_rate(&sh) == 20);
	ck_assert(route_shaper_next_tick(&sh) == 0);
	ck_assert_int_eq(route_shaper_tick(&sh, t + 1000), 0);
}
END_TEST

START_TEST(test_backoff_is_bounded)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(0, 0, 0, 0, 0);
	double t = 1000, at;
	int i;

	route_shaper_init(&sh, &l, t);
	for (i = 0; i < 20; i++)
		(void)route_shaper_throttled(&sh, t + 10 * i);
	ck_assert_int_eq(sh.level, SHAPER_MAX_LEVEL);
	ck_assert(sh.pause_until <= t + 190 + SHAPER_PAUSE_MAX);
	ck_assert_int_eq(route_shaper_connections(&sh, 100), 1);
	ck_assert_int_eq(route_shaper_may_send(&sh, t + 190 +
	    SHAPER_PAUSE_MAX, 0, 100, &at), SHAPER_GO);
}
END_TEST

START_TEST(test_classify_replies)
{
	static const struct {
		int code;
		const char *dsn, *text;
		enum shaper_reply want;
	} cases[] = {
		{ 421, "4.7.0", "421 4.7.0 Try again later", SHAPER_REPLY_THROTTLE },
		{ 451, "4.7.1", "451 4.7.1 Please slow down", SHAPER_REPLY_THROTTLE },
		{ 450, "4.2.0", "450 4.2.0 RATE LIMIT exceeded", SHAPER_REPLY_THROTTLE },
		{ 421, "", "421 Too Many connections from your host", SHAPER_REPLY_THROTTLE },
		{ 454, "4.7.0", "454 Throttling failure: Maximum sending rate exceeded", SHAPER_REPLY_THROTTLE },
		/* the enhanced code read from the text when not given */
		{ 421, "", "host a[192.0.2.1]:25 said: 421 4.7.0 Try later", SHAPER_REPLY_THROTTLE },
		{ 421, "", "host a[192.0.2.1]:25 said: 421 4.3.2 Closing", SHAPER_REPLY_OTHER },
		{ 452, "4.5.3", "452 4.5.3 Error: too many recipients", SHAPER_REPLY_TOO_MANY_RCPTS },
		{ 452, "", "452 Too many recipients", SHAPER_REPLY_TOO_MANY_RCPTS },
		{ 452, "4.3.1", "452 4.3.1 Insufficient system storage", SHAPER_REPLY_OTHER },
		{ 451, "4.3.0", "451 4.3.0 Local error", SHAPER_REPLY_OTHER },
		{ 421, "4.3.2", "421 4.3.2 Service shutting down", SHAPER_REPLY_OTHER },
		/* permanent replies are not throttles, whatever they say */
		{ 554, "5.4.6", "554 5.4.6 Too many hops", SHAPER_REPLY_OTHER },
		{ 550, "5.7.1", "550 5.7.1 rate limit", SHAPER_REPLY_OTHER },
		{ 250, "2.0.0", "250 2.0.0 Ok", SHAPER_REPLY_OTHER },
		/* ferry's own words (no reply) are never a throttle */
		{ 0, "4.4.1", "too many connection failures", SHAPER_REPLY_OTHER },
		{ 0, NULL, NULL, SHAPER_REPLY_OTHER },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(route_shaper_classify(cases[i].code,
		    cases[i].dsn, cases[i].text) == cases[i].want,
		    "case %zu: %s", i, cases[i].text ? cases[i].text : "");
}
END_TEST

START_TEST(test_reply_code)
{
	ck_assert_int_eq(route_shaper_reply_code("host a[127.0.0.1]:25 said: "
	    "421 4.7.0 rate limit (in reply to MAIL FROM command)"), 421);
	ck_assert_int_eq(route_shaper_reply_code("451-4.7.1 more"), 451);
	ck_assert_int_eq(route_shaper_reply_code("host a[192.0.2.1]:25 "
	    "refused to talk to me: 421 4.7.0 Too many connections"), 421);
	ck_assert_int_eq(route_shaper_reply_code("connect to a[192.0.2.1]:25: "
	    "Connection refused"), 0);
	ck_assert_int_eq(route_shaper_reply_code("452"), 452);
	ck_assert_int_eq(route_shaper_reply_code("connect to a: refused"), 0);
	ck_assert_int_eq(route_shaper_reply_code("host x said: 42 short"), 0);
	ck_assert_int_eq(route_shaper_reply_code("4210 x"), 0);
	ck_assert_int_eq(route_shaper_reply_code(NULL), 0);
}
END_TEST

START_TEST(test_reload_keeps_what_was_spent)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(0, 0, 100, 0, 0);
	struct shaper_limits more = limits(0, 10, 50, 0, 2);
	int i;

	route_shaper_init(&sh, &l, 1000);
	for (i = 0; i < 70; i++)
		route_shaper_take(&sh, 1000);
	route_shaper_set_limits(&sh, &more, 1000);
	/* the hour keeps its 30 left; the new minute bucket starts full */
	ck_assert(fabs(route_shaper_tokens(&sh, SHAPE_HOUR, 1000) - 30) <
	    0.01);
	ck_assert(fabs(route_shaper_tokens(&sh, SHAPE_MINUTE, 1000) - 10) <
	    0.01);
	ck_assert_int_eq(sh.lim.max_connections, 2);
	ck_assert_str_eq(shaper_window_name(SHAPE_DAY), "day");
}
END_TEST

START_TEST(test_long_lines_are_held)
{
	struct route_shaper sh;
	struct shaper_limits l = limits(10, 0, 0, 100, 0);
	double u;

	route_shaper_init(&sh, &l, 1000);
	/* ten a second: the first 20 or so go within 2 s and stay due */
	ck_assert(route_shaper_hold_until(&sh, 1000, 0) == 0);
	ck_assert(route_shaper_hold_until(&sh, 1000, 15) == 0);
	/* the 50th goes in about 5 s: held until 2 s before */
	u = route_shaper_hold_until(&sh, 1000, 50);
	ck_assert_msg(u > 1002.5 && u < 1003.5, "%f", u);
	/* the 80th: still within the day's 100 */
	u = route_shaper_hold_until(&sh, 1000, 80);
	ck_assert(u > 1005 && u < 1007);
	/* past the day's quota: held the longest, no more */
	u = route_shaper_hold_until(&sh, 1000, 500);
	ck_assert(u == 1000 + SHAPER_HOLD_MAX);
	/* paused: nothing goes before the pause ends */
	(void)route_shaper_throttled(&sh, 1000);
	u = route_shaper_hold_until(&sh, 1000, 0);
	ck_assert(u == 0);   /* a 1 s pause: its turn is near */
	sh.pause_until = 1010;
	u = route_shaper_hold_until(&sh, 1000, 0);
	ck_assert_msg(u >= 1007.9 && u <= 1008.1, "%f", u);
}
END_TEST

static Suite *
route_shaper_suite(void)
{
	Suite *s = suite_create("route_shaper");
	TCase *tc = tcase_create("shaping");

	tcase_add_test(tc, test_per_second_holds_its_rate);
	tcase_add_test(tc, test_late_looks_keep_the_rate);
	tcase_add_test(tc, test_per_second_spreads_messages);
	tcase_add_test(tc, test_minute_quota_bursts_then_waits);
	tcase_add_test(tc, test_every_bucket_must_allow);
	tcase_add_test(tc, test_counts_survive_save_and_restore);
	tcase_add_test(tc, test_connections_at_once);
	tcase_add_test(tc, test_backoff_halves_and_recovers);
	tcase_add_test(tc, test_backoff_is_bounded);
	tcase_add_test(tc, test_classify_replies);
	tcase_add_test(tc, test_reply_code);
	tcase_add_test(tc, test_reload_keeps_what_was_spent);
	tcase_add_test(tc, test_long_lines_are_held);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(route_shaper_suite());
	int failed;

	log_init("check_route_shaper", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
