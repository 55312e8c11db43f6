#!/usr/bin/env python3
"""End-to-end: the clients' names (workers { client_names }).  A test DNS
server (tests/lib/dnsserver.py) is delivery { resolver }; ferry-resolve
asks it for the PTR record of 127.0.0.1 and then the A records of the
name found.  A name that leads back to the address stands in the log
("connect from name[127.0.0.1]") and in the Received header of the
message relayed to a test smarthost; a name that does not, or that is
not a plain host name, gives unknown; a DNS server that never answers
gives unknown within client_name_timeout (and a margin), and while one
connection waits for its name, another session of the same worker is
served at once; what a lookup found is kept, so the next connection from
the address asks nothing.  ferry-resolve runs as the SMTP user, chrooted, without
capabilities or new privileges, is started when a session first asks,
started again after it died and after a reload (which stops it), and does
not run at all while client_names is off (the tests' default); its start
on demand and idle exit are test_helpers_on_demand.py's.  Needs root (exit 77 otherwise)."""

import os
import pwd
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
import dnsserver as dnsmod  # noqa: E402

NAME = "client.test.example"
PTR = "1.0.0.127.in-addr.arpa"
TIMEOUT = 1          # client_name_timeout, seconds
MARGIN = 1.5         # the worker's margin (1 s) and a loaded machine
WAIT = 30
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"
CONTENT = b"Subject: names\r\n\r\nwho are you\r\n"


def records(ptr=NAME, a="127.0.0.1"):
    r = {PTR: {"PTR": [ptr]}}
    if a is not None:
        r[ptr] = {"A": [a]}
    return r


class ClientNamesCase(ft.FerryTestCase):

    def dns(self, recs):
        d = dnsmod.DNSServer(recs).start()
        self.addCleanup(d.stop)
        return d

    def smarthost(self):
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        return s

    def named_ferry(self, dns, smarthost=None, workers=None, **options):
        w = {"client_names": True, "client_name_timeout": TIMEOUT}
        w.update(workers or {})
        if smarthost is not None:
            options["routes"] = [{"name": "dest", "domains": ["dest.test"],
                                  "hosts": [smarthost.address],
                                  "tls": "none"}]
        options["delivery"] = {"resolver": dns.address,
                               "retry_schedule": [1],
                               "paused": smarthost is None}
        return self.start_ferry(workers=w, **options)

    def relayed(self, d, s):
        """Sends one message through d; the Received header the smarthost
        got, and the log from before the session."""
        start = d.log_size()
        qid = d.send(CONTENT, sender=SENDER, rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        hdr, rest = ft.split_received(m.data)
        self.assertEqual(rest, CONTENT)
        self.assertEqual(hdr.group("qid").decode(), qid)
        return hdr, qid, start


class ConfirmedTest(ClientNamesCase):

    def test_confirmed_name_in_log_and_received(self):
        dns = self.dns(records())
        s = self.smarthost()
        d = self.named_ferry(dns, s)
        hdr, qid, start = self.relayed(d, s)
        self.assertEqual(hdr.group("name").decode(), NAME)
        self.assertEqual(hdr.group("addr").decode(), "127.0.0.1")
        self.assertIsNotNone(d.wait_log(
            r"connect from client\.test\.example\[127\.0\.0\.1\]",
            5, start))
        self.assertIsNotNone(d.wait_log(
            r"%s: client=client\.test\.example\[127\.0\.0\.1\]" % qid,
            5, start))
        # the two lookups, reverse then forward
        self.assertTrue(dns.queried(PTR, "PTR"))
        self.assertTrue(dns.queried(NAME, "A"))
        # and the queue kept it (ferryctl shows it)
        self.assertNotIn("unknown[127.0.0.1]", d.log_text()[start:])

    def test_name_with_trailing_dot_and_case(self):
        dns = self.dns(records(ptr="Client.Test.Example."))
        d = self.named_ferry(dns)
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from Client\.Test\.Example\[127\.0\.0\.1\]",
            5, start))


