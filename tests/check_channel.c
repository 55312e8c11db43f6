/*
 * check_channel.c - unit tests for src/channel.c over real socketpairs
 * and pipes: frames built in place, partial frames and frames split
 * across reads, the size cap, the peer's table of message types, the
 * write buffer's backpressure, blocking round trips with deadlines, and
 * descriptors passed with a frame on a record channel.
 */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "channel.h"
#include "ipc.h"
#include "log.h"
#include "util.h"

static const struct channel_rule tx_rules[] = {
	{ IMSG_TX_BEGIN, 0 },
	{ IMSG_TX_DATA, 0 },
	{ 0, 0 }
};

static const struct channel_rule note_rules[] = {
	{ IMSG_NOTE_POOL, 0 },
	{ IMSG_NOTE_RELOAD, CHANNEL_RULE_FD },
	{ 0, 0 }
};

/* A non-blocking socketpair of the given type. */
static void
pair(int type, int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	fd_set_nonblock(sv[0], 1);
	fd_set_nonblock(sv[1], 1);
}

/* Bytes of one frame of type holding u32 v and data of n bytes. */
static uint8_t *
make_frame(int type, uint32_t v, size_t n, size_t *lenp)
{
	struct ipc_out m;
	uint8_t *data = calloc(1, n ? n : 1), *copy;
	const uint8_t *f;

	memset(&m, 0, sizeof(m));
	memset(data, 'x', n);
	ipc_out_init(&m, type);
	ipc_add_u32(&m, v);
	ipc_add_data(&m, data, n);
	f = ipc_out_finish(&m, lenp);
	copy = malloc(*lenp);
	memcpy(copy, f, *lenp);
	ipc_out_free(&m);
	free(data);
	return copy;
}

