/*
 * check_ipc.c - unit tests for src/ipc.c and src/envelope.c: round trips
 * of every field type, frame header checks, partial frames, truncated and
 * malformed payloads, and the IMSG_TX_BEGIN envelope encoding.
 */
#include <check.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "ipc.h"

/* --- helpers --------------------------------------------------------- */

static void out_init(struct ipc_out *m, int type)
{
	memset(m, 0, sizeof *m);
	ipc_out_init(m, type);
}

/* Finishes m and returns a malloc'd copy of the frame. */
static uint8_t *finish_copy(struct ipc_out *m, size_t *lenp)
{
	const uint8_t *f = ipc_out_finish(m, lenp);
	uint8_t *copy = malloc(*lenp ? *lenp : 1);

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, f, *lenp);
	return copy;
}

/* A frame header with arbitrary values. */
static void put_header(uint8_t *b, uint32_t plen, uint16_t type,
    uint16_t version)
{
	plen = htonl(plen);
	type = htons(type);
	version = htons(version);
	memcpy(b, &plen, 4);
	memcpy(b + 4, &type, 2);
	memcpy(b + 6, &version, 2);
}

/* A frame holding just the raw payload bytes p. */
static size_t raw_frame(uint8_t *b, int type, const void *p, size_t n)
{
	put_header(b, (uint32_t)n, (uint16_t)type, IPC_VERSION);
	memcpy(b + IPC_HEADER_SIZE, p, n);
	return IPC_HEADER_SIZE + n;
}

static void frame_ok(const uint8_t *b, size_t len, struct ipc_in *in)
{
	long r = ipc_frame(b, len, in);

	ck_assert_msg(r == (long)len, "ipc_frame returned %ld for %zu", r,
	    len);
}

/* --- frames ---------------------------------------------------------- */

START_TEST(test_header_layout)
{
	struct ipc_out m;
	size_t len;
	const uint8_t *f;

	out_init(&m, IMSG_TX_FAIL);
	ipc_add_u8(&m, 0xab);
	f = ipc_out_finish(&m, &len);
	ck_assert_uint_eq(len, IPC_HEADER_SIZE + 1);
	/* length 1, type 7, version 1, all network order */
	ck_assert_int_eq(f[0], 0);
	ck_assert_int_eq(f[1], 0);
	ck_assert_int_eq(f[2], 0);
	ck_assert_int_eq(f[3], 1);
	ck_assert_int_eq(f[4], 0);
	ck_assert_int_eq(f[5], IMSG_TX_FAIL);
	ck_assert_int_eq(f[6], 0);
	ck_assert_int_eq(f[7], IPC_VERSION);
	ck_assert_int_eq(f[8], 0xab);
	ipc_out_free(&m);
	ck_assert_ptr_null(m.buf);
	ck_assert_uint_eq(m.len, 0);
	ck_assert_uint_eq(m.cap, 0);
}
END_TEST

START_TEST(test_empty_frame)
{
	struct ipc_out m;
	struct ipc_in in;
	size_t len;
	const uint8_t *f;
	uint8_t v;

	out_init(&m, IMSG_TX_ABORT);
	f = ipc_out_finish(&m, &len);
	ck_assert_uint_eq(len, IPC_HEADER_SIZE);
	frame_ok(f, len, &in);
	ck_assert_int_eq(in.type, IMSG_TX_ABORT);
	ck_assert_uint_eq(in.left, 0);
	ck_assert_int_eq(ipc_end(&in), 0);
	ck_assert_int_eq(ipc_get_u8(&in, &v), -1);
	ipc_out_free(&m);
}
END_TEST

