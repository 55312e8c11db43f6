/*
 * make_seeds.c - writes the seed corpora of the fuzz harnesses:
 * tests/fuzz/corpus/<harness>/seed-*.  The files are committed; run this
 * again (make fuzz-seeds) after changing it.  Files named regress-* are
 * crash reproducers added by hand and are left alone.
 *
 * Text seeds are real SMTP lines, DATA streams and server replies with
 * their edge cases; the IPC seeds are frames built by the daemons' own
 * encoders, so they have the byte layout the decoders expect.
 *
 *   make_seeds [corpus-dir]
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deliver_proto.h"
#include "envelope.h"
#include "ipc.h"
#include "smtp_parse.h"

static const char *corpus = "tests/fuzz/corpus";

static void
mkdir_p(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		perror(dir);
		exit(1);
	}
}

static void
put(const char *harness, const char *name, const void *p, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", corpus, harness);
	mkdir_p(path);
	snprintf(path, sizeof(path), "%s/%s/seed-%s", corpus, harness, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- SMTP command lines (no CRLF) and addresses ------------------------ */

static const char *const commands[] = {
	"EHLO client.example.org",
	"HELO [192.0.2.1]",
	"ehlo [IPv6:2001:db8::1]   ",
	"EHLO b\xc3\xbc\x63her.example",
	"MAIL FROM:<alice@example.org>",
	"MAIL FROM:<> SIZE=1024 BODY=8BITMIME",
	"MAIL FROM:<\"john doe\"@example.org> RET=HDRS ENVID=QQ314159+2B",
	"mail from: <@relay.example,@[198.51.100.7]:bob@example.com>",
	"MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc\x63her.example> SMTPUTF8 BODY=8BITMIME",
	"MAIL FROM:<a@b> SIZE=99999999999999999999",
	"MAIL FROM:<a@b> SIZE=1 SIZE=2",
	"MAIL FROM:<a@b> X-UNKNOWN=1",
	"MAIL FROM:<\"a>b\\\"c\"@example.org>",
	"MAIL FROM:alice@example.org",
	"MAIL FROM :<alice@example.org>",
	"RCPT TO:<bob@example.com>",
	"RCPT TO:<Postmaster>",
	"RCPT TO:<postmaster@example.com> NOTIFY=SUCCESS,FAILURE,DELAY",
	"RCPT TO:<bob@example.com> NOTIFY=NEVER ORCPT=rfc822;bob+40example.com",
	"RCPT TO:<bob@example.com> ORCPT=utf-8;j\\x{F6}rg@example.com",
	"RCPT TO:<a@[IPv6:::1]> NOTIFY=NEVER,SUCCESS",
	"RCPT TO:<>",
	"rcpt to:<x@tag-x:some.literal>",
	"BDAT 1000",
	"BDAT 0 LAST",
	"bdat 18446744073709551616 last",
	"DATA",
	"RSET",
	"NOOP ignored argument",
	"QUIT",
	"STARTTLS",
	"AUTH PLAIN AGFsaWNlAHNlY3JldA==",
	"VRFY postmaster",
	"HELP",
	"",
	"MAIL FROM:<a@b.example> AUTH=<>",
	"MAIL FROM:<a@b.example> AUTH=user+40example.com SIZE=10",
};

static const char *const addresses[] = {
	"alice@example.org",
	"first.last+tag@sub.example.co.uk",
	"\"john doe\"@example.org",
	"\"a\\\"b\"@example.org",
	"user@[192.0.2.1]",
	"user@[IPv6:2001:db8::1]",
	"user@[x-tag:free text]",
	"j\xc3\xb6rg@b\xc3\xbc\x63her.example",
	"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
	"a..b@example.org",
	".a@example.org",
	"a@-example.org",
	"a@example.org.",
	"a@[300.1.1.1]",
	"a@[1.2.3]",
	"0123456789012345678901234567890123456789012345678901234567890123@x.y",
	"\xc0\xaf@example.org",
	"\xed\xa0\x80@example.org",
	"example.org",
	"[127.0.0.1]",
	"a-b.c-d.example",
};

/* ---- DATA / BDAT streams ------------------------------------------------ */

struct stream {
	const char *name;
	int bdat;
	unsigned max_line;          /* 0..127 */
	const char *cuts;           /* three bytes */
	const char *text;
};

