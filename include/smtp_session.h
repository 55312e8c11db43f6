/*
 * smtp_session.h - one SMTP server session (RFC 5321 and the extensions
 * ferry announces), from greeting to QUIT, over a connected socket.
 *
 * Security stance: everything read from the client is hostile.  Input is
 * held in one fixed buffer, every limit of the configuration is enforced
 * here, each command has a deadline, and no client input ever reaches a
 * shell, a format string or the log unescaped.  The session holds no
 * privilege and no queue data; messages go to the queue runner through
 * intake_client and 250 is sent only when the runner says it is durable.
 */
#ifndef FERRY_SMTP_SESSION_H
#define FERRY_SMTP_SESSION_H

#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

struct anvil_client;
struct auth_users;
struct ferry_config;
struct listener_config;
struct intake_client;
struct tls_server;

/* Set from signal handlers; the session polls them. */
struct session_control {
	volatile sig_atomic_t drain;     /* finish soon: shutdown */
	int64_t drain_deadline;          /* now_ms() clock; 0 = none */
};

struct session_params {
	const struct ferry_config *cfg;
	struct intake_client *queue;
	struct session_control *control;
	int fd;
	const struct sockaddr *peer;
	const char *listener;            /* name of the listen section */
	const struct listener_config *lcfg;  /* that section's policy; NULL =
	                                    plain, relay by relay.networks */
	struct tls_server *tls;          /* its TLS context; NULL = no TLS */
	const struct auth_users *users;  /* the users file; NULL = no AUTH */
	struct anvil_client *anvil;      /* counts across workers; NULL =
	                                    no checks */
};

/* Serves the session to its end; the caller closes fd. */
void smtp_session_run(const struct session_params *p);

#endif
