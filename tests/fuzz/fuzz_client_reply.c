/*
 * fuzz_client_reply.c - libFuzzer harness for the SMTP client's reply
 * parser and EHLO keyword reader (smtp_client_reply.c).
 *
 * Input: byte 0 sets how many bytes arrive per read (1..64), byte 1 the
 * line limit handed to scr_init (clamped there to 512..2048); the rest is
 * what a server sends, possibly several pipelined replies.
 *
 * The replies are parsed twice: with the whole stream at hand, and fed
 * incrementally the way the delivery agent reads (the same parser state,
 * a growing buffer, an exact-size copy each time so ASan sees any read
 * past the end).  Both must agree on every reply - result and every byte
 * of the parsed struct.  A parsed reply must be well-formed: a code of
 * 200..599, a length ending in CRLF within the buffer, a terminated,
 * printable summary starting with the code, an enhanced status code of
 * the code's class or none.  scr_ehlo_caps runs on each parsed reply and
 * on the raw stream.
 */
#include "fuzz.h"

#include <string.h>

#include "smtp_client_reply.h"

static int
is_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n > 0;
}

/* "c.d{1,3}.d{1,3}" */
static int
esc_shape(const char *s)
{
	const char *dot1, *dot2;

	if (s[0] < '0' || s[0] > '9' || s[1] != '.')
		return 0;
	dot1 = s + 1;
	dot2 = strchr(dot1 + 1, '.');
	if (dot2 == NULL || dot2 - dot1 - 1 > 3 ||
	    !is_digits(dot1 + 1, (size_t)(dot2 - dot1 - 1)))
		return 0;
	return strlen(dot2 + 1) <= 3 && is_digits(dot2 + 1, strlen(dot2 + 1));
}

static void
check_caps(const char *buf, size_t len)
{
	struct ehlo_caps c, again;
	char *copy = fuzz_dup(buf, len);

	scr_ehlo_caps(copy, len, &c);
	scr_ehlo_caps(copy, len, &again);
	FUZZ_CHECK(memcmp(&c, &again, sizeof(c)) == 0);
	FUZZ_CHECK(c.auth || c.auth_mechs == 0);
	FUZZ_CHECK((c.auth_mechs & ~(unsigned)(AUTH_MECH_PLAIN |
	    AUTH_MECH_LOGIN | AUTH_MECH_XOAUTH2 | AUTH_MECH_OAUTHBEARER)) == 0);
	FUZZ_CHECK(c.size || c.size_max == 0);
	FUZZ_CHECK(c.size_max < 10000000000000000000ULL);
	free(copy);
}

static void
check_reply(const struct smtp_client_reply *r, const char *buf, size_t len)
{
	char code[8];
	const char *dsn;
	size_t i, tl;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= SCR_MAX_LINES);
	FUZZ_CHECK(r->len >= 5 && r->len <= len);
	FUZZ_CHECK(buf[r->len - 2] == '\r' && buf[r->len - 1] == '\n');
	FUZZ_CHECK(FUZZ_TERMINATED(r->text));
	FUZZ_CHECK(FUZZ_TERMINATED(r->esc));
	tl = strlen(r->text);
	for (i = 0; i < tl; i++)
		FUZZ_CHECK(r->text[i] >= 0x20 && r->text[i] < 0x7f);
	snprintf(code, sizeof(code), "%d", r->code);
	FUZZ_CHECK(strncmp(r->text, code, 3) == 0);
	FUZZ_CHECK(tl == 3 || r->text[3] == ' ');
	if (r->esc[0] != '\0') {
		FUZZ_CHECK(esc_shape(r->esc));
		FUZZ_CHECK(r->esc[0] == code[0]);
	}
	dsn = scr_dsn(r);
	FUZZ_CHECK(dsn != NULL && esc_shape(dsn));
	if (r->code / 100 != 3)
		FUZZ_CHECK(dsn[0] == code[0]);
	check_caps(buf, r->len);
}

/* One scr_parse call on an exact-size copy of buf[0..len). */
static int
parse_copy(struct scr_parser *p, const char *buf, size_t len,
    struct smtp_client_reply *r, const char **why)
{
	char *copy = fuzz_dup(buf, len);
	int res;

	*why = "unset";
	res = scr_parse(p, copy, len, r, why);
	FUZZ_CHECK(res == SCR_DONE || res == SCR_MORE || res == SCR_ERROR);
	FUZZ_CHECK((res == SCR_ERROR) == (*why != NULL));
	FUZZ_CHECK(p->pos <= len);
	free(copy);
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf;
	size_t n, step, max_line, off = 0;
	struct smtp_client_reply *whole, *part;
	const char *why;

	if (size < 2)
		return 0;
	step = 1 + (data[0] & 0x3f);
	max_line = 400 + (size_t)data[1] * 8;
	buf = (const char *)data + 2;
	n = size - 2;
	whole = fuzz_alloc(sizeof(*whole));
	part = fuzz_alloc(sizeof(*part));

	for (;;) {
		struct scr_parser pw, pp;
		size_t avail = n - off, have;
		int rw, rp;

		scr_init(&pw, max_line);
		FUZZ_CHECK(pw.max_line >= SCR_LINE_MIN &&
		    pw.max_line <= SCR_LINE_MAX);
		rw = parse_copy(&pw, buf + off, avail, whole, &why);
		if (rw == SCR_DONE)
			check_reply(whole, buf + off, avail);

		scr_init(&pp, max_line);
		have = avail < step ? avail : step;
		for (;;) {
			rp = parse_copy(&pp, buf + off, have, part, &why);
			if (rp != SCR_MORE || have == avail)
				break;
			have = avail - have < step ? avail : have + step;
		}
		FUZZ_CHECK(rp == rw);
		if (rw != SCR_DONE)
			break;
		FUZZ_CHECK(memcmp(whole, part, sizeof(*whole)) == 0);
		off += whole->len;
	}
	check_caps(buf, n);
	free(whole);
	free(part);
	return 0;
}
