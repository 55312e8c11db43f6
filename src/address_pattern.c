/*
 * address_pattern.c - matching an e-mail address against the patterns
 * of a route's senders (choosing the route) and allowed_from (the From
 * addresses rewrite_from leaves alone).  Pure; no allocation.
 */
#include "autoconfig.h"

#include <string.h>
#include <strings.h>

#include "address_pattern.h"

#define RANK_DOMAIN ((size_t)1 << 20)   /* "@example.com" */
#define RANK_ADDRESS ((size_t)1 << 21)  /* "a@example.com" */

size_t
address_pattern_rank(char *const *patterns, size_t n, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *dom = at != NULL ? at + 1 : "";
	size_t i, best = 0, dlen = strlen(dom);

	if (at == NULL || at == addr)
		return 0;   /* the null sender, or no domain: no match */
	for (i = 0; i < n; i++) {
		const char *p = patterns[i];
		size_t plen = strlen(p), rank = 0;

		if (p[0] == '.') {
			/* a subdomain; the longer suffix is the better */
			if (dlen > plen &&
			    strcasecmp(dom + dlen - plen, p) == 0)
				rank = 1 + plen;
		} else if (p[0] == '@') {
			if (strcasecmp(dom, p + 1) == 0)
				rank = RANK_DOMAIN;
		} else if (strcasecmp(p, addr) == 0) {
			rank = RANK_ADDRESS;
		}
		if (rank > best)
			best = rank;
	}
	return best;
}
