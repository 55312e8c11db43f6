/*
 * check_resolve_client.c - unit tests for src/resolve_client.c, the
 * worker's side of ferry-resolve, against a fake ferry-resolve on a unix
 * socket: answers taken in any order, each to its owner; a name that is
 * not a host name, or an answer nobody asked for, is ferry-resolve lying
 * (the connection goes, every question waiting is unknown); a question
 * past its deadline is unknown; with client_names off nothing is asked;
 * an answer ferry-resolve lets the worker keep is given again unasked.
 */
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "channel.h"
#include "ipc.h"
#include "log.h"
#include "resolve.h"
#include "resolve_client.h"
#include "util.h"

static const struct channel_rule worker_sends[] = {
	{ IMSG_RESOLVE_QUERY, 0 },
	{ 0, 0 }
};

static char sock_path[108];

/* What the callback heard, per owner. */
#define OWNERS 8
static struct {
	int heard;
	char name[300];
} told[OWNERS];

static void
on_name(void *arg, uint32_t owner, const char *name)
{
	(void)arg;
	ck_assert_uint_lt(owner, OWNERS);
	told[owner].heard++;
	snprintf(told[owner].name, sizeof(told[owner].name), "%s", name);
}

static int
listen_unix(void)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sock_path, sizeof(sock_path), "/tmp/ferry-check-resolve-%ld",
	    (long)getpid());
	unlink(sock_path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, sock_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	memset(told, 0, sizeof(told));
	return fd;
}

/* The fake ferry-resolve's side of the first connection. */
static void
accept_worker(int lfd, struct channel *srv)
{
	int fd = accept(lfd, NULL, NULL);

	ck_assert_int_ge(fd, 0);
	fd_set_nonblock(fd, 1);
	channel_init(srv, fd, "worker", worker_sends, 1024, 0);
}

/* The next query it got: its seq, and its address in addr. */
static uint32_t
read_query(struct channel *srv, char *addr, size_t addrlen)
{
	struct ipc_in in;
	char *a = NULL;
	uint32_t seq;
	int got;

	usleep(20000);
	(void)channel_fill(srv);
	got = channel_next(srv, &in);
	ck_assert_int_eq(got, 1);
	ck_assert_int_eq(in.type, IMSG_RESOLVE_QUERY);
	ck_assert_int_eq(ipc_get_u32(&in, &seq), 0);
	ck_assert_int_eq(ipc_get_str(&in, &a, 64), 0);
	ck_assert_int_eq(ipc_end(&in), 0);
	snprintf(addr, addrlen, "%s", a);
	free(a);
	return seq;
}

static void
send_answer_keep(struct channel *srv, uint32_t seq, const char *name,
    uint32_t keep_ms)
{
	struct ipc_out *m = channel_begin(srv, IMSG_RESOLVE_ANSWER);

	ipc_add_u32(m, seq);
	ipc_add_str(m, name);
	ipc_add_u32(m, keep_ms);
	ck_assert_int_eq(channel_end(srv), 0);
	ck_assert_int_eq(channel_flush_wait(srv, now_ms() + 2000), 0);
	usleep(20000);
}

static void
send_answer(struct channel *srv, uint32_t seq, const char *name)
{
	send_answer_keep(srv, seq, name, 0);
}

