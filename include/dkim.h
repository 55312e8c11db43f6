/*
 * dkim.h - DKIM signing (RFC 6376, RFC 8463): signing keys, and the
 * signing of one message as the queue runner receives it.
 *
 * Keys: RSA of 2048 bits or more (rsa-sha256) or Ed25519
 * (ed25519-sha256), PEM private keys read while the reader is still
 * root.  They live in the queue runner only, which is not
 * internet-facing; the SMTP workers never see them.
 *
 * Signing: a message is fed in the pieces it arrives in (dkim_msg_feed):
 * its header block is kept (up to DKIM_MAX_HEADER bytes), its body is
 * canonicalized and hashed as it passes.  dkim_msg_sign() then builds one
 * DKIM-Signature field per key of the From domain (relaxed/relaxed, the
 * configured header list, From, To, Cc, Subject and Date oversigned, an
 * optional x=, never l=) to put before the message.
 *
 * Security stance: the message comes from the network; a message that
 * cannot be signed (no From, two From fields, a header block too large)
 * is reported, never refused.
 */
#ifndef FERRY_DKIM_H
#define FERRY_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"

#define DKIM_MIN_RSA_BITS 2048
#define DKIM_MAX_HEADER (1024 * 1024)

enum dkim_alg { DKIM_RSA_SHA256 = 0, DKIM_ED25519_SHA256 };

struct dkim_key;
struct bio_st;
struct evp_pkey_st;

/* A private key from a PEM file or from PEM text; NULL with a reason in
 * err when it cannot be read, is of another type, or is an RSA key
 * shorter than DKIM_MIN_RSA_BITS. */
struct dkim_key *dkim_key_load(const char *path, char *err, size_t errlen);
struct dkim_key *dkim_key_from_pem(const void *pem, size_t len,
    char *err, size_t errlen);
/* The next key of a BIO holding PEM keys one after another (BIO *). */
struct dkim_key *dkim_key_read_bio(struct bio_st *bio, char *err,
    size_t errlen);
/* A new key: RSA of bits, or Ed25519 (bits ignored). */
struct dkim_key *dkim_key_generate(enum dkim_alg alg, int bits, char *err,
    size_t errlen);
/* The key as PEM (PKCS#8), allocated; NULL on failure. */
char *dkim_key_pem(const struct dkim_key *k, size_t *len);
void dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
const char *dkim_alg_name(enum dkim_alg alg);   /* "rsa-sha256" ... */
/* The TXT record to publish at selector._domainkey.domain:
 * "v=DKIM1; k=rsa; p=..." (allocated), NULL on failure. */
char *dkim_key_dns_record(const struct dkim_key *k);
/* The OpenSSL key, for the signer (EVP_PKEY *). */
struct evp_pkey_st *dkim_key_pkey(const struct dkim_key *k);

/* What the queue runner signs with: the keys of the configuration and
 * the rules of dkim { }. */
struct dkim_signer {
	char *name, *domain, *selector;
	int subdomains;
	struct dkim_key *key;
};

struct dkim_signing {
	struct dkim_signer *signers;
	size_t nsigners;
	enum dkim_clients clients;
	struct cidr *trusted;          /* relay { networks } and every
	                                  listener's relay_networks */
	size_t ntrusted;
	char **headers;
	size_t nheaders;
	int64_t expire;
};

/* The signing set of c, its keys read from their files (pem NULL) or,
 * in the order of c->dkim_keys, from the PEM text pem (what the master
 * hands the runner on reload).  NULL with a reason in err; a config
 * without keys gives an empty set. */
struct dkim_signing *dkim_signing_new(const struct ferry_config *c,
    const char *pem, size_t pemlen, char *err, size_t errlen);
void dkim_signing_free(struct dkim_signing *s);
/* Whether mail from this client is signed: dkim { clients = all }, or
 * an authenticated client (auth_user not empty), or one in the trusted
 * networks. */
int dkim_signing_wanted(const struct dkim_signing *s, const char *auth_user,
    const char *client_addr);

struct dkim_msg;

struct dkim_msg *dkim_msg_new(void);
void dkim_msg_feed(struct dkim_msg *m, const void *data, size_t len);
/* The DKIM-Signature fields to put before the message (CRLF-terminated,
 * allocated), or NULL with the reason in why: not signed (why is ""
 * when no key matches the From domain, which is not worth a log line). */
char *dkim_msg_sign(struct dkim_msg *m, const struct dkim_signing *s,
    time_t now, char *why, size_t whylen);
void dkim_msg_free(struct dkim_msg *m);

/* The domain of a From field's value: the address in angle brackets, or
 * the bare address; lower-cased into out.  0, or -1 when there is no
 * single address domain to be found. */
int dkim_from_domain(const char *value, size_t len, char *out,
    size_t outlen);

#endif
