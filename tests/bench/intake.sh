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
FPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
FERRY_PID=
cleanup() {
	[ -n "$FERRY_PID" ] && kill "$FERRY_PID" 2>/dev/null || true
	postfix -c "$WORK/postfix" stop >/dev/null 2>&1 || true
	sleep 1
	postconf -e "alternate_config_directories = $(postconf -h \
	    alternate_config_directories | sed "s|$WORK/postfix||")"
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
    sessions = 1000000
}
log {
    target = "stderr"
}
CONF

# --- postfix: a private instance on its own queue and port -----------------
mkdir -p "$WORK/postfix"
cp /etc/postfix/master.cf "$WORK/postfix/master.cf"
sed -i "s/^smtp      inet/$PPORT      inet/" "$WORK/postfix/master.cf"
cat > "$WORK/postfix/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $WORK/postfix-spool
data_directory = $WORK/postfix-data
myhostname = bench.localdomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relayhost = [127.0.0.1]:9
defer_transports = smtp
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $WORK/postfix.log
maillog_file_prefixes = $WORK
default_process_limit = 100
CONF
mkdir -p "$WORK/postfix-spool" "$WORK/postfix-data"
chown postfix "$WORK/postfix-data"
# Postfix only starts an instance whose directory the default instance
# lists in alternate_config_directories.
alt=$(postconf -h alternate_config_directories)
case " $alt " in
*" $WORK/postfix "*) ;;
*) postconf -e "alternate_config_directories = ${alt:+$alt }$WORK/postfix" ;;
esac
postfix -c "$WORK/postfix" check
postfix -c "$WORK/postfix" start >/dev/null 2>&1
sleep 1

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
