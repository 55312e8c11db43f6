/*
 * config_dkim.c - the check of dkim_key files at configuration load,
 * for the programs that vouch for a file (ferryd, ferryctl) or sign
 * (ferry-queue).  Kept out of config.c so that the children that never
 * read a key (the SMTP workers, anvil, resolve, metrics) do not link
 * the DKIM code and, with it, OpenSSL.
 */
#include "autoconfig.h"

#include <stddef.h>

#include "config.h"
#include "dkim.h"

/* A key that loads: RSA of 2048 bits or more, or Ed25519. */
static int
dkim_key_loads(const char *path, char *why, size_t whylen)
{
	struct dkim_key *k = dkim_key_load(path, why, whylen);

	if (k == NULL)
		return -1;
	dkim_key_free(k);
	return 0;
}

void
config_check_dkim_keys(void)
{
	config_dkim_key_check = dkim_key_loads;
}
