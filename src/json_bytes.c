/*
 * json_bytes.c - JSON strings from arbitrary bytes for jansson (invalid
 * UTF-8 kept as U+00XX per byte) and member reads with defaults; see
 * json_bytes.h.
 *
 * Security stance: the input is untrusted text from mail.  It is scanned
 * with bounds checks only (a sequence is looked at only while its bytes
 * are inside len), and the output is at most twice the input, so nothing
 * it carries can produce a value jansson refuses or an invalid document.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "json_bytes.h"
#include "log.h"
#include "util.h"

/* The length of the valid UTF-8 sequence at s (at most left bytes), or 0
 * when the byte at s does not start one. */
static size_t
utf8_sequence(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n, i;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else
		return 0;                  /* continuation, 0xc0/0xc1, 0xf5+ */
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

json_t *
json_bytes_string(const char *s, size_t len)
{
	const unsigned char *in = (const unsigned char *)s;
	unsigned char *out;
	size_t i = 0, o = 0, n;
	json_t *v;

	if (s == NULL)
		len = 0;
	out = xmalloc(2 * len + 1);
	while (i < len) {
		n = utf8_sequence(in + i, len - i);
		if (n > 0) {
			memcpy(out + o, in + i, n);
			o += n;
			i += n;
			continue;
		}
		/* the byte's value as a code point: U+0080..U+00FF */
		out[o++] = (unsigned char)(0xc0 | (in[i] >> 6));
		out[o++] = (unsigned char)(0x80 | (in[i] & 0x3f));
		i++;
	}
	v = json_stringn((const char *)out, o);
	free(out);
	if (v == NULL)
		log_fatal("out of memory (a JSON string of %zu bytes)", o);
	return v;
}

json_t *
json_bytes_cstring(const char *s)
{
	json_t *v;

	if (s != NULL)
		return json_bytes_string(s, strlen(s));
	if ((v = json_null()) == NULL)
		log_fatal("out of memory (JSON null)");
	return v;
}

double
json_member_num(const json_t *o, const char *key, double def)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : def;
}

const char *
json_member_str(const json_t *o, const char *key, const char *def)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : def;
}

int
json_member_bool(const json_t *o, const char *key, int def)
{
	json_t *v = json_object_get(o, key);

	if (json_is_true(v))
		return 1;
	if (json_is_false(v))
		return 0;
	return def;
}
