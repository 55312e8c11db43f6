/*
 * check_deliver_proto.c - unit tests for queue/deliver_proto.c: round trips
 * of JOB, RCPT_RESULT and JOB_DONE, every truncation of each rejected,
 * leftover bytes rejected, and the limits on counts, enumerations and
 * string lengths; the hop key.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "deliver_proto.h"
#include "route_caps.h"
#include "ipc.h"
#include "smtp_parse.h"

static char *hosts2[] = { "smtp.example.net:587", "[192.0.2.1]:25" };

static struct deliver_rcpt rcpts2[] = {
	{ 7, "a@example.org", NOTIFY_SUCCESS | NOTIFY_FAILURE,
	  "rfc822;a@example.org" },
	{ 0xffffffff01ULL, "b@example.org", 0, "" },
};

static char *allowed2[] = { "@example.com", "alias@example.net" };

static void
sample_job(struct deliver_job *j)
{
	memset(j, 0, sizeof(*j));
	j->job_id = 0x123456789abcULL;
	j->last_job = 1;
	j->qid = "3F2A9C";
	j->sender = "s@example.com";
	j->size = 12345;
	j->body_type = BODY_8BITMIME;
	j->smtputf8 = 1;
	j->dsn_ret = RET_HDRS;
	j->envid = "QQ+2Bx";
	j->helo = "relay.example.com";
	j->route = "smarthost";
	j->domain = "example.org";
	j->hosts = hosts2;
	j->nhosts = 2;
	j->mx_port = 25;
	j->tls = TLS_VERIFY;
	j->ca_file = "/etc/ssl/ca.pem";
	j->tls_min_version = 0x0303;
	j->auth = 1;
	j->auth_plaintext = 0;
	j->rewrite_sender = "relay@example.com";
	j->rewrite_from = "account@example.com";
	j->allowed_from = allowed2;
	j->nallowed_from = 2;
	j->rcpts = rcpts2;
	j->nrcpts = 2;
	j->oauth_token = "ya29.access-token";
}

/* Encodes with enc into a malloc'd frame; *in points into it. */
static uint8_t *
frame_of(struct ipc_out *m, struct ipc_in *in)
{
	size_t len;
	const uint8_t *f = ipc_out_finish(m, &len);
	uint8_t *copy = malloc(len);

	memcpy(copy, f, len);
	ck_assert_int_eq(ipc_frame(copy, len, in), (long)len);
	return copy;
}

static uint8_t *
job_frame(const struct deliver_job *j, struct ipc_in *in)
{
	struct ipc_out m;
	uint8_t *f;

	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_JOB);
	deliver_job_encode(j, &m);
	f = frame_of(&m, in);
	ipc_out_free(&m);
	return f;
}

