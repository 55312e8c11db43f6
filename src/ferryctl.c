/*
 * ferryctl - the admin command: sends one request over the control socket
 * to the running queue runner and prints its JSON answer, as is (--json)
 * or rendered for a terminal.  The socket is a channel (channel.h,
 * control.h): a CTL_REQUEST with the words goes out, CTL_ANSWER pieces
 * and CTL_ANSWER_END come back, and nothing else may.
 *
 *   ferryctl [-f config] [-s socket] [--json] status
 *   ferryctl ... queue list | show ID | flush [ID] | delete ID | hold ID |
 *                release ID | check | accept-loss | reopen | salvage
 *   ferryctl ... history [--sender A] [--rcpt B] [--since T] [--until T]
 *                [--status S] [--route R] [--limit N]
 *   ferryctl user hash [NAME]   (local: a password hash for the users file)
 *   ferryctl [-f config] check | ferryctl ... reload   (ferryctl_reload.c)
 *   ferryctl ... drain [--wait [--timeout T]] | undrain  (ferryctl_drain.c)
 *
 * Exit status: 0 done, 1 the daemon refused ({"ok":false}) or answered
 * something unreadable, 2 usage or configuration error, 75 (EX_TEMPFAIL)
 * the daemon cannot be reached.
 *
 * The socket is -s, else <spool_dir>/ferryctl.sock from the configuration;
 * when the file does not parse, from its spool_dir line alone, else the
 * default spool - it says which, so a bad file on disk does not stop the
 * operator.  "status" waits at most STATUS_DEADLINE_MS for the answer and
 * then says in one line that the runner is not answering.
 *
 * "queue salvage" is local: as root, with the runner stopped or refusing
 * its store, it rebuilds the database (queue_salvage.c) and then asks a
 * running runner to open the new file.
 *
 * Security stance: ferryctl holds no privilege of its own; the socket's
 * mode and the runner's peer check decide who may use it.  What it prints
 * came from mail (addresses, headers, remote replies), so every string is
 * rendered with control characters escaped: a crafted header cannot drive
 * the operator's terminal.
 */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <openssl/crypto.h>

#include "auth_users.h"
#include "channel.h"
#include "config.h"
#include "control.h"
#include "ferryctl_drain.h"
#include "ferryctl_dkim.h"
#include "ferryctl_reload.h"
#include "json_bytes.h"
#include "log.h"
#include "procfd.h"
#include "queue_salvage.h"
#include "util.h"

#define EX_OK_ 0
#define EX_REFUSED 1
#define EX_USAGE_ 2
#define EX_TEMPFAIL_ 75

#define SOCKET_NAME "ferryctl.sock"
#define ANSWER_MAX (256 * 1024 * 1024)    /* a full queue list fits */
#define CONNECT_TIMEOUT_S 5
#define ANSWER_TIMEOUT_MS 30000
#define RELOAD_ASK_MS 3000                /* one status during a reload */
#define STATUS_DEADLINE_MS 750            /* connect and answer, status: with
                                             ferryctl's own start, within 1 s */

/* How long ask() waits for the connection and the answer. */
static int64_t ask_deadline_ms = ANSWER_TIMEOUT_MS;

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferryctl [-f config] [-s socket] [--json] command\n"
	    "commands:\n"
	    "  status              the daemon's pools and queue\n"
	    "  check               check the configuration file, as ferryd -n\n"
	    "  reload              check the file, reload ferryd (root) and\n"
	    "                      wait until the new generation took over\n"
	    "  drain [--wait [--timeout T]]  stop taking SMTP sessions (new\n"
	    "                      ones get 421 4.3.2) while the queue empties;\n"
	    "                      --wait: until it is empty (exit 0) or T\n"
	    "                      (seconds, or 30s, 5m, 2h) passed (exit 1)\n"
	    "  undrain             take SMTP sessions again\n"
	    "  queue list [filters] every queued message (like mailq), asked\n"
	    "                      for page after page; filters: --sender S,\n"
	    "                      --rcpt S (part of an address, any case),\n"
	    "                      --route NAME (\"mx\" for MX delivery),\n"
	    "                      --older-than SECONDS (or --age), --state\n"
	    "                      active|hold|deferred; one page only with\n"
	    "                      --limit N (at most 500) and --after CURSOR\n"
	    "                      (the \"next\" of the page before)\n"
	    "  queue show ID       one message: envelope, headers, history\n"
	    "  queue flush [ID]    try a message (or all) again now\n"
	    "  queue hold ID       keep a message back from delivery\n"
	    "  queue release ID    let a held message go again\n"
	    "  queue delete ID     remove a message without a bounce\n"
	    "  queue check         integrity_check of the queue database\n"
	    "  queue accept-loss   after a lost WAL: accept that its mail is\n"
	    "                      gone and let the runner take mail again\n"
	    "  queue reopen        let the runner try its database again\n"
	    "  queue salvage       (root; ferry stopped or refusing) rebuild a\n"
	    "                      damaged database from what can be read\n"
	    "  history [filters]   messages that left the queue, newest first:\n"
	    "    --sender A, --rcpt B   a whole address, or @domain (any case)\n"
	    "    --since T, --until T   unix seconds, YYYY-MM-DD[THH:MM[:SS]]\n"
	    "                           (UTC), or 2h, 3d... ago\n"
	    "    --status S             sent, deferred, bounced, expired or deleted\n"
	    "    --route R              the relay host of the last attempt\n"
	    "    --limit N              at most N rows (default 100)\n"
	    "  user hash [NAME]    read a password (no echo on a terminal) and\n"
	    "                      print its yescrypt hash, or the users-file\n"
	    "                      line \"NAME:hash\" (no daemon needed)\n"
	    "  dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N] [--out FILE]\n"
	    "                      write a new DKIM key (0600) and print its\n"
	    "                      DNS TXT record (no daemon needed)\n"
	    "options:\n"
	    "  -f  configuration file (default %s)\n"
	    "  -s  control socket (default <spool_dir>/" SOCKET_NAME ")\n"
	    "  --json  print the daemon's JSON answer as is\n",
	    CONFIG_DEFAULT_PATH);
}

/* --- the commands it knows (the daemon checks them again) -------------- */

enum arg_kind { ARG_NONE, ARG_QID, ARG_OPT_QID };

static const struct command {
	const char *word1, *word2;
	enum arg_kind arg;
} commands[] = {
	{ "status", NULL, ARG_NONE },
	{ "queue", "list", ARG_NONE },
	{ "queue", "show", ARG_QID },
	{ "queue", "flush", ARG_OPT_QID },
	{ "queue", "delete", ARG_QID },
	{ "queue", "hold", ARG_QID },
	{ "queue", "release", ARG_QID },
	{ "queue", "check", ARG_NONE },
	{ "queue", "accept-loss", ARG_NONE },
	{ "queue", "reopen", ARG_NONE },
	{ "queue", "salvage", ARG_NONE },
	{ "history", NULL, ARG_NONE },
};

/* The command argv names, or NULL after saying what is wrong. */
static const struct command *
find_command(int argc, char **argv)
{
	size_t i;
	int used, nargs;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];

		if (strcmp(c->word1, argv[0]) != 0)
			continue;
		if (c->word2 != NULL && (argc < 2 ||
		    strcmp(c->word2, argv[1]) != 0))
			continue;
		used = c->word2 != NULL ? 2 : 1;
		nargs = argc - used;
		if ((c->arg == ARG_NONE && nargs != 0) ||
		    (c->arg == ARG_QID && nargs != 1) ||
		    (c->arg == ARG_OPT_QID && nargs > 1)) {
			fprintf(stderr, "usage: ferryctl [-f config] "
			    "[-s socket] [--json] %s%s%s%s\n", c->word1,
			    c->word2 != NULL ? " " : "",
			    c->word2 != NULL ? c->word2 : "",
			    c->arg == ARG_QID ? " ID" :
			    c->arg == ARG_OPT_QID ? " [ID]" : "");
			return NULL;
		}
		return c;
	}
	usage(stderr);
	return NULL;
}

/* The request's words are printable ASCII without white space, and the
 * CTL_REQUEST they make fits CONTROL_REQUEST_MAX (control.h): 0, or -1. */