static const struct stream streams[] = {
	{ "dot-simple", 0, 0, "\x20\x80\xe0",
	  "Subject: hi\r\n\r\nHello.\r\n.\r\n" },
	{ "dot-stuffed", 0, 78, "\x10\x50\x90",
	  "From: a@b\r\n\r\n..leading dot\r\n.\r\n..\r\n.\r\n" },
	{ "dot-bare-lf", 0, 0, "\x40\x41\x42",
	  "line one\nline two\r\n.\r\n" },
	{ "dot-smuggle-lf", 0, 0, "\x05\x30\x60",
	  "text\r\n\n.\nMAIL FROM:<evil@x>\r\n" },
	{ "dot-smuggle-crlf", 0, 0, "\x05\x30\x60",
	  "text\n.\r\nRCPT TO:<v@x>\r\n.\r\n" },
	{ "dot-smuggle-cr", 0, 0, "\x05\x30\x60",
	  "text\r.\rDATA\r\n.\r\n" },
	{ "dot-bare-cr", 0, 10, "\x01\x02\x03",
	  "a\rb\r\n.\r\n" },
	{ "dot-long-line", 0, 8, "\x30\x60\x90",
	  "0123456789abcdef\r\nok\r\n.\r\n" },
	{ "dot-split-end", 0, 0, "\xd0\xe8\xf4",
	  "body\r\n.\r\ntrailing pipelined QUIT\r\n" },
	{ "dot-empty", 0, 0, "\x00\x00\x00", ".\r\n" },
	{ "dot-unterminated", 0, 0, "\x55\xaa\xff", "no end here\r\n." },
	{ "dot-dotcr-other", 0, 0, "\x10\x20\x30", "x\r\n.\rz\r\n.\r\n" },
	{ "bdat-simple", 1, 0, "\x40\x80\xc0", "Subject: x\r\n\r\nbody\r\n" },
	{ "bdat-no-final-crlf", 1, 0, "\x40\x80\xc0", "Subject: x\r\n\r\nbody" },
	{ "bdat-dots-kept", 1, 0, "\x20\x40\x60", ".\r\n..\r\n.x\r\n" },
	{ "bdat-bare-lf", 1, 0, "\x20\x40\x60", "a\nb\r\n" },
	{ "bdat-trailing-cr", 1, 0, "\x20\x40\xff", "a\r\nb\r" },
	{ "bdat-long", 1, 5, "\x10\x20\x30", "123456\r\n12\r\n" },
	{ "bdat-crcrlf", 1, 3, "\x80\x80\x80", "\r\r\n\r\n" },
	{ "bdat-empty", 1, 0, "\x00\x00\x00", "" },
};

/* ---- server replies ----------------------------------------------------- */

struct reply {
	const char *name;
	unsigned char step, max_line;
	const char *text;
};

static const struct reply replies[] = {
	{ "greeting", 64, 14, "220 mx.example.net ESMTP ready\r\n" },
	{ "ehlo", 7, 14,
	  "250-mx.example.net Hello [192.0.2.1]\r\n250-PIPELINING\r\n"
	  "250-SIZE 35882577\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
	  "250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-AUTH=LOGIN PLAIN\r\n"
	  "250-DSN\r\n250-SMTPUTF8\r\n250 STARTTLS\r\n" },
	{ "ehlo-bare", 1, 14, "250-x\r\n250 SIZE\r\n" },
	{ "rcpt-5xx", 3, 14,
	  "550-5.1.1 The email account that you tried to reach does\r\n"
	  "550-5.1.1 not exist. Please try double-checking the\r\n"
	  "550 5.1.1 recipient's email address.\r\n" },
	{ "pipelined", 5, 14,
	  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Too many recipients\r\n"
	  "354 End data with <CR><LF>.<CR><LF>\r\n" },
	{ "code-only", 2, 14, "250\r\n" },
	{ "esc-wrong-class", 9, 14, "451 5.7.1 mixed\r\n" },
	{ "codes-differ", 4, 14, "250-first\r\n251 second\r\n" },
	{ "bare-lf", 4, 14, "250 ok\n" },
	{ "bare-cr", 4, 14, "250 o\rk\r\n" },
	{ "no-code", 4, 14, "hello\r\n" },
	{ "bad-sep", 4, 14, "250_ok\r\n" },
	{ "partial", 4, 14, "250-part\r\n250" },
	{ "unprintable", 16, 14, "421 4.3.2 \x01\x7f\xff bye\r\n" },
	{ "long-line-512", 64, 0, NULL },   /* built below */
};

