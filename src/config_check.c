/*
 * config_check.c - the whole check of a configuration file: what
 * config_load checks (syntax, every option's range, the files it names),
 * then what the workers load from those files (TLS certificates and
 * keys, the AUTH users file).  ferryd -n and ferryctl check/reload run
 * this same function, so they agree on what a good file is.
 */
#include "autoconfig.h"

#include "auth_users.h"
#include "config_check.h"
#include "tls_server.h"

struct ferry_config *
config_check(const char *path, char *err, size_t errlen)
{
	struct ferry_config *cfg = config_load(path, NULL, err, errlen);

	if (cfg != NULL && (tls_server_check(cfg, err, errlen) < 0 ||
	    auth_users_check(cfg, err, errlen) < 0)) {
		config_free(cfg);
		cfg = NULL;
	}
	return cfg;
}
