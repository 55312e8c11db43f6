/*
 * credentials.h - the delivery agents' AUTH credentials, one per route,
 * read as root from delivery.credentials_file before the privilege drop.
 *
 * File format: one "route-name username password" per line (exactly
 * three fields separated by spaces or tabs); '#' starts a comment line;
 * blank lines are ignored.  The file must not be readable, writable or
 * executable by others (mode & 007 == 0).  Passwords are never logged.
 */
#ifndef FERRY_CREDENTIALS_H
#define FERRY_CREDENTIALS_H

#include <stddef.h>

struct credential {
	char *route;
	char *user;
	char *pass;
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
/* Wipes and frees. */
void credentials_free(struct credentials *c);

#endif
