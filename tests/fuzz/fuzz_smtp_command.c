/*
 * fuzz_smtp_command.c - libFuzzer harness for the SMTP command parsers
 * (smtp_parse.c).  The input is one command line without CRLF, exactly
 * as smtp_session.c hands it over: not NUL-terminated, any bytes.
 *
 * The line goes through smtp_parse_verb, then, by verb, through
 * smtp_parse_mail / smtp_parse_rcpt / smtp_parse_helo / smtp_parse_bdat
 * with every flag setting; the raw bytes also go through the mailbox,
 * domain, xtext and UTF-8 checkers.  Checked: outputs are terminated and
 * inside their fields, a failed parse leaves its output in the initial
 * state, granting more (ESMTP, SMTPUTF8) never turns an accepted command
 * into a refused one, and utf8_valid agrees with an independent
 * table-driven decoder (Unicode 15, table 3-7).
 */
#include "fuzz.h"

#include <string.h>

#include "smtp_parse.h"

/* Well-formed UTF-8 by the byte ranges of Unicode table 3-7. */
static int
ref_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint8_t lo = 0x80, hi = 0xBF;
		size_t n, k;

		if (c <= 0x7F) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
		} else if (c == 0xE0) {
			n = 2; lo = 0xA0;
		} else if (c == 0xED) {
			n = 2; hi = 0x9F;
		} else if (c >= 0xE1 && c <= 0xEF) {
			n = 2;
		} else if (c == 0xF0) {
			n = 3; lo = 0x90;
		} else if (c == 0xF4) {
			n = 3; hi = 0x8F;
		} else if (c >= 0xF1 && c <= 0xF3) {
			n = 3;
		} else {
			return 0;
		}
		if (len - i - 1 < n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return 0;
		i += n + 1;
	}
	return 1;
}

static int
ref_upper_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* RFC 3461 4 xtext, written out again. */
static int
ref_xtext_valid(const uint8_t *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			if (i + 2 >= len || !ref_upper_hex(s[i + 1]) ||
			    !ref_upper_hex(s[i + 2]))
				return 0;
			i += 2;
		} else if (s[i] < 33 || s[i] > 126 || s[i] == '=') {
			return 0;
		}
	}
	return 1;
}

static int
is_initial_mail(const struct smtp_mail_args *m)
{
	return m->addr[0] == '\0' && m->size == -1 &&
	    m->body == BODY_UNSPEC && m->smtputf8 == 0 &&
	    m->ret == RET_UNSPEC && m->envid[0] == '\0';
}

static void
check_mail_out(const struct smtp_mail_args *m, size_t arglen)
{
	FUZZ_CHECK(FUZZ_TERMINATED(m->addr));
	FUZZ_CHECK(FUZZ_TERMINATED(m->envid));
	FUZZ_CHECK(strlen(m->addr) <= arglen);
	FUZZ_CHECK(strlen(m->envid) <= DSN_MAX_ENVID);
	FUZZ_CHECK(m->size >= -1);
	FUZZ_CHECK(m->body == BODY_UNSPEC || m->body == BODY_7BIT ||
	    m->body == BODY_8BITMIME);
	FUZZ_CHECK(m->ret == RET_UNSPEC || m->ret == RET_FULL ||
	    m->ret == RET_HDRS);
	FUZZ_CHECK(m->smtputf8 == 0 || m->smtputf8 == 1);
	FUZZ_CHECK(smtp_xtext_valid(m->envid, strlen(m->envid)));
	if (m->addr[0] != '\0')
		FUZZ_CHECK(smtp_check_mailbox(m->addr, strlen(m->addr),
		    m->smtputf8) == PARSE_OK);
}

static void
fuzz_mail(const char *arg, size_t arglen)
{
	struct smtp_mail_args plain, esmtp;
	enum smtp_parse_result rp, re;

	rp = smtp_parse_mail(arg, arglen, 0, &plain);
	re = smtp_parse_mail(arg, arglen, PARSE_ESMTP, &esmtp);
	if (rp != PARSE_OK)
		FUZZ_CHECK(is_initial_mail(&plain));
	if (re != PARSE_OK)
		FUZZ_CHECK(is_initial_mail(&esmtp));
	check_mail_out(&plain, arglen);
	check_mail_out(&esmtp, arglen);
	if (rp == PARSE_OK) {
		/* no parameters were given: ESMTP changes nothing */
		FUZZ_CHECK(re == PARSE_OK);
		FUZZ_CHECK(plain.size == -1 && plain.smtputf8 == 0 &&
		    plain.envid[0] == '\0');
		FUZZ_CHECK(memcmp(&plain, &esmtp, sizeof(plain)) == 0);
	}
	FUZZ_CHECK(re != PARSE_PARAM_NO_ESMTP);
}

static void
check_rcpt_out(const struct smtp_rcpt_args *r, size_t arglen, int rv)
{
	FUZZ_CHECK(FUZZ_TERMINATED(r->addr));
	FUZZ_CHECK(FUZZ_TERMINATED(r->orcpt));
	FUZZ_CHECK(strlen(r->orcpt) <= DSN_MAX_ORCPT);
	FUZZ_CHECK((r->notify & ~0x0fu) == 0);
	FUZZ_CHECK(!(r->notify & NOTIFY_NEVER) || r->notify == NOTIFY_NEVER);
	if (rv != PARSE_OK) {
		FUZZ_CHECK(r->addr[0] == '\0' && r->orcpt[0] == '\0' &&
		    r->notify == 0);
		return;
	}
	FUZZ_CHECK(r->addr[0] != '\0');
	FUZZ_CHECK(strlen(r->addr) <= arglen);
	FUZZ_CHECK(strcmp(r->addr, "Postmaster") == 0 ||
	    smtp_check_mailbox(r->addr, strlen(r->addr), 1) == PARSE_OK);
}

