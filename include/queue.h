/*
 * queue.h - the queue runner process (ferry-queue): the only process that
 * opens the queue database.  It serves the SMTP workers' intake
 * connections from one event loop and commits every message completed in
 * one turn of the loop in one transaction (group commit).
 */
#ifndef FERRY_QUEUE_H
#define FERRY_QUEUE_H

struct child_args;

int queue(const struct child_args *a);

#endif
