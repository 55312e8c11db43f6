/*
 * check_anvil.c - unit tests for src/anvil_table.c: client keys,
 * connection counts per client and in all, the connection and message
 * rates, the authentication lockout per address and per user, expiry
 * and the table's size cap, and stress mode (entered at the threshold,
 * left under it less the hysteresis, counted).  Time is given explicitly; nothing sleeps.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil_table.h"

#define T0 1000000        /* an arbitrary start, in ms */
#define MIN 60000

static struct anvil_limits
limits(void)
{
	struct anvil_limits l;

	memset(&l, 0, sizeof l);
	l.max_connections = 100;
	l.max_connections_per_client = 100;
	l.connection_rate = 1000;
	l.message_rate = 1000;
	l.auth_max_failures = 3;
	l.auth_lockout = 600;
	return l;
}

static int
conn(struct anvil_table *t, const char *key, int64_t now)
{
	int counted = -1, r = anvil_table_connect(t, key, now, &counted);

	ck_assert(counted == 0 || counted == 1);
	ck_assert_int_eq(counted, r == ANVIL_OK ? counted : 0);
	return r;
}

/* --- keys ------------------------------------------------------------- */

START_TEST(test_key_ipv4)
{
	char k[ANVIL_KEY_MAX];

	ck_assert_int_eq(anvil_client_key("192.0.2.7", k, sizeof k), 0);
	ck_assert_str_eq(k, "192.0.2.7");
	ck_assert_int_eq(anvil_client_key("::ffff:192.0.2.7", k, sizeof k), 0);
	ck_assert_str_eq(k, "192.0.2.7");
}
END_TEST

START_TEST(test_key_ipv6_prefix)
{
	char a[ANVIL_KEY_MAX], b[ANVIL_KEY_MAX], c[ANVIL_KEY_MAX];

	ck_assert_int_eq(anvil_client_key("2001:db8:1:2::1", a, sizeof a), 0);
	ck_assert_int_eq(anvil_client_key("2001:db8:1:2:ffff:1:2:3", b,
	    sizeof b), 0);
	ck_assert_int_eq(anvil_client_key("2001:db8:1:3::1", c, sizeof c), 0);
	ck_assert_str_eq(a, "2001:db8:1:2::/64");
	ck_assert_str_eq(a, b);
	ck_assert_str_ne(a, c);
	ck_assert_int_eq(anvil_client_key("::1", a, sizeof a), 0);
	ck_assert_str_eq(a, "::/64");
}
END_TEST

START_TEST(test_key_invalid)
{
	char k[ANVIL_KEY_MAX];

	ck_assert_int_eq(anvil_client_key("", k, sizeof k), -1);
	ck_assert_int_eq(anvil_client_key("unknown", k, sizeof k), -1);
	ck_assert_int_eq(anvil_client_key("192.0.2.300", k, sizeof k), -1);
	ck_assert_int_eq(anvil_client_key("192.0.2.1/24", k, sizeof k), -1);
	ck_assert_int_eq(anvil_client_key("1.2.3.4 ", k, sizeof k), -1);
	ck_assert_int_eq(anvil_client_key(NULL, k, sizeof k), -1);
	ck_assert_int_eq(anvil_client_key("1.2.3.4", k, 8), -1);
}
END_TEST

/* --- connections ------------------------------------------------------ */

