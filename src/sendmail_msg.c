/*
 * sendmail_msg.c - what ferry-sendmail does to a message before it
 * submits it, and which listener it submits to (see sendmail_msg.h).
 * Pure functions: no I/O, no clock.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sendmail_msg.h"
#include "util.h"

#define ADDR_MAX 254

/* ------------------------------------------------------------ addresses */

void
sm_addrs_free(struct sm_addrs *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

void
sm_addrs_add(struct sm_addrs *a, const char *addr)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (strcasecmp(a->v[i], addr) == 0)
			return;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->v = xrealloc(a->v, a->cap * sizeof(a->v[0]));
	}
	a->v[a->n++] = xstrdup(addr);
}

int
sm_address_ok(const char *addr)
{
	size_t n = strlen(addr), i;
	int quoted = 0;

	if (n == 0 || n > ADDR_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
			return 0;
		if (c == '"')
			quoted = !quoted;
		else if (c == '\\' && quoted && i + 1 < n)
			i++;
		else if (c == ' ' && !quoted)
			return 0;
	}
	return !quoted;
}

char *
sm_qualify(const char *addr, const char *domain)
{
	char *out;
	int quoted = 0;
	const char *p;

	for (p = addr; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '\\' && quoted && p[1])
			p++;
		else if (*p == '@' && !quoted)
			return xstrdup(addr);
	}
	if (domain == NULL || domain[0] == '\0')
		return xstrdup(addr);
	out = xmalloc(strlen(addr) + strlen(domain) + 2);
	sprintf(out, "%s@%s", addr, domain);
	return out;
}

/* Appends the n octets at s to the buffer (*buf, *len, *cap). */
static void
put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 256;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static void
puts_(char **buf, size_t *len, size_t *cap, const char *s)
{
	put(buf, len, cap, s, strlen(s));
}

/*
 * One element of an address list (between top-level commas), comments
 * already removed: the last <angle-addr> if there is one (without a
 * source route "@a,@b:"), else the text without folding whitespace
 * outside quotes.  Adds it to out when not empty.
 */
static int
take_element(const char *s, size_t n, struct sm_addrs *out)
{
	const char *lt = NULL, *gt = NULL;
	char *addr;
	size_t i, k = 0;
	int quoted = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == '\\' && i + 1 < n)
			i++;
		else if (!quoted && s[i] == '<')
			lt = s + i;
		else if (!quoted && s[i] == '>' && lt != NULL)
			gt = s + i;
	}
	if (lt != NULL && gt != NULL && gt > lt) {
		s = lt + 1;
		n = (size_t)(gt - lt - 1);
		if (n > 0 && s[0] == '@') {           /* obsolete route */
			const char *colon = memchr(s, ':', n);

			if (colon != NULL) {
				n -= (size_t)(colon + 1 - s);
				s = colon + 1;
			}
		}
	}
	addr = xmalloc(n + 1);
	quoted = 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '"')
			quoted = !quoted;
		if (!quoted && (c == ' ' || c == '\t' || c == '\r' ||
		    c == '\n'))
			continue;
		addr[k++] = c;
		if (c == '\\' && quoted && i + 1 < n)
			addr[k++] = s[++i];
	}
	addr[k] = '\0';
	if (k == 0) {
		free(addr);
		return 0;
	}
	k = out->n;
	sm_addrs_add(out, addr);
	free(addr);
	return out->n > k;
}

