/*
 * credentials.c - loading the upstream AUTH credentials: passwords for the
 * delivery agents, OAuth2 refresh credentials for ferry-token.
 *
 * Security stance: the file holds passwords for upstream servers.  It is
 * read as root before the agent drops privileges, refused when others may
 * read it, and no error message ever quotes a password (a malformed line
 * is reported by its number only).  Memory holding secrets is wiped
 * before it is freed.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "credentials.h"
#include "util.h"

#define CRED_MAX_FILE (1024 * 1024)
#define CRED_MAX_FIELD 512
#define CRED_MAX_FIELDS 16        /* route user oauth2 + the keys */

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void
oauth2_free(struct credential *cr)
{
	wipe_free(cr->token_url);
	wipe_free(cr->client_id);
	wipe_free(cr->client_secret);
	wipe_free(cr->scope);
	wipe_free(cr->refresh_token);
	wipe_free(cr->ca_file);
	cr->token_url = cr->client_id = cr->client_secret = NULL;
	cr->scope = cr->refresh_token = cr->ca_file = NULL;
}

void
credentials_free(struct credentials *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->v[i].route);
		wipe_free(c->v[i].user);
		wipe_free(c->v[i].pass);
		oauth2_free(&c->v[i]);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

void
credentials_drop_secrets(struct credentials *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		oauth2_free(&c->v[i]);
}

size_t
credentials_oauth2_count(const struct credentials *c)
{
	size_t i, n = 0;

	for (i = 0; i < c->n; i++)
		n += c->v[i].oauth2 != 0;
	return n;
}

const struct credential *
credentials_find(const struct credentials *c, const char *route)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].route, route) == 0)
			return &c->v[i];
	return NULL;
}

static int
is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

int
credentials_token_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f ||
		    n >= CRED_TOKEN_MAX)
			return 0;
	return n > 0;
}

/* Splits [p, eol) into fields; returns their number (may exceed max). */
static size_t
split_fields(const char *p, const char *eol, const char **f, size_t *fl,
    size_t max)
{
	size_t nf = 0;

	while (p < eol && is_space(*p))
		p++;
	while (p < eol) {
		const char *s = p;

		while (p < eol && !is_space(*p))
			p++;
		if (nf < max) {
			f[nf] = s;
			fl[nf] = (size_t)(p - s);
		}
		nf++;
		while (p < eol && is_space(*p))
			p++;
	}
	return nf;
}

/* The scope as sent: '+' and ',' in the file stand for spaces. */
static char *
scope_value(const char *v, size_t len)
{
	char *s = xstrndup(v, len), *q;

	for (q = s; *q; q++)
		if (*q == '+' || *q == ',')
			*q = ' ';
	return s;
}

/* The key=value fields of an oauth2 line into cr.  -1 with err (naming
 * the key, never a value). */
static int
parse_oauth2(struct credential *cr, const char **f, const size_t *fl,
    size_t nf, const char *where, int lineno, char *err, size_t errlen)
{
	static const char *keys[] = { "token_url", "client_id",
	    "client_secret", "scope", "refresh_token", "ca_file" };
	size_t i, k;

	for (i = 3; i < nf; i++) {
		const char *eq = memchr(f[i], '=', fl[i]);
		size_t kl = eq ? (size_t)(eq - f[i]) : fl[i], vl;
		char **slot = NULL, *v;

		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strlen(keys[k]) == kl &&
			    memcmp(keys[k], f[i], kl) == 0)
				break;
		if (eq == NULL || k == sizeof(keys) / sizeof(keys[0])) {
			snprintf(err, errlen, "%s:%d: unknown oauth2 key "
			    "\"%.*s\" (token_url, client_id, client_secret, "
			    "scope, refresh_token, ca_file)", where, lineno,
			    (int)(kl > 40 ? 40 : kl), f[i]);
			return -1;
		}
		vl = fl[i] - kl - 1;
		switch (k) {
		case 0: slot = &cr->token_url; break;
		case 1: slot = &cr->client_id; break;
		case 2: slot = &cr->client_secret; break;
		case 3: slot = &cr->scope; break;
		case 4: slot = &cr->refresh_token; break;
		default: slot = &cr->ca_file; break;
		}
		if (*slot != NULL) {
			snprintf(err, errlen, "%s:%d: oauth2 key %s given "
			    "twice", where, lineno, keys[k]);
			return -1;
		}
		if (vl == 0 || vl >= CRED_TOKEN_MAX) {
			snprintf(err, errlen, "%s:%d: oauth2 key %s: %s value",
			    where, lineno, keys[k], vl ? "too long a" : "empty");
			return -1;
		}
		v = k == 3 ? scope_value(eq + 1, vl) : xstrndup(eq + 1, vl);
		*slot = v;
		if (k == 4 && !credentials_token_valid(v)) {
			snprintf(err, errlen, "%s:%d: oauth2 refresh_token "
			    "has characters a token cannot have", where,
			    lineno);
			return -1;
		}
	}
	if (cr->token_url == NULL || cr->client_id == NULL ||
	    cr->refresh_token == NULL) {
		snprintf(err, errlen, "%s:%d: oauth2 needs token_url, "
		    "client_id and refresh_token", where, lineno);
		return -1;
	}
	/* tokens travel only over verified TLS, tests included (they pass
	 * their own CA with ca_file) */
	if (strncasecmp(cr->token_url, "https://", 8) != 0 ||
	    cr->token_url[8] == '\0') {
		snprintf(err, errlen, "%s:%d: oauth2 token_url must be an "
		    "https:// URL", where, lineno);
		return -1;
	}
	if (cr->ca_file != NULL && cr->ca_file[0] != '/') {
		snprintf(err, errlen, "%s:%d: oauth2 ca_file must be an "
		    "absolute path", where, lineno);
		return -1;
	}
	return 0;
}

