/*
 * check_anvil.c - unit tests for src/anvil_table.c: client keys,
 * connection counts per client and in all, the connection and message
 * rates, the authentication lockout per address and per user, expiry
 * and the table's size cap, and stress mode (entered at the threshold,
 * left under it less the hysteresis, counted; the memory rule and the
 * /proc/meminfo parser).  Time is given explicitly; nothing sleeps.
 *
 * And the worker's side of the questions (src/anvil_client.c), against a
 * fake anvil on a unix socket in this process: answers matched to the
 * questions in the order asked, each to its owner; an answer out of
 * turn, or one nobody asked for, is anvil lying (the connection goes and
 * every question waiting is allowed); a question past its deadline is
 * allowed; an owner that stopped waiting hears nothing.
 */
#include <check.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "anvil_client.h"
#include "anvil_figures.h"
#include "anvil_table.h"
#include "channel.h"
#include "ipc.h"
#include "util.h"

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

/* A lease: all it asked for far from the limit, one near it, none over
 * it; what goes back counts no more. */
START_TEST(test_message_lease)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	uint32_t g;
	int i;

	l.message_rate = 40;
	t = anvil_table_new(&l);
	ck_assert_int_eq(anvil_table_messages(t, "192.0.2.1", T0, 16, &g),
	    ANVIL_OK);
	ck_assert_uint_eq(g, 16);
	/* 16 + 16 would pass half of 40: one at a time now */
	ck_assert_int_eq(anvil_table_messages(t, "192.0.2.1", T0, 16, &g),
	    ANVIL_OK);
	ck_assert_uint_eq(g, 1);
	for (i = 0; i < 40 - 17; i++) {
		ck_assert_int_eq(anvil_table_messages(t, "192.0.2.1", T0, 16,
		    &g), ANVIL_OK);
		ck_assert_uint_eq(g, 1);
	}
	ck_assert_int_eq(anvil_table_messages(t, "192.0.2.1", T0, 16, &g),
	    ANVIL_MESSAGE_RATE);
	ck_assert_uint_eq(g, 0);
	/* 15 of the first lease were never used */
	anvil_table_messages_back(t, "192.0.2.1", 15, T0);
	for (i = 0; i < 15; i++)
		ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0),
		    ANVIL_OK);
	ck_assert_int_eq(anvil_table_message(t, "192.0.2.1", T0),
	    ANVIL_MESSAGE_RATE);
	/* another client has its own */
	ck_assert_int_eq(anvil_table_messages(t, "192.0.2.2", T0, 16, &g),
	    ANVIL_OK);
	ck_assert_uint_eq(g, 16);
	anvil_table_free(t);
}
END_TEST

/* Connections with a lease: rate events lent far from the rate, taken
 * back; a question on a rate event lent counts the slot only. */
START_TEST(test_connection_lease)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	uint32_t g;
	int counted, keep, i;

	l.connection_rate = 40;
	t = anvil_table_new(&l);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_uint_eq(g, 16);
	ck_assert_int_eq(counted, 1);
	ck_assert_int_eq(keep, 1);
	/* 16 + 16 would pass half of 40: one at a time now */
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_uint_eq(g, 1);
	for (i = 0; i < 40 - 17; i++)
		ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_CONNECTION_RATE);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(counted, 0);
	ck_assert_int_eq(anvil_table_connections(t), 40 - 15);
	/* a rate event lent already: only the slot is counted */
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 0,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(counted, 1);
	/* 15 of the first lease were never used */
	anvil_table_connects_back(t, "192.0.2.1", 15, T0);
	for (i = 0; i < 15; i++)
		ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_CONNECTION_RATE);
	anvil_table_free(t);
}
END_TEST

/* A slot may be kept only well below every limit; once an answer says
 * no after one said yes, a recall is due, once. */
START_TEST(test_slot_keep_rule)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	uint32_t g;
	int counted, keep;

	l.max_connections_per_client = 4;
	l.max_connections = 6;
	t = anvil_table_new(&l);
	ck_assert_int_eq(anvil_table_recall_due(t), 0);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(keep, 1);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(keep, 1);   /* 2 of 4 */
	ck_assert_int_eq(anvil_table_recall_due(t), 0);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(keep, 0);   /* 3 of 4: near the client's limit */
	ck_assert_int_eq(anvil_table_recall_due(t), 1);
	ck_assert_int_eq(anvil_table_recall_due(t), 0);
	/* another client: 4 of 6 in all is near the relay's limit */
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.2", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(keep, 0);
	ck_assert_int_eq(anvil_table_recall_due(t), 0);
	anvil_table_disconnect(t, "192.0.2.2", T0);
	anvil_table_disconnect(t, "192.0.2.1", T0);
	anvil_table_disconnect(t, "192.0.2.1", T0);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.2", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(keep, 1);   /* 3 of 6, 1 of 4 */
	/* a refusal after a yes recalls too */
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(conn(t, "192.0.2.1", T0), ANVIL_OK);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_TOO_MANY_FROM_CLIENT);
	ck_assert_int_eq(keep, 0);
	ck_assert_int_eq(anvil_table_recall_due(t), 1);
	/* the stress threshold: 80 % of 10 is 8, kept only under 4 */
	l = limits();
	l.max_connections = 10;
	l.stress_threshold = 80;
	anvil_table_set_limits(t, &l);
	ck_assert_int_eq(anvil_table_connections(t), 5);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.3", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(keep, 0);
	anvil_table_free(t);
}
END_TEST

