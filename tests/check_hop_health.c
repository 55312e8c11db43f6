/*
 * check_hop_health.c - which next hops are down (queue/hop_health.c):
 * marked down after HOP_DOWN_AFTER connection failures in a row, one
 * probe per retry step, a failed probe waits the next step, and a hop
 * that answers again hands back the recipients deferred meanwhile.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hop_health.h"
#include "log.h"

static const int steps[] = { 60, 300, 900 };
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))
#define HOP "route:smarthost"

static enum hop_verdict
verdict(struct hop_health *h, const char *dest, double now)
{
	const char *dsn = NULL, *reason = NULL;

	return hop_health_verdict(h, dest, now, &dsn, &reason);
}

static void
hop_fails(struct hop_health *h, const char *dest, double now)
{
	ck_assert_int_eq(hop_health_result(h, dest, 1, "4.4.1",
	    "connect to 127.0.0.1[127.0.0.1]:2525: Connection refused", now,
	    steps, NSTEPS), 0);
}

START_TEST(test_down_after_failures_in_a_row)
{
	struct hop_health *h = hop_health_new();
	const char *dsn = NULL, *reason = NULL;
	int i;

	for (i = 0; i < HOP_DOWN_AFTER - 1; i++) {
		hop_fails(h, HOP, 1000 + i);
		ck_assert_int_eq(verdict(h, HOP, 1000 + i), HOP_SEND);
	}
	/* an answer in between starts the count again */
	ck_assert_int_eq(hop_health_result(h, HOP, 0, "", "", 1010, steps,
	    NSTEPS), 0);
	for (i = 0; i < HOP_DOWN_AFTER - 1; i++)
		hop_fails(h, HOP, 1020 + i);
	ck_assert_int_eq(verdict(h, HOP, 1030), HOP_SEND);
	ck_assert(!hop_health_is_down(h, HOP));
	hop_fails(h, HOP, 1040);
	ck_assert(hop_health_is_down(h, HOP));
	ck_assert_uint_eq(hop_health_down_count(h), 1);
	ck_assert_int_eq(hop_health_verdict(h, HOP, 1041, &dsn, &reason),
	    HOP_SUSPEND);
	ck_assert_str_eq(dsn, "4.4.1");
	ck_assert_str_eq(reason,
	    "connect to 127.0.0.1[127.0.0.1]:2525: Connection refused");
	/* another hop is not concerned */
	ck_assert_int_eq(verdict(h, "mx:example.org", 1041), HOP_SEND);
	hop_health_free(h);
}
END_TEST

START_TEST(test_one_probe_per_retry_step)
{
	struct hop_health *h = hop_health_new();
	int i;

	for (i = 0; i < HOP_DOWN_AFTER; i++)
		hop_fails(h, HOP, 1000);
	ck_assert_int_eq(verdict(h, HOP, 1059), HOP_SUSPEND);
	ck_assert_int_eq(verdict(h, HOP, 1060), HOP_PROBE);
	hop_health_probe_sent(h, HOP, 1060);
	/* while the probe is out, nothing else goes */
	ck_assert_int_eq(verdict(h, HOP, 1061), HOP_SUSPEND);
	ck_assert_int_eq(verdict(h, HOP, 5000), HOP_SUSPEND);
	/* the probe fails: the next one waits the second step from when
	 * it went */
	hop_fails(h, HOP, 1070);
	ck_assert_int_eq(verdict(h, HOP, 1060 + 299), HOP_SUSPEND);
	ck_assert_int_eq(verdict(h, HOP, 1060 + 300), HOP_PROBE);
	hop_health_probe_sent(h, HOP, 1360);
	hop_fails(h, HOP, 1400);
	ck_assert_int_eq(verdict(h, HOP, 1360 + 899), HOP_SUSPEND);
	ck_assert_int_eq(verdict(h, HOP, 1360 + 900), HOP_PROBE);
	hop_health_probe_sent(h, HOP, 2260);
	/* the last step repeats */
	hop_fails(h, HOP, 2400);
	ck_assert_int_eq(verdict(h, HOP, 2260 + 899), HOP_SUSPEND);
	ck_assert_int_eq(verdict(h, HOP, 2260 + 900), HOP_PROBE);
	/* a job in flight before the hop went down, failing now, does not
	 * move the probe */
	hop_fails(h, HOP, 2500);
	ck_assert_int_eq(verdict(h, HOP, 2260 + 900), HOP_PROBE);
	/* a probe that took longer than a step: the next goes at once */
	hop_health_probe_sent(h, HOP, 3160);
	hop_fails(h, HOP, 3160 + 1000);
	ck_assert_int_eq(verdict(h, HOP, 3160 + 1000), HOP_PROBE);
	hop_health_free(h);
}
END_TEST

/* Mail deferred in bulk waits for the hop's next probe: before a probe
 * is due, its time; with one due or in flight, the step after it (when
 * the next goes if this one fails); nothing for a hop that is up. */
