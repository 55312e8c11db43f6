/*
 * check_session_timer.c - unit tests for src/session_timer.c (the heap
 * of session deadlines) and for the worker's side of anvil's stress notes
 * (src/anvil_client.c): notes taken when the connection is readable and
 * between a request and its answer, a malformed note dropped as a lying
 * peer.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "anvil_client.h"
#include "channel.h"
#include "ipc.h"
#include "log.h"
#include "session_timer.h"
#include "util.h"

/* ----------------------------------------------------------- the heap */

START_TEST(test_timer_order)
{
	struct session_timer t;
	int64_t when[64];
	size_t slot, i, seen = 0;
	int64_t w, last = -1;

	session_timer_init(&t, 64);
	srandom(7);
	for (i = 0; i < 64; i++) {
		when[i] = random() % 1000;
		session_timer_set(&t, i, when[i]);
	}
	/* move some, cancel some */
	for (i = 0; i < 64; i += 3) {
		when[i] = random() % 1000;
		session_timer_set(&t, i, when[i]);
	}
	for (i = 1; i < 64; i += 5) {
		session_timer_cancel(&t, i);
		when[i] = -1;
	}
	while (session_timer_first(&t, &slot, &w)) {
		ck_assert_int_ge(w, last);
		ck_assert_int_eq(w, when[slot]);
		last = w;
		session_timer_cancel(&t, slot);
		when[slot] = -2;
		seen++;
	}
	for (i = 0; i < 64; i++)
		ck_assert_int_lt(when[i], 0);
	ck_assert_uint_eq(seen, 64 - 13);
	session_timer_free(&t);
}
END_TEST

START_TEST(test_timer_move_and_empty)
{
	struct session_timer t;
	size_t slot;
	int64_t w;

	session_timer_init(&t, 4);
	ck_assert_int_eq(session_timer_first(&t, &slot, &w), 0);
	session_timer_set(&t, 2, 500);
	session_timer_set(&t, 0, 900);
	session_timer_set(&t, 3, 100);
	ck_assert_int_eq(session_timer_first(&t, &slot, &w), 1);
	ck_assert_uint_eq(slot, 3);
	session_timer_set(&t, 3, 1000);    /* later: no longer first */
	ck_assert_int_eq(session_timer_first(&t, &slot, &w), 1);
	ck_assert_uint_eq(slot, 2);
	session_timer_set(&t, 0, 1);       /* earlier: first now */
	ck_assert_int_eq(session_timer_first(&t, &slot, &w), 1);
	ck_assert_uint_eq(slot, 0);
	ck_assert_int_eq(w, 1);
	session_timer_cancel(&t, 0);
	session_timer_cancel(&t, 0);       /* twice is harmless */
	session_timer_cancel(&t, 2);
	session_timer_cancel(&t, 3);
	ck_assert_int_eq(session_timer_first(&t, &slot, &w), 0);
	session_timer_free(&t);
}
END_TEST

/* ------------------------------------------------- anvil stress notes */

static const struct channel_rule worker_sends[] = {
	{ IMSG_ANVIL_CONNECT, 0 },
	{ IMSG_ANVIL_DISCONNECT, 0 },
	{ IMSG_ANVIL_MESSAGE, 0 },
	{ IMSG_ANVIL_AUTH_CHECK, 0 },
	{ IMSG_ANVIL_AUTH_FAILED, 0 },
	{ 0, 0 }
};

static char sock_path[108];

/* What the anvil client's callback heard last; -1: nothing. */
struct heard {
	uint32_t owner;
	int result;
};
static struct heard answer = { 0, -1 };

static void
on_answer(void *arg, uint32_t owner, int result)
{
	struct heard *h = arg;

	h->owner = owner;
	h->result = result;
}

