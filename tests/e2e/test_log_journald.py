#!/usr/bin/env python3
"""End-to-end: log { target = "journald" }.  A private systemd-journald
runs in a mount namespace of its own (tmpfs on /run and on
/var/log/journal, no kernel messages), ferryd runs in the same namespace
as a service does (no -d), relays a message to the test smarthost, and
journalctl must find the message's lines by their native fields:
QUEUE_ID= gives the worker's client line, the accepted line and the
delivery (STATUS=sent, DSN=2.0.0, TO=, RELAY=) with the text of each line
in MESSAGE, from the right SYSLOG_IDENTIFIER; CLIENT= and EVENT= find the
session's lines.  Skipped (77) where a private journald cannot run: not
root, no unshare/nsenter/systemd-journald/journalctl, no mount namespace,
or ferry built without libsystemd."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"
JOURNALD = next((p for p in ("/lib/systemd/systemd-journald",
                             "/usr/lib/systemd/systemd-journald")
                 if os.access(p, os.X_OK)), None)
JOURNAL_CONF = "[Journal]\nStorage=volatile\nReadKMsg=no\n" \
               "RateLimitBurst=0\n"


def built_with_systemd():
    path = os.path.join(ft.BUILDDIR, "autoconfig.h")
    try:
        with open(path) as f:
            return "#define HAVE_SYSTEMD 1" in f.read()
    except OSError:
        return False


class PrivateJournal:
    """systemd-journald in a mount namespace of its own."""

    def __init__(self):
        script = (
            "set -e; mount -t tmpfs tmpfs /run; "
            "if [ -d /var/log/journal ]; then "
            "mount -t tmpfs tmpfs /var/log/journal; fi; "
            "mkdir -p /run/systemd/journald.conf.d /run/log; "
            "printf '%s' '" + JOURNAL_CONF + "' > "
            "/run/systemd/journald.conf.d/ferry-test.conf; "
            "exec " + JOURNALD)
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, SYSTEMD_LOG_TARGET="console"))
        sock = "/proc/%d/root/run/systemd/journal/socket" % self.proc.pid
        if not ft.wait_for(lambda: self.proc.poll() is not None or
                           os.path.exists(sock), 10):
            self.stop()
            raise OSError("no journal socket")
        if self.proc.poll() is not None:
            raise OSError("journald exited with %d" % self.proc.returncode)

    def enter(self, argv):
        """argv run inside the namespace (nsenter execs it: same pid)."""
        return ["nsenter", "-t", str(self.proc.pid), "-m", "--"] + argv

    def entries(self, *matches):
        """The entries that match journalctl's FIELD=value arguments."""
        r = subprocess.run(self.enter(["journalctl", "--no-pager", "-o",
                                       "json"] + list(matches)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        out = []
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class JournalFerry(ft.Ferry):
    """ferryd as a service runs it (no -d), inside the journal's mount
    namespace, with log { target = "journald" }."""

    def __init__(self, journal, **kw):
        super().__init__(**kw)
        self.journal = journal

    def config_text(self, **changes):
        text = super().config_text(**changes)
        assert 'target = "stderr"' in text
        return text.replace('target = "stderr"', 'target = "journald"')

    def _start_once(self):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            self.journal.enter([ft.FERRYD, "-f", self.conf]),
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            cwd=self.dir)
        self.pid = self.proc.pid
        ft._live.append(self)
        end = time.monotonic() + ft.START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.exit_status = self.proc.returncode
                self._forget()
                raise OSError("ferryd exited with status %d"
                              % self.proc.returncode)
            started = any("queue runner started" in e.get("MESSAGE", "")
                          for e in self.journal.entries(
                              "SYSLOG_IDENTIFIER=ferry-queue"))
            if started:
                try:
                    with ft.Client(self.port, timeout=2) as c:
                        if c.greeting.code == 220:
                            c.cmd("QUIT")
                            return
                except (OSError, EOFError, ft.SMTPError):
                    pass
            if time.monotonic() >= end:
                raise OSError("no 220 greeting within %.0f s"
                              % ft.START_TIMEOUT)
            time.sleep(0.1)


class LogJournaldTest(ft.FerryTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for tool in ("unshare", "nsenter", "journalctl"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("no %s" % tool)
        if JOURNALD is None:
            raise unittest.SkipTest("no systemd-journald")
        if not built_with_systemd():
            raise unittest.SkipTest("ferry is built without libsystemd")
        try:
            cls.journal = PrivateJournal()
        except OSError as e:
            raise unittest.SkipTest("no private journald here: %s" % e)

    @classmethod
    def tearDownClass(cls):
        cls.journal.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.dest = sh.SmartHost().start()
        self.addCleanup(self.dest.stop)
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": [self.dest.address], "tls": "none"}
        ferry = JournalFerry(
            self.journal, routes=[route],
            delivery={"retry_schedule": [1], "connect_timeout": 5})

        def cleanup():
            if self._failed():
                sys.stderr.write("\n[%s] ferryd stderr:\n%s\njournal:\n%s\n"
                                 % (self.id(), ferry.log_tail(),
                                    "\n".join(
                                        "%s: %s" % (
                                            e.get("SYSLOG_IDENTIFIER"),
                                            e.get("MESSAGE"))
                                        for e in self.journal.entries())))
            ferry.stop()
        self.addCleanup(cleanup)
        self.ferry = ferry.start()

    def tearDown(self):
        self.ferry = None       # the cleanup prints the journal and stops
        super().tearDown()

    def wait_entries(self, pred, *matches):
        found = []

        def look():
            found[:] = [e for e in self.journal.entries(*matches)
                        if pred(e)]
            return bool(found)
        self.assertTrue(ft.wait_for(look, WAIT, 0.2),
                        "no journal entry for %r" % (matches,))
        return found

    def test_queue_id_finds_the_message(self):
        qid = self.ferry.send(b"Subject: journal\r\n\r\nhello\r\n",
                              sender=SENDER, rcpts=[RCPT])
        self.dest.wait_messages(1, WAIT)
        (d,) = self.wait_entries(lambda e: e.get("EVENT") == "delivery",
                                 "QUEUE_ID=" + qid)
        self.assertEqual(d["SYSLOG_IDENTIFIER"], "ferry-queue")
        self.assertEqual(d["TO"], RCPT)
        self.assertEqual(d["STATUS"], "sent")
        self.assertEqual(d["DSN"], "2.0.0")
        self.assertEqual(d["PRIORITY"], "6")
        self.assertEqual(d["SYSLOG_FACILITY"], "2")
        self.assertNotIn("CODE_FILE", d)
        host, port = self.dest.address.rsplit(":", 1)
        self.assertIn("[%s]:%s" % (host, port), d["RELAY"])
        self.assertGreaterEqual(float(d["DELAY"]), 0)
        self.assertTrue(d["MESSAGE"].startswith(
            "%s: to=<%s>, relay=" % (qid, RCPT)), d["MESSAGE"])
        self.assertIn("status=sent", d["MESSAGE"])

        self.wait_entries(lambda e: e.get("EVENT") == "removed",
                          "QUEUE_ID=" + qid)
        events = {e.get("EVENT"): e for e in
                  self.journal.entries("QUEUE_ID=" + qid)}
        self.assertLessEqual({"client", "accepted", "delivery", "removed"},
                             set(events), sorted(events))
        a = events["accepted"]
        self.assertEqual(a["SYSLOG_IDENTIFIER"], "ferry-queue")
        self.assertEqual(a["FROM"], SENDER)
        self.assertEqual(a["CLIENT"], "unknown[127.0.0.1]")
        self.assertEqual(a["NRCPT"], "1")
        self.assertTrue(a["MESSAGE"].startswith(
            "%s: from=<%s>, size=%s, nrcpt=1" % (qid, SENDER, a["SIZE"])),
            a["MESSAGE"])
        c = events["client"]
        self.assertEqual(c["SYSLOG_IDENTIFIER"], "ferry-smtpd")
        self.assertEqual(c["MESSAGE"],
                         "%s: client=unknown[127.0.0.1]" % qid)

        # the session, by client and event; the master's own lines too
        conns = self.journal.entries("CLIENT=unknown[127.0.0.1]",
                                     "EVENT=connect")
        self.assertTrue(conns)
        self.assertTrue(all(e["SYSLOG_IDENTIFIER"] == "ferry-smtpd"
                            for e in conns))
        self.assertTrue(self.journal.entries("SYSLOG_IDENTIFIER=ferryd",
                                             "EVENT=log"))
        # nothing fell back to ferryd's stderr
        self.assertNotIn('"event"', self.ferry.log_text())


if __name__ == "__main__":
    ft.main(need_root=True)
