/*
 * log_json.c - a log line as one JSON object, the journal's native
 * fields from such a line, and the splitting of a log stream into lines;
 * see log_json.h for the schema.
 *
 * Security stance: the values are untrusted (addresses, EHLO names and
 * replies come from the network; the master reads lines written by
 * unprivileged children).  Strings go through json_bytes_string, so any
 * byte gives a valid, ASCII-only document; lines are bounded on both
 * sides; journal field names come only from the fixed table below, so a
 * lying child can fill values but never choose a field's name.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "json_bytes.h"
#include "log.h"
#include "log_json.h"

static const struct {
	int prio;
	const char *name;
} levels[] = {
	{ LOG_INFO, "info" },
	{ LOG_WARNING, "warning" },
	{ LOG_ERR, "error" },
	{ LOG_CRIT, "fatal" },
	{ LOG_ALERT, "panic" },
	{ LOG_DEBUG, "debug" },
	{ LOG_NOTICE, "notice" },
};

#define NLEVELS (sizeof(levels) / sizeof(levels[0]))

const char *
log_level_name(int prio)
{
	size_t i;

	for (i = 0; i < NLEVELS; i++)
		if (levels[i].prio == prio)
			return levels[i].name;
	return "info";
}

int
log_level_prio(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < NLEVELS; i++)
		if (strcmp(levels[i].name, name) == 0)
			return levels[i].prio;
	return LOG_INFO;
}

/* Sets key to at most cap bytes of s (when s is not NULL). */
static void
put_str(json_t *o, const char *key, const char *s, size_t cap)
{
	size_t len;

	if (s == NULL)
		return;
	len = strlen(s);
	json_object_set_new(o, key, json_bytes_string(s, len < cap ? len :
	    cap));
}

static json_t *
build(long long ts_sec, long ts_usec, const char *proc, long pid,
    int prio, const struct log_fields *f, const char *msg, size_t cap)
{
	static const struct log_fields none;
	char stamp[48];
	struct tm tm;
	time_t t = (time_t)ts_sec;
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (f == NULL)
		f = &none;
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts_usec / 1000 % 1000);
	json_object_set_new(o, "ts", json_string(stamp));
	put_str(o, "proc", proc, cap);
	json_object_set_new(o, "pid", json_integer(pid));
	json_object_set_new(o, "level", json_string(log_level_name(prio)));
	put_str(o, "event", f->event != NULL ? f->event : "log", cap);
	put_str(o, "qid", f->qid, cap);
	put_str(o, "from", f->from, cap);
	put_str(o, "to", f->to, cap);
	put_str(o, "relay", f->relay, cap);
	put_str(o, "dsn", f->dsn, cap);
	put_str(o, "status", f->status, cap);
	if (f->has_delay)
		json_object_set_new(o, "delay", json_real(f->delay));
	put_str(o, "reason", f->reason, cap);
	put_str(o, "client", f->client, cap);
	put_str(o, "helo", f->helo, cap);
	if (f->has_size)
		json_object_set_new(o, "size",
		    json_integer((json_int_t)f->size));
	if (f->has_nrcpt)
		json_object_set_new(o, "nrcpt",
		    json_integer((json_int_t)f->nrcpt));
	put_str(o, "msg", msg, cap);
	return o;
}

/* jansson leaves DEL (0x7f) as it is; a log line gets it as \u007F like
 * every other control character.  0x7f can only be inside a string (the
 * keys are ours), so each one is replaced where it stands.  Returns the
 * new length, or 0 when it does not fit in room bytes. */
static size_t
escape_del(char *out, size_t n, size_t room)
{
	size_t dels = 0, i, o;

	for (i = 0; i < n; i++)
		if (out[i] == 0x7f)
			dels++;
	if (dels == 0)
		return n;
	if (n + 5 * dels > room)
		return 0;
	o = n + 5 * dels;
	for (i = n; i-- > 0;) {
		if (out[i] == 0x7f) {
			o -= 6;
			memcpy(out + o, "\\u007F", 6);
		} else
			out[--o] = out[i];
	}
	return n + 5 * dels;
}

size_t
log_json_line(char *out, size_t outlen, long long ts_sec, long ts_usec,
    const char *proc, long pid, int prio, const struct log_fields *f,
    const char *msg)
{
	size_t cap = 4096, n = 0;

	/* Every string is at most cap bytes; each byte is at most 6 in the
	 * document (\u00XX), so halving cap ends with a line that fits. */
	for (;;) {
		json_t *o = build(ts_sec, ts_usec, proc, pid, prio, f, msg,
		    cap);

		n = o != NULL ? json_dumpb(o, out, outlen - 1,
		    JSON_BYTES_DUMP_FLAGS | JSON_REAL_PRECISION(6)) : 0;
		json_decref(o);
		if (n > 0 && n <= outlen - 1)
			n = escape_del(out, n, outlen - 1);
		if (n > 0 && n <= outlen - 1)
			break;
		if (cap < 8 || o == NULL) {
			/* out of memory: a line that is still JSON */
			n = (size_t)snprintf(out, outlen, "{\"event\":\"log\","
			    "\"msg\":\"(a log line was lost)\"}");
			return n < outlen ? n : outlen - 1;
		}
		cap /= 2;
	}
	out[n] = '\0';
	return n;
}

