/*
 * check_host_pool.c - a route's smarthost pool (queue/host_pool.c):
 * weights distribute exactly over a cycle, a lower priority only when
 * every better host is down, the breaker opens after `failures`, one
 * probe after the cooldown, the cooldown doubles up to its cap, and a
 * pool with every host down offers none.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "host_pool.h"
#include "log.h"

static const char *const names[] = { "mx1:25", "mx2:25", "backup:25" };
static const int prio[] = { 10, 10, 20 };
static const int weight[] = { 3, 1, 1 };

static struct host_pool *
pool(int failures, int cooldown, int cooldown_max, int probe_interval)
{
	struct host_pool_policy pol = { failures, cooldown, cooldown_max,
	    probe_interval };

	return host_pool_new(names, prio, weight, 3, &pol);
}

/* The chosen host of the next job (-1: none). */
static int
choose(struct host_pool *p, double now, int *probe)
{
	size_t order[HOST_POOL_MAX];
	int pr;

	if (host_pool_choose(p, now, order, HOST_POOL_MAX,
	    probe ? probe : &pr) == 0)
		return -1;
	return (int)order[0];
}

static void
fail_host(struct host_pool *p, int i, int times, double now)
{
	while (times-- > 0)
		(void)host_pool_result(p, (size_t)i, HOST_CONNECT_FAILED,
		    "connect to mx: Connection refused", now);
}

START_TEST(test_weights_exact_over_a_cycle)
{
	struct host_pool *p = pool(3, 30, 600, 0);
	int count[3] = { 0, 0, 0 }, cycle, k, seq[4];

	for (cycle = 0; cycle < 10; cycle++)
		for (k = 0; k < 4; k++) {
			int c = choose(p, 1000, NULL);

			ck_assert_int_ge(c, 0);
			count[c]++;
			if (cycle == 0)
				seq[k] = c;
		}
	ck_assert_int_eq(count[0], 30);
	ck_assert_int_eq(count[1], 10);
	ck_assert_int_eq(count[2], 0);   /* backup: never while both up */
	/* smooth: the light host is not last of four in a row of heavies */
	ck_assert_int_eq(seq[0], 0);
	ck_assert_int_eq(seq[1], 0);
	ck_assert_int_eq(seq[2], 1);
	ck_assert_int_eq(seq[3], 0);
	host_pool_free(p);
}
END_TEST

START_TEST(test_order_chosen_then_fallbacks_by_priority)
{
	const char *const n4[] = { "b:25", "a1:25", "a2:25", "c:25" };
	const int p4[] = { 20, 10, 10, 30 };
	const int w4[] = { 1, 1, 1, 1 };
	struct host_pool_policy pol = { 3, 30, 600, 0 };
	struct host_pool *p = host_pool_new(n4, p4, w4, 4, &pol);
	size_t order[HOST_POOL_MAX], n;
	int probe;

	n = host_pool_choose(p, 1000, order, HOST_POOL_MAX, &probe);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(order[0], 1);   /* a1 */
	ck_assert_uint_eq(order[1], 2);   /* a2 */
	ck_assert_uint_eq(order[2], 0);   /* b */
	ck_assert_uint_eq(order[3], 3);   /* c */
	n = host_pool_choose(p, 1000, order, HOST_POOL_MAX, &probe);
	ck_assert_uint_eq(order[0], 2);   /* a2: equal weights alternate */
	ck_assert_uint_eq(order[1], 1);
	ck_assert_uint_eq(order[2], 0);
	ck_assert(!probe);
	host_pool_free(p);
}
END_TEST

START_TEST(test_without_priority_list_order)
{
	/* today's form: priority = position, weight 1: plain failover */
	const int pos[] = { 0, 1, 2 };
	const int one[] = { 1, 1, 1 };
	struct host_pool_policy pol = { 3, 30, 600, 0 };
	struct host_pool *p = host_pool_new(names, pos, one, 3, &pol);
	size_t order[HOST_POOL_MAX];
	int probe, k;

	for (k = 0; k < 5; k++) {
		ck_assert_uint_eq(host_pool_choose(p, 1000, order,
		    HOST_POOL_MAX, &probe), 3);
		ck_assert_uint_eq(order[0], 0);
		ck_assert_uint_eq(order[1], 1);
		ck_assert_uint_eq(order[2], 2);
	}
	host_pool_free(p);
}
END_TEST