static int
check_request(int argc, char **argv)
{
	size_t size = 4;                /* the count */
	int i;

	for (i = 0; i < argc; i++) {
		const char *p;

		for (p = argv[i]; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' ||
			    (unsigned char)*p > 0x7e)
				return -1;
		size += 4 + strlen(argv[i]);
	}
	return size <= CONTROL_REQUEST_MAX ? 0 : -1;
}

/* --- talking to the daemon ------------------------------------------------- */

/* What the runner may send on the control socket: the answer's pieces
 * and its end. */
static const struct channel_rule runner_may_send[] = {
	{ IMSG_CTL_ANSWER, 0 },
	{ IMSG_CTL_ANSWER_END, 0 },
	{ 0, 0 }
};

/* Reads the answer's pieces up to CTL_ANSWER_END into *ans (malloc'd,
 * NUL-terminated), by deadline.  EX_OK_, or an exit status after saying
 * why. */
static int
read_answer(struct channel *ch, const char *path, int64_t deadline,
    char **ans, size_t *anslen)
{
	size_t len = 0, cap = 64 * 1024;
	char *buf = xmalloc(cap + 1);
	struct ipc_in in;
	int got;

	while ((got = channel_read_wait(ch, &in, deadline)) == 1) {
		const uint8_t *p;
		size_t n;

		if (in.type == IMSG_CTL_ANSWER_END) {
			if (ipc_end(&in) < 0)
				break;
			if (len == 0) {
				fprintf(stderr, "ferryctl: empty answer from "
				    "%s\n", path);
				free(buf);
				return EX_REFUSED;
			}
			buf[len] = '\0';
			*ans = buf;
			*anslen = len;
			return EX_OK_;
		}
		if (ipc_get_data(&in, &p, &n) < 0 || ipc_end(&in) < 0)
			break;
		if (n > ANSWER_MAX - len) {
			fprintf(stderr, "ferryctl: the answer is larger than "
			    "%d bytes\n", ANSWER_MAX);
			free(buf);
			return EX_REFUSED;
		}
		if (len + n > cap) {
			while (len + n > cap)
				cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		memcpy(buf + len, p, n);
		len += n;
	}
	free(buf);
	if (got == 1) {                 /* a frame that does not decode */
		(void)channel_violation(ch, "a malformed answer");
		return EX_REFUSED;
	}
	if (ch->fd < 0)                 /* a frame it may not send: said */
		return EX_REFUSED;
	if (!ch->eof && now_ms() >= deadline &&
	    ask_deadline_ms < ANSWER_TIMEOUT_MS) {
		fprintf(stderr, "ferryctl: the queue runner did not answer "
		    "within %lld ms on %s: it is down or restarting (see the "
		    "log)\n", (long long)ask_deadline_ms, path);
		return EX_TEMPFAIL_;
	}
	fprintf(stderr, "ferryctl: no answer from %s: %s\n", path,
	    ch->eof ? "the connection was closed" :
	    now_ms() >= deadline ? "timed out" : ch->error);
	return EX_TEMPFAIL_;
}

/* Sends the request (the words) and reads the answer into *ans (malloc'd,
 * NUL-terminated), all within ask_deadline_ms.  EX_OK_, or an exit status
 * after saying why. */
static int
ask(const char *path, int argc, char *const *argv, char **ans,
    size_t *anslen)
{
	int64_t deadline = now_ms() + ask_deadline_ms, send_by;
	struct sockaddr_un sun;
	struct timeval tv;
	struct channel ch;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "ferryctl: socket path too long: %s\n", path);
		return EX_USAGE_;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "ferryctl: socket: %s\n", strerror(errno));
		return EX_TEMPFAIL_;
	}
	/* connect (a full backlog) waits at most this long */
	memset(&tv, 0, sizeof(tv));
	tv.tv_sec = CONNECT_TIMEOUT_S;
	if (ask_deadline_ms < CONNECT_TIMEOUT_S * 1000) {
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)ask_deadline_ms * 1000;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "ferryctl: cannot connect to %s: %s "
		    "(is ferryd running?)\n", path, strerror(errno));
		close(fd);
		return EX_TEMPFAIL_;
	}
	channel_init(&ch, fd, "the queue runner (control socket)",
	    runner_may_send, CONTROL_ANSWER_FRAME_MAX, 0);
	control_request_encode(channel_begin(&ch, IMSG_CTL_REQUEST), argc,
	    argv);
	(void)channel_end(&ch);
	send_by = now_ms() + CONNECT_TIMEOUT_S * 1000;
	if (send_by > deadline)
		send_by = deadline;
	if (channel_flush_wait(&ch, send_by) < 0) {
		fprintf(stderr, "ferryctl: cannot send to %s: %s "
		    "(is ferryd running?)\n", path, ch.error);
		channel_free(&ch);
		return EX_TEMPFAIL_;
	}
	rc = read_answer(&ch, path, deadline, ans, anslen);
	channel_free(&ch);
	return rc;
}

/* "status" for ferryctl reload (ferryctl_reload.h). */
static int
ask_status(const char *sock, char **ans, size_t *anslen)
{
	char w_status[] = "status";
	char *const req[] = { w_status };

	ask_deadline_ms = RELOAD_ASK_MS;
	return ask(sock, 1, req, ans, anslen);
}

/* One request of ferryctl drain / undrain (ferryctl_drain.h): each is
 * short, and the waits between them are ferryctl_drain.c's. */
static int
ask_drain_step(const char *sock, int argc, char *const *argv, char **ans,
    size_t *anslen)
{
	ask_deadline_ms = RELOAD_ASK_MS;
	return ask(sock, argc, argv, ans, anslen);
}

/* --- printing what mail carried, safely ------------------------------------ */

/* Writes s (len bytes, valid UTF-8 from the parser) with control
 * characters - C0, DEL and C1, which a terminal may act on - as \xNN.
 * With multiline, LF and TAB pass and a CR before an LF is dropped. */
static void
put_safe(FILE *fp, const char *s, size_t len, int multiline)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (multiline && (c == '\n' || c == '\t')) {
			putc(c, fp);
			continue;
		}
		if (multiline && c == '\r' && i + 1 < len && p[i + 1] == '\n')
			continue;
		if (c < 0x20 || c == 0x7f) {
			fprintf(fp, "\\x%02x", c);
			continue;
		}
		if (c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f) {
			fprintf(fp, "\\u%04x", p[i + 1]);
			i++;
			continue;
		}
		putc(c, fp);
	}
}

/* A multi-line text, each line after indent. */
static void
put_indented(FILE *fp, const char *indent, const char *s, size_t len)
{
	const char *nl;

	while (len > 0) {
		size_t n;

		nl = memchr(s, '\n', len);
		n = nl != NULL ? (size_t)(nl - s) + 1 : len;
		fputs(indent, fp);
		put_safe(fp, s, n, 1);
		if (nl == NULL)
			putc('\n', fp);
		s += n;
		len -= n;
	}
}

static void
put_str(FILE *fp, const json_t *v)
{
	if (json_is_string(v))
		put_safe(fp, json_string_value(v), json_string_length(v), 0);
	else
		fputs("-", fp);
}

static const json_t *
member(const json_t *o, const char *key, json_type t)
{
	const json_t *v = json_object_get(o, key);

	return v != NULL && json_typeof(v) == t ? v : NULL;
}

/* "45s", "12m", "3h05m", "2d04h". */
static void
fmt_span(char *out, size_t n, double secs)
{
	long s = secs < 0 ? 0 : (long)secs;

	if (s < 60)
		snprintf(out, n, "%lds", s);
	else if (s < 3600)
		snprintf(out, n, "%ldm", s / 60);
	else if (s < 86400)
		snprintf(out, n, "%ldh%02ldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, n, "%ldd%02ldh", s / 86400, s % 86400 / 3600);
}

static void
fmt_time(char *out, size_t n, double t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t < 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, n, "-");
}

/* When something is next due, as seen from now: "now", "in 4m", "-". */
static void
fmt_next(char *out, size_t n, double t, double now)
{
	char span[32];

	if (t < 0)
		snprintf(out, n, "-");
	else if (t <= now)
		snprintf(out, n, "now");
	else {
		fmt_span(span, sizeof(span), t - now);
		snprintf(out, n, "in %s", span);
	}
}