class UnconfirmedTest(ClientNamesCase):

    def test_forward_elsewhere_is_unknown(self):
        """PTR says client.test.example, whose A record is another
        address: not confirmed."""
        dns = self.dns(records(a="127.0.0.2"))
        s = self.smarthost()
        d = self.named_ferry(dns, s)
        hdr, qid, start = self.relayed(d, s)
        self.assertEqual(hdr.group("name").decode(), "unknown")
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.1\]", 5, start))
        self.assertIsNotNone(d.wait_log(
            r"%s: client=unknown\[127\.0\.0\.1\]" % qid, 5, start))
        self.assertTrue(dns.queried(NAME, "A"), "the forward lookup "
                        "was not made")
        self.assertNotIn(NAME, d.log_text()[start:])

    def test_no_forward_record_is_unknown(self):
        dns = self.dns(records(a=None))
        d = self.named_ferry(dns)
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.1\]", 5, start))

    def test_no_ptr_is_unknown(self):
        dns = self.dns({})
        d = self.named_ferry(dns)
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.1\]", 5, start))
        self.assertTrue(dns.queried(PTR, "PTR"))

    def test_name_not_a_host_name_is_unknown(self):
        """A PTR name with a character no host name has (it would
        confirm: its A record is the address) is never used, nor looked
        up."""
        bad = "bad_name.test.example"
        dns = self.dns(records(ptr=bad))
        s = self.smarthost()
        d = self.named_ferry(dns, s)
        hdr, qid, start = self.relayed(d, s)
        self.assertEqual(hdr.group("name").decode(), "unknown")
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.1\]", 5, start))
        self.assertNotIn("bad_name", d.log_text())
        self.assertFalse(dns.queried(bad, "A"))

    def test_numeric_name_is_unknown(self):
        """A PTR record that names an address is not a name."""
        dns = self.dns(records(ptr="127.0.0.1"))
        d = self.named_ferry(dns)
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.1\]", 5, start))
        self.assertNotIn("127.0.0.1[127.0.0.1]", d.log_text())


class SilentDNSTest(ClientNamesCase):
    """A DNS server that reads every query and answers none."""

    ONE_WORKER = {"min_idle": 1, "max_idle": 1, "max": 1,
                  "sessions_per_worker": 16}

    def test_timeout_gives_unknown_in_time(self):
        dns = self.dns(records())
        d = self.named_ferry(dns, workers=self.ONE_WORKER)
        self.assertTrue(ft.wait_for(lambda: len(d.workers()) == 1, 10))
        # a session of the worker, greeted while the DNS still answers
        good = d.client()
        self.addCleanup(good.close)
        self.assertReply(good.greeting, 220)
        self.assertReply(good.cmd("EHLO client.example"), 250)
        dns.silent = True
        start = d.log_size()

        # from another address: 127.0.0.1's name is kept from before
        t0 = time.monotonic()
        slow = socket.create_connection(("127.0.0.1", d.port), 10,
                                        source_address=("127.0.0.2", 0))
        self.addCleanup(slow.close)
        time.sleep(0.2)         # it waits for its name now
        # the other session of the same worker is served meanwhile
        t = time.monotonic()
        self.assertReply(good.cmd("NOOP"), 250)
        self.assertLess(time.monotonic() - t, 0.5,
                        "a session waited for another one's name")
        self.assertEqual(d.worker_for(good), d.workers()[0])

        slow.settimeout(TIMEOUT + MARGIN + 5)
        greeting = slow.recv(512)
        took = time.monotonic() - t0
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        self.assertGreaterEqual(took, TIMEOUT * 0.9,
                                "the greeting did not wait for the name")
        self.assertLess(took, TIMEOUT + MARGIN,
                        "the greeting waited %.2f s for a name" % took)
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.2\]", 5, start))
        self.assertTrue(dns.queried("2.0.0.127.in-addr.arpa", "PTR"))
        slow.sendall(b"QUIT\r\n")

    def test_kept_name_needs_no_lookup(self):
        dns = self.dns(records())
        d = self.named_ferry(dns)
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from client\.test\.example\[127\.0\.0\.1\]",
            5, start))
        asked = len(dns.queried())
        dns.silent = True
        start = d.log_size()
        t0 = time.monotonic()
        with d.client() as c:
            took = time.monotonic() - t0
            self.assertReply(c.greeting, 220)
        self.assertLess(took, 0.5, "the kept name was looked up again")
        self.assertIsNotNone(d.wait_log(
            r"connect from client\.test\.example\[127\.0\.0\.1\]",
            5, start))
        self.assertEqual(len(dns.queried()), asked)

    def test_resolver_stopped_gives_unknown(self):
        """ferry-resolve itself stuck (SIGSTOP): a name the worker was let
        keep is still given at once; a client it has not seen waits for
        the worker's own deadline, is unknown, and its session starts."""
        dns = self.dns(records())
        d = self.named_ferry(dns, workers=self.ONE_WORKER)
        self.assertTrue(ft.wait_for(lambda: len(d.workers()) == 1, 10))
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from client\.test\.example\[127\.0\.0\.1\]",
            5, start))
        (pid,) = ft.wait_for(lambda: d.resolvers(), 10)
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(pid, signal.SIGCONT)
                        if ft.alive(pid) else None)
        # the worker keeps 127.0.0.1's name (RESOLVE_KEEP_MS, 10 s)
        start = d.log_size()
        t0 = time.monotonic()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertLess(time.monotonic() - t0, 0.5,
                        "a kept name waited for ferry-resolve")
        self.assertIsNotNone(d.wait_log(
            r"connect from client\.test\.example\[127\.0\.0\.1\]",
            5, start))
        # an address it has not seen is asked about, and nobody answers
        start = d.log_size()
        t0 = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", d.port),
                                        TIMEOUT + MARGIN + 5,
                                        source_address=("127.0.0.3", 0))
        self.addCleanup(sock.close)
        greeting = sock.recv(512)
        took = time.monotonic() - t0
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        self.assertLess(took, TIMEOUT + MARGIN + 0.5)
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.3\]", 5, start))
        self.assertIsNotNone(d.wait_log(
            r"warning: resolve .*no answer in time", 5, start))


