/*
 * token_response.h - reading a token endpoint's answer to the
 * refresh-token grant (RFC 6749 5.1 and 5.2).  Pure: the HTTP status and
 * body in, the grant or a reason out.
 */
#ifndef FERRY_TOKEN_RESPONSE_H
#define FERRY_TOKEN_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_DEFAULT_EXPIRES 3600    /* when expires_in is absent */

struct token_grant {
	char *access_token;
	char *refresh_token;      /* NULL: not rotated */
	int64_t expires_in;       /* seconds, >= 1 */
};

/* 0 with *g filled (free with token_grant_free); -1 with a reason in
 * err that never holds a token: "invalid_grant (description)" for an
 * OAuth2 error, "HTTP 500" for anything else. */
int token_response_parse(long http_status, const char *body, size_t len,
    struct token_grant *g, char *err, size_t errlen);
/* Wipes the tokens and frees. */
void token_grant_free(struct token_grant *g);

#endif
