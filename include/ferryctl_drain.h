/*
 * ferryctl_drain.h - "ferryctl drain [--wait [--timeout T]]" and
 * "ferryctl undrain" (ferryctl_drain.c).
 */
#ifndef FERRY_FERRYCTL_DRAIN_H
#define FERRY_FERRYCTL_DRAIN_H

#include <stddef.h>

/* Sends the request words to the runner on sock: ferryctl's exit status
 * (0: *ans holds the JSON answer, malloc'd, *anslen bytes). */
typedef int (*ctl_ask_fn)(const char *sock, int argc, char *const *argv,
    char **ans, size_t *anslen);

/* A --timeout value: seconds, or a number with s, m or h; -1 when it
 * is not one. */
long long ctl_drain_timeout(const char *s);

/* "ferryctl drain" (on) or "undrain": asks, then waits until the master
 * holds the new state (0; 1 when it does not within the wait, or the
 * daemon refused; 75 when it cannot be asked).  With wait (drain only),
 * then waits until the queue is empty: 0, or 1 after timeout_ms
 * (< 0: no limit) saying what is left, or when ferryd stopped
 * draining meanwhile. */
int ctl_drain(const char *sock, ctl_ask_fn ask, int on, int wait,
    long long timeout_ms, int json_out);

#endif
