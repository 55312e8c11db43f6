#!/usr/bin/env python3
"""End-to-end: the metrics and health endpoint (metrics { enabled }).

- /metrics: N messages through a test smarthost move
  ferry_messages_accepted_total and ferry_deliveries_total{route="dest",
  status="sent"} by exactly N, and nothing else of the deliveries; the
  exposition passes an independent parser (python3-prometheus-client's,
  or promtool check metrics when it is installed), every family has HELP
  and TYPE, and no series appears twice;
- the endpoint refuses other methods (405 with Allow) and paths (404),
  a head past 8 KiB (431), a request not whole within 5 s (408) - and a
  slow client does not hold up another;
- /healthz is 200 while ferry runs; /readyz is 200 when the queue runner
  has its store and 503 while the store cannot be opened, and 200 again
  after "ferryctl queue reopen";
- ferry-metrics runs as the SMTP user, chrooted, and holds no queue data
  (it has no descriptor of the spool's queue directory);
- the SMTP workers' counters, added up by the master, move by exactly the
  traffic sent: connections by listener and outcome (accepted, refused
  by the connection rate, TLS failed), rejections by reason (3
  relay-denied RCPTs, 1 over-size MAIL, 2 AUTH failures, the rate
  refusals), TLS 1.3 handshakes in, AUTH successes and failures, anvil
  limit hits (message rate, connection rate);
- TLS out: 3 messages to a next hop that speaks TLS 1.2 at most move
  ferry_tls_out_total{version="TLSv1.2"} by exactly 3, TLSv1.3 by 0;
- ferry-anvil's stress mode, told to the master: ferry_anvil_stress is 1
  while it lasts and 0 after, ferry_anvil_stress_entered_total counts
  each time it began.
Needs root (the daemon drops privileges)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
import base64  # noqa: E402
import ssl  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:         # a python3 apart from Debian's
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import \
            text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None

WAIT = 20.0
N = 7
RCPT = "rcpt@dest.test"
SENDER = "sender@origin.test"


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

    def http_raw(self, data, timeout=10.0, connect_only=False,
                 head_only=False):
        """Sends data; returns (status code, headers dict, body bytes)."""
        s = socket.create_connection(("127.0.0.1", self.metrics_port),
                                     timeout=timeout)
        try:
            if data:
                s.sendall(data)
            if connect_only:
                return s
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            if not connect_only:
                s.close()
        return parse_response(b"".join(chunks), head_only)

    def http(self, method, path, version="HTTP/1.1"):
        return self.http_raw(("%s %s %s\r\nHost: localhost\r\n\r\n"
                              % (method, path, version)).encode(),
                             head_only=method == "HEAD")


def parse_response(raw, head_only=False):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("no whole HTTP answer: %r" % raw[:500])
    lines = head.decode("ascii").split("\r\n")
    proto, code = lines[0].split(" ")[:2]
    assert proto == "HTTP/1.1", lines[0]
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers and not head_only:
        assert int(headers["content-length"]) == len(body), (headers,
                                                             len(body))
    return int(code), headers, body


def check_exposition(test, text):
    """Parses text independently; returns {(name, labels): value}."""
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
        test.assertEqual(p.returncode, 0, p.stdout + p.stderr)
    test.assertIsNotNone(text_string_to_metric_families,
                         "install python3-prometheus-client (or promtool)")
    samples = {}
    for fam in text_string_to_metric_families(text):
        test.assertNotEqual(fam.documentation, "", fam.name)
        test.assertIn(fam.type, ("counter", "gauge", "histogram"),
                      fam.name)
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            test.assertNotIn(key, samples, "series twice: %r" % (key,))
            samples[key] = s.value
    # every family declared once, before its samples
    types = [ln.split()[2] for ln in text.splitlines()
             if ln.startswith("# TYPE ")]
    test.assertEqual(len(types), len(set(types)), types)
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class MetricsCase(ft.FerryTestCase):

    def start_metrics_ferry(self, **options):
        d = MetricsFerry(**options).start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        self.assertTrue(ft.wait_for(lambda: d.children("ferry-metrics"),
                                    10), "no ferry-metrics process")
        # the endpoint answers once the runner took its store
        self.assertTrue(ft.wait_for(
            lambda: self.try_get(d, "/readyz") == 200, WAIT),
            "/readyz never 200")
        return d

    @staticmethod
    def try_get(d, path):
        try:
            return d.http("GET", path)[0]
        except OSError:
            return None

    def scrape(self, d):
        code, headers, body = d.http("GET", "/metrics")
        self.assertEqual(code, 200, body)
        self.assertTrue(headers["content-type"].startswith(
            "text/plain; version=0.0.4"), headers)
        return check_exposition(self, body.decode("utf-8"))


class ScrapeTest(MetricsCase):

    def test_counters_move_by_exactly_the_traffic(self):
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": [s.address], "tls": "none"}
        d = self.start_metrics_ferry(
            routes=[route], delivery={"retry_schedule": [1],
                                      "connect_timeout": 5})
        before = self.scrape(d)
        acc0 = value(before, "ferry_messages_accepted_total")
        self.assertIsNotNone(acc0, sorted(before)[:20])
        sent0 = value(before, "ferry_deliveries_total", route="dest",
                      status="sent") or 0
        qids = [d.send(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i),
                       sender=SENDER, rcpts=[RCPT]) for i in range(N)]
        self.assertEqual(len(set(qids)), N)
        s.wait_messages(N, WAIT)
        self.assertTrue(ft.wait_for(lambda: d.count() == 0, WAIT, 0.1),
                        "still queued")

        def moved():
            m = self.scrape(d)
            return m if value(m, "ferry_deliveries_total", route="dest",
                              status="sent") == sent0 + N else None
        after = ft.wait_for(moved, WAIT, 0.2)
        self.assertIsNotNone(after, "deliveries did not move by %d" % N)
        self.assertEqual(value(after, "ferry_messages_accepted_total"),
                         acc0 + N)
        for st in ("deferred", "bounced", "expired"):
            self.assertEqual(value(after, "ferry_deliveries_total",
                                   route="dest", status=st), 0, st)
        # histograms saw every final result and every durable message
        self.assertEqual(
            value(after, "ferry_delivery_seconds_count") -
            (value(before, "ferry_delivery_seconds_count") or 0), N)
        self.assertEqual(value(after, "ferry_delivery_seconds_bucket",
                               le="+Inf"),
                         value(after, "ferry_delivery_seconds_count"))
        self.assertGreaterEqual(
            value(after, "ferry_commit_batch_messages_sum") -
            value(before, "ferry_commit_batch_messages_sum"), N)
        self.assertGreaterEqual(value(after, "ferry_commits_total"),
                                value(before, "ferry_commits_total") + 1)
        # the queue is empty again: depth and age say so
        self.assertEqual(value(after, "ferry_queue_messages",
                               state="active"), 0)
        self.assertEqual(value(after,
                               "ferry_queue_oldest_message_age_seconds"),
                         0)
        self.assertEqual(value(after, "ferry_ready"), 1)
        self.assertEqual(value(after, "ferry_store_state", state="ok"), 1)
        self.assertGreaterEqual(value(after, "ferry_workers"), 1)
        self.assertGreaterEqual(value(after, "ferry_agents"), 0)

    def test_queued_mail_shows_depth_and_age(self):
        d = self.start_metrics_ferry()    # delivery paused: mail stays
        for i in range(3):
            d.send(b"Subject: q\r\n\r\nq\r\n")
        time.sleep(1.5)       # past the runner's once-a-second count
        m = ft.wait_for(lambda: (lambda x: x if value(
            x, "ferry_queue_messages", state="active") == 3 else None)(
            self.scrape(d)), WAIT, 0.2)
        self.assertIsNotNone(m, "queue depth never 3")
        self.assertGreater(value(m, "ferry_queue_oldest_message_age_seconds"),
                           0.5)
        self.assertEqual(value(m, "ferry_queue_recipients_pending"), 3)


class RefusalTest(MetricsCase):

    def setUp(self):
        super().setUp()
        self.d = self.start_metrics_ferry()

    def test_methods_and_paths(self):
        d = self.d
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            code, headers, body = d.http(method, "/metrics")
            self.assertEqual(code, 405, (method, body))
            self.assertEqual(headers.get("allow"), "GET, HEAD")
            self.assertEqual(headers.get("connection"), "close")
        for path in ("/", "/metrics/", "/../etc/passwd", "/healthz2"):
            self.assertEqual(d.http("GET", path)[0], 404, path)
        code, headers, body = d.http("HEAD", "/healthz")
        self.assertEqual((code, body), (200, b""))
        self.assertEqual(headers["content-length"], "3")
        self.assertEqual(d.http("GET", "/healthz", "HTTP/1.0")[0], 200)
        self.assertEqual(d.http("GET", "/healthz", "HTTP/2.0")[0], 505)
        self.assertEqual(d.http_raw(b"\x16\x03\x01\x00\xa5\r\n\r\n")[0],
                         400)
        self.assertEqual(d.http("GET", "/" + "a" * 300)[0], 414)
        # the query string is not part of the path
        self.assertEqual(d.http("GET", "/healthz?x=1")[0], 200)

    def test_oversized_head(self):
        head = (b"GET /metrics HTTP/1.1\r\n" +
                b"X-Filler: " + b"a" * 9000 + b"\r\n\r\n")
        code, _, _ = self.d.http_raw(head)
        self.assertEqual(code, 431)
        self.assertEqual(self.d.http("GET", "/healthz")[0], 200)

    def test_slow_request_times_out_without_holding_others(self):
        d = self.d
        t0 = time.monotonic()
        slow = d.http_raw(b"GET /metrics HTTP/1.1\r\nHost: x", timeout=15,
                          connect_only=True)
        try:
            # others are served meanwhile
            for _ in range(3):
                t1 = time.monotonic()
                self.assertEqual(d.http("GET", "/healthz")[0], 200)
                self.assertLess(time.monotonic() - t1, 1.0)
            raw = b""
            while True:
                b = slow.recv(4096)
                if not b:
                    break
                raw += b
        finally:
            slow.close()
        waited = time.monotonic() - t0
        self.assertEqual(parse_response(raw)[0], 408)
        self.assertGreaterEqual(waited, 4.5)
        self.assertLess(waited, 8.0)


class ReadinessTest(MetricsCase):

    def test_readyz_follows_the_store(self):
        d = self.start_metrics_ferry()
        d.send(b"Subject: r\r\n\r\nr\r\n")
        self.assertEqual(d.http("GET", "/healthz")[0], 200)
        d.stop(remove=False)
        os.chmod(d.db_path, 0)
        start = d.log_size()
        d.start()
        self.assertIsNotNone(d.wait_log(r"refusing mail", 10, start))
        self.assertTrue(ft.wait_for(lambda: d.children("ferry-metrics"),
                                    10))
        self.assertTrue(ft.wait_for(
            lambda: self.try_get(d, "/healthz") == 200, 10))
        code, _, body = d.http("GET", "/readyz")
        self.assertEqual(code, 503, body)
        m = self.scrape(d)
        self.assertEqual(value(m, "ferry_ready"), 0)
        self.assertEqual(value(m, "ferry_store_state", state="failing"), 1)
        os.chmod(d.db_path, 0o600)
        p = d.ctl("queue", "reopen")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        self.assertTrue(ft.wait_for(
            lambda: self.try_get(d, "/readyz") == 200, WAIT))


class ProcessTest(MetricsCase):

    def test_unprivileged_chrooted_no_queue_data(self):
        d = self.start_metrics_ferry()
        pid = d.children("ferry-metrics")[0]
        st = ft.proc_status(pid)
        uid = int(st["Uid"].split()[0])
        self.assertNotEqual(uid, 0)
        import pwd
        self.assertEqual(uid, pwd.getpwnam(ft.SMTPD_USER).pw_uid)
        self.assertEqual(os.readlink("/proc/%d/root" % pid),
                         os.path.join(d.spool, "smtpd"))
        queue_dir = os.path.join(d.spool, "queue")
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            self.assertFalse(target.startswith(queue_dir), target)
        # it dies with ferry: the master restarts it when it is killed
        os.kill(pid, 9)
        self.assertTrue(ft.wait_for(
            lambda: d.children("ferry-metrics") not in ([], [pid]), 10))
        self.assertTrue(ft.wait_for(
            lambda: self.try_get(d, "/healthz") == 200, 10))

    def test_off_by_default(self):
        d = self.start_ferry()
        time.sleep(0.5)
        self.assertEqual(d.children("ferry-metrics"), [])
        self.assertFalse(os.path.exists(os.path.join(d.spool, "smtpd",
                                                     "metrics.sock")))


TLS_HOST = "mx.ferry-test.example"


def b64(s):
    return base64.b64encode(s.encode()).decode()


class WorkerCountersTest(MetricsCase):
    """The workers' counters, through the master, to /metrics."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="ferry-metrics-tls-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.certs = sh.Certs(os.path.join(self.dir, "certs"))
        cert, key = self.certs.server(TLS_HOST, "127.0.0.1")
        p = subprocess.run([ft.FERRYCTL, "user", "hash"],
                           input="right pass\n", capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.users = os.path.join(self.dir, "users")
        with open(self.users, "w") as f:
            f.write("alice:%s\n" % p.stdout.strip())
        os.chmod(self.users, 0o600)
        self.options = {
            "hostname": TLS_HOST,
            "networks": ["192.0.2.0/24"],      # 127.0.0.1 may not relay
            "tls": {"cert_file": cert, "key_file": key},
            "auth": {"users_file": self.users, "max_failures": 1000},
            "listen": {"tls": "starttls", "auth": True},
            "more_listeners": [{"name": "smtps", "tls": "implicit",
                                "auth": True}],
            "limits": {"max_connections_per_client": 1000,
                       "connection_rate": 12, "message_rate": 2},
        }

    def starttls(self, c):
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        c.starttls(ssl.create_default_context(cafile=self.certs.ca_cert),
                   server_hostname=TLS_HOST)
        c.ehlo()

    def settled(self, d):
        """A scrape once the workers' counters stopped moving (the
        start-up probe's session reported)."""
        last = None
        for _ in range(20):
            m = self.scrape(d)
            now = {k: v for k, v in m.items() if k[0] in WORKER_FAMILIES}
            if now == last:
                return m
            last = now
            time.sleep(1.2)
        self.fail("the workers' counters never settled")

    def test_counters_move_by_exactly_the_traffic(self):
        d = self.start_metrics_ferry(**self.options)
        before = self.settled(d)
        self.assertIsNotNone(value(before, "ferry_connections_total",
                                   listener="test", outcome="accepted"))
        # 1: STARTTLS, two AUTH failures and one success
        with d.client() as c:
            self.starttls(c)
            for _ in range(2):
                self.assertEqual(self.auth(c, "wrong pass").code, 535)
            self.assertEqual(self.auth(c, "right pass").code, 235)
            c.cmd("QUIT")
        # 2: STARTTLS, 3 relay-denied RCPTs, one over-size MAIL, then
        # the message rate (2 per minute) refuses the third MAIL
        with d.client() as c:
            self.starttls(c)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 250)
            for i in range(3):
                self.assertEqual(
                    c.cmd("RCPT TO:<r%d@elsewhere.example>" % i).code, 554)
            self.assertEqual(c.cmd("RSET").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org> "
                                   "SIZE=999999999").code, 552)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 250)
            self.assertEqual(c.cmd("RSET").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 421)
        # 3: plain text where the implicit TLS listener wants a hello
        s = socket.create_connection(("127.0.0.1", d.ports["smtps"]), 10)
        try:
            s.sendall(b"EHLO plain.example\r\n" * 40)
            s.settimeout(10)
            while s.recv(4096):
                pass
        except OSError:
            pass
        finally:
            s.close()
        # 4: connections until the connection rate refuses one
        more = 0
        for _ in range(20):
            with d.client(greeting=True) as c:
                if c.greeting.code != 220:
                    self.assertEqual(c.greeting.code, 421)
                    break
                more += 1
                c.cmd("QUIT")
        else:
            self.fail("the connection rate never refused")
        want = {
            ("ferry_connections_total", "test", "accepted"): 2 + more,
            ("ferry_connections_total", "test", "refused_limit"): 1,
            ("ferry_connections_total", "test", "tls_failed"): 0,
            ("ferry_connections_total", "smtps", "accepted"): 1,
            ("ferry_connections_total", "smtps", "tls_failed"): 1,
            ("ferry_rejections_total", "relay_denied"): 3,
            ("ferry_rejections_total", "size"): 1,
            ("ferry_rejections_total", "auth"): 2,
            ("ferry_rejections_total", "rate"): 2,
            ("ferry_rejections_total", "syntax"): 0,
            ("ferry_rejections_total", "smuggling"): 0,
            ("ferry_tls_in_total", "TLSv1.3"): 2,
            ("ferry_tls_in_total", "TLSv1.2"): 0,
            ("ferry_auth_total", "success"): 1,
            ("ferry_auth_total", "failure"): 2,
            ("ferry_anvil_limit_hits_total", "message_rate"): 1,
            ("ferry_anvil_limit_hits_total", "connection_rate"): 1,
            ("ferry_anvil_limit_hits_total", "connections"): 0,
            ("ferry_anvil_limit_hits_total", "auth_lockout"): 0,
        }

        def moved(m):
            return {k: get(m, k) - get(before, k) for k in want}
        after = ft.wait_for(lambda: (lambda m: m if moved(m) == want
                                     else None)(self.scrape(d)), WAIT, 0.3)
        self.assertIsNotNone(after, moved(self.scrape(d)))
        # and nothing more arrives later
        time.sleep(2.5)
        self.assertEqual(moved(self.settled(d)), want)

    @staticmethod
    def auth(c, pw):
        return c.cmd("AUTH PLAIN " + b64("\0alice\0" + pw))


