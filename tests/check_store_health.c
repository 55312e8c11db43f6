/*
 * check_store_health.c - the runner's view of its store
 * (queue/store_health.c) without a daemon or a disk: the capped back-off
 * after failed commits, the states the workers are told and when
 * delivery may start, the free-space threshold, and the parsing of
 * queue { min_free } (src/config.c).
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "store_health.h"

#define MB (1024ULL * 1024)

START_TEST(test_backoff_doubles_and_is_capped)
{
	unsigned n;

	ck_assert_int_eq(store_backoff_ms(1), 250);
	ck_assert_int_eq(store_backoff_ms(2), 500);
	ck_assert_int_eq(store_backoff_ms(3), 1000);
	ck_assert_int_eq(store_backoff_ms(4), 2000);
	ck_assert_int_eq(store_backoff_ms(5), 4000);
	ck_assert_int_eq(store_backoff_ms(6), 5000);
	for (n = 6; n < 100000; n = n * 3)
		ck_assert_int_eq(store_backoff_ms(n), STORE_BACKOFF_MAX_MS);
	ck_assert_int_eq(store_backoff_ms(0xffffffffu), STORE_BACKOFF_MAX_MS);
}
END_TEST

/* The loop may never spin: after any number of failures the next
 * attempt is at least the first step away, and one attempt is allowed
 * per step. */
START_TEST(test_failures_wait_their_turn)
{
	struct store_health h;
	int64_t now = 1000000, attempts = 0, t;

	memset(&h, 0, sizeof(h));
	ck_assert(store_health_may_try(&h, now));
	ck_assert_int_eq(store_health_wait_ms(&h, now), 0);
	store_health_failed(&h, "commit: database or disk is full", now,
	    1.7e9);
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_FAILING);
	ck_assert(!store_health_may_dispatch(&h));
	ck_assert(!store_health_may_try(&h, now + 249));
	ck_assert(store_health_may_try(&h, now + 250));
	ck_assert_int_eq(store_health_wait_ms(&h, now + 100), 150);
	/* ten seconds of a loop that tries whenever it may */
	for (t = now; t < now + 10000; t++)
		if (store_health_may_try(&h, t)) {
			attempts++;
			store_health_failed(&h, "commit: database or disk is "
			    "full", t, 1.7e9);
		}
	ck_assert_int_le(attempts, 8);
	ck_assert_int_ge(attempts, 4);
	ck_assert_str_eq(h.error, "commit: database or disk is full");
	ck_assert(h.failing_since == 1.7e9);
	store_health_ok(&h);
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_OK);
	ck_assert(store_health_may_dispatch(&h));
	ck_assert_int_eq(h.failures, 0);
	ck_assert(store_health_may_try(&h, now));
}
END_TEST

START_TEST(test_space_states)
{
	struct store_health h;

	memset(&h, 0, sizeof(h));
	/* never looked: no limit known, none is announced */
	ck_assert(store_health_headroom(&h) == UINT64_MAX);
	/* first look, plenty: no change announced (it was ok) */
	ck_assert_int_eq(store_health_space(&h, 500 * MB, 100 * MB), 0);
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_OK);
	ck_assert_int_eq(store_health_headroom(&h), 400 * MB);
	/* below: intake refused, delivery goes on */
	ck_assert_int_eq(store_health_space(&h, 83 * MB, 100 * MB), 1);
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_LOW_SPACE);
	ck_assert_int_eq(store_health_headroom(&h), 0);
	ck_assert(store_health_may_dispatch(&h));
	ck_assert_int_eq(store_health_space(&h, 82 * MB, 100 * MB), 0);
	/* under the reserve an outcome needs: no delivery starts */
	ck_assert_int_eq(store_health_space(&h, 4096, 0), 1);
	ck_assert(!store_health_may_dispatch(&h));
	ck_assert_int_eq(store_health_space(&h, 2 * MB, 0), 0);
	ck_assert(store_health_may_dispatch(&h));
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_OK);
	/* failing wins over low space */
	ck_assert_int_eq(store_health_space(&h, 1 * MB, 100 * MB), 1);
	store_health_failed(&h, "x", 0, 0);
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_FAILING);
	store_health_ok(&h);
	ck_assert_int_eq(store_health_state(&h), QUEUE_STATE_LOW_SPACE);
}
END_TEST

START_TEST(test_threshold)
{
	ck_assert_int_eq(store_min_free(100 * MB, -1, 1000 * MB), 100 * MB);
	ck_assert_int_eq(store_min_free(0, -1, 1000 * MB), 0);
	ck_assert_int_eq(store_min_free(0, 5, 1000 * MB), 50 * MB);
	ck_assert_int_eq(store_min_free(0, 0, 1000 * MB), 0);
	ck_assert_int_eq(store_min_free(0, 1, 199), 1);
	/* no overflow on a huge filesystem */
	ck_assert_int_eq(store_min_free(0, 50, UINT64_MAX),
	    UINT64_MAX / 100 * 50 + UINT64_MAX % 100 * 50 / 100);
}
END_TEST

START_TEST(test_parse_min_free)
{
	int64_t b;
	int p;

	ck_assert_int_eq(config_parse_min_free("100M", &b, &p), 0);
	ck_assert_int_eq(b, 100 * 1024 * 1024);
	ck_assert_int_eq(p, -1);
	ck_assert_int_eq(config_parse_min_free("0", &b, &p), 0);
	ck_assert_int_eq(b, 0);
	ck_assert_int_eq(config_parse_min_free("512k", &b, &p), 0);
	ck_assert_int_eq(b, 512 * 1024);
	ck_assert_int_eq(config_parse_min_free("2G", &b, &p), 0);
	ck_assert_int_eq(b, 2LL * 1024 * 1024 * 1024);
	ck_assert_int_eq(config_parse_min_free("12345", &b, &p), 0);
	ck_assert_int_eq(b, 12345);
	ck_assert_int_eq(config_parse_min_free("5%", &b, &p), 0);
	ck_assert_int_eq(p, 5);
	ck_assert_int_eq(b, 0);
	ck_assert_int_eq(config_parse_min_free("0%", &b, &p), 0);
	ck_assert_int_eq(p, 0);
	ck_assert_int_eq(config_parse_min_free("100%", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("M", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("-1M", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("10MB", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("10 M", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("5%%", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("1.5G", &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("99999999999999999999",
	    &b, &p), -1);
	ck_assert_int_eq(config_parse_min_free("99999999G", &b, &p), -1);
}
END_TEST

START_TEST(test_fmt_bytes)
{
	char buf[32];

	ck_assert_str_eq(store_fmt_bytes(buf, sizeof(buf), 83 * MB), "83 MB");
	ck_assert_str_eq(store_fmt_bytes(buf, sizeof(buf), 100 * MB),
	    "100 MB");
	ck_assert_str_eq(store_fmt_bytes(buf, sizeof(buf), 512), "512 bytes");
	ck_assert_str_eq(store_fmt_bytes(buf, sizeof(buf), 20 * 1024),
	    "20 KB");
}
END_TEST

static Suite *
store_health_suite(void)
{
	Suite *s = suite_create("store_health");
	TCase *tc = tcase_create("health");

	tcase_add_test(tc, test_backoff_doubles_and_is_capped);
	tcase_add_test(tc, test_failures_wait_their_turn);
	tcase_add_test(tc, test_space_states);
	tcase_add_test(tc, test_threshold);
	tcase_add_test(tc, test_parse_min_free);
	tcase_add_test(tc, test_fmt_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(store_health_suite());
	int failed;

	log_init("check_store_health", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
