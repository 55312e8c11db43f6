/*
 * token_response.c - the token endpoint's JSON answer (token_response.h).
 *
 * Security stance: the body comes from the network (over verified TLS,
 * but from a server we do not run).  It is parsed by jansson with a size
 * bound set by the caller; a token is used only when it passes
 * credentials_token_valid (printable, no space, bounded), so it cannot
 * break a line of the credentials file or an SMTP command; the error
 * text quoted in logs is sanitised and cut short, and never holds a
 * token.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "credentials.h"
#include "log.h"
#include "token_response.h"
#include "util.h"

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
token_grant_free(struct token_grant *g)
{
	wipe_free(g->access_token);
	wipe_free(g->refresh_token);
	memset(g, 0, sizeof(*g));
}

/* expires_in: a number, or a string of digits (some providers). */
static int64_t
expires_of(json_t *v)
{
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		long long n = strtoll(s, &end, 10);

		if (end != s && *end == '\0')
			return (int64_t)n;
	}
	return TOKEN_DEFAULT_EXPIRES;
}

int
token_response_parse(long http_status, const char *body, size_t len,
    struct token_grant *g, char *err, size_t errlen)
{
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *at, *rt, *e;

	memset(g, 0, sizeof(*g));
	if (root == NULL || !json_is_object(root)) {
		snprintf(err, errlen, "HTTP %ld from the token endpoint, "
		    "not JSON", http_status);
		json_decref(root);
		return -1;
	}
	e = json_object_get(root, "error");
	if (http_status != 200 || e != NULL) {
		json_t *d = json_object_get(root, "error_description");
		char what[80], why[200];

		log_sanitize(what, sizeof(what), json_is_string(e) ?
		    json_string_value(e) : "no error code", json_is_string(e) ?
		    strlen(json_string_value(e)) : 13);
		why[0] = '\0';
		if (json_is_string(d))
			log_sanitize(why, sizeof(why), json_string_value(d),
			    strlen(json_string_value(d)));
		snprintf(err, errlen, "HTTP %ld from the token endpoint: "
		    "%s%s%s%s", http_status, what, why[0] ? " (" : "", why,
		    why[0] ? ")" : "");
		json_decref(root);
		return -1;
	}
	at = json_object_get(root, "access_token");
	rt = json_object_get(root, "refresh_token");
	if (!json_is_string(at) ||
	    !credentials_token_valid(json_string_value(at))) {
		snprintf(err, errlen, "the token endpoint's answer has no "
		    "usable access_token");
		json_decref(root);
		return -1;
	}
	if (rt != NULL && (!json_is_string(rt) ||
	    !credentials_token_valid(json_string_value(rt)))) {
		snprintf(err, errlen, "the token endpoint's answer has an "
		    "unusable refresh_token");
		json_decref(root);
		return -1;
	}
	g->access_token = xstrdup(json_string_value(at));
	g->refresh_token = rt ? xstrdup(json_string_value(rt)) : NULL;
	g->expires_in = expires_of(json_object_get(root, "expires_in"));
	if (g->expires_in < 1)
		g->expires_in = 1;
	if (g->expires_in > 86400 * 366)
		g->expires_in = 86400 * 366;
	json_decref(root);
	return 0;
}
