/*
 * smtp_session.c - one SMTP server session: the command table, the
 * session and transaction state, pipelined replies, DATA and BDAT, all
 * as a state machine the worker's event loop drives (smtp_session.h).
 *
 * Security stance: the client is hostile.  Input lives in one buffer of
 * fixed size; a command line longer than the limit is refused and skipped,
 * never grown into.  Replies wait in a buffer capped by
 * limits.output_buffer: a client that does not read them is dropped, it
 * cannot make the worker hold more.  Message data is scanned and streamed
 * to the queue runner in bounded chunks, never held whole.  Each command
 * has a deadline (not a per-read timeout); DATA and each BDAT chunk have
 * one for the whole and an idle limit (command_timeout without a byte);
 * the session a bound on its life without a message; stress mode cuts
 * every idle limit.  Commands that move no mail are counted and cut off.
 * Lines end in CRLF only; a bare CR or LF is refused in commands and in
 * data (SMTP smuggling).  Client text reaches the log only through
 * log_sanitize.  This code runs without privileges in an empty chroot.
 * Nothing here blocks, on the client, the runner or anvil: a session
 * waits by returning to the loop with what it waits for (anvil's MAIL
 * and AUTH checks park it in ST_ANVIL, reading nothing from the client,
 * until smtp_session_anvil_answer).
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "anvil_client.h"
#include "auth_users.h"
#include "config.h"
#include "envelope.h"
#include "intake_client.h"
#include "log.h"
#include "netaddr.h"
#include "route_caps.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "smtp_reply.h"
#include "smtp_session.h"
#include "tls_server.h"
#include "util.h"
#include "worker_counters.h"

#define IO_CHUNK   65536      /* socket reads and chunks to the runner */
/* The Received header's room: content scanned while the runner's answer
 * to BEGIN is on its way stays below IO_CHUNK - TX_HEADER_ROOM. */
#define TX_HEADER_ROOM 1536
#define OUT_SOFT   16384      /* pending replies: write out beyond this */
#define OUT_FIRST  2048       /* the reply buffer's first size */
#define TURN_READS 16         /* reads in one turn before others get theirs */
#define CLOSE_GRACE_MS 2000   /* for the last reply */
#define ANVIL_BACKSTOP_MS 500 /* past the anvil client's own deadline */
#define QUEUE_HIGH (4 * IO_CHUNK)   /* unsent to the runner: stop reading */
/* RFC 4954 4: a server should take AUTH lines of at least 12288 octets */
#define AUTH_LINE_MAX (12288 + 2)
#define AUTH_DECODED_MAX (AUTH_LINE_MAX / 4 * 3)

/* The mail transaction: reset by RSET, HELO/EHLO and the end of data. */
struct smtp_tx {
	int active;                  /* MAIL accepted */
	struct smtp_mail_args mail;
	struct envelope env;         /* accepted recipients */
	int rcpt_tried;              /* RCPT commands in this transaction */
	/* data phase */
	int bdat;                    /* BDAT used in this transaction */
	int begun;                   /* runner knows it; qid valid */
	int failed;                  /* refused; the reply is in fail_* */
	enum reply_id fail_reply;
	char qid[32];
	uint64_t size;               /* bytes of message stored */
	uint64_t client_bytes;       /* bytes the client sent as content */
	int too_big;
	int queue_broken;            /* the runner failed mid-stream */
	int begin_pending;           /* DATA: BEGIN sent, 354 given, the
	                                runner's answer not read yet */
	int data_ended;              /* the end of data came first */
	struct data_scanner scan;
	uint8_t *chunk;              /* pending chunk for the runner */
	size_t chunk_len;
};

enum close_reason { OPEN = 0, CLOSE_QUIT, CLOSE_EOF, CLOSE_TIMEOUT,
    CLOSE_ERRORS, CLOSE_SHUTDOWN, CLOSE_IOERR, CLOSE_PROTOCOL,
    CLOSE_LIMIT, CLOSE_TLS, CLOSE_AUTH_LOCKED, CLOSE_JUNK, CLOSE_LIFETIME,
    CLOSE_OUTPUT, CLOSE_QUEUE };

/* Where the session is; each state says what it waits for. */
enum session_state {
	ST_GREET_WAIT,     /* limits.greet_pause: does the client talk first? */
	ST_HANDSHAKE,      /* TLS handshake: implicit, or after STARTTLS */
	ST_COMMAND,        /* command lines */
	ST_AUTH,           /* an AUTH response line */
	ST_DATA,           /* message content after DATA */
	ST_BDAT,           /* the octets of a BDAT chunk */
	ST_QUEUE,          /* the runner's answer to BEGIN or COMMIT */
	ST_ANVIL,          /* anvil's answer to the MAIL or AUTH check */
	ST_QUEUE_CHECK,    /* a new connection's first note from the runner,
	                      before the greeting or MAIL's answer */
	ST_CLOSING,        /* the last reply going out */
	ST_DONE
};

/* What the runner's first note resumes (ST_QUEUE_CHECK). */
enum check_then { CHECK_GREETING, CHECK_MAIL };

/* What the runner's answer resumes. */
enum queue_then { Q_BEGIN_DATA, Q_BEGIN_BDAT, Q_COMMIT, Q_BEGIN_LATE };

/* What anvil's answer resumes. */
enum anvil_then { A_MAIL, A_AUTH };

/* What follows the octets of a BDAT chunk. */
enum bdat_then { BDAT_TLS_REQUIRED, BDAT_REFUSED, BDAT_STORED };

/* An AUTH exchange in progress (RFC 4954). */
struct auth_state {
	int plain;                   /* PLAIN, else LOGIN */
	int step;                    /* LOGIN: 0 the user, 1 the password */
	uint8_t *buf;                /* decoded response */
	size_t blen;
	char *pass;
	char user[AUTH_USER_MAX + 1];
};

struct smtp_session {
	const struct ferry_config *cfg;
	struct intake_client intake; /* this session's link to the runner */
	struct intake_client *queue; /* &intake */
	struct session_control *control;
	int fd;
	char peer_addr[64];
	char peer_name[256];         /* confirmed name, or "unknown" */
	const char *listener;
	struct anvil_client *anvil;  /* shared limits; NULL = none */
	uint32_t anvil_owner;        /* who this session is to anvil */
	enum anvil_then anvil_then;  /* ST_ANVIL: what the answer resumes */
	struct smtp_mail_args anvil_mail;    /* A_MAIL: the MAIL accepted so
	                                        far, waiting for the check */
	int64_t anvil_deadline;      /* ST_ANVIL: a backstop to the client's
	                                own deadline */

	/* the listener's policy and what the client has shown so far */
	const struct listener_config *lcfg;   /* NULL: plain, no AUTH */
	int auth_seen;               /* an AUTH command came: the input
	                                buffer may have held credentials */
	struct tls_server *tls_ctx;  /* NULL: no TLS on this listener */
	const struct auth_users *users;
	struct server_conn conn;            /* every read and write goes here */
	int tls_active;
	struct tls_info tls;         /* valid when tls_active */
	int implicit_tls;            /* the handshake comes before the greeting */
	int relay_client;            /* in the listener's relay_networks */
	int ccert_relay;             /* verified certificate allows relay */
	int auth_plaintext_ok;       /* in auth_plaintext_networks */
	char auth_user[AUTH_USER_MAX + 1];   /* "" until AUTH succeeds */
	const struct auth_user *auth_entry;
	int auth_exchange;           /* reading AUTH responses */
	struct auth_state *auth;     /* the exchange in progress */

	char helo[256];
	int helo_seen, esmtp;
	struct smtp_tx tx;

	enum session_state state;
	uint8_t *in;                 /* unread client input */
	size_t in_len, in_cap;
	int skipping;                /* discarding an over-long line */
	uint8_t *scan_out;           /* DATA/BDAT: scanner output */
	uint64_t bdat_size;          /* the chunk's announced size */
	uint64_t bdat_left;          /* octets of the chunk still to come */
	int bdat_store;              /* scan and store them */
	int bdat_last;
	enum bdat_then bdat_then;
	enum queue_then queue_then;  /* ST_QUEUE: what the answer resumes */
	int queue_retry;             /* BEGIN on a kept connection: one
	                                more try on a fresh one */
	int queue_blocked;           /* data waits for the runner to read */
	int64_t queue_deadline;      /* ST_QUEUE */
	enum check_then check_then;  /* ST_QUEUE_CHECK: what it resumes */
	int64_t check_deadline;      /* ST_QUEUE_CHECK */
	enum intake_verdict check_verdict;   /* the last check's */

	char *out;                   /* pending replies */
	size_t out_len, out_cap;
	int more;                    /* turn over with work left */

	/* deadlines, now_ms() clock */
	int64_t idle_since;          /* the wait for this command began, or
	                                the last data byte came */
	int64_t data_deadline;       /* the whole message, or BDAT chunk */
	int64_t life_deadline;       /* session_lifetime since the start or
	                                the last message accepted */
	int64_t greet_deadline;      /* ST_GREET_WAIT */
	int64_t close_deadline;      /* ST_CLOSING */

	int errors;
	unsigned junk;               /* rounds of commands that moved no
	                                mail since the last message */
	unsigned reads;              /* reads from the client so far */
	int drained;                 /* a plain read found nothing more: wait
	                                for poll (smtp_session_readable)
	                                rather than try again */
	unsigned junk_read;          /* the read the last junk came in */
	enum close_reason closing;
	int shutdown_sent;
	unsigned counts[VERB_MAX];   /* commands seen, for the last log line */
	unsigned total_commands;
};

/* ---------------------------------------------------------------- I/O */

static void
consume_in(struct smtp_session *s, size_t n)
{
	memmove(s->in, s->in + n, s->in_len - n);
	s->in_len -= n;
}

/* Writes what the socket takes now.  0 (maybe with replies left), -1
 * when the connection is lost (then nothing more is written). */
static int
try_flush(struct smtp_session *s)
{
	size_t off = 0;
	int rc = 0;

	while (off < s->out_len) {
		ssize_t n = conn_write(&s->conn, s->out + off,
		    s->out_len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == CONN_AGAIN)
			break;
		if (s->closing == OPEN)
			s->closing = CLOSE_IOERR;
		off = s->out_len;
		rc = -1;
	}
	if (off > 0) {
		memmove(s->out, s->out + off, s->out_len - off);
		s->out_len -= off;
	}
	return rc;
}

/* The session waits for its next command from now on. */
static void
arm_command(struct smtp_session *s)
{
	s->idle_since = now_ms();
	s->data_deadline = 0;
}

/* ------------------------------------------------------------- replies */

/* The client as a log line's field: "name[address]". */
#define SESSION_CLIENT_MAX (256 + 64 + 2)
static const char *
session_client(const struct smtp_session *s, char *out, size_t len)
{
	snprintf(out, len, "%s[%s]", s->peer_name, s->peer_addr);
	return out;
}

static int
counts_as_error(enum reply_id id, int code)
{
	switch (id) {
	case R_TOO_MANY_RCPTS:
	case R_STORE_FAILED:
	case R_QUEUE_UNAVAILABLE:
	case R_QUEUE_CLOSED:
	case R_INSUFFICIENT_STORAGE:
	case R_SHUTDOWN:
	case R_TIMEOUT:
	case R_TOO_MANY_ERRORS:
	/* what the next hop cannot take is no error of the client's */
	case R_SIZE_ROUTE:
	case R_SIZE_EVERY_ROUTE:
	case R_SIZE_RCPT_ROUTES:
	case R_SMTPUTF8_ROUTE:
	case R_8BITMIME_ROUTE:
		return 0;
	default:
		return code >= 400;
	}
}


