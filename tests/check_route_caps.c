/*
 * check_route_caps.c - the routes' upstream capabilities and the
 * session's decisions from them (src/route_caps.c): RCPT refused for a
 * SIZE over the route's, SMTPUTF8 or 8BITMIME it does not offer; MAIL
 * refused only when no route could take the declared size; the data
 * refused only when every recipient's route is too small; the SIZE
 * advertised; unknown routes and MX delivery always accepted; and the
 * runner's note encoded and decoded strictly.
 */
#include "autoconfig.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ipc.h"
#include "log.h"
#include "route_caps.h"

#define P "/cfgtest/ferry.conf"

/* Two routes with hosts, one MX-delivered route, and a sender route. */
#define ROUTES "listen \"smtp\" {\n}\n" \
	"route \"small\" {\n  domains = { \"small.test\" }\n" \
	"  hosts = { \"[192.0.2.1]:25\" }\n}\n" \
	"route \"big\" {\n  domains = { \"big.test\" }\n" \
	"  hosts = { \"[192.0.2.2]:25\" }\n}\n" \
	"route \"direct\" {\n  domains = { \"direct.test\" }\n}\n" \
	"route \"billing\" {\n  senders = { \"@billing.test\" }\n" \
	"  hosts = { \"[192.0.2.3]:25\" }\n}\n"

static struct ferry_config *
load(const char *text)
{
	char err[512] = "";
	struct ferry_config *c = config_load(P, text, err, sizeof err);

	ck_assert_msg(c != NULL, "refused: %s", err);
	return c;
}

static struct route_caps
caps(uint32_t flags, uint64_t size)
{
	struct route_caps c;

	c.flags = flags;
	c.size_max = size;
	return c;
}

START_TEST(test_unknown_accepts_everything)
{
	struct route_caps_need n = { 999999999, 1, 1 };

	ck_assert_int_eq(route_caps_check_rcpt(NULL, &n), RCV_OK);
}
END_TEST

START_TEST(test_rcpt_decisions)
{
	struct route_caps c = caps(RCAP_SIZE | RCAP_8BITMIME, 1000);
	struct route_caps_need n = { 0, 0, 0 };

	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_OK);
	n.size = 1000;
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_OK);
	n.size = 1001;
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_SIZE);
	n.size = 10;
	n.smtputf8 = 1;
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_SMTPUTF8);
	c.flags |= RCAP_SMTPUTF8;
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_OK);
	n.eightbit = 1;
	c.flags &= ~RCAP_8BITMIME;
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_8BITMIME);
	/* SIZE without a number, or no SIZE: no limit */
	c = caps(RCAP_SIZE | RCAP_8BITMIME | RCAP_SMTPUTF8, 0);
	n.size = UINT64_MAX;
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_OK);
	c = caps(RCAP_8BITMIME | RCAP_SMTPUTF8, 0);
	ck_assert_int_eq(route_caps_check_rcpt(&c, &n), RCV_OK);
}
END_TEST

START_TEST(test_table_set_find_forget)
{
	struct route_caps_table t;
	struct route_caps c = caps(RCAP_SIZE, 500), d;

	route_caps_table_init(&t);
	ck_assert_ptr_null(route_caps_find(&t, "small"));
	ck_assert_int_eq(route_caps_set(&t, "small", &c), 1);
	ck_assert_int_eq(route_caps_set(&t, "small", &c), 0);
	ck_assert_uint_eq(route_caps_find(&t, "small")->size_max, 500);
	/* a size without SIZE is no size */
	d = caps(RCAP_DSN | 0x100, 77);
	ck_assert_int_eq(route_caps_set(&t, "small", &d), 1);
	ck_assert_uint_eq(route_caps_find(&t, "small")->flags, RCAP_DSN);
	ck_assert_uint_eq(route_caps_find(&t, "small")->size_max, 0);
	ck_assert_int_eq(route_caps_forget(&t, "small"), 1);
	ck_assert_int_eq(route_caps_forget(&t, "small"), 0);
	ck_assert_ptr_null(route_caps_find(&t, "small"));
	route_caps_table_free(&t);
}
END_TEST

