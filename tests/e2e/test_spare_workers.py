#!/usr/bin/env python3
"""End-to-end: spare SMTP workers at rest.  A burst of sessions grows the
pool beyond workers.min_idle; once it is over, each spare leaves after
workers.spare_idle seconds idle (not before), the pool comes back to
min_idle ready workers, and a new session is served at once.  With
spare_idle = 0 the spares stay (up to max_idle).  Needs root."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

SPARE_IDLE = 3
SESSIONS = 4


class SpareWorkerTest(ft.FerryTestCase):

    def burst(self, d):
        """SESSIONS sessions held at once, then closed; returns the
        workers seen while they were held and the time they closed."""
        clients = []
        for i in range(SESSIONS):
            c = d.client()
            self.addCleanup(c.close)
            self.assertEqual(c.greeting.code, 220)
            self.assertEqual(c.cmd("EHLO burst%d.example" % i).code, 250)
            clients.append(c)
            time.sleep(0.1)
        # one session per worker (sessions_per_worker = 1: a pool
        # packs sessions into workers with room otherwise), and min_idle
        # more wait
        grew = ft.wait_for(lambda: len(d.workers()) >= 3, 10)
        held = len(d.workers())
        self.assertTrue(grew, "the pool did not grow: %d workers" % held)
        closed = time.monotonic()
        for c in clients:
            self.assertEqual(c.cmd("QUIT").code, 221)
            c.close()
        return held, closed

    def test_spares_retire_after_spare_idle_and_min_idle_serves(self):
        d = self.start_ferry(workers={"min_idle": 1, "max_idle": 8,
                                      "max": 16, "sessions_per_worker": 1,
                                      "spare_idle": SPARE_IDLE,
                                      "client_names": False})
        held, closed = self.burst(d)
        # not before spare_idle: every spare turned idle after `closed`
        time.sleep(1.0)
        if time.monotonic() - closed < SPARE_IDLE - 0.5:
            self.assertGreater(len(d.workers()), 1,
                               "spares left before spare_idle")
        # then down to min_idle (one), each leaving on its own
        shrunk = ft.wait_for(lambda: len(d.workers()) == 1,
                             SPARE_IDLE + 10)
        self.assertTrue(shrunk, "still %d workers after spare_idle"
                        % len(d.workers()))
        self.assertGreaterEqual(time.monotonic() - closed, SPARE_IDLE - 0.1)
        # retired, not crashed
        self.assertNotIn("died", d.log_text())
        # the one left serves a new session at once, and the pool grows
        # again behind it (min_idle idle kept)
        t0 = time.monotonic()
        with d.client() as c:
            self.assertEqual(c.greeting.code, 220)
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertEqual(c.cmd("EHLO after.example").code, 250)
            qid = c.send_message("a@example.org", ["b@example.net"],
                                 b"Subject: after rest\r\n\r\nbody\r\n")
            self.assertTrue(qid)
            self.assertTrue(ft.wait_for(lambda: len(d.workers()) == 2, 10),
                            "no idle worker started behind the session")
            self.assertEqual(c.cmd("QUIT").code, 221)
        # and the pool stays at min_idle for a later burst to grow
        self.assertTrue(ft.wait_for(lambda: len(d.workers()) == 1,
                                    SPARE_IDLE + 10))

    def test_spare_idle_0_keeps_spares(self):
        d = self.start_ferry(workers={"min_idle": 1, "max_idle": 8,
                                      "max": 16, "sessions_per_worker": 1,
                                      "spare_idle": 0,
                                      "client_names": False})
        held, closed = self.burst(d)
        time.sleep(SPARE_IDLE + 2)
        self.assertEqual(len(d.workers()), held)


if __name__ == "__main__":
    ft.main(need_root=True)
