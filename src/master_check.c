/*
 * master_check.c - the master runs ferry-check, as root, on the text it
 * read before it starts anything with it: at start (master_check_wait,
 * before the event loop) and at every reload without blocking its event
 * loop (master_check_poll on the verdict pipe, which the caller polls).
 * The checks that need OpenSSL, libxcrypt and SQLite then live in that
 * short-lived child, and ferryd maps none of those libraries.
 *
 * The child gets the text at FD_CONFIG (a sealed memfd: it checks
 * exactly what the master will apply), a memfd at FD_CONFIG + 1 for the
 * copy of the DKIM keys that the queue runner gets with the reload, and
 * a pipe for its verdict: one line, "ok" or "refused: <why>".  The
 * verdict is read from the pipe, not from the exit status, so the
 * master's reaper (waitpid(-1)) may reap the child whenever it likes; a
 * child that ends without a verdict (it crashed) refuses the file.  One
 * that takes longer than MASTER_CHECK_TIMEOUT_MS is killed, while its
 * pipe is still open (so the pid is still its own, alive or a zombie
 * nobody reaped yet), and the file refused.
 *
 * Security stance: ferry-check is the master's own program, run with
 * the master's privileges on the master's own file; what it writes is
 * read as text, at most sizeof(verdict) bytes, and anything but "ok"
 * refuses the file.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "master_check.h"
#include "procfd.h"
#include "util.h"

void
master_check_program(const char *libexec_dir, char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	if (libexec_dir != NULL) {
		snprintf(buf, len, "%s/ferry-check", libexec_dir);
		return;
	}
	/* a build tree: the programs sit beside ferryd */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			*slash = '\0';
			if ((size_t)snprintf(buf, len, "%s/ferry-check", self) <
			    len && access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, len, "%s/ferry-check", LIBEXECDIR);
}

/* A sealed memfd holding text. */
static int
text_fd(const char *text, size_t len)
{
	int fd = memfd_create("ferry.conf", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	/* read from its start, with pread or not */
	if (write_all(fd, text, len) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
master_check_start(struct master_check *c, const char *prog,
    const char *path, char *text, size_t len, char *err, size_t errlen)
{
	int p[2] = { -1, -1 }, cfd, kfd = -1;
	sigset_t all, old;
	pid_t pid;

	memset(c, 0, sizeof(*c));
	c->verdict_fd = c->keys_fd = -1;
	if ((cfd = text_fd(text, len)) < 0 ||
	    (kfd = memfd_create("ferry-dkim-keys", MFD_CLOEXEC)) < 0 ||
	    pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot start the configuration check: "
		    "%s", strerror(errno));
		goto fail;
	}
	/* as spawn() in master.c: no master handler runs in the child */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		snprintf(err, errlen, "cannot start the configuration check: "
		    "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		struct sigaction sa;
		int devnull, i;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		for (i = 1; i < NSIG; i++)
			sigaction(i, &sa, NULL);
		/* above the targets first, then into place (above 4, not
		 * far: the open-file limit may be low before the master
		 * raises it) */
		if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
		    (devnull = fcntl(devnull, F_DUPFD_CLOEXEC, FD_CONFIG + 2)) <
		    0 ||
		    (cfd = fcntl(cfd, F_DUPFD_CLOEXEC, FD_CONFIG + 2)) < 0 ||
		    (kfd = fcntl(kfd, F_DUPFD_CLOEXEC, FD_CONFIG + 2)) < 0 ||
		    (p[1] = fcntl(p[1], F_DUPFD_CLOEXEC, FD_CONFIG + 2)) < 0 ||
		    dup2(devnull, STDIN_FILENO) < 0 ||
		    dup2(p[1], STDOUT_FILENO) < 0 ||
		    dup2(cfd, FD_CONFIG) < 0 || dup2(kfd, FD_CONFIG + 1) < 0)
			_exit(EXIT_CONFIG);
		/* none of the master's other descriptors */
		(void)close_range(FD_CONFIG + 2, ~0U, 0);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execl(prog, prog, "--for-master", "-f", path, (char *)NULL);
		printf("refused: cannot run %s: %s\n", prog, strerror(errno));
		fflush(stdout);
		_exit(EXIT_CONFIG);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	close(cfd);
	fd_set_nonblock(p[0], 1);
	c->pid = pid;
	c->verdict_fd = p[0];
	c->keys_fd = kfd;
	c->deadline = now_ms() + MASTER_CHECK_TIMEOUT_MS;
	c->text = text;
	c->len = len;
	return 0;
fail:
	if (cfd >= 0)
		close(cfd);
	if (kfd >= 0)
		close(kfd);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	free(text);
	return -1;
}

/* The verdict the checker wrote, once its pipe is closed. */
static int
verdict(struct master_check *c, char *err, size_t errlen)
{
	char *v = c->verdict;

	close(c->verdict_fd);
	c->verdict_fd = -1;
	c->pid = 0;   /* gone: its pipe closed with it */
	v[c->verdict_len] = '\0';
	if (strcmp(v, "ok\n") == 0)
		return 0;
	if (strncmp(v, "refused: ", 9) == 0 && c->verdict_len > 10 &&
	    v[c->verdict_len - 1] == '\n') {
		v[c->verdict_len - 1] = '\0';
		snprintf(err, errlen, "%s", v + 9);
	} else {
		snprintf(err, errlen, "the configuration check (ferry-check) "
		    "ended without a verdict");
	}
	return -1;
}

int
master_check_poll(struct master_check *c, char *err, size_t errlen)
{
	for (;;) {
		ssize_t n = read(c->verdict_fd, c->verdict + c->verdict_len,
		    sizeof(c->verdict) - 1 - c->verdict_len);

		if (n > 0) {
			c->verdict_len += (size_t)n;
			if (c->verdict_len < sizeof(c->verdict) - 1)
				continue;
			/* more than a verdict: not ferry-check speaking */
			kill(c->pid, SIGKILL);
			c->verdict_len = 0;
			return verdict(c, err, errlen);
		}
		if (n == 0)
			return verdict(c, err, errlen);
		if (errno == EINTR)
			continue;
		break;   /* EAGAIN: it runs */
	}
	if (now_ms() >= c->deadline) {
		/* the pipe is open: the pid is still the checker's */
		kill(c->pid, SIGKILL);
		close(c->verdict_fd);
		c->verdict_fd = -1;
		snprintf(err, errlen, "the configuration check (ferry-check, "
		    "pid %ld) took more than %d s and was killed",
		    (long)c->pid, MASTER_CHECK_TIMEOUT_MS / 1000);
		c->pid = 0;
		return -1;
	}
	return 1;
}

int
master_check_wait(struct master_check *c, char *err, size_t errlen)
{
	pid_t pid = c->pid;
	int rc;

	for (;;) {
		struct pollfd pfd = { .fd = c->verdict_fd, .events = POLLIN };
		int64_t wait = c->deadline - now_ms();

		if ((rc = master_check_poll(c, err, errlen)) <= 0)
			break;
		(void)poll(&pfd, 1, wait > 0 ? (int)wait : 0);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return rc;
}

void
master_check_clear(struct master_check *c)
{
	if (c->verdict_fd >= 0) {
		/* still running: its pipe is open, so the pid is its own */
		kill(c->pid, SIGKILL);
		close(c->verdict_fd);
	}
	if (c->keys_fd >= 0)
		close(c->keys_fd);
	free(c->text);
	memset(c, 0, sizeof(*c));
	c->verdict_fd = c->keys_fd = -1;
}
