/*
 * worker_counters.c - the SMTP workers' counters: counted in a worker,
 * framed as deltas, added up and written as Prometheus text by the
 * master (see worker_counters.h).
 *
 * Security: the master reads these frames from workers, which face the
 * network.  wc_totals_take checks every field (listener and counter
 * indexes in range, each delta at most WC_DELTA_MAX, no byte left over)
 * before it adds anything, so a lying worker can only make counters
 * larger; it cannot write outside the tables.
 */
#include "autoconfig.h"

#include <string.h>

#include "smtp_reply.h"
#include "worker_counters.h"

#include <limits.h>

_Static_assert(WORKER_STATUS_PAYLOAD_MAX + IPC_HEADER_SIZE < PIPE_BUF,
    "a WORKER_COUNTERS frame must be written whole on the status pipe");

/* What this worker counted since its last frame. */
static struct wc_totals counted;
static int counted_any;

void
wcount(enum wc_id id)
{
	if ((unsigned)id < WC_MAX) {
		counted.other[id]++;
		counted_any = 1;
	}
}

void
wcount_conn(size_t listener, enum wc_conn outcome)
{
	if (listener < WC_LISTENERS && (unsigned)outcome < WC_CONN_MAX) {
		counted.conn[listener][outcome]++;
		counted_any = 1;
	}
}

void
wcount_tls_in(const char *version)
{
	wcount((enum wc_id)(WC_TLS_IN_1_0 + tls_version_slot(version)));
}

void
wcount_reply(int reply_id)
{
	switch ((enum reply_id)reply_id) {
	case R_RELAY_DENIED:
	case R_SENDER_NOT_OWNED:
		wcount(WC_REJECT_RELAY);
		break;
	case R_SIZE_EXCEEDED:
	case R_SIZE_ROUTE:
	case R_SIZE_EVERY_ROUTE:
	case R_SIZE_RCPT_ROUTES:
		wcount(WC_REJECT_SIZE);
		break;
	case R_TOO_MANY_CONNECTIONS:
		wcount(WC_REJECT_RATE);
		wcount(WC_ANVIL_CONNECTIONS);
		break;
	case R_TOO_MANY_FROM_CLIENT:
		wcount(WC_REJECT_RATE);
		wcount(WC_ANVIL_CLIENT_CONNECTIONS);
		break;
	case R_CONNECTION_RATE:
		wcount(WC_REJECT_RATE);
		wcount(WC_ANVIL_CONNECTION_RATE);
		break;
	case R_MESSAGE_RATE:
		wcount(WC_REJECT_RATE);
		wcount(WC_ANVIL_MESSAGE_RATE);
		break;
	case R_AUTH_OK:
		wcount(WC_AUTH_SUCCESS);
		break;
	case R_AUTH_FAILED:
		wcount(WC_AUTH_FAILURE);
		wcount(WC_REJECT_AUTH);
		break;
	case R_AUTH_LOCKED:
		wcount(WC_REJECT_AUTH);
		wcount(WC_ANVIL_AUTH_LOCKOUT);
		break;
	case R_LINE_TOO_LONG:
	case R_UNKNOWN_COMMAND:
	case R_SYNTAX_HELO:
	case R_SYNTAX_MAIL:
	case R_SYNTAX_RCPT:
	case R_SYNTAX_NOARG:
	case R_SYNTAX_BDAT:
	case R_SYNTAX_VRFY:
	case R_BAD_SENDER:
	case R_BAD_RCPT:
	case R_ADDR_TOO_LONG:
	case R_PARAM_BAD:
	case R_PARAM_DUP:
	case R_PARAM_UNKNOWN:
	case R_NON_ASCII_ADDR:
	case R_DATA_LINE_TOO_LONG:
	case R_AUTH_BAD_BASE64:
	case R_AUTH_BAD_RESPONSE:
	case R_AUTH_SYNTAX:
	case R_AUTH_LINE_TOO_LONG:
		wcount(WC_REJECT_SYNTAX);
		break;
	case R_BARE_NEWLINE_CMD:
	case R_DATA_BARE_NEWLINE:
	case R_DATA_AMBIGUOUS_END:
	case R_PREGREET:
	case R_NOT_SMTP:
		wcount(WC_REJECT_SMUGGLING);
		break;
	default:
		break;
	}
}

int
wcount_pending(void)
{
	return counted_any;
}

/* Frame: u32 n, n x (u8 listener, u8 outcome, u64 delta), then u32 m,
 * m x (u8 counter, u64 delta); only nonzero deltas.  At most
 * WC_LISTENERS * WC_CONN_MAX * 10 + WC_MAX * 9 + 8 bytes, far below
 * PIPE_BUF. */