START_TEST(test_per_client_limit)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;

	l.max_connections_per_client = 2;
	t = anvil_table_new(&l);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_TOO_MANY_FROM_CLIENT);
	/* another client is not affected */
	ck_assert_int_eq(conn(t, "192.0.2.2", T0), ANVIL_OK);
	ck_assert_int_eq(anvil_table_connections(t), 3);
	/* one leaves: room again */
	anvil_table_disconnect(t, "192.0.2.1", T0 + 1);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0 + 2), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0 + 3),
	    ANVIL_TOO_MANY_FROM_CLIENT);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_global_limit)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;

	l.max_connections = 3;
	t = anvil_table_new(&l);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.2", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.3", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.4", T0), ANVIL_TOO_MANY_CONNECTIONS);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_TOO_MANY_CONNECTIONS);
	ck_assert_int_eq(anvil_table_connections(t), 3);
	anvil_table_disconnect(t, "192.0.2.2", T0);
	ck_assert_int_eq(conn(t, "192.0.2.4", T0), ANVIL_OK);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_disconnect_unknown)
{
	struct anvil_limits l = limits();
	struct anvil_table *t = anvil_table_new(&l);

	/* never below zero, whatever a worker says */
	anvil_table_disconnect(t, "192.0.2.9", T0);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	anvil_table_disconnect(t, "192.0.2.1", T0);
	anvil_table_disconnect(t, "192.0.2.1", T0);
	ck_assert_int_eq(anvil_table_connections(t), 0);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_connection_rate)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	int i;

	l.connection_rate = 3;
	t = anvil_table_new(&l);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(conn(t, "192.0.2.1", T0 + i), ANVIL_OK);
		anvil_table_disconnect(t, "192.0.2.1", T0 + i);
	}
	ck_assert_int_eq(conn(t, "192.0.2.1", T0 + 10), ANVIL_CONNECTION_RATE);
	/* refused attempts do not count, and hold nothing */
	ck_assert_int_eq(anvil_table_connections(t), 0);
	ck_assert_int_eq(conn(t, "192.0.2.2", T0 + 10), ANVIL_OK);
	/* a third of a minute frees one start */
	ck_assert_int_eq(conn(t, "192.0.2.1", T0 + MIN / 3 + 10), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0 + MIN / 3 + 20),
	    ANVIL_CONNECTION_RATE);
	/* a minute of quiet frees them all */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(conn(t, "192.0.2.1", T0 + 3 * MIN + i),
		    ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0 + 3 * MIN + 5),
	    ANVIL_CONNECTION_RATE);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_message_rate)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	int i;

	l.message_rate = 5;
	t = anvil_table_new(&l);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0),
		    ANVIL_OK);
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0),
	    ANVIL_MESSAGE_RATE);
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.2", T0), ANVIL_OK);
	/* 12 s is one message's worth at 5 a minute */
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0 + 11999),
	    ANVIL_MESSAGE_RATE);
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0 + 12000),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0 + 12001),
	    ANVIL_MESSAGE_RATE);
	/* a clock that steps back changes nothing */
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0),
	    ANVIL_MESSAGE_RATE);
	anvil_table_free(t);
}
END_TEST

/* --- authentication --------------------------------------------------- */

START_TEST(test_auth_lockout_address)
{
	struct anvil_limits l = limits();
	struct anvil_table *t = anvil_table_new(&l);

	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", "", T0),
	    ANVIL_OK);
	anvil_table_auth_failed(t, "192.0.2.1", "", T0);
	anvil_table_auth_failed(t, "192.0.2.1", "", T0 + 1);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", "", T0 + 2),
	    ANVIL_OK);
	anvil_table_auth_failed(t, "192.0.2.1", "", T0 + 3);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", "", T0 + 4),
	    ANVIL_AUTH_LOCKED);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", "bob",
	    T0 + 4), ANVIL_AUTH_LOCKED);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.2", "", T0 + 4),
	    ANVIL_OK);
	/* the lockout lasts auth_lockout seconds from the last failure */
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", NULL,
	    T0 + 3 + 600 * 1000 - 1), ANVIL_AUTH_LOCKED);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", NULL,
	    T0 + 3 + 600 * 1000), ANVIL_OK);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_auth_lockout_user)
{
	struct anvil_limits l = limits();
	struct anvil_table *t = anvil_table_new(&l);

	/* three addresses guess one user's password */
	anvil_table_auth_failed(t, "192.0.2.1", "alice", T0);
	anvil_table_auth_failed(t, "192.0.2.2", "alice", T0);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.9", "alice", T0),
	    ANVIL_OK);
	anvil_table_auth_failed(t, "192.0.2.3", "alice", T0);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.9", "alice", T0),
	    ANVIL_AUTH_LOCKED);
	/* no address is locked, nor another user */
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", "", T0),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1", "bob", T0),
	    ANVIL_OK);
	/* a user named like an address is still a user */
	anvil_table_auth_failed(t, "192.0.2.5", "192.0.2.6", T0);
	anvil_table_auth_failed(t, "192.0.2.5", "192.0.2.6", T0);
	anvil_table_auth_failed(t, "192.0.2.7", "192.0.2.6", T0);
	ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.6", "", T0),
	    ANVIL_OK);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_auth_failures_spread_out)
{
	struct anvil_limits l = limits();
	struct anvil_table *t = anvil_table_new(&l);
	int i;

	/* two failures per window never lock */
	for (i = 0; i < 10; i++) {
		int64_t now = T0 + (int64_t)i * 601 * 1000;

		anvil_table_auth_failed(t, "192.0.2.1", "carol", now);
		anvil_table_auth_failed(t, "192.0.2.1", "carol", now + 1);
		ck_assert_int_eq(anvil_table_auth_check(t, "192.0.2.1",
		    "carol", now + 2), ANVIL_OK);
	}
	anvil_table_free(t);
}
END_TEST

/* --- memory ----------------------------------------------------------- */

