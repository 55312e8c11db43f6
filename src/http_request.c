/*
 * http_request.c - the metrics endpoint's request-head parser (see
 * http_request.h).
 *
 * Security stance: the input is anything a network client sent.  Every
 * index is checked against len, nothing is copied past the fixed fields'
 * sizes, the method must be an RFC 9110 token and the target printable
 * ASCII without spaces; anything else is HTTP_BAD.
 */
#include "autoconfig.h"

#include <string.h>

#include "http_request.h"

static int
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~",
	    c) != NULL);
}

/* The offset just past the end of the head, or 0 when not there yet. */
static size_t
end_of_head(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

enum http_parse
http_parse_head(const char *buf, size_t len, struct http_request *req)
{
	size_t end, i = 0, m = 0, p = 0, line_end;

	memset(req, 0, sizeof(*req));
	end = end_of_head(buf, len);
	if (end == 0)
		return HTTP_INCOMPLETE;
	req->head_len = end;
	for (line_end = 0; line_end < end && buf[line_end] != '\n';
	    line_end++)
		;
	if (line_end > 0 && buf[line_end - 1] == '\r')
		line_end--;
	/* method */
	while (i < line_end && buf[i] != ' ') {
		if (!is_tchar((unsigned char)buf[i]) || m >= HTTP_METHOD_MAX)
			return HTTP_BAD;
		req->method[m++] = buf[i++];
	}
	if (m == 0 || i >= line_end)
		return HTTP_BAD;
	i++;
	/* target: origin form, the query cut off */
	if (i >= line_end || buf[i] != '/')
		return HTTP_BAD;
	while (i < line_end && buf[i] != ' ') {
		unsigned char c = (unsigned char)buf[i];

		if (c <= 0x20 || c >= 0x7f)
			return HTTP_BAD;
		if (c == '?' || c == '#') {
			while (i < line_end && buf[i] != ' ')
				i++;
			break;
		}
		if (p >= HTTP_PATH_MAX)
			return HTTP_TOO_LONG_URI;
		req->path[p++] = (char)c;
		i++;
	}
	if (i >= line_end)
		return HTTP_BAD;
	i++;
	/* version */
	if (line_end - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 ||
	    buf[i + 6] != '.' || buf[i + 5] < '0' || buf[i + 5] > '9' ||
	    buf[i + 7] < '0' || buf[i + 7] > '9')
		return HTTP_BAD;
	if (buf[i + 5] != '1' || buf[i + 7] > '1')
		return HTTP_BAD_VERSION;
	req->minor = buf[i + 7] - '0';
	return HTTP_COMPLETE;
}
