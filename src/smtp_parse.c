/*
 * smtp_parse.c - pure parsers for SMTP command lines: the verb, the
 * MAIL FROM / RCPT TO paths with their ESMTP parameters (RFC 5321 4.1.2,
 * RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 DSN), the
 * HELO/EHLO argument and the BDAT arguments (RFC 3030).
 *
 * Security stance: every byte handed to these functions is untrusted
 * network text and is not NUL-terminated.  Each function reads only
 * inside [s, s + len), loops are bounded by len, nothing is allocated,
 * there is no global state, and outputs go only into the caller's
 * fixed-size structures after their lengths have been checked.  Every
 * violation is reported as a result code; nothing is "repaired".
 */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* ---- small byte helpers (ASCII only, independent of the locale) ------- */

static unsigned char lc(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static int is_upper_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

static int is_hex(unsigned char c)
{
	return is_upper_hex(c) || (c >= 'a' && c <= 'f');
}

static unsigned hex_val(unsigned char c)
{
	if (is_digit(c))
		return (unsigned)(c - '0');
	return (unsigned)(lc(c) - 'a' + 10);
}

/* RFC 5322 atext. */
static int is_atext(unsigned char c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Case-insensitive comparison of s[0..n) with the NUL-terminated lit. */
static int ci_eq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (lit[i] == '\0' ||
		    lc((unsigned char)s[i]) != lc((unsigned char)lit[i]))
			return 0;
	}
	return lit[n] == '\0';
}

static int has_non_ascii(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Copies n bytes (n < size, checked by the caller) and terminates. */
static void copy_out(char *dst, const char *src, size_t n)
{
	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- UTF-8 and xtext ------------------------------------------------- */

int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i], cp, min;
		size_t n, k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1; cp = c & 0x1F; min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2; cp = c & 0x0F; min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return 0;   /* continuation byte, C0/C1, F5..FF */
		}
		if (len - i - 1 < n)
			return 0;   /* truncated */
		for (k = 1; k <= n; k++) {
			unsigned b = p[i + k];
			if ((b & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (b & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;   /* overlong, out of range, surrogate */
		i += n + 1;
	}
	return 1;
}

int smtp_xtext_valid(const char *s, size_t len)
{
	size_t i = 0;

	if (s == NULL)
		return len == 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (len - i < 3 || !is_upper_hex((unsigned char)s[i + 1]) ||
			    !is_upper_hex((unsigned char)s[i + 2]))
				return 0;
			i += 3;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		} else {
			i++;
		}
	}
	return 1;
}

/*
 * RFC 6533 utf-8-addr-xtext, accepted loosely: printable ASCII except "+",
 * "=" and "\"; "\x{HEX}" escapes (1..6 hex digits naming a scalar value);
 * the xtext "+HH" form; and raw UTF-8 non-ASCII (utf-8-addr-unitext) when
 * utf8 is set.  Must not be empty.
 */
static int utf8_addr_xtext_valid(const char *s, size_t len, int utf8)
{
	size_t i = 0;

	if (len == 0)
		return 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (len - i < 3 || !is_upper_hex((unsigned char)s[i + 1]) ||
			    !is_upper_hex((unsigned char)s[i + 2]))
				return 0;
			i += 3;
		} else if (c == '\\') {
			size_t j = i + 3, nd = 0;
			unsigned long cp = 0;
			if (len - i < 5 || s[i + 1] != 'x' || s[i + 2] != '{')
				return 0;
			while (j < len && is_hex((unsigned char)s[j]) && nd < 6) {
				cp = (cp << 4) | hex_val((unsigned char)s[j]);
				j++;
				nd++;
			}
			if (nd == 0 || j >= len || s[j] != '}' || cp > 0x10FFFF ||
			    (cp >= 0xD800 && cp <= 0xDFFF))
				return 0;
			i = j + 1;
		} else if (c >= 0x80) {
			if (!utf8)
				return 0;
			i++;    /* well-formedness is checked by the caller */
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		} else {
			i++;
		}
	}
	return 1;
}

