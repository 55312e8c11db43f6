/*
 * privsep.h - dropping privileges for good, and proving it.
 *
 * Called by each child after it has opened everything it needs as root.
 * Failure to drop is fatal: a process that meant to drop and could not
 * must not go on.
 */
#ifndef FERRY_PRIVSEP_H
#define FERRY_PRIVSEP_H

#include <sys/types.h>

struct privsep_target {
	const char *user;       /* account to become */
	const char *chroot_dir; /* NULL: no chroot */
	int no_fork;            /* RLIMIT_NPROC 0 */
	int no_files;           /* RLIMIT_FSIZE 0 */
};

/* Looks up user; 0 and uid/gid, or -1 when it does not exist. */
int privsep_lookup(const char *user, uid_t *uid, gid_t *gid);

/* When running as root: setgroups/setgid/setuid to target->user, chroot,
 * PR_SET_NO_NEW_PRIVS, rlimits, then checks that root cannot be regained.
 * When not root: logs that privileges are not dropped (a developer's run)
 * and returns 0 without changing anything.  Returns 1 when it dropped. */
int privsep_drop(const struct privsep_target *target);

#endif