/* ---- IPC frames --------------------------------------------------------- */

static void
put_frame(const char *name, struct ipc_out *m)
{
	size_t len;
	const uint8_t *p = ipc_out_finish(m, &len);

	put("fuzz_ipc", name, p, len);
	ipc_out_free(m);
}

static void
ipc_seeds(void)
{
	struct ipc_out m = { 0 };
	struct envelope e;
	struct deliver_job j;
	struct deliver_rcpt jr[2];
	char *hosts[2] = { "smtp.example.net:587", "[192.0.2.25]:25" };
	char *allowed[1] = { "@example.com" };
	struct deliver_result r;
	struct deliver_done d;
	static const uint8_t chunk[] = "Subject: x\r\n\r\nbody\r\n";

	envelope_init(&e);
	e.sender = "alice@example.org";
	e.client_addr = "192.0.2.1";
	e.client_name = "client.example.org";
	e.helo = "client.example.org";
	e.protocol = "ESMTP";
	e.auth_user = "";
	e.received_at_us = 1700000000123456LL;
	e.size_declared = 2048;
	e.body_type = BODY_8BITMIME;
	e.dsn_ret = RET_HDRS;
	e.dsn_envid = "QQ314159";
	envelope_add_rcpt(&e, "bob@example.com", NOTIFY_FAILURE | NOTIFY_DELAY,
	    "rfc822;bob@example.com");
	envelope_add_rcpt(&e, "Postmaster", 0, "");
	ipc_out_init(&m, IMSG_TX_BEGIN);
	envelope_encode(&e, &m);
	put_frame("tx-begin", &m);
	/* envelope_free would free the literals above: only the rcpts */
	free(e.rcpts[0].addr); free(e.rcpts[0].orcpt);
	free(e.rcpts[1].addr); free(e.rcpts[1].orcpt);
	free(e.rcpts);

	ipc_out_init(&m, IMSG_TX_DATA);
	ipc_add_u32(&m, 0);
	ipc_add_data(&m, chunk, sizeof(chunk) - 1);
	put_frame("tx-data", &m);
	ipc_out_init(&m, IMSG_TX_COMMIT);
	ipc_add_u64(&m, sizeof(chunk) - 1);
	put_frame("tx-commit", &m);
	ipc_out_init(&m, IMSG_TX_ABORT);
	put_frame("tx-abort", &m);
	ipc_out_init(&m, IMSG_TX_BEGUN);
	ipc_add_str(&m, "3F2A9C");
	put_frame("tx-begun", &m);
	ipc_out_init(&m, IMSG_TX_FAIL);
	ipc_add_str(&m, "queue file write error");
	put_frame("tx-fail", &m);
	ipc_out_init(&m, IMSG_AGENT_HELLO);
	ipc_add_u32(&m, 4242);
	put_frame("agent-hello", &m);

	memset(&j, 0, sizeof(j));
	j.job_id = 77;
	j.qid = "3F2A9C";
	j.sender = "";
	j.size = 4096;
	j.body_type = BODY_7BIT;
	j.smtputf8 = 1;
	j.dsn_ret = RET_FULL;
	j.envid = "";
	j.helo = "mx.ferry.example";
	j.route = "smarthost";
	j.domain = "example.com";
	j.hosts = hosts;
	j.nhosts = 2;
	j.mx_port = 25;
	j.tls = 1;
	j.ca_file = "/etc/ssl/certs/ca.pem";
	j.tls_min_version = 0x0303;
	j.auth = 1;
	j.rewrite_sender = "relay@example.com";
	j.rewrite_from = "relay@example.com";
	j.allowed_from = allowed;
	j.nallowed_from = 1;
	jr[0].id = 1;
	jr[0].addr = "bob@example.com";
	jr[0].notify = NOTIFY_SUCCESS;
	jr[0].orcpt = "rfc822;bob@example.com";
	jr[1].id = 2;
	jr[1].addr = "carol@example.com";
	jr[1].notify = 0;
	jr[1].orcpt = "";
	j.rcpts = jr;
	j.nrcpts = 2;
	ipc_out_init(&m, IMSG_JOB);
	deliver_job_encode(&j, &m);
	put_frame("job-smarthost", &m);
	j.route = "mx";
	j.nhosts = 0;
	j.hosts = NULL;
	j.nrcpts = 1;
	ipc_out_init(&m, IMSG_JOB);
	deliver_job_encode(&j, &m);
	put_frame("job-mx", &m);

	ipc_out_init(&m, IMSG_JOB_DATA);
	ipc_add_u32(&m, 3);
	ipc_add_data(&m, chunk, sizeof(chunk) - 1);
	put_frame("job-data", &m);
	ipc_out_init(&m, IMSG_JOB_END);
	put_frame("job-end", &m);

	r.rcpt_id = 1;
	r.status = DS_FAILED;
	r.dsn = "5.1.1";
	r.reply = "550 5.1.1 user unknown";
	r.relay = "mx.example.com[203.0.113.5]:25";
	r.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
	ipc_out_init(&m, IMSG_RCPT_RESULT);
	deliver_result_encode(&r, &m);
	put_frame("rcpt-result", &m);
	r.status = DS_DEFERRED;
	r.dsn = "4.4.1";
	r.reply = "connect to mx.example.com: Connection refused";
	r.relay = "none";
	r.tls = "";
	ipc_out_init(&m, IMSG_RCPT_RESULT);
	deliver_result_encode(&r, &m);
	put_frame("rcpt-result-deferred", &m);

	memset(&d, 0, sizeof(d));
	d.job_id = 77;
	d.hop = "smarthost:smtp.example.net:587";
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&d, &m);
	put_frame("job-done", &m);
	d.hop = "";
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&d, &m);
	put_frame("job-done-closed", &m);
	{
		struct deliver_host_report hr[2] = {
			{ "mx1.internal:25", 1, "connect to mx1.internal"
			    "[10.0.0.1]:25: Connection refused" },
			{ "mx2.internal:25", 0, "" } };
		struct deliver_probe pr = { 9, "pool", "mx1.internal:25",
		    "relay.example.com" };

		d.hop = "pool:mx2.internal:25";
		d.hosts = hr;
		d.nhosts = 2;
		ipc_out_init(&m, IMSG_JOB_DONE);
		deliver_done_encode(&d, &m);
		put_frame("job-done-pool-hosts", &m);
		d.hosts = NULL;
		d.nhosts = 0;
		ipc_out_init(&m, IMSG_PROBE);
		deliver_probe_encode(&pr, &m);
		put_frame("probe", &m);
	}
	/* with what the upstream offered in its EHLO (route_caps.h) */
	d.hop = "big:[192.0.2.2]:25";
	d.caps_seen = 1;
	d.caps_flags = 0x1f;       /* RCAP_ALL */
	d.caps_size = 10485760;
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&d, &m);
	put_frame("job-done-caps", &m);
}

