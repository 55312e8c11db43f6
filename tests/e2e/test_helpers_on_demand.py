#!/usr/bin/env python3
"""End-to-end: ferry-anvil and ferry-resolve run on demand (workers {
helper_idle }).  At start neither runs; the first session makes a worker
connect to their sockets, which the master holds, and the master starts
them: that session is served, its client gets a name, and the limits
apply (max_connections_per_client refuses the extra connection).  Once
no session has run for a while the workers let go of them, and after
helper_idle without a worker both leave, with no warning (an idle exit
is not a crash); the next session starts them again and is served.  A
reload while anvil is down gives the next anvil the new limits.  Needs
root (exit 77 otherwise)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import dnsserver as dnsmod  # noqa: E402

NAME = "client.test.example"
PTR = "1.0.0.127.in-addr.arpa"
IDLE = 2             # helper_idle, seconds
# a worker lets go after REST_HEAP_QUIET_MS (10 s) without a session,
# then the helpers wait IDLE: a generous bound on a loaded machine
GONE_WITHIN = 40
WAIT = 15
LIMITS = {"max_connections_per_client": 2, "connection_rate": 1000000,
          "message_rate": 1000000}


class HelpersOnDemandTest(ft.FerryTestCase):

    def dns(self):
        d = dnsmod.DNSServer({PTR: {"PTR": [NAME]},
                              NAME: {"A": ["127.0.0.1"]}}).start()
        self.addCleanup(d.stop)
        return d

    def quiet_ferry(self, limits=None, **options):
        """A daemon started without an SMTP session (the usual readiness
        probe opens one, which would start anvil)."""
        dns = self.dns()
        d = ft.Ferry(workers={"client_names": True,
                              "client_name_timeout": 2,
                              "helper_idle": IDLE},
                     delivery={"resolver": dns.address, "paused": True,
                               "retry_schedule": [1]},
                     limits=dict(limits or LIMITS), **options)
        d.quiet_start = True
        return self.started(d)

    def helpers(self, d):
        return d.anvils(), d.resolvers()

    def assert_none_for(self, d, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.assertEqual(self.helpers(d), ([], []),
                             "a helper runs without any session")
            time.sleep(0.1)

    def wait_gone(self, d):
        self.assertTrue(ft.wait_for(lambda: self.helpers(d) == ([], []),
                                    GONE_WITHIN, 0.2),
                        "helpers still running: %r" % (self.helpers(d),))

    def connect(self, d):
        c = d.client()
        self.addCleanup(c.close)
        return c

    def assert_limit_applies(self, d, allowed):
        """allowed connections are greeted, the next one is refused."""
        held = [self.connect(d) for _ in range(allowed)]
        for c in held:
            self.assertEqual(c.greeting.code, 220, c.greeting)
        with d.client() as c:
            self.assertEqual(c.greeting.code, 421, c.greeting)
            self.assertIn("too many connections from", c.greeting.text)
        for c in held:
            c.cmd("QUIT")
            c.close()

    def assert_no_helper_warnings(self, d):
        log = d.log_text()
        for bad in ("anvil (pid", "resolve (pid", "allowing connections",
                    "clients are unknown until"):
            self.assertNotIn(bad, log)

    def test_start_on_demand_leave_when_idle_and_start_again(self):
        d = self.quiet_ferry()
        # at start: neither, also a while later
        self.assert_none_for(d, 1.5)

        # a session starts both; the client is named and the limit holds
        start = d.log_size()
        self.assert_limit_applies(d, 2)
        self.assertEqual(len(d.anvils()), 1, "exactly one anvil")
        self.assertEqual(len(d.resolvers()), 1, "exactly one resolve")
        self.assertTrue(d.wait_log(r"connect from %s\[127\.0\.0\.1\]"
                                   % NAME.replace(".", r"\."),
                                   start=start),
                        "the first client got no name")

        # no session: the workers let go, the helpers leave
        self.wait_gone(d)
        self.assert_no_helper_warnings(d)

        # the next session starts them again and is served
        qid = d.send(b"Subject: again\r\n\r\nhello\r\n")
        self.assertTrue(qid)
        self.assertEqual(len(d.anvils()), 1)
        self.assertEqual(len(d.resolvers()), 1)
        self.assert_limit_applies(d, 2)
        self.assert_no_helper_warnings(d)

        # status while anvil is down: not running, no counts
        self.wait_gone(d)
        a = d.ctl_json("status").get("anvil")
        self.assertIsNotNone(a)
        self.assertFalse(a["running"])
        self.assertEqual((a["connections"], a["clients"]), (0, 0))

    def test_reload_while_anvil_down(self):
        # never started yet
        d = self.quiet_ferry(limits=dict(LIMITS,
                                         max_connections_per_client=1000))
        d.write_config(limits=LIMITS)
        start = d.log_size()
        d.signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"configuration reloaded from",
                                   start=start), "no reload")
        self.assertEqual(d.anvils(), [])
        self.assert_limit_applies(d, 2)

        # started, then left
        self.wait_gone(d)
        d.write_config(limits=dict(LIMITS, max_connections_per_client=3))
        start = d.log_size()
        d.signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"configuration reloaded from",
                                   start=start), "no reload")
        time.sleep(0.5)
        self.assertEqual(d.anvils(), [])
        self.assert_limit_applies(d, 3)
        self.assert_no_helper_warnings(d)

    def test_crash_is_still_a_crash(self):
        d = self.quiet_ferry()
        c = self.connect(d)
        self.assertEqual(c.greeting.code, 220)
        (pid,) = d.anvils()
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(d.wait_log(r"anvil \(pid %d\) died" % pid, WAIT))
        # the session still open reconnects; anvil comes back for it
        self.assertTrue(ft.wait_for(
            lambda: d.anvils() not in ([], [pid]), WAIT, 0.1),
            "anvil did not come back for a worker with a session")
        c.cmd("QUIT")


if __name__ == "__main__":
    ft.main(need_root=True)
