/*
 * dkim_sign.c - signing one message with DKIM (RFC 6376 5, RFC 8463):
 * the queue runner's signing set (keys, trusted clients, header list),
 * and the per-message state fed as the message arrives.
 *
 * The header block is kept (it is signed last, once the body hash is
 * known); the body is canonicalized (dkim_canon.c) and hashed as it
 * passes, so a large message costs no memory.  One DKIM-Signature field
 * is made per key of the From domain: relaxed/relaxed, t=, an optional
 * x=, h= listing each configured header once per instance (signed from
 * the bottom up) plus once more for From, To, Cc, Subject and Date
 * (oversigned: a field added later breaks the signature), and no l=.
 * rsa-sha256 signs the canonical header data with SHA-256;
 * ed25519-sha256 signs the SHA-256 digest of it (RFC 8463 3).
 *
 * Security stance: the message comes from the network.  The header block
 * kept is bounded (DKIM_MAX_HEADER), so are the fields looked at; a
 * message that cannot be signed is reported to the caller, which relays
 * it unsigned.  Existing DKIM-Signature fields are not verified: one
 * with the same d= and s= as a key means that key does not sign again.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#include "dkim.h"
#include "dkim_canon.h"
#include "log.h"
#include "netaddr.h"
#include "util.h"

#define MAX_FIELDS 2000         /* fields of a header block looked at */
#define FOLD_AT 72

/* ------------------------------------------------------- the signing set */

static void
add_nets(struct dkim_signing *s, const struct cidr *v, size_t n)
{
	s->trusted = xrealloc(s->trusted, (s->ntrusted + n + 1) *
	    sizeof(*s->trusted));
	memcpy(s->trusted + s->ntrusted, v, n * sizeof(*v));
	s->ntrusted += n;
}

