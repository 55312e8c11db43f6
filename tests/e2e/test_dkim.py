#!/usr/bin/env python3
"""End-to-end: DKIM signing (dkim { } and dkim_key "name" { } in
ferry.conf).  Messages from trusted clients go in through ferry's SMTP
port and what the test smarthost receives is verified by an independent
implementation, dkimpy (Debian python3-dkim), against the public keys
of keys the test generates, handed to dkimpy's DNS hook: RSA 2048 and
Ed25519, both on one domain (two signatures), folded headers, long
lines, an 8-bit body, a message of many chunks, an empty body, a
message without a final CRLF (BDAT), the signature stored at intake,
parent-domain keys (subdomains), a message already signed, two From
fields (not signed, logged), no From (relayed unsigned), clients that
are not trusted (not signed), a short RSA key refused at start, a reload
with a new key, and a bad key refused on reload.
Needs root (the daemon drops privileges)."""

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

try:
    import dkim
except ImportError:
    # dkimpy from the distribution's package, under another interpreter
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim  # noqa: E402

WAIT = 20.0
SENDER = "app@example.org"
RCPT = "rcpt@dest.test"


def genkey(path, kind):
    """A private key in PEM, made by openssl(1)."""
    if kind == "ed25519":
        args = ["-algorithm", "ed25519"]
    else:
        args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % kind]
    subprocess.run(["openssl", "genpkey"] + args + ["-out", path],
                   check=True, capture_output=True)
    os.chmod(path, 0o600)
    return path


def dns_record(path):
    """The TXT record of a key: ferryctl dkim keygen's format, computed
    here with openssl(1) so the test does not trust ferry for it."""
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    import base64
    if len(der) == 44:          # Ed25519 SubjectPublicKeyInfo
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[12:])
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


class DkimFerry(ft.Ferry):
    """A daemon whose configuration ends with the text self.extra."""

    extra = ""

    def config_text(self, **changes):
        return ft.Ferry.config_text(self, **changes) + self.extra


def key_section(name, domain, selector, path, subdomains=False):
    return ('dkim_key "%s" {\n    domain = "%s"\n    selector = "%s"\n'
            '    key_file = "%s"\n    subdomains = %s\n}\n'
            % (name, domain, selector, path,
               "true" if subdomains else "false"))


class DkimCase(ft.FerryTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="ferry-dkim-")
        os.chmod(cls.tmp, 0o755)
        cls.rsa = genkey(os.path.join(cls.tmp, "rsa.pem"), 2048)
        cls.ed = genkey(os.path.join(cls.tmp, "ed.pem"), "ed25519")
        cls.records = {
            b"rsa1._domainkey.example.org.": dns_record(cls.rsa),
            b"ed1._domainkey.example.org.": dns_record(cls.ed),
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, str):
            name = name.encode()
        if not name.endswith(b"."):
            name += b"."
        return self.records.get(name)

    def smarthost(self):
        s = sh.SmartHost().start()
        self.addCleanup(s.stop)
        return s

    def signing_ferry(self, server, extra, networks=("127.0.0.0/8",), **opts):
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": [server.address], "tls": "none"}
        d = DkimFerry(routes=[route], networks=list(networks),
                      delivery={"retry_schedule": [1],
                                "connect_timeout": 5}, **opts)
        d.extra = extra
        return self.started(d)

    def both_keys(self, **kw):
        return (key_section("rsa", "example.org", "rsa1", self.rsa, **kw) +
                key_section("ed", "example.org", "ed1", self.ed, **kw))

    def relay(self, content, extra=None, sender=SENDER):
        s = self.smarthost()
        d = self.signing_ferry(s, self.both_keys() if extra is None else extra)
        qid = d.send(content, sender=sender, rcpts=[RCPT])
        m = s.wait_messages(1, WAIT)[0]
        return d, qid, m.data

    def signatures(self, data):
        return re.findall(rb"(?m)^DKIM-Signature:[^\r\n]*"
                          rb"(?:\r\n[ \t][^\r\n]*)*", data)

    def assertVerifies(self, data, n):
        sigs = self.signatures(data)
        self.assertEqual(len(sigs), n, data[:3000])
        v = dkim.DKIM(data)
        for i in range(n):
            self.assertTrue(v.verify(idx=i, dnsfunc=self.dnsfunc),
                            "signature %d does not verify: %r" %
                            (i, data[:3000]))
        return sigs


