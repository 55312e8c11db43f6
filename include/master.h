/*
 * master.h - the master process (ferryd): reads and validates the
 * configuration, binds the listeners, prepares the spool, starts and
 * supervises the queue runner and the pool of SMTP workers, reloads on
 * SIGHUP and shuts down gracefully on SIGTERM.
 */
#ifndef FERRY_MASTER_H
#define FERRY_MASTER_H

struct master_args {
	const char *config_path;
	int foreground;          /* -d: stay in front, log to stderr */
	const char *libexec_dir; /* where ferry-smtpd and ferry-queue are */
	const char *pid_file;    /* NULL: none */
};

int master(const struct master_args *a);

#endif