/* ---- domains and mailboxes ------------------------------------------- */

/* Snum "." Snum "." Snum "." Snum, each 1..3 digits and <= 255. */
static int ipv4_literal_valid(const char *s, size_t len)
{
	size_t i = 0;
	int part;

	for (part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t nd = 0;
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		while (i < len && is_digit((unsigned char)s[i]) && nd < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			nd++;
		}
		if (nd == 0 || v > 255)
			return 0;
	}
	return i == len;
}

/* RFC 5321 4.1.3 address-literal, without the brackets. */
static int address_literal_valid(const char *s, size_t len)
{
	size_t i, colon;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_digit((unsigned char)s[i]) && s[i] != '.')
			break;
	if (i == len)
		return ipv4_literal_valid(s, len);

	for (colon = 0; colon < len && s[colon] != ':'; colon++)
		;
	if (colon == 0 || colon == len)
		return 0;
	if (ci_eq(s, colon, "IPv6")) {
		char buf[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;
		size_t n = len - colon - 1;
		/* inet_pton stops at a NUL: "[IPv6:::\0junk]" would pass
		 * and the stored address lose everything after it. */
		if (n == 0 || n >= sizeof(buf) ||
		    memchr(s + colon + 1, '\0', n) != NULL)
			return 0;
		copy_out(buf, s + colon + 1, n);
		return inet_pton(AF_INET6, buf, &a6) == 1;
	}
	/* General-address-literal: Standardized-tag ":" 1*dcontent, the
	 * tag an Ldh-str (letters, digits, hyphens; ends in a Let-dig). */
	for (i = 0; i < colon; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	if (!is_alnum((unsigned char)s[colon - 1]) || colon + 1 == len)
		return 0;
	for (i = colon + 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return 0;
	}
	return 1;
}

int smtp_check_domain(const char *s, size_t len, int utf8)
{
	size_t i = 0;

	if (s == NULL || len == 0 || len > SMTP_MAX_DOMAIN)
		return 0;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return 0;
		return address_literal_valid(s + 1, len - 2);
	}
	if (has_non_ascii(s, len) && (!utf8 || !utf8_valid(s, len)))
		return 0;
	for (;;) {
		size_t start = i, n, k;
		while (i < len && s[i] != '.')
			i++;
		n = i - start;
		if (n == 0 || n > 63)
			return 0;
		for (k = start; k < i; k++) {
			unsigned char c = (unsigned char)s[k];
			if (!is_alnum(c) && c != '-' && c < 0x80)
				return 0;
		}
		if (s[start] == '-' || s[i - 1] == '-')
			return 0;
		if (i == len)
			return 1;
		i++;            /* the dot */
		if (i == len)
			return 0;   /* trailing dot */
	}
}

/*
 * Finds the end of the local part: returns its length (the index of the
 * "@" that follows it) or 0 on a syntax error.  Non-ASCII bytes are let
 * through here; the caller has checked they are well-formed UTF-8 and
 * judges them separately.
 */
static size_t scan_local_part(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	if (s[0] == '"') {
		/* Quoted-string: qtextSMTP / quoted-pairSMTP. */
		i = 1;
		for (;;) {
			unsigned char c;
			if (i >= len)
				return 0;
			c = (unsigned char)s[i];
			if (c == '"') {
				i++;
				break;
			}
			if (c == '\\') {
				unsigned char d;
				if (i + 1 >= len)
					return 0;
				d = (unsigned char)s[i + 1];
				if (d < 32 || d > 126)
					return 0;
				i += 2;
			} else if ((c >= 32 && c <= 126) || c >= 0x80) {
				i++;
			} else {
				return 0;
			}
		}
	} else {
		/* Dot-string: Atom *("." Atom). */
		i = 0;
		for (;;) {
			size_t start = i;
			while (i < len && (is_atext((unsigned char)s[i]) ||
			    (unsigned char)s[i] >= 0x80))
				i++;
			if (i == start)
				return 0;   /* empty atom: leading/double dot */
			if (i < len && s[i] == '.') {
				i++;
				continue;
			}
			break;
		}
	}
	if (i >= len || s[i] != '@')
		return 0;
	return i;
}

