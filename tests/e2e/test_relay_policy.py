#!/usr/bin/env python3
"""End-to-end: the relay policy of each listener.

A recipient is accepted when the client is in the listener's
relay_networks, or authenticated, or presents a verified client
certificate named in relay_client_certs (by CN or SHA-256 fingerprint), or
when its domain is in relay.accept_domains.  Otherwise 554 5.7.1 and
nothing is queued.  Address tricks (percent hack, bang paths, source
routes, quoted local parts, double @, address literals) never open the
relay: the classic open-relay test combinations are all refused."""

import base64
import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from smarthost import Certs  # noqa: E402

HOST = "mx.ferry-test.example"
ACCEPTED = "accepted.example"
DEST = "dest.example"
PASSWORD = "relay-pass"

# The classic open-relay tests (after the "16 tests" every relay checker
# ran), with the accepted domain and this host's address literal as the
# relay's own names.  Each is refused: 554 5.7.1, or a syntax reply for
# what is not a mailbox at all.
OPEN_RELAY_TRICKS = [
    "rcpt@%s" % DEST,
    "rcpt%%%s@%s" % (DEST, ACCEPTED),
    "rcpt%%%s@[127.0.0.1]" % DEST,
    '"rcpt@%s"' % DEST,
    '"rcpt%%%s"' % DEST,
    "rcpt@%s@%s" % (DEST, ACCEPTED),
    '"rcpt@%s"@%s' % (DEST, ACCEPTED),
    "rcpt@%s@[127.0.0.1]" % DEST,
    "@%s:rcpt@%s" % (ACCEPTED, DEST),
    "@[127.0.0.1]:rcpt@%s" % DEST,
    "%s!rcpt" % DEST,
    "%s!rcpt@%s" % (DEST, ACCEPTED),
    "%s!rcpt@[127.0.0.1]" % DEST,
    "rcpt%%%s" % DEST,
    "rcpt@[127.0.0.1]",
    '"rcpt%%%s"@%s' % (DEST, ACCEPTED),
    # and some more
    '"%s!rcpt"@%s' % (DEST, ACCEPTED),
    "rcpt%%%s%%%s@%s" % (DEST, ACCEPTED, ACCEPTED),
    "rcpt@%s.%s" % (ACCEPTED, DEST),
    "rcpt@evil%s" % ACCEPTED,
    "rcpt@sub.%s.%s" % (ACCEPTED, DEST),
    "rcpt@%s." % ACCEPTED,
    "rcpt@[IPv6:::1]",
    "rcpt@%s (%s)" % (DEST, ACCEPTED),
    "Postmaster",
    '"rcpt\\@%s"@%s' % (DEST, ACCEPTED),
    "@%s,@%s:rcpt@%s" % (ACCEPTED, ACCEPTED, DEST),
]

# Clean addresses whose final domain really is accepted.
ACCEPTED_ADDRESSES = [
    "rcpt@%s" % ACCEPTED,
    "Rcpt@ACCEPTED.Example",
    "rcpt@deep.sub.%s" % ACCEPTED,          # ".sub.accepted.example"
    "@%s:rcpt@%s" % (DEST, ACCEPTED),        # the route is dropped
    '"john doe"@%s' % ACCEPTED,
    "first.last+tag@%s" % ACCEPTED,
]


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Setup:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-relay-")
        os.chmod(self.dir, 0o755)
        self.certs = Certs(os.path.join(self.dir, "certs"))
        self.cert, self.key = self.certs.server(HOST, "127.0.0.1")
        self.client = self.client_cert("relay-client.example")
        self.other = self.client_cert("other-client.example")
        self.self_signed = self.certs.self_signed("relay-client.example")
        with open(self.other[0]) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.other_fp = hashlib.sha256(der).hexdigest()
        h = subprocess.run([ft.FERRYCTL, "user", "hash"],
                           input=PASSWORD + "\n", capture_output=True,
                           text=True, timeout=30).stdout.strip()
        self.users = os.path.join(self.dir, "users")
        with open(self.users, "w") as f:
            f.write("relay:%s\n" % h)

    def client_cert(self, cn):
        """(cert, key) for a client, signed by the test CA."""
        c = self.certs
        base = os.path.join(c.dir, "client-%s" % cn)
        with open(base + ".ext", "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        c._openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                   base + ".key", "-out", base + ".csr", "-subj",
                   "/CN=%s" % cn)
        c._openssl("x509", "-req", "-in", base + ".csr", "-CA", c.ca_cert,
                   "-CAkey", c.ca_key, "-set_serial",
                   str(5000 + c.serial), "-days", "3", "-out",
                   base + ".pem", "-extfile", base + ".ext")
        c.serial += 1
        return base + ".pem", base + ".key"

    def context(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.certs.ca_cert)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx


