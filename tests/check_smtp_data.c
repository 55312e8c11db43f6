/*
 * check_smtp_data.c - unit tests for the message data scanner
 * (src/smtp_data.c): end of data, dot-unstuffing, bare CR/LF flags,
 * end-of-data look-alikes, chunk boundaries, line length, BDAT mode.
 *
 * Every call gets an output buffer of exactly inlen + 2 bytes on the heap,
 * so AddressSanitizer catches any write past the documented bound.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"

#define BIG (1u << 20)   /* size of the large inputs */

/* The result of feeding an input through the scanner in chunks. */
struct run {
	enum data_result res;
	size_t used;        /* input bytes consumed, over all calls */
	unsigned flags;
	size_t outlen;
	uint8_t *out;       /* cap bytes */
	size_t cap;
	uint64_t out_bytes;
	size_t fin_len;     /* bytes data_scanner_finish wrote (BDAT) */
};

static void run_free(struct run *r)
{
	free(r->out);
	r->out = NULL;
}

/* One call, with an exactly sized heap output buffer; appends to r. */
static enum data_result scan_chunk(struct data_scanner *s, struct run *r,
    const uint8_t *in, size_t len, size_t *used)
{
	uint8_t *o = malloc(len + 2);
	size_t olen = 12345, u = 12345;
	enum data_result res;

	ck_assert_ptr_nonnull(o);
	res = data_scan(s, in, len, o, &olen, &u);
	ck_assert_uint_le(u, len);
	ck_assert_uint_le(olen, len + 2);
	if (res == DATA_MORE)
		ck_assert_uint_eq(u, len);
	ck_assert_uint_le(r->outlen + olen, r->cap);
	memcpy(r->out + r->outlen, o, olen);
	r->outlen += olen;
	free(o);
	*used = u;
	return res;
}

/* Feeds in[0..len) as chunks ending at cuts[0] < cuts[1] < ... (plus a
 * final chunk to len); stops at the first non-MORE result.  BDAT runs
 * are completed with data_scanner_finish. */
static struct run feed_cuts(enum data_mode mode, size_t max_line,
    const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts)
{
	struct data_scanner s;
	struct run r;
	size_t start = 0, i, u;

	memset(&r, 0, sizeof r);
	r.cap = len + 8;
	r.out = malloc(r.cap);
	ck_assert_ptr_nonnull(r.out);
	data_scanner_init(&s, mode, max_line);
	r.res = DATA_MORE;
	for (i = 0; i <= ncuts; i++) {
		size_t stop = i < ncuts ? cuts[i] : len;

		r.res = scan_chunk(&s, &r, in + start, stop - start, &u);
		r.used = start + u;
		if (r.res != DATA_MORE)
			break;
		start = stop;
	}
	if (mode == DATA_MODE_BDAT) {
		uint8_t fin[2];

		ck_assert_int_eq(r.res, DATA_MORE);
		data_scanner_finish(&s, fin, &r.fin_len);
		ck_assert_uint_le(r.fin_len, 2);
		ck_assert_uint_le(r.outlen + r.fin_len, r.cap);
		memcpy(r.out + r.outlen, fin, r.fin_len);
		r.outlen += r.fin_len;
	}
	r.flags = data_scanner_flags(&s);
	r.out_bytes = s.out_bytes;
	ck_assert_uint_eq(r.out_bytes, r.outlen);
	return r;
}

static struct run feed(enum data_mode mode, size_t max_line,
    const char *in, size_t len)
{
	return feed_cuts(mode, max_line, (const uint8_t *)in, len, NULL, 0);
}

static struct run feed_bytewise(enum data_mode mode, size_t max_line,
    const char *in, size_t len)
{
	size_t *cuts = malloc((len + 1) * sizeof *cuts);
	size_t i;
	struct run r;

	ck_assert_ptr_nonnull(cuts);
	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	r = feed_cuts(mode, max_line, (const uint8_t *)in, len, cuts,
	    len > 0 ? len - 1 : 0);
	free(cuts);
	return r;
}

