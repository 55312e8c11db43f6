#!/bin/bash
# Scale-out benchmark: smtp-source -> HAProxy -> 1 or 2 ferry nodes ->
# smtp-sink, on this machine.
#
#   sudo tests/bench/cluster.sh [MESSAGES [SESSIONS [SIZE [ROUNDS]]]]
#
# Defaults: 3000 messages of 1024 bytes over 20 sessions, 3 rounds.  Each
# round runs three set-ups one after the other (interleaved, so that a
# change in the machine's load hits them alike):
#
#   direct  smtp-source -> node a                 (no balancer: its cost)
#   lb1     smtp-source -> HAProxy -> node a
#   lb2     smtp-source -> HAProxy -> nodes a and b (round robin)
#   lb1w    smtp-source -> HAProxy -> node a with delivery { agents = 8
#           per_destination = 4 }: the delivery concurrency of two nodes
#           in one (each node has 4 agents, 2 connections to one next
#           hop by default), to tell what a second node adds apart from
#           its connections to the next hop
#
# A run times from the first connection until every node's queue is empty
# (all handed to smtp-sink); the medians of the rounds are printed, with
# the load average.  The nodes run with the shipped defaults except what
# the bench needs: spool, users, listeners (a plain one for "direct",
# "lb" with proxy_protocol = "v2" from 127.0.0.1 for HAProxy), the
# smarthost (smtp-sink), per-client abuse limits (one client opens every
# connection), metrics for HAProxy's /readyz check, and log to stderr.
# HAProxy: send-proxy-v2, option httpchk GET /readyz on the metrics port.
#
# Needs root, a built tree, haproxy, sqlite3 and Debian's postfix package
# (smtp-source, smtp-sink).
set -eu

MSGS=${1:-3000}
SESS=${2:-20}
SIZE=${3:-1024}
ROUNDS=${4:-3}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
FERRYD=$TOP/src/ferryd

for p in haproxy smtp-source smtp-sink sqlite3; do
	command -v "$p" >/dev/null || { echo "cluster.sh: $p is missing" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root" >&2; exit 2; }
[ -x "$FERRYD" ] || { echo "cluster.sh: build the tree first" >&2; exit 2; }

declare -A DIRECT LB METRICS PID
WORK=$(mktemp -d /tmp/ferry-cluster.XXXXXX)
chmod 755 "$WORK"
PIDS=""
HA_PID=""
cleanup() {
	PIDS="$PIDS ${PID[a]:-} ${PID[b]:-} $HA_PID"
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# greets PORT: a 220 greeting on PORT
greets() {
	local line
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	read -r -t 5 line <&3 || line=""
	exec 3<&- 3>&-
	case $line in 220*) return 0 ;; *) return 1 ;; esac
}