static void
put_sender(FILE *fp, const json_t *v)
{
	putc('<', fp);
	if (json_is_string(v))
		put_safe(fp, json_string_value(v), json_string_length(v), 0);
	putc('>', fp);
}

/* --- rendering ----------------------------------------------------------- */

/* A message's state for a table column: one of the words we know. */
static const char *
state_word(const json_t *m)
{
	static const char *const known[] = { "active", "hold" };
	const char *s = json_member_str(m, "state", "-");
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(s, known[i]) == 0)
			return known[i];
	return "?";
}

static double
server_now(const json_t *root)
{
	return json_member_num(root, "now", (double)time(NULL));
}

/* "83 MB" */
static void
fmt_bytes(char *out, size_t n, double b)
{
	if (b >= 10.0 * 1024 * 1024 * 1024)
		snprintf(out, n, "%.0f GB", b / (1024.0 * 1024 * 1024));
	else if (b >= 10.0 * 1024 * 1024)
		snprintf(out, n, "%.0f MB", b / (1024.0 * 1024));
	else if (b >= 10.0 * 1024)
		snprintf(out, n, "%.0f KB", b / 1024.0);
	else
		snprintf(out, n, "%.0f bytes", b);
}

/* The store's health: one line for commits, one for intake when it is
 * refused. */
