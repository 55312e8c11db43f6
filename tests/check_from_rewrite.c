/*
 * check_from_rewrite.c - unit tests for queue/from_rewrite.c: which From
 * fields are replaced (not the account, not allowed), byte-exact output
 * with folded fields, CRLF and LF, Reply-To added only when there is
 * none, display names kept, and the end of the header block.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "from_rewrite.h"

static char *allowed_none[] = { NULL };

/* Rewrites in with account and allowed; checks the result against want
 * (NULL: left alone) and the old addresses against want_old. */
static void
expect(const char *in, char *const *allowed, size_t nallowed,
    const char *want, const char *want_old)
{
	struct from_rewrite_out out;
	int rc = from_rewrite_header(in, strlen(in), "relay@example.com",
	    allowed, nallowed, &out);

	if (want == NULL) {
		ck_assert_msg(rc == 0, "rewrote:\n%s", in);
		ck_assert_ptr_null(out.buf);
		return;
	}
	ck_assert_msg(rc == 1, "left alone:\n%s", in);
	ck_assert_uint_eq(out.len, strlen(want));
	ck_assert_msg(memcmp(out.buf, want, out.len) == 0, "got:\n%.*s\n"
	    "want:\n%s", (int)out.len, out.buf, want);
	if (want_old != NULL)
		ck_assert_str_eq(out.old, want_old);
	free(out.buf);
}

START_TEST(test_plain_from)
{
	expect("Subject: hi\r\nFrom: alice@other.org\r\nTo: b@x\r\n\r\n",
	    allowed_none, 0,
	    "Subject: hi\r\nFrom: relay@example.com\r\n"
	    "Reply-To: alice@other.org\r\nTo: b@x\r\n\r\n",
	    "<alice@other.org>");
}
END_TEST

START_TEST(test_display_name_kept)
{
	expect("From: \"Alice A.\" <alice@other.org>\r\n\r\nbody\r\n",
	    allowed_none, 0,
	    "From: \"Alice A.\" <relay@example.com>\r\n"
	    "Reply-To: \"Alice A.\" <alice@other.org>\r\n\r\nbody\r\n",
	    "<alice@other.org>");
	expect("From: Alice <alice@other.org> (work)\r\n\r\n", allowed_none,
	    0, "From: Alice <relay@example.com>\r\n"
	    "Reply-To: Alice <alice@other.org> (work)\r\n\r\n", NULL);
}
END_TEST

START_TEST(test_folded_from)
{
	/* the whole logical field goes, its continuation lines too */
	expect("Date: x\r\nFrom: \"A very long name\"\r\n\t<alice@other.org>"
	    "\r\nTo: b@x\r\n\r\n", allowed_none, 0,
	    "Date: x\r\nFrom: \"A very long name\" <relay@example.com>\r\n"
	    "Reply-To: \"A very long name\"\r\n\t<alice@other.org>\r\n"
	    "To: b@x\r\n\r\n", "<alice@other.org>");
	/* folded before the address, two mailboxes: no display name kept */
	expect("From: a@other.org,\r\n b@other.org\r\n\r\n", allowed_none, 0,
	    "From: relay@example.com\r\n"
	    "Reply-To: a@other.org,\r\n b@other.org\r\n\r\n",
	    "<a@other.org>,<b@other.org>");
}
END_TEST

START_TEST(test_reply_to_kept)
{
	expect("From: alice@other.org\r\nReply-To: list@other.org\r\n\r\n",
	    allowed_none, 0,
	    "From: relay@example.com\r\nReply-To: list@other.org\r\n\r\n",
	    NULL);
	/* any case, and after the From */
	expect("reply-to: l@o\r\nfrom: alice@other.org\r\n\r\n", allowed_none,
	    0, "reply-to: l@o\r\nFrom: relay@example.com\r\n\r\n", NULL);
}
END_TEST

