/*
 * check_proxy_header.c - unit tests for src/proxy_header.c: PROXY v1
 * (TCP4, TCP6, UNKNOWN) and v2 (PROXY over IPv4 and IPv6, LOCAL, UNSPEC,
 * UNIX, TLVs skipped), every malformed form, over-long and truncated
 * headers fed whole and byte by byte, and the version a listener
 * expects never taken for the other.
 */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "proxy_header.h"

static const uint8_t sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static enum proxy_status
parse_str(int version, const char *s, struct proxy_result *r)
{
	return proxy_header_parse(version, (const uint8_t *)s, strlen(s), r);
}

static void
assert_addr(const struct sockaddr_storage *ss, const char *addr, int port)
{
	char buf[64];

	sockaddr_ntop((const struct sockaddr *)ss, buf, sizeof(buf));
	ck_assert_str_eq(buf, addr);
	ck_assert_int_eq(sockaddr_port((const struct sockaddr *)ss), port);
}

/* Every proper prefix of a valid header needs more; the whole is done. */
static void
assert_prefixes_need_more(int version, const uint8_t *buf, size_t len)
{
	struct proxy_result r;
	size_t i;

	for (i = 0; i < len; i++)
		ck_assert_msg(proxy_header_parse(version, buf, i, &r) ==
		    PROXY_NEED_MORE, "prefix of %zu bytes", i);
	ck_assert_int_eq(proxy_header_parse(version, buf, len, &r),
	    PROXY_DONE);
	ck_assert_uint_eq(r.length, len);
}

static void
assert_v1_bad(const char *s)
{
	struct proxy_result r;

	ck_assert_msg(parse_str(1, s, &r) == PROXY_ERROR, "accepted: %s", s);
	ck_assert_ptr_nonnull(r.error);
}

/* --- v1 -------------------------------------------------------------- */

START_TEST(test_v1_tcp4)
{
	const char *h = "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n";
	char buf[128];
	struct proxy_result r;

	/* the client's bytes after the header are not the header's */
	snprintf(buf, sizeof(buf), "%sEHLO x\r\n", h);
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, strlen(h));
	ck_assert_int_eq(r.version, 1);
	ck_assert_int_eq(r.has_addr, 1);
	ck_assert_int_eq(r.local, 0);
	assert_addr(&r.src, "192.0.2.10", 56324);
	assert_addr(&r.dst, "198.51.100.1", 25);
	assert_prefixes_need_more(1, (const uint8_t *)h, strlen(h));
	ck_assert_int_eq(parse_str(1,
	    "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", &r), PROXY_DONE);
	assert_addr(&r.src, "255.255.255.255", 65535);
	assert_addr(&r.dst, "0.0.0.0", 0);
}
END_TEST