/* On a kept slot: nothing more is counted and no concurrency limit is
 * checked again; a rate refusal releases the slot. */
START_TEST(test_slot_held)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	uint32_t g;
	int counted, keep;

	l.max_connections_per_client = 1;
	l.connection_rate = 2;
	t = anvil_table_new(&l);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0, 0, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(counted, 1);
	ck_assert_uint_eq(g, 1);
	ck_assert_int_eq(keep, 0);          /* 1 of 1 */
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0 + 1, 1, 16,
	    &counted, &g, &keep), ANVIL_OK);
	ck_assert_int_eq(counted, 0);
	ck_assert_uint_eq(g, 1);
	ck_assert_int_eq(anvil_table_connections(t), 1);
	ck_assert_int_eq(anvil_table_connects(t, "192.0.2.1", T0 + 2, 1, 16,
	    &counted, &g, &keep), ANVIL_CONNECTION_RATE);
	ck_assert_int_eq(anvil_table_connections(t), 0);
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

/* The memory rule: on under the threshold, off 5 points over it. */
START_TEST(test_memory_stress_rule)
{
	ck_assert_int_eq(anvil_memory_stress_decide(0, 5, 100, 0), 0);
	ck_assert_int_eq(anvil_memory_stress_decide(0, 5, 0, 10), 0);
	ck_assert_int_eq(anvil_memory_stress_decide(0, 10, 100, 10), 0);
	ck_assert_int_eq(anvil_memory_stress_decide(0, 9, 100, 10), 1);
	/* exact: 99.9 % is under 100 % */
	ck_assert_int_eq(anvil_memory_stress_decide(0, 999, 1000, 100), 1);
	ck_assert_int_eq(anvil_memory_stress_decide(0, 1000, 1000, 100), 0);
	/* more available than the total (a stale reading): not under */
	ck_assert_int_eq(anvil_memory_stress_decide(0, 2000, 1000, 10), 0);
	/* on: stays until 15 % */
	ck_assert_int_eq(anvil_memory_stress_decide(1, 12, 100, 10), 1);
	ck_assert_int_eq(anvil_memory_stress_decide(1, 14, 100, 10), 1);
	ck_assert_int_eq(anvil_memory_stress_decide(1, 15, 100, 10), 0);
	/* large machines: no overflow (1 TiB in kB) */
	ck_assert_int_eq(anvil_memory_stress_decide(0, 100ULL << 20,
	    1ULL << 30, 10), 1);
}
END_TEST

START_TEST(test_meminfo_parse)
{
	static const char text[] =
	    "MemTotal:       24683748 kB\n"
	    "MemFree:        23668892 kB\n"
	    "MemAvailable:   24131552 kB\n"
	    "Buffers:          123456 kB\n";
	static const char no_avail[] =
	    "MemTotal:       1000 kB\nMemFree:        500 kB\n";
	static const char bad[] = "MemTotal: x kB\nMemAvailable: 5 kB\n";
	uint64_t total = 0, avail = 0;

	ck_assert_int_eq(anvil_meminfo_parse(text, sizeof(text) - 1, &total,
	    &avail), 0);
	ck_assert_uint_eq(total, 24683748);
	ck_assert_uint_eq(avail, 24131552);
	/* a prefix of a name is not the name */
	ck_assert_int_eq(anvil_meminfo_parse("MemAvailableX: 5 kB\n"
	    "MemTotal: 10 kB\n", 36, &total, &avail), -1);
	ck_assert_int_eq(anvil_meminfo_parse(no_avail, sizeof(no_avail) - 1,
	    &total, &avail), -1);
	ck_assert_int_eq(anvil_meminfo_parse(bad, sizeof(bad) - 1, &total,
	    &avail), -1);
	/* cut short: what is not in the buffer is not read */
	ck_assert_int_eq(anvil_meminfo_parse(text, 10, &total, &avail), -1);
	ck_assert_int_eq(anvil_meminfo_parse("", 0, &total, &avail), -1);
}
END_TEST

