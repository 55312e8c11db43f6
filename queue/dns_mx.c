/*
 * dns_mx.c - MX and address lookups for the delivery agent through c-ares,
 * each driven by poll(2) on the library's sockets under one deadline, and
 * pointing the library at a configured server.
 *
 * The agent handles one job at a time; a lookup therefore never blocks
 * past DNS_LOOKUP_MS (each try waits DNS_TRY_MS, doubled per retry, and
 * whatever is still out at the deadline is cancelled and counts as a
 * temporary failure).  Queries are plain ares_query calls: no search list,
 * no hosts file, the answer of the server only, as res_query gave.
 *
 * Security stance: answers come from the network.  They are parsed with
 * c-ares's bounds-checked parsers (a malformed answer is a temporary
 * failure), host names are length-limited and checked to be plain host
 * names before they are used, and the number of records kept is bounded.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ares.h>

#include "dns_mx.h"
#include "netaddr.h"
#include "util.h"

#define DNS_MAX_MX 64
#define DNS_MAX_ADDRS 32         /* per type and host */
#define DNS_TRY_MS 3000            /* the first try; c-ares doubles it */
#define DNS_TRIES 2
#define DNS_LOOKUP_MS 15000        /* one lookup, all its queries, at most */

/* RFC 1035 class and types */
#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_MX 15
#define DNS_TYPE_AAAA 28

static ares_channel channel;
static int channel_ready;

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

/* "addr", "addr:port" or "[addr]:port" into one server node. */
static int
parse_server(const char *spec, struct ares_addr_port_node *node)
{
	struct hostport hp;
	char err[128];

	if (netaddr_parse_hostport(spec, 53, HOSTPORT_BARE_IPV6, &hp, err,
	    sizeof(err)) < 0)
		return -1;
	memset(node, 0, sizeof(*node));
	if (inet_pton(AF_INET, hp.host, &node->addr.addr4) == 1)
		node->family = AF_INET;
	else if (inet_pton(AF_INET6, hp.host, &node->addr.addr6) == 1)
		node->family = AF_INET6;
	else
		return -1;
	node->udp_port = hp.port;
	node->tcp_port = hp.port;
	return 0;
}

int
dns_channel_open(struct ares_channeldata **chan, const char *spec,
    int try_ms, int tries, char *err, size_t errlen)
{
	static int library_ready;
	struct ares_options opts;
	struct ares_addr_port_node server;
	int rc;

	if (spec != NULL && spec[0] != '\0' &&
	    parse_server(spec, &server) != 0) {
		snprintf(err, errlen, "resolver \"%s\" is not address, "
		    "address:port or [address]:port", spec);
		return -1;
	}
	if (!library_ready) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) !=
		    ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
			return -1;
		}
		library_ready = 1;
	}
	/* reads /etc/resolv.conf now, before the caller drops privileges */
	memset(&opts, 0, sizeof(opts));
	opts.timeout = try_ms;
	opts.tries = tries;
	rc = ares_init_options(chan, &opts, ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		return -1;
	}
	if (spec != NULL && spec[0] != '\0' &&
	    (rc = ares_set_servers_ports(*chan, &server)) != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver \"%s\": %s", spec,
		    ares_strerror(rc));
		ares_destroy(*chan);
		return -1;
	}
	return 0;
}

int
dns_resolver_setup(const char *spec, char *err, size_t errlen)
{
	if (channel_ready) {
		ares_destroy(channel);
		channel_ready = 0;
	}
	if (dns_channel_open(&channel, spec, DNS_TRY_MS, DNS_TRIES, err,
	    errlen) < 0)
		return -1;
	channel_ready = 1;
	return 0;
}

/* --- one round of queries, under the deadline ---------------------------- */

struct query {
	int done;
	int status;                /* ARES_SUCCESS or an ARES_E* code */
	unsigned char *ans;        /* the answer when ARES_SUCCESS */
	int len;
};

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;

	(void)timeouts;
	q->done = 1;
	q->status = status;
	if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
		q->ans = xmalloc((size_t)alen);
		memcpy(q->ans, abuf, (size_t)alen);
		q->len = alen;
	} else if (status == ARES_SUCCESS)
		q->status = ARES_EBADRESP;
}

static int
all_done(const struct query *qs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!qs[i].done)
			return 0;
	return 1;
}

/* Drives the channel until every query in qs has its answer or the
 * deadline passes; then what is still out is cancelled (ARES_ECANCELLED). */
static void
run_queries(struct query *qs, size_t n)
{
	int64_t deadline = now_ms() + DNS_LOOKUP_MS;

	while (!all_done(qs, n)) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval max, tv, *tvp;
		nfds_t nfds = 0;
		int64_t left = deadline - now_ms();
		unsigned bits;
		int i, ms, rc;

		if (left <= 0)
			break;
		/* bit i: socks[i] readable, bit 16 + i: writable (tested
		 * unsigned: c-ares's own macros shift into the sign bit) */
		bits = (unsigned)ares_getsock(channel, socks,
		    ARES_GETSOCK_MAXNUM);
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[nfds].fd = socks[i];
			pfd[nfds].events = ev;
			pfd[nfds].revents = 0;
			nfds++;
		}
		max.tv_sec = (time_t)(left / 1000);
		max.tv_usec = (suseconds_t)(left % 1000 * 1000);
		tvp = ares_timeout(channel, &max, &tv);
		ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
		rc = poll(pfd, nfds, ms);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0) {
			/* nothing ready: let c-ares handle its timeouts */
			ares_process_fd(channel, ARES_SOCKET_BAD,
			    ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < (int)nfds; i++) {
			short re = pfd[i].revents;

			if (re == 0)
				continue;
			ares_process_fd(channel,
			    re & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd :
			    ARES_SOCKET_BAD,
			    re & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
		}
	}
	if (!all_done(qs, n))
		ares_cancel(channel);
}

