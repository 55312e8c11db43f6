/*
 * check_sendmail.c - unit tests for src/sendmail_msg.c, the message side
 * of ferry-sendmail: address lists (display names, quotes, comments,
 * groups, source routes), envelope address checks, qualification, From
 * values, the prepared message (line ends, Bcc removed, headers added,
 * header/body split), dot-stuffing, and the scan of ferry.conf.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sendmail_msg.h"

static struct sm_addrs
parse(const char *v, int expect_rc)
{
	struct sm_addrs a = { NULL, 0, 0 };

	ck_assert_int_eq(sm_parse_address_list(v, &a), expect_rc);
	return a;
}

START_TEST(test_addr_simple)
{
	struct sm_addrs a = parse("a@x.example, b@y.example", 2);

	ck_assert_str_eq(a.v[0], "a@x.example");
	ck_assert_str_eq(a.v[1], "b@y.example");
	sm_addrs_free(&a);
	a = parse("  lone@x.example  ", 1);
	ck_assert_str_eq(a.v[0], "lone@x.example");
	sm_addrs_free(&a);
	a = parse("", 0);
	ck_assert_uint_eq(a.n, 0);
	sm_addrs_free(&a);
}
END_TEST

START_TEST(test_addr_display_names)
{
	struct sm_addrs a = parse("\"Doe, John\" <john@x.example>, "
	    "Jane Roe <jane@y.example> (work), plain@z.example (Plain, Guy)",
	    3);

	ck_assert_str_eq(a.v[0], "john@x.example");
	ck_assert_str_eq(a.v[1], "jane@y.example");
	ck_assert_str_eq(a.v[2], "plain@z.example");
	sm_addrs_free(&a);
	/* a quoted local part keeps its quotes and spaces */
	a = parse("<\"odd user\"@x.example>", 1);
	ck_assert_str_eq(a.v[0], "\"odd user\"@x.example");
	sm_addrs_free(&a);
	/* angle brackets inside a quoted display name are just text */
	a = parse("\"<evil@x.example>\" <good@y.example>", 1);
	ck_assert_str_eq(a.v[0], "good@y.example");
	sm_addrs_free(&a);
}
END_TEST

START_TEST(test_addr_groups_routes_dupes)
{
	struct sm_addrs a = parse("team: a@x.example, B <b@x.example>;, "
	    "c@x.example", 3);

	ck_assert_str_eq(a.v[0], "a@x.example");
	ck_assert_str_eq(a.v[1], "b@x.example");
	ck_assert_str_eq(a.v[2], "c@x.example");
	sm_addrs_free(&a);
	a = parse("undisclosed-recipients:;", 0);
	ck_assert_uint_eq(a.n, 0);
	sm_addrs_free(&a);
	a = parse("<@r1.example,@r2.example:d@x.example>", 1);
	ck_assert_str_eq(a.v[0], "d@x.example");
	sm_addrs_free(&a);
	/* the same address twice (case aside) is kept once */
	a = parse("e@x.example, E@X.example", 1);
	ck_assert_uint_eq(a.n, 1);
	sm_addrs_free(&a);
	/* folded values: CRLF and the fold's white space are dropped */
	a = parse("f@x.example,\r\n\tg@x.example", 2);
	ck_assert_str_eq(a.v[1], "g@x.example");
	sm_addrs_free(&a);
}
END_TEST

START_TEST(test_addr_malformed)
{
	struct sm_addrs a = { NULL, 0, 0 };

	ck_assert_int_eq(sm_parse_address_list("a@x.example, \"open", &a),
	    -1);
	ck_assert_uint_eq(a.n, 1);   /* what came before is kept */
	sm_addrs_free(&a);
	ck_assert_int_eq(sm_parse_address_list("(unclosed comment", &a), -1);
	ck_assert_int_eq(sm_parse_address_list("Name <a@x.example", &a), -1);
	sm_addrs_free(&a);
}
END_TEST