/* The one exit for replies.  Queues the reply (sent when input runs out,
 * RFC 2920), logs refusals, and counts client errors.  Replies a client
 * leaves unread beyond limits.output_buffer end the session. */
static void
smtp_reply(struct smtp_session *s, enum reply_id id, ...)
{
	const struct reply_def *def = reply_lookup(id);
	char line[1200];
	size_t n, cap = (size_t)s->cfg->output_buffer;
	va_list ap;

	va_start(ap, id);
	n = reply_format(line, sizeof(line), id, ap);
	va_end(ap);
	if (n == 0)
		log_panic("reply %d has no text", (int)id);
	wcount_reply((int)id);
	if (s->closing == CLOSE_IOERR || s->closing == CLOSE_OUTPUT)
		return;
	if (s->out_len + n > OUT_SOFT && s->state != ST_HANDSHAKE &&
	    try_flush(s) < 0)
		return;
	if (s->out_len + n > cap) {
		log_warn("%s[%s] does not read its replies: %zu octets unread; "
		    "dropping the connection", s->peer_name, s->peer_addr,
		    s->out_len);
		s->closing = CLOSE_OUTPUT;
		s->out_len = 0;
		return;
	}
	if (s->out_len + n > s->out_cap) {
		size_t ncap = s->out_cap ? s->out_cap : OUT_FIRST;

		while (ncap < s->out_len + n)
			ncap *= 2;
		if (ncap > cap)
			ncap = cap;
		s->out = xrealloc(s->out, ncap);
		s->out_cap = ncap;
	}
	memcpy(s->out + s->out_len, line, n);
	s->out_len += n;
	if (def->code >= 400) {
		char safe[1200], reason[1024], client[SESSION_CLIENT_MAX];
		struct log_fields f = {
			.event = "reject",
			.qid = s->tx.qid[0] ? s->tx.qid : NULL,
			.client = session_client(s, client, sizeof(client)),
		};

		snprintf(reason, sizeof(reason), "%.*s", (int)(n - 2), line);
		f.reason = reason;
		log_event(LOG_INFO, &f, "%s%sreject: from %s[%s]: %s",
		    s->tx.qid[0] ? s->tx.qid : "", s->tx.qid[0] ? ": " : "",
		    s->peer_name, s->peer_addr,
		    log_sanitize(safe, sizeof(safe), line, n - 2));
		if (counts_as_error(id, def->code))
			s->errors++;
	}
}

/* ---------------------------------------------------------- transaction */

static void
tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if (tx->begun && s->queue != NULL)
		intake_send_abort(s->queue);
	if (tx->begin_pending && s->queue != NULL)
		/* its answer would come where the next one is awaited */
		intake_drop(s->queue, "a message ended before the runner "
		    "answered its BEGIN");
	envelope_free(&tx->env);
	free(tx->chunk);
	memset(tx, 0, sizeof(*tx));
	envelope_init(&tx->env);
}

/* RFC 3848 (ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 (UTF8...). */
static const char *
protocol_name(struct smtp_session *s)
{
	static char name[16];

	snprintf(name, sizeof(name), "%s%s%s%s",
	    s->tx.mail.smtputf8 ? "UTF8" : "", s->esmtp ? "ESMTP" : "SMTP",
	    s->esmtp && s->tls_active ? "S" : "",
	    s->esmtp && s->auth_user[0] ? "A" : "");
	return name;
}

static void
tx_fail(struct smtp_session *s, enum reply_id id)
{
	if (!s->tx.failed) {
		s->tx.failed = 1;
		s->tx.fail_reply = id;
		if (s->tx.begun && s->queue != NULL) {
			intake_send_abort(s->queue);
			s->tx.begun = 0;
		}
	}
}

/* Sends the pending chunk to the runner; with hold, only queues it for
 * the COMMIT that follows to write. */
static void
tx_flush_chunk(struct smtp_session *s, int hold)
{
	struct smtp_tx *tx = &s->tx;

	if (tx->begin_pending && !tx->failed)
		log_panic("content would go to the runner before its header");
	if (tx->chunk_len == 0 || tx->failed || !tx->begun)
		goto out;
	if ((hold ? intake_hold_data(s->queue, tx->chunk, tx->chunk_len) :
	    intake_send_data(s->queue, tx->chunk, tx->chunk_len)) < 0) {
		log_warn("%s: queue runner: %s", tx->qid, s->queue->reason);
		tx->queue_broken = 1;
		tx->begun = 0;
		tx_fail(s, R_STORE_FAILED);
	}
out:
	tx->chunk_len = 0;
}

static void
tx_add(struct smtp_session *s, const uint8_t *p, size_t n)
{
	struct smtp_tx *tx = &s->tx;

	tx->size += n;
	if (tx->failed)
		return;
	while (n > 0) {
		size_t room = IO_CHUNK - tx->chunk_len;
		size_t take = n < room ? n : room;

		memcpy(tx->chunk + tx->chunk_len, p, take);
		tx->chunk_len += take;
		p += take;
		n -= take;
		if (tx->chunk_len == IO_CHUNK)
			tx_flush_chunk(s, 0);
	}
}

static void tx_fill_envelope(struct smtp_session *s);

/* The session waits for the runner's answer. */
static void
queue_wait(struct smtp_session *s, enum queue_then then)
{
	s->state = ST_QUEUE;
	s->queue_then = then;
	s->queue_deadline = now_ms() + (int64_t)s->cfg->command_timeout * 1000;
}

/* Asks the runner to start the message; its answer resumes the session
 * (tx_begun).  -1 when it cannot be asked. */
static int
tx_begin_send(struct smtp_session *s, enum queue_then then)
{
	struct smtp_tx *tx = &s->tx;

	s->queue_retry = intake_fd(s->queue) >= 0;
	if (tx->env.sender == NULL)
		tx_fill_envelope(s);
	if (intake_send_begin(s->queue, &tx->env) < 0 && (!s->queue_retry ||
	    (s->queue_retry = 0, intake_send_begin(s->queue, &tx->env) < 0))) {
		/* (a kept connection to a runner since gone: one more
		 * try on a fresh one) */
		log_warn("queue runner refused a new message from %s[%s]: %s",
		    s->peer_name, s->peer_addr, s->queue->reason);
		return -1;
	}
	if (then != Q_BEGIN_DATA)
		queue_wait(s, then);
	return 0;
}

/* The content's scanner and the chunk it fills. */
static void
tx_scan_start(struct smtp_session *s, enum data_mode mode)
{
	struct smtp_tx *tx = &s->tx;

	tx->chunk = xmalloc(IO_CHUNK);
	data_scanner_init(&tx->scan, mode,
	    (size_t)s->cfg->max_data_line_length);
}

/* The runner took the message: its queue id in the log and in the
 * Received header, which goes before any content already scanned. */
static void
tx_begun_header(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	char hdr[TX_HEADER_ROOM], date[64], tlsline[200];
	int n;

	tx->begun = 1;
	{
		char client[SESSION_CLIENT_MAX];
		struct log_fields f = { .event = "client", .qid = tx->qid,
		    .helo = s->helo };

		f.client = session_client(s, client, sizeof(client));
		log_event(LOG_INFO, &f, "%s: client=%s[%s]", tx->qid,
		    s->peer_name, s->peer_addr);
	}

	rfc5322_date(date, sizeof(date), time(NULL));
	/* like Postfix: "(using TLSv1.3 with cipher X (256/256 bits))" */
	tlsline[0] = '\0';
	if (s->tls_active)
		snprintf(tlsline, sizeof(tlsline), "\t(using %s with cipher %s "
		    "(%d/%d bits))\r\n", s->tls.version, s->tls.cipher,
		    s->tls.bits, s->tls.alg_bits);
	if (tx->env.nrcpts == 1)
		n = snprintf(hdr, sizeof(hdr),
		    "Received: from %s (%s [%s])\r\n%s"
		    "\tby %s (ferry) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", s->helo, s->peer_name,
		    s->peer_addr, tlsline, s->cfg->hostname, protocol_name(s),
		    tx->qid, tx->env.rcpts[0].addr, date);
	else
		n = snprintf(hdr, sizeof(hdr),
		    "Received: from %s (%s [%s])\r\n%s"
		    "\tby %s (ferry) with %s id %s;\r\n\t%s\r\n", s->helo,
		    s->peer_name, s->peer_addr, tlsline, s->cfg->hostname,
		    protocol_name(s), tx->qid, date);
	if (n < 0 || (size_t)n >= sizeof(hdr) ||
	    tx->chunk_len + (size_t)n > IO_CHUNK)
		log_panic("Received header does not fit");
	memmove(tx->chunk + n, tx->chunk, tx->chunk_len);
	memcpy(tx->chunk, hdr, (size_t)n);
	tx->chunk_len += (size_t)n;
	tx->size += (uint64_t)n;
	if (tx->chunk_len == IO_CHUNK)
		tx_flush_chunk(s, 0);
}

/* The runner took the message (BDAT): the scanner and the header. */
static void
tx_begun(struct smtp_session *s, enum data_mode mode)
{
	tx_scan_start(s, mode);
	tx_begun_header(s);
}

/* The envelope the runner gets with BEGIN. */
static void
tx_fill_envelope(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	tx->env.sender = xstrdup(tx->mail.addr);
	tx->env.client_addr = xstrdup(s->peer_addr);
	tx->env.client_name = xstrdup(s->peer_name);
	tx->env.helo = xstrdup(s->helo);
	tx->env.protocol = xstrdup(protocol_name(s));
	tx->env.auth_user = xstrdup(s->auth_user);
	tx->env.no_dkim = s->lcfg != NULL && !s->lcfg->dkim;
	tx->env.received_at_us = (int64_t)(now_wall() * 1e6);
	tx->env.size_declared = tx->mail.size;
	tx->env.body_type = (uint32_t)tx->mail.body;
	tx->env.smtputf8 = (uint32_t)tx->mail.smtputf8;
	tx->env.dsn_ret = (uint32_t)tx->mail.ret;
	tx->env.dsn_envid = xstrdup(tx->mail.envid);
}

/* Checks the scanned content against the limits; refuses the message
 * (aborting it at the runner) on the first violation. */
static void
tx_check_limits(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	unsigned f = data_scanner_flags(&tx->scan);

	if (tx->failed)
		return;
	if (tx->scan.out_bytes > (uint64_t)s->cfg->message_size_limit)
		tx_fail(s, R_SIZE_EXCEEDED);
	else if (f & (DATA_BARE_CR | DATA_BARE_LF))
		tx_fail(s, R_DATA_BARE_NEWLINE);
	else if (f & DATA_LONG_LINE)
		tx_fail(s, R_DATA_LINE_TOO_LONG);
}

static void
tx_fail_reply(struct smtp_session *s)
{
	switch (s->tx.fail_reply) {
	case R_SIZE_EXCEEDED:
		smtp_reply(s, R_SIZE_EXCEEDED,
		    (long long)s->cfg->message_size_limit);
		break;
	case R_DATA_LINE_TOO_LONG:
		smtp_reply(s, R_DATA_LINE_TOO_LONG,
		    s->cfg->max_data_line_length);
		break;
	default:
		smtp_reply(s, s->tx.fail_reply);
		break;
	}
}


