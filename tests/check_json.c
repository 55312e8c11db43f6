/*
 * check_json.c - unit tests for src/json.c: the writer's output and
 * escaping (control characters, quotes, UTF-8 passed through, invalid
 * UTF-8 as \u00XX), the strict parser (what RFC 8259 allows and what it
 * does not), and the two together (whatever the writer emits parses back
 * to the same text).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* --- writer ----------------------------------------------------------------- */

/* The JSON for one string value. */
static char *
str_json(const char *s, size_t len)
{
	struct json_w w;

	json_w_init(&w);
	json_strn(&w, s, len);
	return json_w_take(&w, NULL);
}

#define ck_str_json(in, expect) do { \
	char *out_ = str_json((in), sizeof(in) - 1); \
	ck_assert_str_eq(out_, (expect)); \
	free(out_); \
} while (0)

START_TEST(test_write_structure)
{
	struct json_w w;
	char *out;
	size_t len;

	json_w_init(&w);
	json_obj_begin(&w);
	json_kv_bool(&w, "ok", 1);
	json_kv_int(&w, "n", -42);
	json_key(&w, "list");
	json_arr_begin(&w);
	json_int(&w, 1);
	json_str(&w, "two");
	json_null(&w);
	json_arr_begin(&w);
	json_arr_end(&w);
	json_obj_begin(&w);
	json_obj_end(&w);
	json_bool(&w, 0);
	json_arr_end(&w);
	json_kv_str(&w, "none", NULL);
	json_kv_double_opt(&w, "t", -1);
	json_kv_int_opt(&w, "size", -1);
	json_kv_int_opt(&w, "size2", 7);
	json_key(&w, "empty");
	json_obj_begin(&w);
	json_obj_end(&w);
	json_obj_end(&w);
	out = json_w_take(&w, &len);
	ck_assert_str_eq(out, "{\"ok\":true,\"n\":-42,\"list\":[1,\"two\",null,"
	    "[],{},false],\"none\":null,\"t\":null,\"size\":null,\"size2\":7,"
	    "\"empty\":{}}");
	ck_assert_uint_eq(len, strlen(out));
	free(out);
}
END_TEST

START_TEST(test_write_doubles)
{
	struct json_w w;
	char *out;

	json_w_init(&w);
	json_arr_begin(&w);
	json_double(&w, 1700000000.123456);
	json_double(&w, 1700000000.5);
	json_double(&w, 42.0);
	json_double(&w, 0.0);
	json_double(&w, -2.25);
	json_double(&w, NAN);
	json_double(&w, INFINITY);
	json_double(&w, 1e300);
	json_arr_end(&w);
	out = json_w_take(&w, NULL);
	ck_assert_str_eq(out, "[1700000000.123456,1700000000.5,42,0,-2.25,"
	    "null,null,1.0000000000000001e+300]");
	free(out);
}
END_TEST