START_TEST(test_roundtrip_all_types)
{
	static const uint8_t blob[] = { 0, 1, 2, 0xff, 0, 0x80 };
	struct ipc_out m;
	struct ipc_in in;
	size_t len, dlen;
	const uint8_t *f, *d;
	uint8_t u8;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	char *s;

	out_init(&m, IMSG_TX_BEGIN);
	ipc_add_u8(&m, 0);
	ipc_add_u8(&m, 0xff);
	ipc_add_u32(&m, 0);
	ipc_add_u32(&m, 0xdeadbeefU);
	ipc_add_u32(&m, UINT32_MAX);
	ipc_add_u64(&m, 0);
	ipc_add_u64(&m, 0x0123456789abcdefULL);
	ipc_add_u64(&m, UINT64_MAX);
	ipc_add_i64(&m, -1);
	ipc_add_i64(&m, INT64_MIN);
	ipc_add_i64(&m, INT64_MAX);
	ipc_add_i64(&m, 1700000000123456LL);
	ipc_add_str(&m, "hello, world");
	ipc_add_str(&m, "");
	ipc_add_str(&m, NULL);
	ipc_add_str(&m, "caf\xc3\xa9");
	ipc_add_data(&m, blob, sizeof blob);
	ipc_add_data(&m, NULL, 0);
	f = ipc_out_finish(&m, &len);

	frame_ok(f, len, &in);
	ck_assert_int_eq(in.type, IMSG_TX_BEGIN);
	ck_assert_uint_eq(in.left, len - IPC_HEADER_SIZE);

	ck_assert_int_eq(ipc_get_u8(&in, &u8), 0);
	ck_assert_uint_eq(u8, 0);
	ck_assert_int_eq(ipc_get_u8(&in, &u8), 0);
	ck_assert_uint_eq(u8, 0xff);
	ck_assert_int_eq(ipc_get_u32(&in, &u32), 0);
	ck_assert_uint_eq(u32, 0);
	ck_assert_int_eq(ipc_get_u32(&in, &u32), 0);
	ck_assert_uint_eq(u32, 0xdeadbeefU);
	ck_assert_int_eq(ipc_get_u32(&in, &u32), 0);
	ck_assert_uint_eq(u32, UINT32_MAX);
	ck_assert_int_eq(ipc_get_u64(&in, &u64), 0);
	ck_assert(u64 == 0);
	ck_assert_int_eq(ipc_get_u64(&in, &u64), 0);
	ck_assert(u64 == 0x0123456789abcdefULL);
	ck_assert_int_eq(ipc_get_u64(&in, &u64), 0);
	ck_assert(u64 == UINT64_MAX);
	ck_assert_int_eq(ipc_get_i64(&in, &i64), 0);
	ck_assert(i64 == -1);
	ck_assert_int_eq(ipc_get_i64(&in, &i64), 0);
	ck_assert(i64 == INT64_MIN);
	ck_assert_int_eq(ipc_get_i64(&in, &i64), 0);
	ck_assert(i64 == INT64_MAX);
	ck_assert_int_eq(ipc_get_i64(&in, &i64), 0);
	ck_assert(i64 == 1700000000123456LL);
	ck_assert_int_eq(ipc_get_str(&in, &s, 100), 0);
	ck_assert_str_eq(s, "hello, world");
	free(s);
	ck_assert_int_eq(ipc_get_str(&in, &s, 100), 0);
	ck_assert_str_eq(s, "");
	free(s);
	ck_assert_int_eq(ipc_get_str(&in, &s, 0), 0);   /* NULL sent as "" */
	ck_assert_str_eq(s, "");
	free(s);
	ck_assert_int_eq(ipc_get_str(&in, &s, 5), 0);   /* exactly maxlen */
	ck_assert_str_eq(s, "caf\xc3\xa9");
	free(s);
	ck_assert_int_eq(ipc_end(&in), -1);             /* data left */
	ck_assert_int_eq(ipc_get_data(&in, &d, &dlen), 0);
	ck_assert_uint_eq(dlen, sizeof blob);
	ck_assert_int_eq(memcmp(d, blob, sizeof blob), 0);
	ck_assert(d > f && d < f + len);                /* no copy */
	ck_assert_int_eq(ipc_get_data(&in, &d, &dlen), 0);
	ck_assert_uint_eq(dlen, 0);
	ck_assert_int_eq(ipc_end(&in), 0);
	/* nothing more to read */
	ck_assert_int_eq(ipc_get_u8(&in, &u8), -1);
	ck_assert_int_eq(ipc_get_u32(&in, &u32), -1);
	ipc_out_free(&m);
}
END_TEST

/* A frame grows past its first buffer and keeps every byte. */
START_TEST(test_large_frame)
{
	struct ipc_out m;
	struct ipc_in in;
	size_t len, dlen, i;
	const uint8_t *f, *d;
	uint8_t *big = malloc(300000);
	uint32_t u32;

	ck_assert_ptr_nonnull(big);
	for (i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 7);
	out_init(&m, IMSG_TX_DATA);
	for (i = 0; i < 1000; i++)
		ipc_add_u32(&m, (uint32_t)i);
	ipc_add_data(&m, big, 300000);
	f = ipc_out_finish(&m, &len);
	ck_assert_uint_eq(len, IPC_HEADER_SIZE + 4000 + 4 + 300000);
	frame_ok(f, len, &in);
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(ipc_get_u32(&in, &u32), 0);
		ck_assert_uint_eq(u32, i);
	}
	ck_assert_int_eq(ipc_get_data(&in, &d, &dlen), 0);
	ck_assert_uint_eq(dlen, 300000);
	ck_assert_int_eq(memcmp(d, big, 300000), 0);
	ck_assert_int_eq(ipc_end(&in), 0);
	ipc_out_free(&m);
	free(big);
}
END_TEST

/* An ipc_out can be reused for the next frame. */
START_TEST(test_reuse_out)
{
	struct ipc_out m;
	struct ipc_in in;
	size_t len;
	const uint8_t *f;
	char *s;

	out_init(&m, IMSG_TX_BEGUN);
	ipc_add_str(&m, "first frame with some text");
	(void)ipc_out_finish(&m, &len);
	ipc_out_init(&m, IMSG_TX_COMMITTED);
	ipc_add_str(&m, "Q123");
	f = ipc_out_finish(&m, &len);
	ck_assert_uint_eq(len, IPC_HEADER_SIZE + 4 + 4);
	frame_ok(f, len, &in);
	ck_assert_int_eq(in.type, IMSG_TX_COMMITTED);
	ck_assert_int_eq(ipc_get_str(&in, &s, 64), 0);
	ck_assert_str_eq(s, "Q123");
	free(s);
	ck_assert_int_eq(ipc_end(&in), 0);
	ipc_out_free(&m);
}
END_TEST