static int
listen_unix(void)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sock_path, sizeof(sock_path), "/tmp/ferry-check-anvil-%ld",
	    (long)getpid());
	unlink(sock_path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, sock_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

static void
send_stress(struct channel *ch, uint8_t on, uint32_t secs)
{
	struct ipc_out *m = channel_begin(ch, IMSG_ANVIL_STRESS);

	ipc_add_u8(m, on);
	ipc_add_u32(m, secs);
	ck_assert_int_eq(channel_end(ch), 0);
	ck_assert_int_eq(channel_flush_wait(ch, now_ms() + 2000), 0);
}

START_TEST(test_stress_when_readable)
{
	struct anvil_client ac;
	struct channel srv;
	int lfd = listen_unix(), fd;

	anvil_client_init(&ac, sock_path, on_answer, &answer);
	anvil_client_keep_connected(&ac);
	ck_assert_int_ge(anvil_client_fd(&ac), 0);
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	channel_init(&srv, fd, "worker", worker_sends, 1024, 0);

	send_stress(&srv, 1, 10);
	usleep(50000);
	anvil_client_io(&ac, POLLIN);
	ck_assert_int_eq(ac.stress, 1);
	ck_assert_uint_eq(ac.stress_timeout, 10);
	ck_assert_int_eq(ac.stress_changed, 1);
	ac.stress_changed = 0;

	send_stress(&srv, 0, 0);
	usleep(50000);
	anvil_client_io(&ac, POLLIN);
	ck_assert_int_eq(ac.stress, 0);
	ck_assert_int_eq(ac.stress_changed, 1);

	/* "on" with no timeout is a lie: the connection goes */
	send_stress(&srv, 1, 0);
	usleep(50000);
	anvil_client_io(&ac, POLLIN);
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	ck_assert_int_eq(ac.stress, 0);

	channel_free(&srv);
	anvil_client_close(&ac);
	close(lfd);
	unlink(sock_path);
}
END_TEST

/* The end of the connection ends stress mode with it. */
START_TEST(test_stress_ends_with_anvil)
{
	struct anvil_client ac;
	struct channel srv;
	int lfd = listen_unix(), fd;

	anvil_client_init(&ac, sock_path, on_answer, &answer);
	anvil_client_keep_connected(&ac);
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	channel_init(&srv, fd, "worker", worker_sends, 1024, 0);
	send_stress(&srv, 1, 5);
	usleep(50000);
	anvil_client_io(&ac, POLLIN);
	ck_assert_int_eq(ac.stress, 1);
	ac.stress_changed = 0;
	channel_free(&srv);
	usleep(50000);
	anvil_client_io(&ac, POLLIN);
	ck_assert_int_eq(ac.stress, 0);
	ck_assert_int_eq(ac.stress_changed, 1);
	ck_assert_int_lt(anvil_client_fd(&ac), 0);
	anvil_client_close(&ac);
	close(lfd);
	unlink(sock_path);
}
END_TEST

/* A note that comes between a question and its answer is taken, and the
 * answer still counts. */
START_TEST(test_stress_before_answer)
{
	struct anvil_client ac;
	int lfd = listen_unix(), status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct channel srv;
		struct ipc_in in;
		struct ipc_out *m;
		uint32_t seq;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			_exit(2);
		channel_init(&srv, fd, "worker", worker_sends, 1024, 0);
		if (channel_read_wait(&srv, &in, now_ms() + 3000) < 0 ||
		    in.type != IMSG_ANVIL_MESSAGE ||
		    ipc_get_u32(&in, &seq) < 0)
			_exit(3);
		send_stress(&srv, 1, 7);
		m = channel_begin(&srv, IMSG_ANVIL_ANSWER);
		ipc_add_u32(m, seq);
		ipc_add_u32(m, ANVIL_MESSAGE_RATE);
		ipc_add_u32(m, 0);        /* no messages granted */
		(void)channel_end(&srv);
		/* and one more note after the answer, in the same write */
		m = channel_begin(&srv, IMSG_ANVIL_STRESS);
		ipc_add_u8(m, 1);
		ipc_add_u32(m, 8);
		(void)channel_end(&srv);
		if (channel_flush_wait(&srv, now_ms() + 2000) < 0)
			_exit(4);
		usleep(200000);
		_exit(0);
	}
	anvil_client_init(&ac, sock_path, on_answer, &answer);
	answer.result = -1;
	ck_assert_int_eq(anvil_ask_message(&ac, 3, "192.0.2.1"), 1);
	while (answer.result < 0 && anvil_client_fd(&ac) >= 0) {
		struct pollfd pfd = { anvil_client_fd(&ac),
		    anvil_client_events(&ac), 0 };

		ck_assert_int_eq(poll(&pfd, 1, 3000), 1);
		anvil_client_io(&ac, pfd.revents);
	}
	ck_assert_uint_eq(answer.owner, 3);
	ck_assert_int_eq(answer.result, ANVIL_MESSAGE_RATE);
	ck_assert_int_eq(ac.stress, 1);
	ck_assert_int_eq(ac.stress_changed, 1);
	ck_assert(ac.stress_timeout == 7 || ac.stress_timeout == 8);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	anvil_client_close(&ac);
	close(lfd);
	unlink(sock_path);
}
END_TEST

static Suite *
session_timer_suite(void)
{
	Suite *s = suite_create("session_timer");
	TCase *tc = tcase_create("heap");

	tcase_add_test(tc, test_timer_order);
	tcase_add_test(tc, test_timer_move_and_empty);
	suite_add_tcase(s, tc);
	tc = tcase_create("stress");
	tcase_add_test(tc, test_stress_when_readable);
	tcase_add_test(tc, test_stress_ends_with_anvil);
	tcase_add_test(tc, test_stress_before_answer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(session_timer_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	log_init("check_session_timer", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
