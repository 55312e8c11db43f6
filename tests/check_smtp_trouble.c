/*
 * check_smtp_trouble.c - unit tests for queue/smtp_trouble.c: what each
 * reply, a missing or refused STARTTLS, and a lost connection mean for
 * the recipients at stake (go on, defer, bounce, fail over), by stage
 * and TLS policy, and the result status each gives.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "deliver_proto.h"
#include "smtp_trouble.h"

#define T(stage, code) smtp_trouble_reply((stage), (code), TLS_NONE)

/* Asserts with the names, so a failure says what was expected. */
#define ck_trouble(got, want) \
	ck_assert_str_eq(smtp_trouble_name(got), smtp_trouble_name(want))

START_TEST(test_greeting_and_hello)
{
	ck_trouble(T(STAGE_GREETING, 220), TROUBLE_NONE);
	/* a 4xx or even a 5xx greeting only skips this host */
	ck_trouble(T(STAGE_GREETING, 421), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_GREETING, 554), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_EHLO, 250), TROUBLE_NONE);
	/* EHLO refused: HELO next, on the same session */
	ck_trouble(T(STAGE_EHLO, 500), TROUBLE_FALLBACK);
	ck_trouble(T(STAGE_EHLO, 502), TROUBLE_FALLBACK);
	ck_trouble(T(STAGE_EHLO, 421), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_EHLO, 451), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_HELO, 250), TROUBLE_NONE);
	ck_trouble(T(STAGE_HELO, 550), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_HELO, 421), TROUBLE_FAILOVER);
}
END_TEST

START_TEST(test_starttls_policy)
{
	/* STARTTLS refused */
	ck_trouble(smtp_trouble_reply(STAGE_STARTTLS, 220, TLS_VERIFY),
	    TROUBLE_NONE);
	ck_trouble(smtp_trouble_reply(STAGE_STARTTLS, 454, TLS_VERIFY),
	    TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_reply(STAGE_STARTTLS, 454, TLS_ENCRYPT),
	    TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_reply(STAGE_STARTTLS, 454, TLS_MAY),
	    TROUBLE_FALLBACK);
	ck_trouble(smtp_trouble_reply(STAGE_STARTTLS, 502, TLS_MAY),
	    TROUBLE_FALLBACK);
	/* only 220 starts TLS */
	ck_trouble(smtp_trouble_reply(STAGE_STARTTLS, 250, TLS_VERIFY),
	    TROUBLE_FAILOVER);
	/* STARTTLS not offered */
	ck_trouble(smtp_trouble_no_starttls(TLS_VERIFY), TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_no_starttls(TLS_ENCRYPT), TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_no_starttls(TLS_MAY), TROUBLE_FALLBACK);
	ck_trouble(smtp_trouble_no_starttls(TLS_NONE), TROUBLE_NONE);
}
END_TEST

START_TEST(test_auth)
{
	ck_trouble(T(STAGE_AUTH, 235), TROUBLE_NONE);
	ck_trouble(T(STAGE_AUTH, 535), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_AUTH, 454), TROUBLE_FAILOVER);
	/* a 334 as the final reply is not a success */
	ck_trouble(T(STAGE_AUTH, 334), TROUBLE_FAILOVER);
}
END_TEST

START_TEST(test_mail)
{
	ck_trouble(T(STAGE_MAIL, 250), TROUBLE_NONE);
	/* 5xx to MAIL: every recipient bounces */
	ck_trouble(T(STAGE_MAIL, 550), TROUBLE_BOUNCE);
	ck_trouble(T(STAGE_MAIL, 553), TROUBLE_BOUNCE);
	/* 4xx to MAIL: another host may take the message */
	ck_trouble(T(STAGE_MAIL, 421), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_MAIL, 451), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_MAIL, 452), TROUBLE_FAILOVER);
}
END_TEST

START_TEST(test_rcpt)
{
	ck_trouble(T(STAGE_RCPT, 250), TROUBLE_NONE);
	ck_trouble(T(STAGE_RCPT, 251), TROUBLE_NONE);
	/* per recipient: 550 bounces it, 452 and 450 defer it */
	ck_trouble(T(STAGE_RCPT, 550), TROUBLE_BOUNCE);
	ck_trouble(T(STAGE_RCPT, 553), TROUBLE_BOUNCE);
	ck_trouble(T(STAGE_RCPT, 452), TROUBLE_DEFER);
	ck_trouble(T(STAGE_RCPT, 450), TROUBLE_DEFER);
	/* the server is closing: the rest may try another host */
	ck_trouble(T(STAGE_RCPT, 421), TROUBLE_FAILOVER);
	/* a reply that makes no sense here is not a success */
	ck_trouble(T(STAGE_RCPT, 354), TROUBLE_DEFER);
}
END_TEST

START_TEST(test_data)
{
	ck_trouble(T(STAGE_DATA, 354), TROUBLE_NONE);
	ck_trouble(T(STAGE_DATA, 250), TROUBLE_DEFER);
	ck_trouble(T(STAGE_DATA, 451), TROUBLE_DEFER);
	ck_trouble(T(STAGE_DATA, 554), TROUBLE_BOUNCE);
	ck_trouble(T(STAGE_DATA, 421), TROUBLE_FAILOVER);
	ck_trouble(T(STAGE_END_OF_DATA, 250), TROUBLE_NONE);
	ck_trouble(T(STAGE_END_OF_DATA, 552), TROUBLE_BOUNCE);
	ck_trouble(T(STAGE_END_OF_DATA, 452), TROUBLE_DEFER);
	/* after the dot the server may have the message: never another
	 * host, even when it is closing */
	ck_trouble(T(STAGE_END_OF_DATA, 421), TROUBLE_DEFER);
}
END_TEST

START_TEST(test_lost_and_closing)
{
	ck_trouble(smtp_trouble_lost(STAGE_GREETING), TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_lost(STAGE_STARTTLS), TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_lost(STAGE_RCPT), TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_lost(STAGE_DATA), TROUBLE_FAILOVER);
	ck_trouble(smtp_trouble_lost(STAGE_END_OF_DATA), TROUBLE_DEFER);
	ck_assert_int_ne(smtp_trouble_closes(421), 0);
	ck_assert_int_eq(smtp_trouble_closes(450), 0);
	ck_assert_int_eq(smtp_trouble_closes(554), 0);
	ck_assert_int_eq(smtp_trouble_closes(250), 0);
}
END_TEST

START_TEST(test_status)
{
	ck_assert_uint_eq(smtp_trouble_status(TROUBLE_BOUNCE), DS_FAILED);
	ck_assert_uint_eq(smtp_trouble_status(TROUBLE_DEFER), DS_DEFERRED);
	ck_assert_uint_eq(smtp_trouble_status(TROUBLE_FAILOVER), DS_DEFERRED);
	ck_assert_uint_eq(smtp_trouble_status(TROUBLE_NONE), DS_DELIVERED);
	ck_assert_uint_eq(smtp_trouble_status(T(STAGE_RCPT, 550)), DS_FAILED);
	ck_assert_uint_eq(smtp_trouble_status(T(STAGE_RCPT, 452)),
	    DS_DEFERRED);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("smtp_trouble");
	TCase *tc = tcase_create("smtp_trouble");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_greeting_and_hello);
	tcase_add_test(tc, test_starttls_policy);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_mail);
	tcase_add_test(tc, test_rcpt);
	tcase_add_test(tc, test_data);
	tcase_add_test(tc, test_lost_and_closing);
	tcase_add_test(tc, test_status);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