START_TEST(test_address_ok_qualify)
{
	char *q;

	ck_assert(sm_address_ok("a@x.example"));
	ck_assert(sm_address_ok("root"));
	ck_assert(sm_address_ok("\"a b\"@x.example"));
	ck_assert(sm_address_ok("j\xc3\xb6rg@x.example"));
	ck_assert(!sm_address_ok(""));
	ck_assert(!sm_address_ok("a b@x.example"));
	ck_assert(!sm_address_ok("a@x.example>\r\nRCPT TO:<b@y"));
	ck_assert(!sm_address_ok("a@x.example\n"));
	ck_assert(!sm_address_ok("a>@x.example"));
	ck_assert(!sm_address_ok("\"unclosed@x.example"));
	{
		char big[300];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert(!sm_address_ok(big));
	}
	q = sm_qualify("root", "host.example");
	ck_assert_str_eq(q, "root@host.example");
	free(q);
	q = sm_qualify("a@x.example", "host.example");
	ck_assert_str_eq(q, "a@x.example");
	free(q);
	q = sm_qualify("\"at@inside\"", "host.example");
	ck_assert_str_eq(q, "\"at@inside\"@host.example");
	free(q);
}
END_TEST

START_TEST(test_from_value)
{
	char *v;

	v = sm_from_value(NULL, "a@x.example");
	ck_assert_str_eq(v, "a@x.example");
	free(v);
	v = sm_from_value("Cron Daemon", "root@x.example");
	ck_assert_str_eq(v, "Cron Daemon <root@x.example>");
	free(v);
	v = sm_from_value("Doe, \"J\"", "j@x.example");
	ck_assert_str_eq(v, "\"Doe, \\\"J\\\"\" <j@x.example>");
	free(v);
	v = sm_from_value("J\xc3\xb6rg", "j@x.example");
	ck_assert_str_eq(v, "=?UTF-8?B?SsO2cmc=?= <j@x.example>");
	free(v);
}
END_TEST

static struct sm_message
prep(const char *in, int extract, int expect_rc)
{
	struct sm_input opt = { extract, "Me <me@h.example>",
	    "Thu, 1 Jan 2026 00:00:00 +0000", "<id@h.example>" };
	struct sm_message m;
	char err[128];

	ck_assert_int_eq(sm_prepare(in, strlen(in), &opt, &m, err,
	    sizeof(err)), expect_rc);
	return m;
}

START_TEST(test_prepare_adds_headers)
{
	struct sm_message m = prep("Subject: hi\nTo: a@x.example\n\nbody\n",
	    0, 0);

	ck_assert_str_eq(m.data, "Subject: hi\r\nTo: a@x.example\r\n"
	    "From: Me <me@h.example>\r\n"
	    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
	    "Message-ID: <id@h.example>\r\n\r\nbody\r\n");
	ck_assert_uint_eq(m.len, strlen(m.data));
	ck_assert_int_eq(m.added_from + m.added_date + m.added_msgid, 3);
	ck_assert_uint_eq(m.rcpts.n, 0);     /* no -t */
	sm_message_free(&m);

	/* present ones (any case) are left alone */
	m = prep("from: x@y.example\r\nDATE: whenever\r\nmessage-id: <a@b>\r\n"
	    "\r\nbody", 0, 0);
	ck_assert_str_eq(m.data, "from: x@y.example\r\nDATE: whenever\r\n"
	    "message-id: <a@b>\r\n\r\nbody\r\n");
	ck_assert_int_eq(m.added_from + m.added_date + m.added_msgid, 0);
	sm_message_free(&m);
}
END_TEST

