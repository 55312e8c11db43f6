#!/usr/bin/env python3
"""End-to-end: workers that hold many sessions at once, and the limits
that keep slow, idle and chatty clients from starving the relay.

Idle sessions beyond the number of worker processes do not delay a good
client; the idle limit inside DATA and BDAT; the junk command limit and
the session lifetime; a client that does not read its replies is
dropped; STARTTLS and implicit TLS sessions interleaved in one worker
without mixing their data; sessions_per_worker = 1 keeps one session per
process (and the master logs when the pool is full)."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from smarthost import Certs  # noqa: E402

HOST = "pressure.ferry-test.example"


def idle_clients(ferry, n, ehlo=False):
    """n connections that were greeted and then say nothing."""
    out = []
    for i in range(n):
        c = ferry.client()
        if c.greeting.code != 220:
            raise AssertionError("idle client %d not greeted: %r"
                                 % (i, c.greeting))
        if ehlo:
            c.ehlo("idle%d.example" % i)
        out.append(c)
    return out


class ManySessionsTest(ft.FerryTestCase):
    """Two worker processes at most, far more sessions."""
    ferry_options = {"hostname": HOST,
                     "workers": {"min_idle": 1, "max_idle": 2, "max": 2,
                                 "sessions": 1000,
                                 "sessions_per_worker": 64}}

    def test_idle_sessions_do_not_delay_a_good_client(self):
        idle = idle_clients(self.ferry, 20)
        idle += idle_clients(self.ferry, 10, ehlo=True)
        try:
            self.assertLessEqual(len(self.ferry.workers()), 2)
            t0 = time.monotonic()
            with self.ferry.client() as c:
                self.assertReply(c.greeting, 220)
                c.ehlo()
                qid = c.send_message("good@example.org",
                                     ["rcpt@example.com"],
                                     b"Subject: good\r\n\r\nthrough\r\n")
                took = time.monotonic() - t0
                self.assertReply(c.cmd("QUIT"), 221)
            self.assertLess(took, 1.0, "the good client waited %.2f s"
                            % took)
            self.assertIsNotNone(self.ferry.message(qid))
            # the idle ones are still there, and still served
            for c in idle[:3]:
                self.assertReply(c.cmd("NOOP"), 250)
        finally:
            for c in idle:
                c.close()

    def test_sessions_share_a_worker_without_mixing(self):
        """Transactions interleaved step by step on one worker each end
        up with their own envelope and body."""
        clients = [self.ferry.client() for _ in range(6)]
        try:
            for i, c in enumerate(clients):
                c.ehlo("c%d.example" % i)
            for i, c in enumerate(clients):
                self.assertReply(c.cmd("MAIL FROM:<s%d@example.org>" % i),
                                 250)
            for i, c in enumerate(clients):
                self.assertReply(c.cmd("RCPT TO:<r%d@example.com>" % i),
                                 250)
            for c in clients:
                self.assertReply(c.cmd("DATA"), 354)
            for rnd in range(3):
                for i, c in enumerate(clients):
                    c.send(b"line %d of client %d\r\n" % (rnd, i))
            qids = []
            for c in clients:
                c.send(b".\r\n")
            for c in clients:
                qids.append(ft.queued_id(c.reply()))
            for i, qid in enumerate(qids):
                m = self.ferry.message(qid)
                self.assertEqual(m["sender"], "s%d@example.org" % i)
                self.assertEqual([r["address"] for r in m["recipients"]],
                                 ["r%d@example.com" % i])
                _, body = ft.split_received(m["body"])
                self.assertEqual(body, b"".join(
                    b"line %d of client %d\r\n" % (rnd, i)
                    for rnd in range(3)))
        finally:
            for c in clients:
                c.close()


class IdleInDataTest(ft.FerryTestCase):
    TIMEOUT = 2
    ferry_options = {"hostname": HOST,
                     "limits": {"command_timeout": TIMEOUT,
                                "data_timeout": 60}}

    def assertIdleCut(self, c, t0):
        r = c.reply(timeout=10)
        took = time.monotonic() - t0
        self.assertReply(r, 421, "4.4.2", "timeout exceeded")
        self.assertGreaterEqual(took, self.TIMEOUT - 0.5)
        self.assertLessEqual(took, self.TIMEOUT + 2.0)
        self.assertTrue(c.is_closed(3))

    def test_silent_in_data(self):
        before = self.ferry.count("message")
        with self.ferry.client() as c:
            c.ehlo()
            c.envelope("sender@example.org", ["rcpt@example.com"])
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: stops half way\r\n\r\nsome")
            t0 = time.monotonic()
            self.assertIdleCut(c, t0)
        self.assertIsNotNone(self.ferry.wait_log(r"\(timeout\)"))
        self.assertTrue(ft.wait_for(
            lambda: self.ferry.count("message") == before, 3))

    def test_silent_in_bdat(self):
        before = self.ferry.count("message")
        with self.ferry.client() as c:
            c.ehlo()
            c.envelope("sender@example.org", ["rcpt@example.com"])
            c.send(b"BDAT 1000 LAST\r\nsome")
            t0 = time.monotonic()
            self.assertIdleCut(c, t0)
        self.assertTrue(ft.wait_for(
            lambda: self.ferry.count("message") == before, 3))

    def test_bytes_keep_data_alive(self):
        """Below the idle limit the message goes on (the whole-message
        deadline is data_timeout)."""
        with self.ferry.client() as c:
            c.ehlo()
            c.envelope("sender@example.org", ["rcpt@example.com"])
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: slow\r\n\r\n")
            for i in range(4):
                time.sleep(self.TIMEOUT * 0.6)
                c.send(b"line %d\r\n" % i)
            c.send(b".\r\n")
            self.assertReply(c.reply(timeout=10), 250, "2.0.0")


class JunkAndLifetimeTest(ft.FerryTestCase):
    ferry_options = {"hostname": HOST,
                     "limits": {"junk_commands": 5,
                                "session_lifetime": 10}}

    def test_junk_commands_cut_off(self):
        with self.ferry.client() as c:
            c.ehlo()
            for verb in ("NOOP", "RSET", "VRFY x", "HELP", "NOOP"):
                self.assertLess(c.cmd(verb).code, 400)
            r = c.cmd("NOOP")
            self.assertReply(r, 421, "4.7.0", "too many commands that "
                             "move no mail")
            self.assertTrue(c.is_closed(3))
        self.assertIsNotNone(self.ferry.wait_log(
            r"\(too many junk commands\)"))

    def test_message_resets_the_junk_count(self):
        with self.ferry.client() as c:
            c.ehlo()
            for _ in range(4):
                self.assertReply(c.cmd("NOOP"), 250)
            c.send_message("a@example.org", ["b@example.com"], b"x\r\n")
            for _ in range(5):
                self.assertReply(c.cmd("NOOP"), 250)
            self.assertReply(c.cmd("QUIT"), 221)

    def test_session_lifetime(self):
        """A NOOP now and then does not hold a session for ever."""
        with self.ferry.client() as c:
            t0 = time.monotonic()
            c.ehlo()
            for _ in range(3):
                time.sleep(3)
                self.assertReply(c.cmd("NOOP"), 250)
            r = c.reply(timeout=10)
            took = time.monotonic() - t0
            self.assertReply(r, 421, "4.4.2", "timeout exceeded")
            self.assertGreaterEqual(took, 10 - 0.5)
            self.assertLessEqual(took, 10 + 2.0)
            self.assertTrue(c.is_closed(3))
        self.assertIsNotNone(self.ferry.wait_log(r"\(session lifetime\)"))


class SlowReaderTest(ft.FerryTestCase):
    ferry_options = {"hostname": HOST,
                     "limits": {"output_buffer": 4096}}

    def test_slow_reader_dropped(self):
        c = self.ferry.client()
        try:
            c.ehlo()
            c.sock.setblocking(False)
            batch = b"HELP\r\n" * 10000
            sent, end, dropped = 0, time.monotonic() + 20, False
            while time.monotonic() < end and not dropped:
                try:
                    sent += c.sock.send(batch)
                except BlockingIOError:
                    time.sleep(0.05)
                except OSError:
                    dropped = True
                if self.ferry.wait_log(r"\(replies not read\)",
                                       timeout=0.01):
                    dropped = True
            self.assertTrue(dropped, "not dropped after %d octets" % sent)
            self.assertIsNotNone(self.ferry.wait_log(
                r"does not read its replies"))
        finally:
            c.close()
        # the worker goes on serving others
        with self.ferry.client() as c2:
            self.assertReply(c2.ehlo(), 250)


class TLSInterleavedTest(ft.FerryTestCase):
    """STARTTLS and implicit TLS sessions held by one worker at once."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="ferry-pressure-tls-")
        os.chmod(cls.dir, 0o755)
        cls.certs = Certs(os.path.join(cls.dir, "certs"))
        cert, key = cls.certs.server(HOST, "127.0.0.1")
        cls.ferry_options = {
            "hostname": HOST,
            "workers": {"min_idle": 1, "max_idle": 1, "max": 1,
                        "sessions": 1000},
            "tls": {"cert_file": cert, "key_file": key},
            "listen": {"tls": "starttls"},
            "more_listeners": [{"name": "smtps", "tls": "implicit"}]}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        import shutil
        shutil.rmtree(cls.dir, ignore_errors=True)

    def context(self):
        import ssl
        return ssl.create_default_context(cafile=self.certs.ca_cert)

    def test_interleaved(self):
        clients = []
        try:
            for i in range(6):
                if i % 2:
                    c = ft.Client(self.ferry.ports["smtps"],
                                  tls_context=self.context(),
                                  server_hostname=HOST)
                    self.assertReply(c.greeting, 220)
                else:
                    c = self.ferry.client()
                    c.ehlo()
                    self.assertReply(c.cmd("STARTTLS"), 220)
                    c.starttls(self.context(), server_hostname=HOST)
                clients.append(c)
            # worker_for knows the main listener only: the STARTTLS ones
            workers = {self.ferry.worker_for(c) for c in clients[::2]}
            self.assertEqual(len(workers), 1, "not one worker: %r" % workers)
            self.assertEqual(self.ferry.workers(), list(workers))
            for i, c in enumerate(clients):
                c.ehlo("tls%d.example" % i)
            for i, c in enumerate(clients):
                self.assertReply(c.cmd("MAIL FROM:<t%d@example.org>" % i),
                                 250)
            for i, c in enumerate(clients):
                self.assertReply(c.cmd("RCPT TO:<u%d@example.com>" % i),
                                 250)
            for c in clients:
                self.assertReply(c.cmd("DATA"), 354)
            for rnd in range(3):
                for i, c in enumerate(clients):
                    c.send(b"%d: tls line %d\r\n" % (i, rnd) * 50)
            for c in clients:
                c.send(b".\r\n")
            qids = [ft.queued_id(c.reply()) for c in clients]
            for i, qid in enumerate(qids):
                m = self.ferry.message(qid)
                self.assertEqual(m["sender"], "t%d@example.org" % i)
                rec, body = ft.split_received(m["body"])
                self.assertIn(b"using TLS", rec.group(0))
                self.assertEqual(body, b"".join(
                    b"%d: tls line %d\r\n" % (i, rnd) * 50
                    for rnd in range(3)))
        finally:
            for c in clients:
                c.close()