/* Frames appended after one another in one buffer (a channel's write
 * buffer): each gets its own length, and they decode in order. */
START_TEST(test_frames_appended)
{
	struct ipc_out m;
	struct ipc_in in;
	const uint8_t *f;
	size_t len, first;
	int32_t v;
	long r;

	out_init(&m, IMSG_NOTE_POOL);
	ipc_add_u32(&m, 3);
	first = ipc_out_end(&m);
	ck_assert_uint_eq(first, IPC_HEADER_SIZE + 4);
	ipc_out_begin(&m, IMSG_NOTE_ANVIL_LIMITS);
	ipc_add_i32(&m, -5);
	ipc_add_i32(&m, 2147483647);
	ck_assert_uint_eq(ipc_out_end(&m), IPC_HEADER_SIZE + 8);
	f = ipc_out_finish(&m, &len);
	ck_assert_uint_eq(len, first + IPC_HEADER_SIZE + 8);
	r = ipc_frame(f, len, &in);
	ck_assert_int_eq(r, (long)first);
	ck_assert_int_eq(in.type, IMSG_NOTE_POOL);
	r = ipc_frame(f + first, len - first, &in);
	ck_assert_int_eq(r, (long)(len - first));
	ck_assert_int_eq(in.type, IMSG_NOTE_ANVIL_LIMITS);
	ck_assert_int_eq(ipc_get_i32(&in, &v), 0);
	ck_assert_int_eq(v, -5);
	ck_assert_int_eq(ipc_get_i32(&in, &v), 0);
	ck_assert_int_eq(v, 2147483647);
	ck_assert_int_eq(ipc_end(&in), 0);
	ck_assert_int_eq(ipc_get_i32(&in, &v), -1);
	ipc_out_free(&m);
}
END_TEST

/* ipc_header judges the header alone, as ipc_frame does. */
START_TEST(test_header_only)
{
	uint8_t b[IPC_HEADER_SIZE];
	size_t plen = 0;
	int type = 0;

	put_header(b, 77, IMSG_WORKER_STATUS, IPC_VERSION);
	ck_assert_int_eq(ipc_header(b, sizeof b - 1, &type, &plen), 0);
	ck_assert_int_eq(ipc_header(b, sizeof b, &type, &plen), 1);
	ck_assert_int_eq(type, IMSG_WORKER_STATUS);
	ck_assert_uint_eq(plen, 77);
	put_header(b, 77, IMSG_TYPE_MAX, IPC_VERSION);
	ck_assert_int_eq(ipc_header(b, sizeof b, &type, &plen), -1);
	put_header(b, IPC_MAX_PAYLOAD + 1, IMSG_TX_DATA, IPC_VERSION);
	ck_assert_int_eq(ipc_header(b, sizeof b, &type, &plen), -1);
	put_header(b, 0, IMSG_TX_DATA, IPC_VERSION + 1);
	ck_assert_int_eq(ipc_header(b, sizeof b, &type, &plen), -1);
}
END_TEST

/* Every cut of a frame is "not yet"; the whole frame, with or without
 * bytes of the next one behind it, is one frame. */
START_TEST(test_partial_frames)
{
	struct ipc_out m;
	struct ipc_in in;
	size_t len, cut;
	uint8_t *f, *two;
	char *s;

	out_init(&m, IMSG_TX_FAIL);
	ipc_add_str(&m, "451 try later");
	ipc_add_u64(&m, 42);
	f = finish_copy(&m, &len);
	ipc_out_free(&m);

	for (cut = 0; cut < len; cut++) {
		memset(&in, 0x5a, sizeof in);
		ck_assert_msg(ipc_frame(f, cut, &in) == 0, "cut at %zu", cut);
	}
	/* two frames back to back: the first is found, then the second */
	two = malloc(2 * len);
	ck_assert_ptr_nonnull(two);
	memcpy(two, f, len);
	memcpy(two + len, f, len);
	for (cut = len; cut <= 2 * len; cut++)
		ck_assert_int_eq(ipc_frame(two, cut, &in), (long)len);
	ck_assert_int_eq(ipc_get_str(&in, &s, 64), 0);
	ck_assert_str_eq(s, "451 try later");
	free(s);
	for (cut = 0; cut < len; cut++)
		ck_assert_int_eq(ipc_frame(two + len, cut, &in), 0);
	ck_assert_int_eq(ipc_frame(two + len, len, &in), (long)len);
	free(two);
	free(f);
}
END_TEST