START_TEST(test_job_roundtrip)
{
	struct deliver_job j, d;
	struct ipc_in in;
	uint8_t *f;

	sample_job(&j);
	f = job_frame(&j, &in);
	ck_assert_int_eq(in.type, IMSG_JOB);
	ck_assert_int_eq(deliver_job_decode(&in, &d), 0);
	ck_assert(d.job_id == j.job_id);
	ck_assert_uint_eq(d.last_job, 1);
	ck_assert_str_eq(d.qid, "3F2A9C");
	ck_assert_str_eq(d.sender, "s@example.com");
	ck_assert(d.size == 12345);
	ck_assert_uint_eq(d.body_type, BODY_8BITMIME);
	ck_assert_uint_eq(d.smtputf8, 1);
	ck_assert_uint_eq(d.dsn_ret, RET_HDRS);
	ck_assert_str_eq(d.envid, "QQ+2Bx");
	ck_assert_str_eq(d.helo, "relay.example.com");
	ck_assert_str_eq(d.route, "smarthost");
	ck_assert_str_eq(d.domain, "example.org");
	ck_assert_uint_eq(d.nhosts, 2);
	ck_assert_str_eq(d.hosts[0], "smtp.example.net:587");
	ck_assert_str_eq(d.hosts[1], "[192.0.2.1]:25");
	ck_assert_uint_eq(d.mx_port, 25);
	ck_assert_uint_eq(d.tls, TLS_VERIFY);
	ck_assert_str_eq(d.ca_file, "/etc/ssl/ca.pem");
	ck_assert_uint_eq(d.tls_min_version, 0x0303);
	ck_assert_uint_eq(d.auth, 1);
	ck_assert_uint_eq(d.auth_plaintext, 0);
	ck_assert_str_eq(d.rewrite_sender, "relay@example.com");
	ck_assert_str_eq(d.rewrite_from, "account@example.com");
	ck_assert_uint_eq(d.nallowed_from, 2);
	ck_assert_str_eq(d.allowed_from[0], "@example.com");
	ck_assert_str_eq(d.allowed_from[1], "alias@example.net");
	ck_assert_uint_eq(d.nrcpts, 2);
	ck_assert(d.rcpts[0].id == 7);
	ck_assert_str_eq(d.rcpts[0].addr, "a@example.org");
	ck_assert_uint_eq(d.rcpts[0].notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	ck_assert_str_eq(d.rcpts[0].orcpt, "rfc822;a@example.org");
	ck_assert(d.rcpts[1].id == 0xffffffff01ULL);
	ck_assert_str_eq(d.rcpts[1].orcpt, "");
	ck_assert_str_eq(d.oauth_token, "ya29.access-token");
	deliver_job_free(&d);
	ck_assert_ptr_null(d.qid);
	free(f);

	/* no token: "" */
	j.oauth_token = NULL;
	f = job_frame(&j, &in);
	ck_assert_int_eq(deliver_job_decode(&in, &d), 0);
	ck_assert_str_eq(d.oauth_token, "");
	deliver_job_free(&d);
	free(f);
	j.oauth_token = "ya29.access-token";

	/* MX delivery: no hosts, null sender */
	j.hosts = NULL;
	j.nhosts = 0;
	j.sender = "";
	j.rewrite_sender = "";
	j.allowed_from = NULL;
	j.nallowed_from = 0;
	f = job_frame(&j, &in);
	ck_assert_int_eq(deliver_job_decode(&in, &d), 0);
	ck_assert_uint_eq(d.nhosts, 0);
	ck_assert_str_eq(d.rewrite_sender, "");
	ck_assert_uint_eq(d.nallowed_from, 0);
	ck_assert_str_eq(d.sender, "");
	deliver_job_free(&d);
	free(f);
	deliver_job_free(NULL);
}
END_TEST

START_TEST(test_job_truncations)
{
	struct deliver_job j, d;
	struct ipc_in in, t;
	uint8_t *f;
	size_t cut;

	sample_job(&j);
	f = job_frame(&j, &in);
	for (cut = 0; cut < in.left; cut++) {
		t = in;
		t.left = cut;
		ck_assert_msg(deliver_job_decode(&t, &d) < 0,
		    "truncated at %zu accepted", cut);
	}
	free(f);
}
END_TEST

START_TEST(test_job_leftover)
{
	struct deliver_job j, d;
	struct ipc_out m;
	struct ipc_in in;
	uint8_t *f;

	sample_job(&j);
	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_JOB);
	deliver_job_encode(&j, &m);
	ipc_add_u8(&m, 0);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_job_decode(&in, &d), -1);
	ipc_out_free(&m);
	free(f);
}
END_TEST

/* Encodes j and checks that it decodes (want 0) or not (want -1). */
static void
job_expect(const struct deliver_job *j, int want)
{
	struct deliver_job d;
	struct ipc_in in;
	uint8_t *f = job_frame(j, &in);
	int rc = deliver_job_decode(&in, &d);

	ck_assert_int_eq(rc, want);
	if (rc == 0)
		deliver_job_free(&d);
	free(f);
}