class ProcessTest(ClientNamesCase):

    def test_resolve_runs_unprivileged(self):
        dns = self.dns(records())
        d = self.named_ferry(dns)
        pids = ft.wait_for(lambda: d.resolvers(), 10)
        self.assertEqual(len(pids), 1, "exactly one ferry-resolve")
        pid = pids[0]
        user = pwd.getpwnam(ft.SMTPD_USER)
        # it starts as root and drops once c-ares is set up
        ft.wait_for(lambda: ft.proc_status(pid)["Uid"].split()[0] != "0",
                    10)
        st = ft.proc_status(pid)
        self.assertEqual([int(x) for x in st["Uid"].split()],
                         [user.pw_uid] * 4)
        self.assertEqual([int(x) for x in st["Gid"].split()],
                         [user.pw_gid] * 4)
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(int(st["CapPrm"], 16), 0)
        self.assertEqual(st["NoNewPrivs"].strip(), "1")
        chroot = os.path.realpath(os.path.join(d.spool, "smtpd"))
        self.assertEqual(os.readlink("/proc/%d/root" % pid), chroot)
        lim = ft.proc_limits(pid)
        self.assertEqual(lim["Max processes"], ("0", "0"))
        self.assertEqual(lim["Max file size"], ("0", "0"))
        # its socket is for the SMTP user's group only
        sock = os.stat(os.path.join(d.spool, "smtpd", "resolve.sock"))
        self.assertEqual((sock.st_uid, sock.st_gid, sock.st_mode & 0o777),
                         (0, user.pw_gid, 0o660))
        # and it still finds names after the drop
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from client\.test\.example\[127\.0\.0\.1\]",
            5, start))

    def test_restarted_after_kill_and_on_reload(self):
        dns = self.dns(records())
        d = self.named_ferry(dns)
        (pid,) = ft.wait_for(lambda: d.resolvers(), 10)
        os.kill(pid, signal.SIGKILL)
        self.assertIsNotNone(d.wait_log(r"resolve \(pid %d\) died" % pid,
                                        10))
        # started again (on demand: when the next session asks); a worker
        # keeps the answers it had, so fresh workers, which must ask
        old = d.workers()
        for w in old:
            os.kill(w, signal.SIGTERM)
        self.assertTrue(ft.wait_for(lambda: d.workers() and not
                                    set(d.workers()) & set(old), 10),
                        "no fresh worker")
        start = d.log_size()
        ok = ft.wait_for(lambda: self.named_once(d), 10)
        self.assertTrue(ok, "no name after the restart:\n%s"
                        % d.log_text()[start:])
        new = ft.wait_for(lambda: [p for p in d.resolvers() if p != pid],
                          15)
        self.assertEqual(len(new), 1, "ferry-resolve was not restarted")
        # a reload stops it, and the next session gets a fresh one (a
        # new resolv.conf, a new resolver option); turning client_names
        # off stops it
        d.write_config()
        d.signal(signal.SIGHUP)
        self.assertTrue(ft.wait_for(lambda: new[0] not in d.resolvers(),
                                    10), "ferry-resolve kept on a reload")
        start = d.log_size()
        ok = ft.wait_for(lambda: self.named_once(d), 10)
        self.assertTrue(ok, "no name after the reload:\n%s"
                        % d.log_text()[start:])
        again = ft.wait_for(lambda: [p for p in d.resolvers()
                                     if p not in (pid, new[0])], 10)
        self.assertEqual(len(again), 1, "no fresh ferry-resolve after "
                         "the reload")
        d.write_config(workers=dict(d.opts["workers"], client_names=False))
        d.signal(signal.SIGHUP)
        self.assertTrue(ft.wait_for(lambda: d.resolvers() == [], 10),
                        "ferry-resolve runs with client_names off")

    def named_once(self, d):
        start = d.log_size()
        with d.client() as c:
            c.cmd("QUIT")
        return d.wait_log(r"connect from client\.test\.example"
                          r"\[127\.0\.0\.1\]", 2, start) is not None

    def test_off_no_process_no_query(self):
        """client_names off (the tests' default): no ferry-resolve, no
        lookup, every client unknown."""
        dns = self.dns(records())
        d = self.start_ferry(delivery={"resolver": dns.address,
                                       "paused": True})
        start = d.log_size()
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(d.wait_log(
            r"connect from unknown\[127\.0\.0\.1\]", 5, start))
        self.assertEqual(d.resolvers(), [])
        self.assertFalse(os.path.exists(os.path.join(
            d.spool, "smtpd", "resolve.sock")))
        self.assertEqual(dns.queried(), [])


if __name__ == "__main__":
    ft.main(need_root=True)
