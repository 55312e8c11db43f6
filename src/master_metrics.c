/*
 * master_metrics.c - the master writes the workers' counters to
 * ferry-metrics (see master_metrics.h).
 *
 * Security: the socket is root:<smtpd group> 0660 inside the workers'
 * chroot, so an SMTP worker could connect too; it would only learn the
 * counters.  The master never reads from a connection and writes with
 * MSG_DONTWAIT: a peer that does not read loses its answer (the
 * snapshot is a few KiB, below a socket's buffer), the master never
 * waits on it.
 */
#include "autoconfig.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "master_metrics.h"

#define MASTER_METRICS_ACCEPTS 16   /* per wake-up */

void
master_metrics_serve(int listen_fd, const struct wc_totals *t,
    const char *const *names, size_t n, int draining)
{
	struct mtext text;
	int k;

	if (listen_fd < 0)
		return;
	mtext_init(&text);
	for (k = 0; k < MASTER_METRICS_ACCEPTS; k++) {
		int fd = accept4(listen_fd, NULL, NULL,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (text.len == 0) {
			wc_totals_write(&text, t, names, n);
			mtext_family(&text, "ferry_draining", "gauge",
			    "1 while ferryctl drain holds: new SMTP sessions "
			    "are refused (421 4.3.2) and /readyz is 503.");
			mtext_printf(&text, "ferry_draining %d\n",
			    draining ? 1 : 0);
		}
		if (send(fd, text.buf, text.len, MSG_DONTWAIT |
		    MSG_NOSIGNAL) != (ssize_t)text.len)
			log_debug("metrics socket: the answer did not fit");
		close(fd);
	}
	mtext_free(&text);
}