int
credentials_parse(const char *text, const char *where,
    struct credentials *c, char *err, size_t errlen)
{
	const char *p = text;
	int lineno = 0;

	c->v = NULL;
	c->n = 0;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n'), *f[CRED_MAX_FIELDS];
		size_t fl[CRED_MAX_FIELDS], nf, i;
		const char *q;
		struct credential *cr;
		int oauth2;

		if (eol == NULL)
			eol = p + strlen(p);
		lineno++;
		q = p;
		while (q < eol && is_space(*q))
			q++;
		if (q == eol || *q == '#')
			goto next;
		nf = split_fields(q, eol, f, fl, CRED_MAX_FIELDS);
		oauth2 = nf >= 3 && fl[2] == 6 && memcmp(f[2], "oauth2", 6) == 0;
		if (nf > CRED_MAX_FIELDS || (!oauth2 && nf != 3) ||
		    nf < 3) {
			snprintf(err, errlen, "%s:%d: expected \"route "
			    "username password\" or \"route username oauth2 "
			    "key=value...\" (%zu fields)", where, lineno, nf);
			goto fail;
		}
		for (i = 0; i < nf; i++)
			if ((i < 3 && fl[i] > CRED_MAX_FIELD) ||
			    memchr(f[i], '\0', fl[i]) != NULL) {
				snprintf(err, errlen, "%s:%d: field too long",
				    where, lineno);
				goto fail;
			}
		for (i = 0; i < c->n; i++)
			if (strlen(c->v[i].route) == fl[0] &&
			    memcmp(c->v[i].route, f[0], fl[0]) == 0) {
				snprintf(err, errlen, "%s:%d: route %.*s "
				    "given twice", where, lineno, (int)fl[0],
				    f[0]);
				goto fail;
			}
		c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
		cr = &c->v[c->n++];
		memset(cr, 0, sizeof(*cr));
		cr->route = xstrndup(f[0], fl[0]);
		cr->user = xstrndup(f[1], fl[1]);
		cr->oauth2 = oauth2;
		cr->pass = oauth2 ? xstrdup("") : xstrndup(f[2], fl[2]);
		if (oauth2 && parse_oauth2(cr, f, fl, nf, where, lineno, err,
		    errlen) < 0)
			goto fail;
next:
		p = *eol ? eol + 1 : eol;
	}
	return 0;
fail:
	credentials_free(c);
	return -1;
}

char *
credentials_replace_refresh(const char *text, const char *route,
    const char *token)
{
	const char *p = text;
	size_t rl = strlen(route);

	if (!credentials_token_valid(token))
		return NULL;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n'), *f[CRED_MAX_FIELDS];
		size_t fl[CRED_MAX_FIELDS], nf, i;

		if (eol == NULL)
			eol = p + strlen(p);
		nf = split_fields(p, eol, f, fl, CRED_MAX_FIELDS);
		if (nf >= 3 && nf <= CRED_MAX_FIELDS && f[0][0] != '#' &&
		    fl[0] == rl && memcmp(f[0], route, rl) == 0 &&
		    fl[2] == 6 && memcmp(f[2], "oauth2", 6) == 0) {
			for (i = 3; i < nf; i++)
				if (fl[i] > 14 &&
				    memcmp(f[i], "refresh_token=", 14) == 0) {
					size_t head = (size_t)(f[i] + 14 -
					    text);
					const char *tail = f[i] + fl[i];
					size_t tl = strlen(tail);
					size_t kl = strlen(token);
					char *out = xmalloc(head + kl + tl + 1);

					memcpy(out, text, head);
					memcpy(out + head, token, kl);
					memcpy(out + head + kl, tail, tl + 1);
					return out;
				}
			return NULL;
		}
		p = *eol ? eol + 1 : eol;
	}
	return NULL;
}

int
credentials_load(const char *path, struct credentials *c, char *err,
    size_t errlen)
{
	struct stat st;
	char *text;
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	c->v = NULL;
	c->n = 0;
	if (path == NULL || path[0] == '\0')
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & 007) {
		snprintf(err, errlen, "%s: mode %04o gives others access to "
		    "passwords; refusing it (chmod o= %s)", path,
		    (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	if (st.st_size > CRED_MAX_FILE) {
		snprintf(err, errlen, "%s: too large", path);
		close(fd);
		return -1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		n = read(fd, text + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	if (strlen(text) != len) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		rc = -1;
	} else
		rc = credentials_parse(text, path, c, err, errlen);
	explicit_bzero(text, len);
	free(text);
	return rc;
}
