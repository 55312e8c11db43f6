/*
 * credentials.c - loading the delivery agents' AUTH credentials.
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
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "credentials.h"
#include "util.h"

#define CRED_MAX_FILE (1024 * 1024)
#define CRED_MAX_FIELD 512

static void
wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void
credentials_free(struct credentials *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->v[i].route);
		wipe_free(c->v[i].user);
		wipe_free(c->v[i].pass);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
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
credentials_parse(const char *text, const char *where,
    struct credentials *c, char *err, size_t errlen)
{
	const char *p = text;
	int lineno = 0;

	c->v = NULL;
	c->n = 0;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n'), *f[4];
		size_t fl[4], nf = 0, i;
		const char *q;

		if (eol == NULL)
			eol = p + strlen(p);
		lineno++;
		q = p;
		while (q < eol && is_space(*q))
			q++;
		if (q == eol || *q == '#')
			goto next;
		while (q < eol) {
			const char *s = q;

			while (q < eol && !is_space(*q))
				q++;
			if (nf < 4) {
				f[nf] = s;
				fl[nf] = (size_t)(q - s);
			}
			nf++;
			while (q < eol && is_space(*q))
				q++;
		}
		if (nf != 3) {
			snprintf(err, errlen, "%s:%d: expected \"route "
			    "username password\" (%zu fields)", where, lineno,
			    nf);
			goto fail;
		}
		for (i = 0; i < 3; i++)
			if (fl[i] > CRED_MAX_FIELD ||
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
		c->v[c->n].route = xstrndup(f[0], fl[0]);
		c->v[c->n].user = xstrndup(f[1], fl[1]);
		c->v[c->n].pass = xstrndup(f[2], fl[2]);
		c->n++;
next:
		p = *eol ? eol + 1 : eol;
	}
	return 0;
fail:
	credentials_free(c);
	return -1;
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
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}
