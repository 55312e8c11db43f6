/*
 * dkim_sign.c - CPU per DKIM signature: signs a 1 KiB message (the relay
 * benchmark's size) N times with a fresh RSA 2048 key, an Ed25519 key,
 * and both, through the signer the queue runner uses (dkim_msg_new, feed,
 * dkim_msg_sign), and prints the process CPU time per message.
 *
 *   make bench-dkim && tests/dkim-bench [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkim.h"

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct dkim_signing *
signing(struct dkim_key **keys, size_t n)
{
	static char *headers[] = { "From", "To", "Cc", "Subject", "Date",
	    "Message-ID", "MIME-Version", "Content-Type", "List-*" };
	struct dkim_signing *s = calloc(1, sizeof(*s));
	size_t i;

	s->signers = calloc(n, sizeof(*s->signers));
	for (i = 0; i < n; i++) {
		s->signers[i].name = strdup("bench");
		s->signers[i].domain = strdup("example.org");
		s->signers[i].selector = strdup(i == 0 ? "one" : "two");
		s->signers[i].key = keys[i];
	}
	s->nsigners = n;
	s->headers = calloc(9, sizeof(char *));
	for (i = 0; i < 9; i++)
		s->headers[i] = strdup(headers[i]);
	s->nheaders = 9;
	return s;
}

static double
run(struct dkim_signing *s, const char *msg, int n)
{
	double t0 = cpu_now();
	int i;

	for (i = 0; i < n; i++) {
		struct dkim_msg *m = dkim_msg_new();
		char why[256], *sig;

		dkim_msg_feed(m, msg, strlen(msg));
		sig = dkim_msg_sign(m, s, time(NULL), why, sizeof(why));
		if (sig == NULL) {
			fprintf(stderr, "not signed: %s\n", why);
			exit(1);
		}
		free(sig);
		dkim_msg_free(m);
	}
	return (cpu_now() - t0) / n;
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	char msg[2048], err[256], line[80];
	struct dkim_key *rsa, *ed, *both[2];
	struct dkim_signing *s;
	double t;
	size_t len;

	snprintf(msg, sizeof(msg), "From: <app@example.org>\r\n"
	    "To: <rcpt@example.com>\r\nSubject: benchmark\r\n"
	    "Date: Sun, 6 Dec 2026 04:00:00 +0000\r\n"
	    "Message-ID: <bench@example.org>\r\n\r\n");
	memset(line, 'x', 78);
	line[78] = '\0';
	while ((len = strlen(msg)) + 80 < 1024 + 200)
		snprintf(msg + len, sizeof(msg) - len, "%s\r\n", line);
	rsa = dkim_key_generate(DKIM_RSA_SHA256, 2048, err, sizeof(err));
	ed = dkim_key_generate(DKIM_ED25519_SHA256, 0, err, sizeof(err));
	if (rsa == NULL || ed == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%d signatures of a %zu-byte message each\n", n, strlen(msg));
	both[0] = rsa;
	s = signing(both, 1);
	t = run(s, msg, n);
	printf("rsa-sha256 (2048 bits): %7.1f us CPU per message\n", t * 1e6);
	both[0] = ed;
	s = signing(both, 1);
	t = run(s, msg, n * 5);
	printf("ed25519-sha256:         %7.1f us CPU per message\n", t * 1e6);
	both[0] = rsa;
	both[1] = ed;
	s = signing(both, 2);
	t = run(s, msg, n);
	printf("both (two signatures):  %7.1f us CPU per message\n", t * 1e6);
	return 0;
}
