/*
 * check_smtp_parse.c - unit tests for src/smtp_parse.c: verbs, MAIL/RCPT
 * paths and ESMTP parameters, mailbox and domain syntax, UTF-8, xtext,
 * HELO and BDAT arguments.  Most tests are tables run as loop tests; each
 * input is copied into an exactly-sized heap buffer with no terminating
 * NUL, so the sanitizers catch any read outside [s, s + len).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

#define E PARSE_ESMTP

/* An exactly-sized, unterminated copy of s[0..n). */
static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n > 0 ? n : 1);

	ck_assert_ptr_nonnull(p);
	if (n > 0)
		memcpy(p, s, n);
	return p;
}

/* Fills buf with a valid domain of exactly n octets (63-octet labels). */
static void make_domain(char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (i % 64 == 63) ? '.' : 'd';
	if (n > 1 && buf[n - 1] == '.') {
		buf[n - 2] = '.';       /* no trailing dot: end in "x.e" */
		buf[n - 1] = 'e';
	}
	buf[n] = '\0';
}

static void fill(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

/* ---- verbs ------------------------------------------------------------ */

struct verb_case {
	const char *line;
	enum smtp_verb verb;
	const char *arg;        /* expected argument */
	int arg_at_end;         /* arg must be line + len (MAIL/RCPT w/o kw) */
};

static const struct verb_case verb_cases[] = {
	{ "HELO example.com", VERB_HELO, "example.com", 0 },
	{ "helo example.com", VERB_HELO, "example.com", 0 },
	{ "HeLo   example.com   ", VERB_HELO, "example.com", 0 },
	{ "HELO", VERB_HELO, "", 1 },
	{ "HELO ", VERB_HELO, "", 0 },
	{ "EHLO client.example", VERB_EHLO, "client.example", 0 },
	{ "eHlO [192.0.2.1]", VERB_EHLO, "[192.0.2.1]", 0 },
	{ "MAIL FROM:<a@b.example>", VERB_MAIL, "<a@b.example>", 0 },
	{ "mail from:<a@b.example>", VERB_MAIL, "<a@b.example>", 0 },
	{ "Mail From:<>", VERB_MAIL, "<>", 0 },
	{ "MAIL FROM: <a@b.example>", VERB_MAIL, "<a@b.example>", 0 },
	{ "MAIL FROM:   <a@b.example> SIZE=1  ", VERB_MAIL,
	  "<a@b.example> SIZE=1", 0 },
	{ "MAIL FROM:", VERB_MAIL, "", 0 },
	{ "MAIL", VERB_MAIL, "", 1 },
	{ "MAIL ", VERB_MAIL, "", 1 },
	{ "MAIL TO:<a@b.example>", VERB_MAIL, "", 1 },
	{ "MAIL FROM <a@b.example>", VERB_MAIL, "", 1 },
	{ "MAIL FROM :<a@b.example>", VERB_MAIL, "", 1 },
	{ "MAIL  FROM:<a@b.example>", VERB_MAIL, "", 1 },
	{ "MAIL FRO", VERB_MAIL, "", 1 },
	{ "MAILFROM:<a@b.example>", VERB_UNKNOWN, "", 1 },
	{ "RCPT TO:<a@b.example>", VERB_RCPT, "<a@b.example>", 0 },
	{ "rcpt to:<a@b.example> NOTIFY=NEVER", VERB_RCPT,
	  "<a@b.example> NOTIFY=NEVER", 0 },
	{ "RCPT TO:  <a@b.example>  ", VERB_RCPT, "<a@b.example>", 0 },
	{ "RCPT", VERB_RCPT, "", 1 },
	{ "RCPT FROM:<a@b.example>", VERB_RCPT, "", 1 },
	{ "RCPT TO <a@b.example>", VERB_RCPT, "", 1 },
	{ "RCPTTO:<a@b.example>", VERB_UNKNOWN, "", 1 },
	{ "DATA", VERB_DATA, "", 1 },
	{ "data", VERB_DATA, "", 1 },
	{ "DATA   ", VERB_DATA, "", 0 },
	{ "DATA x", VERB_DATA, "x", 0 },
	{ "DATAX", VERB_UNKNOWN, "", 1 },
	{ "BDAT 100 LAST", VERB_BDAT, "100 LAST", 0 },
	{ "bdat 0", VERB_BDAT, "0", 0 },
	{ "RSET", VERB_RSET, "", 1 },
	{ "rset", VERB_RSET, "", 1 },
	{ "VRFY postmaster", VERB_VRFY, "postmaster", 0 },
	{ "vrfy  John Smith ", VERB_VRFY, "John Smith", 0 },
	{ "EXPN list", VERB_EXPN, "list", 0 },
	{ "HELP", VERB_HELP, "", 1 },
	{ "help MAIL", VERB_HELP, "MAIL", 0 },
	{ "NOOP", VERB_NOOP, "", 1 },
	{ "noop anything", VERB_NOOP, "anything", 0 },
	{ "QUIT", VERB_QUIT, "", 1 },
	{ "Quit", VERB_QUIT, "", 1 },
	{ "QUITS", VERB_UNKNOWN, "", 1 },
	{ "STARTTLS", VERB_STARTTLS, "", 1 },
	{ "starttls", VERB_STARTTLS, "", 1 },
	{ "STARTTLSX", VERB_UNKNOWN, "", 1 },
	{ "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", VERB_AUTH,
	  "PLAIN dGVzdAB0ZXN0AHRlc3Q=", 0 },
	{ "auth login", VERB_AUTH, "login", 0 },
	{ "HELOX", VERB_UNKNOWN, "", 1 },
	{ "HELOexample.com", VERB_UNKNOWN, "", 1 },
	{ "HEL", VERB_UNKNOWN, "", 1 },
	{ "HELO\texample.com", VERB_UNKNOWN, "", 1 },
	{ " HELO example.com", VERB_UNKNOWN, "HELO example.com", 0 },
	{ "XYZZY foo", VERB_UNKNOWN, "foo", 0 },
	{ "", VERB_UNKNOWN, "", 1 },
	{ "   ", VERB_UNKNOWN, "", 0 },
	{ "\xC3\xA9HLO x", VERB_UNKNOWN, "x", 0 },
};

START_TEST(test_verb_table)
{
	const struct verb_case *c = &verb_cases[_i];
	size_t len = strlen(c->line), alen = 12345;
	char *line = dupn(c->line, len);
	const char *arg = NULL;
	enum smtp_verb v;

	v = smtp_parse_verb(line, len, &arg, &alen);
	ck_assert_msg(v == c->verb, "\"%s\": verb %d, want %d", c->line,
	    (int)v, (int)c->verb);
	ck_assert_ptr_nonnull(arg);
	ck_assert_msg(arg >= line && arg <= line + len, "\"%s\": arg out of "
	    "line", c->line);
	ck_assert_msg(arg + alen <= line + len, "\"%s\": arglen", c->line);
	ck_assert_msg(alen == strlen(c->arg) && memcmp(arg, c->arg, alen) == 0,
	    "\"%s\": arg \"%.*s\", want \"%s\"", c->line, (int)alen, arg,
	    c->arg);
	if (c->arg_at_end)
		ck_assert_msg(arg == line + len, "\"%s\": arg not at end",
		    c->line);
	free(line);
}
END_TEST

START_TEST(test_verb_null_line)
{
	const char *arg = NULL;
	size_t alen = 99;

	ck_assert_int_eq(smtp_parse_verb(NULL, 0, &arg, &alen), VERB_UNKNOWN);
	ck_assert_ptr_nonnull(arg);
	ck_assert_uint_eq(alen, 0);
}
END_TEST

START_TEST(test_verb_names)
{
	static const char *const names[VERB_MAX] = {
		"unknown", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT",
		"RSET", "VRFY", "EXPN", "HELP", "NOOP", "QUIT", "STARTTLS",
		"AUTH",
	};
	int i;

	for (i = 0; i < VERB_MAX; i++)
		ck_assert_str_eq(smtp_verb_name((enum smtp_verb)i), names[i]);
	ck_assert_str_eq(smtp_verb_name(VERB_MAX), "unknown");
	ck_assert_str_eq(smtp_verb_name((enum smtp_verb)999), "unknown");
	/* Every name parses back to its verb. */
	for (i = 1; i < VERB_MAX; i++) {
		const char *n = names[i], *arg;
		size_t alen;
		if (i == VERB_MAIL || i == VERB_RCPT)
			continue;
		ck_assert_int_eq(smtp_parse_verb(n, strlen(n), &arg, &alen), i);
	}
}
END_TEST

/* ---- MAIL FROM ---------------------------------------------------------- */

struct mail_case {
	const char *arg;
	unsigned flags;
	enum smtp_parse_result res;
	const char *addr;
	int64_t size;
	enum body_type body;
	int smtputf8;
	enum dsn_ret ret;
	const char *envid;
};

#define MOK(a, ad) { a, E, PARSE_OK, ad, -1, BODY_UNSPEC, 0, RET_UNSPEC, "" }
#define MERR(a, r) { a, E, r, "", -1, BODY_UNSPEC, 0, RET_UNSPEC, "" }
#define MERRF(a, f, r) { a, f, r, "", -1, BODY_UNSPEC, 0, RET_UNSPEC, "" }
#define MFULL(a, ad, sz, b, u, rt, ev) { a, E, PARSE_OK, ad, sz, b, u, rt, ev }

static const struct mail_case mail_cases[] = {
	/* paths */
	MOK("<a@example.com>", "a@example.com"),
	MOK("<>", ""),
	MOK("<>   ", ""),
	MOK("  <a@example.com>", "a@example.com"),
	MOK("<a@example.com>   ", "a@example.com"),
	MOK("<first.last@sub.example.com>", "first.last@sub.example.com"),
	MOK("<!#$%&'*+-/=?^_`{|}~@example.com>",
	    "!#$%&'*+-/=?^_`{|}~@example.com"),
	MOK("<a@localhost>", "a@localhost"),
	MOK("<@a.example,@b.example:user@c.example>", "user@c.example"),
	MOK("<@a.example:user@c.example>", "user@c.example"),
	MOK("<@[192.0.2.1],@[IPv6:::1]:user@c.example>", "user@c.example"),
	MOK("<\"a@b\"@example.com>", "\"a@b\"@example.com"),
	MOK("<\"a b\"@example.com>", "\"a b\"@example.com"),
	MOK("<\"a\\\"b\"@example.com>", "\"a\\\"b\"@example.com"),
	MOK("<\"a>b\"@example.com>", "\"a>b\"@example.com"),
	MOK("<\"\"@example.com>", "\"\"@example.com"),
	MOK("<a@[192.0.2.1]>", "a@[192.0.2.1]"),
	MOK("<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
	MOK("<a@[ipv6:::ffff:192.0.2.1]>", "a@[ipv6:::ffff:192.0.2.1]"),
	MOK("<a@[x-tag:some-thing]>", "a@[x-tag:some-thing]"),
	MERR("", PARSE_SYNTAX),
	MERR("   ", PARSE_SYNTAX),
	MERR("a@example.com", PARSE_SYNTAX),
	MERR("<a@example.com", PARSE_SYNTAX),
	MERR("a@example.com>", PARSE_SYNTAX),
	MERR("<", PARSE_SYNTAX),
	MERR("<\"abc>@example.com>x", PARSE_SYNTAX),
	MERR("<\"abc@example.com>", PARSE_SYNTAX),
	MERR("<a@example.com>x", PARSE_SYNTAX),
	MERR("<a@example.com>>", PARSE_SYNTAX),
	MERR("<a@example.com> <b@example.com>", PARSE_SYNTAX),
	MERR("<a@example.com>\tSIZE=1", PARSE_SYNTAX),
	MERR("<a@example.com> SIZE=1 ,", PARSE_SYNTAX),
	MERR("<a..b@example.com>", PARSE_BAD_SENDER),
	MERR("<.a@example.com>", PARSE_BAD_SENDER),
	MERR("<a.@example.com>", PARSE_BAD_SENDER),
	MERR("<a@b@example.com>", PARSE_BAD_SENDER),
	MERR("<a@@example.com>", PARSE_BAD_SENDER),
	MERR("<a b@example.com>", PARSE_BAD_SENDER),
	MERR("<a(b)@example.com>", PARSE_BAD_SENDER),
	MERR("<\"a\"b@example.com>", PARSE_BAD_SENDER),
	MERR("<\"a\x01\"@example.com>", PARSE_BAD_SENDER),
	MERR("<a>", PARSE_BAD_SENDER),
	MERR("<Postmaster>", PARSE_BAD_SENDER),
	MERR("<a@>", PARSE_BAD_SENDER),
	MERR("<@example.com>", PARSE_BAD_SENDER),
	MERR("<a@exa_mple.com>", PARSE_BAD_SENDER),
	MERR("<a@-example.com>", PARSE_BAD_SENDER),
	MERR("<a@example-.com>", PARSE_BAD_SENDER),
	MERR("<a@example..com>", PARSE_BAD_SENDER),
	MERR("<a@.example.com>", PARSE_BAD_SENDER),
	MERR("<a@example.com.>", PARSE_BAD_SENDER),
	MERR("<a@[192.0.2.256]>", PARSE_BAD_SENDER),
	MERR("<a@[192.0.2]>", PARSE_BAD_SENDER),
	MERR("<a@[IPv6:2001:db8::g]>", PARSE_BAD_SENDER),
	MERR("<a@[IPv6:192.0.2.1]>", PARSE_BAD_SENDER),
	MERR("<a@[x-tag:]>", PARSE_BAD_SENDER),
	MERR("<a@[]>", PARSE_BAD_SENDER),
	MERR("<a@[192.0.2.1>", PARSE_BAD_SENDER),
	MERR("<@a.example,user@c.example>", PARSE_BAD_SENDER),
	MERR("<@a.example user@c.example>", PARSE_BAD_SENDER),
	MERR("<@:user@c.example>", PARSE_BAD_SENDER),
	MERR("<@a..example:user@c.example>", PARSE_BAD_SENDER),
	MERR("<@a.example,:user@c.example>", PARSE_BAD_SENDER),
	MERR("<@a.example:>", PARSE_BAD_SENDER),
	MERR("<@a.example:<>>", PARSE_SYNTAX),

	/* SIZE */
	MFULL("<a@b.example> SIZE=0", "a@b.example", 0, BODY_UNSPEC, 0,
	    RET_UNSPEC, ""),
	MFULL("<a@b.example> size=12345", "a@b.example", 12345, BODY_UNSPEC,
	    0, RET_UNSPEC, ""),
	MFULL("<> SIZE=100", "", 100, BODY_UNSPEC, 0, RET_UNSPEC, ""),
	MFULL("<a@b.example> SIZE=9223372036854775807", "a@b.example",
	    INT64_MAX, BODY_UNSPEC, 0, RET_UNSPEC, ""),
	MFULL("<a@b.example> SIZE=00000000000000000012", "a@b.example", 12,
	    BODY_UNSPEC, 0, RET_UNSPEC, ""),
	MERR("<a@b.example> SIZE=000000000000000000012", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=9223372036854775808", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=18446744073709551616", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=-1", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=+1", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=1x", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=1=2", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=1 SIZE=1", PARSE_DUP_PARAM),
	MERR("<a@b.example> SIZE=1 size=2", PARSE_DUP_PARAM),
	MERR("<a@b.example> SIZE=1 SIZE=x", PARSE_DUP_PARAM),
	/* BODY */
	MFULL("<a@b.example> BODY=7BIT", "a@b.example", -1, BODY_7BIT, 0,
	    RET_UNSPEC, ""),
	MFULL("<a@b.example> body=8bitmime", "a@b.example", -1, BODY_8BITMIME,
	    0, RET_UNSPEC, ""),
	MERR("<a@b.example> BODY=BINARYMIME", PARSE_BAD_PARAM),
	MERR("<a@b.example> BODY=8BIT", PARSE_BAD_PARAM),
	MERR("<a@b.example> BODY=", PARSE_BAD_PARAM),
	MERR("<a@b.example> BODY", PARSE_BAD_PARAM),
	MERR("<a@b.example> BODY=7BIT BODY=7BIT", PARSE_DUP_PARAM),
	/* SMTPUTF8 */
	MFULL("<a@b.example> SMTPUTF8", "a@b.example", -1, BODY_UNSPEC, 1,
	    RET_UNSPEC, ""),
	MFULL("<a@b.example> smtputf8", "a@b.example", -1, BODY_UNSPEC, 1,
	    RET_UNSPEC, ""),
	MERR("<a@b.example> SMTPUTF8=x", PARSE_BAD_PARAM),
	MERR("<a@b.example> SMTPUTF8=", PARSE_BAD_PARAM),
	MERR("<a@b.example> SMTPUTF8 SMTPUTF8", PARSE_DUP_PARAM),
	/* RET */
	MFULL("<a@b.example> RET=FULL", "a@b.example", -1, BODY_UNSPEC, 0,
	    RET_FULL, ""),
	MFULL("<a@b.example> ret=hdrs", "a@b.example", -1, BODY_UNSPEC, 0,
	    RET_HDRS, ""),
	MERR("<a@b.example> RET=ALL", PARSE_BAD_PARAM),
	MERR("<a@b.example> RET=", PARSE_BAD_PARAM),
	MERR("<a@b.example> RET", PARSE_BAD_PARAM),
	MERR("<a@b.example> RET=FULL RET=HDRS", PARSE_DUP_PARAM),
	/* ENVID */
	MFULL("<a@b.example> ENVID=QQ314159", "a@b.example", -1, BODY_UNSPEC,
	    0, RET_UNSPEC, "QQ314159"),
	MFULL("<a@b.example> envid=a+2Bb+3D", "a@b.example", -1, BODY_UNSPEC,
	    0, RET_UNSPEC, "a+2Bb+3D"),
	MERR("<a@b.example> ENVID=", PARSE_BAD_PARAM),
	MERR("<a@b.example> ENVID", PARSE_BAD_PARAM),
	MERR("<a@b.example> ENVID=a+2b", PARSE_BAD_PARAM),
	MERR("<a@b.example> ENVID=a+2", PARSE_BAD_PARAM),
	MERR("<a@b.example> ENVID=a=b", PARSE_BAD_PARAM),
	MERR("<a@b.example> ENVID=a\x01", PARSE_BAD_PARAM),
	MERR("<a@b.example> ENVID=x ENVID=x", PARSE_DUP_PARAM),
	/* everything at once, extra spaces between parameters */
	MFULL("<a@b.example> SIZE=10  BODY=8BITMIME   SMTPUTF8 RET=HDRS "
	    "ENVID=QQ314159  ", "a@b.example", 10, BODY_8BITMIME, 1,
	    RET_HDRS, "QQ314159"),
	/* unknown and malformed keywords */
	MERR("<a@b.example> FOO=bar", PARSE_UNKNOWN_PARAM),
	MERR("<a@b.example> X-FOO", PARSE_UNKNOWN_PARAM),
	/* RFC 4954 5: AUTH=<> or an xtext mailbox, accepted and ignored */
	MOK("<a@b.example> AUTH=<>", "a@b.example"),
	MOK("<a@b.example> AUTH=user+40example.com", "a@b.example"),
	MERR("<a@b.example> AUTH=", PARSE_BAD_PARAM),
	MERR("<a@b.example> AUTH", PARSE_BAD_PARAM),
	MERR("<a@b.example> AUTH=a+4", PARSE_BAD_PARAM),
	MERR("<a@b.example> AUTH=<> AUTH=<>", PARSE_DUP_PARAM),
	MERRF("<a@b.example> AUTH=<>", 0, PARSE_PARAM_NO_ESMTP),
	MERR("<a@b.example> NOTIFY=NEVER", PARSE_UNKNOWN_PARAM),
	MERR("<a@b.example> SIZES=1", PARSE_UNKNOWN_PARAM),
	MERR("<a@b.example> SIZE=1 FOO", PARSE_UNKNOWN_PARAM),
	MERR("<a@b.example> -FOO=1", PARSE_SYNTAX),
	MERR("<a@b.example> F_O=1", PARSE_SYNTAX),
	MERR("<a@b.example> =1", PARSE_SYNTAX),
	/* parameters after HELO */
	MERRF("<a@b.example> SIZE=1", 0, PARSE_PARAM_NO_ESMTP),
	MERRF("<a@b.example> SMTPUTF8", 0, PARSE_PARAM_NO_ESMTP),
	MERRF("<a@b.example> FOO", 0, PARSE_PARAM_NO_ESMTP),
	{ "<a@b.example>  ", 0, PARSE_OK, "a@b.example", -1, BODY_UNSPEC, 0,
	  RET_UNSPEC, "" },
	{ "<>", 0, PARSE_OK, "", -1, BODY_UNSPEC, 0, RET_UNSPEC, "" },
	/* SMTPUTF8 and non-ASCII */
	MERR("<\xC3\xA9l\xC3\xA8ve@example.com>", PARSE_NON_ASCII),
	MFULL("<\xC3\xA9l\xC3\xA8ve@example.com> SMTPUTF8",
	    "\xC3\xA9l\xC3\xA8ve@example.com", -1, BODY_UNSPEC, 1, RET_UNSPEC,
	    ""),
	MFULL("<\xC3\xA9l\xC3\xA8ve@example.com> SIZE=1 SMTPUTF8",
	    "\xC3\xA9l\xC3\xA8ve@example.com", 1, BODY_UNSPEC, 1, RET_UNSPEC,
	    ""),
	MERR("<user@b\xC3\xBC" "cher.example>", PARSE_NON_ASCII),
	MFULL("<user@b\xC3\xBC" "cher.example> SMTPUTF8",
	    "user@b\xC3\xBC" "cher.example", -1, BODY_UNSPEC, 1, RET_UNSPEC,
	    ""),
	MFULL("<\"\xE2\x82\xAC x\"@example.com> SMTPUTF8",
	    "\"\xE2\x82\xAC x\"@example.com", -1, BODY_UNSPEC, 1, RET_UNSPEC,
	    ""),
	MERR("<@b\xC3\xBC" "cher.example:a@b.example>", PARSE_NON_ASCII),
	MFULL("<@b\xC3\xBC" "cher.example:a@b.example> SMTPUTF8",
	    "a@b.example", -1, BODY_UNSPEC, 1, RET_UNSPEC, ""),
	MERR("<\xC3\xA9..x@example.com> SMTPUTF8", PARSE_BAD_SENDER),
	MERR("<\xC3\xA9..x@example.com>", PARSE_BAD_SENDER),
	MERR("<a@b.example> ENVID=\xC3\xA9 SMTPUTF8", PARSE_BAD_PARAM),
	MERR("<a@b.example> SIZE=\xD9\xA1", PARSE_BAD_PARAM),
	/* invalid UTF-8 is a syntax error, SMTPUTF8 or not */
	MERR("<\xC0\xAF@example.com> SMTPUTF8", PARSE_SYNTAX),
	MERR("<\xC0\xAF@example.com>", PARSE_SYNTAX),
	MERR("<\xED\xA0\x80@example.com> SMTPUTF8", PARSE_SYNTAX),
	MERR("<a\xC3@example.com> SMTPUTF8", PARSE_SYNTAX),
	MERR("<a@example.com> SMTPUTF8 ENVID=\xE2\x82", PARSE_SYNTAX),
	MERR("<a@example.com\xFF> SMTPUTF8", PARSE_SYNTAX),
};

static void check_mail_result(const char *label, enum smtp_parse_result r,
    const struct smtp_mail_args *m, const struct mail_case *c)
{
	ck_assert_msg(r == c->res, "%s: result %d, want %d", label, (int)r,
	    (int)c->res);
	ck_assert_msg(strcmp(m->addr, c->addr) == 0, "%s: addr \"%s\", want "
	    "\"%s\"", label, m->addr, c->addr);
	ck_assert_msg(m->size == c->size, "%s: size %lld", label,
	    (long long)m->size);
	ck_assert_msg(m->body == c->body, "%s: body %d", label, (int)m->body);
	ck_assert_msg(m->smtputf8 == c->smtputf8, "%s: smtputf8 %d", label,
	    m->smtputf8);
	ck_assert_msg(m->ret == c->ret, "%s: ret %d", label, (int)m->ret);
	ck_assert_msg(strcmp(m->envid, c->envid) == 0, "%s: envid \"%s\"",
	    label, m->envid);
}

START_TEST(test_mail_table)
{
	const struct mail_case *c = &mail_cases[_i];
	size_t len = strlen(c->arg);
	char *arg = dupn(c->arg, len);
	struct smtp_mail_args m;
	enum smtp_parse_result r;

	memset(&m, 0x5a, sizeof(m));
	r = smtp_parse_mail(arg, len, c->flags, &m);
	check_mail_result(c->arg, r, &m, c);
	free(arg);
}
END_TEST

/* Through smtp_parse_verb, as the session does it. */
START_TEST(test_mail_via_verb)
{
	static const char line[] = "mail from: <\"a b\"@example.com> size=42 ";
	const char *arg;
	size_t alen;
	struct smtp_mail_args m;

	ck_assert_int_eq(smtp_parse_verb(line, sizeof(line) - 1, &arg, &alen),
	    VERB_MAIL);
	ck_assert_int_eq(smtp_parse_mail(arg, alen, E, &m), PARSE_OK);
	ck_assert_str_eq(m.addr, "\"a b\"@example.com");
	ck_assert_int_eq(m.size, 42);

	/* MAIL without FROM: gives an empty argument: a syntax error. */
	ck_assert_int_eq(smtp_parse_verb("MAIL <a@b>", 10, &arg, &alen),
	    VERB_MAIL);
	ck_assert_uint_eq(alen, 0);
	ck_assert_int_eq(smtp_parse_mail(arg, alen, E, &m), PARSE_SYNTAX);
	ck_assert_int_eq(smtp_parse_mail(NULL, 0, E, &m), PARSE_SYNTAX);
	ck_assert_str_eq(m.addr, "");
}
END_TEST

/* Local part of n octets (dot-string or quoted), at example.com. */
static enum smtp_parse_result mail_local(size_t n, int quoted,
    struct smtp_mail_args *m)
{
	char buf[200], *arg;
	size_t len;
	enum smtp_parse_result r;

	buf[0] = '<';
	fill(buf + 1, 'l', n);
	if (quoted) {
		buf[1] = '"';
		buf[n] = '"';
	}
	strcpy(buf + 1 + n, "@example.com>");
	len = strlen(buf);
	arg = dupn(buf, len);
	r = smtp_parse_mail(arg, len, E, m);
	free(arg);
	return r;
}

START_TEST(test_mail_local_part_length)
{
	struct smtp_mail_args m;
	char want[100];

	ck_assert_int_eq(mail_local(64, 0, &m), PARSE_OK);
	fill(want, 'l', 64);
	strcat(want, "@example.com");
	ck_assert_str_eq(m.addr, want);
	ck_assert_int_eq(mail_local(65, 0, &m), PARSE_TOO_LONG);
	ck_assert_str_eq(m.addr, "");
	ck_assert_int_eq(mail_local(64, 1, &m), PARSE_OK);
	ck_assert_int_eq(mail_local(65, 1, &m), PARSE_TOO_LONG);
}
END_TEST

/* "<" local(10) "@" domain(dlen) ">" [suffix]: path length dlen + 13. */
static enum smtp_parse_result mail_path(size_t dlen, const char *suffix,
    struct smtp_mail_args *m, char *want)
{
	char buf[400], *arg;
	size_t len;
	enum smtp_parse_result r;

	strcpy(buf, "<0123456789@");
	make_domain(buf + 12, dlen);
	strcpy(want, buf + 1);
	strcat(buf, ">");
	strcat(buf, suffix);
	len = strlen(buf);
	arg = dupn(buf, len);
	r = smtp_parse_mail(arg, len, E, m);
	free(arg);
	return r;
}

START_TEST(test_mail_path_length)
{
	struct smtp_mail_args m;
	char want[400];

	ck_assert_int_eq(mail_path(243, "", &m, want), PARSE_OK);
	ck_assert_uint_eq(strlen(m.addr), 254);
	ck_assert_str_eq(m.addr, want);
	ck_assert_int_eq(mail_path(243, " SIZE=7", &m, want), PARSE_OK);
	ck_assert_int_eq(m.size, 7);
	ck_assert_int_eq(mail_path(244, "", &m, want), PARSE_TOO_LONG);
	ck_assert_str_eq(m.addr, "");
	ck_assert_int_eq(mail_path(300, "", &m, want), PARSE_TOO_LONG);
}
END_TEST

START_TEST(test_mail_source_route_length)
{
	/* The source route counts toward the 256-octet path. */
	char buf[400], *arg;
	size_t len;
	struct smtp_mail_args m;
	int ok;

	for (ok = 1; ok >= 0; ok--) {
		strcpy(buf, "<@");
		make_domain(buf + 2, ok ? 239 : 240);
		strcat(buf, ":a@example.com>");     /* 1+1+d+1+13+1 */
		len = strlen(buf);
		ck_assert_uint_eq(len, ok ? 256u : 257u);
		arg = dupn(buf, len);
		ck_assert_int_eq(smtp_parse_mail(arg, len, E, &m),
		    ok ? PARSE_OK : PARSE_TOO_LONG);
		if (ok)
			ck_assert_str_eq(m.addr, "a@example.com");
		free(arg);
	}
}
END_TEST

START_TEST(test_mail_envid_length)
{
	char buf[200], *arg;
	size_t len;
	struct smtp_mail_args m;

	strcpy(buf, "<a@b.example> ENVID=");
	fill(buf + strlen(buf), 'e', 100);
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_mail(arg, len, E, &m), PARSE_OK);
	ck_assert_uint_eq(strlen(m.envid), 100);
	free(arg);

	strcat(buf, "e");
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_mail(arg, len, E, &m), PARSE_BAD_PARAM);
	ck_assert_str_eq(m.envid, "");
	free(arg);
}
END_TEST

START_TEST(test_mail_len_bounds)
{
	/* The length, not a NUL, ends the argument. */
	static const char s[] = "<a@b.example> SIZE=12345";
	struct smtp_mail_args m;

	ck_assert_int_eq(smtp_parse_mail(s, 13, E, &m), PARSE_OK);
	ck_assert_int_eq(m.size, -1);
	ck_assert_int_eq(smtp_parse_mail(s, 21, E, &m), PARSE_OK);
	ck_assert_int_eq(m.size, 12);
	ck_assert_int_eq(smtp_parse_mail(s, 12, E, &m), PARSE_SYNTAX);
	/* An embedded NUL is just a bad byte. */
	ck_assert_int_eq(smtp_parse_mail("<a\0b@c.example>", 15, E, &m),
	    PARSE_BAD_SENDER);
	ck_assert_int_eq(smtp_parse_mail("<a@c.example> SIZE=1\0", 21, E, &m),
	    PARSE_BAD_PARAM);
}
END_TEST

/* ---- RCPT TO ------------------------------------------------------------ */

struct rcpt_case {
	const char *arg;
	unsigned flags;
	int smtputf8;
	enum smtp_parse_result res;
	const char *addr;
	unsigned notify;
	const char *orcpt;
};

#define ROK(a, ad) { a, E, 0, PARSE_OK, ad, 0, "" }
#define RERR(a, r) { a, E, 0, r, "", 0, "" }

static const struct rcpt_case rcpt_cases[] = {
	ROK("<a@example.com>", "a@example.com"),
	ROK("<a@example.com>  ", "a@example.com"),
	ROK("<Postmaster>", "Postmaster"),
	ROK("<postmaster>", "Postmaster"),
	ROK("<POSTMASTER>", "Postmaster"),
	ROK("<Postmaster@example.com>", "Postmaster@example.com"),
	ROK("<@a.example,@b.example:u@c.example>", "u@c.example"),
	ROK("<\"a@b\"@example.com>", "\"a@b\"@example.com"),
	ROK("<a@[IPv6:::1]>", "a@[IPv6:::1]"),
	ROK("<a@[192.0.2.1]>", "a@[192.0.2.1]"),
	RERR("<>", PARSE_BAD_RCPT),
	RERR("<> NOTIFY=NEVER", PARSE_BAD_RCPT),
	RERR("<Postmaster >", PARSE_BAD_RCPT),
	RERR("<Postmasters>", PARSE_BAD_RCPT),
	RERR("a@example.com", PARSE_SYNTAX),
	RERR("<a@example.com", PARSE_SYNTAX),
	RERR("", PARSE_SYNTAX),
	RERR("<a@example.com>x", PARSE_SYNTAX),
	RERR("<a@example.com> ;", PARSE_SYNTAX),
	RERR("<a..b@example.com>", PARSE_BAD_RCPT),
	RERR("<.a@example.com>", PARSE_BAD_RCPT),
	RERR("<a@@example.com>", PARSE_BAD_RCPT),
	RERR("<a@b@example.com>", PARSE_BAD_RCPT),
	RERR("<a@example..com>", PARSE_BAD_RCPT),
	RERR("<a>", PARSE_BAD_RCPT),
	RERR("<a@[1.2.3.4.5]>", PARSE_BAD_RCPT),
	RERR("<@a.example:>", PARSE_BAD_RCPT),
	/* NOTIFY */
	{ "<a@b.example> NOTIFY=NEVER", E, 0, PARSE_OK, "a@b.example",
	  NOTIFY_NEVER, "" },
	{ "<a@b.example> notify=never", E, 0, PARSE_OK, "a@b.example",
	  NOTIFY_NEVER, "" },
	{ "<a@b.example> NOTIFY=Failure", E, 0, PARSE_OK, "a@b.example",
	  NOTIFY_FAILURE, "" },
	{ "<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY", E, 0, PARSE_OK,
	  "a@b.example", NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY, "" },
	{ "<a@b.example> NOTIFY=delay,success", E, 0, PARSE_OK,
	  "a@b.example", NOTIFY_SUCCESS | NOTIFY_DELAY, "" },
	RERR("<a@b.example> NOTIFY=SUCCESS,SUCCESS", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=NEVER,DELAY", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=DELAY,NEVER", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=NEVER,NEVER", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=SUCCESS,", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=,SUCCESS", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=SUCCESS,,DELAY", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=ALWAYS", PARSE_BAD_PARAM),
	RERR("<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", PARSE_DUP_PARAM),
	RERR("<a@b.example> NOTIFY=NEVER notify=DELAY", PARSE_DUP_PARAM),
	/* ORCPT */
	{ "<a@b.example> ORCPT=rfc822;a@b.example", E, 0, PARSE_OK,
	  "a@b.example", 0, "rfc822;a@b.example" },
	{ "<a@b.example> orcpt=RFC822;a+2Bb@b.example", E, 0, PARSE_OK,
	  "a@b.example", 0, "RFC822;a+2Bb@b.example" },
	{ "<a@b.example> ORCPT=x-local;anything!", E, 0, PARSE_OK,
	  "a@b.example", 0, "x-local;anything!" },
	{ "<a@b.example> ORCPT=utf-8;\\x{E9}l\\x{e8}ve@b.example", E, 0,
	  PARSE_OK, "a@b.example", 0, "utf-8;\\x{E9}l\\x{e8}ve@b.example" },
	{ "<a@b.example> ORCPT=UTF-8;a+2Bb\\x{1F600}@b.example", E, 0,
	  PARSE_OK, "a@b.example", 0, "UTF-8;a+2Bb\\x{1F600}@b.example" },
	{ "<a@b.example> ORCPT=utf-8;\xC3\xA9@b.example", E, 1, PARSE_OK,
	  "a@b.example", 0, "utf-8;\xC3\xA9@b.example" },
	{ "<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.example", E,
	  0, PARSE_OK, "a@b.example", NOTIFY_SUCCESS | NOTIFY_FAILURE,
	  "rfc822;a@b.example" },
	{ "<a@b.example>   ORCPT=rfc822;x  NOTIFY=NEVER  ", E, 0, PARSE_OK,
	  "a@b.example", NOTIFY_NEVER, "rfc822;x" },
	RERR("<a@b.example> ORCPT=rfc822;a+2bb@b.example", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=rfc822;a+", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=rfc822", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=rfc822;", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=;a@b.example", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=rf(c;a@b.example", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=rfc822;a=b", PARSE_BAD_PARAM),
	{ "<a@b.example> ORCPT=rfc822;a\\b", E, 0, PARSE_OK, "a@b.example",
	  0, "rfc822;a\\b" },
	RERR("<a@b.example> ORCPT=", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\x{}b", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\x{D800}", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\x{110000}", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\x{1234567}", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\x{12", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\yb", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a\\", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;a+2", PARSE_BAD_PARAM),
	RERR("<a@b.example> ORCPT=utf-8;\xC3\xA9@b.example", PARSE_BAD_PARAM),
	{ "<a@b.example> ORCPT=rfc822;\xC3\xA9@b.example", E, 1,
	  PARSE_BAD_PARAM, "", 0, "" },
	RERR("<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;a", PARSE_DUP_PARAM),
	/* unknown, malformed, HELO */
	RERR("<a@b.example> SIZE=1", PARSE_UNKNOWN_PARAM),
	RERR("<a@b.example> x", PARSE_UNKNOWN_PARAM),
	RERR("<a@b.example> NOTIFY=NEVER FOO=1", PARSE_UNKNOWN_PARAM),
	RERR("<a@b.example> _X=1", PARSE_SYNTAX),
	{ "<a@b.example> NOTIFY=NEVER", 0, 0, PARSE_PARAM_NO_ESMTP, "", 0,
	  "" },
	{ "<a@b.example> FOO", 0, 0, PARSE_PARAM_NO_ESMTP, "", 0, "" },
	{ "<a@b.example>", 0, 0, PARSE_OK, "a@b.example", 0, "" },
	{ "<Postmaster>", 0, 0, PARSE_OK, "Postmaster", 0, "" },
	/* non-ASCII */
	RERR("<\xC3\xA9@example.com>", PARSE_NON_ASCII),
	RERR("<a@\xC3\xA9xample.com>", PARSE_NON_ASCII),
	{ "<\xC3\xA9@example.com>", E, 1, PARSE_OK, "\xC3\xA9@example.com", 0,
	  "" },
	{ "<a@\xC3\xA9xample.com>", E, 1, PARSE_OK, "a@\xC3\xA9xample.com", 0,
	  "" },
	{ "<\xC3\xA9..x@example.com>", E, 1, PARSE_BAD_RCPT, "", 0, "" },
	{ "<\xE0\x80\xAF@example.com>", E, 1, PARSE_SYNTAX, "", 0, "" },
	{ "<\xED\xBF\xBF@example.com>", E, 1, PARSE_SYNTAX, "", 0, "" },
	{ "<a@example.com\xF0\x9F\x98>", E, 1, PARSE_SYNTAX, "", 0, "" },
	RERR("<\xC0\xAF@example.com>", PARSE_SYNTAX),
};

START_TEST(test_rcpt_table)
{
	const struct rcpt_case *c = &rcpt_cases[_i];
	size_t len = strlen(c->arg);
	char *arg = dupn(c->arg, len);
	struct smtp_rcpt_args ra;
	enum smtp_parse_result r;

	memset(&ra, 0x5a, sizeof(ra));
	r = smtp_parse_rcpt(arg, len, c->flags, c->smtputf8, &ra);
	ck_assert_msg(r == c->res, "%s: result %d, want %d", c->arg, (int)r,
	    (int)c->res);
	ck_assert_msg(strcmp(ra.addr, c->addr) == 0, "%s: addr \"%s\"",
	    c->arg, ra.addr);
	ck_assert_msg(ra.notify == c->notify, "%s: notify %#x", c->arg,
	    ra.notify);
	ck_assert_msg(strcmp(ra.orcpt, c->orcpt) == 0, "%s: orcpt \"%s\"",
	    c->arg, ra.orcpt);
	free(arg);
}
END_TEST

START_TEST(test_rcpt_lengths)
{
	char buf[700], *arg;
	size_t len, base;
	struct smtp_rcpt_args ra;

	/* ORCPT value of exactly 500 and 501 characters. */
	strcpy(buf, "<a@b.example> ORCPT=rfc822;");
	base = strlen(buf);
	fill(buf + base, 'o', 500 - 7);
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_rcpt(arg, len, E, 0, &ra), PARSE_OK);
	ck_assert_uint_eq(strlen(ra.orcpt), 500);
	ck_assert_int_eq(memcmp(ra.orcpt, buf + base - 7, 500), 0);
	free(arg);
	strcat(buf, "o");
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_rcpt(arg, len, E, 0, &ra),
	    PARSE_BAD_PARAM);
	ck_assert_str_eq(ra.orcpt, "");
	free(arg);

	/* Local part 64 / 65. */
	buf[0] = '<';
	fill(buf + 1, 'r', 64);
	strcat(buf, "@b.example>");
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_rcpt(arg, len, E, 0, &ra), PARSE_OK);
	free(arg);
	buf[0] = '<';
	fill(buf + 1, 'r', 65);
	strcat(buf, "@b.example>");
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_rcpt(arg, len, E, 0, &ra),
	    PARSE_TOO_LONG);
	free(arg);

	/* Path 256 / 257. */
	strcpy(buf, "<0123456789@");
	make_domain(buf + 12, 243);
	strcat(buf, ">");
	len = strlen(buf);
	ck_assert_uint_eq(len, 256);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_rcpt(arg, len, E, 0, &ra), PARSE_OK);
	ck_assert_uint_eq(strlen(ra.addr), 254);
	free(arg);
	strcpy(buf, "<0123456789@");
	make_domain(buf + 12, 244);
	strcat(buf, ">");
	len = strlen(buf);
	arg = dupn(buf, len);
	ck_assert_int_eq(smtp_parse_rcpt(arg, len, E, 0, &ra),
	    PARSE_TOO_LONG);
	free(arg);
}
END_TEST

