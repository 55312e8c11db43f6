/*
 * smtp_parse.h - pure parsers for the SMTP server: the command verb, the
 * MAIL FROM / RCPT TO paths and their ESMTP parameters (RFC 5321 4.1.2,
 * SIZE RFC 1870, BODY RFC 6152, SMTPUTF8 RFC 6531, DSN RFC 3461, AUTH
 * RFC 4954 - accepted and ignored), the
 * HELO/EHLO argument, and the BDAT arguments (RFC 3030).
 *
 * Security stance: every input is untrusted network text.  These
 * functions read only inside the buffer they are given, never allocate
 * more than the input's length, and report every violation as a
 * precise result code that the session turns into a reply.
 */
#ifndef FERRY_SMTP_PARSE_H
#define FERRY_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1 */
#define SMTP_MAX_LOCAL_PART 64
#define SMTP_MAX_DOMAIN 255
#define SMTP_MAX_PATH 256
/* RFC 3461 4.4: ENVID at most 100 characters; ORCPT at most 500. */
#define DSN_MAX_ENVID 100
#define DSN_MAX_ORCPT 500

enum smtp_verb {
	VERB_UNKNOWN = 0,
	VERB_HELO, VERB_EHLO, VERB_MAIL, VERB_RCPT, VERB_DATA, VERB_BDAT,
	VERB_RSET, VERB_VRFY, VERB_EXPN, VERB_HELP, VERB_NOOP, VERB_QUIT,
	VERB_STARTTLS, VERB_AUTH,
	VERB_MAX
};

/* Splits a command line (without CRLF) into verb and argument.  The verb
 * is matched case-insensitively; "MAIL FROM:" and "RCPT TO:" are matched
 * as a whole, so arg points after the colon.  *arg is never NULL. */
enum smtp_verb smtp_parse_verb(const char *line, size_t len,
    const char **arg, size_t *arglen);
const char *smtp_verb_name(enum smtp_verb v);

enum smtp_parse_result {
	PARSE_OK = 0,
	PARSE_SYNTAX,          /* 501 5.5.4 / 5.1.7 / 5.1.3 */
	PARSE_BAD_SENDER,      /* 501 5.1.7: bad sender address syntax */
	PARSE_BAD_RCPT,        /* 501 5.1.3: bad recipient address syntax */
	PARSE_TOO_LONG,        /* 501 5.5.4 path/local-part/domain too long */
	PARSE_NON_ASCII,       /* 553 5.6.7: UTF-8 without SMTPUTF8 */
	PARSE_UNKNOWN_PARAM,   /* 555 5.5.4 */
	PARSE_BAD_PARAM,       /* 501 5.5.4: bad value */
	PARSE_DUP_PARAM,       /* 501 5.5.4: parameter given twice */
	PARSE_PARAM_NO_ESMTP,  /* 555 5.5.4: parameters after HELO */
};

enum body_type { BODY_UNSPEC = 0, BODY_7BIT, BODY_8BITMIME };
enum dsn_ret { RET_UNSPEC = 0, RET_FULL, RET_HDRS };
#define NOTIFY_NEVER   0x01
#define NOTIFY_SUCCESS 0x02
#define NOTIFY_FAILURE 0x04
#define NOTIFY_DELAY   0x08

/* An address as parsed: "" for the null path <>, otherwise
 * local-part@domain (source route dropped, as RFC 5321 4.1.1.3 asks), or
 * "Postmaster" for RCPT TO:<Postmaster>. */
struct smtp_mail_args {
	char addr[SMTP_MAX_PATH + 1];
	int64_t size;                    /* -1 when SIZE was not given */
	enum body_type body;
	int smtputf8;
	enum dsn_ret ret;
	char envid[DSN_MAX_ENVID + 1];   /* xtext as received; "" if none */
};

struct smtp_rcpt_args {
	char addr[SMTP_MAX_PATH + 1];
	unsigned notify;                 /* NOTIFY_* bits; 0 when not given */
	char orcpt[DSN_MAX_ORCPT + 1];   /* "addr-type;xtext"; "" if none */
};

/* Flags for what the session advertised; parameters of extensions the
 * session did not announce (HELO instead of EHLO) are refused. */
#define PARSE_ESMTP 0x01

/* arg is what follows "MAIL FROM:" (no CRLF). */
enum smtp_parse_result smtp_parse_mail(const char *arg, size_t len,
    unsigned flags, struct smtp_mail_args *out);
/* arg is what follows "RCPT TO:".  smtputf8 tells whether the
 * transaction's MAIL carried SMTPUTF8 (non-ASCII allowed). */
enum smtp_parse_result smtp_parse_rcpt(const char *arg, size_t len,
    unsigned flags, int smtputf8, struct smtp_rcpt_args *out);

/* Validates a mailbox "local@domain" (RFC 5321 Mailbox, RFC 6531 when
 * utf8): Dot-string or Quoted-string local part, a domain of LDH labels
 * (U-labels when utf8) or an address literal.  Returns PARSE_OK,
 * PARSE_SYNTAX, PARSE_TOO_LONG or PARSE_NON_ASCII. */
enum smtp_parse_result smtp_check_mailbox(const char *s, size_t len,
    int utf8);
/* Validates a domain or address literal as above. */
int smtp_check_domain(const char *s, size_t len, int utf8);

/* HELO/EHLO argument: one domain or address literal, printable, no
 * spaces; trailing spaces allowed.  Returns 0 and copies it to out
 * (outlen >= 256), or -1. */
int smtp_parse_helo(const char *arg, size_t len, char *out, size_t outlen);

/* "BDAT <size> [LAST]": returns 0 and fills size and last, or -1. */
int smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, int *last);

/* RFC 3461 4: xtext ("+" followed by two upper-case hex digits encodes a
 * byte; other chars 33..126 except "+" and "=").  Nonzero when valid. */
int smtp_xtext_valid(const char *s, size_t len);

/* Nonzero when s is well-formed UTF-8 (no overlongs, no surrogates). */
int utf8_valid(const char *s, size_t len);

#endif
