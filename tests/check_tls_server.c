/*
 * check_tls_server.c - unit tests for src/tls_server.c: relay_client_certs
 * rules, building server contexts (a certificate and key that do not
 * match are refused with a clear reason), and the connection layer,
 * plain and over a real TLS handshake on a socket pair.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "tls_server.h"
#include "util.h"

static char dir[] = "/tmp/check_tls_server.XXXXXX";
static char cert_a[256], key_a[256], key_b[256];

START_TEST(test_rules)
{
	const char *fp = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";

	ck_assert(tls_cert_rule_valid("CN=client.example"));
	ck_assert(tls_cert_rule_valid("cn=x"));
	ck_assert(!tls_cert_rule_valid("CN="));
	ck_assert(tls_cert_rule_valid("sha256:0123456789ABCDEF0123456789ABCDEF"
	    "0123456789abcdef0123456789abcdef"));
	ck_assert(tls_cert_rule_valid("SHA256:01:23:45:67:89:ab:cd:ef:01:23:"
	    "45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef"));
	ck_assert(!tls_cert_rule_valid("sha256:0123"));
	ck_assert(!tls_cert_rule_valid("sha256:0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdeg"));
	ck_assert(!tls_cert_rule_valid("O=ferry"));
	ck_assert(!tls_cert_rule_valid(""));

	ck_assert(tls_cert_rule_match("CN=client.example", "client.example",
	    fp));
	ck_assert(tls_cert_rule_match("CN=Client.Example", "client.example",
	    fp));
	ck_assert(!tls_cert_rule_match("CN=client.example",
	    "client.example.evil", fp));
	ck_assert(!tls_cert_rule_match("CN=client", "client.example", fp));
	ck_assert(!tls_cert_rule_match("CN=client.example", "", fp));
	ck_assert(!tls_cert_rule_match("CN=client.example", NULL, fp));
	ck_assert(tls_cert_rule_match("sha256:0123456789ABCDEF0123456789ABCDEF"
	    "0123456789abcdef0123456789abcdef", "x", fp));
	ck_assert(tls_cert_rule_match("sha256:01:23:45:67:89:ab:cd:ef:01:23:"
	    "45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef",
	    "x", fp));
	ck_assert(!tls_cert_rule_match("sha256:1123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef", "x", fp));
	ck_assert(!tls_cert_rule_match("sha256:0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef", "x", ""));
}
END_TEST

static void
write_key(EVP_PKEY *k, const char *path)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

/* A self-signed certificate for key a, and a second, unrelated key. */
static void
make_files(void)
{
	EVP_PKEY *a = EVP_EC_gen("P-256"), *b = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;

	ck_assert(a != NULL && b != NULL && x != NULL);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cert_a, sizeof(cert_a), "%s/a.pem", dir);
	snprintf(key_a, sizeof(key_a), "%s/a.key", dir);
	snprintf(key_b, sizeof(key_b), "%s/b.key", dir);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, a);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"unit.example", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	ck_assert(X509_sign(x, a, EVP_sha256()) > 0);
	f = fopen(cert_a, "w");
	ck_assert_ptr_nonnull(f);
	PEM_write_X509(f, x);
	fclose(f);
	write_key(a, key_a);
	write_key(b, key_b);
	X509_free(x);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

static void
remove_files(void)
{
	unlink(cert_a);
	unlink(key_a);
	unlink(key_b);
	rmdir(dir);
}

static void
setup_cfg(struct ferry_config *cfg, struct listener_config *l,
    const char *cert, const char *key)
{
	memset(cfg, 0, sizeof(*cfg));
	memset(l, 0, sizeof(*l));
	cfg->tls_cert_file = (char *)"";
	cfg->tls_key_file = (char *)"";
	cfg->tls_ciphers = (char *)"";
	cfg->tls_ciphersuites = (char *)"";
	cfg->tls_groups = (char *)"";
	cfg->tls_client_ca_file = (char *)"";
	l->name = (char *)"unit";
	l->tls = LTLS_STARTTLS;
	l->cert_file = (char *)cert;
	l->key_file = (char *)key;
	cfg->listeners = l;
	cfg->nlisteners = 1;
}

START_TEST(test_contexts)
{
	struct ferry_config cfg;
	struct listener_config l;
	struct tls_server *ts;
	char err[1024];

	make_files();
	setup_cfg(&cfg, &l, cert_a, key_a);
	ts = tls_server_new(&cfg, &l, err, sizeof(err));
	ck_assert_msg(ts != NULL, "%s", err);
	tls_server_free(ts);
	ck_assert_int_eq(tls_server_check(&cfg, err, sizeof(err)), 0);

	setup_cfg(&cfg, &l, cert_a, key_b);
	ck_assert_ptr_null(tls_server_new(&cfg, &l, err, sizeof(err)));
	ck_assert_msg(strstr(err, "certificate and key do not match") != NULL,
	    "%s", err);
	ck_assert_int_eq(tls_server_check(&cfg, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "listen \"unit\": ") == err, "%s", err);

	setup_cfg(&cfg, &l, "/nonexistent/cert.pem", key_a);
	ck_assert_ptr_null(tls_server_new(&cfg, &l, err, sizeof(err)));
	ck_assert_msg(strstr(err, "cannot load the certificate") != NULL,
	    "%s", err);
	setup_cfg(&cfg, &l, cert_a, cert_a);
	ck_assert_ptr_null(tls_server_new(&cfg, &l, err, sizeof(err)));
	ck_assert_msg(strstr(err, "cannot load the key") != NULL, "%s", err);

	setup_cfg(&cfg, &l, cert_a, key_a);
	cfg.tls_ciphers = (char *)"NO-SUCH-CIPHER";
	ck_assert_ptr_null(tls_server_new(&cfg, &l, err, sizeof(err)));
	ck_assert_msg(strstr(err, "ciphers") != NULL, "%s", err);
	setup_cfg(&cfg, &l, cert_a, key_a);
	cfg.tls_groups = (char *)"no-such-group";
	ck_assert_ptr_null(tls_server_new(&cfg, &l, err, sizeof(err)));

	/* a bad relay_client_certs rule is caught even without TLS */
	setup_cfg(&cfg, &l, "", "");
	l.tls = LTLS_NONE;
	{
		char *rules[] = { (char *)"O=ferry" };

		l.relay_cert_subjects = rules;
		l.nrelay_cert_subjects = 1;
		ck_assert_int_eq(tls_server_check(&cfg, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "relay_client_certs") != NULL, "%s",
		    err);
	}
	remove_files();
}
END_TEST

