/*
 * from_rewrite.h - rewriting a message's header From to a route's
 * account address (route rewrite_from / allowed_from), a pure function
 * over the header block.
 */
#ifndef FERRY_FROM_REWRITE_H
#define FERRY_FROM_REWRITE_H

#include <stddef.h>

/* The most header the delivery agent holds back to look for From: a
 * header block longer than this goes out unchanged. */
#define FROM_REWRITE_MAX_HEADER 65536

/* What a rewrite did, for the log line. */
struct from_rewrite_out {
	char *buf;                /* the new header block (malloc'd) */
	size_t len;
	char old[512];            /* the From addresses replaced, truncated */
};

/* Where the header block of msg[0..len) ends: the offset just past the
 * empty line (CRLF CRLF or LF LF, or the message's first line when it is
 * empty), or 0 when len bytes hold no end of header yet. */
size_t from_rewrite_header_end(const char *msg, size_t len);

/* Rewrites hdr[0..len) (a header block, with or without its empty line)
 * so that every From field whose addresses are not all allowed - equal
 * to account, or matching one of allowed[0..nallowed) as
 * address_pattern_rank() says - becomes "From: <account>" (with the
 * original display name kept when the field held one mailbox in angle
 * brackets); when the block has no Reply-To field, the first replaced
 * field's value goes, byte for byte, into a Reply-To field right after
 * it.  A field's every line (folded continuation lines too) is replaced
 * as one; the new lines end as the replaced field's last line did (CRLF
 * or LF).  Every other byte is kept.  Returns 1 with out->buf set when
 * something was replaced, 0 when the block is left as it is (out->buf
 * NULL; also out of memory). */
int from_rewrite_header(const char *hdr, size_t len, const char *account,
    char *const *allowed, size_t nallowed, struct from_rewrite_out *out);

#endif