/* Memory alone puts the relay in stress, once; connections and memory
 * together leave it only when neither holds. */
START_TEST(test_memory_stress_enter_leave)
{
	struct anvil_limits l = limits();
	struct anvil_table *t;
	char key[64];
	int i;

	l.max_connections = 10;
	l.stress_threshold = 50;
	l.stress_memory_available = 10;
	t = anvil_table_new(&l);
	/* not read yet: left out */
	ck_assert_int_eq(anvil_table_memory_percent(t), -1);
	ck_assert_int_eq(anvil_table_stress_update(t, T0), 0);
	anvil_table_set_memory(t, 500, 1000);
	ck_assert_int_eq(anvil_table_memory_percent(t), 50);
	ck_assert_int_eq(anvil_table_stress_update(t, T0), 0);
	anvil_table_set_memory(t, 80, 1000);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 1), 1);
	ck_assert_int_eq(anvil_table_stress(t), 1);
	ck_assert_int_eq(anvil_table_stress_by_memory(t), 1);
	ck_assert_int_eq(anvil_table_stress_by_connections(t), 0);
	ck_assert_uint_eq(anvil_table_stress_entered(t), 1);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 2), 0);
	/* connections reach theirs too: still one stress */
	for (i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "192.0.2.%d", i + 1);
		ck_assert_int_eq(conn(t, key, T0 + 3), ANVIL_OK);
	}
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 3), 0);
	ck_assert_int_eq(anvil_table_stress_by_connections(t), 1);
	/* memory back (over 15 %): connections keep it on */
	anvil_table_set_memory(t, 200, 1000);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 4), 0);
	ck_assert_int_eq(anvil_table_stress_by_memory(t), 0);
	ck_assert_int_eq(anvil_table_stress(t), 1);
	/* and the connections go: off, once */
	for (i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "192.0.2.%d", i + 1);
		anvil_table_disconnect(t, key, T0 + 5);
	}
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 5), -1);
	ck_assert_int_eq(anvil_table_stress(t), 0);
	/* memory under 10 % again, then at 12 %: on, and still on */
	anvil_table_set_memory(t, 50, 1000);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 6), 1);
	ck_assert_uint_eq(anvil_table_stress_entered(t), 2);
	anvil_table_set_memory(t, 120, 1000);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 7), 0);
	/* a threshold of 0 leaves memory out */
	l.stress_memory_available = 0;
	anvil_table_set_limits(t, &l);
	ck_assert_int_eq(anvil_table_stress_update(t, T0 + 8), -1);
	anvil_table_free(t);
}
END_TEST

/* ------------------------------------------------- the worker's questions */

static const struct channel_rule worker_sends[] = {
	{ IMSG_ANVIL_CONNECT, 0 },
	{ IMSG_ANVIL_DISCONNECT, 0 },
	{ IMSG_ANVIL_MESSAGE, 0 },
	{ IMSG_ANVIL_AUTH_CHECK, 0 },
	{ IMSG_ANVIL_AUTH_FAILED, 0 },
	{ IMSG_ANVIL_CONNECTS, 0 },
	{ IMSG_ANVIL_CONNECTS_BACK, 0 },
	{ IMSG_ANVIL_RECALL, 0 },
	{ 0, 0 }
};

#define OWNERS 8

/* What the client's callback heard, per owner: -1 nothing. */
static int heard[OWNERS];
static int heard_count;

static void
on_answer(void *arg, uint32_t owner, int result)
{
	(void)arg;
	ck_assert_uint_lt(owner, OWNERS);
	ck_assert_int_eq(heard[owner], -1);   /* one answer per question */
	heard[owner] = result;
	heard_count++;
}

struct fake_anvil {
	char path[108];
	int lfd;
	struct channel srv;     /* the worker's connection, once accepted */
};