static void same_run(const struct run *a, const struct run *b,
    const char *what)
{
	ck_assert_msg(a->res == b->res, "%s: result %d vs %d", what,
	    (int)a->res, (int)b->res);
	ck_assert_msg(a->used == b->used, "%s: used %zu vs %zu", what,
	    a->used, b->used);
	ck_assert_msg(a->flags == b->flags, "%s: flags %#x vs %#x", what,
	    a->flags, b->flags);
	ck_assert_msg(a->outlen == b->outlen, "%s: outlen %zu vs %zu", what,
	    a->outlen, b->outlen);
	ck_assert_msg(memcmp(a->out, b->out, a->outlen) == 0,
	    "%s: output differs", what);
}

/* Compares the one-shot run with byte-at-a-time, every 2-way split and
 * (for inputs up to max3 bytes) every 3-way split. */
static void check_splits3(enum data_mode mode, size_t max_line,
    const char *in, size_t len, size_t max3)
{
	struct run one = feed(mode, max_line, in, len), other;
	size_t cuts[2];
	char what[64];

	other = feed_bytewise(mode, max_line, in, len);
	same_run(&one, &other, "bytewise");
	run_free(&other);
	for (cuts[0] = 0; cuts[0] <= len; cuts[0]++) {
		snprintf(what, sizeof what, "split at %zu", cuts[0]);
		other = feed_cuts(mode, max_line, (const uint8_t *)in, len,
		    cuts, 1);
		same_run(&one, &other, what);
		run_free(&other);
		if (len > max3)
			continue;
		for (cuts[1] = cuts[0]; cuts[1] <= len; cuts[1]++) {
			snprintf(what, sizeof what, "split at %zu,%zu",
			    cuts[0], cuts[1]);
			other = feed_cuts(mode, max_line,
			    (const uint8_t *)in, len, cuts, 2);
			same_run(&one, &other, what);
			run_free(&other);
		}
	}
	run_free(&one);
}

static void check_splits(enum data_mode mode, size_t max_line,
    const char *in, size_t len)
{
	check_splits3(mode, max_line, in, len, 24);
}

#define S(lit) (lit), (sizeof(lit) - 1)

/* One-shot DOT run checked against an expected outcome, then the same
 * input through every chunking. */
static void expect_dot(const char *in, size_t len, size_t max_line,
    enum data_result res, size_t used, unsigned flags,
    const char *out, size_t outlen)
{
	struct run r = feed(DATA_MODE_DOT, max_line, in, len);

	ck_assert_msg(r.res == res, "result %d, want %d", (int)r.res,
	    (int)res);
	ck_assert_uint_eq(r.used, used);
	ck_assert_uint_eq(r.flags, flags);
	if (out != NULL) {
		ck_assert_uint_eq(r.outlen, outlen);
		ck_assert_mem_eq(r.out, out, outlen);
	}
	run_free(&r);
	check_splits(DATA_MODE_DOT, max_line, in, len);
}

#define EXPECT_DOT(in, res, used, flags, out) \
	expect_dot(S(in), 0, (res), (used), (flags), S(out))
#define EXPECT_DOT_ANYOUT(in, res, used, flags) \
	expect_dot(S(in), 0, (res), (used), (flags), NULL, 0)

/* --- DATA mode: clean input ----------------------------------------- */

START_TEST(test_simple)
{
	EXPECT_DOT("Subject: hi\r\n\r\nbody\r\n.\r\n", DATA_END, 24, 0,
	    "Subject: hi\r\n\r\nbody\r\n");
	EXPECT_DOT("a\r\n.\r\n", DATA_END, 6, 0, "a\r\n");
	EXPECT_DOT("\r\n.\r\n", DATA_END, 5, 0, "\r\n");
	EXPECT_DOT("a.b\r\nc.\r\n.\r\n", DATA_END, 12, 0, "a.b\r\nc.\r\n");
}
END_TEST

START_TEST(test_dot_unstuff)
{
	EXPECT_DOT("..\r\n.\r\n", DATA_END, 7, 0, ".\r\n");
	EXPECT_DOT(".x\r\n.\r\n", DATA_END, 7, 0, "x\r\n");
	EXPECT_DOT("a\r\n...y\r\n.. \r\n.\r\n", DATA_END, 17, 0,
	    "a\r\n..y\r\n. \r\n");
	/* Only the first dot of a line goes; only at line start. */
	EXPECT_DOT("a\r\n....\r\n.\r\n", DATA_END, 12, 0, "a\r\n...\r\n");
	/* A line of "." followed by text is stuffed, not an end. */
	EXPECT_DOT(".\tx\r\n.\r\n", DATA_END, 8, 0, "\tx\r\n");
}
END_TEST

