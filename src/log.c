/*
 * log.c - one line per event, to syslog (facility mail) or to stderr.
 *
 * In the foreground each line carries a timestamp, the program name and
 * pid, so the output of the master and all its children can be read as
 * one stream.
 *
 * log { format = "json" } writes each line as one JSON object instead
 * (log_json.c builds it), to stderr or as syslog's message.  With
 * log { target = "journald" } every process writes JSON lines to its
 * stderr, which is the master's log pipe, and the master turns them into
 * native journal fields (log_journald.c): a chrooted worker cannot reach
 * the journal's socket, so the fields travel with the line.
 *
 * Held lines (log_hold): a process whose event loop handles many events
 * a turn (the SMTP worker, the queue runner) has its informational lines
 * to stderr gathered and written together by log_flush, which the loop
 * calls before it sleeps: one write a turn instead of one a line.  A
 * batch never exceeds PIPE_BUF, so it reaches the log pipe whole and
 * never interleaves with another process's lines.  A warning or worse
 * writes what is held first and then itself at once, and so do
 * log_fatal and log_panic before the process ends; so does exit().  Only
 * a process killed outright loses what its current turn held.
 */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"
#include "log_json.h"

static const char *log_ident = "ferry";
static enum log_target log_target = LOG_TO_STDERR;
static int log_debug_on;
static enum log_format log_format = LOG_FORMAT_TEXT;
static void (*log_line_sink)(const char *line, size_t len);
static pid_t log_pid;       /* getpid(), asked once per process */
static int log_holding;     /* log_hold: stderr lines wait for log_flush */
static char log_held[4096]; /* PIPE_BUF: one atomic write to a pipe */
static size_t log_held_len;

static void
log_forked(void)
{
	log_pid = 0;
	/* the parent writes the lines it held; a child's exit() must not
	 * write them again (a held line has called log_getpid, so this
	 * runs in any child forked while lines are held) */
	log_held_len = 0;
}

static long
log_getpid(void)
{
	static int registered;

	if (log_pid == 0) {
		if (!registered) {
			(void)pthread_atfork(NULL, NULL, log_forked);
			registered = 1;
		}
		log_pid = getpid();
	}
	return (long)log_pid;
}

void
log_flush(void)
{
	size_t off = 0;

	while (off < log_held_len) {
		ssize_t n = write(STDERR_FILENO, log_held + off,
		    log_held_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;  /* nowhere left to report it */
		off += (size_t)n;
	}
	log_held_len = 0;
}

static void
log_flush_at_exit(void)
{
	log_flush();
}

void
log_hold(void)
{
	static int registered;

	if (!registered && atexit(log_flush_at_exit) == 0)
		registered = 1;
	log_holding = registered;
}

/* One finished line (with its newline) to stderr: held, or written
 * after what is held. */
static void
log_write_line(int prio, const char *line, size_t n)
{
	if (log_holding && prio >= LOG_NOTICE && n <= sizeof(log_held)) {
		if (log_held_len + n > sizeof(log_held))
			log_flush();
		memcpy(log_held + log_held_len, line, n);
		log_held_len += n;
		return;
	}
	log_flush();
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}

void
log_init(const char *ident, enum log_target target, int debug)
{
	log_ident = ident;
	log_target = target;
	log_debug_on = debug;
	if (target == LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

void
log_set_line_sink(void (*sink)(const char *line, size_t len))
{
	log_line_sink = sink;
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

int
log_is_debug(void)
{
	return log_debug_on;
}

/* The line as one JSON object: to syslog, stderr or the journal. */
static void
log_emit_json(int prio, const struct log_fields *f, const char *msg)
{
	static int building;
	char line[LOG_JSON_LINE_MAX];
	struct timeval tv;
	size_t n;

	if (building) {
		/* out of memory while building a line: log_fatal's own line
		 * must not try again */
		n = (size_t)snprintf(line, sizeof(line), "{\"event\":\"log\","
		    "\"msg\":\"%s: out of memory\"}\n", log_ident);
		if (write(STDERR_FILENO, line, n < sizeof(line) ? n :
		    sizeof(line) - 1) < 0) {
			/* nowhere left to report it */
		}
		return;
	}
	building = 1;
	gettimeofday(&tv, NULL);
	n = log_json_line(line, sizeof(line) - 1, (long long)tv.tv_sec,
	    (long)tv.tv_usec, log_ident, log_getpid(), prio, f, msg);
	building = 0;
	if (log_target == LOG_TO_SYSLOG) {
		syslog(prio, "%s", line);
		return;
	}
	if (log_target == LOG_TO_JOURNAL && log_line_sink != NULL) {
		log_line_sink(line, n);
		return;
	}
	line[n++] = '\n';
	/* One write (at most PIPE_BUF) per line, as below. */
	log_write_line(prio, line, n);
}

static void
log_vemit_fields(int prio, const struct log_fields *f, const char *fmt,
    va_list ap)
{
	char msg[2048];
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_format == LOG_FORMAT_JSON || log_target == LOG_TO_JOURNAL) {
		log_emit_json(prio, f, msg);
	} else if (log_target == LOG_TO_SYSLOG) {
		syslog(prio, "%s", msg);
	} else {
		char line[2300], stamp[32];
		struct timeval tv;
		struct tm tm;
		const char *level = "";
		int n;

		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		switch (prio) {
		case LOG_WARNING: level = "warning: "; break;
		case LOG_ERR: level = "error: "; break;
		case LOG_CRIT: level = "fatal: "; break;
		case LOG_ALERT: level = "panic: "; break;
		case LOG_DEBUG: level = "debug: "; break;
		default: break;
		}
		n = snprintf(line, sizeof(line), "%s.%03ld %s[%ld]: %s%s\n",
		    stamp, (long)(tv.tv_usec / 1000), log_ident,
		    log_getpid(), level, msg);
		if (n > (int)sizeof(line) - 1) {
			n = sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		/* One write per line (or per batch of whole lines) so
		 * lines of concurrent processes do not interleave. */
		log_write_line(prio, line, (size_t)n);
	}
	errno = saved;
}

static void
log_vemit(int prio, const char *fmt, va_list ap)
{
	log_vemit_fields(prio, NULL, fmt, ap);
}

void
log_event(int prio, const struct log_fields *f, const char *fmt, ...)
{
	va_list ap;

	if (prio == LOG_DEBUG && !log_debug_on)
		return;
	va_start(ap, fmt);
	log_vemit_fields(prio, f, fmt, ap);
	va_end(ap);
}

#define LOG_FN(name, prio)                         \
	void name(const char *fmt, ...)            \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		log_vemit(prio, fmt, ap);          \
		va_end(ap);                        \
	}

LOG_FN(log_info, LOG_INFO)
LOG_FN(log_warn, LOG_WARNING)
LOG_FN(log_error, LOG_ERR)

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_ALERT, fmt, ap);
	va_end(ap);
	abort();
}

const char *
log_sanitize(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (outlen == 0)
		return out;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outlen)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}