START_TEST(test_bad_headers)
{
	uint8_t b[IPC_HEADER_SIZE + 16];
	struct ipc_in in;
	int t;

	memset(b, 0, sizeof b);
	/* bad versions */
	put_header(b, 0, IMSG_TX_BEGIN, 0);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, 0, IMSG_TX_BEGIN, IPC_VERSION + 1);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, 0, IMSG_TX_BEGIN, 0x0100);   /* byte-swapped 1 */
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	/* type 0, unknown types */
	put_header(b, 0, 0, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, 0, IMSG_TYPE_MAX, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, 0, 0xffff, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, 0, 0x0100, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	/* every known type is accepted */
	for (t = 1; t < IMSG_TYPE_MAX; t++) {
		put_header(b, 0, (uint16_t)t, IPC_VERSION);
		ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in),
		    IPC_HEADER_SIZE);
		ck_assert_int_eq(in.type, t);
	}
	/* oversized lengths are refused as soon as the header is there,
	 * without waiting for the payload */
	put_header(b, IPC_MAX_PAYLOAD + 1, IMSG_TX_DATA, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, UINT32_MAX, IMSG_TX_DATA, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	put_header(b, 0x80000000U, IMSG_TX_DATA, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, sizeof b, &in), -1);
	/* the largest allowed length is only "not yet" */
	put_header(b, IPC_MAX_PAYLOAD, IMSG_TX_DATA, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, sizeof b, &in), 0);
	/* a bad header is seen before the frame is complete */
	put_header(b, 100, 0, IPC_VERSION);
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE, &in), -1);
	/* but not before the header is */
	ck_assert_int_eq(ipc_frame(b, IPC_HEADER_SIZE - 1, &in), 0);
}
END_TEST

START_TEST(test_truncated_fields)
{
	uint8_t b[64], p[16];
	struct ipc_in in;
	uint8_t u8;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	const uint8_t *d;
	size_t dlen, n;
	char *s = NULL;

	memset(p, 0x11, sizeof p);
	/* u8 from nothing */
	frame_ok(b, raw_frame(b, IMSG_TX_DATA, p, 0), &in);
	ck_assert_int_eq(ipc_get_u8(&in, &u8), -1);
	/* u32 from 0..3 bytes, u64/i64 from 0..7 bytes */
	for (n = 0; n < 8; n++) {
		frame_ok(b, raw_frame(b, IMSG_TX_DATA, p, n), &in);
		if (n < 4)
			ck_assert_int_eq(ipc_get_u32(&in, &u32), -1);
		frame_ok(b, raw_frame(b, IMSG_TX_DATA, p, n), &in);
		ck_assert_int_eq(ipc_get_u64(&in, &u64), -1);
		frame_ok(b, raw_frame(b, IMSG_TX_DATA, p, n), &in);
		ck_assert_int_eq(ipc_get_i64(&in, &i64), -1);
	}
	/* a string or data field whose length runs past the payload */
	{
		static const uint8_t str5[] = { 0, 0, 0, 5, 'a', 'b', 'c', 'd' };

		frame_ok(b, raw_frame(b, IMSG_TX_DATA, str5, sizeof str5), &in);
		ck_assert_int_eq(ipc_get_str(&in, &s, 100), -1);
		ck_assert_ptr_null(s);
		frame_ok(b, raw_frame(b, IMSG_TX_DATA, str5, sizeof str5), &in);
		ck_assert_int_eq(ipc_get_data(&in, &d, &dlen), -1);
		/* a length field of its own cut short */
		frame_ok(b, raw_frame(b, IMSG_TX_DATA, str5, 3), &in);
		ck_assert_int_eq(ipc_get_str(&in, &s, 100), -1);
		ck_assert_ptr_null(s);
	}
	/* a huge length does not wrap around */
	{
		static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };

		frame_ok(b, raw_frame(b, IMSG_TX_DATA, huge, sizeof huge), &in);
		ck_assert_int_eq(ipc_get_data(&in, &d, &dlen), -1);
		frame_ok(b, raw_frame(b, IMSG_TX_DATA, huge, sizeof huge), &in);
		ck_assert_int_eq(ipc_get_str(&in, &s, SIZE_MAX), -1);
		ck_assert_ptr_null(s);
	}
}
END_TEST

START_TEST(test_str_checks)
{
	static const uint8_t nul[] = { 0, 0, 0, 3, 'a', 0, 'b' };
	static const uint8_t nul_end[] = { 0, 0, 0, 2, 'a', 0 };
	static const uint8_t ok6[] = { 0, 0, 0, 6, 'a', 'b', 'c', 'd', 'e',
	    'f' };
	uint8_t b[64];
	struct ipc_in in;
	char *s = NULL;
	const uint8_t *d;
	size_t dlen;

	frame_ok(b, raw_frame(b, IMSG_TX_FAIL, nul, sizeof nul), &in);
	ck_assert_int_eq(ipc_get_str(&in, &s, 100), -1);
	ck_assert_ptr_null(s);
	frame_ok(b, raw_frame(b, IMSG_TX_FAIL, nul_end, sizeof nul_end), &in);
	ck_assert_int_eq(ipc_get_str(&in, &s, 100), -1);
	ck_assert_ptr_null(s);
	/* data may hold NUL bytes */
	frame_ok(b, raw_frame(b, IMSG_TX_FAIL, nul, sizeof nul), &in);
	ck_assert_int_eq(ipc_get_data(&in, &d, &dlen), 0);
	ck_assert_uint_eq(dlen, 3);
	ck_assert_int_eq(d[1], 0);
	ck_assert_int_eq(ipc_end(&in), 0);

	/* maxlen: 6 bytes pass with 6, fail with 5 and 0 */
	frame_ok(b, raw_frame(b, IMSG_TX_FAIL, ok6, sizeof ok6), &in);
	ck_assert_int_eq(ipc_get_str(&in, &s, 5), -1);
	ck_assert_ptr_null(s);
	frame_ok(b, raw_frame(b, IMSG_TX_FAIL, ok6, sizeof ok6), &in);
	ck_assert_int_eq(ipc_get_str(&in, &s, 0), -1);
	ck_assert_ptr_null(s);
	frame_ok(b, raw_frame(b, IMSG_TX_FAIL, ok6, sizeof ok6), &in);
	ck_assert_int_eq(ipc_get_str(&in, &s, 6), 0);
	ck_assert_str_eq(s, "abcdef");
	ck_assert_int_eq(ipc_end(&in), 0);
	free(s);
}
END_TEST

