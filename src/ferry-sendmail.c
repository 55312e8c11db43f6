/*
 * ferry-sendmail - a sendmail(8)-compatible injector: reads a message on
 * standard input and submits it over SMTP to the local ferry, so that
 * cron, PHP's mail(), mailx and friends work unchanged.
 *
 *   ferry-sendmail [-t] [-i] [-f sender] [-F name] [-C config]
 *                  [-S host:port] [ignored sendmail flags] [--] [rcpt ...]
 *
 * Where it connects: -S host:port, else $FERRY_SMTP, else the first
 * listener of ferry.conf that speaks plain SMTP (not tls = "implicit",
 * not tls_required), with 0.0.0.0 and :: read as the loopback address.
 *
 * Exit status (sysexits.h): 0 accepted by ferry; 64 EX_USAGE; 65
 * EX_DATAERR the message or an address was refused for good; 67 EX_NOUSER
 * a recipient was refused for good (the others got the message); 71
 * EX_OSERR; 75 EX_TEMPFAIL ferry is not reachable or answered 4xx (try
 * again later); 76 EX_PROTOCOL an answer that makes no sense; 78
 * EX_CONFIG ferry.conf cannot be read.
 *
 * Security stance: not set-uid, nothing goes through a shell, every
 * address put on the SMTP envelope is checked for control characters and
 * angle brackets, and the server (ferryd's workers) judges the rest as it
 * would from any client.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "config.h"
#include "sendmail_msg.h"
#include "util.h"

#define MESSAGE_MAX (256L * 1024 * 1024)   /* what stdin may bring */
#define CONNECT_TIMEOUT_MS 30000
#define REPLY_TIMEOUT_MS 300000            /* RFC 5321 4.5.3.2 */
#define DATA_END_TIMEOUT_MS 600000

static const char *progname = "ferry-sendmail";

static void
die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
die(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void
warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
warnx_(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: %s [-t] [-i] [-f sender] [-F full-name] [-C config] "
	    "[-S host:port] [--] [recipient ...]\n"
	    "  -t        recipients from the To, Cc and Bcc headers "
	    "(Bcc removed)\n"
	    "  -i, -oi   a line with a single \".\" does not end the "
	    "message\n"
	    "  -f, -r    envelope sender (\"\" or \"<>\" for none)\n"
	    "  -F        full name for a From header that is added\n"
	    "  -C        ferry configuration (default %s)\n"
	    "  -S        submit to host:port ([addr]:port for IPv6)\n"
	    "Accepted and ignored: -odi -odb -odq -oem -oep -oeq -oew -om "
	    "-oo -o* -v -m -n -U -G -B type -N dsn -R ret -V envid -X file "
	    "-L tag -h hops -O option -bm\n", progname, CONFIG_DEFAULT_PATH);
}

/* ------------------------------------------------------------- SMTP I/O */

struct conn {
	int fd;
	char buf[8192];
	size_t have;
	char last[1024];          /* the last reply, for messages */
};

static int
wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { fd, events, 0 };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r;
}

static void
send_all(struct conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (wait_fd(c->fd, POLLOUT, REPLY_TIMEOUT_MS) <= 0)
			die(EX_TEMPFAIL, "timed out sending to ferry");
		n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die(EX_TEMPFAIL, "lost the connection to ferry: %s",
			    strerror(errno));
		}
		data += n;
		len -= (size_t)n;
	}
}

static void
send_line(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
send_line(struct conn *c, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		die(EX_DATAERR, "SMTP command too long");
	memcpy(line + n, "\r\n", 2);
	send_all(c, line, (size_t)n + 2);
}

/* One line of a reply, without CRLF, into out. */
static void
read_line(struct conn *c, char *out, size_t outlen, int timeout_ms)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->have);
		ssize_t n;

		if (nl != NULL) {
			size_t len = (size_t)(nl - c->buf);
			size_t keep = len > 0 && c->buf[len - 1] == '\r' ?
			    len - 1 : len;

			if (keep >= outlen)
				keep = outlen - 1;
			memcpy(out, c->buf, keep);
			out[keep] = '\0';
			memmove(c->buf, nl + 1, c->have - len - 1);
			c->have -= len + 1;
			return;
		}
		if (c->have == sizeof(c->buf))
			die(EX_PROTOCOL, "reply line too long");
		if (wait_fd(c->fd, POLLIN, timeout_ms) <= 0)
			die(EX_TEMPFAIL, "timed out waiting for ferry");
		n = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			die(EX_TEMPFAIL, "ferry closed the connection%s%s",
			    c->last[0] ? " after: " : "", c->last);
		c->have += (size_t)n;
	}
}

/* A whole (multi-line) reply; returns its code.  With ehlo, the lines
 * are handed to it one by one. */