START_TEST(test_job_limits)
{
	struct deliver_job j;
	struct deliver_rcpt *many;
	char **hosts, *big;
	size_t i;

	sample_job(&j);
	j.tls = 4;
	job_expect(&j, -1);
	j.tls = TLS_NONE;
	job_expect(&j, 0);
	j.body_type = 3;
	job_expect(&j, -1);
	j.body_type = BODY_7BIT;
	j.dsn_ret = 3;
	job_expect(&j, -1);
	j.dsn_ret = RET_UNSPEC;
	j.smtputf8 = 2;
	job_expect(&j, -1);
	j.smtputf8 = 0;
	j.mx_port = 0;
	job_expect(&j, -1);
	j.mx_port = 65536;
	job_expect(&j, -1);
	j.mx_port = 25;
	j.size = -1;
	job_expect(&j, -1);
	j.size = 0;
	j.nrcpts = 0;
	job_expect(&j, -1);
	j.nrcpts = 2;
	rcpts2[1].notify = 0x10;
	job_expect(&j, -1);
	rcpts2[1].notify = NOTIFY_NEVER;
	job_expect(&j, 0);
	rcpts2[1].notify = 0;

	/* string lengths: 1024 is fine, 1025 is not */
	big = malloc(4200);
	memset(big, 'x', 4200);
	big[1024] = '\0';
	j.sender = big;
	job_expect(&j, 0);
	big[1024] = 'x';
	big[1025] = '\0';
	job_expect(&j, -1);
	j.sender = "s@example.com";
	rcpts2[0].addr = big;
	job_expect(&j, -1);
	rcpts2[0].addr = "";
	job_expect(&j, -1);
	rcpts2[0].addr = "a@example.org";
	big[4096] = '\0';
	big[1025] = 'x';
	j.ca_file = big;
	job_expect(&j, 0);
	big[4096] = 'x';
	big[4097] = '\0';
	job_expect(&j, -1);
	j.ca_file = "";
	free(big);

	/* host counts */
	hosts = calloc(JOB_MAX_HOSTS + 1, sizeof(*hosts));
	for (i = 0; i <= JOB_MAX_HOSTS; i++)
		hosts[i] = "h:25";
	j.hosts = hosts;
	j.nhosts = JOB_MAX_HOSTS;
	job_expect(&j, 0);
	j.nhosts = JOB_MAX_HOSTS + 1;
	job_expect(&j, -1);
	hosts[0] = "";
	j.nhosts = 1;
	job_expect(&j, -1);
	free(hosts);
	j.hosts = NULL;
	j.nhosts = 0;

	/* recipient counts */
	many = calloc(JOB_MAX_RCPTS + 1, sizeof(*many));
	for (i = 0; i <= JOB_MAX_RCPTS; i++) {
		many[i].id = i;
		many[i].addr = "r@example.org";
		many[i].orcpt = "";
	}
	j.rcpts = many;
	j.nrcpts = JOB_MAX_RCPTS;
	job_expect(&j, 0);
	j.nrcpts = JOB_MAX_RCPTS + 1;
	job_expect(&j, -1);
	free(many);
}
END_TEST

START_TEST(test_job_count_lie)
{
	/* a count far larger than the bytes behind it */
	struct deliver_job j, d;
	struct ipc_out m;
	struct ipc_in in;
	uint8_t *f;

	sample_job(&j);
	j.nrcpts = 0;   /* encode no rcpts, then claim many */
	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_JOB);
	deliver_job_encode(&j, &m);
	m.len -= 4;
	ipc_add_u32(&m, JOB_MAX_RCPTS);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_job_decode(&in, &d), -1);
	ipc_out_free(&m);
	free(f);
}
END_TEST

static uint8_t *
result_frame(const struct deliver_result *r, struct ipc_in *in)
{
	struct ipc_out m;
	uint8_t *f;

	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_RCPT_RESULT);
	deliver_result_encode(r, &m);
	f = frame_of(&m, in);
	ipc_out_free(&m);
	return f;
}

static void
result_expect(const struct deliver_result *r, int want)
{
	struct deliver_result d;
	struct ipc_in in;
	uint8_t *f = result_frame(r, &in);
	int rc = deliver_result_decode(&in, &d);

	ck_assert_int_eq(rc, want);
	if (rc == 0)
		deliver_result_free(&d);
	free(f);
}

