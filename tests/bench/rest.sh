#!/bin/sh
# Memory at rest and per open transaction, and the first message on an
# idle relay: ferry and Postfix side by side in one run, on loopback.
#
#   sudo sh tests/bench/rest.sh [open-transactions] [setup-seconds]
#
# Needs root, a built tree and Debian's postfix package (smtp-sink and the
# Postfix relay).  ferry runs with its shipped defaults: only the
# listener, the smarthost (an smtp-sink), the spool, the users and the
# per-client abuse limits are set here (one loopback load generator).
# Postfix runs with its defaults (tests/bench/postfix-instance.sh).
#
# For each server it prints:
# - PSS at rest: ferryd (or Postfix's master) and all its descendants,
#   the sum of /proc/PID/smaps_rollup Pss, and the number of processes,
#   taken SETTLE seconds (default 5) after the first greeting;
# - the first message on the idle relay: seconds from connect to the
#   greeting, and from the client's 250 to the smarthost's (read from
#   smtp-sink's count), five times, IDLE_GAP seconds apart (default 2);
# - PSS after that message, and again once the relay has been idle for
#   REST_AGAIN seconds (default 0: skipped; 110 covers ferry's agent_idle
#   and workers' spare_idle of 60 s and Postfix's max_idle of 100 s);
# - with N sessions (default 500) each holding an open transaction
#   (tests/bench/pressure_clients.py --mode trickle: in DATA, a byte every
#   2 s), the PSS of every process by name and the total.
#
# FERRYD=/other/tree/src/ferryd measures another build the same way.
#
# Bounded: every helper run is under timeout(1), every daemon started here
# is stopped and then killed by PID with whatever it left behind, and the
# temporary directory is removed on exit.
set -eu
OPEN=${1:-500}
SETUP=${2:-20}
SETTLE=${SETTLE:-5}
IDLE_GAP=${IDLE_GAP:-2}
REST_AGAIN=${REST_AGAIN:-0}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
CLIENTS="$TOP/tests/bench/pressure_clients.py"
FERRYD=${FERRYD:-$TOP/src/ferryd}   # another build's, to compare
WORK=$(mktemp -d /tmp/ferry-rest.XXXXXX)
chmod 755 "$WORK"
. "$TOP/tests/bench/postfix-instance.sh"
FPORT=$(free_port); PPORT=$(free_port); SINK=$(free_port)
FERRY_PID= SINK_PID= POSTFIX_UP=

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# pss ROOT: "total-KiB processes name=KiB ..." for ROOT and its descendants
pss() {
	python3 - "$1" <<'PY'
import os, sys
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        kids.setdefault(int(st[st.rindex(")") + 2:].split()[1]), []).append(d)
todo, total, n, by = [sys.argv[1]], 0, 0, {}
while todo:
    p = todo.pop()
    todo.extend(kids.get(int(p), []))
    try:
        comm = open("/proc/%s/comm" % p).read().strip()
        for line in open("/proc/%s/smaps_rollup" % p):
            if line.startswith("Pss:"):
                kib = int(line.split()[1])
                total += kib
                n += 1
                by.setdefault(comm, [0, 0])
                by[comm][0] += kib
                by[comm][1] += 1
    except OSError:
        pass
print("%.1f MiB in %d processes (%s)" % (total / 1024.0, n, ", ".join(
    "%s x%d %.1f" % (c, v[1], v[0] / 1024.0) for c, v in sorted(by.items()))))
PY
}

ferry_down() {
	[ -n "$FERRY_PID" ] || return 0
	kill_tree "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null || true
	FERRY_PID=
}

# first_message PORT: five messages on the idle relay, IDLE_GAP apart;
# prints the greeting and 250-to-smarthost seconds of each
first_message() {
	timeout -k 5 120 python3 - "$1" "$WORK/sink.count" "$IDLE_GAP" <<'PY'
import socket, sys, time
port, count_file, gap = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])