static void
fake_start(struct fake_anvil *fa, struct anvil_client *ac)
{
	struct sockaddr_un sun;
	size_t i;

	for (i = 0; i < OWNERS; i++)
		heard[i] = -1;
	heard_count = 0;
	fa->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fa->lfd, 0);
	snprintf(fa->path, sizeof(fa->path), "/tmp/ferry-check-anvilq-%ld",
	    (long)getpid());
	unlink(fa->path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, fa->path);
	ck_assert_int_eq(bind(fa->lfd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	ck_assert_int_eq(listen(fa->lfd, 4), 0);
	anvil_client_init(ac, fa->path, on_answer, NULL);
	anvil_client_keep_connected(ac);
	ck_assert_int_ge(anvil_client_fd(ac), 0);
	channel_init(&fa->srv, accept(fa->lfd, NULL, NULL), "worker",
	    worker_sends, 1024, 0);
	ck_assert_int_ge(fa->srv.fd, 0);
}

static void
fake_stop(struct fake_anvil *fa, struct anvil_client *ac)
{
	channel_free(&fa->srv);
	anvil_client_close(ac);
	close(fa->lfd);
	unlink(fa->path);
}

/* The next request the fake anvil reads: its type and sequence number. */
static uint32_t
fake_read(struct fake_anvil *fa, int type)
{
	struct ipc_in in;
	uint32_t seq;

	ck_assert_int_eq(channel_read_wait(&fa->srv, &in, now_ms() + 2000), 1);
	ck_assert_int_eq(in.type, type);
	ck_assert_int_eq(ipc_get_u32(&in, &seq), 0);
	return seq;
}

static void
fake_answer(struct fake_anvil *fa, uint32_t seq, uint32_t result)
{
	struct ipc_out *m = channel_begin(&fa->srv, IMSG_ANVIL_ANSWER);

	ipc_add_u32(m, seq);
	ipc_add_u32(m, result);
	ipc_add_u32(m, 0);              /* no messages granted */
	ck_assert_int_eq(channel_end(&fa->srv), 0);
	ck_assert_int_eq(channel_flush_wait(&fa->srv, now_ms() + 2000), 0);
}

/* A MESSAGE question's answer with a lease of granted messages. */
static void
fake_grant(struct fake_anvil *fa, uint32_t seq, uint32_t granted)
{
	struct ipc_out *m = channel_begin(&fa->srv, IMSG_ANVIL_ANSWER);

	ipc_add_u32(m, seq);
	ipc_add_u32(m, ANVIL_OK);
	ipc_add_u32(m, granted);
	ck_assert_int_eq(channel_end(&fa->srv), 0);
	ck_assert_int_eq(channel_flush_wait(&fa->srv, now_ms() + 2000), 0);
}

/* A CONNECTS question's answer. */
static void
fake_connects_answer(struct fake_anvil *fa, uint32_t seq, uint32_t result,
    uint32_t granted, uint8_t keep)
{
	struct ipc_out *m = channel_begin(&fa->srv,
	    IMSG_ANVIL_CONNECTS_ANSWER);

	ipc_add_u32(m, seq);
	ipc_add_u32(m, result);
	ipc_add_u32(m, granted);
	ipc_add_u8(m, keep);
	ck_assert_int_eq(channel_end(&fa->srv), 0);
	ck_assert_int_eq(channel_flush_wait(&fa->srv, now_ms() + 2000), 0);
}

/* The next request, which must be CONNECTS (its rate events wanted and
 * slot flag) or CONNECTS_BACK (its rate events and slots). */
static uint32_t
fake_read_connects(struct fake_anvil *fa, int type, uint32_t *count,
    uint32_t *extra)
{
	struct ipc_in in;
	uint32_t seq;
	char *addr = NULL;
	uint8_t held;

	ck_assert_int_eq(channel_read_wait(&fa->srv, &in, now_ms() + 2000), 1);
	ck_assert_int_eq(in.type, type);
	ck_assert_int_eq(ipc_get_u32(&in, &seq), 0);
	ck_assert_int_eq(ipc_get_str(&in, &addr, 64), 0);
	free(addr);
	ck_assert_int_eq(ipc_get_u32(&in, count), 0);
	if (type == IMSG_ANVIL_CONNECTS) {
		ck_assert_int_eq(ipc_get_u8(&in, &held), 0);
		*extra = held;
	} else
		ck_assert_int_eq(ipc_get_u32(&in, extra), 0);
	ck_assert_int_eq(ipc_end(&in), 0);
	return seq;
}

/* Lets the client take what the fake anvil wrote. */
static void
client_turn(struct anvil_client *ac)
{
	struct pollfd pfd;

	if (anvil_client_fd(ac) < 0)
		return;
	pfd.fd = anvil_client_fd(ac);
	pfd.events = anvil_client_events(ac);
	pfd.revents = 0;
	ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
	anvil_client_io(ac, pfd.revents);
}

START_TEST(test_answers_in_order)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, s2, s3;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connect(&ac, 1, "192.0.2.1"), 1);
	ck_assert_int_eq(anvil_ask_message(&ac, 5, "192.0.2.2"), 1);
	anvil_disconnect(&ac, "192.0.2.9");          /* no answer due */
	ck_assert_int_eq(anvil_ask_auth(&ac, 2, "192.0.2.3", "joe"), 1);
	ck_assert_int_gt(anvil_client_deadline(&ac), 0);
	s1 = fake_read(&fa, IMSG_ANVIL_CONNECT);
	s2 = fake_read(&fa, IMSG_ANVIL_MESSAGE);
	(void)fake_read(&fa, IMSG_ANVIL_DISCONNECT);
	s3 = fake_read(&fa, IMSG_ANVIL_AUTH_CHECK);
	ck_assert(s1 != s2 && s2 != s3 && s1 != s3);

	fake_answer(&fa, s1, ANVIL_TOO_MANY_FROM_CLIENT);
	client_turn(&ac);
	ck_assert_int_eq(heard_count, 1);
	ck_assert_int_eq(heard[1], ANVIL_TOO_MANY_FROM_CLIENT);
	fake_answer(&fa, s2, ANVIL_MESSAGE_RATE);
	fake_answer(&fa, s3, ANVIL_AUTH_LOCKED);
	while (heard_count < 3)
		client_turn(&ac);
	ck_assert_int_eq(heard[5], ANVIL_MESSAGE_RATE);
	ck_assert_int_eq(heard[2], ANVIL_AUTH_LOCKED);
	ck_assert_int_eq(anvil_client_deadline(&ac), 0);
	ck_assert_int_ge(anvil_client_fd(&ac), 0);  /* still connected */
	fake_stop(&fa, &ac);
}
END_TEST

