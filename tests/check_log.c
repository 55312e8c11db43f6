/*
 * check_log.c - unit tests for the structured log: the JSON line builder
 * of src/log_json.c (keys in the documented order, absent fields left
 * out, control bytes, quotes and invalid UTF-8 escaped so the line is
 * ASCII and valid JSON, long values shortened to fit one pipe write), the
 * journal's native fields made from such a line (fixed field names, the
 * priority from the level, any other text as a printable MESSAGE), the
 * splitting of the children's stream into lines, and log_event through
 * src/log.c (the text format byte for byte as log_info, JSON when asked),
 * and held lines (log_hold, log_flush; never written twice after a fork).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <jansson.h>

#include "log.h"
#include "log_json.h"

#define TS 1767323045LL   /* 2026-01-02T03:04:05Z */

static json_t *
parse(const char *line)
{
	json_error_t err;
	json_t *o = json_loads(line, JSON_ALLOW_NUL, &err);

	ck_assert_msg(json_is_object(o), "not a JSON object (%s): %s",
	    err.text, line);
	return o;
}

static void
assert_ascii(const char *line)
{
	const unsigned char *p;

	for (p = (const unsigned char *)line; *p; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in %s",
		    *p, line);
}

START_TEST(test_json_plain_line)
{
	char line[LOG_JSON_LINE_MAX];
	size_t n;

	n = log_json_line(line, sizeof(line), TS, 678901, "ferryd", 42,
	    LOG_WARNING, NULL, "listening on 127.0.0.1 port 25 (smtp)");
	ck_assert_uint_eq(n, strlen(line));
	ck_assert_str_eq(line, "{\"ts\":\"2026-01-02T03:04:05.678Z\","
	    "\"proc\":\"ferryd\",\"pid\":42,\"level\":\"warning\","
	    "\"event\":\"log\",\"msg\":\"listening on 127.0.0.1 port 25 "
	    "(smtp)\"}");
}
END_TEST

START_TEST(test_json_delivery_fields)
{
	char line[LOG_JSON_LINE_MAX];
	struct log_fields f = {
		.event = "delivery", .qid = "3F2A9C", .to = "b@y",
		.relay = "smtp.example.net[192.0.2.1]:587", .dsn = "2.0.0",
		.status = "sent", .has_delay = 1, .delay = 0.4,
		.reason = "250 ok",
	};
	json_t *o;

	log_json_line(line, sizeof(line), TS, 0, "ferry-queue", 7, LOG_INFO,
	    &f, "3F2A9C: to=<b@y>, status=sent (250 ok)");
	/* the documented order, nothing that was not given */
	ck_assert_str_eq(line, "{\"ts\":\"2026-01-02T03:04:05.000Z\","
	    "\"proc\":\"ferry-queue\",\"pid\":7,\"level\":\"info\","
	    "\"event\":\"delivery\",\"qid\":\"3F2A9C\",\"to\":\"b@y\","
	    "\"relay\":\"smtp.example.net[192.0.2.1]:587\","
	    "\"dsn\":\"2.0.0\",\"status\":\"sent\",\"delay\":0.4,"
	    "\"reason\":\"250 ok\","
	    "\"msg\":\"3F2A9C: to=<b@y>, status=sent (250 ok)\"}");
	o = parse(line);
	ck_assert(json_real_value(json_object_get(o, "delay")) == 0.4);
	json_decref(o);
}
END_TEST