START_TEST(test_prepare_extract_bcc)
{
	struct sm_message m = prep("From: me@h.example\nTo: A <a@x.example>,\n"
	    " b@x.example\nCc: c@x.example\nBcc: hidden@x.example,\n"
	    "\tother@x.example\nSubject: s\n\nBcc: not a header\n", 1, 0);

	ck_assert_uint_eq(m.rcpts.n, 5);
	ck_assert_str_eq(m.rcpts.v[0], "a@x.example");
	ck_assert_str_eq(m.rcpts.v[1], "b@x.example");
	ck_assert_str_eq(m.rcpts.v[2], "c@x.example");
	ck_assert_str_eq(m.rcpts.v[3], "hidden@x.example");
	ck_assert_str_eq(m.rcpts.v[4], "other@x.example");
	ck_assert_ptr_null(strstr(m.data, "hidden"));
	ck_assert_ptr_null(strstr(m.data, "other@"));
	ck_assert_ptr_nonnull(strstr(m.data, "To: A <a@x.example>,\r\n"
	    " b@x.example\r\nCc: c@x.example\r\nSubject: s\r\n"));
	ck_assert_ptr_nonnull(strstr(m.data, "\r\n\r\nBcc: not a header\r\n"));
	sm_message_free(&m);

	/* Bcc is removed without -t as well */
	m = prep("To: a@x.example\nBcc: b@x.example\n\nx\n", 0, 0);
	ck_assert_ptr_null(strstr(m.data, "Bcc"));
	sm_message_free(&m);

	m = prep("To: \"unclosed <a@x.example>\n\nx\n", 1, -1);
	ck_assert_ptr_null(m.data);
}
END_TEST

START_TEST(test_prepare_line_ends_and_split)
{
	struct sm_message m;

	/* bare CR dropped, CRLF and LF both end lines, a last line
	 * without a newline gets one */
	m = prep("Subject: a\rb\r\n\nl1\r\nl2\nl3", 0, 0);
	ck_assert_ptr_nonnull(strstr(m.data, "Subject: ab\r\n"));
	ck_assert_ptr_nonnull(strstr(m.data, "\r\n\r\nl1\r\nl2\r\nl3\r\n"));
	ck_assert_ptr_null(strstr(m.data, "\rb"));
	sm_message_free(&m);

	/* no header at all: ours, an empty line, then the text */
	m = prep("just text\nmore\n", 0, 0);
	ck_assert_int_eq(strncmp(m.data, "From: ", 6), 0);
	ck_assert_ptr_nonnull(strstr(m.data, ">\r\n\r\njust text\r\nmore\r\n"));
	sm_message_free(&m);

	/* headers that run into the body with no empty line between */
	m = prep("Subject: s\nthis is body\n", 0, 0);
	ck_assert_ptr_nonnull(strstr(m.data,
	    "<id@h.example>\r\n\r\nthis is body\r\n"));
	sm_message_free(&m);

	/* an mbox "From " line is dropped; 8-bit content is noticed */
	m = prep("From me@x Thu Jan  1 00:00:00 2026\nSubject: \xc3\xa9\n\nx\n",
	    0, 0);
	ck_assert_int_eq(strncmp(m.data, "Subject: ", 9), 0);
	ck_assert_int_eq(m.eightbit, 1);
	sm_message_free(&m);

	/* empty input: a message of headers only */
	m = prep("", 0, 0);
	ck_assert_ptr_nonnull(strstr(m.data, "Message-ID: <id@h.example>\r\n"
	    "\r\n"));
	sm_message_free(&m);
}
END_TEST

START_TEST(test_dot_stuff)
{
	size_t n;
	char *s;

	s = sm_dot_stuff(".a\r\nb\r\n.\r\n..c\r\n", 15, &n);
	ck_assert_str_eq(s, "..a\r\nb\r\n..\r\n...c\r\n");
	ck_assert_uint_eq(n, strlen(s));
	free(s);
	s = sm_dot_stuff("no dots. here.\r\n", 16, &n);
	ck_assert_str_eq(s, "no dots. here.\r\n");
	free(s);
}
END_TEST

static struct ferry_config *
load(const char *text, char *err, size_t errlen)
{
	return config_load_flags("/smtest/ferry.conf", text,
	    CONFIG_NO_FILE_CHECKS, err, errlen);
}

