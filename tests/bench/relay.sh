#!/bin/sh
# End-to-end relay benchmark: client -> relay -> Postfix's smtp-sink, for
# ferry and for Postfix configured as a relay, side by side in one run.
#
#   sudo sh tests/bench/relay.sh [messages] [sessions] [size] [rounds]
#
# Needs root, a built tree and Debian's postfix package (smtp-source,
# smtp-sink, and the Postfix relay).  Each round times from the first
# connection until the relay's queue is empty again (every message handed
# to the sink), first ferry, then Postfix, and prints messages/second.
# The CPU time ferry's processes used is printed from /proc.
set -eu
MSGS=${1:-5000}
SESS=${2:-10}
SIZE=${3:-1024}
ROUNDS=${4:-3}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/ferry-relay.XXXXXX)
chmod 755 "$WORK"
. "$TOP/tests/bench/postfix-instance.sh"
FPORT=$(free_port); PPORT=$(free_port); SINK=$(free_port)
FERRY_PID= SINK_PID=
cleanup() {
	[ -n "$FERRY_PID" ] && kill "$FERRY_PID" 2>/dev/null || true
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
	postfix_instance_stop
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

smtp-sink -u nobody 127.0.0.1:"$SINK" 512 &
SINK_PID=$!

cat > "$WORK/ferry.conf" <<CONF
hostname = "bench.localdomain"
user = "daemon"
smtpd_user = "nobody"
deliver_user = "mail"
spool_dir = "$WORK/ferry-spool"
listen "bench" {
    address = "127.0.0.1"
    port = $FPORT
}
workers {
    min_idle = $((SESS + 2))
    max_idle = $((SESS + 6))
    max = $((SESS * 2 + 8))
}
smarthost {
    host = "127.0.0.1"
    port = $SINK
    tls = "none"
}
delivery {
    agents = $SESS
    per_destination = $SESS
}
# one client (smtp-source on loopback) opens every connection
limits {
    max_connections_per_client = 100000
    connection_rate = 1000000
    message_rate = 1000000
}
log {
    target = "stderr"
}
CONF

postfix_instance_start "$PPORT" <<CONF
relayhost = [127.0.0.1]:$SINK
default_destination_concurrency_limit = $SESS
CONF

now() { python3 -c 'import time;print(time.time())'; }
ferry_queue() {
	sqlite3 "$WORK/ferry-spool/queue/queue.db" \
	    "select count(*) from message" 2>/dev/null || echo 1
}
postfix_queue() {
	find "$WORK/postfix-spool/incoming" "$WORK/postfix-spool/active" \
	    "$WORK/postfix-spool/deferred" "$WORK/postfix-spool/maildrop" \
	    -type f 2>/dev/null | wc -l
}
drain() {  # command printing the queue size
	while [ "$($1)" -ne 0 ]; do sleep 0.05; done
}
cpu_of() {  # pids -> seconds of user+system CPU
	for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done |
	    awk '{ t += $14 + $15 } END { printf "%.2f", t / 100 }'
}

echo "relay: $MSGS messages of $SIZE bytes, $SESS sessions, to smtp-sink"
for round in $(seq "$ROUNDS"); do
	rm -rf "$WORK/ferry-spool"
	"$TOP/src/ferryd" -d -f "$WORK/ferry.conf" 2>"$WORK/ferry.log" &
	FERRY_PID=$!
	sleep 1.5
	t0=$(now)
	smtp-source -s "$SESS" -m "$MSGS" -l "$SIZE" -f sender@example.org \
	    -t rcpt@example.com "127.0.0.1:$FPORT"
	drain ferry_queue
	t1=$(now)
	kids=$(pgrep -P "$FERRY_PID" | tr '\n' ' ')
	# shellcheck disable=SC2086
	fcpu=$(cpu_of "$FERRY_PID" $kids)
	sent=$(grep -c 'status=sent' "$WORK/ferry.log" || true)
	kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
	FERRY_PID=

	t2=$(now)
	smtp-source -s "$SESS" -m "$MSGS" -l "$SIZE" -f sender@example.org \
	    -t rcpt@example.com "127.0.0.1:$PPORT"
	sleep 0.2
	drain postfix_queue
	t3=$(now)
	python3 - "$MSGS" "$t0" "$t1" "$t2" "$t3" "$fcpu" "$sent" "$round" <<'PY'
import sys
n, t0, t1, t2, t3, cpu, sent, rnd = sys.argv[1:]
n = int(n); f = float(t1) - float(t0); p = float(t3) - float(t2)
print("round %s: ferry %.2fs %4.0f msg/s (%s sent, %.2f ms CPU/msg)  "
      "postfix %.2fs %4.0f msg/s  ratio %.2f" % (
          rnd, f, n / f, sent, float(cpu) * 1000 / n, p, n / p, p / f))
PY
done
