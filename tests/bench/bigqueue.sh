#!/bin/sh
# Big-queue benchmark: N messages deferred with the smarthost down, for
# ferry and for Postfix configured as a relay, in one run.
#
#   sudo sh tests/bench/bigqueue.sh [messages] [idle-seconds] [probe]
#
# messages (default 100000) are queued with nothing listening at the
# smarthost's port; probe (default 5000) of them measure the intake rate
# with the queue empty and again with it full.  Then, for ferry: the
# queue runner's CPU over idle-seconds (default 60), how long
# "ferryctl status" and a whole "ferryctl queue list" take, the
# connection attempts made to the dead next hop and the attempts
# deferred without one; then Postfix's smtp-sink starts at the
# smarthost's port, "ferryctl queue flush" and the time until the queue
# is empty gives the drain rate, and queue.db's size at the peak and
# once it stops shrinking after the drain (incremental vacuum); then the end-to-end rate of probe messages over 10
# sessions with the queue empty, which the drain rate is held against,
# and how long after acceptance each of those had its first attempt
# (the queue part of delays= in its log line: mean, p99, max).
# While the smarthost is down it also measures the runner's CPU-seconds
# for one retry step's pass over the held mail (the next probe, and the
# bulk deferral of everything held: waited for, so with the shipped
# retry schedule this can take up to one step), and the longest intake
# stall (intake_stall.py: one message at a time over one session)
# during that pass and during "ferryctl queue list".  For Postfix: its
# intake rates, "postqueue -p" time, its connection attempts, and its
# drain rate after "postqueue -f".  A summary puts the figures side by
# side at the end.  RETRY="120" (say) in the environment
# sets delivery { retry_schedule } to shorten the wait for that pass;
# the pass's CPU-seconds do not depend on it.
# Pools are sized like Postfix's defaults (workers 100, agents 20);
# everything else is ferry's shipped configuration, apart from the
# listener, smarthost, spool, users and the per-client abuse limits (one
# loopback client opens every connection).  Needs root, a built tree and
# Debian's postfix package (smtp-source, smtp-sink, the Postfix relay).
set -eu
N=${1:-100000}
IDLE=${2:-60}
PROBE=${3:-5000}
SESS=10
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/ferry-bigqueue.XXXXXX)
chmod 755 "$WORK"
. "$TOP/tests/bench/postfix-instance.sh"
FPORT=$(free_port); PPORT=$(free_port); SINK=$(free_port)
FERRY_PID= SINK_PID= done=0
cleanup() {
	[ -n "$FERRY_PID" ] && kill "$FERRY_PID" 2>/dev/null || true
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
	postfix_instance_stop
	# a run cut short shows how ferry's log ended
	[ "$done" = 1 ] || tail -5 "$WORK/ferry.log" >&2 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
[ "$N" -ge $((PROBE * 2)) ] || PROBE=$((N / 4))

. "$TOP/tests/bench/ferry-instance.sh"
ferry_bench_conf "$WORK/ferry-spool" "$FPORT" "$SINK" > "$WORK/ferry.conf" <<CONF
workers {
    max = 100
}
delivery {
    agents = 20
    per_destination = 20
${RETRY:+    retry_schedule = {$RETRY\}}
}
CONF

now() { python3 -c 'import time;print(time.time())'; }
DB="$WORK/ferry-spool/queue/queue.db"
SOCK="$WORK/ferry-spool/ferryctl.sock"
ferry_queue() { sqlite3 "$DB" "select count(*) from message" 2>/dev/null || echo 1; }
postfix_queue() {
	find "$WORK/postfix-spool/incoming" "$WORK/postfix-spool/active" \
	    "$WORK/postfix-spool/deferred" "$WORK/postfix-spool/maildrop" \
	    -type f 2>/dev/null | wc -l
}
drain() { while [ "$($1)" -ne 0 ]; do sleep 0.2; done; }
cpu_of() {
	for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done |
	    awk '{ t += $14 + $15 } END { printf "%.2f", t / 100 }'
}
rate() {  # port count -> messages/second through smtp-source
	t0=$(now)
	smtp-source -s "$SESS" -m "$2" -l 1024 -f sender@example.org \
	    -t rcpt@example.com "127.0.0.1:$1"
	t1=$(now)
	python3 -c "print('%.0f' % ($2 / ($t1 - $t0)))"
}
timed() {  # command... -> seconds it took (its output thrown away);
	# timed inside one python, so its own start is not counted
	python3 -c 'import subprocess, sys, time
t0 = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False)
print("%.3f" % (time.monotonic() - t0))' "$@"
}
median_of() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

