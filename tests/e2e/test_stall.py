#!/usr/bin/env python3
"""End-to-end: the stall warning (queue { warn_age, warn_stall, notify })
and the per-route figures of "ferryctl status".

- warn_age 2s, the smarthost answering 451 to one recipient: the warning
  "queue: stalled: oldest message ..." is logged once (not every tick of
  the runner's timer), ferry_queue_stalled{reason="age"} is 1 and
  {reason="stall"} 0, the report to queue { notify } is queued once and
  delivered through a second, reachable route (from the null sender, with
  what is stalled and the queue depth), "ferryctl status" says the queue
  is stalled; once the smarthost accepts again, the message leaves, the
  end is logged once and the gauge is back to 0.  Then "ferryctl status"
  (text and --json) shows per route exactly the traffic sent: sent,
  deferred (one per 451 the smarthost gave), bounced, and the last error
  with the smarthost's 451 text.
- warn_stall 3s, the next hop refusing connections: the warning "nothing
  delivered for ..." is logged once, ferry_queue_stalled{reason="stall"}
  is 1; when the hop is back the mail goes and the gauge is 0.
Needs root (the daemon drops privileges)."""

import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
NOTIFY = "postmaster@ops.test"
REFUSAL = "451 4.3.0 mailbox busy, stall test"


class StallFerry(ft.Ferry):
    """A Ferry with a queue { } section and metrics on a port of its own."""

    def __init__(self, queue=None, **kw):
        super().__init__(**kw)
        self.queue_opts = queue or {}
        self.metrics_port = None

    def config_text(self, **changes):
        if self.metrics_port is None:
            self.metrics_port = ft.free_port()
        return (super().config_text(**changes) + "\n".join(
            ft.conf_section("queue", self.queue_opts)) +
            '\nmetrics {\n    enabled = true\n'
            '    address = "127.0.0.1"\n    port = %d\n}\n'
            % self.metrics_port)

    def metrics(self):
        """The exposition as {(name, labels...): value}."""
        s = socket.create_connection(("127.0.0.1", self.metrics_port),
                                     timeout=10)
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            s.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise AssertionError("metrics: %r" % head[:200])
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, v = line.rpartition(" ")
            out[key] = float(v)
        return out

    def stalled(self, reason):
        """ferry_queue_stalled{reason=...}, None when not shown."""
        return self.metrics().get('ferry_queue_stalled{reason="%s"}'
                                  % reason)


def route(name, domains, hosts):
    return {"name": name, "domains": list(domains), "hosts": list(hosts),
            "tls": "none"}