START_TEST(test_v1_tcp6)
{
	const char *h = "PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 1025 "
	    "587\r\n";
	struct proxy_result r;

	ck_assert_int_eq(parse_str(1, h, &r), PROXY_DONE);
	ck_assert_int_eq(r.has_addr, 1);
	assert_addr(&r.src, "2001:db8::1", 1025);
	assert_addr(&r.dst, "2001:db8::2", 587);
	assert_prefixes_need_more(1, (const uint8_t *)h, strlen(h));
	/* the longest TCP6 line: 104 bytes */
	h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	ck_assert_uint_eq(strlen(h), 104);
	ck_assert_int_eq(parse_str(1, h, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 104);
}
END_TEST

START_TEST(test_v1_unknown)
{
	struct proxy_result r;
	const char *longest = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	ck_assert_int_eq(parse_str(1, "PROXY UNKNOWN\r\n", &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 15);
	ck_assert_int_eq(r.has_addr, 0);
	ck_assert_int_eq(r.local, 0);
	ck_assert_int_eq(parse_str(1, "PROXY UNKNOWN whatever it says\r\n",
	    &r), PROXY_DONE);
	ck_assert_int_eq(r.has_addr, 0);
	/* the specification's worst case, exactly 107 bytes */
	ck_assert_uint_eq(strlen(longest), PROXY_V1_MAX);
	ck_assert_int_eq(parse_str(1, longest, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, PROXY_V1_MAX);
	assert_v1_bad("PROXY UNKNOWNX\r\n");
}
END_TEST

START_TEST(test_v1_malformed)
{
	static const char *const bad[] = {
		"EHLO client.example\r\n",
		"proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
		"PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
		"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n",
		"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n",
		"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX\n",
		"PROXY TCP4 192.0.2.1\n192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2 192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2.1.5 192.0.2.2 1 2\r\n",
		"PROXY TCP4 192.0.2. 192.0.2.2 1 2\r\n",
		"PROXY TCP4 -1.0.2.1 192.0.2.2 1 2\r\n",
		"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n",
		"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
		"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.2 1 2\r\n",
		"PROXY TCP6 2001:db8:::1 2001:db8::2 1 2\r\n",
		"PROXY TCP6 2001:db8::1%eth0 2001:db8::2 1 2\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 025 2\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 +25 2\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 2x\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 123456\r\n",
		"PROXY\r\n",
		"PROXY \r\n",
		"PROXY TCP4\r\n",
		"PRO\r\n",
		"\r\n",
	};
	struct proxy_result r;
	const char nul[] = "PROXY TCP4 192.0.2.1\0 192.0.2.2 1 2\r\n";
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_v1_bad(bad[i]);
	ck_assert_int_eq(proxy_header_parse(1, (const uint8_t *)nul,
	    sizeof(nul) - 1, &r), PROXY_ERROR);
	/* a wrong start is refused at its first wrong byte, not after a
	 * wait for a line end */
	ck_assert_int_eq(parse_str(1, "E", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str(1, "PROXX", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str(1, "PROX", &r), PROXY_NEED_MORE);
}
END_TEST

START_TEST(test_v1_too_long)
{
	struct proxy_result r;
	char buf[300];

	/* 107 bytes without a CRLF: refused, not waited for */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memset(buf + 14, 'a', 93);
	ck_assert_uint_eq(strlen(buf), 107);
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_ERROR);
	/* 106 bytes without a CR cannot end within 107 either */
	buf[106] = '\0';
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_ERROR);
	buf[105] = '\0';
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_NEED_MORE);
	buf[105] = 'a';
	/* a CR as byte 107: the line would be 108 bytes */
	buf[106] = '\r';
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_ERROR);
	strcpy(buf + 106, "\r\n");
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_ERROR);
	/* 106 bytes with its CRLF fits */
	strcpy(buf + 104, "\r\n");
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 106);
	memset(buf + 14, 'a', 200);
	buf[214] = '\0';
	ck_assert_int_eq(parse_str(1, buf, &r), PROXY_ERROR);
}
END_TEST

START_TEST(test_v1_not_v2)
{
	struct proxy_result r;
	uint8_t v2[16];

	memcpy(v2, sig, 12);
	v2[12] = 0x20;
	v2[13] = 0x00;
	v2[14] = 0;
	v2[15] = 0;
	ck_assert_int_eq(proxy_header_parse(1, v2, sizeof(v2), &r),
	    PROXY_ERROR);
	ck_assert_int_eq(parse_str(2, "PROXY UNKNOWN\r\n", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str(3, "PROXY UNKNOWN\r\n", &r), PROXY_ERROR);
	ck_assert_int_eq(parse_str(0, "PROXY UNKNOWN\r\n", &r), PROXY_ERROR);
}
END_TEST

/* --- v2 -------------------------------------------------------------- */

/* Builds a v2 header: command, family/protocol byte, the address block
 * (alen bytes of addr).  Returns its length. */
static size_t
v2(uint8_t *out, unsigned cmd, unsigned fam, const uint8_t *addr,
    size_t alen)
{
	memcpy(out, sig, 12);
	out[12] = (uint8_t)(0x20 | cmd);
	out[13] = (uint8_t)fam;
	out[14] = (uint8_t)(alen >> 8);
	out[15] = (uint8_t)alen;
	if (alen > 0)
		memcpy(out + 16, addr, alen);
	return 16 + alen;
}

static const uint8_t a4[12] = {
	192, 0, 2, 10,   198, 51, 100, 1,   0xdc, 0x04,   0x00, 0x19
};

static void
assert_v2_bad(const uint8_t *buf, size_t len)
{
	struct proxy_result r;

	ck_assert_int_eq(proxy_header_parse(2, buf, len, &r), PROXY_ERROR);
	ck_assert_ptr_nonnull(r.error);
}

START_TEST(test_v2_tcp4)
{
	uint8_t buf[600];
	size_t n = v2(buf, 1, 0x11, a4, sizeof(a4));
	struct proxy_result r;

	memcpy(buf + n, "EHLO", 4);
	ck_assert_int_eq(proxy_header_parse(2, buf, n + 4, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 28);
	ck_assert_int_eq(r.version, 2);
	ck_assert_int_eq(r.has_addr, 1);
	ck_assert_int_eq(r.local, 0);
	assert_addr(&r.src, "192.0.2.10", 56324);
	assert_addr(&r.dst, "198.51.100.1", 25);
	assert_prefixes_need_more(2, buf, n);
}
END_TEST

START_TEST(test_v2_tcp6)
{
	uint8_t a6[36], buf[600];
	size_t n;
	struct proxy_result r;

	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::7", a6), 1);
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::25", a6 + 16), 1);
	a6[32] = 0x04; a6[33] = 0x01;     /* 1025 */
	a6[34] = 0x02; a6[35] = 0x4b;     /* 587 */
	n = v2(buf, 1, 0x21, a6, sizeof(a6));
	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 52);
	assert_addr(&r.src, "2001:db8::7", 1025);
	assert_addr(&r.dst, "2001:db8::25", 587);
	assert_prefixes_need_more(2, buf, n);
}
END_TEST

START_TEST(test_v2_local)
{
	uint8_t buf[600];
	size_t n = v2(buf, 0, 0x00, NULL, 0);
	struct proxy_result r;

	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 16);
	ck_assert_int_eq(r.local, 1);
	ck_assert_int_eq(r.has_addr, 0);
	/* LOCAL with an address block: skipped whole, its family ignored */
	n = v2(buf, 0, 0x11, a4, sizeof(a4));
	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 28);
	ck_assert_int_eq(r.local, 1);
	ck_assert_int_eq(r.has_addr, 0);
	assert_prefixes_need_more(2, buf, n);
}
END_TEST