/* The answer to the second question first: anvil is lying. */
START_TEST(test_answer_out_of_turn)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s2;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_message(&ac, 1, "192.0.2.1"), 1);
	ck_assert_int_eq(anvil_ask_message(&ac, 2, "192.0.2.1"), 1);
	(void)fake_read(&fa, IMSG_ANVIL_MESSAGE);
	s2 = fake_read(&fa, IMSG_ANVIL_MESSAGE);
	fake_answer(&fa, s2, ANVIL_MESSAGE_RATE);
	client_turn(&ac);
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	/* both allowed, neither refused by the lie */
	ck_assert_int_eq(heard_count, 2);
	ck_assert_int_eq(heard[1], ANVIL_OK);
	ck_assert_int_eq(heard[2], ANVIL_OK);
	ck_assert_int_eq(anvil_client_deadline(&ac), 0);
	/* and for a while nothing is asked: allowed at once */
	ck_assert_int_eq(anvil_ask_message(&ac, 3, "192.0.2.1"), 0);
	fake_stop(&fa, &ac);
}
END_TEST

/* An answer when nothing was asked, and a result we do not know. */
START_TEST(test_answer_unasked)
{
	struct anvil_client ac;
	struct fake_anvil fa;

	fake_start(&fa, &ac);
	fake_answer(&fa, 1, ANVIL_OK);
	client_turn(&ac);
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	ck_assert_int_eq(heard_count, 0);
	fake_stop(&fa, &ac);
}
END_TEST

START_TEST(test_answer_unknown_result)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t seq;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connect(&ac, 4, "192.0.2.1"), 1);
	seq = fake_read(&fa, IMSG_ANVIL_CONNECT);
	fake_answer(&fa, seq, ANVIL_AUTH_LOCKED + 1);
	client_turn(&ac);
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	ck_assert_int_eq(heard[4], ANVIL_OK);
	fake_stop(&fa, &ac);
}
END_TEST

/* No answer within the deadline: allowed, the connection dropped. */
START_TEST(test_deadline_allows)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	int64_t deadline;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_auth(&ac, 6, "192.0.2.1", ""), 1);
	deadline = anvil_client_deadline(&ac);
	ck_assert_int_gt(deadline, now_ms());
	ck_assert_int_le(deadline, now_ms() + ANVIL_DEADLINE_MS);
	anvil_client_tick(&ac, deadline - 1);
	ck_assert_int_eq(heard_count, 0);
	ck_assert_int_ge(anvil_client_fd(&ac), 0);
	anvil_client_tick(&ac, deadline);
	ck_assert_int_eq(heard_count, 1);
	ck_assert_int_eq(heard[6], ANVIL_OK);
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	ck_assert_int_eq(anvil_client_deadline(&ac), 0);
	fake_stop(&fa, &ac);
}
END_TEST

/* A lease granted with a MESSAGE answer serves that client's next MAIL
 * commands without a question; another client still asks; once used
 * up, the client asks again. */