START_TEST(test_expire)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;

	l.connection_rate = 60;
	t = anvil_table_new(&l);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.2", T0), ANVIL_OK);
	anvil_table_disconnect(t, "192.0.2.2", T0);
	anvil_table_auth_failed(t, "192.0.2.3", "dave", T0);
	ck_assert_uint_eq(anvil_table_entries(t), 4);
	/* the rate bucket still holds the start for a second */
	ck_assert_uint_eq(anvil_table_expire(t, T0 + 500), 0);
	ck_assert_uint_eq(anvil_table_expire(t, T0 + 1000), 1);
	/* failures are remembered for the lockout window */
	ck_assert_uint_eq(anvil_table_expire(t, T0 + 599 * 1000), 0);
	ck_assert_uint_eq(anvil_table_expire(t, T0 + 600 * 1000), 2);
	/* an open connection is never forgotten */
	ck_assert_uint_eq(anvil_table_entries(t), 1);
	ck_assert_uint_eq(anvil_table_expire(t, T0 + 86400000), 0);
	anvil_table_disconnect(t, "192.0.2.1", T0 + 86400000);
	ck_assert_uint_eq(anvil_table_expire(t, T0 + 86400000), 1);
	ck_assert_uint_eq(anvil_table_entries(t), 0);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_cap_fails_open)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	int counted;

	l.max_entries = 2;
	l.max_connections_per_client = 1;
	t = anvil_table_new(&l);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.2", T0), ANVIL_OK);
	/* full: a new client is allowed but not counted */
	ck_assert_int_eq(anvil_table_connect(t, "192.0.2.3", T0, &counted),
	    ANVIL_OK);
	ck_assert_int_eq(counted, 0);
	ck_assert_int_eq(anvil_table_connect(t, "192.0.2.3", T0, &counted),
	    ANVIL_OK);
	ck_assert_uint_eq(anvil_table_overflows(t), 2);
	ck_assert_uint_eq(anvil_table_entries(t), 2);
	ck_assert_int_eq(anvil_table_connections(t), 2);
	/* known clients are still limited */
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_TOO_MANY_FROM_CLIENT);
	/* once an entry is idle there is room again (swept when full) */
	anvil_table_disconnect(t, "192.0.2.2", T0);
	ck_assert_int_eq(anvil_table_connect(t, "192.0.2.3", T0 + 60000,
	    &counted), ANVIL_OK);
	ck_assert_int_eq(counted, 1);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_many_entries)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	char key[64];
	int i;

	l.max_connections = 10000;
	t = anvil_table_new(&l);
	/* grows past its first size; every key is still found */
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "10.%d.%d.1", i / 256, i % 256);
		ck_assert_int_eq(conn(t, key, T0), ANVIL_OK);
	}
	ck_assert_uint_eq(anvil_table_entries(t), 5000);
	ck_assert_int_eq(anvil_table_connections(t), 5000);
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "10.%d.%d.1", i / 256, i % 256);
		anvil_table_disconnect(t, key, T0 + MIN);
	}
	ck_assert_int_eq(anvil_table_connections(t), 0);
	ck_assert_uint_eq(anvil_table_expire(t, T0 + MIN), 5000);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_set_limits_keeps_counts)
{
	struct anvil_limits l = limits();
	struct anvil_table *t = anvil_table_new(&l);

	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	l.max_connections_per_client = 2;
	anvil_table_set_limits(t, &l);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_TOO_MANY_FROM_CLIENT);
	ck_assert_int_eq(anvil_table_connections(t), 2);
	anvil_table_free(t);
}
END_TEST

START_TEST(test_stress_rule)
{
	/* off: enters at 80 % of 2048 = 1638.4, so 1639 */
	ck_assert_int_eq(anvil_stress_decide(0, 1638, 2048, 80), 0);
	ck_assert_int_eq(anvil_stress_decide(0, 1639, 2048, 80), 1);
	ck_assert_int_eq(anvil_stress_decide(0, 2048, 2048, 80), 1);
	/* on: stays on down to 70 % (1433.6), leaves under it */
	ck_assert_int_eq(anvil_stress_decide(1, 1639, 2048, 80), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 1500, 2048, 80), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 1434, 2048, 80), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 1433, 2048, 80), 0);
	/* between the marks the state holds, whichever it is */
	ck_assert_int_eq(anvil_stress_decide(0, 1500, 2048, 80), 0);
	/* 100 %: only a full relay */
	ck_assert_int_eq(anvil_stress_decide(0, 99, 100, 100), 0);
	ck_assert_int_eq(anvil_stress_decide(0, 100, 100, 100), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 90, 100, 100), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 89, 100, 100), 0);
	/* a low threshold leaves at half of it; 1 % leaves when empty */
	ck_assert_int_eq(anvil_stress_decide(0, 8, 100, 8), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 4, 100, 8), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 3, 100, 8), 0);
	ck_assert_int_eq(anvil_stress_decide(0, 1, 100, 1), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 1, 100, 1), 1);
	ck_assert_int_eq(anvil_stress_decide(1, 0, 100, 1), 0);
	/* 0: never */
	ck_assert_int_eq(anvil_stress_decide(0, 100, 100, 0), 0);
	ck_assert_int_eq(anvil_stress_decide(1, 100, 100, 0), 0);
	/* no overflow at the largest counts */
	ck_assert_int_eq(anvil_stress_decide(0, 100000, 100000, 100), 1);
}
END_TEST

