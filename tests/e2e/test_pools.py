#!/usr/bin/env python3
"""End-to-end: smarthost pools.  A route's hosts with priority=N and
weight=N: messages split by weight over the best priority (smooth
weighted round robin, exact with one agent), a lower priority only while
every better host is down and the primary used again after its cooldown,
the circuit breaker of a host (opened after host_failures connection
failures, TLS handshake failures or 421 greetings, logged and shown by ferryctl status, one
probe after the cooldown, the cooldown doubling after a failed probe),
the whole route deferred in bulk only when every host is down, a host's
state kept across a reload, and the active probe seeing a host come back
without mail; status (text and JSON) and the metrics show each host.

Test smarthosts (tests/lib/smarthost.py) listen on free ports; a host
that is "down" is a port where nothing listens.  Needs root."""

import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
from test_metrics import MetricsFerry, check_exposition, value  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"


class PoolCase(ft.FerryTestCase):

    def smarthost(self, **kw):
        s = sh.SmartHost(**kw).start()
        self.addCleanup(s.stop)
        return s

    def pool_ferry(self, hosts, metrics=False, delivery=None, **pool):
        route = {"name": "dest", "domains": ["dest.test"], "hosts": hosts,
                 "tls": "none"}
        route.update(pool)
        d = {"retry_schedule": [1], "connect_timeout": 5,
             "client_command_timeout": 10, "max_lifetime": 3600}
        d.update(delivery or {})
        if not metrics:
            return self.start_ferry(routes=[route], delivery=d)
        f = MetricsFerry(routes=[route], delivery=d).start()

        def cleanup():
            self.dump_logs_if_failed(f)
            f.stop()
        self.addCleanup(cleanup)
        return f

    def send(self, d, n=1, tag="m"):
        return [d.send(b"Subject: %s%d\r\n\r\nbody\r\n" % (tag.encode(), i),
                       sender=SENDER, rcpts=[RCPT]) for i in range(n)]

    def gone(self, d, qid):
        self.assertTrue(ft.wait_for(
            lambda: d.count("message", "qid = ?", (qid,)) == 0, WAIT, 0.1),
            "%s still queued" % qid)

    def log_line(self, d, pattern, timeout=WAIT):
        m = d.wait_log(pattern, timeout)
        self.assertIsNotNone(m, "no log line %r" % pattern)
        return m

    def host_status(self, d, host):
        doc = d.ctl_json("status")
        for p in doc.get("pools", []):
            if p["route"] == "dest":
                for h in p["hosts"]:
                    if h["host"] == host:
                        return h
        raise AssertionError("no pool host %s in %r" % (host, doc))


class WeightTest(PoolCase):

    def test_weights_3_to_1_over_40_messages(self):
        a = self.smarthost()
        b = self.smarthost()
        backup = self.smarthost()
        d = self.pool_ferry(
            ["%s priority=10 weight=3" % a.address,
             "%s priority=10 weight=1" % b.address,
             "%s priority=20" % backup.address],
            delivery={"agents": 1})
        qids = self.send(d, 40)
        self.assertEqual(len(set(qids)), 40)
        for q in qids:
            self.gone(d, q)
        # one agent, smooth weighted round robin: exactly 3:1
        self.assertEqual(len(a.messages), 30, a.summary())
        self.assertEqual(len(b.messages), 10, b.summary())
        self.assertEqual(len(backup.sessions), 0, backup.summary())
        self.assertEqual(self.host_status(d, a.address)["state"], "up")