START_TEST(test_lease_used)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, s2;
	int i;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_message(&ac, 1, "192.0.2.1"), 1);
	s1 = fake_read(&fa, IMSG_ANVIL_MESSAGE);
	fake_grant(&fa, s1, 4);
	while (heard_count < 1)
		client_turn(&ac);
	ck_assert_int_eq(heard[1], ANVIL_OK);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(anvil_ask_message(&ac, 2, "192.0.2.1"), 0);
	ck_assert_int_eq(anvil_client_deadline(&ac), 0);   /* none asked */
	ck_assert_int_eq(anvil_ask_message(&ac, 3, "192.0.2.7"), 1);
	ck_assert_int_eq(anvil_ask_message(&ac, 4, "192.0.2.1"), 1);
	(void)fake_read(&fa, IMSG_ANVIL_MESSAGE);
	s2 = fake_read(&fa, IMSG_ANVIL_MESSAGE);
	ck_assert(s2 != s1);
	fake_stop(&fa, &ac);
}
END_TEST

/* A grant to a question that was not MESSAGE is anvil lying. */
START_TEST(test_grant_unasked)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connect(&ac, 1, "192.0.2.1"), 1);
	s1 = fake_read(&fa, IMSG_ANVIL_CONNECT);
	fake_grant(&fa, s1, 4);
	while (heard_count < 1)
		client_turn(&ac);
	ck_assert_int_eq(heard[1], ANVIL_OK);     /* allowed: fail open */
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	fake_stop(&fa, &ac);
}
END_TEST

/* A connection lease: the next connection of the address takes the
 * kept slot and a lent rate event without a question, and no
 * DISCONNECT is written; what is left goes back in one frame after
 * ANVIL_LEASE_MS. */
START_TEST(test_connects_lease_used)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, count, extra;
	int i;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connects(&ac, 1, "192.0.2.1"), 1);
	s1 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	ck_assert_uint_eq(count, ANVIL_LEASE_MAX);
	ck_assert_uint_eq(extra, 0);
	fake_connects_answer(&fa, s1, ANVIL_OK, 4, 1);
	while (heard_count < 1)
		client_turn(&ac);
	ck_assert_int_eq(heard[1], ANVIL_OK);
	for (i = 0; i < 3; i++) {
		anvil_end_connection(&ac, "192.0.2.1");
		ck_assert_int_eq(anvil_ask_connects(&ac, 2, "192.0.2.1"), 0);
	}
	/* the lent events are used up: on the kept slot, a question */
	anvil_end_connection(&ac, "192.0.2.1");
	ck_assert_int_eq(anvil_ask_connects(&ac, 3, "192.0.2.1"), 1);
	s1 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	ck_assert_uint_eq(count, ANVIL_LEASE_MAX);
	ck_assert_uint_eq(extra, 1);
	fake_connects_answer(&fa, s1, ANVIL_OK, 3, 1);
	while (heard_count < 2)
		client_turn(&ac);
	anvil_end_connection(&ac, "192.0.2.1");
	/* nothing written meanwhile: the slot and two events go back */
	anvil_client_tick(&ac, now_ms() + ANVIL_LEASE_MS - 200);
	anvil_client_tick(&ac, now_ms() + ANVIL_LEASE_MS + 1);
	(void)fake_read_connects(&fa, IMSG_ANVIL_CONNECTS_BACK, &count,
	    &extra);
	ck_assert_uint_eq(count, 2);
	ck_assert_uint_eq(extra, 1);
	/* and a session that ends now tells anvil at once */
	anvil_end_connection(&ac, "192.0.2.1");
	(void)fake_read(&fa, IMSG_ANVIL_DISCONNECT);
	fake_stop(&fa, &ac);
}
END_TEST

/* Not allowed to keep, or recalled: the slot goes back at once. */
START_TEST(test_connects_recall)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, count, extra;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connects(&ac, 1, "192.0.2.1"), 1);
	s1 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	fake_connects_answer(&fa, s1, ANVIL_OK, 1, 1);
	ck_assert_int_eq(anvil_ask_connects(&ac, 2, "192.0.2.2"), 1);
	s1 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	fake_connects_answer(&fa, s1, ANVIL_OK, 1, 0);
	while (heard_count < 2)
		client_turn(&ac);
	anvil_end_connection(&ac, "192.0.2.2");     /* not allowed */
	(void)fake_read(&fa, IMSG_ANVIL_DISCONNECT);
	anvil_end_connection(&ac, "192.0.2.1");     /* kept */
	(void)channel_begin(&fa.srv, IMSG_ANVIL_RECALL);
	ck_assert_int_eq(channel_end(&fa.srv), 0);
	ck_assert_int_eq(channel_flush_wait(&fa.srv, now_ms() + 2000), 0);
	client_turn(&ac);
	(void)fake_read_connects(&fa, IMSG_ANVIL_CONNECTS_BACK, &count,
	    &extra);
	ck_assert_uint_eq(count, 0);
	ck_assert_uint_eq(extra, 1);
	{
		/* then the recall is answered */
		struct ipc_in in;

		ck_assert_int_eq(channel_read_wait(&fa.srv, &in,
		    now_ms() + 2000), 1);
		ck_assert_int_eq(in.type, IMSG_ANVIL_RECALL);
		ck_assert_int_eq(ipc_end(&in), 0);
	}
	/* and none is kept until anvil allows it again */
	anvil_end_connection(&ac, "192.0.2.1");
	(void)fake_read(&fa, IMSG_ANVIL_DISCONNECT);
	ck_assert_int_ge(anvil_client_fd(&ac), 0);
	fake_stop(&fa, &ac);
}
END_TEST

