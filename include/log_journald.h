/*
 * log_journald.h - the master's side of log { target = "journald" }:
 * each JSON line (its own, and the children's read from the log pipe)
 * sent to the systemd journal with native fields.
 */
#ifndef FERRY_LOG_JOURNALD_H
#define FERRY_LOG_JOURNALD_H

#include <stddef.h>

#include "log_json.h"

/* Sends one line to the journal (log_set_line_sink's function).  Without
 * libsystemd, or when the journal refuses it, the line goes to stderr. */
void log_journald_line(const char *line, size_t len);

/* Adds bytes read from the children's log pipe; each whole line is sent
 * with log_journald_line. */
void log_journald_feed(struct log_lines *l, const char *data, size_t n);

#endif
