#!/usr/bin/env python3
"""End-to-end: TLS against the system's CA store (a route without
ca_file), which a delivery agent parses at its first STARTTLS when anyone
may read it, and before it drops privileges when only root may.  The
"system store" here is the test CA, given to ferryd as SSL_CERT_FILE.

- tls = "verify", the store readable by anyone: a server whose
  certificate the store's CA signed for its name gets the mail over TLS
  (tls= in the log); a self-signed server and one whose certificate
  names another host get nothing and the mail is deferred (4.x), as with
  the store loaded at start;
- the store readable by root alone: the agent still has it (made before
  the drop), so the verified delivery goes as before.
Needs root (the daemon drops privileges)."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
from test_delivery import DeliveryCase, WAIT, SENDER  # noqa: E402

RCPT = "rcpt@dest.test"


class SystemStoreTest(DeliveryCase):

    def store(self, mode):
        """A copy of the test CA as the system store, with this mode."""
        path = os.path.join(self.tmp, "store-%o-%s.pem" % (mode, self.id()))
        shutil.copyfile(self.certs.ca_cert, path)
        os.chmod(path, mode)
        self.addCleanup(os.unlink, path)
        return path

    def ferry_with_store(self, s, store, policy="verify"):
        d = ft.Ferry(
            routes=[self.route("dest", ["dest.test"],
                               ["localhost:%d" % s.port], tls=policy)],
            delivery={"retry_schedule": [1], "connect_timeout": 5,
                      "client_command_timeout": 10,
                      "client_data_timeout": 30, "max_lifetime": 3600})
        d.extra_env = {"SSL_CERT_FILE": store}
        return self.started(d)

    def tls_smarthost(self, cert, key):
        return self.smarthost(cert=cert, key=key,
                              extensions=list(sh.DEFAULT_EXTENSIONS) +
                              ["STARTTLS"], hostname="localhost")

    def verified_delivery(self, store):
        cert, key = self.certs.server("localhost")
        s = self.tls_smarthost(cert, key)
        d = self.ferry_with_store(s, store)
        qid = d.send(b"Subject: tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(m.session.verbs[:3], ["EHLO", "STARTTLS", "EHLO"])
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=localhost"
                         r"\[127\.0\.0\.1\]:%d, .*tls=TLSv1\.[23]\b.*"
                         r"status=sent" % (qid, s.port))
        self.gone(d, qid)

    def refused(self, cert, key):
        s = self.tls_smarthost(cert, key)
        d = self.ferry_with_store(s, self.store(0o644))
        qid = d.send(b"Subject: tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        rows = self.wait_deferred(d, qid, 2)
        self.no_mail(s)
        for sess in s.sessions:
            self.assertNotIn("MAIL", sess.verbs)
        self.assertRegex(rows[0]["last_dsn"], r"^4\.")
        self.assertIn("TLS with", rows[0]["last_reply"])

    def test_public_store_verified_delivery(self):
        self.verified_delivery(self.store(0o644))

    def test_public_store_self_signed_defers(self):
        self.refused(*self.certs.self_signed("localhost"))

    def test_public_store_wrong_name_defers(self):
        self.refused(*self.certs.server("wrong.test"))

    def test_root_only_store_still_verified_delivery(self):
        self.verified_delivery(self.store(0o600))


if __name__ == "__main__":
    ft.main(need_root=True)
