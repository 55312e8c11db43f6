#!/bin/sh
# History search benchmark: "ferryctl history --rcpt X" against a running
# ferry whose delivery history holds ROWS recipient rows (default
# 1,000,000; half as many messages with two recipients each, one attempt
# per recipient), the target being one address among 50,000.
#
#   sudo sh tests/bench/history.sh [rows]
#
# Needs root and a built tree.  ferry starts once to create its database,
# stops, the history tables are filled directly with sqlite3 (the body of
# no message is stored, as in the real history), and ferry starts again.
# Then it times, 7 times each, the whole ferryctl command (process start,
# control socket round trip, query, JSON, rendering) for an address, a
# domain and, for scale, a search with no filter; and the query alone in
# sqlite3.  The target of the "< 100 ms" figure is the ferryctl median.
set -eu
ROWS=${1:-1000000}
MSGS=$((ROWS / 2))
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/ferry-bench-history.XXXXXX)
chmod 755 "$WORK"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
FERRY_PID=
cleanup() {
	[ -n "$FERRY_PID" ] && kill "$FERRY_PID" 2>/dev/null || true
	[ -n "$FERRY_PID" ] && wait "$FERRY_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cat > "$WORK/ferry.conf" <<CONF
hostname = "bench.localdomain"
user = "daemon"
smtpd_user = "nobody"
spool_dir = "$WORK/spool"
listen "bench" {
    address = "127.0.0.1"
    port = $PORT
}
delivery {
    paused = true
}
history {
    retention = 3650d
}
log {
    target = "stderr"
}
CONF
DB="$WORK/spool/queue/queue.db"
SOCK="$WORK/spool/ferryctl.sock"

start_ferry() {
	"$TOP/src/ferryd" -d -f "$WORK/ferry.conf" 2>>"$WORK/ferry.log" &
	FERRY_PID=$!
	i=0
	until "$TOP/src/ferryctl" -s "$SOCK" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { cat "$WORK/ferry.log"; exit 1; }
		sleep 0.1
	done
}
stop_ferry() {
	kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
	FERRY_PID=
}

start_ferry
stop_ferry

echo "filling $ROWS history rows ($MSGS messages) ..."
t0=$(date +%s.%N)
sqlite3 "$DB" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $MSGS)
INSERT INTO history_message (id, qid, received_at, left_at, sender, size,
    client_addr, client_name, helo, protocol)
SELECT i, printf('%012X', i), 1.7e9 + i * 0.5, 1.7e9 + i * 0.5 + 2,
    'app' || (i % 100) || '@sender.example', 2048, '192.0.2.7', 'unknown',
    'client.example', 'ESMTP' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS)
INSERT INTO history_rcpt (id, hmsg_id, src_rcpt, left_at, qid, sender,
    sender_domain, address, domain, status, deferred, attempts,
    last_attempt, delay, relay, relay_host, dsn, reply)
SELECT i, (i + 1) / 2, i, m.left_at, m.qid, m.sender, 'sender.example',
    'user' || (i % 50000) || '@d' || (i % 1000) || '.example',
    'd' || (i % 1000) || '.example',
    CASE WHEN i % 50 = 0 THEN 'bounced' ELSE 'sent' END, 0, 1,
    m.left_at, 2, 'smtp.example.net[192.0.2.10]:587', 'smtp.example.net',
    CASE WHEN i % 50 = 0 THEN '5.1.1' ELSE '2.0.0' END,
    CASE WHEN i % 50 = 0 THEN '550 5.1.1 no such user' ELSE '250 2.0.0 ok' END
FROM n JOIN history_message m ON m.id = (i + 1) / 2;
INSERT INTO history_attempt (hrcpt_id, at, relay, tls, status, dsn, reply)
SELECT id, last_attempt, relay, NULL, status, dsn, reply FROM history_rcpt;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
chown -R daemon "$WORK/spool/queue"
t1=$(date +%s.%N)
echo "filled in $(python3 -c "print(round($t1 - $t0, 1))") s;" \
    "database $(du -m "$DB" | cut -f1) MB"
start_ferry

# median wall-clock milliseconds of 7 runs of the command, after a warm-up
time_cmd() {
	python3 - "$@" <<'PY'
import subprocess, sys, time
argv = sys.argv[1:]
out = subprocess.run(argv, capture_output=True, text=True)
if out.returncode != 0:
    sys.exit("failed: %s %s" % (" ".join(argv), out.stderr))
ts = []
for _ in range(7):
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    ts.append((time.perf_counter() - t) * 1000)
    assert p.returncode == 0, p.stderr
ts.sort()
print("%.1f ms median (min %.1f, max %.1f), %d output lines" % (
    ts[3], ts[0], ts[-1], len(out.stdout.splitlines())))
PY
}

CTL="$TOP/src/ferryctl -s $SOCK"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ferryctl history --rcpt user4242@d242.example:"
echo "  $(time_cmd $CTL history --rcpt user4242@d242.example)"
echo "ferryctl --json history --rcpt user4242@d242.example:"
echo "  $(time_cmd $CTL --json history --rcpt user4242@d242.example)"
echo "ferryctl history --rcpt @d242.example (1000 rows of the domain's):"
echo "  $(time_cmd $CTL history --rcpt @d242.example --limit 1000)"
echo "ferryctl history --rcpt user4242@d242.example --status bounced:"
echo "  $(time_cmd $CTL history --rcpt user4242@d242.example --status bounced)"
echo "ferryctl history (no filter, the newest 100):"
echo "  $(time_cmd $CTL history)"
echo "ferryctl status (the round trip alone, for scale):"
echo "  $(time_cmd $CTL status)"
stop_ferry
echo "the query alone in sqlite3 (.timer, after a warm-up):"
sqlite3 "$DB" <<'SQL' | grep -E '^Run Time' | tail -n1
SELECT count(*) FROM (SELECT h.id FROM history_rcpt h JOIN history_message m
  ON m.id = h.hmsg_id WHERE 1 AND h.address = 'user4242@d242.example'
  ORDER BY h.left_at DESC, h.id DESC LIMIT 101);
.timer on
SELECT count(*) FROM (SELECT h.id FROM history_rcpt h JOIN history_message m
  ON m.id = h.hmsg_id WHERE 1 AND h.address = 'user4242@d242.example'
  ORDER BY h.left_at DESC, h.id DESC LIMIT 101);
SQL
echo "one prune step (the runner's batch: the 100 oldest messages with"
echo "their recipients and attempts), in sqlite3 (BEGIN, DELETE, COMMIT):"
sqlite3 "$DB" <<'SQL' | grep -E '^Run Time' | sed 's/^/  /'
PRAGMA foreign_keys = ON;
.timer on
BEGIN;
DELETE FROM history_message WHERE id IN (SELECT id FROM history_message
  WHERE left_at < 2e9 ORDER BY left_at LIMIT 100);
COMMIT;
SQL
echo "an example:"
start_ferry
$CTL history --rcpt user4242@d242.example --limit 2 | sed 's/^/  /'
stop_ferry
echo "plan:"
sqlite3 "$DB" "EXPLAIN QUERY PLAN SELECT h.id FROM history_rcpt h JOIN
  history_message m ON m.id = h.hmsg_id WHERE 1 AND
  h.address = 'user4242@d242.example' ORDER BY h.left_at DESC, h.id DESC
  LIMIT 101" | sed 's/^/  /'