START_TEST(test_rcpt_via_verb)
{
	static const char line[] = "RCPT TO: <Postmaster> NOTIFY=NEVER";
	const char *arg;
	size_t alen;
	struct smtp_rcpt_args ra;

	ck_assert_int_eq(smtp_parse_verb(line, sizeof(line) - 1, &arg, &alen),
	    VERB_RCPT);
	ck_assert_int_eq(smtp_parse_rcpt(arg, alen, E, 0, &ra), PARSE_OK);
	ck_assert_str_eq(ra.addr, "Postmaster");
	ck_assert_uint_eq(ra.notify, NOTIFY_NEVER);

	ck_assert_int_eq(smtp_parse_verb("RCPT", 4, &arg, &alen), VERB_RCPT);
	ck_assert_int_eq(smtp_parse_rcpt(arg, alen, E, 0, &ra), PARSE_SYNTAX);
}
END_TEST

/* ---- smtp_check_mailbox ---------------------------------------------- */

struct mbox_case {
	const char *s;
	int utf8;
	enum smtp_parse_result res;
};

static const struct mbox_case mbox_cases[] = {
	{ "a@b", 0, PARSE_OK },
	{ "a.b.c@d.e", 0, PARSE_OK },
	{ "a@localhost", 0, PARSE_OK },
	{ "!#$%&'*+-/=?^_`{|}~@x.example", 0, PARSE_OK },
	{ "\"a@b\"@example.com", 0, PARSE_OK },
	{ "\"a..b\"@example.com", 0, PARSE_OK },
	{ "\"\\\\\"@example.com", 0, PARSE_OK },
	{ "\"\\ \"@example.com", 0, PARSE_OK },
	{ "\"\"@example.com", 0, PARSE_OK },
	{ "\"a\\\x01\"@example.com", 0, PARSE_SYNTAX },
	{ "\"a\x7f\"@example.com", 0, PARSE_SYNTAX },
	{ "\"a\tb\"@example.com", 0, PARSE_SYNTAX },
	{ "\"a\"x@example.com", 0, PARSE_SYNTAX },
	{ "x\"a\"@example.com", 0, PARSE_SYNTAX },
	{ "\"a\"", 0, PARSE_SYNTAX },
	{ "\"a\\\"@example.com", 0, PARSE_SYNTAX },
	{ "\"a\\", 0, PARSE_SYNTAX },
	{ "", 0, PARSE_SYNTAX },
	{ "a", 0, PARSE_SYNTAX },
	{ "@b", 0, PARSE_SYNTAX },
	{ "a@", 0, PARSE_SYNTAX },
	{ "a@b.", 0, PARSE_SYNTAX },
	{ "a@b@c", 0, PARSE_SYNTAX },
	{ "a..b@c", 0, PARSE_SYNTAX },
	{ ".a@c", 0, PARSE_SYNTAX },
	{ "a.@c", 0, PARSE_SYNTAX },
	{ "a,b@c", 0, PARSE_SYNTAX },
	{ "a@b c", 0, PARSE_SYNTAX },
	{ "a@[127.0.0.1]", 0, PARSE_OK },
	{ "a@[IPv6:::1]", 0, PARSE_OK },
	{ "a@[foo:bar]", 0, PARSE_OK },
	{ "a@[300.1.1.1]", 0, PARSE_SYNTAX },
	{ "a@[1.2.3.4.5]", 0, PARSE_SYNTAX },
	{ "a@[1234.1.1.1]", 0, PARSE_SYNTAX },
	{ "a@[IPv6:]", 0, PARSE_SYNTAX },
	{ "a@[:bar]", 0, PARSE_SYNTAX },
	{ "\xC3\xA9@x.example", 0, PARSE_NON_ASCII },
	{ "\xC3\xA9@x.example", 1, PARSE_OK },
	{ "a@\xC3\xA9.example", 0, PARSE_NON_ASCII },
	{ "a@\xC3\xA9.example", 1, PARSE_OK },
	{ "\"\xC3\xA9\"@x.example", 0, PARSE_NON_ASCII },
	{ "\"\xC3\xA9\"@x.example", 1, PARSE_OK },
	{ "\xF0\x9F\x98\x80.\xE2\x82\xAC@x.example", 1, PARSE_OK },
	{ "\xC3\xA9..a@x.example", 0, PARSE_SYNTAX },
	{ "\xC3\xA9@[\xC3\xA9]", 1, PARSE_SYNTAX },
	{ "\xC0\x80@x", 1, PARSE_SYNTAX },
	{ "\xC0\x80@x", 0, PARSE_SYNTAX },
	{ "\xED\xB0\x80@x", 1, PARSE_SYNTAX },
	{ "a@x\xE2\x82", 1, PARSE_SYNTAX },
	{ "\xF4\x90\x80\x80@x", 1, PARSE_SYNTAX },
	{ "\xFF@x", 1, PARSE_SYNTAX },
	{ "\x80@x", 1, PARSE_SYNTAX },
};