/* Refused with "ask again" (a recall is on its way): the same question
 * is asked again, and its answer is the one heard. */
START_TEST(test_connects_ask_again)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, s2, count, extra;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connects(&ac, 1, "192.0.2.1"), 1);
	s1 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	fake_connects_answer(&fa, s1, ANVIL_TOO_MANY_FROM_CLIENT, 0,
	    ANVIL_ASK_AGAIN);
	client_turn(&ac);
	ck_assert_int_eq(heard_count, 0);
	s2 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	ck_assert_uint_ne(s1, s2);
	ck_assert_uint_eq(count, ANVIL_LEASE_MAX);
	fake_connects_answer(&fa, s2, ANVIL_TOO_MANY_FROM_CLIENT, 0, 0);
	while (heard_count < 1)
		client_turn(&ac);
	ck_assert_int_eq(heard[1], ANVIL_TOO_MANY_FROM_CLIENT);
	ck_assert_int_ge(anvil_client_fd(&ac), 0);
	fake_stop(&fa, &ac);
}
END_TEST

/* A slot kept on a refusal is anvil lying. */
START_TEST(test_connects_refused_kept)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, count, extra;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_connects(&ac, 1, "192.0.2.1"), 1);
	s1 = fake_read_connects(&fa, IMSG_ANVIL_CONNECTS, &count, &extra);
	fake_connects_answer(&fa, s1, ANVIL_TOO_MANY_FROM_CLIENT, 0, 1);
	while (heard_count < 1)
		client_turn(&ac);
	ck_assert_int_eq(heard[1], ANVIL_OK);     /* allowed: fail open */
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	fake_stop(&fa, &ac);
}
END_TEST

/* An owner that stopped waiting hears nothing; the order still holds
 * for the others. */
START_TEST(test_forgotten_owner)
{
	struct anvil_client ac;
	struct fake_anvil fa;
	uint32_t s1, s2;

	fake_start(&fa, &ac);
	ck_assert_int_eq(anvil_ask_message(&ac, 1, "192.0.2.1"), 1);
	ck_assert_int_eq(anvil_ask_message(&ac, 2, "192.0.2.1"), 1);
	anvil_client_forget(&ac, 1);
	s1 = fake_read(&fa, IMSG_ANVIL_MESSAGE);
	s2 = fake_read(&fa, IMSG_ANVIL_MESSAGE);
	fake_answer(&fa, s1, ANVIL_MESSAGE_RATE);
	fake_answer(&fa, s2, ANVIL_MESSAGE_RATE);
	while (heard_count < 1)
		client_turn(&ac);
	ck_assert_int_eq(heard[1], -1);
	ck_assert_int_eq(heard[2], ANVIL_MESSAGE_RATE);
	ck_assert_int_ge(anvil_client_fd(&ac), 0);
	ck_assert_int_eq(anvil_client_deadline(&ac), 0);
	fake_stop(&fa, &ac);
}
END_TEST


/* The figures' notes for ferryctl status: a round trip keeps every
 * field; a boolean past 1, a missing field or a byte left over is
 * refused and leaves the figures as they were. */
static long
figures_frame(const struct anvil_figures *f, int extra, int cut,
    struct ipc_out *m, struct ipc_in *in)
{
	const uint8_t *buf;
	size_t len;

	ipc_out_init(m, IMSG_NOTE_ANVIL);
	anvil_figures_add(m, f);
	if (extra)
		ipc_add_u8(m, 0);
	ipc_out_end(m);
	buf = ipc_out_finish(m, &len);
	if (cut) {
		/* a frame that ends after the stress fields */
		ipc_out_free(m);
		ipc_out_init(m, IMSG_NOTE_ANVIL);
		ipc_add_u8(m, f->running);
		ipc_add_u8(m, f->stress);
		ipc_add_u64(m, f->stress_entered);
		ipc_out_end(m);
		buf = ipc_out_finish(m, &len);
	}
	return ipc_frame(buf, len, in) == (long)len ? 0 : -1;
}