START_TEST(test_json_accepted_numbers)
{
	char line[LOG_JSON_LINE_MAX];
	struct log_fields f = {
		.event = "accepted", .qid = "Q1", .from = "",
		.client = "mx.example[192.0.2.9]", .helo = "mx.example",
		.has_size = 1, .size = 12345678901ULL,
		.has_nrcpt = 1, .nrcpt = 3,
	};
	json_t *o;

	log_json_line(line, sizeof(line), TS, 0, "ferry-queue", 7, LOG_INFO,
	    &f, "m");
	o = parse(line);
	ck_assert_str_eq(json_string_value(json_object_get(o, "from")), "");
	ck_assert_str_eq(json_string_value(json_object_get(o, "client")),
	    "mx.example[192.0.2.9]");
	ck_assert_str_eq(json_string_value(json_object_get(o, "helo")),
	    "mx.example");
	ck_assert(json_integer_value(json_object_get(o, "size")) ==
	    12345678901LL);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "nrcpt")), 3);
	ck_assert_ptr_null(json_object_get(o, "to"));
	ck_assert_ptr_null(json_object_get(o, "delay"));
	json_decref(o);
}
END_TEST

/* Hostile bytes (an EHLO name or address with 0x01 and 0xff, quotes,
 * backslashes, a newline, a NUL-free C string) give one ASCII line that
 * is valid JSON and reads back as the bytes (invalid UTF-8 as U+00XX). */
START_TEST(test_json_escapes_hostile_bytes)
{
	char line[LOG_JSON_LINE_MAX];
	struct log_fields f = {
		.event = "connect", .helo = "bad\x01name\xff.example",
		.from = "a\"b\\c\nd@x", .client = "\xc3\xa9t\xc3\xa9[::1]",
	};
	json_t *o;

	log_json_line(line, sizeof(line), TS, 0, "ferry-smtpd", 1, LOG_INFO,
	    &f, "tab\there\r\x7f");
	assert_ascii(line);
	ck_assert_ptr_nonnull(strstr(line, "\"bad\\u0001name\\u00FF.example\""));
	ck_assert_ptr_nonnull(strstr(line, "\"a\\\"b\\\\c\\nd@x\""));
	ck_assert_ptr_nonnull(strstr(line, "\\u00E9t\\u00E9[::1]"));
	o = parse(line);
	ck_assert_str_eq(json_string_value(json_object_get(o, "helo")),
	    "bad\x01name\xc3\xbf.example");
	ck_assert_str_eq(json_string_value(json_object_get(o, "from")),
	    "a\"b\\c\nd@x");
	ck_assert_str_eq(json_string_value(json_object_get(o, "client")),
	    "\xc3\xa9t\xc3\xa9[::1]");
	ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
	    "tab\there\r\x7f");
	json_decref(o);
}
END_TEST

/* Every byte value in every field still gives a valid line. */
START_TEST(test_json_all_bytes)
{
	char line[LOG_JSON_LINE_MAX], bytes[256];
	struct log_fields f = { .event = "reject" };
	json_t *o;
	int i;

	for (i = 0; i < 255; i++)
		bytes[i] = (char)(i + 1);
	bytes[255] = '\0';
	f.helo = bytes;
	log_json_line(line, sizeof(line), TS, 0, "p", 1, LOG_INFO, &f,
	    bytes);
	assert_ascii(line);
	o = parse(line);
	ck_assert_uint_eq(json_string_length(json_object_get(o, "helo")),
	    127 + 2 * 128);
	json_decref(o);
}
END_TEST

/* Long values are shortened so the line (and its newline) fits one
 * atomic pipe write; it stays valid JSON with every key. */
START_TEST(test_json_long_values_fit)
{
	static char big[8000];
	char line[LOG_JSON_LINE_MAX - 1];
	struct log_fields f = { .event = "delivery", .qid = "Q" };
	size_t n;
	json_t *o;

	memset(big, '\x01', sizeof(big) - 1);
	f.to = f.from = f.reason = f.relay = f.client = f.helo = big;
	n = log_json_line(line, sizeof(line), TS, 0, "p", 1, LOG_INFO, &f,
	    big);
	ck_assert_uint_le(n, sizeof(line) - 1);
	ck_assert_uint_eq(n, strlen(line));
	o = parse(line);
	ck_assert_str_eq(json_string_value(json_object_get(o, "qid")), "Q");
	ck_assert_ptr_nonnull(json_object_get(o, "msg"));
	ck_assert_ptr_nonnull(json_object_get(o, "reason"));
	ck_assert_uint_gt(json_string_length(json_object_get(o, "msg")), 0);
	json_decref(o);
}
END_TEST

