/*
 * check_bounce.c - the shapes of RFC 3464 reports that queue/bounce.c
 * builds, without a daemon or a store: a failure report returning the
 * whole message, one returning headers only (RET=HDRS, large originals),
 * a delay warning, several recipients, ORCPT and ENVID, local and remote
 * failures, and untrusted reply text kept out of the headers.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"

static const char original[] =
    "Received: from client\r\nSubject: hello\r\nFrom: a@origin.test\r\n"
    "\r\nbody line 1\r\nbody line 2\r\n";

static struct bounce_input
input(int delayed, int headers_only)
{
	struct bounce_input in;

	memset(&in, 0, sizeof(in));
	in.delayed = delayed;
	in.hostname = "mx.example";
	in.report_qid = "BBBBBBBBBBBB";
	in.qid = "AAAAAAAAAAAA";
	in.sender = "a@origin.test";
	in.envid = "";
	in.received_at = 1700000000;
	in.retry_until = 1700000000 + 5 * 86400;
	in.headers_only = headers_only;
	in.original = (const uint8_t *)original;
	in.original_len = sizeof(original) - 1;
	in.now = 1700003600;
	memcpy(in.random, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	return in;
}

static const struct bounce_rcpt failed_rcpt = {
	"b@dest.test", "", "5.1.1", "smtp.dest.test", "550 5.1.1 no such user",
	"host smtp.dest.test said: 550 5.1.1 no such user", 1700003500
};

static char *
build(const struct bounce_input *in, const struct bounce_rcpt *r, size_t n)
{
	uint8_t *out;
	size_t len;
	char *s;

	bounce_report(in, r, n, &out, &len);
	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, out, len);
	s[len] = '\0';
	free(out);
	ck_assert_uint_eq(strlen(s), len);   /* no NUL inside */
	return s;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* Every line ends in CRLF: no bare CR or LF. */
static void
assert_crlf(const char *s)
{
	const char *p;

	for (p = s; *p; p++) {
		if (*p == '\n')
			ck_assert_msg(p > s && p[-1] == '\r', "bare LF at %ld",
			    (long)(p - s));
		if (*p == '\r')
			ck_assert_msg(p[1] == '\n', "bare CR at %ld",
			    (long)(p - s));
	}
}

