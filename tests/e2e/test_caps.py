#!/usr/bin/env python3
"""End-to-end: capability checks before the 250.  Two routes lead to two
test smarthosts: "small" (small.test; SIZE 2000, no 8BITMIME, no
SMTPUTF8) and "big" (every other domain; SIZE 100000, 8BITMIME,
SMTPUTF8).  Before any delivery their capabilities are unknown and
ferry accepts as it always did; after one delivery to each, the runner
knows them from the agents' EHLO and the workers refuse during the
session what the upstream could not take: a declared SIZE over the
route's at RCPT (552 5.3.4) while the other route still takes the same
client's message, a SIZE over every route's at MAIL, SMTPUTF8 or
8BITMIME where the upstream lacks it (553 5.6.7, 554 5.6.3), and a
message over every recipient's route after the data (552 5.3.4 instead
of the 250).  EHLO advertises the smallest SIZE.  What was learned
survives a restart of the runner (no delivery needed to know it again).
Nothing bounces.  Needs root."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from test_delivery import DeliveryCase, WAIT, SENDER  # noqa: E402

SMALL, BIG = 2000, 100000
LIMIT = 10485760                # ferry's limits { message_size } (default)


def body(n):
    """A message of about n octets (CRLF lines, dot-safe)."""
    head = b"Subject: caps\r\n\r\n"
    line = b"x" * 78 + b"\r\n"
    return head + line * max(1, (n - len(head)) // len(line))


class CapsTest(DeliveryCase):

    def setUp(self):
        super().setUp()
        self.small = self.smarthost(extensions=[
            "PIPELINING", "SIZE %d" % SMALL, "ENHANCEDSTATUSCODES", "DSN"])
        self.big = self.smarthost(extensions=[
            "PIPELINING", "SIZE %d" % BIG, "8BITMIME", "SMTPUTF8",
            "ENHANCEDSTATUSCODES", "DSN"])
        self.d = self.start_ferry(
            routes=[self.route("small", ["small.test"],
                               [self.small.address]),
                    self.route("big", ["*"], [self.big.address])],
            delivery={"retry_schedule": [1], "connect_timeout": 5,
                      "max_lifetime": 3600})

    def tearDown(self):
        # nothing bounced: no message from <> reached either upstream
        for s in (self.small, self.big):
            for m in s.messages:
                self.assertNotEqual(m.sender, "", "a bounce: %r" % m)
        super().tearDown()

    def ehlo_size(self):
        with self.d.client() as c:
            for line in c.ehlo().lines:
                if line.startswith("SIZE "):
                    return int(line[5:])
        return None

    def learn(self):
        """One delivery to each route, then waits until the workers know
        both upstreams (EHLO advertises the small one's SIZE)."""
        q1 = self.d.send(b"Subject: one\r\n\r\nx\r\n", sender=SENDER,
                         rcpts=["r@small.test"])
        q2 = self.d.send(b"Subject: two\r\n\r\nx\r\n", sender=SENDER,
                         rcpts=["r@big.test"])
        self.small.wait_messages(1, WAIT)
        self.big.wait_messages(1, WAIT)
        self.gone(self.d, q1)
        self.gone(self.d, q2)
        self.assertTrue(ft.wait_for(lambda: self.ehlo_size() == SMALL, 10),
                        "EHLO still advertises %r" % self.ehlo_size())
        self.assertIsNotNone(self.d.wait_log(
            r"route small: the upstream offers SIZE=%d DSN" % SMALL))

    def test_unknown_accepted_then_size_refused_at_rcpt(self):
        # unknown: a big declared SIZE goes through as it always did
        self.assertEqual(self.ehlo_size(), LIMIT)
        with self.d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d"
                                   % (SENDER, BIG * 2)), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<r@small.test>"), 250, "2.1.5")
            self.assertReply(c.cmd("RSET"), 250)
        self.learn()
        self.assertEqual(self.ehlo_size(), SMALL)
        # known: over the small route's SIZE at RCPT, while the big
        # route still takes the same client's message
        content = body(SMALL * 3)
        with self.d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d"
                                   % (SENDER, len(content))), 250, "2.1.0")
            r = c.cmd("RCPT TO:<r@small.test>")
            self.assertReply(r, 552, "5.3.4")
            self.assertIn("exceeds fixed maximum message size for this "
                          "destination", r.lines[-1])
            self.assertReply(c.cmd("RCPT TO:<r@big.test>"), 250, "2.1.5")
            qid = ft.queued_id(c.data(ft.dot_stuff(content)))
        m = self.big.wait_messages(2, WAIT)[-1]
        self.assertEqual(m.recipients, ["r@big.test"])
        self.gone(self.d, qid)
        self.assertEqual(len(self.small.messages), 1)

    def test_size_over_every_route_refused_at_mail(self):
        self.learn()
        with self.d.client() as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, BIG + 1))
            self.assertReply(r, 552, "5.3.4")
            self.assertIn("every destination", r.lines[-1])
            self.assertReply(c.cmd("RCPT TO:<r@big.test>"), 503, "5.5.1")
            self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d"
                                   % (SENDER, BIG)), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<r@big.test>"), 250, "2.1.5")

    def test_smtputf8_where_the_upstream_lacks_it(self):
        self.learn()
        content = ("Subject: gr\u00fc\u00dfe\r\n\r\nx\r\n").encode()
        with self.d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % SENDER),
                             250, "2.1.0")
            r = c.cmd("RCPT TO:<r@small.test>")
            self.assertReply(r, 553, "5.6.7")
            self.assertIn("SMTPUTF8", r.lines[-1])
            r = c.cmd("RCPT TO:<j\u00f6rg@small.test>")
            self.assertReply(r, 553, "5.6.7")
            # the route whose upstream offers it takes it
            self.assertReply(c.cmd("RCPT TO:<j\u00f6rg@big.test>"), 250,
                             "2.1.5")
            qid = ft.queued_id(c.data(content))
        m = self.big.wait_messages(2, WAIT)[-1]
        self.assertEqual(m.recipients, ["j\u00f6rg@big.test"])
        self.assertIn("SMTPUTF8", m.mail_params)
        self.gone(self.d, qid)

    def test_8bitmime_where_the_upstream_lacks_it(self):
        self.learn()
        content = "Subject: 8bit\r\n\r\nK\u00e4se\r\n".encode()
        with self.d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s> BODY=8BITMIME"
                                   % SENDER), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<r@small.test>"), 554, "5.6.3")
            self.assertReply(c.cmd("RCPT TO:<r@big.test>"), 250, "2.1.5")
            qid = ft.queued_id(c.data(content))
        m = self.big.wait_messages(2, WAIT)[-1]
        self.assertEqual(m.mail_params.get("BODY"), "8BITMIME")
        self.gone(self.d, qid)
        self.assertEqual(len(self.small.messages), 1)

    def test_data_over_every_recipients_route(self):
        self.learn()
        # no SIZE declared: only the data tells
        with self.d.client() as c:
            c.ehlo()
            c.envelope(SENDER, ["r@small.test", "s@small.test"])
            r = c.data(ft.dot_stuff(body(SMALL * 2)))
            self.assertReply(r, 552, "5.3.4")
            self.assertIn("every recipient", r.lines[-1])
            # the session goes on; a message that fits is taken
            c.envelope(SENDER, ["r@small.test"])
            qid = ft.queued_id(c.data(b"Subject: fits\r\n\r\nx\r\n"))
        self.small.wait_messages(2, WAIT)
        self.gone(self.d, qid)
        self.assertTrue(ft.wait_for(
            lambda: self.d.count("message") == 0, 5))

    def test_learned_capabilities_survive_a_runner_restart(self):
        self.learn()
        sessions = (len(self.small.sessions), len(self.big.sessions))
        runner = self.d.runners()
        self.assertEqual(len(runner), 1)
        start = self.d.log_size()
        os.kill(runner[0], signal.SIGKILL)
        self.assertTrue(ft.wait_for(
            lambda: self.d.runners() and self.d.runners() != runner, 10),
            "the runner was not restarted")
        self.assertIsNotNone(self.d.wait_log(r"queue runner started",
                                             start=start))
        self.assertTrue(ft.wait_for(lambda: self.ehlo_size() == SMALL, 10),
                        "EHLO advertises %r" % self.ehlo_size())
        with self.d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d"
                                   % (SENDER, SMALL + 1)), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<r@small.test>"), 552, "5.3.4")
        # known from the store, not from a new connection upstream
        self.assertEqual((len(self.small.sessions), len(self.big.sessions)),
                         sessions)
        # and shown to the operator
        doc = self.d.ctl_json("status")
        ups = {u["route"]: u for u in doc["upstreams"]}
        self.assertEqual(ups["small"]["offers"], "SIZE=%d DSN" % SMALL)
        self.assertEqual(ups["small"]["size_limit"], SMALL)
        self.assertEqual(ups["big"]["offers"],
                         "SIZE=%d 8BITMIME SMTPUTF8 DSN" % BIG)
        text = self.d.ctl("status").stdout
        self.assertIn("small offers SIZE=%d DSN" % SMALL, text)

    def test_reload_with_other_hosts_forgets_the_route(self):
        self.learn()
        other = self.smarthost(extensions=[
            "PIPELINING", "SIZE %d" % (SMALL * 10), "ENHANCEDSTATUSCODES"])
        start = self.d.log_size()
        self.d.write_config(routes=[
            self.route("small", ["small.test"], [other.address]),
            self.route("big", ["*"], [self.big.address])])
        self.d.signal(signal.SIGHUP)
        self.assertIsNotNone(self.d.wait_log(
            r"queue runner: configuration reloaded", start=start))
        # what was learned of the old host no longer holds: unknown
        self.assertTrue(ft.wait_for(lambda: self.ehlo_size() == BIG, 10),
                        "EHLO advertises %r" % self.ehlo_size())
        with self.d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d"
                                   % (SENDER, SMALL * 5)), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<r@small.test>"), 250, "2.1.5")
            qid = ft.queued_id(c.data(ft.dot_stuff(body(SMALL * 5))))
        other.wait_messages(1, WAIT)
        self.gone(self.d, qid)
        # and the new host is learned from that delivery
        self.assertTrue(ft.wait_for(
            lambda: self.ehlo_size() == SMALL * 10, 10),
            "EHLO advertises %r" % self.ehlo_size())


if __name__ == "__main__":
    ft.main(need_root=True)