START_TEST(test_end_at_start)
{
	EXPECT_DOT(".\r\n", DATA_END, 3, 0, "");
	EXPECT_DOT(".\r\nQUIT\r\n", DATA_END, 3, 0, "");
}
END_TEST

START_TEST(test_no_end_yet)
{
	EXPECT_DOT("abc\r\n", DATA_MORE, 5, 0, "abc\r\n");
	/* The held ".", ".<CR>" and <CR> are not emitted yet. */
	EXPECT_DOT("abc\r\n.", DATA_MORE, 6, 0, "abc\r\n");
	EXPECT_DOT("abc\r\n.\r", DATA_MORE, 7, 0, "abc\r\n");
	EXPECT_DOT("abc\r", DATA_MORE, 4, 0, "abc");
	EXPECT_DOT("", DATA_MORE, 0, 0, "");
	/* CRLF "." CRLF and nothing less. */
	EXPECT_DOT("a\r\n. \r\nb\r\n", DATA_MORE, 10, 0, "a\r\n \r\nb\r\n");
}
END_TEST

START_TEST(test_pipelined)
{
	const char in[] = "a\r\n.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\n";
	struct run r = feed(DATA_MODE_DOT, 0, S(in));

	ck_assert_int_eq(r.res, DATA_END);
	ck_assert_uint_eq(r.used, 6);
	ck_assert_uint_eq(r.outlen, 3);
	run_free(&r);
	check_splits(DATA_MODE_DOT, 0, S(in));
	/* The end right at a chunk's first bytes. */
	EXPECT_DOT("x\r\n..\r\n.\r\n.\r\n", DATA_END, 10, 0, "x\r\n.\r\n");
}
END_TEST

START_TEST(test_after_end_sticky)
{
	struct data_scanner s;
	uint8_t out[64];
	size_t olen, used;

	data_scanner_init(&s, DATA_MODE_DOT, 0);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"a\r\n.\r\nX", 7,
	    out, &olen, &used), DATA_END);
	ck_assert_uint_eq(used, 6);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"more", 4, out, &olen,
	    &used), DATA_END);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(olen, 0);
	ck_assert_uint_eq(s.out_bytes, 3);
	data_scanner_finish(&s, out, &olen);
	ck_assert_uint_eq(olen, 0);

	data_scanner_init(&s, DATA_MODE_DOT, 0);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"a\n.\nX", 5,
	    out, &olen, &used), DATA_END_AMBIGUOUS);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"\r\n.\r\n", 5, out,
	    &olen, &used), DATA_END_AMBIGUOUS);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(olen, 0);
}
END_TEST

START_TEST(test_out_bytes)
{
	struct data_scanner s;
	uint8_t out[64];
	size_t olen, used;

	data_scanner_init(&s, DATA_MODE_DOT, 0);
	data_scan(&s, (const uint8_t *)"hello\r", 6, out, &olen, &used);
	ck_assert_uint_eq(olen, 5);
	ck_assert_uint_eq(s.out_bytes, 5);
	data_scan(&s, (const uint8_t *)"\n..x\r\n.", 7, out, &olen, &used);
	ck_assert_uint_eq(olen, 6);
	ck_assert_mem_eq(out, "\r\n.x\r\n", 6);
	ck_assert_uint_eq(s.out_bytes, 11);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"\r\n", 2, out, &olen,
	    &used), DATA_END);
	ck_assert_uint_eq(olen, 0);
	ck_assert_uint_eq(s.out_bytes, 11);
}
END_TEST

/* --- held CR at a chunk end ------------------------------------------ */

