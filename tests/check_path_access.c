/*
 * check_path_access.c - path_searchable(): a directory under one that
 * others cannot search (a home of mode 0700) is unreachable for them,
 * and the blocking directory is named; reachable once it opens.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "log.h"
#include "path_access.h"

static char top[64], inner[128];

static void
setup(void)
{
	snprintf(top, sizeof(top), "/tmp/check-path-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(inner, sizeof(inner), "%s/a/b", top);
}

static void
make_tree(mode_t top_mode)
{
	char a[128];

	snprintf(a, sizeof(a), "%s/a", top);
	ck_assert_int_eq(mkdir(a, 0755), 0);
	ck_assert_int_eq(mkdir(inner, 0755), 0);
	ck_assert_int_eq(chmod(top, top_mode), 0);
}

static void
teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	ck_assert_int_eq(system(cmd), 0);
}

/* a uid and gid that own nothing here */
#define OTHER_UID ((uid_t)4242424)
#define OTHER_GID ((gid_t)4242424)

START_TEST(test_closed_home_blocks)
{
	char blocker[256];
	mode_t mode = 0;

	make_tree(0700);
	ck_assert_int_eq(path_searchable(inner, OTHER_UID, OTHER_GID,
	    blocker, sizeof(blocker), &mode), -1);
	ck_assert_str_eq(blocker, top);
	ck_assert_int_eq(mode, 0700);
	/* its owner and root get through */
	ck_assert_int_eq(path_searchable(inner, getuid(), getgid(), blocker,
	    sizeof(blocker), NULL), 0);
	ck_assert_int_eq(path_searchable(inner, 0, 0, blocker,
	    sizeof(blocker), NULL), 0);
}
END_TEST

START_TEST(test_open_path_and_group)
{
	char blocker[256];

	make_tree(0711);
	ck_assert_int_eq(path_searchable(inner, OTHER_UID, OTHER_GID,
	    blocker, sizeof(blocker), NULL), 0);
	/* group search only: the group passes, others do not (giving the
	 * directory to another group needs root) */
	if (geteuid() != 0)
		return;
	ck_assert_int_eq(chmod(top, 0710), 0);
	ck_assert_int_eq(chown(top, (uid_t)-1, OTHER_GID), 0);
	ck_assert_int_eq(path_searchable(inner, OTHER_UID + 1, OTHER_GID,
	    blocker, sizeof(blocker), NULL), 0);
	ck_assert_int_eq(path_searchable(inner, OTHER_UID + 1,
	    OTHER_GID + 1, blocker, sizeof(blocker), NULL), -1);
	ck_assert_str_eq(blocker, top);
}
END_TEST

START_TEST(test_missing_path)
{
	char blocker[256], missing[160];

	make_tree(0755);
	snprintf(missing, sizeof(missing), "%s/none", top);
	ck_assert_int_eq(path_searchable(missing, 0, 0, blocker,
	    sizeof(blocker), NULL), -1);
	ck_assert_ptr_nonnull(strstr(blocker, "none"));
}
END_TEST

static Suite *
path_access_suite(void)
{
	Suite *s = suite_create("path_access");
	TCase *tc = tcase_create("search");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_closed_home_blocks);
	tcase_add_test(tc, test_missing_path);
	suite_add_tcase(s, tc);
	tc = tcase_create("groups");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_path_and_group);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(path_access_suite());
	int failed;

	log_init("check_path_access", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