/* The runner's answer to COMMIT (or its absence): the reply, and the
 * transaction is over. */
static void
tx_committed(struct smtp_session *s, int stored)
{
	struct smtp_tx *tx = &s->tx;

	tx->begun = 0;   /* stored, or nothing to abort */
	if (stored) {
		smtp_reply(s, R_QUEUED, tx->qid);
		/* mail moved: the session may live on */
		s->junk = 0;
		s->life_deadline = now_ms() +
		    (int64_t)s->cfg->session_lifetime * 1000;
	} else {
		log_warn("%s: not stored: %s", tx->qid, s->queue->reason);
		smtp_reply(s, R_STORE_FAILED);
	}
	tx_reset(s);
	free(s->scan_out);
	s->scan_out = NULL;
	s->state = ST_COMMAND;
	arm_command(s);
}

/* The upstream capabilities of the route a recipient at addr takes,
 * NULL when unknown (route_caps.h). */
static const struct route_caps *
rcpt_route_caps(struct smtp_session *s, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return route_caps_for(s->cfg, &s->queue->routes, s->tx.mail.addr,
	    at != NULL ? at + 1 : "");
}

/* After the data: 1 when the message is over the known SIZE of the
 * route of every recipient, so that none could be delivered. */
static int
data_over_every_route(struct smtp_session *s)
{
	const struct route_caps **caps;
	size_t i, n = s->tx.env.nrcpts;
	int over;

	if (n == 0)
		return 0;
	caps = xcalloc(n, sizeof(*caps));
	for (i = 0; i < n; i++)
		caps[i] = rcpt_route_caps(s, s->tx.env.rcpts[i].addr);
	over = route_caps_check_data(caps, n, s->tx.size) != RCV_OK;
	free(caps);
	return over;
}

/* The end of the message: commit (the runner's answer resumes the
 * session in tx_committed), or answer the refusal. */
static void
tx_finish_message(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	tx_check_limits(s);
	if (!tx->failed && data_over_every_route(s))
		tx_fail(s, R_SIZE_RCPT_ROUTES);
	if (!tx->failed) {
		tx_flush_chunk(s, 1);
	}
	if (!tx->failed) {
		if (intake_send_commit(s->queue, tx->size) == 0) {
			queue_wait(s, Q_COMMIT);
			return;
		}
		tx_committed(s, 0);
		return;
	}
	tx_fail_reply(s);
	tx_reset(s);
	free(s->scan_out);
	s->scan_out = NULL;
	s->state = ST_COMMAND;
	arm_command(s);
}

/* --------------------------------------------------------------- lines */

enum line_result { LINE_OK, LINE_NEED, LINE_CLOSED, LINE_SKIPPED };

/* Takes one command line (without CRLF) from the input buffer into line
 * and len; LINE_NEED when no whole line is there yet.  Lines that are
 * too long or hold a bare CR or LF are answered here and skipped.
 * During an AUTH exchange lines may be longer (RFC 4954 4), and such a
 * line ends the exchange instead: LINE_SKIPPED. */
static enum line_result
next_line(struct smtp_session *s, char **line, size_t *len)
{
	size_t max = (size_t)s->cfg->max_line_length;

	if (s->auth_exchange && max < AUTH_LINE_MAX)
		max = AUTH_LINE_MAX;

	for (;;) {
		uint8_t *crlf = NULL;
		size_t i;

		/* Find the CRLF that ends the line. */
		for (i = 0; i + 1 < s->in_len; i++) {
			uint8_t *p = memchr(s->in + i, '\r', s->in_len - i - 1);

			if (p == NULL)
				break;
			if (p[1] == '\n') {
				crlf = p;
				break;
			}
			i = (size_t)(p - s->in);
		}
		if (crlf != NULL) {
			size_t l = (size_t)(crlf - s->in);

			if (s->skipping) {
				s->skipping = 0;
				consume_in(s, l + 2);
				continue;
			}
			if (memchr(s->in, '\n', l) != NULL ||
			    memchr(s->in, '\r', l) != NULL) {
				smtp_reply(s, R_BARE_NEWLINE_CMD);
				consume_in(s, l + 2);
				if (s->errors >= s->cfg->max_errors) {
					s->closing = CLOSE_ERRORS;
					return LINE_CLOSED;
				}
				if (s->auth_exchange)
					return LINE_SKIPPED;
				continue;
			}
			if (l + 2 > max) {
				if (s->auth_exchange)
					smtp_reply(s, R_AUTH_LINE_TOO_LONG);
				else
					smtp_reply(s, R_LINE_TOO_LONG, (int)max);
				consume_in(s, l + 2);
				if (s->errors >= s->cfg->max_errors) {
					s->closing = CLOSE_ERRORS;
					return LINE_CLOSED;
				}
				if (s->auth_exchange)
					return LINE_SKIPPED;
				continue;
			}
			crlf[0] = '\0';
			*line = (char *)s->in;
			*len = l;
			return LINE_OK;
		}
		/* No complete line.  Too much without one: refuse it and
		 * skip to the next CRLF (keep a trailing CR, it may be the
		 * first half). */
		if (s->in_len > 0 &&
		    (s->in_len >= max || s->in_len == s->in_cap)) {
			size_t keep = s->in[s->in_len - 1] == '\r' ? 1 : 0;

			if (!s->skipping) {
				if (s->auth_exchange)
					smtp_reply(s, R_AUTH_LINE_TOO_LONG);
				else
					smtp_reply(s, R_LINE_TOO_LONG, (int)max);
				s->skipping = 1;
				if (s->errors >= s->cfg->max_errors) {
					s->closing = CLOSE_ERRORS;
					return LINE_CLOSED;
				}
			}
			consume_in(s, s->in_len - keep);
			if (s->auth_exchange)
				return LINE_SKIPPED;
		}
		return LINE_NEED;
	}
}

/* ------------------------------------------------------------ commands */

/* STARTTLS is offered on starttls listeners until TLS is up. */
static int
starttls_offered(const struct smtp_session *s)
{
	return s->lcfg != NULL && s->lcfg->tls == LTLS_STARTTLS &&
	    s->tls_ctx != NULL && !s->tls_active;
}

/* The listener does AUTH at all. */
static int
auth_enabled(const struct smtp_session *s)
{
	return s->lcfg != NULL && s->lcfg->auth && s->users != NULL;
}

/* AUTH is offered under TLS only, or to auth_plaintext_networks. */
static int
auth_offered(const struct smtp_session *s)
{
	return auth_enabled(s) && (s->tls_active || s->auth_plaintext_ok);
}

static void
cmd_helo(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	char name[256];

	if (smtp_parse_helo(arg, len, name, sizeof(name)) < 0) {
		smtp_reply(s, R_SYNTAX_HELO, smtp_verb_name(verb));
		return;
	}
	tx_reset(s);
	ferry_strlcpy(s->helo, name, sizeof(s->helo));
	s->helo_seen = 1;
	s->esmtp = verb == VERB_EHLO;
	if (verb == VERB_HELO) {
		smtp_reply(s, R_HELO, s->cfg->hostname);
		return;
	}
	{
		char ext[512];

		/* the smallest of ours and the known upstreams' */
		intake_read_notes(s->queue);
		snprintf(ext, sizeof(ext), "%s\nPIPELINING\nSIZE %llu\n"
		    "8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nDSN\nCHUNKING%s%s",
		    s->cfg->hostname, (unsigned long long)
		    route_caps_advertised_size(s->cfg, &s->queue->routes,
		    (uint64_t)s->cfg->message_size_limit),
		    starttls_offered(s) ? "\nSTARTTLS" : "",
		    auth_offered(s) ? "\nAUTH PLAIN LOGIN" : "");
		smtp_reply(s, R_HELO, ext);
	}
}

/* Parked until anvil answers: the client is not read meanwhile, so
 * what it pipelined waits its turn. */
static void
anvil_wait(struct smtp_session *s, enum anvil_then then)
{
	s->state = ST_ANVIL;
	s->anvil_then = then;
	s->anvil_deadline = now_ms() + ANVIL_DEADLINE_MS + ANVIL_BACKSTOP_MS;
}

/* MAIL passed every check but anvil's message rate, whose answer is
 * result. */
static void
mail_rated(struct smtp_session *s, const struct smtp_mail_args *m,
    int result)
{
	if (result == ANVIL_MESSAGE_RATE) {
		log_warn("refusing a message from %s[%s]: message rate "
		    "limit exceeded", s->peer_name, s->peer_addr);
		smtp_reply(s, R_MESSAGE_RATE, s->cfg->hostname, s->peer_addr);
		s->closing = CLOSE_LIMIT;
		return;
	}
	tx_reset(s);
	s->tx.mail = *m;
	s->tx.active = 1;
	smtp_reply(s, R_SENDER_OK, m->addr);
}

/* What the runner's last word says for a new session or transaction
 * (intake_queue_check).  INTAKE_QUEUE_WAIT puts the session in
 * ST_QUEUE_CHECK until the note comes or the runner is taken for down. */
static enum intake_verdict
queue_check(struct smtp_session *s, enum check_then then)
{
	int64_t until = 0;

	s->check_verdict = intake_queue_check(s->queue, now_ms(), &until);
	if (s->check_verdict == INTAKE_QUEUE_WAIT) {
		s->state = ST_QUEUE_CHECK;
		s->check_then = then;
		s->check_deadline = until;
	}
	return s->check_verdict;
}

static enum intake_verdict
queue_check_last(const struct smtp_session *s)
{
	return s->check_verdict;
}

/* MAIL's answer once the queue's state is known: 452 4.3.1 below
 * queue { min_free } or for a declared SIZE above the room left, 451
 * 4.3.0 while the queue is unavailable - before any data is sent. */
static void
mail_checked(struct smtp_session *s, enum intake_verdict v)
{
	struct smtp_tx *tx = &s->tx;
	struct smtp_mail_args m;

	s->state = ST_COMMAND;
	arm_command(s);
	switch (v) {
	case INTAKE_QUEUE_OK:
		if (tx->mail.size > 0 &&
		    (uint64_t)tx->mail.size > s->queue->queue_headroom) {
			smtp_reply(s, R_INSUFFICIENT_STORAGE);
			break;
		}
		/* no route's upstream could take the declared size */
		if (tx->mail.size > 0 && route_caps_check_mail(s->cfg,
		    &s->queue->routes, tx->mail.addr,
		    (uint64_t)tx->mail.size) != RCV_OK) {
			smtp_reply(s, R_SIZE_EVERY_ROUTE);
			break;
		}
		m = tx->mail;
		if (s->anvil != NULL && anvil_ask_message(s->anvil,
		    s->anvil_owner, s->peer_addr)) {
			s->anvil_mail = m;
			anvil_wait(s, A_MAIL);
			return;
		}
		mail_rated(s, &m, ANVIL_OK);
		return;
	case INTAKE_QUEUE_LOW_SPACE:
		smtp_reply(s, R_INSUFFICIENT_STORAGE);
		break;
	default:
		log_warn("queue unavailable for a message from %s[%s]: %s",
		    s->peer_name, s->peer_addr, s->queue->reason);
		smtp_reply(s, R_QUEUE_UNAVAILABLE);
		break;
	}
	tx_reset(s);
}

