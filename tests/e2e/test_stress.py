#!/usr/bin/env python3
"""End-to-end: stress mode as ferry-anvil decides it.  With
max_connections = 10 and stress_threshold = 50 the relay enters stress at
the fifth connection held, logs it once with the count and how many times
it began, stays in it down to four (the hysteresis) and leaves it at
three, logging that once too; the workers take the stress notices
anvil pushes to them and go on asking it; a reload hands anvil a new threshold, which
applies to the connections already counted.  Memory counts too: with
limits.stress_memory_available = 100 (any machine has less than all its
memory available) anvil enters stress from memory alone, logs it once,
every idle session is cut to stress_timeout, and a reload that leaves
memory out (0) ends it.  Needs root (exit 77 otherwise)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

HOST = "stress.ferry-test.example"
POOL = {"min_idle": 4, "max_idle": 8, "max": 16}
LIMITS = {"max_connections": 10, "stress_threshold": 50,
          "stress_timeout": 7, "connection_rate": 1000000,
          "message_rate": 1000000}
ON = r"stress mode on: %d of 10 connections \(threshold %d%%\); idle " \
     r"limit 7 s for every session; entered %d time\(s\) since start"
OFF = r"stress mode off: %s of 10 connections, after \d+ s"


class StressTest(ft.FerryTestCase):

    def hold(self, d, n):
        """n more sessions, each greeted 220 and kept open."""
        out = []
        for _ in range(n):
            c = d.client()
            self.addCleanup(c.close)
            self.assertReply(c.greeting, 220)
            out.append(c)
        return out

    def count(self, d, pattern, start=0):
        import re
        return len(re.findall(pattern, d.log_text()[start:]))

    def test_enter_leave_and_reload(self):
        d = self.start_ferry(hostname=HOST, workers=POOL, limits=LIMITS)
        self.assertTrue(d.wait_log(r"anvil started: .*stress at 50% with "
                                   r"7 s"))
        held = self.hold(d, 4)
        # four of ten: under the threshold
        self.assertFalse(d.wait_log(r"stress mode on", timeout=1.5))
        held += self.hold(d, 1)
        self.assertTrue(d.wait_log(ON % (5, 50, 1), timeout=5),
                        "stress mode was not entered at 5 of 10")
        # down to four: still in stress (leaves under 40 %)
        held.pop().close()
        self.assertFalse(d.wait_log(r"stress mode off", timeout=1.5))
        # three: it ends, logged once
        held.pop().close()
        self.assertTrue(d.wait_log(OFF % "3", timeout=5),
                        "stress mode did not end at 3 of 10")
        self.assertEqual(self.count(d, r"stress mode on"), 1)
        self.assertEqual(self.count(d, r"stress mode off"), 1)

        # in again: counted a second time
        start = d.log_size()
        held += self.hold(d, 2)
        self.assertTrue(d.wait_log(ON % (5, 50, 2), timeout=5,
                                   start=start),
                        "stress mode was not entered a second time")

        # a reload raising the threshold to 90 % ends it at once
        d.write_config(hostname=HOST, workers=POOL,
                       limits=dict(LIMITS, stress_threshold=90))
        start = d.log_size()
        d.signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"anvil: limits reloaded: .*stress at "
                                   r"90% with 7 s", start=start))
        self.assertTrue(d.wait_log(OFF % "5", timeout=5, start=start),
                        "the reloaded threshold did not end stress mode")
        # every worker took the notices anvil pushed to it
        self.assertNotIn("broke the protocol", d.log_text())
        for c in held:
            c.close()

    def test_memory_puts_the_relay_in_stress(self):
        limits = {"max_connections": 100, "stress_timeout": 2,
                  "stress_memory_available": 100,
                  "connection_rate": 1000000, "message_rate": 1000000}
        d = self.start_ferry(hostname=HOST, workers=POOL, limits=limits)
        self.assertTrue(d.wait_log(
            r"stress mode on: memory available \d+% of \d+ MB \(threshold "
            r"100%\), 0 of 100 connections; idle limit 2 s for every "
            r"session; entered 1 time\(s\) since start", timeout=10),
            "memory did not put the relay in stress")
        # an idle session is cut at 2 s, not command_timeout (300 s)
        time.sleep(0.5)     # the workers take anvil's note
        c = d.client()
        self.addCleanup(c.close)
        self.assertReply(c.greeting, 220)
        t = time.monotonic()
        self.assertReply(c.reply(timeout=10), 421)
        took = time.monotonic() - t
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, 6)
        self.assertTrue(c.is_closed())
        # entered once, not again every reading
        time.sleep(1.5)
        self.assertEqual(self.count(d, r"stress mode on"), 1)
        # a reload that leaves memory out ends it, logged once
        start = d.log_size()
        d.write_config(hostname=HOST, workers=POOL,
                       limits=dict(limits, stress_memory_available=0))
        d.signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"anvil: limits reloaded: .*or under 0% "
                                   r"memory available", start=start))
        self.assertTrue(d.wait_log(r"stress mode off: \d+ of 100 "
                                   r"connections", timeout=5, start=start),
                        "stress did not end with memory left out")
        self.assertEqual(self.count(d, r"stress mode off"), 1)
        self.assertNotIn("broke the protocol", d.log_text())


if __name__ == "__main__":
    ft.main(need_root=True)
