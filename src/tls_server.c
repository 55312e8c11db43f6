/*
 * tls_server.c - inbound TLS: server contexts per listener, the master's
 * certificate/key check, and the connection layer of the SMTP session.
 *
 * Security stance: contexts are made by the worker while it is still
 * root, so keys may be readable by root only; after the drop nothing is
 * read from the file system.  TLS 1.2 is the default minimum; no
 * compression, no renegotiation, no session tickets or cache (workers
 * share nothing, and resumption would skip the client-certificate check).
 * A client certificate counts as verified only when the listener asked
 * for one and the chain verified against tls.client_ca_file; the names
 * taken from it are reduced to printable text before anyone uses them.
 * The connection layer never blocks: every call returns CONN_AGAIN with
 * what it waits for, so one worker can hold many connections; the
 * blocking helpers (conn_wait, conn_tls_accept) take the caller's
 * deadline.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "tls_server.h"
#include "util.h"

struct tls_server {
	SSL_CTX *ctx;
	int client_cert;        /* enum client_cert_mode */
};

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

static X509 *
peer_certificate(SSL *ssl)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	return SSL_get1_peer_certificate(ssl);
#else
	return SSL_get_peer_certificate(ssl);
#endif
}

/* "optional": the handshake goes on whatever the chain; the result is
 * read afterwards with SSL_get_verify_result. */
static int
verify_optional(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

static int
load_cert_and_key(SSL_CTX *ctx, const char *cert, const char *key,
    char *err, size_t errlen)
{
	char what[2200];
	EVP_PKEY *pkey;
	BIO *bio;
	X509 *x;

	if (!SSL_CTX_use_certificate_chain_file(ctx, cert)) {
		snprintf(what, sizeof(what), "%s: cannot load the certificate",
		    cert);
		ssl_error(err, errlen, what);
		return -1;
	}
	bio = BIO_new_file(key, "r");
	pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) :
	    NULL;
	BIO_free(bio);
	if (pkey == NULL) {
		snprintf(what, sizeof(what), "%s: cannot load the key", key);
		ssl_error(err, errlen, what);
		return -1;
	}
	x = SSL_CTX_get0_certificate(ctx);
	if (x == NULL || !X509_check_private_key(x, pkey)) {
		ERR_clear_error();
		snprintf(err, errlen, "%s and %s: certificate and key do not "
		    "match", cert, key);
		EVP_PKEY_free(pkey);
		return -1;
	}
	if (!SSL_CTX_use_PrivateKey(ctx, pkey)) {
		snprintf(what, sizeof(what), "%s: cannot use the key", key);
		ssl_error(err, errlen, what);
		EVP_PKEY_free(pkey);
		return -1;
	}
	EVP_PKEY_free(pkey);
	return 0;
}

