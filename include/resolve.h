/*
 * resolve.h - ferry-resolve, the process that finds the SMTP clients'
 * names for the workers: a PTR lookup of the address, then A or AAAA of
 * the name found, which must contain the address (forward-confirmed
 * reverse DNS).  The workers' side is resolve_client.h.
 */
#ifndef FERRY_RESOLVE_H
#define FERRY_RESOLVE_H

/* How long a worker may give a client's name (or definite lack of one)
 * itself, without asking again: a busy client reconnecting costs no
 * round trip, and a name is at most this much older than ferry-resolve's
 * own cache would make it. */
#define RESOLVE_KEEP_MS 10000

struct child_args;

int resolve(const struct child_args *a);

#endif
