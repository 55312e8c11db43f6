/*
 * smtp_session.h - one SMTP server session (RFC 5321 and the extensions
 * ferry announces), from greeting to QUIT, as a state machine driven by
 * the worker's event loop: the session never blocks on its client, so
 * one worker holds many sessions at once.
 *
 * Security stance: everything read from the client is hostile.  Input is
 * held in one fixed buffer, replies the client leaves unread in one
 * capped buffer (a client that does not read is dropped), every limit of
 * the configuration is enforced here, each command has a deadline, data
 * has a deadline for the whole message and an idle limit, and no client
 * input ever reaches a shell, a format string or the log unescaped.  The
 * session holds no privilege and no queue data; messages go to the queue
 * runner through its own intake connection and 250 is sent only when the
 * runner says the message is durable.  Sessions of one worker share its
 * address space: see smtpd.c for what that means for isolation.
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

/* Shared by every session of the worker; the worker's loop sets it. */
struct session_control {
	volatile sig_atomic_t drain;     /* finish soon: shutdown */
	int64_t drain_deadline;          /* now_ms() clock; 0 = none */
	int64_t stress_ms;               /* stress mode: idle limit in ms
	                                    for every session; 0 = off */
};

struct session_params {
	const struct ferry_config *cfg;
	const char *queue_path;          /* the runner's intake socket */
	struct intake_client *intake;    /* a connection to it left by an
	                                    earlier session (moved into
	                                    this one), or NULL */
	struct session_control *control;
	int fd;                          /* accepted, non-blocking; the
	                                    session owns it */
	const struct sockaddr *peer;
	const char *listener;            /* name of the listen section */
	const struct listener_config *lcfg;  /* that section's policy; NULL =
	                                    plain, relay by relay.networks */
	struct tls_server *tls;          /* its TLS context; NULL = no TLS */
	const struct auth_users *users;  /* the users file; NULL = no AUTH */
	struct anvil_client *anvil;      /* counts across workers; NULL =
	                                    no checks */
	uint32_t anvil_owner;            /* the owner its questions carry */
	const char *peer_name;           /* the client's confirmed name, a
	                                    valid host name; NULL or "" =
	                                    unknown */
};

struct smtp_session;

/* Starts a session on an accepted connection (logs "connect from"). */
struct smtp_session *smtp_session_start(const struct session_params *p);
/* Runs the session as far as it goes without blocking: after poll said
 * its socket is ready, or when its deadline has come (now >= deadline:
 * the session times out as the protocol says). */
void smtp_session_run(struct smtp_session *s, int64_t now);
/* Anvil's answer (ANVIL_*) to the question the session is parked on;
 * the caller runs the session afterwards.  Nothing when it waits for
 * none. */
/* poll reported the client's connection (readable, or hung up): the
 * next run reads it.  A plain connection is read only after a read or
 * this call says there may be something (see smtp_session_run). */
void smtp_session_readable(struct smtp_session *s);
void smtp_session_anvil_answer(struct smtp_session *s, int result);
/* What to poll its socket for (POLLIN, POLLOUT); 0 once it is over. */
short smtp_session_events(const struct smtp_session *s);
int smtp_session_fd(const struct smtp_session *s);
/* Its connection to the queue runner when there is something to poll
 * it for (smtp_session_queue_events), else -1. */
int smtp_session_queue_fd(const struct smtp_session *s);
short smtp_session_queue_events(const struct smtp_session *s);
/* After poll, for its connection to the runner as polled (events) and
 * what poll said (revents): nothing on it marks it quiet for this turn
 * (intake_quiet); a note between transactions is read at once. */
void smtp_session_queue_polled(struct smtp_session *s, short events,
    short revents);
/* Nonzero when it stopped with work left that poll would not announce
 * (its turn was up, or TLS holds decrypted input): run it again soon. */
int smtp_session_more(const struct smtp_session *s);
/* When it must be run even without I/O (now_ms() clock). */
int64_t smtp_session_deadline(const struct smtp_session *s);
/* Nonzero once over: end it. */
int smtp_session_over(const struct smtp_session *s);
/* Logs "disconnect from", closes the socket and frees everything.  Its
 * connection to the runner, when idle and keep is not NULL, is moved to
 * *keep for the next session (1), else closed (0). */
int smtp_session_end(struct smtp_session *s, struct intake_client *keep);

#endif
