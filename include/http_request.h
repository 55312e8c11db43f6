/*
 * http_request.h - the request head of the metrics endpoint's HTTP
 * clients, parsed from a buffer (http_request.c, pure: unit-tested and
 * fuzzed by tests/fuzz/fuzz_http_request.c).
 *
 * Only what the endpoint needs is understood: the request line
 * "METHOD SP target SP HTTP/1.x" and the end of the head (CRLF CRLF, or
 * LF LF from a lenient client); header fields are skipped, so a request
 * body is never expected (Connection: close answers every request).
 */
#ifndef FERRY_HTTP_REQUEST_H
#define FERRY_HTTP_REQUEST_H

#include <stddef.h>

#define HTTP_HEAD_MAX 8192      /* larger heads are refused (431) */
#define HTTP_METHOD_MAX 16
#define HTTP_PATH_MAX 256       /* longer targets are answered 414 */

enum http_parse {
	HTTP_INCOMPLETE = 0,    /* no end of head yet */
	HTTP_COMPLETE,          /* req is filled */
	HTTP_BAD,               /* not an HTTP/1.x request: 400 */
	HTTP_TOO_LONG_URI,      /* target past HTTP_PATH_MAX: 414 */
	HTTP_BAD_VERSION        /* not HTTP/1.0 or 1.1: 505 */
};

struct http_request {
	char method[HTTP_METHOD_MAX + 1];
	char path[HTTP_PATH_MAX + 1];   /* the target without its query */
	int minor;                       /* HTTP/1.minor */
	size_t head_len;                 /* bytes up to the end of head */
};

/* Looks at buf[0..len) (not NUL-terminated). */
enum http_parse http_parse_head(const char *buf, size_t len,
    struct http_request *req);

#endif