START_TEST(test_held_cr)
{
	struct data_scanner s;
	uint8_t out[64];
	size_t olen, used;

	data_scanner_init(&s, DATA_MODE_DOT, 0);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"abc\r", 4, out,
	    &olen, &used), DATA_MORE);
	ck_assert_uint_eq(used, 4);
	ck_assert_uint_eq(olen, 3);
	ck_assert_mem_eq(out, "abc", 3);
	/* One input byte releases the held CR: 2 bytes out. */
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"\n", 1, out, &olen,
	    &used), DATA_MORE);
	ck_assert_uint_eq(olen, 2);
	ck_assert_mem_eq(out, "\r\n", 2);
	ck_assert_uint_eq(data_scanner_flags(&s), 0);
	/* Zero-length calls change nothing. */
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"", 0, out, &olen,
	    &used), DATA_MORE);
	ck_assert_uint_eq(olen, 0);
	ck_assert_uint_eq(used, 0);

	/* Held CR followed by something else: a bare CR. */
	data_scanner_init(&s, DATA_MODE_DOT, 0);
	data_scan(&s, (const uint8_t *)"abc\r", 4, out, &olen, &used);
	ck_assert_uint_eq(data_scanner_flags(&s), 0);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"x\r\n.\r\n", 6, out,
	    &olen, &used), DATA_END);
	ck_assert_uint_eq(used, 6);
	ck_assert_uint_eq(data_scanner_flags(&s), DATA_BARE_CR);
	ck_assert_uint_eq(olen, 3);
	ck_assert_mem_eq(out, "x\r\n", 3);
}
END_TEST

/* --- bare CR / bare LF -------------------------------------------------- */

START_TEST(test_bare_cr_positions)
{
	/* start, middle, end of a line, doubled, right before CRLF */
	EXPECT_DOT("\rabc\r\n.\r\n", DATA_END, 9, DATA_BARE_CR, "abc\r\n");
	EXPECT_DOT("a\rb\r\n.\r\n", DATA_END, 8, DATA_BARE_CR, "ab\r\n");
	EXPECT_DOT("abc\r\r\n.\r\n", DATA_END, 9, DATA_BARE_CR, "abc\r\n");
	EXPECT_DOT("a\r\rb\r\n.\r\n", DATA_END, 9, DATA_BARE_CR, "ab\r\n");
	EXPECT_DOT("a\r\n\r.\r\n", DATA_END_AMBIGUOUS, 7, DATA_BARE_CR,
	    "a\r\n");
	/* before the dot of an end: a look-alike */
	EXPECT_DOT_ANYOUT("a\r.\r\n", DATA_END_AMBIGUOUS, 5, DATA_BARE_CR);
	/* at the very end of what has arrived: held, not flagged yet */
	EXPECT_DOT("a\r\nb\r", DATA_MORE, 5, 0, "a\r\nb");
	/* a bare CR that is a dot-line's "terminator" mid-line */
	EXPECT_DOT_ANYOUT("a\r\n.\rb\r\n", DATA_END_AMBIGUOUS, 5,
	    DATA_BARE_CR);
}
END_TEST

START_TEST(test_bare_lf_positions)
{
	EXPECT_DOT("\nabc\r\n.\r\n", DATA_END, 9, DATA_BARE_LF, "abc\r\n");
	EXPECT_DOT("a\nb\r\n.\r\n", DATA_END, 8, DATA_BARE_LF, "ab\r\n");
	EXPECT_DOT("abc\n\r\n.\r\n", DATA_END, 9, DATA_BARE_LF, "abc\r\n");
	EXPECT_DOT("a\n\nb\r\n.\r\n", DATA_END, 9, DATA_BARE_LF, "ab\r\n");
	EXPECT_DOT("a\r\n\n.\r\n", DATA_END_AMBIGUOUS, 7, DATA_BARE_LF,
	    "a\r\n");
	EXPECT_DOT_ANYOUT("a\n.\r\n", DATA_END_AMBIGUOUS, 5, DATA_BARE_LF);
	EXPECT_DOT("a\r\nb\n", DATA_MORE, 5, DATA_BARE_LF, "a\r\nb");
	/* LF CR LF: a bare LF, then a clean empty line */
	EXPECT_DOT("a\n\r\nb\r\n.\r\n", DATA_END, 10, DATA_BARE_LF,
	    "a\r\nb\r\n");
	EXPECT_DOT("a\r\n\n\r\n.\r\n", DATA_END, 9, DATA_BARE_LF,
	    "a\r\n\r\n");
	/* both kinds */
	EXPECT_DOT_ANYOUT("a\rb\nc\r\n.\r\n", DATA_END, 10,
	    DATA_BARE_CR | DATA_BARE_LF);
}
END_TEST

