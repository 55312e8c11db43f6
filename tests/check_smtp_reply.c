/*
 * check_smtp_reply.c - unit tests for src/smtp_reply.c (the reply table
 * and its formatting into RFC 5321 reply lines) and log_sanitize() from
 * src/log.c.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtp_reply.h"

/* "d.ddd.ddd": a class digit, then subject and detail of 1 to 3 digits */
static int esc_well_formed(const char *s)
{
	int part, n;

	if (!isdigit((unsigned char)s[0]) || s[1] != '.')
		return 0;
	s += 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; isdigit((unsigned char)*s); s++)
			n++;
		if (n < 1 || n > 3)
			return 0;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

static int no_esc(enum reply_id id)
{
	return id == R_GREETING || id == R_HELO || id == R_DATA_GO ||
	    id == R_AUTH_CHALLENGE;   /* RFC 4954: 334 has none */
}

/* --- the table ------------------------------------------------------- */

START_TEST(test_table)
{
	int id;

	for (id = 0; id < R_COUNT; id++) {
		const struct reply_def *r = reply_lookup((enum reply_id)id);

		ck_assert_msg(r != NULL, "reply %d missing", id);
		ck_assert_msg(r->code >= 200 && r->code <= 599,
		    "reply %d: code %d", id, r->code);
		ck_assert_msg(r->text != NULL && r->text[0] != '\0',
		    "reply %d: no text", id);
		if (no_esc((enum reply_id)id)) {
			ck_assert_msg(r->esc == NULL, "reply %d has %s", id,
			    r->esc);
			continue;
		}
		ck_assert_msg(r->esc != NULL, "reply %d: no enhanced code", id);
		ck_assert_msg(esc_well_formed(r->esc), "reply %d: esc '%s'", id,
		    r->esc);
		ck_assert_msg(r->esc[0] - '0' == r->code / 100 &&
		    (r->esc[0] == '2' || r->esc[0] == '4' ||
		    r->esc[0] == '5'),
		    "reply %d: %d with %s", id, r->code, r->esc);
	}
	ck_assert_ptr_null(reply_lookup(R_COUNT));
	ck_assert_ptr_null(reply_lookup((enum reply_id)(R_COUNT + 1)));
	ck_assert_ptr_null(reply_lookup((enum reply_id)-1));
}
END_TEST

START_TEST(test_known_codes)
{
	ck_assert_int_eq(reply_lookup(R_GREETING)->code, 220);
	ck_assert_int_eq(reply_lookup(R_DATA_GO)->code, 354);
	ck_assert_int_eq(reply_lookup(R_BYE)->code, 221);
	ck_assert_int_eq(reply_lookup(R_HELP)->code, 214);
	ck_assert_int_eq(reply_lookup(R_TOO_MANY_RCPTS)->code, 452);
	ck_assert_str_eq(reply_lookup(R_TOO_MANY_RCPTS)->esc, "4.5.3");
	ck_assert_int_eq(reply_lookup(R_RELAY_DENIED)->code, 554);
	ck_assert_str_eq(reply_lookup(R_RELAY_DENIED)->esc, "5.7.1");
	ck_assert_int_eq(reply_lookup(R_SIZE_EXCEEDED)->code, 552);
	ck_assert_str_eq(reply_lookup(R_SIZE_EXCEEDED)->esc, "5.3.4");
	ck_assert_int_eq(reply_lookup(R_TIMEOUT)->code, 421);
	ck_assert_str_eq(reply_lookup(R_TIMEOUT)->esc, "4.4.2");
}
END_TEST

/* --- formatting ------------------------------------------------------ */

START_TEST(test_format_simple)
{
	char out[512];
	size_t n;

	n = reply_formatf(out, sizeof out, R_SUCCESS);
	ck_assert_str_eq(out, "250 2.0.0 Ok\r\n");
	ck_assert_uint_eq(n, strlen(out));

	n = reply_formatf(out, sizeof out, R_BYE);
	ck_assert_str_eq(out, "221 2.0.0 Bye\r\n");
	ck_assert_uint_eq(n, strlen(out));

	n = reply_formatf(out, sizeof out, R_NEED_MAIL);
	ck_assert_str_eq(out, "503 5.5.1 Error: need MAIL command\r\n");
	ck_assert_uint_eq(n, strlen(out));

	n = reply_formatf(out, sizeof out, R_GREETING, "mx.example.net");
	ck_assert_str_eq(out, "220 mx.example.net ESMTP ferry\r\n");
	ck_assert_uint_eq(n, strlen(out));

	n = reply_formatf(out, sizeof out, R_HELO, "mx.example.net");
	ck_assert_str_eq(out, "250 mx.example.net\r\n");
	ck_assert_uint_eq(n, strlen(out));

	n = reply_formatf(out, sizeof out, R_DATA_GO);
	ck_assert_str_eq(out, "354 End data with <CR><LF>.<CR><LF>\r\n");
	ck_assert_uint_eq(n, strlen(out));
}
END_TEST

