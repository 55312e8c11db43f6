/*
 * address_pattern.h - matching an e-mail address against the patterns
 * of a route's senders and allowed_from lists.
 */
#ifndef FERRY_ADDRESS_PATTERN_H
#define FERRY_ADDRESS_PATTERN_H

#include <stddef.h>

/* How well addr matches the best of patterns[0..n): "a@example.com"
 * (the address), "@example.com" (any address at that domain),
 * ".example.com" (any address at a subdomain of it); case is ignored.
 * 0: no match (and always for the null sender "" or an address without
 * a domain); higher is more specific: an address beats "@domain", which
 * beats any ".domain", and a longer ".domain" beats a shorter one. */
size_t address_pattern_rank(char *const *patterns, size_t n,
    const char *addr);

#endif
