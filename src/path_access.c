/*
 * path_access.c - whether an unprivileged user can reach a directory.
 *
 * The master runs as root and prepares the spool; the queue runner and
 * the delivery agents reach it later by path, as their own users.  A
 * spool under a directory they cannot search (root's home is mode 0700,
 * and so is every new user's home on Debian 12) would leave the runner
 * without its queue.  The master asks here first so that it can say
 * which directory is in the way.  Permission bits only (owner, primary
 * group, others); ACLs are not read.
 */
#include "autoconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "path_access.h"

/* Whether the mode lets uid:gid search (execute) the directory. */
static int
may_search(const struct stat *sb, uid_t uid, gid_t gid)
{
	if (uid == 0)
		return 1;
	if (sb->st_uid == uid)
		return (sb->st_mode & S_IXUSR) != 0;
	if (sb->st_gid == gid)
		return (sb->st_mode & S_IXGRP) != 0;
	return (sb->st_mode & S_IXOTH) != 0;
}

int
path_searchable(const char *path, uid_t uid, gid_t gid, char *blocker,
    size_t blen, mode_t *mode)
{
	char real[PATH_MAX], dir[PATH_MAX];
	struct stat sb;
	size_t i;

	if (realpath(path, real) == NULL) {
		snprintf(blocker, blen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* "/", then every prefix that ends before a slash, then the whole */
	for (i = 0;; i++) {
		if (real[i] != '/' && real[i] != '\0')
			continue;
		if (i == 0) {
			strcpy(dir, "/");
		} else {
			memcpy(dir, real, i);
			dir[i] = '\0';
		}
		if (stat(dir, &sb) < 0) {
			snprintf(blocker, blen, "%s: %s", dir, strerror(errno));
			return -1;
		}
		if (!may_search(&sb, uid, gid)) {
			snprintf(blocker, blen, "%s", dir);
			if (mode != NULL)
				*mode = sb.st_mode & 07777;
			return -1;
		}
		if (real[i] == '\0')
			return 0;
	}
}