int
main(int argc, char **argv)
{
	char name[64], buf[4096];
	size_t i;

	if (argc > 1)
		corpus = argv[1];
	mkdir_p(corpus);

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		snprintf(name, sizeof(name), "%02zu", i);
		put("fuzz_smtp_command", name, commands[i],
		    strlen(commands[i]));
	}
	for (i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
		snprintf(name, sizeof(name), "%02zu", i);
		put("fuzz_address", name, addresses[i], strlen(addresses[i]));
	}
	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		const struct stream *s = &streams[i];
		size_t n = strlen(s->text);

		buf[0] = (char)((s->max_line << 1) | (s->bdat ? 1 : 0));
		memcpy(buf + 1, s->cuts, 3);
		memcpy(buf + 4, s->text, n);
		put("fuzz_data_scanner", s->name, buf, n + 4);
	}
	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		const struct reply *r = &replies[i];
		size_t n;

		buf[0] = (char)(r->step - 1);
		buf[1] = (char)r->max_line;
		if (r->text != NULL) {
			n = strlen(r->text);
			memcpy(buf + 2, r->text, n);
		} else {
			/* one line of exactly 512 bytes with CRLF, then 513 */
			memcpy(buf + 2, "250 ", 4);
			memset(buf + 6, 'x', 506);
			memcpy(buf + 512, "\r\n", 2);
			memcpy(buf + 514, "250 ", 4);
			memset(buf + 518, 'y', 507);
			memcpy(buf + 1025, "\r\n", 2);
			n = 1025;
		}
		put("fuzz_client_reply", r->name, buf, n + 2);
	}
	ipc_seeds();
	return 0;
}
