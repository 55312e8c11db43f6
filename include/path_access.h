/*
 * path_access.h - whether a user could reach a path: every directory on
 * the way must let that user search it (path_access.c).
 */
#ifndef FERRY_PATH_ACCESS_H
#define FERRY_PATH_ACCESS_H

#include <stddef.h>
#include <sys/types.h>

/* 0 when uid (primary group gid) may search every directory from / down
 * to path itself (path a directory, absolute or relative to the current
 * directory); -1 with the first directory that stops it in blocker
 * (and its mode in *mode), or with errno's text when a stat failed. */
int path_searchable(const char *path, uid_t uid, gid_t gid,
    char *blocker, size_t blen, mode_t *mode);

#endif