static void
cmd_mail(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	struct smtp_mail_args m;

	(void)verb;
	if (!s->helo_seen) {
		smtp_reply(s, R_NEED_HELO);
		return;
	}
	if (s->tx.active) {
		smtp_reply(s, R_NESTED_MAIL);
		return;
	}
	switch (smtp_parse_mail(arg, len, s->esmtp ? PARSE_ESMTP : 0, &m)) {
	case PARSE_OK:
		break;
	case PARSE_BAD_SENDER:
		smtp_reply(s, R_BAD_SENDER);
		return;
	case PARSE_TOO_LONG:
		smtp_reply(s, R_ADDR_TOO_LONG);
		return;
	case PARSE_NON_ASCII:
		smtp_reply(s, R_NON_ASCII_ADDR);
		return;
	case PARSE_UNKNOWN_PARAM:
	case PARSE_PARAM_NO_ESMTP:
		smtp_reply(s, R_PARAM_UNKNOWN);
		return;
	case PARSE_BAD_PARAM:
		smtp_reply(s, R_PARAM_BAD);
		return;
	case PARSE_DUP_PARAM:
		smtp_reply(s, R_PARAM_DUP);
		return;
	default:
		smtp_reply(s, R_SYNTAX_MAIL);
		return;
	}
	if (m.size > s->cfg->message_size_limit) {
		smtp_reply(s, R_SIZE_EXCEEDED,
		    (long long)s->cfg->message_size_limit);
		return;
	}
	if (s->auth_entry != NULL && !auth_user_may_send(s->auth_entry,
	    m.addr)) {
		smtp_reply(s, R_SENDER_NOT_OWNED, m.addr, s->auth_user);
		return;
	}
	tx_reset(s);
	s->tx.mail = m;
	/* the queue's state before anything else is sent (the runner's
	 * first note may still be on its way: the answer waits for it) */
	if (queue_check(s, CHECK_MAIL) != INTAKE_QUEUE_WAIT)
		mail_checked(s, queue_check_last(s));
}

/* relay.accept_domains: "example.com" exactly, ".example.com" any
 * subdomain; ASCII case-insensitive.  "*" is never a wildcard here: it
 * would open the relay. */
static int
domain_accepted(const struct ferry_config *cfg, const char *domain)
{
	size_t dl = strlen(domain), i;

	for (i = 0; i < cfg->naccept_domains; i++) {
		const char *a = cfg->accept_domains[i];
		size_t al = strlen(a);

		if (a[0] == '.') {
			if (dl > al && strcasecmp(domain + dl - al, a) == 0)
				return 1;
		} else if (strcasecmp(domain, a) == 0)
			return 1;
	}
	return 0;
}

/*
 * The relay policy for one recipient (a mailbox the parser accepted, its
 * source route already dropped).  Trusted clients - in the listener's
 * relay_networks, authenticated, or with a verified certificate the
 * listener names - may send anywhere.  Everyone else only to
 * relay.accept_domains, judged on the domain after the last "@" (the
 * parser allows no "@" or quote in a domain, so that is the real one),
 * and never with a local part holding "%", "!" or "@": a next hop might
 * route on those (percent hack, bang path, quoted "user@dest").
 */
static int
relay_permitted(struct smtp_session *s, const char *addr)
{
	const char *at = strrchr(addr, '@'), *p;

	if (s->relay_client || s->auth_user[0] != '\0' || s->ccert_relay)
		return 1;
	if (at == NULL || at == addr)
		return 0;            /* Postmaster: no local delivery here */
	for (p = addr; p < at; p++)
		if (*p == '%' || *p == '!' || *p == '@')
			return 0;
	return domain_accepted(s->cfg, at + 1);
}

/* Refuses a recipient whose route's upstream cannot take what MAIL
 * declared (its SIZE, SMTPUTF8, BODY=8BITMIME): the delivery agent
 * would fail it before MAIL, so it is told now rather than bounced.
 * Unknown capabilities accept.  1 when refused. */
static int
rcpt_route_refuses(struct smtp_session *s, const char *addr)
{
	struct route_caps_need need;

	/* (the runner's notes were read at MAIL, moments ago) */
	need.size = s->tx.mail.size > 0 ? (uint64_t)s->tx.mail.size : 0;
	need.smtputf8 = s->tx.mail.smtputf8;
	need.eightbit = s->tx.mail.body == BODY_8BITMIME;
	switch (route_caps_check_rcpt(rcpt_route_caps(s, addr), &need)) {
	case RCV_SIZE:
		smtp_reply(s, R_SIZE_ROUTE, addr);
		return 1;
	case RCV_SMTPUTF8:
		smtp_reply(s, R_SMTPUTF8_ROUTE, addr);
		return 1;
	case RCV_8BITMIME:
		smtp_reply(s, R_8BITMIME_ROUTE, addr);
		return 1;
	default:
		return 0;
	}
}

static void
cmd_rcpt(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	struct smtp_rcpt_args r;

	(void)verb;
	if (!s->tx.active) {
		smtp_reply(s, R_NEED_MAIL);
		return;
	}
	s->tx.rcpt_tried++;
	if (s->tx.env.nrcpts >= (size_t)s->cfg->max_recipients) {
		smtp_reply(s, R_TOO_MANY_RCPTS, s->cfg->max_recipients);
		return;
	}
	switch (smtp_parse_rcpt(arg, len, s->esmtp ? PARSE_ESMTP : 0,
	    s->tx.mail.smtputf8, &r)) {
	case PARSE_OK:
		break;
	case PARSE_BAD_RCPT:
		smtp_reply(s, R_BAD_RCPT);
		return;
	case PARSE_TOO_LONG:
		smtp_reply(s, R_ADDR_TOO_LONG);
		return;
	case PARSE_NON_ASCII:
		smtp_reply(s, R_NON_ASCII_ADDR);
		return;
	case PARSE_UNKNOWN_PARAM:
	case PARSE_PARAM_NO_ESMTP:
		smtp_reply(s, R_PARAM_UNKNOWN);
		return;
	case PARSE_BAD_PARAM:
		smtp_reply(s, R_PARAM_BAD);
		return;
	case PARSE_DUP_PARAM:
		smtp_reply(s, R_PARAM_DUP);
		return;
	default:
		smtp_reply(s, R_SYNTAX_RCPT);
		return;
	}
	if (!relay_permitted(s, r.addr)) {
		smtp_reply(s, R_RELAY_DENIED, r.addr);
		return;
	}
	if (rcpt_route_refuses(s, r.addr))
		return;
	envelope_add_rcpt(&s->tx.env, r.addr, r.notify, r.orcpt);
	smtp_reply(s, R_RCPT_OK, r.addr);
}

/* DATA and BDAT share these checks.  Returns 0 when a message may start. */
static int
data_allowed(struct smtp_session *s)
{
	if (!s->tx.active) {
		smtp_reply(s, R_NEED_MAIL);
		return -1;
	}
	if (s->tx.env.nrcpts == 0) {
		smtp_reply(s, s->tx.rcpt_tried ? R_NO_VALID_RCPTS :
		    R_NEED_RCPT);
		return -1;
	}
	return 0;
}


/* ---------------------------------------------------------- DATA, BDAT */

enum feed { FEED_NEED, FEED_DONE };

static void data_go(struct smtp_session *s);

static void
cmd_data(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	struct smtp_tx *tx = &s->tx;

	(void)verb;
	(void)arg;
	if (len > 0) {
		smtp_reply(s, R_SYNTAX_NOARG, "DATA");
		return;
	}
	if (tx->bdat) {
		smtp_reply(s, R_DATA_AFTER_BDAT);
		return;
	}
	if (data_allowed(s) < 0)
		return;
	/* 354 at once: the runner's answer (the queue id for the Received
	 * header, or a refusal) is read when the content has come, or
	 * when the content scanned meanwhile would fill a chunk.  Saves
	 * the worker a sleep and the client a round trip per message. */
	if (tx_begin_send(s, Q_BEGIN_DATA) < 0) {
		smtp_reply(s, R_QUEUE_UNAVAILABLE);
		return;
	}
	s->tx.begin_pending = 1;
	data_go(s);
}

/* 354 and the content. */
static void
data_go(struct smtp_session *s)
{
	int64_t now;

	s->state = ST_COMMAND;
	arm_command(s);
	tx_scan_start(s, DATA_MODE_DOT);
	smtp_reply(s, R_DATA_GO);
	now = now_ms();
	s->scan_out = xmalloc(s->in_cap + 2);
	s->state = ST_DATA;
	s->idle_since = now;
	s->data_deadline = now + (int64_t)s->cfg->data_timeout * 1000;
}

/* Scans what input there is as message content.  FEED_DONE once the
 * message has ended (and been answered) or the session must close. */
static enum feed
data_feed(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	while (s->in_len > 0) {
		size_t used = 0, outlen = 0;
		enum data_result r;
		int need_more;

		if (tx->begin_pending && !tx->failed && tx->chunk_len +
		    s->in_len + 16 > IO_CHUNK - TX_HEADER_ROOM) {
			/* the chunk must not go before the header does */
			queue_wait(s, Q_BEGIN_LATE);
			return FEED_DONE;
		}

		r = data_scan(&tx->scan, s->in, s->in_len, s->scan_out,
		    &outlen, &used);
		/* the scanner may hold back a byte it cannot judge yet */
		need_more = r == DATA_MORE && used < s->in_len;
		tx->client_bytes += used;
		consume_in(s, used);
		tx_check_limits(s);
		tx_add(s, s->scan_out, outlen);
		if (r == DATA_END_AMBIGUOUS) {
			tx_fail(s, R_DATA_BARE_NEWLINE);
			smtp_reply(s, R_DATA_AMBIGUOUS_END, s->cfg->hostname);
			s->closing = CLOSE_PROTOCOL;
			s->state = ST_COMMAND;
			return FEED_DONE;
		}
		if (r == DATA_END) {
			if (tx->begin_pending) {
				tx->data_ended = 1;
				queue_wait(s, Q_BEGIN_LATE);
				return FEED_DONE;
			}
			tx_finish_message(s);
			return FEED_DONE;
		}
		if (need_more) {
			if (s->in_len == s->in_cap)
				log_panic("data scanner made no progress");
			break;
		}
	}
	return FEED_NEED;
}

/* The octets of a BDAT chunk come next: size of them, scanned and stored
 * when store, then what 'then' says. */
static void
bdat_expect(struct smtp_session *s, uint64_t size, int store, int last,
    enum bdat_then then)
{
	int64_t now = now_ms();

	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_then = then;
	s->bdat_size = size;
	s->bdat_store = store;
	if (store && s->scan_out == NULL)
		s->scan_out = xmalloc(s->in_cap + 2);
	s->state = ST_BDAT;
	s->idle_since = now;
	s->data_deadline = now + (int64_t)s->cfg->data_timeout * 1000;
}

/* After the last octet of a chunk. */
static void
bdat_chunk_done(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	s->state = ST_COMMAND;
	arm_command(s);
	switch (s->bdat_then) {
	case BDAT_TLS_REQUIRED:
		smtp_reply(s, R_TLS_REQUIRED);
		return;
	case BDAT_REFUSED:
		if (!s->esmtp)
			smtp_reply(s, R_NOT_IMPLEMENTED, "BDAT");
		else
			(void)data_allowed(s);
		return;
	case BDAT_STORED:
		break;
	}
	if (!s->bdat_last) {
		if (tx->failed)
			tx_fail_reply(s);
		else
			smtp_reply(s, R_BDAT_OK,
			    (unsigned long long)s->bdat_size);
		return;
	}
	if (!tx->failed) {
		uint8_t tail[2];
		size_t tlen = 0;

		data_scanner_finish(&tx->scan, tail, &tlen);
		tx_add(s, tail, tlen);
	}
	tx_finish_message(s);
}

