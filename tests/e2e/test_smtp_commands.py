#!/usr/bin/env python3
"""End-to-end: every SMTP command's reply code and enhanced status code,
pipelining, bare newlines in commands, and relay denial.

Most sessions are transcripts in transcripts/*.t (the format is described
at the top of transcripts/commands.t); each becomes a test method here.
After each transcript the queue must hold exactly the messages the
session saw "queued as", and nothing else.
"""

import glob
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TRANSCRIPTS = os.path.join(HERE, "transcripts")


def unescape(s):
    out, i = [], 0
    table = {"r": "\r", "n": "\n", "t": "\t", "\\": "\\"}
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in table:
            out.append(table[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def load_transcripts():
    """{name: [(lineno, kind, text)]} from every transcripts/*.t file;
    kind is "send", "expect" or "closed"."""
    sessions = {}
    for path in sorted(glob.glob(os.path.join(TRANSCRIPTS, "*.t"))):
        cur = None
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                where = "%s:%d" % (os.path.basename(path), n)
                if line.startswith("#") or not line.strip():
                    continue
                if line.startswith("=== "):
                    name = line[4:].strip()
                    if name in sessions:
                        raise ValueError("%s: session %s defined twice"
                                         % (where, name))
                    cur = sessions[name] = []
                    continue
                if cur is None:
                    raise ValueError("%s: line outside a session" % where)
                if line.startswith(">> "):
                    cur.append((where, "send", unescape(line[3:])))
                elif line == ">" or line.startswith("> "):
                    cur.append((where, "send", line[2:] + "\r\n"))
                elif line.startswith("< "):
                    cur.append((where, "expect", line[2:]))
                elif line == "! closed":
                    cur.append((where, "closed", None))
                else:
                    raise ValueError("%s: cannot parse %r" % (where, line))
    return sessions


class TranscriptTest(ft.FerryTestCase):
    ferry_options = {"hostname": "cmd.ferry-test.example",
                     "limits": {"errors": 100}}

    def run_transcript(self, steps):
        before = self.ferry.count("message")
        queued = []
        with self.ferry.client() as c:
            self.assertReply(c.greeting, 220, None,
                             "%s ESMTP ferry" % self.ferry.hostname)
            pending = b""
            for where, kind, text in steps:
                if kind == "send":
                    pending += text.encode("utf-8")
                    continue
                if pending:
                    c.send(pending)
                    pending = b""
                if kind == "closed":
                    self.assertTrue(c.is_closed(5),
                                    "%s: connection not closed" % where)
                    continue
                want = text.replace("$HOST", self.ferry.hostname)
                try:
                    got = c.read_line().decode("utf-8", "replace")
                except (OSError, EOFError) as e:
                    self.fail("%s: expected %r, got %r" % (where, want, e))
                self.assertTrue(got.startswith(want),
                                "%s: expected %r..., got %r"
                                % (where, want, got))
                m = re.match(r"250 2\.0\.0 Ok: queued as (\S+)$", got)
                if m:
                    queued.append(m.group(1))
            if pending:
                c.send(pending)
        for qid in queued:
            m = self.ferry.message(qid)
            self.assertIsNotNone(m, "queued %s is not in the queue" % qid)
            self.assertEqual(m["state"], "active")
        self.assertEqual(self.ferry.count("message") - before, len(queued),
                         "messages stored other than those queued")


def _make_test(steps):
    def test(self):
        self.run_transcript(steps)
    return test


for _name, _steps in load_transcripts().items():
    setattr(TranscriptTest, "test_transcript_" + _name, _make_test(_steps))


class CommandTest(ft.FerryTestCase):
    ferry_options = {"hostname": "cmd2.ferry-test.example",
                     "limits": {"message_size": 123456}}

    def test_greeting(self):
        with self.ferry.client() as c:
            self.assertEqual(c.greeting.code, 220)
            self.assertEqual(c.greeting.lines,
                             ["%s ESMTP ferry" % self.ferry.hostname])

    def test_ehlo_extensions(self):
        with self.ferry.client() as c:
            r = c.cmd("EHLO client.example")
            self.assertEqual(r.code, 250)
            self.assertEqual(r.lines[0], self.ferry.hostname)
            self.assertEqual(r.lines[1:], [
                "PIPELINING", "SIZE 123456", "8BITMIME",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING"])
            self.assertTrue(r.raw.endswith(b"\r\n250 CHUNKING\r\n"))
            self.assertEqual(r.raw.count(b"250-"), 7)

    def test_helo_no_extensions(self):
        with self.ferry.client() as c:
            r = c.cmd("HELO client.example")
            self.assertEqual(r.code, 250)
            self.assertEqual(r.lines, [self.ferry.hostname])

    def test_quit_closes(self):
        with self.ferry.client() as c:
            c.ehlo()
            r = c.cmd("QUIT")
            self.assertReply(r, 221, "2.0.0")
            self.assertTrue(c.is_closed(5))
            self.assertEqual(c.buf, b"", "data after the 221 reply")

    def test_log_counts_commands(self):
        start = self.ferry.log_size()
        with self.ferry.client() as c:
            c.ehlo()
            c.cmd("NOOP")
            c.cmd("BOGUS")
            c.cmd("QUIT")
            port = c.local_port
        self.assertIsNotNone(port)
        self.assertIsNotNone(self.ferry.wait_log(
            r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 noop=1 "
            r"quit=1 unknown=1 commands=4", start=start))

    def test_log_no_commands(self):
        """A client that leaves without a command: the line says
        commands=0 and nothing else between the address and it."""
        start = self.ferry.log_size()
        with self.ferry.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertIsNotNone(self.ferry.wait_log(
            r"(?m)disconnect from unknown\[127\.0\.0\.1\] commands=0$",
            start=start))

    def test_many_pipelined_commands(self):
        """A large pipelined batch: replies come back complete and in
        order even though they exceed any single buffer."""
        n = 2000
        with self.ferry.client(timeout=30) as c:
            c.ehlo()
            c.send(b"".join(b"NOOP %d\r\nVRFY user%d\r\n" % (i, i)
                            for i in range(n)))
            for i in range(n):
                self.assertReply(c.reply(), 250, "2.0.0")
                self.assertReply(c.reply(), 252, "2.5.0")
            self.assertReply(c.cmd("QUIT"), 221, "2.0.0")

    def test_message_after_errors(self):
        """Errors do not spoil the session: a message still goes
        through."""
        with self.ferry.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<bad"), 501, "5.5.4")
            self.assertReply(c.cmd("FOO"), 500, "5.5.2")
            qid = c.send_message("a@example.org", ["b@example.com"],
                                 b"after errors\r\n")
        m = self.ferry.message(qid)
        self.assertEqual(m["state"], "active")
        self.assertTrue(m["body"].endswith(b"\r\nafter errors\r\n"))


class RelayDenialTest(ft.FerryTestCase):
    ferry_options = {"hostname": "closed.ferry-test.example",
                     "networks": ["192.0.2.0/24", "2001:db8::/32"]}

    def test_relay_denied(self):
        with self.ferry.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250,
                             "2.1.0")
            r = c.cmd("RCPT TO:<b@example.com>")
            self.assertReply(r, 554, "5.7.1", "<b@example.com>: Relay "
                             "access denied")
            self.assertReply(c.cmd("RCPT TO:<Postmaster>"), 554, "5.7.1")
            self.assertReply(c.cmd("DATA"), 554, "5.5.1")
            c.send(b"BDAT 5 LAST\r\nhello")
            self.assertReply(c.reply(), 554, "5.5.1")
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
            self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertEqual(self.ferry.count("message"), 0)
        self.assertEqual(self.ferry.count("recipient"), 0)
        self.assertEqual(self.ferry.count("body"), 0)
        self.assertIsNotNone(self.ferry.wait_log(
            r"reject: from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
            r"<b@example\.com>: Relay access denied"))

    def test_relay_denied_pipelined(self):
        with self.ferry.client() as c:
            c.send(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
                   b"RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\n"
                   b"DATA\r\n")
            self.assertEqual(c.reply().code, 250)
            self.assertReply(c.reply(), 250, "2.1.0")
            self.assertReply(c.reply(), 554, "5.7.1")
            self.assertReply(c.reply(), 554, "5.7.1")
            self.assertReply(c.reply(), 554, "5.5.1")
            # the server did not take the lines below for message data
            self.assertReply(c.cmd("Subject: not data"), 500, "5.5.2")
        time.sleep(0.2)
        self.assertEqual(self.ferry.count("message"), 0)


if __name__ == "__main__":
    socket.setdefaulttimeout(ft.IO_TIMEOUT)
    ft.main()
