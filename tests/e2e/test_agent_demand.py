#!/usr/bin/env python3
"""End-to-end: delivery agents run only while there is mail to send.

- At rest no agent runs; a message is at the smarthost promptly all the
  same (the runner asks the master for an agent, which starts one at
  once), far sooner than the 30 s the scheduler may sleep or a retry
  step.  How prompt is measured by tests/bench/rest.sh, not here: about
  0.05 s on a quiet machine, but an agent's start (exec, configuration,
  TLS contexts) took seconds with the load average at 40.
- An agent free for delivery { agent_idle } retires; the next message
  starts another, again at once.
- An agent kept busy never retires, however short agent_idle is.
- Messages that arrive just as an agent retires are never deferred and
  never wait a retry step (an agent's retirement is no delivery failure).

The retry step is 60 s here, so any deferral would show as a delay far
beyond what these tests wait.  Needs root (the daemon drops
privileges)."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"
RETRY = 60                      # a deferral would wait this long
PROMPT = 10.0                   # 250 to the smarthost's 250, agent start
                                # included: well under MAX_WAIT_MS (30 s)
                                # and a retry step, on a loaded machine


class AgentDemandCase(ft.FerryTestCase):

    def smarthost(self):
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        return s

    def ferry_to(self, dest, **delivery):
        d = {"retry_schedule": [RETRY], "connect_timeout": 5,
             "max_lifetime": 3600, "connection_idle": 1}
        d.update(delivery)
        routes = [{"name": "dest", "domains": ["dest.test"],
                   "hosts": [dest.address], "tls": "none"}]
        return self.start_ferry(routes=routes, delivery=d)

    def send_timed(self, d, s, n):
        """The n-th message (1-based) to the smarthost; returns the
        seconds from its 250 to the smarthost holding it."""
        d.send(b"Subject: on demand %d\r\n\r\nbody\r\n" % n,
               sender=SENDER, rcpts=[RCPT])
        t0 = time.monotonic()
        s.wait_messages(n, RETRY / 2)
        return time.monotonic() - t0

    def assert_nothing_deferred(self, d):
        text = d.log_text()
        self.assertNotIn("status=deferred", text)
        self.assertNotIn("go back to the queue", text)
        self.assertTrue(ft.wait_for(lambda: d.count("recipient") == 0, 5),
                        "recipients left in the queue")


class OnDemandTest(AgentDemandCase):

    def test_none_at_rest_started_on_demand_retired_when_idle(self):
        s = self.smarthost()
        d = self.ferry_to(s, agent_idle=2)
        # at rest: workers, runner, anvil; not one agent
        self.assertTrue(ft.wait_for(lambda: d.workers() and d.runners(),
                                    10))
        time.sleep(1.0)
        self.assertEqual(d.agents(), [], "an agent runs with no mail")
        took = self.send_timed(d, s, 1)
        self.assertLess(took, PROMPT, "first delivery took %.3f s" % took)
        self.assertEqual(len(d.agents()), 1)
        # idle for agent_idle (2 s): it retires, and nothing replaces it
        self.assertTrue(ft.wait_for(lambda: d.agents() == [], 10),
                        "the idle agent did not retire")
        time.sleep(1.0)
        self.assertEqual(d.agents(), [], "an agent came back without mail")
        # the next message starts another, at once
        took = self.send_timed(d, s, 2)
        self.assertLess(took, PROMPT, "second delivery took %.3f s" % took)
        self.assert_nothing_deferred(d)

    def test_busy_agent_does_not_retire(self):
        s = self.smarthost()
        s.stall_at("eod", 0.5)          # every job lasts a while
        d = self.ferry_to(s, agents=1, agent_idle=3)
        took = self.send_timed(d, s, 1)
        self.assertLess(took, PROMPT)
        first = d.agents()
        self.assertEqual(len(first), 1)
        # two clients send back to back, so that mail is always waiting
        # for the one agent: about 0.5 s a job, 16 jobs, far longer than
        # agent_idle, and never idle
        seen, errors = set(first), []

        def client(k):
            try:
                for i in range(8):
                    d.send(b"Subject: busy %d.%d\r\n\r\nx\r\n" % (k, i),
                           sender=SENDER, rcpts=[RCPT])
            except Exception as e:      # noqa: BLE001 - reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=client, args=(k,))
                   for k in range(2)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or len(s.messages) < 17:
            seen.update(d.agents())
            if not s.wait(lambda: len(s.messages) >= 17, 0.1) and \
                    not any(t.is_alive() for t in threads):
                s.wait_messages(17, RETRY / 2)
        self.assertEqual(errors, [])
        seen.update(d.agents())
        self.assertEqual(seen, set(first),
                         "a busy agent was replaced: %s" % sorted(seen))
        self.assert_nothing_deferred(d)

    def test_mail_crossing_a_retirement_waits_no_retry(self):
        s = self.smarthost()
        d = self.ferry_to(s, agent_idle=1)
        # gaps around agent_idle: some messages arrive just as the agent
        # retires; each is delivered promptly, none is deferred
        gaps = [0.9, 1.0, 1.05, 1.1, 0.95, 1.0, 1.02, 1.15]
        worst = self.send_timed(d, s, 1)
        for n, gap in enumerate(gaps, start=2):
            time.sleep(gap)
            worst = max(worst, self.send_timed(d, s, n))
        self.assertLess(worst, RETRY / 4,
                        "a message waited %.1f s" % worst)
        self.assert_nothing_deferred(d)


if __name__ == "__main__":
    ft.main(need_root=True)