static void
render_store(const json_t *root)
{
	const json_t *st = member(root, "store", JSON_OBJECT);
	const json_t *state, *err;
	double since, unsaved, freeb, minb;
	char when[64], f[32], m[32];

	if (st == NULL || (state = member(st, "state", JSON_STRING)) == NULL)
		return;
	since = json_member_num(st, "failing_since", -1);
	unsaved = json_member_num(st, "outcomes_unsaved", 0);
	freeb = json_member_num(st, "free_bytes", -1);
	minb = json_member_num(st, "min_free_bytes", -1);
	err = member(st, "error", JSON_STRING);
	if (strcmp(json_string_value(state), "failing") == 0) {
		time_t tt = (time_t)since;
		struct tm tm;

		if (since < 0 || localtime_r(&tt, &tm) == NULL ||
		    strftime(when, sizeof(when), "%H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "?");
		printf("store:   commits failing since %s (", when);
		if (err != NULL)
			put_str(stdout, err);
		printf("), %.0f attempt(s); no delivery is started",
		    json_member_num(st, "commit_failures", 0));
		if (unsaved > 0)
			printf("; %.0f outcome(s) wait to be recorded",
			    unsaved);
		printf("\n");
		printf("intake:  refusing while commits fail\n");
		return;
	}
	if (freeb >= 0 && minb >= 0) {
		fmt_bytes(f, sizeof(f), freeb);
		fmt_bytes(m, sizeof(m), minb);
		printf("store:   ok, %s free (min_free %s)\n", f, m);
	} else {
		printf("store:   ok\n");
	}
	if (strcmp(json_string_value(state), "low_space") == 0 &&
	    freeb >= 0 && minb >= 0) {
		fmt_bytes(f, sizeof(f), freeb);
		fmt_bytes(m, sizeof(m), minb);
		printf("intake:  refusing, %s free, below min_free %s\n", f,
		    m);
	}
}

/* Per route: results since the runner started, the last error. */
static void
render_routes(const json_t *root, double now)
{
	const json_t *routes = member(root, "routes", JSON_ARRAY);
	size_t i;

	for (i = 0; routes != NULL && i < json_array_size(routes); i++) {
		const json_t *r = json_array_get(routes, i);
		const json_t *err = member(r, "last_error", JSON_STRING);
		double at = json_member_num(r, "last_error_at", -1);
		char when[64], span[32];

		printf("%-8s ", i == 0 ? "routes:" : "");
		put_str(stdout, member(r, "route", JSON_STRING));
		printf(": %.0f sent, %.0f deferred, %.0f bounced, %.0f "
		    "expired\n", json_member_num(r, "sent", 0),
		    json_member_num(r, "deferred", 0),
		    json_member_num(r, "bounced", 0),
		    json_member_num(r, "expired", 0));
		if (err != NULL && json_string_length(err) > 0 && at >= 0) {
			fmt_time(when, sizeof(when), at);
			fmt_span(span, sizeof(span), now - at);
			printf("           last error %s (%s ago): ", when,
			    span);
			put_str(stdout, err);
			putchar('\n');
		}
	}
}

/* OAuth2 routes: the token's state, why it failed, when it expires. */
static void
render_oauth2(const json_t *root, double now)
{
	const json_t *arr = member(root, "oauth2", JSON_ARRAY);
	size_t i;

	for (i = 0; arr != NULL && i < json_array_size(arr); i++) {
		const json_t *o = json_array_get(arr, i);
		const json_t *why = member(o, "reason", JSON_STRING);
		double at = json_member_num(o, "expires_at", -1);
		char when[64], span[32];

		printf("%-8s ", i == 0 ? "oauth2:" : "");
		put_str(stdout, member(o, "route", JSON_STRING));
		printf(": token ");
		put_str(stdout, member(o, "state", JSON_STRING));
		if (at >= 0) {
			fmt_time(when, sizeof(when), at);
			fmt_span(span, sizeof(span), at > now ? at - now : 0);
			printf(", expires %s (in %s)", when, span);
		}
		printf(", %.0f refresh(es), %.0f failed\n",
		    json_member_num(o, "refresh_ok", 0),
		    json_member_num(o, "refresh_failed", 0));
		if (why != NULL && json_string_length(why) > 0) {
			printf("           ");
			put_str(stdout, why);
			putchar('\n');
		}
	}
}

/* Smarthost pools: each host's state (up, open until T, probing), its
 * failures in a row and last error. */
static void
render_pools(const json_t *root, double now)
{
	const json_t *pools = member(root, "pools", JSON_ARRAY);
	size_t i, k;

	for (i = 0; pools != NULL && i < json_array_size(pools); i++) {
		const json_t *p = json_array_get(pools, i);
		const json_t *hosts = member(p, "hosts", JSON_ARRAY);

		printf("%-8s route ", i == 0 ? "pools:" : "");
		put_str(stdout, member(p, "route", JSON_STRING));
		putchar('\n');
		for (k = 0; hosts != NULL && k < json_array_size(hosts);
		    k++) {
			const json_t *h = json_array_get(hosts, k);
			const json_t *state = member(h, "state", JSON_STRING);
			const json_t *err = member(h, "last_error",
			    JSON_STRING);
			double until = json_member_num(h, "open_until", -1);
			char when[64], span[32];

			printf("           ");
			put_str(stdout, member(h, "host", JSON_STRING));
			printf(" (priority %.0f, weight %.0f): ",
			    json_member_num(h, "priority", 0),
			    json_member_num(h, "weight", 1));
			if (state != NULL && strcmp(json_string_value(state),
			    "open") == 0 && until >= 0) {
				fmt_time(when, sizeof(when), until);
				fmt_span(span, sizeof(span), until > now ?
				    until - now : 0);
				printf("open until %s (in %s)", when, span);
			} else {
				put_str(stdout, state);
			}
			printf(", %.0f failure(s) in a row",
			    json_member_num(h, "failures", 0));
			if (err != NULL && json_string_length(err) > 0) {
				printf(", last error: ");
				put_str(stdout, err);
			}
			putchar('\n');
		}
	}
}

/* Routes with rate shaping: rate, tokens left, waiting, back-off. */
static void
render_shaping(const json_t *root)
{
	const json_t *list = member(root, "shaping", JSON_ARRAY);
	size_t i;

	for (i = 0; list != NULL && i < json_array_size(list); i++) {
		const json_t *r = json_array_get(list, i);
		const json_t *q = member(r, "quotas", JSON_OBJECT);
		double rate = json_member_num(r, "rate", -1);
		double level = json_member_num(r, "backoff_level", 0);
		void *it;

		printf("%-8s ", i == 0 ? "shaping:" : "");
		put_str(stdout, member(r, "route", JSON_STRING));
		if (rate > 0)
			printf(": rate %.3g/s", rate);
		else
			printf(": rate unlimited");
		if (json_member_num(r, "connections", 0) > 0)
			printf(", %.0f connection(s)",
			    json_member_num(r, "connections", 0));
		printf(", %.0f waiting, back-off level %.0f%s",
		    json_member_num(r, "waiting", 0), level,
		    json_member_num(r, "paused_until", -1) > 0 ?
		    " (paused)" : "");
		printf(", %.0f throttle(s)\n",
		    json_member_num(r, "throttles", 0));
		if (q == NULL || json_object_size(q) == 0)
			continue;
		printf("           tokens left:");
		for (it = json_object_iter((json_t *)q); it != NULL;
		    it = json_object_iter_next((json_t *)q, it)) {
			const json_t *b = json_object_iter_value(it);
			const char *key = json_object_iter_key(it);

			printf(" ");
			put_safe(stdout, key, strlen(key), 0);
			printf(" %.1f of %.0f", json_member_num(b, "tokens", 0),
			    json_member_num(b, "limit", 0));
		}
		putchar('\n');
	}
}

/* What each route's upstream offered in its EHLO. */
static void
render_upstreams(const json_t *root)
{
	const json_t *list = member(root, "upstreams", JSON_ARRAY);
	size_t i;

	for (i = 0; list != NULL && i < json_array_size(list); i++) {
		const json_t *u = json_array_get(list, i);

		printf("%-9s ", i == 0 ? "upstream:" : "");
		put_str(stdout, member(u, "route", JSON_STRING));
		printf(" offers ");
		put_str(stdout, member(u, "offers", JSON_STRING));
		putchar('\n');
	}
}

/* ferry-anvil: connections and clients now, stress, limits met. */
static void
render_anvil(const json_t *root)
{
	const json_t *a = member(root, "anvil", JSON_OBJECT);
	const json_t *hits;
	const char *sep = "";
	void *it;

	if (a == NULL)
		return;
	if (member(a, "running", JSON_TRUE) == NULL) {
		printf("anvil:   not running (started when a session asks; "
		    "while it cannot be, the workers allow everything)\n");
		return;
	}
	printf("anvil:   %.0f connection(s) from %.0f client(s), stress "
	    "%s (entered %.0f time(s))\n", json_member_num(a, "connections",
	    0), json_member_num(a, "clients", 0),
	    member(a, "stress", JSON_TRUE) != NULL ? "on" : "off",
	    json_member_num(a, "stress_entered", 0));
	hits = member(a, "limit_hits", JSON_OBJECT);
	printf("         limits met:");
	for (it = hits != NULL ? json_object_iter((json_t *)hits) : NULL;
	    it != NULL; it = json_object_iter_next((json_t *)hits, it)) {
		const json_t *v = json_object_iter_value(it);

		const char *key = json_object_iter_key(it);

		printf("%s ", sep);
		put_safe(stdout, key, strlen(key), 0);
		printf(" %.0f", json_is_number(v) ? json_number_value(v) : 0);
		sep = ",";
	}
	putchar('\n');
}

/* The stall warning, when the queue is stalled. */
static void
render_stall(const json_t *root)
{
	const json_t *st = member(root, "stall", JSON_OBJECT);
	const json_t *age, *stall;
	char span[32];

	if (st == NULL)
		return;
	age = member(st, "age", JSON_TRUE);
	stall = member(st, "stall", JSON_TRUE);
	if (age == NULL && stall == NULL)
		return;
	printf("stalled: ");
	if (age != NULL) {
		fmt_span(span, sizeof(span), json_member_num(st, "warn_age",
		    0));
		printf("the oldest message is older than warn_age (%s)%s",
		    span, stall != NULL ? "; " : "");
	}
	if (stall != NULL) {
		fmt_span(span, sizeof(span), json_member_num(st, "warn_stall",
		    0));
		printf("nothing delivered for warn_stall (%s) while mail "
		    "waits", span);
	}
	putchar('\n');
}

static void
render_status(const json_t *root)
{
	const json_t *wk = member(root, "workers", JSON_OBJECT);
	const json_t *ag = member(root, "agents", JSON_OBJECT);
	const json_t *q = member(root, "queue", JSON_OBJECT);
	const json_t *in = member(root, "intake", JSON_OBJECT);
	const json_t *ms = member(root, "master", JSON_OBJECT);
	double now = server_now(root), oldest;
	char when[64], span[32];

	if (ms != NULL)
		printf("ferryd:  pid %.0f, configuration generation %.0f%s\n",
		    json_member_num(ms, "pid", 0),
		    json_member_num(ms, "generation", 0),
		    json_is_true(json_object_get(ms, "draining")) ?
		    "; draining (new SMTP sessions get 421 4.3.2)" : "");
	if (wk != NULL && json_member_num(wk, "total", -1) >= 0)
		printf("workers: %.0f busy of %.0f\n",
		    json_member_num(wk, "busy", 0),
		    json_member_num(wk, "total", 0));
	else
		printf("workers: unknown\n");
	if (ag != NULL)
		printf("agents:  %.0f busy of %.0f\n",
		    json_member_num(ag, "busy", 0),
		    json_member_num(ag, "total", 0));
	if (q != NULL) {
		printf("queue:   %.0f message(s) (%.0f active, %.0f on hold), "
		    "%.0f recipient(s) pending\n",
		    json_member_num(q, "messages", 0),
		    json_member_num(q, "active", 0),
		    json_member_num(q, "hold", 0),
		    json_member_num(q, "recipients_pending", 0));
		oldest = json_member_num(q, "oldest_received_at", -1);
		if (oldest >= 0) {
			fmt_time(when, sizeof(when), oldest);
			fmt_span(span, sizeof(span), now - oldest);
			printf("oldest:  %s (%s ago)\n", when, span);
		}
	}
	if (in != NULL)
		printf("intake:  %.0f message(s) in %.0f commit(s) since "
		    "start\n", json_member_num(in, "messages", 0),
		    json_member_num(in, "commits", 0));
	render_store(root);
	render_anvil(root);
	render_stall(root);
	render_routes(root, now);
	render_oauth2(root, now);
	render_pools(root, now);
	render_shaping(root);
	render_upstreams(root);
}

/* Prints one page of the list (the header before the first message);
 * counts what it printed into *shown and *pending. */
static void
render_list_page(const json_t *root, size_t *shown, double *pending)
{
	const json_t *msgs = member(root, "messages", JSON_ARRAY);
	double now = server_now(root);
	size_t i, j;

	for (i = 0; msgs != NULL && i < json_array_size(msgs); i++) {
		const json_t *m = json_array_get(msgs, i);
		const json_t *rc = member(m, "recipients",
		    JSON_ARRAY);
		const json_t *reply = member(m, "last_reply",
		    JSON_STRING);
		double total = json_member_num(m, "recipients_total", 0);
		char age[32], next[48];

		fmt_span(age, sizeof(age), json_member_num(m, "age", 0));
		fmt_next(next, sizeof(next), json_member_num(m, "next_attempt",
		    -1), now);
		if ((*shown)++ == 0)
			printf("%-12s  %6s  %10s  %-6s  %-8s  %s\n", "ID", "AGE",
			    "SIZE", "STATE", "NEXT", "SENDER");
		*pending += json_member_num(m, "pending", 0);
		put_str(stdout, member(m, "id", JSON_STRING));
		printf("  %6s  %10.0f  %-6s  %-8s  ", age,
		    json_member_num(m, "size", 0), state_word(m), next);
		put_sender(stdout, member(m, "sender", JSON_STRING));
		putchar('\n');
		if (reply != NULL) {
			printf("    (");
			put_str(stdout, reply);
			printf(")\n");
		}
		for (j = 0; rc != NULL && j < json_array_size(rc); j++) {
			printf("    ");
			put_str(stdout, json_array_get(rc, j));
			putchar('\n');
		}
		if (rc != NULL && total > (double)json_array_size(rc))
			printf("    ... and %.0f more\n",
			    total - (double)json_array_size(rc));
		putchar('\n');
	}
}

static void
render_list(const json_t *root)
{
	const json_t *next = member(root, "next", JSON_STRING);
	double pending = 0;
	size_t shown = 0;

	render_list_page(root, &shown, &pending);
	if (shown == 0 && next == NULL) {
		printf("Mail queue is empty\n");
		return;
	}
	printf("-- %zu message(s), %.0f recipient(s) pending", shown, pending);
	if (next != NULL) {
		printf(" (more: --after ");
		put_str(stdout, next);
		putchar(')');
	}
	putchar('\n');
}

static void
render_notify(const json_t *r)
{
	const json_t *n = member(r, "dsn_notify", JSON_ARRAY);
	const json_t *orcpt = member(r, "dsn_orcpt", JSON_STRING);
	size_t i;

	if (n == NULL && orcpt == NULL)
		return;
	printf("      dsn:");
	if (n != NULL) {
		printf(" notify=");
		for (i = 0; i < json_array_size(n); i++) {
			if (i > 0)
				putchar(',');
			put_str(stdout, json_array_get(n, i));
		}
	}
	if (orcpt != NULL) {
		printf(" orcpt=");
		put_str(stdout, orcpt);
	}
	putchar('\n');
}

static void
render_history(const json_t *r)
{
	const json_t *h = member(r, "history", JSON_ARRAY);
	double total = json_member_num(r, "history_total", 0);
	size_t i;

	if (h == NULL || json_array_size(h) == 0)
		return;
	if (total > (double)json_array_size(h))
		printf("      (%.0f earlier attempt(s) not shown)\n",
		    total - (double)json_array_size(h));
	for (i = 0; i < json_array_size(h); i++) {
		const json_t *a = json_array_get(h, i);
		const json_t *tls = member(a, "tls", JSON_STRING);
		char when[64];

		fmt_time(when, sizeof(when), json_member_num(a, "at", -1));
		printf("      %s  ", when);
		put_str(stdout, member(a, "status", JSON_STRING));
		printf("  ");
		put_str(stdout, member(a, "dsn", JSON_STRING));
		printf("  relay=");
		put_str(stdout, member(a, "relay", JSON_STRING));
		if (tls != NULL) {
			printf(" tls=");
			put_str(stdout, tls);
		}
		printf("\n        ");
		put_str(stdout, member(a, "reply", JSON_STRING));
		putchar('\n');
	}
}

/* "  label:  value\n" when the member is a string. */
static void
render_field(const json_t *m, const char *label, const char *key)
{
	const json_t *v = member(m, key, JSON_STRING);

	if (v == NULL)
		return;
	printf("  %-10s ", label);
	put_str(stdout, v);
	putchar('\n');
}

static void
render_show(const json_t *root)
{
	const json_t *m = member(root, "message", JSON_OBJECT);
	const json_t *rc, *hd;
	double now = server_now(root), recv_at, sd;
	char when[64], span[32], next[48];
	size_t i;

	if (m == NULL) {
		printf("(no message in the answer)\n");
		return;
	}
	recv_at = json_member_num(m, "received_at", -1);
	fmt_time(when, sizeof(when), recv_at);
	fmt_span(span, sizeof(span), now - recv_at);
	printf("Message ");
	put_str(stdout, member(m, "id", JSON_STRING));
	printf(" (");
	put_str(stdout, member(m, "state", JSON_STRING));
	printf(")\n");
	render_field(m, "held:", "hold_reason");
	printf("  %-10s %s (%s ago)\n", "received:", when, span);
	printf("  %-10s %.0f bytes\n", "size:", json_member_num(m, "size", 0));
	printf("  %-10s ", "sender:");
	put_sender(stdout, member(m, "sender", JSON_STRING));
	printf("\n  %-10s ", "client:");
	put_str(stdout, member(m, "client_name", JSON_STRING));
	printf(" [");
	put_str(stdout, member(m, "client_addr", JSON_STRING));
	printf("] helo=");
	put_str(stdout, member(m, "helo", JSON_STRING));
	printf(" ");
	put_str(stdout, member(m, "protocol", JSON_STRING));
	putchar('\n');
	render_field(m, "auth:", "auth_user");
	render_field(m, "body:", "body_type");
	if (json_member_bool(m, "smtputf8", 0))
		printf("  %-10s yes\n", "smtputf8:");
	if ((sd = json_member_num(m, "size_declared", -1)) >= 0)
		printf("  %-10s %.0f bytes\n", "declared:", sd);
	render_field(m, "dsn ret:", "dsn_ret");
	render_field(m, "envid:", "dsn_envid");
	render_field(m, "bounce of:", "dsn_of");
	if (json_member_bool(m, "warned", 0))
		printf("  %-10s sent\n", "warning:");

	hd = member(m, "headers", JSON_STRING);
	printf("\nHeaders%s:\n", json_member_bool(m, "headers_truncated", 0) ?
	    " (truncated)" : "");
	if (json_string_length(hd) > 0)
		put_indented(stdout, "  ", json_string_value(hd),
		    json_string_length(hd));

	rc = member(m, "recipients", JSON_ARRAY);
	printf("\nRecipients (%.0f):\n", json_member_num(m, "recipients_total",
	    rc != NULL ? (double)json_array_size(rc) : 0));
	for (i = 0; rc != NULL && i < json_array_size(rc); i++) {
		const json_t *r = json_array_get(rc, i);
		const json_t *lr = member(r, "last_reply",
		    JSON_STRING);
		double na = json_member_num(r, "next_attempt", -1);

		printf("  ");
		put_sender(stdout, member(r, "address", JSON_STRING));
		printf(": ");
		put_str(stdout, member(r, "state", JSON_STRING));
		printf(", %.0f attempt(s)", json_member_num(r, "attempts", 0));
		if (na >= 0 && strcmp(json_member_str(r, "state", ""),
		    "pending") == 0) {
			fmt_time(when, sizeof(when), na);
			fmt_next(next, sizeof(next), na, now);
			printf(", next %s (%s)", when, next);
		}
		putchar('\n');
		render_notify(r);
		if (lr != NULL) {
			printf("      last: ");
			put_str(stdout, member(r, "last_dsn", JSON_STRING));
			printf(" ");
			put_str(stdout, lr);
			putchar('\n');
		}
		render_history(r);
	}
	if (rc != NULL && json_member_num(m, "recipients_total", 0) >
	    (double)json_array_size(rc))
		printf("  ... %.0f more recipient(s) not shown\n",
		    json_member_num(m, "recipients_total", 0) -
		    (double)json_array_size(rc));
}

static void
render_changed(int argc, char **argv, const json_t *root)
{
	double n = json_member_num(root, "changed", 0);
	const char *verb = argv[1];

	if (strcmp(verb, "flush") == 0) {
		if (argc > 2)
			printf("%s: %s\n", argv[2], n > 0 ? "due now" :
			    "nothing pending");
		else
			printf("%.0f message(s) due now\n", n);
		return;
	}
	printf("%s: %s\n", argv[2], strcmp(verb, "hold") == 0 ? "on hold" :
	    strcmp(verb, "release") == 0 ? "released" : "deleted");
}

/* --- history: the options become key=value words ------------------------- */

/* The filters given, in the order of the keys; NULL when not given. */
static const char *const history_keys[] = { "sender", "rcpt", "since",
    "until", "status", "route", "limit" };
#define HISTORY_NKEYS (sizeof(history_keys) / sizeof(history_keys[0]))
static const char *history_opts[HISTORY_NKEYS];

/* A time for --since/--until as unix seconds in out: unix seconds,
 * YYYY-MM-DD[THH:MM[:SS]] in UTC, or a duration with a unit ago. */
static int
history_time(const char *v, char *out, size_t outlen)
{
	static const char *const formats[] = { "%Y-%m-%dT%H:%M:%S",
	    "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
	int64_t secs;
	struct tm tm;
	const char *end;
	size_t i;

	if (v[0] == '\0')
		return -1;
	if (strspn(v, "0123456789") == strlen(v) && strlen(v) <= 12) {
		snprintf(out, outlen, "%s", v);
		return 0;
	}
	if (config_parse_duration(v, &secs) == 0) {
		snprintf(out, outlen, "%lld", (long long)(time(NULL) - secs));
		return 0;
	}
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(v, formats[i], &tm);
		if (end != NULL && *end == '\0') {
			time_t t = timegm(&tm);

			if (t < 0)
				return -1;
			snprintf(out, outlen, "%lld", (long long)t);
			return 0;
		}
	}
	return -1;
}

/* The request's words for history into words (argv[0] first): EX_OK_ or
 * EX_USAGE_ after saying why.  The strings are static or malloc'd for
 * the life of the process. */
static int
history_words(char **words, int *nw)
{
	size_t k;
	char t[32];

	*nw = 0;
	words[(*nw)++] = (char *)"history";
	for (k = 0; k < HISTORY_NKEYS; k++) {
		const char *v = history_opts[k];
		char *w;

		if (v == NULL)
			continue;
		if (strcmp(history_keys[k], "since") == 0 ||
		    strcmp(history_keys[k], "until") == 0) {
			if (history_time(v, t, sizeof(t)) < 0) {
				fprintf(stderr, "ferryctl: --%s: not unix "
				    "seconds, YYYY-MM-DD[THH:MM[:SS]] or a "
				    "duration ago (2h, 3d): %s\n",
				    history_keys[k], v);
				return EX_USAGE_;
			}
			v = t;
		}
		w = xmalloc(strlen(history_keys[k]) + strlen(v) + 2);
		sprintf(w, "%s=%s", history_keys[k], v);
		words[(*nw)++] = w;
	}
	return EX_OK_;
}

static void
render_history_rows(const json_t *root)
{
	const json_t *rows = member(root, "history", JSON_ARRAY);
	size_t i;

	if (rows == NULL || json_array_size(rows) == 0) {
		printf("No matching history\n");
		return;
	}
	for (i = 0; i < json_array_size(rows); i++) {
		const json_t *r = json_array_get(rows, i);
		const json_t *relay = member(r, "relay", JSON_STRING);
		char when[64];

		fmt_time(when, sizeof(when), json_member_num(r, "left_at", -1));
		printf("%s  ", when);
		put_str(stdout, member(r, "id", JSON_STRING));
		printf("  %-8s ", json_member_str(r, "status", "?"));
		put_sender(stdout, member(r, "sender", JSON_STRING));
		printf(" -> ");
		put_sender(stdout, member(r, "recipient", JSON_STRING));
		printf("\n    delay=%.1f, attempts=%.0f, dsn=",
		    json_member_num(r, "delay", 0),
		    json_member_num(r, "attempts", 0));
		put_str(stdout, member(r, "dsn", JSON_STRING));
		printf(", relay=");
		put_str(stdout, relay);
		printf(" (");
		put_str(stdout, member(r, "reply", JSON_STRING));
		printf(")\n");
	}
	printf("-- %zu row(s)%s\n", json_array_size(rows),
	    json_member_bool(root, "truncated", 0) ?
	    " (more match: use --limit or narrow the filters)" : "");
}

/* --- main -------------------------------------------------------------- */

static char *
socket_in(const char *spool_dir)
{
	size_t n = strlen(spool_dir) + sizeof("/" SOCKET_NAME);
	char *path = xmalloc(n);

	snprintf(path, n, "%s/%s", spool_dir, SOCKET_NAME);
	return path;
}

/* The top-level "spool_dir = ..." line of a file that does not parse as
 * a whole (the value quoted or bare, no escapes); 0 with it in out, or
 * -1. */
static int
spool_dir_line(const char *config_path, char *out, size_t outlen)
{
	FILE *fp = fopen(config_path, "r");
	char line[4096];
	int depth = 0, found = -1;

	if (fp == NULL)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), fp) != NULL) {
		char *p = line + strspn(line, " \t"), *e;

		if (depth == 0 && strncmp(p, "spool_dir", 9) == 0) {
			p += 9 + strspn(p + 9, " \t");
			if (*p++ != '=')
				continue;
			p += strspn(p, " \t");
			if (*p == '"')
				e = strchr(++p, '"');
			else
				e = p + strcspn(p, " \t\r\n#");
			if (e != NULL && e > p && *p == '/' &&
			    (size_t)(e - p) < outlen && memchr(p, '\\',
			    (size_t)(e - p)) == NULL) {
				snprintf(out, outlen, "%.*s", (int)(e - p), p);
				found = 0;
			}
			continue;
		}
		for (; *p != '\0' && *p != '#'; p++)
			depth += *p == '{' ? 1 : *p == '}' ? -1 : 0;
	}
	fclose(fp);
	return found;
}

