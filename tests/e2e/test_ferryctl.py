#!/usr/bin/env python3
"""End-to-end: ferryctl, the admin command, against a running daemon:
queue list / show / hold / release / flush / delete and status, as text
and as JSON (--json prints the daemon's answer as is), a user other
than root refused, "check" agreeing with ferryd -n, and "reload":
checked first, and reporting whether the new generation took over.

A test smarthost answers 451 at RCPT, so messages stay deferred with a
last reply and a next attempt 600 s away (retry_schedule = {600}).
Needs root."""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
from ferrytest import split_received  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
REPLY = "451 4.7.1 Greylisted, come back later"   # the remote reply; ferry
                                                 # may wrap it in context
CONTENT = (b"From: Sender <sender@origin.test>\r\nTo: a@dest.test\r\n"
           b"Subject: ctl test\r\nMessage-ID: <ctl@origin.test>\r\n\r\n"
           b"body\r\n")


class CtlCase(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(ft.FERRYCTL, os.X_OK):
            self.fail("ferryctl is not built: no %s" % ft.FERRYCTL)
        self.s = sh.SmartHost().start()
        self.addCleanup(self.s.stop)
        self.s.reply_at("rcpt", REPLY)
        self.b = sh.SmartHost().start()         # bounces, if any
        self.addCleanup(self.b.stop)
        self.d = self.start_ferry(
            routes=[{"name": "dest", "domains": ["dest.test"],
                     "hosts": [self.s.address], "tls": "none"},
                    {"name": "origin", "domains": ["origin.test"],
                     "hosts": [self.b.address], "tls": "none"}],
            delivery={"retry_schedule": [600], "connect_timeout": 5,
                      "max_lifetime": 3600})

    def tearDown(self):
        if self._failed():
            sys.stderr.write("\n[%s] smarthost: %s\n" % (self.id(),
                                                         self.s.summary()))
        super().tearDown()

    def deferred(self, rcpts=("a@dest.test",)):
        """A message sent and deferred once; returns its qid."""
        qid = self.d.send(CONTENT, sender=SENDER, rcpts=list(rcpts))

        def check():
            rows = self.d.query(
                "SELECT r.state, r.attempts FROM recipient r JOIN message m"
                " ON m.id = r.message_id WHERE m.qid = ?", (qid,))
            return rows and all(r["state"] == "pending" and
                                r["attempts"] >= 1 for r in rows)
        self.assertTrue(ft.wait_for(check, WAIT, 0.1),
                        "%s was not deferred" % qid)
        return qid

    def ok(self, *args, **kw):
        """ferryctl --json args: the answer, checked to be ok."""
        doc = self.d.ctl_json(*args, **kw)
        self.assertIs(doc.get("ok"), True, doc)
        return doc

    def text(self, *args):
        p = self.d.ctl(*args)
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        return p.stdout

    def entry(self, qid):
        doc = self.ok("queue", "list")
        found = [m for m in doc["messages"] if m["id"] == qid]
        return found[0] if found else None


class QueueTest(CtlCase):

    def test_list_shows_a_deferred_message(self):
        qid = self.deferred(["a@dest.test", "b@dest.test"])
        row = self.d.message(qid)
        e = self.entry(qid)
        self.assertIsNotNone(e, "%s not listed" % qid)
        self.assertEqual(e["state"], "active")
        self.assertEqual(e["sender"], SENDER)
        self.assertEqual(e["size"], row["size"])
        self.assertIsInstance(e["age"], int)
        self.assertTrue(0 <= e["age"] < 120, e)
        self.assertEqual(sorted(e["recipients"]),
                         ["a@dest.test", "b@dest.test"])
        self.assertEqual(e["pending"], 2)
        self.assertIn(REPLY, e["last_reply"])
        self.assertEqual(e["last_dsn"], "4.7.1")
        # the next attempt follows the schedule: about 600 s after now
        self.assertGreater(e["next_attempt"], time.time() + 500)
        self.assertLess(e["next_attempt"], time.time() + 700)
        out = self.text("queue", "list")
        for want in (qid, SENDER, "a@dest.test", "b@dest.test",
                     "Greylisted"):
            self.assertIn(want, out)

    def test_show_envelope_headers_history(self):
        qid = self.deferred()
        doc = self.ok("queue", "show", qid)
        m = doc["message"]
        self.assertEqual(m["id"], qid)
        self.assertEqual(m["sender"], SENDER)
        self.assertEqual(m["state"], "active")
        self.assertEqual(m["helo"], "client.example")
        self.assertEqual(m["client_addr"], "127.0.0.1")
        self.assertIn("Subject: ctl test", m["headers"])
        self.assertIn("Message-ID: <ctl@origin.test>", m["headers"])
        self.assertNotIn("\nbody", m["headers"])    # headers only
        (r,) = m["recipients"]
        self.assertEqual(r["address"], "a@dest.test")
        self.assertEqual(r["state"], "pending")
        self.assertEqual(r["attempts"], 1)
        self.assertIn(REPLY, r["last_reply"])
        self.assertGreaterEqual(len(r["history"]), 1)
        h = r["history"][0]
        self.assertEqual(h["status"], "deferred")
        self.assertEqual(h["dsn"], "4.7.1")
        self.assertIn(REPLY, h["reply"])
        self.assertEqual(h["relay"], "127.0.0.1[127.0.0.1]:%d"
                         % self.s.port)
        self.assertLess(abs(h["at"] - time.time()), 120)
        out = self.text("queue", "show", qid)
        for want in (qid, SENDER, "a@dest.test", "Subject: ctl test",
                     "Greylisted", "deferred"):
            self.assertIn(want, out)

    def test_hold_stops_delivery_release_and_flush_deliver(self):
        qid = self.deferred()
        self.ok("queue", "hold", qid)
        self.assertEqual(self.entry(qid)["state"], "hold")
        self.assertEqual(self.d.message(qid)["state"], "hold")
        self.s.clear_rules()                    # it would accept now
        n = len(self.s.sessions)
        self.ok("queue", "flush")               # held: not tried
        # flushing the held message itself: refused, or a no-op
        self.d.ctl_json("queue", "flush", qid)
        time.sleep(3)
        self.assertEqual(len(self.s.sessions), n, self.s.summary())
        self.assertEqual(self.s.messages, [])
        self.ok("queue", "release", qid)
        # released mail is due at once: it may already be on its way
        e = self.entry(qid)
        if e is not None:
            self.assertEqual(e["state"], "active")
            self.d.ctl_json("queue", "flush", qid)   # now, not in 600 s
        (m,) = self.s.wait_messages(1, WAIT)
        self.assertEqual(split_received(m.data)[1], CONTENT)
        self.assertTrue(ft.wait_for(lambda: self.entry(qid) is None, WAIT))
        self.assertIsNotNone(self.d.wait_log(r"%s: to=<a@dest\.test>, "
                                             r".*status=sent" % qid, WAIT))

    def test_flush_all_tries_again_now(self):
        qid = self.deferred()
        self.s.clear_rules()
        self.ok("queue", "flush")
        (m,) = self.s.wait_messages(1, WAIT)
        self.assertEqual(m.recipients, ["a@dest.test"])
        self.assertTrue(ft.wait_for(lambda: self.entry(qid) is None, WAIT))

    def test_delete_removes_without_bounce(self):
        qid = self.deferred()
        other = self.deferred()
        self.ok("queue", "delete", qid)
        self.assertIsNone(self.entry(qid))
        self.assertIsNotNone(self.entry(other))
        self.assertEqual(self.d.count("message", "qid = ?", (qid,)), 0)
        self.assertIsNotNone(self.d.wait_log(r"%s: removed" % qid, 5))
        time.sleep(1)
        self.assertEqual(self.b.sessions, [])   # no bounce for a delete

    def test_unknown_id_refused(self):
        doc = self.d.ctl_json("queue", "show", "0123456789AB")
        self.assertIs(doc.get("ok"), False, doc)
        self.assertTrue(doc.get("error"))
        p = self.d.ctl("queue", "delete", "0123456789AB")
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))