void
wcount_frame(struct ipc_out *m)
{
	uint32_t n = 0;
	size_t l, o, i;

	for (l = 0; l < WC_LISTENERS; l++)
		for (o = 0; o < WC_CONN_MAX; o++)
			n += counted.conn[l][o] != 0;
	ipc_add_u32(m, n);
	for (l = 0; l < WC_LISTENERS; l++)
		for (o = 0; o < WC_CONN_MAX; o++)
			if (counted.conn[l][o] != 0) {
				ipc_add_u8(m, (uint8_t)l);
				ipc_add_u8(m, (uint8_t)o);
				ipc_add_u64(m, counted.conn[l][o]);
			}
	n = 0;
	for (i = 0; i < WC_MAX; i++)
		n += counted.other[i] != 0;
	ipc_add_u32(m, n);
	for (i = 0; i < WC_MAX; i++)
		if (counted.other[i] != 0) {
			ipc_add_u8(m, (uint8_t)i);
			ipc_add_u64(m, counted.other[i]);
		}
	memset(&counted, 0, sizeof(counted));
	counted_any = 0;
}

int
wc_totals_take(struct wc_totals *t, struct ipc_in *in)
{
	struct wc_totals add;
	uint32_t n, k;

	memset(&add, 0, sizeof(add));
	if (ipc_get_u32(in, &n) < 0 || n > WC_LISTENERS * WC_CONN_MAX)
		return -1;
	for (k = 0; k < n; k++) {
		uint8_t l, o;
		uint64_t d;

		if (ipc_get_u8(in, &l) < 0 || ipc_get_u8(in, &o) < 0 ||
		    ipc_get_u64(in, &d) < 0 || l >= WC_LISTENERS ||
		    o >= WC_CONN_MAX || d > WC_DELTA_MAX ||
		    add.conn[l][o] != 0)
			return -1;
		add.conn[l][o] = d;
	}
	if (ipc_get_u32(in, &n) < 0 || n > WC_MAX)
		return -1;
	for (k = 0; k < n; k++) {
		uint8_t i;
		uint64_t d;

		if (ipc_get_u8(in, &i) < 0 || ipc_get_u64(in, &d) < 0 ||
		    i >= WC_MAX || d > WC_DELTA_MAX || add.other[i] != 0)
			return -1;
		add.other[i] = d;
	}
	if (ipc_end(in) < 0)
		return -1;
	for (n = 0; n < WC_LISTENERS; n++)
		for (k = 0; k < WC_CONN_MAX; k++)
			t->conn[n][k] += add.conn[n][k];
	for (k = 0; k < WC_MAX; k++)
		t->other[k] += add.other[k];
	return 0;
}

static void
labelled(struct mtext *out, const char *name, const char *label,
    const char *value, uint64_t v)
{
	mtext_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, value,
	    (unsigned long long)v);
}

void
wc_totals_write(struct mtext *out, const struct wc_totals *t,
    const char *const *names, size_t n)
{
	static const char *const outcomes[WC_CONN_MAX] = { "accepted",
	    "refused_limit", "tls_failed", "proxy_refused", "proxy_failed" };
	static const char *const reasons[] = { "relay_denied", "size",
	    "rate", "auth", "syntax", "smuggling" };
	static const char *const limits[] = { "connections",
	    "client_connections", "connection_rate", "message_rate",
	    "auth_lockout" };
	size_t i, k;

	if (n > WC_LISTENERS)
		n = WC_LISTENERS;
	mtext_family(out, "ferry_connections_total", "counter",
	    "SMTP connections by listener and outcome.");
	for (i = 0; i < n; i++)
		for (k = 0; k < WC_CONN_MAX; k++) {
			mtext_printf(out,
			    "ferry_connections_total{listener=\"");
			mtext_label(out, names[i]);
			mtext_printf(out, "\",outcome=\"%s\"} %llu\n",
			    outcomes[k], (unsigned long long)t->conn[i][k]);
		}
	mtext_family(out, "ferry_rejections_total", "counter",
	    "SMTP commands and connections refused, by reason.");
	for (k = 0; k < 6; k++)
		labelled(out, "ferry_rejections_total", "reason", reasons[k],
		    t->other[WC_REJECT_RELAY + k]);
	mtext_family(out, "ferry_tls_in_total", "counter",
	    "TLS handshakes SMTP clients completed, by protocol version.");
	for (k = 0; k < TLSV_COUNT; k++)
		labelled(out, "ferry_tls_in_total", "version",
		    tls_version_names[k], t->other[WC_TLS_IN_1_0 + k]);
	mtext_family(out, "ferry_auth_total", "counter",
	    "SMTP AUTH attempts by result.");
	labelled(out, "ferry_auth_total", "result", "success",
	    t->other[WC_AUTH_SUCCESS]);
	labelled(out, "ferry_auth_total", "result", "failure",
	    t->other[WC_AUTH_FAILURE]);
	mtext_family(out, "ferry_anvil_limit_hits_total", "counter",
	    "Clients refused by an anvil limit, by limit.");
	for (k = 0; k < 5; k++)
		labelled(out, "ferry_anvil_limit_hits_total", "limit",
		    limits[k], t->other[WC_ANVIL_CONNECTIONS + k]);
	mtext_family(out, "ferry_anvil_stress", "gauge",
	    "1 while ferry-anvil holds the relay in stress mode.");
	mtext_printf(out, "ferry_anvil_stress %d\n", t->stress_on ? 1 : 0);
	mtext_family(out, "ferry_anvil_stress_entered_total", "counter",
	    "Times stress mode began.");
	mtext_printf(out, "ferry_anvil_stress_entered_total %llu\n",
	    (unsigned long long)t->stress_entered);
}