/* The control socket from the configuration; when the file does not
 * parse, from its spool_dir line, else from the default spool, saying
 * which on stderr (the daemon runs with what it loaded, not with what
 * is on disk now). */
static char *
socket_from_config(const char *config_path)
{
	struct ferry_config *cfg;
	char err[1024], dir[4096], *path;

	cfg = config_load(config_path, NULL, err, sizeof(err));
	if (cfg != NULL) {
		path = socket_in(cfg->spool_dir);
		config_free(cfg);
		return path;
	}
	if (spool_dir_line(config_path, dir, sizeof(dir)) == 0) {
		path = socket_in(dir);
		fprintf(stderr, "ferryctl: %s\nferryctl: using the socket of "
		    "its spool_dir line: %s\n", err, path);
		return path;
	}
	path = socket_in(LOCALSTATEDIR "/spool/ferry");
	fprintf(stderr, "ferryctl: %s\nferryctl: using the default "
	    "socket: %s (or give -s)\n", err, path);
	return path;
}

/* Whether ans is {"ok":true,...}. */
static int
answered_ok(const char *ans, size_t len)
{
	json_t *root = json_loadb(ans, len, JSON_ALLOW_NUL, NULL);
	int ok = json_is_true(json_object_get(root, "ok"));

	json_decref(root);
	return ok;
}

