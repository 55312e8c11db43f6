/*
 * proxy_header.c - parses the PROXY protocol header (HAProxy's
 * doc/proxy-protocol.txt, versions 1 and 2) that a load balancer puts
 * before the client's bytes, to learn the client's real address.
 *
 * Security stance: the bytes come straight from the network, before any
 * SMTP, and whoever sends them chooses the address every policy will see
 * - so the caller takes a header only from the balancers the operator
 * trusts (proxy_networks), and this parser is strict: exactly one
 * version (the listener's), exactly the specification's syntax, lengths
 * bounded (PROXY_V1_MAX, PROXY_V2_MAX), and an error on anything else;
 * it never falls back to treating the bytes as SMTP.  Pure: no I/O, no
 * allocation, nothing read past len.
 */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static enum proxy_status
fail(struct proxy_result *res, const char *why)
{
	res->error = why;
	return PROXY_ERROR;
}

/* A decimal number of 1..maxdigits digits, no leading zero, <= max;
 * -1 when it is not one. */
static long
decimal(const char *s, size_t len, size_t maxdigits, long max)
{
	long v = 0;
	size_t i;

	if (len == 0 || len > maxdigits || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* Dotted-quad IPv4 as the specification writes it: four numbers
 * 0..255, no leading zeros. */
static int
v1_ipv4(const char *s, size_t len, uint8_t out[4])
{
	size_t i = 0, part;

	for (part = 0; part < 4; part++) {
		size_t start = i;
		long v;

		while (i < len && s[i] != '.')
			i++;
		v = decimal(s + start, i - start, 3, 255);
		if (v < 0)
			return -1;
		out[part] = (uint8_t)v;
		if (part < 3) {
			if (i == len)
				return -1;
			i++;        /* the dot */
		}
	}
	return i == len ? 0 : -1;
}

static int
v1_ipv6(const char *s, size_t len, uint8_t out[16])
{
	char tmp[INET6_ADDRSTRLEN];
	size_t i;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':'))
			return -1;   /* no embedded IPv4, no zone */
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

static void
set_addr(struct sockaddr_storage *ss, int family, const uint8_t *addr,
    unsigned port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
		sin->sin_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
		sin6->sin6_port = htons((uint16_t)port);
	}
}

/* "TCP4 src dst sport dport" or "TCP6 ..." (line without "PROXY " and
 * CRLF). */
static enum proxy_status
v1_fields(const char *line, size_t len, struct proxy_result *res)
{
	const char *f[5];
	size_t flen[5], nf = 0, i = 0, start;
	uint8_t src[16], dst[16];
	long sport, dport;
	int family;

	while (nf < 5) {
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (i == start)
			return fail(res, "v1: empty field or extra space");
		f[nf] = line + start;
		flen[nf] = i - start;
		nf++;
		if (i == len)
			break;
		i++;            /* exactly one space */
	}
	if (i != len || nf != 5 || line[len - 1] == ' ')
		return fail(res, "v1: not protocol, two addresses and two "
		    "ports");
	if (flen[0] == 4 && memcmp(f[0], "TCP4", 4) == 0) {
		family = AF_INET;
		if (v1_ipv4(f[1], flen[1], src) < 0 ||
		    v1_ipv4(f[2], flen[2], dst) < 0)
			return fail(res, "v1: bad IPv4 address");
	} else if (flen[0] == 4 && memcmp(f[0], "TCP6", 4) == 0) {
		family = AF_INET6;
		if (v1_ipv6(f[1], flen[1], src) < 0 ||
		    v1_ipv6(f[2], flen[2], dst) < 0)
			return fail(res, "v1: bad IPv6 address");
	} else
		return fail(res, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	sport = decimal(f[3], flen[3], 5, 65535);
	dport = decimal(f[4], flen[4], 5, 65535);
	if (sport < 0 || dport < 0)
		return fail(res, "v1: bad port");
	set_addr(&res->src, family, src, (unsigned)sport);
	set_addr(&res->dst, family, dst, (unsigned)dport);
	res->has_addr = 1;
	return PROXY_DONE;
}

static enum proxy_status
parse_v1(const uint8_t *buf, size_t len, struct proxy_result *res)
{
	static const char prefix[] = "PROXY ";
	size_t i, n = len < sizeof(prefix) - 1 ? len : sizeof(prefix) - 1;
	enum proxy_status st;
	const char *line = (const char *)buf;

	if (memcmp(buf, prefix, n) != 0)
		return fail(res, "v1: does not begin with \"PROXY \"");
	for (i = 0; i < len && i < PROXY_V1_MAX; i++) {
		if (buf[i] == '\n')
			return fail(res, "v1: bare LF");
		if (buf[i] == '\r')
			break;
		if (buf[i] == '\0')
			return fail(res, "v1: NUL byte");
	}
	if (i + 2 > PROXY_V1_MAX)
		return fail(res, "v1: no CRLF within 107 bytes");
	if (i + 1 >= len)
		return PROXY_NEED_MORE;   /* no CR yet, or CR without LF yet */
	if (buf[i + 1] != '\n')
		return fail(res, "v1: bare CR");
	if (i < sizeof(prefix) - 1)
		return fail(res, "v1: line ends inside \"PROXY \"");
	res->length = i + 2;
	line += sizeof(prefix) - 1;
	n = i - (sizeof(prefix) - 1);
	if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0) {
		/* the rest is to be ignored, whatever it is */
		if (n > 7 && line[7] != ' ')
			return fail(res, "v1: protocol is not TCP4, TCP6 or "
			    "UNKNOWN");
		res->has_addr = 0;
		return PROXY_DONE;
	}
	st = v1_fields(line, n, res);
	if (st != PROXY_DONE)
		res->length = 0;
	return st;
}