class StatusTest(CtlCase):

    def test_status(self):
        qid = self.deferred()
        time.sleep(1.1)
        self.deferred()
        doc = self.ok("status")
        self.assertGreaterEqual(doc["workers"]["total"], 2)   # min_idle
        self.assertGreaterEqual(doc["agents"]["total"], 1)
        self.assertGreaterEqual(doc["agents"]["busy"], 0)
        q = doc["queue"]
        self.assertEqual(q["messages"], 2)
        self.assertEqual(q["active"], 2)
        self.assertEqual(q["hold"], 0)
        self.assertEqual(q["recipients_pending"], 2)
        oldest = self.d.message(qid)["received_at"]
        self.assertAlmostEqual(q["oldest_received_at"], oldest, delta=0.01)
        out = self.text("status")
        self.assertTrue(out.strip())
        self.assertRegex(out, r"(?i)worker")
        self.assertRegex(out, r"(?i)agent")

    def test_non_root_refused(self):
        qid = self.deferred()
        for args in (("status",), ("queue", "list"),
                     ("queue", "delete", qid)):
            p = self.d.ctl(*args, user=ft.SMTPD_USER)
            self.assertIn(p.returncode, (1, 75), (args, p.stdout, p.stderr))
            self.assertNotIn(qid, p.stdout)
            self.assertNotIn('"ok":true', p.stdout.replace(" ", ""))
            self.assertTrue(p.stderr.strip())
            pj = self.d.ctl(*args, json_output=True, user=ft.SMTPD_USER)
            self.assertNotEqual(pj.returncode, 0)
            self.assertNotIn(qid, pj.stdout)
        self.assertEqual(self.d.count("message", "qid = ?", (qid,)), 1)
        # the socket itself is not open to everyone
        st = os.stat(self.d.ctl_socket)
        self.assertEqual(st.st_mode & 0o007, 0, oct(st.st_mode))

    def test_daemon_not_running(self):
        p = ft.subprocess.run([ft.FERRYCTL, "-s",
                               os.path.join(self.d.dir, "nothing.sock"),
                               "status"], capture_output=True, text=True,
                              timeout=10)
        self.assertEqual(p.returncode, 75, (p.stdout, p.stderr))
        self.assertTrue(re.search(r"\S", p.stderr))