enum smtp_parse_result smtp_check_mailbox(const char *s, size_t len,
    int utf8)
{
	size_t llen, dlen;

	if (s == NULL || len == 0)
		return PARSE_SYNTAX;
	if (!utf8_valid(s, len))
		return PARSE_SYNTAX;
	llen = scan_local_part(s, len);
	if (llen == 0)
		return PARSE_SYNTAX;
	if (llen > SMTP_MAX_LOCAL_PART)
		return PARSE_TOO_LONG;
	dlen = len - llen - 1;
	if (dlen == 0)
		return PARSE_SYNTAX;
	if (dlen > SMTP_MAX_DOMAIN)
		return PARSE_TOO_LONG;
	if (!smtp_check_domain(s + llen + 1, dlen, 1))
		return PARSE_SYNTAX;
	if (!utf8 && has_non_ascii(s, len))
		return PARSE_NON_ASCII;
	return PARSE_OK;
}

/* ---- the verb -------------------------------------------------------- */

static const char *const verb_names[VERB_MAX] = {
	[VERB_UNKNOWN] = "unknown",
	[VERB_HELO] = "HELO", [VERB_EHLO] = "EHLO", [VERB_MAIL] = "MAIL",
	[VERB_RCPT] = "RCPT", [VERB_DATA] = "DATA", [VERB_BDAT] = "BDAT",
	[VERB_RSET] = "RSET", [VERB_VRFY] = "VRFY", [VERB_EXPN] = "EXPN",
	[VERB_HELP] = "HELP", [VERB_NOOP] = "NOOP", [VERB_QUIT] = "QUIT",
	[VERB_STARTTLS] = "STARTTLS", [VERB_AUTH] = "AUTH",
};

const char *smtp_verb_name(enum smtp_verb v)
{
	if ((int)v <= (int)VERB_UNKNOWN || (int)v >= (int)VERB_MAX)
		return verb_names[VERB_UNKNOWN];
	return verb_names[v];
}

/*
 * The verb is the bytes up to the first SP (or the end).  For MAIL and
 * RCPT the keyword " FROM:" / " TO:" must follow at once (one SP, no
 * space before the colon); spaces after the colon are skipped.  When the
 * keyword is missing the verb is still returned, with an empty argument
 * at line + len: smtp_parse_mail / smtp_parse_rcpt on an empty argument
 * return PARSE_SYNTAX, so the session reports a syntax error.  For the
 * other verbs the argument is what follows the SP(s) after the verb.
 * Trailing spaces are trimmed from every argument.
 */
enum smtp_verb smtp_parse_verb(const char *line, size_t len,
    const char **arg, size_t *arglen)
{
	enum smtp_verb v = VERB_UNKNOWN;
	size_t vlen = 0, i, e;
	int k;

	if (line == NULL) {
		*arg = "";
		*arglen = 0;
		return VERB_UNKNOWN;
	}
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (k = VERB_UNKNOWN + 1; k < VERB_MAX; k++) {
		if (ci_eq(line, vlen, verb_names[k])) {
			v = (enum smtp_verb)k;
			break;
		}
	}
	i = vlen;
	if (v == VERB_MAIL || v == VERB_RCPT) {
		const char *kw = v == VERB_MAIL ? " FROM:" : " TO:";
		size_t kl = strlen(kw);
		if (len - vlen < kl || !ci_eq(line + vlen, kl, kw)) {
			*arg = line + len;
			*arglen = 0;
			return v;
		}
		i = vlen + kl;
	}
	while (i < len && line[i] == ' ')
		i++;
	e = len;
	while (e > i && line[e - 1] == ' ')
		e--;
	*arg = line + i;
	*arglen = e - i;
	return v;
}

