#!/usr/bin/env python3
"""End-to-end: ferry-anvil's figures in "ferryctl status" (text and
--json), as anvil tells the master and the master tells the queue runner.

- with limits.max_connections_per_client 2: two sessions held open show
  as 2 connections from 1 client; a third is refused 421 and counts as
  one client_connections limit hit; stress mode is off; once the sessions
  end the connections go back to 0;
- after anvil is killed the master restarts it and status shows it
  running again with its counts started over.
(The per-route figures and the stall state are tests/e2e/test_stall.py's.)
Needs root (the daemon drops privileges)."""

import json
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

WAIT = 15.0


class AnvilStatusTest(ft.FerryTestCase):

    def anvil(self, d):
        r = d.ctl("status", json_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout).get("anvil")

    def wait_anvil(self, d, pred, what):
        seen = []

        def ok():
            a = self.anvil(d)
            seen[:] = [a]
            return a is not None and pred(a)
        self.assertTrue(ft.wait_for(ok, WAIT, 0.2),
                        "anvil in status never %s: %r" % (what, seen))
        return seen[0]

    def test_connections_limit_hits_and_restart(self):
        d = self.start_ferry(limits={"max_connections_per_client": 2})
        a = self.wait_anvil(d, lambda a: a["running"], "running")
        self.assertFalse(a["stress"])
        self.assertEqual(a["stress_entered"], 0)
        self.assertEqual(a["limit_hits"], {
            "connections": 0, "client_connections": 0,
            "connection_rate": 0, "message_rate": 0, "auth_lockout": 0})

        held = []
        for _ in range(2):
            c = d.client()
            self.addCleanup(c.close)
            self.assertEqual(c.greeting.code, 220)
            held.append(c)
        a = self.wait_anvil(d, lambda a: a["connections"] == 2,
                            "at 2 connections")
        self.assertEqual(a["clients"], 1)
        with d.client() as c:
            self.assertEqual(c.greeting.code, 421)
        a = self.wait_anvil(
            d, lambda a: a["limit_hits"]["client_connections"] == 1,
            "at one client_connections hit")
        self.assertEqual(a["connections"], 2)
        self.assertEqual(a["limit_hits"]["connection_rate"], 0)
        st = d.ctl("status")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("anvil:   2 connection(s) from 1 client(s), stress "
                      "off (entered 0 time(s))", st.stdout)
        self.assertIn("limits met: connections 0, client_connections 1, "
                      "connection_rate 0, message_rate 0, auth_lockout 0",
                      st.stdout)

        for c in held:
            c.cmd("QUIT")
            c.close()
        self.wait_anvil(d, lambda a: a["connections"] == 0,
                        "back at 0 connections")

        # a new anvil: running again, its counts from zero
        pids = d.anvils()
        self.assertEqual(len(pids), 1)
        c = d.client()
        self.addCleanup(c.close)
        self.wait_anvil(d, lambda a: a["connections"] == 1,
                        "at 1 connection")
        os.kill(pids[0], signal.SIGKILL)
        self.assertTrue(ft.wait_for(
            lambda: d.anvils() and d.anvils() != pids, WAIT, 0.1))
        a = self.wait_anvil(d, lambda a: a["running"] and
                            a["connections"] == 0, "restarted")
        self.assertEqual(a["clients"], 0)
        c.close()


if __name__ == "__main__":
    ft.main(need_root=True)
