/*
 * anvil_client.h - the SMTP worker's side of ferry-anvil, the small
 * process that keeps per-client counts across all workers: connections
 * in all and per client address, connection and message rates per client
 * address, and authentication failures per address and per user (for the
 * lockout).  Workers ask before they act.
 *
 * When anvil cannot be reached the worker logs it and allows the action
 * (fail open): the limits protect capacity, they are not what keeps a
 * relay closed.
 */
#ifndef FERRY_ANVIL_CLIENT_H
#define FERRY_ANVIL_CLIENT_H

#include <stdint.h>
#include "channel.h"

#define ANVIL_OK 0
#define ANVIL_TOO_MANY_CONNECTIONS 1   /* in all */
#define ANVIL_TOO_MANY_FROM_CLIENT 2   /* from this address */
#define ANVIL_CONNECTION_RATE 3
#define ANVIL_MESSAGE_RATE 4
#define ANVIL_AUTH_LOCKED 5

struct anvil_client {
	char *path;         /* the anvil socket as this process sees it */
	struct channel ch;  /* ch.fd is -1 when not connected */
	/* stress mode, as anvil last said (IMSG_ANVIL_STRESS) */
	int stress;
	uint32_t stress_timeout;   /* seconds, while stress is on */
	int stress_changed;        /* set on every note; the caller clears */
};

void anvil_client_init(struct anvil_client *ac, const char *path);
void anvil_client_close(struct anvil_client *ac);

/* Connects when not connected (and not just failed), so that anvil's
 * stress notes reach this worker while it has nothing to ask. */
void anvil_client_keep_connected(struct anvil_client *ac);
/* The descriptor to poll for readability, or -1. */
int anvil_client_fd(const struct anvil_client *ac);
/* Takes the notes anvil pushed (stress on or off); on end of file the
 * connection is dropped and stress mode is off. */
void anvil_client_readable(struct anvil_client *ac);

/* A new connection from addr (numeric).  ANVIL_OK or the limit hit; on OK
 * the caller must call anvil_disconnect when the session ends. */
int anvil_connect(struct anvil_client *ac, const char *addr);
void anvil_disconnect(struct anvil_client *ac, const char *addr);
/* A new mail transaction (at MAIL): ANVIL_OK or ANVIL_MESSAGE_RATE. */
int anvil_message(struct anvil_client *ac, const char *addr);
/* Before checking a password: ANVIL_OK or ANVIL_AUTH_LOCKED (addr or user
 * is locked out).  user may be "" when not known yet. */
int anvil_auth_check(struct anvil_client *ac, const char *addr,
    const char *user);
void anvil_auth_failed(struct anvil_client *ac, const char *addr,
    const char *user);

#endif
