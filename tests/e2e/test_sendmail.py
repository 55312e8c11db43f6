#!/usr/bin/env python3
"""End-to-end: ferry-sendmail, the sendmail-compatible injector, piping
messages into a running ferry (intake only: delivery paused) and reading
what the queue stored: the envelope (sender, recipients) and the bytes
(headers added, Bcc removed, line ends, dots).  Also its exit codes when
ferry is down (75), on bad usage (64) and when every recipient is refused
(67), and that it finds ferry from the configuration file (-C), -S and
$FERRY_SMTP.  Needs root (the daemon drops privileges)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from ferrytest import split_received  # noqa: E402

SENDMAIL = os.path.join(ft.BUILDDIR, "src", "ferry-sendmail")


class SendmailCase(ft.FerryTestCase):

    ferry_options = {"networks": ["127.0.0.0/8"]}

    def setUp(self):
        super().setUp()
        if not os.access(SENDMAIL, os.X_OK):
            self.fail("ferry-sendmail is not built: no %s" % SENDMAIL)

    def run_sendmail(self, args, stdin, env=None, use_conf=True):
        e = dict(os.environ)
        e.pop("FERRY_SMTP", None)
        e.update(env or {})
        argv = [SENDMAIL] + (["-C", self.ferry.conf] if use_conf else [])
        return subprocess.run(argv + list(args), input=stdin,
                              capture_output=True, env=e, timeout=30)

    def last_message(self, before):
        rows = self.ferry.query("SELECT qid FROM message WHERE id > ? "
                                "ORDER BY id", (before,))
        self.assertEqual(len(rows), 1, "one new message expected")
        m = self.ferry.message(rows[0]["qid"])
        _, body = split_received(m["body"])
        return m, body

    def max_id(self):
        return self.ferry.query("SELECT coalesce(max(id), 0) AS n "
                                "FROM message")[0]["n"]

    def test_extract_recipients_bcc_removed(self):
        before = self.max_id()
        msg = (b"From: App <app@origin.test>\n"
               b"To: \"Doe, J\" <j@dest.test>, k@dest.test\n"
               b"Cc: c@dest.test\n"
               b"Bcc: hidden@dest.test\n"
               b"Subject: t test\n"
               b"\n"
               b"line one\n"
               b".leading dot\n"
               b".\n"
               b"after a lone dot (with -i)\n")
        r = self.run_sendmail(["-t", "-i", "-f", "bounces@origin.test"],
                              msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, body = self.last_message(before)
        self.assertEqual(m["sender"], "bounces@origin.test")
        self.assertEqual([x["address"] for x in m["recipients"]],
                         ["j@dest.test", "k@dest.test", "c@dest.test",
                          "hidden@dest.test"])
        self.assertNotIn(b"Bcc", body)
        self.assertNotIn(b"hidden", body)
        head, _, text = body.partition(b"\r\n\r\n")
        self.assertIn(b"\r\nSubject: t test", b"\r\n" + head)
        self.assertRegex(head, rb"\r\nDate: \w{3}, \d+ \w{3} \d{4} ")
        self.assertRegex(head, rb"\r\nMessage-ID: <[^>]+@[^>]+>")
        self.assertIn(b"From: App <app@origin.test>", head)
        # stored un-stuffed, with CRLF, the lone dot kept
        self.assertEqual(text, b"line one\r\n.leading dot\r\n.\r\n"
                         b"after a lone dot (with -i)\r\n")

    def test_dot_ends_input_without_i(self):
        before = self.max_id()
        r = self.run_sendmail(["-F", "Cron Daemon", "-f", "root",
                               "admin@dest.test"],
                              b"Subject: cron\n\nout\n.\nnot sent\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m, body = self.last_message(before)
        host = self.ferry.hostname
        self.assertEqual(m["sender"], "root@%s" % host)
        self.assertEqual([x["address"] for x in m["recipients"]],
                         ["admin@dest.test"])
        self.assertIn(("From: Cron Daemon <root@%s>\r\n" % host).encode(),
                      body)
        self.assertTrue(body.endswith(b"\r\n\r\nout\r\n"), body)

    def test_server_from_env_and_option_and_ignored_flags(self):
        before = self.max_id()
        r = self.run_sendmail(["-odi", "-oem", "-oi", "-v", "-N", "never",
                               "-B", "8BITMIME", "-f", "", "--",
                               "x@dest.test"],
                              "Subject: caf\u00e9\n\n\u00e9t\u00e9\n".encode(),
                              env={"FERRY_SMTP": "127.0.0.1:%d"
                                   % self.ferry.port},
                              use_conf=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, body = self.last_message(before)
        self.assertEqual(m["sender"], "")
        self.assertIn("Subject: caf\u00e9\r\n".encode(), body)
        before = self.max_id()
        r = self.run_sendmail(["-S", "127.0.0.1:%d" % self.ferry.port,
                               "y@dest.test, z@dest.test"],
                              b"Subject: two\n\nx\n", use_conf=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, _ = self.last_message(before)
        self.assertEqual([x["address"] for x in m["recipients"]],
                         ["y@dest.test", "z@dest.test"])

    def test_exit_codes(self):
        # usage: no recipients, unsupported mode
        r = self.run_sendmail([], b"x\n")
        self.assertEqual(r.returncode, 64, r.stderr)
        r = self.run_sendmail(["-bs"], b"")
        self.assertEqual(r.returncode, 64, r.stderr)
        # -t with no recipient headers
        r = self.run_sendmail(["-t"], b"Subject: none\n\nx\n")
        self.assertEqual(r.returncode, 65, r.stderr)
        # an address that would inject SMTP
        r = self.run_sendmail(["a@dest.test>\r\nRSET"], b"x\n")
        self.assertNotEqual(r.returncode, 0)
        # ferry down: EX_TEMPFAIL
        r = self.run_sendmail(["-S", "127.0.0.1:%d" % ft.free_port(),
                               "a@dest.test"], b"x\n", use_conf=False)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"cannot reach ferry", r.stderr)
        # every recipient refused for good: a syntax error at RCPT
        before = self.max_id()
        r = self.run_sendmail(["bad@@dest.test"], b"x\n")
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertEqual(self.max_id(), before)
        # a missing configuration file
        r = self.run_sendmail(["-C", "/nonexistent/ferry.conf",
                               "a@dest.test"], b"x\n", use_conf=False)
        self.assertEqual(r.returncode, 78, r.stderr)


if __name__ == "__main__":
    ft.main(need_root=True)
