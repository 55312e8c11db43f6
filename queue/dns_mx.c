/*
 * dns_mx.c - MX and address lookups for the delivery agent with the
 * stub resolver (res_query), and pointing that resolver at a configured
 * server.
 *
 * Security stance: answers come from the network.  They are parsed with
 * the resolver library's bounds-checked ns_* functions, host names are
 * length-limited and checked to be plain host names before they are
 * used, and the number of records kept is bounded.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include "dns_mx.h"
#include "util.h"

#define DNS_MAX_MX 64
#define DNS_ANSWER_MAX 65536

const char *
dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "host not found";
	case DNS_NODATA:
		return "no data";
	case DNS_NULLMX:
		return "null MX";
	default:
		return "temporary DNS failure";
	}
}

int
dns_resolver_setup(const char *spec, char *err, size_t errlen)
{
	char host[128];
	const char *colon, *portstr = NULL;
	unsigned long port = 53;
	struct in_addr a4;
	struct in6_addr a6;

	if (res_init() != 0) {
		snprintf(err, errlen, "res_init failed");
		return -1;
	}
	if (spec == NULL || spec[0] == '\0')
		return 0;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (end == NULL || (size_t)(end - spec - 1) >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = '\0';
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0')
			goto bad;
	} else if ((colon = strchr(spec, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		if ((size_t)(colon - spec) >= sizeof(host))
			goto bad;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		portstr = colon + 1;
	} else {
		if (strlen(spec) >= sizeof(host))
			goto bad;
		strcpy(host, spec);
	}
	if (portstr != NULL) {
		char *e;

		errno = 0;
		port = strtoul(portstr, &e, 10);
		if (errno || *e != '\0' || port == 0 || port > 65535)
			goto bad;
	}
	if (inet_pton(AF_INET, host, &a4) == 1) {
		_res.nsaddr_list[0].sin_family = AF_INET;
		_res.nsaddr_list[0].sin_addr = a4;
		_res.nsaddr_list[0].sin_port = htons((uint16_t)port);
		if (_res._u._ext.nsaddrs[0] != NULL) {
			free(_res._u._ext.nsaddrs[0]);
			_res._u._ext.nsaddrs[0] = NULL;
		}
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		struct sockaddr_in6 *s6 = _res._u._ext.nsaddrs[0];

		/* glibc takes nsaddrs[n] when nsaddr_list[n] has no family;
		 * it frees them with free() */
		if (s6 == NULL)
			s6 = malloc(sizeof(*s6));
		if (s6 == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		memset(s6, 0, sizeof(*s6));
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = a6;
		s6->sin6_port = htons((uint16_t)port);
		_res._u._ext.nsaddrs[0] = s6;
		memset(&_res.nsaddr_list[0], 0, sizeof(_res.nsaddr_list[0]));
	} else
		goto bad;
	_res.nscount = 1;
	return 0;
bad:
	snprintf(err, errlen, "resolver \"%s\" is not address, address:port "
	    "or [address]:port", spec);
	return -1;
}

/* h_errno after a failed res_query. */
static enum dns_status
query_error(void)
{
	switch (h_errno) {
	case HOST_NOT_FOUND:
		return DNS_NXDOMAIN;
	case NO_DATA:
		return DNS_NODATA;
	default:
		return DNS_TEMP;
	}
}

/* A host name we are willing to connect to: letters, digits, '-', '_'
 * and dots, not empty. */
