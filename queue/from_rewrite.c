/*
 * from_rewrite.c - the header From rewrite of a route's rewrite_from:
 * providers such as Microsoft 365 refuse a message whose From is not the
 * authenticated account or one of its aliases (SendAsDenied), so a From
 * that is not allowed becomes the account's address and the original
 * moves to Reply-To (when there is none), so that replies still reach
 * the author.
 *
 * It runs in the delivery agent on the header block only, as the body
 * streams to the next hop: the stored message stays as it was received
 * (ferryctl queue show, bounces and other routes see the original), and
 * the runner never parses a message.  Pure functions over buffers.
 *
 * Security stance: the header is network input.  Every scan is bounded
 * by the buffer's length, nothing is NUL-terminated but what we build,
 * and a header the parser cannot make sense of yields no address, which
 * is not allowed: the From is replaced, never trusted.  It allocates
 * only the result and, out of memory, leaves the header as it was.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address_pattern.h"
#include "from_rewrite.h"

#define MAX_MAILBOXES 64
#define ADDR_MAX 320

struct growbuf {
	char *p;
	size_t len, cap;
	int failed;               /* out of memory: the result is dropped */
};

static void
put(struct growbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (b->len + n + 1 > cap)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
puts_(struct growbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

size_t
from_rewrite_header_end(const char *msg, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t line = nl ? (size_t)(nl - (msg + i)) : len - i;

		if (nl == NULL)
			return 0;
		if (line == 0 || (line == 1 && msg[i] == '\r'))
			return i + line + 1;
		i += line + 1;
	}
	return 0;
}

/* The mailboxes of a From value: their addresses (an angle-addr, or the
 * addr-spec outside comments and quotes), and where the first one's '<'
 * is when the value is one mailbox in angle brackets (else -1). */
struct mailboxes {
	char addr[MAX_MAILBOXES][ADDR_MAX];
	size_t n;
	long angle_at;            /* offset of '<' of the single mailbox */
	int group;                /* group syntax seen */
};

static void
mailbox_done(struct mailboxes *m, char *plain, size_t *plen, char *angle,
    int *has_angle)
{
	const char *a = *has_angle ? angle : plain;

	if (a[0] != '\0' && m->n < MAX_MAILBOXES)
		snprintf(m->addr[m->n++], ADDR_MAX, "%s", a);
	else if (a[0] != '\0')
		m->n++;   /* counted: more than we keep is not allowed */
	plain[0] = '\0';
	*plen = 0;
	angle[0] = '\0';
	*has_angle = 0;
}

static void
parse_mailboxes(const char *v, size_t len, struct mailboxes *m)
{
	char plain[ADDR_MAX], angle[ADDR_MAX];
	size_t i = 0, plen = 0, alen, nmailbox_angles = 0;
	int has_angle = 0;
	long first_angle = -1;

	memset(m, 0, sizeof(*m));
	plain[0] = angle[0] = '\0';
	while (i < len) {
		char c = v[i];

		if (c == '(') {
			int depth = 1;

			for (i++; i < len && depth > 0; i++) {
				if (v[i] == '\\')
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')')
					depth--;
			}
			continue;
		}
		if (c == '"') {
			for (i++; i < len && v[i] != '"'; i++)
				if (v[i] == '\\')
					i++;
			i++;
			/* a quoted display name: what came before is phrase */
			plain[0] = '\0';
			plen = 0;
			continue;
		}
		if (c == '<') {
			if (first_angle < 0)
				first_angle = (long)i;
			nmailbox_angles++;
			alen = 0;
			for (i++; i < len && v[i] != '>'; i++)
				if (v[i] != ' ' && v[i] != '\t' && v[i] != '\r' &&
				    v[i] != '\n' && alen + 1 < sizeof(angle))
					angle[alen++] = v[i];
			angle[alen] = '\0';
			has_angle = 1;
			i++;
			continue;
		}
		if (c == ',' || c == ';') {
			mailbox_done(m, plain, &plen, angle, &has_angle);
			i++;
			continue;
		}
		if (c == ':') {
			m->group = 1;   /* a group's display name ends here */
			plain[0] = '\0';
			plen = 0;
			i++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			/* words apart are a display name, not an address */
			if (plen > 0 && !has_angle) {
				size_t k = i;

				while (k < len && (v[k] == ' ' || v[k] == '\t' ||
				    v[k] == '\r' || v[k] == '\n'))
					k++;
				if (k < len && v[k] != ',' && v[k] != ';' &&
				    v[k] != '(') {
					plain[0] = '\0';
					plen = 0;
				}
			}
			i++;
			continue;
		}
		if (plen + 1 < sizeof(plain)) {
			plain[plen++] = c;
			plain[plen] = '\0';
		}
		i++;
	}
	mailbox_done(m, plain, &plen, angle, &has_angle);
	m->angle_at = m->n == 1 && nmailbox_angles == 1 && !m->group ?
	    first_angle : -1;
}

