/*
 * smtp_client_reply.h - the SMTP client's view of a server's replies:
 * an incremental parser of (multi-line) replies and of the EHLO keywords.
 *
 * Pure functions over buffers, no I/O: the delivery agent reads bytes
 * into a buffer and asks scr_parse() whether a whole reply is there.
 * Anything a broken or hostile server can send is caught here: a line
 * without a code, codes that change between lines, a bare LF or CR, an
 * over-long line, or a multi-line reply that never ends.
 */
#ifndef FERRY_SMTP_CLIENT_REPLY_H
#define FERRY_SMTP_CLIENT_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define SCR_LINE_MIN 512      /* RFC 5321 4.5.3.1.5: 512 with CRLF */
#define SCR_LINE_MAX 2048
#define SCR_MAX_LINES 100
#define SCR_TEXT_MAX 2048     /* the one-line summary, with NUL */

/* State of one reply being parsed; set up with scr_init before each. */
struct scr_parser {
	size_t max_line;          /* bytes with CRLF, 512..2048 */
	size_t max_lines;
	size_t pos;               /* complete lines already checked */
	size_t nlines;
	int code;
};

struct smtp_client_reply {
	int code;                 /* 200..599 */
	char esc[16];             /* enhanced status code of the first line
	                             ("5.1.1"), "" when none or its class
	                             does not match the code */
	char text[SCR_TEXT_MAX];  /* "550 5.1.1 text text2": code and the
	                             lines' text joined with spaces,
	                             unprintable bytes as '?' */
	size_t nlines;
	size_t len;               /* bytes of the reply, with every CRLF */
};

enum scr_result { SCR_ERROR = -1, SCR_MORE = 0, SCR_DONE = 1 };

void scr_init(struct scr_parser *p, size_t max_line);
/* buf holds the reply from its first byte (and possibly more after it).
 * SCR_DONE: *r is filled and r->len bytes belong to the reply;
 * SCR_MORE: read more and call again with the same (grown) buffer;
 * SCR_ERROR: protocol error, why says which (a static string). */
int scr_parse(struct scr_parser *p, const char *buf, size_t len,
    struct smtp_client_reply *r, const char **why);

/* The enhanced status code to report for a reply: its own when it has
 * one, else "2.0.0" / "4.0.0" / "5.0.0" by class. */
const char *scr_dsn(const struct smtp_client_reply *r);

#define AUTH_MECH_PLAIN 0x01
#define AUTH_MECH_LOGIN 0x02
#define AUTH_MECH_XOAUTH2 0x04
#define AUTH_MECH_OAUTHBEARER 0x08

struct ehlo_caps {
	int pipelining;
	int size;                 /* SIZE advertised */
	uint64_t size_max;        /* its limit; 0 = none given */
	int eightbitmime;
	int smtputf8;
	int dsn;
	int requiretls;           /* RFC 8689 */
	int starttls;
	int enhancedstatuscodes;
	int auth;                 /* AUTH advertised */
	unsigned auth_mechs;      /* AUTH_MECH_* */
};

/* Reads the keywords of a whole EHLO reply (buf, len = r->len as parsed
 * by scr_parse; the first line is the greeting and is skipped). */
void scr_ehlo_caps(const char *buf, size_t len, struct ehlo_caps *caps);

#endif