class CheckTest(ft.FerryTestCase):
    """ferryctl check is ferryd -n: same verdict, same exit status."""

    def both(self, text):
        d = ft.Ferry()
        self.addCleanup(d.stop)
        d.port = ft.free_port()
        d.write_config(text(d))
        ctl = ft.subprocess.run([ft.FERRYCTL, "-f", d.conf, "check"],
                                capture_output=True, text=True,
                                timeout=30)
        ferryd = ft.subprocess.run([ft.FERRYD, "-n", "-f", d.conf],
                                   capture_output=True, text=True,
                                   timeout=30)
        return d, ctl, ferryd

    def test_good_file(self):
        d, ctl, ferryd = self.both(lambda d: d.config_text())
        self.assertEqual(ferryd.returncode, 0, ferryd.stderr)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)
        self.assertIn("%s: configuration OK" % d.conf, ctl.stdout)
        self.assertFalse(os.path.exists(d.spool), "check made the spool")

    def test_bad_files(self):
        def syntax(d):
            return d.config_text().replace("workers {",
                                           "workers {\n    nonsense = 1")

        def missing_cert(d):
            return d.config_text() + (
                'tls {\n    certificate = "%s/none.pem"\n'
                '    key = "%s/none.key"\n}\n' % (d.dir, d.dir))

        for make in (syntax, missing_cert):
            d, ctl, ferryd = self.both(make)
            self.assertEqual(ferryd.returncode, 1, ferryd.stdout)
            self.assertEqual(ctl.returncode, ferryd.returncode,
                             (make.__name__, ctl.stdout, ctl.stderr))
            # the same reason, naming the file
            why = ferryd.stderr.strip().split("ferryd: ", 1)[1]
            self.assertIn(d.conf, why)
            self.assertEqual(ctl.stderr.strip(), "ferryctl: " + why,
                             make.__name__)


class ReloadTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.d = self.start_ferry()

    def conf_text(self):
        with open(self.d.conf) as f:
            return f.read()

    def generation(self):
        doc = self.d.ctl_json("status")
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(doc["master"]["pid"], self.d.pid)
        self.assertEqual(doc["master"]["config"], self.d.conf)
        return doc["master"]["generation"]

    def test_reload_takes_over(self):
        g = self.generation()
        self.assertEqual(g, 1)
        old_workers = set(self.d.workers())
        # a changed file: one more idle worker
        self.d.write_config(workers={"min_idle": 3, "max_idle": 5,
                                     "max": 10})
        p = self.d.ctl("reload")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        self.assertIn("generation 2 took over from generation 1",
                      p.stdout)
        self.assertEqual(self.generation(), 2)
        self.assertIn("configuration reloaded", self.d.log_text())
        # the old generation leaves, the new one serves
        self.assertTrue(ft.wait_for(
            lambda: not old_workers & set(self.d.workers()), 10),
            "the old generation's workers stay")
        self.assertTrue(self.d.send(b"Subject: after\r\n\r\nx\r\n"))
        doc = self.d.ctl_json("reload")
        self.assertEqual(doc, {"ok": True, "pid": self.d.pid,
                               "generation": 3, "previous": 2})
        self.assertRegex(self.d.ctl("status").stdout,
                         r"generation 3\b")

    def test_bad_file_not_sent(self):
        good = self.conf_text()
        self.d.write_config(good.replace("workers {",
                                         "workers {\n    nonsense = 1"))
        before = len(self.d.log_text())
        p = self.d.ctl("reload")
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertIn("%s:" % self.d.conf, p.stderr)
        self.assertIn("reload refused: generation 1 keeps running",
                      p.stderr)
        time.sleep(0.5)
        # ferryd was not signalled at all: it logs nothing of a reload
        self.assertNotIn("reload", self.d.log_text()[before:])
        self.d.write_config(good)
        self.assertEqual(self.generation(), 1)

    def test_master_refuses(self):
        # passes the checks, but ferryd cannot bind the new listener
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        text = self.conf_text() + (
            'listen "taken" {\n    address = "127.0.0.1"\n'
            '    port = %d\n}\n' % busy.getsockname()[1])
        self.d.write_config(text)
        t0 = time.monotonic()
        p = self.d.ctl("reload", timeout=30)
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertRegex(p.stderr, r"reload failed: ferryd \(pid %d\) "
                         r"still runs generation 1" % self.d.pid)
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual(self.generation(), 1)

    def test_not_root(self):
        p = self.d.ctl("reload", user=ft.SMTPD_USER)
        self.assertIn(p.returncode, (1, 75), (p.stdout, p.stderr))
        self.assertTrue(p.stderr.strip())
        self.assertEqual(self.generation(), 1)
        self.assertNotIn("configuration reloaded", self.d.log_text())


if __name__ == "__main__":
    ft.main(need_root=True)