/* --- end-of-data look-alikes ------------------------------------------ */

START_TEST(test_ambiguous)
{
	/* <LF>.<LF> */
	EXPECT_DOT_ANYOUT("a\n.\nEVIL", DATA_END_AMBIGUOUS, 4, DATA_BARE_LF);
	/* <LF>.<CR><LF> */
	EXPECT_DOT_ANYOUT("a\n.\r\nEVIL", DATA_END_AMBIGUOUS, 5,
	    DATA_BARE_LF);
	/* <CR><LF>.<LF> */
	EXPECT_DOT_ANYOUT("a\r\n.\nEVIL", DATA_END_AMBIGUOUS, 5,
	    DATA_BARE_LF);
	/* <CR>.<CR> then not LF: the byte after is not consumed */
	EXPECT_DOT_ANYOUT("a\r.\rEVIL", DATA_END_AMBIGUOUS, 4, DATA_BARE_CR);
	/* <CR>.<CR><LF> */
	EXPECT_DOT_ANYOUT("a\r.\r\nEVIL", DATA_END_AMBIGUOUS, 5,
	    DATA_BARE_CR);
	/* <CR>.<LF> */
	EXPECT_DOT_ANYOUT("a\r.\nEVIL", DATA_END_AMBIGUOUS, 4,
	    DATA_BARE_CR | DATA_BARE_LF);
	/* <LF>.<CR> then not LF */
	EXPECT_DOT_ANYOUT("a\n.\rEVIL", DATA_END_AMBIGUOUS, 4,
	    DATA_BARE_CR | DATA_BARE_LF);
	/* <CR><LF>.<CR> then not LF */
	EXPECT_DOT_ANYOUT("a\r\n.\rEVIL", DATA_END_AMBIGUOUS, 5,
	    DATA_BARE_CR);
	/* at the very start: ".<LF>", ".<CR>x" */
	EXPECT_DOT_ANYOUT(".\nEVIL", DATA_END_AMBIGUOUS, 2, DATA_BARE_LF);
	EXPECT_DOT_ANYOUT(".\rEVIL", DATA_END_AMBIGUOUS, 2, DATA_BARE_CR);
	/* a look-alike later in a message flagged earlier */
	EXPECT_DOT_ANYOUT("x\ny\r\nz\r\n.\nEVIL", DATA_END_AMBIGUOUS, 10,
	    DATA_BARE_LF);
	/* a proper CRLF.CRLF is DATA_END even when flags are set */
	EXPECT_DOT("x\ny\r\n.\r\nNEXT", DATA_END, 8, DATA_BARE_LF, "xy\r\n");
	EXPECT_DOT("x\ry\r\n.\r\nNEXT", DATA_END, 8, DATA_BARE_CR, "xy\r\n");
	/* not look-alikes: stuffed lines after a bare LF */
	EXPECT_DOT_ANYOUT("a\n..\nb\n.x\n", DATA_MORE, 10, DATA_BARE_LF);
	EXPECT_DOT_ANYOUT("a\n..\r\n.\r\n", DATA_END, 9, DATA_BARE_LF);
}
END_TEST

/* --- chunk boundaries ----------------------------------------------------- */

static const char *const split_inputs[] = {
	"a\r\n.\r\n",
	".\r\n",
	"\r\n.\r\nX",
	"Subject: x\r\n\r\n..stuffed\r\n.x\r\nbody\r\n.\r\nQUIT\r\n",
	"a\r\n.\r\r\n.\r\n",
	"a\n.\n",
	"a\n.\r\n",
	"a\r\n.\nX",
	"a\r.\rX",
	"a\r.\r\nX",
	"a\n.\rX",
	".\nX",
	".\rX",
	"\r\r\n\n\r\r.\r\n",
	"a\rb\nc\r\n..\r\n.\r\nd",
	"no end here\r\n",
	"a\r\n.. \r\n. \r\n",
};

