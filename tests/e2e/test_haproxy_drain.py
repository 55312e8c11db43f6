#!/usr/bin/env python3
"""End-to-end: draining one of two ferry instances behind HAProxy.

HAProxy (Debian's haproxy) balances TCP over instances a and b (PROXY
v2 on their listener "lb") and health-checks each one's /readyz on its
metrics listener (option httpchk GET /readyz, check port <metrics>,
inter 200ms).  a relays to smarthost sa, b to smarthost sb, whose RCPT
is held so that b keeps what it takes in its queue.

Four client sessions, each from its own 127.0.0.x, are open through
HAProxy (round robin: two on each instance) and send one message each.
Then "ferryctl drain" on b: /readyz answers 503, HAProxy marks b DOWN.
The four sessions keep sending on the connections they have - every
transaction gets its 250, none is cut, including those on b.  New
sessions opened through HAProxy after that all land on a (b's log shows
no new PROXY session; their messages reach sa only).  Once sb lets the
mail through, "ferryctl drain --wait" on b exits 0 and b's queue is
empty.  Bounded (< 60 s); skipped when haproxy is not installed."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
from test_drain import MetricsFerry  # noqa: E402
from test_haproxy import HAPROXY, SourceClient, Sender  # noqa: E402

WAIT = 20.0
EARLY = 4                    # sessions open across the drain
AFTER = 3                    # messages each sends after the drain
LATE = 6                     # sessions opened once b is DOWN
RCPT = "rcpt@dest.test"


def haproxy_config(port, backends):
    """backends: (name, SMTP port, metrics port)."""
    servers = "\n".join(
        "    server %s 127.0.0.1:%d send-proxy-v2 check port %d "
        "inter 200ms fall 1 rise 1" % b for b in backends)
    return """global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
backend ferry
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
%s
frontend smtp
    bind 127.0.0.1:%d
    default_backend ferry
