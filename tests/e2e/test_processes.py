#!/usr/bin/env python3
"""End-to-end: the process model.  Privileges of the workers and the
runner, the pool, configuration checking (ferryd -n), crashes of a worker
mid-DATA and of the runner after a 250, reloads good and bad, and
graceful shutdown.  Needs root (exit 77 otherwise)."""

import os
import pwd
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402


def ids(status, field):
    return [int(x) for x in status[field].split()]


class PrivilegeTest(ft.FerryTestCase):
    """Inspection only: one daemon for the class."""
    # one session per worker: a busy worker has no room, so the pool
    # must add idle ones beside it (with room, a worker holding sessions
    # counts as spare once the pool is packed)
    ferry_options = {"workers": {"min_idle": 3, "max_idle": 5, "max": 10,
                                 "sessions_per_worker": 1}}

    def wait_pool(self):
        ok = ft.wait_for(lambda: len(self.ferry.workers()) >= 3, 5)
        self.assertTrue(ok, "fewer than min_idle workers")
        return self.ferry.workers()

    def test_workers_dropped_privileges(self):
        nobody = pwd.getpwnam(ft.SMTPD_USER)
        chroot = os.path.realpath(os.path.join(self.ferry.spool, "smtpd"))
        pids = self.wait_pool()
        for pid in pids:
            st = ft.proc_status(pid)
            self.assertEqual(ids(st, "Uid"), [nobody.pw_uid] * 4, pid)
            self.assertEqual(ids(st, "Gid"), [nobody.pw_gid] * 4, pid)
            self.assertIn(st["Groups"], ("", str(nobody.pw_gid)))
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(int(st["CapEff"], 16), 0)
            self.assertEqual(int(st["CapPrm"], 16), 0)
            self.assertEqual(os.readlink("/proc/%d/root" % pid), chroot)
            lim = ft.proc_limits(pid)
            self.assertEqual(lim["Max processes"], ("0", "0"))
            self.assertEqual(lim["Max file size"], ("0", "0"))
        # the chroot holds the intake and anvil sockets, nothing else
        self.assertEqual(sorted(os.listdir(chroot)),
                         ["anvil.sock", "queue.sock"])
        st = os.stat(chroot)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o755))

    def test_agents(self):
        # delivery agents: their own user, no capabilities, no new
        # privileges, no forking, no writing files.  They start when
        # mail is due: one message brings one up (it stays agent_idle).
        mail = pwd.getpwnam(ft.DELIVER_USER)
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        d = self.start_ferry(routes=[{"name": "dest",
                                      "domains": ["dest.test"],
                                      "hosts": [s.address],
                                      "tls": "none"}],
                             delivery={"retry_schedule": [60]})
        d.send(b"Subject: agent\r\n\r\nbody\r\n",
               sender="a@origin.test", rcpts=["r@dest.test"])
        s.wait_messages(1, 30)
        agents = ft.wait_for(lambda: d.agents(), 10)
        self.assertTrue(agents, "no delivery agent running")
        # an agent starts as root and drops once it has loaded its secrets
        ft.wait_for(lambda: all(ids(ft.proc_status(p), "Uid")[0] != 0
                                for p in agents), 10)
        for pid in agents:
            st = ft.proc_status(pid)
            self.assertEqual(ids(st, "Uid"), [mail.pw_uid] * 4)
            self.assertEqual(ids(st, "Gid"), [mail.pw_gid] * 4)
            self.assertEqual(int(st["CapEff"], 16), 0)
            self.assertEqual(st["NoNewPrivs"].strip(), "1")
            lim = ft.proc_limits(pid)
            self.assertEqual(lim["Max processes"], ("0", "0"))
            self.assertEqual(lim["Max file size"], ("0", "0"))
        # their socket is for the delivery user's group only
        sock = os.stat(os.path.join(d.spool, "agent.sock"))
        self.assertEqual((sock.st_uid, sock.st_gid, sock.st_mode & 0o777),
                         (0, mail.pw_gid, 0o660))

    def test_runner(self):
        daemon = pwd.getpwnam(ft.QUEUE_USER)
        runners = self.ferry.runners()
        self.assertEqual(len(runners), 1, "exactly one queue runner")
        st = ft.proc_status(runners[0])
        self.assertEqual(ids(st, "Uid"), [daemon.pw_uid] * 4)
        self.assertEqual(ids(st, "Gid"), [daemon.pw_gid] * 4)
        self.assertEqual(int(st["CapEff"], 16), 0)
        # the queue directory is the runner's alone
        qdir = os.path.join(self.ferry.spool, "queue")
        st = os.stat(qdir)
        self.assertEqual((st.st_uid, st.st_mode & 0o777),
                         (daemon.pw_uid, 0o700))
        st = os.stat(self.ferry.db_path)
        self.assertEqual(st.st_uid, daemon.pw_uid)
        self.assertEqual(st.st_mode & 0o077, 0)

    def test_pool(self):
        # no mail to send: no delivery agent, a second after the start
        # either (they start on demand, test_agent_demand.py)
        time.sleep(1.0)
        pids = self.wait_pool()
        self.assertGreaterEqual(len(pids), 3)
        self.assertLessEqual(len(pids), 10)
        kids = self.ferry.children()
        self.assertEqual(self.ferry.agents(), [], "an agent runs at rest")
        anvils = self.ferry.anvils()
        self.assertEqual(len(anvils), 1, "exactly one anvil")
        self.assertEqual(sorted(kids),
                         sorted(pids + self.ferry.runners() + anvils),
                         "unexpected children of the master")
        # the master itself stays root (it must bind and supervise)
        self.assertEqual(ids(ft.proc_status(self.ferry.pid), "Uid")[0], 0)

    def test_busy_workers_replaced(self):
        """Sessions in progress do not starve the pool: idle workers are
        added while others are busy."""
        self.wait_pool()
        clients = [self.ferry.client() for _ in range(5)]
        try:
            for c in clients:
                c.ehlo()
            busy = {self.ferry.worker_for(c) for c in clients}
            self.assertNotIn(None, busy)
            self.assertEqual(len(busy), 5)
            ok = ft.wait_for(lambda: len(
                set(self.ferry.workers()) - busy) >= 3, 5)
            self.assertTrue(ok, "no idle workers beside the busy ones")
        finally:
            for c in clients:
                c.close()


