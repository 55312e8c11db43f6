/*
 * ferryd - the ferry master daemon: parses its options and runs master()
 * (see master.c), or checks a configuration file with -n.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth_users.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "tls_server.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferryd [-d] [-n] [-f config] [-L libexec-dir] "
	    "[-p pid-file]\n"
	    "  -d  stay in the foreground and log to stderr\n"
	    "  -n  check the configuration file and exit (0 good, 1 bad)\n"
	    "  -f  configuration file (default %s)\n"
	    "  -L  directory holding ferry-smtpd and ferry-queue\n"
	    "  -p  write the master's pid to this file\n"
	    "  -V  print the version\n", CONFIG_DEFAULT_PATH);
}

int
main(int argc, char **argv)
{
	struct master_args a;
	int ch, check = 0;

	memset(&a, 0, sizeof(a));
	a.config_path = CONFIG_DEFAULT_PATH;
	while ((ch = getopt(argc, argv, "df:hL:np:V")) != -1) {
		switch (ch) {
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
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (check) {
		char err[1024];
		struct ferry_config *cfg = config_load(a.config_path, NULL,
		    err, sizeof(err));

		/* what the workers will load: certificates, keys, users */
		if (cfg != NULL && (tls_server_check(cfg, err,
		    sizeof(err)) < 0 || auth_users_check(cfg, err,
		    sizeof(err)) < 0)) {
			config_free(cfg);
			cfg = NULL;
		}
		if (cfg == NULL) {
			fprintf(stderr, "ferryd: %s\n", err);
			return 1;
		}
		printf("ferryd: %s: configuration OK\n", cfg->path);
		config_free(cfg);
		return 0;
	}
	return master(&a);
}
