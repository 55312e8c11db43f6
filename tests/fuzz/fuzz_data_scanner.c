/*
 * fuzz_data_scanner.c - libFuzzer harness for the DATA / BDAT scanner
 * (smtp_data.c).
 *
 * Input: byte 0 picks the mode (bit 0: BDAT) and max_line (the other
 * seven bits, 0 = no limit); bytes 1..3 pick three cut points; the rest
 * is the stream.  It is scanned in one piece, in the four pieces the
 * cuts make, and (when short) one byte at a time; every run must give
 * the same output bytes, flags, result and end position.  Each call gets
 * an exact-size input copy and an output buffer of exactly inlen + 2
 * bytes, so ASan sees any overrun, and must write at most that much and
 * consume at most what it was given.
 *
 * Besides the differential, a reference model written for this harness
 * judges clean streams (no bare CR or LF before the end): the end of DATA
 * is the first line that is exactly ".", a leading dot is dropped, and the
 * long-line flag is set when a line, CRLF included, exceeds max_line.  In
 * BDAT mode the bare CR / bare LF flags must match the model exactly.
 */
#include "fuzz.h"

#include <string.h>

#include "smtp_data.h"

#define BYTEWISE_MAX 2048

struct run {
	uint8_t *out;          /* everything emitted, finish included */
	size_t outlen;
	unsigned flags;
	enum data_result res;
	size_t end;            /* input bytes consumed in all */
};

/* Each CR in out is followed by LF and each LF preceded by CR. */
static int
crlf_only(const uint8_t *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (out[i] == '\r' && (i + 1 == n || out[i + 1] != '\n'))
			return 0;
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			return 0;
	}
	return 1;
}

/* Scans in[0..n) in the pieces [cuts[i-1], cuts[i]); cuts ends with n. */
static void
scan(enum data_mode mode, size_t max_line, const uint8_t *in, size_t n,
    const size_t *cuts, size_t ncuts, struct run *r)
{
	struct data_scanner s;
	size_t i, from = 0;

	memset(r, 0, sizeof(*r));
	r->out = fuzz_alloc(n + 2);
	r->res = DATA_MORE;
	data_scanner_init(&s, mode, max_line);
	for (i = 0; i < ncuts; i++) {
		size_t len = cuts[i] - from, outlen = 99, used = 99;
		uint8_t *chunk = fuzz_dup(in + from, len);
		uint8_t *out = fuzz_alloc(len + 2);
		enum data_result res;

		res = data_scan(&s, chunk, len, out, &outlen, &used);
		FUZZ_CHECK(res == DATA_MORE || res == DATA_END ||
		    res == DATA_END_AMBIGUOUS);
		FUZZ_CHECK(outlen <= len + 2);
		FUZZ_CHECK(used <= len);
		FUZZ_CHECK(res != DATA_MORE || used == len);
		FUZZ_CHECK(mode == DATA_MODE_DOT || res == DATA_MORE);
		FUZZ_CHECK(r->outlen + outlen <= n + 2);
		memcpy(r->out + r->outlen, out, outlen);
		r->outlen += outlen;
		free(out);
		free(chunk);
		if (res != DATA_MORE) {
			uint8_t again[2];

			r->res = res;
			r->end = from + used;
			/* the end is sticky and consumes nothing more */
			FUZZ_CHECK(data_scan(&s, in, n, again, &outlen,
			    &used) == res);
			FUZZ_CHECK(outlen == 0 && used == 0);
			break;
		}
		from = cuts[i];
	}
	if (r->res == DATA_MORE) {
		r->end = n;
		if (mode == DATA_MODE_BDAT) {
			uint8_t *fin = fuzz_alloc(2);
			size_t fl = 99;

			data_scanner_finish(&s, fin, &fl);
			FUZZ_CHECK(fl == 0 || (fl == 2 && fin[0] == '\r' &&
			    fin[1] == '\n'));
			FUZZ_CHECK(r->outlen + fl <= n + 2);
			memcpy(r->out + r->outlen, fin, fl);
			r->outlen += fl;
			data_scanner_finish(&s, fin, &fl);
			FUZZ_CHECK(fl == 0);
			free(fin);
		}
	}
	r->flags = data_scanner_flags(&s);
	FUZZ_CHECK((r->flags & ~(unsigned)(DATA_BARE_CR | DATA_BARE_LF |
	    DATA_LONG_LINE)) == 0);
	FUZZ_CHECK(max_line != 0 || !(r->flags & DATA_LONG_LINE));
	FUZZ_CHECK(s.out_bytes == r->outlen);
	FUZZ_CHECK(r->outlen <= r->end + 2);
	FUZZ_CHECK(crlf_only(r->out, r->outlen));
	if (r->res == DATA_END) {
		FUZZ_CHECK(r->end >= 3 && memcmp(in + r->end - 3, ".\r\n",
		    3) == 0);
		FUZZ_CHECK(r->end == 3 ||
		    (r->end >= 5 && memcmp(in + r->end - 5, "\r\n", 2) == 0));
	}
	if (r->res == DATA_END_AMBIGUOUS)
		FUZZ_CHECK(r->flags & (DATA_BARE_CR | DATA_BARE_LF));
}