static int
read_reply(struct conn *c, int timeout_ms, void (*each)(const char *, void *),
    void *arg)
{
	char line[1024];
	int code = -1;

	for (;;) {
		read_line(c, line, sizeof(line), timeout_ms);
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != '\0' && line[3] != ' ' &&
		    line[3] != '-'))
			die(EX_PROTOCOL, "not an SMTP reply: %.80s", line);
		if (code < 0)
			code = atoi(line);
		else if (atoi(line) != code)
			die(EX_PROTOCOL, "inconsistent reply: %.80s", line);
		if (each != NULL)
			each(line + (line[3] ? 4 : 3), arg);
		if (line[3] != '-') {
			ferry_strlcpy(c->last, line, sizeof(c->last));
			return code;
		}
	}
}

struct ehlo {
	long size;
	int has_size, eightbitmime, smtputf8;
};

static void
ehlo_line(const char *text, void *arg)
{
	struct ehlo *e = arg;

	if (strncasecmp(text, "SIZE", 4) == 0 &&
	    (text[4] == ' ' || text[4] == '\0')) {
		e->has_size = 1;
		e->size = atol(text + 4);
	}
	else if (strcasecmp(text, "8BITMIME") == 0)
		e->eightbitmime = 1;
	else if (strcasecmp(text, "SMTPUTF8") == 0)
		e->smtputf8 = 1;
}

static int
connect_to(const char *host, const char *port)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, rc, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		die(EX_TEMPFAIL, "%s: %s", host, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int err = 0;
		socklen_t elen = sizeof(err);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS &&
		    wait_fd(fd, POLLOUT, CONNECT_TIMEOUT_MS) > 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 &&
		    err == 0)
			break;
		saved = err ? err : errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		die(EX_TEMPFAIL, "cannot reach ferry at %s port %s: %s "
		    "(is ferryd running?)", host, port, strerror(saved));
	return fd;
}

/* ------------------------------------------------------------- the run */

struct opts {
	int extract, ignore_dots;
	const char *sender;       /* NULL: the user's; "" null sender */
	const char *fullname;
	const char *config;
	const char *server;
};

/* host and port from "host:port", "[v6]:port", a bare IPv6 address or
 * "host" (port 25). */
static void
split_server(const char *s, char *host, size_t hlen, char *port,
    size_t plen)
{
	struct hostport hp;
	char why[128];

	if (netaddr_parse_hostport(s, 25, HOSTPORT_BARE_IPV6, &hp, why,
	    sizeof(why)) < 0)
		die(EX_USAGE, "bad server %s (host:port): %s", s, why);
	ferry_strlcpy(host, hp.host, hlen);
	snprintf(port, plen, "%d", hp.port);
}

