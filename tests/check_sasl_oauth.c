/*
 * check_sasl_oauth.c - unit tests for queue/sasl_oauth.c: the exact
 * XOAUTH2 and OAUTHBEARER (RFC 7628) strings, the saslname escapes, and
 * a buffer too small.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sasl_oauth.h"

START_TEST(test_xoauth2)
{
	char out[256];
	const char *want = "user=someuser@example.com\001auth=Bearer "
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001";

	ck_assert_uint_eq(sasl_xoauth2("someuser@example.com",
	    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", out,
	    sizeof(out)), strlen(want));
	ck_assert_str_eq(out, want);
	ck_assert_uint_eq(sasl_xoauth2("u", "t", out, 10), 0);
}
END_TEST

START_TEST(test_oauthbearer)
{
	char out[256];
	/* RFC 7628 section 4.1 */
	const char *want = "n,a=user@example.com,\001host=server.example.com"
	    "\001port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29t"
	    "Cg==\001\001";

	ck_assert_uint_eq(sasl_oauthbearer("user@example.com",
	    "server.example.com", 143,
	    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", out, sizeof(out)),
	    strlen(want));
	ck_assert_str_eq(out, want);
	ck_assert_uint_gt(sasl_oauthbearer("a,b=c", "h", 587, "t", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "n,a=a=2Cb=3Dc,\001host=h\001port=587\001auth="
	    "Bearer t\001\001");
	ck_assert_uint_eq(sasl_oauthbearer("user", "h", 587, "t", out, 12), 0);
	ck_assert_uint_eq(sasl_oauthbearer("user", "h", 587, "t", out, 5), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sasl_oauth");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_xoauth2);
	tcase_add_test(tc, test_oauthbearer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
