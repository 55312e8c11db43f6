#!/usr/bin/env python3
"""End-to-end: retiring a node - drain, reload towards a peer, flush.

Instance A relays to a smarthost that is down, so it holds a handful of
messages, several with DSN parameters (RET, ENVID on MAIL; NOTIFY and
ORCPT on RCPT) and some from the null sender.  The operator retires A:

  1. ferryctl drain                   (no new sessions; delivery goes on)
  2. rewrite ferry.conf so that A's route points at peer ferry B,
     ferryctl reload
  3. ferryctl queue flush

Every message reaches B and, through B, the test smarthost behind it
with its envelope intact: the MAIL and RCPT lines that smarthost
recorded carry exactly the DSN parameters the client gave A (only SIZE
is added, B's own message size).  "ferryctl drain --wait" then exits 0
and A's queue is empty.  Needs root (the daemon drops privileges)."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 30.0
SENDER = "sender@origin.test"

# (sender, MAIL parameters, [(recipient, RCPT parameters)])
ENVELOPES = [
    (SENDER, " RET=HDRS ENVID=abc",
     [("r1@dest.test", " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x@y")]),
    ("", "",
     [("r2@dest.test", " NOTIFY=NEVER")]),
    ("", " ENVID=bounce+2B1",
     [("r3@dest.test", " NOTIFY=FAILURE ORCPT=rfc822;r3@dest.test")]),
    (SENDER, " RET=FULL ENVID=e4",
     [("r4@dest.test", " NOTIFY=SUCCESS,FAILURE,DELAY"),
      ("r5@dest.test", ""),
      ("r6@dest.test", " ORCPT=rfc822;old+2Bsix@legacy.test")]),
    (SENDER, "",
     [("r7@dest.test", "")]),
]


class RetireTest(ft.FerryTestCase):

    def test_retire_moves_queue_to_peer_with_envelope_intact(self):
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        self.assertTrue(s.offers("DSN"))
        delivery = {"retry_schedule": [1], "connect_timeout": 2}
        b = self.start_ferry(
            routes=[{"name": "dest", "domains": ["dest.test"],
                     "hosts": [s.address], "tls": "none"}],
            delivery=delivery)
        # B offers DSN, or A would (rightly) drop the parameters
        with b.client() as c:
            self.assertIn("DSN", c.ehlo().lines)
            c.cmd("QUIT")

        down = "127.0.0.1:%d" % ft.free_port()       # nothing listens
        a = self.start_ferry(
            routes=[{"name": "dest", "domains": ["dest.test"],
                     "hosts": [down], "tls": "none"}],
            delivery=delivery)
        with a.client() as c:
            c.ehlo()
            for n, (sender, mparams, rcpts) in enumerate(ENVELOPES):
                c.cmd("RSET")
                content = ("Message-ID: <retire%d@origin.test>\r\n"
                           "Subject: retire %d\r\n\r\nbody %d\r\n"
                           % (n, n, n)).encode()
                r = c.cmd("MAIL FROM:<%s>%s" % (sender, mparams))
                self.assertReply(r, 250)
                for rcpt, rparams in rcpts:
                    self.assertReply(c.cmd("RCPT TO:<%s>%s"
                                           % (rcpt, rparams)), 250)
                ft.queued_id(c.data(ft.dot_stuff(content)))
            c.cmd("QUIT")
        held = len(ENVELOPES)
        # A tried its smarthost and holds everything
        self.assertTrue(ft.wait_for(
            lambda: a.count("recipient", "attempts = 0") == 0, 10),
            "A never tried its smarthost")
        self.assertEqual(a.count(), held)
        self.assertEqual(len(s.messages), 0)

        # 1. drain
        p = a.ctl("drain")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with a.client() as c:
            self.assertReply(c.greeting, 421, "4.3.2")
        # 2. the route now points at peer B; reload
        a.opts["routes"] = [{"name": "dest", "domains": ["dest.test"],
                             "hosts": ["127.0.0.1:%d" % b.port],
                             "tls": "none"}]
        a.write_config()
        p = a.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # 3. flush
        p = a.ctl("queue", "flush")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        p = a.ctl("drain", "--wait", timeout=WAIT + 5)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(a.count(), 0)
        # still drained: the retired node takes nothing new
        with a.client() as c:
            self.assertReply(c.greeting, 421, "4.3.2")

        def arrived():
            return len({self.msgid(t) for t in s.messages}) >= held
        self.assertTrue(s.wait(arrived, WAIT), "%d of %d at the smarthost "
                        "behind B: %s" % (len(s.messages), held,
                                          s.summary()))
        self.assertTrue(ft.wait_for(lambda: b.count() == 0, WAIT))
        by_id = {self.msgid(t): t for t in s.messages}
        for n, (sender, mparams, rcpts) in enumerate(ENVELOPES):
            t = by_id["<retire%d@origin.test>" % n]
            self.assertEqual(t.sender, sender)
            # exactly the client's parameters, after the SIZE B adds
            want_mail = (re.escape(("MAIL FROM:<%s>" % sender).encode()) +
                         rb" SIZE=\d+" +
                         re.escape(mparams.encode()))
            self.assertRegex(t.mail_line, b"^" + want_mail + b"$",
                             "message %d: MAIL line %r" % (n, t.mail_line))
            self.assertEqual(
                sorted(t.rcpt_lines),
                sorted(("RCPT TO:<%s>%s" % r).encode() for r in rcpts),
                "message %d" % n)
            self.assertEqual(sorted(t.recipients),
                             sorted(r for r, _ in rcpts))
            # it went through B: B's Received header is on top
            hdr, _ = ft.split_received(t.data)
            self.assertIsNotNone(hdr)
        # every message once: nothing duplicated on the way
        self.assertEqual(len(s.messages), held)

    @staticmethod
    def msgid(t):
        m = re.search(rb"Message-ID: (<[^>]+>)", t.data or b"")
        return m.group(1).decode() if m else None


if __name__ == "__main__":
    ft.main(need_root=True)
