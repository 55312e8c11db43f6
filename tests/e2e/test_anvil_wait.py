#!/usr/bin/env python3
"""End-to-end: a worker does not stall while one of its sessions waits
for ferry-anvil.  One worker with room for many sessions; anvil is
stopped (SIGSTOP), so its questions go unanswered: the session that
asked (MAIL's rate check, or a new connection's check) waits for the
deadline (1 s) and is then allowed (fail open, logged), while another
session of the same worker gets its replies at once.  Needs root (exit
77 otherwise)."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

HOST = "anvil-wait.ferry-test.example"
ONE_WORKER = {"min_idle": 1, "max_idle": 1, "max": 1,
              "sessions_per_worker": 16}
DEADLINE = 1.0      # ANVIL_DEADLINE_MS
QUICK = 0.5         # a reply that did not wait for anvil
# Far below its message rate a client's MAIL commands are lent to the
# worker in leases (anvil_client.h), so that most do not ask anvil; a
# rate this low makes anvil grant one at a time, so each MAIL asks.
LOW_RATE = {"max_connections_per_client": 1000, "connection_rate": 1000000,
            "message_rate": 20}


class AnvilWaitTest(ft.FerryTestCase):

    def setUp(self):
        limits = LOW_RATE if "lease" not in self.id() else None
        opts = {"limits": limits} if limits else {}
        self.d = self.start_ferry(hostname=HOST, workers=ONE_WORKER, **opts)
        pids = ft.wait_for(lambda: self.d.anvils(), 10)
        self.assertEqual(len(pids), 1, "exactly one ferry-anvil")
        self.anvil = pids[0]
        self.assertTrue(ft.wait_for(lambda: len(self.d.workers()) == 1, 10))

    def stop_anvil(self):
        os.kill(self.anvil, signal.SIGSTOP)
        self.addCleanup(os.kill, self.anvil, signal.SIGCONT)

    def session(self):
        c = self.d.client()
        self.addCleanup(c.close)
        self.assertReply(c.greeting, 220)
        self.assertReply(c.cmd("EHLO client.example"), 250)
        return c

    def test_mail_check_parks_only_its_session(self):
        good = self.session()
        self.assertReply(good.cmd("MAIL FROM:<good@example.org>"), 250)
        slow = self.session()
        worker = ft.wait_for(lambda: self.d.worker_for(good), 5)
        self.assertIsNotNone(worker)
        self.assertEqual(self.d.worker_for(slow), worker,
                         "the sessions are not on the same worker")
        start = self.d.log_size()
        self.stop_anvil()

        asked = time.monotonic()
        slow.send("MAIL FROM:<slow@example.org>\r\n")
        time.sleep(0.2)         # the worker has asked, anvil is silent
        t = time.monotonic()
        r = good.cmd("RCPT TO:<rcpt@example.com>")
        good_took = time.monotonic() - t
        self.assertReply(r, 250)
        self.assertLess(good_took, QUICK,
                        "a session waited for another one's anvil check "
                        "(%.2f s)" % good_took)
        # the one that asked waited for the deadline, then was allowed
        self.assertReply(slow.reply(timeout=10), 250)
        slow_took = time.monotonic() - asked
        self.assertGreaterEqual(slow_took, DEADLINE * 0.9,
                                "MAIL did not wait for anvil's answer")
        self.assertLess(time.monotonic() - t, DEADLINE + 4)
        self.assertTrue(self.d.wait_log(
            r"warning: anvil .*no answer in time; allowing connections",
            start=start))
        # both sessions go on
        self.assertReply(slow.cmd("RCPT TO:<rcpt@example.com>"), 250)
        self.assertReply(good.cmd("RSET"), 250)

    def test_connect_check_parks_only_its_connection(self):
        good = self.session()
        self.assertReply(good.cmd("MAIL FROM:<good@example.org>"), 250)
        self.stop_anvil()

        asked = time.monotonic()
        raw = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        self.addCleanup(raw.close)
        # the worker defers a new connection 200 ms to an idle sibling
        # (there is none), then takes it and asks anvil
        time.sleep(0.4)
        t = time.monotonic()
        r = good.cmd("RCPT TO:<rcpt@example.com>")
        good_took = time.monotonic() - t
        self.assertReply(r, 250)
        self.assertLess(good_took, QUICK,
                        "a session waited for a new connection's anvil "
                        "check (%.2f s)" % good_took)
        greeting = raw.recv(512)
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        self.assertGreaterEqual(time.monotonic() - asked, DEADLINE * 0.9,
                                "the new connection did not wait for "
                                "anvil's answer")

    def test_lease_spares_the_question(self):
        """Far below the message rate, a client's first MAIL takes a
        lease: its next MAIL commands, on any of its sessions of this
        worker, are answered at once even with anvil stopped."""
        sessions = [self.session() for _ in range(3)]
        self.assertReply(sessions[0].cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(sessions[0].cmd("RSET"), 250)
        self.stop_anvil()
        for c in sessions:
            t = time.monotonic()
            self.assertReply(c.cmd("MAIL FROM:<b@example.org>"), 250)
            self.assertLess(time.monotonic() - t, QUICK,
                            "MAIL asked anvil although a lease was held")


if __name__ == "__main__":
    ft.main(need_root=True)