static char *
lower_dup(const char *s)
{
	char *d = xstrdup(s), *p;

	for (p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

struct dkim_signing *
dkim_signing_new(const struct ferry_config *c, const char *pem,
    size_t pemlen, char *err, size_t errlen)
{
	struct dkim_signing *s = xcalloc(1, sizeof(*s));
	BIO *bio = NULL;
	size_t i;

	s->clients = c->dkim_clients;
	s->expire = c->dkim_expire;
	s->headers = xcalloc(c->ndkim_headers + 1, sizeof(char *));
	for (i = 0; i < c->ndkim_headers; i++)
		s->headers[i] = xstrdup(c->dkim_headers[i]);
	s->nheaders = c->ndkim_headers;
	add_nets(s, c->relay_networks, c->nrelay_networks);
	for (i = 0; i < c->nlisteners; i++)
		add_nets(s, c->listeners[i].relay_networks,
		    c->listeners[i].nrelay_networks);
	if (pem != NULL && (bio = BIO_new_mem_buf(pem, (int)pemlen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		dkim_signing_free(s);
		return NULL;
	}
	s->signers = xcalloc(c->ndkim_keys + 1, sizeof(*s->signers));
	for (i = 0; i < c->ndkim_keys; i++) {
		const struct dkim_key_config *kc = &c->dkim_keys[i];
		struct dkim_signer *sg = &s->signers[i];
		char why[256];

		sg->name = xstrdup(kc->name);
		sg->domain = lower_dup(kc->domain);
		sg->selector = xstrdup(kc->selector);
		sg->subdomains = kc->subdomains;
		s->nsigners = i + 1;
		if (bio != NULL) {
			/* the master's copy: the keys in configuration
			 * order, one PEM after another */
			sg->key = dkim_key_read_bio(bio, why, sizeof(why));
		} else {
			sg->key = dkim_key_load(kc->key_file, why,
			    sizeof(why));
		}
		if (sg->key == NULL) {
			snprintf(err, errlen, "dkim_key \"%s\": key_file %s: "
			    "%s", kc->name, kc->key_file, why);
			BIO_free(bio);
			dkim_signing_free(s);
			return NULL;
		}
	}
	BIO_free(bio);
	return s;
}

void
dkim_signing_free(struct dkim_signing *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nsigners; i++) {
		free(s->signers[i].name);
		free(s->signers[i].domain);
		free(s->signers[i].selector);
		dkim_key_free(s->signers[i].key);
	}
	free(s->signers);
	for (i = 0; i < s->nheaders; i++)
		free(s->headers[i]);
	free(s->headers);
	free(s->trusted);
	free(s);
}

int
dkim_signing_wanted(const struct dkim_signing *s, const char *auth_user,
    const char *client_addr)
{
	struct sockaddr_storage ss;

	if (s == NULL || s->nsigners == 0)
		return 0;
	if (s->clients == DKIM_CLIENTS_ALL)
		return 1;
	if (auth_user != NULL && auth_user[0] != '\0')
		return 1;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, client_addr,
	    &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, client_addr,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return 0;
	return cidr_match_any(s->trusted, s->ntrusted,
	    (const struct sockaddr *)&ss);
}

/* ---------------------------------------------------------- one message */

struct dkim_msg {
	char *hdr;                  /* the header block as received */
	size_t hdr_len, hdr_cap;
	size_t line_start;          /* the header line being scanned */
	int hdr_done;               /* the empty line was seen */
	int too_big;                /* the header block passed the limit */
	struct dkim_body_canon body;
	EVP_MD_CTX *body_md;
};

static void
body_sink(void *arg, const void *data, size_t len)
{
	(void)EVP_DigestUpdate((EVP_MD_CTX *)arg, data, len);
}

struct dkim_msg *
dkim_msg_new(void)
{
	struct dkim_msg *m = xcalloc(1, sizeof(*m));

	m->body_md = EVP_MD_CTX_new();
	if (m->body_md == NULL ||
	    EVP_DigestInit_ex(m->body_md, EVP_sha256(), NULL) != 1)
		log_fatal("dkim: cannot set up SHA-256");
	dkim_body_canon_init(&m->body, body_sink, m->body_md);
	return m;
}

void
dkim_msg_free(struct dkim_msg *m)
{
	if (m == NULL)
		return;
	free(m->hdr);
	EVP_MD_CTX_free(m->body_md);
	free(m);
}

void
dkim_msg_feed(struct dkim_msg *m, const void *data, size_t len)
{
	const char *p = data;
	size_t scan;

	if (m->hdr_done) {
		dkim_body_canon_feed(&m->body, p, len);
		return;
	}
	if (m->too_big)
		return;
	if (m->hdr_len + len > DKIM_MAX_HEADER) {
		m->too_big = 1;
		free(m->hdr);
		m->hdr = NULL;
		m->hdr_len = m->hdr_cap = 0;
		return;
	}
	if (m->hdr_len + len > m->hdr_cap) {
		m->hdr_cap = m->hdr_cap ? m->hdr_cap : 4096;
		while (m->hdr_cap < m->hdr_len + len)
			m->hdr_cap *= 2;
		m->hdr = xrealloc(m->hdr, m->hdr_cap);
	}
	memcpy(m->hdr + m->hdr_len, p, len);
	m->hdr_len += len;
	/* whole lines from line_start: the first empty one ends the block */
	for (scan = m->line_start; scan < m->hdr_len; ) {
		const char *nl = memchr(m->hdr + scan, '\n',
		    m->hdr_len - scan);
		size_t next;

		if (nl == NULL)
			break;
		next = (size_t)(nl - m->hdr) + 1;
		if (next - scan == 1 || (next - scan == 2 &&
		    m->hdr[scan] == '\r')) {
			size_t rest = m->hdr_len - next;

			m->hdr_done = 1;
			m->hdr_len = scan;
			dkim_body_canon_feed(&m->body, m->hdr + next, rest);
			return;
		}
		scan = next;
	}
	m->line_start = scan;
}

/* A growing string. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = b->cap ? b->cap : 1024;
		while (b->cap < b->len + len + 1)
			b->cap *= 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int
name_is(const struct dkim_field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	    strncasecmp(f->name, name, f->name_len) == 0;
}

int
dkim_from_domain(const char *value, size_t len, char *out, size_t outlen)
{
	const char *end = value + len, *lt, *at = NULL, *p, *start;
	size_t n;

	lt = memchr(value, '<', len);
	if (lt != NULL) {
		const char *gt = memchr(lt, '>', (size_t)(end - lt));

		if (gt == NULL)
			return -1;
		start = lt + 1;
		end = gt;
	} else {
		start = value;
		if (memchr(value, ',', len) != NULL)
			return -1;   /* several authors: no one domain */
	}
	for (p = start; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return -1;
	p = at + 1;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
	    *p == '\n'))
		p++;
	for (n = 0; p + n < end; n++) {
		char c = p[n];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
		    c == '(' || c == ';' || c == '>')
			break;
		if (n + 1 >= outlen)
			return -1;
		out[n] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	while (p + n < end && (p[n] == ' ' || p[n] == '\t' ||
	    p[n] == '\r' || p[n] == '\n'))
		n++;
	if (out[0] == '\0' || out[0] == '[' || (p + n < end && p[n] != '('))
		return -1;
	return 0;
}

