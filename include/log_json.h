/*
 * log_json.h - the structured side of ferry's log: one JSON object per
 * line (log { format = "json" }), the systemd journal's native fields
 * made from such a line (log { target = "journald" }), and the splitting
 * of the children's log stream into lines for the master.
 *
 * Every function here is pure (no I/O), so the unit tests and the master
 * use the same code.  The schema of a line, its keys in this order, each
 * present only when it has a value:
 *   ts     time, UTC, "2026-01-02T03:04:05.678Z"
 *   proc   program name ("ferry-queue"), pid  its process id
 *   level  "info", "warning", "error", "fatal", "panic" or "debug"
 *   event  what happened: "connect", "disconnect", "reject" (a 4xx/5xx
 *          reply), "client" (a worker's first line about a message),
 *          "accepted", "delivery" (one recipient's attempt), "bounce",
 *          "delay_notice", "removed", or "log" for any other line
 *   qid from to relay dsn status delay reason client helo size nrcpt
 *   msg    the line as the text format writes it (after "proc[pid]: ")
 * Strings carry any byte: invalid UTF-8 becomes U+00XX per byte and
 * everything outside printable ASCII is a \u escape (json_bytes.h).
 */
#ifndef FERRY_LOG_JSON_H
#define FERRY_LOG_JSON_H

#include <stddef.h>
#include <sys/uio.h>

#include "log.h"

/* The longest line written, newline included: PIPE_BUF, so the line of
 * a child reaches the master's pipe in one piece. */
#define LOG_JSON_LINE_MAX 4096

/* The level's name in a line ("info"...) for a syslog priority. */
const char *log_level_name(int prio);
/* The syslog priority for a level's name; LOG_INFO when unknown. */
int log_level_prio(const char *name);

/* Writes the JSON object for one log line into out (size outlen, at least
 * 256) without a newline, NUL-terminated; returns its length.  Strings are
 * shortened until the object fits (outlen - 1 bytes at most); f may be
 * NULL (event "log").  ts: seconds and microseconds since the epoch. */
size_t log_json_line(char *out, size_t outlen, long long ts_sec,
    long ts_usec, const char *proc, long pid, int prio,
    const struct log_fields *f, const char *msg);

/* The journal entry for one line of the children's stream (a JSON object
 * written by log_json_line, or any other text): "FIELD=value" items in
 * iov (at most maxiov), their text in buf (size buflen); returns the
 * number of items.  Field names come from a fixed table, never from the
 * line: MESSAGE, PRIORITY, SYSLOG_FACILITY (2, mail), SYSLOG_IDENTIFIER,
 * SYSLOG_PID, and QUEUE_ID, EVENT, FROM, TO, RELAY, DSN, STATUS, DELAY,
 * REASON, CLIENT, HELO, SIZE, NRCPT.  A line that is not such an object
 * becomes MESSAGE alone (printable, \xNN for other bytes) from
 * SYSLOG_IDENTIFIER ident. */
size_t log_journal_fields(const char *line, size_t len, const char *ident,
    char *buf, size_t buflen, struct iovec *iov, size_t maxiov);

/* Splits a byte stream into lines.  A line longer than the buffer is
 * cut at LOG_JSON_LINE_MAX bytes. */
struct log_lines {
	char buf[LOG_JSON_LINE_MAX];
	size_t len;
};

/* Adds n bytes of data and calls each(line, len, arg) for every whole
 * line (without its newline). */
void log_lines_feed(struct log_lines *l, const char *data, size_t n,
    void (*each)(const char *line, size_t len, void *arg), void *arg);

#endif