START_TEST(test_end_leftover)
{
	static const uint8_t p[] = { 1, 2, 3, 4, 5 };
	uint8_t b[32];
	struct ipc_in in;
	uint32_t u32;
	uint8_t u8;

	frame_ok(b, raw_frame(b, IMSG_TX_COMMIT, p, sizeof p), &in);
	ck_assert_int_eq(ipc_end(&in), -1);
	ck_assert_int_eq(ipc_get_u32(&in, &u32), 0);
	ck_assert_uint_eq(u32, 0x01020304U);
	ck_assert_int_eq(ipc_end(&in), -1);
	ck_assert_int_eq(ipc_get_u8(&in, &u8), 0);
	ck_assert_uint_eq(u8, 5);
	ck_assert_int_eq(ipc_end(&in), 0);
}
END_TEST

START_TEST(test_type_names)
{
	ck_assert_str_eq(ipc_type_name(IMSG_TX_BEGIN), "TX_BEGIN");
	ck_assert_str_eq(ipc_type_name(IMSG_TX_DATA), "TX_DATA");
	ck_assert_str_eq(ipc_type_name(IMSG_TX_COMMIT), "TX_COMMIT");
	ck_assert_str_eq(ipc_type_name(IMSG_TX_ABORT), "TX_ABORT");
	ck_assert_str_eq(ipc_type_name(IMSG_TX_BEGUN), "TX_BEGUN");
	ck_assert_str_eq(ipc_type_name(IMSG_TX_COMMITTED), "TX_COMMITTED");
	ck_assert_str_eq(ipc_type_name(IMSG_TX_FAIL), "TX_FAIL");
	ck_assert_str_eq(ipc_type_name(IMSG_WORKER_STATUS), "WORKER_STATUS");
	ck_assert_str_eq(ipc_type_name(IMSG_NOTE_POOL), "NOTE_POOL");
	ck_assert_str_eq(ipc_type_name(IMSG_NOTE_RELOAD), "NOTE_RELOAD");
	ck_assert_str_eq(ipc_type_name(IMSG_NOTE_ANVIL_LIMITS),
	    "NOTE_ANVIL_LIMITS");
	ck_assert_str_eq(ipc_type_name(IMSG_ANVIL_STRESS), "ANVIL_STRESS");
	ck_assert_str_eq(ipc_type_name(0), "unknown");
	ck_assert_str_eq(ipc_type_name(-1), "unknown");
	ck_assert_str_eq(ipc_type_name(IMSG_TYPE_MAX), "unknown");
	ck_assert_str_eq(ipc_type_name(65535), "unknown");
	ck_assert_str_eq(ipc_type_name(-2147483647 - 1), "unknown");
}
END_TEST

/* Building a field or frame larger than the protocol allows is our own
 * bug: the process aborts rather than send it. */
START_TEST(test_oversized_field_panics)
{
	struct ipc_out m;
	static uint8_t big[IPC_MAX_PAYLOAD + 1];

	out_init(&m, IMSG_TX_DATA);
	ipc_add_data(&m, big, sizeof big);
	ck_abort_msg("not reached");
}
END_TEST

START_TEST(test_oversized_frame_panics)
{
	struct ipc_out m;
	static uint8_t big[IPC_MAX_PAYLOAD];
	size_t len;

	out_init(&m, IMSG_TX_DATA);
	ipc_add_data(&m, big, sizeof big - 4);   /* exactly the maximum */
	(void)ipc_out_finish(&m, &len);
	ck_assert_uint_eq(len, IPC_HEADER_SIZE + IPC_MAX_PAYLOAD);
	ipc_add_u8(&m, 0);
	(void)ipc_out_finish(&m, &len);
	ck_abort_msg("not reached");
}
END_TEST

/* --- envelopes ------------------------------------------------------- */

