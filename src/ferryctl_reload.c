/*
 * ferryctl_reload.c - "ferryctl check" and "ferryctl reload".
 *
 * check runs config_check() - exactly what "ferryd -n" runs - and exits
 * as ferryd -n does: 0 for a good file, 1 for a bad one, the error naming
 * the file and line.
 *
 * reload asks the runner for "status", which carries the master's pid,
 * the file it reads and its configuration generation; checks that file
 * (or -f's) as check does and stops there if it is bad; sends the master
 * SIGHUP; then asks again every RELOAD_POLL_MS until the generation has
 * moved on - the master took the file, started its new workers and told
 * the runner - for at most RELOAD_WAIT_MS.  A master that refuses the
 * file (a listener it cannot bind, say) keeps its generation; ferryctl
 * then says so and exits 1.
 *
 * Security stance: the pid comes from the runner, which runs without
 * privilege.  ferryctl signals it only if /proc says that process is
 * ferryd, so a subverted runner cannot make root's ferryctl signal any
 * other process; and only SIGHUP, which ferryd answers with a checked
 * reload.
 */
#include "autoconfig.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config_check.h"
#include "ferryctl_reload.h"
#include "util.h"

#define RELOAD_WAIT_MS 10000
#define RELOAD_POLL_MS 100

int
ctl_check(const char *config_path)
{
	struct ferry_config *cfg;
	char err[1024];

	cfg = config_check(config_path, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "ferryctl: %s\n", err);
		return 1;
	}
	printf("ferryctl: %s: configuration OK\n", cfg->path);
	config_free(cfg);
	return 0;
}

/* What "status" says of the master. */
struct master_view {
	long pid;
	long long generation;
	char config[4096];
};

/* Asks "status" and reads the master object: 0, or an exit status after
 * saying why. */
static int
ask_master(const char *sock, ctl_ask_status_fn ask_status,
    struct master_view *mv)
{
	json_t *root, *m, *pid, *gen, *cfg;
	char *ans = NULL;
	size_t anslen = 0;
	int rc;

	rc = ask_status(sock, &ans, &anslen);
	if (rc != 0)
		return rc;
	root = json_loadb(ans, anslen, JSON_ALLOW_NUL, NULL);
	free(ans);
	m = json_object_get(root, "master");
	pid = json_object_get(m, "pid");
	gen = json_object_get(m, "generation");
	cfg = json_object_get(m, "config");
	if (!json_is_true(json_object_get(root, "ok"))) {
		const char *e = json_string_value(json_object_get(root,
		    "error"));

		fprintf(stderr, "ferryctl: reload: the queue runner cannot "
		    "report the running configuration%s%s; reload with "
		    "\"kill -HUP\" and read ferryd's log\n", e ? ": " : "",
		    e ? e : "");
		json_decref(root);
		return 1;
	}
	if (!json_is_integer(pid) || !json_is_integer(gen) ||
	    json_integer_value(pid) <= 1 || !json_is_string(cfg)) {
		fprintf(stderr, "ferryctl: reload: the daemon's status names "
		    "no master (an older queue runner?)\n");
		json_decref(root);
		return 1;
	}
	mv->pid = (long)json_integer_value(pid);
	mv->generation = (long long)json_integer_value(gen);
	snprintf(mv->config, sizeof(mv->config), "%s", json_string_value(cfg));
	json_decref(root);
	return 0;
}

/* Whether pid is a process named ferryd. */
static int
is_ferryd(long pid)
{
	char path[64], comm[32];
	FILE *fp;
	int yes = 0;

	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	fp = fopen(path, "re");
	if (fp == NULL)
		return 0;
	if (fgets(comm, sizeof(comm), fp) != NULL)
		yes = strcmp(comm, "ferryd\n") == 0;
	fclose(fp);
	return yes;
}

int
ctl_reload(const char *sock, const char *config_path,
    ctl_ask_status_fn ask_status, int json_out)
{
	struct master_view before, now;
	struct ferry_config *cfg;
	char err[1024];
	int64_t deadline;
	int rc;

	if ((rc = ask_master(sock, ask_status, &before)) != 0)
		return rc;
	if (config_path == NULL)
		config_path = before.config;
	cfg = config_check(config_path, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "ferryctl: %s\nferryctl: reload refused: "
		    "generation %lld keeps running\n", err, before.generation);
		return 1;
	}
	config_free(cfg);
	if (!is_ferryd(before.pid)) {
		fprintf(stderr, "ferryctl: reload: pid %ld is not ferryd; "
		    "not signalled\n", before.pid);
		return 1;
	}
	if (kill((pid_t)before.pid, SIGHUP) < 0) {
		fprintf(stderr, "ferryctl: reload: cannot signal ferryd (pid "
		    "%ld): %s%s\n", before.pid, strerror(errno),
		    errno == EPERM ? " (reload needs root)" : "");
		return 1;
	}
	deadline = now_ms() + RELOAD_WAIT_MS;
	for (;;) {
		usleep(RELOAD_POLL_MS * 1000);
		rc = ask_master(sock, ask_status, &now);
		if (rc == 0 && now.pid == before.pid &&
		    now.generation > before.generation)
			break;
		if (now_ms() >= deadline) {
			fprintf(stderr, "ferryctl: reload failed: ferryd (pid "
			    "%ld) still runs generation %lld after %d s; its "
			    "log says why\n", before.pid, before.generation,
			    RELOAD_WAIT_MS / 1000);
			return 1;
		}
	}
	if (json_out)
		printf("{\"ok\":true,\"pid\":%ld,\"generation\":%lld,"
		    "\"previous\":%lld}\n", now.pid, now.generation,
		    before.generation);
	else
		printf("ferryctl: %s: configuration OK\nferryctl: reloaded: "
		    "generation %lld took over from generation %lld (ferryd "
		    "pid %ld)\n", config_path, now.generation,
		    before.generation, now.pid);
	return 0;
}
