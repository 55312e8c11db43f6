/*
 * check_metrics.c - the metrics endpoint's pure parts: the HTTP request
 * head parser (src/http_request.c), the Prometheus text pieces and
 * histograms (src/metrics_text.c) and the runner's snapshot
 * (queue/metrics_snapshot.c).
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics_snapshot.h"
#include "stall.h"
#include "metrics_text.h"
#include "smtp_reply.h"
#include "store_health.h"
#include "worker_counters.h"

static enum http_parse
parse(const char *s, struct http_request *req)
{
	return http_parse_head(s, strlen(s), req);
}

START_TEST(test_request_line)
{
	struct http_request req;

	ck_assert_int_eq(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
	    &req), HTTP_COMPLETE);
	ck_assert_str_eq(req.method, "GET");
	ck_assert_str_eq(req.path, "/metrics");
	ck_assert_int_eq(req.minor, 1);
	ck_assert_uint_eq(req.head_len, 34);
	/* the query is not part of the path; LF alone ends a head too */
	ck_assert_int_eq(parse("HEAD /readyz?verbose=1 HTTP/1.0\n\n", &req),
	    HTTP_COMPLETE);
	ck_assert_str_eq(req.method, "HEAD");
	ck_assert_str_eq(req.path, "/readyz");
	ck_assert_int_eq(req.minor, 0);
	/* other methods parse: the server answers them 405 */
	ck_assert_int_eq(parse("DELETE /metrics HTTP/1.1\r\n\r\n", &req),
	    HTTP_COMPLETE);
	ck_assert_str_eq(req.method, "DELETE");
}
END_TEST

START_TEST(test_request_incomplete_and_bad)
{
	struct http_request req;
	char long_path[HTTP_PATH_MAX + 64];

	ck_assert_int_eq(parse("", &req), HTTP_INCOMPLETE);
	ck_assert_int_eq(parse("GET /metrics HTTP/1.1\r\n", &req),
	    HTTP_INCOMPLETE);
	ck_assert_int_eq(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n\r",
	    &req), HTTP_INCOMPLETE);
	ck_assert_int_eq(parse("\r\n\r\n", &req), HTTP_BAD);
	ck_assert_int_eq(parse("GET metrics HTTP/1.1\r\n\r\n", &req),
	    HTTP_BAD);
	ck_assert_int_eq(parse("GET /metrics\r\n\r\n", &req), HTTP_BAD);
	ck_assert_int_eq(parse("GET  /metrics HTTP/1.1\r\n\r\n", &req),
	    HTTP_BAD);
	ck_assert_int_eq(parse("G(T /metrics HTTP/1.1\r\n\r\n", &req),
	    HTTP_BAD);
	ck_assert_int_eq(parse("GET /met\x7frics HTTP/1.1\r\n\r\n", &req),
	    HTTP_BAD);
	ck_assert_int_eq(parse("GET /metrics HTTP/1.1 x\r\n\r\n", &req),
	    HTTP_BAD);
	ck_assert_int_eq(parse("GET /metrics SMTP/1.1\r\n\r\n", &req),
	    HTTP_BAD);
	ck_assert_int_eq(parse("GETTINGLONGERTHANSIXTEEN / HTTP/1.1\r\n\r\n",
	    &req), HTTP_BAD);
	ck_assert_int_eq(parse("GET /metrics HTTP/2.0\r\n\r\n", &req),
	    HTTP_BAD_VERSION);
	ck_assert_int_eq(parse("GET /metrics HTTP/1.2\r\n\r\n", &req),
	    HTTP_BAD_VERSION);
	memset(long_path, 'a', sizeof(long_path));
	memcpy(long_path, "GET /", 5);
	strcpy(long_path + HTTP_PATH_MAX + 10, " HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(parse(long_path, &req), HTTP_TOO_LONG_URI);
}
END_TEST

START_TEST(test_label_escaping)
{
	struct mtext t;

	mtext_init(&t);
	mtext_label(&t, "a\"b\\c\nd\001e\xc3\xa9");
	ck_assert_str_eq(t.buf, "a\\\"b\\\\c\\nde");
	mtext_free(&t);
}
END_TEST

START_TEST(test_histogram)
{
	static const double bounds[] = { 1, 5, 10 };
	struct histogram h;
	struct mtext t;

	histogram_init(&h, bounds, 3);
	histogram_observe(&h, 0.5);
	histogram_observe(&h, 1);
	histogram_observe(&h, 7);
	histogram_observe(&h, 100);
	mtext_init(&t);
	mtext_histogram(&t, "x", &h);
	ck_assert_str_eq(t.buf,
	    "x_bucket{le=\"1\"} 2\n"
	    "x_bucket{le=\"5\"} 2\n"
	    "x_bucket{le=\"10\"} 3\n"
	    "x_bucket{le=\"+Inf\"} 4\n"
	    "x_sum 108.500000\n"
	    "x_count 4\n");
	mtext_free(&t);
}
END_TEST