START_TEST(test_route_for_recipient)
{
	struct ferry_config *cfg = load(ROUTES
	    "smarthost {\n  host = \"192.0.2.9\"\n}\n");
	struct route_caps_table t;
	struct route_caps c = caps(RCAP_SIZE, 1000);

	route_caps_table_init(&t);
	ck_assert_ptr_null(route_caps_for(cfg, &t, "a@x.test", "small.test"));
	route_caps_set(&t, "small", &c);
	route_caps_set(&t, "direct", &c);    /* never learnable */
	ck_assert_ptr_nonnull(route_caps_for(cfg, &t, "a@x.test",
	    "SMALL.test"));
	ck_assert_ptr_null(route_caps_for(cfg, &t, "a@x.test",
	    "direct.test"));
	ck_assert_ptr_null(route_caps_for(cfg, &t, "a@x.test", "other.test"));
	route_caps_set(&t, "smarthost", &c);
	ck_assert_ptr_nonnull(route_caps_for(cfg, &t, "a@x.test",
	    "other.test"));
	route_caps_table_free(&t);
	config_free(cfg);
}
END_TEST

START_TEST(test_mail_only_when_no_route_could)
{
	struct ferry_config *cfg = load(ROUTES
	    "smarthost {\n  host = \"192.0.2.9\"\n}\n");
	struct route_caps_table t;
	struct route_caps small = caps(RCAP_SIZE, 1000),
	    big = caps(RCAP_SIZE, 5000);

	route_caps_table_init(&t);
	/* nothing known: accepted */
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 9000),
	    RCV_OK);
	route_caps_set(&t, "small", &small);
	route_caps_set(&t, "big", &big);
	/* the smarthost is unknown still */
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 9000),
	    RCV_OK);
	route_caps_set(&t, "smarthost", &small);
	/* "direct" is MX delivery: unknown, so it could */
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 9000),
	    RCV_OK);
	config_free(cfg);

	cfg = load("listen \"smtp\" {\n}\n"
	    "route \"small\" {\n  domains = { \"small.test\" }\n"
	    "  hosts = { \"[192.0.2.1]:25\" }\n}\n"
	    "route \"big\" {\n  domains = { \"big.test\" }\n"
	    "  hosts = { \"[192.0.2.2]:25\" }\n}\n"
	    "route \"billing\" {\n  senders = { \"@billing.test\" }\n"
	    "  hosts = { \"[192.0.2.3]:25\" }\n}\n"
	    "smarthost {\n  host = \"192.0.2.9\"\n}\n");
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 5000),
	    RCV_OK);                          /* "big" takes it */
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 5001),
	    RCV_SIZE);                        /* nobody does */
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 0),
	    RCV_OK);                          /* not declared */
	/* the billing route is open to its senders only, and unknown */
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@billing.test",
	    9000), RCV_OK);
	route_caps_set(&t, "billing", &small);
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@billing.test",
	    9000), RCV_SIZE);
	/* SIZE without a number: no limit */
	big = caps(RCAP_SIZE, 0);
	route_caps_set(&t, "big", &big);
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test",
	    UINT64_MAX), RCV_OK);
	route_caps_table_free(&t);
	config_free(cfg);
}
END_TEST

START_TEST(test_mail_without_catch_all_goes_by_mx)
{
	struct ferry_config *cfg = load("listen \"smtp\" {\n}\n"
	    "route \"small\" {\n  domains = { \"small.test\" }\n"
	    "  hosts = { \"[192.0.2.1]:25\" }\n}\n");
	struct route_caps_table t;
	struct route_caps small = caps(RCAP_SIZE, 1000);

	route_caps_table_init(&t);
	route_caps_set(&t, "small", &small);
	ck_assert_int_eq(route_caps_check_mail(cfg, &t, "a@x.test", 9000),
	    RCV_OK);
	route_caps_table_free(&t);
	config_free(cfg);
}
END_TEST

START_TEST(test_data_only_when_every_recipient_is_too_small)
{
	struct route_caps small = caps(RCAP_SIZE, 1000),
	    big = caps(RCAP_SIZE, 5000), nolimit = caps(RCAP_SIZE, 0);
	const struct route_caps *v[3] = { NULL, NULL, NULL };

	ck_assert_int_eq(route_caps_check_data(v, 0, 99999), RCV_OK);
	v[0] = &small;
	v[1] = &big;
	ck_assert_int_eq(route_caps_check_data(v, 2, 1000), RCV_OK);
	ck_assert_int_eq(route_caps_check_data(v, 2, 5000), RCV_OK);
	ck_assert_int_eq(route_caps_check_data(v, 2, 5001), RCV_SIZE);
	ck_assert_int_eq(route_caps_check_data(v, 1, 1001), RCV_SIZE);
	v[2] = NULL;                          /* one unknown: accepted */
	ck_assert_int_eq(route_caps_check_data(v, 3, 9999), RCV_OK);
	v[2] = &nolimit;
	ck_assert_int_eq(route_caps_check_data(v, 3, 9999), RCV_OK);
}
END_TEST