START_TEST(test_splits)
{
	const char *in = split_inputs[_i];

	check_splits(DATA_MODE_DOT, 0, in, strlen(in));
	check_splits(DATA_MODE_DOT, 5, in, strlen(in));
	check_splits(DATA_MODE_BDAT, 0, in, strlen(in));
	check_splits(DATA_MODE_BDAT, 5, in, strlen(in));
}
END_TEST

/* Random inputs over a small alphabet: every chunking agrees, and for
 * clean-CRLF inputs the result matches an independent reference. */
static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 16;
}

/* Reference for inputs whose only CR/LF are CRLF pairs: split into lines,
 * the first "." line ends the data. */
static void reference_clean(const char *in, size_t len, enum data_result *res,
    size_t *used, char *out, size_t *outlen)
{
	size_t pos = 0, ol = 0;

	*res = DATA_MORE;
	while (pos < len) {
		const char *crlf = NULL;
		size_t i, ll;

		for (i = pos; i + 1 < len; i++) {
			if (in[i] == '\r' && in[i + 1] == '\n') {
				crlf = in + i;
				break;
			}
		}
		if (crlf == NULL)
			break;
		ll = (size_t)(crlf - (in + pos));
		if (ll == 1 && in[pos] == '.') {
			*res = DATA_END;
			pos += 3;
			break;
		}
		if (ll > 0 && in[pos] == '.') {
			memcpy(out + ol, in + pos + 1, ll - 1);
			ol += ll - 1;
		} else {
			memcpy(out + ol, in + pos, ll);
			ol += ll;
		}
		out[ol++] = '\r';
		out[ol++] = '\n';
		pos += ll + 2;
	}
	if (*res == DATA_MORE) {
		/* the unterminated rest: a held "." / CR is not out yet */
		size_t i = pos;

		if (i < len && in[i] == '.')
			i++;
		for (; i < len; i++) {
			if (in[i] != '\r')
				out[ol++] = in[i];
		}
		pos = len;
	}
	*used = pos;
	*outlen = ol;
}

START_TEST(test_random)
{
	static const char alpha[] = "..ab\r\n";
	static const char clean[][4] = { ".", "a", "\r\n", "\r\n.", "b." };
	char in[48], ref[64];
	int iter;

	for (iter = 0; iter < 150; iter++) {
		size_t len = rnd() % sizeof in, i;

		for (i = 0; i < len; i++)
			in[i] = alpha[rnd() % (sizeof alpha - 1)];
		check_splits3(DATA_MODE_DOT, 0, in, len, 0);
		check_splits3(DATA_MODE_BDAT, 3, in, len, 0);
	}
	for (iter = 0; iter < 150; iter++) {
		enum data_result rres;
		size_t len = 0, rused, rlen;
		struct run r;

		while (len + 4 < sizeof in && rnd() % 12 != 0) {
			const char *t = clean[rnd() % 5];
			memcpy(in + len, t, strlen(t));
			len += strlen(t);
		}
		reference_clean(in, len, &rres, &rused, ref, &rlen);
		r = feed(DATA_MODE_DOT, 0, in, len);
		ck_assert_int_eq(r.res, rres);
		ck_assert_uint_eq(r.used, rused);
		ck_assert_uint_eq(r.flags, 0);
		ck_assert_uint_eq(r.outlen, rlen);
		ck_assert_mem_eq(r.out, ref, rlen);
		run_free(&r);
		check_splits3(DATA_MODE_DOT, 0, in, len, 0);
	}
}
END_TEST

/* A megabyte of bare CRs without a LF must stay linear (and not time out
 * under the sanitizers). */
START_TEST(test_linear_bare_cr)
{
	size_t len = BIG - 16, i;
	char *in = malloc(len);
	struct run r;

	ck_assert_ptr_nonnull(in);
	for (i = 0; i < len; i++)
		in[i] = (i % 2) ? '\r' : 'a';
	r = feed(DATA_MODE_DOT, 1000, in, len);
	ck_assert_int_eq(r.res, DATA_MORE);
	ck_assert_uint_eq(r.flags, DATA_BARE_CR);
	ck_assert_uint_eq(r.outlen, len / 2);
	run_free(&r);
	free(in);
}
END_TEST

/* --- line length ---------------------------------------------------------- */

