#!/usr/bin/env python3
"""End-to-end: inbound TLS and SMTP AUTH over real TLS, with certificates
made by openssl for the test.

STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with Python's smtplib and
swaks verifying against the test CA; the STARTTLS command-injection
defence; EHLO again after TLS; STARTTLS twice or with an argument; plain
text where a ClientHello belongs; the Received header and protocol
(ESMTPS/ESMTPSA, RFC 3848); AUTH PLAIN and LOGIN (RFC 4954) with their
failure replies; tls_required; auth_plaintext_networks; the lockout across
workers (ferry-anvil); and certificate renewal on SIGHUP."""

import base64
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from smarthost import Certs  # noqa: E402

HOST = "mx.ferry-test.example"
PASSWORDS = {"alice": "alice pass:1", "bob": "b0b-secret"}
ANVIL = os.path.join(ft.BUILDDIR, "src", "ferry-anvil")

_files = None


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def hash_password(pw):
    p = subprocess.run([ft.FERRYCTL, "user", "hash"], input=pw + "\n",
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("ferryctl user hash: %s" % p.stderr)
    return p.stdout.strip()


class Files:
    """Certificates, keys and a users file shared by the tests."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-tls-")
        os.chmod(self.dir, 0o755)
        self.certs = Certs(os.path.join(self.dir, "certs"))
        self.cert, self.key = self.certs.server(HOST, "127.0.0.1")
        self.users = os.path.join(self.dir, "users")
        with open(self.users, "w") as f:
            f.write("# test users\n")
            f.write("alice:%s:alice@example.com,@sales.example.com\n"
                    % hash_password(PASSWORDS["alice"]))
            f.write("bob:%s\n" % hash_password(PASSWORDS["bob"]))
        os.chmod(self.users, 0o600)

    def context(self):
        ctx = ssl.create_default_context(cafile=self.certs.ca_cert)
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def files():
    global _files
    if _files is None:
        _files = Files()
    return _files


def tearDownModule():
    if _files is not None:
        _files.cleanup()


def tls_options(**listen):
    f = files()
    opts = {"hostname": HOST,
            "networks": ["192.0.2.0/24"],      # 127.0.0.1 may not relay
            "tls": {"cert_file": f.cert, "key_file": f.key},
            # the failure tests must not lock 127.0.0.1 out here
            "auth": {"users_file": f.users, "max_failures": 1000},
            "listen": dict({"tls": "starttls", "auth": True}, **listen),
            "more_listeners": [
                {"name": "smtps", "tls": "implicit", "auth": True},
                {"name": "submission", "tls": "starttls",
                 "tls_required": True, "auth": True},
                {"name": "legacy", "auth": True,
                 "auth_plaintext_networks": ["127.0.0.0/8"]},
            ]}
    return opts


class TLSAuthTest(ft.FerryTestCase):

    @classmethod
    def setUpClass(cls):
        cls.ferry_options = tls_options()
        super().setUpClass()

    # helpers --------------------------------------------------------------

    def tls_client(self, port=None):
        """A raw client on the STARTTLS listener, after STARTTLS and a
        new EHLO."""
        c = ft.Client(port or self.ferry.port)
        c.ehlo()
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0",
                         "Ready to start TLS")
        c.starttls(files().context(), server_hostname=HOST)
        c.ehlo()
        return c

    def implicit_client(self):
        c = ft.Client(self.ferry.ports["smtps"],
                      tls_context=files().context(), server_hostname=HOST)
        self.assertEqual(c.greeting.code, 220)
        return c

    def auth_plain(self, c, user, pw):
        return c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, pw)))

    # STARTTLS -------------------------------------------------------------

    def test_ehlo_offers_starttls_not_auth(self):
        with self.ferry.client() as c:
            r = c.ehlo()
            self.assertIn("STARTTLS", r.lines)
            self.assertFalse(any(x.startswith("AUTH") for x in r.lines))
            r = self.auth_plain(c, "bob", PASSWORDS["bob"])
            self.assertReply(r, 538, "5.7.11", "Encryption required")

    def test_smtplib_starttls(self):
        s = smtplib.SMTP("127.0.0.1", self.ferry.port, timeout=10)
        try:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"))
            s.starttls(context=files().context())
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.esmtp_features.get("auth", "").split(),
                             ["PLAIN", "LOGIN"])
            s.login("bob", PASSWORDS["bob"])
            refused = s.sendmail("bob@example.org", ["rcpt@dest.example"],
                                 b"Subject: tls\r\n\r\nhello\r\n")
            self.assertEqual(refused, {})
            s.quit()
        finally:
            s.close()
        row = self.last_message()
        self.assertEqual(row["auth_user"], "bob")
        self.assertEqual(row["protocol"], "ESMTPSA")
        m, rest = ft.split_received(row["body"])
        self.assertEqual(m.group("proto"), b"ESMTPSA")
        self.assertRegex(m.group("tls").decode(),
                         r"^using TLSv1\.[23] with cipher \S+ "
                         r"\(\d+/\d+ bits\)$")

    def test_smtplib_implicit_tls(self):
        # verified against the test CA, by the certificate's IP address
        s = smtplib.SMTP_SSL("127.0.0.1", self.ferry.ports["smtps"],
                             timeout=10, context=files().context())
        try:
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("starttls"))
            self.assertTrue(s.has_extn("auth"))
            s.login("alice", PASSWORDS["alice"])
            self.assertEqual(s.sendmail("alice@example.com",
                                        ["rcpt@dest.example"],
                                        b"Subject: smtps\r\n\r\nhi\r\n"), {})
            s.quit()
        finally:
            s.close()
        row = self.last_message()
        self.assertEqual(row["auth_user"], "alice")
        self.assertEqual(row["protocol"], "ESMTPSA")

    def swaks(self, *args):
        p = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--helo", "client.example",
             "--from", "bob@example.org", "--to", "rcpt@dest.example",
             "--tls-verify", "--tls-ca-path", files().certs.ca_cert,
             "--tls-sni", HOST, "--timeout", "10"] + list(args),
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        return p

    @unittest.skipUnless(shutil.which("swaks"), "swaks not installed")
    def test_swaks_starttls_auth_plain(self):
        p = self.swaks("--port", str(self.ferry.port), "--tls",
                       "--auth", "PLAIN", "--auth-user", "bob",
                       "--auth-password", PASSWORDS["bob"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("235 2.7.0 Authentication successful", p.stdout)
        self.assertIn("queued as", p.stdout)
        self.assertEqual(self.last_message()["protocol"], "ESMTPSA")

    @unittest.skipUnless(shutil.which("swaks"), "swaks not installed")
    def test_swaks_implicit_auth_login(self):
        p = self.swaks("--port", str(self.ferry.ports["smtps"]), "--tlsc",
                       "--auth", "LOGIN", "--auth-user", "bob",
                       "--auth-password", PASSWORDS["bob"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("334 VXNlcm5hbWU6", p.stdout)
        self.assertIn("334 UGFzc3dvcmQ6", p.stdout)
        self.assertIn("queued as", p.stdout)

    @unittest.skipUnless(shutil.which("swaks"), "swaks not installed")
    def test_swaks_unauthenticated_relay_denied(self):
        p = self.swaks("--port", str(self.ferry.port), "--tls")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("554 5.7.1 <rcpt@dest.example>: Relay access denied",
                      p.stdout)

    def test_starttls_injection_discarded(self):
        start = self.ferry.log_size()
        with self.ferry.client() as c:
            c.ehlo()
            c.send(b"STARTTLS\r\nRSET\r\n")
            self.assertReply(c.reply(), 220, "2.0.0")
            c.starttls(files().context(), server_hostname=HOST)
            # the first reply after the handshake answers EHLO, not RSET
            r = c.cmd("EHLO client.example")
            self.assertEqual(r.code, 250)
            self.assertEqual(r.lines[0], HOST, r)
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertTrue(self.ferry.wait_log(
            r"warning: 6 bytes of command pipelining after STARTTLS from "
            r"unknown\[127\.0\.0\.1\] discarded", start=start))

    def test_ehlo_needed_again_and_no_second_starttls(self):
        with self.ferry.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("STARTTLS now"), 501, "5.5.4")
            self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
            c.starttls(files().context(), server_hostname=HOST)
            # the EHLO before TLS is forgotten (RFC 3207 4.2)
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 503,
                             "5.5.1")
            r = c.ehlo()
            self.assertNotIn("STARTTLS", r.lines)
            self.assertIn("AUTH PLAIN LOGIN", r.lines)
            self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")
            self.assertReply(c.cmd("STARTTLS x"), 503, "5.5.1")

    def test_starttls_on_implicit_listener(self):
        with self.implicit_client() as c:
            c.ehlo()
            self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")

    def test_starttls_not_offered_on_plain_listener(self):
        with ft.Client(self.ferry.ports["legacy"]) as c:
            r = c.ehlo()
            self.assertNotIn("STARTTLS", r.lines)
            self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1")

    def test_plain_text_instead_of_client_hello(self):
        start = self.ferry.log_size()
        with self.ferry.client() as c:
            c.ehlo()
            self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
            c.send(b"EHLO client.example\r\n")
            self.assertTrue(c.is_closed())
            self.assertFalse(c.buf.startswith(b"250"))
        with ft.Client(self.ferry.ports["smtps"], greeting=False) as c:
            c.send(b"EHLO client.example\r\n")
            self.assertTrue(c.is_closed())
            self.assertNotIn(b"220", c.buf)
        self.assertTrue(self.ferry.wait_log(
            r"TLS handshake failed from unknown\[127\.0\.0\.1\]: .*"
            r"dropping the connection", start=start))
        self.assertTrue(self.ferry.wait_log(r"\(TLS handshake failed\)",
                                            start=start))

    # AUTH -----------------------------------------------------------------

    def test_auth_plain_initial_response(self):
        with self.tls_client() as c:
            r = self.auth_plain(c, "bob", PASSWORDS["bob"])
            self.assertReply(r, 235, "2.7.0", "Authentication successful")
            qid = c.send_message("anyone@example.org", ["x@dest.example"],
                                 b"Subject: a\r\n\r\nb\r\n")
        m = self.ferry.message(qid)
        self.assertEqual(m["auth_user"], "bob")
        self.assertEqual(m["protocol"], "ESMTPSA")

    def test_auth_plain_empty_challenge(self):
        with self.tls_client() as c:
            r = c.cmd("AUTH PLAIN")
            self.assertEqual(r.raw, b"334 \r\n")
            r = c.cmd(b64("bob\0bob\0" + PASSWORDS["bob"]))
            self.assertReply(r, 235, "2.7.0")

    def test_auth_login(self):
        with self.tls_client() as c:
            r = c.cmd("AUTH LOGIN")
            self.assertEqual(r.raw, b"334 VXNlcm5hbWU6\r\n")
            r = c.cmd(b64("alice"))
            self.assertEqual(r.raw, b"334 UGFzc3dvcmQ6\r\n")
            self.assertReply(c.cmd(b64(PASSWORDS["alice"])), 235, "2.7.0")
        with self.tls_client() as c:
            r = c.cmd("AUTH login " + b64("alice"))
            self.assertEqual(r.raw, b"334 UGFzc3dvcmQ6\r\n")
            self.assertReply(c.cmd(b64(PASSWORDS["alice"])), 235, "2.7.0")

    def test_auth_failures_look_alike(self):
        with self.tls_client() as c:
            bad_pw = self.auth_plain(c, "bob", "wrong")
            unknown = self.auth_plain(c, "nobody-here", "wrong")
            self.assertReply(bad_pw, 535, "5.7.8",
                             "Authentication credentials invalid")
            self.assertEqual(bad_pw.raw, unknown.raw)
            r = c.cmd("AUTH LOGIN")
            c.cmd(b64("bob"))
            self.assertEqual(c.cmd(b64("wrong")).raw, bad_pw.raw)
            # authzid for someone else: refused like a bad password
            r = c.cmd("AUTH PLAIN " + b64("alice\0bob\0" +
                                          PASSWORDS["bob"]))
            self.assertEqual(r.raw, bad_pw.raw)
            # not authenticated: relay still denied
            c.cmd("MAIL FROM:<bob@example.org>")
            self.assertReply(c.cmd("RCPT TO:<x@dest.example>"), 554,
                             "5.7.1")

    def test_auth_cancel_and_bad_base64(self):
        with self.tls_client() as c:
            c.cmd("AUTH LOGIN")
            self.assertReply(c.cmd("*"), 501, "5.0.0",
                             "Authentication cancelled")
            self.assertEqual(c.cmd("AUTH PLAIN").code, 334)
            self.assertReply(c.cmd("*"), 501, "5.0.0")
            self.assertReply(c.cmd("AUTH PLAIN !!!!"), 501, "5.5.2")
            self.assertReply(c.cmd("AUTH PLAIN abc"), 501, "5.5.2")
            c.cmd("AUTH PLAIN")
            self.assertReply(c.cmd("a=bc"), 501, "5.5.2")
            c.cmd("AUTH LOGIN")
            c.cmd(b64("bob"))
            self.assertReply(c.cmd("@@@@"), 501, "5.5.2")
            # no NULs: not a PLAIN response
            self.assertReply(c.cmd("AUTH PLAIN " + b64("bob")), 501,
                             "5.5.2")
            self.assertReply(c.cmd("NOOP"), 250)
            self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                             235)

    def test_auth_sequence_errors(self):
        with self.tls_client() as c:
            self.assertReply(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4")
            self.assertReply(c.cmd("AUTH"), 501, "5.5.4")
            c.cmd("MAIL FROM:<bob@example.org>")
            self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                             503, "5.5.1")
            c.cmd("RSET")
            self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                             235)
            self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                             503, "5.5.1", "already authenticated")
            # MAIL AUTH= (RFC 4954 5) is accepted and ignored
            self.assertReply(c.cmd("MAIL FROM:<bob@example.org> AUTH=<>"),
                             250)

    def test_auth_long_lines(self):
        with self.tls_client() as c:
            self.assertEqual(c.cmd("AUTH PLAIN").code, 334)
            r = c.cmd("A" * 13000)
            self.assertReply(r, 500, "5.5.6")
            self.assertReply(c.cmd("NOOP"), 250)
            # 12288 octets are taken (RFC 4954 4): here a response that
            # decodes but is not PLAIN
            self.assertEqual(c.cmd("AUTH PLAIN").code, 334)
            self.assertReply(c.cmd("QUJD" * 3072), 501, "5.5.2")
            # and a real one with a long (wrong) password
            pw = "x" * 9000
            r = c.cmd("AUTH PLAIN")
            r = c.cmd(b64("\0bob\0" + pw))
            self.assertEqual(r.code, 501)   # longer than crypt takes
            self.assertReply(self.auth_plain(c, "bob", "y" * 500), 535)

    def test_tls_required_listener(self):
        port = self.ferry.ports["submission"]
        with ft.Client(port) as c:
            r = c.ehlo()
            self.assertIn("STARTTLS", r.lines)
            self.assertFalse(any(x.startswith("AUTH") for x in r.lines))
            for cmd in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@x.example>",
                        "DATA", "AUTH PLAIN " + b64("\0bob\0x")):
                self.assertReply(c.cmd(cmd), 530, "5.7.0",
                                 "Must issue a STARTTLS command first")
            # a BDAT chunk is swallowed, not read as commands
            c.send(b"BDAT 6 LAST\r\nNOOP\r\n")
            self.assertReply(c.reply(), 530, "5.7.0")
            for cmd in ("NOOP", "RSET", "HELO client.example"):
                self.assertEqual(c.cmd(cmd).code, 250, cmd)
            c.ehlo()
            self.assertEqual(c.cmd("STARTTLS").code, 220)
            c.starttls(files().context(), server_hostname=HOST)
            c.ehlo()
            self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                             235)
            c.send_message("bob@example.org", ["x@dest.example"],
                           b"Subject: sub\r\n\r\nx\r\n")

    def test_auth_plaintext_networks(self):
        start = self.ferry.log_size()
        with ft.Client(self.ferry.ports["legacy"]) as c:
            r = c.ehlo()
            self.assertIn("AUTH PLAIN LOGIN", r.lines)
            self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                             235)
            qid = c.send_message("bob@example.org", ["x@dest.example"],
                                 b"Subject: legacy\r\n\r\nx\r\n")
        m = self.ferry.message(qid)
        self.assertEqual(m["protocol"], "ESMTPA")
        self.assertEqual(m["auth_user"], "bob")
        self.assertTrue(self.ferry.wait_log(
            r"warning: AUTH without TLS from unknown\[127\.0\.0\.1\] "
            r"\(auth_plaintext_networks\)", start=start))

    def test_sender_binding(self):
        with self.tls_client() as c:
            self.assertReply(self.auth_plain(c, "alice",
                                             PASSWORDS["alice"]), 235)
            for bad in ("bob@example.com", "Alice@example.com",
                        "alice@example.com.evil.example", "",
                        "x@eu.sales.example.com"):
                r = c.cmd("MAIL FROM:<%s>" % bad)
                self.assertReply(r, 553, "5.7.1",
                                 "Sender address rejected: not owned by "
                                 "user alice")
            for good in ("alice@example.com", "alice@EXAMPLE.com",
                         "anyone@sales.example.com"):
                self.assertReply(c.cmd("MAIL FROM:<%s>" % good), 250)
                c.cmd("RSET")

    def test_plain_session_protocol_unchanged(self):
        with ft.Client(self.ferry.ports["legacy"]) as c:
            c.ehlo()
            c.cmd("MAIL FROM:<a@example.org>")
            # 127.0.0.1 is no relay client here
            self.assertReply(c.cmd("RCPT TO:<x@dest.example>"), 554, "5.7.1")

    # ------------------------------------------------------------------

    def last_message(self):
        rows = self.ferry.query("SELECT qid FROM message ORDER BY id DESC "
                                "LIMIT 1")
        return self.ferry.message(rows[0]["qid"])


@unittest.skipUnless(os.access(ANVIL, os.X_OK),
                     "ferry-anvil (the abuse limits) is not built")
class LockoutTest(ft.FerryTestCase):
    """AUTH failures are counted across workers by ferry-anvil."""

    @classmethod
    def setUpClass(cls):
        o = tls_options()
        o["auth"] = dict(o["auth"], max_failures=3, lockout=60)
        # AUTH without TLS on the main listener, so that worker_for works
        o["listen"] = {"auth": True,
                       "auth_plaintext_networks": ["127.0.0.0/8"]}
        o["workers"] = {"min_idle": 3, "max_idle": 6, "max": 8,
                        "sessions": 1}
        cls.ferry_options = o
        super().setUpClass()

    def test_lockout(self):
        start = self.ferry.log_size()
        workers = set()
        for _ in range(3):
            with self.ferry.client() as c:
                c.ehlo()
                workers.add(self.ferry.worker_for(c))
                r = c.cmd("AUTH PLAIN " + b64("\0bob\0wrong"))
                self.assertReply(r, 535, "5.7.8")
        # one session per worker: the failures were seen by three
        self.assertGreaterEqual(len(workers - {None}), 2)
        with self.ferry.client() as c:
            c.ehlo()
            r = c.cmd("AUTH PLAIN " + b64("\0bob\0" + PASSWORDS["bob"]))
            self.assertReply(r, 421, "4.7.0",
                             "too many failed authentications")
            self.assertTrue(c.is_closed())
        self.assertTrue(self.ferry.wait_log(
            r"AUTH from unknown\[127\.0\.0\.1\] refused: locked out",
            start=start))


class CertificateReloadTest(ft.FerryTestCase):
    """SIGHUP: new workers present a renewed certificate; a certificate
    and key that do not match keep the running configuration."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="ferry-reload-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.certs = files().certs

    def install(self, cert, key):
        for src, dst in ((cert, self.cert), (key, self.key)):
            shutil.copy(src, dst + ".tmp")
            os.rename(dst + ".tmp", dst)

    def presented(self):
        ctx = ssl.create_default_context(cafile=self.certs.ca_cert)
        with socket.create_connection(("127.0.0.1", self.d.port),
                                      timeout=10) as s:
            s.settimeout(10)
            s.recv(1000)
            s.sendall(b"EHLO c.example\r\n")
            time.sleep(0.05)
            s.recv(4000)
            s.sendall(b"STARTTLS\r\n")
            assert s.recv(1000).startswith(b"220")
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                der = t.getpeercert(binary_form=True)
                t.sendall(b"QUIT\r\n")
                return der

    def der(self, cert):
        with open(cert) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def test_reload(self):
        c1, k1 = self.certs.server(HOST, "127.0.0.1")
        c2, k2 = self.certs.server(HOST, "127.0.0.1")
        self.install(c1, k1)
        self.d = self.start_ferry(hostname=HOST, listen={"tls": "starttls"},
                                  tls={"cert_file": self.cert,
                                       "key_file": self.key})
        self.assertEqual(self.presented(), self.der(c1))
        # renewed: the next generation of workers presents it
        self.install(c2, k2)
        self.d.signal(signal.SIGHUP)
        self.assertTrue(ft.wait_for(
            lambda: self.presented() == self.der(c2), 10),
            "the renewed certificate is not presented")
        # a certificate with someone else's key: refused, old one kept
        start = self.d.log_size()
        self.install(c1, k2)
        self.d.signal(signal.SIGHUP)
        self.assertTrue(self.d.wait_log(
            r"reload refused: .*: certificate and key do not match; "
            r"keeping the running configuration", start=start))
        for _ in range(3):
            self.assertEqual(self.presented(), self.der(c2))

    def test_bad_pair_at_start(self):
        c1, k1 = self.certs.server(HOST)
        c2, k2 = self.certs.server(HOST)
        self.install(c1, k2)
        d = ft.Ferry(hostname=HOST, listen={"tls": "starttls"},
                     tls={"cert_file": self.cert, "key_file": self.key})
        self.addCleanup(shutil.rmtree, d.dir, True)
        d.port, d.ports = ft.free_port(), {}
        d.write_config()
        p = subprocess.run([ft.FERRYD, "-d", "-f", d.conf],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r'listen "test": .*: certificate and '
                         r'key do not match')


if __name__ == "__main__":
    ft.main(need_root=True)