class ConfigCheckTest(ft.FerryTestCase):

    def check(self, edit=None):
        """ferryd -n on a test configuration, changed by edit(lines)."""
        d = ft.Ferry()
        self.addCleanup(d.stop)
        d.port = ft.free_port()
        lines = d.config_text().splitlines()
        if edit is not None:
            edit(lines)
        d.write_config("\n".join(lines) + "\n")
        p = subprocess.run([ft.FERRYD, "-n", "-f", d.conf],
                           capture_output=True, text=True, timeout=30)
        return d, p

    def test_good_file(self):
        d, p = self.check()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stdout)
        self.assertFalse(os.path.exists(d.spool), "-n created the spool")

    def bad(self, line, pattern):
        where = []

        def edit(lines):
            at = next(i for i, l in enumerate(lines) if l.startswith("}"))
            lines.insert(at, line)       # inside the listen section
            where.append(at)
        d, p = self.check(edit)
        at = where[0]
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        m = re.search(r"%s:(\d+): (.*)" % re.escape(d.conf), p.stderr)
        self.assertIsNotNone(m, "no file:line: reason in %r" % p.stderr)
        self.assertEqual(int(m.group(1)), at + 1, p.stderr)
        self.assertRegex(m.group(2), pattern)
        self.assertFalse(os.path.exists(d.spool))

    def test_port_out_of_range(self):
        self.bad("    port = 70000", r"out of range")

    def test_bad_address(self):
        self.bad('    address = "localhost"', r"numeric")

    def test_unknown_option(self):
        self.bad("    colour = 3", r"colour")

    def test_missing_file(self):
        p = subprocess.run([ft.FERRYD, "-n", "-f", "/nonexistent/ferry.conf"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/ferry.conf", p.stderr)

    def test_start_refuses_bad_file(self):
        d = ft.Ferry()
        self.addCleanup(d.stop)
        d.port = ft.free_port()
        d.write_config(d.config_text().replace("mx.ferry-test.example",
                                               "bad_host!"))
        p = subprocess.run([ft.FERRYD, "-d", "-f", d.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r"%s:\d+: .*hostname"
                         % re.escape(d.conf))


class CrashTest(ft.FerryTestCase):
    """Each test kills something, so each has its own daemon."""

    def stream_started(self, f):
        """Waits until the message being sent has reached the runner, then
        has another message committed: group commit makes the first one's
        rows (state incoming) durable and visible in the same
        transaction."""
        self.assertIsNotNone(f.wait_log(r"[0-9A-F]{12}: client="))
        time.sleep(0.2)
        self.other = f.send(b"Subject: other\r\n\r\nbystander\r\n")
        self.assertEqual(f.count("message", "state = 'incoming'"), 1,
                         "the message in flight is not at the runner")

    def test_worker_killed_mid_data(self):
        f = self.start_ferry()
        c = f.client()
        self.addCleanup(c.close)
        c.ehlo()
        c.envelope("sender@example.org", ["rcpt@example.com"])
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: doomed\r\n\r\n" + b"partial line\r\n" * 5000)
        self.stream_started(f)
        pid = f.worker_for(c)
        self.assertIsNotNone(pid)
        start = f.log_size()
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(c.is_closed(5), "connection survived its worker")
        # nothing of the message remains
        self.assertTrue(ft.wait_for(lambda: f.count("message") == 1, 5),
                        "a message row outlived its killed worker")
        self.assertEqual(f.count("message", "qid = ?", (self.other,)), 1)
        self.assertEqual(f.count("recipient"), 1)
        self.assertEqual(f.count("body", "message_id NOT IN (SELECT id "
                                 "FROM message WHERE qid = ?)",
                                 (self.other,)), 0)
        self.assertIsNotNone(f.wait_log(
            r"SMTP worker \(pid %d\) died: killed by signal 9" % pid,
            start=start))
        # the pool stays at min_idle without the dead one, and mail flows
        self.assertTrue(ft.wait_for(
            lambda: pid not in f.workers() and len(f.workers()) >= 2, 10),
            "the pool was not refilled")
        qid = f.send(b"Subject: after\r\n\r\nfine\r\n")
        self.assertEqual(f.message(qid)["state"], "active")

    def test_all_workers_killed(self):
        f = self.start_ferry()
        old = f.workers()
        self.assertTrue(old)
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        self.assertTrue(ft.wait_for(
            lambda: len(f.workers()) >= 2 and not set(f.workers()) & set(old),
            10), "pool not respawned")
        qid = f.send(b"Subject: respawned\r\n\r\nok\r\n")
        self.assertIsNotNone(f.message(qid))

    def test_runner_killed_after_250(self):
        f = self.start_ferry()
        content = b"Subject: durable\r\n\r\nsurvives kill -9\r\n"
        with f.client() as c:
            c.ehlo()
            qid = c.send_message("sender@example.org", ["rcpt@example.com"],
                                 content)
            runner = f.runners()
            self.assertEqual(len(runner), 1)
            start = f.log_size()
            os.kill(runner[0], signal.SIGKILL)
            self.assertIsNotNone(f.wait_log(
                r"queue runner \(pid %d\) died: killed by signal 9; "
                r"restarting in \d+ ms" % runner[0], start=start))
            m = f.message(qid)
            self.assertIsNotNone(m, "a message acknowledged 250 was lost")
            self.assertEqual(m["state"], "active")
            _, rest = ft.split_received(m["body"])
            self.assertEqual(rest, content)
            self.assertTrue(ft.wait_for(
                lambda: f.runners() and f.runners() != runner, 10),
                "the runner was not restarted")
            self.assertEqual(len(f.runners()), 1)
            self.assertIsNotNone(f.wait_log(r"queue runner started: .*, 1 "
                                            r"message\(s\) queued",
                                            start=start))
            # the same session, whose worker's intake connection died
            # with the old runner, goes on
            qid2 = c.send_message("sender@example.org",
                                  ["rcpt@example.com"], b"next\r\n")
        qid3 = f.send(b"Subject: new session\r\n\r\nok\r\n")
        self.assertEqual(len({qid, qid2, qid3}), 3)
        for q in (qid2, qid3):
            self.assertEqual(f.message(q)["state"], "active")

    def test_runner_killed_mid_data(self):
        """The runner dies while a message streams in: the client is
        refused (not told 250), and the new runner removes the rest."""
        f = self.start_ferry()
        with f.client() as c:
            c.ehlo()
            c.envelope("sender@example.org", ["rcpt@example.com"])
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: cut\r\n\r\n" + b"0123456789\r\n" * 10000)
            self.stream_started(f)
            runner = f.runners()
            start = f.log_size()
            os.kill(runner[0], signal.SIGKILL)
            self.assertTrue(ft.wait_for(
                lambda: f.runners() and f.runners() != runner, 10))
            c.send(b"more\r\n.\r\n")
            r = c.reply()
            self.assertEqual(r.code // 100, 4, "not a temporary failure: "
                             "%r" % r)
        self.assertIsNotNone(f.wait_log(
            r"queue: removed 1 message\(s\) left incomplete", start=start))
        self.assertTrue(ft.wait_for(lambda: f.count("message") == 1, 5))
        self.assertEqual(f.count("message", "qid = ?", (self.other,)), 1)
        self.assertEqual(f.count("message", "state = 'incoming'"), 0)


class ReloadTest(ft.FerryTestCase):

    def test_bad_reload_keeps_config(self):
        f = self.start_ferry()
        workers = f.workers()
        start = f.log_size()
        f.write_config(f.config_text().replace(
            "port = %d" % f.port, "port = 70000"))
        f.signal(signal.SIGHUP)
        m = f.wait_log(r"reload refused: .*out of range.*; keeping the "
                       r"running configuration", start=start)
        self.assertIsNotNone(m)
        self.assertNotIn("configuration reloaded", f.log_text()[start:])
        with f.client() as c:
            self.assertIn(f.hostname, c.greeting.text)
            c.ehlo()
            qid = c.send_message("a@example.org", ["b@example.com"],
                                 b"after a bad reload\r\n")
        self.assertIsNotNone(f.message(qid))
        self.assertTrue(f.running())
        self.assertEqual(sorted(set(workers) & set(f.workers())),
                         sorted(workers), "workers were replaced")

    def test_unreadable_reload(self):
        f = self.start_ferry()
        start = f.log_size()
        os.rename(f.conf, f.conf + ".away")
        f.signal(signal.SIGHUP)
        self.assertIsNotNone(f.wait_log(r"reload refused", start=start))
        os.rename(f.conf + ".away", f.conf)
        f.send(b"still serving\r\n")

    def test_good_reload(self):
        f = self.start_ferry()
        old = set(f.workers())
        start = f.log_size()
        f.write_config(hostname="reloaded.ferry-test.example",
                       limits={"message_size": 54321})
        with f.client() as busy:       # a session across the reload
            busy.ehlo()
            busy.cmd("MAIL FROM:<a@example.org>")
            f.signal(signal.SIGHUP)
            self.assertIsNotNone(f.wait_log(
                r"configuration reloaded from %s" % re.escape(f.conf),
                start=start))
            # the old generation leaves once idle; then new sessions see
            # the new configuration
            self.assertTrue(ft.wait_for(
                lambda: len(old & set(f.workers())) <= 1, 5))
            with f.client() as c:
                self.assertEqual(c.greeting.lines,
                                 ["reloaded.ferry-test.example ESMTP ferry"])
                r = c.ehlo()
                self.assertEqual(r.lines[0], "reloaded.ferry-test.example")
                self.assertIn("SIZE 54321", r.lines)
                qid = c.send_message("a@example.org", ["b@example.com"],
                                     b"new config\r\n")
            m = f.message(qid)
            hdr, _ = ft.split_received(m["body"])
            self.assertEqual(hdr.group("host"), b"reloaded.ferry-test.example")
            # the session in flight was not dropped
            self.assertReply(busy.cmd("RCPT TO:<b@example.com>"), 250)
            qid2 = ft.queued_id(busy.data(b"across the reload\r\n"))
        self.assertIsNotNone(f.message(qid2))
        self.assertTrue(ft.wait_for(lambda: not old & set(f.workers()), 5),
                        "old-generation workers did not leave")


class ShutdownTest(ft.FerryTestCase):

    def test_graceful_shutdown(self):
        f = self.start_ferry(shutdown_timeout=10)
        start = f.log_size()
        c = f.client()
        self.addCleanup(c.close)
        c.ehlo()
        c.envelope("sender@example.org", ["rcpt@example.com"])
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        t0 = time.monotonic()
        f.signal(signal.SIGTERM)
        self.assertIsNotNone(f.wait_log(r"shutting down", start=start))
        # new connections are refused while the session finishes
        time.sleep(0.3)
        with f.client() as late:
            self.assertReply(late.greeting, 421, "4.3.2")
            self.assertTrue(late.is_closed(5))
        self.assertTrue(f.running(), "the master did not wait")
        c.send(b"second half\r\n.\r\n")
        qid = ft.queued_id(c.reply())
        self.assertReply(c.cmd("QUIT"), 221)
        status = f.wait_exit(10)
        self.assertEqual(status, 0, "master exit status %r" % status)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIsNotNone(f.wait_log(r"ferry stopped", 2, start=start))
        self.assertFalse(f.children(), "children outlived the master")
        f.proc = None          # stopped; read the queue it left
        ok = ft.wait_for(lambda: not any(ft.alive(p) for p in f.seen), 5)
        self.assertTrue(ok, "children still alive")
        m = f.message(qid)
        self.assertEqual(m["state"], "active")
        _, rest = ft.split_received(m["body"])
        self.assertEqual(rest, b"Subject: in flight\r\n\r\nfirst half\r\n"
                               b"second half\r\n")

    def test_shutdown_timeout_expires(self):
        f = self.start_ferry(shutdown_timeout=1)
        c = f.client()
        self.addCleanup(c.close)
        c.ehlo()
        t0 = time.monotonic()
        f.signal(signal.SIGTERM)
        r = c.reply(timeout=10)
        self.assertReply(r, 421, "4.3.2", "shutting down")
        self.assertLess(time.monotonic() - t0, 4)
        self.assertTrue(c.is_closed(3))
        self.assertEqual(f.wait_exit(10), 0)

    def test_idle_daemon_stops_fast(self):
        f = self.start_ferry()
        t0 = time.monotonic()
        f.signal(signal.SIGTERM)
        self.assertEqual(f.wait_exit(10), 0)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertIsNotNone(f.wait_log(r"queue runner stopping"))


if __name__ == "__main__":
    ft.main(need_root=True)
