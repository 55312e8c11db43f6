#!/usr/bin/env python3
"""End-to-end: messages handed to ferry are committed to the queue with
their exact bytes and envelope (DATA, BDAT, DSN, SMTPUTF8, big messages,
many recipients, many concurrent clients)."""

import email.utils
import os
import random
import re
import smtplib
import subprocess
import tempfile
import threading
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from ferrytest import split_received  # noqa: E402


class IntakeTest(ft.FerryTestCase):
    ferry_options = {"hostname": "relay.intake.example",
                     "workers": {"min_idle": 4, "max_idle": 8, "max": 32}}

    # -------------------------------------------------------- helpers

    def check_stored(self, qid, content, helo, rcpts, proto="ESMTP",
                     sender="sender@example.org"):
        """The message qid is active, its body is ferry's Received header
        followed by exactly content, and the envelope is as sent."""
        m = self.ferry.message(qid)
        self.assertIsNotNone(m, "queue id %s not in the database" % qid)
        self.assertEqual(m["qid"], qid)
        self.assertEqual(m["state"], "active")
        self.assertEqual(m["sender"], sender)
        self.assertEqual(m["client_addr"], "127.0.0.1")
        self.assertEqual(m["client_name"], "unknown")
        self.assertEqual(m["helo"], helo)
        self.assertEqual(m["protocol"], proto)
        self.assertEqual([r["address"] for r in m["recipients"]],
                         list(rcpts))
        for r in m["recipients"]:
            self.assertEqual(r["state"], "pending")
            self.assertEqual(r["attempts"], 0)
            self.assertIsNotNone(r["next_attempt"])
            self.assertLess(abs(r["next_attempt"] - time.time()), 300)
        self.assertEqual(m["seqs"], list(range(m["chunks"])))
        hdr, rest = split_received(m["body"])
        self.assertEqual(rest, content)
        self.assertEqual(m["size"], len(m["body"]))
        self.assertEqual(hdr.group("helo").decode(), helo)
        self.assertEqual(hdr.group("name"), b"unknown")
        self.assertEqual(hdr.group("addr"), b"127.0.0.1")
        self.assertEqual(hdr.group("host").decode(), self.ferry.hostname)
        self.assertEqual(hdr.group("proto").decode(), proto)
        self.assertEqual(hdr.group("qid").decode(), qid)
        if len(rcpts) == 1:
            self.assertEqual(hdr.group("rcpt").decode(), rcpts[0])
            self.assertTrue(m["body"].startswith(
                b"Received: from %s (unknown [127.0.0.1])\r\n\tby %s "
                b"(ferry) with %s id %s\r\n\tfor <%s>; "
                % (helo.encode(), self.ferry.hostname.encode(),
                   proto.encode(), qid.encode(), rcpts[0].encode())))
        else:
            self.assertIsNone(hdr.group("rcpt"))
        when = email.utils.parsedate_to_datetime(hdr.group("date").decode())
        self.assertLess(abs(when.timestamp() - time.time()), 300)
        self.assertLess(abs(m["received_at"] - time.time()), 300)
        return m

    # ---------------------------------------------------------- tests

    def test_swaks(self):
        content = (b"From: Sender <sender@example.org>\r\n"
                   b"To: rcpt@example.com\r\nSubject: swaks test\r\n\r\n"
                   b"first line\r\n.starts with a dot\r\n\r\nlast\r\n")
        with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
            # swaks adds CRLFs and dot-stuffs; a final "." line ends it
            f.write(content.replace(b"\r\n", b"\n") + b".\n")
            f.flush()
            p = subprocess.run(
                ["swaks", "--server", "127.0.0.1:%d" % self.ferry.port,
                 "--helo", "swaks.example", "--from", "sender@example.org",
                 "--to", "rcpt@example.com", "--data", "@" + f.name,
                 "--timeout", "20"],
                capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = re.search(r"<-  250 2\.0\.0 Ok: queued as (\S+)", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        qid = m.group(1)
        self.assertRegex(qid, r"^[0-9A-F]{12}$")
        # swaks sent the line stuffed
        self.assertIn("\n -> ..starts with a dot\n", p.stdout)
        msg = self.check_stored(qid, content,
                                "swaks.example", ["rcpt@example.com"])
        self.assertIsNone(msg["body_type"])
        self.assertIsNone(msg["size_declared"])
        self.assertEqual(msg["smtputf8"], 0)
        self.assertIsNotNone(self.ferry.wait_log(
            r"%s: from=<sender@example\.org>, size=%d, nrcpt=1 "
            r"\(queue active\)" % (qid, msg["size"])))
        self.assertIsNotNone(self.ferry.wait_log(
            r"%s: client=unknown\[127\.0\.0\.1\]" % qid))

    def test_smtplib_8bit(self):
        content = ("From: sender@example.org\r\nTo: rcpt@example.com\r\n"
                   "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
                   "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n"
                   "Grüße aus Köln, ½ € ✓ 日本語\r\n"
                   ".leading dot, stuffed by smtplib\r\n"
                   "\xa0non-breaking\r\n").encode("utf-8")
        with smtplib.SMTP("127.0.0.1", self.ferry.port,
                          local_hostname="smtplib.example",
                          timeout=ft.IO_TIMEOUT) as s:
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertTrue(s.has_extn("8bitmime"))
            code, _ = s.mail("sender@example.org", ["BODY=8BITMIME",
                                                    "SIZE=%d" % len(content)])
            self.assertEqual(code, 250)
            code, _ = s.rcpt("rcpt@example.com")
            self.assertEqual(code, 250)
            code, text = s.data(content)
            self.assertEqual(code, 250, text)
        qid = re.match(rb"2\.0\.0 Ok: queued as (\S+)$", text).group(1)
        m = self.check_stored(qid.decode(), content, "smtplib.example",
                              ["rcpt@example.com"])
        self.assertEqual(m["body_type"], "8BITMIME")
        self.assertEqual(m["size_declared"], len(content))

    def test_dot_stuffing(self):
        wire = (b"Subject: dots\r\n\r\n..foo\r\n..\r\n...\r\n.bar\r\n"
                b"a.b\r\n. \r\n..\t\r\n")
        expected = (b"Subject: dots\r\n\r\n.foo\r\n.\r\n..\r\nbar\r\n"
                    b"a.b\r\n \r\n.\t\r\n")
        with self.ferry.client() as c:
            c.ehlo("dots.example")
            c.envelope("sender@example.org", ["rcpt@example.com"])
            qid = ft.queued_id(c.data(wire))
        self.check_stored(qid, expected, "dots.example",
                          ["rcpt@example.com"])

    def test_empty_message(self):
        with self.ferry.client() as c:
            c.ehlo("empty.example")
            c.envelope("", ["rcpt@example.com"])
            qid = ft.queued_id(c.data(b""))
        self.check_stored(qid, b"", "empty.example", ["rcpt@example.com"],
                          sender="")

    def test_bdat_chunks(self):
        parts = [b"Subject: bdat\r\n", b"\r\n..not unstuffed\r\n.\r",
                 b"\nsplit CR", b"LF\r\n", b"x" * 998 + b"\r\n"]
        with self.ferry.client() as c:
            r = c.ehlo("bdat.example")
            self.assertIn("CHUNKING", r.lines)
            c.envelope("sender@example.org", ["rcpt@example.com"])
            for p in parts:
                c.send(b"BDAT %d\r\n" % len(p) + p)
                self.assertReply(c.reply(), 250, "2.0.0",
                                 "%d octets received" % len(p))
            c.send(b"BDAT 6 LAST\r\nlast\r\n")
            qid = ft.queued_id(c.reply())
            self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.check_stored(qid, b"".join(parts) + b"last\r\n",
                          "bdat.example", ["rcpt@example.com"])

    def test_bdat_pipelined(self):
        """MAIL, RCPT and the chunks in one write; the last chunk lacks
        its final CRLF, which ferry adds."""
        body = b"Subject: pipelined bdat\r\n\r\nno final newline"
        with self.ferry.client() as c:
            c.ehlo("pipe.example")
            c.send(b"MAIL FROM:<sender@example.org>\r\n"
                   b"RCPT TO:<rcpt@example.com>\r\n"
                   b"BDAT 10\r\n" + body[:10] +
                   b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:] +
                   b"NOOP\r\n")
            self.assertReply(c.reply(), 250, "2.1.0")
            self.assertReply(c.reply(), 250, "2.1.5")
            self.assertReply(c.reply(), 250, "2.0.0", "10 octets received")
            qid = ft.queued_id(c.reply())
            self.assertReply(c.reply(), 250, "2.0.0")
        self.check_stored(qid, body + b"\r\n", "pipe.example",
                          ["rcpt@example.com"])

    def test_bdat_zero_last(self):
        with self.ferry.client() as c:
            c.ehlo("bdat0.example")
            c.envelope("sender@example.org", ["rcpt@example.com"])
            c.send(b"BDAT 3\r\nabc")
            self.assertReply(c.reply(), 250, "2.0.0", "3 octets received")
            qid = ft.queued_id(c.cmd("BDAT 0 LAST"))
        self.check_stored(qid, b"abc\r\n", "bdat0.example",
                          ["rcpt@example.com"])

    def test_big_message(self):
        rnd = random.Random(5321)
        alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 .,-"
        lines = [b"Subject: big\r\n", b"\r\n"]
        size = 0
        while size < 3 * 1024 * 1024:
            n = rnd.randint(0, 200)
            line = bytes(rnd.choice(alphabet) for _ in range(n)) + b"\r\n"
            lines.append(line)
            size += len(line)
        content = b"".join(lines)
        t0 = time.monotonic()
        with self.ferry.client(timeout=60) as c:
            c.ehlo("big.example")
            c.envelope("sender@example.org", ["rcpt@example.com"],
                       mail_params=" SIZE=%d" % len(content))
            qid = ft.queued_id(c.data(ft.dot_stuff(content)))
        m = self.check_stored(qid, content, "big.example",
                              ["rcpt@example.com"])
        self.assertGreaterEqual(m["chunks"], len(content) // 65536)
        self.assertLess(time.monotonic() - t0, 30)

    def test_dsn_and_smtputf8(self):
        rcpts = ["jürgen@bücher.example", "plain@example.com",
                 "never@example.com"]
        with self.ferry.client() as c:
            c.ehlo("utf8.example")
            self.assertReply(c.cmd(
                "MAIL FROM:<sénder@exämple.org> RET=HDRS ENVID=QQ314159 "
                "SMTPUTF8 BODY=8BITMIME"), 250, "2.1.0")
            self.assertReply(c.cmd(
                "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE "
                "ORCPT=rfc822;j+FCrgen@example.com" % rcpts[0]), 250,
                "2.1.5")
            self.assertReply(c.cmd("RCPT TO:<%s> NOTIFY=DELAY" % rcpts[1]),
                             250, "2.1.5")
            self.assertReply(c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % rcpts[2]),
                             250, "2.1.5")
            content = "Subject: ünïcödé\r\n\r\nhéllo\r\n".encode()
            qid = ft.queued_id(c.data(content))
        m = self.check_stored(qid, content, "utf8.example", rcpts,
                              proto="UTF8ESMTP",
                              sender="sénder@exämple.org")
        self.assertEqual(m["smtputf8"], 1)
        self.assertEqual(m["dsn_ret"], "HDRS")
        self.assertEqual(m["dsn_envid"], "QQ314159")
        self.assertEqual(m["body_type"], "8BITMIME")
        self.assertEqual([r["dsn_notify"] for r in m["recipients"]],
                         [0x02 | 0x04, 0x08, 0x01])
        self.assertEqual([r["dsn_orcpt"] for r in m["recipients"]],
                         ["rfc822;j+FCrgen@example.com", None, None])

    def test_dsn_ret_full_7bit(self):
        with self.ferry.client() as c:
            c.ehlo("dsn.example")
            c.envelope("sender@example.org", ["rcpt@example.com"],
                       mail_params=" RET=FULL BODY=7BIT",
                       rcpt_params=" ORCPT=rfc822;rcpt@example.com")
            qid = ft.queued_id(c.data(b"x\r\n"))
        m = self.check_stored(qid, b"x\r\n", "dsn.example",
                              ["rcpt@example.com"])
        self.assertEqual(m["dsn_ret"], "FULL")
        self.assertIsNone(m["dsn_envid"])
        self.assertEqual(m["body_type"], "7BIT")
        self.assertEqual(m["smtputf8"], 0)
        self.assertEqual(m["recipients"][0]["dsn_orcpt"],
                         "rfc822;rcpt@example.com")
        self.assertEqual(m["recipients"][0]["dsn_notify"], 0)

    def test_multiple_recipients(self):
        rcpts = ["a%d@example.com" % i for i in range(7)] + ["Postmaster"]
        content = b"Subject: many\r\n\r\nto many\r\n"
        with self.ferry.client() as c:
            c.ehlo("multi.example")
            qid = c.send_message("sender@example.org", rcpts, content)
        m = self.check_stored(qid, content, "multi.example", rcpts)
        self.assertEqual(len(m["recipients"]), 8)
        self.assertTrue(m["body"].startswith(
            b"Received: from multi.example (unknown [127.0.0.1])\r\n\tby "
            b"%s (ferry) with ESMTP id %s;\r\n\t"
            % (self.ferry.hostname.encode(), qid.encode())))
        self.assertIsNotNone(self.ferry.wait_log(
            r"%s: from=<sender@example\.org>, size=%d, nrcpt=8 "
            r"\(queue active\)" % (qid, m["size"])))

    def test_several_messages_one_session(self):
        with self.ferry.client() as c:
            c.ehlo("session.example")
            qids = [c.send_message("sender@example.org",
                                   ["r%d@example.com" % i],
                                   b"message %d\r\n" % i) for i in range(5)]
        self.assertEqual(len(set(qids)), 5)
        for i, qid in enumerate(qids):
            self.check_stored(qid, b"message %d\r\n" % i, "session.example",
                              ["r%d@example.com" % i])

    def test_concurrent_clients(self):
        nclients, nmsgs = 20, 10
        results = {}
        errors = []
        barrier = threading.Barrier(nclients, timeout=30)

        def client(n):
            try:
                with smtplib.SMTP("127.0.0.1", self.ferry.port,
                                  local_hostname="c%d.example" % n,
                                  timeout=30) as s:
                    barrier.wait()
                    for i in range(nmsgs):
                        body = (b"Subject: %d/%d\r\n\r\nfrom client %d, "
                                b"message %d\r\n" % (n, i, n, i))
                        s.ehlo_or_helo_if_needed()
                        code, _ = s.mail("c%d@example.org" % n)
                        assert code == 250, code
                        code, _ = s.rcpt("r%d.%d@example.com" % (n, i))
                        assert code == 250, code
                        code, text = s.data(body)
                        assert code == 250, (code, text)
                        qid = re.match(rb"2\.0\.0 Ok: queued as (\S+)$",
                                       text).group(1).decode()
                        results[(n, i)] = (qid, body)
            except Exception as e:   # reported by the main thread
                errors.append((n, repr(e)))

        before = self.ferry.count("message")
        threads = [threading.Thread(target=client, args=(n,))
                   for n in range(nclients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(errors, [])
        self.assertEqual(len(results), nclients * nmsgs)
        qids = [q for q, _ in results.values()]
        self.assertEqual(len(set(qids)), len(qids), "queue ids repeat")
        self.assertEqual(self.ferry.count("message") - before, len(qids))
        con = self.ferry.db()
        try:
            for (n, i), (qid, body) in results.items():
                row = con.execute(
                    "SELECT m.state, m.sender, m.helo, r.address FROM "
                    "message m JOIN recipient r ON r.message_id = m.id "
                    "WHERE m.qid = ?", (qid,)).fetchall()
                self.assertEqual(len(row), 1)
                self.assertEqual(tuple(row[0]), (
                    "active", "c%d@example.org" % n, "c%d.example" % n,
                    "r%d.%d@example.com" % (n, i)))
                stored = b"".join(bytes(c[0]) for c in con.execute(
                    "SELECT chunk FROM body WHERE message_id = (SELECT id "
                    "FROM message WHERE qid = ?) ORDER BY seq", (qid,)))
                _, rest = split_received(stored)
                self.assertEqual(rest, body)
        finally:
            con.close()
        self.assertEqual(self.ferry.count("message", "state != 'active'"),
                         0)


if __name__ == "__main__":
    ft.main()
