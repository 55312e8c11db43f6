#!/bin/sh
# Intake benchmark: how fast ferry commits incoming mail, next to Postfix
# taking the same load into its queue, in one run on one machine.
#
#   sudo sh tests/bench/intake.sh [messages] [sessions] [size]
#
# Needs root, a built tree, and Debian's postfix package (for smtp-source
# and the Postfix side).  Both servers accept on loopback and keep the mail
# queued (ferry has no delivery yet; Postfix is told to defer it), so this
# times the path client -> durable queue only.  Prints messages/second and
# the number of fsync/fdatasync calls of each server's queue writer
# (strace is used only for the second, counting run).
set -eu
MSGS=${1:-5000}
SESS=${2:-10}
SIZE=${3:-1024}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/ferry-bench.XXXXXX)
chmod 755 "$WORK"
. "$TOP/tests/bench/postfix-instance.sh"
FPORT=$(free_port)
PPORT=$(free_port)
FERRY_PID=
cleanup() {
	[ -n "$FERRY_PID" ] && kill "$FERRY_PID" 2>/dev/null || true
	postfix_instance_stop
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# --- ferry ---------------------------------------------------------------
cat > "$WORK/ferry.conf" <<CONF
hostname = "bench.localdomain"
user = "daemon"
smtpd_user = "nobody"
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
# intake only: mail stays queued, no delivery (and no DNS) is attempted
delivery {
    paused = true
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

# --- postfix: a private instance on its own queue and port -----------------
postfix_instance_start "$PPORT" <<CONF
relayhost = [127.0.0.1]:9
defer_transports = smtp
default_process_limit = 100
CONF

run_ferry() {
	rm -rf "$WORK/ferry-spool"
	"$TOP/src/ferryd" -d -f "$WORK/ferry.conf" 2>"$WORK/ferry.log" &
	FERRY_PID=$!
	sleep 1
}
stop_ferry() {
	kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
	FERRY_PID=
}
source_run() {  # port
	/usr/bin/time -f %e smtp-source -s "$SESS" -m "$MSGS" -l "$SIZE" \
	    -f sender@example.org -t rcpt@example.com "127.0.0.1:$1" 2>&1 |
	    tail -n1
}

echo "intake: $MSGS messages of $SIZE bytes over $SESS concurrent sessions"
for round in 1 2 3; do
	run_ferry
	ft=$(source_run "$FPORT")
	n=$(sqlite3 "$WORK/ferry-spool/queue/queue.db" \
	    "select count(*) from message where state='active'")
	stop_ferry
	c=$(sed -n 's/.*stored in \([0-9]*\) commit.*/\1/p' "$WORK/ferry.log")
	postsuper -c "$WORK/postfix" -d ALL >/dev/null 2>&1 || true
	pt=$(source_run "$PPORT")
	sleep 1
	pn=$(find "$WORK/postfix-spool/deferred" "$WORK/postfix-spool/active" \
	    "$WORK/postfix-spool/incoming" -type f 2>/dev/null | wc -l)
	echo "round $round: ferry ${ft}s ($n queued, $c commits," \
	    "$(python3 -c "print(round($MSGS/$ft))") msg/s)  postfix ${pt}s" \
	    "($pn queued, $(python3 -c "print(round($MSGS/$pt))") msg/s)"
done

# One more ferry run under strace to count the queue runner's syncs.
if command -v strace >/dev/null 2>&1; then
	run_ferry
	rp=$(pgrep -P "$FERRY_PID" -f ferry-queue | head -n1)
	strace -f -c -e trace=fsync,fdatasync -p "$rp" -o "$WORK/strace" &
	sp=$!
	sleep 0.5
	source_run "$FPORT" >/dev/null
	stop_ferry
	wait "$sp" 2>/dev/null || true
	echo "ferry queue runner syncs (under strace, which slows it):"
	grep -E 'fsync|fdatasync' "$WORK/strace" || true
fi