START_TEST(test_mailbox_table)
{
	const struct mbox_case *c = &mbox_cases[_i];
	size_t len = strlen(c->s);
	char *s = dupn(c->s, len);
	enum smtp_parse_result r = smtp_check_mailbox(s, len, c->utf8);

	ck_assert_msg(r == c->res, "\"%s\" (utf8 %d): %d, want %d", c->s,
	    c->utf8, (int)r, (int)c->res);
	free(s);
}
END_TEST

START_TEST(test_mailbox_lengths)
{
	char buf[400];

	/* Domain 255 / 256 octets. */
	strcpy(buf, "a@");
	make_domain(buf + 2, 255);
	ck_assert_int_eq(smtp_check_mailbox(buf, strlen(buf), 0), PARSE_OK);
	make_domain(buf + 2, 256);
	ck_assert_int_eq(smtp_check_mailbox(buf, strlen(buf), 0),
	    PARSE_TOO_LONG);
	/* Local part 64 / 65. */
	fill(buf, 'x', 64);
	strcat(buf, "@b");
	ck_assert_int_eq(smtp_check_mailbox(buf, strlen(buf), 0), PARSE_OK);
	fill(buf, 'x', 65);
	strcat(buf, "@b");
	ck_assert_int_eq(smtp_check_mailbox(buf, strlen(buf), 0),
	    PARSE_TOO_LONG);
	ck_assert_int_eq(smtp_check_mailbox(NULL, 0, 0), PARSE_SYNTAX);
}
END_TEST