START_TEST(test_advertised_size)
{
	struct ferry_config *cfg = load(ROUTES
	    "smarthost {\n  host = \"192.0.2.9\"\n}\n");
	struct route_caps_table t;
	struct route_caps small = caps(RCAP_SIZE, 1000),
	    big = caps(RCAP_SIZE, 5000), nolimit = caps(RCAP_SIZE, 0);

	route_caps_table_init(&t);
	ck_assert_uint_eq(route_caps_advertised_size(cfg, &t, 20000), 20000);
	route_caps_set(&t, "big", &big);
	ck_assert_uint_eq(route_caps_advertised_size(cfg, &t, 20000), 5000);
	ck_assert_uint_eq(route_caps_advertised_size(cfg, &t, 3000), 3000);
	route_caps_set(&t, "smarthost", &nolimit);
	ck_assert_uint_eq(route_caps_advertised_size(cfg, &t, 20000), 5000);
	/* MX delivery and routes not in the configuration do not count */
	route_caps_set(&t, "direct", &small);
	route_caps_set(&t, "gone", &small);
	ck_assert_uint_eq(route_caps_advertised_size(cfg, &t, 20000), 5000);
	route_caps_set(&t, "small", &small);
	ck_assert_uint_eq(route_caps_advertised_size(cfg, &t, 20000), 1000);
	route_caps_table_free(&t);
	config_free(cfg);
}
END_TEST

/* Encodes t for cfg and decodes it into *out; returns the count. */
static size_t
round_trip(const struct route_caps_table *t, const struct ferry_config *cfg,
    struct route_caps_table *out, int *rc)
{
	struct ipc_out m = { NULL, 0, 0, 0 };
	struct ipc_in in;
	const uint8_t *buf;
	size_t len, n;

	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	n = route_caps_encode(t, cfg, &m);
	buf = ipc_out_finish(&m, &len);
	ck_assert_int_eq(ipc_frame(buf, len, &in), (long)len);
	*rc = route_caps_decode(&in, out);
	ipc_out_free(&m);
	return n;
}

START_TEST(test_note_round_trip)
{
	struct ferry_config *cfg = load(ROUTES
	    "smarthost {\n  host = \"192.0.2.9\"\n}\n");
	struct route_caps_table t, got;
	struct route_caps small = caps(RCAP_SIZE | RCAP_DSN, 1000),
	    big = caps(RCAP_8BITMIME | RCAP_SMTPUTF8 | RCAP_REQUIRETLS, 0);
	int rc;

	route_caps_table_init(&t);
	route_caps_table_init(&got);
	route_caps_set(&t, "small", &small);
	route_caps_set(&t, "big", &big);
	route_caps_set(&t, "direct", &small);   /* MX: not sent */
	route_caps_set(&t, "gone", &small);     /* not configured: not sent */
	ck_assert_uint_eq(round_trip(&t, cfg, &got, &rc), 2);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(got.n, 2);
	ck_assert_uint_eq(route_caps_find(&got, "small")->size_max, 1000);
	ck_assert_uint_eq(route_caps_find(&got, "small")->flags,
	    RCAP_SIZE | RCAP_DSN);
	ck_assert_uint_eq(route_caps_find(&got, "big")->flags,
	    RCAP_8BITMIME | RCAP_SMTPUTF8 | RCAP_REQUIRETLS);
	ck_assert_ptr_null(route_caps_find(&got, "direct"));
	/* an empty note empties the table */
	route_caps_table_free(&t);
	ck_assert_uint_eq(round_trip(&t, cfg, &got, &rc), 0);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(got.n, 0);
	route_caps_table_free(&got);
	config_free(cfg);
}
END_TEST

/* Decodes a hand-built payload into a table holding one route. */
static int
decode_raw(struct ipc_out *m)
{
	struct route_caps_table t;
	struct route_caps c = caps(RCAP_SIZE, 1);
	struct ipc_in in;
	const uint8_t *buf;
	size_t len;
	int rc;

	route_caps_table_init(&t);
	route_caps_set(&t, "kept", &c);
	buf = ipc_out_finish(m, &len);
	ck_assert_int_eq(ipc_frame(buf, len, &in), (long)len);
	rc = route_caps_decode(&in, &t);
	if (rc < 0) {
		/* a malformed note changes nothing */
		ck_assert_uint_eq(t.n, 1);
		ck_assert_ptr_nonnull(route_caps_find(&t, "kept"));
	}
	route_caps_table_free(&t);
	ipc_out_free(m);
	return rc;
}