static void
same_run(const struct run *a, const struct run *b)
{
	FUZZ_CHECK(a->res == b->res);
	FUZZ_CHECK(a->end == b->end);
	FUZZ_CHECK(a->flags == b->flags);
	FUZZ_CHECK(a->outlen == b->outlen);
	FUZZ_CHECK(a->outlen == 0 || memcmp(a->out, b->out, a->outlen) == 0);
}

/*
 * The reference model.  Fills out/outlen/end/res for a clean stream and
 * returns 1, or returns 0 at the first bare CR or LF.  *longest is the
 * longest line as received, CRLF included (the appended CRLF counts
 * toward the last line in BDAT mode).
 */
static int
model(enum data_mode mode, const uint8_t *in, size_t n, struct run *r,
    size_t *longest)
{
	size_t pos = 0;
	int dot = mode == DATA_MODE_DOT;

	memset(r, 0, sizeof(*r));
	r->out = fuzz_alloc(n + 2);
	r->res = DATA_MORE;
	*longest = 0;
	while (pos < n) {
		size_t e = pos, ll, skip;

		if (dot && n - pos >= 3 && memcmp(in + pos, ".\r\n", 3) == 0) {
			if (*longest < 3)
				*longest = 3;
			r->res = DATA_END;
			r->end = pos + 3;
			return 1;
		}
		while (e < n && in[e] != '\r' && in[e] != '\n')
			e++;
		skip = dot && e > pos && in[pos] == '.' ? 1 : 0;
		if (e == n || (in[e] == '\r' && e + 1 == n)) {
			/* the last, unfinished line */
			if (e < n && !dot)
				return 0;   /* CR left at the end of BDAT */
			ll = n - pos;
			memcpy(r->out + r->outlen, in + pos + skip,
			    e - pos - skip);
			r->outlen += e - pos - skip;
			if (!dot && r->outlen > 0) {
				memcpy(r->out + r->outlen, "\r\n", 2);
				r->outlen += 2;
				ll += 2;
			}
			if (*longest < ll)
				*longest = ll;
			break;
		}
		if (in[e] == '\n' || in[e + 1] != '\n')
			return 0;   /* bare LF, bare CR */
		ll = e + 2 - pos;
		if (*longest < ll)
			*longest = ll;
		memcpy(r->out + r->outlen, in + pos + skip, e - pos - skip);
		r->outlen += e - pos - skip;
		memcpy(r->out + r->outlen, "\r\n", 2);
		r->outlen += 2;
		pos = e + 2;
	}
	r->end = n;
	return 1;
}

/* In BDAT mode the bare CR / LF flags are exact. */
static unsigned
model_bare(const uint8_t *in, size_t n)
{
	unsigned f = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (in[i] == '\r' && (i + 1 == n || in[i + 1] != '\n'))
			f |= DATA_BARE_CR;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			f |= DATA_BARE_LF;
	}
	return f;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum data_mode mode;
	size_t max_line, n, cuts[4], bytewise[BYTEWISE_MAX], i, longest;
	const uint8_t *in;
	struct run one, four, each, ref;

	if (size < 4)
		return 0;
	mode = (data[0] & 1) ? DATA_MODE_BDAT : DATA_MODE_DOT;
	max_line = data[0] >> 1;
	in = data + 4;
	n = size - 4;
	for (i = 0; i < 3; i++)
		cuts[i] = (size_t)data[1 + i] * n / 255;
	cuts[3] = n;
	/* sort the three cuts */
	for (i = 0; i < 3; i++) {
		size_t j;

		for (j = i + 1; j < 3; j++)
			if (cuts[j] < cuts[i]) {
				size_t t = cuts[i];
				cuts[i] = cuts[j];
				cuts[j] = t;
			}
	}

	scan(mode, max_line, in, n, &n, 1, &one);
	scan(mode, max_line, in, n, cuts, 4, &four);
	same_run(&one, &four);
	if (n <= BYTEWISE_MAX) {
		for (i = 0; i < n; i++)
			bytewise[i] = i + 1;
		scan(mode, max_line, in, n, bytewise, n, &each);
		same_run(&one, &each);
		free(each.out);
	}

	if (mode == DATA_MODE_BDAT)
		FUZZ_CHECK((one.flags & (DATA_BARE_CR | DATA_BARE_LF)) ==
		    model_bare(in, n));
	if (model(mode, in, n, &ref, &longest)) {
		FUZZ_CHECK(ref.res == one.res);
		FUZZ_CHECK(ref.end == one.end);
		FUZZ_CHECK((one.flags & (DATA_BARE_CR | DATA_BARE_LF)) == 0);
		FUZZ_CHECK(ref.outlen == one.outlen);
		FUZZ_CHECK(ref.outlen == 0 ||
		    memcmp(ref.out, one.out, ref.outlen) == 0);
		if (max_line == 0 || max_line >= 3)
			FUZZ_CHECK(!!(one.flags & DATA_LONG_LINE) ==
			    (max_line != 0 && longest > max_line));
	} else if (one.res == DATA_END) {
		/* a bare CR/LF before a proper end: flagged */
		FUZZ_CHECK(one.flags & (DATA_BARE_CR | DATA_BARE_LF));
	}
	free(ref.out);
	free(one.out);
	free(four.out);
	return 0;
}
