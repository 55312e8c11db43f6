/*
 * dkim_key.c - DKIM signing keys: reading a PEM private key and checking
 * it is fit to sign (RSA of 2048 bits or more, or Ed25519), making a new
 * one for "ferryctl dkim keygen", and the DNS TXT record that publishes
 * its public half (RFC 6376 3.6.1, RFC 8463 4).
 *
 * Security stance: key files are read by root (the master checking the
 * configuration, the queue runner before it drops privileges); nothing
 * here logs key material, and PEM text handed in is not kept.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim.h"
#include "util.h"

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
};

EVP_PKEY *
dkim_key_pkey(const struct dkim_key *k)
{
	return k->pkey;
}

static struct dkim_key *
check_key(EVP_PKEY *pkey, char *err, size_t errlen)
{
	struct dkim_key *k;
	enum dkim_alg alg;

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < DKIM_MIN_RSA_BITS) {
			snprintf(err, errlen, "an RSA key of %d bits: DKIM "
			    "keys must have %d bits or more (RFC 8301)",
			    EVP_PKEY_get_bits(pkey), DKIM_MIN_RSA_BITS);
			EVP_PKEY_free(pkey);
			return NULL;
		}
		alg = DKIM_RSA_SHA256;
		break;
	case EVP_PKEY_ED25519:
		alg = DKIM_ED25519_SHA256;
		break;
	default:
		snprintf(err, errlen, "not an RSA or Ed25519 key");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->alg = alg;
	return k;
}

struct dkim_key *
dkim_key_read_bio(BIO *bio, char *err, size_t errlen)
{
	EVP_PKEY *pkey;

	ERR_clear_error();
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (pkey == NULL) {
		unsigned long e = ERR_peek_last_error();

		snprintf(err, errlen, "not a PEM private key%s%s",
		    e ? ": " : "", e ? ERR_reason_error_string(e) : "");
		ERR_clear_error();
		return NULL;
	}
	return check_key(pkey, err, errlen);
}

struct dkim_key *
dkim_key_load(const char *path, char *err, size_t errlen)
{
	struct dkim_key *k;
	BIO *bio = BIO_new_file(path, "r");

	if (bio == NULL) {
		snprintf(err, errlen, "%s", strerror(errno ? errno : EIO));
		ERR_clear_error();
		return NULL;
	}
	k = dkim_key_read_bio(bio, err, errlen);
	BIO_free(bio);
	return k;
}

struct dkim_key *
dkim_key_from_pem(const void *pem, size_t len, char *err, size_t errlen)
{
	struct dkim_key *k;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);

	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k = dkim_key_read_bio(bio, err, errlen);
	BIO_free(bio);
	return k;
}

struct dkim_key *
dkim_key_generate(enum dkim_alg alg, int bits, char *err, size_t errlen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(alg == DKIM_RSA_SHA256 ?
	    EVP_PKEY_RSA : EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;

	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
	    (alg == DKIM_RSA_SHA256 &&
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) <= 0) ||
	    EVP_PKEY_keygen(ctx, &pkey) <= 0) {
		snprintf(err, errlen, "key generation failed");
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return check_key(pkey, err, errlen);
}

char *
dkim_key_pem(const struct dkim_key *k, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (bio == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL,
	    NULL) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0) {
		out = xmalloc((size_t)n + 1);
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(bio);
	return out;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

const char *
dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

char *
dkim_key_dns_record(const struct dkim_key *k)
{
	unsigned char *der = NULL, raw[32];
	size_t n = sizeof(raw), b64len;
	const unsigned char *pub;
	char *b64, *out;
	int len;

	if (k->alg == DKIM_ED25519_SHA256) {
		/* RFC 8463: the bare 32-byte public key */
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &n) != 1)
			return NULL;
		pub = raw;
		len = (int)n;
	} else {
		/* RFC 6376: the DER SubjectPublicKeyInfo */
		if ((len = i2d_PUBKEY(k->pkey, &der)) <= 0)
			return NULL;
		pub = der;
	}
	b64len = 4 * (((size_t)len + 2) / 3) + 1;
	b64 = xmalloc(b64len);
	EVP_EncodeBlock((unsigned char *)b64, pub, len);
	OPENSSL_free(der);
	out = xmalloc(b64len + 40);
	snprintf(out, b64len + 40, "v=DKIM1; k=%s; p=%s",
	    k->alg == DKIM_ED25519_SHA256 ? "ed25519" : "rsa", b64);
	free(b64);
	return out;
}