START_TEST(test_failure_full)
{
	struct bounce_input in = input(0, 0);
	char *s = build(&in, &failed_rcpt, 1);
	const char *boundary = "BBBBBBBBBBBB.010203040506/mx.example";
	char line[256];

	assert_crlf(s);
	ck_assert(strncmp(s, "Received: by mx.example (ferry) id BBBBBBBBBBBB;",
	    48) == 0);
	ck_assert(strstr(s, "\r\nFrom: Mail Delivery System "
	    "<MAILER-DAEMON@mx.example>\r\n") != NULL);
	ck_assert(strstr(s, "\r\nTo: <a@origin.test>\r\n") != NULL);
	ck_assert(strstr(s, "\r\nSubject: Undelivered Mail Returned to "
	    "Sender\r\n") != NULL);
	ck_assert(strstr(s, "\r\nMessage-ID: <BBBBBBBBBBBB.0708@mx.example>"
	    "\r\n") != NULL);
	ck_assert(strstr(s, "\r\nAuto-Submitted: auto-replied\r\n") != NULL);
	snprintf(line, sizeof(line), "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	ck_assert(strstr(s, line) != NULL);
	/* three parts and the closing boundary */
	snprintf(line, sizeof(line), "--%s\r\n", boundary);
	ck_assert_int_eq(count(s, line), 3);
	snprintf(line, sizeof(line), "\r\n--%s--\r\n", boundary);
	ck_assert(strstr(s, line) != NULL);
	/* for people: the detail */
	ck_assert(strstr(s, "Your message (queue id AAAAAAAAAAAA) could not "
	    "be delivered") != NULL);
	ck_assert(strstr(s, "<b@dest.test>: host smtp.dest.test said: 550 "
	    "5.1.1 no such user\r\n") != NULL);
	/* for programs */
	ck_assert(strstr(s, "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; mx.example\r\nX-Ferry-Queue-ID: AAAAAAAAAAAA"
	    "\r\nArrival-Date: ") != NULL);
	ck_assert(strstr(s, "Original-Envelope-Id:") == NULL);
	ck_assert(strstr(s, "Original-Recipient:") == NULL);
	ck_assert(strstr(s, "\r\nFinal-Recipient: rfc822; b@dest.test\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; "
	    "smtp.dest.test\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user"
	    "\r\nLast-Attempt-Date: ") != NULL);
	ck_assert(strstr(s, "Will-Retry-Until:") == NULL);
	/* the whole original as message/rfc822 */
	ck_assert(strstr(s, "Content-Description: Undelivered Message\r\n"
	    "Content-Type: message/rfc822\r\n\r\n") != NULL);
	ck_assert(strstr(s, original) != NULL);
	free(s);
}
END_TEST

START_TEST(test_failure_headers_only)
{
	struct bounce_input in = input(0, 1);
	char *s = build(&in, &failed_rcpt, 1);

	assert_crlf(s);
	ck_assert(strstr(s, "Content-Description: Undelivered Message "
	    "Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from client\r\nSubject: hello\r\nFrom: a@origin.test"
	    "\r\n\r\n\r\n--") != NULL);
	ck_assert(strstr(s, "body line") == NULL);
	free(s);
}
END_TEST

START_TEST(test_headers_capped)
{
	/* a header block without an end is cut at BOUNCE_HEADERS_MAX */
	size_t big = BOUNCE_HEADERS_MAX + 5000, i;
	uint8_t *orig = malloc(big);
	struct bounce_input in = input(0, 1);
	char *s;

	ck_assert_ptr_nonnull(orig);
	for (i = 0; i < big; i++)
		orig[i] = 'x';
	in.original = orig;
	in.original_len = big;
	s = build(&in, &failed_rcpt, 1);
	ck_assert(strlen(s) < BOUNCE_HEADERS_MAX + 4096);
	ck_assert(strlen(s) > BOUNCE_HEADERS_MAX);
	free(s);
	free(orig);
}
END_TEST

START_TEST(test_delay_warning)
{
	struct bounce_input in = input(1, 1);
	struct bounce_rcpt r = failed_rcpt;
	char *s;

	r.status = "4.4.1";
	r.remote_mta = "";
	r.diagnostic = "connect to smtp.dest.test: Connection refused";
	r.detail = "";
	s = build(&in, &r, 1);
	assert_crlf(s);
	ck_assert(strstr(s, "\r\nSubject: Delayed Mail (still being retried)"
	    "\r\n") != NULL);
	ck_assert(strstr(s, "has not been delivered to one\r\nor more "
	    "recipients yet. It is still being retried until\r\n") != NULL);
	ck_assert(strstr(s, "Action: delayed\r\nStatus: 4.4.1\r\n"
	    "Diagnostic-Code: x-ferry; connect to smtp.dest.test: Connection "
	    "refused\r\n") != NULL);
	ck_assert(strstr(s, "Remote-MTA:") == NULL);
	ck_assert_int_eq(count(s, "Will-Retry-Until: "), 1);
	ck_assert(strstr(s, "Content-Description: Delayed Message Headers"
	    "\r\nContent-Type: text/rfc822-headers\r\n") != NULL);
	/* the people's part falls back to the diagnostic */
	ck_assert(strstr(s, "<b@dest.test>: connect to smtp.dest.test: "
	    "Connection refused\r\n") != NULL);
	free(s);
}
END_TEST

START_TEST(test_several_recipients_orcpt_envid)
{
	struct bounce_input in = input(0, 0);
	struct bounce_rcpt r[2] = { failed_rcpt, failed_rcpt };
	char *s;

	in.envid = "QQ+2B123";
	r[1].addr = "c@dest.test";
	r[1].orcpt = "rfc822;C+40dest.test";
	r[1].status = "4.4.7";
	s = build(&in, r, 2);
	ck_assert(strstr(s, "\r\nOriginal-Envelope-Id: QQ+2B123\r\n") != NULL);
	ck_assert_int_eq(count(s, "Final-Recipient: rfc822; "), 2);
	ck_assert(strstr(s, "\r\nOriginal-Recipient: rfc822;C+40dest.test\r\n"
	    "Final-Recipient: rfc822; c@dest.test\r\nAction: failed\r\n"
	    "Status: 4.4.7\r\n") != NULL);
	ck_assert(strstr(s, "Final-Recipient: rfc822; b@dest.test\r\n")
	    < strstr(s, "Final-Recipient: rfc822; c@dest.test\r\n"));
	free(s);
}
END_TEST

START_TEST(test_untrusted_reply_cleaned)
{
	struct bounce_input in = input(0, 0);
	struct bounce_rcpt r = failed_rcpt;
	char *s;

	r.diagnostic = "550 bad\r\nX-Injected: yes\x01\xff";
	r.detail = "";
	s = build(&in, &r, 1);
	assert_crlf(s);
	ck_assert(strstr(s, "\r\nX-Injected") == NULL);
	ck_assert(strstr(s, "Diagnostic-Code: smtp; 550 bad  X-Injected: yes"
	    "  \r\n") != NULL);
	free(s);
}
END_TEST

START_TEST(test_owed)
{
	ck_assert(bounce_owed("a@origin.test", 0, 0, 0));
	ck_assert(bounce_owed("a@origin.test", 0, 1, 0));
	ck_assert(bounce_owed("a@origin.test", 0, 0, 1));
	ck_assert(!bounce_owed("a@origin.test", 0, 1, 1)); /* warned once */
	ck_assert(!bounce_owed("", 0, 0, 0));              /* null sender */
	ck_assert(!bounce_owed("a@origin.test", 1, 0, 0)); /* ferry's own */
}
END_TEST

static Suite *
bounce_suite(void)
{
	Suite *s = suite_create("bounce");
	TCase *tc = tcase_create("report");

	tcase_add_test(tc, test_failure_full);
	tcase_add_test(tc, test_failure_headers_only);
	tcase_add_test(tc, test_headers_capped);
	tcase_add_test(tc, test_delay_warning);
	tcase_add_test(tc, test_several_recipients_orcpt_envid);
	tcase_add_test(tc, test_untrusted_reply_cleaned);
	tcase_add_test(tc, test_owed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(bounce_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
