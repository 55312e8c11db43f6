/*
 * dns_mx.h - the DNS lookups of MX delivery (RFC 5321 section 5):
 * MX records, and the addresses of MX hosts, through c-ares so that a
 * configured resolver (delivery.resolver) is the one asked and no lookup
 * holds the agent past its deadline (see dns_mx.c).
 */
#ifndef FERRY_DNS_MX_H
#define FERRY_DNS_MX_H

#include <stddef.h>
#include <sys/socket.h>

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,      /* the name does not exist */
	DNS_NODATA,        /* it exists, without records of that type */
	DNS_NULLMX,        /* RFC 7505 "MX 0 ." */
	DNS_TEMP           /* SERVFAIL, timeout, malformed answer */
};

struct dns_mx {
	char host[256];        /* without the trailing dot */
	unsigned pref;
};

/* Sets up the resolver (reading /etc/resolv.conf: call it before dropping
 * privileges); when spec is non-empty ("addr", "addr:port",
 * "[v6addr]:port") the only server asked is that one.  0, or -1 with
 * err filled. */
int dns_resolver_setup(const char *spec, char *err, size_t errlen);

/* A c-ares channel of its own, set up the same way (for ferry-resolve):
 * each try waits try_ms, tries in all; the server of spec only when it
 * is non-empty.  0, or -1 with err filled. */
struct ares_channeldata;
int dns_channel_open(struct ares_channeldata **chan, const char *spec,
    int try_ms, int tries, char *err, size_t errlen);

/* The MX records of domain, sorted by preference, equal preferences in
 * random order.  *mx is malloc'd (free it) when DNS_OK.  A timeout or an
 * unanswered query is DNS_TEMP. */
enum dns_status dns_mx_lookup(const char *domain, struct dns_mx **mx,
    size_t *nmx);

/* A then AAAA records of host (at most max addresses), with port set;
 * both queries are out at once. */
enum dns_status dns_addr_lookup(const char *host, int port,
    struct sockaddr_storage *out, size_t max, size_t *n);

/* Parses an answer (for tests): MX records of an answer packet. */
enum dns_status dns_parse_mx(const unsigned char *ans, int len,
    struct dns_mx **mx, size_t *nmx);

const char *dns_status_name(enum dns_status s);

#endif
