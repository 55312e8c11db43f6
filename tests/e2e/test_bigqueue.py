#!/usr/bin/env python3
"""End-to-end: a big queue stays responsive, at small counts.  A next hop
that refuses connections is marked down after a few failures in a row and
its mail deferred in bulk without a connection each ("delivery
temporarily suspended"), one probe per retry step; when a probe reaches
it again, the mail deferred meanwhile is delivered at once, not at its
next retry.  Under a modest load with agents free, each message's first
attempt follows its commit within a second.  The queue database gives
back the space of a drained backlog (incremental vacuum).

Connection attempts are counted from the attempt history: a real one
records "connect to ...", a suspended one "delivery temporarily
suspended: connect to ...".  Needs root (the daemon drops privileges)."""

import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
HOP_DOWN_AFTER = 3              # include/hop_health.h


class BigQueueCase(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.servers = []

    def tearDown(self):
        if self._failed():
            for s in self.servers:
                sys.stderr.write("\n[%s] smarthost %s: %s\n" % (
                    self.id(), s.address, s.summary()))
        super().tearDown()

    def smarthost(self, **kw):
        s = sh.SmartHost(**kw).start()
        self.servers.append(s)
        self.addCleanup(s.stop)
        return s

    def ferry_to(self, dest, retry, agents=4, per_destination=None,
                 **options):
        rs = [{"name": "dest", "domains": ["dest.test"],
               "hosts": [dest.address], "tls": "none"}]
        d = {"retry_schedule": list(retry), "connect_timeout": 5,
             "client_command_timeout": 10, "client_data_timeout": 30,
             "max_lifetime": 3600, "agents": agents}
        if per_destination is not None:
            d["per_destination"] = per_destination
        return self.start_ferry(routes=rs, delivery=d, **options)

    @staticmethod
    def connects(d):
        return d.count("attempt", "reply LIKE 'connect to %'")

    @staticmethod
    def suspended(d):
        return d.count("attempt", "reply LIKE 'delivery temporarily "
                       "suspended: connect to %'")


class DeadNextHopTest(BigQueueCase):

    def test_marked_down_then_one_probe_per_step(self):
        s = self.smarthost()
        s.pause()                           # connections are refused
        d = self.ferry_to(s, retry=[1])
        n = 20
        for i in range(n):
            d.send(b"Subject: dead %d\r\n\r\nx\r\n" % i, sender=SENDER,
                   rcpts=["r%d@dest.test" % i])
        self.assertIsNotNone(d.wait_log(r"next hop route:dest is down "
                                        r"after 3 connection failures",
                                        WAIT))
        # every message had its first attempt, most without a connection
        self.assertTrue(ft.wait_for(
            lambda: self.connects(d) + self.suspended(d) >= n, WAIT, 0.1))
        first = self.connects(d)
        self.assertGreaterEqual(first, HOP_DOWN_AFTER)
        self.assertLess(first, n // 2)
        self.assertIsNotNone(d.wait_log(
            r"to=<r\d+@dest\.test>, relay=none, .*dsn=4\.4\.1, "
            r"status=deferred \(delivery temporarily suspended: connect "
            r"to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused\)"
            % s.port, 1))
        # several retry steps: one probe (one connection) per step, while
        # every message keeps being retried without one
        t0 = time.monotonic()
        before = self.suspended(d)
        time.sleep(6)
        elapsed = time.monotonic() - t0
        probes = self.connects(d) - first
        self.assertLessEqual(probes, int(elapsed) + 2,
                             "%d connections in %.1f s" % (probes, elapsed))
        self.assertGreaterEqual(self.suspended(d) - before, n)
        self.assertEqual(d.count("message"), n)
        self.assertEqual(s.sessions, [])

    def test_probe_brings_it_back_and_held_mail_goes_at_once(self):
        s = self.smarthost()
        s.pause()
        # the second retry step is long: only the hop's return can bring
        # the mail deferred in bulk back in time
        d = self.ferry_to(s, retry=[3, 600])
        n = 10
        for i in range(n):
            d.send(b"Subject: back %d\r\n\r\nx\r\n" % i, sender=SENDER,
                   rcpts=["r%d@dest.test" % i])
        self.assertIsNotNone(d.wait_log(r"next hop route:dest is down",
                                        WAIT))
        self.assertTrue(ft.wait_for(
            lambda: self.connects(d) + self.suspended(d) >= n, WAIT, 0.1))
        s.resume()
        self.assertIsNotNone(d.wait_log(r"probing next hop route:dest",
                                        WAIT))
        self.assertIsNotNone(d.wait_log(
            r"next hop route:dest is back; \d+ recipient\(s\) deferred "
            r"while it was down are due now", WAIT))
        s.wait_messages(n, WAIT)
        self.assertTrue(ft.wait_for(lambda: d.count("message") == 0, WAIT,
                                    0.1))
        got = sorted(a for m in s.messages for a in m.recipients)
        self.assertEqual(got, sorted("r%d@dest.test" % i for i in range(n)))

    def test_flush_tries_a_down_hop_again(self):
        s = self.smarthost()
        s.pause()
        d = self.ferry_to(s, retry=[600])    # no probe before 600 s
        n = 6
        for i in range(n):
            d.send(b"Subject: flush %d\r\n\r\nx\r\n" % i, sender=SENDER,
                   rcpts=["r%d@dest.test" % i])
        self.assertIsNotNone(d.wait_log(r"next hop route:dest is down",
                                        WAIT))
        self.assertTrue(ft.wait_for(
            lambda: self.connects(d) + self.suspended(d) >= n, WAIT, 0.1))
        s.resume()
        p = d.ctl("queue", "flush")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNotNone(d.wait_log(
            r"1 next hop\(s\) marked down are tried again", WAIT))
        s.wait_messages(n, WAIT)
        self.assertTrue(ft.wait_for(lambda: d.count("message") == 0, WAIT,
                                    0.1))

    def test_held_mail_waits_for_the_probe_and_the_runner_idles(self):
        # mail for a hop down a while waits for the hop's next probe, not
        # for each short step of its own schedule: with a few thousand
        # messages deferred, the runner does nothing until then
        s = self.smarthost()
        s.pause()
        steps = 6                       # short steps, then a long one
        d = self.ferry_to(s, retry=[1] * steps + [600])
        for i in range(HOP_DOWN_AFTER):
            d.send(b"Subject: first %d\r\n\r\nx\r\n" % i,
                   sender=SENDER, rcpts=["f%d@dest.test" % i])
        self.assertIsNotNone(d.wait_log(r"next hop route:dest is down",
                                        WAIT))
        # the probes fail one a second until the next waits 600 s; a
        # message more now and then, as those queued run out of short
        # steps of their own, gives each probe a message to go with
        first = HOP_DOWN_AFTER
        end = time.monotonic() + WAIT
        while (self.connects(d) < HOP_DOWN_AFTER + steps and
               time.monotonic() < end):
            d.send(b"Subject: first %d\r\n\r\nx\r\n" % first,
                   sender=SENDER, rcpts=["f%d@dest.test" % first])
            first += 1
            time.sleep(0.5)
        self.assertEqual(self.connects(d), HOP_DOWN_AFTER + steps)
        n = 2000
        with d.client() as c:
            c.ehlo()
            for i in range(n):
                c.send_message(SENDER, ["r%d@dest.test" % i],
                               b"Subject: held\r\n\r\nx\r\n")
        self.assertTrue(ft.wait_for(
            lambda: d.count("recipient", "attempts = 0") == 0, WAIT, 0.2))
        [runner] = d.runners()

        def cpu():
            with open("/proc/%d/stat" % runner) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / \
                os.sysconf("SC_CLK_TCK")

        before, c0, t0 = self.suspended(d), cpu(), time.monotonic()
        time.sleep(5)
        used, elapsed = cpu() - c0, time.monotonic() - t0
        # their first deferral is their only one before the probe
        self.assertEqual(self.suspended(d), before)
        self.assertEqual(d.count("recipient", "attempts > 1 AND "
                                 "address LIKE 'r%'"), 0)
        self.assertEqual(self.connects(d), HOP_DOWN_AFTER + steps)
        self.assertLess(used / elapsed, 0.03,
                        "runner CPU %.2f s over %.1f s" % (used, elapsed))
        self.assertEqual(d.count("message"), n + first)

    def test_held_mail_comes_due_together_with_the_probe(self):
        # mail deferred while the hop is down comes due on the probes'
        # grid, all of it at once with a probe, not each message at its
        # own time in a trickle of wake-ups and commits along the step;
        # and a pass over it that takes a while still brings it due
        # with the next probe (its step counts from when it came due)
        s = self.smarthost()
        s.pause()
        d = self.ferry_to(s, retry=[2])
        for i in range(HOP_DOWN_AFTER):
            d.send(b"Subject: first %d\r\n\r\nx\r\n" % i,
                   sender=SENDER, rcpts=["f%d@dest.test" % i])
        self.assertIsNotNone(d.wait_log(r"next hop route:dest is down",
                                        WAIT))
        # in three groups over more than half the step, so that mail on
        # its own schedule would come due spread over that time
        n = 300
        with d.client() as c:
            c.ehlo()
            for i in range(n):
                if i % 100 == 0 and i > 0:
                    time.sleep(0.6)
                c.send_message(SENDER, ["r%d@dest.test" % i],
                               b"Subject: held\r\n\r\nx\r\n")
        self.assertTrue(ft.wait_for(
            lambda: d.count("recipient", "attempts = 0") == 0, WAIT, 0.1))
        probes = self.connects(d)

        def together():
            r = d.query("SELECT max(next_attempt) - min(next_attempt)"
                        " AS spread, sum(next_attempt <= ?) AS due,"
                        " min(attempts) AS least"
                        " FROM recipient WHERE state = 'pending'",
                        (time.time(),))[0]
            return (r["spread"], r["due"], r["least"])

        # two probes on, every held recipient waits for the same probe
        # (within the few milliseconds a turn of the runner takes)
        self.assertTrue(ft.wait_for(
            lambda: self.connects(d) >= probes + 2, WAIT, 0.1))
        self.assertTrue(ft.wait_for(
            lambda: together()[0] < 0.25 and together()[1] == 0, WAIT,
            0.05),
            "held mail due at %r" % (d.query(
                "SELECT next_attempt, count(*) AS n, min(attempts) AS a,"
                " max(attempts) AS b, min(address) AS x FROM recipient"
                " WHERE state = 'pending' GROUP BY next_attempt"),))
        self.assertGreaterEqual(together()[2], 2)
        self.assertEqual(d.count("message"), n + HOP_DOWN_AFTER)

    def test_server_refusal_does_not_mark_it_down(self):
        # a 4xx from a server that answers is not a dead next hop
        s = self.smarthost()
        s.reply_at("mail", "451 4.3.0 try later")
        d = self.ferry_to(s, retry=[1])
        for i in range(6):
            d.send(b"Subject: 451 %d\r\n\r\nx\r\n" % i, sender=SENDER,
                   rcpts=["r%d@dest.test" % i])
        self.assertTrue(ft.wait_for(
            lambda: d.count("attempt") >= 12, WAIT, 0.1))
        self.assertNotIn("is down", d.log_text())
        self.assertEqual(self.suspended(d), 0)


class QueueListTest(BigQueueCase):
    """More messages than one page (500): listed whole, page after page;
    filters and paging for the JSON form."""

    N = 600

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rs = [{"name": "dest", "domains": ["dest.test"],
               "hosts": ["127.0.0.1:9"], "tls": "none"},
              {"name": "other", "domains": ["other.test"],
               "hosts": ["127.0.0.1:9"], "tls": "none"}]
        cls.d = ft.Ferry(routes=rs, delivery={"paused": True}).start()
        cls.qids = []
        with cls.d.client() as c:
            c.ehlo()
            for i in range(cls.N):
                if i % 2 == 0:
                    q = c.send_message("a%d@x.test" % i, ["r@dest.test"],
                                       b"Subject: a\r\n\r\nx\r\n")
                else:
                    q = c.send_message("b%d@y.test" % i, ["S@other.test"],
                                       b"Subject: b\r\n\r\nx\r\n")
                cls.qids.append(q)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        super().tearDownClass()

    def tearDown(self):
        self.dump_logs_if_failed(self.d)
        super().tearDown()

    def ids(self, *args):
        doc = self.d.ctl_json("queue", "list", *args)
        self.assertTrue(doc["ok"], doc)
        return [m["id"] for m in doc["messages"]], doc

    def test_lists_them_all_in_pages(self):
        ids, doc = self.ids()
        self.assertEqual(ids, self.qids)
        self.assertIsNone(doc["next"])
        self.assertFalse(doc["truncated"])
        p = self.d.ctl("queue", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("-- %d message(s), %d recipient(s) pending"
                      % (self.N, self.N), p.stdout)
        for q in (self.qids[0], self.qids[499], self.qids[500],
                  self.qids[-1]):
            self.assertIn(q, p.stdout)

    def test_filters(self):
        ids, _ = self.ids("--sender", "A1")        # part, any case
        want = [q for i, q in enumerate(self.qids)
                if i % 2 == 0 and "a1" in "a%d@x.test" % i]
        self.assertEqual(ids, want)
        self.assertGreater(len(want), 50)
        ids, _ = self.ids("--rcpt", "s@OTHER.test")
        self.assertEqual(ids, self.qids[1::2])
        ids, _ = self.ids("--route", "dest")
        self.assertEqual(ids, self.qids[0::2])
        ids, _ = self.ids("--route", "other", "--sender", "1@Y")
        self.assertEqual(ids, [q for i, q in enumerate(self.qids)
                               if i % 2 == 1 and "1@y" in "b%d@y.test" % i])
        ids, _ = self.ids("--route", "mx")
        self.assertEqual(ids, [])
        ids, _ = self.ids("--older-than", "3600")
        self.assertEqual(ids, [])
        ids, _ = self.ids("--age", "0")
        self.assertEqual(ids, self.qids)
        ids, _ = self.ids("--state", "deferred")   # delivery is paused
        self.assertEqual(ids, [])
        held = self.qids[7]
        self.assertEqual(self.d.ctl("queue", "hold", held).returncode, 0)
        try:
            ids, _ = self.ids("--state", "hold")
            self.assertEqual(ids, [held])
            ids, _ = self.ids("--state", "active")
            self.assertEqual(ids, [q for q in self.qids if q != held])
        finally:
            self.d.ctl("queue", "release", held)
        p = self.d.ctl("queue", "list", "--state", "bogus")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("usage: queue list", p.stderr)

    def test_json_paging(self):
        got, after, pages = [], None, 0
        while True:
            args = ["--limit", "128"]
            if after is not None:
                args += ["--after", after]
            ids, doc = self.ids(*args)
            pages += 1
            self.assertLessEqual(len(ids), 128)
            got += ids
            after = doc["next"]
            if after is None:
                break
            self.assertEqual(len(ids), 128)
            self.assertTrue(doc["truncated"])
        self.assertEqual(got, self.qids)
        self.assertEqual(pages, 5)
        # a filter pages the same way
        ids, doc = self.ids("--limit", "10", "--rcpt", "other.test")
        self.assertEqual(ids, self.qids[1:20:2])
        ids2, _ = self.ids("--limit", "10", "--rcpt", "other.test",
                           "--after", doc["next"])
        self.assertEqual(ids2, self.qids[21:40:2])


class DispatchTest(BigQueueCase):

    def test_first_attempt_follows_commit(self):
        """200 messages over 10 sessions at once, agents free (one per
        session, none held back by the per-destination limit): each
        one's first delivery attempt (its transaction at the smarthost)
        starts within 1 s of the 250 that queued it, not at a later
        poll."""
        s = self.smarthost()
        d = self.ferry_to(s, retry=[60], agents=10, per_destination=10)
        sessions, per_session = 10, 20
        queued = {}                          # marker: time of the 250
        errors = []
        lock = threading.Lock()

        def client(k):
            try:
                with d.client() as c:
                    c.ehlo("client.example")
                    for i in range(per_session):
                        marker = "s%d-m%d" % (k, i)
                        c.send_message(SENDER, ["r%d@dest.test" % k],
                                       b"Subject: %s\r\n\r\nx\r\n"
                                       % marker.encode())
                        at = time.time()
                        with lock:
                            queued[marker] = at
                    c.cmd("QUIT")
            except Exception as e:           # reported below
                errors.append(e)
        threads = [threading.Thread(target=client, args=(k,))
                   for k in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(4 * WAIT)
        self.assertEqual(errors, [])
        total = sessions * per_session
        self.assertEqual(len(queued), total)
        s.wait_messages(total, 2 * WAIT)
        first = {}
        with s.lock:
            for t in s.transactions:
                m = re.search(rb"Subject: (s\d+-m\d+)", t.data or b"")
                if m is not None:
                    key = m.group(1).decode()
                    first[key] = min(first.get(key, t.started), t.started)
        self.assertEqual(sorted(first), sorted(queued))
        late = sorted((first[k] - queued[k], k) for k in queued
                      if first[k] - queued[k] > 1.0)
        self.assertEqual(late, [], "%d of %d messages had their first "
                         "attempt more than 1 s after their 250 (the "
                         "latest %.2f s)" % (len(late), total,
                                             late[-1][0] if late else 0))


class VacuumTest(BigQueueCase):

    def test_file_shrinks_after_draining(self):
        s = self.smarthost()
        s.pause()
        d = self.ferry_to(s, retry=[1])
        self.assertEqual(d.query("PRAGMA auto_vacuum")[0]["auto_vacuum"], 2)
        body = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 2600
        n = 40                              # about 8 MiB queued
        for i in range(n):
            d.send(body, sender=SENDER, rcpts=["r%d@dest.test" % i])
        self.assertTrue(ft.wait_for(lambda: os.path.getsize(d.db_path) >
                                    4 * 1024 * 1024, WAIT, 0.1),
                        "queue.db is %d bytes" % os.path.getsize(d.db_path))
        s.resume()
        s.wait_messages(n, 2 * WAIT)
        self.assertTrue(ft.wait_for(lambda: d.count("message") == 0, WAIT,
                                    0.1))
        peak = max(os.path.getsize(d.db_path), 4 * 1024 * 1024)
        self.assertTrue(ft.wait_for(lambda: os.path.getsize(d.db_path) <
                                    1024 * 1024, WAIT, 0.1),
                        "queue.db is still %d bytes (peak %d)"
                        % (os.path.getsize(d.db_path), peak))
        # the last vacuum steps may still be on their way (10 ms apart)
        self.assertTrue(ft.wait_for(
            lambda: d.query("PRAGMA freelist_count")[0]["freelist_count"] == 0,
            WAIT, 0.1), "free pages left: %d" %
            d.query("PRAGMA freelist_count")[0]["freelist_count"])


if __name__ == "__main__":
    ft.main(need_root=True)