/* The rest of BDAT once the message is begun at the runner (or could
 * not be): the size check, then the chunk's octets. */
static void
bdat_chunk_start(struct smtp_session *s, uint64_t size, int last)
{
	struct smtp_tx *tx = &s->tx;
	int ok_to_store = !tx->failed;

	if (tx->client_bytes + size > (uint64_t)s->cfg->message_size_limit &&
	    !tx->failed) {
		tx_fail(s, R_SIZE_EXCEEDED);
		ok_to_store = 0;
	}
	bdat_expect(s, size, ok_to_store, last, BDAT_STORED);
}

static enum feed
bdat_feed(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	int store = s->bdat_store;

	while (s->bdat_left > 0) {
		size_t take, used, outlen;

		if (s->in_len == 0)
			return FEED_NEED;
		take = s->in_len < s->bdat_left ? s->in_len :
		    (size_t)s->bdat_left;
		if (store) {
			data_scan(&tx->scan, s->in, take, s->scan_out, &outlen,
			    &used);
			tx->client_bytes += take;
			tx_check_limits(s);
			tx_add(s, s->scan_out, outlen);
		}
		consume_in(s, take);
		s->bdat_left -= take;
	}
	bdat_chunk_done(s);
	return FEED_DONE;
}

static void
cmd_bdat(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	struct smtp_tx *tx = &s->tx;
	uint64_t size;
	int last;

	(void)verb;
	if (smtp_parse_bdat(arg, len, &size, &last) < 0) {
		/* The chunk's length is unknown: what follows will be read
		 * as commands and refused one by one. */
		smtp_reply(s, R_SYNTAX_BDAT);
		return;
	}
	if (!s->esmtp || !tx->active || tx->env.nrcpts == 0) {
		bdat_expect(s, size, 0, last, BDAT_REFUSED);
		return;
	}
	if (!tx->bdat) {
		tx->bdat = 1;
		s->bdat_size = size;     /* for when the runner answers */
		s->bdat_last = last;
		if (tx_begin_send(s, Q_BEGIN_BDAT) == 0)
			return;
		tx_fail(s, R_QUEUE_UNAVAILABLE);
	}
	bdat_chunk_start(s, size, last);
}

/* BDAT where TLS is required first: its chunk is read and dropped, so
 * that the bytes are not taken for commands. */
static void
bdat_discard(struct smtp_session *s, const char *arg, size_t len)
{
	uint64_t size;
	int last;

	if (smtp_parse_bdat(arg, len, &size, &last) == 0)
		bdat_expect(s, size, 0, last, BDAT_TLS_REQUIRED);
	else
		smtp_reply(s, R_TLS_REQUIRED);
}

static void
cmd_rset(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	(void)verb;
	(void)arg;
	if (len > 0) {
		smtp_reply(s, R_SYNTAX_NOARG, "RSET");
		return;
	}
	tx_reset(s);
	smtp_reply(s, R_SUCCESS);
}

static void
cmd_noop(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	(void)verb;
	(void)arg;
	(void)len;   /* RFC 5321 4.1.1.9: a parameter is ignored */
	smtp_reply(s, R_SUCCESS);
}

static void
cmd_quit(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	(void)verb;
	(void)arg;
	if (len > 0) {
		smtp_reply(s, R_SYNTAX_NOARG, "QUIT");
		return;
	}
	smtp_reply(s, R_BYE);
	s->closing = CLOSE_QUIT;
}

static void
cmd_vrfy(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	(void)verb;
	(void)arg;
	if (len == 0) {
		smtp_reply(s, R_SYNTAX_VRFY);
		return;
	}
	smtp_reply(s, R_VRFY);
}

static void
cmd_expn(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	(void)verb;
	(void)arg;
	(void)len;
	smtp_reply(s, R_EXPN);
}

static void
cmd_help(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	(void)verb;
	(void)arg;
	(void)len;
	smtp_reply(s, R_HELP);
}

static void
cmd_not_implemented(struct smtp_session *s, enum smtp_verb verb,
    const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	smtp_reply(s, R_NOT_IMPLEMENTED, smtp_verb_name(verb));
}

/* ------------------------------------------------------ STARTTLS, AUTH */

/* After a handshake: note and log what it gave, and whether the client
 * certificate is one the listener lets relay. */
static void
tls_established(struct smtp_session *s)
{
	size_t i;

	conn_tls_info(&s->conn, &s->tls);
	s->tls_active = 1;
	wcount_tls_in(s->tls.version);
	log_info("TLS connection established from %s[%s]: %s with cipher %s "
	    "(%d/%d bits)", s->peer_name, s->peer_addr, s->tls.version,
	    s->tls.cipher, s->tls.bits, s->tls.alg_bits);
	if (!s->tls.peer_cert)
		return;
	log_info("client certificate %s from %s[%s]: subject=%s, "
	    "sha256=%s", s->tls.peer_verified ? "verified" : "NOT verified",
	    s->peer_name, s->peer_addr, s->tls.peer_subject,
	    s->tls.peer_sha256);
	if (!s->tls.peer_verified || s->lcfg == NULL)
		return;
	for (i = 0; i < s->lcfg->nrelay_cert_subjects; i++)
		if (tls_cert_rule_match(s->lcfg->relay_cert_subjects[i],
		    s->tls.peer_cn, s->tls.peer_sha256)) {
			s->ccert_relay = 1;
			log_info("relay allowed for %s[%s] by client "
			    "certificate rule \"%s\"", s->peer_name,
			    s->peer_addr, s->lcfg->relay_cert_subjects[i]);
			break;
		}
}


/* The handshake starts: from now on nothing is read as plain text. */
static void
handshake_begin(struct smtp_session *s)
{
	s->state = ST_HANDSHAKE;
	arm_command(s);
}

/* The handshake is over: note and log what it gave, then greet (implicit
 * TLS) or forget what was said before it (STARTTLS). */
static void
handshake_done(struct smtp_session *s)
{
	tls_established(s);
	s->state = ST_COMMAND;
	arm_command(s);
	if (s->implicit_tls) {
		s->implicit_tls = 0;
		if (s->control && s->control->drain) {
			smtp_reply(s, R_SHUTDOWN, s->cfg->hostname);
			s->shutdown_sent = 1;
			s->closing = CLOSE_SHUTDOWN;
		} else
			smtp_reply(s, R_GREETING, s->cfg->hostname);
		return;
	}
	/* RFC 3207 4.2: forget everything the client said before TLS */
	tx_reset(s);
	s->helo[0] = '\0';
	s->helo_seen = 0;
	s->esmtp = 0;
	s->auth_user[0] = '\0';
	s->auth_entry = NULL;
}

static void
handshake_failed(struct smtp_session *s, const char *why)
{
	size_t i;

	log_info("TLS handshake failed from %s[%s]: %s; dropping the "
	    "connection", s->peer_name, s->peer_addr, why);
	for (i = 0; i < s->cfg->nlisteners; i++)
		if (&s->cfg->listeners[i] == s->lcfg)
			wcount_conn(i, WC_CONN_TLS_FAILED);
	s->closing = CLOSE_TLS;
}

static void
cmd_starttls(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	if (s->tls_active) {        /* after STARTTLS, or implicit TLS */
		smtp_reply(s, R_TLS_ACTIVE);
		return;
	}
	if (s->lcfg == NULL || s->lcfg->tls != LTLS_STARTTLS ||
	    s->tls_ctx == NULL) {
		cmd_not_implemented(s, verb, arg, len);
		return;
	}
	if (len > 0) {
		smtp_reply(s, R_SYNTAX_NOARG, "STARTTLS");
		return;
	}
	smtp_reply(s, R_STARTTLS_GO);
	/* RFC 3207 5, CVE-2011-0411: whatever the client sent after
	 * STARTTLS came in plain text and may have been injected by a man
	 * in the middle.  None of it is read as a command. */
	if (s->in_len > 0) {
		log_warn("%zu bytes of command pipelining after STARTTLS from "
		    "%s[%s] discarded", s->in_len, s->peer_name, s->peer_addr);
		s->in_len = 0;
	}
	s->skipping = 0;
	/* the 220 goes out first, then the handshake (ST_HANDSHAKE) */
	handshake_begin(s);
}


/* Strict base64 (RFC 4648 4): length a multiple of 4, padding only at
 * the end.  Returns the decoded length, or -1. */
static ssize_t
b64_decode(const char *in, size_t len, uint8_t *out, size_t outsize)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0, pad = 0;

	if (len % 4 != 0 || len / 4 * 3 > outsize)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len; i += 4) {
		uint32_t v = 0;
		size_t k, last = i + 4 == len;

		for (k = 0; k < 4; k++) {
			const char *c;

			if (last && k >= 4 - pad) {
				v <<= 6;
				continue;
			}
			c = in[i + k] ? strchr(alphabet, in[i + k]) : NULL;
			if (c == NULL)
				return -1;
			v = (v << 6) | (uint32_t)(c - alphabet);
		}
		out[o++] = (uint8_t)(v >> 16);
		if (!(last && pad == 2))
			out[o++] = (uint8_t)(v >> 8);
		if (!(last && pad >= 1))
			out[o++] = (uint8_t)v;
		/* the bits that padding drops must be zero */
		if (last && pad == 2 && (v & 0xffff) != 0)
			return -1;
		if (last && pad == 1 && (v & 0xff) != 0)
			return -1;
	}
	return (ssize_t)o;
}


/* Decodes an initial response ("=" is an empty one, RFC 4954 4). */
static int
auth_initial(struct smtp_session *s, const char *ir, size_t irlen,
    uint8_t *out, size_t outsize, size_t *outlen)
{
	ssize_t n;

	if (irlen == 1 && ir[0] == '=') {
		*outlen = 0;
		return 0;
	}
	n = b64_decode(ir, irlen, out, outsize);
	if (n < 0) {
		smtp_reply(s, R_AUTH_BAD_BASE64);
		return -1;
	}
	*outlen = (size_t)n;
	return 0;
}

/* Copies b[0..n) as a C string when it has no NUL and fits. */
static int
auth_field(char *out, size_t outsize, const uint8_t *b, size_t n)
{
	if (n == 0 || n >= outsize || memchr(b, '\0', n) != NULL)
		return -1;
	memcpy(out, b, n);
	out[n] = '\0';
	return 0;
}


static void
auth_clear(struct smtp_session *s)
{
	struct auth_state *a = s->auth;

	if (a == NULL)
		return;
	OPENSSL_cleanse(a->buf, AUTH_DECODED_MAX + 1);
	OPENSSL_cleanse(a->pass, AUTH_PASSWORD_MAX + 1);
	OPENSSL_cleanse(a->user, sizeof(a->user));
	free(a->buf);
	free(a->pass);
	free(a);
	s->auth = NULL;
	s->auth_exchange = 0;
}

/* Sends a 334 challenge; the response comes as the next line. */
static void
auth_challenge(struct smtp_session *s, const char *challenge)
{
	smtp_reply(s, R_AUTH_CHALLENGE, challenge);
	s->auth_exchange = 1;
	s->state = ST_AUTH;
}

/* The password is checked only after anvil says neither the address
 * nor the user is locked out, and a failure - unknown user or wrong
 * password, one reply for both - is reported back to it. */