/* ---- smtp_check_domain ----------------------------------------------- */

struct domain_case {
	const char *s;
	int utf8;
	int valid;
};

static const struct domain_case domain_cases[] = {
	{ "example.com", 0, 1 },
	{ "localhost", 0, 1 },
	{ "a", 0, 1 },
	{ "1.2.3.4", 0, 1 },
	{ "a-b.c-d", 0, 1 },
	{ "a--b.example", 0, 1 },
	{ "xn--bcher-kva.example", 0, 1 },
	{ "EXAMPLE.COM", 0, 1 },
	{ "", 0, 0 },
	{ "-a.com", 0, 0 },
	{ "a-.com", 0, 0 },
	{ "a.-b.com", 0, 0 },
	{ "a..com", 0, 0 },
	{ ".a.com", 0, 0 },
	{ "a.com.", 0, 0 },
	{ ".", 0, 0 },
	{ "a_b.com", 0, 0 },
	{ "a b", 0, 0 },
	{ "a@b", 0, 0 },
	{ "b\xC3\xBC" "cher.example", 0, 0 },
	{ "b\xC3\xBC" "cher.example", 1, 1 },
	{ "\xE4\xBE\x8B\xE3\x81\x88.\xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88", 1,
	  1 },
	{ "b\xC3", 1, 0 },
	{ "b\xC0\xAF", 1, 0 },
	{ "\xED\xA0\x80.example", 1, 0 },
	{ "[1.2.3.4]", 0, 1 },
	{ "[0.0.0.0]", 0, 1 },
	{ "[1.2.3.04]", 0, 1 },
	{ "[255.255.255.255]", 0, 1 },
	{ "[256.1.1.1]", 0, 0 },
	{ "[1.2.3]", 0, 0 },
	{ "[1.2.3.]", 0, 0 },
	{ "[.1.2.3]", 0, 0 },
	{ "[1..2.3]", 0, 0 },
	{ "[1.2.3.4.]", 0, 0 },
	{ "[0001.2.3.4]", 0, 0 },
	{ "[IPv6:2001:db8::1]", 0, 1 },
	{ "[ipv6:fe80::1]", 0, 1 },
	{ "[IPv6:::]", 0, 1 },
	{ "[IPv6:::ffff:1.2.3.4]", 0, 1 },
	{ "[IPv6:2001:db8:0:0:0:0:0:1]", 0, 1 },
	{ "[IPv6:2001:db8:0:0:0:0:0:1:2]", 0, 0 },
	{ "[IPv6:zz::1]", 0, 0 },
	{ "[IPv6:1.2.3.4]", 0, 0 },
	{ "[IPv6:0000:0000:0000:0000:0000:ffff:255.255.255.255x]", 0, 0 },
	{ "[x-tag:stuff]", 0, 1 },
	{ "[tag9:a!~]", 0, 1 },
	{ "[x-:stuff]", 0, 0 },
	{ "[x_y:s]", 0, 0 },
	{ "[x:s\\t]", 0, 0 },
	{ "[x:s[t]", 0, 0 },
	{ "[x:s t]", 0, 0 },
	{ "[x:]", 0, 0 },
	{ "[:x]", 0, 0 },
	{ "[abc]", 0, 0 },
	{ "[", 0, 0 },
	{ "[]", 0, 0 },
	{ "[1.2.3.4", 0, 0 },
	{ "1.2.3.4]", 0, 0 },
	{ "[1.2.3.4]x", 0, 0 },
};

