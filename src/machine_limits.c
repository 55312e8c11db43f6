/*
 * machine_limits.c - the open-file limit and the listen backlog that
 * limits { max_connections } needs (see machine_limits.h).  The master
 * calls it as root before it starts any child; nothing here parses
 * network input.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "machine_limits.h"

uint64_t
machine_fds_needed(int max_connections, int workers_max)
{
	if (max_connections < 0)
		max_connections = 0;
	if (workers_max < 0)
		workers_max = 0;
	return (uint64_t)max_connections * MACHINE_FDS_PER_SESSION +
	    (uint64_t)workers_max * MACHINE_FDS_PER_WORKER + MACHINE_FDS_BASE;
}

int
machine_backlog(int max_connections, int somaxconn)
{
	int backlog = max_connections > MACHINE_BACKLOG_MIN ?
	    max_connections : MACHINE_BACKLOG_MIN;

	if (somaxconn > 0 && backlog > somaxconn)
		backlog = somaxconn;
	return backlog;
}

static unsigned long long
shown(rlim_t v)
{
	return v == RLIM_INFINITY ? 0ULL : (unsigned long long)v;
}

int
machine_raise_nofile(uint64_t need, char *err, size_t errlen)
{
	struct rlimit now, want;

	if (getrlimit(RLIMIT_NOFILE, &now) < 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s",
		    strerror(errno));
		return -1;
	}
	if (now.rlim_cur == RLIM_INFINITY || now.rlim_cur >= need)
		return 0;
	want.rlim_cur = (rlim_t)need;
	want.rlim_max = now.rlim_max == RLIM_INFINITY ||
	    now.rlim_max >= need ? now.rlim_max : (rlim_t)need;
	if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
		int e = errno;

		if (want.rlim_max != now.rlim_max)
			snprintf(err, errlen, "the open-file limit is %llu "
			    "(hard %llu) and the hard limit cannot be raised "
			    "to %llu: %s", shown(now.rlim_cur),
			    shown(now.rlim_max), (unsigned long long)need,
			    strerror(e));
		else
			snprintf(err, errlen, "the open-file limit %llu "
			    "cannot be raised to %llu: %s",
			    shown(now.rlim_cur), (unsigned long long)need,
			    strerror(e));
		return -1;
	}
	return 0;
}

int
machine_somaxconn(void)
{
	char buf[32];
	ssize_t n;
	long v;
	char *end;
	int fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || v <= 0 || v > 0x7fffffffL)
		return -1;
	return (int)v;
}
