/*
 * master_token.h - the master's part in OAuth2 to the upstream: whether
 * ferry-token is wanted at all, and writing a refresh token the
 * provider rotated back into the credentials file (master_token.c).
 */
#ifndef FERRY_MASTER_TOKEN_H
#define FERRY_MASTER_TOKEN_H

#include <stddef.h>

struct ipc_in;

/* How many routes of the credentials file use oauth2 (0 when there is
 * no file); -1 with err when it cannot be read. */
int master_token_routes(const char *credentials_file, char *err,
    size_t errlen);

/* One TOKEN_ROTATED note from ferry-token: the route's refresh_token is
 * replaced in credentials_file, atomically (a temporary file in the same
 * directory, same owner, mode 0600, fsync, rename, fsync of the
 * directory).  -1 when the note is malformed (the peer lied); 0
 * otherwise, also when the file could not be written (logged). */
int master_token_rotated(const char *credentials_file, struct ipc_in *in);

#endif
