/*
 * worker_counters.h - the SMTP workers' counters (connections by listener
 * and outcome, rejections by reason, TLS versions in, AUTH results, anvil
 * limit hits) and their way to ferry-metrics (worker_counters.c).
 *
 * A worker counts in memory (wcount*) and sends what it counted since
 * its last report as one IMSG_WORKER_COUNTERS frame on the status pipe
 * (smtpd.c: at most every WORKER_COUNTERS_MS, and when its last session
 * ends).
 * The master adds the deltas up (wc_totals_take, which checks every
 * field strictly: a lying worker can inflate counters, nothing more) and
 * writes them as Prometheus text for ferry-metrics (wc_totals_write).
 * Label sets are fixed: the outcome, reason, version and limit names
 * below, and the listeners' names from the configuration.
 */
#ifndef FERRY_WORKER_COUNTERS_H
#define FERRY_WORKER_COUNTERS_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"
#include "metrics_text.h"

#define WORKER_COUNTERS_MS 1000
#define WC_LISTENERS 64            /* listeners counted by index */
#define WC_DELTA_MAX (UINT64_C(1) << 32)   /* per counter per frame */

enum wc_conn {
	WC_CONN_ACCEPTED,          /* a session started */
	WC_CONN_REFUSED_LIMIT,     /* anvil refused it: 421, no session */
	WC_CONN_TLS_FAILED,        /* its TLS handshake failed */
	WC_CONN_PROXY_REFUSED,     /* not from the listener's proxy_networks */
	WC_CONN_PROXY_FAILED,      /* its PROXY header bad, short or late */
	WC_CONN_MAX
};

enum wc_id {
	WC_REJECT_RELAY,           /* rejections by reason */
	WC_REJECT_SIZE,
	WC_REJECT_RATE,
	WC_REJECT_AUTH,
	WC_REJECT_SYNTAX,
	WC_REJECT_SMUGGLING,
	WC_TLS_IN_1_0,             /* handshakes completed, by version */
	WC_TLS_IN_1_1,
	WC_TLS_IN_1_2,
	WC_TLS_IN_1_3,
	WC_TLS_IN_OTHER,
	WC_AUTH_SUCCESS,
	WC_AUTH_FAILURE,
	WC_ANVIL_CONNECTIONS,      /* anvil limit hits, by limit */
	WC_ANVIL_CLIENT_CONNECTIONS,
	WC_ANVIL_CONNECTION_RATE,
	WC_ANVIL_MESSAGE_RATE,
	WC_ANVIL_AUTH_LOCKOUT,
	WC_MAX
};

/* The largest payload on the status pipe: a WORKER_COUNTERS frame with
 * every counter nonzero (pid, then the two lists); with its header far
 * below PIPE_BUF, so frames of sibling workers never interleave. */
#define WORKER_STATUS_PAYLOAD_MAX \
	(4 + 4 + WC_LISTENERS * WC_CONN_MAX * 10 + 4 + WC_MAX * 9)

/* --- worker side: counts since the last frame (global, one worker) */
void wcount(enum wc_id id);
void wcount_conn(size_t listener, enum wc_conn outcome);
/* A handshake completed with this version ("TLSv1.3"). */
void wcount_tls_in(const char *version);
/* A reply was sent (enum reply_id of reply.h): counts the rejections and
 * AUTH results it stands for. */
void wcount_reply(int reply_id);
/* Nonzero when something was counted since the last frame. */
int wcount_pending(void);
/* Appends the counted deltas to m, a frame begun as
 * IMSG_WORKER_COUNTERS (after the pid), and starts counting over. */
void wcount_frame(struct ipc_out *m);

/* --- master side */
struct wc_totals {
	uint64_t conn[WC_LISTENERS][WC_CONN_MAX];
	uint64_t other[WC_MAX];
	/* ferry-anvil's stress mode, as it told the master */
	int stress_on;
	uint64_t stress_entered;
};

/* Adds one frame's deltas (the fields after the pid); -1 when it does
 * not decode, and then nothing was added. */
int wc_totals_take(struct wc_totals *t, struct ipc_in *in);
/* The totals as Prometheus text; names[i] labels listener i (n of
 * them; counts for listeners past n are not shown). */
void wc_totals_write(struct mtext *out, const struct wc_totals *t,
    const char *const *names, size_t n);

#endif
