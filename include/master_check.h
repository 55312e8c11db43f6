/*
 * master_check.h - the master's side of ferry-check: it runs the checks
 * that need OpenSSL, libxcrypt or SQLite in a child, so that ferryd maps
 * none of them (master_check.c).
 */
#ifndef FERRY_MASTER_CHECK_H
#define FERRY_MASTER_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long a check may take before it is killed and the file refused. */
#define MASTER_CHECK_TIMEOUT_MS 30000

/* One run of ferry-check on a configuration text. */
struct master_check {
	pid_t pid;              /* the checker; 0 when none runs */
	int verdict_fd;         /* the read end of its stdout, -1 */
	int keys_fd;            /* memfd it fills with the DKIM keys' copy */
	int64_t deadline;       /* now_ms() past which it is killed */
	char *text;             /* the configuration text under check */
	size_t len;
	char verdict[2048];     /* what it wrote */
	size_t verdict_len;
	int again;              /* a reload asked for while it ran */
};

/* ferry-check's path: in libexec_dir (-L) when given, else beside the
 * running program when it is there (a build tree), else LIBEXECDIR. */
void master_check_program(const char *libexec_dir, char *buf, size_t len);

/* Starts prog --for-master on text (read from path; the check takes it
 * over, freed by master_check_clear).  0, or -1 with err (text freed). */
int master_check_start(struct master_check *c, const char *prog,
    const char *path, char *text, size_t len, char *err, size_t errlen);

/* Reads what the checker wrote so far, without blocking; kills it past
 * its deadline.  1 while it runs; 0 when it passed; -1 when it refused
 * the file, died or was killed, with err saying so.  Its exit is reaped
 * by whoever reaps the master's children (waitpid(-1)). */
int master_check_poll(struct master_check *c, char *err, size_t errlen);

/* The same, waiting for the end (before the master's event loop; reaps
 * the checker itself). */
int master_check_wait(struct master_check *c, char *err, size_t errlen);

/* Kills a checker still running and frees what the check holds; the
 * text and keys_fd are the caller's when it took them (set to NULL and
 * -1). */
void master_check_clear(struct master_check *c);

#endif