static void auth_checked(struct smtp_session *s, int result);

static void
auth_verify(struct smtp_session *s)
{
	if (s->anvil != NULL && anvil_ask_auth(s->anvil, s->anvil_owner,
	    s->peer_addr, s->auth->user)) {
		anvil_wait(s, A_AUTH);
		return;
	}
	auth_checked(s, ANVIL_OK);
}

/* Anvil's answer about the lockout is result: refuse, or check the
 * password. */
static void
auth_checked(struct smtp_session *s, int result)
{
	struct auth_state *a = s->auth;
	const char *mech_name = a->plain ? "PLAIN" : "LOGIN";
	const struct auth_user *entry;
	int rc;

	if (result == ANVIL_AUTH_LOCKED) {
		char safe[AUTH_USER_MAX * 4 + 1];

		log_warn("AUTH from %s[%s] refused: locked out after too many "
		    "failures (sasl_username=%s)", s->peer_name, s->peer_addr,
		    log_sanitize(safe, sizeof(safe), a->user,
		    strlen(a->user)));
		smtp_reply(s, R_AUTH_LOCKED, s->cfg->hostname);
		s->closing = CLOSE_AUTH_LOCKED;
		auth_clear(s);
		return;
	}
	rc = auth_users_verify(s->users, a->user, a->pass, &entry);
	if (rc > 0) {
		ferry_strlcpy(s->auth_user, entry->name, sizeof(s->auth_user));
		s->auth_entry = entry;
		log_info("AUTH from %s[%s]: sasl_method=%s, sasl_username=%s",
		    s->peer_name, s->peer_addr, mech_name, s->auth_user);
		smtp_reply(s, R_AUTH_OK);
	} else if (rc == 0) {
		char safe[AUTH_USER_MAX * 4 + 1];

		log_warn("%s[%s]: SASL %s authentication failed "
		    "(sasl_username=%s)", s->peer_name, s->peer_addr, mech_name,
		    log_sanitize(safe, sizeof(safe), a->user,
		    strlen(a->user)));
		if (s->anvil != NULL)
			anvil_auth_failed(s->anvil, s->peer_addr, a->user);
		smtp_reply(s, R_AUTH_FAILED);
	} else {
		log_error("AUTH from %s[%s]: the password hash could not be "
		    "computed", s->peer_name, s->peer_addr);
		smtp_reply(s, R_AUTH_TEMPFAIL);
	}
	auth_clear(s);
}

/* A decoded response is in a->buf: take what it holds, then ask for
 * the next one or check the password. */
static void
auth_response(struct smtp_session *s)
{
	struct auth_state *a = s->auth;
	const uint8_t *buf = a->buf;
	size_t blen = a->blen;

	if (a->plain) {
		const uint8_t *z1, *z2;

		/* authzid NUL authcid NUL passwd; authzid empty or the
		 * same user (no proxy authentication) */
		z1 = memchr(buf, '\0', blen);
		z2 = z1 ? memchr(z1 + 1, '\0', blen - (size_t)(z1 + 1 - buf)) :
		    NULL;
		if (z2 == NULL || auth_field(a->user, sizeof(a->user), z1 + 1,
		    (size_t)(z2 - z1 - 1)) < 0 || auth_field(a->pass,
		    AUTH_PASSWORD_MAX + 1, z2 + 1,
		    blen - (size_t)(z2 + 1 - buf)) < 0) {
			smtp_reply(s, R_AUTH_BAD_RESPONSE);
			auth_clear(s);
			return;
		}
		if (z1 != buf && ((size_t)(z1 - buf) != strlen(a->user) ||
		    memcmp(buf, a->user, strlen(a->user)) != 0))
			a->user[0] = '\0';   /* fails below, like a bad password */
		auth_verify(s);
		return;
	}
	if (a->step == 0) {
		if (auth_field(a->user, sizeof(a->user), buf, blen) < 0) {
			smtp_reply(s, R_AUTH_BAD_RESPONSE);
			auth_clear(s);
			return;
		}
		a->step = 1;
		auth_challenge(s, "UGFzc3dvcmQ6");
		return;
	}
	if (auth_field(a->pass, AUTH_PASSWORD_MAX + 1, buf, blen) < 0) {
		smtp_reply(s, R_AUTH_BAD_RESPONSE);
		auth_clear(s);
		return;
	}
	auth_verify(s);
}

/* A line read in ST_AUTH: the client's response, or "*" to cancel. */
static void
auth_line(struct smtp_session *s, char *line, size_t len)
{
	struct auth_state *a = s->auth;
	ssize_t n;

	s->auth_exchange = 0;
	s->state = ST_COMMAND;
	if (len == 1 && line[0] == '*') {
		consume_in(s, len + 2);
		smtp_reply(s, R_AUTH_CANCELLED);
		auth_clear(s);
		return;
	}
	n = b64_decode(line, len, a->buf, AUTH_DECODED_MAX);
	OPENSSL_cleanse(line, len);
	consume_in(s, len + 2);
	if (n < 0) {
		smtp_reply(s, R_AUTH_BAD_BASE64);
		auth_clear(s);
		return;
	}
	a->blen = (size_t)n;
	auth_response(s);
}

/* RFC 4954 with PLAIN (RFC 4616) and LOGIN. */
static void
cmd_auth(struct smtp_session *s, enum smtp_verb verb, const char *arg,
    size_t len)
{
	struct auth_state *a;
	const char *sp;
	size_t mlen, iroff = 0;
	int plain;

	s->auth_seen = 1;
	if (!auth_enabled(s)) {
		cmd_not_implemented(s, verb, arg, len);
		return;
	}
	if (!auth_offered(s)) {
		smtp_reply(s, R_AUTH_ENCRYPT);
		return;
	}
	if (!s->helo_seen || !s->esmtp) {
		smtp_reply(s, R_AUTH_NEED_EHLO);
		return;
	}
	if (s->auth_user[0] != '\0') {
		smtp_reply(s, R_AUTH_ALREADY);
		return;
	}
	if (s->tx.active) {
		smtp_reply(s, R_AUTH_IN_TX);
		return;
	}
	sp = memchr(arg, ' ', len);
	mlen = sp ? (size_t)(sp - arg) : len;
	if (sp != NULL) {
		iroff = mlen + 1;
		if (iroff == len || memchr(arg + iroff, ' ', len - iroff)) {
			smtp_reply(s, R_AUTH_SYNTAX);
			return;
		}
	}
	if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
		plain = 1;
	else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
		plain = 0;
	else {
		smtp_reply(s, mlen == 0 ? R_AUTH_SYNTAX : R_AUTH_MECH);
		return;
	}
	if (!s->tls_active)
		log_warn("AUTH without TLS from %s[%s] "
		    "(auth_plaintext_networks)", s->peer_name, s->peer_addr);

	a = xcalloc(1, sizeof(*a));
	a->buf = xmalloc(AUTH_DECODED_MAX + 1);
	a->pass = xmalloc(AUTH_PASSWORD_MAX + 1);
	a->pass[0] = '\0';
	a->plain = plain;
	s->auth = a;
	if (iroff == 0) {
		auth_challenge(s, plain ? "" : "VXNlcm5hbWU6");
		return;
	}
	if (auth_initial(s, arg + iroff, len - iroff, a->buf,
	    AUTH_DECODED_MAX, &a->blen) < 0) {
		auth_clear(s);
		return;
	}
	auth_response(s);
}


/* The command table.  Adding a verb is adding a row.  Where a listener
 * requires TLS, only the rows marked CMD_TLS_OK are served before it. */
#define CMD_TLS_OK   0x01   /* allowed before TLS where TLS is required */
#define CMD_SYNC     0x02   /* ends a pipelined group: flush after */

struct smtp_command {
	enum smtp_verb verb;
	unsigned flags;
	void (*handler)(struct smtp_session *, enum smtp_verb, const char *,
	    size_t);
};

static const struct smtp_command commands[] = {
	{ VERB_HELO, CMD_TLS_OK | CMD_SYNC, cmd_helo },
	{ VERB_EHLO, CMD_TLS_OK | CMD_SYNC, cmd_helo },
	{ VERB_MAIL, 0, cmd_mail },
	{ VERB_RCPT, 0, cmd_rcpt },
	{ VERB_DATA, CMD_SYNC, cmd_data },
	{ VERB_BDAT, 0, cmd_bdat },
	{ VERB_RSET, CMD_TLS_OK, cmd_rset },
	{ VERB_VRFY, CMD_SYNC, cmd_vrfy },
	{ VERB_EXPN, CMD_SYNC, cmd_expn },
	{ VERB_HELP, CMD_TLS_OK | CMD_SYNC, cmd_help },
	{ VERB_NOOP, CMD_TLS_OK | CMD_SYNC, cmd_noop },
	{ VERB_QUIT, CMD_TLS_OK | CMD_SYNC, cmd_quit },
	{ VERB_STARTTLS, CMD_TLS_OK | CMD_SYNC, cmd_starttls },
	{ VERB_AUTH, CMD_SYNC, cmd_auth },
};

static const struct smtp_command *
command_lookup(enum smtp_verb verb)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == verb)
			return &commands[i];
	return NULL;
}

/* -------------------------------------------------------------- session */

static const char *
close_reason_name(enum close_reason r)
{
	switch (r) {
	case CLOSE_TIMEOUT: return " (timeout)";
	case CLOSE_ERRORS: return " (too many errors)";
	case CLOSE_SHUTDOWN: return " (shutdown)";
	case CLOSE_IOERR: return " (lost connection)";
	case CLOSE_PROTOCOL: return " (protocol error)";
	case CLOSE_LIMIT: return " (rate limit)";
	case CLOSE_TLS: return " (TLS handshake failed)";
	case CLOSE_AUTH_LOCKED: return " (authentication lockout)";
	case CLOSE_JUNK: return " (too many junk commands)";
	case CLOSE_LIFETIME: return " (session lifetime)";
	case CLOSE_OUTPUT: return " (replies not read)";
	case CLOSE_QUEUE: return " (queue unavailable)";
	default: return "";
	}
}

static void
log_disconnect(struct smtp_session *s)
{
	static const enum smtp_verb order[] = { VERB_HELO, VERB_EHLO,
	    VERB_MAIL, VERB_RCPT, VERB_DATA, VERB_BDAT, VERB_RSET, VERB_VRFY,
	    VERB_EXPN, VERB_HELP, VERB_NOOP, VERB_QUIT, VERB_STARTTLS,
	    VERB_AUTH, VERB_UNKNOWN };
	char line[512], client[SESSION_CLIENT_MAX];
	struct log_fields f = { .event = "disconnect" };
	size_t i, o = 0;

	line[0] = '\0';
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *name;
		char lower[16];
		size_t j;

		if (s->counts[order[i]] == 0)
			continue;
		name = smtp_verb_name(order[i]);
		for (j = 0; name[j] && j < sizeof(lower) - 1; j++)
			lower[j] = (char)(name[j] >= 'A' && name[j] <= 'Z' ?
			    name[j] + 32 : name[j]);
		lower[j] = '\0';
		o += (size_t)snprintf(line + o, sizeof(line) - o, " %s=%u",
		    lower, s->counts[order[i]]);
		if (o >= sizeof(line))
			break;
	}
	f.client = session_client(s, client, sizeof(client));
	log_event(LOG_INFO, &f, "disconnect from %s[%s]%s commands=%u%s",
	    s->peer_name,
	    s->peer_addr, o < sizeof(line) ? line : "", s->total_commands,
	    close_reason_name(s->closing));
}