START_TEST(test_stress_enter_leave)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	char key[64];
	int i;

	l.max_connections = 20;
	l.stress_threshold = 50;       /* on at 10, off under 8 */
	t = anvil_table_new(&l);
	ck_assert_int_eq(anvil_table_stress(t), 0);
	ck_assert_uint_eq(anvil_table_stress_entered(t), 0);
	for (i = 0; i < 9; i++) {
		snprintf(key, sizeof key, "192.0.2.%d", i + 1);
		ck_assert_int_eq(conn(t, key, T0), ANVIL_OK);
		ck_assert_int_eq(anvil_table_stress_update(t, T0), 0);
	}
	ck_assert_int_eq(conn(t, "192.0.2.10", T0 + 5), ANVIL_OK);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 5), 1);
	ck_assert_int_eq(anvil_table_stress(t), 1);
	ck_assert_int_eq(anvil_table_stress_since(t), T0 + 5);
	ck_assert_uint_eq(anvil_table_stress_entered(t), 1);
	/* once: no second change while it stays on */
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 6), 0);
	/* down to 8: still on (hysteresis) */
	anvil_table_disconnect(t, "192.0.2.10", T0 + 10);
	anvil_table_disconnect(t, "192.0.2.9", T0 + 10);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 10), 0);
	ck_assert_int_eq(anvil_table_stress(t), 1);
	/* 7: off */
	anvil_table_disconnect(t, "192.0.2.8", T0 + 20);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 20), -1);
	ck_assert_int_eq(anvil_table_stress(t), 0);
	ck_assert_int_eq(anvil_table_stress_since(t), T0 + 20);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 21), 0);
	/* 9: under the threshold, still off */
	ck_assert_int_eq(conn(t, "192.0.2.8", T0 + 30), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.9", T0 + 30), ANVIL_OK);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 30), 0);
	/* 10 again: on, counted a second time */
	ck_assert_int_eq(conn(t, "192.0.2.10", T0 + 40), ANVIL_OK);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 40), 1);
	ck_assert_uint_eq(anvil_table_stress_entered(t), 2);
	/* a reload that raises the threshold ends it; the count stays */
	l.stress_threshold = 80;
	anvil_table_set_limits(t, &l);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 50), -1);
	ck_assert_uint_eq(anvil_table_stress_entered(t), 2);
	anvil_table_free(t);
}
END_TEST

static Suite *
anvil_suite(void)
{
	Suite *s = suite_create("anvil");
	TCase *tc = tcase_create("keys");

	tcase_add_test(tc, test_key_ipv4);
	tcase_add_test(tc, test_key_ipv6_prefix);
	tcase_add_test(tc, test_key_invalid);
	suite_add_tcase(s, tc);
	tc = tcase_create("connections");
	tcase_add_test(tc, test_per_client_limit);
	tcase_add_test(tc, test_global_limit);
	tcase_add_test(tc, test_disconnect_unknown);
	tcase_add_test(tc, test_connection_rate);
	tcase_add_test(tc, test_message_rate);
	suite_add_tcase(s, tc);
	tc = tcase_create("auth");
	tcase_add_test(tc, test_auth_lockout_address);
	tcase_add_test(tc, test_auth_lockout_user);
	tcase_add_test(tc, test_auth_failures_spread_out);
	suite_add_tcase(s, tc);
	tc = tcase_create("memory");
	tcase_add_test(tc, test_expire);
	tcase_add_test(tc, test_cap_fails_open);
	tcase_add_test(tc, test_many_entries);
	tcase_add_test(tc, test_set_limits_keeps_counts);
	suite_add_tcase(s, tc);
	tc = tcase_create("stress");
	tcase_add_test(tc, test_stress_rule);
	tcase_add_test(tc, test_stress_enter_leave);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(anvil_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
