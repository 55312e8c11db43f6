/*
 * check_credentials.c - unit tests for queue/credentials.c: the file
 * format, malformed lines (reported without the password), duplicate
 * routes, and the refusal of a file others may read.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "credentials.h"

START_TEST(test_parse)
{
	struct credentials c;
	char err[512];
	const struct credential *cr;

	ck_assert_int_eq(credentials_parse("# comment\n\n  \nsmarthost "
	    "user@x s3cret\r\nother\tu2\tp2", "f", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.n, 2);
	cr = credentials_find(&c, "smarthost");
	ck_assert_ptr_nonnull(cr);
	ck_assert_str_eq(cr->user, "user@x");
	ck_assert_str_eq(cr->pass, "s3cret");
	cr = credentials_find(&c, "other");
	ck_assert_str_eq(cr->pass, "p2");
	ck_assert_ptr_null(credentials_find(&c, "mx"));
	credentials_free(&c);
	ck_assert_uint_eq(c.n, 0);

	ck_assert_int_eq(credentials_parse("", "f", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.n, 0);
}
END_TEST

START_TEST(test_malformed)
{
	struct credentials c;
	char err[512];

	ck_assert_int_eq(credentials_parse("a b\n", "f", &c, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "f:1:"));
	ck_assert_int_eq(credentials_parse("# x\na b topsecret extra\n", "f",
	    &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "f:2:"));
	ck_assert_ptr_null(strstr(err, "topsecret"));
	ck_assert_int_eq(credentials_parse("a b c\na d topsecret\n", "f", &c,
	    err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	ck_assert_ptr_null(strstr(err, "topsecret"));
}
END_TEST

START_TEST(test_file_mode)
{
	struct credentials c;
	char path[] = "/tmp/check_credXXXXXX", err[512];
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "r u p\n", 6), 6);
	close(fd);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(credentials_load(path, &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.n, 1);
	credentials_free(&c);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(credentials_load(path, &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "others"));
	unlink(path);
	ck_assert_int_eq(credentials_load(path, &c, err, sizeof(err)), -1);
	ck_assert_int_eq(credentials_load("", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.n, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("credentials");
	TCase *tc = tcase_create("credentials");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_file_mode);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
