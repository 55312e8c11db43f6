#!/bin/sh
# "ferryctl queue list" and "ferryctl status" with a big queue, and how
# long intake stops meanwhile.
#
#   sudo sh tests/bench/queue_list.sh [messages] [rounds]
#
# Queues 2,000 messages through SMTP with nothing listening at the
# smarthost's port, stops ferry, copies them in queue.db (with the
# sqlite3 shell) until it holds messages (default 100000), each due an
# hour from now so nothing is tried meanwhile, and starts ferry again on
# it - minutes faster than queueing them all through SMTP, which
# tests/bench/bigqueue.sh does.  Then: "ferryctl status" seven times
# (sorted), and rounds times (default 3) a whole "ferryctl queue list"
# under tests/bench/intake_stall.py (one message at a time over one
# session: the longest wait for a 250 while the list runs) beside the
# same probe while a shell loop burns a CPU for 3 s and never touches
# ferry - on a loaded machine that loop's figure is what the scheduler
# alone costs intake; then the JSON form, checked for every message
# once.  Needs root, a built tree, sqlite3 and Postfix's smtp-source.
set -eu
N=${1:-100000}
ROUNDS=${2:-3}
SEED=2000
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/ferry-qlist.XXXXXX)
chmod 755 "$WORK"
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
FPORT=$(free_port); SINK=$(free_port)
FERRY_PID=
cleanup() {
	[ -n "$FERRY_PID" ] && kill "$FERRY_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
[ "$N" -ge "$SEED" ] || N=$SEED

. "$TOP/tests/bench/ferry-instance.sh"
ferry_bench_conf "$WORK/spool" "$FPORT" "$SINK" > "$WORK/ferry.conf" </dev/null
DB="$WORK/spool/queue/queue.db"
SOCK="$WORK/spool/ferryctl.sock"
CTL="$TOP/src/ferryctl"
STALL="$TOP/tests/bench/intake_stall.py"
load() { cut -d' ' -f1 /proc/loadavg; }
start_ferry() {
	"$TOP/src/ferryd" -d -f "$WORK/ferry.conf" 2>>"$WORK/ferry.log" &
	FERRY_PID=$!
	ferry_wait_greeting "$FPORT"
}
stop_ferry() {
	kill "$FERRY_PID"
	wait "$FERRY_PID" || true
	FERRY_PID=
}
timed() {  # command... -> seconds it took (its output thrown away)
	python3 -c 'import subprocess, sys, time
t0 = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False)
print("%.3f" % (time.monotonic() - t0))' "$@"
}

start_ferry
smtp-source -s 10 -m "$SEED" -l 1024 -f sender@example.org \
    -t rcpt@example.com "127.0.0.1:$FPORT"
stop_ferry
# copies k = 1.. of the seed, ids and queue ids made unique, until N
copies=$(( (N + SEED - 1) / SEED - 1 ))
sqlite3 "$DB" <<SQL
BEGIN;
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k
    WHERE n < $copies)
INSERT INTO message (id, qid, state, sender, size, received_at,
    client_addr, client_name, helo, protocol, auth_user, body_type,
    smtputf8, dsn_ret, dsn_envid, size_declared, dsn_of, warned,
    agent_deaths, hold_reason)
SELECT m.id + k.n * $SEED, printf('%012X', m.id + k.n * $SEED + 1048576),
    state, sender, size, received_at + k.n, client_addr, client_name, helo,
    protocol, auth_user, body_type, smtputf8, dsn_ret, dsn_envid,
    size_declared, dsn_of, warned, agent_deaths, hold_reason
FROM message m, k WHERE m.id <= $SEED;
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k
    WHERE n < $copies)
INSERT INTO recipient (message_id, address, dsn_notify, dsn_orcpt, state,
    attempts, next_attempt, last_attempt, last_reply, last_dsn)
SELECT r.message_id + k.n * $SEED, address, dsn_notify, dsn_orcpt, state,
    attempts, next_attempt, last_attempt, last_reply, last_dsn
FROM recipient r, k WHERE r.message_id <= $SEED;
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k
    WHERE n < $copies)
INSERT INTO body (message_id, seq, chunk)
SELECT b.message_id + k.n * $SEED, seq, chunk FROM body b, k
WHERE b.message_id <= $SEED;
UPDATE recipient SET next_attempt = unixepoch() + 3600
    WHERE state = 'pending';
COMMIT;
SQL
chown -R daemon "$WORK/spool/queue"
held=$(sqlite3 "$DB" "SELECT count(*) FROM message")
start_ferry
sleep 2
echo "queue_list: $held messages queued, load: $(cut -d' ' -f1-3 /proc/loadavg)"
st=$(for i in 1 2 3 4 5 6 7; do timed "$CTL" -s "$SOCK" status; done |
    sort -n | xargs)
echo "ferryctl status: $st s (sorted)"
i=0
while [ "$i" -lt "$ROUNDS" ]; do
	i=$((i + 1))
	echo "queue list, intake meanwhile: $(python3 "$STALL" "$FPORT" -- \
	    "$CTL" -s "$SOCK" queue list) (load $(load))"
	echo "CPU loop 3 s, intake meanwhile: $(python3 "$STALL" "$FPORT" -- \
	    timeout 3 sh -c 'while :; do :; done') (load $(load))"
done
echo "queue list --json, intake meanwhile: $(python3 "$STALL" "$FPORT" -- \
    "$CTL" -s "$SOCK" --json queue list) (load $(load))"
"$CTL" -s "$SOCK" --json queue list | python3 -c 'import json, sys
d = json.load(sys.stdin)
ids = [m["id"] for m in d["messages"]]
print("queue list --json: %d listed, %d distinct, next %s"
      % (len(ids), len(set(ids)), d["next"]))'
