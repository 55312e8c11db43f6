/*
 * ferry-check - the checks of a configuration that need OpenSSL,
 * libxcrypt or SQLite, kept out of the master (ferryd) so that it maps
 * none of those libraries: config_check_text() (config_check.c: syntax
 * and ranges, TLS certificates and keys, the AUTH users file, the DKIM
 * keys and the copy of them the queue runner gets at a reload), and with
 * --check-queue the queue database (integrity_check, and whether a WAL
 * holding committed mail was lost), read-only and as the database's
 * owner.
 *
 * Two ways to run it:
 *   ferry-check [-f config] [--check-queue] [--name ferryd]
 *       what "ferryd -n" runs (ferryd execs it): prints "NAME: config:
 *       configuration OK" or the error on stderr; exits 0 good, 1 bad,
 *       2 for a usage error.
 *   ferry-check --for-master -f config
 *       what the master runs, as root, at start and at every reload,
 *       before it starts anything with the file: the text it read is at
 *       FD_CONFIG (3), the DKIM keys' copy for the runner goes to fd 4,
 *       and the verdict is one line on stdout: "ok", or "refused: "
 *       and the error (the master reads this, not the exit status).
 *
 * Security stance: run by root on root's own file; it reads key files
 * and writes their bytes only to the descriptor the master gave it.
 * It reads no network input.
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

#include "child.h"
#include "config.h"
#include "config_check.h"
#include "procfd.h"
#include "store.h"

/* The master's copy of the DKIM keys, for the runner (--for-master). */
#define FD_CHECK_KEYS (FD_CONFIG + 1)

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferry-check [-f config] [--check-queue] [--name NAME]\n"
	    "       ferry-check --for-master -f config\n"
	    "  -f             configuration file (default %s)\n"
	    "  --check-queue  check the queue database too\n"
	    "                 (integrity_check; a lost WAL)\n"
	    "  --name         the name the lines start with (ferryd -n: "
	    "ferryd)\n"
	    "  --for-master   the text at descriptor 3, the DKIM keys' copy "
	    "to 4,\n"
	    "                 the verdict on stdout (run by ferryd)\n",
	    CONFIG_DEFAULT_PATH);
}

/* --check-queue: the database's integrity, read-only (the runner may be
 * running), and a WAL lost with committed mail in it.  0 or -1. */
static int
check_queue_db(const char *name, const struct ferry_config *cfg)
{
	char path[4096], err[2048];
	struct stat sb;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", cfg->spool_dir,
	    SPOOL_QUEUE_DIR, QUEUE_DB_NAME) >= sizeof(path)) {
		fprintf(stderr, "%s: spool_dir too long\n", name);
		return -1;
	}
	/* as the queue's owner: files SQLite makes beside it stay its */
	if (geteuid() == 0 && stat(path, &sb) == 0 &&
	    (setgroups(0, NULL) < 0 || setgid(sb.st_gid) < 0 ||
	    setuid(sb.st_uid) < 0)) {
		fprintf(stderr, "%s: cannot become the owner of %s: %s\n",
		    name, path, strerror(errno));
		return -1;
	}
	if (store_wal_lost(path, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", name, err);
		return -1;
	}
	if (store_check_file(path, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		return -1;
	}
	printf("%s: %s: queue OK (integrity_check)\n", name, path);
	return 0;
}

/* The master's check: the text it read, its verdict on stdout. */
static int
check_for_master(const char *path)
{
	struct ferry_config *cfg;
	char err[1024], *text = child_read_config_fd(FD_CONFIG);

	if (text == NULL) {
		printf("refused: %s: the text to check (descriptor %d): %s\n",
		    path, FD_CONFIG, strerror(errno));
		return 1;
	}
	cfg = config_check_text(path, text, FD_CHECK_KEYS, err, sizeof(err));
	free(text);
	if (cfg == NULL) {
		/* one line: the master logs it as it is */
		err[strcspn(err, "\n")] = '\0';
		printf("refused: %s\n", err);
		return 1;
	}
	config_free(cfg);
	printf("ok\n");
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check-queue", no_argument, NULL, 'Q' },
		{ "for-master", no_argument, NULL, 'M' },
		{ "name", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = CONFIG_DEFAULT_PATH, *name = "ferry-check";
	struct ferry_config *cfg;
	char err[1024];
	int ch, check_queue = 0, for_master = 0, rc = 0;

	config_check_dkim_keys();   /* every key must load */
	while ((ch = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 'Q':
			check_queue = 1;
			break;
		case 'M':
			for_master = 1;
			break;
		case 'N':
			name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (for_master && check_queue)) {
		usage(stderr);
		return 2;
	}
	if (for_master)
		return check_for_master(path);
	cfg = config_check(path, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "%s: %s\n", name, err);
		return 1;
	}
	printf("%s: %s: configuration OK\n", name, cfg->path);
	fflush(stdout);
	if (check_queue && check_queue_db(name, cfg) < 0)
		rc = 1;
	config_free(cfg);
	return rc;
}