START_TEST(test_answers_in_any_order)
{
	struct resolve_client rc;
	struct channel srv;
	char addr[64];
	uint32_t s1, s2, s3;
	int lfd = listen_unix();

	resolve_client_init(&rc, sock_path, 2, on_name, NULL);
	ck_assert_int_eq(resolve_ask(&rc, 1, "192.0.2.1"), 1);
	ck_assert_int_eq(resolve_ask(&rc, 2, "2001:db8::2"), 1);
	ck_assert_int_eq(resolve_ask(&rc, 3, "192.0.2.3"), 1);
	ck_assert_int_ge(resolve_client_fd(&rc), 0);
	/* a question waits a margin beyond ferry-resolve's own bound */
	ck_assert_int_ge(resolve_client_deadline(&rc), now_ms() + 2000);
	ck_assert_int_le(resolve_client_deadline(&rc),
	    now_ms() + 2000 + RESOLVE_MARGIN_MS);
	accept_worker(lfd, &srv);
	s1 = read_query(&srv, addr, sizeof(addr));
	ck_assert_str_eq(addr, "192.0.2.1");
	s2 = read_query(&srv, addr, sizeof(addr));
	ck_assert_str_eq(addr, "2001:db8::2");
	s3 = read_query(&srv, addr, sizeof(addr));
	ck_assert_str_eq(addr, "192.0.2.3");

	/* the second lookup ends first */
	send_answer(&srv, s2, "two.example");
	resolve_client_io(&rc, POLLIN);
	ck_assert_int_eq(told[2].heard, 1);
	ck_assert_str_eq(told[2].name, "two.example");
	ck_assert_int_eq(told[1].heard, 0);

	/* the third one's owner went away: its answer is taken, unheard */
	resolve_client_forget(&rc, 3);
	send_answer(&srv, s3, "three.example");
	send_answer(&srv, s1, "");
	resolve_client_io(&rc, POLLIN);
	ck_assert_int_eq(told[1].heard, 1);
	ck_assert_str_eq(told[1].name, "");
	ck_assert_int_eq(told[3].heard, 0);
	ck_assert_int_ge(resolve_client_fd(&rc), 0);
	ck_assert_int_eq(resolve_client_deadline(&rc), 0);

	channel_free(&srv);
	resolve_client_close(&rc);
	close(lfd);
	unlink(sock_path);
}
END_TEST

/* An answer that is not a host name, or nobody's, is ferry-resolve
 * lying: the connection goes and everything waiting is unknown. */
static void
lie(const char *name, int wrong_seq)
{
	struct resolve_client rc;
	struct channel srv;
	char addr[64];
	uint32_t s1;
	int lfd = listen_unix();

	resolve_client_init(&rc, sock_path, 2, on_name, NULL);
	ck_assert_int_eq(resolve_ask(&rc, 1, "192.0.2.1"), 1);
	ck_assert_int_eq(resolve_ask(&rc, 2, "192.0.2.2"), 1);
	accept_worker(lfd, &srv);
	s1 = read_query(&srv, addr, sizeof(addr));
	send_answer(&srv, wrong_seq ? s1 + 100 : s1, name);
	resolve_client_io(&rc, POLLIN);
	ck_assert_int_lt(resolve_client_fd(&rc), 0);
	ck_assert_int_eq(told[1].heard, 1);
	ck_assert_str_eq(told[1].name, "");
	ck_assert_int_eq(told[2].heard, 1);
	ck_assert_str_eq(told[2].name, "");
	ck_assert_int_eq(resolve_client_deadline(&rc), 0);
	/* and for a while nothing is asked: unknown at once */
	ck_assert_int_eq(resolve_ask(&rc, 3, "192.0.2.3"), 0);

	channel_free(&srv);
	resolve_client_close(&rc);
	close(lfd);
	unlink(sock_path);
}

START_TEST(test_name_with_line_break_is_a_lie)
{
	lie("evil.example\r\nX-Injected: yes", 0);
}
END_TEST

START_TEST(test_name_with_brackets_is_a_lie)
{
	lie("evil.example [192.0.2.9]", 0);
}
END_TEST

START_TEST(test_numeric_name_is_a_lie)
{
	lie("192.0.2.9", 0);
}
END_TEST

START_TEST(test_answer_nobody_asked_for)
{
	lie("fine.example", 1);
}
END_TEST