START_TEST(test_priority_fallback)
{
	struct host_pool *p = pool(3, 30, 600, 0);
	size_t order[HOST_POOL_MAX];
	int probe, k;

	fail_host(p, 0, 3, 1000);
	/* mx1 open: all of priority 10 goes to mx2 */
	for (k = 0; k < 4; k++)
		ck_assert_int_eq(choose(p, 1001, NULL), 1);
	fail_host(p, 1, 3, 1002);
	/* both primaries open: the backup, alone */
	ck_assert_uint_eq(host_pool_choose(p, 1003, order, HOST_POOL_MAX,
	    &probe), 1);
	ck_assert_uint_eq(order[0], 2);
	ck_assert(!probe);
	ck_assert(host_pool_usable(p, 1003));
	host_pool_free(p);
}
END_TEST

START_TEST(test_breaker_open_probe_close)
{
	struct host_pool *p = pool(3, 30, 600, 0);
	struct host_pool_view v;
	int probe;

	(void)host_pool_result(p, 0, HOST_CONNECT_FAILED, "refused", 1000);
	(void)host_pool_result(p, 0, HOST_OK, "", 1001);
	/* an answer starts the count again */
	ck_assert_int_eq(host_pool_result(p, 0, HOST_TLS_FAILED, "tls", 1002),
	    HOST_SAME);
	ck_assert_int_eq(host_pool_result(p, 0, HOST_421, "421 busy", 1003),
	    HOST_SAME);
	ck_assert_int_eq(host_pool_result(p, 0, HOST_CONNECT_FAILED,
	    "timed out", 1004), HOST_OPENED);
	host_pool_view(p, 0, &v);
	ck_assert_int_eq(v.state, HOST_OPEN);
	ck_assert_int_eq(v.failures, 3);
	ck_assert_uint_eq(v.failures_total, 4);
	ck_assert(v.open_until == 1034);
	ck_assert_str_eq(v.last_error, "timed out");
	/* skipped for the cooldown */
	ck_assert_int_eq(choose(p, 1033, &probe), 1);
	ck_assert(!probe);
	/* then one probe: the next job goes to it first */
	ck_assert_int_eq(choose(p, 1034, &probe), 0);
	ck_assert(probe);
	host_pool_view(p, 0, &v);
	ck_assert_int_eq(v.state, HOST_PROBING);
	/* no second probe while it is out */
	ck_assert_int_eq(choose(p, 1035, &probe), 1);
	ck_assert(!probe);
	ck_assert_int_eq(host_pool_result(p, 0, HOST_OK, "", 1036),
	    HOST_CLOSED);
	host_pool_view(p, 0, &v);
	ck_assert_int_eq(v.state, HOST_UP);
	ck_assert_int_eq(v.failures, 0);
	host_pool_free(p);
}
END_TEST

START_TEST(test_cooldown_doubles_to_cap)
{
	struct host_pool *p = pool(1, 30, 100, 0);
	struct host_pool_view v;
	double now = 1000;
	const int expect[] = { 60, 100, 100 };
	int k, probe;

	ck_assert_int_eq(host_pool_result(p, 0, HOST_421, "421", now),
	    HOST_OPENED);
	host_pool_view(p, 0, &v);
	ck_assert(v.open_until == now + 30);
	for (k = 0; k < 3; k++) {
		now = v.open_until;
		ck_assert_int_eq(choose(p, now, &probe), 0);
		ck_assert(probe);
		ck_assert_int_eq(host_pool_result(p, 0, HOST_CONNECT_FAILED,
		    "refused", now), HOST_REOPENED);
		host_pool_view(p, 0, &v);
		ck_assert_int_eq(v.state, HOST_OPEN);
		ck_assert(v.open_until == now + expect[k]);
	}
	/* success resets it to the base cooldown */
	now = v.open_until;
	ck_assert_int_eq(choose(p, now, &probe), 0);
	(void)host_pool_result(p, 0, HOST_OK, "", now);
	(void)host_pool_result(p, 0, HOST_421, "421", now + 1);
	host_pool_view(p, 0, &v);
	ck_assert(v.open_until == now + 1 + 30);
	host_pool_free(p);
}
END_TEST

START_TEST(test_lost_probe_may_go_again)
{
	struct host_pool *p = pool(1, 10, 100, 0);
	int probe;

	fail_host(p, 0, 1, 1000);
	ck_assert_int_eq(choose(p, 1010, &probe), 0);
	ck_assert(probe);
	host_pool_probe_lost(p, 0);
	ck_assert_int_eq(choose(p, 1011, &probe), 0);
	ck_assert(probe);
	host_pool_free(p);
}
END_TEST