struct tls_server *
tls_server_new(const struct ferry_config *cfg,
    const struct listener_config *l, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "ferry-smtpd";
	const char *cert = l->cert_file[0] ? l->cert_file : cfg->tls_cert_file;
	const char *key = l->key_file[0] ? l->key_file : cfg->tls_key_file;
	struct tls_server *ts;
	SSL_CTX *ctx;
	char what[1200];
	uint64_t opts;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, cfg->tls_server_min_version ?
	    cfg->tls_server_min_version : TLS1_2_VERSION)) {
		ssl_error(err, errlen, "min_version");
		goto fail;
	}
	opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* clients often close after QUIT without close_notify */
	opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
	SSL_CTX_set_options(ctx, opts);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (cfg->tls_ciphers[0] != '\0' &&
	    !SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers)) {
		snprintf(what, sizeof(what), "ciphers \"%s\"", cfg->tls_ciphers);
		ssl_error(err, errlen, what);
		goto fail;
	}
	if (cfg->tls_ciphersuites[0] != '\0' &&
	    !SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites)) {
		snprintf(what, sizeof(what), "ciphersuites \"%s\"",
		    cfg->tls_ciphersuites);
		ssl_error(err, errlen, what);
		goto fail;
	}
	if (cfg->tls_groups[0] != '\0' &&
	    !SSL_CTX_set1_groups_list(ctx, cfg->tls_groups)) {
		snprintf(what, sizeof(what), "groups \"%s\"", cfg->tls_groups);
		ssl_error(err, errlen, what);
		goto fail;
	}
	if (cert == NULL || key == NULL || cert[0] == '\0' || key[0] == '\0') {
		snprintf(err, errlen, "no cert_file and key_file");
		goto fail;
	}
	if (load_cert_and_key(ctx, cert, key, err, errlen) < 0)
		goto fail;
	if (l->client_cert != CCERT_NONE) {
		const char *ca = cfg->tls_client_ca_file;
		STACK_OF(X509_NAME) *names;

		if (ca == NULL || ca[0] == '\0') {
			snprintf(err, errlen, "client_cert needs tls "
			    "{ client_ca_file }");
			goto fail;
		}
		if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
			snprintf(what, sizeof(what), "client_ca_file %s", ca);
			ssl_error(err, errlen, what);
			goto fail;
		}
		names = SSL_load_client_CA_file(ca);
		if (names == NULL) {
			snprintf(what, sizeof(what), "client_ca_file %s: no "
			    "CA names", ca);
			ssl_error(err, errlen, what);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify_depth(ctx, 5);
		if (l->client_cert == CCERT_REQUIRE)
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		else
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER,
			    verify_optional);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

	ts = xcalloc(1, sizeof(*ts));
	ts->ctx = ctx;
	ts->client_cert = (int)l->client_cert;
	return ts;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	SSL_CTX_free(ts->ctx);
	free(ts);
}

static int
hex_digit(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/* The 64 hex digits of a "sha256:" rule, colons dropped, lower case;
 * -1 when the rule is not exactly that. */
static int
rule_fingerprint(const char *hex, char out[65])
{
	size_t n = 0;

	for (; *hex; hex++) {
		if (*hex == ':')
			continue;
		if (!hex_digit((unsigned char)*hex) || n == 64)
			return -1;
		out[n++] = (char)(*hex >= 'A' && *hex <= 'F' ? *hex + 32 :
		    *hex);
	}
	out[n] = '\0';
	return n == 64 ? 0 : -1;
}

int
tls_cert_rule_valid(const char *rule)
{
	char fp[65];

	if (strncasecmp(rule, "CN=", 3) == 0)
		return rule[3] != '\0';
	if (strncasecmp(rule, "sha256:", 7) == 0)
		return rule_fingerprint(rule + 7, fp) == 0;
	return 0;
}

int
tls_cert_rule_match(const char *rule, const char *cn, const char *sha256_hex)
{
	char fp[65];

	if (strncasecmp(rule, "CN=", 3) == 0)
		return cn != NULL && cn[0] != '\0' && rule[3] != '\0' &&
		    strcasecmp(rule + 3, cn) == 0;
	if (strncasecmp(rule, "sha256:", 7) == 0)
		return sha256_hex != NULL && strlen(sha256_hex) == 64 &&
		    rule_fingerprint(rule + 7, fp) == 0 &&
		    strcasecmp(fp, sha256_hex) == 0;
	return 0;
}

int
tls_server_check(const struct ferry_config *cfg, char *err, size_t errlen)
{
	size_t i, k;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];
		struct tls_server *ts;
		char why[2048];

		for (k = 0; k < l->nrelay_cert_subjects; k++)
			if (!tls_cert_rule_valid(l->relay_cert_subjects[k])) {
				snprintf(err, errlen, "listen \"%s\": "
				    "relay_client_certs: \"%s\" is neither "
				    "\"CN=name\" nor \"sha256:<64 hex "
				    "digits>\"", l->name,
				    l->relay_cert_subjects[k]);
				return -1;
			}
		if (l->tls == LTLS_NONE)
			continue;
		ts = tls_server_new(cfg, l, why, sizeof(why));
		if (ts == NULL) {
			snprintf(err, errlen, "listen \"%s\": %s", l->name, why);
			return -1;
		}
		tls_server_free(ts);
	}
	return 0;
}

/* ----------------------------------------------------------- connection */

