/*
 * fuzz_dkim_canon.c - libFuzzer harness for DKIM's relaxed
 * canonicalization (dkim_canon.c).
 *
 * Input: a message as the queue runner receives it.  Its header block is
 * split into fields; every field lies inside the input, has a name, and
 * its canonical form fits the documented bound, has a lower-case name
 * without blanks, no line end but the last, no tab and no two spaces in
 * a row, and no space before the CRLF.  The whole input is also
 * canonicalized as a body, fed whole and fed in two pieces split where
 * the first byte says: both give the same bytes, which hold no blank
 * before a CRLF, no tab, no two spaces in a row, end in exactly one CRLF
 * (or are empty) and never in an empty line.
 */
#include "fuzz.h"

#include "dkim_canon.h"

struct out {
	uint8_t *p;
	size_t len, cap;
};

static void
collect(void *arg, const void *data, size_t len)
{
	struct out *o = arg;

	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2 + 16;
		o->p = realloc(o->p, o->cap);
		FUZZ_CHECK(o->p != NULL);
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

static void
body(const uint8_t *data, size_t size, size_t split, struct out *o)
{
	struct dkim_body_canon b;

	dkim_body_canon_init(&b, collect, o);
	dkim_body_canon_feed(&b, data, split);
	dkim_body_canon_feed(&b, data + split, size - split);
	dkim_body_canon_finish(&b);
}

static void
check_header(const struct dkim_field *f)
{
	char *out = malloc(f->raw_len + 2);
	size_t n, i, colon;

	FUZZ_CHECK(out != NULL);
	n = dkim_canon_header(f->raw, f->raw_len, out);
	FUZZ_CHECK(n >= 3 && n <= f->raw_len + 2);
	FUZZ_CHECK(out[n - 2] == '\r' && out[n - 1] == '\n');
	colon = (size_t)((char *)memchr(out, ':', n) - out);
	FUZZ_CHECK(colon == f->name_len);
	for (i = 0; i < colon; i++)
		FUZZ_CHECK(!(out[i] >= 'A' && out[i] <= 'Z'));
	for (i = 0; i + 2 < n; i++) {
		FUZZ_CHECK(out[i] != '\r' && out[i] != '\n' && out[i] != '\t');
		if (i > colon)
			FUZZ_CHECK(!(out[i] == ' ' && (out[i + 1] == ' ' ||
			    out[i + 1] == '\r' || i == colon + 1)));
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out whole = { 0 }, parts = { 0 };
	struct dkim_field f;
	size_t pos = 0, last = 0, i;
	char *copy = malloc(size ? size : 1);

	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, size);
	while (dkim_header_next(copy, size, &pos, &f)) {
		FUZZ_CHECK(f.raw >= copy && f.raw + f.raw_len <= copy + size);
		FUZZ_CHECK(f.name == f.raw && f.name_len > 0 &&
		    f.name_len < f.raw_len);
		FUZZ_CHECK(pos > last && pos <= size);
		last = pos;
		check_header(&f);
	}
	free(copy);

	body(data, size, 0, &whole);
	body(data, size, size ? data[0] % (size + 1) : 0, &parts);
	FUZZ_CHECK(whole.len == parts.len &&
	    (whole.len == 0 || memcmp(whole.p, parts.p, whole.len) == 0));
	if (whole.len > 0) {
		FUZZ_CHECK(whole.len >= 2 && whole.p[whole.len - 2] == '\r' &&
		    whole.p[whole.len - 1] == '\n');
		FUZZ_CHECK(!(whole.len >= 4 && whole.p[whole.len - 4] == '\r' &&
		    whole.p[whole.len - 3] == '\n'));
	}
	for (i = 0; i < whole.len; i++) {
		FUZZ_CHECK(whole.p[i] != '\t');
		if (whole.p[i] == ' ' && i + 1 < whole.len)
			FUZZ_CHECK(whole.p[i + 1] != ' ' &&
			    !(whole.p[i + 1] == '\r' && i + 2 < whole.len &&
			    whole.p[i + 2] == '\n'));
	}
	free(whole.p);
	free(parts.p);
	return 0;
}
