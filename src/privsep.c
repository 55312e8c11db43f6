/*
 * privsep.c - drop privileges for good and check that they are gone.
 *
 * Order matters: look the user up and chroot while still root, then
 * setgroups/setgid/setuid, then PR_SET_NO_NEW_PRIVS and the rlimits, then
 * prove that neither setuid(0) nor seteuid(0) works (OpenSSH's
 * permanently_set_uid check).  Any failure is fatal.
 */
#include "autoconfig.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "log.h"
#include "privsep.h"

int
privsep_lookup(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

static void
set_limit(int resource, rlim_t value, const char *name)
{
	struct rlimit rl = { value, value };

	if (setrlimit(resource, &rl) < 0)
		log_fatal("setrlimit(%s): %s", name, strerror(errno));
}

int
privsep_drop(const struct privsep_target *t)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		log_info("not started as root: privileges are not dropped, "
		    "no chroot (a development run)");
		if (t->no_fork)
			set_limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC");
		return 0;
	}
	if (privsep_lookup(t->user, &uid, &gid) < 0)
		log_fatal("user %s does not exist", t->user);
	if (uid == 0)
		log_fatal("user %s is root: refusing to run as root",
		    t->user);
	if (t->chroot_dir != NULL) {
		if (chroot(t->chroot_dir) < 0)
			log_fatal("chroot %s: %s", t->chroot_dir,
			    strerror(errno));
		if (chdir("/") < 0)
			log_fatal("chdir / in chroot: %s", strerror(errno));
	}
	if (setgroups(1, &gid) < 0)
		log_fatal("setgroups: %s", strerror(errno));
	if (setresgid(gid, gid, gid) < 0)
		log_fatal("setresgid %ld: %s", (long)gid, strerror(errno));
	if (setresuid(uid, uid, uid) < 0)
		log_fatal("setresuid %ld: %s", (long)uid, strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_fatal("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		log_fatal("PR_SET_DUMPABLE: %s", strerror(errno));
	set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
	if (t->no_fork)
		set_limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC");
	if (t->no_files)
		set_limit(RLIMIT_FSIZE, 0, "RLIMIT_FSIZE");

	/* Prove it. */
	if (setuid(0) == 0 || seteuid(0) == 0)
		log_fatal("privileges could be regained after dropping to %s",
		    t->user);
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid)
		log_fatal("privilege drop to %s did not take", t->user);
	return 1;
}