class OneSessionPerWorkerTest(ft.FerryTestCase):
    ferry_options = {"hostname": HOST,
                     "workers": {"min_idle": 1, "max_idle": 2, "max": 2,
                                 "sessions": 100,
                                 "sessions_per_worker": 1}}

    def test_one_session_per_process(self):
        a = self.ferry.client()
        b = None
        try:
            a.ehlo()
            b = self.ferry.client()
            b.ehlo()
            wa, wb = self.ferry.worker_for(a), self.ferry.worker_for(b)
            self.assertIsNotNone(wa)
            self.assertNotEqual(wa, wb)
            self.assertIsNotNone(self.ferry.wait_log(r"SMTP pool full"))
            # a third waits in the listen queue until a slot frees
            third = ft.Client(self.ferry.port, greeting=False)
            try:
                third.sock.settimeout(0.5)
                self.assertRaises(socket.timeout, third.sock.recv, 1)
                self.assertReply(a.cmd("QUIT"), 221)
                self.assertReply(third.reply(timeout=10), 220)
                third.ehlo()
                qid = third.send_message("x@example.org", ["y@example.com"],
                                         b"one per process\r\n")
                self.assertIsNotNone(self.ferry.message(qid))
            finally:
                third.close()
            self.assertReply(b.cmd("QUIT"), 221)
            self.assertIsNotNone(self.ferry.wait_log(
                r"SMTP pool no longer full"))
        finally:
            a.close()
            if b is not None:
                b.close()


if __name__ == "__main__":
    ft.main(need_root=True)
