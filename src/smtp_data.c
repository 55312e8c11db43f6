/*
 * smtp_data.c - the message data scanner (see smtp_data.h): finds the end
 * of DATA, removes dot-stuffing, flags bare CR / bare LF and long lines,
 * and spots end-of-data look-alikes once a bare CR/LF has been seen.
 *
 * Security stance: every input byte is untrusted network data.  This is a
 * pure state machine: no allocation, no I/O, no global state.  It reads
 * only in[0..inlen) and writes at most inlen + 1 bytes to out per call
 * (a CR held back at the end of one call is released with the LF that
 * starts the next), so the caller's inlen + 2 buffer is never overrun.
 * Work is linear in the input whatever its content.
 *
 * Line terminators: CRLF is the only proper one.  A bare CR or bare LF is
 * flagged and also ends the line (so line length and look-alike detection
 * restart after it).  The bare character itself is never emitted; since a
 * flagged message is refused, the exact output after a flag is otherwise
 * unspecified (but still bounded).
 *
 * Line length is counted as received (before dot-unstuffing), CRLF
 * included; a bare CR/LF counts toward the line it ends.
 *
 * The input and output buffers must not overlap.
 */
#include "smtp_data.h"

#include <string.h>

enum {
	ST_BOL_CLEAN = 0,  /* beginning of line after CRLF (or at the start) */
	ST_BOL_BARE,       /* beginning of line after a bare CR or LF */
	ST_TEXT,           /* inside a line */
	ST_CR,             /* CR seen and held back: is LF next? */
	ST_DOT_CLEAN,      /* "." at ST_BOL_CLEAN (dropped) */
	ST_DOT_BARE,       /* "." at ST_BOL_BARE (dropped) */
	ST_DOTCR_CLEAN,    /* ST_DOT_CLEAN then CR (held) */
	ST_DOTCR_BARE,     /* ST_DOT_BARE then CR (held) */
	ST_END,            /* DATA_END returned; sticky */
	ST_END_AMBIGUOUS,  /* DATA_END_AMBIGUOUS returned; sticky */
};

void data_scanner_init(struct data_scanner *s, enum data_mode mode,
    size_t max_line)
{
	memset(s, 0, sizeof *s);
	s->mode = mode;
	s->max_line = max_line;
	s->state = ST_BOL_CLEAN;
}

/* Adds n received bytes to the current line.  Saturates just above the
 * limit, so the counter cannot wrap; with no limit it is not kept. */
static inline void line_add(struct data_scanner *s, size_t n)
{
	if (s->max_line == 0)
		return;
	if (n > s->max_line - s->line_len) {
		s->flags |= DATA_LONG_LINE;
		s->line_len = s->max_line + 1;
	} else {
		s->line_len += n;
	}
}

enum data_result data_scan(struct data_scanner *s, const uint8_t *in,
    size_t inlen, uint8_t *out, size_t *outlen, size_t *used)
{
	const uint8_t *p = in, *end = in + inlen;
	const uint8_t *nl = NULL;  /* next LF at or after p; end if none */
	uint8_t *o = out;
	enum data_result res = DATA_MORE;
	int dot = (s->mode == DATA_MODE_DOT);

	if (s->state == ST_END || s->state == ST_END_AMBIGUOUS) {
		*outlen = 0;
		*used = 0;
		return s->state == ST_END ? DATA_END : DATA_END_AMBIGUOUS;
	}

	while (p < end) {
		switch (s->state) {
		case ST_TEXT: {
			/* Skip ordinary bytes up to the next CR or LF.  The LF
			 * position is remembered across iterations so that a
			 * line full of bare CRs costs no rescans. */
			const uint8_t *stop, *cr;
			size_t run;

			if (nl == NULL || nl < p) {
				nl = memchr(p, '\n', (size_t)(end - p));
				if (nl == NULL)
					nl = end;
			}
			cr = memchr(p, '\r', (size_t)(nl - p));
			stop = cr ? cr : nl;
			run = (size_t)(stop - p);
			if (run > 0) {
				memcpy(o, p, run);
				o += run;
				line_add(s, run);
				p = stop;
			}
			if (p == end)
				break;
			line_add(s, 1);
			if (*p++ == '\r') {
				s->state = ST_CR;
			} else {
				s->flags |= DATA_BARE_LF;
				s->line_len = 0;
				s->state = ST_BOL_BARE;
			}
			break;
		}

		case ST_BOL_CLEAN:
		case ST_BOL_BARE:
			if (dot && *p == '.') {
				p++;
				line_add(s, 1);
				s->state = s->state == ST_BOL_CLEAN ?
				    ST_DOT_CLEAN : ST_DOT_BARE;
			} else {
				s->state = ST_TEXT;
			}
			break;

		case ST_CR:
			if (*p == '\n') {
				p++;
				line_add(s, 1);
				*o++ = '\r';
				*o++ = '\n';
				s->line_len = 0;
				s->state = ST_BOL_CLEAN;
			} else {
				/* Bare CR: dropped; *p is looked at again as
				 * the first byte of a new line. */
				s->flags |= DATA_BARE_CR;
				s->line_len = 0;
				s->state = ST_BOL_BARE;
			}
			break;

		case ST_DOT_CLEAN:
		case ST_DOT_BARE:
			if (*p == '\r') {
				p++;
				line_add(s, 1);
				s->state = s->state == ST_DOT_CLEAN ?
				    ST_DOTCR_CLEAN : ST_DOTCR_BARE;
			} else if (*p == '\n') {
				/* "." ended by a bare LF: a look-alike. */
				p++;
				s->flags |= DATA_BARE_LF;
				res = DATA_END_AMBIGUOUS;
				goto done;
			} else {
				/* A stuffed line: the leading dot stays
				 * dropped, the rest is ordinary text. */
				s->state = ST_TEXT;
			}
			break;

		case ST_DOTCR_CLEAN:
		case ST_DOTCR_BARE:
			if (*p == '\n') {
				p++;
				res = s->state == ST_DOTCR_CLEAN ?
				    DATA_END : DATA_END_AMBIGUOUS;
			} else {
				/* "." ended by a bare CR; *p is not part of
				 * the end sequence and stays unconsumed. */
				s->flags |= DATA_BARE_CR;
				res = DATA_END_AMBIGUOUS;
			}
			goto done;

		default:
			/* Unreachable: a corrupted state ends the message
			 * as ambiguous rather than reading on. */
			res = DATA_END_AMBIGUOUS;
			goto done;
		}
	}

done:
	if (res == DATA_END)
		s->state = ST_END;
	else if (res == DATA_END_AMBIGUOUS)
		s->state = ST_END_AMBIGUOUS;
	*outlen = (size_t)(o - out);
	*used = (size_t)(p - in);
	s->out_bytes += *outlen;
	return res;
}

void data_scanner_finish(struct data_scanner *s, uint8_t *out,
    size_t *outlen)
{
	*outlen = 0;
	if (s->state == ST_END || s->state == ST_END_AMBIGUOUS)
		return;
	if (s->state == ST_CR || s->state == ST_DOTCR_CLEAN ||
	    s->state == ST_DOTCR_BARE) {
		s->flags |= DATA_BARE_CR;
		s->line_len = 0;
		s->state = ST_BOL_BARE;
	}
	if (s->out_bytes > 0 && s->state != ST_BOL_CLEAN) {
		line_add(s, 2);
		out[0] = '\r';
		out[1] = '\n';
		*outlen = 2;
		s->out_bytes += 2;
	}
	s->line_len = 0;
	s->state = ST_BOL_CLEAN;
}