static char *
read_stdin(int ignore_dots, size_t *lenp)
{
	char *buf = NULL, *line = NULL;
	size_t len = 0, cap = 0, lcap = 0;
	ssize_t n;

	while ((n = getline(&line, &lcap, stdin)) > 0) {
		if (!ignore_dots && line[0] == '.' && (n == 1 ||
		    (n == 2 && line[1] == '\n') ||
		    (n == 3 && line[1] == '\r' && line[2] == '\n')))
			break;
		if ((long)(len + (size_t)n) > MESSAGE_MAX)
			die(EX_DATAERR, "message larger than %ld octets",
			    MESSAGE_MAX);
		if (len + (size_t)n + 1 > cap) {
			cap = (len + (size_t)n + 1) * 2;
			buf = xrealloc(buf, cap);
		}
		memcpy(buf + len, line, (size_t)n);
		len += (size_t)n;
	}
	if (ferror(stdin))
		die(EX_IOERR, "reading the message: %s", strerror(errno));
	free(line);
	if (buf == NULL)
		buf = xstrdup("");
	*lenp = len;
	return buf;
}

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct sm_addrs rcpts = { NULL, 0, 0 };
	struct sm_message msg;
	struct sm_input in;
	struct conn c;
	struct ehlo e = { 0, 0, 0, 0 };
	char size_param[32] = "";
	char host[256], port[16], hostname[256], sender[512], err[1024];
	char date[64], msgid[512], *from_value, *input, *stuffed;
	unsigned char rnd[8];
	const char *server;
	size_t inlen, stufflen, i;
	int ch, code, accepted = 0, temp_refused = 0, perm_refused = 0;
	int utf8 = 0;
	struct passwd *pw;

	memset(&o, 0, sizeof(o));
	o.config = CONFIG_DEFAULT_PATH;
	signal(SIGPIPE, SIG_IGN);
	/* "+": options end at the first recipient, as in sendmail */
	while ((ch = getopt(argc, argv,
	    "+A:B:b:C:d:F:f:GhiL:mN:nO:o:p:q:R:r:S:tUV:vX:")) != -1) {
		switch (ch) {
		case 't':
			o.extract = 1;
			break;
		case 'i':
			o.ignore_dots = 1;
			break;
		case 'f':
		case 'r':
			o.sender = optarg;
			break;
		case 'F':
			o.fullname = optarg;
			break;
		case 'C':
			o.config = optarg;
			break;
		case 'S':
			o.server = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o.ignore_dots = 1;
			/* -odi, -oem, -oQ... : accepted and ignored */
			break;
		case 'b':
			if (strcmp(optarg, "m") == 0)
				break;
			die(EX_USAGE, "-b%s is not supported (only -bm: read "
			    "a message from standard input)", optarg);
		case 'q':
			die(EX_USAGE, "-q: ferry runs its queue itself "
			    "(ferryctl queue flush)");
		case 'h':
			/* sendmail's -h is a hop count with an argument */
			if (optind < argc)
				optind++;
			break;
		case 'A': case 'B': case 'd': case 'L': case 'N':
		case 'O': case 'p': case 'R': case 'V': case 'X':
		case 'G': case 'm': case 'n': case 'U': case 'v':
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}

	/* Where to submit, and the host name for the headers. */
	hostname[0] = '\0';
	server = o.server ? o.server : getenv("FERRY_SMTP");
	if (server != NULL && server[0] == '\0')
		server = NULL;
	{
		struct ferry_config *cfg;
		const struct listener_config *l;

		/* the daemon's own loader; files it names need not be
		 * readable by this user */
		cfg = config_load_flags(o.config, NULL, CONFIG_NO_FILE_CHECKS,
		    err, sizeof(err));
		if (cfg == NULL && server == NULL)
			die(EX_CONFIG, "%s", err);
		if (cfg != NULL) {
			ferry_strlcpy(hostname, cfg->hostname,
			    sizeof(hostname));
			l = sm_submit_listener(cfg);
			if (server == NULL && l == NULL)
				die(EX_CONFIG, "%s: no listener speaks plain "
				    "SMTP (use -S)", o.config);
			if (server == NULL) {
				const char *a = l->address;

				if (strcmp(a, "0.0.0.0") == 0)
					a = "127.0.0.1";
				else if (strcmp(a, "::") == 0)
					a = "::1";
				ferry_strlcpy(host, a, sizeof(host));
				snprintf(port, sizeof(port), "%d", l->port);
			}
			config_free(cfg);
		}
	}
	if (server != NULL)
		split_server(server, host, sizeof(host), port, sizeof(port));
	if (hostname[0] == '\0' && gethostname(hostname,
	    sizeof(hostname)) < 0)
		ferry_strlcpy(hostname, "localhost", sizeof(hostname));
	hostname[sizeof(hostname) - 1] = '\0';

	/* The envelope sender. */
	pw = getpwuid(getuid());
	if (o.sender == NULL) {
		if (pw == NULL)
			die(EX_OSERR, "who are you? (uid %ld has no passwd "
			    "entry)", (long)getuid());
		snprintf(sender, sizeof(sender), "%s@%s", pw->pw_name,
		    hostname);
	} else if (o.sender[0] == '\0' || strcmp(o.sender, "<>") == 0) {
		sender[0] = '\0';
	} else {
		char *q;
		size_t sl = strlen(o.sender);

		if (o.sender[0] == '<' && sl >= 2 && o.sender[sl - 1] == '>')
			snprintf(sender, sizeof(sender), "%.*s", (int)sl - 2,
			    o.sender + 1);
		else
			snprintf(sender, sizeof(sender), "%s", o.sender);
		q = sm_qualify(sender, hostname);
		ferry_strlcpy(sender, q, sizeof(sender));
		free(q);
	}
	if (sender[0] != '\0' && !sm_address_ok(sender))
		die(EX_USAGE, "bad sender address: %s", sender);
	if (has_8bit(sender))
		utf8 = 1;

	/* Recipients from the command line. */
	for (i = (size_t)optind; i < (size_t)argc; i++) {
		struct sm_addrs one = { NULL, 0, 0 };
		size_t k;

		/* "a@x, b@y" in one argument, as mailers pass them */
		if (sm_parse_address_list(argv[i], &one) < 0)
			die(EX_USAGE, "bad recipient: %s", argv[i]);
		for (k = 0; k < one.n; k++)
			sm_addrs_add(&rcpts, one.v[k]);
		sm_addrs_free(&one);
	}
	if (rcpts.n == 0 && !o.extract)
		die(EX_USAGE, "no recipients (give them as arguments, or "
		    "use -t)");

	/* The message. */
	input = read_stdin(o.ignore_dots, &inlen);
	rfc5322_date(date, sizeof(date), time(NULL));
	random_bytes(rnd, sizeof(rnd));
	snprintf(msgid, sizeof(msgid), "<%lld.%ld.%02x%02x%02x%02x%02x%02x%02x"
	    "%02x@%s>", (long long)time(NULL), (long)getpid(), rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], hostname);
	{
		const char *name = o.fullname;
		char gecos[256];

		if (name == NULL && pw != NULL && pw->pw_gecos != NULL &&
		    o.sender == NULL) {
			/* the GECOS field's first part, the full name */
			snprintf(gecos, sizeof(gecos), "%.*s",
			    (int)strcspn(pw->pw_gecos, ","), pw->pw_gecos);
			name = gecos;
		}
		from_value = sm_from_value(name,
		    sender[0] ? sender : "MAILER-DAEMON");
	}
	in.extract = o.extract;
	in.from_value = from_value;
	in.date_value = date;
	in.msgid_value = msgid;
	if (sm_prepare(input, inlen, &in, &msg, err, sizeof(err)) < 0)
		die(EX_DATAERR, "%s", err);
	free(input);
	free(from_value);
	for (i = 0; i < msg.rcpts.n; i++)
		sm_addrs_add(&rcpts, msg.rcpts.v[i]);
	if (rcpts.n == 0)
		die(EX_DATAERR, "no recipients in the To, Cc or Bcc headers");
	for (i = 0; i < rcpts.n; i++) {
		char *q = sm_qualify(rcpts.v[i], hostname);

		free(rcpts.v[i]);
		rcpts.v[i] = q;
		if (!sm_address_ok(q))
			die(EX_DATAERR, "bad recipient address: %s", q);
		if (has_8bit(q))
			utf8 = 1;
	}

	/* The SMTP dialogue. */
	memset(&c, 0, sizeof(c));
	c.fd = connect_to(host, port);
	code = read_reply(&c, REPLY_TIMEOUT_MS, NULL, NULL);
	if (code != 220)
		die(code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL,
		    "ferry does not take mail: %s", c.last);
	send_line(&c, "EHLO %s", hostname);
	code = read_reply(&c, REPLY_TIMEOUT_MS, ehlo_line, &e);
	if (code != 250)
		die(code >= 500 ? EX_PROTOCOL : EX_TEMPFAIL, "EHLO: %s",
		    c.last);
	if (utf8 && !e.smtputf8)
		die(EX_DATAERR, "an address is not ASCII and the server "
		    "does not offer SMTPUTF8");
	if (e.size > 0 && (long)msg.len > e.size)
		die(EX_DATAERR, "message of %zu octets is larger than the "
		    "%ld ferry accepts", msg.len, e.size);
	if (e.has_size)
		snprintf(size_param, sizeof(size_param), " SIZE=%zu", msg.len);
	send_line(&c, "MAIL FROM:<%s>%s%s%s", sender, size_param,
	    msg.eightbit && e.eightbitmime ? " BODY=8BITMIME" : "",
	    utf8 ? " SMTPUTF8" : "");
	code = read_reply(&c, REPLY_TIMEOUT_MS, NULL, NULL);
	if (code != 250)
		die(code >= 500 ? EX_DATAERR : EX_TEMPFAIL, "sender %s "
		    "refused: %s", sender[0] ? sender : "<>", c.last);
	for (i = 0; i < rcpts.n; i++) {
		send_line(&c, "RCPT TO:<%s>", rcpts.v[i]);
		code = read_reply(&c, REPLY_TIMEOUT_MS, NULL, NULL);
		if (code == 250 || code == 251) {
			accepted++;
		} else {
			warnx_("recipient %s refused: %s", rcpts.v[i],
			    c.last);
			if (code >= 500)
				perm_refused++;
			else
				temp_refused++;
		}
	}
	if (accepted == 0) {
		send_line(&c, "QUIT");
		die(temp_refused ? EX_TEMPFAIL : EX_NOUSER,
		    "no recipient was accepted; message not sent");
	}
	send_line(&c, "DATA");
	code = read_reply(&c, REPLY_TIMEOUT_MS, NULL, NULL);
	if (code != 354)
		die(code >= 500 ? EX_DATAERR : EX_TEMPFAIL, "DATA: %s",
		    c.last);
	stuffed = sm_dot_stuff(msg.data, msg.len, &stufflen);
	send_all(&c, stuffed, stufflen);
	send_all(&c, ".\r\n", 3);
	free(stuffed);
	code = read_reply(&c, DATA_END_TIMEOUT_MS, NULL, NULL);
	if (code != 250)
		die(code >= 500 ? EX_DATAERR : EX_TEMPFAIL, "message "
		    "refused: %s", c.last);
	send_line(&c, "QUIT");
	(void)wait_fd(c.fd, POLLIN, 2000);
	close(c.fd);
	sm_message_free(&msg);
	sm_addrs_free(&rcpts);
	if (perm_refused)
		return EX_NOUSER;
	if (temp_refused)
		return EX_TEMPFAIL;
	return 0;
}