/* The value of field name among the n items, or NULL. */
static const char *
field(const struct iovec *iov, size_t n, const char *name, char *out,
    size_t outlen)
{
	size_t i, len = strlen(name);

	for (i = 0; i < n; i++) {
		const char *b = iov[i].iov_base;

		if (iov[i].iov_len > len && memcmp(b, name, len) == 0 &&
		    b[len] == '=') {
			size_t vl = iov[i].iov_len - len - 1;

			ck_assert_uint_lt(vl, outlen);
			memcpy(out, b + len + 1, vl);
			out[vl] = '\0';
			return out;
		}
	}
	return NULL;
}

#define ck_field(iov, n, name, expect) do { \
	char v_[LOG_JSON_LINE_MAX * 4]; \
	const char *got_ = field((iov), (n), (name), v_, sizeof(v_)); \
	ck_assert_msg(got_ != NULL, "no field %s", (name)); \
	ck_assert_str_eq(got_, (expect)); \
} while (0)

START_TEST(test_journal_fields_of_a_line)
{
	char line[LOG_JSON_LINE_MAX], buf[LOG_JSON_LINE_MAX * 5];
	struct iovec iov[32];
	struct log_fields f = {
		.event = "accepted", .qid = "3F2A9C", .from = "a@x",
		.client = "mx.example[192.0.2.9]", .helo = "mx.example",
		.has_size = 1, .size = 1234, .has_nrcpt = 1, .nrcpt = 2,
		.has_delay = 1, .delay = 0.25, .to = "b@y", .relay = "r",
		.dsn = "2.0.0", .status = "sent", .reason = "250 ok",
	};
	size_t n, i;

	log_json_line(line, sizeof(line), TS, 0, "ferry-queue", 77, LOG_ERR,
	    &f, "3F2A9C: from=<a@x>, size=1234, nrcpt=2");
	n = log_journal_fields(line, strlen(line), "ferryd", buf, sizeof(buf),
	    iov, 32);
	ck_field(iov, n, "MESSAGE", "3F2A9C: from=<a@x>, size=1234, nrcpt=2");
	ck_field(iov, n, "PRIORITY", "3");
	ck_field(iov, n, "SYSLOG_FACILITY", "2");
	ck_field(iov, n, "SYSLOG_IDENTIFIER", "ferry-queue");
	ck_field(iov, n, "SYSLOG_PID", "77");
	ck_field(iov, n, "QUEUE_ID", "3F2A9C");
	ck_field(iov, n, "EVENT", "accepted");
	ck_field(iov, n, "FROM", "a@x");
	ck_field(iov, n, "TO", "b@y");
	ck_field(iov, n, "RELAY", "r");
	ck_field(iov, n, "DSN", "2.0.0");
	ck_field(iov, n, "STATUS", "sent");
	ck_field(iov, n, "DELAY", "0.250");
	ck_field(iov, n, "REASON", "250 ok");
	ck_field(iov, n, "CLIENT", "mx.example[192.0.2.9]");
	ck_field(iov, n, "HELO", "mx.example");
	ck_field(iov, n, "SIZE", "1234");
	ck_field(iov, n, "NRCPT", "2");
	ck_assert_uint_eq(n, 18);
	/* each item is FIELD=value with an upper-case name */
	for (i = 0; i < n; i++) {
		const char *b = iov[i].iov_base;
		size_t k;

		for (k = 0; b[k] != '='; k++)
			ck_assert((b[k] >= 'A' && b[k] <= 'Z') || b[k] == '_');
		ck_assert_uint_gt(k, 0);
	}
}
END_TEST

/* A child's line cannot name fields: unknown keys are dropped, values
 * are kept as they are (the journal takes any byte). */