START_TEST(test_result)
{
	struct deliver_result r = { 42, DS_DELIVERED, "2.0.0",
	    "250 2.0.0 Ok: queued as X", "mx.example.org[192.0.2.1]:25",
	    "TLSv1.3 TLS_AES_256_GCM_SHA384" }, d;
	struct ipc_in in, t;
	uint8_t *f;
	size_t cut;
	char *big;

	f = result_frame(&r, &in);
	ck_assert_int_eq(deliver_result_decode(&in, &d), 0);
	ck_assert(d.rcpt_id == 42);
	ck_assert_uint_eq(d.status, DS_DELIVERED);
	ck_assert_str_eq(d.dsn, "2.0.0");
	ck_assert_str_eq(d.reply, "250 2.0.0 Ok: queued as X");
	ck_assert_str_eq(d.relay, "mx.example.org[192.0.2.1]:25");
	ck_assert_str_eq(d.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
	deliver_result_free(&d);
	deliver_result_free(NULL);
	free(f);

	f = result_frame(&r, &in);
	for (cut = 0; cut < in.left; cut++) {
		t = in;
		t.left = cut;
		ck_assert(deliver_result_decode(&t, &d) < 0);
	}
	free(f);

	r.status = 3;
	result_expect(&r, -1);
	r.status = DS_FAILED;
	result_expect(&r, -1);     /* dsn class must match */
	r.dsn = "5.1.10";
	result_expect(&r, 0);
	r.dsn = "5.1.1000";
	result_expect(&r, -1);
	r.dsn = "5.1";
	result_expect(&r, -1);
	r.dsn = "";
	result_expect(&r, -1);
	r.status = DS_DEFERRED;
	r.dsn = "4.4.1";
	r.relay = "";
	result_expect(&r, -1);
	r.relay = "none";
	r.tls = "";
	result_expect(&r, 0);

	big = malloc(2100);
	memset(big, 'r', 2100);
	big[2048] = '\0';
	r.reply = big;
	result_expect(&r, 0);
	big[2048] = 'r';
	big[2049] = '\0';
	result_expect(&r, -1);
	free(big);
}
END_TEST

START_TEST(test_done)
{
	struct deliver_done dn = { 99, "smarthost:smtp.example.net:587", 1,
	    NULL, 0, "host a said: 451 4.7.1 rate limit",
	    1, RCAP_SIZE | RCAP_SMTPUTF8, 10485760 }, d;
	struct ipc_out m;
	struct ipc_in in, t;
	uint8_t *f;
	size_t cut;

	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), 0);
	ck_assert(d.job_id == 99);
	ck_assert_str_eq(d.hop, "smarthost:smtp.example.net:587");
	ck_assert_uint_eq(d.leaving, 1);
	ck_assert_str_eq(d.throttle, "host a said: 451 4.7.1 rate limit");
	ck_assert_uint_eq(d.caps_seen, 1);
	ck_assert_uint_eq(d.caps_flags, RCAP_SIZE | RCAP_SMTPUTF8);
	ck_assert(d.caps_size == 10485760);
	deliver_done_free(&d);
	deliver_done_free(NULL);
	free(f);
	f = frame_of(&m, &in);
	for (cut = 0; cut < in.left; cut++) {
		t = in;
		t.left = cut;
		ck_assert(deliver_done_decode(&t, &d) < 0);
	}
	free(f);
	ipc_add_u8(&m, 1);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), -1);
	free(f);
	ipc_out_free(&m);
	/* capability bits it does not know, a size without SIZE */
	dn.caps_flags = RCAP_ALL + 1;
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), -1);
	free(f);
	dn.caps_flags = RCAP_DSN;
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), -1);
	free(f);
	dn.caps_size = 0;
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), 0);
	ck_assert_uint_eq(d.caps_flags, RCAP_DSN);
	deliver_done_free(&d);
	free(f);
	ipc_out_free(&m);
}
END_TEST

