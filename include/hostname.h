/*
 * hostname.h - host names that came from the DNS, checked before they are
 * used (hostname.c): a client's name goes into log lines and into the
 * Received header of every message, so only a plain host name may.
 */
#ifndef FERRY_HOSTNAME_H
#define FERRY_HOSTNAME_H

#include <stddef.h>

#define HOSTNAME_MAX 253        /* RFC 1035: without the trailing dot */
#define HOSTNAME_LABEL_MAX 63

/* 1 when name (len bytes, no NUL needed) is a plain host name: labels of
 * 1 to 63 letters, digits and '-' (not first or last), separated by
 * single dots, HOSTNAME_MAX bytes at most, one trailing dot allowed, and
 * a last label that is not all digits (so that no name reads as an
 * address).  0 otherwise. */
int hostname_valid(const char *name, size_t len);

/* The name to ask PTR records for: "d.c.b.a.in-addr.arpa" for an IPv4
 * address (4 bytes, family AF_INET) or the 32 nibbles under "ip6.arpa"
 * for an IPv6 one (16 bytes).  0, or -1 when the family is neither or
 * out is too small (73 bytes always suffice). */
int hostname_ptr_query(int family, const unsigned char *addr, char *out,
    size_t outlen);

#endif