T_START=$(now)
echo "bigqueue: $N messages deferred (smarthost down), intake probes of $PROBE, load: $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ ferry
"$TOP/src/ferryd" -d -f "$WORK/ferry.conf" 2>"$WORK/ferry.log" &
FERRY_PID=$!
ferry_wait_greeting "$FPORT"
f_empty=$(rate "$FPORT" "$PROBE")
smtp-source -s "$SESS" -m $((N - 2 * PROBE)) -l 1024 -f sender@example.org \
    -t rcpt@example.com "127.0.0.1:$FPORT"
f_full=$(rate "$FPORT" "$PROBE")
echo "ferry:   intake empty $f_empty msg/s, full $f_full msg/s"
# every message had its first attempt (or bulk deferral) before idling
while [ "$(sqlite3 "$DB" "select count(*) from recipient where attempts = 0" 2>/dev/null || echo 1)" -ne 0 ]; do
	sleep 1
done
runner=$(pgrep -P "$FERRY_PID" -x ferry-queue | head -1)
c0=$(cpu_of "$runner"); sleep "$IDLE"; c1=$(cpu_of "$runner")
f_idle=$(python3 -c "print('%.2f' % (100 * ($c1 - $c0) / $IDLE))")
echo "ferry:   runner CPU while idle: $f_idle % over $IDLE s"
# one retry step's pass over the held mail: the runner's CPU-seconds from
# the next probe until nothing is due, while one message in 0.2 s comes
# in to see how long intake waits meanwhile
cat > "$WORK/pass.py" <<'PY'
import os, sqlite3, sys, time
log, db, pid, out = sys.argv[1:5]
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
with open(log, "rb") as f:
    f.seek(0, 2)
    tail = b""
    while True:
        chunk = tail + f.read()
        if b"probing next hop" in chunk:
            break
        tail = chunk[-64:]
        time.sleep(0.01)
c0, t0 = cpu(), time.time()
time.sleep(1)
q = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
while q.execute("select count(*) from recipient where state = 'pending'"
                " and next_attempt <= ?", (time.time(),)).fetchone()[0]:
    time.sleep(0.1)
c1, t1 = cpu(), time.time()
held = q.execute("select count(*) from recipient"
                 " where state = 'pending'").fetchone()[0]
open(out, "w").write("%d %.2f %.1f\n" % (held, c1 - c0, t1 - t0))
PY
stall_pass=$(python3 "$TOP/tests/bench/intake_stall.py" "$FPORT" 0.2 -- \
    python3 "$WORK/pass.py" "$WORK/ferry.log" "$DB" "$runner" "$WORK/pass.txt")
