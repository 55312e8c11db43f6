/*
 * json.h - a small JSON writer and a strict JSON parser, for the control
 * socket: the queue runner answers ferryctl with one JSON document
 * (json_w), and ferryctl reads it back (json_parse) to render it.
 *
 * The writer escapes everything RFC 8259 requires; valid UTF-8 passes
 * through, and a byte that is not part of valid UTF-8 (mail headers and
 * addresses may carry anything) is written as \u00XX, so no output is
 * ever invalid JSON.  The parser accepts exactly RFC 8259 (no comments,
 * no trailing commas, UTF-8 input only), with a nesting limit.
 */
#ifndef FERRY_JSON_H
#define FERRY_JSON_H

#include <stddef.h>
#include <stdint.h>

/* --- writing ------------------------------------------------------------- */

#define JSON_MAX_DEPTH 64

struct json_w {
	char *buf;                 /* NUL-terminated, len bytes */
	size_t len, cap;
	int depth;
	int after_key;             /* the next value follows "key": */
	unsigned char count[JSON_MAX_DEPTH];  /* 1 once a container has a
	                                         member (needs a comma) */
};

void json_w_init(struct json_w *w);
void json_w_free(struct json_w *w);
/* Hands the text to the caller (free() it) and resets w. */
char *json_w_take(struct json_w *w, size_t *lenp);

/* Containers; nesting deeper than JSON_MAX_DEPTH is a programming error
 * (log_panic). */
void json_obj_begin(struct json_w *w);
void json_obj_end(struct json_w *w);
void json_arr_begin(struct json_w *w);
void json_arr_end(struct json_w *w);
/* An object member's name; the next call writes its value. */
void json_key(struct json_w *w, const char *key);

void json_str(struct json_w *w, const char *s);      /* NULL: null */
void json_strn(struct json_w *w, const char *s, size_t len);
void json_int(struct json_w *w, int64_t v);
/* Non-finite numbers have no JSON form and are written as null. */
void json_double(struct json_w *w, double v);
void json_bool(struct json_w *w, int v);
void json_null(struct json_w *w);

/* Member shorthands. */
void json_kv_str(struct json_w *w, const char *key, const char *s);
void json_kv_int(struct json_w *w, const char *key, int64_t v);
void json_kv_bool(struct json_w *w, const char *key, int v);
/* A time or size stored as "negative means unknown": null when v < 0. */
void json_kv_double_opt(struct json_w *w, const char *key, double v);
void json_kv_int_opt(struct json_w *w, const char *key, int64_t v);

/* --- reading ------------------------------------------------------------- */

enum json_type {
	JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING,
	JSON_ARRAY, JSON_OBJECT
};

struct json_value {
	enum json_type type;
	double num;                /* JSON_NUMBER */
	char *str;                 /* JSON_STRING: UTF-8, NUL-terminated */
	size_t len;                /* its length (it may hold \u0000) */
	struct json_value *items;  /* JSON_ARRAY elements / JSON_OBJECT values */
	char **keys;               /* JSON_OBJECT member names */
	size_t n;                  /* number of items */
};

/* Parses exactly one JSON text (surrounding white space allowed).  NULL
 * with a reason and byte offset in err on any error. */
struct json_value *json_parse(const char *text, size_t len, char *err,
    size_t errlen);
void json_value_free(struct json_value *v);

/* The member named key of an object (the last one if repeated), or NULL
 * when v is not an object or has no such member. */
const struct json_value *json_get(const struct json_value *v,
    const char *key);
/* Typed accessors on a member; they return def when it is absent or of
 * another type. */
const char *json_get_str(const struct json_value *v, const char *key,
    const char *def);
double json_get_num(const struct json_value *v, const char *key, double def);
/* 1 for true, 0 for false, def otherwise. */
int json_get_bool(const struct json_value *v, const char *key, int def);

#endif