/* Every reply formats as "CODE ESC text\r\n" lines with no stray CR or
 * LF inside a line. */
START_TEST(test_format_every_reply)
{
	int id;

	for (id = 0; id < R_COUNT; id++) {
		const struct reply_def *r = reply_lookup((enum reply_id)id);
		char out[2048], prefix[32];
		const char *line = out;
		size_t n;

		/* every %s, %d, %lld and %llu argument a reply takes */
		if (strstr(r->text, "%llu") != NULL)
			n = reply_formatf(out, sizeof out, (enum reply_id)id,
			    12345ULL);
		else if (strstr(r->text, "%lld") != NULL)
			n = reply_formatf(out, sizeof out, (enum reply_id)id,
			    12345LL);
		else if (strstr(r->text, "%d") != NULL)
			n = reply_formatf(out, sizeof out, (enum reply_id)id,
			    12345);
		else   /* enough for texts with two %s */
			n = reply_formatf(out, sizeof out, (enum reply_id)id,
			    "arg", "arg");
		ck_assert_uint_eq(n, strlen(out));
		ck_assert_msg(n > 2 && strcmp(out + n - 2, "\r\n") == 0,
		    "reply %d: '%s'", id, out);
		while (*line) {
			const char *crlf = strstr(line, "\r\n");
			int last;

			ck_assert_ptr_nonnull(crlf);
			last = crlf[2] == '\0';
			snprintf(prefix, sizeof prefix, "%03d%c%s%s", r->code,
			    last ? ' ' : '-', r->esc ? r->esc : "",
			    r->esc ? " " : "");
			ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0,
			    "reply %d: '%s' lacks '%s'", id, line, prefix);
			ck_assert_msg(memchr(line, '\n', (size_t)(crlf - line))
			    == NULL && memchr(line, '\r',
			    (size_t)(crlf - line)) == NULL,
			    "reply %d: bare CR/LF", id);
			ck_assert_msg(crlf - line <= 510,
			    "reply %d: line longer than RFC 5321 allows", id);
			line = crlf + 2;
		}
	}
}
END_TEST

START_TEST(test_format_args)
{
	char out[512];

	reply_formatf(out, sizeof out, R_QUEUED, "4Xk2pQ9mZ0");
	ck_assert_str_eq(out, "250 2.0.0 Ok: queued as 4Xk2pQ9mZ0\r\n");
	reply_formatf(out, sizeof out, R_SIZE_EXCEEDED, 10485760LL);
	ck_assert_str_eq(out, "552 5.3.4 Error: message size exceeds fixed "
	    "limit (10485760 octets)\r\n");
	reply_formatf(out, sizeof out, R_SIZE_EXCEEDED, 9007199254740993LL);
	ck_assert_str_eq(out, "552 5.3.4 Error: message size exceeds fixed "
	    "limit (9007199254740993 octets)\r\n");
	reply_formatf(out, sizeof out, R_TOO_MANY_RCPTS, 1000);
	ck_assert_str_eq(out, "452 4.5.3 Error: too many recipients "
	    "(limit 1000)\r\n");
	reply_formatf(out, sizeof out, R_BDAT_OK, 18446744073709551615ULL);
	ck_assert_str_eq(out, "250 2.0.0 18446744073709551615 octets "
	    "received\r\n");
	reply_formatf(out, sizeof out, R_RELAY_DENIED, "x@example.org");
	ck_assert_str_eq(out, "554 5.7.1 <x@example.org>: Relay access "
	    "denied\r\n");
	reply_formatf(out, sizeof out, R_SYNTAX_NOARG, "QUIT");
	ck_assert_str_eq(out, "501 5.5.4 Syntax: QUIT takes no argument\r\n");
	reply_formatf(out, sizeof out, R_TIMEOUT, "mx.example.net");
	ck_assert_str_eq(out, "421 4.4.2 mx.example.net Error: timeout "
	    "exceeded, closing transmission channel\r\n");
}
END_TEST