START_TEST(test_domain_table)
{
	const struct domain_case *c = &domain_cases[_i];
	size_t len = strlen(c->s);
	char *s = dupn(c->s, len);
	int v = smtp_check_domain(s, len, c->utf8) != 0;

	ck_assert_msg(v == c->valid, "\"%s\" (utf8 %d): %d, want %d", c->s,
	    c->utf8, v, c->valid);
	free(s);
}
END_TEST

START_TEST(test_domain_lengths)
{
	char buf[300], *s;

	fill(buf, 'l', 63);
	ck_assert(smtp_check_domain(buf, 63, 0));
	strcat(buf, ".example");
	ck_assert(smtp_check_domain(buf, strlen(buf), 0));
	fill(buf, 'l', 64);
	ck_assert(!smtp_check_domain(buf, 64, 0));
	strcat(buf, ".example");
	ck_assert(!smtp_check_domain(buf, strlen(buf), 0));

	make_domain(buf, 255);
	s = dupn(buf, 255);
	ck_assert(smtp_check_domain(s, 255, 0));
	free(s);
	make_domain(buf, 256);
	s = dupn(buf, 256);
	ck_assert(!smtp_check_domain(s, 256, 0));
	free(s);
	ck_assert(!smtp_check_domain(NULL, 0, 0));
	/* The length ends the domain. */
	ck_assert(smtp_check_domain("example.com.", 11, 0));
}
END_TEST