START_TEST(test_deadline_unknown)
{
	struct resolve_client rc;
	int lfd = listen_unix();
	int64_t d;

	resolve_client_init(&rc, sock_path, 1, on_name, NULL);
	ck_assert_int_eq(resolve_ask(&rc, 4, "192.0.2.4"), 1);
	d = resolve_client_deadline(&rc);
	ck_assert_int_gt(d, 0);
	resolve_client_tick(&rc, d - 1);
	ck_assert_int_eq(told[4].heard, 0);
	resolve_client_tick(&rc, d);
	ck_assert_int_eq(told[4].heard, 1);
	ck_assert_str_eq(told[4].name, "");
	ck_assert_int_lt(resolve_client_fd(&rc), 0);
	resolve_client_close(&rc);
	close(lfd);
	unlink(sock_path);
}
END_TEST

/* An answer ferry-resolve lets the worker keep is given again without
 * a question, names and definite "no name" alike, until it expires; one
 * it may not keep (a timeout) is asked again. */
START_TEST(test_kept_answers)
{
	struct resolve_client rc;
	struct channel srv;
	char addr[64];
	uint32_t s1, s2, s3;
	int lfd = listen_unix();
	size_t i;

	resolve_client_init(&rc, sock_path, 2, on_name, NULL);
	ck_assert_int_eq(resolve_ask(&rc, 1, "192.0.2.1"), 1);
	ck_assert_int_eq(resolve_ask(&rc, 2, "192.0.2.2"), 1);
	ck_assert_int_eq(resolve_ask(&rc, 3, "192.0.2.3"), 1);
	accept_worker(lfd, &srv);
	s1 = read_query(&srv, addr, sizeof(addr));
	s2 = read_query(&srv, addr, sizeof(addr));
	s3 = read_query(&srv, addr, sizeof(addr));
	send_answer_keep(&srv, s1, "one.example", 5000);
	send_answer_keep(&srv, s2, "", 5000);
	send_answer_keep(&srv, s3, "", 0);
	resolve_client_io(&rc, POLLIN);
	ck_assert_int_eq(told[1].heard, 1);
	ck_assert_int_eq(told[2].heard, 1);
	ck_assert_int_eq(told[3].heard, 1);

	/* kept: answered from within resolve_ask, nothing sent */
	ck_assert_int_eq(resolve_ask(&rc, 4, "192.0.2.1"), 1);
	ck_assert_int_eq(told[4].heard, 1);
	ck_assert_str_eq(told[4].name, "one.example");
	ck_assert_int_eq(resolve_ask(&rc, 5, "192.0.2.2"), 1);
	ck_assert_int_eq(told[5].heard, 1);
	ck_assert_str_eq(told[5].name, "");
	ck_assert_int_eq(resolve_client_deadline(&rc), 0);
	/* not kept: asked again */
	ck_assert_int_eq(resolve_ask(&rc, 6, "192.0.2.3"), 1);
	ck_assert_int_eq(told[6].heard, 0);
	ck_assert_uint_gt(resolve_client_deadline(&rc), 0);
	read_query(&srv, addr, sizeof(addr));
	ck_assert_str_eq(addr, "192.0.2.3");
	/* expired: asked again */
	for (i = 0; i < RESOLVE_KEPT; i++)
		rc.kept[i].expires = now_ms() - 1;
	ck_assert_int_eq(resolve_ask(&rc, 7, "192.0.2.1"), 1);
	ck_assert_int_eq(told[7].heard, 0);
	read_query(&srv, addr, sizeof(addr));
	ck_assert_str_eq(addr, "192.0.2.1");

	channel_free(&srv);
	resolve_client_close(&rc);
	close(lfd);
	unlink(sock_path);
}
END_TEST

/* More addresses than entries: the one that expires first gives way, and
 * a long keep from a lying process is cut to RESOLVE_KEEP_MS. */
