/*
 * fuzz_address.c - libFuzzer harness for address syntax (smtp_parse.c):
 * smtp_check_mailbox and smtp_check_domain with SMTPUTF8 on and off, and
 * the same address carried through MAIL FROM / RCPT TO / HELO.
 *
 * Invariants: what is accepted without UTF-8 is accepted with it, and an
 * ASCII address accepted with UTF-8 is accepted without; an accepted
 * mailbox splits into a local part of at most 64 bytes and a domain that
 * smtp_check_domain accepts; wrapped in <...> (also behind a source
 * route) it parses as MAIL and RCPT and comes back byte for byte, in a
 * terminated field; an accepted domain is a valid HELO argument and
 * makes "x@domain" a valid mailbox; an IPv4 address literal is accepted
 * exactly when it is four dot-separated numbers of 1-3 digits <= 255.
 */
#include "fuzz.h"

#include <string.h>

#include "smtp_parse.h"

static int
non_ascii(const uint8_t *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] >= 0x80)
			return 1;
	return 0;
}

/* Index of the "@" after the local part (quoted or not), or len. */
static size_t
local_end(const uint8_t *s, size_t len)
{
	size_t i = 0;

	if (len > 0 && s[0] == '"') {
		for (i = 1; i < len; i++) {
			if (s[i] == '\\') {
				i++;
			} else if (s[i] == '"') {
				i++;
				break;
			}
		}
		return i < len && s[i] == '@' ? i : len;
	}
	while (i < len && s[i] != '@')
		i++;
	return i;
}

/* RFC 5321 IPv4-address-literal body, written out again. */
static int
ref_ipv4(const uint8_t *s, size_t len)
{
	size_t i = 0;
	int part;

	for (part = 0; part < 4; part++) {
		size_t nd = 0;
		unsigned v = 0;

		if (part > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			v = v * 10 + (unsigned)(s[i] - '0');
			if (++nd > 3)
				return 0;
			i++;
		}
		if (nd == 0 || v > 255)
			return 0;
	}
	return i == len;
}

/* buf = pre + s + post; returns its length, 0 when it does not fit. */
static size_t
wrap(char *buf, size_t size, const char *pre, const uint8_t *s, size_t len,
    const char *post)
{
	size_t a = strlen(pre), b = strlen(post);

	if (a + len + b > size)
		return 0;
	memcpy(buf, pre, a);
	memcpy(buf + a, s, len);
	memcpy(buf + a + len, post, b);
	return a + len + b;
}

static int
same_addr(const char *field, size_t fsize, const uint8_t *s, size_t len)
{
	return memchr(field, '\0', fsize) != NULL && strlen(field) == len &&
	    memcmp(field, s, len) == 0;
}

/* An accepted mailbox travels through MAIL and RCPT unchanged. */
static void
through_commands(const uint8_t *s, size_t len, int utf8)
{
	static const char *const pre[] = {
		"<", "  <", "<@relay.example:", "<@a.example,@[192.0.2.1]:",
	};
	char buf[600];
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	size_t i, n, at = local_end(s, len);

	/* RFC 5321 lets '"' and '>' stand in a general address literal,
	 * where the path scanner cannot tell them from the path's end; it
	 * refuses such paths, which is fine. */
	if (memchr(s + at, '"', len - at) || memchr(s + at, '>', len - at))
		return;
	for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		size_t plen = strlen(pre[i]) + len + 1;

		if (pre[i][0] == ' ')
			plen -= 2;
		n = wrap(buf, sizeof(buf), pre[i], s, len,
		    utf8 ? "> SMTPUTF8" : "> ");
		FUZZ_CHECK(n > 0);
		if (plen > SMTP_MAX_PATH) {
			FUZZ_CHECK(smtp_parse_mail(buf, n, PARSE_ESMTP, &m) ==
			    PARSE_TOO_LONG);
			continue;
		}
		FUZZ_CHECK(smtp_parse_mail(buf, n, PARSE_ESMTP, &m) ==
		    PARSE_OK);
		FUZZ_CHECK(same_addr(m.addr, sizeof(m.addr), s, len));
		FUZZ_CHECK(m.smtputf8 == utf8);
		if (utf8) {
			/* the same without SMTPUTF8 is refused as such */
			FUZZ_CHECK(smtp_parse_mail(buf, n - 8, PARSE_ESMTP,
			    &m) == PARSE_NON_ASCII);
		}
		n = wrap(buf, sizeof(buf), pre[i], s, len, "> NOTIFY=NEVER");
		FUZZ_CHECK(smtp_parse_rcpt(buf, n, PARSE_ESMTP, utf8, &r) ==
		    PARSE_OK);
		FUZZ_CHECK(same_addr(r.addr, sizeof(r.addr), s, len));
		FUZZ_CHECK(r.notify == NOTIFY_NEVER);
		if (utf8)
			FUZZ_CHECK(smtp_parse_rcpt(buf, n, PARSE_ESMTP, 0,
			    &r) == PARSE_NON_ASCII);
	}
}

