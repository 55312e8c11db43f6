/*
 * auth_users.c - the users file of SMTP AUTH: strict parsing, password
 * checks with crypt_r(3) (libxcrypt), sender binding, and new hashes for
 * ferryctl.
 *
 * Security stance: the file is read as root before the worker drops
 * privileges, parsed strictly (a malformed line refuses the whole file,
 * with its line number, so a typo cannot silently lock out or let in
 * anyone), and only hashes of strong kinds are accepted.  A check costs
 * the same whether the user exists or not: an unknown user's password is
 * hashed against a dummy hash of the file's first user's kind and cost,
 * and the comparison of the results is constant-time.  Buffers that held
 * a password are cleansed.
 */
#include "autoconfig.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "auth_users.h"
#include "config.h"
#include "log.h"
#include "smtp_parse.h"
#include "util.h"

#define USERS_MAX_FILE (16 * 1024 * 1024)
#define USERS_MAX_LINE 8192

/* For a file without users: a yescrypt hash of nothing anyone knows. */
static const char fallback_dummy[] =
    "$y$j9T$Zx3q7Uo0vRk9b2Ld6PnW1.$U6odge/pCXH19HJeCfC17nBIkQfkjeuRkENMQOGf731";

static const char *const hash_prefixes[] = { "$y$", "$6$", "$2b$", "$2y$" };

static int
hash_valid(const char *h, size_t n)
{
	size_t i, k;
	int ok = 0;

	for (k = 0; k < sizeof(hash_prefixes) / sizeof(hash_prefixes[0]); k++)
		if (n > strlen(hash_prefixes[k]) &&
		    strncmp(h, hash_prefixes[k], strlen(hash_prefixes[k])) == 0)
			ok = 1;
	if (!ok || n > 512)
		return 0;
	for (i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '/' ||
		    c == '$' || c == '=' || c == ','))
			return 0;
	}
	return 1;
}

static int
name_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > AUTH_USER_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
			return 0;
	return 1;
}

/* One allowed sender: "@domain" or "local@domain". */
static int
sender_valid(const char *s, size_t n)
{
	if (n >= 2 && s[0] == '@')
		return smtp_check_domain(s + 1, n - 1, 0);
	return smtp_check_mailbox(s, n, 0) == PARSE_OK;
}

static void
user_free(struct auth_user *u)
{
	size_t i;

	free(u->name);
	if (u->hash != NULL) {
		OPENSSL_cleanse(u->hash, strlen(u->hash));
		free(u->hash);
	}
	for (i = 0; i < u->nsenders; i++)
		free(u->senders[i]);
	free(u->senders);
}

void
auth_users_free(struct auth_users *u)
{
	size_t i;

	if (u == NULL)
		return;
	for (i = 0; i < u->n; i++)
		user_free(&u->users[i]);
	free(u->users);
	free(u);
}

/* Parses one line (no newline) into *u.  NULL, or the reason. */
static const char *
parse_line(const char *line, size_t len, struct auth_user *u)
{
	const char *c1, *c2, *end = line + len, *p;

	memset(u, 0, sizeof(*u));
	c1 = memchr(line, ':', len);
	if (c1 == NULL)
		return "expected \"user:hash[:senders]\"";
	if (!name_valid(line, (size_t)(c1 - line)))
		return "bad user name (1 to 255 printable characters, no "
		    "spaces or \":\")";
	c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	if (!hash_valid(c1 + 1, (size_t)((c2 ? c2 : end) - c1 - 1)))
		return "bad hash (yescrypt \"$y$\", SHA-512 \"$6$\" or bcrypt "
		    "\"$2b$\" expected)";
	u->name = xstrndup(line, (size_t)(c1 - line));
	u->hash = xstrndup(c1 + 1, (size_t)((c2 ? c2 : end) - c1 - 1));
#ifdef CRYPT_SALT_OK
	if (crypt_checksalt(u->hash) != CRYPT_SALT_OK)
		return "hash method not supported or disabled by libcrypt";
#endif
	if (c2 == NULL || c2 + 1 == end)
		return NULL;
	for (p = c2 + 1; p <= end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;

		if (!sender_valid(p, (size_t)(e - p)))
			return "bad allowed sender (an address or \"@domain\", "
			    "comma-separated, no spaces)";
		u->senders = xrealloc(u->senders, (u->nsenders + 1) *
		    sizeof(*u->senders));
		u->senders[u->nsenders++] = xstrndup(p, (size_t)(e - p));
		if (comma == NULL)
			break;
		p = comma + 1;
		if (p == end)
			return "empty allowed sender";
	}
	return NULL;
}