START_TEST(test_submit_listener)
{
	const struct listener_config *l;
	struct ferry_config *c;
	char err[512] = "";

	/* TLS files that do not exist (this user could not read them) do
	 * not stop the submitter; implicit TLS and tls_required listeners
	 * are passed over */
	c = load(
	    "# comment with listen { address = \"1.1.1.1\" }\n"
	    "hostname = \"relay.example\"\n"
	    "relay { networks = { \"10.0.0.0/8\", \"::1/128\" } }\n"
	    "tls { cert_file = \"/nonexistent/cert.pem\"\n"
	    "      key_file = \"/nonexistent/key.pem\" }\n"
	    "listen \"smtps\" {\n    address = \"0.0.0.0\"\n    port = 465\n"
	    "    tls = \"implicit\"\n}\n"
	    "listen \"sub\" { address = \"::\" port = 587 tls = \"starttls\" "
	    "tls_required = true }\n"
	    "/* block\n comment */ listen \"plain\" {\n"
	    "  address = \"127.0.0.1\"  // trailing\n  port = 2525\n"
	    "  auth_plaintext_networks = { \"192.0.2.0/24\" }\n}\n"
	    "listen \"later\" { port = 26 }\n", err, sizeof(err));
	ck_assert_msg(c != NULL, "refused: %s", err);
	ck_assert_str_eq(c->hostname, "relay.example");
	l = sm_submit_listener(c);
	ck_assert_ptr_nonnull(l);
	ck_assert_str_eq(l->name, "plain");
	ck_assert_str_eq(l->address, "127.0.0.1");
	ck_assert_int_eq(l->port, 2525);
	config_free(c);

	/* a listener without address/port: the defaults */
	c = load("listen \"x\" { }\n", err, sizeof(err));
	ck_assert_msg(c != NULL, "refused: %s", err);
	l = sm_submit_listener(c);
	ck_assert_ptr_nonnull(l);
	ck_assert_str_eq(l->address, "127.0.0.1");
	ck_assert_int_eq(l->port, 25);
	config_free(c);

	/* what ferryd refuses, the submitter refuses, with file:line */
	ck_assert_ptr_null(load("listen \"x\" {\n", err, sizeof(err)));
	ck_assert_str_eq(err, "/smtest/ferry.conf:1: '{' is never closed");
	ck_assert_ptr_null(load("hostname = \"open\n", err, sizeof(err)));
	ck_assert_ptr_null(load("}\n", err, sizeof(err)));
	ck_assert_ptr_null(load("/* open", err, sizeof(err)));
	ck_assert_ptr_null(load("listen \"x\" { }\nfuture_section \"x\" "
	    "{ a = 1 }\n", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "/smtest/ferry.conf:2:"));
	/* a relative TLS path is still an error without file checks */
	ck_assert_ptr_null(load("tls { cert_file = \"cert.pem\" }\n"
	    "listen \"x\" { }\n", err, sizeof(err)));

	/* no usable listener */
	c = load("tls { cert_file = \"/n/c\" key_file = \"/n/k\" }\n"
	    "listen \"a\" { tls = implicit }", err, sizeof(err));
	ck_assert_msg(c != NULL, "refused: %s", err);
	ck_assert_ptr_null(sm_submit_listener(c));
	config_free(c);
}
END_TEST

static Suite *
sendmail_suite(void)
{
	Suite *s = suite_create("sendmail");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_addr_simple);
	tcase_add_test(tc, test_addr_display_names);
	tcase_add_test(tc, test_addr_groups_routes_dupes);
	tcase_add_test(tc, test_addr_malformed);
	tcase_add_test(tc, test_address_ok_qualify);
	tcase_add_test(tc, test_from_value);
	tcase_add_test(tc, test_prepare_adds_headers);
	tcase_add_test(tc, test_prepare_extract_bcc);
	tcase_add_test(tc, test_prepare_line_ends_and_split);
	tcase_add_test(tc, test_dot_stuff);
	tcase_add_test(tc, test_submit_listener);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sendmail_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