static int
address_allowed(const char *addr, const char *account,
    char *const *allowed, size_t nallowed)
{
	if (strcasecmp(addr, account) == 0)
		return 1;
	return address_pattern_rank(allowed, nallowed, addr) > 0;
}

static int
from_allowed(const struct mailboxes *m, const char *account,
    char *const *allowed, size_t nallowed)
{
	size_t i;

	if (m->n == 0 || m->n > MAX_MAILBOXES)
		return 0;
	for (i = 0; i < m->n; i++)
		if (!address_allowed(m->addr[i], account, allowed, nallowed))
			return 0;
	return 1;
}

/* One header field: [start, end) with its every line, value from just
 * after the colon to the end of its last line's text; eol is that line's
 * ending (CRLF, LF, or none at the end of the buffer). */
struct field {
	size_t start, end;
	size_t value, value_end;
	const char *eol;
	int is_from, is_reply_to;
};

/* The field at off, or 0 at the empty line or the end. */
static int
next_field(const char *h, size_t len, size_t off, struct field *f)
{
	size_t i = off;
	const char *colon;

	if (off >= len || h[off] == '\n' || (h[off] == '\r' &&
	    off + 1 < len && h[off + 1] == '\n'))
		return 0;
	memset(f, 0, sizeof(*f));
	f->start = off;
	for (;;) {
		const char *nl = memchr(h + i, '\n', len - i);

		if (nl == NULL) {
			f->value_end = len;
			f->end = len;
			f->eol = "";
			break;
		}
		i = (size_t)(nl - h) + 1;
		if (i >= len || (h[i] != ' ' && h[i] != '\t')) {
			int crlf = nl > h + off && nl[-1] == '\r';

			f->value_end = (size_t)(nl - h) - (crlf ? 1 : 0);
			f->end = i;
			f->eol = crlf ? "\r\n" : "\n";
			break;
		}
	}
	colon = memchr(h + off, ':', f->value_end - off);
	f->value = colon ? (size_t)(colon - h) + 1 : f->value_end;
	if (colon != NULL) {
		size_t nlen = (size_t)(colon - (h + off));

		/* the name may be followed by blanks before the colon */
		while (nlen > 0 && (h[off + nlen - 1] == ' ' ||
		    h[off + nlen - 1] == '\t'))
			nlen--;
		f->is_from = nlen == 4 && strncasecmp(h + off, "From", 4) == 0;
		f->is_reply_to = nlen == 8 &&
		    strncasecmp(h + off, "Reply-To", 8) == 0;
	}
	return 1;
}

int
from_rewrite_header(const char *hdr, size_t len, const char *account,
    char *const *allowed, size_t nallowed, struct from_rewrite_out *out)
{
	struct growbuf b = { NULL, 0, 0, 0 };
	struct field f;
	size_t off, copied = 0;
	int has_reply_to = 0, rewrote = 0;

	memset(out, 0, sizeof(*out));
	if (account == NULL || account[0] == '\0')
		return 0;
	for (off = 0; next_field(hdr, len, off, &f); off = f.end)
		if (f.is_reply_to)
			has_reply_to = 1;
	for (off = 0; next_field(hdr, len, off, &f); off = f.end) {
		struct mailboxes m;
		const char *eol;
		size_t i;

		if (!f.is_from)
			continue;
		parse_mailboxes(hdr + f.value, f.value_end - f.value, &m);
		if (from_allowed(&m, account, allowed, nallowed))
			continue;
		put(&b, hdr + copied, f.start - copied);
		copied = f.end;
		eol = f.eol[0] ? f.eol : "\r\n";
		puts_(&b, "From: ");
		if (m.angle_at >= 0) {
			size_t ps = f.value, pe = f.value + (size_t)m.angle_at;

			while (ps < pe && strchr(" \t\r\n", hdr[ps]) != NULL)
				ps++;
			while (pe > ps && strchr(" \t\r\n", hdr[pe - 1]) != NULL)
				pe--;
			if (pe > ps) {
				put(&b, hdr + ps, pe - ps);
				puts_(&b, " ");
			}
			puts_(&b, "<");
			puts_(&b, account);
			puts_(&b, ">");
		} else
			puts_(&b, account);
		puts_(&b, eol);
		if (!has_reply_to && !rewrote) {
			puts_(&b, "Reply-To:");
			put(&b, hdr + f.value, f.value_end - f.value);
			puts_(&b, eol);
		}
		for (i = 0; i < m.n && i < MAX_MAILBOXES; i++) {
			size_t ol = strlen(out->old);

			snprintf(out->old + ol, sizeof(out->old) - ol, "%s<%s>",
			    ol ? "," : "", m.addr[i]);
		}
		if (m.n == 0 && out->old[0] == '\0')
			snprintf(out->old, sizeof(out->old), "(no address)");
		rewrote = 1;
	}
	if (rewrote)
		put(&b, hdr + copied, len - copied);
	if (!rewrote || b.failed) {
		free(b.p);
		return 0;
	}
	out->buf = b.p;
	out->len = b.len;
	return 1;
}