static int
host_ok(const char *h)
{
	size_t i;

	if (h[0] == '\0')
		return 0;
	for (i = 0; h[i] != '\0'; i++) {
		char ch = h[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.'))
			return 0;
	}
	return 1;
}

enum dns_status
dns_parse_mx(const unsigned char *ans, int len, struct dns_mx **mxp,
    size_t *nmx)
{
	ns_msg msg;
	ns_rr rr;
	struct dns_mx *mx = NULL, tmp;
	size_t n = 0, i, j;
	int count, k, nullmx = 0;

	*mxp = NULL;
	*nmx = 0;
	if (ns_initparse(ans, len, &msg) < 0)
		return DNS_TEMP;
	count = ns_msg_count(msg, ns_s_an);
	for (k = 0; k < count; k++) {
		char name[NS_MAXDNAME];
		const unsigned char *rd;
		int nl;

		if (ns_parserr(&msg, ns_s_an, k, &rr) < 0) {
			free(mx);
			return DNS_TEMP;
		}
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
			continue;
		if (ns_rr_rdlen(rr) < 3) {
			free(mx);
			return DNS_TEMP;
		}
		rd = ns_rr_rdata(rr);
		nl = dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 2, name,
		    sizeof(name));
		if (nl < 0) {
			free(mx);
			return DNS_TEMP;
		}
		if (name[0] == '\0' || strcmp(name, ".") == 0) {
			nullmx = 1;
			continue;
		}
		if (n >= DNS_MAX_MX || strlen(name) >= sizeof(mx->host) ||
		    !host_ok(name))
			continue;
		mx = xrealloc(mx, (n + 1) * sizeof(*mx));
		mx[n].pref = ((unsigned)rd[0] << 8) | rd[1];
		ferry_strlcpy(mx[n].host, name, sizeof(mx[n].host));
		n++;
	}
	if (nullmx) {
		free(mx);
		return DNS_NULLMX;
	}
	if (n == 0)
		return DNS_NODATA;
	/* shuffle, then a stable sort: random order among equals */
	for (i = n - 1; i > 0; i--) {
		uint32_t r;

		random_bytes(&r, sizeof(r));
		j = r % (i + 1);
		tmp = mx[i];
		mx[i] = mx[j];
		mx[j] = tmp;
	}
	for (i = 1; i < n; i++) {
		tmp = mx[i];
		for (j = i; j > 0 && mx[j - 1].pref > tmp.pref; j--)
			mx[j] = mx[j - 1];
		mx[j] = tmp;
	}
	*mxp = mx;
	*nmx = n;
	return DNS_OK;
}

enum dns_status
dns_mx_lookup(const char *domain, struct dns_mx **mx, size_t *nmx)
{
	unsigned char *ans = xmalloc(DNS_ANSWER_MAX);
	enum dns_status st;
	int len;

	*mx = NULL;
	*nmx = 0;
	len = res_query(domain, ns_c_in, ns_t_mx, ans, DNS_ANSWER_MAX);
	if (len < 0)
		st = query_error();
	else
		st = dns_parse_mx(ans, len < DNS_ANSWER_MAX ? len :
		    DNS_ANSWER_MAX, mx, nmx);
	free(ans);
	return st;
}

/* Adds the A or AAAA records of one answer. */
static enum dns_status
add_addrs(const unsigned char *ans, int len, int type, int port,
    struct sockaddr_storage *out, size_t max, size_t *n)
{
	ns_msg msg;
	ns_rr rr;
	int count, k;

	if (ns_initparse(ans, len, &msg) < 0)
		return DNS_TEMP;
	count = ns_msg_count(msg, ns_s_an);
	for (k = 0; k < count && *n < max; k++) {
		if (ns_parserr(&msg, ns_s_an, k, &rr) < 0)
			return DNS_TEMP;
		if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
			continue;
		memset(&out[*n], 0, sizeof(out[*n]));
		if (type == ns_t_a && ns_rr_rdlen(rr) == 4) {
			struct sockaddr_in *s = (struct sockaddr_in *)&out[*n];

			s->sin_family = AF_INET;
			s->sin_port = htons((uint16_t)port);
			memcpy(&s->sin_addr, ns_rr_rdata(rr), 4);
			(*n)++;
		} else if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
			struct sockaddr_in6 *s =
			    (struct sockaddr_in6 *)&out[*n];

			s->sin6_family = AF_INET6;
			s->sin6_port = htons((uint16_t)port);
			memcpy(&s->sin6_addr, ns_rr_rdata(rr), 16);
			(*n)++;
		}
	}
	return DNS_OK;
}

enum dns_status
dns_addr_lookup(const char *host, int port, struct sockaddr_storage *out,
    size_t max, size_t *n)
{
	static const int types[2] = { ns_t_a, ns_t_aaaa };
	unsigned char *ans = xmalloc(DNS_ANSWER_MAX);
	enum dns_status st[2];
	int i, len;

	*n = 0;
	for (i = 0; i < 2; i++) {
		len = res_query(host, ns_c_in, types[i], ans, DNS_ANSWER_MAX);
		if (len < 0)
			st[i] = query_error();
		else
			st[i] = add_addrs(ans, len < DNS_ANSWER_MAX ? len :
			    DNS_ANSWER_MAX, types[i], port, out, max, n);
	}
	free(ans);
	if (*n > 0)
		return DNS_OK;
	if (st[0] == DNS_TEMP || st[1] == DNS_TEMP)
		return DNS_TEMP;
	if (st[0] == DNS_NXDOMAIN || st[1] == DNS_NXDOMAIN)
		return DNS_NXDOMAIN;
	return DNS_NODATA;
}
