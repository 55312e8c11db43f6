/*
 * child.c - what every exec'd child of the master does first: read its
 * arguments and the configuration text the master handed over.
 */
#include "autoconfig.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "child.h"
#include "config.h"
#include "log.h"
#include "procfd.h"
#include "util.h"

#define KEEP_FREE_HEAP (1024 * 1024)   /* M_TRIM_THRESHOLD */
#define HEAP_UP_TO (512 * 1024)        /* M_MMAP_THRESHOLD */

void
child_keep_heap(void)
{
	(void)mallopt(M_TRIM_THRESHOLD, KEEP_FREE_HEAP);
	(void)mallopt(M_MMAP_THRESHOLD, HEAP_UP_TO);
}

/* Free heap a worker may keep before child_trim_heap() gives it back:
 * below it, the pages that the next sessions reuse stay mapped (giving
 * them back each second cost 5 % more CPU a message at 10 sessions). */
#define TRIM_ABOVE (2 * 1024 * 1024)

void
child_trim_heap(void)
{
#if defined(HAVE_MALLOC_TRIM) && defined(HAVE_MALLINFO2)
	if (mallinfo2().fordblks > TRIM_ABOVE)
		(void)malloc_trim(KEEP_FREE_HEAP);
#endif
}

void
child_parse_args(int argc, char **argv, struct child_args *a)
{
	int ch;

	memset(a, 0, sizeof(*a));
	while ((ch = getopt(argc, argv, "df:g:")) != -1) {
		switch (ch) {
		case 'd':
			a->foreground = 1;
			break;
		case 'f':
			a->config_path = optarg;
			break;
		case 'g':
			a->generation = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: %s -f config [-d] [-g gen]\n"
			    "(started by ferryd, not by hand)\n", argv[0]);
			exit(EXIT_CONFIG);
		}
	}
	if (a->config_path == NULL) {
		fprintf(stderr, "%s: -f config is required (this program is "
		    "started by ferryd)\n", argv[0]);
		exit(EXIT_CONFIG);
	}
}

char *
child_read_config_fd(int fd)
{
	size_t cap = 8192, len = 0;
	char *text = xmalloc(cap);

	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			if (cap > (1 << 20)) {
				free(text);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			text = xrealloc(text, cap);
		}
		/* pread: siblings share this descriptor's file offset */
		n = pread(fd, text + len, cap - len - 1, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(text);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	return text;
}

struct ferry_config *
child_load_config(const struct child_args *a, const char *ident)
{
	struct ferry_config *cfg;
	char *text, err[1024];

	/* Load the time zone now: a chrooted worker cannot read it later. */
	tzset();
	{
		time_t t = time(NULL);
		struct tm tm;

		localtime_r(&t, &tm);
	}
	log_init(ident, a->foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG, 0);
	text = child_read_config_fd(FD_CONFIG);
	if (text == NULL)
		log_fatal("configuration descriptor %d: %s (this program is "
		    "started by ferryd)", FD_CONFIG, strerror(errno));
	close(FD_CONFIG);
	cfg = config_load(a->config_path, text, err, sizeof(err));
	free(text);
	if (cfg == NULL) {
		log_error("%s", err);
		exit(EXIT_CONFIG);
	}
	log_set_format((enum log_format)cfg->log_format);
	if (!a->foreground && cfg->log_target != LOG_TO_SYSLOG)
		log_init(ident, (enum log_target)cfg->log_target,
		    cfg->log_debug);
	else
		log_set_debug(cfg->log_debug);
	return cfg;
}

void
child_follow_master(pid_t master)
{
	/* Dropping privileges clears the parent-death signal: set it again,
	 * then make sure the master did not die before that. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		log_warn("PR_SET_PDEATHSIG: %s", strerror(errno));
	if (getppid() != master) {
		log_error("the master (pid %ld) is gone; exiting",
		    (long)master);
		exit(0);
	}
}

void
child_signals(void (*on_term)(int), void (*on_usr1)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1 != NULL ? on_usr1 : SIG_IGN;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
	sigemptyset(&sa.sa_mask);
	sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);
}
