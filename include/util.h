/*
 * util.h - small helpers every process uses: checked allocation, string
 * copies that always terminate, monotonic time, and descriptor flags.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Copies at most size-1 bytes and always terminates; returns strlen(src). */
size_t ferry_strlcpy(char *dst, const char *src, size_t size);

/* Milliseconds on the monotonic clock. */
int64_t now_ms(void);
/* Seconds and microseconds since the epoch (wall clock). */
double now_wall(void);

int fd_set_nonblock(int fd, int on);
int fd_set_cloexec(int fd, int on);
/* Moves fd to exactly target (dup2, closing the original) - for the fixed
 * descriptor numbers children are started with. */
int fd_move_to(int fd, int target);

/* Writes all of buf, retrying on EINTR/partial writes (blocking fd). */
int write_all(int fd, const void *buf, size_t len);

/* Accepts one waiting connection on a listening unix socket (non-blocking,
 * close-on-exec) when its peer runs as uid want.  A peer of another uid is
 * closed and logged as "who: refusing a connection from uid N (why)" and
 * -2 returned; -1 (errno set) when nothing is waiting or accept failed.
 * pid, when not NULL, gets the peer's pid. */
int accept_from_uid(int listen_fd, uid_t want, pid_t *pid, const char *who,
    const char *why);

/* A non-blocking, close-on-exec stream socket connecting to the unix
 * socket at path (the connection may still be in progress): the fd, or -1
 * with the reason in why ("socket path too long", "socket: ...",
 * "connect: ..."). */
int unix_connect_nonblock(const char *path, char *why, size_t whylen);

/* Fills buf with len random bytes from the kernel; fatal on failure. */
void random_bytes(void *buf, size_t len);

/* RFC 5322 date-time for the Received header, e.g.
 * "Mon, 23 Nov 2026 17:37:01 +0000". */
void rfc5322_date(char *out, size_t outlen, time_t t);

#endif
