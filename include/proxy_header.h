/*
 * proxy_header.h - the PROXY protocol header (HAProxy's, version 1 text
 * and version 2 binary) that a load balancer sends before the client's
 * first byte: a pure parser over the bytes received so far.
 */
#ifndef FERRY_PROXY_HEADER_H
#define FERRY_PROXY_HEADER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest v1 line, CRLF included (the specification's worst case,
 * "PROXY UNKNOWN" with two full IPv6 addresses and ports). */
#define PROXY_V1_MAX 107
/* The longest v2 header accepted, its 16 fixed bytes included: the
 * smallest TCP segment every host must take (576 - 40), which the
 * specification says a header always fits in. */
#define PROXY_V2_MAX 536
/* A buffer this large holds any header either version accepts. */
#define PROXY_HEADER_MAX PROXY_V2_MAX

enum proxy_status {
	PROXY_NEED_MORE,     /* a valid beginning: every byte seen so far
	                        belongs to the header, wait for more */
	PROXY_DONE,          /* a complete header of res->length bytes */
	PROXY_ERROR          /* not a header of that version: res->error */
};

struct proxy_result {
	size_t length;       /* bytes the header took (PROXY_DONE) */
	int version;         /* 1 or 2 */
	int local;           /* v2 LOCAL: the balancer's own connection (a
	                        health check), no client behind it */
	int has_addr;        /* src and dst hold the client's connection;
	                        0 for v1 UNKNOWN, v2 LOCAL, and v2 families
	                        without IP addresses: the connection's own
	                        endpoints stand */
	struct sockaddr_storage src, dst;   /* AF_INET or AF_INET6, ports
	                                       set */
	const char *error;   /* a static reason (PROXY_ERROR) */
};

/*
 * Parses the header a connection began with: buf holds the first len
 * bytes received, version (1 or 2) is the one the listener expects - the
 * other version is an error, never guessed at.  PROXY_NEED_MORE
 * promises that all len bytes are part of the header (so the caller may
 * consume them and read more); PROXY_DONE says how long the header was,
 * and the bytes after it are the client's.  A v1 line without its CRLF
 * within PROXY_V1_MAX bytes, a v2 header longer than PROXY_V2_MAX, and
 * anything that does not follow the specification exactly is an error.
 * v2 TLVs are checked for framing and skipped.
 */
enum proxy_status proxy_header_parse(int version, const uint8_t *buf,
    size_t len, struct proxy_result *res);

#endif
