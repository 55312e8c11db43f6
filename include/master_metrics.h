/*
 * master_metrics.h - the master's part of the metrics: the SMTP workers'
 * counters it adds up, written to whoever connects to its metrics socket
 * (MASTER_METRICS_SOCKET_NAME, in the workers' chroot, for ferry-metrics).
 */
#ifndef FERRY_MASTER_METRICS_H
#define FERRY_MASTER_METRICS_H

#include <stddef.h>
#include "worker_counters.h"

/* Accepts every waiting connection on listen_fd (non-blocking) and
 * writes each the totals as Prometheus text, and ferry_draining (the
 * master's drain state, which /readyz follows), then closes it.  Nothing
 * is read and no write waits: ferry-metrics cannot stall the master. */
void master_metrics_serve(int listen_fd, const struct wc_totals *t,
    const char *const *names, size_t n, int draining);

#endif