/* Sends the queries for name (one per type) and waits for them. */
static void
lookup(const char *name, const int *types, struct query *qs, size_t n)
{
	size_t i;

	memset(qs, 0, n * sizeof(*qs));
	if (!channel_ready) {
		for (i = 0; i < n; i++) {
			qs[i].done = 1;
			qs[i].status = ARES_ENOTINITIALIZED;
		}
		return;
	}
	for (i = 0; i < n; i++)
		ares_query(channel, name, DNS_CLASS_IN, types[i], on_answer,
		    &qs[i]);
	run_queries(qs, n);
}

/* A failed query's status as ferry sees it: NXDOMAIN and "no records of
 * that type" are answers; anything else (SERVFAIL, REFUSED, timeout,
 * a malformed answer, the deadline) is temporary. */
static enum dns_status
query_error(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
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
	struct ares_mx_reply *head = NULL, *r;
	struct dns_mx *mx = NULL, tmp;
	size_t n = 0, i, j;
	int rc, nullmx = 0;

	*mxp = NULL;
	*nmx = 0;
	rc = ares_parse_mx_reply(ans, len, &head);
	if (rc == ARES_ENODATA)
		return DNS_NODATA;
	if (rc != ARES_SUCCESS)
		return DNS_TEMP;
	for (r = head; r != NULL; r = r->next) {
		const char *name = r->host != NULL ? r->host : "";

		/* RFC 7505: "0 ." (c-ares gives the root as "") */
		if (name[0] == '\0' || strcmp(name, ".") == 0) {
			nullmx = 1;
			continue;
		}
		if (n >= DNS_MAX_MX || strlen(name) >= sizeof(mx->host) ||
		    !host_ok(name))
			continue;
		mx = xrealloc(mx, (n + 1) * sizeof(*mx));
		mx[n].pref = r->priority;
		ferry_strlcpy(mx[n].host, name, sizeof(mx[n].host));
		n++;
	}
	ares_free_data(head);
	if (nullmx) {
		free(mx);
		return DNS_NULLMX;
	}
	if (n == 0)
		return DNS_NODATA;
	/* shuffle, then a stable sort: random order among equals */
	for (i = n - 1; i > 0; i--) {
		uint32_t rnd;

		random_bytes(&rnd, sizeof(rnd));
		j = rnd % (i + 1);
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
	static const int type = DNS_TYPE_MX;
	struct query q;
	enum dns_status st;

	*mx = NULL;
	*nmx = 0;
	lookup(domain, &type, &q, 1);
	if (q.status != ARES_SUCCESS)
		st = query_error(q.status);
	else
		st = dns_parse_mx(q.ans, q.len, mx, nmx);
	free(q.ans);
	return st;
}

/* Adds the A or AAAA records of one answer. */
static enum dns_status
add_addrs(const struct query *q, int type, int port,
    struct sockaddr_storage *out, size_t max, size_t *n)
{
	struct ares_addrttl a4[DNS_MAX_ADDRS];
	struct ares_addr6ttl a6[DNS_MAX_ADDRS];
	int count = DNS_MAX_ADDRS, rc, k;

	if (q->status != ARES_SUCCESS)
		return query_error(q->status);
	if (type == DNS_TYPE_A)
		rc = ares_parse_a_reply(q->ans, q->len, NULL, a4, &count);
	else
		rc = ares_parse_aaaa_reply(q->ans, q->len, NULL, a6, &count);
	if (rc != ARES_SUCCESS)
		return query_error(rc == ARES_ENODATA ? rc : ARES_EBADRESP);
	for (k = 0; k < count && *n < max; k++) {
		memset(&out[*n], 0, sizeof(out[*n]));
		if (type == DNS_TYPE_A) {
			struct sockaddr_in *sa = (struct sockaddr_in *)&out[*n];

			sa->sin_family = AF_INET;
			sa->sin_port = htons((uint16_t)port);
			sa->sin_addr = a4[k].ipaddr;
		} else {
			struct sockaddr_in6 *sa =
			    (struct sockaddr_in6 *)&out[*n];

			sa->sin6_family = AF_INET6;
			sa->sin6_port = htons((uint16_t)port);
			memcpy(&sa->sin6_addr, &a6[k].ip6addr,
			    sizeof(sa->sin6_addr));
		}
		(*n)++;
	}
	return DNS_OK;
}

enum dns_status
dns_addr_lookup(const char *host, int port, struct sockaddr_storage *out,
    size_t max, size_t *n)
{
	static const int types[2] = { DNS_TYPE_A, DNS_TYPE_AAAA };
	struct query q[2];
	enum dns_status st[2];
	int i;

	*n = 0;
	/* both asked at once; the A records come first */
	lookup(host, types, q, 2);
	for (i = 0; i < 2; i++) {
		st[i] = add_addrs(&q[i], types[i], port, out, max, n);
		free(q[i].ans);
	}
	if (*n > 0)
		return DNS_OK;
	if (st[0] == DNS_TEMP || st[1] == DNS_TEMP)
		return DNS_TEMP;
	if (st[0] == DNS_NXDOMAIN || st[1] == DNS_NXDOMAIN)
		return DNS_NXDOMAIN;
	return DNS_NODATA;
}
