/*
 * ferryctl_reload.h - "ferryctl check" and "ferryctl reload"
 * (ferryctl_reload.c).
 */
#ifndef FERRY_FERRYCTL_RELOAD_H
#define FERRY_FERRYCTL_RELOAD_H

#include <stddef.h>

/* Asks the runner for "status" on sock: ferryctl's exit status (0: *ans
 * holds the JSON answer, malloc'd, *anslen bytes). */
typedef int (*ctl_ask_status_fn)(const char *sock, char **ans,
    size_t *anslen);

/* "ferryctl check": the checks and exit status of ferryd -n (0 good,
 * 1 bad). */
int ctl_check(const char *config_path);

/* "ferryctl reload": config_path is the file to check, or NULL for the
 * one the daemon says it reads.  0 when the new generation took over; 1
 * when the file is bad, the signal could not be sent or the generation
 * did not move within the wait; 75 when the daemon cannot be asked. */
int ctl_reload(const char *sock, const char *config_path,
    ctl_ask_status_fn ask_status, int json_out);

#endif
