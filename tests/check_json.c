/*
 * check_json.c - unit tests for src/json_bytes.c, ferry's additions to
 * jansson: strings from arbitrary bytes as the control socket writes them
 * (control characters and quotes escaped, valid UTF-8 kept, each invalid
 * byte as \u00XX, NUL kept), the whole byte range read back through
 * jansson, and the member reads with their defaults.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_bytes.h"

/* The text ferry writes for one string value made from len bytes. */
static char *
str_json(const char *s, size_t len)
{
	json_t *v = json_bytes_string(s, len);
	char *out = json_dumps(v, JSON_BYTES_DUMP_FLAGS | JSON_ENCODE_ANY);

	ck_assert_ptr_nonnull(out);
	json_decref(v);
	return out;
}

#define ck_str_json(in, expect) do { \
	char *out_ = str_json((in), sizeof(in) - 1); \
	ck_assert_str_eq(out_, (expect)); \
	free(out_); \
} while (0)

/* The UTF-8 value jansson holds for len bytes, compared with expect. */
#define ck_str_value(in, expect) do { \
	json_t *v_ = json_bytes_string((in), sizeof(in) - 1); \
	ck_assert_uint_eq(json_string_length(v_), sizeof(expect) - 1); \
	ck_assert(memcmp(json_string_value(v_), (expect), \
	    sizeof(expect) - 1) == 0); \
	json_decref(v_); \
} while (0)