/* "queue salvage": local, as root, while the runner has no store open
 * (it refuses it, or ferry is stopped); then the runner is asked to open
 * the new file. */
static int
salvage(const char *sock)
{
	struct queue_salvage_result res;
	char dbpath[4096], err[2048], *ans = NULL;
	const char *slash = strrchr(sock, '/');
	char w_status[] = "status", w_queue[] = "queue", w_reopen[] = "reopen";
	char *const status_req[] = { w_status };
	char *const reopen_req[] = { w_queue, w_reopen };
	size_t anslen;
	int rc, running;

	if (geteuid() != 0) {
		fprintf(stderr, "ferryctl: queue salvage must run as root\n");
		return EX_USAGE_;
	}
	/* the spool is where the socket is */
	snprintf(dbpath, sizeof(dbpath), "%.*s/%s/%s", slash != NULL ?
	    (int)(slash - sock) : 1, slash != NULL ? sock : ".",
	    SPOOL_QUEUE_DIR, QUEUE_DB_NAME);
	ask_deadline_ms = 5000;
	rc = ask(sock, 1, status_req, &ans, &anslen);
	running = rc == EX_OK_;
	if (running && answered_ok(ans, anslen)) {
		fprintf(stderr, "ferryctl: the queue runner has %s open and "
		    "sound; stop ferry before salvaging it\n", dbpath);
		free(ans);
		return EX_REFUSED;
	}
	free(ans);
	ans = NULL;
	if (!running)
		fprintf(stderr, "ferryctl: no queue runner answers: salvaging "
		    "%s offline\n", dbpath);
	if (queue_salvage(dbpath, &res, err, sizeof(err)) < 0) {
		fprintf(stderr, "ferryctl: salvage failed: %s\n", err);
		return EX_REFUSED;
	}
	printf("%s: salvaged %lld of %lld message(s) read, with %lld pending "
	    "recipient(s)\n", dbpath, (long long)res.messages,
	    (long long)res.found, (long long)res.recipients);
	if (res.history > 0)
		printf("%lld message(s) of the delivery history kept\n",
		    (long long)res.history);
	if (res.page1_rebuilt)
		printf("page 1 (the schema) was unreadable and was made "
		    "again\n");
	if (res.damaged_spots > 0)
		printf("%lld unreadable stretch(es) stepped over\n",
		    (long long)res.damaged_spots);
	if (res.found > res.messages)
		printf("%lld incomplete message(s) left out (missing body "
		    "or recipients)\n", (long long)(res.found - res.messages));
	printf("the damaged file is kept as %s\n", res.damaged);
	if (!running)
		return EX_OK_;
	rc = ask(sock, 2, reopen_req, &ans, &anslen);
	if (rc == EX_OK_ && answered_ok(ans, anslen)) {
		printf("the queue runner opened the new file\n");
		rc = EX_OK_;
	} else if (rc == EX_OK_) {
		json_t *root = json_loadb(ans, anslen, JSON_ALLOW_NUL, NULL);
		const json_t *e = member(root, "error", JSON_STRING);

		fprintf(stderr, "ferryctl: the queue runner did not take the "
		    "new file: ");
		if (e != NULL)
			put_str(stderr, e);
		fputc('\n', stderr);
		json_decref(root);
		rc = EX_REFUSED;
	}
	free(ans);
	return rc;
}

