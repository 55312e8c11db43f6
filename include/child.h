/*
 * child.h - what every exec'd child of the master (ferry-smtpd,
 * ferry-anvil, ferry-queue, ferry-deliver) does first: parse its
 * arguments, read the configuration the master handed over, and follow
 * the master after the privilege drop (child.c).
 */
#ifndef FERRY_CHILD_H
#define FERRY_CHILD_H

#include <stdint.h>
#include <sys/types.h>

struct ferry_config;

struct child_args {
	const char *config_path;  /* for messages and relative paths */
	int foreground;           /* log to stderr */
	uint32_t generation;      /* the master's configuration generation */
};

/* Reads the configuration the master handed over at FD_CONFIG. Fatal on
 * failure (exit EXIT_CONFIG). */
struct ferry_config *child_load_config(const struct child_args *a,
    const char *ident);
/* The whole configuration text from a descriptor the master handed over
 * (read with pread from offset 0); NULL with errno set, EFBIG past 1 MiB. */
char *child_read_config_fd(int fd);
/* Parses "-f path -d -g N" for the exec'd children. */
void child_parse_args(int argc, char **argv, struct child_args *a);

/* Signals as every child takes them: SIGTERM and SIGINT run on_term,
 * SIGUSR1 runs on_usr1 (ignored when NULL); SIGPIPE, SIGHUP and SIGXFSZ
 * are ignored (a write past a limit fails instead of killing); none
 * restarts a system call, so poll wakes up.  Then unblocks every signal:
 * the master starts its children with them blocked. */
void child_signals(void (*on_term)(int), void (*on_usr1)(int));

/* Keeps up to 1 MiB of freed heap instead of giving it back to the
 * kernel at every free (glibc trims above 128 KiB by default), and takes
 * blocks under 512 KiB from the heap rather than from fresh mappings.
 * The runner, the workers and the agents free and take again the same
 * few hundred KiB for every message - SQLite's pages and statements, a
 * session's buffers, a job's state - and each trimmed page was faulted in
 * again by the next message (about 5 page faults a message in a
 * one-session relay).  Costs at most 1 MiB a process at rest. */
void child_keep_heap(void);
/* Gives the whole free pages inside the heap back to the system, keeping
 * KEEP_FREE_HEAP at its top, when more than 2 MiB of the heap is free.  For a process that holds many sessions at
 * once (an SMTP worker): the heap otherwise keeps the high-water mark of
 * every session's buffers, scattered between the blocks still in use.
 * Called at most about once a second, so the pages faulted in again
 * cost little. */
void child_trim_heap(void);

/* After the privilege drop: die with the master (PR_SET_PDEATHSIG). */
void child_follow_master(pid_t master);

#endif
