/*
 * check_auth_users.c - unit tests for src/auth_users.c: the users file
 * (strict parsing with line numbers), password checks for each hash
 * kind, unknown users, sender binding and new hashes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_users.h"

#define H_SHA512 "$6$rounds=5000$abcdefghijklmnop$J/AWykHqo2Tx5UtavGnFc3yt" \
	"I33la50JpzLTarSWVhkIXK6wOjNwwZjsrIw2UgmrER2EKrSHCeQyAINEEXAk1/"
#define H_BCRYPT "$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"
#define H_YESCRYPT "$y$j9T$abcdefghijklmnopqrstu.$7uryFExhLbAhrpK1WytVzeNOb" \
	"CUVaK3VoKccP3fJEIB"
#define H_MD5 "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"

static struct auth_users *
parse(const char *text, char *err, size_t errlen)
{
	return auth_users_parse(text, strlen(text), "users", err, errlen);
}

START_TEST(test_parse_and_verify)
{
	const char *text = "# users\n\n"
	    "alice:" H_YESCRYPT ":alice@example.com,@sales.example.com\n"
	    "bob:" H_SHA512 "\n"
	    "carol@example.net:" H_BCRYPT ":\n";
	const struct auth_user *u;
	struct auth_users *us;
	char err[512];

	us = parse(text, err, sizeof(err));
	ck_assert_msg(us != NULL, "%s", err);
	ck_assert_uint_eq(us->n, 3);
	ck_assert_str_eq(us->users[0].name, "alice");
	ck_assert_uint_eq(us->users[0].nsenders, 2);
	ck_assert_uint_eq(us->users[1].nsenders, 0);
	ck_assert_uint_eq(us->users[2].nsenders, 0);
	ck_assert_str_eq(us->dummy, H_YESCRYPT);

	ck_assert_int_eq(auth_users_verify(us, "alice", "secret", &u), 1);
	ck_assert_str_eq(u->name, "alice");
	ck_assert_int_eq(auth_users_verify(us, "bob", "secret", &u), 1);
	ck_assert_int_eq(auth_users_verify(us, "carol@example.net", "secret",
	    &u), 1);
	ck_assert_int_eq(auth_users_verify(us, "alice", "Secret", &u), 0);
	ck_assert_ptr_null(u);
	ck_assert_int_eq(auth_users_verify(us, "bob", "", &u), 0);
	/* unknown users fail, even with the dummy's own password */
	ck_assert_int_eq(auth_users_verify(us, "mallory", "secret", &u), 0);
	ck_assert_ptr_null(u);
	ck_assert_int_eq(auth_users_verify(us, "", "secret", &u), 0);
	ck_assert_int_eq(auth_users_verify(us, "ALICE", "secret", &u), 0);
	auth_users_free(us);

	us = parse("", err, sizeof(err));
	ck_assert_ptr_nonnull(us);
	ck_assert_uint_eq(us->n, 0);
	ck_assert_int_eq(auth_users_verify(us, "x", "y", &u), 0);
	auth_users_free(us);
}
END_TEST

static void
refused(const char *text, const char *line, const char *why)
{
	char err[512];
	struct auth_users *us = parse(text, err, sizeof(err));

	ck_assert_msg(us == NULL, "accepted: %s", text);
	ck_assert_msg(strstr(err, line) != NULL, "%s: no %s", err, line);
	ck_assert_msg(strstr(err, why) != NULL, "%s: no %s", err, why);
}

START_TEST(test_malformed)
{
	refused("alice\n", "users:1:", "expected");
	refused("# c\nalice " H_SHA512 "\n", "users:2:", "expected");
	refused(":" H_SHA512 "\n", "users:1:", "user name");
	refused("al ice:" H_SHA512 "\n", "users:1:", "user name");
	refused("alice:" H_MD5 "\n", "users:1:", "bad hash");
	refused("alice:plaintext\n", "users:1:", "bad hash");
	refused("alice:\n", "users:1:", "bad hash");
	refused("alice:$6$\n", "users:1:", "hash");
	refused("alice:" H_SHA512 ":a@b.example,\n", "users:1:", "empty");
	refused("alice:" H_SHA512 ":,a@b.example\n", "users:1:", "sender");
	refused("alice:" H_SHA512 ":a@b.example, c@d.example\n", "users:1:",
	    "sender");
	refused("alice:" H_SHA512 ":not-an-address\n", "users:1:", "sender");
	refused("alice:" H_SHA512 ":@\n", "users:1:", "sender");
	refused("alice:" H_SHA512 ":a@b.example:extra\n", "users:1:",
	    "sender");
	refused("alice:" H_SHA512 "\r\n", "users:1:", "carriage return");
	refused("alice:" H_SHA512 "\nbob:" H_BCRYPT "\nalice:" H_BCRYPT "\n",
	    "users:3:", "twice");
}
END_TEST

START_TEST(test_may_send)
{
	char err[512];
	struct auth_users *us = parse("alice:" H_SHA512 ":alice@Example.com,"
	    "@sales.example.com\nbob:" H_SHA512 "\n", err, sizeof(err));
	const struct auth_user *a, *b;

	ck_assert_ptr_nonnull(us);
	a = &us->users[0];
	b = &us->users[1];
	ck_assert(auth_user_may_send(a, "alice@example.com"));
	ck_assert(auth_user_may_send(a, "alice@EXAMPLE.COM"));
	ck_assert(!auth_user_may_send(a, "Alice@example.com"));
	ck_assert(!auth_user_may_send(a, "bob@example.com"));
	ck_assert(!auth_user_may_send(a, "alice@example.com.evil.example"));
	ck_assert(!auth_user_may_send(a, "alice@sub.example.com"));
	ck_assert(auth_user_may_send(a, "anyone@sales.example.com"));
	ck_assert(auth_user_may_send(a, "x@SALES.example.com"));
	ck_assert(!auth_user_may_send(a, "x@eu.sales.example.com"));
	ck_assert(!auth_user_may_send(a, "\"x@sales.example.com\"@evil.example"));
	ck_assert(!auth_user_may_send(a, ""));
	ck_assert(!auth_user_may_send(a, "Postmaster"));
	ck_assert(auth_user_may_send(b, "anything@anywhere.example"));
	ck_assert(auth_user_may_send(b, ""));
	auth_users_free(us);
}
END_TEST

START_TEST(test_hash_password)
{
	char err[512], *h, *text;
	struct auth_users *us;
	const struct auth_user *u;

	h = auth_hash_password("pa:ss word", err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	ck_assert(strncmp(h, "$y$", 3) == 0);
	ck_assert(strchr(h, ':') == NULL);
	text = malloc(strlen(h) + 16);
	sprintf(text, "dave:%s\n", h);
	us = parse(text, err, sizeof(err));
	ck_assert_msg(us != NULL, "%s", err);
	ck_assert_int_eq(auth_users_verify(us, "dave", "pa:ss word", &u), 1);
	ck_assert_int_eq(auth_users_verify(us, "dave", "pa:ss", &u), 0);
	auth_users_free(us);
	free(text);
	free(h);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auth_users");
	TCase *tc = tcase_create("auth_users");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_parse_and_verify);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_may_send);
	tcase_add_test(tc, test_hash_password);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
