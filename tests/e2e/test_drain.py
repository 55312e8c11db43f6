#!/usr/bin/env python3
"""End-to-end: "ferryctl drain" and "ferryctl undrain".

- a session open before the drain still sends its message (250) after
  it; a new connection is answered 421 4.3.2 and closed; /readyz says
  503 ("draining") while the drain holds and 200 after undrain, and
  ferry_draining on /metrics follows; ferryctl status shows it; undrain
  makes new sessions get 220 again; one log line for each;
- mail queued while the smarthost was down is still delivered while
  drained once it is up: "drain --wait --timeout" exits 1 saying what
  is left while it cannot go, and "drain --wait" exits 0 once the queue
  is empty;
- a reload while drained stays drained: the workers of the new
  generation answer 421 4.3.2 too, until undrain.
Needs root (the daemon drops privileges)."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"
CONTENT = (b"From: <sender@origin.test>\r\nTo: <rcpt@dest.test>\r\n"
           b"Subject: drain\r\n\r\nbody\r\n")


class MetricsFerry(ft.Ferry):
    """A Ferry with metrics { enabled } on a port of its own."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.metrics_port = None

    def config_text(self, **changes):
        if self.metrics_port is None:
            self.metrics_port = ft.free_port()
        return (super().config_text(**changes) +
                'metrics {\n    enabled = true\n'
                '    address = "127.0.0.1"\n    port = %d\n}\n'
                % self.metrics_port)

    def get(self, path):
        """(status code, body) of GET path, or (None, b"") when the
        endpoint does not answer."""
        try:
            s = socket.create_connection(("127.0.0.1", self.metrics_port),
                                         timeout=10)
        except OSError:
            return None, b""
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       % path).encode())
            raw = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                raw += b
        except OSError:
            return None, b""
        finally:
            s.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        try:
            return int(head.split(b" ")[1]), body
        except (IndexError, ValueError):
            return None, b""