START_TEST(test_snapshot)
{
	static const double b[] = { 1 };
	struct histogram batch, secs;
	struct sched_metrics d;
	struct metrics_snapshot m;
	struct mtext t;

	histogram_init(&batch, b, 1);
	histogram_init(&secs, b, 1);
	memset(&d, 0, sizeof(d));
	histogram_init(&d.delivery_seconds, b, 1);
	d.nroutes = 1;
	strcpy(d.routes[0].route, "smart\"host");
	d.routes[0].by_status[STATUS_SENT] = 7;
	d.routes[0].by_status[STATUS_DEFERRED] = 2;
	memset(&m, 0, sizeof(m));
	m.messages_accepted = 9;
	m.commit_batch = &batch;
	m.commit_seconds = &secs;
	m.deliveries = &d;
	m.queue_known = 1;
	m.queue_active = 3;
	m.oldest_age = -1;
	m.workers_total = 2;
	m.store_open = 1;
	m.store_state = QUEUE_STATE_OK;
	m.ready = 1;
	mtext_init(&t);
	metrics_snapshot_write(&t, &m);
	ck_assert_ptr_nonnull(strstr(t.buf, "\nferry_ready 1\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_messages_accepted_total 9\n"));
	ck_assert_ptr_nonnull(strstr(t.buf, "\nferry_deliveries_total{route="
	    "\"smart\\\"host\",status=\"sent\"} 7\n"));
	ck_assert_ptr_nonnull(strstr(t.buf, "\nferry_deliveries_total{route="
	    "\"smart\\\"host\",status=\"deferred\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_queue_messages{state=\"active\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_queue_oldest_message_age_seconds 0\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_store_state{state=\"ok\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_store_state{state=\"failing\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(t.buf, "\nferry_workers 2\n"));
	/* no stall figure yet: no stall family */
	ck_assert_ptr_null(strstr(t.buf, "ferry_queue_stalled"));
	mtext_free(&t);
	/* stalled by age, not for want of deliveries */
	m.stall_known = 1;
	m.stall_reasons = STALL_AGE;
	mtext_init(&t);
	metrics_snapshot_write(&t, &m);
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\n# TYPE ferry_queue_stalled gauge\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_queue_stalled{reason=\"age\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_queue_stalled{reason=\"stall\"} 0\n"));
	mtext_free(&t);
	m.stall_known = 0;
	/* a closed store: failing, not ready */
	m.store_open = 0;
	m.ready = 0;
	m.deliveries = NULL;
	mtext_init(&t);
	metrics_snapshot_write(&t, &m);
	ck_assert_ptr_nonnull(strstr(t.buf, "ferry_ready 0\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_store_state{state=\"failing\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t.buf,
	    "\nferry_store_state{state=\"ok\"} 0\n"));
	mtext_free(&t);
}
END_TEST

/* A frame as a worker writes it, read back as the master would. */
static int
take_frame(struct wc_totals *t, struct ipc_out *m)
{
	const uint8_t *buf;
	struct ipc_in in;
	size_t len;
	long n;

	buf = ipc_out_finish(m, &len);
	n = ipc_frame(buf, len, &in);
	ck_assert_int_eq(n, (long)len);
	ck_assert_int_eq(in.type, IMSG_WORKER_COUNTERS);
	return wc_totals_take(t, &in);
}

START_TEST(test_worker_counters)
{
	static const char *const names[] = { "mx", "sub\"mission" };
	struct wc_totals t;
	struct ipc_out m;
	struct mtext text;
	int i;

	memset(&t, 0, sizeof(t));
	memset(&m, 0, sizeof(m));   /* ipc_out_init keeps a buffer it has */
	ck_assert_int_eq(wcount_pending(), 0);
	for (i = 0; i < 3; i++)
		wcount_reply(R_RELAY_DENIED);
	wcount_reply(R_SIZE_EXCEEDED);
	wcount_reply(R_AUTH_FAILED);
	wcount_reply(R_AUTH_OK);
	wcount_reply(R_MESSAGE_RATE);
	wcount_reply(R_DATA_BARE_NEWLINE);
	wcount_reply(R_SYNTAX_MAIL);
	wcount_reply(R_RCPT_OK);          /* not a rejection */
	wcount_tls_in("TLSv1.3");
	wcount_tls_in("TLSv1.2");
	wcount_tls_in("SSLv3");
	wcount_conn(1, WC_CONN_ACCEPTED);
	wcount_conn(1, WC_CONN_ACCEPTED);
	wcount_conn(0, WC_CONN_TLS_FAILED);
	wcount_conn(WC_LISTENERS, WC_CONN_ACCEPTED);   /* ignored */
	ck_assert_int_eq(wcount_pending(), 1);
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);
	wcount_frame(&m);
	ck_assert_int_eq(wcount_pending(), 0);
	ck_assert_int_eq(take_frame(&t, &m), 0);
	ipc_out_free(&m);
	ck_assert_uint_eq(t.other[WC_REJECT_RELAY], 3);
	ck_assert_uint_eq(t.other[WC_REJECT_SIZE], 1);
	ck_assert_uint_eq(t.other[WC_REJECT_AUTH], 1);
	ck_assert_uint_eq(t.other[WC_REJECT_RATE], 1);
	ck_assert_uint_eq(t.other[WC_REJECT_SMUGGLING], 1);
	ck_assert_uint_eq(t.other[WC_REJECT_SYNTAX], 1);
	ck_assert_uint_eq(t.other[WC_AUTH_SUCCESS], 1);
	ck_assert_uint_eq(t.other[WC_AUTH_FAILURE], 1);
	ck_assert_uint_eq(t.other[WC_ANVIL_MESSAGE_RATE], 1);
	ck_assert_uint_eq(t.other[WC_TLS_IN_1_3], 1);
	ck_assert_uint_eq(t.other[WC_TLS_IN_1_2], 1);
	ck_assert_uint_eq(t.other[WC_TLS_IN_OTHER], 1);
	ck_assert_uint_eq(t.conn[1][WC_CONN_ACCEPTED], 2);
	ck_assert_uint_eq(t.conn[0][WC_CONN_TLS_FAILED], 1);
	/* an empty frame adds nothing */
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);
	wcount_frame(&m);
	ck_assert_int_eq(take_frame(&t, &m), 0);
	ipc_out_free(&m);
	ck_assert_uint_eq(t.other[WC_REJECT_RELAY], 3);

	mtext_init(&text);
	wc_totals_write(&text, &t, names, 2);
	ck_assert_ptr_nonnull(strstr(text.buf, "\nferry_connections_total{"
	    "listener=\"sub\\\"mission\",outcome=\"accepted\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text.buf, "\nferry_connections_total{"
	    "listener=\"mx\",outcome=\"tls_failed\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text.buf,
	    "\nferry_rejections_total{reason=\"relay_denied\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text.buf,
	    "\nferry_tls_in_total{version=\"TLSv1.3\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text.buf,
	    "\nferry_auth_total{result=\"failure\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text.buf, "\nferry_anvil_limit_hits_total"
	    "{limit=\"message_rate\"} 1\n"));
	mtext_free(&text);

	/* lies: nothing is added from a frame that does not decode */
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);    /* listener out of range */
	ipc_add_u32(&m, 1);
	ipc_add_u8(&m, WC_LISTENERS);
	ipc_add_u8(&m, WC_CONN_ACCEPTED);
	ipc_add_u64(&m, 5);
	ipc_add_u32(&m, 0);
	ck_assert_int_eq(take_frame(&t, &m), -1);
	ipc_out_free(&m);
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);    /* counter out of range */
	ipc_add_u32(&m, 0);
	ipc_add_u32(&m, 2);
	ipc_add_u8(&m, WC_REJECT_RELAY);
	ipc_add_u64(&m, 5);
	ipc_add_u8(&m, WC_MAX);
	ipc_add_u64(&m, 5);
	ck_assert_int_eq(take_frame(&t, &m), -1);
	ipc_out_free(&m);
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);    /* a delta too large */
	ipc_add_u32(&m, 0);
	ipc_add_u32(&m, 1);
	ipc_add_u8(&m, WC_REJECT_RELAY);
	ipc_add_u64(&m, UINT64_MAX);
	ck_assert_int_eq(take_frame(&t, &m), -1);
	ipc_out_free(&m);
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);    /* the same one twice */
	ipc_add_u32(&m, 0);
	ipc_add_u32(&m, 2);
	ipc_add_u8(&m, WC_REJECT_RELAY);
	ipc_add_u64(&m, 1);
	ipc_add_u8(&m, WC_REJECT_RELAY);
	ipc_add_u64(&m, 1);
	ck_assert_int_eq(take_frame(&t, &m), -1);
	ipc_out_free(&m);
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);    /* a count past its list */
	ipc_add_u32(&m, 0);
	ipc_add_u32(&m, 3);
	ipc_add_u8(&m, WC_REJECT_RELAY);
	ipc_add_u64(&m, 1);
	ck_assert_int_eq(take_frame(&t, &m), -1);
	ipc_out_free(&m);
	ipc_out_init(&m, IMSG_WORKER_COUNTERS);    /* a byte left over */
	ipc_add_u32(&m, 0);
	ipc_add_u32(&m, 0);
	ipc_add_u8(&m, 0);
	ck_assert_int_eq(take_frame(&t, &m), -1);
	ipc_out_free(&m);
	ck_assert_uint_eq(t.other[WC_REJECT_RELAY], 3);
	ck_assert_uint_eq(t.conn[WC_LISTENERS - 1][WC_CONN_ACCEPTED], 0);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_request_line);
	tcase_add_test(tc, test_request_incomplete_and_bad);
	tcase_add_test(tc, test_label_escaping);
	tcase_add_test(tc, test_histogram);
	tcase_add_test(tc, test_snapshot);
	tcase_add_test(tc, test_worker_counters);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	log_init("check_metrics", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
