#!/usr/bin/env python3
"""End-to-end: a damaged queue database, a lost WAL and an unreachable
runner, as an operator meets them.

- queue.db truncated, garbage over page 1, garbage over a middle page
  (ferry stopped, then started): the runner stays up, logs one line naming
  the file, new sessions are refused at once (421 4.3.0 at the greeting,
  or 451 4.3.0 at MAIL, within 1 s of connecting: nobody waits at DATA),
  ferryctl status says why in one line, and "ferryctl queue salvage"
  rebuilds the queue from the readable messages - each one whole and as
  sent - keeps the damaged file, and the runner takes mail again;
- the -wal removed after kill -9: detected, mail refused until
  "ferryctl queue accept-loss"; a kill -9 without removal loses nothing
  and raises no alarm;
- ferryctl status answers within 1 s when the runner does not answer, and
  works with an invalid configuration file on disk;
- a runner killed and unable to start again: new sessions get 421 4.3.0
  at the greeting within 1 s (smtplib and swaks), a session greeted
  before it died gets 451 4.3.0 at MAIL, and once a runner is back mail
  is taken at once.
Needs root."""

import glob
import os
import pwd
import re
import select
import shutil
import signal
import smtplib
import socket
import sqlite3
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from ferrytest import split_received  # noqa: E402

N = 12
PAGE = 4096
FRAME_HEAD = struct.calcsize("!IHH")
QUEUE_STATE_OK, QUEUE_STATE_FAILING = 0, 2   # store_health.h


def queue_state_type():
    """IMSG_QUEUE_STATE's number: ipc.h's enum counts from 1."""
    with open(os.path.join(ft.SRCDIR, "include", "ipc.h")) as f:
        text = f.read()
    body = text[text.index("enum ipc_type {"):text.index("IMSG_TYPE_MAX")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return re.findall(r"IMSG_(\w+)", body).index("QUEUE_STATE") + 1


class IntakeListener:
    """A process running as the SMTP user on the runner's intake socket
    that passes on the QUEUE_STATE notes it is sent (the state byte of
    each), as a worker's connection would see them."""

    def __init__(self, d):
        pw = pwd.getpwnam(ft.SMTPD_USER)
        path = os.path.join(d.spool, "smtpd", "queue.sock")
        rd, wr = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(rd)
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(20)
                sock.connect(path)
                note = queue_state_type()
                buf = b""
                while True:
                    b = sock.recv(4096)
                    if not b:
                        break
                    buf += b
                    while len(buf) >= FRAME_HEAD:
                        plen, ftype, _ = struct.unpack("!IHH",
                                                       buf[:FRAME_HEAD])
                        if len(buf) < FRAME_HEAD + plen:
                            break
                        if ftype == note and plen == 9:
                            os.write(wr, buf[FRAME_HEAD:FRAME_HEAD + 1])
                        buf = buf[FRAME_HEAD + plen:]
            except BaseException:
                pass
            os._exit(0)
        os.close(wr)
        self.rd = rd

    def next_state(self, timeout=5):
        """The next state noted, or None."""
        ready, _, _ = select.select([self.rd], [], [], timeout)
        if not ready:
            return None
        b = os.read(self.rd, 1)
        return b[0] if b else None

    def close(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.rd)


def content(i):
    """A message of about 6 KiB, different for each i."""
    line = ("message %02d " % i) * 7 + "\r\n"
    return (("From: a@origin.test\r\nTo: b@dest.test\r\n"
             "Subject: damage %d\r\n\r\n" % i) + line * 70).encode()


def ctl_start_cost():
    """How long ferryctl takes to start and give up at once here (the
    machine may be loaded): the rest of a status call is ferry's."""
    t0 = time.monotonic()
    ft.subprocess.run([ft.FERRYCTL, "-s", "/nonexistent/ferryctl.sock",
                       "status"], capture_output=True, timeout=10)
    return time.monotonic() - t0


def varint(buf, at):
    """SQLite's big-endian varint at buf[at]: (value, offset after it)."""
    value = 0
    for i in range(9):
        b = buf[at + i]
        if i == 8:
            return (value << 8) | b, at + 9
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, at + i + 1


def table_leaves(path, table):
    """The leaf pages of a rowid table's b-tree in queue.db (ferry
    stopped), in key order: [(page number, [row ids on it])].  Read from the
    file by SQLite's page layout, so a test damages a page for what it
    holds, wherever auto-vacuum's pointer-map pages put it: the first byte
    of a b-tree page (after the 100-byte file header on page 1) is 0x05
    for an interior table page, 0x0d for a leaf; its cell count is at
    offset 3, an interior page's right-most child at offset 8, its cell
    pointers from offset 12 (a leaf's from 8), each interior cell starts
    with its left child's page number and each leaf cell with two
    varints, its payload's size and its row id."""
    con = sqlite3.connect("file:%s?immutable=1" % path, uri=True)
    try:
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE "
                           "type = 'table' AND name = ?",
                           (table,)).fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    with open(path, "rb") as f:
        data = f.read()
    leaves = []

    def walk(pgno):
        page = data[(pgno - 1) * size:pgno * size]
        head = 100 if pgno == 1 else 0
        kind = page[head]
        cells = struct.unpack(">H", page[head + 3:head + 5])[0]
        if kind == 0x0D:
            rowids = []
            for i in range(cells):
                at = head + 8 + 2 * i
                cell = struct.unpack(">H", page[at:at + 2])[0]
                _, cell = varint(page, cell)        # payload size
                rowids.append(varint(page, cell)[0])
            leaves.append((pgno, rowids))
            return
        assert kind == 0x05, "page %d of %s is of type %#x" % (pgno, table,
                                                               kind)
        for i in range(cells):
            at = head + 12 + 2 * i
            cell = struct.unpack(">H", page[at:at + 2])[0]
            walk(struct.unpack(">I", page[cell:cell + 4])[0])
        walk(struct.unpack(">I", page[head + 8:head + 12])[0])
    walk(root)
    return leaves


