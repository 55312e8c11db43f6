/*
 * check_smtp_client_reply.c - unit tests for queue/smtp_client_reply.c:
 * single and multi-line replies, replies arriving a byte at a time,
 * pipelined replies in one buffer, enhanced status codes, EHLO keywords,
 * and every kind of hostile reply (no code, mixed codes, bare LF or CR,
 * over-long lines, endless multi-line replies); and dns_parse_mx on
 * hand-made answers.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_mx.h"
#include "smtp_client_reply.h"

/* Parses s whole; returns the scr_parse result. */
static int
parse(const char *s, struct smtp_client_reply *r, const char **why)
{
	struct scr_parser p;

	scr_init(&p, SCR_LINE_MAX);
	return scr_parse(&p, s, strlen(s), r, why);
}

START_TEST(test_single_line)
{
	struct smtp_client_reply r;

	ck_assert_int_eq(parse("250 ok\r\n", &r, NULL), SCR_DONE);
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(r.text, "250 ok");
	ck_assert_str_eq(r.esc, "");
	ck_assert_str_eq(scr_dsn(&r), "2.0.0");
	ck_assert_uint_eq(r.len, 8);
	ck_assert_uint_eq(r.nlines, 1);

	ck_assert_int_eq(parse("354\r\n", &r, NULL), SCR_DONE);
	ck_assert_int_eq(r.code, 354);
	ck_assert_str_eq(r.text, "354");

	ck_assert_int_eq(parse("550 5.1.1 <x@y>: no such user\r\n", &r, NULL),
	    SCR_DONE);
	ck_assert_str_eq(r.esc, "5.1.1");
	ck_assert_str_eq(scr_dsn(&r), "5.1.1");
	ck_assert_str_eq(r.text, "550 5.1.1 <x@y>: no such user");

	/* a code of the wrong class is not the reply's */
	ck_assert_int_eq(parse("450 5.1.1 busy\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.esc, "");
	ck_assert_str_eq(scr_dsn(&r), "4.0.0");
	ck_assert_int_eq(parse("421 4.4.2 bye\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(scr_dsn(&r), "4.4.2");
	ck_assert_int_eq(parse("250 2.0.0\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.esc, "2.0.0");
	ck_assert_int_eq(parse("250 2.0.0x\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.esc, "");
	ck_assert_int_eq(parse("250 2.1000.0 x\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.esc, "");
	ck_assert_int_eq(parse("554 5.7.1\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(scr_dsn(&r), "5.7.1");
	ck_assert_int_eq(parse("554 no\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(scr_dsn(&r), "5.0.0");

	/* unprintable text is kept printable */
	ck_assert_int_eq(parse("250 a\tb\x01\xff\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.text, "250 a?b??");
}
END_TEST

START_TEST(test_multi_line)
{
	struct smtp_client_reply r;
	const char *s = "250-mx.example.org hello\r\n250-PIPELINING\r\n"
	    "250 8BITMIME\r\nNEXT";

	ck_assert_int_eq(parse(s, &r, NULL), SCR_DONE);
	ck_assert_int_eq(r.code, 250);
	ck_assert_uint_eq(r.nlines, 3);
	ck_assert_uint_eq(r.len, strlen(s) - 4);
	ck_assert_str_eq(r.text, "250 mx.example.org hello PIPELINING 8BITMIME");

	ck_assert_int_eq(parse("550-5.1.1 no such user\r\n550-5.1.1 really\r\n"
	    "550 5.1.1\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.esc, "5.1.1");
	ck_assert_str_eq(r.text, "550 5.1.1 no such user really");

	ck_assert_int_eq(parse("250-\r\n250 x\r\n", &r, NULL), SCR_DONE);
	ck_assert_str_eq(r.text, "250 x");
}
END_TEST

START_TEST(test_incremental)
{
	const char *s = "250-first line\r\n250-second\r\n250 last\r\n";
	struct smtp_client_reply r;
	struct scr_parser p;
	size_t n, len = strlen(s);

	scr_init(&p, 512);
	for (n = 0; n < len; n++)
		ck_assert_msg(scr_parse(&p, s, n, &r, NULL) == SCR_MORE,
		    "done early at %zu", n);
	ck_assert_int_eq(scr_parse(&p, s, len, &r, NULL), SCR_DONE);
	ck_assert_uint_eq(r.len, len);
	ck_assert_str_eq(r.text, "250 first line second last");
}
END_TEST

START_TEST(test_pipelined)
{
	const char *s = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n"
	    "354 go\r\n";
	struct smtp_client_reply r;
	struct scr_parser p;
	size_t off = 0;
	int codes[4] = { 250, 250, 550, 354 }, i;

	for (i = 0; i < 4; i++) {
		scr_init(&p, 512);
		ck_assert_int_eq(scr_parse(&p, s + off, strlen(s + off), &r,
		    NULL), SCR_DONE);
		ck_assert_int_eq(r.code, codes[i]);
		off += r.len;
	}
	ck_assert_uint_eq(off, strlen(s));
}
END_TEST

static void
bad(const char *s, const char *want)
{
	struct smtp_client_reply r;
	const char *why = NULL;

	ck_assert_msg(parse(s, &r, &why) == SCR_ERROR, "accepted: %s", s);
	ck_assert_ptr_nonnull(why);
	if (want != NULL)
		ck_assert_msg(strstr(why, want) != NULL, "%s: %s", s, why);
}

START_TEST(test_hostile)
{
	bad("hello\r\n", "code");
	bad("25\r\n", "code");
	bad("2500 x\r\n", "code");
	bad("250x\r\n", "code");
	bad("abc def\r\n", "code");
	bad("199 x\r\n", "code");
	bad("600 x\r\n", "code");
	bad("260 x\r\n", "code");
	bad("\r\n", "code");
	bad("250 ok\n", "bare LF");
	bad("250-a\r\n250 b\n", "bare LF");
	bad("\n", "bare LF");
	bad("250 a\rb\r\n", "bare CR");
	bad("250 a\rb", "bare CR");
	bad("250-a\r\n550 b\r\n", "differ");
	bad("250-a\r\n251 b\r\n", "differ");
	/* a code seen early, before the line ends */
	bad("hel", "code");
	bad("250:", "code");
}
END_TEST

START_TEST(test_long_lines)
{
	struct smtp_client_reply r;
	struct scr_parser p;
	char *s = malloc(5000);
	const char *why;

	/* 512 bytes with CRLF is the minimum that must be taken */
	memset(s, 'x', 5000);
	memcpy(s, "250 ", 4);
	memcpy(s + 510, "\r\n", 2);
	scr_init(&p, 100);          /* raised to 512 */
	ck_assert_int_eq(scr_parse(&p, s, 512, &r, &why), SCR_DONE);
	memcpy(s + 510, "xx\r\n", 4);
	scr_init(&p, 512);
	ck_assert_int_eq(scr_parse(&p, s, 514, &r, &why), SCR_ERROR);
	ck_assert_str_eq(why, "reply line too long");
	/* without an end in sight */
	scr_init(&p, 512);
	ck_assert_int_eq(scr_parse(&p, s, 511, &r, &why), SCR_MORE);
	ck_assert_int_eq(scr_parse(&p, s, 512, &r, &why), SCR_ERROR);
	/* the text summary is bounded */
	memset(s + 4, 'x', 4000);
	memcpy(s + 2046, "\r\n", 2);
	scr_init(&p, 99999);        /* lowered to 2048 */
	ck_assert_int_eq(scr_parse(&p, s, 2048, &r, &why), SCR_DONE);
	ck_assert_uint_eq(strlen(r.text), 2046);
	memcpy(s + 2046, "xx\r\n", 4);
	scr_init(&p, 99999);
	ck_assert_int_eq(scr_parse(&p, s, 2050, &r, &why), SCR_ERROR);
	free(s);
}
END_TEST

START_TEST(test_endless)
{
	struct smtp_client_reply r;
	struct scr_parser p;
	char *s = malloc(SCR_MAX_LINES * 8 + 8);
	size_t i, len = 0;
	const char *why;

	for (i = 0; i < SCR_MAX_LINES - 1; i++) {
		memcpy(s + len, "250-ab\r\n", 8);
		len += 8;
	}
	memcpy(s + len, "250 ab\r\n", 8);
	scr_init(&p, 512);
	ck_assert_int_eq(scr_parse(&p, s, len + 8, &r, &why), SCR_DONE);
	ck_assert_uint_eq(r.nlines, SCR_MAX_LINES);
	memcpy(s + len, "250-ab\r\n", 8);
	scr_init(&p, 512);
	ck_assert_int_eq(scr_parse(&p, s, len + 8, &r, &why), SCR_ERROR);
	ck_assert_str_eq(why, "too many reply lines");
	free(s);
}
END_TEST

START_TEST(test_ehlo)
{
	const char *s = "250-mx.example.org greets you\r\n"
	    "250-pipelining\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-AUTH CRAM-MD5 LOGIN PLAIN\r\n"
	    "250 X-UNKNOWN\r\n";
	struct smtp_client_reply r;
	struct ehlo_caps c;

	ck_assert_int_eq(parse(s, &r, NULL), SCR_DONE);
	scr_ehlo_caps(s, r.len, &c);
	ck_assert(c.pipelining && c.size && c.eightbitmime && c.smtputf8 &&
	    c.dsn && c.starttls && c.enhancedstatuscodes && c.auth);
	ck_assert(c.size_max == 10240000);
	ck_assert_uint_eq(c.auth_mechs, AUTH_MECH_PLAIN | AUTH_MECH_LOGIN);

	/* the greeting line is not a keyword; SIZE without a limit */
	s = "250-STARTTLS\r\n250-SIZE\r\n250 AUTH=LOGIN\r\n";
	scr_ehlo_caps(s, strlen(s), &c);
	ck_assert(!c.starttls);
	ck_assert(c.size && c.size_max == 0);
	ck_assert_uint_eq(c.auth_mechs, AUTH_MECH_LOGIN);

	s = "250 only a greeting\r\n";
	scr_ehlo_caps(s, strlen(s), &c);
	ck_assert(!c.pipelining && !c.size && !c.auth);

	s = "250-x\r\n250-SIZE 12ab\r\n250-AUTH CRAM-MD5\r\n"
	    "250 PIPELININGX\r\n";
	scr_ehlo_caps(s, strlen(s), &c);
	ck_assert(c.size && c.size_max == 0);
	ck_assert(c.auth && c.auth_mechs == 0);
	ck_assert(!c.pipelining);

	s = "250-x\r\n250 AUTH LOGIN XOAUTH2 oauthbearer\r\n";
	scr_ehlo_caps(s, strlen(s), &c);
	ck_assert_uint_eq(c.auth_mechs, AUTH_MECH_LOGIN | AUTH_MECH_XOAUTH2 |
	    AUTH_MECH_OAUTHBEARER);
}
END_TEST

/* A DNS answer for "ex.org" with the given MX records (pref, exchange as
 * a wire-format name). */
static int
mx_answer(unsigned char *b, const unsigned *pref, const char *const *names,
    int n)
{
	static const unsigned char hdr[12] = { 0x12, 0x34, 0x81, 0x80,
	    0, 1, 0, 0, 0, 0, 0, 0 };
	static const unsigned char q[] = { 2, 'e', 'x', 3, 'o', 'r', 'g', 0,
	    0, 15, 0, 1 };
	int len = 0, i;

	memcpy(b, hdr, 12);
	b[7] = (unsigned char)n;
	len = 12;
	memcpy(b + len, q, sizeof(q));
	len += (int)sizeof(q);
	for (i = 0; i < n; i++) {
		size_t nl = strlen(names[i]) + 1;   /* with the root label */

		b[len++] = 0xc0;    /* pointer to the question name */
		b[len++] = 12;
		b[len++] = 0;
		b[len++] = 15;      /* MX */
		b[len++] = 0;
		b[len++] = 1;       /* IN */
		memset(b + len, 0, 3);
		b[len + 3] = 60;    /* TTL */
		len += 4;
		b[len++] = 0;
		b[len++] = (unsigned char)(2 + nl);
		b[len++] = (unsigned char)(pref[i] >> 8);
		b[len++] = (unsigned char)pref[i];
		memcpy(b + len, names[i], nl);
		len += (int)nl;
	}
	return len;
}

START_TEST(test_dns_parse_mx)
{
	unsigned char b[1024];
	const unsigned pref[3] = { 20, 10, 10 };
	const char *const names[3] = { "\x02mx\x01" "c", "\x02mx\x01" "a",
	    "\x02mx\x01" "b" };
	const char *const nullname[1] = { "" };
	const unsigned zero[1] = { 0 };
	struct dns_mx *mx;
	size_t n;
	int len, i, seen_a_first = 0, seen_b_first = 0;

	for (i = 0; i < 40; i++) {
		len = mx_answer(b, pref, names, 3);
		ck_assert_int_eq(dns_parse_mx(b, len, &mx, &n), DNS_OK);
		ck_assert_uint_eq(n, 3);
		ck_assert_uint_eq(mx[0].pref, 10);
		ck_assert_uint_eq(mx[1].pref, 10);
		ck_assert_str_eq(mx[2].host, "mx.c");
		if (strcmp(mx[0].host, "mx.a") == 0)
			seen_a_first = 1;
		else
			seen_b_first = 1;
		free(mx);
	}
	ck_assert(seen_a_first && seen_b_first);

	len = mx_answer(b, zero, nullname, 1);
	ck_assert_int_eq(dns_parse_mx(b, len, &mx, &n), DNS_NULLMX);
	len = mx_answer(b, pref, names, 0);
	ck_assert_int_eq(dns_parse_mx(b, len, &mx, &n), DNS_NODATA);
	/* truncated answers */
	len = mx_answer(b, pref, names, 3);
	ck_assert_int_eq(dns_parse_mx(b, len - 3, &mx, &n), DNS_TEMP);
	ck_assert_int_eq(dns_parse_mx(b, 5, &mx, &n), DNS_TEMP);
}
END_TEST

static Suite *
scr_suite(void)
{
	Suite *s = suite_create("smtp_client_reply");
	TCase *tc = tcase_create("replies");

	tcase_add_test(tc, test_single_line);
	tcase_add_test(tc, test_multi_line);
	tcase_add_test(tc, test_incremental);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_endless);
	suite_add_tcase(s, tc);
	tc = tcase_create("ehlo");
	tcase_add_test(tc, test_ehlo);
	suite_add_tcase(s, tc);
	tc = tcase_create("dns");
	tcase_add_test(tc, test_dns_parse_mx);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(scr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