/* ---- MAIL / RCPT ----------------------------------------------------- */

/*
 * Common front part: trims the argument, checks it is well-formed UTF-8,
 * finds the "<...>" path (a ">" inside a quoted local part does not end
 * it) and checks what follows is empty or starts with SP.  On PARSE_OK,
 * [*path, *path + *plen) is the text between the brackets and
 * [*rest, *rest + *rlen) the parameter text.
 */
static enum smtp_parse_result split_path(const char *arg, size_t len,
    const char **path, size_t *plen, const char **rest, size_t *rlen)
{
	size_t b = 0, e = len, i;
	int quoted = 0;

	if (arg == NULL || len == 0)
		return PARSE_SYNTAX;
	while (b < e && arg[b] == ' ')
		b++;
	while (e > b && arg[e - 1] == ' ')
		e--;
	if (b == e || arg[b] != '<')
		return PARSE_SYNTAX;
	if (!utf8_valid(arg + b, e - b))
		return PARSE_SYNTAX;
	for (i = b + 1; i < e; i++) {
		char c = arg[i];
		if (quoted) {
			if (c == '\\')
				i++;    /* skip the quoted byte (bounded by the loop) */
			else if (c == '"')
				quoted = 0;
		} else if (c == '"') {
			quoted = 1;
		} else if (c == '>') {
			break;
		}
	}
	if (i >= e)
		return PARSE_SYNTAX;
	/* RFC 5321 4.5.3.1.3: the path, punctuation included, <= 256. */
	if (i - b + 1 > SMTP_MAX_PATH)
		return PARSE_TOO_LONG;
	if (i + 1 < e && arg[i + 1] != ' ')
		return PARSE_SYNTAX;
	*path = arg + b + 1;
	*plen = i - b - 1;
	*rest = arg + i + 1;
	*rlen = e - i - 1;
	return PARSE_OK;
}

/*
 * Judges the text between the brackets (not "<>" or "<Postmaster>",
 * which the callers handle): drops an optional source route
 * "@a,@b:" and validates the mailbox.  bad is PARSE_BAD_SENDER or
 * PARSE_BAD_RCPT.  On success the mailbox is copied to out.
 */
static enum smtp_parse_result judge_path(const char *p, size_t len,
    int utf8, enum smtp_parse_result bad, char *out, size_t outsize)
{
	size_t i = 0;
	enum smtp_parse_result r;

	if (len > 0 && p[0] == '@') {
		/* A-d-l ":" (RFC 5321 4.1.2), ignored (4.1.1.3). */
		for (;;) {
			size_t start;
			if (i >= len || p[i] != '@')
				return bad;
			start = ++i;
			if (i < len && p[i] == '[') {
				while (i < len && p[i] != ']')
					i++;
				if (i < len)
					i++;
			} else {
				while (i < len && p[i] != ',' && p[i] != ':')
					i++;
			}
			if (!smtp_check_domain(p + start, i - start, 1))
				return bad;
			if (i < len && p[i] == ',') {
				i++;
				continue;
			}
			if (i < len && p[i] == ':') {
				i++;
				break;
			}
			return bad;
		}
	}
	r = smtp_check_mailbox(p + i, len - i, 1);
	if (r == PARSE_SYNTAX)
		return bad;
	if (r != PARSE_OK)
		return r;
	if (!utf8 && has_non_ascii(p, len))
		return PARSE_NON_ASCII;
	if (len - i >= outsize)
		return PARSE_TOO_LONG;  /* cannot happen: path <= 256 */
	copy_out(out, p + i, len - i);
	return PARSE_OK;
}

