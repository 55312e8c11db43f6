/*
 * hostname.c - checks of host names from the DNS and the names of
 * reverse lookups (see hostname.h).  Pure functions over buffers.
 *
 * Security stance: the names come from whoever controls the reverse zone
 * of a client's address, that is, from the client.  Nothing but letters,
 * digits, '-' and '.' passes, in lengths the DNS allows, so a name cannot
 * carry line breaks, brackets, spaces or anything else that would change
 * the meaning of a log line or a Received header, and cannot pose as an
 * address.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "hostname.h"

static int
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

int
hostname_valid(const char *name, size_t len)
{
	size_t i, label = 0;
	int all_digits = 1;

	if (name == NULL)
		return 0;
	if (len > 0 && name[len - 1] == '.')
		len--;                 /* the root */
	if (len == 0 || len > HOSTNAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			/* empty label, or one that ends in '-' */
			if (label == 0 || name[i - 1] == '-')
				return 0;
			label = 0;
			all_digits = 1;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return 0;
		} else if (!is_alnum(c))
			return 0;
		if (!(c >= '0' && c <= '9'))
			all_digits = 0;
		if (++label > HOSTNAME_LABEL_MAX)
			return 0;
	}
	if (name[len - 1] == '-')
		return 0;
	/* "192.0.2.1" is not a name (nor is any top-level label of digits) */
	return !all_digits;
}

int
hostname_ptr_query(int family, const unsigned char *addr, char *out,
    size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t at = 0;
	int i, n;

	if (family == AF_INET) {
		n = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa",
		    addr[3], addr[2], addr[1], addr[0]);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	if (family != AF_INET6 || outlen < 16 * 4 + sizeof("ip6.arpa"))
		return -1;
	for (i = 15; i >= 0; i--) {
		out[at++] = hex[addr[i] & 0xf];
		out[at++] = '.';
		out[at++] = hex[addr[i] >> 4];
		out[at++] = '.';
	}
	memcpy(out + at, "ip6.arpa", sizeof("ip6.arpa"));
	return 0;
}