read held pass pass_s < "$WORK/pass.txt"
echo "ferry:   one retry step's pass over $held held: runner $pass CPU-s in $pass_s s ($(python3 -c "print('%.2f' % (100 * $pass / 300))") % of a 300 s step, $(python3 -c "print('%.2f' % (100 * $pass / 900))") % of 900 s); intake meanwhile: $stall_pass"
st=$(for i in 1 2 3 4 5; do timed "$TOP/src/ferryctl" -s "$SOCK" status; done | median_of)
stall_ls=$(python3 "$TOP/tests/bench/intake_stall.py" "$FPORT" -- "$TOP/src/ferryctl" -s "$SOCK" queue list)
echo "ferry:   intake during queue list: $stall_ls"
ls_t=$(timed "$TOP/src/ferryctl" -s "$SOCK" queue list)
lsj_t=$(timed "$TOP/src/ferryctl" -s "$SOCK" --json queue list)
listed=$("$TOP/src/ferryctl" -s "$SOCK" --json queue list |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["messages"]))')
echo "ferry:   ferryctl status ${st}s (median of 5); queue list ${ls_t}s text, ${lsj_t}s JSON, $listed listed"
conn=$(sqlite3 "$DB" "select count(*) from attempt where reply like 'connect to %'")
susp=$(sqlite3 "$DB" "select count(*) from attempt where reply like 'delivery temporarily suspended:%'")
echo "ferry:   $conn connection attempts to the dead hop, $susp attempts deferred without one"
peak=$(stat -c %s "$DB")
smtp-sink -u nobody 127.0.0.1:"$SINK" 512 &
SINK_PID=$!
total=$(ferry_queue)                 # N and the stall probes' messages
t0=$(now)
"$TOP/src/ferryctl" -s "$SOCK" queue flush >/dev/null
drain ferry_queue
t1=$(now)
# idle: the vacuum steps run; the file's size once it stopped shrinking
# for 3 s (at most 300 s), and how long that took after the drain
shrunk=$(python3 -c 'import os, sys, time
db, t0 = sys.argv[1], time.time()
size, since = os.stat(db).st_size, time.time()
while time.time() - since < 3 and time.time() - t0 < 300:
    time.sleep(0.2)
    now = os.stat(db).st_size
    if now != size:
        size, since = now, time.time()
print("%d %.0f" % (size, since - t0))' "$DB")
after=${shrunk% *}
shrink_s=${shrunk#* }
f_drain=$(python3 -c "print('%.0f' % ($total / ($t1 - $t0)))")
echo "ferry:   drain after flush $f_drain msg/s ($total messages); queue.db $peak bytes at the peak, $after after the drain (shrinking for ${shrink_s} s)"
mark=$(wc -l < "$WORK/ferry.log")
t0=$(now)
smtp-source -s "$SESS" -m "$PROBE" -l 1024 -f sender@example.org \
    -t rcpt@example.com "127.0.0.1:$FPORT"
drain ferry_queue
t1=$(now)
f_e2e=$(python3 -c "print('%.0f' % ($PROBE / ($t1 - $t0)))")
echo "ferry:   end to end with the queue empty, $SESS sessions: $f_e2e msg/s"
# each message's first attempt: the first figure of delays= in its
# status=sent line (from its transaction's start to the job's dispatch)
first=$(tail -n +"$((mark + 1))" "$WORK/ferry.log" | python3 -c 'import re, sys
d = sorted(float(m.group(1)) for m in
           (re.search(r"delays=([0-9.e+-]+)/", l) for l in sys.stdin
            if "status=sent" in l) if m)
if d:
    print("mean %.3f s, p99 %.3f s, max %.3f s over %d" % (sum(d) / len(d),
          d[min(len(d) - 1, int(len(d) * 0.99))], d[-1], len(d)))
else:
    print("none logged")')
echo "ferry:   first attempt after acceptance, $SESS sessions: $first"
kids=$(pgrep -P "$FERRY_PID" | tr '\n' ' ')
kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
FERRY_PID=
kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
SINK_PID=

# ---------------------------------------------------------------- Postfix
postfix_instance_start "$PPORT" <<CONF
relayhost = [127.0.0.1]:$SINK
CONF
p_empty=$(rate "$PPORT" "$PROBE")
smtp-source -s "$SESS" -m $((N - 2 * PROBE)) -l 1024 -f sender@example.org \
    -t rcpt@example.com "127.0.0.1:$PPORT"
p_full=$(rate "$PPORT" "$PROBE")
echo "postfix: intake empty $p_empty msg/s, full $p_full msg/s"
sleep 2
pq=$(timed postqueue -c "$WORK/postfix" -p)
echo "postfix: postqueue -p ${pq}s"
# its deferrals while the hop is dead say "delivery temporarily suspended:
# connect to ...": only the others were connections
pconn=$(grep 'Connection refused' "$WORK/postfix.log" |
    grep -vc 'temporarily suspended' || true)
psusp=$(grep -c 'temporarily suspended' "$WORK/postfix.log" || true)
echo "postfix: $pconn connection attempts to the dead hop, $psusp deferrals without one"
smtp-sink -u nobody 127.0.0.1:"$SINK" 512 &
SINK_PID=$!
t0=$(now)
postqueue -c "$WORK/postfix" -f
drain postfix_queue
t1=$(now)
p_drain=$(python3 -c "print('%.0f' % ($N / ($t1 - $t0)))")
echo "postfix: drain after postqueue -f $p_drain msg/s"
echo
echo "summary, $N deferred ($(python3 -c "print('%.0f' % ($(now) - $T_START))") s, load now: $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %-52s %-26s %s\n' "" "ferry" "postfix" \
    "intake, first $PROBE (msg/s)" "$f_empty" "$p_empty" \
    "intake, last $PROBE (msg/s)" "$f_full" "$p_full" \
    "runner CPU while idle" "$f_idle %" "-" \
    "runner CPU for a retry step's pass" "$pass s ($held held)" "-" \
    "queue listing (ferryctl queue list / postqueue -p)" "${ls_t}s" "${pq}s" \
    "drain after flush (msg/s)" "$f_drain" "$p_drain" \
    "end to end, queue empty, $SESS sessions (msg/s)" "$f_e2e" "-" \
    "queue.db at the peak / after the drain" "$peak / $after bytes (${shrink_s} s)" "-" \
    "first attempt after acceptance" "$first" "-"
done=1