START_TEST(test_line_length)
{
	/* 10 bytes with CRLF: at the limit */
	expect_dot(S("x\r\n12345678\r\n.\r\n"), 10, DATA_END, 16, 0,
	    S("x\r\n12345678\r\n"));
	/* 11: one over; scanning goes on to the end */
	expect_dot(S("x\r\n123456789\r\nok\r\n.\r\n"), 10, DATA_END, 21,
	    DATA_LONG_LINE, S("x\r\n123456789\r\nok\r\n"));
	/* counted as received: the stuffing dot counts */
	expect_dot(S("..34567\r\n.\r\n"), 9, DATA_END, 12, 0,
	    S(".34567\r\n"));
	expect_dot(S("..345678\r\n.\r\n"), 9, DATA_END, 13, DATA_LONG_LINE,
	    S(".345678\r\n"));
	/* the end line itself is short; the first line at the limit */
	expect_dot(S("1\r\n.\r\n"), 3, DATA_END, 6, 0, S("1\r\n"));
	/* an unterminated line over the limit is flagged at once */
	expect_dot(S("12345678901"), 10, DATA_MORE, 11, DATA_LONG_LINE,
	    S("12345678901"));
	expect_dot(S("1234567890"), 10, DATA_MORE, 10, 0, S("1234567890"));
	/* a bare LF ends a line for counting purposes */
	expect_dot(S("12345\n12345\r\n.\r\n"), 7, DATA_END, 16,
	    DATA_BARE_LF, S("1234512345\r\n"));
}
END_TEST

START_TEST(test_no_limit)
{
	size_t len = 200000, i;
	char *in = malloc(len + 5);
	struct run r;

	ck_assert_ptr_nonnull(in);
	for (i = 0; i < len; i++)
		in[i] = 'x';
	memcpy(in + len, "\r\n.\r\n", 5);
	r = feed(DATA_MODE_DOT, 0, in, len + 5);
	ck_assert_int_eq(r.res, DATA_END);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.outlen, len + 2);
	run_free(&r);
	r = feed(DATA_MODE_DOT, len + 2, in, len + 5);
	ck_assert_uint_eq(r.flags, 0);
	run_free(&r);
	r = feed(DATA_MODE_DOT, len + 1, in, len + 5);
	ck_assert_uint_eq(r.flags, DATA_LONG_LINE);
	run_free(&r);
	free(in);
}
END_TEST

/* --- BDAT mode ------------------------------------------------------------- */

static void expect_bdat(const char *in, size_t len, size_t max_line,
    unsigned flags, const char *out, size_t outlen, size_t fin_len)
{
	struct run r = feed(DATA_MODE_BDAT, max_line, in, len);

	ck_assert_int_eq(r.res, DATA_MORE);
	ck_assert_uint_eq(r.used, len);
	ck_assert_uint_eq(r.flags, flags);
	ck_assert_uint_eq(r.fin_len, fin_len);
	if (out != NULL) {
		ck_assert_uint_eq(r.outlen, outlen);
		ck_assert_mem_eq(r.out, out, outlen);
	}
	run_free(&r);
	check_splits(DATA_MODE_BDAT, max_line, in, len);
}

START_TEST(test_bdat)
{
	/* no dot processing, no end */
	expect_bdat(S("a\r\n.\r\n..x\r\n.\r\n"), 0, 0,
	    S("a\r\n.\r\n..x\r\n.\r\n"), 0);
	expect_bdat(S(".\r\n"), 0, 0, S(".\r\n"), 0);
	/* finish completes the last line */
	expect_bdat(S("a\r\nb"), 0, 0, S("a\r\nb\r\n"), 2);
	expect_bdat(S("."), 0, 0, S(".\r\n"), 2);
	/* empty message: nothing added */
	expect_bdat(S(""), 0, 0, S(""), 0);
	/* bare CR at the end: flagged by finish */
	expect_bdat(S("a\r\nb\r"), 0, DATA_BARE_CR, NULL, 0, 2);
	expect_bdat(S("abc\r"), 0, DATA_BARE_CR, S("abc\r\n"), 2);
	/* bare CR / LF elsewhere */
	expect_bdat(S("a\rb\r\n"), 0, DATA_BARE_CR, S("ab\r\n"), 0);
	expect_bdat(S("a\nb\r\n"), 0, DATA_BARE_LF, S("ab\r\n"), 0);
	expect_bdat(S("a\n.\n"), 0, DATA_BARE_LF, NULL, 0, 2);
	/* line length holds across chunks */
	expect_bdat(S("12345678\r\n"), 10, 0, S("12345678\r\n"), 0);
	expect_bdat(S("123456789\r\n"), 10, DATA_LONG_LINE,
	    S("123456789\r\n"), 0);
	/* the CRLF finish adds counts toward the last line */
	expect_bdat(S("12345678"), 10, 0, S("12345678\r\n"), 2);
	expect_bdat(S("123456789"), 10, DATA_LONG_LINE, S("123456789\r\n"),
	    2);
}
END_TEST

