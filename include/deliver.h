/*
 * deliver.h - the delivery agent process (ferry-deliver): an SMTP client
 * that takes one job at a time from the queue runner and reports a result
 * per recipient (deliver_proto.h).
 */
#ifndef FERRY_DELIVER_H
#define FERRY_DELIVER_H

#include <stddef.h>

struct child_args;
struct deliver_job;

/* The agent's entry: load, drop, connect to the runner, serve jobs. */
int deliver(const struct child_args *a);

/* The key of a job's next hop: "route:host:port[,host:port...]" for a
 * route with hosts, "route:domain:port" for MX delivery.  An agent keeps
 * its connection for the next job with the same key and reports it in
 * JOB_DONE.hop.  (Defined in deliver_proto.c, so the runner can use it.) */
void deliver_hop_key(const struct deliver_job *j, char *out, size_t outlen);

#endif
