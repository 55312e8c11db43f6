/*
 * config_check.c - the whole check of a configuration file: what
 * config_load checks (syntax, every option's range, the files it names,
 * the DKIM keys where config_check_dkim_keys() is set), then what the
 * workers load from those files (TLS certificates and keys, the AUTH
 * users file), and the copy of the DKIM keys the queue runner gets at a
 * reload, parsed as the runner parses it.  ferry-check (which ferryd -n
 * and the master at start and reload run) and ferryctl check/reload run
 * this same function, so they agree on what a good file is.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "auth_users.h"
#include "child.h"
#include "config_check.h"
#include "dkim.h"
#include "dkim_copy.h"
#include "tls_server.h"

/* Copies the keys into keys_fd (a memfd of our own when -1) and reads
 * the copy as the runner does.  0, or -1 with err. */
static int
check_keys_copy(const struct ferry_config *cfg, int keys_fd, char *err,
    size_t errlen)
{
	struct dkim_signing *s;
	char *pem;
	int fd = keys_fd, rc = -1;

	if (cfg->ndkim_keys == 0)
		return 0;
	if (fd < 0 && (fd = memfd_create("ferry-dkim-keys", MFD_CLOEXEC)) <
	    0) {
		snprintf(err, errlen, "memfd: %s", strerror(errno));
		return -1;
	}
	if (dkim_keys_copy(cfg, fd, err, errlen) < 0)
		goto out;
	if ((pem = child_read_config_fd(fd)) == NULL) {
		snprintf(err, errlen, "the DKIM keys' copy: %s",
		    strerror(errno));
		goto out;
	}
	s = dkim_signing_new(cfg, pem, strlen(pem), err, errlen);
	explicit_bzero(pem, strlen(pem));
	free(pem);
	if (s != NULL) {
		dkim_signing_free(s);
		rc = 0;
	}
out:
	if (fd != keys_fd)
		close(fd);
	return rc;
}

struct ferry_config *
config_check_text(const char *path, const char *text, int keys_fd,
    char *err, size_t errlen)
{
	struct ferry_config *cfg = config_load(path, text, err, errlen);

	if (cfg != NULL && (tls_server_check(cfg, err, errlen) < 0 ||
	    auth_users_check(cfg, err, errlen) < 0 ||
	    check_keys_copy(cfg, keys_fd, err, errlen) < 0)) {
		config_free(cfg);
		cfg = NULL;
	}
	return cfg;
}

struct ferry_config *
config_check(const char *path, char *err, size_t errlen)
{
	return config_check_text(path, NULL, -1, err, errlen);
}
