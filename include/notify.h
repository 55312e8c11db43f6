/*
 * notify.h - tell the service manager how ferryd is doing (sd_notify(3)).
 *
 * With libsystemd (configure --with-systemd, HAVE_SYSTEMD) these send
 * READY=1, RELOADING=1, STOPPING=1 and STATUS= to $NOTIFY_SOCKET; without
 * it, or when ferryd was not started by systemd, they do nothing.
 * With WatchdogSec= in the unit, systemd sets $WATCHDOG_USEC and expects
 * WATCHDOG=1 at least that often; the master sends it only while its
 * queue runner answers (master.c).
 */
#include <stdint.h>

#ifndef FERRY_NOTIFY_H
#define FERRY_NOTIFY_H

/* Listeners bound, spool ready, queue runner started (also after a
 * reload, finished or refused). */
void notify_ready(void);
/* A SIGHUP reload begins; notify_ready() ends it. */
void notify_reloading(void);
/* Shutdown has begun. */
void notify_stopping(void);
/* A one-line STATUS= text, printf-style. */
void notify_status(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The watchdog period systemd asked for in microseconds, 0 when there is
 * none (or no libsystemd). */
uint64_t notify_watchdog_usec(void);
/* WATCHDOG=1: everything that must answer has answered. */
void notify_watchdog(void);

#endif
