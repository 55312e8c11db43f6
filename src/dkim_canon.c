/*
 * dkim_canon.c - DKIM relaxed canonicalization of header fields and body
 * (RFC 6376 3.4.2, 3.4.4) and the splitting of a header block into
 * fields.  Pure functions over buffers: the signer (dkim_sign.c) feeds
 * them the message as the queue runner receives it, and the unit tests
 * and the fuzzer feed them anything.
 *
 * Security stance: the bytes come from the network.  Every loop is
 * bounded by the lengths given, the output bound of dkim_canon_header()
 * holds for any input, and the body canonicalizer keeps a fixed amount
 * of state whatever it is fed.
 */
#include "autoconfig.h"

#include <string.h>

#include "dkim_canon.h"

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* A field name: one or more printable ASCII characters but ':' (RFC 5322
 * ftext); the name as written may end in blanks before the colon. */
static int
field_name(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < 33 || s[i] > 126)
			return 0;
	return n > 0;
}

/* Where the line that starts at pos ends (just past its LF, or len). */
static size_t
line_end(const char *buf, size_t len, size_t pos)
{
	const char *nl = memchr(buf + pos, '\n', len - pos);

	return nl == NULL ? len : (size_t)(nl - buf) + 1;
}

/* An empty line: CRLF, LF, or a lone CR at the block's end. */
static int
empty_line(const char *buf, size_t len, size_t pos)
{
	if (buf[pos] == '\n')
		return 1;
	return buf[pos] == '\r' && (pos + 1 == len || buf[pos + 1] == '\n');
}

int
dkim_header_next(const char *buf, size_t len, size_t *pos,
    struct dkim_field *f)
{
	size_t p = *pos;

	while (p < len) {
		size_t start = p, end, n;
		const char *colon;

		if (empty_line(buf, len, p))
			break;
		end = line_end(buf, len, p);
		while (end < len && is_wsp(buf[end]))
			end = line_end(buf, len, end);
		p = end;
		if (is_wsp(buf[start]))
			continue;   /* a continuation with nothing before it */
		colon = memchr(buf + start, ':', end - start);
		if (colon == NULL)
			continue;   /* not a field: skipped */
		n = (size_t)(colon - (buf + start));
		while (n > 0 && is_wsp(buf[start + n - 1]))
			n--;
		if (!field_name(buf + start, n))
			continue;   /* not a field name: skipped */
		f->name = buf + start;
		f->name_len = n;
		f->raw = buf + start;
		f->raw_len = end - start;
		*pos = p;
		return 1;
	}
	*pos = p;
	return 0;
}

size_t
dkim_canon_header(const char *raw, size_t raw_len, char *out)
{
	const char *colon = memchr(raw, ':', raw_len);
	size_t n, i, o = 0;
	int wsp = 0, content = 0;

	if (colon == NULL) {
		out[0] = '\r';
		out[1] = '\n';
		return 2;
	}
	n = (size_t)(colon - raw);
	while (n > 0 && is_wsp(raw[n - 1]))
		n--;
	for (i = 0; i < n; i++) {
		char c = raw[i];

		out[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[o++] = ':';
	for (i = (size_t)(colon - raw) + 1; i < raw_len; i++) {
		char c = raw[i];

		if (c == '\r' || c == '\n')
			continue;   /* unfolded */
		if (is_wsp(c)) {
			wsp = 1;
			continue;
		}
		if (wsp && content)
			out[o++] = ' ';
		wsp = 0;
		content = 1;
		out[o++] = c;
	}
	out[o++] = '\r';
	out[o++] = '\n';
	return o;
}

void
dkim_body_canon_init(struct dkim_body_canon *b, dkim_sink sink, void *arg)
{
	memset(b, 0, sizeof(*b));
	b->sink = sink;
	b->arg = arg;
}

/* Writes the line ends held back and a space for a run of blanks. */
static void
before_content(struct dkim_body_canon *b)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";

	while (b->pending_crlf > 0) {
		size_t k = b->pending_crlf > 8 ? 8 : b->pending_crlf;

		b->sink(b->arg, crlfs, 2 * k);
		b->pending_crlf -= k;
	}
	if (b->wsp)
		b->sink(b->arg, " ", 1);
	b->wsp = 0;
	b->any = 1;
}

void
dkim_body_canon_feed(struct dkim_body_canon *b, const void *data,
    size_t len)
{
	const char *p = data, *end = p + len;

	while (p < end) {
		const char *run;

		if (b->cr) {
			b->cr = 0;
			if (*p == '\n') {
				b->wsp = 0;   /* blanks at a line's end go */
				b->pending_crlf++;
				p++;
				continue;
			}
			before_content(b);
			b->sink(b->arg, "\r", 1);   /* a lone CR is content */
		}
		switch (*p) {
		case '\r':
			b->cr = 1;
			p++;
			continue;
		case '\n':
			b->wsp = 0;
			b->pending_crlf++;
			p++;
			continue;
		case ' ':
		case '\t':
			b->wsp = 1;
			p++;
			continue;
		default:
			break;
		}
		/* a run of ordinary bytes goes out in one piece */
		run = p;
		while (p < end && *p != '\r' && *p != '\n' && !is_wsp(*p))
			p++;
		before_content(b);
		b->sink(b->arg, run, (size_t)(p - run));
	}
}

void
dkim_body_canon_finish(struct dkim_body_canon *b)
{
	if (b->cr) {
		b->cr = 0;
		before_content(b);
		b->sink(b->arg, "\r", 1);
	}
	if (b->any)
		b->sink(b->arg, "\r\n", 2);
	b->pending_crlf = 0;
	b->wsp = 0;
}
