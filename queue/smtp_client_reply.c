/*
 * smtp_client_reply.c - parsing a server's replies for the delivery
 * agent: reply lines, multi-line replies, enhanced status codes and the
 * EHLO keywords.
 *
 * Security stance: the input is whatever the remote server sent.  Lines
 * are length-limited, the number of lines is bounded, every line must
 * end in CRLF and carry the same three-digit code, and the text kept
 * for logs and results is printable.  Nothing here allocates.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_client_reply.h"

void
scr_init(struct scr_parser *p, size_t max_line)
{
	memset(p, 0, sizeof(*p));
	if (max_line < SCR_LINE_MIN)
		max_line = SCR_LINE_MIN;
	if (max_line > SCR_LINE_MAX)
		max_line = SCR_LINE_MAX;
	p->max_line = max_line;
	p->max_lines = SCR_MAX_LINES;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The code of a line (>= 3 bytes): 200..599 with a middle digit 0..5,
 * or -1. */
static int
line_code(const char *s)
{
	if (s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' ||
	    !is_digit(s[2]))
		return -1;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* Length of an enhanced status code "c.d{1,3}.d{1,3}" at s (n bytes
 * available) whose class is cls, followed by SP or the end; 0 if none. */
static size_t
esc_len(const char *s, size_t n, int cls)
{
	size_t i = 0, d;
	int part;

	if (n < 5 || s[0] != (char)('0' + cls) || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (d = 0; i < n && is_digit(s[i]); i++)
			d++;
		if (d < 1 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

/* Appends n bytes of s to r->text, unprintable bytes as '?'. */
static void
text_add(struct smtp_client_reply *r, size_t *tl, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && *tl < sizeof(r->text) - 1; i++) {
		unsigned char c = (unsigned char)s[i];

		r->text[(*tl)++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	r->text[*tl] = '\0';
}

/* Fills r from the checked reply buf[0..len). */
static void
assemble(const struct scr_parser *p, const char *buf, size_t len,
    struct smtp_client_reply *r)
{
	size_t off = 0, tl = 0, el, n;
	int first = 1;

	/* every field is set here (not a 2 KiB memset for each reply) */
	r->esc[0] = '\0';
	r->code = p->code;
	r->nlines = p->nlines;
	r->len = len;
	tl = (size_t)snprintf(r->text, sizeof(r->text), "%d", p->code);
	while (off < len) {
		const char *line = buf + off;
		const char *lf = memchr(line, '\n', len - off);
		size_t ll = (size_t)(lf - line) - 1;   /* without CRLF */
		const char *t = line + 4;

		off += ll + 2;
		if (ll <= 4)
			continue;
		n = ll - 4;
		el = esc_len(t, n, p->code / 100);
		if (first && el > 0 && el < sizeof(r->esc)) {
			memcpy(r->esc, t, el);
			r->esc[el] = '\0';
		}
		first = 0;
		/* the same code repeated on later lines says nothing new */
		if (el > 0 && r->esc[0] != '\0' && el == strlen(r->esc) &&
		    memcmp(t, r->esc, el) == 0 && tl > 3) {
			t += el;
			n -= el;
			while (n > 0 && *t == ' ') {
				t++;
				n--;
			}
			if (n == 0)
				continue;
		}
		text_add(r, &tl, " ", 1);
		text_add(r, &tl, t, n);
	}
}

int
scr_parse(struct scr_parser *p, const char *buf, size_t len,
    struct smtp_client_reply *r, const char **why)
{
	static const char *dummy;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	for (;;) {
		const char *line = buf + p->pos;
		size_t avail = len - p->pos, lim, n;
		const char *lf, *cr;
		int code, last;

		lim = avail < p->max_line ? avail : p->max_line;
		lf = memchr(line, '\n', lim);
		if (lf == NULL) {
			/* a CR must be followed by LF */
			cr = memchr(line, '\r', lim);
			if (cr != NULL && (size_t)(cr - line) + 1 < avail) {
				*why = "bare CR in reply";
				return SCR_ERROR;
			}
			if (avail >= p->max_line) {
				*why = "reply line too long";
				return SCR_ERROR;
			}
			/* see a missing code early */
			if (avail >= 3 && line_code(line) < 0) {
				*why = "reply without a valid code";
				return SCR_ERROR;
			}
			if (avail >= 4 && line[3] != ' ' && line[3] != '-' &&
			    line[3] != '\r') {
				*why = "reply without a valid code";
				return SCR_ERROR;
			}
			return SCR_MORE;
		}
		n = (size_t)(lf - line);
		if (n == 0 || line[n - 1] != '\r') {
			*why = "bare LF in reply";
			return SCR_ERROR;
		}
		n--;                         /* without CRLF */
		if (memchr(line, '\r', n) != NULL) {
			*why = "bare CR in reply";
			return SCR_ERROR;
		}
		if (n < 3 || (code = line_code(line)) < 0) {
			*why = "reply without a valid code";
			return SCR_ERROR;
		}
		if (n == 3 || line[3] == ' ')
			last = 1;
		else if (line[3] == '-')
			last = 0;
		else {
			*why = "reply without a valid code";
			return SCR_ERROR;
		}
		if (p->nlines > 0 && code != p->code) {
			*why = "reply codes differ between lines";
			return SCR_ERROR;
		}
		p->code = code;
		p->nlines++;
		p->pos += n + 2;
		if (last) {
			assemble(p, buf, p->pos, r);
			return SCR_DONE;
		}
		if (p->nlines >= p->max_lines) {
			*why = "too many reply lines";
			return SCR_ERROR;
		}
	}
}

const char *
scr_dsn(const struct smtp_client_reply *r)
{
	if (r->esc[0] != '\0')
		return r->esc;
	switch (r->code / 100) {
	case 2:
		return "2.0.0";
	case 4:
		return "4.0.0";
	default:
		return "5.0.0";
	}
}

/* Next space-separated token of s[0..n) from *off; 0 when none. */
static size_t
token(const char *s, size_t n, size_t *off, const char **tok)
{
	size_t i = *off, start;

	while (i < n && s[i] == ' ')
		i++;
	start = i;
	while (i < n && s[i] != ' ')
		i++;
	*off = i;
	*tok = s + start;
	return i - start;
}

static int
tok_is(const char *t, size_t tl, const char *word)
{
	return strlen(word) == tl && strncasecmp(t, word, tl) == 0;
}

static void
auth_mechs(struct ehlo_caps *caps, const char *s, size_t n, size_t off)
{
	const char *t;
	size_t tl;

	caps->auth = 1;
	while ((tl = token(s, n, &off, &t)) > 0) {
		if (tok_is(t, tl, "PLAIN"))
			caps->auth_mechs |= AUTH_MECH_PLAIN;
		else if (tok_is(t, tl, "LOGIN"))
			caps->auth_mechs |= AUTH_MECH_LOGIN;
		else if (tok_is(t, tl, "XOAUTH2"))
			caps->auth_mechs |= AUTH_MECH_XOAUTH2;
		else if (tok_is(t, tl, "OAUTHBEARER"))
			caps->auth_mechs |= AUTH_MECH_OAUTHBEARER;
	}
}

void
scr_ehlo_caps(const char *buf, size_t len, struct ehlo_caps *caps)
{
	size_t off = 0;
	int first = 1;

	memset(caps, 0, sizeof(*caps));
	while (off < len) {
		const char *line = buf + off, *t;
		const char *lf = memchr(line, '\n', len - off);
		size_t ll, pos = 0, tl;

		if (lf == NULL)
			break;
		ll = (size_t)(lf - line);
		off += ll + 1;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (first || ll <= 4) {
			first = 0;
			continue;
		}
		line += 4;
		ll -= 4;
		tl = token(line, ll, &pos, &t);
		if (tok_is(t, tl, "PIPELINING"))
			caps->pipelining = 1;
		else if (tok_is(t, tl, "8BITMIME"))
			caps->eightbitmime = 1;
		else if (tok_is(t, tl, "SMTPUTF8"))
			caps->smtputf8 = 1;
		else if (tok_is(t, tl, "DSN"))
			caps->dsn = 1;
		else if (tok_is(t, tl, "REQUIRETLS"))
			caps->requiretls = 1;
		else if (tok_is(t, tl, "STARTTLS"))
			caps->starttls = 1;
		else if (tok_is(t, tl, "ENHANCEDSTATUSCODES"))
			caps->enhancedstatuscodes = 1;
		else if (tok_is(t, tl, "AUTH"))
			auth_mechs(caps, line, ll, pos);
		else if (tl > 5 && strncasecmp(t, "AUTH=", 5) == 0) {
			/* old style "AUTH=LOGIN PLAIN" */
			auth_mechs(caps, line, ll, (size_t)(t - line) + 5);
		} else if (tok_is(t, tl, "SIZE")) {
			uint64_t v = 0;
			size_t i, nd = 0;

			caps->size = 1;
			tl = token(line, ll, &pos, &t);
			for (i = 0; i < tl && is_digit(t[i]) && nd < 19;
			    i++, nd++)
				v = v * 10 + (uint64_t)(t[i] - '0');
			if (tl > 0 && i == tl)
				caps->size_max = v;
		}
	}
}
