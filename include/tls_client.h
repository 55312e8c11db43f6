/*
 * tls_client.h - the delivery agent's side of STARTTLS (RFC 3207):
 * client contexts per (CA file, minimum version), and the handshake on a
 * non-blocking socket with a deadline.
 */
#ifndef FERRY_TLS_CLIENT_H
#define FERRY_TLS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

/* A client context (cached; do not free).  ca_file "" = the system's
 * store.  NULL with err filled on failure.  Contexts for the configured
 * routes are made before the privilege drop, so root-only CA files work
 * (the system store only when root alone may read it). */
SSL_CTX *tls_client_ctx(const char *ca_file, int min_version, char *err,
    size_t errlen);
void tls_client_ctx_free_all(void);
/* Whether the system's store can wait for the first STARTTLS that needs
 * it (read after the privilege drop): its CA file (SSL_CERT_FILE, else
 * OpenSSL's default) is a regular file anyone may read.  Its certificate
 * directory is read at verification time in any case. */
int tls_client_system_store_public(void);

/* Handshake on fd (non-blocking) until deadline (now_ms clock).  verify:
 * check the chain and that the certificate names host (a host name, or
 * an address literal).  sni: host name to send, or NULL.  Returns the
 * SSL, or NULL with the reason in err. */
SSL *tls_client_start(SSL_CTX *ctx, int fd, const char *host, int verify,
    int64_t deadline, char *err, size_t errlen);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
void tls_client_describe(SSL *ssl, char *out, size_t outlen);

/* Waits for fd after an SSL call returned rc: 1 to retry, 0 on a
 * deadline, -1 on a real error. */
int tls_client_wait(SSL *ssl, int fd, int rc, int64_t deadline);

#endif
