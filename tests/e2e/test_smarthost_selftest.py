#!/usr/bin/env python3
"""The delivery tests' own servers, tested on their own: the recording
smarthost (tests/lib/smarthost.py) and the DNS server
(tests/lib/dnsserver.py).  Real clients (swaks, smtplib, python ssl, a
raw socket) talk to them and what they recorded must match byte for
byte; scripted failures, TLS with the generated CA, AUTH, and DNS answers
in wire format.  No ferry daemon is started."""

import base64
import os
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
import dnsserver as dns  # noqa: E402


class ServerCase(unittest.TestCase):
    """A temp dir per class (certificates), a smarthost per test."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ferry-selftest-")
        cls.certs = sh.Certs(os.path.join(cls.dir, "certs"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def smarthost(self, **kw):
        s = sh.SmartHost(**kw).start()
        self.addCleanup(s.stop)
        return s

    def client(self, s, **kw):
        c = ft.Client(s.port, host=s.host, **kw)
        self.addCleanup(c.close)
        return c


class RecordingTest(ServerCase):

    def test_raw_session_recorded_exactly(self):
        s = self.smarthost()
        content = (b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n"
                   b"plain\r\n.\r\nend\r\n")
        stuffed = ft.dot_stuff(content)
        self.assertEqual(stuffed, b"Subject: dots\r\n\r\n..leading dot\r\n"
                         b"...two\r\nplain\r\n..\r\nend\r\n")
        c = self.client(s)
        self.assertEqual(c.greeting.code, 220)
        ehlo = c.ehlo("client.test")
        self.assertIn("PIPELINING", ehlo.lines)
        self.assertIn("SIZE 10485760", ehlo.lines)
        self.assertNotIn("STARTTLS", ehlo.lines)      # no certificate
        c.envelope("a@sender.test", ["b@dest.test", "c@dest.test"],
                   mail_params=" SIZE=%d BODY=8BITMIME" % len(content),
                   rcpt_params=" NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;b@dest.test")
        r = c.data(stuffed)
        self.assertReply(r, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        (m,) = s.wait_messages(1, 5)
        self.assertEqual(m.sender, "a@sender.test")
        self.assertEqual(m.mail_params, {"SIZE": str(len(content)),
                                         "BODY": "8BITMIME"})
        self.assertEqual(m.mail_line, b"MAIL FROM:<a@sender.test> SIZE=%d "
                         b"BODY=8BITMIME" % len(content))
        self.assertEqual(m.recipients, ["b@dest.test", "c@dest.test"])
        self.assertEqual(m.rcpts[0].params,
                         {"NOTIFY": "SUCCESS,FAILURE",
                          "ORCPT": "rfc822;b@dest.test"})
        self.assertEqual(m.data_raw, stuffed)
        self.assertEqual(m.data, content)
        self.assertIsNone(m.tls)
        sess = m.session
        s.wait(lambda: sess.ended is not None, 5)
        expect = (b"EHLO client.test\r\n" + m.mail_line + b"\r\n" +
                  m.rcpts[0].line + b"\r\n" + m.rcpts[1].line + b"\r\n" +
                  b"DATA\r\n" + stuffed + b".\r\nQUIT\r\n")
        self.assertEqual(sess.raw, expect)
        self.assertEqual(sess.verbs, ["EHLO", "MAIL", "RCPT", "RCPT",
                                      "DATA", "QUIT"])
        self.assertTrue(sess.raw_out.startswith(b"220 smarthost.test "))
        self.assertTrue(sess.raw_out.endswith(b"221 2.0.0 Bye\r\n"))

    def assertReply(self, r, code):
        self.assertEqual(r.code, code, r)

    def test_swaks(self):
        s = self.smarthost()
        content = (b"From: a@sender.test\r\nTo: b@dest.test\r\n"
                   b"Subject: swaks\r\n\r\nline\r\n.dot line\r\n\r\nlast\r\n")
        path = os.path.join(self.dir, "swaks.eml")
        with open(path, "wb") as f:
            # swaks adds CRLFs and dot-stuffs; a final "." line ends it
            f.write(content.replace(b"\r\n", b"\n") + b".\n")
        p = subprocess.run(
            ["swaks", "--server", s.host, "--port", str(s.port),
             "--from", "a@sender.test", "--to", "b@dest.test",
             "--helo", "swaks.test", "--data", "@" + path,
             "--timeout", "10"], stdin=subprocess.DEVNULL,
            capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout[-2000:])
        (m,) = s.wait_messages(1, 5)
        self.assertEqual(m.session.ehlo, "swaks.test")
        self.assertEqual(m.sender, "a@sender.test")
        self.assertEqual(m.recipients, ["b@dest.test"])
        self.assertEqual(m.data, content)
        self.assertEqual(m.data_raw, ft.dot_stuff(content))
        self.assertIn(b"\r\n..dot line\r\n", m.data_raw)
        # what swaks says it sent is what was recorded
        self.assertIn(b"..dot line", m.session.raw)

    def test_smtplib_8bit_and_pipelining(self):
        s = self.smarthost()
        content = ("Subject: =?utf-8?q?h=C3=A9?=\r\n\r\nd\u00e9j\u00e0 vu\r\n"
                   ".x\r\n").encode("utf-8")
        with smtplib.SMTP(s.host, s.port, timeout=10) as c:
            c.ehlo("smtplib.test")
            self.assertTrue(c.has_extn("8bitmime"))
            refused = c.sendmail("a@sender.test", ["b@dest.test"], content,
                                 mail_options=["BODY=8BITMIME"])
            self.assertEqual(refused, {})
        (m,) = s.wait_messages(1, 5)
        self.assertEqual(m.data, content)
        self.assertEqual(m.mail_params["BODY"], "8BITMIME")
        # pipelined in one write: every command answered in order
        c = self.client(s)
        c.ehlo()
        c.send(b"MAIL FROM:<p@sender.test>\r\nRCPT TO:<q@dest.test>\r\n"
               b"RCPT TO:<r@dest.test>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.replies(4)],
                         [250, 250, 250, 354])
        c.send(b"x\r\n.\r\n")
        self.assertEqual(c.reply().code, 250)
        (_, m2) = s.wait_messages(2, 5)
        self.assertEqual(m2.recipients, ["q@dest.test", "r@dest.test"])
        self.assertEqual(m2.data, b"x\r\n")

    def test_big_message_and_empty_message(self):
        s = self.smarthost()
        line = b"0123456789" * 7 + b"\r\n"
        content = line * (2 * 1024 * 1024 // len(line)) + b".\r\n"
        c = self.client(s)
        c.ehlo()
        c.envelope("a@sender.test", ["b@dest.test"])
        self.assertEqual(c.data(ft.dot_stuff(content)).code, 250)
        c.envelope("", ["b@dest.test"])
        self.assertEqual(c.data(b"").code, 250)
        m, empty = s.wait_messages(2, 10)
        self.assertEqual(m.data, content)
        self.assertTrue(m.data_raw.endswith(b"\r\n..\r\n"))
        self.assertEqual(empty.sender, "")
        self.assertEqual(empty.data, b"")

    def test_rset_and_transactions_in_one_session(self):
        s = self.smarthost()
        c = self.client(s)
        c.ehlo()
        for i in range(3):
            c.envelope("a%d@sender.test" % i, ["b@dest.test"])
            self.assertEqual(c.data(b"n %d\r\n" % i).code, 250)
            self.assertEqual(c.cmd("RSET").code, 250)
        ms = s.wait_messages(3, 5)
        self.assertEqual({m.session.number for m in ms}, {1})
        self.assertEqual(len(s.sessions), 1)
        self.assertEqual(s.sessions[0].verbs.count("RSET"), 3)

    def test_concurrent_sessions(self):
        s = self.smarthost()
        errors = []

        def one(n):
            try:
                with ft.Client(s.port) as c:
                    c.ehlo("c%d.test" % n)
                    c.envelope("s%d@sender.test" % n, ["r@dest.test"])
                    if c.data(b"body %d\r\n" % n).code != 250:
                        errors.append(n)
                    c.cmd("QUIT")
            except Exception as e:   # noqa: BLE001
                errors.append((n, e))
        ts = [threading.Thread(target=one, args=(n,)) for n in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(errors, [])
        ms = s.wait_messages(20, 10)
        self.assertEqual(sorted(m.data for m in ms),
                         sorted(b"body %d\r\n" % n for n in range(20)))

    def test_strict_parameters_and_size(self):
        s = self.smarthost(extensions=["PIPELINING", "SIZE 1000"])
        c = self.client(s)
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<a@x.test> RET=HDRS").code, 555)
        self.assertEqual(c.cmd("MAIL FROM:<a@x.test> BODY=8BITMIME").code,
                         555)
        self.assertEqual(c.cmd("MAIL FROM:<a@x.test> SMTPUTF8").code, 555)
        self.assertEqual(c.cmd("MAIL FROM:<a@x.test> SIZE=1001").code, 552)
        self.assertEqual(c.cmd("MAIL FROM:<a@x.test> SIZE=999").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@y.test> NOTIFY=NEVER").code, 555)
        self.assertEqual(c.cmd("RCPT TO:<b@y.test>").code, 250)
        self.assertEqual(c.data(b"x" * 1100 + b"\r\n").code, 552)
        self.assertEqual(c.cmd("MAIL FROM:<a@x.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@y.test>").code, 250)
        self.assertEqual(c.data(b"small\r\n").code, 250)
        self.assertEqual(len(s.wait_messages(1, 5)), 1)
        self.assertEqual([t.result for t in s.transactions
                          if t.data_raw is not None], [552, 250])
        # bare LF ends no command
        self.assertEqual(c.cmd("NOOP").code, 250)
        c.send(b"NOOP\n")
        self.assertEqual(c.reply().code, 500)
        # extensions change at run time
        s.offer("DSN", "SIZE 5000")
        r = c.ehlo()
        self.assertIn("DSN", r.lines)
        self.assertIn("SIZE 5000", r.lines)
        s.withdraw("PIPELINING")
        self.assertNotIn("PIPELINING", c.ehlo().lines)


class ScriptTest(ServerCase):

    def test_greeting_421_closes(self):
        s = self.smarthost()
        s.reply_at("greeting", "421 4.3.2 Service not available",
                   times=1)
        c = self.client(s)
        self.assertEqual(c.greeting.code, 421)
        self.assertTrue(c.is_closed(5))
        c2 = self.client(s)                  # only once
        self.assertEqual(c2.greeting.code, 220)

    def test_greeting_554_refuses_commands(self):
        s = self.smarthost()
        s.reply_at("connect", "554 5.3.2 No service")
        c = self.client(s)
        self.assertEqual(c.greeting.code, 554)
        self.assertEqual(c.cmd("EHLO x").code, 503)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def test_codes_at_each_step(self):
        s = self.smarthost()
        s.reply_at("ehlo", "451 4.3.0 EHLO later", times=1)
        s.reply_at("mail", "452 4.3.1 Insufficient storage", times=1)
        s.reply_at("rcpt", "550 5.1.1 No such user", rcpt="bad@dest.test")
        s.reply_at("rcpt", "451 4.3.0 Try later", rcpt="Later@dest.test",
                   times=1)
        s.reply_at("data", "451 4.3.0 No DATA now", times=1)
        s.reply_at("eod", "554 5.7.1 Spam", times=1)
        c = self.client(s)
        self.assertEqual(c.cmd("EHLO x").code, 451)
        self.assertEqual(c.cmd("EHLO x").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@s.test>").code, 452)
        self.assertEqual(c.cmd("MAIL FROM:<a@s.test>").code, 250)
        r = c.cmd("RCPT TO:<bad@dest.test>")
        self.assertEqual((r.code, r.text), (550, "5.1.1 No such user"))
        self.assertEqual(c.cmd("RCPT TO:<later@dest.test>").code, 451)
        self.assertEqual(c.cmd("RCPT TO:<later@dest.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 451)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"one\r\n.\r\n")
        self.assertEqual(c.reply().code, 554)
        c.envelope("a@s.test", ["ok@dest.test"])
        self.assertEqual(c.data(b"two\r\n").code, 250)
        (m,) = s.wait_messages(1, 5)
        self.assertEqual(m.data, b"two\r\n")
        self.assertEqual([t.result for t in s.transactions],
                         [None, 554, 250])
        t = s.transactions[1]
        self.assertEqual([(r.address, r.code) for r in t.rcpts],
                         [("bad@dest.test", 550), ("later@dest.test", 451),
                          ("later@dest.test", 250)])
        self.assertEqual(t.data_raw, b"one\r\n")

    def test_drop_and_stall(self):
        s = self.smarthost()
        s.drop_at("data", times=1)
        c = self.client(s)
        c.ehlo()
        c.envelope("a@s.test", ["b@d.test"])
        c.send(b"DATA\r\n")
        self.assertTrue(c.is_closed(5))
        s.stall_at("rcpt", 1.0, times=1)
        c = self.client(s)
        c.ehlo()
        c.cmd("MAIL FROM:<a@s.test>")
        t0 = time.monotonic()
        self.assertEqual(c.cmd("RCPT TO:<b@d.test>").code, 250)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        s.drop_at("eod", times=1)
        self.assertRaises(EOFError, c.data, b"x\r\n")
        self.assertEqual(s.messages, [])
        self.assertEqual(s.transactions[-1].data, b"x\r\n")

    def test_hold_until_released(self):
        s = self.smarthost()
        gate = s.hold_at("eod", times=1)
        c = self.client(s)
        c.ehlo()
        c.envelope("a@s.test", ["b@d.test"])
        c.cmd("DATA")
        c.send(b"held\r\n.\r\n")
        self.assertTrue(gate.wait_reached(5))
        self.assertRaises(socket.timeout, c.reply, 0.5)
        self.assertEqual(s.messages, [])
        gate.release()
        self.assertEqual(c.reply().code, 250)
        self.assertEqual(s.wait_messages(1, 5)[0].data, b"held\r\n")

    def test_hostile_replies(self):
        s = self.smarthost()
        c = self.client(s)
        c.ehlo()
        s.hostile_at("noop", "bare_lf", times=1)
        s.hostile_at("mail", "no_code", times=1)
        s.hostile_at("rcpt", "long_line", times=1)
        s.hostile_at("rset", "mixed_codes", times=1)
        s.hostile_at("noop", "endless", times=1)
        c.send(b"NOOP\r\n")
        time.sleep(0.3)
        c.send(b"MAIL FROM:<a@b.test>\r\n")
        self.assertEqual(c.read_line(), b"250 2.0.0 Ok\nhello, this is not "
                         b"a reply")
        c.send(b"RCPT TO:<c@d.test>\r\n")
        line = c.read_line()
        self.assertEqual(len(line), 100004)
        self.assertTrue(line.startswith(b"250 xxx"))
        c.send(b"RSET\r\n")
        self.assertRaises(ft.SMTPError, c.reply)
        c.buf = b""
        c.send(b"NOOP\r\n")
        got = b""
        while len(got) < 1000000:
            got += c.sock.recv(65536)
        self.assertTrue(got.startswith(b"250-this reply never ends\r\n"))
        self.assertNotIn(b"250 ", got)
        c.close()
        s.wait(lambda: s.sessions[0].ended is not None, 40)

    def test_pause_refuses_then_resume(self):
        s = self.smarthost()
        port = s.port
        s.pause()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((s.host, port), 2).close()
        s.resume()
        self.assertEqual(s.port, port)
        self.assertEqual(self.client(s).greeting.code, 220)

    def test_two_loopback_addresses_one_port(self):
        port = sh.free_port(("127.0.0.2", "127.0.0.3"))
        a = self.smarthost(host="127.0.0.2", port=port, hostname="mx1")
        b = self.smarthost(host="127.0.0.3", port=port, hostname="mx2")
        self.assertTrue(self.client(a).greeting.text.startswith("mx1 "))
        self.assertTrue(self.client(b).greeting.text.startswith("mx2 "))
        self.assertEqual(a.address, "127.0.0.2:%d" % port)


class TLSAuthTest(ServerCase):

    def tls_client(self, s, cafile, name, auth=None):
        ctx = ssl.create_default_context(cafile=cafile)
        with smtplib.SMTP(s.host, s.port, timeout=10) as c:
            c.ehlo("tls.test")
            self.assertTrue(c.has_extn("starttls"))
            c._host = name               # the name the certificate must have
            c.starttls(context=ctx)
            c.ehlo("tls.test")
            self.assertFalse(c.has_extn("starttls"))
            if auth:
                c.login(*auth)
            c.sendmail("a@sender.test", ["b@dest.test"], b"tls\r\n")

    def test_starttls_verified_with_generated_ca(self):
        cert, key = self.certs.server("mx.test", "localhost", "127.0.0.1")
        p = subprocess.run(["openssl", "verify", "-CAfile",
                            self.certs.ca_cert, cert], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        s = self.smarthost(cert=cert, key=key,
                           extensions=list(sh.DEFAULT_EXTENSIONS) +
                           ["STARTTLS"])
        self.tls_client(s, self.certs.ca_cert, "mx.test")
        (m,) = s.wait_messages(1, 5)
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(m.session.tls_version, m.tls)
        self.assertTrue(m.session.tls_cipher)
        self.assertEqual(m.session.verbs[:3], ["EHLO", "STARTTLS", "EHLO"])
        self.assertEqual(m.data, b"tls\r\n")

    def test_wrong_name_and_self_signed_fail_verification(self):
        wrong, wkey = self.certs.self_signed("wrong.test")
        p = subprocess.run(["openssl", "verify", "-CAfile",
                            self.certs.ca_cert, wrong], capture_output=True)
        self.assertNotEqual(p.returncode, 0)
        s = self.smarthost(cert=wrong, key=wkey,
                           extensions=["STARTTLS", "PIPELINING"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(s, self.certs.ca_cert, "mx.test")
        # signed by the CA, but for another name
        other, okey = self.certs.server("other.test")
        s.set_certificate(other, okey)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(s, self.certs.ca_cert, "mx.test")
        self.assertEqual(s.messages, [])
        s.wait(lambda: all(x.ended for x in s.sessions), 5)
        self.assertTrue(all(x.tls_version is None for x in s.sessions))

    def test_swaks_starttls(self):
        cert, key = self.certs.server("mx.test")
        s = self.smarthost(cert=cert, key=key,
                           extensions=["STARTTLS", "PIPELINING"])
        p = subprocess.run(
            ["swaks", "--server", s.host, "--port", str(s.port), "--tls",
             "--from", "a@sender.test", "--to", "b@dest.test",
             "--timeout", "10", "--body", "over tls"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout[-2000:])
        (m,) = s.wait_messages(1, 5)
        self.assertIsNotNone(m.tls)

    def test_pipelined_before_tls_is_discarded(self):
        cert, key = self.certs.server("mx.test")
        s = self.smarthost(cert=cert, key=key,
                           extensions=["STARTTLS", "PIPELINING"])
        c = self.client(s)
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        self.assertEqual(c.reply().code, 220)
        ctx = ssl.create_default_context(cafile=self.certs.ca_cert)
        tls = ctx.wrap_socket(c.sock, server_hostname="mx.test")
        self.addCleanup(tls.close)
        tls.sendall(b"QUIT\r\n")
        self.assertTrue(tls.recv(100).startswith(b"221"))
        self.assertEqual(s.sessions[0].before_tls,
                         b"MAIL FROM:<injected@evil.test>\r\n")

    def test_auth_plain_and_login_recorded(self):
        s = self.smarthost(extensions=["PIPELINING", "AUTH PLAIN LOGIN"],
                           credentials={"user1": "s3cret"},
                           require_auth=True)
        c = self.client(s)
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>").code, 530)
        bad = base64.b64encode(b"\0user1\0wrong").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + bad).code, 535)
        good = base64.b64encode(b"\0user1\0s3cret").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + good).code, 235)
        c.envelope("a@b.test", ["c@d.test"])
        self.assertEqual(c.data(b"x\r\n").code, 250)
        self.assertEqual(s.wait_messages(1, 5)[0].auth_user, "user1")
        c2 = self.client(s)
        c2.ehlo()
        self.assertEqual(c2.cmd("AUTH LOGIN").text, "VXNlcm5hbWU6")
        self.assertEqual(c2.cmd(base64.b64encode(b"user1").decode()).text,
                         "UGFzc3dvcmQ6")
        self.assertEqual(c2.cmd(base64.b64encode(b"s3cret").decode()).code,
                         235)
        a = s.auth_attempts()
        self.assertEqual([(x["mech"], x["user"], x["password"], x["ok"],
                           x["tls"]) for x in a],
                         [("PLAIN", "user1", "wrong", False, None),
                          ("PLAIN", "user1", "s3cret", True, None),
                          ("LOGIN", "user1", "s3cret", True, None)])
        # smtplib, over TLS
        cert, key = self.certs.server("mx.test")
        s.set_certificate(cert, key)
        s.offer("STARTTLS")
        self.tls_client(s, self.certs.ca_cert, "mx.test",
                        auth=("user1", "s3cret"))
        self.assertIsNotNone(s.auth_attempts()[-1]["tls"])


class DNSTest(unittest.TestCase):

    def setUp(self):
        self.dns = dns.DNSServer({
            "example.test": {"MX": [(20, "mx2.example.test"),
                                    (10, "mx1.example.test")]},
            "mx1.example.test": {"A": ["127.0.0.2"]},
            "mx2.example.test": {"A": ["127.0.0.3"], "AAAA": ["::1"]},
            "alias.example.test": {"CNAME": "mx1.example.test"},
        }).start()
        self.addCleanup(self.dns.stop)

    def test_answers(self):
        a = self.dns.address
        rc, flags, ans = dns.query(a, "example.test", "MX")
        self.assertEqual(rc, dns.NOERROR)
        self.assertTrue(flags & 0x8000 and flags & 0x0400)   # QR, AA
        self.assertEqual(sorted(x[3] for x in ans),
                         [(10, "mx1.example.test"), (20, "mx2.example.test")])
        self.assertEqual({x[0] for x in ans}, {"example.test"})
        self.assertEqual(dns.query(a, "MX1.Example.TEST.", "A")[2],
                         [("MX1.Example.TEST", "A", 60, "127.0.0.2")])
        self.assertEqual(dns.query(a, "mx2.example.test", "AAAA")[2][0][3],
                         "::1")
        rc, _, ans = dns.query(a, "mx1.example.test", "AAAA")
        self.assertEqual((rc, ans), (dns.NOERROR, []))
        rc, _, ans = dns.query(a, "nowhere.test", "A")
        self.assertEqual((rc, ans), (dns.NXDOMAIN, []))
        rc, _, ans = dns.query(a, "alias.example.test", "A")
        self.assertEqual([x[1:] for x in ans],
                         [("CNAME", 60, "mx1.example.test"),
                          ("A", 60, "127.0.0.2")])
        rc, _, ans = dns.query(a, "example.test", "MX", proto="tcp")
        self.assertEqual(len(ans), 2)
        self.assertIn(("example.test", "MX", "udp"), self.dns.queries)
        self.assertIn(("example.test", "MX", "tcp"), self.dns.queries)

    def test_wire_format(self):
        q = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + \
            b"\x07example\x04test\x00\x00\x0f\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(q, ("127.0.0.1", self.dns.port))
            r, _ = s.recvfrom(4096)
        self.assertEqual(r[:2], b"\xbe\xef")
        self.assertEqual(struct.unpack("!HHHH", r[4:12]), (1, 2, 0, 0))
        self.assertEqual(r[12:12 + len(q) - 12], q[12:])    # question echo
        rest = r[len(q):]
        # first answer: pointer to the question, MX, IN, ttl, rdata
        self.assertEqual(rest[:2], b"\xc0\x0c")
        t, c, ttl, ln = struct.unpack("!HHIH", rest[2:12])
        self.assertEqual((t, c, ttl), (15, 1, 60))
        self.assertEqual(rest[12:12 + ln],
                         b"\x00\x14\x03mx2\x07example\x04test\x00")

    def test_null_mx_servfail_and_changes(self):
        a = self.dns.address
        self.dns.null_mx("nomail.test")
        self.assertEqual(dns.query(a, "nomail.test", "MX")[2],
                         [("nomail.test", "MX", 60, (0, "."))])
        self.dns.servfail("example.test")
        self.assertEqual(dns.query(a, "example.test", "MX")[0],
                         dns.SERVFAIL)
        self.assertEqual(dns.query(a, "mx1.example.test", "A")[0],
                         dns.NOERROR)
        self.dns.servfail()
        self.assertEqual(dns.query(a, "mx1.example.test", "A")[0],
                         dns.SERVFAIL)
        self.dns.servfail(on=False)
        self.dns.servfail("example.test", on=False)
        self.dns.set("mx1.example.test", "A", ["127.0.0.9"])
        self.assertEqual(dns.query(a, "mx1.example.test", "A")[2][0][3],
                         "127.0.0.9")

    def test_truncation_over_udp(self):
        self.dns.set("big.test", "A", ["127.0.%d.%d" % (i // 250, i % 250)
                                       for i in range(60)])
        rc, flags, ans = dns.query(self.dns.address, "big.test", "A")
        self.assertTrue(flags & 0x0200)          # TC
        self.assertEqual(ans, [])
        self.assertEqual(len(dns.query(self.dns.address, "big.test", "A",
                                       proto="tcp")[2]), 60)

    @unittest.skipUnless(shutil.which("dig"), "dig is not installed")
    def test_dig(self):
        p = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.dns.port),
                            "+short", "example.test", "MX"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(sorted(p.stdout.split("\n"))[1:],
                         ["10 mx1.example.test.", "20 mx2.example.test."])


if __name__ == "__main__":
    ft.main()
