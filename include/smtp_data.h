/*
 * smtp_data.h - the message data scanner: a pure state machine over the
 * bytes a client sends after DATA (or inside BDAT chunks).
 *
 * In DATA mode it finds the end of data - CRLF "." CRLF and nothing else -
 * removes dot-stuffing (RFC 5321 4.5.2), and flags every bare CR and bare
 * LF: such a message is refused, never stored (the SMTP smuggling
 * defence).  After a bare CR/LF it also watches for end-of-data look-alikes
 * ("<LF>.<LF>", "<LF>.<CR><LF>", "<CR><LF>.<LF>", "<CR>.<CR>"...), which
 * tell the session the client meant to end there, so it can refuse and
 * close instead of swallowing what follows.
 * In BDAT mode there is no dot handling and no end marker; CR/LF rules
 * and the line length limit still hold across chunk boundaries.
 *
 * Output is the message as it will be stored: CRLF line ends, unstuffed.
 */
#ifndef FERRY_SMTP_DATA_H
#define FERRY_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

enum data_mode { DATA_MODE_DOT, DATA_MODE_BDAT };

/* Problems found so far (bits); the message is refused when any is set. */
#define DATA_BARE_CR   0x01
#define DATA_BARE_LF   0x02
#define DATA_LONG_LINE 0x04

struct data_scanner {
	enum data_mode mode;
	size_t max_line;      /* longest line allowed, CRLF included */
	/* private state */
	int state;
	size_t line_len;
	unsigned flags;       /* DATA_* bits */
	uint64_t out_bytes;   /* bytes emitted so far */
};

enum data_result {
	DATA_MORE = 0,        /* all input consumed, need more */
	DATA_END,             /* CRLF.CRLF seen; *used tells where it ended */
	DATA_END_AMBIGUOUS,   /* after a bare CR/LF, an end-of-data look-alike:
	                         the session must refuse and close */
};

void data_scanner_init(struct data_scanner *s, enum data_mode mode,
    size_t max_line);

/* Scans in[0..inlen); writes the message bytes to out (which must hold
 * inlen + 2 bytes: a CR held back from a previous call can be released),
 * setting *outlen, and *used to the number of input bytes consumed (all of
 * them unless the end was found).  In BDAT mode the result is always
 * DATA_MORE; call data_scanner_finish at the last chunk. */
enum data_result data_scan(struct data_scanner *s, const uint8_t *in,
    size_t inlen, uint8_t *out, size_t *outlen, size_t *used);

/* End of a BDAT message: a pending CR is a bare CR; a message not ending
 * in CRLF is completed with one (as RFC 3030 allows the server to).
 * Writes at most 2 bytes to out. */
void data_scanner_finish(struct data_scanner *s, uint8_t *out,
    size_t *outlen);

static inline unsigned data_scanner_flags(const struct data_scanner *s)
{
	return s->flags;
}

#endif