START_TEST(test_format_help)
{
	char out[1024];
	size_t n = reply_formatf(out, sizeof out, R_HELP);

	ck_assert_uint_eq(n, strlen(out));
	ck_assert_str_eq(out,
	    "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET VRFY "
	    "EXPN HELP NOOP QUIT\r\n"
	    "214-2.0.0 Send mail: EHLO, MAIL FROM:<sender>, "
	    "RCPT TO:<recipient>, then DATA\r\n"
	    "214 2.0.0 For details see RFC 5321; ferry documentation: "
	    "ferry.conf(5)\r\n");
}
END_TEST

START_TEST(test_format_ehlo)
{
	char out[1024];
	size_t n;

	n = reply_formatf(out, sizeof out, R_HELO,
	    "mx.example.net\nPIPELINING\nSIZE 10485760\n8BITMIME\n"
	    "ENHANCEDSTATUSCODES\nSMTPUTF8\nDSN\nCHUNKING");
	ck_assert_uint_eq(n, strlen(out));
	ck_assert_str_eq(out,
	    "250-mx.example.net\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE 10485760\r\n"
	    "250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-SMTPUTF8\r\n"
	    "250-DSN\r\n"
	    "250 CHUNKING\r\n");
}
END_TEST

/* Arguments are data, not format: a % in them is copied as is. */
START_TEST(test_format_arg_not_format)
{
	char out[256];

	reply_formatf(out, sizeof out, R_QUEUED, "%s%n%d");
	ck_assert_str_eq(out, "250 2.0.0 Ok: queued as %s%n%d\r\n");
}
END_TEST

START_TEST(test_format_refuses)
{
	char out[64];

	memset(out, 'z', sizeof out);
	ck_assert_uint_eq(reply_formatf(out, sizeof out, R_COUNT), 0);
	ck_assert_uint_eq(reply_formatf(out, 7, R_SUCCESS), 0);
	ck_assert_uint_eq(reply_formatf(out, 0, R_SUCCESS), 0);
	ck_assert_int_eq(out[0], 'z');   /* nothing written */
}
END_TEST

/* For every output size the reply fits, is terminated, and ends with
 * CRLF; when it is cut, it is a prefix of the whole reply. */
START_TEST(test_format_cut)
{
	static const int ids[] = { R_SUCCESS, R_VRFY, R_HELP, R_HELO,
	    R_QUEUED, R_DATA_BARE_NEWLINE };
	char full[1024], out[1100];
	size_t i, outlen, flen, n;

	for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		enum reply_id id = (enum reply_id)ids[i];
		const char *arg = id == R_HELO ?
		    "mx.example.net\nPIPELINING\nSIZE 1000\nDSN" : "Q1";

		flen = reply_formatf(full, sizeof full, id, arg);
		ck_assert_uint_gt(flen, 0);
		for (outlen = 8; outlen <= flen + 8; outlen++) {
			memset(out, '#', sizeof out);
			n = reply_formatf(out, outlen, id, arg);
			ck_assert_msg(n < outlen, "id %d outlen %zu: %zu",
			    (int)id, outlen, n);
			ck_assert_uint_eq(strlen(out), n);
			ck_assert_int_eq(out[outlen], '#');     /* no overflow */
			ck_assert_msg(n >= 2 && out[n - 2] == '\r' &&
			    out[n - 1] == '\n', "id %d outlen %zu: '%s'",
			    (int)id, outlen, out);
			if (outlen > flen) {
				ck_assert_str_eq(out, full);
				continue;
			}
			/* cut: what comes before the final CRLF is the start of
			 * the whole reply */
			ck_assert_uint_eq(n, outlen - 1);
			ck_assert_msg(strncmp(out, full, n - 2) == 0,
			    "id %d outlen %zu: '%s'", (int)id, outlen, out);
		}
	}
}
END_TEST

/* A long argument is cut to the formatting buffer, not overflowing it. */
START_TEST(test_format_long_arg)
{
	char arg[3000], out[1200];
	size_t n;

	memset(arg, 'a', sizeof arg - 1);
	arg[sizeof arg - 1] = '\0';
	n = reply_formatf(out, sizeof out, R_RELAY_DENIED, arg);
	ck_assert_uint_eq(n, strlen(out));
	ck_assert_uint_lt(n, sizeof out);
	ck_assert(strncmp(out, "554 5.7.1 <aaaa", 15) == 0);
	ck_assert_str_eq(out + n - 2, "\r\n");
	ck_assert_ptr_null(memchr(out, '\n', n - 1));
}
END_TEST

/* --- log_sanitize ---------------------------------------------------- */