START_TEST(test_plain_conn)
{
	struct server_conn c;
	char buf[16];
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fd_set_nonblock(sv[0], 1);
	conn_init(&c, sv[0]);
	ck_assert_int_eq(conn_read(&c, buf, sizeof(buf)), CONN_AGAIN);
	ck_assert_int_eq(conn_wait(&c, 10), 0);
	ck_assert_int_eq(write(sv[1], "hello", 5), 5);
	ck_assert_int_eq(conn_wait(&c, 1000), 1);
	ck_assert_int_eq(conn_read(&c, buf, sizeof(buf)), 5);
	ck_assert_int_eq(conn_write(&c, "ok", 2), 2);
	ck_assert_int_eq(read(sv[1], buf, sizeof(buf)), 2);
	close(sv[1]);
	ck_assert_int_eq(conn_read(&c, buf, sizeof(buf)), 0);
	conn_end(&c);
	close(sv[0]);
}
END_TEST

/* The client side, in a child: handshake, send a line, read one. */
static void
tls_client_child(int fd)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	char buf[64];
	int n;

	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		_exit(2);
	if (SSL_write(ssl, "EHLO x\r\n", 8) != 8)
		_exit(3);
	n = SSL_read(ssl, buf, sizeof(buf));
	if (n != 5 || memcmp(buf, "250 \r", 5) != 0)
		_exit(4);
	SSL_shutdown(ssl);
	_exit(0);
}

START_TEST(test_tls_conn)
{
	struct ferry_config cfg;
	struct listener_config l;
	struct tls_server *ts;
	struct tls_info info;
	struct server_conn c;
	char err[1024], buf[64];
	int sv[2], status;
	ssize_t n = 0;
	pid_t pid;

	make_files();
	setup_cfg(&cfg, &l, cert_a, key_a);
	ts = tls_server_new(&cfg, &l, err, sizeof(err));
	ck_assert_msg(ts != NULL, "%s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		tls_client_child(sv[1]);
	}
	close(sv[1]);
	fd_set_nonblock(sv[0], 1);
	conn_init(&c, sv[0]);
	ck_assert_msg(conn_tls_accept(&c, ts, now_ms() + 5000, err,
	    sizeof(err)) == 0, "%s", err);
	conn_tls_info(&c, &info);
	ck_assert(strncmp(info.version, "TLSv1.", 6) == 0);
	ck_assert(info.cipher[0] != '\0');
	ck_assert_int_gt(info.bits, 0);
	ck_assert_int_eq(info.peer_cert, 0);
	while (n < 8) {
		ssize_t r = conn_read(&c, buf + n, sizeof(buf) - (size_t)n);

		if (r == CONN_AGAIN) {
			ck_assert_int_ge(conn_wait(&c, 5000), 0);
			continue;
		}
		ck_assert_int_gt(r, 0);
		n += r;
	}
	ck_assert(memcmp(buf, "EHLO x\r\n", 8) == 0);
	ck_assert_int_eq(conn_write(&c, "250 \r", 5), 5);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "client status %d", status);
	conn_end(&c);
	close(sv[0]);
	tls_server_free(ts);
	remove_files();
}
END_TEST

START_TEST(test_not_tls)
{
	struct ferry_config cfg;
	struct listener_config l;
	struct tls_server *ts;
	struct server_conn c;
	char err[1024];
	int sv[2];

	make_files();
	setup_cfg(&cfg, &l, cert_a, key_a);
	ts = tls_server_new(&cfg, &l, err, sizeof(err));
	ck_assert_ptr_nonnull(ts);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fd_set_nonblock(sv[0], 1);
	conn_init(&c, sv[0]);
	/* plain text where a ClientHello belongs */
	ck_assert_int_eq(write(sv[1], "EHLO plain.example\r\n", 20), 20);
	ck_assert_int_eq(conn_tls_accept(&c, ts, now_ms() + 2000, err,
	    sizeof(err)), -1);
	ck_assert_ptr_null(c.ssl);
	/* and a client that says nothing runs into the deadline */
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fd_set_nonblock(sv[0], 1);
	conn_init(&c, sv[0]);
	ck_assert_int_eq(conn_tls_accept(&c, ts, now_ms() + 200, err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "timed out") != NULL, "%s", err);
	close(sv[0]);
	close(sv[1]);
	tls_server_free(ts);
	remove_files();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tls_server");
	TCase *tc = tcase_create("tls_server");
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);   /* as in the worker: SSL writes with write() */
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_contexts);
	tcase_add_test(tc, test_plain_conn);
	tcase_add_test(tc, test_tls_conn);
	tcase_add_test(tc, test_not_tls);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