void
conn_init(struct server_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->want = POLLIN;
}

/* After an SSL call returned rc <= 0: CONN_AGAIN (with c->want), 0 for
 * the end of the stream, or CONN_ERROR. */
static ssize_t
ssl_result(struct server_conn *c, int rc)
{
	switch (SSL_get_error((SSL *)c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		c->want = POLLIN;
		return CONN_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want = POLLOUT;
		return CONN_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && errno == 0)
			return 0;       /* EOF without close_notify */
		ERR_clear_error();
		return CONN_ERROR;
	default:
		ERR_clear_error();
		return CONN_ERROR;
	}
}

ssize_t
conn_read(struct server_conn *c, void *buf, size_t len)
{
	if (c->ssl != NULL) {
		int n, want = len > 1 << 30 ? 1 << 30 : (int)len;

		ERR_clear_error();
		errno = 0;
		n = SSL_read((SSL *)c->ssl, buf, want);
		if (n > 0)
			return n;
		return ssl_result(c, n);
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want = POLLIN;
			return CONN_AGAIN;
		}
		return CONN_ERROR;
	}
}

ssize_t
conn_write(struct server_conn *c, const void *buf, size_t len)
{
	if (c->ssl != NULL) {
		int n, want = len > 1 << 30 ? 1 << 30 : (int)len;

		ERR_clear_error();
		errno = 0;
		n = SSL_write((SSL *)c->ssl, buf, want);
		if (n > 0)
			return n;
		n = (int)ssl_result(c, n);
		return n == 0 ? CONN_ERROR : n;   /* no EOF for writes */
	}
	for (;;) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

		if (n > 0)
			return n;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->want = POLLOUT;
			return CONN_AGAIN;
		}
		return CONN_ERROR;
	}
}

int
conn_wait(struct server_conn *c, int ms)
{
	struct pollfd pfd;
	int rc;

	pfd.fd = c->fd;
	pfd.events = c->want ? c->want : POLLIN;
	pfd.revents = 0;
	if (ms < 0)
		ms = 0;
	rc = poll(&pfd, 1, ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -1;
	return rc > 0;
}

/* Explains a failed SSL_accept in err. */
static void
handshake_error(SSL *ssl, int rc, char *err, size_t errlen)
{
	X509 *x = NULL;
	int e = SSL_get_error(ssl, rc);

	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		if (errno != 0)
			snprintf(err, errlen, "TLS handshake: %s",
			    strerror(errno));
		else
			snprintf(err, errlen, "connection closed during "
			    "the TLS handshake");
	} else if ((x = peer_certificate(ssl)) != NULL &&
	    SSL_get_verify_result(ssl) != X509_V_OK) {
		snprintf(err, errlen, "client certificate: %s",
		    X509_verify_cert_error_string(
		    SSL_get_verify_result(ssl)));
		ERR_clear_error();
	} else
		ssl_error(err, errlen, "TLS handshake failed");
	X509_free(x);
}

int
conn_tls_accept_step(struct server_conn *c, struct tls_server *ts,
    char *err, size_t errlen)
{
	SSL *ssl = c->handshake;
	int rc, e;

	ERR_clear_error();
	if (ssl == NULL) {
		ssl = SSL_new(ts->ctx);
		if (ssl == NULL) {
			ssl_error(err, errlen, "SSL_new");
			return -1;
		}
		if (!SSL_set_fd(ssl, c->fd)) {
			ssl_error(err, errlen, "SSL_set_fd");
			SSL_free(ssl);
			return -1;
		}
		c->handshake = ssl;
	}
	errno = 0;
	rc = SSL_accept(ssl);
	if (rc == 1) {
		c->handshake = NULL;
		c->ssl = ssl;
		c->want = POLLIN;
		return 1;
	}
	e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return 0;
	}
	handshake_error(ssl, rc, err, errlen);
	SSL_free(ssl);
	c->handshake = NULL;
	c->want = POLLIN;
	return -1;
}

