#!/usr/bin/env python3
"""End-to-end: rewriting to the route's account address.  A route's
rewrite_sender replaces MAIL FROM (never the null sender of a bounce);
its rewrite_from replaces a header From that is not allowed, byte for
byte as ferry.conf(5) says (folded From, CRLF, Reply-To added only when
there is none, the rest untouched), leaves an allowed From alone, and
the queued message stays as received.  Each rewrite is logged once per
delivery with the queue id, old -> new.  Needs root."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from ferrytest import split_received  # noqa: E402
from test_delivery import DeliveryCase, WAIT, SENDER, RCPT  # noqa: E402

ACCOUNT = "account@relay.test"
REWRITE = {"rewrite_sender": ACCOUNT, "rewrite_from": ACCOUNT,
           "allowed_from": ["@allowed.test", "boss@corp.test"]}


class RewriteCase(DeliveryCase):

    def rewriting(self, dest, **policy):
        """A daemon whose route "dest" to dest has the policy."""
        return self.ferry_to(dest, policy=dict(policy))

    def relayed(self, d, s, content, sender=SENDER):
        """Sends content; returns (qid, the message at s after ferry's
        Received header, the transaction)."""
        n = len(s.messages)
        qid = d.send(content, sender=sender, rcpts=[RCPT])
        m = s.wait_messages(n + 1, WAIT)[-1]
        hdr, rest = split_received(m.data)
        self.assertEqual(hdr.group("qid").decode(), qid)
        self.gone(d, qid)
        return qid, rest, m


class EnvelopeTest(RewriteCase):

    def test_mail_from_rewritten_and_logged(self):
        s = self.smarthost()
        d = self.rewriting(s, rewrite_sender=ACCOUNT)
        content = b"From: sender@origin.test\r\nSubject: x\r\n\r\nbody\r\n"
        qid, rest, m = self.relayed(d, s, content)
        self.assertEqual(m.sender, ACCOUNT)
        self.assertTrue(m.mail_line.startswith(
            b"MAIL FROM:<account@relay.test>"), m.mail_line)
        self.assertEqual(m.recipients, [RCPT])
        # only the envelope: the message is as it was sent
        self.assertEqual(rest, content)
        self.log_line(d, r"%s: sender rewritten: <sender@origin\.test> -> "
                         r"<account@relay\.test> \(route dest\)" % qid)
        self.assertEqual(len(re.findall(r"%s: sender rewritten" % qid,
                                        d.log_text())), 1)
        self.assertNotIn("%s: header From rewritten" % qid, d.log_text())

    def test_off_by_default(self):
        s = self.smarthost()
        d = self.rewriting(s)
        content = b"From: sender@origin.test\r\n\r\nbody\r\n"
        qid, rest, m = self.relayed(d, s, content)
        self.assertEqual(m.sender, SENDER)
        self.assertEqual(rest, content)
        self.assertNotIn("rewritten", d.log_text())

    def test_bounce_keeps_null_sender(self):
        # the bounce goes through route "origin", which rewrites too
        s = self.smarthost()
        b = self.smarthost()
        rs = [self.route("dest", ["dest.test"], [s.address]),
              self.route("origin", ["origin.test"], [b.address],
                         **REWRITE)]
        d = self.start_ferry(routes=rs, delivery={
            "retry_schedule": [1], "connect_timeout": 5,
            "max_lifetime": 3600})
        s.reply_at("rcpt", "550 5.1.1 no such user")
        qid = d.send(b"From: sender@origin.test\r\n\r\nbody\r\n",
                     sender=SENDER, rcpts=[RCPT])
        report, _, _ = self.bounce_for(b, qid)
        (m,) = b.messages
        self.assertTrue(m.mail_line.startswith(b"MAIL FROM:<>"),
                        m.mail_line)
        self.assertNotIn("sender rewritten", d.log_text())


class FromTest(RewriteCase):

    def test_from_rewritten_byte_exact(self):
        s = self.smarthost()
        d = self.rewriting(s, **REWRITE)
        content = (b"Date: Sun, 6 Dec 2026 05:00:00 +0000\r\n"
                   b"From: \"Sender, the\" <sender@origin.test>\r\n"
                   b"To: rcpt@dest.test\r\nSubject: hi\r\n\r\n"
                   b"From: not a header\r\n.dot\r\n")
        want = (b"Date: Sun, 6 Dec 2026 05:00:00 +0000\r\n"
                b"From: \"Sender, the\" <account@relay.test>\r\n"
                b"Reply-To: \"Sender, the\" <sender@origin.test>\r\n"
                b"To: rcpt@dest.test\r\nSubject: hi\r\n\r\n"
                b"From: not a header\r\n.dot\r\n")
        qid, rest, m = self.relayed(d, s, content)
        self.assertEqual(rest, want)
        self.assertEqual(m.data_raw, ft.dot_stuff(m.data))
        self.assertEqual(m.sender, ACCOUNT)
        self.log_line(d, r"%s: header From rewritten: <sender@origin\.test>"
                         r" -> <account@relay\.test> \(route dest\)" % qid)
        self.assertEqual(len(re.findall(r"%s: header From rewritten" % qid,
                                        d.log_text())), 1)

    def test_folded_from_and_existing_reply_to(self):
        s = self.smarthost()
        d = self.rewriting(s, **REWRITE)
        content = (b"From: A Very Long Display Name That Was Folded\r\n"
                   b" <sender@origin.test>\r\n"
                   b"Reply-To: list@origin.test\r\n"
                   b"Subject: folded\r\n\r\nbody\r\n")
        want = (b"From: A Very Long Display Name That Was Folded "
                b"<account@relay.test>\r\n"
                b"Reply-To: list@origin.test\r\n"
                b"Subject: folded\r\n\r\nbody\r\n")
        qid, rest, m = self.relayed(d, s, content)
        self.assertEqual(rest, want)

    def test_allowed_from_left_alone(self):
        s = self.smarthost()
        d = self.rewriting(s, **REWRITE)
        for frm in (b"x@allowed.test", b"Boss <BOSS@corp.test>",
                    b"account@relay.test"):
            content = b"From: " + frm + b"\r\nSubject: ok\r\n\r\nbody\r\n"
            qid, rest, m = self.relayed(d, s, content)
            self.assertEqual(rest, content)
            self.assertNotIn("%s: header From rewritten" % qid,
                             d.log_text())

    def test_stored_message_unchanged(self):
        s = self.smarthost()
        d = self.rewriting(s, **REWRITE)
        s.reply_at("rcpt", "451 4.3.0 try later")
        content = b"From: sender@origin.test\r\nSubject: kept\r\n\r\nb\r\n"
        qid = d.send(content, sender=SENDER, rcpts=[RCPT])
        self.wait_deferred(d, qid)
        body = b"".join(bytes(r["chunk"]) for r in d.query(
            "SELECT b.chunk FROM body b JOIN message m ON "
            "m.id = b.message_id WHERE m.qid = ? ORDER BY b.seq", (qid,)))
        self.assertIn(b"\r\n" + content, body)
        self.assertNotIn(ACCOUNT.encode(), body)
        row = d.query("SELECT sender FROM message WHERE qid = ?", (qid,))
        self.assertEqual(row[0]["sender"], SENDER)


if __name__ == "__main__":
    ft.main(need_root=True)