/* ---- xtext and UTF-8 --------------------------------------------------- */

struct valid_case {
	const char *s;
	int valid;
};

static const struct valid_case xtext_cases[] = {
	{ "", 1 },
	{ "abc", 1 },
	{ "a+2Bb", 1 },
	{ "+2B", 1 },
	{ "+0A+FF", 1 },
	{ "!~<>\"", 1 },
	{ "a+2bb", 0 },
	{ "a+2", 0 },
	{ "a+", 0 },
	{ "+", 0 },
	{ "+ZZ", 0 },
	{ "+G0", 0 },
	{ "a=b", 0 },
	{ "a b", 0 },
	{ "a\x7f", 0 },
	{ "a\x01", 0 },
	{ "\xC3\xA9", 0 },
};

START_TEST(test_xtext_table)
{
	const struct valid_case *c = &xtext_cases[_i];
	size_t len = strlen(c->s);
	char *s = dupn(c->s, len);

	ck_assert_msg((smtp_xtext_valid(s, len) != 0) == c->valid,
	    "\"%s\": want %d", c->s, c->valid);
	free(s);
}
END_TEST

static const struct valid_case utf8_cases[] = {
	{ "", 1 },
	{ "abc", 1 },
	{ "\x7f", 1 },
	{ "\xC2\x80", 1 },
	{ "\xC3\xA9", 1 },
	{ "\xDF\xBF", 1 },
	{ "\xE0\xA0\x80", 1 },
	{ "\xE2\x82\xAC", 1 },
	{ "\xED\x9F\xBF", 1 },
	{ "\xEE\x80\x80", 1 },
	{ "\xEF\xBF\xBF", 1 },
	{ "\xF0\x90\x80\x80", 1 },
	{ "\xF0\x9F\x98\x80", 1 },
	{ "\xF4\x8F\xBF\xBF", 1 },
	{ "a\xC3\xA9" "b\xE2\x82\xAC" "c", 1 },
	/* overlongs */
	{ "\xC0\x80", 0 },
	{ "\xC0\xAF", 0 },
	{ "\xC1\xBF", 0 },
	{ "\xE0\x80\xAF", 0 },
	{ "\xE0\x9F\xBF", 0 },
	{ "\xF0\x80\x80\xAF", 0 },
	{ "\xF0\x8F\xBF\xBF", 0 },
	/* surrogates */
	{ "\xED\xA0\x80", 0 },
	{ "\xED\xAD\xBF", 0 },
	{ "\xED\xB0\x80", 0 },
	{ "\xED\xBF\xBF", 0 },
	{ "\xED\xA0\xBD\xED\xB8\x80", 0 },
	/* beyond U+10FFFF, bad lead bytes */
	{ "\xF4\x90\x80\x80", 0 },
	{ "\xF5\x80\x80\x80", 0 },
	{ "\xF8\x88\x80\x80\x80", 0 },
	{ "\xFE", 0 },
	{ "\xFF", 0 },
	{ "\x80", 0 },
	{ "\xBF", 0 },
	{ "a\x80" "b", 0 },
	/* truncated and interrupted */
	{ "\xC3", 0 },
	{ "\xE2\x82", 0 },
	{ "\xF0\x9F\x98", 0 },
	{ "a\xC3", 0 },
	{ "\xC3\x28", 0 },
	{ "\xE2\x28\xA1", 0 },
	{ "\xF0\x9F\x28\x80", 0 },
};

