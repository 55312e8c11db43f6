/*
 * check_hostname.c - unit tests for src/hostname.c: which names from the
 * DNS may stand for a client in the logs and the Received header, and
 * the names of reverse lookups.
 */
#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "hostname.h"
#include "log.h"

static int
valid(const char *s)
{
	return hostname_valid(s, strlen(s));
}

START_TEST(test_plain_names)
{
	ck_assert(valid("client.test.example"));
	ck_assert(valid("client.test.example."));     /* the root */
	ck_assert(valid("localhost"));
	ck_assert(valid("a"));
	ck_assert(valid("mail-1.Example.COM"));
	ck_assert(valid("1host.example"));
	ck_assert(valid("host.123abc"));
	ck_assert(valid("x--y.example"));
}
END_TEST

START_TEST(test_bad_characters)
{
	/* what would change the meaning of a log line or a header */
	ck_assert(!valid("evil.example\r\nX-Injected: yes"));
	ck_assert(!valid("evil.example\n"));
	ck_assert(!valid("evil example"));
	ck_assert(!valid("evil[1.2.3.4]"));
	ck_assert(!valid("evil(x)"));
	ck_assert(!valid("a;b"));
	ck_assert(!valid("under_score.example"));
	ck_assert(!valid("caf\xc3\xa9.example"));
	ck_assert(!valid("a/b"));
	ck_assert(!valid("%s%s%s"));
}
END_TEST

START_TEST(test_shapes)
{
	ck_assert(!valid(""));
	ck_assert(!valid("."));
	ck_assert(!valid(".example"));
	ck_assert(!valid("a..example"));
	ck_assert(!valid("example.."));
	ck_assert(!valid("-a.example"));
	ck_assert(!valid("a-.example"));
	ck_assert(!valid("a.example-"));
	ck_assert(!valid("a.-example"));
	/* no name that reads as an address */
	ck_assert(!valid("192.0.2.1"));
	ck_assert(!valid("192.0.2.1."));
	ck_assert(!valid("host.example.123"));
	ck_assert(!valid("12345"));
	ck_assert(!hostname_valid(NULL, 0));
	/* len is what counts, not a NUL */
	ck_assert(hostname_valid("client.example\r\n", 14));
	ck_assert(!hostname_valid("client.example\r\n", 15));
}
END_TEST

START_TEST(test_lengths)
{
	char label[80], name[300];
	size_t i;

	memset(label, 'a', 63);
	label[63] = '\0';
	ck_assert(valid(label));
	label[63] = 'a';
	label[64] = '\0';
	ck_assert(!valid(label));          /* a label of 64 */

	/* 253 bytes: four labels of 62 and one of 1, dots between */
	name[0] = '\0';
	for (i = 0; i < 4; i++) {
		memset(label, 'b', 62);
		label[62] = '\0';
		strcat(name, label);
		strcat(name, ".");
	}
	strcat(name, "c");
	ck_assert_uint_eq(strlen(name), 253);
	ck_assert(valid(name));
	strcat(name, ".");                 /* a trailing dot is not counted */
	ck_assert(valid(name));
	name[253] = 'c';
	name[254] = '\0';
	ck_assert_uint_eq(strlen(name), 254);
	ck_assert(!valid(name));
}
END_TEST

START_TEST(test_ptr_query)
{
	const unsigned char v4[4] = { 192, 0, 2, 10 };
	const unsigned char lo[4] = { 127, 0, 0, 1 };
	unsigned char v6[16];
	char out[128];

	ck_assert_int_eq(hostname_ptr_query(AF_INET, v4, out, sizeof(out)),
	    0);
	ck_assert_str_eq(out, "10.2.0.192.in-addr.arpa");
	ck_assert_int_eq(hostname_ptr_query(AF_INET, lo, out, sizeof(out)),
	    0);
	ck_assert_str_eq(out, "1.0.0.127.in-addr.arpa");
	ck_assert_int_eq(hostname_ptr_query(AF_INET, v4, out, 10), -1);

	memset(v6, 0, sizeof(v6));
	v6[0] = 0x20;
	v6[1] = 0x01;
	v6[2] = 0x0d;
	v6[3] = 0xb8;
	v6[15] = 0x1f;
	ck_assert_int_eq(hostname_ptr_query(AF_INET6, v6, out, sizeof(out)),
	    0);
	ck_assert_str_eq(out, "f.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	ck_assert_uint_eq(strlen(out), 72);
	ck_assert_int_eq(hostname_ptr_query(AF_INET6, v6, out, 72), -1);
	ck_assert_int_eq(hostname_ptr_query(AF_UNIX, v6, out, sizeof(out)),
	    -1);
}
END_TEST

static Suite *
hostname_suite(void)
{
	Suite *s = suite_create("hostname");
	TCase *tc = tcase_create("valid");

	tcase_add_test(tc, test_plain_names);
	tcase_add_test(tc, test_bad_characters);
	tcase_add_test(tc, test_shapes);
	tcase_add_test(tc, test_lengths);
	suite_add_tcase(s, tc);
	tc = tcase_create("ptr");
	tcase_add_test(tc, test_ptr_query);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hostname_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	log_init("check_hostname", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
