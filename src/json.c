/*
 * json.c - the JSON writer and strict parser of json.h.
 *
 * Security stance: the writer takes text that came from the network
 * (addresses, headers, remote replies) and must never emit invalid JSON:
 * control characters, quotes and backslashes are escaped, and bytes that
 * are not valid UTF-8 become \u00XX.  The parser reads what the control
 * socket sent; it is bounded by its input length and JSON_MAX_DEPTH
 * nesting, and rejects anything RFC 8259 does not allow.
 */
#include "autoconfig.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "util.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when
 * s does not start one (RFC 3629: no overlongs, surrogates or values
 * above U+10FFFF). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* --- writing ------------------------------------------------------------- */

void
json_w_init(struct json_w *w)
{
	memset(w, 0, sizeof(*w));
	w->cap = 256;
	w->buf = xmalloc(w->cap);
	w->buf[0] = '\0';
}

void
json_w_free(struct json_w *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

char *
json_w_take(struct json_w *w, size_t *lenp)
{
	char *p = w->buf;

	if (lenp != NULL)
		*lenp = w->len;
	memset(w, 0, sizeof(*w));
	return p;
}

static void
put(struct json_w *w, const char *s, size_t n)
{
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 256;

		while (w->len + n + 1 > cap)
			cap *= 2;
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void
putc_(struct json_w *w, char c)
{
	put(w, &c, 1);
}

/* Before any value: the comma between members, unless it follows a key. */
static void
sep(struct json_w *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->depth > 0) {
		if (w->count[w->depth - 1])
			putc_(w, ',');
		w->count[w->depth - 1] = 1;
	}
}

static void
open_(struct json_w *w, char c)
{
	sep(w);
	if (w->depth >= JSON_MAX_DEPTH)
		log_panic("json: nesting deeper than %d", JSON_MAX_DEPTH);
	putc_(w, c);
	w->count[w->depth++] = 0;
}

static void
close_(struct json_w *w, char c)
{
	if (w->depth <= 0 || w->after_key)
		log_panic("json: unbalanced '%c'", c);
	w->depth--;
	putc_(w, c);
}

void
json_obj_begin(struct json_w *w)
{
	open_(w, '{');
}

void
json_obj_end(struct json_w *w)
{
	close_(w, '}');
}

void
json_arr_begin(struct json_w *w)
{
	open_(w, '[');
}

void
json_arr_end(struct json_w *w)
{
	close_(w, ']');
}

static void
put_escaped(struct json_w *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0, l;
	char esc[6];

	putc_(w, '"');
	while (i < n) {
		unsigned char c = p[i];

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80 && (l = utf8_len(p + i, n - i)) > 0) {
			i += l;
			run += l;
			continue;
		}
		put(w, s + i - run, run);
		run = 0;
		esc[0] = '\\';
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			put(w, esc, 2);
			break;
		case '\b':
			put(w, "\\b", 2);
			break;
		case '\f':
			put(w, "\\f", 2);
			break;
		case '\n':
			put(w, "\\n", 2);
			break;
		case '\r':
			put(w, "\\r", 2);
			break;
		case '\t':
			put(w, "\\t", 2);
			break;
		default:
			/* a control character, or a byte of invalid UTF-8 */
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0x0f];
			put(w, esc, 6);
			break;
		}
		i++;
	}
	put(w, s + i - run, run);
	putc_(w, '"');
}

void
json_key(struct json_w *w, const char *key)
{
	if (w->depth <= 0 || w->after_key)
		log_panic("json: key \"%s\" outside an object", key);
	sep(w);
	put_escaped(w, key, strlen(key));
	putc_(w, ':');
	w->after_key = 1;
}

void
json_strn(struct json_w *w, const char *s, size_t len)
{
	sep(w);
	put_escaped(w, s, len);
}

void
json_str(struct json_w *w, const char *s)
{
	if (s == NULL)
		json_null(w);
	else
		json_strn(w, s, strlen(s));
}

void
json_int(struct json_w *w, int64_t v)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%lld", (long long)v);

	sep(w);
	put(w, b, (size_t)n);
}

void
json_double(struct json_w *w, double v)
{
	char b[64];
	int n;

	if (!isfinite(v)) {
		json_null(w);
		return;
	}
	if (fabs(v) < 1e15) {
		/* times: microseconds, without trailing zeros */
		n = snprintf(b, sizeof(b), "%.6f", v);
		while (n > 0 && b[n - 1] == '0')
			n--;
		if (n > 0 && b[n - 1] == '.')
			n--;
	} else
		n = snprintf(b, sizeof(b), "%.17g", v);
	sep(w);
	put(w, b, (size_t)n);
}

