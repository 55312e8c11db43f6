#!/usr/bin/env python3
"""End-to-end: rate shaping of a route (ferry.conf(5), rate_per_second and
the rest).  The test smarthost records when each message arrives, how
many sessions were open at once and what each transaction carried:
rate_per_second holds its rate within 5 % (the figure is printed); mail
over rate_per_minute waits in the queue without an attempt or a
deferral (held out of the due mail when far from its turn), then goes; the hour and day counts survive a restart;
max_connections = 1 holds one connection at once; messages_per_connection
and recipients_per_message cut connections and transactions; a server's
452 4.5.3 gets the rest of the recipients in a new transaction on the
same connection; a throttling reply (451 4.7.1 "rate limit") halves the
route's rate, status shows it, and it recovers.  Needs root."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from test_delivery import DeliveryCase, WAIT  # noqa: E402

SENDER = "sender@origin.test"
BODY = b"Subject: shaped\r\n\r\nbody\r\n"


class ShapingTest(DeliveryCase):

    def shaped(self, server, **shaping):
        """A daemon whose route "dest" goes to server with the shaping
        options given; generous per-client limits (the load generator
        is one client)."""
        return self.ferry_to(server, policy=shaping,
                             limits={"message_rate": 100000,
                                     "connection_rate": 100000})

    def send_many(self, d, n, rcpts=("r@dest.test",)):
        """n messages in one session; their queue ids."""
        qids = []
        with d.client() as c:
            c.ehlo("client.example")
            for _ in range(n):
                qids.append(c.send_message(SENDER, list(rcpts), BODY))
            c.cmd("QUIT")
        return qids

    def route_status(self, d, name="dest"):
        st = d.ctl_json("status")
        for r in st.get("shaping", []):
            if r["route"] == name:
                return r
        self.fail("no shaping status for route %s: %r" % (
            name, st.get("shaping")))

    def no_deferral(self, d):
        self.assertNotIn("status=deferred", d.log_text())
        self.assertEqual(d.count("attempt", "status = 'deferred'"), 0)

    # ------------------------------------------------------------ rates

    def test_rate_per_second_holds_20(self):
        s = self.smarthost()
        d = self.shaped(s, rate_per_second=20)
        self.send_many(d, 300)
        s.wait_messages(300, 60)
        times = s.arrival_times()
        span = times[-1] - times[0]
        rate = (len(times) - 1) / span
        print("\nrate_per_second = 20: %d messages in %.2f s, %.2f/s "
              "(%.1f %% of the configured rate)" % (
                  len(times), span, rate, 100 * rate / 20),
              file=sys.stderr)
        self.assertAlmostEqual(rate, 20, delta=1.0)
        self.no_deferral(d)

    def test_rate_per_minute_waits_without_deferral(self):
        s = self.smarthost()
        d = self.shaped(s, rate_per_minute=60)
        qids = self.send_many(d, 70)
        s.wait_messages(60, WAIT)
        # the quota is spent: the rest wait in the queue, due, with no
        # attempt counted and no deferral
        waiting = [q for q in qids if d.count("message", "qid = ?", (q,))]
        self.assertGreaterEqual(len(waiting), 7, "the quota let through "
                                "%d" % len(s.messages))
        held = 0
        for q in waiting:
            for r in self.rcpt_rows(d, q):
                self.assertEqual(r["attempts"], 0, r)
                self.assertIsNone(r["last_attempt"], r)
                # those far from their turn are held out of the due
                # mail (so that they do not hold other routes' mail up)
                if r["next_attempt"] > time.time() + 1:
                    held += 1
        self.assertGreater(held, 0)
        self.assertTrue(ft.wait_for(
            lambda: self.route_status(d)["waiting"] > 0, 5))
        st = self.route_status(d)
        self.assertLess(st["quotas"]["minute"]["tokens"], 2)
        self.assertEqual(st["quotas"]["minute"]["limit"], 60)
        shown = d.ctl("queue", "show", waiting[-1])
        self.assertNotIn("deferred", shown.stdout)
        self.log_line(d, r"route dest: over its quota \(rate_per_minute "
                         r"60\); its mail waits in the queue")
        # one token a second: the rest arrive within the next seconds
        s.wait_messages(70, 30)
        for q in qids:
            self.gone(d, q)
        self.no_deferral(d)
        self.log_line(d, r"route dest: within its quota again")
        self.assertEqual(d.log_text().count("route dest: over its quota"),
                         1)

    def test_hour_and_day_counts_survive_restart(self):
        s = self.smarthost()
        d = self.shaped(s, rate_per_hour=1000, rate_per_day=5000)
        self.send_many(d, 20)
        s.wait_messages(20, WAIT)
        self.assertTrue(ft.wait_for(lambda: self.route_status(d)[
            "quotas"]["hour"]["tokens"] < 982, 5))
        d.stop(remove=False)
        d.start()
        st = self.route_status(d)
        # restarted: the counts were kept, not handed out again
        self.assertLess(st["quotas"]["hour"]["tokens"], 984)
        self.assertGreater(st["quotas"]["hour"]["tokens"], 975)
        self.assertLess(st["quotas"]["day"]["tokens"], 4982)
        self.log_line(d, r"route dest: hour count restored: 98\d of 1000 "
                         r"left")
        out = d.ctl("status").stdout
        self.assertRegex(out, r"shaping: dest: rate .*/s, 0 waiting, "
                              r"back-off level 0")
        self.assertRegex(out, r"tokens left:.* hour 98\d\.\d of 1000")
        self.assertRegex(out, r"tokens left:.* day 49\d\d\.\d of 5000")

    # ------------------------------------------- connections, transactions

    def test_max_connections_one(self):
        s = self.smarthost()
        s.stall_at("data", 0.05)    # each transaction takes a while
        d = self.shaped(s, max_connections=1)
        for i in range(4):          # four clients at once
            self.send_many(d, 5)
        s.wait_messages(20, WAIT)
        self.assertEqual(s.max_concurrent_sessions(), 1, s.summary())

    def test_messages_per_connection_five(self):
        s = self.smarthost()
        d = self.shaped(s, messages_per_connection=5, max_connections=1)
        self.send_many(d, 20)
        s.wait_messages(20, WAIT)
        self.assertTrue(ft.wait_for(lambda: all(
            x.ended is not None for x in s.sessions), 10))
        self.assertEqual([len(x.transactions) for x in s.sessions],
                         [5, 5, 5, 5], s.summary())
        for x in s.sessions:
            self.assertEqual(x.verbs[-1], "QUIT", x)

    def test_recipients_per_message_three(self):
        s = self.smarthost()
        d = self.shaped(s, recipients_per_message=3)
        rcpts = ["r%d@dest.test" % i for i in range(10)]
        qid = d.send(BODY, sender=SENDER, rcpts=rcpts)
        s.wait_messages(4, WAIT)
        self.gone(d, qid)
        got = [m.recipients for m in s.messages]
        self.assertEqual(sorted(len(r) for r in got), [1, 3, 3, 3])
        self.assertEqual(sorted(a for r in got for a in r), sorted(rcpts))
        self.assertEqual(len(s.messages), 4)
        self.no_deferral(d)

    def test_452_too_many_recipients_new_transaction(self):
        s = self.smarthost()
        s.max_rcpts = 2
        d = self.ferry_to(s)
        rcpts = ["r%d@dest.test" % i for i in range(5)]
        qid = d.send(BODY, sender=SENDER, rcpts=rcpts)
        s.wait_messages(3, WAIT)
        self.gone(d, qid)
        self.assertEqual([m.recipients for m in s.messages],
                         [rcpts[0:2], rcpts[2:4], rcpts[4:5]])
        # the same connection, the same message each time
        self.assertEqual(len({id(m.session) for m in s.messages}), 1)
        self.assertEqual(len({m.data for m in s.messages}), 1)
        self.no_deferral(d)

    # ------------------------------------------------------------ throttling

    def test_throttle_backs_off_and_recovers(self):
        s = self.smarthost()
        d = self.shaped(s, rate_per_second=20)
        self.send_many(d, 230)
        s.wait_messages(30, WAIT)
        s.reply_at("mail", "451 4.7.1 Rate limit exceeded, slow down",
                   times=1)
        self.log_line(d, r"route dest: throttled by the next hop, backing "
                         r"off to level 1 \(10 message\(s\)/s")
        throttled = time.time()
        st = self.route_status(d)
        self.assertEqual(st["backoff_level"], 1)
        self.assertAlmostEqual(st["rate"], 10, delta=0.01)
        self.assertIn("back-off level 1", d.ctl("status").stdout)
        # after the pause, half the rate
        time.sleep(7)
        slow = [t for t in s.arrival_times()
                if throttled + 1.5 <= t < throttled + 6.5]
        print("\nthrottled: %.1f/s (configured 20/s)" % (len(slow) / 5.0),
              file=sys.stderr)
        self.assertLess(len(slow) / 5.0, 12.5)
        self.assertGreater(len(slow) / 5.0, 7.5)
        # ten quiet seconds after it: back to the configured rate
        self.log_line(d, r"route dest: no throttling for 10 s, back to "
                         r"its configured rates", timeout=15)
        recovered = time.time()
        self.assertEqual(self.route_status(d)["backoff_level"], 0)
        time.sleep(3)
        fast = [t for t in s.arrival_times()
                if recovered + 0.5 <= t < recovered + 2.5]
        print("recovered: %.1f/s" % (len(fast) / 2.0), file=sys.stderr)
        self.assertGreater(len(fast) / 2.0, 16)
        # the throttled message was deferred as usual, then delivered
        s.wait_messages(230, 30)

    def test_421_greeting_throttle_in_status_and_metrics(self):
        import test_metrics as tm
        s = self.smarthost()
        s.reply_at("greeting", "421 4.7.0 Too many connections, slow "
                   "down", times=1)
        route = self.route("dest", ["dest.test"], [s.address],
                           rate_per_minute=600, max_connections=4)
        d = tm.MetricsFerry(routes=[route], delivery={
            "retry_schedule": [1], "connect_timeout": 5}).start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        self.assertTrue(ft.wait_for(lambda: d.children("ferry-metrics"),
                                    10))
        qid = d.send(BODY, sender=SENDER, rcpts=["r@dest.test"])
        self.log_line(d, r"route dest: throttled by the next hop, backing "
                         r"off to level 1 \(5 message\(s\)/s, 2 "
                         r"connection\(s\)\), paused 1 s: host .*: 421 "
                         r"4\.7\.0 Too many connections")
        # deferred as usual by the 421, then sent
        s.wait_messages(1, WAIT)
        self.gone(d, qid)
        st = self.route_status(d)
        self.assertEqual(st["backoff_level"], 1)
        self.assertEqual(st["connections"], 2)
        self.assertEqual(st["throttles"], 1)

        def scrape():
            try:
                code, _, body = d.http("GET", "/metrics")
            except OSError:
                return None
            return body.decode() if code == 200 else None
        def settled():
            # the message went: nothing waits for the route (2 s after
            # the last wait it is said to wait no more)
            text = scrape()
            if text is None:
                return None
            samples = tm.check_exposition(self, text)
            return samples if tm.value(
                samples, "ferry_route_quota_waiting", route="dest") == 0 \
                else None
        samples = ft.wait_for(settled, WAIT, 0.2)
        self.assertIsNotNone(samples)
        self.assertEqual(tm.value(samples, "ferry_route_throttled",
                                  route="dest"), 1)
        self.assertEqual(tm.value(samples, "ferry_route_rate",
                                  route="dest"), 5)
        self.assertEqual(tm.value(samples, "ferry_route_throttles_total",
                                  route="dest"), 1)
        self.assertLess(tm.value(samples, "ferry_route_tokens",
                                 route="dest", window="minute"), 301)
        # ten quiet seconds: back to level 0
        self.log_line(d, r"route dest: no throttling for 10 s, back to "
                         r"its configured rates", timeout=20)


if __name__ == "__main__":
    ft.main(need_root=True)