/* The value of tag (d or s) in a DKIM-Signature field, whitespace
 * removed, into out; 0 or -1. */
static int
sig_tag(const struct dkim_field *f, char tag, char *out, size_t outlen)
{
	const char *p = (const char *)memchr(f->raw, ':', f->raw_len) + 1;
	const char *end = f->raw + f->raw_len;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *te = semi ? semi : end, *q = p;

		while (q < te && strchr(" \t\r\n", *q) != NULL)
			q++;
		if (q < te && *q == tag) {
			const char *r = q + 1;

			while (r < te && strchr(" \t\r\n", *r) != NULL)
				r++;
			if (r < te && *r == '=') {
				size_t n = 0;

				for (r++; r < te; r++)
					if (strchr(" \t\r\n", *r) == NULL) {
						if (n + 1 >= outlen)
							return -1;
						out[n++] = *r;
					}
				out[n] = '\0';
				return 0;
			}
		}
		p = semi ? semi + 1 : end;
	}
	return -1;
}

/* The header names to sign for this message, in h= order; each name
 * once per instance, plus once for the oversigned ones. */
static void
header_list(const struct dkim_signing *s, const struct dkim_field *fv,
    size_t nf, struct sbuf *names, size_t *count)
{
	static const char *const over[] = { "From", "To", "Cc", "Subject",
	    "Date", NULL };
	const char **seen = xcalloc(nf + s->nheaders + 2, sizeof(char *));
	size_t nseen = 0, i, j, k;
	int have_from = 0;

	/* the configured names, prefixes expanded to the names present */
	for (i = 0; i <= s->nheaders; i++) {
		const char *h = i < s->nheaders ? s->headers[i] :
		    (have_from ? NULL : "From");
		size_t hl;

		if (h == NULL)
			break;
		hl = strlen(h);
		if (strcasecmp(h, "From") == 0)
			have_from = 1;
		for (j = 0; j <= nf; j++) {
			char cand[256];

			if (h[hl - 1] == '*') {
				if (j == nf)
					break;
				if (fv[j].name_len < hl - 1 ||
				    fv[j].name_len >= sizeof(cand) ||
				    strncasecmp(fv[j].name, h, hl - 1) != 0)
					continue;
				memcpy(cand, fv[j].name, fv[j].name_len);
				cand[fv[j].name_len] = '\0';
			} else {
				if (j > 0 || hl >= sizeof(cand))
					break;
				memcpy(cand, h, hl + 1);
			}
			for (k = 0; k < nseen; k++)
				if (strcasecmp(seen[k], cand) == 0)
					break;
			if (k < nseen)
				continue;
			seen[nseen++] = xstrdup(cand);
		}
	}
	*count = 0;
	for (k = 0; k < nseen; k++) {
		size_t inst = 0;
		int o;

		for (j = 0; j < nf; j++)
			if (name_is(&fv[j], seen[k]))
				inst++;
		for (o = 0; over[o] != NULL; o++)
			if (strcasecmp(over[o], seen[k]) == 0)
				inst++;
		for (j = 0; j < inst; j++) {
			sb_str(names, seen[k]);
			sb_add(names, "", 1);   /* NUL-separated */
			(*count)++;
		}
		free((char *)seen[k]);
	}
	free(seen);
}

