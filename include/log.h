/*
 * log.h - one line per event, to syslog (facility mail) or to stderr.
 *
 * Failure classes follow Postfix: log_warn for something an operator
 * should see, log_fatal when the environment is wrong (exit 1), log_panic
 * when one of our own invariants is broken (abort).  Network input is
 * never a reason for log_fatal.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdarg.h>

enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR };

/* ident is the program name in every line ("ferryd", "ferry-smtpd"...). */
void log_init(const char *ident, enum log_target target, int debug);
void log_set_debug(int debug);
int log_is_debug(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Copies s into out (size outlen) with anything unprintable as \xNN, so
 * text from the network can be put in a log line safely. */
const char *log_sanitize(char *out, size_t outlen, const char *s, size_t len);

#endif