class SigningTest(DkimCase):

    def test_rsa_and_ed25519_verify(self):
        content = (b"From: App <app@example.org>\r\n"
                   b"To: rcpt@dest.test\r\n"
                   b"Subject: hello\r\n"
                   b"Date: Sun, 6 Dec 2026 04:00:00 +0000\r\n"
                   b"Message-ID: <1@example.org>\r\n"
                   b"\r\n"
                   b"Hello,  world  \r\n\r\n\r\n")
        d, qid, data = self.relay(content)
        sigs = self.assertVerifies(data, 2)
        joined = b" ".join(sigs)
        self.assertIn(b"a=rsa-sha256", joined)
        self.assertIn(b"a=ed25519-sha256", joined)
        for sig in sigs:
            flat = re.sub(rb"\s+", b"", sig)
            self.assertIn(b"c=relaxed/relaxed", flat)
            self.assertNotIn(b";l=", flat)
            h = re.search(rb";h=([^;]*)", flat).group(1).lower().split(b":")
            # oversigned: one more than present
            self.assertEqual(h.count(b"from"), 2)
            self.assertEqual(h.count(b"subject"), 2)
            self.assertEqual(h.count(b"cc"), 1)
            self.assertIn(b"message-id", h)
        # the signed message stays as it came below the signatures
        self.assertTrue(data.endswith(content), data)

    def test_rsa_only_folded_long_8bit(self):
        body = (b"caf\xc3\xa9 8-bit \xff\xfe\r\n" + b"x" * 990 + b"\r\n") * 3
        content = (b"From:\r\n  \"Some  Body\"\r\n\t<app@Example.ORG>\r\n"
                   b"Subject: a folded\r\n subject\tline  \r\n"
                   b"List-Id: <list.example.org>\r\n"
                   b"List-Unsubscribe: <mailto:u@example.org>\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n"
                   b"\r\n" + body)
        extra = key_section("rsa", "example.org", "rsa1", self.rsa)
        d, qid, data = self.relay(content, extra)
        sigs = self.assertVerifies(data, 1)
        flat = re.sub(rb"\s+", b"", sigs[0]).lower()
        self.assertIn(b"list-id", flat)
        self.assertIn(b"list-unsubscribe", flat)

    def test_message_of_many_chunks(self):
        """The first chunk is held back while signing, the rest stored
        as they come: a message of several 64 KiB chunks."""
        body = b"".join(b"line %06d of a large message\r\n" % i
                        for i in range(10000))
        content = (b"From: app@example.org\r\nSubject: big\r\n\r\n" +
                   body)
        d, qid, data = self.relay(content)
        self.assertGreater(len(data), 4 * 65536)
        self.assertTrue(data.endswith(content))
        self.assertVerifies(data, 2)

    def test_empty_body(self):
        for content in (b"From: app@example.org\r\nSubject: empty\r\n\r\n",
                        b"From: app@example.org\r\nSubject: no body\r\n"):
            with self.subTest(content=content):
                d, qid, data = self.relay(content)
                self.assertVerifies(data, 2)

    def test_no_final_crlf_through_bdat(self):
        """BDAT (RFC 3030) can end a message without a line end."""
        s = self.smarthost()
        d = self.signing_ferry(s, self.both_keys())
        for n, content in enumerate((
                b"From: app@example.org\r\n\r\nno final line end",
                b"From: app@example.org\r\nSubject: headers only")):
            with d.client() as c:
                c.ehlo()
                c.envelope(SENDER, [RCPT])
                c.send(b"BDAT %d LAST\r\n" % len(content) + content)
                self.assertReply(c.reply(), 250)
                c.cmd("QUIT")
            data = s.wait_messages(n + 1, WAIT)[n].data
            # the agent ends the DATA it sends with a line end
            self.assertTrue(data.endswith(content + b"\r\n"), data)
            self.assertVerifies(data, 2)

    def test_subdomain_signed_with_parent_key(self):
        extra = key_section("ed", "example.org", "ed1", self.ed,
                            subdomains=True)
        d, qid, data = self.relay(b"From: app@mail.example.org\r\n"
                                  b"Subject: sub\r\n\r\nbody\r\n", extra)
        sigs = self.assertVerifies(data, 1)
        self.assertIn(b"d=example.org", sigs[0])

    def test_other_domain_not_signed(self):
        d, qid, data = self.relay(b"From: app@other.test\r\n"
                                  b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(self.signatures(data), [])
        self.assertNotIn("%s: not DKIM-signed" % qid, d.log_text())

    def test_two_from_headers_not_signed_and_logged(self):
        d, qid, data = self.relay(b"From: app@example.org\r\n"
                                  b"From: evil@example.org\r\n"
                                  b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(self.signatures(data), [])
        self.assertIsNotNone(d.wait_log(
            r"%s: not DKIM-signed: 2 From headers" % qid, 5))

    def test_no_from_relayed_unsigned(self):
        d, qid, data = self.relay(b"Subject: no author\r\n\r\nbody\r\n")
        self.assertEqual(self.signatures(data), [])
        self.assertTrue(data.endswith(b"Subject: no author\r\n\r\nbody\r\n"))
        self.assertIsNotNone(d.wait_log(
            r"%s: not DKIM-signed: no From header" % qid, 5))

    def test_already_signed_not_signed_again(self):
        s = self.smarthost()
        d = self.signing_ferry(s, self.both_keys())
        content = (b"From: app@example.org\r\nSubject: twice\r\n\r\n"
                   b"body\r\n")
        d.send(content, sender=SENDER, rcpts=[RCPT])
        first = s.wait_messages(1, WAIT)[0].data
        # the signed message, stripped of the Received field, sent again
        resent = first[first.index(b"DKIM-Signature"):]
        d.send(resent, sender=SENDER, rcpts=[RCPT])
        second = s.wait_messages(2, WAIT)[1].data
        self.assertEqual(len(self.signatures(second)), 2)
        self.assertVerifies(second, 2)

    def test_signature_is_stored_before_delivery(self):
        """Signed once, at intake: the queued message (what every
        attempt sends) already carries the signatures."""
        d = DkimFerry(networks=["127.0.0.0/8"])   # delivery paused
        d.extra = self.both_keys()
        d.start()
        self.addCleanup(d.stop)
        content = b"From: app@example.org\r\nSubject: kept\r\n\r\nbody\r\n"
        qid = d.send(content, sender=SENDER, rcpts=[RCPT])
        m = d.message(qid)
        stored = m["body"]
        self.assertTrue(stored.startswith(b"DKIM-Signature: "), stored)
        # whole and numbered from 0, as every reader of the store expects
        self.assertEqual(m["size"], len(stored))
        self.assertEqual(m["seqs"], list(range(m["chunks"])))
        self.assertVerifies(stored, 2)

    def test_untrusted_client_not_signed(self):
        s = self.smarthost()
        # the client is not in the relay networks: it may only send to
        # an accepted domain, and gets no signature
        d = self.signing_ferry(s, self.both_keys(), networks=["192.0.2.0/24"],
                       accept_domains=["dest.test"])
        d.send(b"From: app@example.org\r\nSubject: x\r\n\r\nbody\r\n",
               sender=SENDER, rcpts=[RCPT])
        data = s.wait_messages(1, WAIT)[0].data
        self.assertEqual(self.signatures(data), [])

    def test_listener_dkim_false_signs_nothing(self):
        """A listener with dkim = false: a trusted client's mail taken
        there goes unsigned, the same client's mail on the other listener
        is signed."""
        s = self.smarthost()
        d = self.signing_ferry(s, self.both_keys(), more_listeners=[
            {"name": "inbound", "dkim": False}])
        msg = b"From: app@example.org\r\nSubject: x\r\n\r\nbody\r\n"
        with ft.Client(d.ports["inbound"]) as c:
            c.ehlo("client.example")
            c.send_message(SENDER, [RCPT], msg)
            c.cmd("QUIT")
        first = s.wait_messages(1, WAIT)[0].data
        self.assertEqual(self.signatures(first), [])
        d.send(msg, sender=SENDER, rcpts=[RCPT])
        self.assertVerifies(s.wait_messages(2, WAIT)[1].data, 2)

    def test_clients_all_signs_untrusted(self):
        s = self.smarthost()
        d = self.signing_ferry(s, 'dkim {\n    clients = "all"\n}\n' +
                       self.both_keys(), networks=["192.0.2.0/24"],
                       accept_domains=["dest.test"])
        d.send(b"From: app@example.org\r\nSubject: x\r\n\r\nbody\r\n",
               sender=SENDER, rcpts=[RCPT])
        self.assertVerifies(s.wait_messages(1, WAIT)[0].data, 2)


class KeyTest(DkimCase):

    def keygen(self, selector, *opts):
        """ferryctl dkim keygen; returns (key path, the TXT record)."""
        path = os.path.join(self.tmp, selector + ".pem")
        r = subprocess.run([ft.FERRYCTL, "dkim", "keygen", "example.org",
                            selector, "--out", path] + list(opts),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        m = re.search(r"^%s\._domainkey\.example\.org\. IN TXT \((.*)\)$"
                      % selector, r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        strings = re.findall(r'"([^"]*)"', m.group(1))
        self.assertTrue(all(len(x) <= 255 for x in strings), strings)
        self.assertIn('key_file = "%s"' % path, r.stdout)
        # never over an existing file
        again = subprocess.run([ft.FERRYCTL, "dkim", "keygen",
                                "example.org", selector, "--out", path],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(again.returncode, 1)
        return path, "".join(strings).encode()

    def test_keygen_keys_sign_and_verify(self):
        rsa, rsa_rec = self.keygen("gen-rsa")
        ed, ed_rec = self.keygen("gen-ed", "--ed25519")
        self.assertTrue(rsa_rec.startswith(b"v=DKIM1; k=rsa; p="))
        self.assertTrue(ed_rec.startswith(b"v=DKIM1; k=ed25519; p="))
        # the records ferryctl printed are the keys' public halves
        self.assertEqual(rsa_rec, dns_record(rsa))
        self.assertEqual(ed_rec, dns_record(ed))
        self.records[b"gen-rsa._domainkey.example.org."] = rsa_rec
        self.records[b"gen-ed._domainkey.example.org."] = ed_rec
        extra = (key_section("r", "example.org", "gen-rsa", rsa) +
                 key_section("e", "example.org", "gen-ed", ed))
        d, qid, data = self.relay(b"From: app@example.org\r\n"
                                  b"Subject: keygen\r\n\r\nbody\r\n",
                                  extra)
        self.assertVerifies(data, 2)

    def test_short_rsa_key_refused_at_start(self):
        short = genkey(os.path.join(self.tmp, "short.pem"), 1024)
        d = DkimFerry()
        d.extra = key_section("short", "example.org", "s", short)
        self.addCleanup(d.stop)
        d.port = ft.free_port()
        d.ports = {}
        d.write_config()
        r = subprocess.run([ft.FERRYD, "-d", "-f", d.conf],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("key_file \"%s\": an RSA key of 1024 bits" % short,
                      r.stderr)

    def test_reload_new_key_and_bad_key_refused(self):
        s = self.smarthost()
        d = self.signing_ferry(s, key_section("rsa", "example.org", "rsa1",
                                      self.rsa))
        content = b"From: app@example.org\r\nSubject: r\r\n\r\nbody\r\n"
        d.send(content, sender=SENDER, rcpts=[RCPT])
        self.assertIn(b"s=rsa1", s.wait_messages(1, WAIT)[0].data)
        # a new key under a new selector
        new = genkey(os.path.join(self.tmp, "new.pem"), "ed25519")
        self.records[b"new1._domainkey.example.org."] = dns_record(new)
        mark = d.log_size()
        d.extra = key_section("new", "example.org", "new1", new)
        d.write_config()
        d.signal(1)
        self.assertIsNotNone(d.wait_log(r"queue runner: configuration "
                                        r"reloaded", 10, mark))
        d.send(content, sender=SENDER, rcpts=[RCPT])
        data = s.wait_messages(2, WAIT)[1].data
        sigs = self.assertVerifies(data, 1)
        self.assertIn(b"s=new1", sigs[0])
        # a bad key: the reload is refused, the running keys stay
        bad = os.path.join(self.tmp, "bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n"
                    "-----END PRIVATE KEY-----\n")
        mark = d.log_size()
        d.extra = key_section("bad", "example.org", "bad1", bad)
        d.write_config()
        d.signal(1)
        self.assertIsNotNone(d.wait_log(r"reload refused: .*bad\.pem", 10,
                                        mark))
        d.send(content, sender=SENDER, rcpts=[RCPT])
        data = s.wait_messages(3, WAIT)[2].data
        sigs = self.assertVerifies(data, 1)
        self.assertIn(b"s=new1", sigs[0])


if __name__ == "__main__":
    ft.main(need_root=True)
