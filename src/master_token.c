/*
 * master_token.c - the master's part in OAuth2 (master_token.h).
 *
 * Why the master writes the file: the credentials file is root's (0600)
 * in root's directory, and ferry-token runs as its own unprivileged
 * user, which must not be able to write there (nor anywhere: it runs
 * with RLIMIT_FSIZE 0).  So ferry-token sends the rotated token and the
 * master, which never parses network input, checks the note strictly
 * (a known oauth2 route, a token of bounded length in a safe charset:
 * credentials_token_valid) and changes only that line's refresh_token
 * (credentials_replace_refresh); the rest of the file stays byte for
 * byte.  Security stance: a lying ferry-token can at worst replace the
 * refresh token of one of its own routes, which it holds anyway.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "credentials.h"
#include "ipc.h"
#include "log.h"
#include "master_token.h"
#include "token_proto.h"
#include "util.h"

#define CRED_FILE_MAX (1024 * 1024)

int
master_token_routes(const char *credentials_file, char *err, size_t errlen)
{
	struct credentials c;
	int n;

	if (credentials_load(credentials_file, &c, err, errlen) < 0)
		return -1;
	n = (int)credentials_oauth2_count(&c);
	credentials_free(&c);
	return n;
}

static char *
read_text(int fd, size_t *len)
{
	struct stat st;
	char *text;
	ssize_t n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CRED_FILE_MAX)
		return NULL;
	text = xmalloc((size_t)st.st_size + 1);
	n = pread(fd, text, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		free(text);
		return NULL;
	}
	text[n] = '\0';
	*len = (size_t)n;
	return text;
}

/* Writes text over path atomically; 0, or -1 with err. */
static int
replace_file(const char *path, const struct stat *st, const char *text,
    char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	size_t len = strlen(text);
	int fd, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.ferry-new", path) >=
	    (int)sizeof(tmp)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		snprintf(err, errlen, "creating a temporary file beside it: "
		    "%s", strerror(errno));
		return -1;
	}
	if (fchown(fd, st->st_uid, st->st_gid) < 0 ||
	    fchmod(fd, 0600) < 0 || write_all(fd, text, len) < 0 ||
	    fsync(fd) < 0) {
		snprintf(err, errlen, "writing a temporary file beside it: "
		    "%s", strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "renaming the new file over it: %s",
		    strerror(errno));
		unlink(tmp);
		return -1;
	}
	ferry_strlcpy(dir, path, sizeof(dir));
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

int
master_token_rotated(const char *credentials_file, struct ipc_in *in)
{
	char *route, *token, *text = NULL, *out = NULL, err[512];
	struct stat st;
	size_t len = 0;
	int fd;

	if (token_rotated_decode(in, &route, &token) < 0)
		return -1;
	fd = open(credentials_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    (text = read_text(fd, &len)) == NULL) {
		log_error("oauth2: route %s: cannot read %s to save the "
		    "rotated refresh token: %s", route, credentials_file,
		    fd < 0 ? strerror(errno) : "not a regular file");
		goto out;
	}
	out = credentials_replace_refresh(text, route, token);
	if (out == NULL) {
		log_error("oauth2: route %s: no oauth2 line for it in %s; "
		    "the rotated refresh token is not saved", route,
		    credentials_file);
		goto out;
	}
	if (replace_file(credentials_file, &st, out, err, sizeof(err)) < 0)
		log_error("oauth2: route %s: saving the rotated refresh "
		    "token: %s", route, err);
	else
		log_info("oauth2: route %s: rotated refresh token saved in "
		    "%s", route, credentials_file);
out:
	if (fd >= 0)
		close(fd);
	if (text != NULL) {
		explicit_bzero(text, len);
		free(text);
	}
	if (out != NULL) {
		explicit_bzero(out, strlen(out));
		free(out);
	}
	free(route);
	explicit_bzero(token, strlen(token));
	free(token);
	return 0;
}