void
json_bool(struct json_w *w, int v)
{
	sep(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void
json_null(struct json_w *w)
{
	sep(w);
	put(w, "null", 4);
}

void
json_kv_str(struct json_w *w, const char *key, const char *s)
{
	json_key(w, key);
	json_str(w, s);
}

void
json_kv_int(struct json_w *w, const char *key, int64_t v)
{
	json_key(w, key);
	json_int(w, v);
}

void
json_kv_bool(struct json_w *w, const char *key, int v)
{
	json_key(w, key);
	json_bool(w, v);
}

void
json_kv_double_opt(struct json_w *w, const char *key, double v)
{
	json_key(w, key);
	if (v < 0)
		json_null(w);
	else
		json_double(w, v);
}

void
json_kv_int_opt(struct json_w *w, const char *key, int64_t v)
{
	json_key(w, key);
	if (v < 0)
		json_null(w);
	else
		json_int(w, v);
}

/* --- reading ------------------------------------------------------------- */

struct parser {
	const unsigned char *s;
	size_t len, pos;
	char *err;
	size_t errlen;
	int failed;
};

static void
fail(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(struct parser *p, const char *fmt, ...)
{
	char msg[128];
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "offset %zu: %s", p->pos, msg);
}

static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' ||
	    p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
	    p->s[p->pos] == '\r'))
		p->pos++;
}

static int
literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
		fail(p, "invalid literal");
		return -1;
	}
	p->pos += n;
	return 0;
}

static int
hex4(struct parser *p, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (p->len - p->pos < 4) {
		fail(p, "short \\u escape");
		return -1;
	}
	for (i = 0; i < 4; i++) {
		unsigned char c = p->s[p->pos + i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else {
			fail(p, "bad \\u escape");
			return -1;
		}
	}
	p->pos += 4;
	*out = v;
	return 0;
}

static void
put_utf8(struct json_w *b, unsigned cp)
{
	char u[4];

	if (cp < 0x80) {
		u[0] = (char)cp;
		put(b, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		put(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		put(b, u, 3);
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		put(b, u, 4);
	}
}

/* A string at p->pos (the opening quote); its decoded bytes in *out
 * (malloc'd, NUL-terminated). */
static int
parse_string(struct parser *p, char **out, size_t *outlen)
{
	struct json_w b;
	size_t l;

	json_w_init(&b);
	p->pos++;                               /* the quote */
	for (;;) {
		unsigned char c;
		unsigned cp, lo;

		if (p->pos >= p->len) {
			fail(p, "unterminated string");
			goto bad;
		}
		c = p->s[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20) {
			fail(p, "control character in string");
			goto bad;
		}
		if (c != '\\') {
			if ((l = utf8_len(p->s + p->pos, p->len - p->pos)) ==
			    0) {
				fail(p, "invalid UTF-8");
				goto bad;
			}
			put(&b, (const char *)p->s + p->pos, l);
			p->pos += l;
			continue;
		}
		if (++p->pos >= p->len) {
			fail(p, "unterminated string");
			goto bad;
		}
		c = p->s[p->pos++];
		switch (c) {
		case '"':
		case '\\':
		case '/':
			put(&b, (const char *)&c, 1);
			break;
		case 'b':
			put(&b, "\b", 1);
			break;
		case 'f':
			put(&b, "\f", 1);
			break;
		case 'n':
			put(&b, "\n", 1);
			break;
		case 'r':
			put(&b, "\r", 1);
			break;
		case 't':
			put(&b, "\t", 1);
			break;
		case 'u':
			if (hex4(p, &cp) == -1)
				goto bad;
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				fail(p, "lone low surrogate");
				goto bad;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->len - p->pos < 2 ||
				    p->s[p->pos] != '\\' ||
				    p->s[p->pos + 1] != 'u') {
					fail(p, "lone high surrogate");
					goto bad;
				}
				p->pos += 2;
				if (hex4(p, &lo) == -1)
					goto bad;
				if (lo < 0xdc00 || lo > 0xdfff) {
					fail(p, "bad surrogate pair");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			}
			put_utf8(&b, cp);
			break;
		default:
			p->pos--;
			fail(p, "bad escape");
			goto bad;
		}
	}
	*out = json_w_take(&b, outlen);
	return 0;
bad:
	json_w_free(&b);
	return -1;
}

static int
digits(struct parser *p)
{
	size_t start = p->pos;

	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++;
	return p->pos > start;
}

static int
parse_number(struct parser *p, double *out)
{
	size_t start = p->pos;
	char buf[64];

	if (p->s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '0')
		p->pos++;
	else if (!digits(p)) {
		fail(p, "bad number");
		return -1;
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if (!digits(p)) {
			fail(p, "bad number");
			return -1;
		}
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' ||
		    p->s[p->pos] == '-'))
			p->pos++;
		if (!digits(p)) {
			fail(p, "bad number");
			return -1;
		}
	}
	if (p->pos - start >= sizeof(buf)) {
		fail(p, "number too long");
		return -1;
	}
	memcpy(buf, p->s + start, p->pos - start);
	buf[p->pos - start] = '\0';
	*out = strtod(buf, NULL);
	return 0;
}

static int parse_value(struct parser *p, struct json_value *v, int depth);