START_TEST(test_utf8_table)
{
	const struct valid_case *c = &utf8_cases[_i];
	size_t len = strlen(c->s);
	char *s = dupn(c->s, len);

	ck_assert_msg((utf8_valid(s, len) != 0) == c->valid,
	    "case %d: want %d", _i, c->valid);
	free(s);
}
END_TEST

START_TEST(test_utf8_len_bounds)
{
	/* NUL is ASCII; the length, not a NUL, ends the input. */
	ck_assert(utf8_valid("a\0b", 3));
	ck_assert(utf8_valid("\xC3\xA9", 0));
	ck_assert(!utf8_valid("\xC3\xA9", 1));
	ck_assert(!utf8_valid("\xE2\x82\xAC", 2));
	ck_assert(utf8_valid("\xE2\x82\xAC", 3));
	ck_assert(smtp_xtext_valid("+2B", 3));
	ck_assert(!smtp_xtext_valid("+2B", 2));
}
END_TEST

/* ---- HELO ---------------------------------------------------------------- */

struct helo_case {
	const char *arg;
	int rc;
	const char *out;
};

static const struct helo_case helo_cases[] = {
	{ "example.com", 0, "example.com" },
	{ "example.com   ", 0, "example.com" },
	{ "  example.com", 0, "example.com" },
	{ "[192.0.2.1]", 0, "[192.0.2.1]" },
	{ "[IPv6:::1]", 0, "[IPv6:::1]" },
	{ "my_host", 0, "my_host" },
	{ "b\xC3\xBC" "cher.example", 0, "b\xC3\xBC" "cher.example" },
	{ "!~", 0, "!~" },
	{ "", -1, NULL },
	{ "   ", -1, NULL },
	{ "a b", -1, NULL },
	{ "example.com extra", -1, NULL },
	{ "a\tb", -1, NULL },
	{ "a\x7f", -1, NULL },
	{ "a\x01", -1, NULL },
	{ "a\r", -1, NULL },
	{ "\xC3", -1, NULL },
	{ "\xC0\xAF", -1, NULL },
	{ "\xED\xA0\x80", -1, NULL },
};

START_TEST(test_helo_table)
{
	const struct helo_case *c = &helo_cases[_i];
	size_t len = strlen(c->arg);
	char *arg = dupn(c->arg, len), out[256];
	int rc;

	rc = smtp_parse_helo(arg, len, out, sizeof(out));
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->arg, rc);
	if (rc == 0)
		ck_assert_str_eq(out, c->out);
	free(arg);
}
END_TEST