static void
write_bytes(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

/* ----------------------------------------------------------- framing */

/* Frames built in place in the write buffer arrive whole and in order,
 * several in one write. */
START_TEST(test_build_in_place_roundtrip)
{
	struct channel a, b;
	struct ipc_in in;
	uint32_t v;
	const uint8_t *p;
	size_t len;
	int sv[2], i;

	pair(SOCK_STREAM, sv);
	channel_init(&a, sv[0], "test peer a", NULL, 0, 0);
	channel_init(&b, sv[1], "test peer b", tx_rules, 1024, 0);
	for (i = 0; i < 3; i++) {
		struct ipc_out *m = channel_begin(&a, IMSG_TX_DATA);

		ipc_add_u32(m, (uint32_t)i);
		ipc_add_data(m, "chunk", 5);
		ck_assert_int_eq(channel_end(&a), 0);
	}
	ck_assert_uint_eq(channel_pending(&a),
	    3 * (IPC_HEADER_SIZE + 4 + 4 + 5));
	ck_assert_int_eq(channel_flush(&a), 0);
	ck_assert_uint_eq(channel_pending(&a), 0);
	ck_assert_int_gt(channel_fill(&b), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(channel_next(&b, &in), 1);
		ck_assert_int_eq(in.type, IMSG_TX_DATA);
		ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
		ck_assert_uint_eq(v, (uint32_t)i);
		ck_assert_int_eq(ipc_get_data(&in, &p, &len), 0);
		ck_assert_uint_eq(len, 5);
		ck_assert_int_eq(memcmp(p, "chunk", 5), 0);
		ck_assert_int_eq(ipc_end(&in), 0);
	}
	ck_assert_int_eq(channel_next(&b, &in), 0);
	ck_assert_int_eq(channel_fill(&b), 0);   /* nothing more: EAGAIN */
	channel_free(&a);
	channel_free(&b);
}
END_TEST

/* A frame that arrives a byte at a time is "not yet" until its last
 * byte, then whole; the same for a frame split at every point. */
START_TEST(test_partial_and_split_frames)
{
	struct channel b;
	struct ipc_in in;
	size_t len, cut, i;
	uint8_t *f = make_frame(IMSG_TX_DATA, 7, 100, &len);
	int sv[2];

	pair(SOCK_STREAM, sv);
	channel_init(&b, sv[1], "test peer", tx_rules, 1024, 0);
	for (i = 0; i < len; i++) {
		ck_assert_int_eq(channel_next(&b, &in), 0);
		write_bytes(sv[0], f + i, 1);
		ck_assert_int_eq(channel_fill(&b), 1);
	}
	ck_assert_int_eq(channel_next(&b, &in), 1);
	ck_assert_uint_eq(in.left, len - IPC_HEADER_SIZE);
	ck_assert_int_eq(channel_next(&b, &in), 0);

	for (cut = 1; cut < len; cut++) {
		uint32_t v;

		write_bytes(sv[0], f, cut);
		ck_assert_int_gt(channel_fill(&b), 0);
		ck_assert_int_eq(channel_next(&b, &in), 0);
		write_bytes(sv[0], f + cut, len - cut);
		/* the rest, and the start of the next frame, in one read */
		write_bytes(sv[0], f, 3);
		ck_assert_int_gt(channel_fill(&b), 0);
		ck_assert_int_eq(channel_next(&b, &in), 1);
		ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
		ck_assert_uint_eq(v, 7);
		ck_assert_int_eq(channel_next(&b, &in), 0);
		write_bytes(sv[0], f + 3, len - 3);
		ck_assert_int_gt(channel_fill(&b), 0);
		ck_assert_int_eq(channel_next(&b, &in), 1);
		ck_assert_int_eq(channel_next(&b, &in), 0);
	}
	ck_assert_int_ge(b.fd, 0);
	free(f);
	channel_free(&b);
	close(sv[0]);
}
END_TEST

/* A drained channel gives its read buffer back (one waits per open SMTP
 * session on the runner's intake socket); a partial frame keeps what it
 * holds, and the channel reads on after the release. */
START_TEST(test_drained_buffer_released)
{
	struct channel b;
	struct ipc_in in;
	size_t len;
	uint8_t *f = make_frame(IMSG_TX_DATA, 9, 100, &len);
	int sv[2], round;

	pair(SOCK_STREAM, sv);
	channel_init(&b, sv[1], "test peer", tx_rules, 1024, 0);
	for (round = 0; round < 3; round++) {
		uint32_t v;

		write_bytes(sv[0], f, len);
		write_bytes(sv[0], f, 10);
		ck_assert_int_gt(channel_fill(&b), 0);
		ck_assert_int_eq(channel_next(&b, &in), 1);
		ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
		ck_assert_uint_eq(v, 9);
		/* the next frame's first bytes wait in the buffer */
		ck_assert_int_eq(channel_next(&b, &in), 0);
		ck_assert_ptr_nonnull(b.rbuf);
		write_bytes(sv[0], f + 10, len - 10);
		ck_assert_int_gt(channel_fill(&b), 0);
		ck_assert_int_eq(channel_next(&b, &in), 1);
		ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
		ck_assert_uint_eq(v, 9);
		/* all taken: the buffer goes */
		ck_assert_int_eq(channel_next(&b, &in), 0);
		ck_assert_ptr_null(b.rbuf);
		ck_assert_uint_eq(b.rcap, 0);
	}
	ck_assert_int_ge(b.fd, 0);
	free(f);
	channel_free(&b);
	close(sv[0]);
}
END_TEST

/* A frame longer than the channel's cap is a violation as soon as its
 * header is there; one exactly at the cap is fine. */
START_TEST(test_over_cap)
{
	struct channel b;
	struct ipc_in in;
	size_t len;
	uint8_t *ok = make_frame(IMSG_TX_DATA, 1, 92, &len);   /* 100 */
	uint8_t *big;
	int sv[2];

	pair(SOCK_STREAM, sv);
	channel_init(&b, sv[1], "test peer", tx_rules, 100, 0);
	write_bytes(sv[0], ok, len);
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), 1);
	ck_assert_uint_eq(in.left, 100);
	free(ok);

	big = make_frame(IMSG_TX_DATA, 1, 93, &len);            /* 101 */
	write_bytes(sv[0], big, IPC_HEADER_SIZE);   /* the header only */
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_int_eq(b.fd, -1);                 /* dropped */
	ck_assert_ptr_nonnull(strstr(b.error, "test peer broke the "
	    "protocol"));
	ck_assert_ptr_nonnull(strstr(b.error, "over the cap"));
	free(big);
	channel_free(&b);
	close(sv[0]);
}
END_TEST

/* A type missing from the peer's table is a violation, even when it is
 * a valid frame; so is a bad header. */
