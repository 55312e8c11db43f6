#!/usr/bin/env python3
"""End-to-end: two ferry instances behind HAProxy (send-proxy-v2).

HAProxy (Debian's haproxy) listens on loopback and balances TCP over two
ferry instances whose listener "lb" takes PROXY v2 from 127.0.0.1; both
relay to one test smarthost.  Twenty client sessions, each from its own
source address 127.0.0.x, send 2,000 messages in all; the Received header
of every message at the smarthost names the client's own 127.0.0.x (the
header's address, not HAProxy's).  Mid-load one instance is killed with
SIGKILL (master and every child): the clients whose session was cut
reconnect through HAProxy, which sends them to the survivor, and send
again what was not acknowledged.  Once the killed instance is restarted
on its spool, every message that got a 250 from either instance has
reached the smarthost.  HAProxy's health checks (PROXY v2 LOCAL) are
closed quietly.  Skipped when haproxy is not installed."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
SESSIONS = 20
PER_SESSION = 100
TOTAL = SESSIONS * PER_SESSION
KILL_AFTER = 600           # acknowledged messages before the kill
WAIT = 120.0
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"


def haproxy_config(port, backends):
    servers = "\n".join(
        "    server %s 127.0.0.1:%d send-proxy-v2 check inter 200 "
        "fall 1 rise 2" % (name, p) for name, p in backends)
    return """global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
frontend smtp
    bind 127.0.0.1:%d
    default_backend ferry
backend ferry
    balance roundrobin