class RelayPolicyTest(ft.FerryTestCase):

    @classmethod
    def setUpClass(cls):
        cls.s = Setup()
        cls.ferry_options = {
            "hostname": HOST,
            "limits": {"errors": 1000},       # refusals count as errors
            "networks": ["192.0.2.0/24"],     # not 127.0.0.1
            "accept_domains": [ACCEPTED, ".sub." + ACCEPTED],
            "tls": {"cert_file": cls.s.cert, "key_file": cls.s.key,
                    "client_ca_file": cls.s.certs.ca_cert},
            "auth": {"users_file": cls.s.users, "max_failures": 1000},
            "listen": {"tls": "starttls"},
            "more_listeners": [
                {"name": "trusted", "relay_networks": ["127.0.0.0/8"]},
                {"name": "submission", "tls": "starttls", "auth": True},
                {"name": "mtls", "tls": "starttls", "client_cert": "optional",
                 "relay_client_certs": ["CN=relay-client.example"]},
                {"name": "mtls-fp", "tls": "implicit",
                 "client_cert": "optional",
                 "relay_client_certs": ["sha256:" + cls.s.other_fp.upper()]},
                {"name": "mtls-required", "tls": "implicit",
                 "client_cert": "require"},
            ]}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.s.dir, ignore_errors=True)

    def setUp(self):
        self.before = self.ferry.count("message")

    def assertNothingQueued(self):
        self.assertEqual(self.ferry.count("message"), self.before)

    def starttls(self, port, cert=None):
        c = ft.Client(port)
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        c.starttls(self.s.context(cert), server_hostname=HOST)
        c.ehlo()
        return c

    def rcpt(self, c, addr, sender="sender@example.org"):
        r = c.cmd("MAIL FROM:<%s>" % sender)
        self.assertEqual(r.code, 250, r)
        r = c.cmd("RCPT TO:<%s>" % addr)
        c.cmd("RSET")
        return r

    def assertDenied(self, r, addr):
        self.assertReply(r, 554, "5.7.1", "<%s>: Relay access denied" % addr)

    # the tricks -----------------------------------------------------------

    def test_open_relay_tricks_refused(self):
        with self.ferry.client() as c:
            c.ehlo()
            c.cmd("MAIL FROM:<sender@example.org>")
            for addr in OPEN_RELAY_TRICKS:
                r = c.cmd("RCPT TO:<%s>" % addr)
                self.assertIn(r.code, (554, 501, 553),
                              "%s: %r" % (addr, r))
                if r.code == 554:
                    self.assertEqual(r.esc, "5.7.1", "%s: %r" % (addr, r))
            # nothing was accepted: no message can follow
            self.assertReply(c.cmd("DATA"), 554, "5.5.1")
        self.assertNothingQueued()

    def test_open_relay_tricks_judged_as_expected(self):
        # the ones that are mailboxes get the relay refusal itself
        with self.ferry.client() as c:
            c.ehlo()
            for addr in ("rcpt%%%s@%s" % (DEST, ACCEPTED),
                         '"rcpt@%s"@%s' % (DEST, ACCEPTED),
                         "%s!rcpt@%s" % (DEST, ACCEPTED),
                         '"rcpt%%%s"@%s' % (DEST, ACCEPTED),
                         "rcpt@[127.0.0.1]", "rcpt@%s" % DEST):
                self.assertDenied(self.rcpt(c, addr), addr)
            # the source route is dropped: the final mailbox decides
            r = self.rcpt(c, "@%s:rcpt@%s" % (ACCEPTED, DEST))
            self.assertDenied(r, "rcpt@%s" % DEST)

    def test_accept_domains(self):
        with self.ferry.client() as c:
            c.ehlo()
            c.cmd("MAIL FROM:<sender@example.org>")
            for addr in ACCEPTED_ADDRESSES:
                r = c.cmd("RCPT TO:<%s>" % addr)
                self.assertEqual(r.code, 250, "%s: %r" % (addr, r))
            # "accepted.example" is that domain only, ".sub.accepted.example"
            # its subdomains only
            for addr in ("rcpt@sub.%s" % ACCEPTED, "rcpt@other.%s" % ACCEPTED):
                r = c.cmd("RCPT TO:<%s>" % addr)
                self.assertDenied(r, addr)
            qid = queued(c.data(b"Subject: in\r\n\r\nx\r\n"))
        m = self.ferry.message(qid)
        self.assertEqual([r["address"] for r in m["recipients"]],
                         ["rcpt@%s" % ACCEPTED, "Rcpt@ACCEPTED.Example",
                          "rcpt@deep.sub.%s" % ACCEPTED,
                          "rcpt@%s" % ACCEPTED, '"john doe"@%s' % ACCEPTED,
                          "first.last+tag@%s" % ACCEPTED])

    # the rules ------------------------------------------------------------

    def test_denied_without_a_rule(self):
        with self.ferry.client() as c:
            c.ehlo()
            self.assertDenied(self.rcpt(c, "x@%s" % DEST), "x@%s" % DEST)
        with self.starttls(self.ferry.port) as c:
            self.assertDenied(self.rcpt(c, "x@%s" % DEST), "x@%s" % DEST)
        self.assertNothingQueued()

    def test_network_rule(self):
        with ft.Client(self.ferry.ports["trusted"]) as c:
            c.ehlo()
            qid = c.send_message("s@example.org", ["x@%s" % DEST,
                                                   "y%%z@%s" % DEST],
                                 b"Subject: net\r\n\r\nx\r\n")
        self.assertIsNotNone(self.ferry.message(qid))

    def test_auth_rule(self):
        port = self.ferry.ports["submission"]
        with self.starttls(port) as c:
            self.assertDenied(self.rcpt(c, "x@%s" % DEST), "x@%s" % DEST)
            r = c.cmd("AUTH PLAIN " + b64("\0relay\0" + PASSWORD))
            self.assertReply(r, 235, "2.7.0")
            qid = c.send_message("s@example.org", ["x@%s" % DEST],
                                 b"Subject: auth\r\n\r\nx\r\n")
        m = self.ferry.message(qid)
        self.assertEqual(m["auth_user"], "relay")

    def test_client_certificate_cn_rule(self):
        port = self.ferry.ports["mtls"]
        start = self.ferry.log_size()
        with self.starttls(port, self.s.client) as c:
            qid = c.send_message("s@example.org", ["x@%s" % DEST],
                                 b"Subject: cert\r\n\r\nx\r\n")
        self.assertIsNotNone(self.ferry.message(qid))
        self.assertTrue(self.ferry.wait_log(
            r"client certificate verified from unknown\[127\.0\.0\.1\]: "
            r"subject=CN=relay-client\.example, sha256=[0-9a-f]{64}",
            start=start))
        self.assertTrue(self.ferry.wait_log(
            r'relay allowed for unknown\[127\.0\.0\.1\] by client '
            r'certificate rule "CN=relay-client\.example"', start=start))
        # another verified certificate, none, or a self-signed one with
        # the right name: refused
        for cert in (self.s.other, None, self.s.self_signed):
            with self.starttls(port, cert) as c:
                self.assertDenied(self.rcpt(c, "x@%s" % DEST),
                                  "x@%s" % DEST)
        self.assertTrue(self.ferry.wait_log(
            r"client certificate NOT verified", start=start))

    def test_client_certificate_fingerprint_rule(self):
        port = self.ferry.ports["mtls-fp"]
        ctx = self.s.context(self.s.other)
        with ft.Client(port, tls_context=ctx, server_hostname=HOST) as c:
            c.ehlo()
            qid = c.send_message("s@example.org", ["x@%s" % DEST],
                                 b"Subject: fp\r\n\r\nx\r\n")
        self.assertIsNotNone(self.ferry.message(qid))
        ctx = self.s.context(self.s.client)
        with ft.Client(port, tls_context=ctx, server_hostname=HOST) as c:
            c.ehlo()
            self.assertDenied(self.rcpt(c, "x@%s" % DEST), "x@%s" % DEST)

    def test_client_certificate_required(self):
        port = self.ferry.ports["mtls-required"]
        start = self.ferry.log_size()
        with ft.Client(port, tls_context=self.s.context(self.s.client),
                       server_hostname=HOST) as c:
            self.assertEqual(c.ehlo().code, 250)
        # without a certificate the handshake fails (TLS 1.3: the client
        # learns it at its first read)
        try:
            with ft.Client(port, tls_context=self.s.context(),
                           server_hostname=HOST) as c:
                c.ehlo()
            self.fail("served without a client certificate")
        except (ssl.SSLError, EOFError, ConnectionError, OSError):
            pass
        self.assertTrue(self.ferry.wait_log(
            r"TLS handshake failed from unknown\[127\.0\.0\.1\]",
            start=start))


def queued(reply):
    return ft.queued_id(reply)


if __name__ == "__main__":
    ft.main(need_root=True)
