/*
 * netaddr.c - IPv4/IPv6 addresses and CIDR networks (see netaddr.h):
 * parsing "addr/prefix" strings from the configuration, matching peer
 * sockaddrs against them, printing sockaddrs for logs, and splitting
 * "host:port" specs (the one parser for them: routes, the smarthost, the
 * resolver, ferry-sendmail's -S).
 *
 * Pure functions: no I/O, no allocation.  Parsing is strict - anything
 * inet_pton does not accept, a prefix that is not plain decimal, trailing
 * bytes, or host bits set beyond the prefix is an error with a reason.
 * An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches IPv4 networks, and
 * also IPv6 networks covering ::ffff:0:0/96; a plain IPv4 peer matches
 * IPv4 networks only.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Clears every bit of addr (len bytes) after the first prefix bits;
 * returns nonzero when any of them was set. */
static int clear_host_bits(uint8_t *addr, size_t len, unsigned prefix)
{
	int had = 0;
	size_t i = prefix / 8;

	if (i < len && prefix % 8 != 0) {
		uint8_t mask = (uint8_t)(0xffu << (8 - prefix % 8));
		if (addr[i] & (uint8_t)~mask)
			had = 1;
		addr[i] &= mask;
		i++;
	}
	for (; i < len; i++) {
		if (addr[i] != 0)
			had = 1;
		addr[i] = 0;
	}
	return had;
}

int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash, *p;
	size_t alen, nbytes;
	unsigned maxprefix, prefix;
	struct cidr c;

	if (s == NULL || *s == '\0') {
		seterr(err, errlen, "empty network");
		return -1;
	}
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0) {
		seterr(err, errlen, "missing address in '%s'", s);
		return -1;
	}
	if (alen >= sizeof buf) {
		seterr(err, errlen, "invalid address in '%s'", s);
		return -1;
	}
	memcpy(buf, s, alen);
	buf[alen] = '\0';

	memset(&c, 0, sizeof c);
	if (memchr(buf, ':', alen) != NULL) {
		c.family = AF_INET6;
		nbytes = 16;
		maxprefix = 128;
	} else {
		c.family = AF_INET;
		nbytes = 4;
		maxprefix = 32;
	}
	if (inet_pton(c.family, buf, c.addr) != 1) {
		seterr(err, errlen, "invalid %s address '%s'",
		    c.family == AF_INET ? "IPv4" : "IPv6", buf);
		return -1;
	}

	if (slash == NULL) {
		prefix = maxprefix;
	} else {
		p = slash + 1;
		if (*p < '0' || *p > '9') {
			seterr(err, errlen, *p == '\0' ?
			    "missing prefix length in '%s'" :
			    "invalid prefix length in '%s'", s);
			return -1;
		}
		prefix = 0;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (prefix <= 1000)  /* saturate: still out of range */
				prefix = prefix * 10 + (unsigned)(*p - '0');
		}
		if (*p != '\0') {
			seterr(err, errlen, "trailing garbage '%s' in '%s'",
			    p, s);
			return -1;
		}
		if (prefix > maxprefix) {
			seterr(err, errlen,
			    "prefix length out of range in '%s' (%s: 0-%u)",
			    s, c.family == AF_INET ? "IPv4" : "IPv6",
			    maxprefix);
			return -1;
		}
	}
	c.prefix = prefix;

	if (clear_host_bits(c.addr, nbytes, prefix)) {
		char net[INET6_ADDRSTRLEN];

		if (inet_ntop(c.family, c.addr, net, sizeof net) == NULL)
			net[0] = '\0';
		seterr(err, errlen,
		    "host bits set beyond the prefix in '%s' (network is %s/%u)",
		    s, net, prefix);
		return -1;
	}
	*out = c;
	return 0;
}

/* The address of sa as bytes: 4 for AF_INET, 16 for AF_INET6.  Returns
 * the family, or 0 when it is neither. */
static int sa_bytes(const struct sockaddr *sa, uint8_t addr[16])
{
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof sin);
		memcpy(addr, &sin.sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof sin6);
		memcpy(addr, &sin6.sin6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

static const uint8_t v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	size_t full = prefix / 8;
	unsigned rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest != 0) {
		uint8_t mask = (uint8_t)(0xffu << (8 - rest));
		if ((a[full] ^ b[full]) & mask)
			return 0;
	}
	return 1;
}

