/*
 * machine_limits.h - what limits { max_connections } asks of the machine:
 * the open files every ferry process may need and the listen backlog.
 *
 * max_connections stays the one ceiling; the rest follows from it.  One
 * session holds its client's socket and, while a message comes in, an
 * intake channel to the queue runner, so a single worker may need two
 * descriptors per connection, and a process needs a few more of its own
 * (listeners, anvil, status pipe, log, configuration).  The master sets
 * RLIMIT_NOFILE to that before it starts any child, so every child (the
 * workers are exec'd by it) inherits the same limit before it drops
 * privileges; it refuses to start when it cannot.
 *
 * The sizes are pure functions (unit-tested); the rest reads or sets the
 * process's limits and /proc/sys/net/core/somaxconn.
 */
#ifndef FERRY_MACHINE_LIMITS_H
#define FERRY_MACHINE_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#define MACHINE_FDS_PER_SESSION 2    /* the client, its intake channel */
#define MACHINE_FDS_PER_WORKER 4     /* the master's side of each child */
#define MACHINE_FDS_BASE 64          /* a process's own descriptors */
#define MACHINE_BACKLOG_MIN 511      /* never under the old fixed value */

/* Open files one process may need with max_connections sessions and
 * workers_max workers. */
uint64_t machine_fds_needed(int max_connections, int workers_max);
/* The listen backlog for max_connections: at least MACHINE_BACKLOG_MIN,
 * at most somaxconn (the kernel's cap) when that is known (> 0). */
int machine_backlog(int max_connections, int somaxconn);

/* Raises RLIMIT_NOFILE to at least need: the soft limit, and the hard one
 * when it is lower (possible as root with CAP_SYS_RESOURCE, up to
 * fs.nr_open).  Never lowers a limit.  0, or -1 with the reason in err
 * (the limits are then unchanged). */
int machine_raise_nofile(uint64_t need, char *err, size_t errlen);
/* net.core.somaxconn, or -1 when it cannot be read. */
int machine_somaxconn(void);

#endif