START_TEST(test_helo_lengths)
{
	char buf[300], out[256], small[8], *arg;

	fill(buf, 'h', 255);
	arg = dupn(buf, 255);
	ck_assert_int_eq(smtp_parse_helo(arg, 255, out, sizeof(out)), 0);
	ck_assert_str_eq(out, buf);
	free(arg);
	fill(buf, 'h', 256);
	arg = dupn(buf, 256);
	ck_assert_int_eq(smtp_parse_helo(arg, 256, out, sizeof(out)), -1);
	free(arg);
	/* 255 + trailing spaces is fine. */
	fill(buf, 'h', 255);
	strcat(buf, "   ");
	arg = dupn(buf, 258);
	ck_assert_int_eq(smtp_parse_helo(arg, 258, out, sizeof(out)), 0);
	ck_assert_uint_eq(strlen(out), 255);
	free(arg);
	/* out too small is refused, never overrun. */
	ck_assert_int_eq(smtp_parse_helo("example.com", 11, small,
	    sizeof(small)), -1);
	ck_assert_int_eq(smtp_parse_helo("example", 7, small, sizeof(small)),
	    0);
	ck_assert_str_eq(small, "example");
	ck_assert_int_eq(smtp_parse_helo(NULL, 0, out, sizeof(out)), -1);
	/* Through the verb parser. */
	{
		const char *a;
		size_t alen;
		ck_assert_int_eq(smtp_parse_verb("EHLO  mx.example  ", 18, &a,
		    &alen), VERB_EHLO);
		ck_assert_int_eq(smtp_parse_helo(a, alen, out, sizeof(out)),
		    0);
		ck_assert_str_eq(out, "mx.example");
	}
}
END_TEST

/* ---- BDAT ---------------------------------------------------------------- */

struct bdat_case {
	const char *arg;
	int rc;
	uint64_t size;
	int last;
};

static const struct bdat_case bdat_cases[] = {
	{ "0", 0, 0, 0 },
	{ "100", 0, 100, 0 },
	{ "100  ", 0, 100, 0 },
	{ " 100", 0, 100, 0 },
	{ "0 LAST", 0, 0, 1 },
	{ "100 LAST", 0, 100, 1 },
	{ "100 last", 0, 100, 1 },
	{ "100   LaSt  ", 0, 100, 1 },
	{ "9223372036854775807", 0, INT64_MAX, 0 },
	{ "9223372036854775807 LAST", 0, INT64_MAX, 1 },
	{ "00000000000000000001", 0, 1, 0 },
	{ "000000000000000000001", -1, 0, 0 },
	{ "9223372036854775808", -1, 0, 0 },
	{ "18446744073709551615", -1, 0, 0 },
	{ "18446744073709551616", -1, 0, 0 },
	{ "", -1, 0, 0 },
	{ "   ", -1, 0, 0 },
	{ "LAST", -1, 0, 0 },
	{ "100LAST", -1, 0, 0 },
	{ "100 LAST X", -1, 0, 0 },
	{ "100 LASTX", -1, 0, 0 },
	{ "100 LAS", -1, 0, 0 },
	{ "100 FIRST", -1, 0, 0 },
	{ "100\tLAST", -1, 0, 0 },
	{ "-1", -1, 0, 0 },
	{ "+1", -1, 0, 0 },
	{ "1 2", -1, 0, 0 },
	{ "1x", -1, 0, 0 },
	{ "0x10", -1, 0, 0 },
	{ "\xD9\xA1", -1, 0, 0 },
};

START_TEST(test_bdat_table)
{
	const struct bdat_case *c = &bdat_cases[_i];
	size_t len = strlen(c->arg);
	char *arg = dupn(c->arg, len);
	uint64_t size = 777;
	int last = 7, rc;

	rc = smtp_parse_bdat(arg, len, &size, &last);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->arg, rc);
	if (rc == 0) {
		ck_assert_msg(size == c->size, "\"%s\": size %llu", c->arg,
		    (unsigned long long)size);
		ck_assert_int_eq(last, c->last);
	}
	free(arg);
}
END_TEST

START_TEST(test_bdat_len_bounds)
{
	uint64_t size;
	int last;

	ck_assert_int_eq(smtp_parse_bdat("1234 LAST", 2, &size, &last), 0);
	ck_assert_uint_eq(size, 12);
	ck_assert_int_eq(last, 0);
	ck_assert_int_eq(smtp_parse_bdat("1 LASTING", 6, &size, &last), 0);
	ck_assert_int_eq(last, 1);
	ck_assert_int_eq(smtp_parse_bdat(NULL, 0, &size, &last), -1);
}
END_TEST

/*
 * Regression (fuzz_address, fuzz_smtp_command): an IPv6 address literal
 * with a NUL inside was handed to inet_pton, which stops at the NUL, so
 * "a@[IPv6:::<NUL>]" passed and the stored address, a C string, was cut
 * to "a@[IPv6:::".  Corpus files tests/fuzz/corpus/fuzz_address/
 * regress-ipv6-literal-nul and fuzz_smtp_command/regress-*-ipv6-literal-nul.
 */
START_TEST(test_ipv6_literal_nul)
{
	static const char mbox[] = "a@[IPv6:::\0]";
	static const char lit[] = "[IPv6:2001:db8::\0\0001]";
	static const char mail[] = "<a@[IPv6:::\0]>";
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	char *p;

	p = dupn(mbox, sizeof(mbox) - 1);
	ck_assert_int_eq(smtp_check_mailbox(p, sizeof(mbox) - 1, 0),
	    PARSE_SYNTAX);
	ck_assert_int_eq(smtp_check_mailbox(p, sizeof(mbox) - 1, 1),
	    PARSE_SYNTAX);
	free(p);
	p = dupn(lit, sizeof(lit) - 1);
	ck_assert_int_eq(smtp_check_domain(p, sizeof(lit) - 1, 1), 0);
	free(p);
	p = dupn(mail, sizeof(mail) - 1);
	ck_assert_int_eq(smtp_parse_mail(p, sizeof(mail) - 1, E, &m),
	    PARSE_BAD_SENDER);
	ck_assert_str_eq(m.addr, "");
	ck_assert_int_eq(smtp_parse_rcpt(p, sizeof(mail) - 1, E, 1, &r),
	    PARSE_BAD_RCPT);
	ck_assert_str_eq(r.addr, "");
	free(p);
	/* without the NUL it is a fine literal */
	ck_assert_int_eq(smtp_check_mailbox("a@[IPv6:::1]", 12, 0), PARSE_OK);
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *smtp_parse_suite(void)
{
	Suite *s = suite_create("smtp_parse");
	TCase *tc;

	tc = tcase_create("verb");
	tcase_add_loop_test(tc, test_verb_table, 0, NELEM(verb_cases));
	tcase_add_test(tc, test_verb_null_line);
	tcase_add_test(tc, test_verb_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("mail");
	tcase_add_loop_test(tc, test_mail_table, 0, NELEM(mail_cases));
	tcase_add_test(tc, test_mail_via_verb);
	tcase_add_test(tc, test_mail_local_part_length);
	tcase_add_test(tc, test_mail_path_length);
	tcase_add_test(tc, test_mail_source_route_length);
	tcase_add_test(tc, test_mail_envid_length);
	tcase_add_test(tc, test_mail_len_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("rcpt");
	tcase_add_loop_test(tc, test_rcpt_table, 0, NELEM(rcpt_cases));
	tcase_add_test(tc, test_rcpt_lengths);
	tcase_add_test(tc, test_rcpt_via_verb);
	suite_add_tcase(s, tc);

	tc = tcase_create("mailbox");
	tcase_add_loop_test(tc, test_mailbox_table, 0, NELEM(mbox_cases));
	tcase_add_test(tc, test_mailbox_lengths);
	tcase_add_loop_test(tc, test_domain_table, 0, NELEM(domain_cases));
	tcase_add_test(tc, test_domain_lengths);
	tcase_add_test(tc, test_ipv6_literal_nul);
	suite_add_tcase(s, tc);

	tc = tcase_create("text");
	tcase_add_loop_test(tc, test_xtext_table, 0, NELEM(xtext_cases));
	tcase_add_loop_test(tc, test_utf8_table, 0, NELEM(utf8_cases));
	tcase_add_test(tc, test_utf8_len_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("helo_bdat");
	tcase_add_loop_test(tc, test_helo_table, 0, NELEM(helo_cases));
	tcase_add_test(tc, test_helo_lengths);
	tcase_add_loop_test(tc, test_bdat_table, 0, NELEM(bdat_cases));
	tcase_add_test(tc, test_bdat_len_bounds);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smtp_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