class FallbackTest(PoolCase):

    def test_priority_fallback_and_return_after_cooldown(self):
        p1, p2 = ft.free_port(), ft.free_port()
        mx1, mx2 = "127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2
        backup = self.smarthost()
        d = self.pool_ferry(
            ["%s priority=10 weight=2" % mx1, "%s priority=10" % mx2,
             "%s priority=20" % backup.address],
            host_failures=1, host_cooldown=2)
        (q,) = self.send(d, 1, "first")
        backup.wait_messages(1, WAIT)
        self.gone(d, q)
        # both primaries refused: each is open, the backup took it
        self.log_line(d, r"route dest: host %s is down after 1 failure"
                      % mx1.replace(".", r"\."))
        self.log_line(d, r"route dest: host %s is down after 1 failure"
                      % mx2.replace(".", r"\."))
        for h in (mx1, mx2):
            st = self.host_status(d, h)
            self.assertIn(st["state"], ("open", "probing"), st)
            self.assertIn("Connection refused", st["last_error"])
        self.assertEqual(self.host_status(d, backup.address)["state"], "up")
        # the primary comes back; after its cooldown a job probes it and
        # mail goes there again, not to the backup.  One message first:
        # a job that meets the other primary still down while this one's
        # probe is out goes on to the backup (a host being probed takes
        # no other job), so the rest follow once the probe has told.
        primary = self.smarthost(port=p1)
        time.sleep(2.5)
        qs = self.send(d, 1, "back")
        self.log_line(d, r"probing host %s of route dest after its "
                      r"cooldown" % mx1.replace(".", r"\."))
        self.log_line(d, r"route dest: host %s is up again"
                      % mx1.replace(".", r"\."))
        qs += self.send(d, 3, "back again")
        for q in qs:
            self.gone(d, q)
        self.assertEqual(len(primary.messages), 4, primary.summary())
        self.assertEqual(len(backup.messages), 1, backup.summary())
        self.assertEqual(self.host_status(d, mx1)["state"], "up")

    def test_every_host_down_defers_the_route_in_bulk(self):
        p1 = ft.free_port()
        mx1 = "127.0.0.1:%d" % p1
        mx2 = "127.0.0.1:%d" % ft.free_port()
        d = self.pool_ferry([mx1, mx2], host_failures=1, host_cooldown=60)
        (q1,) = self.send(d, 1, "a")
        self.log_line(d, r"%s: to=<rcpt@dest\.test>.*status=deferred" % q1)
        (q2,) = self.send(d, 1, "b")
        self.log_line(d, r"route dest: every host is down")
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=none.*"
                      r"status=deferred \(delivery temporarily suspended: "
                      r"every host of route dest is down" % q2)
        text = d.ctl("status").stdout
        self.assertIn("pools:", text)
        self.assertIn("open until", text)
        # a flush tries every host again, long before the cooldown ends
        back = self.smarthost(port=p1)
        p = d.ctl("queue", "flush")
        self.assertEqual(p.returncode, 0, p.stderr)
        back.wait_messages(2, WAIT)
        self.gone(d, q1)
        self.gone(d, q2)


class BreakerTest(PoolCase):

    def test_reload_keeps_an_open_host_open(self):
        mx1 = "127.0.0.1:%d" % ft.free_port()
        good = self.smarthost()
        d = self.pool_ferry([mx1, good.address], host_failures=1,
                            host_cooldown=60)
        (q,) = self.send(d, 1, "before")
        self.gone(d, q)
        self.assertEqual(self.host_status(d, mx1)["state"], "open")
        d.write_config(routes=[{
            "name": "dest", "domains": ["dest.test"], "tls": "none",
            "hosts": [mx1, "%s weight=2" % good.address],
            "host_failures": 1, "host_cooldown": 60}])
        start = d.log_size()
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(
            r"queue runner: configuration reloaded", WAIT, start))
        st = self.host_status(d, mx1)
        self.assertEqual((st["state"], st["failures_total"]), ("open", 1),
                         st)
        self.assertEqual(self.host_status(d, good.address)["weight"], 2)
        (q,) = self.send(d, 1, "after")
        self.gone(d, q)
        # still skipped: not tried again
        self.assertEqual(self.host_status(d, mx1)["failures_total"], 1)
        self.assertEqual(len(good.messages), 2, good.summary())

    def test_421_greetings_open_the_breaker_then_one_probe(self):
        bad = self.smarthost()
        bad.reply_at("greeting", "421 4.3.2 Too busy")
        good = self.smarthost()
        # no priority: list order (bad first), as plain failover
        d = self.pool_ferry([bad.address, good.address], host_failures=3,
                            host_cooldown=3)
        for i in range(3):
            (q,) = self.send(d, 1, "t%d" % i)
            self.gone(d, q)
            st = self.host_status(d, bad.address)
            self.assertEqual(st["failures"], i + 1, st)
        self.assertEqual(len(bad.sessions), 3, bad.summary())
        self.log_line(d, r"route dest: host %s is down after 3 failure\(s\) "
                      r"in a row, skipped for 3 s: .*421"
                      % bad.address.replace(".", r"\."))
        st = self.host_status(d, bad.address)
        self.assertEqual(st["state"], "open", st)
        self.assertIn("421", st["last_error"])
        self.assertGreater(st["open_until"], time.time())
        text = d.ctl("status").stdout
        self.assertRegex(text, r"%s \(priority 0, weight 1\): open until"
                         % bad.address.replace(".", r"\."))
        # skipped while open
        for q in self.send(d, 3, "skip"):
            self.gone(d, q)
        self.assertEqual(len(bad.sessions), 3, bad.summary())
        # after the cooldown: one probe (still 421), then twice as long
        time.sleep(3.2)
        (q,) = self.send(d, 1, "probe")
        self.gone(d, q)
        self.assertEqual(len(bad.sessions), 4, bad.summary())
        self.log_line(d, r"route dest: probe of host %s failed, skipped "
                      r"for 6 s" % bad.address.replace(".", r"\."))
        (q,) = self.send(d, 1, "after")
        self.gone(d, q)
        self.assertEqual(len(bad.sessions), 4, bad.summary())
        # it recovers; its next probe closes the circuit
        bad.clear_rules()
        time.sleep(6.2)
        (q,) = self.send(d, 1, "ok")
        self.gone(d, q)
        self.assertEqual(len(bad.messages), 1, bad.summary())
        self.log_line(d, r"route dest: host %s is up again"
                      % bad.address.replace(".", r"\."))
        st = self.host_status(d, bad.address)
        self.assertEqual((st["state"], st["failures"]), ("up", 0), st)
        self.assertEqual(st["failures_total"], 4, st)
        self.assertEqual(len(good.messages), 8, good.summary())


