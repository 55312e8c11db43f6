/*
 * json_bytes.h - what ferry adds to jansson for the control socket:
 * a JSON string from bytes that need not be UTF-8, and typed reads of an
 * object's members with a default.
 *
 * Mail headers, addresses and remote replies may carry any byte, and
 * jansson refuses a string that is not valid UTF-8.  ferry's policy: valid
 * UTF-8 is kept, and each byte that is not part of a valid sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF)
 * becomes the code point U+00XX of its value, which the control socket's
 * ASCII-only output shows as \u00XX.  NUL bytes are kept (\u0000).
 */
#ifndef FERRY_JSON_BYTES_H
#define FERRY_JSON_BYTES_H

#include <stddef.h>
#include <jansson.h>

/* How ferry writes a document: one line, ASCII only (every control and
 * non-ASCII character as a \u escape), members in the order added. */
#define JSON_BYTES_DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII)

/* A new string value from len bytes of s; never NULL (out of memory is
 * fatal, as for every allocation in ferry). */
json_t *json_bytes_string(const char *s, size_t len);
/* The same for a C string; NULL gives a JSON null. */
json_t *json_bytes_cstring(const char *s);

/* Reads of the member named key of object o; def when o is not an object,
 * has no such member, or it is of another type. */
double json_member_num(const json_t *o, const char *key, double def);
const char *json_member_str(const json_t *o, const char *key,
    const char *def);
/* 1 for true, 0 for false, def otherwise. */
int json_member_bool(const json_t *o, const char *key, int def);

#endif