static void
fuzz_rcpt(const char *arg, size_t arglen)
{
	struct smtp_rcpt_args out[2][2];
	enum smtp_parse_result rv[2][2];
	int esmtp, utf8;

	for (esmtp = 0; esmtp < 2; esmtp++)
		for (utf8 = 0; utf8 < 2; utf8++) {
			rv[esmtp][utf8] = smtp_parse_rcpt(arg, arglen,
			    esmtp ? PARSE_ESMTP : 0, utf8, &out[esmtp][utf8]);
			check_rcpt_out(&out[esmtp][utf8], arglen,
			    rv[esmtp][utf8]);
			FUZZ_CHECK(rv[esmtp][utf8] != PARSE_BAD_SENDER);
		}
	for (esmtp = 0; esmtp < 2; esmtp++) {
		/* SMTPUTF8 only ever widens what is accepted */
		if (rv[esmtp][0] == PARSE_OK) {
			FUZZ_CHECK(rv[esmtp][1] == PARSE_OK);
			FUZZ_CHECK(memcmp(&out[esmtp][0], &out[esmtp][1],
			    sizeof(out[0][0])) == 0);
		}
		if (rv[esmtp][0] == PARSE_NON_ASCII)
			FUZZ_CHECK(rv[esmtp][1] != PARSE_NON_ASCII);
	}
	for (utf8 = 0; utf8 < 2; utf8++)
		if (rv[0][utf8] == PARSE_OK) {
			FUZZ_CHECK(rv[1][utf8] == PARSE_OK);
			FUZZ_CHECK(memcmp(&out[0][utf8], &out[1][utf8],
			    sizeof(out[0][0])) == 0);
		}
}

static void
fuzz_helo(const char *arg, size_t arglen)
{
	char out[SMTP_MAX_DOMAIN + 1], small[8];
	int r, rs;

	memset(out, 'x', sizeof(out));
	r = smtp_parse_helo(arg, arglen, out, sizeof(out));
	if (r == 0) {
		FUZZ_CHECK(FUZZ_TERMINATED(out));
		FUZZ_CHECK(strlen(out) > 0 && strlen(out) <= arglen);
		FUZZ_CHECK(strchr(out, ' ') == NULL);
		FUZZ_CHECK(utf8_valid(out, strlen(out)));
	} else {
		FUZZ_CHECK(r == -1);
	}
	/* a short output buffer is never overrun */
	rs = smtp_parse_helo(arg, arglen, small, sizeof(small));
	if (rs == 0) {
		FUZZ_CHECK(r == 0 && strcmp(small, out) == 0);
	} else {
		FUZZ_CHECK(rs == -1);
		FUZZ_CHECK(r != 0 || strlen(out) >= sizeof(small));
	}
}

static void
fuzz_bdat(const char *arg, size_t arglen)
{
	uint64_t size = 12345;
	int last = 7;

	if (smtp_parse_bdat(arg, arglen, &size, &last) == 0) {
		FUZZ_CHECK(size <= (uint64_t)INT64_MAX);
		FUZZ_CHECK(last == 0 || last == 1);
	} else {
		FUZZ_CHECK(size == 12345 && last == 7);
	}
}

static void
fuzz_raw(const char *s, size_t len)
{
	enum smtp_parse_result m0, m1;
	int d0, d1;

	m0 = smtp_check_mailbox(s, len, 0);
	m1 = smtp_check_mailbox(s, len, 1);
	if (m0 == PARSE_OK)
		FUZZ_CHECK(m1 == PARSE_OK);
	if (m0 == PARSE_NON_ASCII)
		FUZZ_CHECK(m1 == PARSE_OK);
	FUZZ_CHECK(m1 != PARSE_NON_ASCII);
	d0 = smtp_check_domain(s, len, 0);
	d1 = smtp_check_domain(s, len, 1);
	if (d0)
		FUZZ_CHECK(d1);
	FUZZ_CHECK(smtp_xtext_valid(s, len) ==
	    ref_xtext_valid((const uint8_t *)s, len));
	FUZZ_CHECK(!!utf8_valid(s, len) ==
	    ref_utf8_valid((const uint8_t *)s, len));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data, *arg = NULL;
	size_t arglen = 0;
	enum smtp_verb v;

	v = smtp_parse_verb(line, size, &arg, &arglen);
	FUZZ_CHECK((int)v >= (int)VERB_UNKNOWN && (int)v < (int)VERB_MAX);
	FUZZ_CHECK(smtp_verb_name(v) != NULL);
	FUZZ_CHECK(arg != NULL);
	FUZZ_CHECK(arg >= line && arglen <= size &&
	    (size_t)(arg - line) <= size - arglen);
	FUZZ_CHECK(arglen == 0 || (arg[0] != ' ' && arg[arglen - 1] != ' '));

	switch (v) {
	case VERB_MAIL:
		fuzz_mail(arg, arglen);
		break;
	case VERB_RCPT:
		fuzz_rcpt(arg, arglen);
		break;
	case VERB_HELO:
	case VERB_EHLO:
		fuzz_helo(arg, arglen);
		break;
	case VERB_BDAT:
		fuzz_bdat(arg, arglen);
		break;
	default:
		break;
	}
	fuzz_raw(line, size);
	return 0;
}