/*
 * Steps through the parameters: each call skips the SPs, returns 1 and
 * the next "keyword[=value]" token split up, 0 at the end, or -1 when the
 * keyword is not (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
 */
static int next_param(const char **pp, const char *end, const char **kw,
    size_t *kwlen, const char **val, size_t *vallen, int *has_val)
{
	const char *p = *pp, *t;
	size_t i;

	while (p < end && *p == ' ')
		p++;
	if (p == end) {
		*pp = p;
		return 0;
	}
	t = p;
	while (p < end && *p != ' ')
		p++;
	*pp = p;
	*kw = t;
	for (i = 0; t + i < p && t[i] != '='; i++)
		;
	*kwlen = i;
	*has_val = t + i < p;
	*val = *has_val ? t + i + 1 : p;
	*vallen = *has_val ? (size_t)(p - t) - i - 1 : 0;
	if (*kwlen == 0 || !is_alnum((unsigned char)t[0]))
		return -1;
	for (i = 1; i < *kwlen; i++)
		if (!is_alnum((unsigned char)t[i]) && t[i] != '-')
			return -1;
	return 1;
}

/* esmtp-value = 1*(%d33-60 / %d62-126 / UTF-8 non-ASCII when utf8). */
static int esmtp_value_valid(const char *v, size_t n, int utf8)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c >= 0x80) {
			if (!utf8)
				return 0;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		}
	}
	return 1;
}

