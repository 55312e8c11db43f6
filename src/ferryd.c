/*
 * ferryd - the ferry master daemon: parses its options and runs master()
 * (see master.c), or checks a configuration file with -n, and with
 * --check-queue the queue database too (integrity_check, and whether a
 * WAL holding committed mail was lost), read-only and as the database's
 * owner.
 */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "config_check.h"
#include "log.h"
#include "master.h"
#include "procfd.h"
#include "store.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferryd [-d] [-n] [-f config] [-L libexec-dir] "
	    "[-p pid-file]\n"
	    "  -d  stay in the foreground and log to stderr\n"
	    "  -n  check the configuration file and exit (0 good, 1 bad)\n"
	    "      --check-queue  with -n: check the queue database too\n"
	    "                     (integrity_check; a lost WAL)\n"
	    "  -f  configuration file (default %s)\n"
	    "  -L  directory holding ferry-smtpd and ferry-queue\n"
	    "  -p  write the master's pid to this file\n"
	    "  -V  print the version\n", CONFIG_DEFAULT_PATH);
}

/* --check-queue: the database's integrity, read-only (the runner may be
 * running), and a WAL lost with committed mail in it.  0 or -1. */
static int
check_queue_db(const struct ferry_config *cfg)
{
	char path[4096], err[2048];
	struct stat sb;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", cfg->spool_dir,
	    SPOOL_QUEUE_DIR, QUEUE_DB_NAME) >= sizeof(path)) {
		fprintf(stderr, "ferryd: spool_dir too long\n");
		return -1;
	}
	/* as the queue's owner: files SQLite makes beside it stay its */
	if (geteuid() == 0 && stat(path, &sb) == 0 &&
	    (setgroups(0, NULL) < 0 || setgid(sb.st_gid) < 0 ||
	    setuid(sb.st_uid) < 0)) {
		fprintf(stderr, "ferryd: cannot become the owner of %s: %s\n",
		    path, strerror(errno));
		return -1;
	}
	if (store_wal_lost(path, err, sizeof(err))) {
		fprintf(stderr, "ferryd: %s\n", err);
		return -1;
	}
	if (store_check_file(path, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "ferryd: %s\n", err);
		return -1;
	}
	printf("ferryd: %s: queue OK (integrity_check)\n", path);
	return 0;
}

int
main(int argc, char **argv)
{
	struct master_args a;
	static const struct option longopts[] = {
		{ "check-queue", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, check = 0, check_queue = 0;

	memset(&a, 0, sizeof(a));
	a.config_path = CONFIG_DEFAULT_PATH;
	config_check_dkim_keys();   /* the master vouches for every key */
	while ((ch = getopt_long(argc, argv, "df:hL:np:V", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'Q':
			check_queue = 1;
			break;
		case 'd':
			a.foreground = 1;
			break;
		case 'f':
			a.config_path = optarg;
			break;
		case 'L':
			a.libexec_dir = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'p':
			a.pid_file = optarg;
			break;
		case 'V':
			printf("ferry %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (check_queue && !check)) {
		usage(stderr);
		return 2;
	}
	if (check) {
		char err[1024];
		/* the same checks as ferryctl check (config_check.h) */
		struct ferry_config *cfg = config_check(a.config_path, err,
		    sizeof(err));

		if (cfg == NULL) {
			fprintf(stderr, "ferryd: %s\n", err);
			return 1;
		}
		printf("ferryd: %s: configuration OK\n", cfg->path);
		if (check_queue && check_queue_db(cfg) < 0) {
			config_free(cfg);
			return 1;
		}
		config_free(cfg);
		return 0;
	}
	return master(&a);
}
