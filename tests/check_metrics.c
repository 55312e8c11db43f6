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
#include "metrics_text.h"
#include "store_health.h"

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
	mtext_free(&t);
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
