/*
 * check_dkim.c - unit tests for DKIM signing: the relaxed
 * canonicalization against RFC 6376 3.4.5's example, fed in every split,
 * the body hash of RFC 8463's example message and of an empty body,
 * header block splitting, the From domain, key checks (short RSA keys
 * refused, Ed25519 and RSA 2048 taken, the DNS record), and the fields
 * of a signature (h= with oversigning, no l=, x=) and that it verifies
 * with OpenSSL over the canonical data RFC 6376 prescribes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <openssl/evp.h>

#include "child.h"
#include "config.h"
#include "dkim.h"
#include "dkim_copy.h"
#include "dkim_canon.h"

struct out {
	char buf[4096];
	size_t len;
};

static void
collect(void *arg, const void *data, size_t len)
{
	struct out *o = arg;

	ck_assert_uint_le(o->len + len, sizeof(o->buf));
	memcpy(o->buf + o->len, data, len);
	o->len += len;
}

/* The relaxed body form of in, fed in pieces of size step. */
static size_t
body_canon(const char *in, size_t len, size_t step, char *out)
{
	struct dkim_body_canon b;
	struct out o = { .len = 0 };
	size_t i;

	dkim_body_canon_init(&b, collect, &o);
	for (i = 0; i < len; i += step)
		dkim_body_canon_feed(&b, in + i, len - i < step ? len - i :
		    step);
	dkim_body_canon_finish(&b);
	memcpy(out, o.buf, o.len);
	out[o.len] = '\0';
	return o.len;
}

START_TEST(test_rfc6376_body_example)
{
	static const char in[] = " C \r\nD \t E\r\n\r\n\r\n";
	char out[256];
	size_t step;

	for (step = 1; step <= sizeof(in); step++) {
		body_canon(in, sizeof(in) - 1, step, out);
		ck_assert_str_eq(out, " C\r\nD E\r\n");
	}
}
END_TEST

START_TEST(test_body_edges)
{
	char out[256];

	ck_assert_uint_eq(body_canon("", 0, 1, out), 0);
	ck_assert_uint_eq(body_canon("\r\n\r\n \r\n", 7, 3, out), 0);
	body_canon("no end", 6, 2, out);
	ck_assert_str_eq(out, "no end\r\n");
	body_canon("a  \t", 4, 1, out);
	ck_assert_str_eq(out, "a\r\n");
	body_canon("a\r\n\r\nb\r\n", 8, 1, out);
	ck_assert_str_eq(out, "a\r\n\r\nb\r\n");
	body_canon("a\rb\r", 4, 1, out);   /* lone CRs are content */
	ck_assert_str_eq(out, "a\rb\r\r\n");
	body_canon("\xc3\xa9\t\xff\r\n", 6, 1, out);
	ck_assert_str_eq(out, "\xc3\xa9 \xff\r\n");
}
END_TEST

START_TEST(test_rfc6376_header_example)
{
	static const char block[] = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\nbody";
	struct dkim_field f;
	size_t pos = 0, n;
	char out[64];

	ck_assert_int_eq(dkim_header_next(block, sizeof(block) - 1, &pos, &f),
	    1);
	ck_assert_uint_eq(f.name_len, 1);
	n = dkim_canon_header(f.raw, f.raw_len, out);
	ck_assert_uint_eq(n, 5);
	ck_assert(memcmp(out, "a:X\r\n", 5) == 0);
	ck_assert_int_eq(dkim_header_next(block, sizeof(block) - 1, &pos, &f),
	    1);
	ck_assert(memcmp(f.name, "B", f.name_len) == 0);
	n = dkim_canon_header(f.raw, f.raw_len, out);
	ck_assert_uint_eq(n, 7);
	ck_assert(memcmp(out, "b:Y Z\r\n", 7) == 0);
}
END_TEST

START_TEST(test_header_split)
{
	static const char block[] = "no colon line\r\n folded orphan\r\n"
	    "Subject: a\r\n b\r\nX-Last: v";
	struct dkim_field f;
	size_t pos = 0;

	ck_assert_int_eq(dkim_header_next(block, sizeof(block) - 1, &pos, &f),
	    1);
	ck_assert_uint_eq(f.name_len, 7);
	ck_assert_uint_eq(f.raw_len, strlen("Subject: a\r\n b\r\n"));
	ck_assert_int_eq(dkim_header_next(block, sizeof(block) - 1, &pos, &f),
	    1);
	ck_assert_uint_eq(f.raw_len, strlen("X-Last: v"));
	ck_assert_int_eq(dkim_header_next(block, sizeof(block) - 1, &pos, &f),
	    0);
}
END_TEST

