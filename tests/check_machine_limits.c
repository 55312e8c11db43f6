/*
 * check_machine_limits.c - unit tests for src/machine_limits.c: the open
 * files max_connections needs, the listen backlog it gives (floor, and
 * the kernel's cap), and raising RLIMIT_NOFILE: the soft limit within the
 * hard one, never lowering, and a clear failure when the hard limit is
 * too low and cannot be raised (checked in a child that gives up root).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "machine_limits.h"

START_TEST(test_fds_needed)
{
	/* two per connection, four per worker, 64 of its own */
	ck_assert_uint_eq(machine_fds_needed(256, 32), 512 + 128 + 64);
	ck_assert_uint_eq(machine_fds_needed(2048, 32), 4096 + 128 + 64);
	ck_assert_uint_eq(machine_fds_needed(1, 1), 2 + 4 + 64);
	ck_assert_uint_eq(machine_fds_needed(100000, 4096),
	    200000 + 16384 + 64);
	ck_assert_uint_eq(machine_fds_needed(-1, -1), 64);
}
END_TEST

START_TEST(test_backlog)
{
	/* never under the old fixed 511 */
	ck_assert_int_eq(machine_backlog(256, 4096), 511);
	ck_assert_int_eq(machine_backlog(1, -1), 511);
	/* follows max_connections */
	ck_assert_int_eq(machine_backlog(2048, 4096), 2048);
	ck_assert_int_eq(machine_backlog(2048, -1), 2048);
	/* capped by somaxconn */
	ck_assert_int_eq(machine_backlog(2048, 1024), 1024);
	ck_assert_int_eq(machine_backlog(256, 128), 128);
}
END_TEST

START_TEST(test_somaxconn)
{
	FILE *fp = fopen("/proc/sys/net/core/somaxconn", "r");
	int want = -1;

	if (fp != NULL) {
		if (fscanf(fp, "%d", &want) != 1)
			want = -1;
		fclose(fp);
	}
	ck_assert_int_eq(machine_somaxconn(), want);
}
END_TEST

START_TEST(test_raise_soft)
{
	struct rlimit rl, saved;
	char err[512] = "";

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
	ck_assert(saved.rlim_max == RLIM_INFINITY || saved.rlim_max >= 300);
	rl.rlim_cur = 100;
	rl.rlim_max = saved.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	/* raised to what is needed, within the hard limit */
	ck_assert_int_eq(machine_raise_nofile(300, err, sizeof err), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, 300);
	ck_assert(rl.rlim_max == saved.rlim_max);
	/* never lowered */
	ck_assert_int_eq(machine_raise_nofile(150, err, sizeof err), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, 300);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
}
END_TEST

/* In a child: a hard limit of 256 that an unprivileged process cannot
 * raise.  Exits 0 when machine_raise_nofile fails with the message. */
static int
child_hard_limit_too_low(void)
{
	struct rlimit rl = { 128, 256 };
	char err[512] = "";

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 10;
	if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
		return 11;
	if (machine_raise_nofile(200, err, sizeof err) != 0)
		return 12;              /* within the hard limit: fine */
	if (machine_raise_nofile(1000, err, sizeof err) != -1)
		return 13;
	if (strstr(err, "the open-file limit is 200 (hard 256) and the "
	    "hard limit cannot be raised to 1000") == NULL) {
		fprintf(stderr, "unexpected: %s\n", err);
		return 14;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur != 200 ||
	    rl.rlim_max != 256)
		return 15;              /* unchanged by the failure */
	return 0;
}

START_TEST(test_raise_hard_refused)
{
	int status = -1;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_hard_limit_too_low());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

static Suite *
machine_limits_suite(void)
{
	Suite *s = suite_create("machine_limits");
	TCase *tc = tcase_create("sizes");

	tcase_add_test(tc, test_fds_needed);
	tcase_add_test(tc, test_backlog);
	tcase_add_test(tc, test_somaxconn);
	suite_add_tcase(s, tc);
	tc = tcase_create("rlimit");
	tcase_add_test(tc, test_raise_soft);
	tcase_add_test(tc, test_raise_hard_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(machine_limits_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