START_TEST(test_v2_unspec_and_unix)
{
	uint8_t buf[600], ua[216];
	size_t n;
	struct proxy_result r;

	n = v2(buf, 1, 0x00, NULL, 0);
	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_int_eq(r.has_addr, 0);
	ck_assert_int_eq(r.local, 0);
	memset(ua, 0, sizeof(ua));
	memcpy(ua, "/run/lb.sock", 12);
	n = v2(buf, 1, 0x31, ua, sizeof(ua));
	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, 232);
	ck_assert_int_eq(r.has_addr, 0);
	/* a UNIX block too short for its two paths */
	n = v2(buf, 1, 0x31, ua, 100);
	assert_v2_bad(buf, n);
}
END_TEST

START_TEST(test_v2_tlvs_skipped)
{
	uint8_t blk[200], buf[600];
	size_t n, k = sizeof(a4);
	struct proxy_result r;

	memcpy(blk, a4, k);
	/* PP2_TYPE_ALPN "smtp", PP2_TYPE_NOOP of 3, PP2_TYPE_UNIQUE_ID of
	 * none */
	blk[k++] = 0x01; blk[k++] = 0; blk[k++] = 4;
	memcpy(blk + k, "smtp", 4); k += 4;
	blk[k++] = 0x04; blk[k++] = 0; blk[k++] = 3;
	memset(blk + k, 0, 3); k += 3;
	blk[k++] = 0x05; blk[k++] = 0; blk[k++] = 0;
	n = v2(buf, 1, 0x11, blk, k);
	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, n);
	assert_addr(&r.src, "192.0.2.10", 56324);
	assert_prefixes_need_more(2, buf, n);
	/* a TLV whose length runs past the block */
	blk[sizeof(a4) + 2] = 5;
	n = v2(buf, 1, 0x11, blk, k);
	assert_v2_bad(buf, n);
	/* a TLV cut inside its type and length */
	n = v2(buf, 1, 0x11, blk, sizeof(a4) + 2);
	assert_v2_bad(buf, n);
}
END_TEST

