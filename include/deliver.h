/*
 * deliver.h - the delivery agent process (ferry-deliver): an SMTP client
 * that takes one job at a time from the queue runner and reports a result
 * per recipient (deliver_proto.h).
 */
#ifndef FERRY_DELIVER_H
#define FERRY_DELIVER_H

struct child_args;

/* The agent's entry: load, drop, connect to the runner, serve jobs. */
int deliver(const struct child_args *a);

#endif
