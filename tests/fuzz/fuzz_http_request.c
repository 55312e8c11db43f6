/*
 * fuzz_http_request.c - libFuzzer harness for the metrics endpoint's
 * request-head parser (http_request.c).
 *
 * Input: what an HTTP client sends, at most HTTP_HEAD_MAX bytes as the
 * server reads it.  The head is parsed whole and at prefix lengths the
 * way the server reads it growing: one byte short of the end of head is
 * HTTP_INCOMPLETE, and every prefix that holds the end of head gives the
 * same answer as the whole.  A
 * complete request must be well-formed: a terminated method made of
 * token characters, a terminated path starting with '/' made of
 * printable ASCII, a minor version of 0 or 1, and a head length within
 * the input.  Each call gets an exact-size copy so ASan sees any read
 * past the end.
 */
#include "fuzz.h"

#include "http_request.h"

static enum http_parse
parse_copy(const uint8_t *data, size_t len, struct http_request *req)
{
	char *copy = malloc(len ? len : 1);
	enum http_parse r;

	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, len);
	r = http_parse_head(copy, len, req);
	free(copy);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request whole, part;
	enum http_parse r, rp;
	size_t n, i;


	if (size > HTTP_HEAD_MAX)
		size = HTTP_HEAD_MAX;
	r = parse_copy(data, size, &whole);
	FUZZ_CHECK(r >= HTTP_INCOMPLETE && r <= HTTP_BAD_VERSION);
	if (r == HTTP_COMPLETE) {
		FUZZ_CHECK(FUZZ_TERMINATED(whole.method));
		FUZZ_CHECK(FUZZ_TERMINATED(whole.path));
		FUZZ_CHECK(whole.method[0] != '\0');
		FUZZ_CHECK(whole.path[0] == '/');
		for (i = 0; whole.path[i]; i++)
			FUZZ_CHECK(whole.path[i] > 0x20 &&
			    whole.path[i] < 0x7f);
		FUZZ_CHECK(whole.minor == 0 || whole.minor == 1);
		FUZZ_CHECK(whole.head_len > 0 && whole.head_len <= size);
	}
	if (r == HTTP_INCOMPLETE)
		return 0;
	/* the first end of head decides: one byte less is not a head yet,
	 * and the head alone (or anything after it) answers the same */
	FUZZ_CHECK(parse_copy(data, whole.head_len - 1, &part) ==
	    HTTP_INCOMPLETE);
	for (n = whole.head_len; n <= size; n += (size - n) / 2 + 1) {
		rp = parse_copy(data, n, &part);
		FUZZ_CHECK(rp == r);
		FUZZ_CHECK(part.head_len == whole.head_len);
		if (rp == HTTP_COMPLETE) {
			FUZZ_CHECK(strcmp(part.method, whole.method) == 0);
			FUZZ_CHECK(strcmp(part.path, whole.path) == 0);
		}
	}
	return 0;
}