START_TEST(test_from_domain)
{
	char d[256];
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "app@Example.ORG", "example.org" },
		{ " \"A, B\" <a@x.test>", "x.test" },
		{ "Joe <joe@football.example.com>\r\n", "football.example.com" },
		{ "a@x.test (comment)", "x.test" },
		{ "a@x.test, b@y.test", NULL },
		{ "undisclosed", NULL },
		{ "<a@[192.0.2.1]>", NULL },
		{ "<a@x.test", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = dkim_from_domain(cases[i].in, strlen(cases[i].in), d,
		    sizeof(d));

		if (cases[i].want == NULL) {
			ck_assert_msg(rc < 0, "%s", cases[i].in);
		} else {
			ck_assert_msg(rc == 0, "%s", cases[i].in);
			ck_assert_str_eq(d, cases[i].want);
		}
	}
}
END_TEST

/* RFC 8463 appendix A: its Ed25519 key (PKCS#8 of the seed). */
static const char rfc8463_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
static const char rfc8463_msg[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n";

START_TEST(test_keys)
{
	char err[256], *rec;
	struct dkim_key *k;

	k = dkim_key_from_pem(rfc8463_key, strlen(rfc8463_key), err,
	    sizeof(err));
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(dkim_key_alg(k), DKIM_ED25519_SHA256);
	rec = dkim_key_dns_record(k);
	/* RFC 8463 appendix A's published key */
	ck_assert_str_eq(rec, "v=DKIM1; k=ed25519; "
	    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	free(rec);
	dkim_key_free(k);

	k = dkim_key_generate(DKIM_RSA_SHA256, 1024, err, sizeof(err));
	ck_assert_ptr_null(k);
	ck_assert_msg(strstr(err, "1024 bits") != NULL, "%s", err);
	k = dkim_key_generate(DKIM_RSA_SHA256, 2048, err, sizeof(err));
	ck_assert_ptr_nonnull(k);
	rec = dkim_key_dns_record(k);
	ck_assert(strncmp(rec, "v=DKIM1; k=rsa; p=MIIBIjAN", 26) == 0);
	free(rec);
	dkim_key_free(k);
	ck_assert_ptr_null(dkim_key_from_pem("junk", 4, err, sizeof(err)));
	ck_assert_ptr_null(dkim_key_load("/nonexistent/key.pem", err,
	    sizeof(err)));
}
END_TEST

/* path holding len bytes of text. */
static void
write_key_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(text, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

/* The key files' bytes, copied one after another for the runner, read
 * back as the runner reads them: each key in configuration order, a
 * file without a final newline included; a file that cannot be read is
 * named with its key. */
START_TEST(test_keys_copy)
{
	char dir[] = "/tmp/check_dkim.XXXXXX", ed[64], rsa[64], err[512];
	struct dkim_key_config kc[2];
	struct ferry_config cfg;
	struct dkim_signing *s;
	struct dkim_key *k;
	char *pem, *copy;
	size_t len = 0;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(ed, sizeof(ed), "%s/ed.pem", dir);
	snprintf(rsa, sizeof(rsa), "%s/rsa.pem", dir);
	/* Ed25519 without its last newline */
	write_key_file(ed, rfc8463_key, strlen(rfc8463_key) - 1);
	k = dkim_key_generate(DKIM_RSA_SHA256, 2048, err, sizeof(err));
	ck_assert_ptr_nonnull(k);
	pem = dkim_key_pem(k, &len);
	write_key_file(rsa, pem, len);
	free(pem);
	dkim_key_free(k);

	memset(&cfg, 0, sizeof(cfg));
	memset(kc, 0, sizeof(kc));
	kc[0].name = "rsa";
	kc[0].domain = "example.org";
	kc[0].selector = "r";
	kc[0].key_file = rsa;
	kc[1].name = "ed";
	kc[1].domain = "example.org";
	kc[1].selector = "e";
	kc[1].key_file = ed;
	cfg.dkim_keys = kc;
	cfg.ndkim_keys = 2;

	fd = memfd_create("keys", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dkim_keys_copy(&cfg, fd, err, sizeof(err)), 0);
	copy = child_read_config_fd(fd);
	ck_assert_ptr_nonnull(copy);
	/* the bytes as they are in the files: unparsed */
	ck_assert(strncmp(copy, "-----BEGIN PRIVATE KEY-----", 27) == 0);
	ck_assert(strstr(copy, rfc8463_key) != NULL);
	s = dkim_signing_new(&cfg, copy, strlen(copy), err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	ck_assert_uint_eq(s->nsigners, 2);
	ck_assert_int_eq(dkim_key_alg(s->signers[0].key), DKIM_RSA_SHA256);
	ck_assert_int_eq(dkim_key_alg(s->signers[1].key),
	    DKIM_ED25519_SHA256);
	dkim_signing_free(s);
	free(copy);
	close(fd);

	/* a file gone: the key and its file are named */
	ck_assert_int_eq(unlink(ed), 0);
	fd = memfd_create("keys", MFD_CLOEXEC);
	ck_assert_int_eq(dkim_keys_copy(&cfg, fd, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "dkim_key \"ed\"") != NULL &&
	    strstr(err, ed) != NULL && strstr(err, "No such file") != NULL,
	    "%s", err);
	close(fd);
	/* a key changed into junk: the copy goes, the runner's reading of
	 * it refuses it (and keeps what it has) */
	write_key_file(ed, "junk\n", 5);
	fd = memfd_create("keys", MFD_CLOEXEC);
	ck_assert_int_eq(dkim_keys_copy(&cfg, fd, err, sizeof(err)), 0);
	copy = child_read_config_fd(fd);
	ck_assert_ptr_null(dkim_signing_new(&cfg, copy, strlen(copy), err,
	    sizeof(err)));
	ck_assert_msg(strstr(err, "dkim_key \"ed\"") != NULL &&
	    strstr(err, "not a PEM private key") != NULL, "%s", err);
	free(copy);
	close(fd);
	unlink(ed);
	unlink(rsa);
	rmdir(dir);
}
END_TEST

/* A signing set of one key for football.example.com, selector brisbane. */
static struct dkim_signing *
rfc8463_signing(int64_t expire)
{
	static char *headers[] = { "From", "To", "Subject", "Date",
	    "Message-ID", "Cc", "List-*", NULL };
	struct dkim_signing *s = calloc(1, sizeof(*s));
	char err[256];

	s->signers = calloc(1, sizeof(*s->signers));
	s->nsigners = 1;
	s->signers[0].name = strdup("test");
	s->signers[0].domain = strdup("football.example.com");
	s->signers[0].selector = strdup("brisbane");
	s->signers[0].key = dkim_key_from_pem(rfc8463_key,
	    strlen(rfc8463_key), err, sizeof(err));
	s->headers = calloc(8, sizeof(char *));
	for (s->nheaders = 0; headers[s->nheaders] != NULL; s->nheaders++)
		s->headers[s->nheaders] = strdup(headers[s->nheaders]);
	s->expire = expire;
	return s;
}

static void
unfold(const char *in, char *out)
{
	for (; *in != '\0'; in++)
		if (*in != '\r' && *in != '\n' && *in != ' ' && *in != '\t')
			*out++ = *in;
	*out = '\0';
}

START_TEST(test_sign_rfc8463_message)
{
	struct dkim_signing *s = rfc8463_signing(3600);
	struct dkim_msg *m = dkim_msg_new();
	char why[256], flat[2048], *sig, *b, data[4096];
	size_t i;

	for (i = 0; i < sizeof(rfc8463_msg) - 1; i += 7)
		dkim_msg_feed(m, rfc8463_msg + i, sizeof(rfc8463_msg) - 1 - i <
		    7 ? sizeof(rfc8463_msg) - 1 - i : 7);
	sig = dkim_msg_sign(m, s, 1528637909, why, sizeof(why));
	ck_assert_msg(sig != NULL, "%s", why);
	ck_assert(strncmp(sig, "DKIM-Signature: v=1; a=ed25519-sha256;", 38)
	    == 0);
	ck_assert(strlen(sig) >= 2 && strcmp(sig + strlen(sig) - 2,
	    "\r\n") == 0);
	unfold(sig, flat);
	/* RFC 8463 appendix A's body hash */
	ck_assert_msg(strstr(flat, ";bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIk"
	    "fJVOzv8=;") != NULL, "%s", flat);
	ck_assert(strstr(flat, ";d=football.example.com;s=brisbane;") !=
	    NULL);
	ck_assert(strstr(flat, ";t=1528637909;x=1528641509;") != NULL);
	ck_assert_msg(strstr(flat, ";h=From:From:To:To:Subject:Subject:Date:"
	    "Date:Message-ID:Cc;") != NULL, "%s", flat);
	ck_assert(strstr(flat, ";l=") == NULL);
	ck_assert(strstr(flat, "c=relaxed/relaxed") != NULL);

	/* verify: the canonical fields in h= order, then the signature
	 * field without b='s value and its final CRLF (RFC 6376 3.7) */
	b = strstr(sig, " b=") + 3;
	snprintf(data, sizeof(data), "%s%s%s%s%s%s",
	    "from:Joe SixPack <joe@football.example.com>\r\n",
	    "to:Suzie Q <suzie@shopping.example.net>\r\n",
	    "subject:Is dinner ready?\r\n",
	    "date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n",
	    "message-id:<20030712040037.46341.5F8J@football.example.com>\r\n",
	    "dkim-signature:");
	{
		/* the field's value, relaxed: unfolded, runs of blanks one */
		const char *p = strchr(sig, ':') + 1;
		size_t o = strlen(data);
		int wsp = 0, content = 0;

		for (; p < b; p++) {
			if (*p == '\r' || *p == '\n')
				continue;
			if (*p == ' ' || *p == '\t') {
				wsp = 1;
				continue;
			}
			if (wsp && content)
				data[o++] = ' ';
			wsp = 0;
			content = 1;
			data[o++] = *p;
		}
		data[o] = '\0';
	}
	{
		unsigned char raw[128], digest[32];
		char b64[256];
		int n;
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_PKEY *pkey = (EVP_PKEY *)dkim_key_pkey(s->signers[0].key);

		unfold(b, b64);
		n = EVP_DecodeBlock(raw, (unsigned char *)b64,
		    (int)strlen(b64));
		ck_assert_int_ge(n, 64);
		EVP_Digest(data, strlen(data), digest, NULL, EVP_sha256(),
		    NULL);
		ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL,
		    pkey), 1);
		ck_assert_int_eq(EVP_DigestVerify(ctx, raw, 64, digest, 32),
		    1);
		EVP_MD_CTX_free(ctx);
	}
	free(sig);
	dkim_msg_free(m);
	dkim_signing_free(s);
}
END_TEST

START_TEST(test_unsignable)
{
	static const char *const msgs[] = {
		"From: a@football.example.com\r\nFrom: b@football.example.com"
		    "\r\n\r\nx\r\n",
		"Subject: no from\r\n\r\nx\r\n",
		"From: a@other.example\r\n\r\nx\r\n",
		"From: a@football.example.com\r\nDKIM-Signature: v=1; "
		    "d=Football.Example.COM;\r\n s = brisbane; b=x\r\n\r\nx\r\n",
	};
	static const char *const whys[] = { "2 From headers",
	    "no From header", "", ("already signed by brisbane._domainkey."
	    "football.example.com") };
	struct dkim_signing *s = rfc8463_signing(0);
	size_t i;

	for (i = 0; i < 4; i++) {
		struct dkim_msg *m = dkim_msg_new();
		char why[256];

		dkim_msg_feed(m, msgs[i], strlen(msgs[i]));
		ck_assert_ptr_null(dkim_msg_sign(m, s, 1, why, sizeof(why)));
		ck_assert_str_eq(why, whys[i]);
		dkim_msg_free(m);
	}
	dkim_signing_free(s);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dkim");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_rfc6376_body_example);
	tcase_add_test(tc, test_body_edges);
	tcase_add_test(tc, test_rfc6376_header_example);
	tcase_add_test(tc, test_header_split);
	tcase_add_test(tc, test_from_domain);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_keys_copy);
	tcase_add_test(tc, test_sign_rfc8463_message);
	tcase_add_test(tc, test_unsignable);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
