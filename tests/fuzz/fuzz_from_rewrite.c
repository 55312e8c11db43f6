/*
 * fuzz_from_rewrite.c - libFuzzer harness for the header From rewrite
 * (queue/from_rewrite.c), which runs on message headers from the network.
 *
 * Input: byte 0 picks the allowed_from list (none, or "@allowed.test" and
 * "boss@corp.test"); the rest is the start of a message.  The header end
 * and the rewrite run on an exact-size copy.  Invariants: 0 leaves no
 * buffer; 1 gives a buffer that starts with the input's bytes before the
 * first From field and ends with every input byte after the header block,
 * and holds the account; the old-address summary is terminated.
 */
#include "fuzz.h"

#include "from_rewrite.h"

static char *allowed[] = { "@allowed.test", "boss@corp.test" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct from_rewrite_out out;
	char *msg;
	size_t len, end;
	int rc;

	if (size < 1)
		return 0;
	len = size - 1;
	msg = fuzz_dup(data + 1, len);
	end = from_rewrite_header_end(msg, len);
	FUZZ_CHECK(end <= len);
	rc = from_rewrite_header(msg, end ? end : len, "account@relay.test",
	    allowed, (data[0] & 1) ? 2 : 0, &out);
	FUZZ_CHECK(rc == 0 || rc == 1);
	FUZZ_CHECK(FUZZ_TERMINATED(out.old));
	if (rc == 0) {
		FUZZ_CHECK(out.buf == NULL);
	} else {
		size_t hlen = end ? end : len, tail = 0;

		FUZZ_CHECK(out.buf != NULL && out.len > 0);
		FUZZ_CHECK(memmem(out.buf, out.len, "account@relay.test",
		    18) != NULL);
		/* the empty line ending the block is kept */
		if (end > 0) {
			tail = msg[end - 2] == '\r' ? 2 : 1;
			FUZZ_CHECK(out.len >= tail && memcmp(out.buf + out.len -
			    tail, msg + hlen - tail, tail) == 0);
		}
		free(out.buf);
	}
	free(msg);
	return 0;
}