START_TEST(test_escape_specials)
{
	ck_str_json("plain", "\"plain\"");
	ck_str_json("", "\"\"");
	ck_str_json("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	ck_str_json("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	ck_str_json("\x01\x1f\x1b[31m", "\"\\u0001\\u001F\\u001B[31m\"");
	ck_str_json("nul\0in", "\"nul\\u0000in\"");
	ck_str_json("del\x7f", "\"del\x7f\"");
}
END_TEST

START_TEST(test_escape_utf8)
{
	/* valid UTF-8 is kept (2, 3 and 4 byte sequences); the ASCII-only
	 * output writes it as \u escapes, a surrogate pair beyond U+FFFF */
	ck_str_value("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7",
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7");
	ck_str_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7",
	    "\"caf\\u00E9 \\u20AC \\uD83D\\uDCE7\"");
	/* a Latin-1 byte, a lone continuation byte, a truncated sequence */
	ck_str_json("caf\xe9", "\"caf\\u00E9\"");
	ck_str_value("caf\xe9", "caf\xc3\xa9");
	ck_str_json("\x80x", "\"\\u0080x\"");
	ck_str_json("\xe2\x82", "\"\\u00E2\\u0082\"");
	ck_str_json("\xe2\x82" "a", "\"\\u00E2\\u0082a\"");
	/* overlong "/" and overlong 3 and 4 byte forms, a UTF-16
	 * surrogate, beyond U+10FFFF, bytes that never occur */
	ck_str_json("\xc0\xaf", "\"\\u00C0\\u00AF\"");
	ck_str_json("\xe0\x80\xaf", "\"\\u00E0\\u0080\\u00AF\"");
	ck_str_json("\xf0\x80\x80\xaf", "\"\\u00F0\\u0080\\u0080\\u00AF\"");
	ck_str_json("\xed\xa0\x80", "\"\\u00ED\\u00A0\\u0080\"");
	ck_str_json("\xf4\x90\x80\x80", "\"\\u00F4\\u0090\\u0080\\u0080\"");
	ck_str_json("\xf5\xff", "\"\\u00F5\\u00FF\"");
	/* the largest code point and the last before the surrogates pass */
	ck_str_value("\xf4\x8f\xbf\xbf\xed\x9f\xbf",
	    "\xf4\x8f\xbf\xbf\xed\x9f\xbf");
	/* a valid sequence after an invalid byte is kept */
	ck_str_value("\xff\xc3\xa9", "\xc3\xbf\xc3\xa9");
}
END_TEST

START_TEST(test_cstring)
{
	json_t *v = json_bytes_cstring(NULL);

	ck_assert(json_is_null(v));
	json_decref(v);
	v = json_bytes_cstring("a\xff");
	ck_assert_str_eq(json_string_value(v), "a\xc3\xbf");
	json_decref(v);
}
END_TEST

START_TEST(test_object_keys_escaped)
{
	json_t *o = json_object();
	char *out;

	ck_assert_int_eq(json_object_set_new(o, "k\"\n",
	    json_bytes_cstring("v")), 0);
	out = json_dumps(o, JSON_BYTES_DUMP_FLAGS);
	ck_assert_str_eq(out, "{\"k\\\"\\n\":\"v\"}");
	free(out);
	json_decref(o);
}
END_TEST

START_TEST(test_roundtrip_all_bytes)
{
	json_t *o, *v;
	json_error_t jerr;
	char in[256 + 16], *out;
	const char *s;
	size_t i;

	/* every byte value, then valid UTF-8 after invalid bytes */
	for (i = 0; i < 256; i++)
		in[i] = (char)i;
	memcpy(in + 256, "\xc3\xa9\xe2\x82\xac", 5);
	o = json_object();
	json_object_set_new(o, "s", json_bytes_string(in, 261));
	out = json_dumps(o, JSON_BYTES_DUMP_FLAGS);
	json_decref(o);
	ck_assert_ptr_nonnull(out);
	/* the text is printable ASCII only */
	for (i = 0; out[i] != '\0'; i++)
		ck_assert_msg(out[i] >= 0x20 && out[i] <= 0x7f, "byte %zu", i);
	/* read back the way ferryctl reads it (NUL allowed) */
	v = json_loads(out, JSON_ALLOW_NUL, &jerr);
	ck_assert_msg(v != NULL, "%s", jerr.text);
	/* ASCII comes back as is; invalid bytes as the code point of the
	 * byte (U+0080..U+00FF, two bytes each); the valid tail as is */
	ck_assert_uint_eq(json_string_length(json_object_get(v, "s")),
	    128 + 128 * 2 + 5);
	s = json_member_str(v, "s", NULL);
	ck_assert(memcmp(s, in, 128) == 0);
	ck_assert(memcmp(s + 128, "\xc2\x80", 2) == 0);
	ck_assert(memcmp(s + 128 + 254, "\xc3\xbf", 2) == 0);
	ck_assert(memcmp(s + 128 + 256, "\xc3\xa9\xe2\x82\xac", 5) == 0);
	json_decref(v);
	free(out);
}
END_TEST

START_TEST(test_member_reads)
{
	json_error_t jerr;
	json_t *v = json_loads("{\"ok\":true,\"f\":false,\"n\":-12.5e2,"
	    "\"i\":7,\"s\":\"x\",\"nul\":null,\"a\":[1]}", 0, &jerr);

	ck_assert_msg(v != NULL, "%s", jerr.text);
	ck_assert_int_eq(json_member_bool(v, "ok", -1), 1);
	ck_assert_int_eq(json_member_bool(v, "f", -1), 0);
	ck_assert_int_eq(json_member_bool(v, "s", -1), -1);
	ck_assert_int_eq(json_member_bool(v, "missing", -1), -1);
	ck_assert(json_member_num(v, "n", 0) == -1250.0);
	ck_assert(json_member_num(v, "i", 0) == 7.0);    /* integer too */
	ck_assert(json_member_num(v, "s", 3) == 3.0);
	ck_assert(json_member_num(v, "nul", 3) == 3.0);
	ck_assert(json_member_num(v, "missing", 7) == 7.0);
	ck_assert_str_eq(json_member_str(v, "s", "d"), "x");
	ck_assert_str_eq(json_member_str(v, "n", "d"), "d");
	ck_assert_str_eq(json_member_str(v, "nul", "d"), "d");
	/* not an object, or nothing at all: the default */
	ck_assert(json_member_num(json_object_get(v, "a"), "x", 5) == 5.0);
	ck_assert_str_eq(json_member_str(NULL, "x", "d"), "d");
	ck_assert_int_eq(json_member_bool(NULL, "x", -1), -1);
	json_decref(v);
}
END_TEST

static Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc;

	tc = tcase_create("strings");
	tcase_add_test(tc, test_escape_specials);
	tcase_add_test(tc, test_escape_utf8);
	tcase_add_test(tc, test_cstring);
	tcase_add_test(tc, test_object_keys_escaped);
	tcase_add_test(tc, test_roundtrip_all_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("reads");
	tcase_add_test(tc, test_member_reads);
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