static void sample_envelope(struct envelope *e)
{
	envelope_init(e);
	e->sender = strdup("alice@example.org");
	e->client_addr = strdup("2001:db8::25");
	e->client_name = strdup("mail.example.org");
	e->helo = strdup("[192.0.2.1]");
	e->protocol = strdup("UTF8ESMTP");
	e->auth_user = strdup("");
	e->received_at_us = 1700000000123456LL;
	e->size_declared = 123456789012LL;
	e->body_type = 2;
	e->smtputf8 = 1;
	e->dsn_ret = 2;
	e->dsn_envid = strdup("QQ314159");
	envelope_add_rcpt(e, "bob@example.net", 0x02 | 0x04,
	    "rfc822;bob@example.net");
	envelope_add_rcpt(e, "carol@example.com", 0x01, NULL);
	envelope_add_rcpt(e, "Postmaster", 0, "");
	envelope_add_rcpt(e, "d\xc3\xa9@example.com", 0x0f,
	    "utf-8;d\\x{E9}@example.com");
	envelope_add_rcpt(e, "eve@example.net", 0x08, "rfc822;eve+x@e.net");
}

static uint8_t *encode_frame(const struct envelope *e, size_t *lenp)
{
	struct ipc_out m;
	uint8_t *f;

	out_init(&m, IMSG_TX_BEGIN);
	envelope_encode(e, &m);
	f = finish_copy(&m, lenp);
	ipc_out_free(&m);
	return f;
}

static void assert_same_envelope(const struct envelope *a,
    const struct envelope *b)
{
	size_t i;

	ck_assert_str_eq(a->sender, b->sender);
	ck_assert_str_eq(a->client_addr, b->client_addr);
	ck_assert_str_eq(a->client_name, b->client_name);
	ck_assert_str_eq(a->helo, b->helo);
	ck_assert_str_eq(a->protocol, b->protocol);
	ck_assert_str_eq(a->auth_user, b->auth_user);
	ck_assert(a->received_at_us == b->received_at_us);
	ck_assert(a->size_declared == b->size_declared);
	ck_assert_uint_eq(a->body_type, b->body_type);
	ck_assert_uint_eq(a->smtputf8, b->smtputf8);
	ck_assert_uint_eq(a->dsn_ret, b->dsn_ret);
	ck_assert_str_eq(a->dsn_envid, b->dsn_envid);
	ck_assert_uint_eq(a->nrcpts, b->nrcpts);
	for (i = 0; i < a->nrcpts; i++) {
		ck_assert_str_eq(a->rcpts[i].addr, b->rcpts[i].addr);
		ck_assert_uint_eq(a->rcpts[i].notify, b->rcpts[i].notify);
		ck_assert_str_eq(a->rcpts[i].orcpt, b->rcpts[i].orcpt);
	}
}

START_TEST(test_envelope_init_free)
{
	struct envelope e;

	memset(&e, 0x5a, sizeof e);
	envelope_init(&e);
	ck_assert_ptr_null(e.sender);
	ck_assert_ptr_null(e.rcpts);
	ck_assert_uint_eq(e.nrcpts, 0);
	ck_assert(e.size_declared == -1);
	/* many recipients: the array grows */
	{
		char addr[32];
		int i;

		for (i = 0; i < 100; i++) {
			snprintf(addr, sizeof addr, "u%d@example.com", i);
			envelope_add_rcpt(&e, addr, (uint32_t)(i & 0x0f),
			    i % 2 ? "rfc822;x@y" : NULL);
		}
		ck_assert_uint_eq(e.nrcpts, 100);
		ck_assert_uint_ge(e.rcpts_cap, 100);
		ck_assert_str_eq(e.rcpts[0].addr, "u0@example.com");
		ck_assert_str_eq(e.rcpts[0].orcpt, "");
		ck_assert_str_eq(e.rcpts[99].addr, "u99@example.com");
		ck_assert_str_eq(e.rcpts[99].orcpt, "rfc822;x@y");
		ck_assert_uint_eq(e.rcpts[99].notify, 99 & 0x0f);
	}
	envelope_free(&e);
	ck_assert_ptr_null(e.rcpts);
	ck_assert_uint_eq(e.nrcpts, 0);
	ck_assert(e.size_declared == -1);
	envelope_free(&e);   /* twice is harmless */
}
END_TEST

START_TEST(test_envelope_roundtrip)
{
	struct envelope e, d;
	struct ipc_in in;
	uint8_t *f;
	size_t len;

	sample_envelope(&e);
	f = encode_frame(&e, &len);
	frame_ok(f, len, &in);
	ck_assert_int_eq(in.type, IMSG_TX_BEGIN);
	ck_assert_int_eq(envelope_decode(&in, &d), 0);
	assert_same_envelope(&e, &d);
	ck_assert_uint_eq(d.nrcpts, 5);
	ck_assert_str_eq(d.rcpts[3].addr, "d\xc3\xa9@example.com");
	ck_assert_uint_eq(d.rcpts[3].notify, 0x0f);
	ck_assert_str_eq(d.rcpts[1].orcpt, "");
	envelope_free(&d);
	free(f);

	/* the other extreme values: null sender, no SIZE, NULL fields */
	envelope_free(&e);
	e.received_at_us = 0;
	envelope_add_rcpt(&e, "x@y", 0, NULL);
	f = encode_frame(&e, &len);
	frame_ok(f, len, &in);
	ck_assert_int_eq(envelope_decode(&in, &d), 0);
	ck_assert_str_eq(d.sender, "");
	ck_assert_str_eq(d.client_addr, "");
	ck_assert_str_eq(d.dsn_envid, "");
	ck_assert(d.size_declared == -1);
	ck_assert_uint_eq(d.body_type, 0);
	ck_assert_uint_eq(d.nrcpts, 1);
	ck_assert_str_eq(d.rcpts[0].addr, "x@y");
	envelope_free(&d);
	envelope_free(&e);
	free(f);
}
END_TEST