def sink_count():
    try:
        return int(open(count_file).read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0

def reply(f):
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line

greet, relay = [], []
for i in range(5):
    before = sink_count()
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    assert reply(f).startswith(b"220")
    greet.append(time.monotonic() - t0)
    for cmd in (b"EHLO probe.localdomain", b"MAIL FROM:<a@bench.test>",
                b"RCPT TO:<b@sink.test>", b"DATA"):
        s.sendall(cmd + b"\r\n")
        reply(f)
    s.sendall(b"Subject: rest %d\r\n\r\nbody\r\n.\r\n" % i)
    assert reply(f).startswith(b"250")
    t1 = time.monotonic()
    s.sendall(b"QUIT\r\n")
    while sink_count() <= before and time.monotonic() - t1 < 60:
        time.sleep(0.001)
    relay.append(time.monotonic() - t1)
    s.close()
    time.sleep(gap)
print("greeting %s s; 250 to smarthost %s s" % (
    " ".join("%.4f" % x for x in greet), " ".join("%.4f" % x for x in relay)))
PY
}

# measure NAME PORT ROOTPID
measure() {
	name=$1 port=$2 root=$3
	sleep "$SETTLE"
	echo "  $name at rest: $(pss "$root")"
	echo "  $name first message on an idle relay: $(first_message "$port")"
	echo "  $name after it: $(pss "$root")"
	if [ "$REST_AGAIN" -gt 0 ]; then
		sleep "$REST_AGAIN"
		echo "  $name idle ${REST_AGAIN}s later: $(pss "$root")"
	fi
	timeout -k 5 $((SETUP + 90)) python3 "$CLIENTS" --port "$port" \
	    --count "$OPEN" --mode trickle --setup "$SETUP" --deadline 30 \
	    --still 5 --no-good-client > "$WORK/$name-open.json" &
	load=$!
	sleep $((SETUP + 3))
	echo "  $name with $OPEN open transactions: $(pss "$root")"
	wait "$load" || true
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("    (attackers in DATA: %s)" % r.get("in_data", r))' "$WORK/$name-open.json" || true
}

cleanup() {
	ferry_down
	postfix_down
	[ -n "$SINK_PID" ] && kill_tree "$SINK_PID"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The smarthost: a tiny sink that writes how many messages it has taken
# to a file, so that the probe sees each arrive
python3 - "$SINK" "$WORK/sink.count" <<'PY' &
import socket, sys, threading
port, path = int(sys.argv[1]), sys.argv[2]
count, lock = [0], threading.Lock()
open(path, "w").write("0\n")
def serve(c):
    f = c.makefile("rb")
    c.sendall(b"220 sink\r\n")
    data = False
    for line in f:
        if data:
            if line == b".\r\n":
                data = False
                with lock:
                    count[0] += 1
                    open(path, "w").write("%d\n" % count[0])
                c.sendall(b"250 2.0.0 ok\r\n")
            continue
        v = line[:4].upper()
        if v == b"DATA":
            data = True
            c.sendall(b"354 go\r\n")
        elif v == b"QUIT":
            c.sendall(b"221 bye\r\n")
            break
        elif v == b"EHLO":
            c.sendall(b"250-sink\r\n250 PIPELINING\r\n")
        else:
            c.sendall(b"250 ok\r\n")
    c.close()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(128)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
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
smarthost {
    host = "127.0.0.1"
    port = $SINK
    tls = "none"
}
# one load generator on loopback: the per-client limits must not bite
limits {
    max_connections_per_client = 100000
    connection_rate = 1000000
    message_rate = 1000000
}
log {
    target = "stderr"
}
CONF

echo "rest: load $(cut -d' ' -f1-3 /proc/loadavg); $OPEN open transactions"
"$FERRYD" -d -f "$WORK/ferry.conf" 2>>"$WORK/ferry.log" &
FERRY_PID=$!
measure ferry "$FPORT" "$FERRY_PID"
ferry_down

postfix_instance_start "$PPORT" <<CONF
relayhost = [127.0.0.1]:$SINK
CONF
POSTFIX_UP=1
measure postfix "$PPORT" "$(postfix_master_pid)"
postfix_down
echo "rest: load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