class StallTest(ft.FerryTestCase):

    def smarthost(self):
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        return s

    def start_stall_ferry(self, queue, routes):
        d = StallFerry(queue=queue, routes=routes,
                       delivery={"retry_schedule": [1],
                                 "connect_timeout": 5,
                                 "client_command_timeout": 10,
                                 "client_data_timeout": 30,
                                 "max_lifetime": 3600}).start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        self.assertTrue(ft.wait_for(lambda: self._scrapes(d), 10),
                        "the metrics endpoint does not answer")
        return d

    @staticmethod
    def _scrapes(d):
        try:
            return "ferry_ready" in d.metrics()
        except (OSError, AssertionError):
            return False

    def wait_gauge(self, d, reason, want, timeout=WAIT):
        ok = ft.wait_for(lambda: d.stalled(reason) == want, timeout, 0.2)
        self.assertTrue(ok, "ferry_queue_stalled{reason=%r} is %r, not %r"
                        % (reason, d.stalled(reason), want))

    def status(self, d):
        r = d.ctl("status", json_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def routes_of(self, d):
        return {r["route"]: r for r in self.status(d)["routes"]}

    def test_age_warning_report_recovery_and_route_figures(self):
        dest = self.smarthost()
        ops = self.smarthost()
        d = self.start_stall_ferry(
            {"warn_age": "2s", "warn_stall": "0", "notify": NOTIFY},
            [route("dest", ["dest.test"], [dest.address]),
             route("ops", ["ops.test"], [ops.address])])
        # two messages go through at once
        for i in range(2):
            d.send(b"Subject: ok %d\r\n\r\nx\r\n" % i, sender=SENDER,
                   rcpts=["ok%d@dest.test" % i])
        dest.wait_messages(2, WAIT)
        self.assertTrue(ft.wait_for(
            lambda: d.count("message") == 0, WAIT, 0.1))
        self.assertEqual(d.stalled("age"), 0)
        self.assertEqual(d.stalled("stall"), 0)
        self.assertIsNone(d.wait_log(r"queue: stalled", 0.5))

        # one that is refused with a 451 on every attempt
        dest.reply_at("rcpt", REFUSAL, rcpt="stuck@dest.test")
        qid = d.send(b"Subject: stuck\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["stuck@dest.test"])
        m = d.wait_log(r"queue: stalled: oldest message \d+s old "
                       r"\(warn_age 2s\); last delivery: [^;]+; "
                       r"1 message\(s\) queued, 1 recipient\(s\) waiting",
                       WAIT)
        self.assertIsNotNone(m, d.log_tail())
        self.wait_gauge(d, "age", 1)
        self.assertEqual(d.stalled("stall"), 0)
        # the report, through the ops route, once
        reports = ops.wait_messages(1, WAIT)
        t = reports[0]
        self.assertEqual(t.sender, "")
        self.assertEqual(t.recipients, [NOTIFY])
        text = t.data.decode()
        self.assertIn("\r\nSubject: Mail queue on mx.ferry-test.example "
                      "is stalled\r\n", text)
        self.assertIn("From: Mail Delivery System "
                      "<MAILER-DAEMON@mx.ferry-test.example>", text)
        self.assertRegex(text, r"The mail queue is stalled: oldest message "
                         r"\d+s old \(warn_age 2s\)\.")
        self.assertIn("Queue depth:    1 message(s), 1 recipient(s) "
                      "waiting", text)
        self.assertRegex(text, r"Last delivery:  \w{3}, ")
        self.assertTrue(d.wait_log(r"queue: stall report to "
                                   r"<postmaster@ops\.test> queued as "
                                   r"[0-9A-F]+", 1))
        # several ticks of the runner's timer later: still one warning,
        # one report, and several attempts refused meanwhile
        time.sleep(4)
        self.assertEqual(len(re.findall(r"queue: stalled:",
                                        d.log_text())), 1, d.log_tail())
        self.assertEqual(len(ops.messages), 1)
        self.assertEqual(len(re.findall(r"stall report to",
                                        d.log_text())), 1)
        self.assertEqual(d.stalled("age"), 1)
        st = d.ctl("status")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("stalled: the oldest message is older than "
                      "warn_age (2s)", st.stdout)

        # the smarthost takes it again: recovery clears the gauge
        dest.clear_rules()
        self.assertTrue(ft.wait_for(
            lambda: d.count("message", "qid = ?", (qid,)) == 0, WAIT,
            0.1), d.log_tail())
        self.wait_gauge(d, "age", 0)
        self.assertTrue(d.wait_log(r"queue: no longer stalled", WAIT))
        self.assertEqual(len(re.findall(r"no longer stalled",
                                        d.log_text())), 1)

        # per route: exactly the traffic sent
        refused = sum(1 for s in list(dest.sessions)
                      for tx in s.transactions for r in tx.rcpts
                      if r.address == "stuck@dest.test" and r.code == 451)
        self.assertGreaterEqual(refused, 2)
        routes = self.routes_of(d)
        self.assertEqual(sorted(routes), ["dest", "ops"], routes)
        r = routes["dest"]
        self.assertEqual((r["sent"], r["deferred"], r["bounced"],
                          r["expired"]), (3, refused, 0, 0), r)
        self.assertIn("mailbox busy, stall test", r["last_error"])
        self.assertIn("451", r["last_error"])
        self.assertIsNotNone(r["last_error_at"])
        self.assertIsNotNone(r["last_sent_at"])
        self.assertGreaterEqual(r["last_sent_at"], r["last_error_at"])
        o = routes["ops"]
        self.assertEqual((o["sent"], o["deferred"], o["bounced"]),
                         (1, 0, 0), o)
        self.assertEqual(o["last_error"], "")
        self.assertIsNone(o["last_error_at"])
        stj = self.status(d)["stall"]
        self.assertEqual((stj["age"], stj["stall"]), (False, False))
        st = d.ctl("status")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertRegex(st.stdout, r"routes:\s+dest: 3 sent, %d deferred, "
                         r"0 bounced, 0 expired\n" % refused)
        self.assertRegex(st.stdout, r"\n\s+ops: 1 sent, 0 deferred, "
                         r"0 bounced, 0 expired\n")
        self.assertRegex(st.stdout, r"last error \d{4}-\d\d-\d\d "
                         r"[\d:]+ \(\d+[smhd].*ago\): .*451.*mailbox busy, "
                         r"stall test")
        self.assertNotIn("stalled:", st.stdout)

    def test_stall_warning_while_next_hop_is_down(self):
        dest = self.smarthost()
        dest.pause()                    # connections refused
        d = self.start_stall_ferry(
            {"warn_age": "0", "warn_stall": "3s"},
            [route("dest", ["dest.test"], [dest.address])])
        self.assertEqual(d.stalled("stall"), 0)
        qid = d.send(b"Subject: waits\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["rcpt@dest.test"])
        m = d.wait_log(r"queue: stalled: nothing delivered for \d+s while "
                       r"1 recipient\(s\) wait \(warn_stall 3s\); last "
                       r"delivery: none since start", WAIT)
        self.assertIsNotNone(m, d.log_tail())
        self.wait_gauge(d, "stall", 1)
        self.assertEqual(d.stalled("age"), 0)
        time.sleep(3)
        self.assertEqual(len(re.findall(r"queue: stalled:",
                                        d.log_text())), 1, d.log_tail())
        # no notify: no report
        self.assertNotIn("stall report", d.log_text())
        r = self.routes_of(d)["dest"]
        self.assertEqual(r["sent"], 0)
        self.assertGreaterEqual(r["deferred"], 1)
        self.assertIn("refused", r["last_error"].lower())
        st = d.ctl("status")
        self.assertIn("stalled: nothing delivered for warn_stall (3s) "
                      "while mail waits", st.stdout)

        # the hop is back
        dest.resume()
        d.ctl("queue", "flush")
        dest.wait_messages(1, WAIT)
        self.assertTrue(ft.wait_for(
            lambda: d.count("message", "qid = ?", (qid,)) == 0, WAIT, 0.1))
        self.wait_gauge(d, "stall", 0)
        self.assertTrue(d.wait_log(r"queue: no longer stalled", WAIT))
        self.assertEqual(self.routes_of(d)["dest"]["sent"], 1)


if __name__ == "__main__":
    ft.main(need_root=True)