class TLSBreakerTest(PoolCase):

    def test_failed_tls_handshake_opens_the_breaker(self):
        tmp = tempfile.mkdtemp(prefix="ferry-pools-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        certs = sh.Certs(os.path.join(tmp, "certs"))
        ext = list(sh.DEFAULT_EXTENSIONS) + ["STARTTLS"]
        cert, key = certs.server("wrong.test")   # right CA, not name
        wrong = self.smarthost(extensions=ext, hostname="localhost",
                               cert=cert, key=key)
        cert, key = certs.server("localhost")
        right = self.smarthost(extensions=ext, hostname="localhost",
                               cert=cert, key=key)
        bad = "localhost:%d" % wrong.port
        d = self.pool_ferry([bad, "localhost:%d" % right.port],
                            host_failures=1, host_cooldown=60,
                            tls="verify", ca_file=certs.ca_cert)
        (q,) = self.send(d, 1, "tls")
        (m,) = right.wait_messages(1, WAIT)
        self.assertIsNotNone(m.tls)
        self.gone(d, q)
        self.log_line(d, r"route dest: host %s is down after 1 failure"
                      r".*TLS with localhost\[" % bad)
        st = self.host_status(d, bad)
        self.assertEqual(st["state"], "open", st)
        self.assertIn("TLS with", st["last_error"])
        self.assertEqual(len(wrong.messages), 0)
        # skipped now: the next message goes straight to the right one
        n = len(wrong.sessions)
        (q,) = self.send(d, 1, "tls2")
        self.gone(d, q)
        self.assertEqual(len(wrong.sessions), n, wrong.summary())


class ActiveProbeTest(PoolCase):

    def test_probe_sees_a_host_come_back_without_mail(self):
        port = ft.free_port()
        mx1 = "127.0.0.1:%d" % port
        backup = self.smarthost()
        d = self.pool_ferry(["%s priority=10" % mx1,
                             "%s priority=20" % backup.address],
                            metrics=True, host_failures=1, host_cooldown=1,
                            probe_interval=1)
        # no mail at all: the probe finds mx1 down ...
        self.log_line(d, r"route dest: host %s is down after 1 failure"
                      % mx1.replace(".", r"\."))
        samples = check_exposition(self, d.http("GET", "/metrics")[2]
                                   .decode())
        self.assertEqual(value(samples, "ferry_upstream_host_up",
                               route="dest", host=mx1), 0)
        self.assertGreaterEqual(value(
            samples, "ferry_upstream_host_failures_total", route="dest",
            host=mx1), 1)
        self.assertEqual(value(samples, "ferry_upstream_host_up",
                               route="dest", host=backup.address), 1)
        # ... and up again once it listens
        s = self.smarthost(port=port)
        self.log_line(d, r"route dest: host %s is up again"
                      % mx1.replace(".", r"\."))
        s.wait_sessions(1, WAIT)
        with s.lock:
            verbs = [v for sess in s.sessions for v in sess.verbs]
        self.assertIn("EHLO", verbs)
        self.assertNotIn("MAIL", verbs)
        self.assertEqual(len(s.messages), 0)
        self.assertEqual(self.host_status(d, mx1)["state"], "up")
        samples = check_exposition(self, d.http("GET", "/metrics")[2]
                                   .decode())
        self.assertEqual(value(samples, "ferry_upstream_host_up",
                               route="dest", host=mx1), 1)
        # and mail goes to it, the preferred host
        (q,) = self.send(d, 1, "mail")
        self.gone(d, q)
        self.assertEqual(len(s.messages), 1, s.summary())
        self.assertEqual(len(backup.messages), 0, backup.summary())


if __name__ == "__main__":
    ft.main(need_root=True)
