/*
 * nexthop.h - where a delivery agent takes a job: the connection it kept
 * from the last job when the next hop is the same, else the route's hosts
 * in the job's order (for a pool, the host the runner chose first), or the recipient domain's MX hosts by preference, each
 * address in turn until every recipient has a result (nexthop.c).
 */
#ifndef FERRY_NEXTHOP_H
#define FERRY_NEXTHOP_H

#include <stdint.h>

struct job_ctx;

/* The kept connection, when its key is this job's (key: deliver_hop_key):
 * RSET, then the transaction; a kept connection elsewhere is closed. */
void nexthop_reuse(struct job_ctx *x, const char *key);
/* The route's hosts ("host:port", "[addr]:port"), with failover. */
void nexthop_hosts(struct job_ctx *x);
/* Notes what the job found at a route host (JOB_DONE reports it, and
 * the runner keeps each pool host's health from it). */
void nexthop_note_host(struct job_ctx *x, const char *host,
    uint32_t outcome);
/* The MX hosts of the job's domain (RFC 5321 section 5), with failover. */
void nexthop_mx(struct job_ctx *x);

#endif