START_TEST(test_type_not_in_table)
{
	struct channel b;
	struct ipc_in in;
	size_t len;
	uint8_t *f = make_frame(IMSG_TX_COMMITTED, 1, 4, &len);
	uint8_t bad[IPC_HEADER_SIZE] = { 0, 0, 0, 0, 0, 1, 0, 9 };
	int sv[2];

	pair(SOCK_STREAM, sv);
	channel_init(&b, sv[1], "test peer", tx_rules, 1024, 0);
	write_bytes(sv[0], f, len);
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_int_eq(b.fd, -1);
	ck_assert_ptr_nonnull(strstr(b.error, "TX_COMMITTED is not a "
	    "message it may send"));
	/* further calls keep failing, nothing is read */
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_int_eq(channel_fill(&b), -1);
	channel_free(&b);
	close(sv[0]);

	pair(SOCK_STREAM, sv);
	channel_init(&b, sv[1], "test peer", tx_rules, 1024, 0);
	write_bytes(sv[0], bad, sizeof bad);        /* version 9 */
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "bad frame header"));
	channel_free(&b);
	close(sv[0]);
	free(f);
}
END_TEST

/* End of file is reported as such, not as a violation. */
START_TEST(test_eof)
{
	struct channel b;
	int sv[2];

	pair(SOCK_STREAM, sv);
	channel_init(&b, sv[1], "test peer", tx_rules, 1024, 0);
	close(sv[0]);
	ck_assert_int_eq(channel_fill(&b), -1);
	ck_assert_int_eq(b.eof, 1);
	ck_assert_int_ge(b.fd, 0);   /* the owner closes it */
	channel_free(&b);
}
END_TEST

/* ----------------------------------------------------- backpressure */

/* A peer that does not read: frames wait in the write buffer (flush
 * returns 0 with bytes pending), channel_end says -1 past wmax, and once
 * the peer reads, flushing drains everything in order. */
START_TEST(test_backpressure)
{
	struct channel a, b;
	struct ipc_in in;
	static uint8_t chunk[16384];
	uint32_t v, expect = 0;
	int sv[2], sent = 0, over = 0, rc;

	pair(SOCK_STREAM, sv);
	channel_init(&a, sv[0], "test writer", NULL, 0, 0);
	a.wmax = 1 << 20;
	channel_init(&b, sv[1], "test reader", tx_rules, 65536, 0);
	while (!over) {
		struct ipc_out *m = channel_begin(&a, IMSG_TX_DATA);

		ipc_add_u32(m, (uint32_t)sent++);
		ipc_add_data(m, chunk, sizeof chunk);
		if (channel_end(&a) < 0)
			over = 1;
		ck_assert_int_eq(channel_flush(&a), 0);
	}
	/* the socket is full and more than wmax waits with us */
	ck_assert_uint_gt(channel_pending(&a), a.wmax);
	while (channel_pending(&a) > 0) {
		ck_assert_int_eq(channel_flush(&a), 0);
		while ((rc = channel_fill(&b)) > 0)
			while (channel_next(&b, &in) == 1) {
				ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
				ck_assert_uint_eq(v, expect);
				expect++;
			}
		ck_assert_int_eq(rc, 0);
	}
	while (channel_fill(&b) > 0)
		while (channel_next(&b, &in) == 1) {
			ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
			ck_assert_uint_eq(v, expect++);
		}
	ck_assert_uint_eq(expect, (uint32_t)sent);
	channel_free(&a);
	channel_free(&b);
}
END_TEST

/* A write to a peer that has gone fails. */
START_TEST(test_flush_to_closed_peer)
{
	struct channel a;
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	pair(SOCK_STREAM, sv);
	close(sv[1]);
	channel_init(&a, sv[0], "test writer", NULL, 0, 0);
	ipc_add_u32(channel_begin(&a, IMSG_TX_DATA), 1);
	(void)channel_end(&a);
	ck_assert_int_eq(channel_flush(&a), -1);
	ck_assert_ptr_nonnull(strstr(a.error, "write to test writer"));
	channel_free(&a);
}
END_TEST

/* ------------------------------------------------------- blocking use */

/* Blocking round trip: what one side writes with flush_wait, the other
 * reads with read_wait; with nothing to read, read_wait times out. */
