/*
 * dkim_canon.h - DKIM's "relaxed" canonicalization (RFC 6376 3.4.2 and
 * 3.4.4) and the splitting of a header block into fields: pure functions
 * over buffers, no I/O, no allocation beyond what the caller hands in.
 *
 * Security stance: the input is a message from the network, arbitrary
 * bytes of any length; nothing here reads past the lengths given or
 * writes past the output bounds it documents.
 */
#ifndef FERRY_DKIM_CANON_H
#define FERRY_DKIM_CANON_H

#include <stddef.h>

/* One header field as it appears in the block: name (without the colon)
 * and the raw field, from the name's first byte up to and including its
 * last line's end (CRLF or LF; none when the block ends without one). */
struct dkim_field {
	const char *name;
	size_t name_len;
	const char *raw;
	size_t raw_len;
};

/* The next field of a header block, from *pos on; continuation lines
 * (starting with space or tab) belong to the field before them.  A line
 * without a colon, or whose name is not printable ASCII, is skipped.
 * Returns 1 with *f filled and *pos moved past the field, or 0 at the
 * block's end (an empty line or len). */
int dkim_header_next(const char *buf, size_t len, size_t *pos,
    struct dkim_field *f);

/* The relaxed canonical form of a raw field, "name:value\r\n" with the
 * name lower-cased, the value unfolded, runs of space and tab made one
 * space and spaces around the colon and at the end dropped.  The output
 * is never longer than raw_len + 2; out must hold that.  Returns the
 * length written. */
size_t dkim_canon_header(const char *raw, size_t raw_len, char *out);

/* The body's relaxed canonical form, fed in pieces of any size.  Bytes
 * go to sink as they are decided; trailing empty lines are held back
 * until something follows them. */
typedef void (*dkim_sink)(void *arg, const void *data, size_t len);

struct dkim_body_canon {
	dkim_sink sink;
	void *arg;
	size_t pending_crlf;   /* line ends not yet written */
	int wsp;               /* space or tab seen, not yet written */
	int cr;                /* the last byte was a CR */
	int any;               /* some content was written */
};

void dkim_body_canon_init(struct dkim_body_canon *b, dkim_sink sink,
    void *arg);
void dkim_body_canon_feed(struct dkim_body_canon *b, const void *data,
    size_t len);
/* Ends the body: a body with content ends in exactly one CRLF, an empty
 * one (or only empty lines) stays empty. */
void dkim_body_canon_finish(struct dkim_body_canon *b);

#endif
