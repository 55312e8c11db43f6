/*
 * queue.h - the queue runner process (ferry-queue): the only process that
 * opens the queue database.  One event loop serves the SMTP workers'
 * intake connections (committing every message completed in one turn of
 * the loop in one transaction: group commit), the delivery agents, the
 * control socket and the master's notes.
 */
#ifndef FERRY_QUEUE_H
#define FERRY_QUEUE_H

struct child_args;

int queue(const struct child_args *a);

#endif