class TLSOutTest(MetricsCase):

    def test_tls_versions_out(self):
        tmp = tempfile.mkdtemp(prefix="ferry-metrics-out-")
        os.chmod(tmp, 0o755)
        self.addCleanup(shutil.rmtree, tmp, True)
        certs = sh.Certs(os.path.join(tmp, "certs"))
        cert, key = certs.server("mx.test", "127.0.0.1")
        s = sh.SmartHost(cert=cert, key=key, hostname="mx.test",
                         extensions=list(sh.DEFAULT_EXTENSIONS) +
                         ["STARTTLS"],
                         tls_max_version=ssl.TLSVersion.TLSv1_2).start()
        self.addCleanup(s.stop)
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": ["[127.0.0.1]:%d" % s.port], "tls": "verify",
                 "ca_file": certs.ca_cert}
        d = self.start_metrics_ferry(
            routes=[route], delivery={"retry_schedule": [1],
                                      "connect_timeout": 5})
        before = self.scrape(d)
        for i in range(3):
            d.send(b"Subject: t%d\r\n\r\nt\r\n" % i, sender=SENDER,
                   rcpts=[RCPT])
        msgs = s.wait_messages(3, WAIT)
        self.assertEqual({m.tls for m in msgs}, {"TLSv1.2"})

        def moved():
            m = self.scrape(d)
            return m if value(m, "ferry_deliveries_total", route="dest",
                              status="sent") == 3 else None
        after = ft.wait_for(moved, WAIT, 0.2)
        self.assertIsNotNone(after, "deliveries did not move by 3")
        for version, n in (("TLSv1.2", 3), ("TLSv1.3", 0), ("TLSv1", 0),
                           ("other", 0)):
            self.assertEqual(
                value(after, "ferry_tls_out_total", version=version) -
                value(before, "ferry_tls_out_total", version=version),
                n, version)


