/*
 * tls_server.h - inbound TLS: one server context per listener (made
 * before the worker drops privileges), the master's check that every
 * listener's certificate and key load and match, and the connection layer
 * the SMTP session reads and writes through, plain or TLS alike.
 */
#ifndef FERRY_TLS_SERVER_H
#define FERRY_TLS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ferry_config;
struct listener_config;
struct tls_server;          /* opaque: the SSL_CTX and its policy */

/* The context for listener l (cert/key of the listener or the tls
 * section, minimum version, ciphers, groups, client certificates).
 * NULL with the reason in err. */
struct tls_server *tls_server_new(const struct ferry_config *cfg,
    const struct listener_config *l, char *err, size_t errlen);
void tls_server_free(struct tls_server *ts);

/* For the master, at start and on reload: every TLS listener's context
 * can be built (files load, certificate and key match, cipher and group
 * lists are valid) and every relay_client_certs rule is well-formed.
 * 0, or -1 with 'listen "name": reason' in err. */
int tls_server_check(const struct ferry_config *cfg, char *err,
    size_t errlen);

/* A relay_client_certs rule against a verified certificate: "CN=name"
 * (ASCII case-insensitive) or "sha256:HEX" (case-insensitive, colons
 * allowed).  Nonzero on a match. */
int tls_cert_rule_match(const char *rule, const char *cn,
    const char *sha256_hex);
/* Nonzero when rule has one of the two forms above. */
int tls_cert_rule_valid(const char *rule);

/* ---- the connection layer --------------------------------------------- */

#define CONN_ERROR (-1)     /* fatal: the connection is unusable */
#define CONN_AGAIN (-2)     /* would block: conn_wait, then retry */

/* One accepted SMTP connection, plain or TLS. */
struct server_conn {
	int fd;                 /* non-blocking */
	void *ssl;              /* SSL *, NULL while plain */
	void *handshake;        /* SSL * of a handshake in progress */
	short want;             /* POLLIN / POLLOUT after CONN_AGAIN */
};

/* What the handshake gave: for the Received header and the logs. */
struct tls_info {
	char version[16];       /* "TLSv1.3" */
	char cipher[64];        /* "TLS_AES_256_GCM_SHA384" */
	int bits, alg_bits;
	int peer_cert;          /* the client sent a certificate */
	int peer_verified;      /* ... and it verified against the CA file */
	char peer_subject[256]; /* RFC 2253, escaped, for logs */
	char peer_cn[256];      /* "" when absent or not plain text */
	char peer_sha256[65];   /* lower-case hex of the DER */
};

void conn_init(struct server_conn *c, int fd);
/* >0 bytes read, 0 at the end of the stream, CONN_AGAIN or CONN_ERROR. */
ssize_t conn_read(struct server_conn *c, void *buf, size_t len);
/* >0 bytes written (maybe fewer than len), CONN_AGAIN or CONN_ERROR. */
ssize_t conn_write(struct server_conn *c, const void *buf, size_t len);
/* Waits at most ms for what the last CONN_AGAIN asked (POLLIN before a
 * first call).  1 ready, 0 time out, -1 error. */
int conn_wait(struct server_conn *c, int ms);
/* The server handshake on c->fd until deadline (now_ms clock).  0, or -1
 * with the reason in err (then c stays plain and must be dropped: the
 * peer's state is unknown). */
int conn_tls_accept(struct server_conn *c, struct tls_server *ts,
    int64_t deadline, char *err, size_t errlen);
/* One non-blocking step of that handshake: 1 done (c is TLS now), 0 not
 * yet (poll for c->want, then call again), -1 failed (err says why; c
 * stays plain and must be dropped).  conn_end frees a handshake left
 * half done. */
int conn_tls_accept_step(struct server_conn *c, struct tls_server *ts,
    char *err, size_t errlen);
/* Nonzero when TLS holds decrypted bytes a read would return at once
 * (poll would not report them). */
int conn_pending(const struct server_conn *c);
void conn_tls_info(const struct server_conn *c, struct tls_info *out);
/* Best-effort close_notify, then frees the TLS state; fd stays open. */
void conn_end(struct server_conn *c);

#endif
