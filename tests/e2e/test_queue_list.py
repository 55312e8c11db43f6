#!/usr/bin/env python3
"""End-to-end: "ferryctl queue list" over several pages while mail keeps
coming in.  Each page is a range of the queue read from the cursor, so a
listing returns every message that was queued before it began exactly
once, in arrival order, whatever arrives meanwhile (a message accepted
during the listing is listed at most once); the daemon accepts mail
between the pages; and "ferryctl status" counts what is queued.  Needs
root (the daemon drops privileges)."""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

N = 1200                        # more than two pages of 500 (LIST_PAGE_MAX)
SESSIONS = 4


class ListWhileIntakeTest(ft.FerryTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # nothing is delivered: every message stays queued
        cls.d = ft.Ferry(delivery={"paused": True}).start()
        cls.qids = [None] * N
        cls.sent = []               # the later sessions' messages in order
        errors = []

        def fill(k):
            try:
                with cls.d.client() as c:
                    c.ehlo()
                    for i in range(k, N, SESSIONS):
                        cls.qids[i] = c.send_message(
                            "s%d@x.test" % i, ["r%d@dest.test" % i],
                            b"Subject: %d\r\n\r\nx\r\n" % i)
            except Exception as e:          # noqa: BLE001
                errors.append(e)

        ts = [threading.Thread(target=fill, args=(k,))
              for k in range(SESSIONS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            cls.d.stop()
            raise errors[0]

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        super().tearDownClass()

    def tearDown(self):
        self.dump_logs_if_failed(self.d)
        super().tearDown()

    def listed_while_sending(self, list_once):
        """Runs list_once() while one session sends message after
        message; returns what it listed, the qids accepted before the
        listing began, those accepted after it began (in order), and how
        many of those were accepted before it ended."""
        stop = threading.Event()
        started = threading.Event()
        before, during, errors = [], [], []
        listing = threading.Event()

        def send():
            try:
                with self.d.client() as c:
                    c.ehlo()
                    i = 0
                    while not stop.is_set():
                        q = c.send_message("late%d@y.test" % i,
                                           ["late@dest.test"],
                                           b"Subject: late\r\n\r\nx\r\n")
                        (during if listing.is_set() else before).append(q)
                        started.set()
                        i += 1
            except Exception as e:          # noqa: BLE001
                errors.append(e)
                started.set()

        t = threading.Thread(target=send)
        t.start()
        try:
            self.assertTrue(started.wait(30))
            listing.set()
            got = list_once()
            ended = len(during)
        finally:
            stop.set()
            t.join()
        self.assertEqual(errors, [])
        return got, before, during, ended

    def assert_once_each(self, ids, before, during):
        """ids lists each message queued before the listing (the class's
        first N, what earlier tests sent, before) exactly once, and of
        those sent during it (during) each at most once, after the
        others; the messages one session sent come in the order sent."""
        known = type(self).sent
        self.assertEqual(len(ids), len(set(ids)), "a message listed twice")
        want = set(self.qids) | set(known) | set(before)
        self.assertEqual(set(ids) & want, want)
        extra = [q for q in ids if q not in want]
        self.assertTrue(set(extra) <= set(during), extra[:5])
        self.assertEqual(ids[len(want):], extra)
        late = [q for q in ids if q in set(known + before + during)]
        self.assertEqual(late, [q for q in known + before + during
                                if q in set(ids)])
        type(self).sent = known + before + during

    def test_whole_listing_while_mail_comes_in(self):
        t = {}

        def whole():
            t0 = time.monotonic()
            doc = self.d.ctl_json("queue", "list")
            t["took"] = time.monotonic() - t0
            self.assertTrue(doc["ok"], doc)
            self.assertIsNone(doc["next"])
            return [m["id"] for m in doc["messages"]]

        ids, before, during, _ = self.listed_while_sending(whole)
        self.assertGreater(len(ids), N)
        self.assert_once_each(ids, before, during)

    def test_small_pages_while_mail_comes_in(self):
        pages = []

        def paged():
            got, after = [], None
            while True:
                args = ["--limit", "50"]
                if after is not None:
                    args += ["--after", after]
                doc = self.d.ctl_json("queue", "list", *args)
                self.assertTrue(doc["ok"], doc)
                self.assertLessEqual(len(doc["messages"]), 50)
                pages.append(len(doc["messages"]))
                got += [m["id"] for m in doc["messages"]]
                after = doc["next"]
                if after is None:
                    return got

        ids, before, during, ended = self.listed_while_sending(paged)
        self.assertGreaterEqual(len(pages), N // 50)
        self.assert_once_each(ids, before, during)
        # the daemon took mail between the pages: messages were accepted
        # while the pages were asked for, one at a time (more than one:
        # the first may have had its 250 just before the listing began)
        self.assertGreater(ended, 1)

    def test_status_counts_the_queue(self):
        doc = self.d.ctl_json("status")
        self.assertTrue(doc["ok"], doc)
        listed = self.d.ctl_json("queue", "list")["messages"]
        q = doc["queue"]
        self.assertGreaterEqual(q["messages"], N)
        # nothing comes in, is delivered or removed meanwhile
        self.assertEqual(q["messages"], len(listed))
        self.assertEqual(q["active"], q["messages"])
        self.assertEqual(q["hold"], 0)
        self.assertEqual(q["recipients_pending"], q["messages"])

    def test_silent_client_does_not_hold_the_runner(self):
        """A ferryctl that connected but has not sent its request yet
        waits in the runner's poll set: mail and other requests are
        served meanwhile (the runner used to wait for the request, up to
        2 s), and the connection is closed unanswered after 2 s."""
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(c.close)
        c.connect(self.d.ctl_socket)
        time.sleep(0.1)                 # accepted by now
        t0 = time.monotonic()
        q = self.d.send(b"Subject: meanwhile\r\n\r\nx\r\n")
        doc = self.d.ctl_json("status")
        took = time.monotonic() - t0
        self.assertTrue(doc["ok"], doc)
        self.assertLess(took, 1.5)
        type(self).sent = type(self).sent + [q]
        c.settimeout(10)
        self.assertEqual(c.recv(100), b"")
        self.assertGreater(time.monotonic() - t0, 1.5)


if __name__ == "__main__":
    unittest.main()