START_TEST(test_journal_fields_fixed_names)
{
	const char *line = "{\"msg\":\"m\\nx\",\"level\":\"debug\","
	    "\"MESSAGE\":\"evil\",\"_PID\":1,\"qid\":\"Q\\u0000Z\","
	    "\"event\":\"log\",\"CODE_FILE\":\"x\"}";
	char buf[LOG_JSON_LINE_MAX * 5], v[64];
	struct iovec iov[32];
	size_t n, i;

	n = log_journal_fields(line, strlen(line), "ferryd", buf, sizeof(buf),
	    iov, 32);
	ck_field(iov, n, "MESSAGE", "m\nx");
	ck_field(iov, n, "PRIORITY", "7");
	ck_field(iov, n, "EVENT", "log");
	ck_assert_ptr_null(field(iov, n, "_PID", v, sizeof(v)));
	ck_assert_ptr_null(field(iov, n, "CODE_FILE", v, sizeof(v)));
	for (i = 0; i < n; i++)
		if (memcmp(iov[i].iov_base, "QUEUE_ID=", 9) == 0) {
			ck_assert_uint_eq(iov[i].iov_len, 9 + 3);
			ck_assert(memcmp(iov[i].iov_base, "QUEUE_ID=Q\0Z", 12)
			    == 0);
		}
	ck_assert_uint_eq(n, 5);   /* MESSAGE QUEUE_ID EVENT PRIORITY FAC. */
}
END_TEST

START_TEST(test_journal_fields_of_other_text)
{
	const char *line = "AddressSanitizer: \x01\xff oops";
	char buf[LOG_JSON_LINE_MAX * 5];
	struct iovec iov[32];
	size_t n;

	n = log_journal_fields(line, strlen(line), "ferryd", buf, sizeof(buf),
	    iov, 32);
	ck_assert_uint_eq(n, 4);
	ck_field(iov, n, "MESSAGE", "AddressSanitizer: \\x01\\xff oops");
	ck_field(iov, n, "PRIORITY", "6");
	ck_field(iov, n, "SYSLOG_FACILITY", "2");
	ck_field(iov, n, "SYSLOG_IDENTIFIER", "ferryd");
	/* an array, or an object without msg, is not one of ours either */
	n = log_journal_fields("[1]", 3, "ferryd", buf, sizeof(buf), iov, 32);
	ck_field(iov, n, "MESSAGE", "[1]");
	n = log_journal_fields("{\"qid\":\"Q\"}", 11, "ferryd", buf,
	    sizeof(buf), iov, 32);
	ck_field(iov, n, "MESSAGE", "{\"qid\":\"Q\"}");
}
END_TEST

START_TEST(test_journal_fields_bounded)
{
	char line[LOG_JSON_LINE_MAX], buf[64];
	struct iovec iov[3];
	struct log_fields f = { .qid = "Q", .client = "c", .from = "f" };
	size_t n, i, total = 0;

	log_json_line(line, sizeof(line), TS, 0, "p", 1, LOG_INFO, &f,
	    "a message longer than what is left in the small buffer");
	n = log_journal_fields(line, strlen(line), "ferryd", buf, sizeof(buf),
	    iov, 3);
	ck_assert_uint_le(n, 3);
	for (i = 0; i < n; i++) {
		ck_assert((char *)iov[i].iov_base >= buf);
		total += iov[i].iov_len;
	}
	ck_assert_uint_le(total, sizeof(buf));
}
END_TEST

struct seen {
	char lines[4][LOG_JSON_LINE_MAX + 1];
	size_t len[4];
	int n;
};

static void
collect(const char *line, size_t len, void *arg)
{
	struct seen *s = arg;

	ck_assert_int_lt(s->n, 4);
	memcpy(s->lines[s->n], line, len);
	s->lines[s->n][len] = '\0';
	s->len[s->n++] = len;
}