/* JOB_DONE with what the agent found at each pool host, and PROBE. */
START_TEST(test_done_host_reports)
{
	struct deliver_host_report hr[2] = {
		{ "mx1.internal:25", 1, "connect to mx1.internal[10.0.0.1]:25: "
		    "Connection refused" },
		{ "mx2.internal:25", 0, "" } };
	struct deliver_done dn = { 7, "pool:mx2.internal:25", 0, hr, 2, "",
	    0, 0, 0 }, d;
	struct deliver_probe pr = { 8, "pool", "backup.internal:25",
	    "relay.example.com" }, p;
	struct ipc_out m;
	struct ipc_in in, t;
	uint8_t *f;
	size_t cut;

	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), 0);
	ck_assert_uint_eq(d.nhosts, 2);
	ck_assert_str_eq(d.hosts[0].host, "mx1.internal:25");
	ck_assert_uint_eq(d.hosts[0].outcome, 1);
	ck_assert_str_eq(d.hosts[0].error, hr[0].error);
	ck_assert_str_eq(d.hosts[1].host, "mx2.internal:25");
	ck_assert_uint_eq(d.hosts[1].outcome, 0);
	deliver_done_free(&d);
	free(f);
	f = frame_of(&m, &in);
	for (cut = 0; cut < in.left; cut++) {
		t = in;
		t.left = cut;
		ck_assert(deliver_done_decode(&t, &d) < 0);
	}
	free(f);
	/* an outcome out of range, an empty host name: lies */
	hr[1].outcome = DELIVER_HOST_OUTCOME_MAX + 1;
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), -1);
	free(f);
	hr[1].outcome = 0;
	hr[1].host = "";
	ipc_out_init(&m, IMSG_JOB_DONE);
	deliver_done_encode(&dn, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_done_decode(&in, &d), -1);
	free(f);

	ipc_out_init(&m, IMSG_PROBE);
	deliver_probe_encode(&pr, &m);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_probe_decode(&in, &p), 0);
	ck_assert(p.job_id == 8);
	ck_assert_str_eq(p.route, "pool");
	ck_assert_str_eq(p.host, "backup.internal:25");
	ck_assert_str_eq(p.helo, "relay.example.com");
	deliver_probe_free(&p);
	free(f);
	ipc_add_u8(&m, 1);
	f = frame_of(&m, &in);
	ck_assert_int_eq(deliver_probe_decode(&in, &p), -1);
	free(f);
	ipc_out_free(&m);
}
END_TEST

START_TEST(test_hop_key)
{
	struct deliver_job j;
	char key[256];

	sample_job(&j);
	deliver_hop_key(&j, key, sizeof(key));
	/* the host the runner chose, first: a connection kept to another
	 * host of the pool is not this job's */
	ck_assert_str_eq(key, "smarthost:smtp.example.net:587");
	{
		char *swapped[] = { "[192.0.2.1]:25", "smtp.example.net:587" };

		j.hosts = swapped;
		deliver_hop_key(&j, key, sizeof(key));
		ck_assert_str_eq(key, "smarthost:[192.0.2.1]:25");
		j.hosts = hosts2;
	}
	j.nhosts = 0;
	j.route = "mx";
	deliver_hop_key(&j, key, sizeof(key));
	ck_assert_str_eq(key, "mx:example.org:25");
	/* never overflows */
	j.nhosts = 2;
	deliver_hop_key(&j, key, 12);
	ck_assert_uint_eq(strlen(key), 11);
}
END_TEST

static Suite *
deliver_proto_suite(void)
{
	Suite *s = suite_create("deliver_proto");
	TCase *tc = tcase_create("job");

	tcase_add_test(tc, test_job_roundtrip);
	tcase_add_test(tc, test_job_truncations);
	tcase_add_test(tc, test_job_leftover);
	tcase_add_test(tc, test_job_limits);
	tcase_add_test(tc, test_job_count_lie);
	suite_add_tcase(s, tc);
	tc = tcase_create("results");
	tcase_add_test(tc, test_result);
	tcase_add_test(tc, test_done);
	tcase_add_test(tc, test_hop_key);
	tcase_add_test(tc, test_done_host_reports);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(deliver_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