/* Builds an envelope frame by hand so that any field can be wrong. */
struct env_spec {
	const char *sender;
	uint32_t body_type, smtputf8, dsn_ret;
	uint32_t nrcpts;           /* as announced */
	uint32_t nwritten;         /* recipients actually written */
	const char *rcpt_addr;
	uint32_t notify;
	uint32_t no_dkim;          /* after the recipients */
	int trailing;              /* extra bytes after it */
};

static void default_spec(struct env_spec *s)
{
	memset(s, 0, sizeof *s);
	s->sender = "a@b";
	s->nrcpts = s->nwritten = 2;
	s->rcpt_addr = "c@d";
	s->notify = 0x06;
}

static int decode_spec(const struct env_spec *s)
{
	struct ipc_out m;
	struct ipc_in in;
	struct envelope e;
	const uint8_t *f;
	size_t len;
	uint32_t i;
	int rc;

	out_init(&m, IMSG_TX_BEGIN);
	ipc_add_str(&m, s->sender);
	ipc_add_str(&m, "192.0.2.1");
	ipc_add_str(&m, "unknown");
	ipc_add_str(&m, "client.example");
	ipc_add_str(&m, "ESMTP");
	ipc_add_str(&m, "");
	ipc_add_i64(&m, 1);
	ipc_add_i64(&m, -1);
	ipc_add_u32(&m, s->body_type);
	ipc_add_u32(&m, s->smtputf8);
	ipc_add_u32(&m, s->dsn_ret);
	ipc_add_str(&m, "");
	ipc_add_u32(&m, s->nrcpts);
	for (i = 0; i < s->nwritten; i++) {
		ipc_add_str(&m, s->rcpt_addr);
		ipc_add_u32(&m, s->notify);
		ipc_add_str(&m, "");
	}
	ipc_add_u32(&m, s->no_dkim);
	if (s->trailing)
		ipc_add_u8(&m, 0);
	f = ipc_out_finish(&m, &len);
	frame_ok(f, len, &in);
	memset(&e, 0x5a, sizeof e);
	rc = envelope_decode(&in, &e);
	if (rc == 0) {
		ck_assert_uint_eq(e.nrcpts, s->nrcpts);
		envelope_free(&e);
	} else {
		/* a refused envelope is left empty */
		ck_assert_ptr_null(e.sender);
		ck_assert_ptr_null(e.rcpts);
		ck_assert_uint_eq(e.nrcpts, 0);
	}
	ipc_out_free(&m);
	return rc;
}

START_TEST(test_envelope_decode_rejects)
{
	struct env_spec s;

	default_spec(&s);
	ck_assert_int_eq(decode_spec(&s), 0);          /* the baseline */

	default_spec(&s);
	s.no_dkim = 1;
	ck_assert_int_eq(decode_spec(&s), 0);          /* dkim = false */

	default_spec(&s);
	s.no_dkim = 2;
	ck_assert_int_eq(decode_spec(&s), -1);         /* not a flag */

	default_spec(&s);
	s.nrcpts = s.nwritten = 0;
	ck_assert_int_eq(decode_spec(&s), -1);         /* no recipients */

	default_spec(&s);
	s.rcpt_addr = "";
	ck_assert_int_eq(decode_spec(&s), -1);         /* empty address */

	default_spec(&s);
	s.notify = 0x0f;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.notify = 0x10;
	ck_assert_int_eq(decode_spec(&s), -1);
	s.notify = 0xffffffffU;
	ck_assert_int_eq(decode_spec(&s), -1);

	default_spec(&s);
	s.body_type = 2;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.body_type = 3;
	ck_assert_int_eq(decode_spec(&s), -1);

	default_spec(&s);
	s.smtputf8 = 1;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.smtputf8 = 2;
	ck_assert_int_eq(decode_spec(&s), -1);

	default_spec(&s);
	s.dsn_ret = 2;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.dsn_ret = 3;
	ck_assert_int_eq(decode_spec(&s), -1);

	default_spec(&s);
	s.trailing = 1;
	ck_assert_int_eq(decode_spec(&s), -1);         /* bytes left over */

	default_spec(&s);
	s.nrcpts = 3;                                  /* one missing */
	ck_assert_int_eq(decode_spec(&s), -1);
	s.nrcpts = 1;                                  /* one too many */
	ck_assert_int_eq(decode_spec(&s), -1);
	s.nrcpts = ENVELOPE_MAX_RCPTS + 1;             /* over the limit */
	ck_assert_int_eq(decode_spec(&s), -1);
	s.nrcpts = 0xffffffffU;
	ck_assert_int_eq(decode_spec(&s), -1);
}
END_TEST

