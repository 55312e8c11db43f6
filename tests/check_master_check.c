/*
 * check_master_check.c - the master's side of ferry-check
 * (master_check.c), with stand-in checkers written as shell scripts: the
 * text arrives at descriptor 3 and the DKIM keys' copy comes back from
 * 4; "ok" passes, "refused: why" refuses with why; a checker that ends
 * without a verdict, says too much, or cannot be run refuses; one past
 * its deadline is killed and refuses; a check cleared while it runs
 * kills its checker.
 */
#include "autoconfig.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "log.h"
#include "master_check.h"
#include "util.h"

static char dir[64], prog[128];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check-master-check-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(prog, sizeof(prog), "%s/ferry-check", dir);
}

static void
teardown(void)
{
	unlink(prog);
	rmdir(dir);
}

/* The stand-in checker: a shell script of body. */
static void
checker(const char *body)
{
	FILE *fp = fopen(prog, "w");

	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(prog, 0755), 0);
}

/* Starts a check of "the text" and waits for its verdict. */
static int
run(struct master_check *c, char *err, size_t errlen)
{
	int rc;

	err[0] = '\0';
	ck_assert_int_eq(master_check_start(c, prog, "/etc/x.conf",
	    xstrdup("the text"), 8, err, errlen), 0);
	ck_assert_int_gt(c->pid, 0);
	rc = master_check_wait(c, err, errlen);
	ck_assert_int_eq(c->pid, 0);
	return rc;
}

START_TEST(test_program_path)
{
	char buf[256];

	master_check_program("/opt/ferry/lib", buf, sizeof(buf));
	ck_assert_str_eq(buf, "/opt/ferry/lib/ferry-check");
	master_check_program(NULL, buf, sizeof(buf));
	ck_assert(strlen(buf) > strlen("/ferry-check") &&
	    strcmp(buf + strlen(buf) - 12, "/ferry-check") == 0);
}
END_TEST

START_TEST(test_passes_with_text_and_keys)
{
	struct master_check c;
	char err[256], keys[16];
	ssize_t n;

	checker("[ \"$1 $2 $3\" = \"--for-master -f /etc/x.conf\" ] || exit 1\n"
	    "[ \"$(cat <&3)\" = \"the text\" ] || exit 1\n"
	    "printf 'PEM BYTES' >&4\n"
	    "echo ok");
	ck_assert_msg(run(&c, err, sizeof(err)) == 0, "%s", err);
	/* the keys' copy is the caller's to pass on */
	n = pread(c.keys_fd, keys, sizeof(keys) - 1, 0);
	ck_assert_int_eq(n, 9);
	keys[n] = '\0';
	ck_assert_str_eq(keys, "PEM BYTES");
	ck_assert_str_eq(c.text, "the text");
	master_check_clear(&c);
	ck_assert_int_eq(c.keys_fd, -1);
	ck_assert_ptr_null(c.text);
}
END_TEST

START_TEST(test_refusals)
{
	struct master_check c;
	char err[256];

	checker("echo 'refused: /etc/x.conf:3: tls { cert } cannot be read'");
	ck_assert_int_eq(run(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/etc/x.conf:3: tls { cert } cannot be read");
	master_check_clear(&c);

	/* no verdict: it crashed, or is not ferry-check */
	checker("exit 0");
	ck_assert_int_eq(run(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "ended without a verdict") != NULL, "%s",
	    err);
	master_check_clear(&c);
	checker("echo 'ok but more'");
	ck_assert_int_eq(run(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "ended without a verdict") != NULL, "%s",
	    err);
	master_check_clear(&c);
	/* more than a verdict: killed, refused */
	checker("while :; do echo okokokokokokokokokokokokokokokok; done");
	ck_assert_int_eq(run(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "ended without a verdict") != NULL, "%s",
	    err);
	master_check_clear(&c);

	/* no such program */
	unlink(prog);
	ck_assert_int_eq(run(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "cannot run") != NULL &&
	    strstr(err, prog) != NULL, "%s", err);
	master_check_clear(&c);
}
END_TEST

START_TEST(test_deadline_kills)
{
	struct master_check c;
	char err[256];
	pid_t pid;
	int status;

	checker("exec sleep 60");
	ck_assert_int_eq(master_check_start(&c, prog, "/etc/x.conf",
	    xstrdup("t"), 1, err, sizeof(err)), 0);
	pid = c.pid;
	ck_assert_int_eq(c.deadline - now_ms() > MASTER_CHECK_TIMEOUT_MS -
	    5000, 1);
	ck_assert_int_eq(master_check_poll(&c, err, sizeof(err)), 1);
	c.deadline = now_ms() - 1;
	ck_assert_int_eq(master_check_poll(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "took more than 30 s and was killed") !=
	    NULL, "%s", err);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	master_check_clear(&c);

	/* cleared while it runs: killed */
	ck_assert_int_eq(master_check_start(&c, prog, "/etc/x.conf",
	    xstrdup("t"), 1, err, sizeof(err)), 0);
	pid = c.pid;
	master_check_clear(&c);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_int_eq(c.pid, 0);
	ck_assert_int_eq(c.verdict_fd, -1);
}
END_TEST

static Suite *
master_check_suite(void)
{
	Suite *s = suite_create("master_check");
	TCase *tc = tcase_create("checker");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_program_path);
	tcase_add_test(tc, test_passes_with_text_and_keys);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_deadline_kills);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(master_check_suite());
	int failed;

	log_init("check_master_check", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