START_TEST(test_kept_bounded)
{
	struct resolve_client rc;
	struct channel srv;
	char addr[64], a[64];
	uint32_t seq;
	int lfd = listen_unix();
	int i;

	resolve_client_init(&rc, sock_path, 2, on_name, NULL);
	for (i = 0; i < RESOLVE_KEPT + 8; i++) {
		struct ipc_out *m;

		snprintf(a, sizeof(a), "198.51.100.%d", i);
		ck_assert_int_eq(resolve_ask(&rc, 0, a), 1);
		if (i == 0)
			accept_worker(lfd, &srv);
		/* answered in turn, so that each answer is older than the
		 * next; no pause between them */
		ck_assert_int_eq(channel_flush_wait(&rc.ch, now_ms() + 2000),
		    0);
		do {
			struct ipc_in in;
			char *q = NULL;

			(void)channel_fill(&srv);
			if (channel_next(&srv, &in) != 1)
				continue;
			ck_assert_int_eq(ipc_get_u32(&in, &seq), 0);
			ck_assert_int_eq(ipc_get_str(&in, &q, 64), 0);
			snprintf(addr, sizeof(addr), "%s", q);
			free(q);
			break;
		} while (1);
		ck_assert_str_eq(addr, a);
		m = channel_begin(&srv, IMSG_RESOLVE_ANSWER);
		ipc_add_u32(m, seq);
		ipc_add_str(m, "n.example");
		ipc_add_u32(m, 0xffffffffu);
		ck_assert_int_eq(channel_end(&srv), 0);
		ck_assert_int_eq(channel_flush_wait(&srv, now_ms() + 2000), 0);
		while (resolve_client_deadline(&rc) != 0) {
			struct pollfd p = { resolve_client_fd(&rc), POLLIN, 0 };

			ck_assert_int_eq(poll(&p, 1, 2000), 1);
			resolve_client_io(&rc, p.revents);
		}
		usleep(1000);   /* the next answer expires later */
	}
	for (i = 0; i < RESOLVE_KEPT; i++)
		ck_assert_int_le(rc.kept[i].expires,
		    now_ms() + RESOLVE_KEEP_MS);
	/* the newest are kept, the oldest gave way */
	told[1].heard = 0;
	snprintf(a, sizeof(a), "198.51.100.%d", RESOLVE_KEPT + 7);
	ck_assert_int_eq(resolve_ask(&rc, 1, a), 1);
	ck_assert_int_eq(told[1].heard, 1);
	told[2].heard = 0;
	ck_assert_int_eq(resolve_ask(&rc, 2, "198.51.100.0"), 1);
	ck_assert_int_eq(told[2].heard, 0);

	channel_free(&srv);
	resolve_client_close(&rc);
	close(lfd);
	unlink(sock_path);
}
END_TEST

START_TEST(test_unreachable_or_off)
{
	struct resolve_client rc;

	memset(told, 0, sizeof(told));
	resolve_client_init(&rc, NULL, 2, on_name, NULL);
	ck_assert_int_eq(resolve_ask(&rc, 1, "192.0.2.1"), 0);
	ck_assert_int_lt(resolve_client_fd(&rc), 0);
	resolve_client_close(&rc);

	resolve_client_init(&rc, "/nonexistent/resolve.sock", 2, on_name,
	    NULL);
	ck_assert_int_eq(resolve_ask(&rc, 1, "192.0.2.1"), 0);
	ck_assert_int_eq(told[1].heard, 0);
	ck_assert_int_eq(resolve_client_deadline(&rc), 0);
	resolve_client_close(&rc);
}
END_TEST

static Suite *
resolve_client_suite(void)
{
	Suite *s = suite_create("resolve_client");
	TCase *tc = tcase_create("answers");

	tcase_add_test(tc, test_answers_in_any_order);
	tcase_add_test(tc, test_name_with_line_break_is_a_lie);
	tcase_add_test(tc, test_name_with_brackets_is_a_lie);
	tcase_add_test(tc, test_numeric_name_is_a_lie);
	tcase_add_test(tc, test_answer_nobody_asked_for);
	tcase_add_test(tc, test_deadline_unknown);
	tcase_add_test(tc, test_kept_answers);
	tcase_add_test(tc, test_kept_bounded);
	tcase_add_test(tc, test_unreachable_or_off);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(resolve_client_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	log_init("check_resolve_client", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