START_TEST(test_sanitize)
{
	char out[256];
	const char *r;

	r = log_sanitize(out, sizeof out, "MAIL FROM:<a@b>", 15);
	ck_assert_ptr_eq(r, out);
	ck_assert_str_eq(out, "MAIL FROM:<a@b>");

	log_sanitize(out, sizeof out, "a\r\nb\tc\x1b[0m\x7f", 11);
	ck_assert_str_eq(out, "a\\x0d\\x0ab\\x09c\\x1b[0m\\x7f");

	log_sanitize(out, sizeof out, "back\\slash", 10);
	ck_assert_str_eq(out, "back\\x5cslash");

	log_sanitize(out, sizeof out, "caf\xc3\xa9 \xff\x80", 8);
	ck_assert_str_eq(out, "caf\\xc3\\xa9 \\xff\\x80");

	/* len counts, not NUL: an embedded NUL is shown */
	log_sanitize(out, sizeof out, "a\0b", 3);
	ck_assert_str_eq(out, "a\\x00b");
	/* and bytes past len are not read */
	log_sanitize(out, sizeof out, "abcdef", 3);
	ck_assert_str_eq(out, "abc");
	log_sanitize(out, sizeof out, "abc", 0);
	ck_assert_str_eq(out, "");
	/* every printable ASCII character but backslash passes */
	{
		char in[95], want[100];
		int c, k = 0;

		for (c = 0x20; c < 0x7f; c++)
			in[c - 0x20] = (char)c;
		for (c = 0x20; c < 0x7f; c++) {
			if (c == '\\') {
				memcpy(want + k, "\\x5c", 4);
				k += 4;
			} else {
				want[k++] = (char)c;
			}
		}
		want[k] = '\0';
		log_sanitize(out, sizeof out, in, sizeof in);
		ck_assert_str_eq(out, want);
	}
}
END_TEST

/* For every output size: no overflow, always terminated, a prefix of
 * the full result, and never half an escape. */
START_TEST(test_sanitize_small_buffers)
{
	static const char in[] = "ab\r\n\\c\xe9" "d";
	char full[64], out[64];
	size_t outlen, n, flen;

	log_sanitize(full, sizeof full, in, sizeof in - 1);
	flen = strlen(full);
	ck_assert_str_eq(full, "ab\\x0d\\x0a\\x5cc\\xe9d");
	for (outlen = 1; outlen <= flen + 2; outlen++) {
		memset(out, '#', sizeof out);
		log_sanitize(out, outlen, in, sizeof in - 1);
		n = strlen(out);
		ck_assert_msg(n < outlen, "outlen %zu: %zu", outlen, n);
		ck_assert_int_eq(out[outlen], '#');
		ck_assert_int_eq(strncmp(out, full, n), 0);
		/* the cut falls between whole characters or escapes */
		ck_assert_msg(n == flen || full[n] != 'x' ||
		    (n > 0 && full[n - 1] != '\\'), "outlen %zu: '%s'", outlen,
		    out);
		ck_assert_msg(n == 0 || out[n - 1] != '\\', "outlen %zu: '%s'",
		    outlen, out);
		if (n >= 2)
			ck_assert_msg(out[n - 2] != '\\', "outlen %zu: '%s'",
			    outlen, out);
		if (n >= 3)
			ck_assert_msg(out[n - 3] != '\\', "outlen %zu: '%s'",
			    outlen, out);
		if (outlen > flen)
			ck_assert_str_eq(out, full);
	}
	/* outlen 0: nothing is written */
	memset(out, '#', sizeof out);
	ck_assert_ptr_eq(log_sanitize(out, 0, in, sizeof in - 1), out);
	ck_assert_int_eq(out[0], '#');
}
END_TEST

static Suite *reply_suite(void)
{
	Suite *s = suite_create("smtp_reply");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_known_codes);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, test_format_simple);
	tcase_add_test(tc, test_format_every_reply);
	tcase_add_test(tc, test_format_args);
	tcase_add_test(tc, test_format_help);
	tcase_add_test(tc, test_format_ehlo);
	tcase_add_test(tc, test_format_arg_not_format);
	tcase_add_test(tc, test_format_refuses);
	tcase_add_test(tc, test_format_cut);
	tcase_add_test(tc, test_format_long_arg);
	suite_add_tcase(s, tc);

	tc = tcase_create("log_sanitize");
	tcase_add_test(tc, test_sanitize);
	tcase_add_test(tc, test_sanitize_small_buffers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(reply_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