/* 1..20 DIGIT, value <= INT64_MAX. */
static int parse_number(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned d;
		if (!is_digit((unsigned char)s[i]))
			return 0;
		d = (unsigned)(s[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return 1;
}

static void mail_args_init(struct smtp_mail_args *out)
{
	memset(out, 0, sizeof(*out));
	out->size = -1;
	out->body = BODY_UNSPEC;
	out->ret = RET_UNSPEC;
}

enum mail_param { MP_SIZE, MP_BODY, MP_SMTPUTF8, MP_RET, MP_ENVID, MP_AUTH,
    MP_N };
static const char *const mail_param_names[MP_N] = {
	"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH",
};

static enum smtp_parse_result mail_params(const char *p, const char *end,
    unsigned flags, struct smtp_mail_args *out)
{
	const char *kw, *val;
	size_t kwlen, vallen;
	int has_val, r, k;
	unsigned seen = 0;

	while ((r = next_param(&p, end, &kw, &kwlen, &val, &vallen,
	    &has_val)) != 0) {
		if (r < 0)
			return PARSE_SYNTAX;
		if (!(flags & PARSE_ESMTP))
			return PARSE_PARAM_NO_ESMTP;
		for (k = 0; k < MP_N; k++)
			if (ci_eq(kw, kwlen, mail_param_names[k]))
				break;
		if (k == MP_N)
			return PARSE_UNKNOWN_PARAM;
		if (seen & (1u << k))
			return PARSE_DUP_PARAM;
		seen |= 1u << k;
		if (k == MP_SMTPUTF8) {
			if (has_val)
				return PARSE_BAD_PARAM;
			out->smtputf8 = 1;
			continue;
		}
		/* No MAIL parameter value admits non-ASCII. */
		if (!has_val || !esmtp_value_valid(val, vallen, 0))
			return PARSE_BAD_PARAM;
		switch (k) {
		case MP_SIZE: {
			uint64_t v;
			if (!parse_number(val, vallen, &v))
				return PARSE_BAD_PARAM;
			out->size = (int64_t)v;
			break;
		}
		case MP_BODY:
			if (ci_eq(val, vallen, "7BIT"))
				out->body = BODY_7BIT;
			else if (ci_eq(val, vallen, "8BITMIME"))
				out->body = BODY_8BITMIME;
			else
				return PARSE_BAD_PARAM;
			break;
		case MP_RET:
			if (ci_eq(val, vallen, "FULL"))
				out->ret = RET_FULL;
			else if (ci_eq(val, vallen, "HDRS"))
				out->ret = RET_HDRS;
			else
				return PARSE_BAD_PARAM;
			break;
		case MP_AUTH:
			/* RFC 4954 5: "<>" or an xtext mailbox; accepted
			 * and not used (ferry trusts no other MTA's word
			 * about who authenticated). */
			if (vallen > 500 || !smtp_xtext_valid(val, vallen))
				return PARSE_BAD_PARAM;
			break;
		default: /* MP_ENVID */
			if (vallen > DSN_MAX_ENVID ||
			    !smtp_xtext_valid(val, vallen))
				return PARSE_BAD_PARAM;
			copy_out(out->envid, val, vallen);
			break;
		}
	}
	return PARSE_OK;
}

/*
 * Order of judgement: path structure and length, then the parameters
 * (SMTPUTF8 decides whether non-ASCII is allowed), then the address.  An
 * empty argument (MAIL without "FROM:", see smtp_parse_verb) is
 * PARSE_SYNTAX.  On any error *out is left in its initial state.
 */
enum smtp_parse_result smtp_parse_mail(const char *arg, size_t len,
    unsigned flags, struct smtp_mail_args *out)
{
	const char *path, *rest;
	size_t plen, rlen;
	enum smtp_parse_result r;

	mail_args_init(out);
	r = split_path(arg, len, &path, &plen, &rest, &rlen);
	if (r == PARSE_OK)
		r = mail_params(rest, rest + rlen, flags, out);
	if (r == PARSE_OK && plen > 0)
		r = judge_path(path, plen, out->smtputf8, PARSE_BAD_SENDER,
		    out->addr, sizeof(out->addr));
	if (r != PARSE_OK)
		mail_args_init(out);
	return r;
}

/* NOTIFY=NEVER / 1#(SUCCESS / FAILURE / DELAY), RFC 3461 4.1. */
static int parse_notify(const char *v, size_t n, unsigned *bits)
{
	size_t i = 0;
	unsigned acc = 0;

	for (;;) {
		size_t start = i;
		unsigned bit;
		while (i < n && v[i] != ',')
			i++;
		if (ci_eq(v + start, i - start, "NEVER"))
			bit = NOTIFY_NEVER;
		else if (ci_eq(v + start, i - start, "SUCCESS"))
			bit = NOTIFY_SUCCESS;
		else if (ci_eq(v + start, i - start, "FAILURE"))
			bit = NOTIFY_FAILURE;
		else if (ci_eq(v + start, i - start, "DELAY"))
			bit = NOTIFY_DELAY;
		else
			return 0;
		if (acc & bit)
			return 0;
		acc |= bit;
		if (i == n)
			break;
		i++;    /* the comma; an empty item after it fails above */
	}
	if ((acc & NOTIFY_NEVER) && acc != NOTIFY_NEVER)
		return 0;
	*bits = acc;
	return 1;
}

/* ORCPT=addr-type ";" xtext, RFC 3461 4.2; RFC 6533 for utf-8. */
static int orcpt_valid(const char *v, size_t n, int utf8)
{
	size_t semi, i;

	if (n > DSN_MAX_ORCPT)
		return 0;
	for (semi = 0; semi < n && v[semi] != ';'; semi++)
		;
	if (semi == 0 || semi == n || semi + 1 == n)
		return 0;
	for (i = 0; i < semi; i++)
		if (!is_atext((unsigned char)v[i]))
			return 0;
	if (ci_eq(v, semi, "utf-8"))
		return utf8_addr_xtext_valid(v + semi + 1, n - semi - 1, utf8);
	return smtp_xtext_valid(v + semi + 1, n - semi - 1);
}

enum rcpt_param { RP_NOTIFY, RP_ORCPT, RP_N };
static const char *const rcpt_param_names[RP_N] = { "NOTIFY", "ORCPT" };

static enum smtp_parse_result rcpt_params(const char *p, const char *end,
    unsigned flags, int smtputf8, struct smtp_rcpt_args *out)
{
	const char *kw, *val;
	size_t kwlen, vallen;
	int has_val, r, k;
	unsigned seen = 0;

	while ((r = next_param(&p, end, &kw, &kwlen, &val, &vallen,
	    &has_val)) != 0) {
		if (r < 0)
			return PARSE_SYNTAX;
		if (!(flags & PARSE_ESMTP))
			return PARSE_PARAM_NO_ESMTP;
		for (k = 0; k < RP_N; k++)
			if (ci_eq(kw, kwlen, rcpt_param_names[k]))
				break;
		if (k == RP_N)
			return PARSE_UNKNOWN_PARAM;
		if (seen & (1u << k))
			return PARSE_DUP_PARAM;
		seen |= 1u << k;
		if (!has_val || !esmtp_value_valid(val, vallen, smtputf8))
			return PARSE_BAD_PARAM;
		if (k == RP_NOTIFY) {
			if (!parse_notify(val, vallen, &out->notify))
				return PARSE_BAD_PARAM;
		} else {
			if (!orcpt_valid(val, vallen, smtputf8))
				return PARSE_BAD_PARAM;
			copy_out(out->orcpt, val, vallen);
		}
	}
	return PARSE_OK;
}

enum smtp_parse_result smtp_parse_rcpt(const char *arg, size_t len,
    unsigned flags, int smtputf8, struct smtp_rcpt_args *out)
{
	const char *path, *rest;
	size_t plen, rlen;
	enum smtp_parse_result r;

	memset(out, 0, sizeof(*out));
	r = split_path(arg, len, &path, &plen, &rest, &rlen);
	if (r == PARSE_OK)
		r = rcpt_params(rest, rest + rlen, flags, smtputf8, out);
	if (r == PARSE_OK) {
		if (plen == 0)
			r = PARSE_BAD_RCPT;     /* RCPT TO:<> */
		else if (ci_eq(path, plen, "Postmaster"))
			copy_out(out->addr, "Postmaster", strlen("Postmaster"));
		else
			r = judge_path(path, plen, smtputf8, PARSE_BAD_RCPT,
			    out->addr, sizeof(out->addr));
	}
	if (r != PARSE_OK)
		memset(out, 0, sizeof(*out));
	return r;
}

/* ---- HELO / EHLO and BDAT ------------------------------------------- */

int smtp_parse_helo(const char *arg, size_t len, char *out, size_t outlen)
{
	size_t b = 0, e = len, i;

	if (arg == NULL || out == NULL)
		return -1;
	while (b < e && arg[b] == ' ')
		b++;
	while (e > b && arg[e - 1] == ' ')
		e--;
	if (b == e || e - b > SMTP_MAX_DOMAIN || e - b >= outlen)
		return -1;
	for (i = b; i < e; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c < 0x80 && (c < 33 || c > 126))
			return -1;
	}
	if (!utf8_valid(arg + b, e - b))
		return -1;
	copy_out(out, arg + b, e - b);
	return 0;
}

int smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, int *last)
{
	size_t b = 0, e = len, i;
	uint64_t v;

	if (arg == NULL)
		return -1;
	while (b < e && arg[b] == ' ')
		b++;
	while (e > b && arg[e - 1] == ' ')
		e--;
	for (i = b; i < e && is_digit((unsigned char)arg[i]); i++)
		;
	if (!parse_number(arg + b, i - b, &v))
		return -1;
	if (i == e) {
		*size = v;
		*last = 0;
		return 0;
	}
	if (arg[i] != ' ')
		return -1;
	while (i < e && arg[i] == ' ')
		i++;
	if (!ci_eq(arg + i, e - i, "LAST"))
		return -1;
	*size = v;
	*last = 1;
	return 0;
}
