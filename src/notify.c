/*
 * notify.c - sd_notify(3) for ferryd, or nothing without libsystemd.
 *
 * The calls never fail the daemon: sd_notify's result is ignored (a
 * closed or missing notification socket only means nobody is listening).
 * unset_environment is 0 so that a re-notification after a reload still
 * finds $NOTIFY_SOCKET; the master's children never call these.
 * WATCHDOG=1 is only sent when the master has decided its children are
 * answering (master.c, runner_alive()).
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "notify.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void
send_state(const char *state)
{
	(void)sd_notify(0, state);
}

void
notify_ready(void)
{
	send_state("READY=1");
}

void
notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	/* MONOTONIC_USEC is what systemd >= 253 wants with RELOADING=1
	 * (Type=notify-reload); older versions ignore the field. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
		snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		    (unsigned long long)ts.tv_sec * 1000000ULL +
		    (unsigned long long)ts.tv_nsec / 1000ULL);
		send_state(msg);
	} else {
		send_state("RELOADING=1");
	}
}

void
notify_stopping(void)
{
	send_state("STOPPING=1");
}

void
notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	send_state(msg);
}

uint64_t
notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	/* > 0 only when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set,
	 * is ours) */
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

void
notify_watchdog(void)
{
	send_state("WATCHDOG=1");
}

#else   /* !HAVE_SYSTEMD */

void
notify_ready(void)
{
}

void
notify_reloading(void)
{
}

void
notify_stopping(void)
{
}

void
notify_status(const char *fmt, ...)
{
	(void)fmt;
}

uint64_t
notify_watchdog_usec(void)
{
	return 0;
}

void
notify_watchdog(void)
{
}

#endif