/* Signs data with the key; the signature base64 into sig. */
static int
sign_data(const struct dkim_key *key, const void *data, size_t len,
    struct sbuf *sig)
{
	EVP_PKEY *pkey = (EVP_PKEY *)dkim_key_pkey(key);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char digest[32], *raw = NULL;
	unsigned int dlen = 0;
	size_t rawlen = 0;
	int ok = 0;

	if (ctx == NULL)
		return -1;
	if (dkim_key_alg(key) == DKIM_ED25519_SHA256) {
		/* RFC 8463 3: Ed25519 over the SHA-256 of the data */
		if (EVP_Digest(data, len, digest, &dlen, EVP_sha256(),
		    NULL) != 1)
			goto out;
		data = digest;
		len = dlen;
		if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1)
			goto out;
	} else if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
	    pkey) != 1) {
		goto out;
	}
	if (EVP_DigestSign(ctx, NULL, &rawlen, data, len) != 1)
		goto out;
	raw = xmalloc(rawlen);
	if (EVP_DigestSign(ctx, raw, &rawlen, data, len) != 1)
		goto out;
	{
		size_t b64len = 4 * ((rawlen + 2) / 3) + 1;
		char *b64 = xmalloc(b64len);

		EVP_EncodeBlock((unsigned char *)b64, raw, (int)rawlen);
		sb_str(sig, b64);
		free(b64);
	}
	ok = 1;
out:
	free(raw);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Appends text to the field, folding before it when the line would pass
 * FOLD_AT columns. */
static void
fold_add(struct sbuf *b, size_t *col, const char *text, size_t len)
{
	if (*col + len > FOLD_AT && *col > 1) {
		sb_str(b, "\r\n\t");
		*col = 1;
		if (len > 0 && text[0] == ' ') {
			text++;
			len--;
		}
	}
	sb_add(b, text, len);
	*col += len;
}

/* One DKIM-Signature field for signer sg. */
static int
sign_one(const struct dkim_signer *sg, const struct dkim_signing *s,
    const struct dkim_field *fv, size_t nf, const char *bh, time_t now,
    struct sbuf *out)
{
	struct sbuf field = { 0 }, names = { 0 }, data = { 0 }, sig = { 0 };
	size_t count, i, j, col, *used;
	char tag[300], *canon;
	const char *name;
	int rc = -1;

	snprintf(tag, sizeof(tag), "DKIM-Signature: v=1; a=%s; "
	    "c=relaxed/relaxed;", dkim_alg_name(dkim_key_alg(sg->key)));
	sb_str(&field, tag);
	col = field.len;
	snprintf(tag, sizeof(tag), " d=%s;", sg->domain);
	fold_add(&field, &col, tag, strlen(tag));
	snprintf(tag, sizeof(tag), " s=%s;", sg->selector);
	fold_add(&field, &col, tag, strlen(tag));
	snprintf(tag, sizeof(tag), " t=%lld;", (long long)now);
	fold_add(&field, &col, tag, strlen(tag));
	if (s->expire > 0) {
		snprintf(tag, sizeof(tag), " x=%lld;",
		    (long long)now + (long long)s->expire);
		fold_add(&field, &col, tag, strlen(tag));
	}
	header_list(s, fv, nf, &names, &count);
	/* the canonical fields, each name's instances from the bottom up */
	used = xcalloc(nf + 1, sizeof(*used));
	name = names.p;
	for (i = 0; i < count; i++, name += strlen(name) + 1) {
		snprintf(tag, sizeof(tag), "%s%s%s", i == 0 ? " h=" : "",
		    name, i + 1 == count ? ";" : ":");
		fold_add(&field, &col, tag, strlen(tag));
		for (j = nf; j-- > 0; ) {
			if (used[j] || !name_is(&fv[j], name))
				continue;
			used[j] = 1;
			canon = xmalloc(fv[j].raw_len + 2);
			sb_add(&data, canon, dkim_canon_header(fv[j].raw,
			    fv[j].raw_len, canon));
			free(canon);
			break;
		}
	}
	free(used);
	snprintf(tag, sizeof(tag), " bh=%s;", bh);
	fold_add(&field, &col, tag, strlen(tag));
	fold_add(&field, &col, " b=", 3);
	/* the field itself, b= empty, without its final CRLF */
	canon = xmalloc(field.len + 2);
	i = dkim_canon_header(field.p, field.len, canon);
	sb_add(&data, canon, i - 2);
	free(canon);
	if (sign_data(sg->key, data.p, data.len, &sig) == 0) {
		for (i = 0; i < sig.len; i += FOLD_AT - 8)
			fold_add(&field, &col, sig.p + i,
			    sig.len - i < FOLD_AT - 8 ? sig.len - i :
			    FOLD_AT - 8);
		sb_str(&field, "\r\n");
		sb_add(out, field.p, field.len);
		rc = 0;
	}
	free(field.p);
	free(names.p);
	free(data.p);
	free(sig.p);
	return rc;
}

