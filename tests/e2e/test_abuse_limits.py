#!/usr/bin/env python3
"""End-to-end: the abuse limits that ferry-anvil counts across all SMTP
workers (connections per client and in all, connection and message
rates), connections freed when a worker is killed, anvil's own
privileges and its restart (the workers fail open meanwhile), limits
changed by a reload, and non-SMTP clients (HTTP requests, talking before
the greeting).  Needs root (exit 77 otherwise)."""

import os
import pwd
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

POOL = {"min_idle": 4, "max_idle": 8, "max": 16}
# one session per worker: the sessions of a test land on distinct workers
# (a worker waiting for anvil's answer would otherwise take more), so the
# limits are shown to hold across workers
ONE_EACH = dict(POOL, sessions_per_worker=1)
HOST = "abuse.ferry-test.example"


def ids(status, field):
    return [int(x) for x in status[field].split()]


class AbuseCase(ft.FerryTestCase):

    def connect_ok(self, ferry):
        """A connection that is greeted 220.  Counts held by the previous
        test's sessions are released as those workers finish, so a 421
        is retried for a few seconds before it counts as a failure."""
        c = self.accepted_soon(ferry, timeout=5)
        self.assertIsNotNone(c, "no connection was accepted")
        self.assertReply(c.greeting, 220)
        return c

    def assertRefused(self, ferry, text):
        """A new connection is answered 421 4.7.0 <text> and closed."""
        with ferry.client() as c:
            self.assertReply(c.greeting, 421, "4.7.0", text)
            self.assertIn(HOST, c.greeting.text)
            self.assertTrue(c.is_closed(), "not closed after the 421")

    def accepted_soon(self, ferry, timeout=10):
        """A new connection is greeted 220 within timeout (retrying while
        refused); the client, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            c = ferry.client()
            if c.greeting.code == 220:
                self.addCleanup(c.close)
                return c
            c.close()
            time.sleep(0.1)
        return None

    def distinct_workers(self, ferry, clients):
        ws = [ft.wait_for(lambda c=c: ferry.worker_for(c), 5)
              for c in clients]
        self.assertNotIn(None, ws)
        self.assertEqual(len(set(ws)), len(clients),
                         "sessions did not land on different workers")
        return ws


class PerClientTest(AbuseCase):
    ferry_options = {"hostname": HOST, "workers": ONE_EACH,
                     "limits": {"max_connections_per_client": 2}}

    def test_third_connection_refused_across_workers(self):
        c1 = self.connect_ok(self.ferry)
        c2 = self.connect_ok(self.ferry)
        self.distinct_workers(self.ferry, [c1, c2])
        start = self.ferry.log_size()
        self.assertRefused(self.ferry, "too many connections from "
                           "127.0.0.1")
        self.assertTrue(self.ferry.wait_log(
            r"warning: refusing unknown\[127\.0\.0\.1\]: connection limit "
            r"exceeded", start=start))
        # one leaves: there is room again
        self.assertReply(c1.cmd("QUIT"), 221)
        c1.close()
        c3 = self.accepted_soon(self.ferry)
        self.assertIsNotNone(c3, "the freed connection was not released")
        self.assertReply(c3.cmd("EHLO client.example"), 250)
        self.assertRefused(self.ferry, "too many connections from")
        for c in (c2, c3):
            c.cmd("QUIT")
            c.close()

    def test_killed_worker_releases_its_connections(self):
        c1 = self.connect_ok(self.ferry)
        c2 = self.connect_ok(self.ferry)
        w1, w2 = self.distinct_workers(self.ferry, [c1, c2])
        self.assertRefused(self.ferry, "too many connections from")
        os.kill(w1, signal.SIGKILL)
        self.assertTrue(c1.is_closed())
        c3 = self.accepted_soon(self.ferry)
        self.assertIsNotNone(c3, "a killed worker's connection was not "
                             "released")
        self.assertNotEqual(self.ferry.worker_for(c3), w1)
        self.assertRefused(self.ferry, "too many connections from")
        for c in (c2, c3):
            c.cmd("QUIT")
            c.close()


class GlobalLimitTest(AbuseCase):
    ferry_options = {"hostname": HOST, "workers": ONE_EACH,
                     "limits": {"max_connections": 3}}

    def test_global_limit(self):
        cs = [self.connect_ok(self.ferry) for _ in range(3)]
        self.distinct_workers(self.ferry, cs)
        with self.ferry.client() as c:
            self.assertReply(c.greeting, 421, "4.7.0")
            self.assertTrue(c.greeting.text.endswith(
                "Error: too many connections"), c.greeting)
            self.assertTrue(c.is_closed())
        cs[0].cmd("QUIT")
        cs[0].close()
        self.assertIsNotNone(self.accepted_soon(self.ferry))


class RateTest(AbuseCase):
    ferry_options = {"hostname": HOST, "workers": POOL,
                     "limits": {"connection_rate": 4, "message_rate": 2}}

    def test_connection_rate(self):
        # setUpClass's readiness probe took one (or more) of the four
        start = self.ferry.log_size()
        accepted = 0
        for _ in range(5):
            c = self.ferry.client()
            if c.greeting.code != 220:
                break
            accepted += 1
            c.cmd("QUIT")
            c.close()
        try:
            self.assertReply(c.greeting, 421, "4.7.0",
                             "connection rate limit exceeded")
            self.assertIn(HOST, c.greeting.text)
            self.assertTrue(c.is_closed())
        finally:
            c.close()
        self.assertIn(accepted, (2, 3))
        self.assertRefused(self.ferry, "connection rate limit exceeded")
        self.assertTrue(self.ferry.wait_log(
            r"warning: refusing unknown\[127\.0\.0\.1\]: connection rate "
            r"limit exceeded", start=start))

    def test_message_rate(self):
        # Runs in a daemon of its own: the connection rate above is spent.
        d = self.start_ferry(hostname=HOST, workers=POOL,
                             limits={"message_rate": 2})
        with d.client() as c:
            c.ehlo()
            for _ in range(2):
                self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
                self.assertReply(c.cmd("RSET"), 250)
            r = c.cmd("MAIL FROM:<a@example.org>")
            self.assertReply(r, 421, "4.7.0",
                             "too many messages from 127.0.0.1")
            self.assertTrue(c.is_closed())
        self.assertTrue(d.wait_log(r"message rate limit exceeded"))
        # counted across workers: the next session is refused at MAIL too
        with d.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 421,
                             "4.7.0")


class AnvilProcessTest(AbuseCase):
    ferry_options = {"hostname": HOST, "workers": ONE_EACH,
                     "limits": {"max_connections_per_client": 2}}

    def anvil_pid(self):
        pids = ft.wait_for(lambda: self.ferry.anvils(), 10)
        self.assertEqual(len(pids), 1, "exactly one ferry-anvil")
        return pids[0]

    def test_privileges(self):
        nobody = pwd.getpwnam(ft.SMTPD_USER)
        pid = self.anvil_pid()
        st = ft.proc_status(pid)
        self.assertEqual(ids(st, "Uid"), [nobody.pw_uid] * 4)
        self.assertEqual(ids(st, "Gid"), [nobody.pw_gid] * 4)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(int(st["CapEff"], 16), 0)
        chroot = os.path.realpath(os.path.join(self.ferry.spool, "smtpd"))
        self.assertEqual(os.readlink("/proc/%d/root" % pid), chroot)
        lim = ft.proc_limits(pid)
        self.assertEqual(lim["Max processes"], ("0", "0"))
        self.assertEqual(lim["Max file size"], ("0", "0"))
        sock = os.stat(os.path.join(chroot, "anvil.sock"))
        self.assertEqual((sock.st_uid, sock.st_gid, sock.st_mode & 0o777),
                         (0, nobody.pw_gid, 0o660))

    def test_restart_fails_open(self):
        old = self.anvil_pid()
        start = self.ferry.log_size()
        # an anvil that does not answer: the workers allow (fail open),
        # beyond the limit of 2
        os.kill(old, signal.SIGSTOP)
        cs = []
        try:
            for _ in range(3):
                cs.append(self.ferry.client())
                self.assertReply(cs[-1].greeting, 220)
            self.distinct_workers(self.ferry, cs)
            for c in cs:
                self.assertReply(c.cmd("EHLO client.example"), 250)
            self.assertTrue(self.ferry.wait_log(
                r"warning: anvil .*allowing connections", start=start))
            # a dead one is restarted by the master
            os.kill(old, signal.SIGKILL)
            self.assertTrue(self.ferry.wait_log(
                r"anvil \(pid %d\) died" % old, start=start))
            new = ft.wait_for(lambda: [p for p in self.ferry.anvils()
                                       if p != old], 10)
            self.assertTrue(new, "the master did not restart anvil")
        finally:
            for c in cs:
                c.close()

        # and once the workers are back with it, the limits hold again
        def limited():
            held = [self.ferry.client() for _ in range(2)]
            try:
                with self.ferry.client() as c:
                    return c.greeting.code == 421
            finally:
                for h in held:
                    h.close()
                time.sleep(0.3)
        self.assertTrue(ft.wait_for(limited, 20, 0.5),
                        "limits not enforced after anvil's restart")
        # and the limits hold again once the workers reconnect

        def limited():
            held = [self.ferry.client() for _ in range(2)]
            try:
                with self.ferry.client() as c:
                    return c.greeting.code == 421
            finally:
                for h in held:
                    h.close()
                time.sleep(0.2)
        self.assertTrue(ft.wait_for(limited, 15, 0.5),
                        "limits not enforced after anvil's restart")

    def test_reload_changes_limits_keeps_counts(self):
        # a daemon of its own, so the reload does not touch the others
        d = self.start_ferry(hostname=HOST, workers=POOL,
                             limits={"max_connections_per_client": 2,
                                     "connection_rate": 1000000,
                                     "message_rate": 1000000})
        c1, c2 = self.connect_ok(d), self.connect_ok(d)
        self.assertRefused(d, "too many connections from")
        anvil = d.anvils()
        d.write_config(limits={"max_connections_per_client": 3,
                               "connection_rate": 1000000,
                               "message_rate": 1000000})
        start = d.log_size()
        d.signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"anvil: limits reloaded", start=start))
        self.assertEqual(d.anvils(), anvil, "anvil was restarted")
        self.connect_ok(d)
        self.assertRefused(d, "too many connections from")
        c1.close()
        c2.close()


class NonSMTPTest(AbuseCase):
    ferry_options = {"hostname": HOST, "workers": POOL,
                     "limits": {"greet_pause": 400}}

    def test_http_request(self):
        for line, verb in (("GET / HTTP/1.0", "GET"),
                           ("POST /login HTTP/1.1", "POST"),
                           ("CONNECT mx.example:25 HTTP/1.1", "CONNECT"),
                           ("HEAD / HTTP/1.0", "HEAD"),
                           ("OPTIONS * HTTP/1.1", "OPTIONS"),
                           ("PUT /x HTTP/1.1", "PUT"),
                           ("USER root", "USER")):
            with self.ferry.client() as c:
                r = c.cmd(line)
                self.assertReply(r, 554, "5.5.1", verb + " is not an SMTP")
                self.assertTrue(c.is_closed(), line)

    def test_http_after_ehlo(self):
        with self.ferry.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("GET / HTTP/1.0"), 554, "5.5.1")
            self.assertTrue(c.is_closed())

    def test_unknown_command_not_closed(self):
        with self.ferry.client() as c:
            self.assertReply(c.cmd("GETX"), 500, "5.5.2")
            self.assertReply(c.cmd("NOOP"), 250)

    def test_pregreet(self):
        start = self.ferry.log_size()
        with self.ferry.client(greeting=False) as c:
            c.send(b"EHLO bot.example\r\n")
            r = c.reply()
            self.assertReply(r, 554, "5.5.1", "talking before the greeting")
            self.assertTrue(c.is_closed())
        self.assertTrue(self.ferry.wait_log(
            r"reject: from unknown\[127\.0\.0\.1\]: 554 5\.5\.1",
            start=start))

    def test_patient_client_greeted(self):
        t0 = time.monotonic()
        with self.ferry.client() as c:
            self.assertReply(c.greeting, 220)
            self.assertGreaterEqual(time.monotonic() - t0, 0.35)
            self.assertReply(c.cmd("EHLO client.example"), 250)


if __name__ == "__main__":
    ft.main(need_root=True)