/* Pregreet (Postfix postscreen's name): a real SMTP client waits for
 * the greeting; one that talks first is a bot blasting its script.
 * Waits limits.greet_pause milliseconds (0: just looks). */

/* An HTTP request (or a POP3 login) sent to the SMTP port: the verb, or
 * NULL.  Postfix closes on these too; nothing good follows them. */
static const char *
not_smtp(const char *line, size_t len)
{
	static const char *const verbs[] = { "GET", "POST", "HEAD", "PUT",
	    "CONNECT", "OPTIONS", "DELETE", "TRACE", "PATCH", "USER" };
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t n = strlen(verbs[i]);

		if (len >= n && strncasecmp(line, verbs[i], n) == 0 &&
		    (len == n || line[n] == ' '))
			return verbs[i];
	}
	return NULL;
}


/* The runner's answer to the BEGIN of DATA, read after the 354: the
 * header goes first in the content, or the message fails (answered at
 * its end); then the content goes on, or the message ends. */
static void
data_begin_answered(struct smtp_session *s, int ok)
{
	struct smtp_tx *tx = &s->tx;

	tx->begin_pending = 0;
	s->state = ST_DATA;
	if (!ok)
		tx_fail(s, R_QUEUE_UNAVAILABLE);
	else if (tx->failed)
		intake_send_abort(s->queue);   /* refused meanwhile */
	else
		tx_begun_header(s);
	if (tx->data_ended) {
		tx->data_ended = 0;
		tx_finish_message(s);
	}
}

/* The runner answered BEGIN or COMMIT (ok: yes), or failed, or did not
 * answer in time: the session goes on where it waited. */
static void
queue_answered(struct smtp_session *s, int ok)
{
	if (s->queue_then == Q_COMMIT) {
		tx_committed(s, ok);
		return;
	}
	if (!ok && s->queue_retry && intake_fd(s->queue) < 0) {
		/* a kept connection may lead to a runner that has since
		 * gone: one more try on a fresh one */
		s->queue_retry = 0;
		if (intake_send_begin(s->queue, &s->tx.env) == 0) {
			queue_wait(s, s->queue_then);
			return;
		}
	}
	if (!ok)
		log_warn("queue runner refused a new message from %s[%s]: %s",
		    s->peer_name, s->peer_addr, s->queue->reason);
	if (s->queue_then == Q_BEGIN_LATE) {
		data_begin_answered(s, ok);
		return;
	}
	s->state = ST_COMMAND;
	arm_command(s);
	if (ok)
		tx_begun(s, DATA_MODE_BDAT);
	else
		tx_fail(s, R_QUEUE_UNAVAILABLE);
	bdat_chunk_start(s, s->bdat_size, s->bdat_last);
}

/* Commands that move no mail (Postfix's junk commands, and the rest of
 * the talk that only costs us). */
static int
moves_no_mail(enum smtp_verb verb)
{
	switch (verb) {
	case VERB_NOOP:
	case VERB_RSET:
	case VERB_VRFY:
	case VERB_EXPN:
	case VERB_HELP:
		return 1;
	default:
		return 0;
	}
}

static int
draining_expired(const struct smtp_session *s)
{
	return s->control != NULL && s->control->drain &&
	    s->control->drain_deadline != 0 &&
	    now_ms() >= s->control->drain_deadline;
}

/* One command line: its handler, or the refusal. */
static void
dispatch(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_command *cmd;
	enum smtp_verb verb;
	const char *arg, *alien;
	size_t arglen;
	char *argcopy;

	verb = smtp_parse_verb(line, len, &arg, &arglen);
	alien = verb == VERB_UNKNOWN ? not_smtp(line, len) : NULL;
	/* copy the argument out: consuming the line moves the buffer */
	argcopy = xstrndup(arg, arglen);
	if (verb == VERB_AUTH)
		OPENSSL_cleanse(line, len);
	consume_in(s, len + 2);
	s->counts[verb]++;
	s->total_commands++;
	cmd = verb == VERB_UNKNOWN ? NULL : command_lookup(verb);
	/* a pipelined group (what one read brought) counts once: what
	 * holds a session is the client coming back with more of them */
	if (moves_no_mail(verb) && s->junk_read != s->reads &&
	    (s->junk_read = s->reads, ++s->junk >
	    (unsigned)s->cfg->junk_command_limit)) {
		log_warn("%s[%s]: %u rounds of commands that move no mail; "
		    "closing", s->peer_name, s->peer_addr, s->junk - 1);
		smtp_reply(s, R_TOO_MANY_JUNK, s->cfg->hostname);
		s->closing = CLOSE_JUNK;
	} else if (cmd == NULL && alien != NULL) {
		smtp_reply(s, R_NOT_SMTP, s->cfg->hostname, alien);
		s->closing = CLOSE_PROTOCOL;
	} else if (cmd == NULL)
		smtp_reply(s, R_UNKNOWN_COMMAND);
	else if (s->lcfg != NULL && s->lcfg->tls_required &&
	    !s->tls_active && !(cmd->flags & CMD_TLS_OK)) {
		if (verb == VERB_BDAT)
			bdat_discard(s, argcopy, arglen);
		else
			smtp_reply(s, R_TLS_REQUIRED);
	} else
		cmd->handler(s, verb, argcopy, arglen);
	if (verb == VERB_AUTH)   /* may hold a password */
		OPENSSL_cleanse(argcopy, arglen);
	free(argcopy);
}

/* Works through the buffered input in the current state until it needs
 * more, the state no longer reads input, or the session must close. */
static void
process_input(struct smtp_session *s)
{
	while (s->closing == OPEN) {
		enum line_result lr;
		char *line;
		size_t len;

		switch (s->state) {
		case ST_COMMAND:
			if (s->errors >= s->cfg->max_errors) {
				s->closing = CLOSE_ERRORS;
				break;
			}
			if (draining_expired(s)) {
				s->closing = CLOSE_SHUTDOWN;
				break;
			}
			lr = next_line(s, &line, &len);
			if (lr == LINE_NEED)
				return;
			if (lr == LINE_OK) {
				dispatch(s, line, len);
				if (s->state == ST_COMMAND)
					arm_command(s);
			}
			break;
		case ST_AUTH:
			lr = next_line(s, &line, &len);
			if (lr == LINE_NEED)
				return;
			if (lr == LINE_OK)
				auth_line(s, line, len);
			else {
				/* too long or broken: answered; the
				 * exchange is over */
				s->state = ST_COMMAND;
				auth_clear(s);
			}
			if (s->state == ST_COMMAND)
				arm_command(s);
			break;
		case ST_DATA:
			if (data_feed(s) == FEED_NEED)
				return;
			break;
		case ST_BDAT:
			if (bdat_feed(s) == FEED_NEED)
				return;
			break;
		default:
			return;
		}
	}
}

/* The session is over: the last reply its reason calls for, written
 * within a short grace. */
static void
begin_close(struct smtp_session *s)
{
	switch (s->closing) {
	case CLOSE_TIMEOUT:
	case CLOSE_LIFETIME:
		smtp_reply(s, R_TIMEOUT, s->cfg->hostname);
		break;
	case CLOSE_SHUTDOWN:
		if (!s->shutdown_sent)
			smtp_reply(s, R_SHUTDOWN, s->cfg->hostname);
		break;
	case CLOSE_ERRORS:
		smtp_reply(s, R_TOO_MANY_ERRORS, s->cfg->hostname);
		break;
	default:
		break;
	}
	if (s->out_len > 0 && s->closing != CLOSE_IOERR &&
	    s->closing != CLOSE_OUTPUT && s->closing != CLOSE_TLS) {
		s->state = ST_CLOSING;
		s->close_deadline = now_ms() + CLOSE_GRACE_MS;
	} else
		s->state = ST_DONE;
}

/* The greeting once the queue's state is known: 220, or 421 4.3.0 and
 * the end of the session while the queue cannot take mail at all (its
 * store fails, or no runner answers), so that the client comes back
 * later instead of waiting for a transaction to fail. */
static void
greet_checked(struct smtp_session *s, enum intake_verdict v)
{
	s->state = ST_COMMAND;
	arm_command(s);
	if (v == INTAKE_QUEUE_FAILING || v == INTAKE_QUEUE_DOWN) {
		log_warn("queue unavailable for %s[%s]: %s", s->peer_name,
		    s->peer_addr, s->queue->reason);
		smtp_reply(s, R_QUEUE_CLOSED, s->cfg->hostname);
		s->closing = CLOSE_QUEUE;
	} else
		smtp_reply(s, R_GREETING, s->cfg->hostname);
}

/* The first note came (or the wait is over): what waited goes on. */
static void
queue_checked(struct smtp_session *s, enum intake_verdict v)
{
	if (s->check_then == CHECK_GREETING)
		greet_checked(s, v);
	else
		mail_checked(s, v);
}

/* The greeting, or why there is none. */
static void
greet(struct smtp_session *s, int talked_first)
{
	s->state = ST_COMMAND;
	arm_command(s);
	if (s->control && s->control->drain) {
		smtp_reply(s, R_SHUTDOWN, s->cfg->hostname);
		s->shutdown_sent = 1;
		s->closing = CLOSE_SHUTDOWN;
	} else if (talked_first) {
		smtp_reply(s, R_PREGREET, s->cfg->hostname);
		s->closing = CLOSE_PROTOCOL;
	} else if (queue_check(s, CHECK_GREETING) != INTAKE_QUEUE_WAIT)
		greet_checked(s, queue_check_last(s));
}

/* Pregreet (Postfix postscreen's name): a real SMTP client waits for
 * the greeting; one that talks first is a bot blasting its script.
 * 1 bytes wait, 0 none (or only the end of the connection), -1 not
 * known yet. */
static int
talked_first(struct smtp_session *s)
{
	char c;
	ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)) {
		s->drained = errno != EINTR;
		return -1;
	}
	return n > 0;
}

/* Its deadline has come. */
static void
on_deadline(struct smtp_session *s, int64_t now)
{
	switch (s->state) {
	case ST_DONE:
		return;
	case ST_GREET_WAIT:
		greet(s, 0);
		return;
	case ST_CLOSING:
		s->state = ST_DONE;
		return;
	case ST_HANDSHAKE:
		handshake_failed(s, "TLS handshake timed out");
		begin_close(s);
		return;
	case ST_QUEUE:
		intake_drop(s->queue, "no answer from the queue runner in time");
		queue_answered(s, 0);
		return;
	case ST_ANVIL:
		/* the client should have answered by now: allowed */
		anvil_client_forget(s->anvil, s->anvil_owner);
		smtp_session_anvil_answer(s, ANVIL_OK);
		return;
	case ST_QUEUE_CHECK:
		return;     /* the check below says the runner is down */
	default:
		if (s->control && s->control->drain &&
		    s->control->drain_deadline != 0 &&
		    now >= s->control->drain_deadline)
			s->closing = CLOSE_SHUTDOWN;
		else if (now >= s->life_deadline)
			s->closing = CLOSE_LIFETIME;
		else
			s->closing = CLOSE_TIMEOUT;
		begin_close(s);
		return;
	}
}

/* ----------------------------------------------------------- interface */