int
conn_tls_accept(struct server_conn *c, struct tls_server *ts, int64_t deadline,
    char *err, size_t errlen)
{
	for (;;) {
		int64_t left;
		int rc = conn_tls_accept_step(c, ts, err, errlen);

		if (rc != 0)
			return rc > 0 ? 0 : -1;
		left = deadline - now_ms();
		if (left > 0 && conn_wait(c, left > 1000 ? 1000 :
		    (int)left) >= 0)
			continue;
		if (left > 0)
			snprintf(err, errlen, "poll: %s", strerror(errno));
		else
			snprintf(err, errlen, "TLS handshake timed out");
		SSL_free((SSL *)c->handshake);
		c->handshake = NULL;
		c->want = POLLIN;
		return -1;
	}
}

int
conn_pending(const struct server_conn *c)
{
	return c->ssl != NULL && SSL_pending((SSL *)c->ssl) > 0;
}

/* Copies s (n bytes) when all of it is printable ASCII; "" otherwise. */
static void
printable_copy(char *out, size_t outlen, const unsigned char *s, int n)
{
	int i;

	out[0] = '\0';
	if (n <= 0 || (size_t)n >= outlen)
		return;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return;
	memcpy(out, s, (size_t)n);
	out[n] = '\0';
}

static void
peer_names(X509 *x, struct tls_info *out)
{
	X509_NAME *name = X509_get_subject_name(x);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	BIO *bio;
	int idx;

	/* the subject, escaped (RFC 2253 with multi-byte escaped) */
	bio = BIO_new(BIO_s_mem());
	if (bio != NULL && name != NULL &&
	    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		char *p;
		long n = BIO_get_mem_data(bio, &p);

		printable_copy(out->peer_subject, sizeof(out->peer_subject),
		    (const unsigned char *)p, (int)n);
		if (out->peer_subject[0] == '\0')
			ferry_strlcpy(out->peer_subject, "(not printable)",
			    sizeof(out->peer_subject));
	}
	BIO_free(bio);
	/* exactly one CN, printable: anything else matches no CN= rule */
	idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) :
	    -1;
	if (idx >= 0 && X509_NAME_get_index_by_NID(name, NID_commonName,
	    idx) < 0) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(name, idx));
		unsigned char *utf8 = NULL;
		int n = d ? ASN1_STRING_to_UTF8(&utf8, d) : -1;

		if (n > 0)
			printable_copy(out->peer_cn, sizeof(out->peer_cn), utf8,
			    n);
		OPENSSL_free(utf8);
	}
	if (X509_digest(x, EVP_sha256(), md, &mdlen) && mdlen == 32)
		for (i = 0; i < mdlen; i++)
			snprintf(out->peer_sha256 + 2 * i, 3, "%02x", md[i]);
}

void
conn_tls_info(const struct server_conn *c, struct tls_info *out)
{
	SSL *ssl = (SSL *)c->ssl;
	const SSL_CIPHER *ciph;
	X509 *x;

	memset(out, 0, sizeof(*out));
	if (ssl == NULL)
		return;
	ferry_strlcpy(out->version, SSL_get_version(ssl),
	    sizeof(out->version));
	ciph = SSL_get_current_cipher(ssl);
	if (ciph != NULL) {
		ferry_strlcpy(out->cipher, SSL_CIPHER_get_name(ciph),
		    sizeof(out->cipher));
		out->bits = SSL_CIPHER_get_bits(ciph, &out->alg_bits);
	}
	x = peer_certificate(ssl);
	if (x == NULL)
		return;
	out->peer_cert = 1;
	/* without SSL_VERIFY_PEER the result says X509_V_OK by default */
	out->peer_verified = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) &&
	    SSL_get_verify_result(ssl) == X509_V_OK;
	peer_names(x, out);
	X509_free(x);
}

void
conn_end(struct server_conn *c)
{
	if (c->handshake != NULL) {
		SSL_free((SSL *)c->handshake);
		c->handshake = NULL;
	}
	if (c->ssl != NULL) {
		ERR_clear_error();
		(void)SSL_shutdown((SSL *)c->ssl);   /* one try, no waiting */
		ERR_clear_error();
		SSL_free((SSL *)c->ssl);
		c->ssl = NULL;
	}
}
