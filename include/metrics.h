/*
 * metrics.h - the ferry-metrics process: the HTTP endpoint for
 * monitoring (metrics.c).
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

struct child_args;

int metrics(const struct child_args *a);

#endif