static void
grow(struct json_value *v, size_t *cap, int with_keys)
{
	if (v->n < *cap)
		return;
	*cap = *cap ? *cap * 2 : 4;
	v->items = xrealloc(v->items, *cap * sizeof(*v->items));
	if (with_keys)
		v->keys = xrealloc(v->keys, *cap * sizeof(*v->keys));
}

static int
parse_array(struct parser *p, struct json_value *v, int depth)
{
	size_t cap = 0;

	v->type = JSON_ARRAY;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']') {
		p->pos++;
		return 0;
	}
	for (;;) {
		grow(v, &cap, 0);
		memset(&v->items[v->n], 0, sizeof(v->items[0]));
		v->n++;
		if (parse_value(p, &v->items[v->n - 1], depth + 1) == -1)
			return -1;
		skip_ws(p);
		if (p->pos >= p->len) {
			fail(p, "unterminated array");
			return -1;
		}
		if (p->s[p->pos] == ']') {
			p->pos++;
			return 0;
		}
		if (p->s[p->pos] != ',') {
			fail(p, "expected ',' or ']'");
			return -1;
		}
		p->pos++;
	}
}

static int
parse_object(struct parser *p, struct json_value *v, int depth)
{
	size_t cap = 0, klen;

	v->type = JSON_OBJECT;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '"') {
			fail(p, "expected a member name");
			return -1;
		}
		grow(v, &cap, 1);
		memset(&v->items[v->n], 0, sizeof(v->items[0]));
		v->keys[v->n] = NULL;
		v->n++;
		if (parse_string(p, &v->keys[v->n - 1], &klen) == -1)
			return -1;
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ':') {
			fail(p, "expected ':'");
			return -1;
		}
		p->pos++;
		if (parse_value(p, &v->items[v->n - 1], depth + 1) == -1)
			return -1;
		skip_ws(p);
		if (p->pos >= p->len) {
			fail(p, "unterminated object");
			return -1;
		}
		if (p->s[p->pos] == '}') {
			p->pos++;
			return 0;
		}
		if (p->s[p->pos] != ',') {
			fail(p, "expected ',' or '}'");
			return -1;
		}
		p->pos++;
	}
}

static int
parse_value(struct parser *p, struct json_value *v, int depth)
{
	unsigned char c;

	if (depth > JSON_MAX_DEPTH) {
		fail(p, "nested too deeply");
		return -1;
	}
	skip_ws(p);
	if (p->pos >= p->len) {
		fail(p, "unexpected end");
		return -1;
	}
	c = p->s[p->pos];
	switch (c) {
	case '{':
		return parse_object(p, v, depth);
	case '[':
		return parse_array(p, v, depth);
	case '"':
		v->type = JSON_STRING;
		return parse_string(p, &v->str, &v->len);
	case 't':
		v->type = JSON_TRUE;
		return literal(p, "true");
	case 'f':
		v->type = JSON_FALSE;
		return literal(p, "false");
	case 'n':
		v->type = JSON_NULL;
		return literal(p, "null");
	default:
		if (c == '-' || (c >= '0' && c <= '9')) {
			v->type = JSON_NUMBER;
			return parse_number(p, &v->num);
		}
		fail(p, "unexpected character");
		return -1;
	}
}

static void
free_members(struct json_value *v)
{
	size_t i;

	for (i = 0; i < v->n; i++) {
		free_members(&v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

struct json_value *
json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct parser p;
	struct json_value *v = xcalloc(1, sizeof(*v));

	memset(&p, 0, sizeof(p));
	p.s = (const unsigned char *)text;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	if (parse_value(&p, v, 1) == 0) {
		skip_ws(&p);
		if (p.pos == p.len)
			return v;
		fail(&p, "trailing data");
	}
	json_value_free(v);
	return NULL;
}

void
json_value_free(struct json_value *v)
{
	if (v == NULL)
		return;
	free_members(v);
	free(v);
}

const struct json_value *
json_get(const struct json_value *v, const char *key)
{
	size_t i;

	if (v == NULL || v->type != JSON_OBJECT)
		return NULL;
	for (i = v->n; i-- > 0;)
		if (strcmp(v->keys[i], key) == 0)
			return &v->items[i];
	return NULL;
}

const char *
json_get_str(const struct json_value *v, const char *key, const char *def)
{
	const struct json_value *m = json_get(v, key);

	return m != NULL && m->type == JSON_STRING ? m->str : def;
}

double
json_get_num(const struct json_value *v, const char *key, double def)
{
	const struct json_value *m = json_get(v, key);

	return m != NULL && m->type == JSON_NUMBER ? m->num : def;
}

int
json_get_bool(const struct json_value *v, const char *key, int def)
{
	const struct json_value *m = json_get(v, key);

	if (m == NULL)
		return def;
	if (m->type == JSON_TRUE)
		return 1;
	if (m->type == JSON_FALSE)
		return 0;
	return def;
}