/* Journal fields: the key in a line, the field's name. */
static const struct {
	const char *key;
	const char *field;
} journal_map[] = {
	{ "msg", "MESSAGE" },
	{ "proc", "SYSLOG_IDENTIFIER" },
	{ "pid", "SYSLOG_PID" },
	{ "qid", "QUEUE_ID" },
	{ "event", "EVENT" },
	{ "from", "FROM" },
	{ "to", "TO" },
	{ "relay", "RELAY" },
	{ "dsn", "DSN" },
	{ "status", "STATUS" },
	{ "delay", "DELAY" },
	{ "reason", "REASON" },
	{ "client", "CLIENT" },
	{ "helo", "HELO" },
	{ "size", "SIZE" },
	{ "nrcpt", "NRCPT" },
};

#define NJOURNAL_MAP (sizeof(journal_map) / sizeof(journal_map[0]))

/* Appends "FIELD=value" (len bytes of value) to buf and iov; 0 when one
 * of them is full. */
static int
add_field(char *buf, size_t buflen, size_t *used, struct iovec *iov,
    size_t maxiov, size_t *niov, const char *field, const char *value,
    size_t len)
{
	size_t flen = strlen(field);

	if (*niov >= maxiov || *used + flen + 1 + len > buflen)
		return 0;
	memcpy(buf + *used, field, flen);
	buf[*used + flen] = '=';
	memcpy(buf + *used + flen + 1, value, len);
	iov[*niov].iov_base = buf + *used;
	iov[*niov].iov_len = flen + 1 + len;
	*used += flen + 1 + len;
	(*niov)++;
	return 1;
}

size_t
log_journal_fields(const char *line, size_t len, const char *ident,
    char *buf, size_t buflen, struct iovec *iov, size_t maxiov)
{
	json_t *o;
	size_t used = 0, niov = 0, i;
	char prio[8];

	o = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
	    NULL);
	if (!json_is_object(o) || !json_is_string(json_object_get(o,
	    "msg"))) {
		/* not ours: the text alone, made printable */
		char text[LOG_JSON_LINE_MAX * 4 + 1];

		json_decref(o);
		log_sanitize(text, sizeof(text), line,
		    len < LOG_JSON_LINE_MAX ? len : LOG_JSON_LINE_MAX);
		add_field(buf, buflen, &used, iov, maxiov, &niov, "MESSAGE",
		    text, strlen(text));
		add_field(buf, buflen, &used, iov, maxiov, &niov,
		    "PRIORITY", "6", 1);
		add_field(buf, buflen, &used, iov, maxiov, &niov,
		    "SYSLOG_FACILITY", "2", 1);
		if (ident != NULL)
			add_field(buf, buflen, &used, iov, maxiov, &niov,
			    "SYSLOG_IDENTIFIER", ident, strlen(ident));
		return niov;
	}
	for (i = 0; i < NJOURNAL_MAP; i++) {
		json_t *v = json_object_get(o, journal_map[i].key);
		char num[64];

		if (json_is_string(v)) {
			add_field(buf, buflen, &used, iov, maxiov, &niov,
			    journal_map[i].field, json_string_value(v),
			    json_string_length(v));
		} else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld",
			    (long long)json_integer_value(v));
			add_field(buf, buflen, &used, iov, maxiov, &niov,
			    journal_map[i].field, num, strlen(num));
		} else if (json_is_real(v)) {
			snprintf(num, sizeof(num), "%.3f", json_real_value(v));
			add_field(buf, buflen, &used, iov, maxiov, &niov,
			    journal_map[i].field, num, strlen(num));
		}
	}
	snprintf(prio, sizeof(prio), "%d",
	    log_level_prio(json_string_value(json_object_get(o, "level"))));
	add_field(buf, buflen, &used, iov, maxiov, &niov, "PRIORITY", prio,
	    strlen(prio));
	add_field(buf, buflen, &used, iov, maxiov, &niov, "SYSLOG_FACILITY",
	    "2", 1);
	json_decref(o);
	return niov;
}

void
log_lines_feed(struct log_lines *l, const char *data, size_t n,
    void (*each)(const char *line, size_t len, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (data[i] == '\n') {
			each(l->buf, l->len, arg);
			l->len = 0;
			continue;
		}
		if (l->len == sizeof(l->buf)) {
			each(l->buf, l->len, arg);   /* too long: cut */
			l->len = 0;
		}
		l->buf[l->len++] = data[i];
	}
}
