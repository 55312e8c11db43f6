#!/usr/bin/env python3
"""End-to-end: the configured limits (message size, recipients, line
lengths, errors, command and data deadlines), the refusal of bare CR and
LF in message data (SMTP smuggling), and bounded memory."""

import os
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

SIZE_LIMIT = 10000
RCPT_LIMIT = 3
LINE_LIMIT = 512
DATA_LINE_LIMIT = 1000
ERROR_LIMIT = 4


def vm_kib(pid, field):
    try:
        return int(ft.proc_status(pid)[field].split()[0])
    except (OSError, KeyError):
        return None


class LimitTest(ft.FerryTestCase):
    ferry_options = {"hostname": "limits.ferry-test.example",
                     "limits": {"message_size": SIZE_LIMIT,
                                "recipients": RCPT_LIMIT,
                                "line_length": LINE_LIMIT,
                                "data_line_length": DATA_LINE_LIMIT,
                                "errors": ERROR_LIMIT}}

    def setUp(self):
        self.before = self.ferry.count("message")

    def assertNothingStored(self):
        """No message was added, and none is left half-received."""
        ok = ft.wait_for(lambda: self.ferry.count("message") == self.before,
                         3)
        self.assertTrue(ok, "a refused message was stored")
        self.assertEqual(self.ferry.count("message", "state = 'incoming'"),
                         0)

    def open_tx(self, c, rcpts=("rcpt@example.com",), params=""):
        c.ehlo()
        c.envelope("sender@example.org", list(rcpts), mail_params=params)

    # ---------------------------------------------------------- size

    def test_size_parameter(self):
        with self.ferry.client() as c:
            r = c.ehlo()
            self.assertIn("SIZE %d" % SIZE_LIMIT, r.lines)
            r = c.cmd("MAIL FROM:<a@example.org> SIZE=%d" % (SIZE_LIMIT + 1))
            self.assertReply(r, 552, "5.3.4", "message size exceeds fixed "
                             "limit (%d octets)" % SIZE_LIMIT)
            self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1")
            self.assertReply(c.cmd("MAIL FROM:<a@example.org> SIZE=%d"
                                   % SIZE_LIMIT), 250, "2.1.0")

    def test_data_over_limit(self):
        line = b"x" * 98 + b"\r\n"
        exact = line * (SIZE_LIMIT // len(line))
        self.assertEqual(len(exact), SIZE_LIMIT)
        with self.ferry.client() as c:
            self.open_tx(c)
            r = c.data(exact[:-2] + b"yy\r\n")     # one byte too many
            self.assertReply(r, 552, "5.3.4")
            self.assertNothingStored()
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
            # exactly the limit is fine
            c.envelope("sender@example.org", ["rcpt@example.com"])
            qid = ft.queued_id(c.data(exact))
        m = self.ferry.message(qid)
        self.assertTrue(m["body"].endswith(exact))
        _, rest = ft.split_received(m["body"])
        self.assertEqual(rest, exact)

    def test_data_far_over_limit(self):
        with self.ferry.client() as c:
            self.open_tx(c)
            r = c.data(b"z" * 900 + b"\r\n" * 1 + (b"w" * 98 + b"\r\n") * 500)
            self.assertReply(r, 552, "5.3.4")
            self.assertReply(c.cmd("QUIT"), 221)
        self.assertNothingStored()

    def test_bdat_over_limit(self):
        with self.ferry.client() as c:
            self.open_tx(c)
            chunk = (b"b" * 98 + b"\r\n") * 60
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            self.assertReply(c.reply(), 250, "2.0.0")
            c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
            self.assertReply(c.reply(), 552, "5.3.4")
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertNothingStored()

    # ---------------------------------------------------- recipients

    def test_recipient_limit(self):
        rcpts = ["r%d@example.com" % i for i in range(RCPT_LIMIT + 6)]
        with self.ferry.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
            for i, rc in enumerate(rcpts):
                r = c.cmd("RCPT TO:<%s>" % rc)
                if i < RCPT_LIMIT:
                    self.assertReply(r, 250, "2.1.5")
                else:
                    self.assertReply(r, 452, "4.5.3", "too many recipients")
            # 452 is the client's cue to send the rest later, not an
            # error: more of them than the error limit keep the session
            qid = ft.queued_id(c.data(b"Subject: limit\r\n\r\nx\r\n"))
            self.assertReply(c.cmd("NOOP"), 250)
        m = self.ferry.message(qid)
        self.assertEqual([r["address"] for r in m["recipients"]],
                         rcpts[:RCPT_LIMIT])

    # ------------------------------------------------ command lines

    def test_command_line_too_long(self):
        with self.ferry.client() as c:
            c.ehlo()
            fits = b"NOOP " + b"a" * (LINE_LIMIT - 2 - 5)
            self.assertEqual(len(fits) + 2, LINE_LIMIT)
            self.assertReply(c.cmd(fits), 250, "2.0.0")
            r = c.cmd(fits + b"a")
            self.assertReply(r, 500, "5.5.2", "line too long")
            r = c.cmd(b"MAIL FROM:<" + b"a" * 2000 + b"@example.org>")
            self.assertReply(r, 500, "5.5.2")
            # the rest of the long line was not taken as a command
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250)
            self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)

    def test_huge_command_line_memory(self):
        """A 5 MB line without CRLF: one 500, the worker's memory does
        not grow with it, and the daemon serves on."""
        with self.ferry.client(timeout=30) as c:
            c.ehlo()
            pid = self.ferry.worker_for(c)
            self.assertIsNotNone(pid, "cannot find the session's worker")
            hwm0 = vm_kib(pid, "VmHWM")
            block = b"X" * 65536
            for _ in range(80):                    # 5 MiB
                c.send(block)
            r = c.reply()
            self.assertReply(r, 500, "5.5.2", "line too long")
            c.send(b"\r\nNOOP\r\n")
            self.assertReply(c.reply(), 250, "2.0.0")
            hwm1 = vm_kib(pid, "VmHWM")
            self.assertLess(hwm1 - hwm0, 2048,
                            "worker memory grew by %d KiB" % (hwm1 - hwm0))
            # exactly one refusal for the whole line
            self.assertEqual(c.buf, b"")
            qid = c.send_message("a@example.org", ["b@example.com"],
                                 b"still fine\r\n")
        self.assertIsNotNone(self.ferry.message(qid))
        self.assertTrue(self.ferry.running())

    # ------------------------------------------------------- errors

    def test_error_limit(self):
        with self.ferry.client() as c:
            c.ehlo()
            for i in range(ERROR_LIMIT - 1):
                self.assertReply(c.cmd("BOGUS%d" % i), 500, "5.5.2")
            self.assertReply(c.cmd("NOOP"), 250)   # not an error
            self.assertReply(c.cmd("RCPT TO:<x@example.com>"), 503)
            r = c.reply()
            self.assertReply(r, 421, "4.7.0", "too many errors")
            self.assertTrue(c.is_closed(5))
        self.assertIsNotNone(self.ferry.wait_log(r"\(too many errors\)"))

    # ------------------------------------------------ message data

    def test_data_line_too_long(self):
        fits = b"y" * (DATA_LINE_LIMIT - 2) + b"\r\n"
        with self.ferry.client() as c:
            self.open_tx(c)
            r = c.data(b"Subject: long\r\n\r\n" + b"y" + fits)
            self.assertReply(r, 550, "5.6.0", "longer than %d octets"
                             % DATA_LINE_LIMIT)
            self.assertNothingStored()
            self.assertReply(c.cmd("NOOP"), 250)
            c.envelope("sender@example.org", ["rcpt@example.com"])
            qid = ft.queued_id(c.data(b"Subject: long\r\n\r\n" + fits))
        _, rest = ft.split_received(self.ferry.message(qid)["body"])
        self.assertEqual(rest, b"Subject: long\r\n\r\n" + fits)

    def test_bare_lf_in_data(self):
        with self.ferry.client() as c:
            self.open_tx(c)
            r = c.data(b"Subject: smuggle\r\n\r\nline one\nline two\r\n")
            self.assertReply(r, 550, "5.6.0", "bare <CR> or <LF>")
            self.assertReply(c.cmd("NOOP"), 250)
            self.assertNothingStored()
            # the session goes on: a clean message is accepted
            c.envelope("sender@example.org", ["rcpt@example.com"])
            qid = ft.queued_id(c.data(b"clean\r\n"))
        self.assertIsNotNone(self.ferry.message(qid))

    def test_bare_cr_in_data(self):
        with self.ferry.client() as c:
            self.open_tx(c)
            r = c.data(b"Subject: smuggle\r\n\r\nline one\rline two\r\n")
            self.assertReply(r, 550, "5.6.0")
            self.assertReply(c.cmd("NOOP"), 250)
        self.assertNothingStored()

    def test_bare_lf_in_bdat(self):
        with self.ferry.client() as c:
            self.open_tx(c)
            chunk = b"Subject: bdat\r\n\r\nbare\nLF\r\n"
            c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
            self.assertReply(c.reply(), 550, "5.6.0")
            self.assertReply(c.cmd("NOOP"), 250)
        self.assertNothingStored()

    def ambiguous_end(self, tail):
        with self.ferry.client() as c:
            self.open_tx(c)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: smuggle\r\n\r\ntext" + tail +
                   b"MAIL FROM:<evil@example.org>\r\n"
                   b"RCPT TO:<victim@example.com>\r\nDATA\r\n"
                   b"smuggled\r\n.\r\n")
            r = c.reply()
            self.assertReply(r, 521, "5.5.2", self.ferry.hostname)
            self.assertTrue(c.is_closed(5), "connection left open")
            self.assertEqual(c.buf, b"", "replies after the 521")
        self.assertNothingStored()
        self.assertEqual(self.ferry.count(
            "recipient", "address = 'victim@example.com'"), 0)

    def test_ambiguous_end_lf_dot_lf(self):
        self.ambiguous_end(b"\n.\n")

    def test_ambiguous_end_crlf_dot_lf(self):
        self.ambiguous_end(b"\r\n.\n")

    def test_ambiguous_end_lf_dot_crlf(self):
        self.ambiguous_end(b"\n.\r\n")

    def test_ambiguous_end_cr_dot_cr(self):
        self.ambiguous_end(b"\r.\r")


