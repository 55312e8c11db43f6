/*
 * sendmail_msg.h - the message side of ferry-sendmail, as pure functions:
 * line endings, the header block, recipients from To/Cc/Bcc (-t), the
 * headers a submission must carry, dot-stuffing, the listener to submit
 * to.  No I/O, no clock: the
 * caller passes in the Date, Message-ID and From it would add, so the
 * unit tests (tests/check_sendmail.c) see exactly what is produced.
 */
#ifndef FERRY_SENDMAIL_MSG_H
#define FERRY_SENDMAIL_MSG_H

#include <stddef.h>

#include "config.h"

/* A growing list of addresses (owned strings). */
struct sm_addrs {
	char **v;
	size_t n, cap;
};

void sm_addrs_free(struct sm_addrs *a);
/* Appends addr unless an equal one (ASCII case-insensitive) is there. */
void sm_addrs_add(struct sm_addrs *a, const char *addr);

/*
 * Adds the addresses of an RFC 5322 address-list header value (To, Cc,
 * Bcc: display names, quoted strings, comments, <angle-addr>, groups
 * "name: a@x, b@y;"; folding already undone or not) to out.  Returns the
 * number added, or -1 when the value is malformed (an unclosed quote,
 * comment or angle bracket); addresses before the fault are kept.
 */
int sm_parse_address_list(const char *value, struct sm_addrs *out);

/*
 * 1 when addr is acceptable on the SMTP envelope as ferry-sendmail writes
 * it ("<addr>"): not empty, at most 254 octets, no control characters,
 * no '<' '>', no space outside a quoted local part.  Unqualified names
 * ("root") are acceptable here; see sm_qualify.
 */
int sm_address_ok(const char *addr);

/* addr with "@domain" appended when it has no '@' (a new string). */
char *sm_qualify(const char *addr, const char *domain);

/*
 * A From: header value for the address with a display name: the name as
 * an RFC 5322 quoted-string when it needs quoting, as an RFC 2047
 * encoded word when it is not ASCII; just the address when name is NULL
 * or empty.  A new string.
 */
char *sm_from_value(const char *name, const char *addr);

struct sm_input {
	int extract;              /* -t: recipients from To/Cc/Bcc */
	const char *from_value;   /* added as "From: ..." when missing */
	const char *date_value;   /* added as "Date: ..." when missing */
	const char *msgid_value;  /* added as "Message-ID: ..." when missing */
};

struct sm_message {
	char *data;               /* CRLF lines, not dot-stuffed */
	size_t len;
	struct sm_addrs rcpts;    /* with extract: from the headers */
	int eightbit;             /* some octet >= 0x80 */
	int added_from, added_date, added_msgid;
};

/*
 * Builds the message to submit from what was read on standard input
 * (the lone "." rule, -i, is the reader's business): line ends become
 * CRLF, a CR not followed by LF is dropped, a leading mbox "From " line
 * is dropped, the header block ends at the first line that is neither a
 * header field nor a continuation (a separating empty line is written if
 * the input had none), Bcc fields are removed, missing From/Date/
 * Message-ID are added after the existing fields.  Returns 0, or -1 with
 * a reason in err (malformed To/Cc/Bcc with extract).
 */
int sm_prepare(const char *in, size_t len, const struct sm_input *opt,
    struct sm_message *out, char *err, size_t errlen);
void sm_message_free(struct sm_message *m);

/* The SMTP DATA form of a CRLF message: a "." is doubled at the start of
 * every line (RFC 5321 4.5.2), without the final ".".  A new buffer. */
char *sm_dot_stuff(const char *data, size_t len, size_t *outlen);

/*
 * The listener ferry-sendmail submits to: the first one that does not
 * want TLS from the first octet or before MAIL (tls = "implicit" or
 * tls_required = true).  NULL when there is none.  The configuration is
 * read with the daemon's own loader (config_load_flags with
 * CONFIG_NO_FILE_CHECKS, so that users who cannot read the certificate
 * or password files the configuration names can still submit).
 */
const struct listener_config *sm_submit_listener(
    const struct ferry_config *cfg);

#endif