int cidr_match(const struct cidr *net, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int fam;

	if (net == NULL)
		return 0;
	fam = sa_bytes(sa, addr);
	if (fam == 0)
		return 0;
	if (net->family == AF_INET) {
		if (net->prefix > 32)
			return 0;
		if (fam == AF_INET)
			return prefix_equal(addr, net->addr, net->prefix);
		if (memcmp(addr, v4mapped_prefix, 12) == 0)
			return prefix_equal(addr + 12, net->addr, net->prefix);
		return 0;
	}
	if (net->family == AF_INET6 && fam == AF_INET6 && net->prefix <= 128)
		return prefix_equal(addr, net->addr, net->prefix);
	return 0;
}

int cidr_match_any(const struct cidr *nets, size_t n,
    const struct sockaddr *sa)
{
	size_t i;

	if (nets == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		if (cidr_match(&nets[i], sa))
			return 1;
	}
	return 0;
}

void sockaddr_ntop(const struct sockaddr *sa, char *out, size_t outlen)
{
	char buf[INET6_ADDRSTRLEN];
	uint8_t addr[16];
	const char *r = NULL;

	if (out == NULL || outlen == 0)
		return;
	switch (sa_bytes(sa, addr)) {
	case AF_INET:
		r = inet_ntop(AF_INET, addr, buf, sizeof buf);
		break;
	case AF_INET6:
		if (memcmp(addr, v4mapped_prefix, 12) == 0)
			r = inet_ntop(AF_INET, addr + 12, buf, sizeof buf);
		else
			r = inet_ntop(AF_INET6, addr, buf, sizeof buf);
		break;
	default:
		break;
	}
	if (r == NULL)
		r = "unknown";
	snprintf(out, outlen, "%s", r);
}

int sockaddr_port(const struct sockaddr *sa)
{
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof sin);
		return ntohs(sin.sin_port);
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof sin6);
		return ntohs(sin6.sin6_port);
	}
	return -1;
}

static int parse_port(const char *p, int *port)
{
	long v = 0;
	size_t n;

	for (n = 0; p[n] >= '0' && p[n] <= '9'; n++)
		if (v <= 65535)   /* saturate: still out of range */
			v = v * 10 + (p[n] - '0');
	if (n == 0 || p[n] != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

int netaddr_parse_hostport(const char *s, int default_port, unsigned flags,
    struct hostport *out, char *err, size_t errlen)
{
	struct hostport hp;
	const char *host, *end, *portstr = NULL, *q;
	size_t hlen;

	if (s == NULL || *s == '\0') {
		seterr(err, errlen, "empty host");
		return -1;
	}
	memset(&hp, 0, sizeof hp);
	hp.port = default_port;
	if (*s == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL) {
			seterr(err, errlen, "missing ']' in '%s'", s);
			return -1;
		}
		hlen = (size_t)(end - host);
		hp.bracketed = 1;
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0') {
			seterr(err, errlen, "'%s' after ']' in '%s'", end + 1,
			    s);
			return -1;
		}
	} else {
		const char *colon = strchr(s, ':');

		host = s;
		if (colon != NULL && strchr(colon + 1, ':') != NULL &&
		    (flags & HOSTPORT_BARE_IPV6)) {
			colon = NULL;   /* an IPv6 address, all of it */
		}
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (colon != NULL)
			portstr = colon + 1;
	}
	if (hlen == 0) {
		seterr(err, errlen, "empty host in '%s'", s);
		return -1;
	}
	if (hlen >= sizeof hp.host) {
		seterr(err, errlen, "host longer than %zu octets",
		    sizeof hp.host - 1);
		return -1;
	}
	for (q = host; q < host + hlen; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f ||
		    (!hp.bracketed && (*q == '[' || *q == ']'))) {
			seterr(err, errlen, "bad character in host '%.*s'",
			    (int)hlen, host);
			return -1;
		}
	if (portstr != NULL && parse_port(portstr, &hp.port) < 0) {
		seterr(err, errlen, "port '%s' is not 1 to 65535", portstr);
		return -1;
	}
	memcpy(hp.host, host, hlen);
	hp.host[hlen] = '\0';
	*out = hp;
	return 0;
}