START_TEST(test_all_down)
{
	struct host_pool *p = pool(2, 30, 600, 0);
	size_t order[HOST_POOL_MAX];
	int probe;

	fail_host(p, 0, 2, 1000);
	fail_host(p, 1, 2, 1001);
	fail_host(p, 2, 2, 1002);
	ck_assert(!host_pool_usable(p, 1003));
	ck_assert_uint_eq(host_pool_choose(p, 1003, order, HOST_POOL_MAX,
	    &probe), 0);
	ck_assert(host_pool_next_probe(p) == 1030);
	ck_assert_str_eq(host_pool_last_error(p),
	    "connect to mx: Connection refused");
	/* the first cooldown over: that host alone, as the probe */
	ck_assert(host_pool_usable(p, 1030));
	ck_assert_uint_eq(host_pool_choose(p, 1030, order, HOST_POOL_MAX,
	    &probe), 1);
	ck_assert_uint_eq(order[0], 0);
	ck_assert(probe);
	ck_assert(!host_pool_usable(p, 1030.5));
	host_pool_free(p);
}
END_TEST

START_TEST(test_active_probe)
{
	struct host_pool *p = pool(1, 30, 600, 5);
	struct host_pool_view v;

	ck_assert_int_eq(host_pool_probe_due(p, 1000), 0);
	ck_assert_int_eq(host_pool_probe_due(p, 1000), 1);
	ck_assert_int_eq(host_pool_probe_due(p, 1000), 2);
	ck_assert_int_eq(host_pool_probe_due(p, 1000), -1);
	ck_assert(host_pool_next_active(p, 1000) == 1005);
	/* an open host is probed only after its cooldown, as its probe */
	fail_host(p, 0, 1, 1001);
	ck_assert_int_eq(host_pool_probe_due(p, 1005), 1);
	ck_assert_int_eq(host_pool_probe_due(p, 1005), 2);
	ck_assert_int_eq(host_pool_probe_due(p, 1005), -1);
	ck_assert(host_pool_next_active(p, 1005) == 1010);
	ck_assert_int_eq(host_pool_probe_due(p, 1031), 0);
	host_pool_view(p, 0, &v);
	ck_assert_int_eq(v.state, HOST_PROBING);
	ck_assert_int_eq(host_pool_result(p, 0, HOST_OK, "", 1031),
	    HOST_CLOSED);
	host_pool_free(p);
	/* off */
	p = pool(1, 30, 600, 0);
	ck_assert_int_eq(host_pool_probe_due(p, 1000), -1);
	ck_assert(host_pool_next_active(p, 1000) == 0);
	host_pool_free(p);
}
END_TEST

START_TEST(test_reload_keeps_state)
{
	struct host_pool *old = pool(1, 30, 600, 0), *p;
	const char *const n2[] = { "new:25", "mx1:25" };
	const int p2[] = { 0, 1 }, w2[] = { 1, 1 };
	struct host_pool_policy pol = { 1, 30, 600, 0 };
	struct host_pool_view v;

	fail_host(old, 0, 1, 1000);
	p = host_pool_new(n2, p2, w2, 2, &pol);
	host_pool_adopt(p, old);
	host_pool_view(p, 1, &v);     /* mx1: still open, same error */
	ck_assert_int_eq(v.state, HOST_OPEN);
	ck_assert(v.open_until == 1030);
	ck_assert_uint_eq(v.failures_total, 1);
	ck_assert_str_eq(host_pool_last_error(p),
	    "connect to mx: Connection refused");
	host_pool_view(p, 0, &v);     /* a new host starts up */
	ck_assert_int_eq(v.state, HOST_UP);
	ck_assert_int_eq(host_pool_find(p, "mx2:25"), -1);
	host_pool_free(old);
	host_pool_free(p);
}
END_TEST

static Suite *
host_pool_suite(void)
{
	Suite *s = suite_create("host_pool");
	TCase *tc = tcase_create("pool");

	tcase_add_test(tc, test_weights_exact_over_a_cycle);
	tcase_add_test(tc, test_order_chosen_then_fallbacks_by_priority);
	tcase_add_test(tc, test_without_priority_list_order);
	tcase_add_test(tc, test_priority_fallback);
	tcase_add_test(tc, test_breaker_open_probe_close);
	tcase_add_test(tc, test_cooldown_doubles_to_cap);
	tcase_add_test(tc, test_lost_probe_may_go_again);
	tcase_add_test(tc, test_all_down);
	tcase_add_test(tc, test_active_probe);
	tcase_add_test(tc, test_reload_keeps_state);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(host_pool_suite());
	int failed;

	log_init("check_host_pool", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
