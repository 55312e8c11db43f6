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

START_TEST(test_oauth2)
{
	struct credentials c;
	char err[512];
	const struct credential *cr;

	ck_assert_int_eq(credentials_parse("plain u p\n"
	    "m365 user@contoso.com oauth2 refresh_token=R1.x-y_z "
	    "token_url=https://login.example/t/oauth2/v2.0/token client_id=ID "
	    "scope=https://outlook.office.com/SMTP.Send+offline_access "
	    "client_secret=SEC\n"
	    "gmail g@x oauth2 token_url=https://oauth2.example/token "
	    "client_id=C refresh_token=1//R ca_file=/etc/ca.pem\n", "f", &c,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_uint_eq(credentials_oauth2_count(&c), 2);
	cr = credentials_find(&c, "plain");
	ck_assert_int_eq(cr->oauth2, 0);
	ck_assert_ptr_null(cr->refresh_token);
	cr = credentials_find(&c, "m365");
	ck_assert_int_eq(cr->oauth2, 1);
	ck_assert_str_eq(cr->user, "user@contoso.com");
	ck_assert_str_eq(cr->pass, "");
	ck_assert_str_eq(cr->token_url,
	    "https://login.example/t/oauth2/v2.0/token");
	ck_assert_str_eq(cr->client_id, "ID");
	ck_assert_str_eq(cr->client_secret, "SEC");
	ck_assert_str_eq(cr->scope,
	    "https://outlook.office.com/SMTP.Send offline_access");
	ck_assert_str_eq(cr->refresh_token, "R1.x-y_z");
	ck_assert_ptr_null(cr->ca_file);
	cr = credentials_find(&c, "gmail");
	ck_assert_ptr_null(cr->client_secret);
	ck_assert_ptr_null(cr->scope);
	ck_assert_str_eq(cr->ca_file, "/etc/ca.pem");
	/* what an agent keeps */
	credentials_drop_secrets(&c);
	cr = credentials_find(&c, "m365");
	ck_assert_int_eq(cr->oauth2, 1);
	ck_assert_str_eq(cr->user, "user@contoso.com");
	ck_assert_ptr_null(cr->refresh_token);
	ck_assert_ptr_null(cr->client_secret);
	ck_assert_ptr_null(cr->token_url);
	ck_assert_str_eq(credentials_find(&c, "plain")->pass, "p");
	credentials_free(&c);
}
END_TEST

START_TEST(test_oauth2_malformed)
{
	struct credentials c;
	char err[512];

	/* unknown key, named; the value is not quoted */
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=https://t/ "
	    "client_id=c refresh_token=topsecret colour=topsecret2\n", "f",
	    &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "colour"));
	ck_assert_ptr_null(strstr(err, "topsecret"));
	/* http is refused: no allowance, tests too use https */
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=http://t/ "
	    "client_id=c refresh_token=x\n", "f", &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "https"));
	/* missing required keys */
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=https://t/ "
	    "client_id=c\n", "f", &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "refresh_token"));
	ck_assert_int_eq(credentials_parse("r u oauth2\n", "f", &c, err,
	    sizeof(err)), -1);
	/* a key twice, an empty value, a key without '=' */
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=https://t/ "
	    "client_id=c client_id=d refresh_token=x\n", "f", &c, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=https://t/ "
	    "client_id= refresh_token=x\n", "f", &c, err, sizeof(err)), -1);
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=https://t/ "
	    "client_id refresh_token=x\n", "f", &c, err, sizeof(err)), -1);
	/* ca_file relative */
	ck_assert_int_eq(credentials_parse("r u oauth2 token_url=https://t/ "
	    "client_id=c refresh_token=x ca_file=ca.pem\n", "f", &c, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "absolute"));
}
END_TEST

START_TEST(test_replace_refresh)
{
	const char *text = "# r u oauth2 refresh_token=commented\n"
	    "plain u p\n"
	    "r\tu oauth2 client_id=c refresh_token=OLD  token_url=https://t/\n"
	    "s u oauth2 refresh_token=OTHER client_id=c token_url=https://t/\n";
	char *out = credentials_replace_refresh(text, "r", "NEW/1.2-3");

	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, "# r u oauth2 refresh_token=commented\n"
	    "plain u p\n"
	    "r\tu oauth2 client_id=c refresh_token=NEW/1.2-3  "
	    "token_url=https://t/\n"
	    "s u oauth2 refresh_token=OTHER client_id=c token_url=https://t/\n");
	free(out);
	/* no such oauth2 line, a password line, an unsafe token */
	ck_assert_ptr_null(credentials_replace_refresh(text, "x", "N"));
	ck_assert_ptr_null(credentials_replace_refresh(text, "plain", "N"));
	ck_assert_ptr_null(credentials_replace_refresh(text, "r", "a b"));
	ck_assert_ptr_null(credentials_replace_refresh(text, "r", "a\nb"));
	ck_assert_ptr_null(credentials_replace_refresh(text, "r", ""));
	ck_assert_int_eq(credentials_token_valid("ya29.a0AfB_by-x~/+="), 1);
	ck_assert_int_eq(credentials_token_valid("x\x01"), 0);
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
	tcase_add_test(tc, test_oauth2);
	tcase_add_test(tc, test_oauth2_malformed);
	tcase_add_test(tc, test_replace_refresh);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