wait_until() {	# wait_until SECONDS COMMAND...
	local end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

SINK=$(free_port)
smtp-sink -u nobody "127.0.0.1:$SINK" 512 &
PIDS="$PIDS $!"

node_conf() {	# node_conf NAME
	cat <<EOF
user = "daemon"
smtpd_user = "nobody"
deliver_user = "mail"
spool_dir = "$WORK/$1-spool"
listen "direct" {
    address = "127.0.0.1"
    port = ${DIRECT[$1]}
}
listen "lb" {
    address = "127.0.0.1"
    port = ${LB[$1]}
    proxy_protocol = "v2"
    proxy_networks = { "127.0.0.1/32" }
}
smarthost {
    host = "127.0.0.1"
    port = $SINK
    tls = "none"
    auth = false
}
limits {
    max_connections_per_client = 100000
    connection_rate = 1000000
    message_rate = 1000000
}
metrics {
    enabled = true
    address = "127.0.0.1"
    port = ${METRICS[$1]}
}
log {
    target = "stderr"
}
EOF
	[ "${WIDE:-}" = "" ] || printf 'delivery {\n    agents = 8\n    per_destination = 4\n}\n'
}

start_node() {	# start_node NAME: a fresh spool, serving
	DIRECT[$1]=$(free_port)
	LB[$1]=$(free_port)
	METRICS[$1]=$(free_port)
	rm -rf "$WORK/$1-spool"
	node_conf "$1" >"$WORK/$1.conf"
	"$FERRYD" -d -f "$WORK/$1.conf" >>"$WORK/$1.log" 2>&1 &
	PID[$1]=$!
	wait_until 60 greets "${DIRECT[$1]}" ||
		{ echo "node $1 did not start" >&2; tail "$WORK/$1.log" >&2; exit 1; }
	sleep 1		# let the pools settle
}

stop_node() {
	kill -TERM "${PID[$1]}"
	wait "${PID[$1]}" || true
	PID[$1]=""
}

queue_size() {
	sqlite3 "$WORK/$1-spool/queue/queue.db" "select count(*) from message" 2>/dev/null || echo 1
}

queues_empty() {	# queues_empty NODE...
	local n
	for n in "$@"; do [ "$(queue_size "$n")" = 0 ] || return 1; done
}

HA_PORT=$(free_port)
start_haproxy() {	# start_haproxy NODE...: balancing over those nodes
	local n
	{
		printf 'global\n    maxconn 4000\n'
		printf 'defaults\n    mode tcp\n    timeout connect 2s\n'
		printf '    timeout client 60s\n    timeout server 60s\n'
		printf '    timeout check 2s\n'
		printf 'frontend smtp\n    bind 127.0.0.1:%d\n' "$HA_PORT"
		printf '    default_backend ferry\n'
		printf 'backend ferry\n    balance roundrobin\n'
		printf '    option httpchk GET /readyz\n'
		for n in "$@"; do
			printf '    server %s 127.0.0.1:%d send-proxy-v2 check port %d inter 1s\n' \
			    "$n" "${LB[$n]}" "${METRICS[$n]}"
		done
	} >"$WORK/haproxy.cfg"
	haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 &
	HA_PID=$!
	wait_until 10 greets "$HA_PORT" ||
		{ echo "haproxy did not start" >&2; cat "$WORK/haproxy.log" >&2; exit 1; }
}

stop_haproxy() {
	kill -TERM "$HA_PID"
	wait "$HA_PID" || true
	HA_PID=""
}

# run SETUP: one timed run; RATE = messages per second
run() {
	local nodes port t0 t1
	case $1 in
	direct | lb1 | lb1w) nodes="a" ;;
	lb2) nodes="a b" ;;
	esac
	WIDE=""
	[ "$1" != lb1w ] || WIDE=1
	for n in $nodes; do start_node "$n"; done
	if [ "$1" = direct ]; then
		port=${DIRECT[a]}
	else
		# shellcheck disable=SC2086
		start_haproxy $nodes
		port=$HA_PORT
	fi
	t0=$(date +%s.%N)
	smtp-source -s "$SESS" -m "$MSGS" -l "$SIZE" -f sender@example.org \
	    -t rcpt@example.com "127.0.0.1:$port"
	# shellcheck disable=SC2086
	wait_until 900 queues_empty $nodes || { echo "queues did not drain" >&2; exit 1; }
	t1=$(date +%s.%N)
	[ "$1" = direct ] || stop_haproxy
	for n in $nodes; do stop_node "$n"; done
	RATE=$(echo "$MSGS $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }')
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "$MSGS messages of $SIZE bytes over $SESS sessions, $ROUNDS rounds;" \
    "$(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	for s in direct lb1 lb2 lb1w; do
		run "$s"
		echo "$RATE" >>"$WORK/$s.rates"
		echo "round $r  $s  $RATE msg/s  load $(cut -d' ' -f1 /proc/loadavg)"
	done
done
d=$(median <"$WORK/direct.rates")
one=$(median <"$WORK/lb1.rates")
two=$(median <"$WORK/lb2.rates")
wide=$(median <"$WORK/lb1w.rates")
echo "medians: direct $d msg/s, HAProxy + 1 node $one msg/s," \
    "HAProxy + 2 nodes $two msg/s," \
    "HAProxy + 1 node with 2 nodes' delivery concurrency $wide msg/s"
echo "$one $two $d $wide" | awk '{ printf "2 nodes / 1 node: %.2f; 1 node behind HAProxy / direct: %.2f; 1 node with 2 nodes%s delivery concurrency / 1 node: %.2f\n", $2 / $1, $1 / $3, "\047", $4 / $1 }'
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
