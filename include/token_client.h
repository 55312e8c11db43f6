/*
 * token_client.h - the queue runner's side of ferry-token: each OAuth2
 * route's access token as ferry-token last told it, and the gate the
 * scheduler asks before it dispatches a route's mail (token_client.c).
 */
#ifndef FERRY_TOKEN_CLIENT_H
#define FERRY_TOKEN_CLIENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "token_proto.h"

struct token_client;

enum token_gate {
	TOKEN_GATE_NONE,          /* not an OAuth2 route: dispatch as usual */
	TOKEN_GATE_SEND,          /* dispatch with *token */
	TOKEN_GATE_WAIT,          /* no token yet, one is being got: wait */
	TOKEN_GATE_DEFER          /* the refresh failed (*reason): defer */
};

/* spool/token.sock is looked for at once and again while it is away. */
struct token_client *token_client_new(const char *spool_dir);
void token_client_free(struct token_client *tc);

/* One pollfd (fd -1 while not connected). */
void token_client_pollfd(struct token_client *tc, struct pollfd *p);
/* After poll: reads what ferry-token said, connects again when due.
 * Returns 1 when a route's state changed (the scheduler looks again). */
int token_client_events(struct token_client *tc, short revents);
/* Milliseconds until the next connection attempt, or -1. */
int token_client_timeout_ms(const struct token_client *tc);

/* What may be done now with route's mail; auth: the route authenticates
 * (only such routes wait for ferry-token at start).  *serial tells this
 * token from the route's others (for token_client_refused). */
enum token_gate token_client_gate(struct token_client *tc,
    const char *route, int auth, const char **token, const char **reason,
    uint32_t *serial);
/* A server refused route's token number serial (a 4.7.8 result): ask
 * ferry-token for a new one, once per token.  Nothing for a route that
 * is not OAuth2, or for a token already replaced. */
void token_client_refused(struct token_client *tc, const char *route,
    uint32_t serial);

/* The routes' states, for ferryctl status and the metrics. */
size_t token_client_count(const struct token_client *tc);
const struct token_state *token_client_at(const struct token_client *tc,
    size_t i);

#endif