START_TEST(test_held_until_next_probe)
{
	struct hop_health *h = hop_health_new();
	int i;

	ck_assert(hop_health_held_until(h, HOP, 1000, steps, NSTEPS) == 0);
	hop_fails(h, HOP, 1000);
	ck_assert(hop_health_held_until(h, HOP, 1000, steps, NSTEPS) == 0);
	for (i = 1; i < HOP_DOWN_AFTER; i++)
		hop_fails(h, HOP, 1000);
	ck_assert(hop_health_held_until(h, HOP, 1010, steps, NSTEPS) ==
	    1060);
	/* the probe is due: held a step past it */
	ck_assert(hop_health_held_until(h, HOP, 1060, steps, NSTEPS) ==
	    1060 + 300);
	hop_health_probe_sent(h, HOP, 1060);
	ck_assert(hop_health_held_until(h, HOP, 1065, steps, NSTEPS) ==
	    1060 + 300);
	/* held all through a long bulk deferral: the same time */
	ck_assert(hop_health_held_until(h, HOP, 1069, steps, NSTEPS) ==
	    1060 + 300);
	/* it failed: the next probe's time, the same */
	hop_fails(h, HOP, 1070);
	ck_assert(hop_health_held_until(h, HOP, 1100, steps, NSTEPS) ==
	    1060 + 300);
	/* the last step repeats */
	hop_health_probe_sent(h, HOP, 1360);
	hop_fails(h, HOP, 1400);
	hop_health_probe_sent(h, HOP, 2260);
	hop_fails(h, HOP, 2300);
	ck_assert(hop_health_held_until(h, HOP, 2300, steps, NSTEPS) ==
	    2260 + 900);
	ck_assert(hop_health_held_until(h, HOP, 3200, steps, NSTEPS) ==
	    3200 + 900);
	/* back up: nothing is held */
	ck_assert_int_eq(hop_health_result(h, HOP, 0, "", "", 3300, steps,
	    NSTEPS), 1);
	ck_assert(hop_health_held_until(h, HOP, 3300, steps, NSTEPS) == 0);
	ck_assert(hop_health_held_until(h, "mx:other.example", 3300, steps,
	    NSTEPS) == 0);
	hop_health_free(h);
}
END_TEST

/* Held mail whose own retry comes after the next probe comes due on the
 * probes' grid (the first point not before its own time, or up to 2 s
 * before it), so a hop's held mail comes due together, and with a
 * probe. */
START_TEST(test_held_next_on_probe_grid)
{
	struct hop_health *h = hop_health_new();
	int i;

	ck_assert(hop_health_held_next(h, HOP, 1010, 1234, steps, NSTEPS) ==
	    1234);
	for (i = 0; i < HOP_DOWN_AFTER; i++)
		hop_fails(h, HOP, 1000);
	/* the next probe at 1060, then a step of 300 apart */
	ck_assert(hop_health_held_next(h, HOP, 1010, 1050, steps, NSTEPS) ==
	    1060);
	ck_assert(hop_health_held_next(h, HOP, 1010, 1060, steps, NSTEPS) ==
	    1060);
	ck_assert(hop_health_held_next(h, HOP, 1010, 1070, steps, NSTEPS) ==
	    1360);
	ck_assert(hop_health_held_next(h, HOP, 1020, 1360, steps, NSTEPS) ==
	    1360);
	/* just past a point (up to 2 s): that point, not a step later */
	ck_assert(hop_health_held_next(h, HOP, 1030, 1361, steps, NSTEPS) ==
	    1360);
	ck_assert(hop_health_held_next(h, HOP, 1030, 1362, steps, NSTEPS) ==
	    1360);
	ck_assert(hop_health_held_next(h, HOP, 1030, 1363, steps, NSTEPS) ==
	    1660);
	ck_assert(hop_health_held_next(h, HOP, 1030, 1659, steps, NSTEPS) ==
	    1660);
	ck_assert(hop_health_held_next(h, HOP, 1030, 1660, steps, NSTEPS) ==
	    1660);
	/* mail deferred all along the wait for the probe, each on its own
	 * step of 60, comes due at one point, the one after the probe */
	for (i = 0; i < 50; i++)
		ck_assert(hop_health_held_next(h, HOP, 1010 + i,
		    1010 + i + 60, steps, NSTEPS) == 1360);
	/* a probe in flight: from a step after it went */
	hop_health_probe_sent(h, HOP, 1061);
	ck_assert(hop_health_held_next(h, HOP, 1061, 1100, steps, NSTEPS) ==
	    1361);
	ck_assert(hop_health_held_next(h, HOP, 1061, 1400, steps, NSTEPS) ==
	    1661);
	ck_assert(hop_health_held_next(h, HOP, 1061, 1700, steps, NSTEPS) ==
	    1961);
	/* another hop, up: its own time */
	ck_assert(hop_health_held_next(h, "mx:other.example", 1061, 1400,
	    steps, NSTEPS) == 1400);
	hop_health_free(h);
}
END_TEST

