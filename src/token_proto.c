/*
 * token_proto.c - encoding and strict decoding of ferry-token's frames
 * (token_proto.h).
 *
 * Security stance: the peers are ferry processes, but each frame is
 * checked as if it came from an enemy; the access and refresh tokens
 * they carry are wiped when freed and never appear in an error.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "token_proto.h"

const char *
token_status_name(uint32_t status)
{
	switch (status) {
	case TOKEN_OK: return "ok";
	case TOKEN_REFRESHING: return "refreshing";
	case TOKEN_FAILED: return "failed";
	}
	return "unknown";
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
token_state_encode(const struct token_state *t, struct ipc_out *m)
{
	ipc_add_str(m, t->route);
	ipc_add_u32(m, t->status);
	ipc_add_str(m, t->reason);
	ipc_add_str(m, t->access_token);
	ipc_add_i64(m, t->expires);
	ipc_add_u32(m, t->refresh_ok);
	ipc_add_u32(m, t->refresh_failed);
}

void
token_state_free(struct token_state *t)
{
	free(t->route);
	free(t->reason);
	wipe_free(t->access_token);
	memset(t, 0, sizeof(*t));
}

static int
route_ok(const char *r)
{
	return r[0] != '\0';
}

int
token_state_decode(struct ipc_in *in, struct token_state *t)
{
	memset(t, 0, sizeof(*t));
	if (ipc_get_str(in, &t->route, TOKEN_ROUTE_MAX) < 0 ||
	    !route_ok(t->route) ||
	    ipc_get_u32(in, &t->status) < 0 || t->status > TOKEN_FAILED ||
	    ipc_get_str(in, &t->reason, TOKEN_REASON_MAX) < 0 ||
	    ipc_get_str(in, &t->access_token, CRED_TOKEN_MAX) < 0 ||
	    (t->access_token[0] != '\0' &&
	    !credentials_token_valid(t->access_token)) ||
	    ipc_get_i64(in, &t->expires) < 0 || t->expires < 0 ||
	    ipc_get_u32(in, &t->refresh_ok) < 0 ||
	    ipc_get_u32(in, &t->refresh_failed) < 0 ||
	    ipc_end(in) < 0) {
		token_state_free(t);
		return -1;
	}
	return 0;
}

int
token_refresh_decode(struct ipc_in *in, char **route)
{
	*route = NULL;
	if (ipc_get_str(in, route, TOKEN_ROUTE_MAX) < 0 ||
	    !route_ok(*route) || ipc_end(in) < 0) {
		free(*route);
		*route = NULL;
		return -1;
	}
	return 0;
}

int
token_rotated_decode(struct ipc_in *in, char **route, char **token)
{
	*route = NULL;
	*token = NULL;
	if (ipc_get_str(in, route, TOKEN_ROUTE_MAX) < 0 ||
	    !route_ok(*route) ||
	    ipc_get_str(in, token, CRED_TOKEN_MAX) < 0 ||
	    !credentials_token_valid(*token) || ipc_end(in) < 0) {
		free(*route);
		wipe_free(*token);
		*route = NULL;
		*token = NULL;
		return -1;
	}
	return 0;
}