def drip(c, data, interval=0.3, limit=10.0):
    """Sends data one byte every interval seconds until the server says
    something (or limit passes); returns (reply, seconds taken)."""
    t0 = time.monotonic()
    for b in data:
        if time.monotonic() - t0 > limit:
            break
        r, _, _ = select.select([c.sock], [], [], interval)
        if r:
            break
        try:
            c.send(bytes([b]))
        except OSError:
            break
    reply = c.reply(timeout=max(0.5, limit - (time.monotonic() - t0)))
    return reply, time.monotonic() - t0


class TimeoutTest(ft.FerryTestCase):
    TIMEOUT = 2
    ferry_options = {"hostname": "timeouts.ferry-test.example",
                     "limits": {"command_timeout": TIMEOUT,
                                "data_timeout": TIMEOUT}}

    def assertTimedOut(self, c, reply, took):
        self.assertReply(reply, 421, "4.4.2", "timeout exceeded")
        self.assertGreaterEqual(took, self.TIMEOUT - 0.5)
        self.assertLessEqual(took, self.TIMEOUT + 2.0)
        self.assertTrue(c.is_closed(3))

    def test_idle_command(self):
        with self.ferry.client() as c:
            t0 = time.monotonic()
            r = c.reply(timeout=10)
            self.assertTimedOut(c, r, time.monotonic() - t0)

    def test_dripping_command(self):
        """The command timeout is a deadline: a byte every 0.3 s does not
        keep the session alive."""
        with self.ferry.client() as c:
            c.ehlo()
            r, took = drip(c, b"NOOP " + b"z" * 200)
            self.assertTimedOut(c, r, took)
        self.assertIsNotNone(self.ferry.wait_log(r"commands=1 \(timeout\)"))

    def test_deadline_per_command(self):
        """Each complete command gets a fresh deadline."""
        with self.ferry.client() as c:
            t0 = time.monotonic()
            for i in range(4):
                time.sleep(self.TIMEOUT * 0.6)
                self.assertReply(c.cmd("NOOP %d" % i), 250, "2.0.0")
            self.assertGreater(time.monotonic() - t0, self.TIMEOUT * 2)
            self.assertReply(c.cmd("QUIT"), 221)

    def test_dripping_data(self):
        before = self.ferry.count("message")
        with self.ferry.client() as c:
            c.ehlo()
            c.envelope("sender@example.org", ["rcpt@example.com"])
            self.assertReply(c.cmd("DATA"), 354)
            r, took = drip(c, b"Subject: slow\r\n\r\n" + b"d" * 200)
            self.assertTimedOut(c, r, took)
        self.assertTrue(ft.wait_for(
            lambda: self.ferry.count("message") == before, 3))

    def test_dripping_bdat(self):
        before = self.ferry.count("message")
        with self.ferry.client() as c:
            c.ehlo()
            c.envelope("sender@example.org", ["rcpt@example.com"])
            c.send(b"BDAT 1000 LAST\r\n")
            r, took = drip(c, b"e" * 200)
            self.assertTimedOut(c, r, took)
        self.assertTrue(ft.wait_for(
            lambda: self.ferry.count("message") == before, 3))


if __name__ == "__main__":
    ft.main()
