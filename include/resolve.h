/*
 * resolve.h - ferry-resolve, the process that finds the SMTP clients'
 * names for the workers: a PTR lookup of the address, then A or AAAA of
 * the name found, which must contain the address (forward-confirmed
 * reverse DNS).  The workers' side is resolve_client.h.
 */
#ifndef FERRY_RESOLVE_H
#define FERRY_RESOLVE_H

struct child_args;

int resolve(const struct child_args *a);

#endif