START_TEST(test_blocking_round_trip)
{
	struct channel a, b;
	struct ipc_in in;
	char *s;
	int sv[2];

	pair(SOCK_STREAM, sv);
	channel_init(&a, sv[0], "test writer", NULL, 0, 0);
	channel_init(&b, sv[1], "test reader", tx_rules, 1024, 0);
	ipc_add_str(channel_begin(&a, IMSG_TX_BEGIN), "hello");
	(void)channel_end(&a);
	ck_assert_int_eq(channel_flush_wait(&a, now_ms() + 1000), 0);
	ck_assert_int_eq(channel_read_wait(&b, &in, now_ms() + 1000), 1);
	ck_assert_int_eq(in.type, IMSG_TX_BEGIN);
	ck_assert_int_eq(ipc_get_str(&in, &s, 64), 0);
	ck_assert_str_eq(s, "hello");
	free(s);
	ck_assert_int_eq(channel_read_wait(&b, &in, now_ms() + 50), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "timeout"));
	ck_assert_int_ge(b.fd, 0);
	close(sv[0]);
	a.fd = -1;
	ck_assert_int_eq(channel_read_wait(&b, &in, now_ms() + 1000), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "closed the connection"));
	channel_free(&a);
	channel_free(&b);
}
END_TEST

/* Frames on a pipe: many writers' frames, each written whole, read as
 * a stream (the status pipe). */
START_TEST(test_pipe_stream)
{
	static const struct channel_rule status_rules[] = {
		{ IMSG_WORKER_STATUS, 0 },
		{ 0, 0 }
	};
	struct channel w, r;
	struct ipc_in in;
	uint32_t v;
	int p[2], i;

	ck_assert_int_eq(pipe(p), 0);
	fd_set_nonblock(p[0], 1);
	channel_init(&w, p[1], "test writer", NULL, 0, 0);
	channel_init(&r, p[0], "test reader", status_rules, 12, 0);
	for (i = 0; i < 10; i++) {
		struct ipc_out *m = channel_begin(&w, IMSG_WORKER_STATUS);

		ipc_add_u32(m, (uint32_t)i);
		ipc_add_u32(m, 1);
		ipc_add_u32(m, 2);
		(void)channel_end(&w);
		ck_assert_int_eq(channel_flush(&w), 0);
		ck_assert_uint_eq(channel_pending(&w), 0);
	}
	ck_assert_int_gt(channel_fill(&r), 0);
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(channel_next(&r, &in), 1);
		ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
		ck_assert_uint_eq(v, (uint32_t)i);
	}
	ck_assert_int_eq(channel_next(&r, &in), 0);
	channel_free(&w);
	channel_free(&r);
}
END_TEST

/* ------------------------------------------------------ descriptors */

/* A descriptor sent with a frame on a record channel arrives with that
 * frame; the sender keeps its own copy. */
START_TEST(test_fd_passing)
{
	struct channel a, b;
	struct ipc_in in;
	struct stat st1, st2;
	char path[] = "/tmp/check_channel.XXXXXX";
	int sv[2], fd, got;
	uint32_t v;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	pair(SOCK_SEQPACKET, sv);
	channel_init(&a, sv[0], "test master", NULL, 0, CHANNEL_RECORDS);
	channel_init(&b, sv[1], "test runner", note_rules, 64,
	    CHANNEL_RECORDS);
	/* a plain note, then one with a descriptor, then a plain one */
	ipc_add_u32(channel_begin(&a, IMSG_NOTE_POOL), 5);
	ck_assert_int_eq(channel_end(&a), 0);
	(void)channel_begin(&a, IMSG_NOTE_RELOAD);
	ck_assert_int_eq(channel_end_fd(&a, fd), 0);
	ipc_add_u32(channel_begin(&a, IMSG_NOTE_POOL), 6);
	ck_assert_int_eq(channel_end(&a), 0);
	ck_assert_int_eq(channel_flush(&a), 0);
	ck_assert_uint_eq(channel_pending(&a), 0);

	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), 1);
	ck_assert_int_eq(in.type, IMSG_NOTE_POOL);
	ck_assert_int_eq(channel_take_fd(&b), -1);
	ck_assert_int_eq(channel_next(&b, &in), 0);   /* one per record */
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), 1);
	ck_assert_int_eq(in.type, IMSG_NOTE_RELOAD);
	got = channel_take_fd(&b);
	ck_assert_int_ge(got, 0);
	ck_assert_int_eq(fstat(fd, &st1), 0);
	ck_assert_int_eq(fstat(got, &st2), 0);
	ck_assert_uint_eq(st1.st_ino, st2.st_ino);
	ck_assert_int_eq(fcntl(got, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(got);
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), 1);
	ck_assert_int_eq(ipc_get_u32(&in, &v), 0);
	ck_assert_uint_eq(v, 6);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0);   /* still ours, open */
	close(fd);
	channel_free(&a);
	channel_free(&b);
}
END_TEST

