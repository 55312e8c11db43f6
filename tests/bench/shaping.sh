#!/bin/sh
# Rate shaping benchmark: the rate a shaped route achieves against the
# rate it is configured for (ferry.conf(5), rate_per_second).
#
#   sudo sh tests/bench/shaping.sh [seconds] [rate...]
#
# For each rate (default 10 and 50 messages a second) ferry starts with
# delivery paused (8 agents, 8 connections per destination: the test
# smarthost is a Python server, slow per session) and a route with that
# rate_per_second to the test
# smarthost (tests/lib/smarthost.py), takes rate x seconds (default 20)
# messages into its queue, and is reloaded with delivery on; the rate is
# the messages after the first divided by the time from the first
# arrival at the smarthost to the last.  Prints it, its ratio to the
# configured rate (the target: within 5 %), and the load average, since
# other work on the machine slows the scheduler down.  A rate of 0 runs
# the same route unshaped (100 a second's worth of messages): what ferry
# and the test smarthost reach at most here.  Needs root and a
# built tree.
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_RUN=${1:-20}
[ $# -gt 0 ] && shift
RATES=${*:-10 50}
exec python3 - "$TOP" "$SECONDS_RUN" $RATES <<'PY'
import os, signal, sys, time
top, seconds, rates = sys.argv[1], int(sys.argv[2]), [int(r) for r in sys.argv[3:]]
sys.path.insert(0, os.path.join(top, "tests", "lib"))
import ferrytest as ft
import smarthost as sh

body = b"Subject: shaped\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10
print("load average before: %.2f %.2f %.2f" % os.getloadavg())
for rate in rates:
    n = (rate or 100) * seconds + 1
    sink = sh.SmartHost().start()
    route = {"name": "dest", "domains": ["dest.test"],
             "hosts": [sink.address], "tls": "none"}
    if rate > 0:
        route["rate_per_second"] = rate
    deliv = {"agents": 8, "per_destination": 8}
    d = ft.Ferry(routes=[route], delivery=dict(deliv, paused=True),
                 limits={"message_rate": 1000000,
                         "connection_rate": 1000000}).start()
    try:
        with d.client() as c:
            c.ehlo("bench.example")
            for _ in range(n):
                c.send_message("bench@origin.test", ["r@dest.test"], body)
            c.cmd("QUIT")
        d.write_config(delivery=dict(deliv, paused=False))
        d.signal(signal.SIGHUP)
        sink.wait_messages(n, seconds * 3 + 60)
        t = sink.arrival_times()
        span = t[-1] - t[0]
        got = (len(t) - 1) / span
        if rate > 0:
            print("rate_per_second = %d: %d messages in %.2f s, %.2f/s, "
                  "ratio %.3f" % (rate, len(t), span, got, got / rate))
        else:
            print("unshaped: %d messages in %.2f s, %.2f/s" % (
                len(t), span, got))
    finally:
        d.stop()
        sink.stop()
print("load average after: %.2f %.2f %.2f" % os.getloadavg())
PY