/* One line from stdin into buf (without the line end); prompt and no
 * echo when stdin is a terminal.  -1 on EOF or an over-long line. */
static int
read_password(const char *prompt, char *buf, size_t size)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO), restore = 0;
	size_t n;
	char *r;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			quiet.c_lflag |= ECHONL;
			restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	r = fgets(buf, (int)size, stdin);
	if (restore)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (r == NULL)
		return -1;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin))
		return -1;           /* longer than the buffer */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/* "ferryctl user hash [NAME]": a new yescrypt hash (crypt_gensalt_ra and
 * crypt_r), for a users-file line "NAME:hash[:allowed-senders]". */
static int
user_hash(int argc, char **argv)
{
	char pw[AUTH_PASSWORD_MAX + 2], again[AUTH_PASSWORD_MAX + 2];
	char err[256], *h;
	const char *p;
	int rc = EX_USAGE_;

	if (argc < 2 || strcmp(argv[1], "hash") != 0 || argc > 3) {
		fprintf(stderr, "usage: ferryctl user hash [NAME]\n");
		return EX_USAGE_;
	}
	if (argc == 3) {
		for (p = argv[2]; *p; p++)
			if (*p <= ' ' || *p > '~' || *p == ':')
				break;
		if (*p != '\0' || argv[2][0] == '\0' ||
		    strlen(argv[2]) > AUTH_USER_MAX) {
			fprintf(stderr, "ferryctl: a user name is 1 to %d "
			    "printable characters without spaces or \":\"\n",
			    AUTH_USER_MAX);
			return EX_USAGE_;
		}
	}
	if (read_password("Password: ", pw, sizeof(pw)) < 0) {
		fprintf(stderr, "ferryctl: no password read (at most %d "
		    "bytes, one line)\n", AUTH_PASSWORD_MAX);
		goto out;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "ferryctl: empty password\n");
		goto out;
	}
	if (isatty(STDIN_FILENO)) {
		if (read_password("Again: ", again, sizeof(again)) < 0 ||
		    strcmp(pw, again) != 0) {
			fprintf(stderr, "ferryctl: the passwords differ\n");
			goto out;
		}
	}
	h = auth_hash_password(pw, err, sizeof(err));
	if (h == NULL) {
		fprintf(stderr, "ferryctl: %s\n", err);
		rc = EX_REFUSED;
		goto out;
	}
	if (argc == 3)
		printf("%s:%s\n", argv[2], h);
	else
		printf("%s\n", h);
	free(h);
	rc = EX_OK_;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(again, sizeof(again));
	return rc;
}

/* The answer to one request as a JSON document, or NULL after saying
 * why (*rc is then the exit status). */
static json_t *
ask_json(const char *path, int argc, char *const *argv, int *rc)
{
	json_error_t jerr;
	const json_t *ok, *e;
	json_t *root;
	char *ans;
	size_t anslen;

	if ((*rc = ask(path, argc, argv, &ans, &anslen)) != EX_OK_)
		return NULL;
	root = json_loadb(ans, anslen, JSON_ALLOW_NUL, &jerr);
	free(ans);
	ok = json_object_get(root, "ok");
	if (root == NULL || !json_is_boolean(ok)) {
		fprintf(stderr, "ferryctl: malformed answer from the daemon%s%s\n",
		    root == NULL ? ": " : "", root == NULL ? jerr.text : "");
		json_decref(root);
		*rc = EX_REFUSED;
		return NULL;
	}
	if (json_is_false(ok)) {
		fprintf(stderr, "ferryctl: ");
		if ((e = member(root, "error", JSON_STRING)) != NULL)
			put_str(stderr, e);
		else
			fputs("the daemon refused", stderr);
		fputc('\n', stderr);
		json_decref(root);
		*rc = EX_REFUSED;
		return NULL;
	}
	return root;
}

/* "queue list" without --limit/--after: every message, page after page
 * (each a request of its own, so the runner is held one page at a time),
 * printed as the pages come; with --json one document, written as it
 * goes, like the daemon's answer for a single page with "next": null. */
static int
list_all(const char *path, int argc, char **argv, int json_out)
{
	char cursor[48], **words = xcalloc((size_t)argc + 2, sizeof(*words));
	double pending = 0;
	size_t shown = 0, i, nmsgs = 0;
	int rc = EX_OK_, first = 1;

	for (i = 0; i < (size_t)argc; i++)
		words[i] = argv[i];
	cursor[0] = '\0';
	for (;;) {
		const json_t *msgs, *next;
		json_t *root;
		int n = argc;

		if (cursor[0] != '\0')
			words[n++] = cursor;
		if ((root = ask_json(path, n, words, &rc)) == NULL)
			break;
		msgs = member(root, "messages", JSON_ARRAY);
		if (json_out) {
			if (first)
				printf("{\"ok\":true,\"now\":%.6f,"
				    "\"messages\":[", server_now(root));
			for (i = 0; msgs != NULL &&
			    i < json_array_size(msgs); i++) {
				char *o = json_dumps(json_array_get(msgs, i),
				    JSON_BYTES_DUMP_FLAGS);

				if (o == NULL)
					log_fatal("out of memory");
				printf("%s%s", nmsgs++ ? "," : "", o);
				free(o);
			}
		} else
			render_list_page(root, &shown, &pending);
		first = 0;
		next = member(root, "next", JSON_STRING);
		if (next == NULL || snprintf(cursor, sizeof(cursor),
		    "after=%s", json_string_value(next)) >=
		    (int)sizeof(cursor)) {
			json_decref(root);
			break;
		}
		json_decref(root);
	}
	free(words);
	if (rc != EX_OK_)
		return rc;
	if (json_out)
		printf("],\"next\":null,\"truncated\":false}\n");
	else if (shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %zu message(s), %.0f recipient(s) pending\n",
		    shown, pending);
	return EX_OK_;
}

/* The "queue list" options as request words "key=value" (malloc'd),
 * appended to words[*n]. */
static int
list_option(int ch, const char *arg, char **words, int *n)
{
	static const struct {
		int ch;
		const char *key;
	} keys[] = {
		{ 'S', "sender" }, { 'R', "rcpt" }, { 'T', "route" },
		{ 'O', "older-than" }, { 'A', "state" }, { 'L', "limit" },
		{ 'C', "after" },
	};
	size_t i, len;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].ch == ch) {
			if (*n >= 8) {
				fprintf(stderr, "ferryctl: too many list "
				    "options\n");
				return -1;
			}
			len = strlen(keys[i].key) + strlen(arg) + 2;
			words[*n] = xmalloc(len);
			snprintf(words[*n], len, "%s=%s", keys[i].key, arg);
			(*n)++;
			return 0;
		}
	return -1;
}