/* A frame that must carry a descriptor and does not, or a descriptor
 * that no frame asks for, is a violation. */
START_TEST(test_fd_violations)
{
	struct channel b;
	struct ipc_in in;
	size_t len;
	uint8_t *f;
	int sv[2], fd = open("/dev/null", O_RDONLY);

	pair(SOCK_SEQPACKET, sv);
	channel_init(&b, sv[1], "test runner", note_rules, 64,
	    CHANNEL_RECORDS);
	f = make_frame(IMSG_NOTE_RELOAD, 0, 0, &len);
	write_bytes(sv[0], f, len);
	free(f);
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "without its descriptor"));
	channel_free(&b);
	close(sv[0]);

	pair(SOCK_SEQPACKET, sv);
	channel_init(&b, sv[1], "test runner", note_rules, 64,
	    CHANNEL_RECORDS);
	f = make_frame(IMSG_NOTE_POOL, 0, 0, &len);
	ck_assert_int_eq(ipc_send_fd(sv[0], f, len, fd, 0), (long)len);
	free(f);
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "a descriptor no frame"));
	ck_assert_int_eq(b.in_fd, -1);   /* and it was closed */
	channel_free(&b);
	close(sv[0]);
	close(fd);
}
END_TEST

/* On a record channel a record ending inside a frame, or longer than
 * the cap, is a violation. */
START_TEST(test_record_violations)
{
	struct channel b;
	struct ipc_in in;
	size_t len;
	uint8_t *f;
	int sv[2];

	pair(SOCK_SEQPACKET, sv);
	channel_init(&b, sv[1], "test runner", note_rules, 64,
	    CHANNEL_RECORDS);
	f = make_frame(IMSG_NOTE_POOL, 0, 4, &len);
	write_bytes(sv[0], f, len - 1);
	ck_assert_int_gt(channel_fill(&b), 0);
	ck_assert_int_eq(channel_next(&b, &in), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "a record ends inside"));
	channel_free(&b);
	close(sv[0]);
	free(f);

	pair(SOCK_SEQPACKET, sv);
	channel_init(&b, sv[1], "test runner", note_rules, 64,
	    CHANNEL_RECORDS);
	f = make_frame(IMSG_NOTE_POOL, 0, 500, &len);
	write_bytes(sv[0], f, len);
	ck_assert_int_eq(channel_fill(&b), -1);
	ck_assert_ptr_nonnull(strstr(b.error, "oversized record"));
	channel_free(&b);
	close(sv[0]);
	free(f);
}
END_TEST

/* On a fatal channel (notes from the master) a violation ends the
 * process. */
START_TEST(test_fatal_violation_exits)
{
	struct channel b;
	struct ipc_in in;
	size_t len;
	uint8_t *f = make_frame(IMSG_TX_BEGIN, 0, 0, &len);
	int sv[2];

	pair(SOCK_SEQPACKET, sv);
	channel_init(&b, sv[1], "the master", note_rules, 64,
	    CHANNEL_RECORDS | CHANNEL_FATAL);
	write_bytes(sv[0], f, len);
	ck_assert_int_gt(channel_fill(&b), 0);
	(void)channel_next(&b, &in);
	ck_abort_msg("not reached");
}
END_TEST

static Suite *
channel_suite(void)
{
	Suite *s = suite_create("channel");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, test_build_in_place_roundtrip);
	tcase_add_test(tc, test_partial_and_split_frames);
	tcase_add_test(tc, test_drained_buffer_released);
	tcase_add_test(tc, test_over_cap);
	tcase_add_test(tc, test_type_not_in_table);
	tcase_add_test(tc, test_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("writing");
	tcase_add_test(tc, test_backpressure);
	tcase_add_test(tc, test_flush_to_closed_peer);
	tcase_add_test(tc, test_blocking_round_trip);
	tcase_add_test(tc, test_pipe_stream);
	suite_add_tcase(s, tc);

	tc = tcase_create("descriptors");
	tcase_add_test(tc, test_fd_passing);
	tcase_add_test(tc, test_fd_violations);
	tcase_add_test(tc, test_record_violations);
	tcase_add_exit_test(tc, test_fatal_violation_exits, 1);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(channel_suite());
	int failed;

	log_init("check_channel", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
