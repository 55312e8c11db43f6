/*
 * ferryd - the ferry master daemon: parses its options and runs master()
 * (see master.c), or checks a configuration file with -n, and with
 * --check-queue the queue database too (integrity_check, and whether a
 * WAL holding committed mail was lost): for -n it execs ferry-check
 * (ferry-check.c), which makes those checks with the libraries ferryd
 * does not link.
 */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "master.h"
#include "master_check.h"

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
	    "  -L  directory holding the programs ferryd runs (ferry-smtpd,\n"
	    "      ferry-queue, ferry-check...)\n"
	    "  -p  write the master's pid to this file\n"
	    "  -V  print the version\n", CONFIG_DEFAULT_PATH);
}

/* -n: ferry-check makes the checks (they need OpenSSL and SQLite, which
 * the master does not map) and says what ferryd -n says. */
static int
exec_check(const char *libexec_dir, const char *config_path, int check_queue)
{
	char prog[4096];

	master_check_program(libexec_dir, prog, sizeof(prog));
	execl(prog, prog, "--name", "ferryd", "-f", config_path,
	    check_queue ? "--check-queue" : (char *)NULL, (char *)NULL);
	fprintf(stderr, "ferryd: cannot run %s: %s\n", prog, strerror(errno));
	return 1;
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
	if (check)
		return exec_check(a.libexec_dir, a.config_path, check_queue);
	return master(&a);
}
