/*
 * token_proto.h - what ferry-token says to the queue runner and to the
 * master (the wire of OAuth2 to the upstream; token.c).
 *
 *   token  -> runner  TOKEN_STATE    struct token_state, for every oauth2
 *                                    route when the runner connects and
 *                                    again at each change
 *   runner -> token   TOKEN_REFRESH  str route: a server refused the
 *                                    route's token (535, 334): get a new
 *                                    one
 *   token  -> master  TOKEN_ROTATED  str route, str refresh token: the
 *                                    provider rotated it; the master
 *                                    writes it into the credentials file
 *
 * Decoders are strict (bounded strings, ranges, nothing left over) and
 * return -1 on any malformation, leaving nothing to free.
 */
#ifndef FERRY_TOKEN_PROTO_H
#define FERRY_TOKEN_PROTO_H

#include <stdint.h>
#include "ipc.h"

#define TOKEN_ROUTE_MAX 255
#define TOKEN_REASON_MAX 400

enum token_status { TOKEN_OK = 0, TOKEN_REFRESHING = 1, TOKEN_FAILED = 2 };

struct token_state {
	char *route;
	uint32_t status;          /* enum token_status */
	char *reason;             /* why it failed ("" when ok); no token */
	char *access_token;       /* "" when there is none */
	int64_t expires;          /* the access token's end, unix seconds; 0 */
	uint32_t refresh_ok;      /* refreshes that got a token, ever */
	uint32_t refresh_failed;  /* refreshes that did not */
};

const char *token_status_name(uint32_t status);

void token_state_encode(const struct token_state *t, struct ipc_out *m);
int token_state_decode(struct ipc_in *in, struct token_state *t);
/* Wipes the access token and frees. */
void token_state_free(struct token_state *t);

/* TOKEN_REFRESH: route.  TOKEN_ROTATED: route and refresh token
 * (credentials_token_valid). */
int token_refresh_decode(struct ipc_in *in, char **route);
int token_rotated_decode(struct ipc_in *in, char **route, char **token);

#endif