/* Keeps one of history's filters (ch: 0x100 + its index). */
static int
history_option(int ch, const char *arg)
{
	if (history_opts[ch - 0x100] != NULL) {
		fprintf(stderr, "ferryctl: --%s given twice\n",
		    history_keys[ch - 0x100]);
		return -1;
	}
	history_opts[ch - 0x100] = arg;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		/* queue list's filters (list_option) and history's
		 * (0x100 + the index of the key in history_keys); the four
		 * both take are read for whichever command comes */
		{ "sender", required_argument, NULL, 'S' },
		{ "rcpt", required_argument, NULL, 'R' },
		{ "route", required_argument, NULL, 'T' },
		{ "limit", required_argument, NULL, 'L' },
		{ "older-than", required_argument, NULL, 'O' },
		{ "age", required_argument, NULL, 'O' },
		{ "state", required_argument, NULL, 'A' },
		{ "after", required_argument, NULL, 'C' },
		{ "since", required_argument, NULL, 0x102 },
		{ "until", required_argument, NULL, 0x103 },
		{ "status", required_argument, NULL, 0x104 },
		/* drain's */
		{ "wait", no_argument, NULL, 0x200 },
		{ "timeout", required_argument, NULL, 0x201 },
		{ NULL, 0, NULL, 0 }
	};
	/* request words, malloc'd for the life of the process */
	static char *hwords[HISTORY_NKEYS + 1], *opts[8];
	int hn;
	const char *config_path = CONFIG_DEFAULT_PATH, *sock = NULL;
	const json_t *ok;
	json_t *root;
	char *path, *ans;
	json_error_t jerr;
	size_t anslen;
	int ch, json_out = 0, rc, nopts = 0, paged = 0, config_given = 0;
	int list_only = 0, history_only = 0, drain_wait = 0;
	long long drain_timeout = -1;
	char **req = NULL;

	log_init("ferryctl", LOG_TO_STDERR, 0);
	config_check_dkim_keys();   /* "ferryctl check" loads every key */
	/* "dkim keygen" has options of its own: it is found before getopt */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "-s") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		if (strcmp(argv[i], "dkim") == 0)
			return ferryctl_dkim(argc - i, argv + i);
		break;
	}
	while ((ch = getopt_long(argc, argv, "f:s:hV", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'f':
			config_path = optarg;
			config_given = 1;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			json_out = 1;
			break;
		case 'h':
			usage(stdout);
			return EX_OK_;
		case 'V':
			printf("ferry %s\n", PACKAGE_VERSION);
			return EX_OK_;
		case 'S': case 'R': case 'T': case 'L':
			/* queue list's and history's */
			if (history_option(ch == 'S' ? 0x100 : ch == 'R' ?
			    0x101 : ch == 'T' ? 0x105 : 0x106, optarg) < 0)
				return EX_USAGE_;
			/* FALLTHROUGH */
		case 'O': case 'A': case 'C':
			if (list_option(ch, optarg, opts, &nopts) < 0)
				return EX_USAGE_;
			if (ch == 'L' || ch == 'C')
				paged = 1;
			if (ch == 'O' || ch == 'A' || ch == 'C')
				list_only = 1;
			break;
		case 0x102: case 0x103: case 0x104:
			if (history_option(ch, optarg) < 0)
				return EX_USAGE_;
			history_only = 1;
			break;
		case 0x200:
			drain_wait = 1;
			break;
		case 0x201:
			drain_timeout = ctl_drain_timeout(optarg);
			if (drain_timeout < 0) {
				fprintf(stderr, "ferryctl: --timeout: seconds, "
				    "or a number with s, m or h\n");
				return EX_USAGE_;
			}
			break;
		default:
			usage(stderr);
			return EX_USAGE_;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return EX_USAGE_;
	}
	if (strcmp(argv[0], "user") == 0)
		return user_hash(argc, argv);
	if (argc == 1 && strcmp(argv[0], "check") == 0)
		return ctl_check(config_path);
	if (argc == 1 && strcmp(argv[0], "reload") == 0) {
		path = sock != NULL ? xstrdup(sock) :
		    socket_from_config(config_path);
		if (path == NULL)
			return EX_USAGE_;
		rc = ctl_reload(path, config_given ? config_path : NULL,
		    ask_status, json_out);
		free(path);
		return rc;
	}
	if (strcmp(argv[0], "drain") == 0 || strcmp(argv[0], "undrain") == 0) {
		int on = strcmp(argv[0], "drain") == 0;

		if (argc != 1 || nopts > 0 || history_only ||
		    (!on && drain_wait) || (drain_timeout >= 0 &&
		    !drain_wait)) {
			fprintf(stderr, "usage: ferryctl [-f config] [-s socket] "
			    "[--json] drain [--wait [--timeout T]] | "
			    "undrain\n");
			return EX_USAGE_;
		}
		path = sock != NULL ? xstrdup(sock) :
		    socket_from_config(config_path);
		if (path == NULL)
			return EX_USAGE_;
		rc = ctl_drain(path, ask_drain_step, on, drain_wait,
		    drain_timeout, json_out);
		free(path);
		return rc;
	}
	if (drain_wait || drain_timeout >= 0) {
		fprintf(stderr, "ferryctl: --wait and --timeout go with "
		    "drain\n");
		return EX_USAGE_;
	}
	if (find_command(argc, argv) == NULL)
		return EX_USAGE_;
	if (strcmp(argv[0], "history") == 0) {
		if (list_only) {
			fprintf(stderr, "ferryctl: --older-than, --state and "
			    "--after go with queue list\n");
			return EX_USAGE_;
		}
		if (history_words(hwords, &hn) != EX_OK_)
			return EX_USAGE_;
		argc = hn;
		argv = hwords;
	} else if (history_only) {
		fprintf(stderr, "ferryctl: --since, --until and --status go "
		    "with history\n");
		return EX_USAGE_;
	} else if (nopts > 0) {
		int i;

		if (argc != 2 || strcmp(argv[1], "list") != 0) {
			fprintf(stderr, "ferryctl: --sender, --rcpt, --route, "
			    "--older-than, --state, --limit and --after go "
			    "with queue list (or history)\n");
			return EX_USAGE_;
		}
		req = xcalloc((size_t)nopts + 2, sizeof(*req));
		req[0] = argv[0];
		req[1] = argv[1];
		for (i = 0; i < nopts; i++)
			req[2 + i] = opts[i];
		argv = req;
		argc = 2 + nopts;
	}
	if (check_request(argc, argv) == -1) {
		fprintf(stderr, "ferryctl: malformed argument\n");
		return EX_USAGE_;
	}

	path = sock != NULL ? xstrdup(sock) : socket_from_config(config_path);
	if (path == NULL)
		return EX_USAGE_;
	if (argc > 1 && strcmp(argv[1], "salvage") == 0) {
		rc = salvage(path);
		free(path);
		return rc;
	}
	if (strcmp(argv[0], "status") == 0)
		ask_deadline_ms = STATUS_DEADLINE_MS;
	if (argc >= 2 && strcmp(argv[1], "list") == 0 && !paged) {
		rc = list_all(path, argc, argv, json_out);
		free(path);
		while (nopts > 0)
			free(opts[--nopts]);
		free(req);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "ferryctl: writing output: %s\n",
			    strerror(errno));
			return EX_REFUSED;
		}
		return rc;
	}
	rc = ask(path, argc, argv, &ans, &anslen);
	free(path);
	while (nopts > 0)
		free(opts[--nopts]);
	free(req);
	if (rc != EX_OK_)
		return rc;

	/* the daemon may send \u0000 (a NUL in a header) */
	root = json_loadb(ans, anslen, JSON_ALLOW_NUL, &jerr);
	ok = json_object_get(root, "ok");
	if (json_out) {
		fwrite(ans, 1, anslen, stdout);
		if (anslen == 0 || ans[anslen - 1] != '\n')
			putchar('\n');
	}
	if (root == NULL || !json_is_boolean(ok)) {
		fprintf(stderr, "ferryctl: malformed answer from the daemon%s%s\n",
		    root == NULL ? ": " : "", root == NULL ? jerr.text : "");
		rc = EX_REFUSED;
	} else if (json_is_false(ok) && json_out) {
		rc = EX_REFUSED;               /* the JSON says why */
	} else if (json_is_false(ok)) {
		const json_t *e = member(root, "error",
		    JSON_STRING);

		fprintf(stderr, "ferryctl: ");
		if (e != NULL)
			put_str(stderr, e);
		else
			fputs("the daemon refused", stderr);
		fputc('\n', stderr);
		rc = EX_REFUSED;
	} else if (!json_out) {
		if (strcmp(argv[0], "status") == 0)
			render_status(root);
		else if (strcmp(argv[0], "history") == 0)
			render_history_rows(root);
		else if (strcmp(argv[1], "list") == 0)
			render_list(root);
		else if (strcmp(argv[1], "show") == 0)
			render_show(root);
		else if (strcmp(argv[1], "check") == 0)
			printf("%s: integrity_check ok\n", json_string_value(
			    json_object_get(root, "file")));
		else if (strcmp(argv[1], "accept-loss") == 0 ||
		    strcmp(argv[1], "reopen") == 0)
			printf("%s: open; taking mail again\n",
			    json_string_value(json_object_get(root, "file")));
		else
			render_changed(argc, argv, root);
	}
	json_decref(root);
	free(ans);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "ferryctl: writing output: %s\n",
		    strerror(errno));
		return EX_REFUSED;
	}
	return rc;
}