/* The TLVs after the addresses: each type, 16-bit length, value, and
 * the last one ending exactly where the header does. */
static int
v2_tlvs_framed(const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t vlen;

		if (len < 3)
			return -1;
		vlen = ((size_t)p[1] << 8) | p[2];
		if (vlen > len - 3)
			return -1;
		p += 3 + vlen;
		len -= 3 + vlen;
	}
	return 0;
}

static enum proxy_status
parse_v2(const uint8_t *buf, size_t len, struct proxy_result *res)
{
	size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig), total, alen;
	unsigned ver, cmd, fam, proto;
	const uint8_t *a;

	if (memcmp(buf, v2_sig, n) != 0)
		return fail(res, "v2: no PROXY v2 signature");
	if (len > 12 && (buf[12] >> 4) != 2)
		return fail(res, "v2: version is not 2");
	if (len > 12 && (buf[12] & 0x0f) > 1)
		return fail(res, "v2: command is neither LOCAL nor PROXY");
	if (len > 13 && ((buf[13] >> 4) > 3 || (buf[13] & 0x0f) > 2))
		return fail(res, "v2: unknown address family or protocol");
	if (len < 16)
		return PROXY_NEED_MORE;
	ver = buf[12] >> 4;
	cmd = buf[12] & 0x0f;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0f;
	(void)ver;
	alen = ((size_t)buf[14] << 8) | buf[15];
	total = 16 + alen;
	if (total > PROXY_V2_MAX)
		return fail(res, "v2: header longer than 536 bytes");
	if (len < total)
		return PROXY_NEED_MORE;
	a = buf + 16;
	res->length = total;
	if (cmd == 0) {
		/* LOCAL: the balancer's own connection; whatever follows
		 * is skipped, the family too */
		res->local = 1;
		res->has_addr = 0;
		return PROXY_DONE;
	}
	if ((fam == 1 || fam == 2) && proto == 2) {
		res->length = 0;
		return fail(res, "v2: a datagram protocol on a stream");
	}
	if ((fam == 1 || fam == 2) && proto == 1) {
		size_t need = fam == 1 ? 12 : 36, al = fam == 1 ? 4 : 16;
		int family = fam == 1 ? AF_INET : AF_INET6;

		if (alen < need) {
			res->length = 0;
			return fail(res, "v2: address block too short for its "
			    "family");
		}
		if (v2_tlvs_framed(a + need, alen - need) < 0) {
			res->length = 0;
			return fail(res, "v2: malformed TLV");
		}
		set_addr(&res->src, family, a,
		    ((unsigned)a[2 * al] << 8) | a[2 * al + 1]);
		set_addr(&res->dst, family, a + al,
		    ((unsigned)a[2 * al + 2] << 8) | a[2 * al + 3]);
		res->has_addr = 1;
		return PROXY_DONE;
	}
	if (fam == 3 && proto != 0) {
		/* UNIX: no IP address to take; the TLVs are still framed */
		if (alen < 216 || v2_tlvs_framed(a + 216, alen - 216) < 0) {
			res->length = 0;
			return fail(res, "v2: malformed UNIX address block");
		}
	}
	/* UNSPEC family or protocol: the connection's own endpoints */
	res->has_addr = 0;
	return PROXY_DONE;
}

enum proxy_status
proxy_header_parse(int version, const uint8_t *buf, size_t len,
    struct proxy_result *res)
{
	memset(res, 0, sizeof(*res));
	res->version = version;
	if (version != 1 && version != 2)
		return fail(res, "no PROXY version configured");
	if (len == 0)
		return PROXY_NEED_MORE;
	return version == 1 ? parse_v1(buf, len, res) :
	    parse_v2(buf, len, res);
}
