#!/usr/bin/env python3
"""End-to-end: a full disk under the spool.  Each test puts the spool on a
small ext4 filesystem of its own (a loop-mounted image, made and removed
by the test, unmounted in tearDown even on a failure) and fills it with a
file as root:

- with the smarthost up, a delivery whose outcome cannot be committed is
  not made again (no message reaches the smarthost twice), no delivery
  starts while the disk is full, and delivery resumes by itself once
  space is freed;
- with the smarthost down, a declared SIZE above the room left over
  queue { min_free } is refused at MAIL with "452 4.3.1 Insufficient
  system storage" while smaller mail is taken; below min_free every MAIL
  gets that 452 (raw client and swaks), before any data is sent; while
  commits fail the runner retries with a back-off: a handful of log
  lines and almost no CPU in 10 s, and ferryctl status says why; once
  space is freed the same MAIL and SIZE are accepted again at once;
- "ferryctl queue delete" while commits fail exits non-zero with an
  error and the message stays queued;
- and a runner that may not start deliveries (here: delivery paused)
  sleeps instead of spinning.

Needs root (mount, and the daemon drops privileges; exit 77 otherwise)."""

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

IMAGE_MB = 16
WAIT = 20.0
RCPT = "rcpt@dest.test"
SENDER = "sender@origin.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class SpoolFerry(ft.Ferry):
    """A Ferry whose configuration has a queue { } section."""

    def __init__(self, min_free, **kw):
        super().__init__(**kw)
        self.min_free = min_free

    def config_text(self, **changes):
        return (super().config_text(**changes) +
                'queue {\n    min_free = "%s"\n}\n' % self.min_free)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


class StorageFullTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.ferry = None
        self.mounted = None
        self.smarthost = sh.SmartHost().start()
        self.tmp = tempfile.mkdtemp(prefix="ferry-diskfull-")
        self.image = os.path.join(self.tmp, "spool.img")
        with open(self.image, "wb") as f:
            f.truncate(IMAGE_MB * 1024 * 1024)
        # no root reserve, no journal: "full" is the same for everyone
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O",
                        "^has_journal", self.image], check=True,
                       capture_output=True, timeout=60)

    def tearDown(self):
        try:
            self.dump_logs_if_failed(self.ferry)
            if self.ferry is not None:
                self.ferry.stop(remove=False)
            self.smarthost.stop()
        finally:
            if self.mounted is not None:
                for _ in range(50):
                    if subprocess.run(["umount", self.mounted],
                                      capture_output=True).returncode == 0:
                        break
                    time.sleep(0.1)
            if self.ferry is not None:
                shutil.rmtree(self.ferry.dir, ignore_errors=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
            super().tearDown()

    def start(self, min_free):
        f = SpoolFerry(min_free, routes=[{
            "name": "dest", "domains": ["dest.test"],
            "hosts": [self.smarthost.address], "tls": "none"}],
            delivery={"resolver": "127.0.0.1:1", "per_destination": 1})
        self.ferry = f
        os.makedirs(f.spool)
        subprocess.run(["mount", "-o", "loop", self.image, f.spool],
                       check=True, capture_output=True, timeout=30)
        self.mounted = f.spool
        os.chmod(f.spool, 0o755)
        self.filler = os.path.join(f.spool, "filler")
        return f.start()

    def fill(self):
        """Writes a file as root until the filesystem is full."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
            os.fsync(fd)
        finally:
            os.close(fd)
        st = os.statvfs(self.filler)
        self.assertLess(st.f_bavail * st.f_frsize, 64 * 1024)

    def fill_to(self, left):
        """Writes a file as root until about left bytes are free."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            for size in (1 << 20, 4096):
                block = b"\0" * size
                while True:
                    st = os.statvfs(self.filler)
                    if st.f_bavail * st.f_frsize < left + size:
                        break
                    os.write(fd, block)
                os.fsync(fd)
        finally:
            os.close(fd)

    def mail_reply(self, params=""):
        """The reply to MAIL (with params) in a fresh session."""
        with self.ferry.client() as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<%s>%s" % (SENDER, params))
            c.cmd("QUIT")
        return r

    def free(self):
        os.unlink(self.filler)

    def runner_pid(self):
        pids = self.ferry.runners()
        self.assertEqual(len(pids), 1)
        return pids[0]

    def send(self, n, size=20000):
        qids = []
        for i in range(n):
            body = ("Subject: m%d\r\nMessage-ID: <m%d@diskfull.test>\r\n\r\n"
                    % (i, i)).encode() + b"x" * 70 + b"\r\n"
            body += (b"y" * 78 + b"\r\n") * (size // 80)
            qids.append(self.ferry.send(body, sender=SENDER,
                                        rcpts=(RCPT,)))
        return qids

    def message_ids(self):
        out = []
        with self.smarthost.lock:
            for t in self.smarthost.messages:
                m = re.search(rb"Message-ID: <([^>]+)>", t.data)
                out.append(m.group(1).decode() if m else None)
        return out

    def status(self):
        p = self.ferry.ctl("status")
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    # ------------------------------------------------------------ tests

    def test_full_with_smarthost_up_sends_nothing_twice(self):
        self.start("0")
        # the first message is held at the smarthost's DATA: its
        # delivery is in flight while the disk fills
        gate = self.smarthost.hold_at("eod", times=1)
        self.send(3)
        self.assertTrue(gate.wait_reached(WAIT), "no delivery began")
        self.fill()
        start = self.ferry.log_size()
        gate.release()
        # its outcome cannot be committed: the runner says so once and
        # starts nothing else
        self.assertTrue(self.ferry.wait_log(
            r"commits failing: .*(full|disk)", timeout=WAIT, start=start),
            self.ferry.log_tail())
        lines0 = len(self.ferry.log_text().splitlines())
        time.sleep(6)
        lines = len(self.ferry.log_text().splitlines()) - lines0
        during = self.message_ids()
        self.assertLessEqual(len(during), 1, during)
        self.assertLessEqual(lines, 3, self.ferry.log_tail(20))
        self.assertIn("commits failing since", self.status())
        # space again: the kept outcome is written, the rest goes out
        t0 = time.monotonic()
        self.free()
        self.assertTrue(self.ferry.wait_log(r"commits work again",
                                            timeout=WAIT, start=start),
                        self.ferry.log_tail())
        self.smarthost.wait_messages(3, WAIT)
        resumed = time.monotonic() - t0
        self.assertTrue(ft.wait_for(
            lambda: self.ferry.count() == 0, WAIT), "the queue is not empty")
        time.sleep(3)
        ids = self.message_ids()
        self.assertEqual(sorted(ids), ["m0@diskfull.test", "m1@diskfull.test",
                                       "m2@diskfull.test"], ids)
        sys.stderr.write("disk full, smarthost up: %d message(s) received "
                         "while full, %d log line(s) in 6 s; all %d "
                         "received %.1f s after space was freed, %d "
                         "duplicate(s)\n" % (len(during), lines, len(ids),
                                             resumed,
                                             len(ids) - len(set(ids))))
        self.assertIn("store:   ok", self.status())

    def test_full_with_smarthost_down_refuses_quietly(self):
        self.smarthost.pause()
        self.start("4M")
        qid, = self.send(1)
        self.assertTrue(self.ferry.wait_log(
            r"%s: to=<%s>.*status=deferred" % (qid, RCPT), timeout=WAIT),
            self.ferry.log_tail())
        # 2 MiB left above min_free: a declared SIZE above that is
        # refused at MAIL (once the runner has looked and said so), a
        # smaller one is taken
        self.fill_to(6 << 20)
        big = " SIZE=%d" % (3 << 20)
        self.assertTrue(ft.wait_for(
            lambda: self.mail_reply(big).code == 452, 5),
            self.ferry.log_tail())
        r = self.mail_reply(big)
        self.assertEqual((r.code, r.esc), (452, "4.3.1"), r)
        self.assertIn("Insufficient system storage", r.text)
        self.assertEqual(self.mail_reply(" SIZE=100000").code, 250)
        self.send(1)
        sys.stderr.write("2 MiB above min_free: MAIL%s answered %r\n"
                         % (big, r))

        self.fill()
        self.assertTrue(self.ferry.wait_log(
            r"intake refusing new mail: .* free, below min_free 4096 KB",
            timeout=5), self.ferry.log_tail())
        self.assertRegex(self.status(),
                         r"intake:  refusing, .* free, below min_free "
                         r"4096 KB")
        # a new message is refused at MAIL, at once, before any data
        start = self.ferry.log_size()
        t0 = time.monotonic()
        with self.ferry.client() as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<%s>" % SENDER)
            elapsed = time.monotonic() - t0
            r2 = c.cmd("RCPT TO:<%s>" % RCPT)
            r3 = c.cmd("DATA")
            c.cmd("QUIT")
        self.assertEqual((r.code, r.esc), (452, "4.3.1"), r)
        self.assertEqual(r.text, "4.3.1 Insufficient system storage")
        self.assertLess(elapsed, 1.0)
        self.assertEqual(r2.code, 503, r2)     # no transaction began
        self.assertEqual(r3.code, 503, r3)
        sys.stderr.write("disk full, smarthost down: MAIL answered %r in "
                         "%.2f s\n" % (r, elapsed))
        self.assertTrue(self.ferry.wait_log(
            r"reject: from unknown\[127\.0\.0\.1\]: 452 4\.3\.1 "
            r"Insufficient system storage", start=start),
            self.ferry.log_tail())
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d"
                            % self.ferry.port, "--from", SENDER, "--to",
                            RCPT, "--timeout", "10"], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, r"<~?\*\* +452 4\.3\.1 Insufficient "
                         r"system storage")
        self.assertNotRegex(p.stdout, r"(?m)^ *~?-> +RCPT")

        # commits fail (an operator's flush needs one): back-off, quiet
        p = self.ferry.ctl("queue", "flush")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("could not commit", p.stderr)
        self.assertTrue(self.ferry.wait_log(r"commits failing", timeout=5),
                        self.ferry.log_tail())
        self.assertRegex(self.status(), r"store:   commits failing since "
                         r"\d\d:\d\d:\d\d \(.*full.*\)")
        pid = self.runner_pid()
        lines0 = len(self.ferry.log_text().splitlines())
        cpu0 = cpu_ticks(pid)
        time.sleep(10)
        cpu = cpu_ticks(pid) - cpu0
        lines = len(self.ferry.log_text().splitlines()) - lines0
        sys.stderr.write("disk full, smarthost down: %d log line(s), "
                         "runner CPU %.2f s in 10 s\n"
                         % (lines, cpu / CLK_TCK))
        self.assertLessEqual(lines, 5, self.ferry.log_tail(20))
        self.assertLess(cpu / CLK_TCK, 0.5)
        self.assertEqual(self.ferry.runners(), [pid])

        # space again: commits work, mail is taken again
        start = self.ferry.log_size()
        self.free()
        self.assertTrue(self.ferry.wait_log(r"commits work again",
                                            timeout=WAIT, start=start),
                        self.ferry.log_tail())
        self.assertTrue(self.ferry.wait_log(r"intake accepting mail again",
                                            timeout=5, start=start),
                        self.ferry.log_tail())
        self.assertIn("store:   ok", self.status())
        # at once: the same MAIL and SIZE are taken again
        self.assertEqual(self.mail_reply(big).code, 250)
        self.send(1)

    def test_delete_while_full_fails_truly(self):
        self.smarthost.pause()
        self.start("0")
        qid, = self.send(1)
        self.assertTrue(self.ferry.wait_log(
            r"%s: to=<%s>.*status=deferred" % (qid, RCPT), timeout=WAIT),
            self.ferry.log_tail())
        self.fill()
        p = self.ferry.ctl("queue", "delete", qid)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stderr, r"ferryctl: delete not done: the queue "
                         r"could not commit it \(.*full.*\)")
        self.assertNotIn("deleted", p.stdout)
        sys.stderr.write("delete while full: exit %d, %s"
                         % (p.returncode, p.stderr))
        self.assertEqual(self.ferry.ctl("queue", "show", qid).returncode, 0)
        # and after space is freed it was never deleted
        self.free()
        self.assertTrue(self.ferry.wait_log(r"commits work again",
                                            timeout=WAIT),
                        self.ferry.log_tail())
        self.assertEqual(self.ferry.ctl("queue", "show", qid).returncode, 0)
        self.assertEqual(self.ferry.count(where="qid = ?", args=(qid,)), 1)
        p = self.ferry.ctl("queue", "delete", qid)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.ferry.count(where="qid = ?", args=(qid,)), 0)

    def test_open_session_hears_the_disk_fill(self):
        """A session that stays open while the disk fills is refused at
        its next MAIL: the runner's note reaches it between transactions
        (the worker watches for it then instead of reading before every
        MAIL), and when space comes back so does its next message."""
        self.smarthost.pause()
        self.start("4M")
        content = (b"Subject: kept\r\nMessage-ID: <kept@diskfull.test>\r\n"
                   b"\r\nbody\r\n")
        with self.ferry.client() as c:
            c.ehlo()
            c.send_message(SENDER, (RCPT,), content)
            start = self.ferry.log_size()
            self.fill()
            self.assertTrue(self.ferry.wait_log(
                r"intake refusing new mail: .* free, below min_free "
                r"4096 KB", timeout=5, start=start), self.ferry.log_tail())
            time.sleep(0.2)     # the note on its way to the worker
            r = c.cmd("MAIL FROM:<%s>" % SENDER)
            # 452 4.3.1 for the space, or 451 4.3.0 once the runner's
            # own commits fail too (the deferral of the first message):
            # either way the runner's word, never a 250
            self.assertIn((r.code, r.esc), ((452, "4.3.1"), (451, "4.3.0")),
                          r)
            start = self.ferry.log_size()
            self.free()
            self.assertTrue(self.ferry.wait_log(
                r"intake accepting mail again", timeout=WAIT, start=start),
                self.ferry.log_tail())
            if "commits failing" in self.ferry.log_text():
                self.assertTrue(self.ferry.wait_log(
                    r"commits work again", timeout=WAIT, start=start),
                    self.ferry.log_tail())
            time.sleep(0.2)
            qid = c.send_message(SENDER, (RCPT,), content)
            c.cmd("QUIT")
        self.assertEqual(self.ferry.count(where="qid = ?", args=(qid,)), 1)


class IdleRunnerTest(ft.FerryTestCase):
    """A runner that may not start deliveries sleeps: with delivery
    paused (the daemon of the intake-only tests) it used to poll with a
    zero timeout."""

    ferry_options = {}

    def test_runner_sleeps_while_delivery_is_paused(self):
        self.ferry.send(b"Subject: idle\r\n\r\nqueued\r\n")
        pid, = self.ferry.runners()
        cpu0 = cpu_ticks(pid)
        time.sleep(3)
        cpu = (cpu_ticks(pid) - cpu0) / CLK_TCK
        self.assertLess(cpu, 0.2, "the runner used %.2f s of CPU in 3 s"
                        % cpu)


if __name__ == "__main__":
    ft.main(need_root=True)