START_TEST(test_lines_split_across_reads)
{
	static struct log_lines l;
	static struct seen s;
	static char longline[LOG_JSON_LINE_MAX + 10];

	log_lines_feed(&l, "{\"a\":1}\n{\"b\"", 12, collect, &s);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.lines[0], "{\"a\":1}");
	log_lines_feed(&l, ":2}\n", 4, collect, &s);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.lines[1], "{\"b\":2}");
	/* a line longer than the buffer is cut, not overrun */
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\n';
	log_lines_feed(&l, longline, sizeof(longline), collect, &s);
	ck_assert_int_eq(s.n, 4);
	ck_assert_uint_eq(s.len[2], LOG_JSON_LINE_MAX);
	ck_assert_uint_eq(s.len[3], 9);
	ck_assert_uint_eq(l.len, 0);
}
END_TEST

/* What log_event writes to stderr, as a string. */
static void
capture(enum log_format format, char *out, size_t outlen)
{
	struct log_fields f = { .event = "accepted", .qid = "3F2A9C",
	    .from = "a@x", .has_size = 1, .size = 1234 };
	int p[2], saved;
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	log_init("ferry-queue", LOG_TO_STDERR, 0);
	log_set_format(format);
	log_event(LOG_INFO, &f, "%s: from=<%s>, size=%d, nrcpt=%d (queue "
	    "active)", "3F2A9C", "a@x", 1234, 1);
	log_info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)",
	    "3F2A9C", "a@x", 1234, 1);
	log_event(LOG_DEBUG, &f, "not shown without debug");
	log_set_format(LOG_FORMAT_TEXT);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], out, outlen - 1);
	ck_assert_int_gt(n, 0);
	out[n] = '\0';
	close(p[0]);
}

START_TEST(test_log_event_text_unchanged)
{
	char out[8192], *second, *a, *b;

	capture(LOG_FORMAT_TEXT, out, sizeof(out));
	second = strchr(out, '\n');
	ck_assert_ptr_nonnull(second);
	*second++ = '\0';
	ck_assert_ptr_null(strstr(second, "not shown"));
	ck_assert_ptr_nonnull(strchr(second, '\n'));
	*strchr(second, '\n') = '\0';
	/* the same line as log_info's, after the time stamp */
	a = strchr(out, ' ');
	b = strchr(second, ' ');
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(a, b);
	ck_assert_ptr_nonnull(strstr(a, "]: 3F2A9C: from=<a@x>, size=1234, "
	    "nrcpt=1 (queue active)"));
}
END_TEST

START_TEST(test_log_event_json)
{
	char out[8192], *nl;
	json_t *o;

	capture(LOG_FORMAT_JSON, out, sizeof(out));
	nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	o = parse(out);
	ck_assert_str_eq(json_string_value(json_object_get(o, "event")),
	    "accepted");
	ck_assert_str_eq(json_string_value(json_object_get(o, "qid")),
	    "3F2A9C");
	ck_assert_str_eq(json_string_value(json_object_get(o, "proc")),
	    "ferry-queue");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "size")),
	    1234);
	ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
	    "3F2A9C: from=<a@x>, size=1234, nrcpt=1 (queue active)");
	json_decref(o);
	/* the plain log_info line is an event "log" */
	o = parse(nl + 1);
	ck_assert_str_eq(json_string_value(json_object_get(o, "event")),
	    "log");
	ck_assert_ptr_null(json_object_get(o, "qid"));
	json_decref(o);
	ck_assert_ptr_null(strstr(nl + 1, "not shown"));
}
END_TEST

/* Held lines (log_hold): informational lines wait for log_flush, a
 * warning writes them first and then itself, every write is whole lines
 * of at most PIPE_BUF bytes, and exit() writes what waits. */