START_TEST(test_back_hands_over_held)
{
	struct hop_health *h = hop_health_new();
	int64_t *ids = NULL;
	size_t n;
	int i;

	for (i = 0; i < HOP_DOWN_AFTER; i++)
		hop_fails(h, HOP, 1000);
	for (i = 0; i < 1000; i++)
		hop_health_hold(h, HOP, 10 + i);
	ck_assert_int_eq(verdict(h, HOP, 1060), HOP_PROBE);
	hop_health_probe_sent(h, HOP, 1061);
	ck_assert_int_eq(hop_health_result(h, HOP, 0, "", "", 1061, steps,
	    NSTEPS), 1);
	ck_assert(!hop_health_is_down(h, HOP));
	ck_assert_int_eq(verdict(h, HOP, 1061), HOP_SEND);
	n = hop_health_take_held(h, HOP, &ids);
	ck_assert_uint_eq(n, 1000);
	ck_assert_int_eq(ids[0], 10);
	ck_assert_int_eq(ids[999], 1009);
	free(ids);
	/* handed over once, and the hop is forgotten */
	ck_assert_uint_eq(hop_health_take_held(h, HOP, &ids), 0);
	ck_assert_ptr_null(ids);
	ck_assert_uint_eq(hop_health_down_count(h), 0);
	/* it takes HOP_DOWN_AFTER failures again to go down */
	hop_fails(h, HOP, 1100);
	ck_assert(!hop_health_is_down(h, HOP));
	/* an answer from a hop that was up hands back nothing */
	ck_assert_int_eq(hop_health_result(h, HOP, 0, "", "", 1101, steps,
	    NSTEPS), 0);
	hop_health_free(h);
}
END_TEST

/* A recipient deferred at every step of a long outage is not held over
 * and over: the list stays within twice the distinct recipients. */
START_TEST(test_held_stays_bounded)
{
	struct hop_health *h = hop_health_new();
	int64_t *ids = NULL;
	char seen[300];
	size_t n, i;
	int round, k;

	for (k = 0; k < HOP_DOWN_AFTER; k++)
		hop_fails(h, HOP, 1000);
	for (round = 0; round < 50; round++)
		for (k = 0; k < 300; k++)
			hop_health_hold(h, HOP, 5000 + k);
	ck_assert_int_eq(hop_health_result(h, HOP, 0, "", "", 2000, steps,
	    NSTEPS), 1);
	n = hop_health_take_held(h, HOP, &ids);
	ck_assert_uint_ge(n, 300);
	ck_assert_uint_le(n, 600);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < n; i++) {
		ck_assert(ids[i] >= 5000 && ids[i] < 5300);
		seen[ids[i] - 5000] = 1;
	}
	for (k = 0; k < 300; k++)
		ck_assert(seen[k]);
	free(ids);
	hop_health_free(h);
}
END_TEST

/* A pool with every host down marks its route down from outside: its
 * mail is held until the pool's next probe, and an answer brings the
 * held recipients back. */
START_TEST(test_marked_down_by_a_pool)
{
	struct hop_health *h = hop_health_new();
	const char *dsn = NULL, *reason = NULL;
	int64_t *ids;

	hop_health_mark_down(h, HOP, "4.4.1", "every host of route smarthost "
	    "is down: connect: Connection refused", 1030);
	ck_assert(hop_health_is_down(h, HOP));
	ck_assert_int_eq(hop_health_verdict(h, HOP, 1000, &dsn, &reason),
	    HOP_SUSPEND);
	ck_assert_str_eq(dsn, "4.4.1");
	ck_assert_str_eq(reason, "every host of route smarthost is down: "
	    "connect: Connection refused");
	ck_assert(hop_health_held_until(h, HOP, 1000, steps, NSTEPS) == 1030);
	hop_health_hold(h, HOP, 7);
	/* marked again with a later probe: held until then */
	hop_health_mark_down(h, HOP, "4.4.1", "again", 1090);
	ck_assert(hop_health_held_until(h, HOP, 1040, steps, NSTEPS) == 1090);
	ck_assert_int_eq(hop_health_result(h, HOP, 0, "", "", 1050, steps,
	    NSTEPS), 1);
	ck_assert_uint_eq(hop_health_take_held(h, HOP, &ids), 1);
	ck_assert(ids[0] == 7);
	free(ids);
	ck_assert(!hop_health_is_down(h, HOP));
	hop_health_free(h);
}
END_TEST

static Suite *
hop_health_suite(void)
{
	Suite *s = suite_create("hop_health");
	TCase *tc = tcase_create("hops");

	tcase_add_test(tc, test_down_after_failures_in_a_row);
	tcase_add_test(tc, test_one_probe_per_retry_step);
	tcase_add_test(tc, test_held_until_next_probe);
	tcase_add_test(tc, test_held_next_on_probe_grid);
	tcase_add_test(tc, test_back_hands_over_held);
	tcase_add_test(tc, test_held_stays_bounded);
	tcase_add_test(tc, test_marked_down_by_a_pool);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hop_health_suite());
	int failed;

	log_init("check_hop_health", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