int
sm_parse_address_list(const char *value, struct sm_addrs *out)
{
	size_t n = strlen(value), i, len = 0;
	char *elem = xmalloc(n + 1);
	int quoted = 0, depth = 0, angle = 0, added = 0;

	for (i = 0; i <= n; i++) {
		char c = i < n ? value[i] : '\0';

		if (c == '\0' && (quoted || depth > 0 || angle)) {
			free(elem);
			return -1;
		}
		if (depth > 0) {                       /* inside a comment */
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (quoted) {
			elem[len++] = c;
			if (c == '\\' && i + 1 < n)
				elem[len++] = value[++i];
			else if (c == '"')
				quoted = 0;
			continue;
		}
		switch (c) {
		case '"':
			quoted = 1;
			elem[len++] = c;
			break;
		case '(':
			depth = 1;
			elem[len++] = ' ';
			break;
		case '<':
			angle = 1;
			elem[len++] = c;
			break;
		case '>':
			angle = 0;
			elem[len++] = c;
			break;
		case ':':
			if (angle) {
				elem[len++] = c;   /* a source route */
				break;
			}
			/* "group-name:" - what came before is a display name */
			len = 0;
			break;
		case ',':
		case ';':
		case '\0':
			if (angle && c != '\0') {
				elem[len++] = c;   /* a source route's commas */
				break;
			}
			added += take_element(elem, len, out);
			len = 0;
			break;
		default:
			elem[len++] = c;
			break;
		}
	}
	free(elem);
	return added;
}

/* Does the string need an RFC 5322 quoted-string as a display name? */
static int
needs_quotes(const char *s)
{
	for (; *s; s++)
		if (strchr("()<>[]:;@\\,.\"", *s) != NULL)
			return 1;
	return 0;
}

char *
sm_from_value(const char *name, const char *addr)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *buf = NULL, tmp[8];
	size_t len = 0, cap = 0, i, n;
	int ascii = 1;
	const unsigned char *u;

	if (name == NULL || name[0] == '\0')
		return xstrdup(addr);
	for (u = (const unsigned char *)name; *u; u++)
		if (*u >= 0x80)
			ascii = 0;
	if (!ascii) {
		/* RFC 2047 encoded word(s), base64; at most 45 octets (60
		 * characters of base64) per word, cut between characters */
		n = strlen(name);
		i = 0;
		while (i < n) {
			size_t take = n - i > 45 ? 45 : n - i, k;

			while (take < n - i && take > 0 &&
			    ((unsigned char)name[i + take] & 0xc0) == 0x80)
				take--;
			if (take == 0)
				take = n - i > 45 ? 45 : n - i;
			if (i > 0)
				puts_(&buf, &len, &cap, " ");
			puts_(&buf, &len, &cap, "=?UTF-8?B?");
			for (k = 0; k < take; k += 3) {
				const unsigned char *p =
				    (const unsigned char *)name + i + k;
				unsigned long v = (unsigned long)p[0] << 16;
				size_t rest = take - k;

				if (rest > 1)
					v |= (unsigned long)p[1] << 8;
				if (rest > 2)
					v |= p[2];
				tmp[0] = b64[(v >> 18) & 63];
				tmp[1] = b64[(v >> 12) & 63];
				tmp[2] = rest > 1 ? b64[(v >> 6) & 63] : '=';
				tmp[3] = rest > 2 ? b64[v & 63] : '=';
				put(&buf, &len, &cap, tmp, 4);
			}
			puts_(&buf, &len, &cap, "?=");
			i += take;
		}
	} else if (needs_quotes(name)) {
		puts_(&buf, &len, &cap, "\"");
		for (; *name; name++) {
			if (*name == '"' || *name == '\\')
				put(&buf, &len, &cap, "\\", 1);
			put(&buf, &len, &cap, name, 1);
		}
		puts_(&buf, &len, &cap, "\"");
	} else {
		puts_(&buf, &len, &cap, name);
	}
	puts_(&buf, &len, &cap, " <");
	puts_(&buf, &len, &cap, addr);
	puts_(&buf, &len, &cap, ">");
	return buf;
}

/* -------------------------------------------------------------- message */

/* A line of the input, without its terminator. */
struct line {
	const char *s;
	size_t n;
};

/* The length of a header field name at the start of the line followed by
 * ':' (RFC 5322 ftext: printable ASCII but ':'), or 0. */
static size_t
field_name(const struct line *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		unsigned char c = (unsigned char)l->s[i];

		if (c == ':')
			return i;
		if (c < 33 || c > 126)
			return 0;
	}
	return 0;
}

static int
is_field(const struct line *l, size_t namelen, const char *name)
{
	return namelen == strlen(name) && strncasecmp(l->s, name, namelen) == 0;
}

void
sm_message_free(struct sm_message *m)
{
	free(m->data);
	m->data = NULL;
	sm_addrs_free(&m->rcpts);
}

int
sm_prepare(const char *in, size_t len, const struct sm_input *opt,
    struct sm_message *out, char *err, size_t errlen)
{
	struct line *lines = NULL;
	size_t nlines = 0, cap = 0, i, start, hdr_end, olen = 0, ocap = 0;
	char *clean = xmalloc(len + 1), *o = NULL;
	size_t clen = 0;
	int have_from = 0, have_date = 0, have_msgid = 0, rc = 0;

