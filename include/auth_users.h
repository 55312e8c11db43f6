/*
 * auth_users.h - the users file of SMTP AUTH and password checks.
 *
 * One user a line: "name:crypt-hash[:allowed-senders]", "#" comments and
 * blank lines allowed.  The hash is a crypt(3) hash (yescrypt "$y$",
 * SHA-512 "$6$", bcrypt "$2b$"/"$2y$"); allowed-senders is a comma list
 * of exact addresses and "@domain" (any local part there); empty = any.
 * The worker loads the file before it drops privileges; a reload starts
 * new workers, which read it again.
 */
#ifndef FERRY_AUTH_USERS_H
#define FERRY_AUTH_USERS_H

#include <stddef.h>

struct ferry_config;

#define AUTH_USER_MAX 255     /* longest user name */
#define AUTH_PASSWORD_MAX 512 /* longest password (libxcrypt's limit) */

struct auth_user {
	char *name;
	char *hash;
	char **senders;           /* "local@domain" or "@domain" */
	size_t nsenders;          /* 0 = any sender */
};

struct auth_users {
	struct auth_user *users;
	size_t n;
	const char *dummy;        /* checked for unknown users: same cost */
};

/* Parses text (len bytes) as the users file path; NULL with
 * "path:line: reason" in err. */
struct auth_users *auth_users_parse(const char *text, size_t len,
    const char *path, char *err, size_t errlen);
struct auth_users *auth_users_load(const char *path, char *err,
    size_t errlen);
void auth_users_free(struct auth_users *u);

/* Checks name and password.  1 with *out set when both are right; 0 when
 * the user is unknown or the password wrong (the same work is done in
 * both cases); -1 when the hash could not be computed. */
int auth_users_verify(const struct auth_users *u, const char *name,
    const char *password, const struct auth_user **out);

/* Nonzero when user may use sender (the MAIL FROM address, "" for <>):
 * any sender when its list is empty, else an exact address (local part
 * exact, domain case-insensitive) or "@domain". */
int auth_user_may_send(const struct auth_user *user, const char *sender);

/* For the master at start and on reload: when a listener offers AUTH,
 * the users file parses.  0, or -1 with the reason in err. */
int auth_users_check(const struct ferry_config *cfg, char *err,
    size_t errlen);

/* A new yescrypt hash of password (for ferryctl); NULL with the reason
 * in err.  The caller frees it. */
char *auth_hash_password(const char *password, char *err, size_t errlen);

#endif