struct smtp_session *
smtp_session_start(const struct session_params *p)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	int64_t now = now_ms();

	s->cfg = p->cfg;
	if (p->intake != NULL)
		s->intake = *p->intake;          /* moved in */
	else
		intake_client_init(&s->intake, p->queue_path);
	s->queue = &s->intake;
	s->control = p->control;
	s->fd = p->fd;
	s->listener = p->listener;
	s->anvil = p->anvil;
	s->anvil_owner = p->anvil_owner;
	sockaddr_ntop(p->peer, s->peer_addr, sizeof(s->peer_addr));
	ferry_strlcpy(s->peer_name, p->peer_name != NULL &&
	    p->peer_name[0] != '\0' ? p->peer_name : "unknown",
	    sizeof(s->peer_name));
	s->lcfg = p->lcfg;
	s->tls_ctx = p->tls;
	s->users = p->users;
	conn_init(&s->conn, s->fd);
	if (s->lcfg != NULL) {
		s->relay_client = cidr_match_any(s->lcfg->relay_networks,
		    s->lcfg->nrelay_networks, p->peer);
		s->auth_plaintext_ok = cidr_match_any(s->lcfg->auth_plaintext,
		    s->lcfg->nauth_plaintext, p->peer);
	} else
		s->relay_client = cidr_match_any(p->cfg->relay_networks,
		    p->cfg->nrelay_networks, p->peer);
	s->in_cap = (size_t)p->cfg->max_line_length > IO_CHUNK ?
	    (size_t)p->cfg->max_line_length : IO_CHUNK;
	s->in = xmalloc(s->in_cap);
	envelope_init(&s->tx.env);
	/* p->fd is non-blocking already (accept4 SOCK_NONBLOCK) */
	s->life_deadline = now + (int64_t)s->cfg->session_lifetime * 1000;
	arm_command(s);

	{
		char client[SESSION_CLIENT_MAX];
		struct log_fields f = { .event = "connect" };

		f.client = session_client(s, client, sizeof(client));
		log_event(LOG_INFO, &f, "connect from %s[%s]", s->peer_name,
		    s->peer_addr);
	}
	/* RFC 8314: on an implicit TLS listener the handshake comes first */
	if (s->lcfg != NULL && s->lcfg->tls == LTLS_IMPLICIT) {
		if (s->tls_ctx == NULL) {
			log_error("listener %s: no TLS context", s->listener);
			s->closing = CLOSE_TLS;
			s->state = ST_DONE;
		} else {
			s->implicit_tls = 1;
			handshake_begin(s);
		}
	} else if (s->cfg->greet_pause > 0 &&
	    !(s->control && s->control->drain)) {
		s->state = ST_GREET_WAIT;
		s->greet_deadline = now + s->cfg->greet_pause;
	} else
		greet(s, talked_first(s) > 0);   /* 0: only look */
	return s;
}

void
smtp_session_run(struct smtp_session *s, int64_t now)
{
	int reads = 0;

	s->more = 0;
	if (intake_unsent(s->queue) > 0)
		(void)intake_flush(s->queue);   /* a failure shows later */
	if (s->queue_blocked && intake_unsent(s->queue) <= QUEUE_HIGH) {
		s->queue_blocked = 0;
		s->idle_since = now_ms();        /* we waited, not the client */
	}
	if (s->state != ST_DONE && now >= smtp_session_deadline(s))
		on_deadline(s, now);
	for (;;) {
		char err[512];
		ssize_t n;
		int rc;

		switch (s->state) {
		case ST_DONE:
			return;
		case ST_CLOSING:
			if (s->out_len > 0 && try_flush(s) == 0 &&
			    s->out_len > 0)
				return;         /* wait until writable */
			s->state = ST_DONE;
			return;
		case ST_GREET_WAIT:
			rc = talked_first(s);
			if (rc < 0)
				return;
			greet(s, rc);
			continue;
		case ST_HANDSHAKE:
			/* the STARTTLS 220 goes out in plain text first */
			if (s->out_len > 0) {
				if (try_flush(s) < 0) {
					begin_close(s);
					continue;
				}
				if (s->out_len > 0)
					return;
			}
			rc = conn_tls_accept_step(&s->conn, s->tls_ctx, err,
			    sizeof(err));
			if (rc == 0)
				return;
			if (rc < 0) {
				handshake_failed(s, err);
				begin_close(s);
				continue;
			}
			handshake_done(s);
			continue;
		case ST_QUEUE:
			rc = s->queue_then == Q_COMMIT ?
			    intake_poll_answer(s->queue, IMSG_TX_COMMITTED, NULL,
			    0) : intake_poll_answer(s->queue, IMSG_TX_BEGUN,
			    s->tx.qid, sizeof(s->tx.qid));
			if (rc == 0)
				return;
			queue_answered(s, rc > 0);
			continue;
		case ST_ANVIL:
			return;         /* smtp_session_anvil_answer resumes */
		case ST_QUEUE_CHECK: {
			int64_t until = 0;

			s->check_verdict = intake_queue_check(s->queue,
			    now_ms(), &until);
			if (s->check_verdict == INTAKE_QUEUE_WAIT) {
				s->check_deadline = until;
				return;
			}
			queue_checked(s, s->check_verdict);
			if (s->closing != OPEN)
				begin_close(s);
			continue;
		}
		default:
			break;
		}
		process_input(s);
		if (s->closing != OPEN) {
			begin_close(s);
			continue;
		}
		if (s->state == ST_HANDSHAKE || s->state == ST_QUEUE ||
		    s->state == ST_ANVIL || s->state == ST_QUEUE_CHECK)
			continue;
		/* Input ran out: now the pipelined replies go (RFC 2920).
		 * Nothing more is read until they have gone. */
		if (s->out_len > 0) {
			if (try_flush(s) < 0) {
				begin_close(s);
				continue;
			}
			if (s->out_len > 0)
				return;         /* wait until writable */
		}
		/* the runner reads slower than the client sends: wait */
		if ((s->state == ST_DATA || s->state == ST_BDAT) &&
		    intake_unsent(s->queue) > QUEUE_HIGH) {
			s->queue_blocked = 1;
			return;
		}
		if (++reads > TURN_READS) {
			s->more = 1;            /* the others' turn */
			return;
		}
		if (s->in_len == s->in_cap)
			log_panic("session input full with nothing to do");
		/* A plain connection that a read left empty has nothing
		 * until poll says so: a reply is not followed by a read
		 * that would only find nothing (TLS may hold decrypted
		 * bytes poll does not see, so it is always read). */
		if (s->drained && s->conn.ssl == NULL) {
			s->conn.want = POLLIN;
			return;
		}
		n = conn_read(&s->conn, s->in + s->in_len,
		    s->in_cap - s->in_len);
		if (n > 0) {
			s->drained = (size_t)n < s->in_cap - s->in_len;
			s->in_len += (size_t)n;
			s->reads++;
			if (s->state == ST_DATA || s->state == ST_BDAT)
				s->idle_since = now_ms();
			continue;
		}
		if (n == CONN_AGAIN) {
			s->drained = 1;
			return;
		}
		s->closing = n == 0 ? CLOSE_EOF : CLOSE_IOERR;
		begin_close(s);
	}
}

void
smtp_session_readable(struct smtp_session *s)
{
	s->drained = 0;
}

void
smtp_session_anvil_answer(struct smtp_session *s, int result)
{
	if (s->state != ST_ANVIL)
		return;
	s->state = ST_COMMAND;
	arm_command(s);
	if (s->anvil_then == A_MAIL)
		mail_rated(s, &s->anvil_mail, result);
	else
		auth_checked(s, result);
}

short
smtp_session_events(const struct smtp_session *s)
{
	switch (s->state) {
	case ST_DONE:
	case ST_QUEUE:
	case ST_ANVIL:
	case ST_QUEUE_CHECK:
		return 0;
	case ST_GREET_WAIT:
		return POLLIN;
	default:
		if (s->queue_blocked)
			return 0;
		return s->conn.want ? s->conn.want : POLLIN;
	}
}

int
smtp_session_queue_fd(const struct smtp_session *s)
{
	return smtp_session_queue_events(s) ? intake_fd(s->queue) : -1;
}

/* Between transactions only notes may come from the runner: watching
 * for them then spares the greeting's and MAIL's checks a read. */
static int
queue_notes_only(const struct smtp_session *s)
{
	return s->state == ST_COMMAND && !s->tx.begun &&
	    !s->tx.begin_pending;
}

short
smtp_session_queue_events(const struct smtp_session *s)
{
	short ev = intake_unsent(s->queue) > 0 ? POLLOUT : 0;

	if (intake_fd(s->queue) < 0 || s->state == ST_DONE)
		return 0;
	return s->state == ST_QUEUE || s->state == ST_QUEUE_CHECK ||
	    queue_notes_only(s) ? (short)(ev | POLLIN) : ev;
}

void
smtp_session_queue_polled(struct smtp_session *s, short events,
    short revents)
{
	if (intake_fd(s->queue) < 0 || !(events & POLLIN))
		return;
	if (revents == 0)
		intake_quiet(s->queue);
	else if (queue_notes_only(s))
		intake_read_notes(s->queue);   /* a note: taken now */
}

int
smtp_session_fd(const struct smtp_session *s)
{
	return s->fd;
}

int
smtp_session_more(const struct smtp_session *s)
{
	return s->state != ST_DONE && s->state != ST_ANVIL &&
	    (s->more || conn_pending(&s->conn));
}

int64_t
smtp_session_deadline(const struct smtp_session *s)
{
	int64_t d, idle;

	switch (s->state) {
	case ST_DONE:
		return 0;
	case ST_CLOSING:
		return s->close_deadline;
	case ST_QUEUE:
		return s->queue_deadline;
	case ST_ANVIL:
		return s->anvil_deadline;
	case ST_QUEUE_CHECK:
		return s->check_deadline;
	case ST_GREET_WAIT:
		d = s->greet_deadline;
		break;
	default:
		idle = (int64_t)s->cfg->command_timeout * 1000;
		if (s->control && s->control->stress_ms > 0 &&
		    s->control->stress_ms < idle)
			idle = s->control->stress_ms;
		d = s->idle_since + idle;
		if ((s->state == ST_DATA || s->state == ST_BDAT) &&
		    s->data_deadline < d)
			d = s->data_deadline;
		if (s->life_deadline < d)
			d = s->life_deadline;
		break;
	}
	if (s->control && s->control->drain &&
	    s->control->drain_deadline != 0 &&
	    s->control->drain_deadline < d)
		d = s->control->drain_deadline;
	return d;
}

int
smtp_session_over(const struct smtp_session *s)
{
	return s->state == ST_DONE;
}

int
smtp_session_end(struct smtp_session *s, struct intake_client *keep)
{
	int kept = 0;

	if (s->state == ST_ANVIL)
		anvil_client_forget(s->anvil, s->anvil_owner);
	auth_clear(s);
	tx_reset(s);
	envelope_free(&s->tx.env);
	free(s->scan_out);
	conn_end(&s->conn);
	log_disconnect(s);
	if (keep != NULL && s->state != ST_QUEUE &&
	    intake_reusable(&s->intake)) {
		*keep = s->intake;               /* moved out */
		kept = 1;
	} else
		intake_client_close(&s->intake);
	close(s->fd);
	/* credentials pass through the input buffer only after AUTH:
	 * wiping its 64 KiB for every session cost 1 % of the relay's CPU */
	if (s->auth_seen)
		OPENSSL_cleanse(s->in, s->in_cap);
	free(s->in);
	free(s->out);
	free(s);
	return kept;
}
