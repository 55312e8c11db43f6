/*
 * smtp_reply.h - every reply the SMTP server can give, in one table:
 * code, enhanced status code (RFC 3463) and text.  Texts are printf
 * formats; the session fills in the arguments and sends the line through
 * its single reply exit.
 */
#ifndef FERRY_SMTP_REPLY_H
#define FERRY_SMTP_REPLY_H

#include <stdarg.h>
#include <stddef.h>

enum reply_id {
	R_GREETING,          /* 220 <host> ESMTP ferry */
	R_HELO,              /* 250 <host> */
	R_SUCCESS,                /* 250 2.0.0 Ok */
	R_SENDER_OK,         /* 250 2.1.0 */
	R_RCPT_OK,           /* 250 2.1.5 */
	R_DATA_GO,           /* 354 */
	R_QUEUED,            /* 250 2.0.0 Ok: queued as %s */
	R_BDAT_OK,           /* 250 2.0.0 %llu octets received */
	R_BYE,               /* 221 2.0.0 */
	R_VRFY,              /* 252 2.5.0 */
	R_EXPN,              /* 502 5.5.1 */
	R_HELP,              /* 214 2.0.0 (multi-line) */
	R_SHUTDOWN,          /* 421 4.3.2 */
	R_TIMEOUT,           /* 421 4.4.2 */
	R_TOO_MANY_ERRORS,   /* 421 4.7.0 */
	R_TOO_MANY_JUNK,     /* 421 4.7.0 %s: hostname */
	R_STORE_FAILED,      /* 451 4.3.0 */
	R_QUEUE_UNAVAILABLE, /* 451 4.3.0 */
	R_QUEUE_CLOSED,      /* 421 4.3.0 %s: hostname (at the greeting) */
	R_INSUFFICIENT_STORAGE,  /* 452 4.3.1 (at MAIL) */
	R_TOO_MANY_RCPTS,    /* 452 4.5.3 */
	R_LINE_TOO_LONG,     /* 500 5.5.2 */
	R_BARE_NEWLINE_CMD,  /* 500 5.5.2 */
	R_UNKNOWN_COMMAND,   /* 500 5.5.2 */
	R_SYNTAX_HELO,       /* 501 5.5.4 */
	R_SYNTAX_MAIL,       /* 501 5.5.4 */
	R_SYNTAX_RCPT,       /* 501 5.5.4 */
	R_SYNTAX_NOARG,      /* 501 5.5.4 %s takes no argument */
	R_SYNTAX_BDAT,       /* 501 5.5.4 */
	R_SYNTAX_VRFY,       /* 501 5.5.4 */
	R_BAD_SENDER,        /* 501 5.1.7 */
	R_BAD_RCPT,          /* 501 5.1.3 */
	R_ADDR_TOO_LONG,     /* 501 5.5.4 */
	R_PARAM_BAD,         /* 501 5.5.4 */
	R_PARAM_DUP,         /* 501 5.5.4 */
	R_NOT_IMPLEMENTED,   /* 502 5.5.1 */
	R_NEED_HELO,         /* 503 5.5.1 */
	R_NESTED_MAIL,       /* 503 5.5.1 */
	R_NEED_MAIL,         /* 503 5.5.1 */
	R_NEED_RCPT,         /* 503 5.5.1 */
	R_DATA_AFTER_BDAT,   /* 503 5.5.1 */
	R_BDAT_FAILED_TX,    /* 503 5.5.1 */
	R_SIZE_EXCEEDED,     /* 552 5.3.4 (at MAIL and after data) */
	R_RELAY_DENIED,      /* 554 5.7.1 */
	R_NO_VALID_RCPTS,    /* 554 5.5.1 */
	R_DATA_BARE_NEWLINE, /* 550 5.6.0 */
	R_DATA_AMBIGUOUS_END,/* 521 5.5.2 */
	R_DATA_LINE_TOO_LONG,/* 550 5.6.0 */
	R_NON_ASCII_ADDR,    /* 553 5.6.7 */
	R_PARAM_UNKNOWN,     /* 555 5.5.4 */
	/* STARTTLS (RFC 3207) */
	R_STARTTLS_GO,       /* 220 2.0.0 */
	R_TLS_ACTIVE,        /* 503 5.5.1 */
	R_TLS_REQUIRED,      /* 530 5.7.0 */
	R_TLS_UNAVAILABLE,   /* 454 4.7.0 */
	/* AUTH (RFC 4954) */
	R_AUTH_OK,           /* 235 2.7.0 */
	R_AUTH_CHALLENGE,    /* 334 %s */
	R_AUTH_CANCELLED,    /* 501 5.0.0 */
	R_AUTH_BAD_BASE64,   /* 501 5.5.2 */
	R_AUTH_BAD_RESPONSE, /* 501 5.5.2 */
	R_AUTH_SYNTAX,       /* 501 5.5.4 */
	R_AUTH_LINE_TOO_LONG,/* 500 5.5.6 */
	R_AUTH_ALREADY,      /* 503 5.5.1 */
	R_AUTH_IN_TX,        /* 503 5.5.1 */
	R_AUTH_NEED_EHLO,    /* 503 5.5.1 */
	R_AUTH_MECH,         /* 504 5.5.4 */
	R_AUTH_FAILED,       /* 535 5.7.8 */
	R_AUTH_ENCRYPT,      /* 538 5.7.11 */
	R_AUTH_TEMPFAIL,     /* 454 4.7.0 */
	R_AUTH_LOCKED,       /* 421 4.7.0 */
	/* relay policy */
	R_SENDER_NOT_OWNED,  /* 553 5.7.1 */
	/* abuse limits (anvil) and non-SMTP clients */
	R_TOO_MANY_CONNECTIONS,  /* 421 4.7.0 %s: hostname */
	R_TOO_MANY_FROM_CLIENT,  /* 421 4.7.0 %s %s: hostname, address */
	R_CONNECTION_RATE,       /* 421 4.7.0 %s: hostname */
	R_MESSAGE_RATE,          /* 421 4.7.0 %s %s: hostname, address */
	R_PREGREET,              /* 554 5.5.1 %s: hostname */
	R_NOT_SMTP,              /* 554 5.5.1 %s %s: hostname, verb */
	/* what the route's upstream cannot take (route_caps.h) */
	R_SIZE_ROUTE,            /* 552 5.3.4 %s: recipient (at RCPT) */
	R_SIZE_EVERY_ROUTE,      /* 552 5.3.4 (at MAIL) */
	R_SIZE_RCPT_ROUTES,      /* 552 5.3.4 (after data) */
	R_SMTPUTF8_ROUTE,        /* 553 5.6.7 %s: recipient */
	R_8BITMIME_ROUTE,        /* 554 5.6.3 %s: recipient */
	R_COUNT
};

struct reply_def {
	int code;
	const char *esc;     /* "2.0.0"; NULL for greeting/HELO/EHLO */
	const char *text;    /* printf format; "\n" separates lines */
};

const struct reply_def *reply_lookup(enum reply_id id);

/* Formats a reply (possibly multi-line) into out with CRLF line ends.
 * Returns the length written; text is cut, never overflows. */
size_t reply_format(char *out, size_t outlen, enum reply_id id,
    va_list ap);
size_t reply_formatf(char *out, size_t outlen, enum reply_id id, ...);

#endif