START_TEST(test_note_decoded_strictly)
{
	struct ipc_out m = { NULL, 0, 0, 0 };
	char longname[ROUTE_CAPS_NAME_MAX + 2];

	/* too many routes */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, ROUTE_CAPS_MAX + 1);
	ck_assert_int_eq(decode_raw(&m), -1);
	/* unknown flag bits */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 1);
	ipc_add_str(&m, "a");
	ipc_add_u32(&m, 0x20);
	ipc_add_u64(&m, 0);
	ck_assert_int_eq(decode_raw(&m), -1);
	/* a size without SIZE */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 1);
	ipc_add_str(&m, "a");
	ipc_add_u32(&m, RCAP_DSN);
	ipc_add_u64(&m, 5);
	ck_assert_int_eq(decode_raw(&m), -1);
	/* the same route twice */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 2);
	ipc_add_str(&m, "a");
	ipc_add_u32(&m, RCAP_SIZE);
	ipc_add_u64(&m, 5);
	ipc_add_str(&m, "a");
	ipc_add_u32(&m, RCAP_SIZE);
	ipc_add_u64(&m, 6);
	ck_assert_int_eq(decode_raw(&m), -1);
	/* an empty name, a name too long */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 1);
	ipc_add_str(&m, "");
	ipc_add_u32(&m, 0);
	ipc_add_u64(&m, 0);
	ck_assert_int_eq(decode_raw(&m), -1);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 1);
	ipc_add_str(&m, longname);
	ipc_add_u32(&m, 0);
	ipc_add_u64(&m, 0);
	ck_assert_int_eq(decode_raw(&m), -1);
	/* fewer routes than counted, bytes left over */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 2);
	ipc_add_str(&m, "a");
	ipc_add_u32(&m, 0);
	ipc_add_u64(&m, 0);
	ck_assert_int_eq(decode_raw(&m), -1);
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 0);
	ipc_add_u8(&m, 0);
	ck_assert_int_eq(decode_raw(&m), -1);
	/* and a good one */
	ipc_out_init(&m, IMSG_ROUTE_CAPS);
	ipc_add_u32(&m, 1);
	ipc_add_str(&m, "a");
	ipc_add_u32(&m, RCAP_SIZE | RCAP_SMTPUTF8);
	ipc_add_u64(&m, 5);
	ck_assert_int_eq(decode_raw(&m), 0);
}
END_TEST

START_TEST(test_describe)
{
	struct route_caps c = caps(RCAP_SIZE | RCAP_8BITMIME | RCAP_DSN,
	    10485760);
	char buf[128];

	route_caps_describe(&c, buf, sizeof(buf));
	ck_assert_str_eq(buf, "SIZE=10485760 8BITMIME DSN");
	c = caps(RCAP_SIZE | RCAP_REQUIRETLS, 0);
	route_caps_describe(&c, buf, sizeof(buf));
	ck_assert_str_eq(buf, "SIZE REQUIRETLS");
	c = caps(0, 0);
	route_caps_describe(&c, buf, sizeof(buf));
	ck_assert_str_eq(buf, "none");
}
END_TEST

static Suite *
route_caps_suite(void)
{
	Suite *s = suite_create("route_caps");
	TCase *tc = tcase_create("decisions");
	TCase *tn = tcase_create("note");

	tcase_add_test(tc, test_unknown_accepts_everything);
	tcase_add_test(tc, test_rcpt_decisions);
	tcase_add_test(tc, test_table_set_find_forget);
	tcase_add_test(tc, test_route_for_recipient);
	tcase_add_test(tc, test_mail_only_when_no_route_could);
	tcase_add_test(tc, test_mail_without_catch_all_goes_by_mx);
	tcase_add_test(tc, test_data_only_when_every_recipient_is_too_small);
	tcase_add_test(tc, test_advertised_size);
	tcase_add_test(tn, test_note_round_trip);
	tcase_add_test(tn, test_note_decoded_strictly);
	tcase_add_test(tn, test_describe);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tn);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(route_caps_suite());
	int failed;

	log_init("check_route_caps", LOG_TO_STDERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