START_TEST(test_figures_notes)
{
	struct anvil_figures f, g, bad;
	struct ipc_out m;
	struct ipc_in in;
	uint32_t conns = 0, clients = 0;
	const uint8_t *buf;
	size_t len, i;

	memset(&f, 0, sizeof(f));
	f.running = 1;
	f.stress = 1;
	f.stress_entered = 3;
	f.connections = 70000;
	f.clients = 12;
	for (i = 0; i < ANVIL_HIT_MAX; i++)
		f.hits[i] = ((uint64_t)1 << 40) + i;
	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(figures_frame(&f, 0, 0, &m, &in), 0);
	memset(&g, 0xaa, sizeof(g));
	ck_assert_int_eq(anvil_figures_take(&in, &g), 0);
	ck_assert_int_eq(g.running, 1);
	ck_assert_int_eq(g.stress, 1);
	ck_assert_uint_eq(g.stress_entered, 3);
	ck_assert_uint_eq(g.connections, 70000);
	ck_assert_uint_eq(g.clients, 12);
	for (i = 0; i < ANVIL_HIT_MAX; i++)
		ck_assert_uint_eq(g.hits[i], ((uint64_t)1 << 40) + i);
	ipc_out_free(&m);

	bad = f;
	bad.stress = 2;
	ck_assert_int_eq(figures_frame(&bad, 0, 0, &m, &in), 0);
	g = f;
	g.clients = 99;
	ck_assert_int_eq(anvil_figures_take(&in, &g), -1);
	ck_assert_uint_eq(g.clients, 99);        /* untouched */
	ipc_out_free(&m);
	ck_assert_int_eq(figures_frame(&f, 1, 0, &m, &in), 0);
	ck_assert_int_eq(anvil_figures_take(&in, &g), -1);
	ipc_out_free(&m);
	ck_assert_int_eq(figures_frame(&f, 0, 1, &m, &in), 0);
	ck_assert_int_eq(anvil_figures_take(&in, &g), -1);
	ipc_out_free(&m);

	ipc_out_init(&m, IMSG_NOTE_ANVIL_COUNTS);
	anvil_counts_add(&m, 5, 2);
	ipc_out_end(&m);
	buf = ipc_out_finish(&m, &len);
	ck_assert_int_eq(ipc_frame(buf, len, &in), (long)len);
	ck_assert_int_eq(anvil_counts_take(&in, &conns, &clients), 0);
	ck_assert_uint_eq(conns, 5);
	ck_assert_uint_eq(clients, 2);
	ipc_out_free(&m);
	ipc_out_init(&m, IMSG_NOTE_ANVIL_COUNTS);
	ipc_add_u32(&m, 5);
	ipc_out_end(&m);
	buf = ipc_out_finish(&m, &len);
	ck_assert_int_eq(ipc_frame(buf, len, &in), (long)len);
	ck_assert_int_eq(anvil_counts_take(&in, &conns, &clients), -1);
	ipc_out_free(&m);
	ck_assert_str_eq(ipc_type_name(IMSG_NOTE_ANVIL), "NOTE_ANVIL");
	ck_assert_str_eq(ipc_type_name(IMSG_NOTE_ANVIL_COUNTS),
	    "NOTE_ANVIL_COUNTS");
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
	tcase_add_test(tc, test_message_lease);
	tcase_add_test(tc, test_connection_lease);
	tcase_add_test(tc, test_slot_keep_rule);
	tcase_add_test(tc, test_slot_held);
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
	tcase_add_test(tc, test_memory_stress_rule);
	tcase_add_test(tc, test_meminfo_parse);
	tcase_add_test(tc, test_memory_stress_enter_leave);
	suite_add_tcase(s, tc);
	tc = tcase_create("figures");
	tcase_add_test(tc, test_figures_notes);
	suite_add_tcase(s, tc);
	tc = tcase_create("questions");
	tcase_add_test(tc, test_answers_in_order);
	tcase_add_test(tc, test_answer_out_of_turn);
	tcase_add_test(tc, test_answer_unasked);
	tcase_add_test(tc, test_answer_unknown_result);
	tcase_add_test(tc, test_deadline_allows);
	tcase_add_test(tc, test_forgotten_owner);
	tcase_add_test(tc, test_lease_used);
	tcase_add_test(tc, test_grant_unasked);
	tcase_add_test(tc, test_connects_lease_used);
	tcase_add_test(tc, test_connects_recall);
	tcase_add_test(tc, test_connects_refused_kept);
	tcase_add_test(tc, test_connects_ask_again);
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