	memset(out, 0, sizeof(*out));
	/* Drop CRs that do not end a line (a bare CR would be refused by
	 * the server: the SMTP smuggling defence), then cut lines at LF. */
	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && !(i + 1 < len && in[i + 1] == '\n'))
			continue;
		if ((unsigned char)in[i] >= 0x80)
			out->eightbit = 1;
		clean[clen++] = in[i];
	}
	clean[clen] = '\0';
	start = 0;
	for (i = 0; i <= clen; i++) {
		if (i < clen && clean[i] != '\n')
			continue;
		if (i == clen && start == clen)
			break;                      /* nothing after the last LF */
		if (nlines == cap) {
			cap = cap ? cap * 2 : 64;
			lines = xrealloc(lines, cap * sizeof(*lines));
		}
		lines[nlines].s = clean + start;
		lines[nlines].n = i - start;
		if (lines[nlines].n > 0 && clean[i - 1] == '\r')
			lines[nlines].n--;
		nlines++;
		start = i + 1;
	}

	i = 0;
	if (nlines > 0 && lines[0].n >= 5 && memcmp(lines[0].s, "From ", 5) == 0)
		i = 1;                              /* an mbox separator */
	start = i;
	/* The header block: fields and their continuation lines. */
	for (hdr_end = start; hdr_end < nlines; hdr_end++) {
		const struct line *l = &lines[hdr_end];

		if (l->n > 0 && (l->s[0] == ' ' || l->s[0] == '\t') &&
		    hdr_end > start)
			continue;
		if (field_name(l) == 0)
			break;
	}

	for (i = start; i < hdr_end; ) {
		size_t nl = field_name(&lines[i]), j = i + 1, k;
		int bcc, rcpt_field;

		while (j < hdr_end && lines[j].n > 0 &&
		    (lines[j].s[0] == ' ' || lines[j].s[0] == '\t'))
			j++;
		if (is_field(&lines[i], nl, "From"))
			have_from = 1;
		else if (is_field(&lines[i], nl, "Date"))
			have_date = 1;
		else if (is_field(&lines[i], nl, "Message-ID"))
			have_msgid = 1;
		bcc = is_field(&lines[i], nl, "Bcc");
		rcpt_field = bcc || is_field(&lines[i], nl, "To") ||
		    is_field(&lines[i], nl, "Cc");
		if (opt->extract && rcpt_field) {
			/* the unfolded value */
			char *v = NULL;
			size_t vlen = 0, vcap = 0;

			put(&v, &vlen, &vcap, lines[i].s + nl + 1,
			    lines[i].n - nl - 1);
			for (k = i + 1; k < j; k++)
				put(&v, &vlen, &vcap, lines[k].s, lines[k].n);
			if (v == NULL)
				v = xstrdup("");
			if (sm_parse_address_list(v, &out->rcpts) < 0 &&
			    rc == 0) {
				snprintf(err, errlen, "malformed address list "
				    "in the %.*s header", (int)nl, lines[i].s);
				rc = -1;
			}
			free(v);
		}
		if (!bcc)
			for (k = i; k < j; k++) {
				put(&o, &olen, &ocap, lines[k].s, lines[k].n);
				put(&o, &olen, &ocap, "\r\n", 2);
			}
		i = j;
	}
	if (!have_from && opt->from_value != NULL) {
		puts_(&o, &olen, &ocap, "From: ");
		puts_(&o, &olen, &ocap, opt->from_value);
		puts_(&o, &olen, &ocap, "\r\n");
		out->added_from = 1;
	}
	if (!have_date && opt->date_value != NULL) {
		puts_(&o, &olen, &ocap, "Date: ");
		puts_(&o, &olen, &ocap, opt->date_value);
		puts_(&o, &olen, &ocap, "\r\n");
		out->added_date = 1;
	}
	if (!have_msgid && opt->msgid_value != NULL) {
		puts_(&o, &olen, &ocap, "Message-ID: ");
		puts_(&o, &olen, &ocap, opt->msgid_value);
		puts_(&o, &olen, &ocap, "\r\n");
		out->added_msgid = 1;
	}
	puts_(&o, &olen, &ocap, "\r\n");
	i = hdr_end;
	if (i < nlines && lines[i].n == 0)
		i++;                                /* the input's separator */
	for (; i < nlines; i++) {
		put(&o, &olen, &ocap, lines[i].s, lines[i].n);
		put(&o, &olen, &ocap, "\r\n", 2);
	}
	free(lines);
	free(clean);
	out->data = o;
	out->len = olen;
	if (rc < 0)
		sm_message_free(out);
	return rc;
}

char *
sm_dot_stuff(const char *data, size_t len, size_t *outlen)
{
	size_t i, dots = 0, k = 0;
	char *out;

	for (i = 0; i < len; i++)
		if (data[i] == '.' && (i == 0 || data[i - 1] == '\n'))
			dots++;
	out = xmalloc(len + dots + 1);
	for (i = 0; i < len; i++) {
		if (data[i] == '.' && (i == 0 || data[i - 1] == '\n'))
			out[k++] = '.';
		out[k++] = data[i];
	}
	out[k] = '\0';
	*outlen = k;
	return out;
}

/* ------------------------------------------------ where to submit */

const struct listener_config *
sm_submit_listener(const struct ferry_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		if (l->tls != LTLS_IMPLICIT && !l->tls_required)
			return l;
	}
	return NULL;
}
