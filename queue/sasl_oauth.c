/*
 * sasl_oauth.c - XOAUTH2 and OAUTHBEARER initial responses (sasl_oauth.h).
 *
 * Security stance: the output holds a bearer token; the caller wipes it.
 * Nothing here logs.  USER comes from the credentials file and HOST from
 * the route, neither from the network.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "sasl_oauth.h"

size_t
sasl_xoauth2(const char *user, const char *token, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "user=%s\001auth=Bearer %s\001\001",
	    user, token);

	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

size_t
sasl_oauthbearer(const char *user, const char *host, unsigned port,
    const char *token, char *out, size_t outlen)
{
	size_t len = 0;
	const char *p;
	int n;

#define PUT(s, l) do { if (len + (l) >= outlen) return 0; \
	memcpy(out + len, (s), (l)); len += (l); } while (0)
	PUT("n,a=", 4);
	for (p = user; *p; p++) {
		if (*p == ',')
			PUT("=2C", 3);
		else if (*p == '=')
			PUT("=3D", 3);
		else
			PUT(p, 1);
	}
	PUT(",", 1);
#undef PUT
	n = snprintf(out + len, outlen - len,
	    "\001host=%s\001port=%u\001auth=Bearer %s\001\001", host, port,
	    token);
	if (n < 0 || (size_t)n >= outlen - len)
		return 0;
	return len + (size_t)n;
}