static void
check_mailbox(const uint8_t *s, size_t len)
{
	enum smtp_parse_result r0, r1;
	size_t at;

	r0 = smtp_check_mailbox((const char *)s, len, 0);
	r1 = smtp_check_mailbox((const char *)s, len, 1);
	FUZZ_CHECK(r0 == PARSE_OK || r0 == PARSE_SYNTAX ||
	    r0 == PARSE_TOO_LONG || r0 == PARSE_NON_ASCII);
	FUZZ_CHECK(r1 == PARSE_OK || r1 == PARSE_SYNTAX ||
	    r1 == PARSE_TOO_LONG);
	if (r0 == PARSE_OK || r0 == PARSE_NON_ASCII)
		FUZZ_CHECK(r1 == PARSE_OK);
	if (r1 != PARSE_OK)
		FUZZ_CHECK(r0 == r1);
	if (r1 != PARSE_OK)
		return;
	FUZZ_CHECK((r0 == PARSE_OK) == !non_ascii(s, len));

	at = local_end(s, len);
	FUZZ_CHECK(at >= 1 && at < len);
	FUZZ_CHECK(at <= SMTP_MAX_LOCAL_PART);
	FUZZ_CHECK(len - at - 1 >= 1 && len - at - 1 <= SMTP_MAX_DOMAIN);
	FUZZ_CHECK(smtp_check_domain((const char *)s + at + 1, len - at - 1,
	    1));
	through_commands(s, len, r0 != PARSE_OK);
}

static void
check_domain(const uint8_t *s, size_t len)
{
	const char *d = (const char *)s;
	char buf[300], helo[SMTP_MAX_DOMAIN + 1];
	int d0 = smtp_check_domain(d, len, 0);
	int d1 = smtp_check_domain(d, len, 1);
	size_t n;

	if (d0)
		FUZZ_CHECK(d1);
	if (d1 && !non_ascii(s, len))
		FUZZ_CHECK(d0);
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		size_t i;
		int dotted = len > 2;

		for (i = 1; i + 1 < len; i++)
			if (!(s[i] == '.' || (s[i] >= '0' && s[i] <= '9')))
				dotted = 0;
		if (dotted)
			FUZZ_CHECK(d1 == ref_ipv4(s + 1, len - 2));
	}
	if (!d1)
		return;
	FUZZ_CHECK(len <= SMTP_MAX_DOMAIN);
	FUZZ_CHECK(smtp_parse_helo(d, len, helo, sizeof(helo)) == 0);
	FUZZ_CHECK(same_addr(helo, sizeof(helo), s, len));
	n = wrap(buf, sizeof(buf), "x@", s, len, "");
	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(smtp_check_mailbox(buf, n, d0 ? 0 : 1) == PARSE_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *s = fuzz_dup(data, size);

	check_mailbox(s, size);
	check_domain(s, size);
	if (size > 0 && s[0] == '[') {
		/* the same literal as a mailbox's domain */
		char buf[300];
		size_t n = wrap(buf, sizeof(buf), "a@", s, size, "");

		if (n > 0)
			check_mailbox((const uint8_t *)buf, n);
	}
	free(s);
	return 0;
}