START_TEST(test_escape_specials)
{
	ck_str_json("plain", "\"plain\"");
	ck_str_json("", "\"\"");
	ck_str_json("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	ck_str_json("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	ck_str_json("\x01\x1f\x1b[31m", "\"\\u0001\\u001f\\u001b[31m\"");
	ck_str_json("nul\0in", "\"nul\\u0000in\"");
	ck_str_json("del\x7f", "\"del\x7f\"");
}
END_TEST

START_TEST(test_escape_utf8)
{
	/* valid UTF-8 passes as is: 2, 3 and 4 byte sequences */
	ck_str_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7",
	    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"");
	/* a Latin-1 byte, a lone continuation byte, a truncated sequence */
	ck_str_json("caf\xe9", "\"caf\\u00e9\"");
	ck_str_json("\x80x", "\"\\u0080x\"");
	ck_str_json("\xe2\x82", "\"\\u00e2\\u0082\"");
	/* overlong "/", a UTF-16 surrogate, beyond U+10FFFF */
	ck_str_json("\xc0\xaf", "\"\\u00c0\\u00af\"");
	ck_str_json("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"");
	ck_str_json("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"");
	ck_str_json("\xff", "\"\\u00ff\"");
}
END_TEST

START_TEST(test_escape_keys)
{
	struct json_w w;
	char *out;

	json_w_init(&w);
	json_obj_begin(&w);
	json_kv_str(&w, "k\"\n", "v");
	json_obj_end(&w);
	out = json_w_take(&w, NULL);
	ck_assert_str_eq(out, "{\"k\\\"\\n\":\"v\"}");
	free(out);
}
END_TEST

/* --- parser ----------------------------------------------------------------- */

static struct json_value *
parse_ok(const char *text)
{
	char err[128];
	struct json_value *v = json_parse(text, strlen(text), err,
	    sizeof(err));

	ck_assert_msg(v != NULL, "%s: %s", text, err);
	return v;
}

static void
parse_bad(const char *text, size_t len)
{
	char err[128] = "";
	struct json_value *v = json_parse(text, len, err, sizeof(err));

	ck_assert_msg(v == NULL, "accepted: %.*s", (int)len, text);
	ck_assert_msg(strncmp(err, "offset ", 7) == 0, "error \"%s\"", err);
}

#define BAD(lit) parse_bad((lit), sizeof(lit) - 1)

START_TEST(test_parse_values)
{
	struct json_value *v = parse_ok(" {\"ok\":true,\"n\":-12.5e2,"
	    "\"z\":0,\"s\":\"x\",\"a\":[1,[2],{}],\"f\":false,\"nul\":null,"
	    "\"e\":[]}\n");
	const struct json_value *a;

	ck_assert_int_eq(v->type, JSON_OBJECT);
	ck_assert_uint_eq(v->n, 8);
	ck_assert_int_eq(json_get_bool(v, "ok", -1), 1);
	ck_assert_int_eq(json_get_bool(v, "f", -1), 0);
	ck_assert_int_eq(json_get_bool(v, "s", -1), -1);
	ck_assert(json_get_num(v, "n", 0) == -1250.0);
	ck_assert(json_get_num(v, "z", 1) == 0.0);
	ck_assert(json_get_num(v, "missing", 7) == 7.0);
	ck_assert_str_eq(json_get_str(v, "s", "d"), "x");
	ck_assert_str_eq(json_get_str(v, "n", "d"), "d");
	ck_assert_int_eq(json_get(v, "nul")->type, JSON_NULL);
	a = json_get(v, "a");
	ck_assert_int_eq(a->type, JSON_ARRAY);
	ck_assert_uint_eq(a->n, 3);
	ck_assert(a->items[0].num == 1.0);
	ck_assert_int_eq(a->items[1].type, JSON_ARRAY);
	ck_assert(a->items[1].items[0].num == 2.0);
	ck_assert_int_eq(a->items[2].type, JSON_OBJECT);
	ck_assert_uint_eq(json_get(v, "e")->n, 0);
	ck_assert_ptr_null(json_get(v, "nope"));
	ck_assert_ptr_null(json_get(a, "x"));        /* not an object */
	ck_assert_ptr_null(json_get(NULL, "x"));
	json_value_free(v);

	/* scalars at the top */
	v = parse_ok("\"just a string\"");
	ck_assert_str_eq(v->str, "just a string");
	json_value_free(v);
	v = parse_ok("  null ");
	ck_assert_int_eq(v->type, JSON_NULL);
	json_value_free(v);
	v = parse_ok("1E+2");
	ck_assert(v->num == 100.0);
	json_value_free(v);
	/* a repeated name: the last one counts */
	v = parse_ok("{\"a\":1,\"a\":2}");
	ck_assert(json_get_num(v, "a", 0) == 2.0);
	json_value_free(v);
}
END_TEST

START_TEST(test_parse_strings)
{
	struct json_value *v;

	v = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
	ck_assert_str_eq(v->str, "a\"b\\c/d\b\f\n\r\t");
	json_value_free(v);
	/* \u escapes: ASCII, 2 and 3 byte UTF-8, a surrogate pair */
	v = parse_ok("\"\\u0041\\u00e9\\u20AC\\ud83d\\udce7\"");
	ck_assert_str_eq(v->str, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xa7");
	json_value_free(v);
	/* \u0000 is kept, with the length telling */
	v = parse_ok("\"a\\u0000b\"");
	ck_assert_uint_eq(v->len, 3);
	ck_assert(memcmp(v->str, "a\0b", 3) == 0);
	json_value_free(v);
	/* raw UTF-8 passes */
	v = parse_ok("\"caf\xc3\xa9\"");
	ck_assert_str_eq(v->str, "caf\xc3\xa9");
	json_value_free(v);
}
END_TEST

START_TEST(test_parse_rejects)
{
	BAD("");
	BAD("   ");
	BAD("{");
	BAD("[1,2");
	BAD("[1,]");
	BAD("{\"a\":1,}");
	BAD("{\"a\" 1}");
	BAD("{a:1}");
	BAD("{1:1}");
	BAD("[1 2]");
	BAD("{} {}");
	BAD("{}x");
	BAD("tru");
	BAD("True");
	BAD("nul");
	BAD("'s'");
	BAD("01");
	BAD("-");
	BAD("1.");
	BAD(".5");
	BAD("1e");
	BAD("+1");
	BAD("NaN");
	BAD("\"unterminated");
	BAD("\"bad \\x escape\"");
	BAD("\"short \\u12\"");
	BAD("\"bad \\u12g4\"");
	BAD("\"tab\tinside\"");
	BAD("\"nl\ninside\"");
	BAD("\"lone \\ud83d\"");
	BAD("\"lone \\udce7\"");
	BAD("\"pair \\ud83d\\u0041\"");
	BAD("\"latin1 \xe9\"");
	BAD("\"overlong \xc0\xaf\"");
	BAD("\"nul\0\"");
	BAD("[1]\0");
	BAD("/* comment */ 1");
}
END_TEST

START_TEST(test_parse_depth)
{
	char deep[2 * JSON_MAX_DEPTH + 8];
	struct json_value *v;
	size_t i, n;

	/* exactly the limit parses */
	for (n = 0, i = 0; i < JSON_MAX_DEPTH; i++)
		deep[n++] = '[';
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	v = parse_ok(deep);
	json_value_free(v);
	/* one more does not */
	memmove(deep + 1, deep, n + 1);
	deep[0] = '[';
	deep[n + 1] = ']';
	deep[n + 2] = '\0';
	parse_bad(deep, n + 2);
}
END_TEST

START_TEST(test_parse_length_bound)
{
	/* the parser reads len bytes, not to a NUL */
	char err[64];
	struct json_value *v = json_parse("[1][garbage", 3, err, sizeof(err));

	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(v->n, 1);
	json_value_free(v);
}
END_TEST

/* --- both ------------------------------------------------------------------- */

START_TEST(test_roundtrip_all_bytes)
{
	struct json_w w;
	struct json_value *v;
	char in[256 + 16], err[128], *out;
	size_t i, len;

	/* every byte value, then valid UTF-8 after invalid bytes */
	for (i = 0; i < 256; i++)
		in[i] = (char)i;
	memcpy(in + 256, "\xc3\xa9\xe2\x82\xac", 5);
	json_w_init(&w);
	json_obj_begin(&w);
	json_key(&w, "s");
	json_strn(&w, in, 261);
	json_obj_end(&w);
	out = json_w_take(&w, &len);
	v = json_parse(out, len, err, sizeof(err));
	ck_assert_msg(v != NULL, "%s", err);
	/* ASCII comes back as is; invalid bytes as the code point of the
	 * byte (U+0080..U+00FF, two bytes each); the valid tail as is */
	ck_assert_uint_eq(json_get(v, "s")->len, 128 + 128 * 2 + 5);
	ck_assert(memcmp(json_get(v, "s")->str, in, 128) == 0);
	ck_assert(memcmp(json_get(v, "s")->str + 128, "\xc2\x80", 2) == 0);
	ck_assert(memcmp(json_get(v, "s")->str + 128 + 256,
	    "\xc3\xa9\xe2\x82\xac", 5) == 0);
	json_value_free(v);
	free(out);
}
END_TEST

static Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc;

	tc = tcase_create("writer");
	tcase_add_test(tc, test_write_structure);
	tcase_add_test(tc, test_write_doubles);
	tcase_add_test(tc, test_escape_specials);
	tcase_add_test(tc, test_escape_utf8);
	tcase_add_test(tc, test_escape_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("parser");
	tcase_add_test(tc, test_parse_values);
	tcase_add_test(tc, test_parse_strings);
	tcase_add_test(tc, test_parse_rejects);
	tcase_add_test(tc, test_parse_depth);
	tcase_add_test(tc, test_parse_length_bound);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_roundtrip_all_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(json_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
