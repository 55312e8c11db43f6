/*
 * token_http.h - the refresh-token grant (RFC 6749 6) over HTTPS with
 * libcurl, for ferry-token alone (the only program linking libcurl).
 */
#ifndef FERRY_TOKEN_HTTP_H
#define FERRY_TOKEN_HTTP_H

#include <stddef.h>

struct credential;
struct token_grant;

#define TOKEN_HTTP_CONNECT_TIMEOUT 10   /* seconds */
#define TOKEN_HTTP_TIMEOUT 30           /* seconds, the whole exchange */

/* Sets libcurl up; call once, before the privilege drop. */
void token_http_init(void);
/* POSTs grant_type=refresh_token with cr's client and scope and the
 * given refresh token to cr->token_url, checking the server's
 * certificate against ca_pem (when not NULL) or the system store.
 * Blocks at most TOKEN_HTTP_TIMEOUT seconds.  0 with *g filled, or -1
 * with a reason (never a token) in err. */
int token_http_grant(const struct credential *cr, const char *refresh_token,
    const char *ca_pem, size_t ca_len, struct token_grant *g, char *err,
    size_t errlen);

#endif