START_TEST(test_held_lines)
{
	char rec[8192], all[32768];
	size_t alen = 0;
	int sv[2], saved, i, writes = 0, status;
	ssize_t n;
	pid_t pid;

	/* one record per write() */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	saved = dup(STDERR_FILENO);
	dup2(sv[1], STDERR_FILENO);
	log_init("ferry-queue", LOG_TO_STDERR, 0);
	log_hold();
	log_info("one");
	log_info("two");
	ck_assert_int_lt(recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT), 0);
	log_warn("three");
	n = recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	rec[n] = '\0';
	ck_assert_ptr_nonnull(strstr(rec, "]: one\n"));
	ck_assert_ptr_nonnull(strstr(rec, "]: two\n"));
	ck_assert_ptr_null(strstr(rec, "three"));
	n = recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	rec[n] = '\0';
	ck_assert_ptr_nonnull(strstr(rec, "]: warning: three\n"));

	for (i = 0; i < 200; i++)
		log_info("line %03d %s", i, "................................"
		    "..................................................");
	log_flush();
	while ((n = recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT)) > 0) {
		ck_assert_int_le(n, 4096);
		ck_assert_int_eq(rec[n - 1], '\n');
		ck_assert_uint_lt(alen + (size_t)n, sizeof(all));
		memcpy(all + alen, rec, (size_t)n);
		alen += (size_t)n;
		writes++;
	}
	all[alen] = '\0';
	/* about 25 KB in a few writes, every line there in order */
	ck_assert_int_ge(writes, 5);
	ck_assert_int_lt(writes, 20);
	{
		const char *at = all;
		char want[32];

		for (i = 0; i < 200; i++) {
			snprintf(want, sizeof(want), "]: line %03d ", i);
			at = strstr(at, want);
			ck_assert_ptr_nonnull(at);
		}
	}

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		log_info("said just before exit");
		exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	n = recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	rec[n] = '\0';
	ck_assert_ptr_nonnull(strstr(rec, "]: said just before exit\n"));

	dup2(saved, STDERR_FILENO);
	close(saved);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* A child forked while lines are held does not write them again: they
 * are its parent's to write. */
START_TEST(test_held_lines_not_doubled_by_fork)
{
	char rec[8192];
	int sv[2], saved, status;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	saved = dup(STDERR_FILENO);
	dup2(sv[1], STDERR_FILENO);
	log_init("ferry-queue", LOG_TO_STDERR, 0);
	log_set_format(LOG_FORMAT_TEXT);
	log_hold();
	log_info("held once");
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		exit(0);        /* exit() writes what this process holds */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_lt(recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT), 0);
	log_flush();
	n = recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	rec[n] = '\0';
	ck_assert_ptr_nonnull(strstr(rec, "]: held once\n"));
	ck_assert_ptr_null(strstr(strstr(rec, "held once") + 1,
	    "held once"));
	ck_assert_int_lt(recv(sv[0], rec, sizeof(rec), MSG_DONTWAIT), 0);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tcase_create("json");
	tcase_add_test(tc, test_json_plain_line);
	tcase_add_test(tc, test_json_delivery_fields);
	tcase_add_test(tc, test_json_accepted_numbers);
	tcase_add_test(tc, test_json_escapes_hostile_bytes);
	tcase_add_test(tc, test_json_all_bytes);
	tcase_add_test(tc, test_json_long_values_fit);
	suite_add_tcase(s, tc);

	tc = tcase_create("journal");
	tcase_add_test(tc, test_journal_fields_of_a_line);
	tcase_add_test(tc, test_journal_fields_fixed_names);
	tcase_add_test(tc, test_journal_fields_of_other_text);
	tcase_add_test(tc, test_journal_fields_bounded);
	tcase_add_test(tc, test_lines_split_across_reads);
	suite_add_tcase(s, tc);

	tc = tcase_create("emit");
	tcase_add_test(tc, test_log_event_text_unchanged);
	tcase_add_test(tc, test_log_event_json);
	tcase_add_test(tc, test_held_lines);
	tcase_add_test(tc, test_held_lines_not_doubled_by_fork);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
