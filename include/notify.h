/*
 * notify.h - tell the service manager how ferryd is doing (sd_notify(3)).
 *
 * With libsystemd (configure --with-systemd, HAVE_SYSTEMD) these send
 * READY=1, RELOADING=1, STOPPING=1 and STATUS= to $NOTIFY_SOCKET; without
 * it, or when ferryd was not started by systemd, they do nothing.
 */
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

#endif