START_TEST(test_v2_malformed)
{
	uint8_t buf[600], a6[36];
	size_t n;

	memset(a6, 0, sizeof(a6));
	/* the signature wrong in each of its bytes */
	for (n = 0; n < 12; n++) {
		size_t len = v2(buf, 1, 0x11, a4, sizeof(a4));

		buf[n] ^= 0x40;
		assert_v2_bad(buf, len);
		/* refused as soon as the wrong byte arrives */
		assert_v2_bad(buf, n + 1);
	}
	n = v2(buf, 1, 0x11, a4, sizeof(a4));
	buf[12] = 0x11;                          /* version 1 */
	assert_v2_bad(buf, n);
	assert_v2_bad(buf, 13);
	buf[12] = 0x31;                          /* version 3 */
	assert_v2_bad(buf, n);
	buf[12] = 0x22;                          /* command 2 */
	assert_v2_bad(buf, n);
	buf[12] = 0x2f;
	assert_v2_bad(buf, n);
	n = v2(buf, 1, 0x41, a4, sizeof(a4));    /* family 4 */
	assert_v2_bad(buf, n);
	assert_v2_bad(buf, 14);
	n = v2(buf, 1, 0x13, a4, sizeof(a4));    /* protocol 3 */
	assert_v2_bad(buf, n);
	n = v2(buf, 1, 0x12, a4, sizeof(a4));    /* UDP over IPv4 */
	assert_v2_bad(buf, n);
	n = v2(buf, 1, 0x22, a6, sizeof(a6));    /* UDP over IPv6 */
	assert_v2_bad(buf, n);
	n = v2(buf, 1, 0x11, a4, 11);            /* block short of TCP4 */
	assert_v2_bad(buf, n);
	n = v2(buf, 1, 0x21, a6, 35);            /* block short of TCP6 */
	assert_v2_bad(buf, n);
	n = v2(buf, 1, 0x21, a4, sizeof(a4));    /* TCP6 with a TCP4 block */
	assert_v2_bad(buf, n);
	/* and a v1 line on a v2 listener */
	assert_v2_bad((const uint8_t *)"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
	    36);
}
END_TEST

START_TEST(test_v2_too_long)
{
	uint8_t blk[PROXY_V2_MAX], buf[PROXY_V2_MAX + 64];
	size_t n, k;
	struct proxy_result r;

	/* exactly PROXY_V2_MAX: one NOOP TLV filling the rest */
	memcpy(blk, a4, sizeof(a4));
	k = PROXY_V2_MAX - 16 - sizeof(a4) - 3;
	blk[12] = 0x04;
	blk[13] = (uint8_t)(k >> 8);
	blk[14] = (uint8_t)k;
	memset(blk + 15, 0, k);
	n = v2(buf, 1, 0x11, blk, PROXY_V2_MAX - 16);
	ck_assert_uint_eq(n, PROXY_V2_MAX);
	ck_assert_int_eq(proxy_header_parse(2, buf, n, &r), PROXY_DONE);
	ck_assert_uint_eq(r.length, PROXY_V2_MAX);
	/* one byte more is refused as soon as the length is seen */
	buf[14] = (uint8_t)((PROXY_V2_MAX - 15) >> 8);
	buf[15] = (uint8_t)(PROXY_V2_MAX - 15);
	assert_v2_bad(buf, 16);
	buf[14] = 0xff;
	buf[15] = 0xff;
	assert_v2_bad(buf, 16);
	/* LOCAL is bounded the same way */
	buf[12] = 0x20;
	assert_v2_bad(buf, 16);
}
END_TEST

START_TEST(test_v2_truncated)
{
	uint8_t buf[600];
	size_t n = v2(buf, 1, 0x11, a4, sizeof(a4)), i;
	struct proxy_result r;

	/* every cut of a valid header waits; the caller's deadline or the
	 * client's EOF ends it */
	for (i = 0; i < n; i++)
		ck_assert_int_eq(proxy_header_parse(2, buf, i, &r),
		    PROXY_NEED_MORE);
	/* declared 12 bytes of address, 4 given: still waiting */
	ck_assert_int_eq(proxy_header_parse(2, buf, 20, &r),
	    PROXY_NEED_MORE);
}
END_TEST

static Suite *
proxy_header_suite(void)
{
	Suite *s = suite_create("proxy_header");
	TCase *tc = tcase_create("v1");

	tcase_add_test(tc, test_v1_tcp4);
	tcase_add_test(tc, test_v1_tcp6);
	tcase_add_test(tc, test_v1_unknown);
	tcase_add_test(tc, test_v1_malformed);
	tcase_add_test(tc, test_v1_too_long);
	tcase_add_test(tc, test_v1_not_v2);
	suite_add_tcase(s, tc);

	tc = tcase_create("v2");
	tcase_add_test(tc, test_v2_tcp4);
	tcase_add_test(tc, test_v2_tcp6);
	tcase_add_test(tc, test_v2_local);
	tcase_add_test(tc, test_v2_unspec_and_unix);
	tcase_add_test(tc, test_v2_tlvs_skipped);
	tcase_add_test(tc, test_v2_malformed);
	tcase_add_test(tc, test_v2_too_long);
	tcase_add_test(tc, test_v2_truncated);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(proxy_header_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
