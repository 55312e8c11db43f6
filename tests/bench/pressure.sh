#!/bin/sh
# Pressure benchmark: does a good client still get through while many
# slow or idle clients hold connections?  ferry and Postfix side by side
# in one run, on loopback.
#
#   sudo sh tests/bench/pressure.sh [deadline-seconds] [setup-seconds]
#
# Needs root, a built tree and Debian's postfix package (smtp-sink and the
# Postfix relay).  ferry runs with its shipped defaults: only the
# listener, the smarthost (an smtp-sink), the spool, the users and the
# per-client abuse limits are set here (one loopback load generator).
# Postfix runs with its defaults (tests/bench/postfix-instance.sh).
#
# tests/bench/pressure_clients.py opens N attacking connections, each from
# its own loopback address (127.10.x.y), either idle after the greeting or
# trickling DATA one byte every 2 s, gives them setup-seconds (default 20)
# to take their places, then times a good client from 127.0.0.1: seconds
# to its greeting and to the final 250 of one message, each at most
# deadline-seconds (default 60; "> D" in the table when not reached).
# Cases: 150 idle, 150 trickling, 2000 idle, 2000 trickling (CASES=...
# in the environment picks others, as "N:idle N:trickle ...").
#
# Then memory (the attackers get all of setup-seconds to take their
# places): the PSS of ferryd and all its descendants (the sum of
# /proc/PID/smaps_rollup Pss) while 2000 idle sessions are held, and of
# Postfix's master and its descendants with default_process_limit raised
# to 500, holding 500.
#
# Bounded: every helper run is under timeout(1), every daemon started here
# is stopped and then killed by PID with whatever it left behind, and the
# temporary directory is removed on exit.
set -eu
DEADLINE=${1:-60}
SETUP=${2:-20}
CASES=${CASES:-"150:idle 150:trickle 2000:idle 2000:trickle"}
PSS_FERRY=${PSS_FERRY:-2000}
PSS_POSTFIX=${PSS_POSTFIX:-500}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
CLIENTS="$TOP/tests/bench/pressure_clients.py"
WORK=$(mktemp -d /tmp/ferry-pressure.XXXXXX)
chmod 755 "$WORK"
. "$TOP/tests/bench/postfix-instance.sh"
FPORT=$(free_port); PPORT=$(free_port); SINK=$(free_port)
FERRY_PID= SINK_PID= POSTFIX_UP=

# the attackers' sockets, and the servers' sessions
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

postfix_up() {  # extra main.cf lines on standard input
	postfix_instance_start "$PPORT"
	POSTFIX_UP=1
}

ferry_down() {
	[ -n "$FERRY_PID" ] || return 0
	kill_tree "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null || true
	FERRY_PID=
}
ferry_up() {
	rm -rf "$WORK/ferry-spool"
	"$TOP/src/ferryd" -d -f "$WORK/ferry.conf" 2>>"$WORK/ferry.log" &
	FERRY_PID=$!
	wait_greeting "$FPORT" || { tail -20 "$WORK/ferry.log"; exit 1; }
}

# wait_greeting PORT: a 220 within 20 s
wait_greeting() {
	python3 - "$1" <<'PY'
import socket, sys, time
end = time.monotonic() + 20
while time.monotonic() < end:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])),
                                      timeout=2) as s:
            if s.recv(512).startswith(b"220"):
                s.sendall(b"QUIT\r\n")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
}

cleanup() {
	ferry_down
	postfix_down
	[ -n "$SINK_PID" ] && kill_tree "$SINK_PID"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_load NAME PORT N MODE [helper options]: one helper run into NAME.json
run_load() {
	name=$1 port=$2 n=$3 mode=$4
	shift 4
	timeout -k 5 $((SETUP + DEADLINE + 60)) python3 "$CLIENTS" \
	    --port "$port" --count "$n" --mode "$mode" --setup "$SETUP" \
	    --deadline "$DEADLINE" "$@" > "$WORK/$name.json" ||
	    echo '{"failure": "the load generator did not finish"}' \
	    > "$WORK/$name.json"
}

smtp-sink -u nobody 127.0.0.1:"$SINK" 1024 &
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

echo "pressure: cases $CASES; good client deadline ${DEADLINE}s, setup ${SETUP}s"
postfix_up <<CONF
relayhost = [127.0.0.1]:$SINK
CONF
for c in $CASES; do
	n=${c%%:*} mode=${c#*:}
	echo "  $n $mode: ferry ..."
	ferry_up
	run_load "ferry-$n-$mode" "$FPORT" "$n" "$mode"
	ferry_down
	echo "  $n $mode: Postfix ..."
	run_load "postfix-$n-$mode" "$PPORT" "$n" "$mode"
	# let Postfix's smtpd processes see their clients gone
	wait_greeting "$PPORT" || true
	sleep 2
done
postfix_down

echo "  memory: ferry with $PSS_FERRY idle sessions ..."
ferry_up
run_load "pss-ferry" "$FPORT" "$PSS_FERRY" idle --pss-root "$FERRY_PID" \
    --still "$SETUP" --no-good-client
ferry_down
echo "  memory: Postfix (default_process_limit = $PSS_POSTFIX) with $PSS_POSTFIX idle sessions ..."
postfix_up <<CONF
relayhost = [127.0.0.1]:$SINK
default_process_limit = $PSS_POSTFIX
CONF
run_load "pss-postfix" "$PPORT" "$PSS_POSTFIX" idle \
    --pss-root "$(postfix_master_pid)" --still "$SETUP" --no-good-client
postfix_down

python3 - "$WORK" "$DEADLINE" "$CASES" "$PSS_FERRY" "$PSS_POSTFIX" <<'PY'
import json, os, sys
work, deadline, cases, nf, np_ = sys.argv[1:]


def load(name):
    try:
        with open(os.path.join(work, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"failure": "no result"}


def secs(r, k):
    v = r.get(k)
    return "%.2f" % v if isinstance(v, (int, float)) else "> %s" % deadline


def held(r):
    if "attackers" not in r:
        return r.get("failure", "?")
    return "%d/%d connected, %d greeted, %d in DATA, %d closed" % (
        r["connected"], r["attackers"], r["greeted"], r["in_data"],
        r["closed"])


print()
print("%-14s %12s %10s %14s %12s" % ("case", "ferry greet s", "ferry 250 s",
                                     "Postfix greet s", "Postfix 250 s"))
notes = []
for c in cases.split():
    n, mode = c.split(":")
    f, p = load("ferry-%s-%s" % (n, mode)), load("postfix-%s-%s" % (n, mode))
    label = "%s %s" % (n, "idle" if mode == "idle" else "trickling")
    print("%-14s %12s %10s %14s %12s" % (label, secs(f, "greeting"),
          secs(f, "accepted"), secs(p, "greeting"), secs(p, "accepted")))
    for who, r in (("ferry", f), ("Postfix", p)):
        line = "  %s, %s: attackers %s" % (label, who, held(r))
        if r.get("failure"):
            line += "; good client: %s" % r["failure"]
        notes.append(line)
print()
print("\n".join(notes))
print()
for who, name, n in (("ferry", "pss-ferry", nf),
                     ("Postfix (default_process_limit = %s)" % np_,
                      "pss-postfix", np_)):
    r = load(name)
    if "pss_kib" in r:
        print("PSS, %s, %s idle sessions: %.1f MiB in %d processes "
              "(attackers %s)" % (who, n, r["pss_kib"] / 1024.0,
                                  r["pss_processes"], held(r)))
    else:
        print("PSS, %s: %s" % (who, r.get("failure", "no result")))
PY
