/*
 * fuzz_proxy_header.c - libFuzzer harness for the PROXY protocol header
 * parser (proxy_header.c).
 *
 * Input: a first byte choosing the version the listener expects (its low
 * bit: 0 for v1, 1 for v2), then what a balancer sends, at most
 * PROXY_HEADER_MAX bytes as the worker reads it.  Invariants: the answer
 * is one of the three; a header is never longer than its version's
 * limit nor than the input; every shorter prefix of a complete header
 * needs more (the worker consumes what it has seen on that promise) and
 * the header alone gives the same answer as the header with the
 * client's bytes after it; "need more" is only said below the limit;
 * addresses are IPv4 or IPv6, both of one family; LOCAL is v2 and has
 * none; an error has a reason.  Each call gets an exact-size copy so
 * ASan sees any read past the end.
 */
#include "fuzz.h"

#include <sys/socket.h>

#include "proxy_header.h"

static enum proxy_status
parse_copy(int version, const uint8_t *data, size_t len,
    struct proxy_result *res)
{
	uint8_t *copy = fuzz_dup(data, len);
	enum proxy_status st = proxy_header_parse(version, copy, len, res);

	free(copy);
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result whole, part;
	enum proxy_status st;
	size_t limit, i;
	int version;

	if (size < 1)
		return 0;
	version = (data[0] & 1) ? 2 : 1;
	data++;
	size--;
	if (size > PROXY_HEADER_MAX)
		size = PROXY_HEADER_MAX;
	limit = version == 1 ? PROXY_V1_MAX : PROXY_V2_MAX;
	st = parse_copy(version, data, size, &whole);
	FUZZ_CHECK(st == PROXY_NEED_MORE || st == PROXY_DONE ||
	    st == PROXY_ERROR);
	FUZZ_CHECK(whole.version == version);
	if (st == PROXY_ERROR) {
		FUZZ_CHECK(whole.error != NULL && whole.error[0] != '\0');
		return 0;
	}
	if (st == PROXY_NEED_MORE) {
		FUZZ_CHECK(size < limit);
		return 0;
	}
	FUZZ_CHECK(whole.length > 0 && whole.length <= size);
	FUZZ_CHECK(whole.length <= limit);
	if (whole.has_addr) {
		int f = whole.src.ss_family;

		FUZZ_CHECK(f == AF_INET || f == AF_INET6);
		FUZZ_CHECK(whole.dst.ss_family == f);
	}
	if (whole.local)
		FUZZ_CHECK(version == 2 && !whole.has_addr);
	for (i = 0; i < whole.length; i++)
		FUZZ_CHECK(parse_copy(version, data, i, &part) ==
		    PROXY_NEED_MORE);
	FUZZ_CHECK(parse_copy(version, data, whole.length, &part) ==
	    PROXY_DONE);
	FUZZ_CHECK(part.length == whole.length);
	FUZZ_CHECK(part.has_addr == whole.has_addr);
	FUZZ_CHECK(part.local == whole.local);
	FUZZ_CHECK(memcmp(&part.src, &whole.src, sizeof(part.src)) == 0);
	FUZZ_CHECK(memcmp(&part.dst, &whole.dst, sizeof(part.dst)) == 0);
	return 0;
}