START_TEST(test_envelope_field_limits)
{
	struct env_spec s;
	char *long_addr = malloc(ENVELOPE_MAX_FIELD + 2);

	ck_assert_ptr_nonnull(long_addr);
	memset(long_addr, 'a', ENVELOPE_MAX_FIELD + 1);
	long_addr[ENVELOPE_MAX_FIELD] = '\0';
	default_spec(&s);
	s.sender = long_addr;                          /* exactly the limit */
	ck_assert_int_eq(decode_spec(&s), 0);
	s.rcpt_addr = long_addr;
	ck_assert_int_eq(decode_spec(&s), 0);
	long_addr[ENVELOPE_MAX_FIELD] = 'a';
	long_addr[ENVELOPE_MAX_FIELD + 1] = '\0';
	default_spec(&s);
	s.sender = long_addr;                          /* one over */
	ck_assert_int_eq(decode_spec(&s), -1);
	default_spec(&s);
	s.rcpt_addr = long_addr;
	ck_assert_int_eq(decode_spec(&s), -1);
	free(long_addr);
}
END_TEST

/* Every proper prefix of a valid envelope payload is refused. */
START_TEST(test_envelope_truncations)
{
	struct envelope e, d;
	uint8_t *f, *cut;
	size_t len, plen, n;
	struct ipc_in in;

	sample_envelope(&e);
	f = encode_frame(&e, &len);
	plen = len - IPC_HEADER_SIZE;
	cut = malloc(len);
	ck_assert_ptr_nonnull(cut);
	for (n = 0; n < plen; n++) {
		/* a well-formed frame whose payload is the first n bytes */
		put_header(cut, (uint32_t)n, IMSG_TX_BEGIN, IPC_VERSION);
		memcpy(cut + IPC_HEADER_SIZE, f + IPC_HEADER_SIZE, n);
		frame_ok(cut, IPC_HEADER_SIZE + n, &in);
		memset(&d, 0x5a, sizeof d);
		ck_assert_msg(envelope_decode(&in, &d) == -1,
		    "prefix of %zu/%zu bytes accepted", n, plen);
		ck_assert_ptr_null(d.sender);
		ck_assert_uint_eq(d.nrcpts, 0);
	}
	/* and the whole of it is accepted */
	frame_ok(f, len, &in);
	ck_assert_int_eq(envelope_decode(&in, &d), 0);
	assert_same_envelope(&e, &d);
	envelope_free(&d);
	envelope_free(&e);
	free(cut);
	free(f);
}
END_TEST

/* A NUL byte inside any string of the envelope is refused. */
START_TEST(test_envelope_embedded_nul)
{
	struct envelope e, d;
	uint8_t *f;
	size_t len, i, hits = 0;
	struct ipc_in in;

	sample_envelope(&e);
	f = encode_frame(&e, &len);
	/* turn each '@' of an address (sender, recipients, orcpts) into
	 * NUL; a 0x40 byte inside a number is no '@' */
	for (i = IPC_HEADER_SIZE + 1; i + 1 < len; i++) {
		if (f[i] != '@' || !isalnum(f[i - 1]) || !isalpha(f[i + 1]))
			continue;
		f[i] = '\0';
		frame_ok(f, len, &in);
		ck_assert_msg(envelope_decode(&in, &d) == -1,
		    "NUL at %zu accepted", i);
		f[i] = '@';
		hits++;
	}
	ck_assert_uint_eq(hits, 6);   /* sender, 3 rcpts, 2 orcpts */
	envelope_free(&e);
	free(f);
}
END_TEST

static Suite *ipc_suite(void)
{
	Suite *s = suite_create("ipc");
	TCase *tc = tcase_create("frames");

	tcase_add_test(tc, test_header_layout);
	tcase_add_test(tc, test_empty_frame);
	tcase_add_test(tc, test_roundtrip_all_types);
	tcase_add_test(tc, test_large_frame);
	tcase_add_test(tc, test_reuse_out);
	tcase_add_test(tc, test_frames_appended);
	tcase_add_test(tc, test_header_only);
	tcase_add_test(tc, test_partial_frames);
	tcase_add_test(tc, test_bad_headers);
	tcase_add_test(tc, test_truncated_fields);
	tcase_add_test(tc, test_str_checks);
	tcase_add_test(tc, test_end_leftover);
	tcase_add_test(tc, test_type_names);
	tcase_add_test_raise_signal(tc, test_oversized_field_panics, SIGABRT);
	tcase_add_test_raise_signal(tc, test_oversized_frame_panics, SIGABRT);
	suite_add_tcase(s, tc);

	tc = tcase_create("envelope");
	tcase_add_test(tc, test_envelope_init_free);
	tcase_add_test(tc, test_envelope_roundtrip);
	tcase_add_test(tc, test_envelope_decode_rejects);
	tcase_add_test(tc, test_envelope_field_limits);
	tcase_add_test(tc, test_envelope_truncations);
	tcase_add_test(tc, test_envelope_embedded_nul);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ipc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