%s
""" % (port, servers)


class SourceClient(ft.Client):
    """A Client connecting from the source address src."""

    def __init__(self, port, src, timeout=ft.IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout,
                                             source_address=(src, 0))
        self.timeout = timeout
        self.buf = b""
        self.server_port = port
        self.greeting = self.reply()


class Sender(threading.Thread):
    """One client, from source address src: sends its messages through
    HAProxy, reconnecting (through HAProxy again) when a session is cut
    and sending again whatever was not acknowledged."""

    def __init__(self, test, port, index, src):
        super().__init__(daemon=True)
        self.test = test
        self.port = port
        self.src = src
        self.ids = ["<m%d.%d@origin.test>" % (index, i)
                    for i in range(PER_SESSION)]
        self.acked = []           # Message-IDs that got a 250
        self.sessions = 0
        self.error = None

    def connect(self):
        c = SourceClient(self.port, self.src)
        if c.greeting.code != 220:
            c.close()
            raise ft.SMTPError("greeting %r" % c.greeting)
        c.ehlo()
        return c

    def run(self):
        end = time.monotonic() + WAIT
        todo = list(self.ids)
        c = None
        try:
            while todo:
                if time.monotonic() > end:
                    raise RuntimeError("%s: %d messages left" %
                                       (self.src, len(todo)))
                try:
                    if c is None:
                        self.sessions += 1
                        c = self.connect()
                    mid = todo[0]
                    content = ("Message-ID: %s\r\nSubject: from %s\r\n\r\n"
                               "body\r\n" % (mid, self.src)).encode()
                    ft.queued_id(self._send(c, content))
                    self.acked.append(mid)
                    self.test.acked_one()
                    todo.pop(0)
                except (OSError, EOFError, ft.SMTPError):
                    # cut by the kill (or refused meanwhile): again,
                    # through HAProxy
                    if c is not None:
                        c.close()
                    c = None
                    time.sleep(0.1)
            c.cmd("QUIT")
            c.close()
        except Exception as e:      # reported by the test
            self.error = e

    @staticmethod
    def _send(c, content):
        """MAIL, RCPT, DATA; the reply to the end of data."""
        for line, want in (("MAIL FROM:<%s>" % SENDER, 250),
                           ("RCPT TO:<%s>" % RCPT, 250),
                           ("DATA", 354)):
            r = c.cmd(line)
            if r.code != want:
                raise ft.SMTPError("%s: %r" % (line, r))
        c.send(ft.dot_stuff(content) + b".\r\n")
        return c.reply()


class HAProxyTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="ferry-haproxy-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.lock = threading.Lock()
        self.acked = 0

    def acked_one(self):
        with self.lock:
            self.acked += 1

    def start_haproxy(self, backends):
        port = ft.free_port()
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(port, backends))
        log = open(os.path.join(self.dir, "haproxy.log"), "wb")
        self.addCleanup(log.close)
        check = subprocess.run([HAPROXY, "-c", "-f", cfg],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
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

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                return False
        self.assertTrue(ft.wait_for(listening, 10),
                        "haproxy did not listen")
        return port

    def test_two_instances_behind_haproxy(self):
        t0 = time.monotonic()
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": [s.address], "tls": "none"}
        opts = dict(
            routes=[route],
            delivery={"retry_schedule": [1], "connect_timeout": 5},
            more_listeners=[{"name": "lb", "proxy_protocol": "v2",
                             "proxy_networks": ["127.0.0.1/32"]}])
        a = self.start_ferry(**opts)
        # b holds what it takes until it is killed: its deliveries are
        # paused, so its 250s must survive the SIGKILL in its queue
        b = self.start_ferry(**dict(opts, delivery=dict(opts["delivery"],
                                                        paused=True)))
        port = self.start_haproxy([("a", a.ports["lb"]),
                                   ("b", b.ports["lb"])])
        # both servers up in HAProxy's eyes (rise 2 checks)
        time.sleep(0.6)

        senders = [Sender(self, port, i, "127.0.0.%d" % (10 + i))
                   for i in range(SESSIONS)]
        for t in senders:
            t.start()
        self.assertTrue(ft.wait_for(lambda: self.acked >= KILL_AFTER, 30,
                                    0.01), "only %d acknowledged"
                        % self.acked)
        # both served sessions before the kill
        self.assertTrue(a.wait_log(r"PROXY v2 from 127\.0\.0\.1", 1))
        self.assertTrue(b.wait_log(r"PROXY v2 from 127\.0\.0\.1", 1))
        pids = [b.pid] + list(b.seen)
        b.kill_all()
        self.assertTrue(ft.wait_for(
            lambda: not any(ft.alive(p) for p in pids), 5))
        killed_at = self.acked
        for t in senders:
            t.join(WAIT)
        for t in senders:
            self.assertFalse(t.is_alive(), "sender %s stuck" % t.src)
            self.assertIsNone(t.error, "sender %s: %s" % (t.src, t.error))
        self.assertEqual(self.acked, TOTAL)
        self.assertLess(killed_at, TOTAL, "the kill came after the load")
        # some sessions were cut and retried through HAProxy
        self.assertGreater(sum(t.sessions for t in senders), SESSIONS)

        want = {mid: t.src for t in senders for mid in t.acked}
        got = {}

        def all_arrived():
            for m in s.messages:
                mm = re.search(rb"Message-ID: (<[^>]+>)", m.data)
                if mm:
                    got.setdefault(mm.group(1).decode(), m)
            return set(want) <= set(got)
        # a delivers all it took; b's share waits in b's queue (read
        # while b is down)
        self.assertTrue(ft.wait_for(lambda: a.count() == 0, WAIT),
                        "instance a still holds %d" % a.count())
        self.assertGreater(b.count(), 0)
        self.assertFalse(s.wait(all_arrived, 0.1),
                         "b's share arrived before b was restarted")
        # the killed instance again, on its spool, delivering: every
        # message that got a 250 arrives
        b.opts["delivery"] = dict(opts["delivery"])
        b.start()
        ok = s.wait(all_arrived, WAIT)
        self.assertTrue(ok, "%d of %d acknowledged messages arrived; "
                        "missing e.g. %s" % (
                            len(set(want) & set(got)), len(want),
                            sorted(set(want) - set(got))[:5]))
        for mid, src in want.items():
            hdr, _ = ft.split_received(got[mid].data)
            self.assertEqual(hdr.group("addr").decode(), src,
                             "%s: Received names %s, not the client %s"
                             % (mid, hdr.group("addr").decode(), src))
        # HAProxy's health checks (PROXY v2 LOCAL) left no warning
        for d in (a, b):
            self.assertNotRegex(d.log_text(), r"PROXY header from")
        self.assertLess(time.monotonic() - t0, 60)


if __name__ == "__main__":
    if HAPROXY is None:
        sys.stderr.write("test_haproxy: haproxy is not installed "
                         "(apt-get install haproxy); skipping\n")
        sys.exit(ft.SKIP)
    ft.main(need_root=True)
