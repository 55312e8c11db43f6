/*
 * netaddr.h - IPv4/IPv6 addresses, CIDR networks and "host:port" specs:
 * parsing, matching and printing.  Pure functions, no I/O.
 */
#ifndef FERRY_NETADDR_H
#define FERRY_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];    /* network address, host bits cleared */
	unsigned prefix;     /* 0..32 or 0..128 */
};

/* Parses "192.0.2.0/24", "2001:db8::/32" or a bare address (full-length
 * prefix).  Returns 0, or -1 with a reason in err. Host bits set beyond the
 * prefix are an error (a typo the operator should see). */
int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen);

/* Nonzero when sa (AF_INET, AF_INET6, or an IPv4-mapped IPv6 address)
 * is inside net. */
int cidr_match(const struct cidr *net, const struct sockaddr *sa);
int cidr_match_any(const struct cidr *nets, size_t n,
    const struct sockaddr *sa);

/* "192.0.2.1" or "2001:db8::1" (IPv4-mapped shown as IPv4). */
void sockaddr_ntop(const struct sockaddr *sa, char *out, size_t outlen);
int sockaddr_port(const struct sockaddr *sa);

/* A next hop or server as written by an operator. */
struct hostport {
	char host[256];      /* name or address, without brackets */
	int port;            /* 1..65535 */
	int bracketed;       /* written "[address]": a literal, no lookup */
};

/* Also take an unbracketed IPv6 address ("2001:db8::1", two colons or
 * more) as a host without a port. */
#define HOSTPORT_BARE_IPV6 0x1

/*
 * The one parser for "host", "host:port", "[address]" and
 * "[address]:port" (and, with HOSTPORT_BARE_IPV6, a bare IPv6 address).
 * A spec without a port gets default_port.  The host must not be empty
 * or longer than 255 octets, must not contain white space or control
 * characters, and the port is 1 to 65535 in plain decimal.  Returns 0,
 * or -1 with a reason in err; out is written only on success.
 */
int netaddr_parse_hostport(const char *s, int default_port, unsigned flags,
    struct hostport *out, char *err, size_t errlen);

#endif