START_TEST(test_bdat_chunks)
{
	struct data_scanner s;
	uint8_t out[64];
	size_t olen, used;

	/* CR at the end of one chunk, LF at the start of the next: fine */
	data_scanner_init(&s, DATA_MODE_BDAT, 0);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"ab\r", 3, out, &olen,
	    &used), DATA_MORE);
	ck_assert_uint_eq(olen, 2);
	ck_assert_uint_eq(used, 3);
	ck_assert_int_eq(data_scan(&s, (const uint8_t *)"\n.\r\n", 4, out,
	    &olen, &used), DATA_MORE);
	ck_assert_uint_eq(olen, 5);
	ck_assert_mem_eq(out, "\r\n.\r\n", 5);
	ck_assert_uint_eq(used, 4);
	data_scanner_finish(&s, out, &olen);
	ck_assert_uint_eq(olen, 0);
	ck_assert_uint_eq(data_scanner_flags(&s), 0);
	ck_assert_uint_eq(s.out_bytes, 7);
	/* finish twice: the second adds nothing */
	data_scanner_finish(&s, out, &olen);
	ck_assert_uint_eq(olen, 0);

	/* CR at the end of a chunk, then not LF */
	data_scanner_init(&s, DATA_MODE_BDAT, 0);
	data_scan(&s, (const uint8_t *)"ab\r", 3, out, &olen, &used);
	data_scan(&s, (const uint8_t *)"c\r\n", 3, out, &olen, &used);
	ck_assert_uint_eq(data_scanner_flags(&s), DATA_BARE_CR);

	/* CR at the end of the last chunk */
	data_scanner_init(&s, DATA_MODE_BDAT, 0);
	data_scan(&s, (const uint8_t *)"ab\r\n", 4, out, &olen, &used);
	data_scan(&s, (const uint8_t *)"cd\r", 3, out, &olen, &used);
	ck_assert_uint_eq(data_scanner_flags(&s), 0);
	data_scanner_finish(&s, out, &olen);
	ck_assert_uint_eq(data_scanner_flags(&s), DATA_BARE_CR);
	ck_assert_uint_eq(olen, 2);
	ck_assert_mem_eq(out, "\r\n", 2);
	ck_assert_uint_eq(s.out_bytes, 8);
}
END_TEST

static Suite *smtp_data_suite(void)
{
	Suite *s = suite_create("smtp_data");
	TCase *tc = tcase_create("dot");

	tcase_add_test(tc, test_simple);
	tcase_add_test(tc, test_dot_unstuff);
	tcase_add_test(tc, test_end_at_start);
	tcase_add_test(tc, test_no_end_yet);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_after_end_sticky);
	tcase_add_test(tc, test_out_bytes);
	tcase_add_test(tc, test_held_cr);
	tcase_add_test(tc, test_bare_cr_positions);
	tcase_add_test(tc, test_bare_lf_positions);
	tcase_add_test(tc, test_ambiguous);
	suite_add_tcase(s, tc);

	tc = tcase_create("chunks");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_splits, 0,
	    (int)(sizeof split_inputs / sizeof split_inputs[0]));
	tcase_add_test(tc, test_random);
	tcase_add_test(tc, test_linear_bare_cr);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_line_length);
	tcase_add_test(tc, test_no_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat");
	tcase_add_test(tc, test_bdat);
	tcase_add_test(tc, test_bdat_chunks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smtp_data_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
