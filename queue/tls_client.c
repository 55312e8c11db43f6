/*
 * tls_client.c - STARTTLS for the delivery agent.
 *
 * Security stance: policy "verify" checks the chain against the route's
 * CA file or the system store and the certificate's name against the
 * host we meant to reach (SSL_set1_host, or the address for an address
 * literal); "encrypt" and "may" encrypt without checks (RFC 7435
 * opportunistic security).  The minimum protocol version is the route's.
 * Every handshake runs against a deadline on a non-blocking socket, so a
 * stalling server cannot hold an agent.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls_client.h"
#include "util.h"

#define TLS_CTX_CACHE 16

static struct {
	char *ca_file;
	int min_version;
	SSL_CTX *ctx;
} cache[TLS_CTX_CACHE];
static size_t ncache;

static void
ssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
}

SSL_CTX *
tls_client_ctx(const char *ca_file, int min_version, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;
	size_t i;

	if (ca_file == NULL)
		ca_file = "";
	if (min_version == 0)
		min_version = TLS1_2_VERSION;
	for (i = 0; i < ncache; i++)
		if (cache[i].min_version == min_version &&
		    strcmp(cache[i].ca_file, ca_file) == 0)
			return cache[i].ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ssl_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, min_version)) {
		ssl_error(err, errlen, "minimum TLS version");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ca_file[0] != '\0') {
		if (!SSL_CTX_load_verify_locations(ctx, ca_file, NULL)) {
			char what[1200];

			snprintf(what, sizeof(what), "CA file %s", ca_file);
			ssl_error(err, errlen, what);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		ssl_error(err, errlen, "system CA store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (ncache < TLS_CTX_CACHE) {
		cache[ncache].ca_file = xstrdup(ca_file);
		cache[ncache].min_version = min_version;
		cache[ncache].ctx = ctx;
		ncache++;
	} else {
		/* not expected: few routes; keep the oldest, leak nothing */
		SSL_CTX_free(cache[0].ctx);
		free(cache[0].ca_file);
		cache[0].ca_file = xstrdup(ca_file);
		cache[0].min_version = min_version;
		cache[0].ctx = ctx;
	}
	return ctx;
}

int
tls_client_system_store_public(void)
{
	const char *file = getenv(X509_get_default_cert_file_env());
	struct stat st;

	if (file == NULL || file[0] == '\0')
		file = X509_get_default_cert_file();
	return stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & S_IROTH) != 0;
}

void
tls_client_ctx_free_all(void)
{
	size_t i;

	for (i = 0; i < ncache; i++) {
		SSL_CTX_free(cache[i].ctx);
		free(cache[i].ca_file);
	}
	ncache = 0;
}

int
tls_client_wait(SSL *ssl, int fd, int rc, int64_t deadline)
{
	struct pollfd pfd;
	int e = SSL_get_error(ssl, rc), left;

	if (e == SSL_ERROR_WANT_READ)
		pfd.events = POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		pfd.events = POLLOUT;
	else
		return -1;
	pfd.fd = fd;
	for (;;) {
		left = (int)(deadline - now_ms());
		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, left);
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

SSL *
tls_client_start(SSL_CTX *ctx, int fd, const char *host, int verify,
    int64_t deadline, char *err, size_t errlen)
{
	unsigned char abuf[16];
	int is_addr, rc, w;
	SSL *ssl;

	ERR_clear_error();
	is_addr = inet_pton(AF_INET, host, abuf) == 1 ||
	    inet_pton(AF_INET6, host, abuf) == 1;
	ssl = SSL_new(ctx);
	if (ssl == NULL) {
		ssl_error(err, errlen, "SSL_new");
		return NULL;
	}
	if (!SSL_set_fd(ssl, fd)) {
		ssl_error(err, errlen, "SSL_set_fd");
		SSL_free(ssl);
		return NULL;
	}
	if (!is_addr && host[0] != '\0')
		SSL_set_tlsext_host_name(ssl, host);
	if (verify) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (is_addr ? !X509_VERIFY_PARAM_set1_ip_asc(vp, host) :
		    !SSL_set1_host(ssl, host)) {
			ssl_error(err, errlen, "setting the name to verify");
			SSL_free(ssl);
			return NULL;
		}
	} else
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	for (;;) {
		rc = SSL_connect(ssl);
		if (rc == 1)
			break;
		w = tls_client_wait(ssl, fd, rc, deadline);
		if (w > 0)
			continue;
		if (w == 0)
			snprintf(err, errlen, "TLS handshake timed out");
		else if (verify && SSL_get_verify_result(ssl) != X509_V_OK)
			snprintf(err, errlen, "certificate verification "
			    "failed: %s", X509_verify_cert_error_string(
			    SSL_get_verify_result(ssl)));
		else
			ssl_error(err, errlen, "TLS handshake failed");
		SSL_free(ssl);
		return NULL;
	}
	if (verify && SSL_get_verify_result(ssl) != X509_V_OK) {
		snprintf(err, errlen, "certificate verification failed: %s",
		    X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

void
tls_client_describe(SSL *ssl, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
}
