/*
 * ferryctl_dkim.c - "ferryctl dkim keygen": makes a DKIM signing key (RSA
 * of 2048 bits by default, or Ed25519), writes it as a PKCS#8 PEM file
 * of mode 0600 that must not exist yet, and prints the TXT record to
 * publish at SELECTOR._domainkey.DOMAIN, in zone-file syntax with the
 * value split into strings of at most 255 bytes (RFC 1035 3.3.14), and
 * the dkim_key section for ferry.conf.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim.h"
#include "ferryctl_dkim.h"

#define EX_OK_ 0
#define EX_FAIL_ 1
#define EX_USAGE_ 2

static int
usage(void)
{
	fprintf(stderr, "usage: ferryctl dkim keygen DOMAIN SELECTOR "
	    "[--ed25519] [--bits N] [--out FILE]\n");
	return EX_USAGE_;
}

/* Labels of letters, digits, '-' and '_', as in ferry.conf. */
static int
dns_name(const char *s)
{
	size_t label = 0;

	if (*s == '\0' || strlen(s) > 253)
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
		    || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

static int
write_key(const char *path, const char *pem, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, pem + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;

			close(fd);
			unlink(path);
			errno = e;
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		int e = errno;

		unlink(path);
		errno = e;
		return -1;
	}
	return 0;
}

static int
keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ed25519", no_argument, NULL, 'e' },
		{ "bits", required_argument, NULL, 'b' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	enum dkim_alg alg = DKIM_RSA_SHA256;
	const char *domain, *selector, *out = NULL;
	char err[256], *pem, *rec, *abs, dflt[600];
	struct dkim_key *k;
	size_t len, i;
	int ch, bits = 2048;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			alg = DKIM_ED25519_SHA256;
			break;
		case 'b': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end != '\0' || v < DKIM_MIN_RSA_BITS || v > 8192) {
				fprintf(stderr, "ferryctl: --bits is %d to "
				    "8192\n", DKIM_MIN_RSA_BITS);
				return EX_USAGE_;
			}
			bits = (int)v;
			break;
		}
		case 'o':
			out = optarg;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	domain = argv[optind];
	selector = argv[optind + 1];
	if (!dns_name(domain) || !dns_name(selector)) {
		fprintf(stderr, "ferryctl: the domain and the selector are DNS "
		    "names (letters, digits, '-', '_' and dots)\n");
		return EX_USAGE_;
	}
	if (out == NULL) {
		snprintf(dflt, sizeof(dflt), "%s.%s.pem", domain, selector);
		out = dflt;
	}
	if ((k = dkim_key_generate(alg, bits, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ferryctl: %s\n", err);
		return EX_FAIL_;
	}
	pem = dkim_key_pem(k, &len);
	rec = dkim_key_dns_record(k);
	if (pem == NULL || rec == NULL) {
		fprintf(stderr, "ferryctl: the key cannot be encoded\n");
		dkim_key_free(k);
		free(pem);
		free(rec);
		return EX_FAIL_;
	}
	if (write_key(out, pem, len) < 0) {
		fprintf(stderr, "ferryctl: %s: %s\n", out, strerror(errno));
		explicit_bzero(pem, len);
		free(pem);
		free(rec);
		dkim_key_free(k);
		return EX_FAIL_;
	}
	explicit_bzero(pem, len);
	free(pem);
	dkim_key_free(k);
	printf("; %s key written to %s (mode 0600); publish:\n",
	    alg == DKIM_ED25519_SHA256 ? "Ed25519" : "RSA", out);
	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	len = strlen(rec);
	for (i = 0; i < len; i += 255)
		printf(" \"%.255s\"", rec + i);
	printf(" )\n");
	/* ferry.conf wants an absolute key_file */
	abs = realpath(out, NULL);
	printf("; and in ferry.conf:\n"
	    "; dkim_key \"%s-%s\" {\n"
	    ";     domain = \"%s\"\n"
	    ";     selector = \"%s\"\n"
	    ";     key_file = \"%s\"\n"
	    "; }\n", domain, selector, domain, selector,
	    abs != NULL ? abs : out);
	free(abs);
	free(rec);
	return EX_OK_;
}

int
ferryctl_dkim(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return keygen(argc - 1, argv + 1);
	return usage();
}
