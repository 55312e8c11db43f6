/*
 * check_token.c - unit tests for ferry-token's pure parts: the frames it
 * exchanges with the runner and the master (src/token_proto.c) and the
 * token endpoint's answers (src/token_response.c): a grant, a rotated
 * refresh token, an OAuth2 error, a server error, tokens that could
 * break a line, and reasons that never quote a token.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "token_proto.h"
#include "token_response.h"

static uint8_t *
frame(struct ipc_out *m, struct ipc_in *in)
{
	size_t len;
	const uint8_t *f = ipc_out_finish(m, &len);
	uint8_t *copy = malloc(len);

	memcpy(copy, f, len);
	ck_assert_int_eq(ipc_frame(copy, len, in), (long)len);
	return copy;
}

START_TEST(test_state_roundtrip)
{
	struct token_state t = { "m365", TOKEN_FAILED, "HTTP 400: invalid_grant",
	    "ya29.tok", 1900000000, 3, 1 }, d;
	struct ipc_out m;
	struct ipc_in in;
	uint8_t *f;

	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_TOKEN_STATE);
	token_state_encode(&t, &m);
	f = frame(&m, &in);
	ck_assert_int_eq(token_state_decode(&in, &d), 0);
	ck_assert_str_eq(d.route, "m365");
	ck_assert_uint_eq(d.status, TOKEN_FAILED);
	ck_assert_str_eq(d.reason, "HTTP 400: invalid_grant");
	ck_assert_str_eq(d.access_token, "ya29.tok");
	ck_assert(d.expires == 1900000000);
	ck_assert_uint_eq(d.refresh_ok, 3);
	ck_assert_uint_eq(d.refresh_failed, 1);
	token_state_free(&d);
	free(f);
	ipc_out_free(&m);

	/* a token with a space, an unknown status, an empty route */
	t.access_token = "a b";
	ipc_out_init(&m, IMSG_TOKEN_STATE);
	token_state_encode(&t, &m);
	f = frame(&m, &in);
	ck_assert_int_eq(token_state_decode(&in, &d), -1);
	free(f);
	ipc_out_free(&m);
	t.access_token = "";
	t.status = 7;
	ipc_out_init(&m, IMSG_TOKEN_STATE);
	token_state_encode(&t, &m);
	f = frame(&m, &in);
	ck_assert_int_eq(token_state_decode(&in, &d), -1);
	free(f);
	ipc_out_free(&m);
	ck_assert_str_eq(token_status_name(TOKEN_REFRESHING), "refreshing");
}
END_TEST

START_TEST(test_rotated)
{
	struct ipc_out m;
	struct ipc_in in;
	uint8_t *f;
	char *route, *tok;

	memset(&m, 0, sizeof(m));
	ipc_out_init(&m, IMSG_TOKEN_ROTATED);
	ipc_add_str(&m, "gmail");
	ipc_add_str(&m, "1//new-refresh");
	f = frame(&m, &in);
	ck_assert_int_eq(token_rotated_decode(&in, &route, &tok), 0);
	ck_assert_str_eq(route, "gmail");
	ck_assert_str_eq(tok, "1//new-refresh");
	free(route);
	free(tok);
	free(f);
	ipc_out_free(&m);
	/* a newline would add a line to the credentials file */
	ipc_out_init(&m, IMSG_TOKEN_ROTATED);
	ipc_add_str(&m, "gmail");
	ipc_add_str(&m, "x\nevil u p");
	f = frame(&m, &in);
	ck_assert_int_eq(token_rotated_decode(&in, &route, &tok), -1);
	ck_assert_ptr_null(tok);
	free(f);
	ipc_out_free(&m);
	/* bytes left over */
	ipc_out_init(&m, IMSG_TOKEN_REFRESH);
	ipc_add_str(&m, "gmail");
	ipc_add_u32(&m, 1);
	f = frame(&m, &in);
	ck_assert_int_eq(token_refresh_decode(&in, &route), -1);
	free(f);
	ipc_out_free(&m);
}
END_TEST

START_TEST(test_response)
{
	struct token_grant g;
	char err[512];
	const char *ok = "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
	    "\"access_token\":\"ya29.a0Af\",\"scope\":\"x\"}";
	const char *rot = "{\"access_token\":\"AT2\",\"expires_in\":\"60\","
	    "\"refresh_token\":\"RT2\"}";
	const char *bad = "{\"error\":\"invalid_grant\",\"error_description\":"
	    "\"AADSTS70000: token revoked\\nfor you\"}";

	ck_assert_int_eq(token_response_parse(200, ok, strlen(ok), &g, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(g.access_token, "ya29.a0Af");
	ck_assert_ptr_null(g.refresh_token);
	ck_assert(g.expires_in == 3599);
	token_grant_free(&g);
	ck_assert_int_eq(token_response_parse(200, rot, strlen(rot), &g, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(g.refresh_token, "RT2");
	ck_assert(g.expires_in == 60);
	token_grant_free(&g);

	ck_assert_int_eq(token_response_parse(400, bad, strlen(bad), &g, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "HTTP 400"));
	ck_assert_ptr_nonnull(strstr(err, "invalid_grant"));
	ck_assert_ptr_nonnull(strstr(err, "AADSTS70000"));
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert_int_eq(token_response_parse(500, "oops", 4, &g, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "HTTP 500"));
	/* 200 without a usable token: none is kept, none is quoted */
	ck_assert_int_eq(token_response_parse(200,
	    "{\"access_token\":\"a b\"}", 22, &g, err, sizeof(err)), -1);
	ck_assert_ptr_null(strstr(err, "a b"));
	ck_assert_int_eq(token_response_parse(200,
	    "{\"access_token\":\"ok\",\"refresh_token\":\"x\\ny\"}", 43, &g,
	    err, sizeof(err)), -1);
	ck_assert_ptr_null(g.access_token);
	/* no expires_in: an hour */
	ck_assert_int_eq(token_response_parse(200,
	    "{\"access_token\":\"ok\"}", 21, &g, err, sizeof(err)), 0);
	ck_assert(g.expires_in == TOKEN_DEFAULT_EXPIRES);
	token_grant_free(&g);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_state_roundtrip);
	tcase_add_test(tc, test_rotated);
	tcase_add_test(tc, test_response);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
