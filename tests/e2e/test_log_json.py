#!/usr/bin/env python3
"""End-to-end: log { format = "json" }.  ferryd runs with JSON lines (on
stderr, through the master's log pipe), relays a message to the test
smarthost, and every line of the log must parse as one JSON object with
the documented keys: the "accepted" event names the queue id, sender,
client, EHLO name and size; the "delivery" event the queue id,
recipient, relay, status=sent, dsn=2.0.0 and a delay; sessions give
"connect" and "disconnect" events with the client.  A client that sends
bytes 0x01 and 0xff in EHLO, MAIL and unknown commands, and a UTF-8
EHLO name, still leaves only valid JSON lines.  Needs root (the daemon
drops privileges)."""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "s\u00e9nder@origin.test"    # SMTPUTF8: raw UTF-8 in the field
RCPT = "rcpt@dest.test"
KEYS = {"ts", "proc", "pid", "level", "event", "qid", "from", "to", "relay",
        "dsn", "status", "delay", "reason", "client", "helo", "size",
        "nrcpt", "msg"}


class LogJsonTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ferry-logjson-")
        os.chmod(self.tmp, 0o755)
        self.dest = sh.SmartHost().start()
        self.addCleanup(self.dest.stop)
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": [self.dest.address], "tls": "none"}
        self.ferry = self.start_ferry(
            routes=[route], log_format="json",
            delivery={"retry_schedule": [1], "connect_timeout": 5})

    def tearDown(self):
        # start_ferry's cleanup prints the log of a failed test
        self.ferry = None
        super().tearDown()

    def records(self):
        """Every line of the log as a parsed object (the test fails on a
        line that is not one JSON object)."""
        with open(self.ferry.logpath, "rb") as f:
            raw = f.read()
        out = []
        for line in raw.split(b"\n"):
            if not line:
                continue
            # ASCII only: everything else is a \\u escape
            self.assertTrue(all(b < 0x80 for b in line),
                            "a non-ASCII byte in %r" % line)
            try:
                rec = json.loads(line.decode("ascii"))
            except ValueError as e:
                self.fail("not a JSON line (%s): %r" % (e, line))
            self.assertIsInstance(rec, dict, line)
            for k in ("ts", "proc", "pid", "level", "event", "msg"):
                self.assertIn(k, rec, line)
            self.assertLessEqual(set(rec), KEYS, line)
            self.assertRegex(rec["ts"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            out.append(rec)
        return out

    def wait_event(self, pred, timeout=WAIT):
        found = []

        def look():
            found[:] = [r for r in self.records() if pred(r)]
            return bool(found)
        self.assertTrue(ft.wait_for(look, timeout, 0.1),
                        "no such log event\n" + self.ferry.log_tail())
        return found

    def test_accepted_and_delivered(self):
        content = b"Subject: json log\r\n\r\nhello\r\n"
        qid = self.ferry.send(content, sender=SENDER, rcpts=[RCPT],
                              helo="m\u00fcller.example",
                              mail_params=" SMTPUTF8")
        (m,) = self.dest.wait_messages(1, WAIT)
        delivered = self.wait_event(lambda r: r["event"] == "delivery"
                                    and r.get("qid") == qid)
        accepted = [r for r in self.records()
                    if r["event"] == "accepted" and r.get("qid") == qid]
        self.assertEqual(len(accepted), 1, accepted)
        a = accepted[0]
        self.assertEqual(a["proc"], "ferry-queue")
        self.assertEqual(a["level"], "info")
        self.assertEqual(a["from"], SENDER)
        self.assertEqual(a["client"], "unknown[127.0.0.1]")
        self.assertEqual(a["helo"], "m\u00fcller.example")
        self.assertEqual(a["nrcpt"], 1)
        self.assertIsInstance(a["size"], int)
        self.assertGreater(a["size"], len(content))   # + Received:
        # the text line is kept whole in msg
        # the text line is kept whole in msg, escaped as in the text
        # format (\xNN for what is not printable ASCII)
        self.assertTrue(a["msg"].startswith(
            "%s: from=<s\\xc3\\xa9nder@origin.test>, size=%d, nrcpt=1"
            % (qid, a["size"])), a["msg"])

        self.assertEqual(len(delivered), 1, delivered)
        d = delivered[0]
        self.assertEqual(d["to"], RCPT)
        self.assertEqual(d["status"], "sent")
        self.assertEqual(d["dsn"], "2.0.0")
        host, port = self.dest.address.rsplit(":", 1)
        self.assertIn("[%s]:%s" % (host, port), d["relay"])
        self.assertIsInstance(d["delay"], (int, float))
        self.assertGreaterEqual(d["delay"], 0)
        self.assertLess(d["delay"], WAIT + 5)
        self.assertIn("250", d["reason"])
        self.assertIn("to=<%s>" % RCPT, d["msg"])
        self.assertIn("status=sent", d["msg"])

        self.wait_event(lambda r: r["event"] == "removed"
                        and r.get("qid") == qid)
        sessions = [r for r in self.records()
                    if r["event"] in ("connect", "disconnect")]
        self.assertTrue(any(r["event"] == "connect" and
                            r["client"] == "unknown[127.0.0.1]" and
                            r["proc"] == "ferry-smtpd" for r in sessions),
                        sessions)
        self.assertTrue(any(r["event"] == "disconnect" and
                            r["client"] == "unknown[127.0.0.1]"
                            for r in sessions), sessions)
        # the other lines are plain "log" events
        self.assertTrue(any(r["event"] == "log" and r["proc"] == "ferryd"
                            for r in self.records()))

    def test_hostile_bytes_give_valid_json(self):
        start = len(self.records())
        with self.ferry.client() as c:
            c.send(b"EHLO bad\x01name\xff.example\r\n")
            r = c.reply()
            self.assertEqual(r.code, 501, r)
            c.send(b"\x01\xff\xfe junk\r\n")
            self.assertGreaterEqual(c.reply().code, 500)
            c.ehlo("client.example")
            c.send(b"MAIL FROM:<a\x01b\xff@origin.test>\r\n")
            self.assertGreaterEqual(c.reply().code, 500)
            c.cmd("QUIT")
        # the session's end is logged: all lines so far are valid JSON
        recs = self.wait_event(lambda r: r["event"] == "disconnect" and
                               "unknown=1" in r["msg"])
        rejects = [r for r in self.records()[start:]
                   if r["event"] == "reject"]
        self.assertGreaterEqual(len(rejects), 3, rejects)
        for r in rejects:
            self.assertEqual(r["client"], "unknown[127.0.0.1]")
            self.assertRegex(r["reason"], r"^5\d\d ")
        self.assertTrue(recs)

if __name__ == "__main__":
    ft.main(need_root=True)