class DamageCase(ft.FerryTestCase):

    def queue_some(self, d, n=N):
        """n messages accepted (delivery is paused); {qid: content}."""
        sent = {}
        for i in range(n):
            sent[d.send(content(i), rcpts=["b@dest.test"])] = content(i)
        return sent

    def restart(self, d):
        """ferryd started again on the same spool (the runner may refuse
        its store: start() waits for a 220 and the runner's first line)."""
        d.stop(remove=False)
        d.start()

    def check_queue(self, d):
        return ft.subprocess.run([ft.FERRYD, "-n", "--check-queue", "-f",
                                  d.conf], capture_output=True, text=True,
                                 timeout=30)

    def trouble_lines(self, d, what):
        return [ln for ln in d.log_text().splitlines()
                if "queue: " in ln and what in ln]

    def assert_refuses_fast(self, d):
        """A new session is refused at once: "421 4.3.0" at the greeting
        (the worker knows the queue is unavailable) or "451 4.3.0" at
        MAIL, within 1 s of connecting - nobody waits at DATA.  The
        reply."""
        t0 = time.monotonic()
        with d.client() as c:
            r = c.greeting
            if r.code == 220:
                c.ehlo()
                r = c.cmd("MAIL FROM:<a@origin.test>")
            elapsed = time.monotonic() - t0
            self.assertIn((r.code, r.esc), ((421, "4.3.0"), (451, "4.3.0")),
                          r)
            if r.code == 421:
                self.assertTrue(c.is_closed(), "open after the 421")
        self.assertLess(elapsed, 1.0, "the refusal took %.2f s from "
                        "connect" % elapsed)
        return r

    def assert_status_says(self, d, pattern):
        cost = ctl_start_cost()
        t0 = time.monotonic()
        p = d.ctl("status")
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertRegex(lines[0], pattern)
        self.assertLess(elapsed - cost, 1.0, "status took %.2f s (%.2f s "
                        "to start ferryctl)" % (elapsed, cost))

    def assert_salvaged(self, d, sent, at_least):
        """queue salvage: exit 0, what it reports is what the new queue
        holds, every message in it whole and as sent, the damaged file
        kept, and the runner taking mail again.  The qids saved."""
        p = d.ctl("queue", "salvage")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        m = re.search(r"salvaged (\d+) of (\d+) message\(s\) read, with "
                      r"(\d+) pending", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        saved = int(m.group(1))
        self.assertIn("the queue runner opened the new file", p.stdout)
        kept = glob.glob(d.db_path + ".damaged-" + "[0-9]" * 14)
        self.assertEqual(len(kept), 1, os.listdir(os.path.dirname(
            d.db_path)))
        self.assertIn(kept[0], p.stdout)
        rows = d.query("SELECT qid FROM message")
        self.assertEqual(len(rows), saved)
        self.assertEqual(d.count("recipient", "state = 'pending'"),
                         int(m.group(3)))
        self.assertGreaterEqual(saved, at_least, p.stdout)
        for r in rows:
            self.assertIn(r["qid"], sent)
            msg = d.message(r["qid"])
            self.assertEqual(split_received(msg["body"])[1], sent[r["qid"]])
            self.assertEqual([x["address"] for x in msg["recipients"]],
                             ["b@dest.test"])
        st = os.stat(d.db_path)
        self.assertEqual(st.st_uid, os.stat(kept[0]).st_uid)
        # the runner took the new file: status answers, mail is taken
        self.assertIs(d.ctl_json("status").get("ok"), True)
        qid = d.send(content(50), rcpts=["b@dest.test"])
        self.assertIsNotNone(d.message(qid))
        return [r["qid"] for r in rows]

    def damaged_start(self, d, damage):
        """Stops d, damages its queue.db, starts it again and checks the
        refusal: one log line naming the file, a runner that stays up,
        a fast 451 and a one-line status."""
        d.stop(remove=False)
        damage(d.db_path)
        p = self.check_queue(d)
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertIn(d.db_path, p.stderr)
        start = d.log_size()
        d.start()
        runner = d.runners()
        self.assertEqual(len(runner), 1)
        self.assertIsNotNone(d.wait_log(r"queue: %s: damaged"
                                        % re.escape(d.db_path), 5, start))
        self.assert_refuses_fast(d)
        self.assert_status_says(d, r"the queue is unavailable: %s: damaged"
                                % re.escape(d.db_path))
        time.sleep(2)
        self.assertEqual(d.runners(), runner, "the runner restarted")
        lines = [ln for ln in d.log_text()[start:].splitlines()
                 if "damaged" in ln]
        self.assertEqual(len(lines), 1, lines)   # once, not a flood


class DamagedDatabaseTest(DamageCase):

    def test_truncated(self):
        d = self.start_ferry()
        sent = self.queue_some(d)

        def cut(path):
            # 40% of the pages after the schema's root pages (the empty
            # tables and indexes it makes up front) go: the tail of the
            # mail, whatever the number of tables
            con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            try:
                roots = con.execute("SELECT max(rootpage) FROM"
                                    " sqlite_master").fetchone()[0]
            finally:
                con.close()
            pages = os.path.getsize(path) // PAGE
            os.truncate(path, (roots + (pages - roots) * 6 // 10) * PAGE)
        self.damaged_start(d, cut)
        saved = self.assert_salvaged(d, sent, 1)
        self.assertLess(len(saved), N)    # the tail was cut off

    def test_garbage_over_page_1(self):
        d = self.start_ferry()
        sent = self.queue_some(d)

        def garbage(path):
            with open(path, "r+b") as f:
                f.write(os.urandom(PAGE))
        self.damaged_start(d, garbage)
        # the schema page is made again: nothing else was hit
        saved = self.assert_salvaged(d, sent, N)
        self.assertEqual(sorted(saved), sorted(sent))

    def test_garbage_over_a_middle_page(self):
        d = self.start_ferry()
        sent = self.queue_some(d)

        hit = []

        def garbage(path):
            # a leaf of the body table in the middle of the file, whatever
            # else (pointer maps, overflow pages) lies around it
            self.assertFalse(os.path.exists(path + "-wal") and
                             os.path.getsize(path + "-wal") > 0,
                             "the WAL still holds pages")
            leaves = table_leaves(path, "body")
            self.assertGreaterEqual(len(leaves), 3, leaves)
            pgno, rowids = leaves[len(leaves) // 2]
            self.assertGreater(len(rowids), 0)
            con = sqlite3.connect("file:%s?immutable=1" % path, uri=True)
            try:
                hit.extend(r[0] for r in con.execute(
                    "SELECT DISTINCT m.qid FROM body b JOIN message m"
                    " ON m.id = b.message_id WHERE b.rowid IN (%s)"
                    % ",".join("?" * len(rowids)), rowids))
            finally:
                con.close()
            self.assertLessEqual(len(hit), 3, leaves)
            with open(path, "r+b") as f:
                f.seek((pgno - 1) * PAGE)
                f.write(os.urandom(PAGE))
        self.damaged_start(d, garbage)
        # that leaf holds the start of a few bodies: only those are lost
        saved = self.assert_salvaged(d, sent, N - len(hit))
        self.assertEqual(sorted(saved), sorted(set(sent) - set(hit)))

    def test_check_on_a_sound_queue(self):
        d = self.start_ferry()
        self.queue_some(d, 2)
        doc = d.ctl_json("queue", "check")
        self.assertIs(doc.get("ok"), True, doc)
        p = self.check_queue(d)                # beside the running runner
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        self.assertIn("queue OK", p.stdout)
        p = d.ctl("queue", "salvage")          # refused: it is in use
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertIn("stop ferry", p.stderr)
        self.assertEqual(d.count(), 2)


class UnopenableTest(DamageCase):

    def test_database_not_readable(self):
        d = self.start_ferry()
        self.queue_some(d, 3)
        d.stop(remove=False)
        os.chmod(d.db_path, 0)
        start = d.log_size()
        d.start()
        self.assertIsNotNone(d.wait_log(r"queue: %s: .*refusing mail"
                                        % re.escape(d.db_path), 5, start))
        runner = d.runners()
        self.assert_refuses_fast(d)
        self.assert_status_says(d, r"unavailable: %s"
                                % re.escape(d.db_path))
        time.sleep(2)
        self.assertEqual(d.runners(), runner, "the runner restarted")
        self.assertEqual(len(self.trouble_lines(d, "refusing mail")), 1)
        # a worker's connection is told the queue is failing...
        listener = IntakeListener(d)
        try:
            self.assertEqual(listener.next_state(), QUEUE_STATE_FAILING)
            # put right by hand: reopen, and nothing was lost
            os.chmod(d.db_path, 0o600)
            p = d.ctl("queue", "reopen")
            self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
            # ...and that it is sound again once the store is open
            self.assertEqual(listener.next_state(), QUEUE_STATE_OK)
        finally:
            listener.close()
        self.assertIs(d.ctl_json("status").get("ok"), True)
        self.assertEqual(d.count(), 3)


class LostWalTest(DamageCase):

    def test_wal_removed_after_kill_is_detected(self):
        d = self.start_ferry()
        self.queue_some(d)
        # kill -9 the runner itself first: killed after the master, it
        # may take the master's death (SIGTERM) and close its store
        # cleanly - checkpointed, the WAL gone with nothing in it - before
        # its SIGKILL arrives.  The master, stopped, cannot restart it.
        os.kill(d.proc.pid, signal.SIGSTOP)
        for pid in d.runners():
            os.kill(pid, signal.SIGKILL)
        d.kill_all()
        wal = d.db_path + "-wal"
        self.assertGreater(os.path.getsize(wal), 32)
        os.unlink(wal)
        start = d.log_size()
        d.start()
        self.assertIsNotNone(d.wait_log(
            r"queue: %s: the WAL .* held committed mail .* missing: that "
            r"mail is lost; refusing mail until \"ferryctl queue "
            r"accept-loss\"" % re.escape(d.db_path), 5, start))
        self.assert_refuses_fast(d)
        self.assert_status_says(d, r"unavailable: .*WAL.*lost")
        # nothing but the operator ends it
        self.restart(d)
        self.assert_refuses_fast(d)
        p = d.ctl("queue", "accept-loss")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        self.assertIsNotNone(d.wait_log(r"accepted the loss", 5))
        qid = d.send(content(1), rcpts=["b@dest.test"])
        self.assertIsNotNone(d.message(qid))
        self.assertIs(d.ctl_json("status").get("ok"), True)
        # and it stays accepted across a restart
        self.restart(d)
        self.assertIs(d.ctl_json("status").get("ok"), True)

    def test_wal_checkpointed_by_another_process_is_no_loss(self):
        d = self.start_ferry()
        sent = self.queue_some(d, 4)
        pids = d.children()
        d.kill_all()
        self.assertTrue(ft.wait_for(lambda: not any(ft.alive(p)
                                                    for p in pids), 5))
        # an operator's look at the queue while ferry is down: SQLite
        # copies the WAL into queue.db and removes it
        self.assertEqual(d.count(), 4)
        self.assertFalse(os.path.exists(d.db_path + "-wal"))
        start = d.log_size()
        d.start()
        self.assertIsNotNone(d.wait_log(r"4 message\(s\) queued", 5, start))
        self.assertNotIn("lost", d.log_text()[start:])
        self.assertEqual(sorted(r["qid"] for r in
                                d.query("SELECT qid FROM message")),
                         sorted(sent))

    def test_kill_without_loss_raises_no_alarm(self):
        d = self.start_ferry()
        sent = self.queue_some(d)
        d.kill_all()
        start = d.log_size()
        d.start()
        self.assertIsNotNone(d.wait_log(r"%d message\(s\) queued" % N, 5,
                                        start))
        self.assertNotIn("lost", d.log_text()[start:])
        self.assertEqual(sorted(r["qid"] for r in
                                d.query("SELECT qid FROM message")),
                         sorted(sent))


class CtlReachTest(DamageCase):

    def test_status_within_a_second_when_the_runner_does_not_answer(self):
        d = self.start_ferry()
        (runner,) = d.runners()
        cost = ctl_start_cost()
        os.kill(runner, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            p = d.ctl("status")
            elapsed = time.monotonic() - t0
        finally:
            os.kill(runner, signal.SIGCONT)
        self.assertEqual(p.returncode, 75, (p.stdout, p.stderr))
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertRegex(p.stderr, r"did not answer within \d+ ms")
        self.assertLess(elapsed - cost, 1.0, "status took %.2f s (%.2f s "
                        "to start ferryctl)" % (elapsed, cost))

    def test_status_with_an_invalid_file_on_disk(self):
        d = self.start_ferry()
        text = d.config_text()
        d.write_config(text=text + "\nthis is { not ferry\n")
        p = ft.subprocess.run([ft.FERRYCTL, "-f", d.conf, "status"],
                              capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        self.assertRegex(p.stdout, r"(?i)worker")
        self.assertIn("using the socket of its spool_dir line: %s"
                      % d.ctl_socket, p.stderr)


    def test_client_without_permission_gets_a_framed_refusal(self):
        """A client the runner refuses (here: the socket opened to all
        by hand, the client "nobody") gets the refusal as an answer that
        ferryctl reads, not bytes that break its protocol."""
        d = self.start_ferry()
        os.chmod(d.ctl_socket, 0o666)
        os.chmod(os.path.dirname(d.ctl_socket), 0o755)
        p = ft.subprocess.run(["setpriv", "--reuid=nobody",
                               "--regid=nogroup", "--clear-groups",
                               ft.FERRYCTL, "-s", d.ctl_socket, "status"],
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertEqual(p.stderr.strip(), "ferryctl: permission denied")
        self.assertIsNotNone(d.wait_log(r"ferryctl: refused a client "
                                        r"without permission", 5))
        self.assertIs(d.ctl_json("status").get("ok"), True)


class RunnerDownTest(DamageCase):
    """The queue runner killed and unable to start again (its program
    replaced by one that exits at once, in a private copy of the
    programs, so that nothing else is touched): the master keeps the
    intake socket, so a worker's connection is taken but never
    answered."""

    PROGRAMS = ("ferryd", "ferry-smtpd", "ferry-queue", "ferry-deliver",
                "ferry-anvil", "ferry-check")

    def setUp(self):
        super().setUp()
        self.bindir = tempfile.mkdtemp(prefix="ferry-bin-")
        for prog in self.PROGRAMS:
            shutil.copy2(os.path.join(ft.BUILDDIR, "src", prog),
                         self.bindir)
        os.chmod(self.bindir, 0o755)
        self.runner_prog = os.path.join(self.bindir, "ferry-queue")
        os.link(self.runner_prog, self.runner_prog + ".real")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.bindir, ignore_errors=True)

    def start_private(self):
        saved = ft.FERRYD
        ft.FERRYD = os.path.join(self.bindir, "ferryd")
        try:
            return self.start_ferry()
        finally:
            ft.FERRYD = saved

    def runner_cannot_start(self):
        broken = self.runner_prog + ".new"
        with open(broken, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(broken, 0o755)
        os.rename(broken, self.runner_prog)

    def runner_can_start(self):
        shutil.copy2(self.runner_prog + ".real", self.runner_prog + ".new")
        os.rename(self.runner_prog + ".new", self.runner_prog)

    def test_runner_down_refused_at_greeting_within_a_second(self):
        d = self.start_private()
        qid = d.send(content(1), rcpts=["b@dest.test"])
        self.assertIsNotNone(d.message(qid))
        # a session greeted while the runner was there
        early = d.client()
        self.assertEqual(early.greeting.code, 220)
        early.ehlo()
        self.runner_cannot_start()
        (runner,) = d.runners()
        start = d.log_size()
        os.kill(runner, signal.SIGKILL)
        self.assertIsNotNone(d.wait_log(r"queue runner \(pid %d\) died"
                                        % runner, 5, start))
        try:
            # the session that was greeted: 451 4.3.0 at MAIL, at once
            t0 = time.monotonic()
            r = early.cmd("MAIL FROM:<a@origin.test>")
            elapsed = time.monotonic() - t0
            self.assertEqual((r.code, r.esc), (451, "4.3.0"), r)
            self.assertLess(elapsed, 1.0, "MAIL took %.2f s" % elapsed)
            sys.stderr.write("runner down: MAIL in a session greeted "
                             "before answered %r in %.2f s\n"
                             % (r, elapsed))
        finally:
            early.close()
        # new sessions: 421 4.3.0 at the greeting within 1 s, again and
        # again while the runner stays down
        for _ in range(3):
            r = self.assert_refuses_fast(d)
            self.assertEqual(r.code, 421, r)
        t0 = time.monotonic()
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", d.port, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(cm.exception.smtp_code, 421)
        self.assertTrue(cm.exception.smtp_error.startswith(b"4.3.0 "),
                        cm.exception.smtp_error)
        self.assertLess(elapsed, 1.0, "smtplib's greeting took %.2f s"
                        % elapsed)
        sys.stderr.write("runner down: smtplib got %d %s in %.2f s\n"
                         % (cm.exception.smtp_code,
                            cm.exception.smtp_error.decode(), elapsed))
        t0 = time.monotonic()
        p = ft.subprocess.run(["swaks", "--server", "127.0.0.1:%d" % d.port,
                               "--from", "a@origin.test", "--to",
                               "b@dest.test", "--timeout", "10"],
                              capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - t0
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, r"<\*\* +421 4\.3\.0 ")
        self.assertNotRegex(p.stdout, r"(?m)^ *-> +MAIL")
        sys.stderr.write("runner down: swaks exit %d in %.2f s (perl "
                         "start included)\n" % (p.returncode, elapsed))
        self.assertEqual(d.count(), 1)
        # a runner again: mail is taken as soon as it has started
        start = d.log_size()
        self.runner_can_start()
        self.assertIsNotNone(d.wait_log(r"queue runner started: ", 25,
                                        start))
        with d.client() as c:
            self.assertEqual(c.greeting.code, 220, c.greeting)
            c.ehlo()
            qid2 = c.send_message("a@origin.test", ["b@dest.test"],
                                  content(2))
            c.cmd("QUIT")
        self.assertIsNotNone(d.message(qid2))
        self.assertEqual(d.count(), 2)


if __name__ == "__main__":
    ft.main(need_root=True)
