/*
 * sasl_oauth.h - the initial client responses of the SASL mechanisms
 * that carry an OAuth2 bearer token: XOAUTH2 (Google, Microsoft) and
 * OAUTHBEARER (RFC 7628).  Pure: buffers in, bytes out, not yet base64.
 */
#ifndef FERRY_SASL_OAUTH_H
#define FERRY_SASL_OAUTH_H

#include <stddef.h>

/* "user=USER\1auth=Bearer TOKEN\1\1".  Returns its length, or 0 when it
 * does not fit in outlen (a NUL is added after it). */
size_t sasl_xoauth2(const char *user, const char *token, char *out,
    size_t outlen);

/* "n,a=USER,\1host=HOST\1port=PORT\1auth=Bearer TOKEN\1\1" with ',' and
 * '=' in USER written =2C and =3D (RFC 5801 saslname).  Returns its
 * length, or 0 when it does not fit. */
size_t sasl_oauthbearer(const char *user, const char *host, unsigned port,
    const char *token, char *out, size_t outlen);

#endif