START_TEST(test_allowed_left_alone)
{
	static char *allowed[] = { "@example.com", ".example.net",
	    "boss@corp.example" };

	/* the account itself, any case */
	expect("From: Relay <RELAY@example.com>\r\n\r\n", allowed_none, 0,
	    NULL, NULL);
	expect("From: x@example.com\r\n\r\n", allowed, 3, NULL, NULL);
	expect("From: x@a.example.net\r\n\r\n", allowed, 3, NULL, NULL);
	expect("From: <boss@corp.example>\r\n\r\n", allowed, 3, NULL, NULL);
	/* ".example.net" is subdomains only; one bad mailbox is enough */
	expect("From: x@example.net\r\n\r\n", allowed, 3,
	    "From: relay@example.com\r\nReply-To: x@example.net\r\n\r\n",
	    NULL);
	expect("From: x@example.com, y@evil.org\r\n\r\n", allowed, 3,
	    "From: relay@example.com\r\n"
	    "Reply-To: x@example.com, y@evil.org\r\n\r\n", NULL);
	/* a lookalike in a display name or comment is not the address */
	expect("From: \"x@example.com\" <y@evil.org>\r\n\r\n", allowed, 3,
	    "From: \"x@example.com\" <relay@example.com>\r\n"
	    "Reply-To: \"x@example.com\" <y@evil.org>\r\n\r\n", NULL);
	expect("From: y@evil.org (x@example.com)\r\n\r\n", allowed, 3,
	    "From: relay@example.com\r\n"
	    "Reply-To: y@evil.org (x@example.com)\r\n\r\n", NULL);
	/* no From at all: nothing to do */
	expect("Subject: x\r\n\r\nFrom: a@evil.org\r\n", allowed_none, 0,
	    NULL, NULL);
}
END_TEST

START_TEST(test_line_endings_and_body)
{
	/* LF stays LF; the body (even a From line in it) is not touched */
	expect("From: a@o.org\nX: y\n\nFrom: b@o.org\n", allowed_none, 0,
	    "From: relay@example.com\nReply-To: a@o.org\nX: y\n\n"
	    "From: b@o.org\n", NULL);
	/* "From" must be the whole field name */
	expect("From-Addr: a@o.org\r\nX-From: a@o.org\r\n\r\n", allowed_none,
	    0, NULL, NULL);
	expect("From : a@o.org\r\n\r\n", allowed_none, 0,
	    "From: relay@example.com\r\nReply-To: a@o.org\r\n\r\n", NULL);
	/* an empty or unparseable From is not allowed */
	expect("From:\r\n\r\n", allowed_none, 0,
	    "From: relay@example.com\r\nReply-To:\r\n\r\n", "(no address)");
	/* a header without its empty line, last field unterminated */
	expect("To: b@x\r\nFrom: a@o.org", allowed_none, 0,
	    "To: b@x\r\nFrom: relay@example.com\r\nReply-To: a@o.org\r\n",
	    NULL);
}
END_TEST

START_TEST(test_two_froms)
{
	/* both replaced, one Reply-To (the first's) */
	expect("From: a@o.org\r\nFrom: b@o.org\r\n\r\n", allowed_none, 0,
	    "From: relay@example.com\r\nReply-To: a@o.org\r\n"
	    "From: relay@example.com\r\n\r\n", "<a@o.org>,<b@o.org>");
}
END_TEST

START_TEST(test_group)
{
	expect("From: Team: a@o.org, b@o.org;\r\n\r\n", allowed_none, 0,
	    "From: relay@example.com\r\n"
	    "Reply-To: Team: a@o.org, b@o.org;\r\n\r\n",
	    "<a@o.org>,<b@o.org>");
}
END_TEST

START_TEST(test_header_end)
{
	ck_assert_uint_eq(from_rewrite_header_end("A: b\r\n\r\nbody", 13), 8);
	ck_assert_uint_eq(from_rewrite_header_end("A: b\n\nbody", 10), 6);
	ck_assert_uint_eq(from_rewrite_header_end("\r\nbody", 6), 2);
	ck_assert_uint_eq(from_rewrite_header_end("A: b\r\nC: d\r\n", 12), 0);
	ck_assert_uint_eq(from_rewrite_header_end("A: b\r\n\r", 7), 0);
	ck_assert_uint_eq(from_rewrite_header_end("", 0), 0);
}
END_TEST

START_TEST(test_no_account)
{
	struct from_rewrite_out out;

	ck_assert_int_eq(from_rewrite_header("From: a@b\r\n\r\n", 13, "",
	    allowed_none, 0, &out), 0);
	ck_assert_ptr_null(out.buf);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("from_rewrite");
	TCase *tc = tcase_create("from_rewrite");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_plain_from);
	tcase_add_test(tc, test_display_name_kept);
	tcase_add_test(tc, test_folded_from);
	tcase_add_test(tc, test_reply_to_kept);
	tcase_add_test(tc, test_allowed_left_alone);
	tcase_add_test(tc, test_line_endings_and_body);
	tcase_add_test(tc, test_two_froms);
	tcase_add_test(tc, test_group);
	tcase_add_test(tc, test_header_end);
	tcase_add_test(tc, test_no_account);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