char *
dkim_msg_sign(struct dkim_msg *m, const struct dkim_signing *s, time_t now,
    char *why, size_t whylen)
{
	struct dkim_field *fv;
	struct sbuf out = { 0 };
	size_t nf = 0, pos = 0, i, j, nfrom = 0, from = 0, signed_n = 0;
	unsigned char hash[32];
	unsigned int hlen = 0;
	char bh[64], domain[256];

	why[0] = '\0';
	if (m->too_big) {
		snprintf(why, whylen, "the header block is larger than %d "
		    "bytes", DKIM_MAX_HEADER);
		return NULL;
	}
	dkim_body_canon_finish(&m->body);
	if (EVP_DigestFinal_ex(m->body_md, hash, &hlen) != 1) {
		snprintf(why, whylen, "hashing failed");
		return NULL;
	}
	EVP_EncodeBlock((unsigned char *)bh, hash, (int)hlen);
	fv = xcalloc(MAX_FIELDS, sizeof(*fv));
	while (nf < MAX_FIELDS && m->hdr != NULL &&
	    dkim_header_next(m->hdr, m->hdr_len, &pos, &fv[nf]))
		nf++;
	if (nf == MAX_FIELDS) {
		snprintf(why, whylen, "more than %d header fields",
		    MAX_FIELDS);
		goto out;
	}
	for (i = 0; i < nf; i++)
		if (name_is(&fv[i], "From")) {
			nfrom++;
			from = i;
		}
	if (nfrom != 1) {
		snprintf(why, whylen, nfrom == 0 ? "no From header" :
		    "%zu From headers", nfrom);
		goto out;
	}
	{
		const char *v = (const char *)memchr(fv[from].raw, ':',
		    fv[from].raw_len) + 1;

		if (dkim_from_domain(v, fv[from].raw_len -
		    (size_t)(v - fv[from].raw), domain, sizeof(domain)) < 0) {
			snprintf(why, whylen, "no single domain in From");
			goto out;
		}
	}
	for (i = 0; i < s->nsigners; i++) {
		const struct dkim_signer *sg = &s->signers[i];
		size_t dl = strlen(domain), sl = strlen(sg->domain);
		int match = strcmp(domain, sg->domain) == 0 ||
		    (sg->subdomains && dl > sl + 1 &&
		    domain[dl - sl - 1] == '.' &&
		    strcmp(domain + dl - sl, sg->domain) == 0);

		if (!match)
			continue;
		for (j = 0; j < nf; j++) {
			char d[256], sel[256];

			if (name_is(&fv[j], "DKIM-Signature") &&
			    sig_tag(&fv[j], 'd', d, sizeof(d)) == 0 &&
			    sig_tag(&fv[j], 's', sel, sizeof(sel)) == 0 &&
			    strcasecmp(d, sg->domain) == 0 &&
			    strcmp(sel, sg->selector) == 0)
				break;
		}
		if (j < nf) {
			snprintf(why, whylen, "already signed by %s._domainkey."
			    "%s", sg->selector, sg->domain);
			continue;
		}
		if (sign_one(sg, s, fv, nf, bh, now, &out) < 0) {
			snprintf(why, whylen, "signing with dkim_key \"%s\" "
			    "failed", sg->name);
			continue;
		}
		signed_n++;
	}
out:
	free(fv);
	if (signed_n == 0) {
		free(out.p);
		return NULL;
	}
	return out.p;
}
