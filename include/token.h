/*
 * token.h - ferry-token, the process that holds the OAuth2 refresh
 * tokens of the credentials file and keeps an access token for each
 * oauth2 route, which the queue runner puts into its jobs (token.c).
 */
#ifndef FERRY_TOKEN_H
#define FERRY_TOKEN_H

struct child_args;

int token(const struct child_args *a);

#endif