""" % (servers, port)


class HAProxyDrainTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="ferry-haproxy-drain-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.haproxy_log = os.path.join(self.dir, "haproxy.log")

    def start_ferry(self, **opts):
        d = MetricsFerry(**opts).start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        self.assertTrue(ft.wait_for(lambda: d.get("/readyz")[0] == 200,
                                    WAIT), "/readyz never 200")
        return d

    def start_haproxy(self, backends):
        port = ft.free_port()
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(port, backends))
        check = subprocess.run([HAPROXY, "-c", "-f", cfg],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        log = open(self.haproxy_log, "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([HAPROXY, "-db", "-f", cfg],
                             stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT)

        def stop():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.addCleanup(stop)
        return port

    def haproxy_text(self):
        with open(self.haproxy_log, "rb") as f:
            return f.read().decode(errors="replace")

    def session(self, port, src):
        c = SourceClient(port, src)
        self.addCleanup(c.close)
        self.assertReply(c.greeting, 220)
        c.ehlo()
        return c

    def send(self, c, mid):
        content = ("Message-ID: %s\r\nSubject: drain\r\n\r\nbody\r\n"
                   % mid).encode()
        r = Sender._send(c, content)
        self.assertReply(r, 250)
        ft.queued_id(r)

    def test_drain_one_instance_behind_haproxy(self):
        t0 = time.monotonic()
        sa = sh.SmartHost().start()
        self.addCleanup(sa.stop)
        sb = sh.SmartHost().start()
        self.addCleanup(sb.stop)
        gate = sb.hold_at("rcpt")
        lb = [{"name": "lb", "proxy_protocol": "v2",
               "proxy_networks": ["127.0.0.1/32"]}]
        delivery = {"retry_schedule": [1], "connect_timeout": 5}

        def route(s):
            return [{"name": "dest", "domains": ["dest.test"],
                     "hosts": [s.address], "tls": "none"}]
        a = self.start_ferry(routes=route(sa), delivery=delivery,
                             more_listeners=lb)
        b = self.start_ferry(routes=route(sb), delivery=delivery,
                             more_listeners=lb)
        port = self.start_haproxy([("a", a.ports["lb"], a.metrics_port),
                                   ("b", b.ports["lb"], b.metrics_port)])

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                return False
        self.assertTrue(ft.wait_for(listening, 10), "haproxy did not listen")
        time.sleep(0.5)         # a few health checks, both UP

        def accepted(d, src):
            return re.search(r"PROXY v2 from .*client %s\b"
                             % re.escape(src), d.log_text()) is not None

        # sessions open across the drain, spread over a and b
        srcs = ["127.0.0.%d" % (20 + i) for i in range(EARLY)]
        early = []
        for i, src in enumerate(srcs):
            c = self.session(port, src)
            self.send(c, "<early%d.0@origin.test>" % i)
            early.append(c)
        # the workers' lines reach the log through the master's pipe,
        # a few milliseconds after the 250
        ft.wait_for(lambda: all(accepted(a, src) or accepted(b, src)
                                for src in srcs), 5)
        on_b = [src for src in srcs if accepted(b, src)]
        on_a = [src for src in srcs if accepted(a, src)]
        self.assertTrue(on_b and on_a, "sessions on a %s, on b %s"
                        % (on_a, on_b))
        self.assertEqual(len(on_a) + len(on_b), EARLY)

        # drain b: /readyz says 503, HAProxy marks b DOWN
        p = b.ctl("drain")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(b.get("/readyz")[0], 503)
        self.assertTrue(ft.wait_for(
            lambda: re.search(r"ferry/b is DOWN", self.haproxy_text()),
            10), "HAProxy did not mark b DOWN:\n" + self.haproxy_text())
        b_log = b.log_size()

        # the sessions in progress go on, on both instances: every
        # transaction gets its 250
        for n in range(1, AFTER + 1):
            for i, c in enumerate(early):
                self.send(c, "<early%d.%d@origin.test>" % (i, n))
        # new sessions all land on a
        for i in range(LATE):
            src = "127.0.0.%d" % (40 + i)
            c = self.session(port, src)
            self.send(c, "<late%d@origin.test>" % i)
            self.assertReply(c.cmd("QUIT"), 221)
            self.assertTrue(ft.wait_for(lambda: accepted(a, src), 5),
                            "late session from %s not on a" % src)
        for c in early:
            self.assertReply(c.cmd("QUIT"), 221)
        self.assertNotRegex(b.log_text()[b_log:], r"PROXY v2 from",
                            "b took a session after it was marked DOWN")

        # b still holds its share (sb holds RCPT): drain --wait waits
        self.assertTrue(gate.reached.wait(WAIT), "b never tried sb")
        self.assertGreater(b.count(), 0)
        p = b.ctl("drain", "--wait", "--timeout", "1")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        gate.release()
        p = b.ctl("drain", "--wait", timeout=WAIT + 5)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(b.count(), 0)

        def ids(s):
            out = set()
            for m in s.messages:
                mm = re.search(rb"Message-ID: (<[^>]+>)", m.data)
                if mm:
                    out.add(mm.group(1).decode())
            return out
        want_b = {"<early%d.%d@origin.test>" % (srcs.index(src), n)
                  for src in on_b for n in range(AFTER + 1)}
        want_a = ({"<early%d.%d@origin.test>" % (srcs.index(src), n)
                   for src in on_a for n in range(AFTER + 1)} |
                  {"<late%d@origin.test>" % i for i in range(LATE)})
        self.assertTrue(sb.wait(lambda: ids(sb) >= want_b, WAIT),
                        "at sb: %s" % sorted(ids(sb)))
        self.assertTrue(sa.wait(lambda: ids(sa) >= want_a, WAIT),
                        "at sa: %s" % sorted(ids(sa)))
        # nothing of a's share (the late sessions above all) went to b
        self.assertEqual(ids(sb), want_b)
        self.assertEqual(ids(sa), want_a)
        self.assertLess(time.monotonic() - t0, 60)


if __name__ == "__main__":
    if HAPROXY is None:
        sys.stderr.write("test_haproxy_drain: haproxy is not installed "
                         "(apt-get install haproxy); skipping\n")
        sys.exit(ft.SKIP)
    ft.main(need_root=True)
