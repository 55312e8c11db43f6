/*
 * smtp_reply.c - the table of every reply the SMTP server gives: code,
 * enhanced status code (RFC 3463) and text, and their formatting into
 * RFC 5321 4.2 reply lines (multi-line replies use "code-text").
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smtp_reply.h"

static const struct reply_def replies[R_COUNT] = {
	[R_GREETING] = { 220, NULL, "%s ESMTP ferry" },
	[R_HELO] = { 250, NULL, "%s" },
	[R_SUCCESS] = { 250, "2.0.0", "Ok" },
	[R_SENDER_OK] = { 250, "2.1.0", "Sender <%s> ok" },
	[R_RCPT_OK] = { 250, "2.1.5", "Recipient <%s> ok" },
	[R_DATA_GO] = { 354, NULL, "End data with <CR><LF>.<CR><LF>" },
	[R_QUEUED] = { 250, "2.0.0", "Ok: queued as %s" },
	[R_BDAT_OK] = { 250, "2.0.0", "%llu octets received" },
	[R_BYE] = { 221, "2.0.0", "Bye" },
	[R_VRFY] = { 252, "2.5.0", "Cannot VRFY user, but will accept "
	    "message and attempt delivery" },
	[R_EXPN] = { 502, "5.5.1", "EXPN is not available: ferry does not "
	    "disclose mailing list members" },
	[R_HELP] = { 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT "
	    "RSET VRFY EXPN HELP NOOP QUIT\n"
	    "Send mail: EHLO, MAIL FROM:<sender>, RCPT TO:<recipient>, "
	    "then DATA\n"
	    "For details see RFC 5321; ferry documentation: ferry.conf(5)" },
	[R_SHUTDOWN] = { 421, "4.3.2", "%s Service shutting down, closing "
	    "transmission channel" },
	[R_TIMEOUT] = { 421, "4.4.2", "%s Error: timeout exceeded, closing "
	    "transmission channel" },
	[R_TOO_MANY_ERRORS] = { 421, "4.7.0", "%s Error: too many errors, "
	    "closing transmission channel" },
	[R_TOO_MANY_JUNK] = { 421, "4.7.0", "%s Error: too many commands that "
	    "move no mail, closing transmission channel" },
	[R_STORE_FAILED] = { 451, "4.3.0", "Error: queue file write error, "
	    "try again later" },
	[R_QUEUE_UNAVAILABLE] = { 451, "4.3.0", "Error: queue unavailable, "
	    "try again later" },
	[R_QUEUE_CLOSED] = { 421, "4.3.0", "%s Error: queue unavailable, "
	    "closing transmission channel; try again later" },
	[R_INSUFFICIENT_STORAGE] = { 452, "4.3.1", "Insufficient system "
	    "storage" },
	[R_TOO_MANY_RCPTS] = { 452, "4.5.3", "Error: too many recipients "
	    "(limit %d)" },
	[R_LINE_TOO_LONG] = { 500, "5.5.2", "Error: line too long (limit %d "
	    "octets)" },
	[R_BARE_NEWLINE_CMD] = { 500, "5.5.2", "Error: bare <CR> or <LF> in "
	    "command; lines must end in <CR><LF>" },
	[R_UNKNOWN_COMMAND] = { 500, "5.5.2", "Error: command not "
	    "recognized" },
	[R_SYNTAX_HELO] = { 501, "5.5.4", "Syntax: %s hostname" },
	[R_SYNTAX_MAIL] = { 501, "5.5.4", "Syntax: MAIL FROM:<address> "
	    "[parameters]" },
	[R_SYNTAX_RCPT] = { 501, "5.5.4", "Syntax: RCPT TO:<address> "
	    "[parameters]" },
	[R_SYNTAX_NOARG] = { 501, "5.5.4", "Syntax: %s takes no argument" },
	[R_SYNTAX_BDAT] = { 501, "5.5.4", "Syntax: BDAT size [LAST]" },
	[R_SYNTAX_VRFY] = { 501, "5.5.4", "Syntax: VRFY address" },
	[R_BAD_SENDER] = { 501, "5.1.7", "Bad sender address syntax" },
	[R_BAD_RCPT] = { 501, "5.1.3", "Bad recipient address syntax" },
	[R_ADDR_TOO_LONG] = { 501, "5.5.4", "Error: address too long "
	    "(RFC 5321 4.5.3.1)" },
	[R_PARAM_BAD] = { 501, "5.5.4", "Error: bad parameter value" },
	[R_PARAM_DUP] = { 501, "5.5.4", "Error: parameter given twice" },
	[R_NOT_IMPLEMENTED] = { 502, "5.5.1", "Error: %s is not "
	    "implemented" },
	[R_NEED_HELO] = { 503, "5.5.1", "Error: send HELO/EHLO first" },
	[R_NESTED_MAIL] = { 503, "5.5.1", "Error: nested MAIL command" },
	[R_NEED_MAIL] = { 503, "5.5.1", "Error: need MAIL command" },
	[R_NEED_RCPT] = { 503, "5.5.1", "Error: need RCPT command" },
	[R_DATA_AFTER_BDAT] = { 503, "5.5.1", "Error: DATA cannot follow "
	    "BDAT in one transaction" },
	[R_BDAT_FAILED_TX] = { 503, "5.5.1", "Error: transaction failed, "
	    "chunk discarded" },
	[R_SIZE_EXCEEDED] = { 552, "5.3.4", "Error: message size exceeds "
	    "fixed limit (%lld octets)" },
	[R_RELAY_DENIED] = { 554, "5.7.1", "<%s>: Relay access denied" },
	[R_NO_VALID_RCPTS] = { 554, "5.5.1", "Error: no valid recipients" },
	[R_DATA_BARE_NEWLINE] = { 550, "5.6.0", "Message refused: bare <CR> "
	    "or <LF> in message data; lines must end in <CR><LF>" },
	[R_DATA_AMBIGUOUS_END] = { 521, "5.5.2", "%s Error: bare <LF> or "
	    "<CR> ended the data; closing transmission channel" },
	[R_DATA_LINE_TOO_LONG] = { 550, "5.6.0", "Message refused: a line is "
	    "longer than %d octets" },
	[R_NON_ASCII_ADDR] = { 553, "5.6.7", "Error: non-ASCII address needs "
	    "SMTPUTF8" },
	[R_PARAM_UNKNOWN] = { 555, "5.5.4", "Error: unsupported parameter or "
	    "parameter not allowed here" },
	[R_TOO_MANY_CONNECTIONS] = { 421, "4.7.0", "%s Error: too many "
	    "connections" },
	[R_TOO_MANY_FROM_CLIENT] = { 421, "4.7.0", "%s Error: too many "
	    "connections from %s" },
	[R_CONNECTION_RATE] = { 421, "4.7.0", "%s Error: connection rate "
	    "limit exceeded" },
	[R_MESSAGE_RATE] = { 421, "4.7.0", "%s Error: too many messages from "
	    "%s, closing transmission channel" },
	[R_PREGREET] = { 554, "5.5.1", "%s Error: SMTP protocol violation: "
	    "talking before the greeting" },
	[R_NOT_SMTP] = { 554, "5.5.1", "%s Error: %s is not an SMTP command; "
	    "this is a mail server, closing transmission channel" },
	[R_SIZE_ROUTE] = { 552, "5.3.4", "<%s>: Message size exceeds fixed "
	    "maximum message size for this destination" },
	[R_SIZE_EVERY_ROUTE] = { 552, "5.3.4", "Error: message size exceeds "
	    "fixed maximum message size for every destination" },
	[R_SIZE_RCPT_ROUTES] = { 552, "5.3.4", "Error: message size exceeds "
	    "fixed maximum message size for the destination of every "
	    "recipient" },
	[R_SMTPUTF8_ROUTE] = { 553, "5.6.7", "<%s>: SMTPUTF8 is required, "
	    "but the next hop for this destination does not support it" },
	[R_8BITMIME_ROUTE] = { 554, "5.6.3", "<%s>: 8-bit content, but the "
	    "next hop for this destination does not support 8BITMIME" },
	[R_STARTTLS_GO] = { 220, "2.0.0", "Ready to start TLS" },
	[R_TLS_ACTIVE] = { 503, "5.5.1", "Error: TLS already active" },
	[R_TLS_REQUIRED] = { 530, "5.7.0", "Must issue a STARTTLS command "
	    "first" },
	[R_TLS_UNAVAILABLE] = { 454, "4.7.0", "TLS not available due to "
	    "local problem" },
	[R_AUTH_OK] = { 235, "2.7.0", "Authentication successful" },
	[R_AUTH_CHALLENGE] = { 334, NULL, "%s" },
	[R_AUTH_CANCELLED] = { 501, "5.0.0", "Authentication cancelled" },
	[R_AUTH_BAD_BASE64] = { 501, "5.5.2", "Error: invalid base64 in "
	    "authentication data" },
	[R_AUTH_BAD_RESPONSE] = { 501, "5.5.2", "Error: malformed "
	    "authentication response" },
	[R_AUTH_SYNTAX] = { 501, "5.5.4", "Syntax: AUTH mechanism "
	    "[initial-response]" },
	[R_AUTH_LINE_TOO_LONG] = { 500, "5.5.6", "Authentication Exchange "
	    "line is too long" },
	[R_AUTH_ALREADY] = { 503, "5.5.1", "Error: already authenticated" },
	[R_AUTH_IN_TX] = { 503, "5.5.1", "Error: AUTH not allowed in a mail "
	    "transaction" },
	[R_AUTH_NEED_EHLO] = { 503, "5.5.1", "Error: send EHLO first" },
	[R_AUTH_MECH] = { 504, "5.5.4", "Error: unsupported authentication "
	    "mechanism" },
	[R_AUTH_FAILED] = { 535, "5.7.8", "Authentication credentials "
	    "invalid" },
	[R_AUTH_ENCRYPT] = { 538, "5.7.11", "Encryption required for "
	    "requested authentication mechanism" },
	[R_AUTH_TEMPFAIL] = { 454, "4.7.0", "Temporary authentication "
	    "failure" },
	[R_AUTH_LOCKED] = { 421, "4.7.0", "%s Error: too many failed "
	    "authentications, closing transmission channel" },
	[R_SENDER_NOT_OWNED] = { 553, "5.7.1", "<%s>: Sender address "
	    "rejected: not owned by user %s" },
};

const struct reply_def *
reply_lookup(enum reply_id id)
{
	if ((unsigned)id >= R_COUNT)
		return NULL;
	return &replies[id];
}

size_t
reply_format(char *out, size_t outlen, enum reply_id id, va_list ap)
{
	const struct reply_def *r = reply_lookup(id);
	char text[1024];
	const char *line;
	size_t o = 0;

	if (r == NULL || r->code == 0 || outlen < 8)
		return 0;
	vsnprintf(text, sizeof(text), r->text, ap);
	line = text;
	for (;;) {
		const char *nl = strchr(line, '\n');
		size_t llen = nl ? (size_t)(nl - line) : strlen(line);
		int n;

		n = snprintf(out + o, outlen - o, "%03d%c%s%s%.*s\r\n",
		    r->code, nl ? '-' : ' ', r->esc ? r->esc : "",
		    r->esc ? " " : "", (int)llen, line);
		if (n < 0 || (size_t)n >= outlen - o) {
			/* cut: end what fits with CRLF */
			o = outlen - 1 >= 2 ? outlen - 3 : 0;
			out[o++] = '\r';
			out[o++] = '\n';
			out[o] = '\0';
			return o;
		}
		o += (size_t)n;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return o;
}

size_t
reply_formatf(char *out, size_t outlen, enum reply_id id, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, id);
	n = reply_format(out, outlen, id, ap);
	va_end(ap);
	return n;
}
