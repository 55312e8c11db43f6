/*
 * credentials.h - AUTH credentials for the upstream, one per route, read
 * as root from delivery.credentials_file before any privilege drop.
 *
 * File format: one credential per line, fields separated by spaces or
 * tabs; '#' starts a comment line; blank lines are ignored.
 *
 *   route-name username password
 *   route-name username oauth2 key=value...
 *
 * The second form is OAuth2 (SASL XOAUTH2 or OAUTHBEARER with an access
 * token got by the refresh-token grant; see token.c).  Its keys, in any
 * order, each at most once: token_url (https:// only, required),
 * client_id (required), refresh_token (required), client_secret, scope
 * (several scopes joined by '+' or ',' stand for spaces), ca_file (an
 * absolute path: the CA the token endpoint's certificate is checked
 * against instead of the system store).  An unknown key is an error.  So
 * a plain password cannot be the word "oauth2".
 *
 * The file must not be readable, writable or executable by others
 * (mode & 007 == 0).  Passwords, secrets and tokens are never logged.
 */
#ifndef FERRY_CREDENTIALS_H
#define FERRY_CREDENTIALS_H

#include <stddef.h>

#define CRED_TOKEN_MAX 4096       /* longest refresh or access token */

struct credential {
	char *route;
	char *user;
	char *pass;               /* "" for oauth2 */
	int oauth2;
	/* oauth2 only (NULL otherwise, and in the agents, which never hold
	 * them: credentials_drop_secrets) */
	char *token_url;
	char *client_id;
	char *client_secret;      /* NULL when not given */
	char *scope;              /* NULL when not given; spaces restored */
	char *refresh_token;
	char *ca_file;            /* NULL: the system store */
};

struct credentials {
	struct credential *v;
	size_t n;
};

/* Loads path into *c.  0 on success; -1 with a reason (never holding a
 * password) in err.  An empty path gives an empty set. */
int credentials_load(const char *path, struct credentials *c, char *err,
    size_t errlen);
/* Parses the file's text (for tests); "where" names it in errors. */
int credentials_parse(const char *text, const char *where,
    struct credentials *c, char *err, size_t errlen);
const struct credential *credentials_find(const struct credentials *c,
    const char *route);
/* How many routes use oauth2. */
size_t credentials_oauth2_count(const struct credentials *c);
/* Wipes every secret the delivery agents must not hold: passwords stay,
 * an oauth2 credential keeps its route, user and oauth2 mark only. */
void credentials_drop_secrets(struct credentials *c);
/* Wipes and frees. */
void credentials_free(struct credentials *c);

/* A token as ferry accepts it from a token endpoint: 1 to CRED_TOKEN_MAX
 * printable ASCII characters, no space (RFC 6749 VSCHAR less space). */
int credentials_token_valid(const char *s);

/* The file's text with the refresh_token of route's oauth2 line set to
 * token, every other byte unchanged: a malloc'd string, or NULL when
 * there is no such line or token is not valid. */
char *credentials_replace_refresh(const char *text, const char *route,
    const char *token);

#endif