struct auth_users *
auth_users_parse(const char *text, size_t len, const char *path, char *err,
    size_t errlen)
{
	struct auth_users *u = xcalloc(1, sizeof(*u));
	const char *p = text, *end = text + len;
	size_t lineno = 0, cap = 0, i;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *why;
		struct auth_user nu;

		lineno++;
		if ((size_t)(e - p) > USERS_MAX_LINE) {
			snprintf(err, errlen, "%s:%zu: line too long", path,
			    lineno);
			goto fail;
		}
		if (memchr(p, '\r', (size_t)(e - p)) != NULL ||
		    memchr(p, '\0', (size_t)(e - p)) != NULL) {
			snprintf(err, errlen, "%s:%zu: carriage return or NUL "
			    "in the line", path, lineno);
			goto fail;
		}
		if (e == p || p[0] == '#') {
			p = e + (nl != NULL);
			continue;
		}
		why = parse_line(p, (size_t)(e - p), &nu);
		if (why != NULL) {
			snprintf(err, errlen, "%s:%zu: %s", path, lineno, why);
			user_free(&nu);
			goto fail;
		}
		for (i = 0; i < u->n; i++)
			if (strcmp(u->users[i].name, nu.name) == 0) {
				snprintf(err, errlen, "%s:%zu: user \"%s\" given "
				    "twice", path, lineno, nu.name);
				user_free(&nu);
				goto fail;
			}
		if (u->n == cap) {
			cap = cap ? 2 * cap : 16;
			u->users = xrealloc(u->users, cap * sizeof(*u->users));
		}
		u->users[u->n++] = nu;
		p = e + (nl != NULL);
	}
	u->dummy = u->n > 0 ? u->users[0].hash : fallback_dummy;
	return u;
fail:
	auth_users_free(u);
	return NULL;
}

struct auth_users *
auth_users_load(const char *path, char *err, size_t errlen)
{
	struct auth_users *u;
	size_t len;
	char *text = config_read_file(path, USERS_MAX_FILE, &len);

	if (text == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	u = auth_users_parse(text, len, path, err, errlen);
	OPENSSL_cleanse(text, len);
	free(text);
	return u;
}

int
auth_users_verify(const struct auth_users *u, const char *name,
    const char *password, const struct auth_user **out)
{
	const struct auth_user *found = NULL;
	struct crypt_data *cd;
	const char *hash, *h;
	size_t i, hl;
	int ok = 0;

	*out = NULL;
	for (i = 0; i < u->n; i++)
		if (strcmp(u->users[i].name, name) == 0)
			found = &u->users[i];
	hash = found ? found->hash : u->dummy;
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(password, hash, cd);
	if (h == NULL || h[0] == '*') {
		OPENSSL_cleanse(cd, sizeof(*cd));
		free(cd);
		return -1;
	}
	hl = strlen(hash);
	if (strlen(h) == hl && CRYPTO_memcmp(h, hash, hl) == 0)
		ok = 1;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	if (ok && found != NULL) {
		*out = found;
		return 1;
	}
	return 0;
}

int
auth_user_may_send(const struct auth_user *user, const char *sender)
{
	const char *at = strrchr(sender, '@');
	size_t i;

	if (user->nsenders == 0)
		return 1;
	if (at == NULL || at == sender)
		return 0;    /* <> or Postmaster: not an owned address */
	for (i = 0; i < user->nsenders; i++) {
		const char *r = user->senders[i], *rat = strrchr(r, '@');

		if (rat == NULL)
			continue;
		if (strcasecmp(rat + 1, at + 1) != 0)
			continue;
		if (rat == r)
			return 1;            /* "@domain" */
		if ((size_t)(rat - r) == (size_t)(at - sender) &&
		    memcmp(r, sender, (size_t)(at - sender)) == 0)
			return 1;
	}
	return 0;
}

int
auth_users_check(const struct ferry_config *cfg, char *err, size_t errlen)
{
	struct auth_users *u;
	struct stat st;
	size_t i;
	int wanted = 0;

	for (i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].auth)
			wanted = 1;
	if (!wanted || cfg->auth_users_file[0] == '\0')
		return 0;
	u = auth_users_load(cfg->auth_users_file, err, errlen);
	if (u == NULL)
		return -1;
	if (u->n == 0)
		log_warn("%s: no users: every AUTH will fail",
		    cfg->auth_users_file);
	auth_users_free(u);
	if (stat(cfg->auth_users_file, &st) == 0 && (st.st_mode & 0004))
		log_warn("%s is readable by everyone: password hashes are "
		    "secrets (chmod o-r)", cfg->auth_users_file);
	return 0;
}

char *
auth_hash_password(const char *password, char *err, size_t errlen)
{
	struct crypt_data *cd;
	char *setting, *out = NULL;
	const char *h;

	if (strlen(password) > AUTH_PASSWORD_MAX) {
		snprintf(err, errlen, "password longer than %d bytes",
		    AUTH_PASSWORD_MAX);
		return NULL;
	}
	setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (setting == NULL) {
		snprintf(err, errlen, "crypt_gensalt: %s", strerror(errno));
		return NULL;
	}
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(password, setting, cd);
	if (h == NULL || h[0] == '*')
		snprintf(err, errlen, "crypt: %s", strerror(errno));
	else
		out = xstrdup(h);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	free(setting);
	return out;
}
