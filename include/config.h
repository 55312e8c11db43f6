/*
 * config.h - ferry.conf: the option table (libconfuse), validation where
 * each option is declared, and the parsed values every process reads.
 *
 * The master parses the file, keeps the text it validated, and hands the
 * same text to its children (see procfd.h), so every process works from
 * one checked configuration.  Relative paths are resolved against the
 * directory of the configuration file.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "netaddr.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/ferry/ferry.conf"

struct listener_config {
	char *name;        /* the section title, shown in logs */
	char *address;     /* numeric address */
	int port;
};

struct ferry_config {
	char *path;                /* absolute path of the file */
	char *hostname;
	char *user;                /* queue runner, owner of the spool */
	char *smtpd_user;          /* SMTP workers */
	char *spool_dir;           /* absolute */

	struct listener_config *listeners;
	size_t nlisteners;

	/* worker pool */
	int workers_min_idle;
	int workers_max_idle;
	int workers_max;
	int worker_sessions;       /* sessions before a worker is recycled */
	int shutdown_timeout;      /* seconds sessions get to finish */

	/* limits */
	int64_t message_size_limit;
	int max_recipients;
	int max_line_length;       /* command lines, with CRLF */
	int max_data_line_length;  /* message lines, with CRLF */
	int max_errors;
	int command_timeout;       /* seconds, a deadline per command */
	int data_timeout;          /* seconds, a deadline for a whole message */

	/* relay */
	struct cidr *relay_networks;
	size_t nrelay_networks;

	/* smarthost */
	char *smarthost_host;
	int smarthost_port;

	/* logging */
	int log_to_stderr;
	int log_debug;
};

/* Parses path (or, when text is non-NULL, text as if it were read from
 * path).  Returns a config, or NULL with "file:line: reason" in err. */
struct ferry_config *config_load(const char *path, const char *text,
    char *err, size_t errlen);
void config_free(struct ferry_config *cfg);

/* Reads a whole file into a NUL-terminated buffer (at most maxlen bytes);
 * NULL with errno set on failure. */
char *config_read_file(const char *path, size_t maxlen, size_t *lenp);

#endif
