/*
 * dkim_copy.c - copies the DKIM key files' bytes, unparsed, into a
 * descriptor (a memfd) for the queue runner at a reload: the runner has
 * dropped privileges and cannot read them, and parses the copy itself
 * (dkim_signing_new).  ferry-check makes the copy as root and parses it
 * as the runner will before the master applies the reload, so what is
 * checked is what the runner gets.
 *
 * No OpenSSL here: the code that only moves bytes stays out of the
 * crypto library's way.
 *
 * Security stance: the files are root's and hold private keys; their
 * bytes go to fd only and the buffer is wiped.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dkim_copy.h"
#include "util.h"

/* Reads path whole into buf (at most DKIM_COPY_FILE_MAX bytes).  The
 * length, or -1 with errno set. */
static ssize_t
read_key_file(const char *path, char *buf)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + len, DKIM_COPY_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > DKIM_COPY_FILE_MAX) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
	}
	close(fd);
	return (ssize_t)len;
}

int
dkim_keys_copy(const struct ferry_config *cfg, int fd, char *err,
    size_t errlen)
{
	static char buf[DKIM_COPY_FILE_MAX + 1];
	size_t i;
	int rc = 0;

	for (i = 0; i < cfg->ndkim_keys && rc == 0; i++) {
		const struct dkim_key_config *kc = &cfg->dkim_keys[i];
		ssize_t len = read_key_file(kc->key_file, buf);

		if (len < 0) {
			snprintf(err, errlen, "dkim_key \"%s\": key_file %s: "
			    "%s", kc->name, kc->key_file, strerror(errno));
			rc = -1;
		} else if (write_all(fd, buf, (size_t)len) < 0 ||
		    ((len == 0 || buf[len - 1] != '\n') &&
		    write_all(fd, "\n", 1) < 0)) {
			snprintf(err, errlen, "dkim_key \"%s\": key_file %s: "
			    "cannot be copied for the queue runner: %s",
			    kc->name, kc->key_file, strerror(errno));
			rc = -1;
		}
		explicit_bzero(buf, sizeof(buf));
	}
	return rc;
}
