/*
 * log.h - one line per event, to syslog (facility mail) or to stderr.
 *
 * Failure classes follow Postfix: log_warn for something an operator
 * should see, log_fatal when the environment is wrong (exit 1), log_panic
 * when one of our own invariants is broken (abort).  Network input is
 * never a reason for log_fatal.
 *
 * The lines operators search (a message accepted, each delivery result,
 * a client's connection) are written with log_event, which adds the
 * line's fields (queue id, addresses, status...) as separate values: the
 * text format shows the formatted line alone, byte for byte as before;
 * the JSON format (log_json.h) and the journal carry the fields too.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

/* The order of log { target } in config.c. */
enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR, LOG_TO_JOURNAL };
/* The order of log { format } in config.c. */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* The fields of one event; NULL (or has_* 0) leaves one out.  Strings
 * are the raw values (any byte): each output escapes them its own way. */
struct log_fields {
	const char *event;     /* NULL: "log" */
	const char *qid;
	const char *from;
	const char *to;
	const char *relay;
	const char *dsn;
	const char *status;
	const char *reason;
	const char *client;    /* "name[address]" */
	const char *helo;
	int has_delay;
	double delay;          /* seconds */
	int has_size;
	unsigned long long size;
	int has_nrcpt;
	unsigned long nrcpt;
};

/* ident is the program name in every line ("ferryd", "ferry-smtpd"...).
 * LOG_TO_JOURNAL in a child writes JSON lines to stderr, the master's
 * log pipe; the master gives them (and its own) to log_set_line_sink's
 * function, which sends them to the journal. */
void log_init(const char *ident, enum log_target target, int debug);
void log_set_format(enum log_format format);
/* With LOG_TO_JOURNAL, each line as JSON goes to sink instead of stderr. */
void log_set_line_sink(void (*sink)(const char *line, size_t len));
void log_set_debug(int debug);
int log_is_debug(void);
/* From now on, lines of LOG_NOTICE and below to stderr wait (up to
 * PIPE_BUF bytes) for log_flush, which an event loop calls before it
 * sleeps; warnings and worse, exit(), log_fatal and log_panic write what
 * waits first (see log.c). */
void log_hold(void);
void log_flush(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line at priority prio (LOG_INFO...) with its fields. */
void log_event(int prio, const struct log_fields *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Copies s into out (size outlen) with anything unprintable as \xNN, so
 * text from the network can be put in a log line safely. */
const char *log_sanitize(char *out, size_t outlen, const char *s, size_t len);

#endif