class DrainCase(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.s = sh.SmartHost().start()
        self.addCleanup(self.s.stop)
        self.b = sh.SmartHost().start()         # bounces, if any
        self.addCleanup(self.b.stop)

    def tearDown(self):
        if self._failed():
            sys.stderr.write("\n[%s] smarthost: %s\n" % (self.id(),
                                                         self.s.summary()))
        super().tearDown()

    def start(self, metrics=False):
        opts = dict(
            routes=[{"name": "dest", "domains": ["dest.test"],
                     "hosts": [self.s.address], "tls": "none"},
                    {"name": "origin", "domains": ["origin.test"],
                     "hosts": [self.b.address], "tls": "none"}],
            delivery={"retry_schedule": [600], "connect_timeout": 5,
                      "max_lifetime": 3600})
        d = (MetricsFerry(**opts) if metrics else ft.Ferry(**opts)).start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        if metrics:
            self.assertTrue(ft.wait_for(lambda: d.get("/readyz")[0] == 200,
                                        WAIT), "/readyz never 200")
        return d

    def ctl(self, d, *args, rc=0, timeout=ft.IO_TIMEOUT):
        p = d.ctl(*args, timeout=timeout)
        self.assertEqual(p.returncode, rc, "ferryctl %s: %r %r"
                         % (" ".join(args), p.stdout, p.stderr))
        return p

    def status(self, d):
        doc = d.ctl_json("status")
        self.assertIs(doc.get("ok"), True, doc)
        return doc

    def assertRefused(self, d):
        """A new connection gets 421 4.3.2 and is closed."""
        with d.client() as c:
            self.assertReply(c.greeting, 421, "4.3.2")
            self.assertTrue(c.is_closed(), "not closed after the 421")

    def assertTaken(self, d):
        with d.client() as c:
            self.assertReply(c.greeting, 220)
            self.assertReply(c.cmd("QUIT"), 221)

    def metric(self, d, name):
        code, body = d.get("/metrics")
        self.assertEqual(code, 200)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail("no %s on /metrics" % name)

    def test_drain_refuses_new_sessions_and_undrain_resumes(self):
        d = self.start(metrics=True)
        self.assertEqual(self.metric(d, "ferry_draining"), 0)
        self.assertIs(self.status(d)["master"]["draining"], False)
        # a session open before the drain
        early = d.client()
        self.addCleanup(early.close)
        self.assertReply(early.greeting, 220)
        early.ehlo()

        p = self.ctl(d, "drain")
        self.assertIn("draining", p.stdout)
        self.assertIn("0 message(s) left", p.stdout)
        self.assertRefused(d)
        self.assertRefused(d)        # whichever worker takes it
        code, body = d.get("/readyz")
        self.assertEqual((code, body), (503, b"draining\n"))
        self.assertEqual(d.get("/healthz")[0], 200)
        self.assertEqual(self.metric(d, "ferry_draining"), 1)
        self.assertIs(self.status(d)["master"]["draining"], True)
        self.assertIn("draining", self.ctl(d, "status").stdout)

        # the session that was open goes on to a queued message
        qid = early.send_message(SENDER, [RCPT], CONTENT)
        self.assertTrue(qid)
        self.assertReply(early.cmd("QUIT"), 221)
        self.assertTrue(ft.wait_for(lambda: len(self.s.messages) == 1,
                                    WAIT), "not delivered while drained")

        # drain again: no second line, still draining
        self.ctl(d, "drain")
        self.assertEqual(d.log_text().count("drain: new SMTP sessions "
                                            "are answered 421 4.3.2"), 1)

        p = self.ctl(d, "undrain")
        self.assertIn("taking new SMTP sessions again", p.stdout)
        self.assertTaken(d)
        self.assertEqual(d.get("/readyz"), (200, b"ready\n"))
        self.assertEqual(self.metric(d, "ferry_draining"), 0)
        self.assertIs(self.status(d)["master"]["draining"], False)
        self.assertEqual(d.log_text().count(
            "undrain: taking new SMTP sessions again"), 1)
        # a new session sends mail again
        d.send(CONTENT, sender=SENDER, rcpts=[RCPT])
        self.assertTrue(ft.wait_for(lambda: len(self.s.messages) == 2,
                                    WAIT))

    def test_queue_empties_while_drained(self):
        d = self.start()
        # the smarthost is down: both messages are deferred
        self.s.reply_at("rcpt", "451 4.3.0 down for maintenance")
        qids = [d.send(CONTENT, sender=SENDER, rcpts=[RCPT])
                for _ in range(2)]

        def deferred():
            rows = d.query("SELECT state, attempts FROM recipient")
            return (len(rows) == 2 and
                    all(r["state"] == "pending" and r["attempts"] >= 1
                        for r in rows))
        self.assertTrue(ft.wait_for(deferred, WAIT, 0.1), "not deferred")

        self.ctl(d, "drain")
        start = time.monotonic()
        p = self.ctl(d, "drain", "--wait", "--timeout", "2", rc=1)
        self.assertGreaterEqual(time.monotonic() - start, 1.9)
        self.assertIn("timed out: 2 message(s) left in the queue", p.stdout)
        self.assertRefused(d)

        # the smarthost is back: a flush sends the queue while drained
        self.s.clear_rules()
        self.ctl(d, "queue", "flush")
        p = self.ctl(d, "drain", "--wait", "--timeout", "30", timeout=40)
        self.assertIn("the queue is empty", p.stdout)
        self.assertEqual(len(self.s.messages), 2)
        self.assertEqual(d.count(), 0)
        for q in qids:
            self.assertRegex(d.log_text(), q + r": to=<%s>.*status=sent"
                             % RCPT)
        self.assertRefused(d)        # still draining
        self.assertIs(self.status(d)["master"]["draining"], True)

        # --wait on an empty queue returns at once; usage errors
        self.ctl(d, "drain", "--wait")
        self.ctl(d, "undrain", "--wait", rc=2)
        self.ctl(d, "drain", "--timeout", "5", rc=2)
        self.ctl(d, "drain", "--wait", "--timeout", "soon", rc=2)
        self.ctl(d, "undrain")
        self.assertTaken(d)

    def test_reload_while_drained_stays_drained(self):
        d = self.start()
        self.ctl(d, "drain")
        self.assertRefused(d)
        before = set(d.workers())
        self.ctl(d, "reload")
        self.assertEqual(self.status(d)["master"]["generation"], 2)
        self.assertIs(self.status(d)["master"]["draining"], True)
        # the old generation leaves; the new one drains as well
        self.assertTrue(ft.wait_for(lambda: not before & set(d.workers()),
                                    WAIT), "the old workers stay")
        self.assertTrue(d.workers())
        for _ in range(3):
            self.assertRefused(d)
        self.assertIn("still draining", d.log_text())
        # SIGHUP straight to ferryd, the same
        d.signal(signal.SIGHUP)
        self.assertTrue(ft.wait_for(
            lambda: self.status(d)["master"]["generation"] == 3, WAIT))
        self.assertRefused(d)
        self.ctl(d, "undrain")
        self.assertTaken(d)


if __name__ == "__main__":
    ft.main(need_root=True)