class StressMetricsTest(MetricsCase):

    def test_stress_gauge_and_entered(self):
        d = self.start_metrics_ferry(
            workers={"min_idle": 4, "max_idle": 8, "max": 16},
            limits={"max_connections": 10, "stress_threshold": 50,
                    "stress_timeout": 7})
        m = self.scrape(d)
        self.assertEqual(value(m, "ferry_anvil_stress"), 0)
        self.assertEqual(value(m, "ferry_anvil_stress_entered_total"), 0)

        def stress_is(on, entered):
            m = self.scrape(d)
            return (value(m, "ferry_anvil_stress"),
                    value(m, "ferry_anvil_stress_entered_total")) == \
                (on, entered)
        for round_ in (1, 2):
            held = []
            for _ in range(5):      # 5 of 10 held: stress at 50 %
                c = d.client()
                self.addCleanup(c.close)
                self.assertEqual(c.greeting.code, 220)
                held.append(c)
            self.assertTrue(ft.wait_for(lambda: stress_is(1, round_),
                                        WAIT, 0.2), "stress not shown")
            for c in held:
                c.close()
            self.assertTrue(ft.wait_for(lambda: stress_is(0, round_),
                                        WAIT, 0.2), "stress not over")
        self.assertTrue(d.wait_log(r"stress mode on: .*entered 2 time"))


WORKER_FAMILIES = ("ferry_connections_total", "ferry_rejections_total",
                   "ferry_tls_in_total", "ferry_auth_total",
                   "ferry_anvil_limit_hits_total")
LABEL = {"ferry_rejections_total": "reason",
         "ferry_tls_in_total": "version", "ferry_auth_total": "result",
         "ferry_anvil_limit_hits_total": "limit"}


def get(samples, key):
    """A worker counter by (name, label values...); absent is a failure."""
    name = key[0]
    if name == "ferry_connections_total":
        v = value(samples, name, listener=key[1], outcome=key[2])
    else:
        v = value(samples, name, **{LABEL[name]: key[1]})
    if v is None:
        raise AssertionError("no sample %r" % (key,))
    return v


if __name__ == "__main__":
    ft.main(need_root=True)
