#!/usr/bin/env python3
"""End-to-end: delivery.  Messages go in through ferry's SMTP port and
come out at a recording test smarthost (tests/lib/smarthost.py) byte for
byte, with the envelope passed on; deferral and retry, bounces (RFC 3464)
through the route of the sender's domain, lifetime expiry, failover,
STARTTLS policies, AUTH only under TLS, SIZE and SMTPUTF8 refusals, MX
delivery against a test DNS server (tests/lib/dnsserver.py: preference
order and fallback, the domain itself when it has no MX, AAAA when an MX
host has no A, null MX, NXDOMAIN bounced, SERVFAIL and a resolver that
never answers deferred), connection reuse, kill -9 of the queue runner
during a delivery, and lifetime expiry (without waiting out the
lifetime).

Conventions: recipients are @dest.test (route "dest" to the smarthost
under test), senders @origin.test (route "origin" to a second smarthost
that receives the bounces).  retry_schedule = {1} makes retries quick.
Needs root (the daemon drops privileges)."""

import email
import email.policy
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
import dnsserver as dnsmod  # noqa: E402
from ferrytest import split_received  # noqa: E402

WAIT = 20.0                     # a delivery that should happen, at most
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"
DELIVER = os.path.join(ft.BUILDDIR, "src", "ferry-deliver")


def unfold(v):
    return " ".join(str(v).split())


def parse_dsn(data):
    """(the report, its per-message fields, [per-recipient fields]) of an
    RFC 3464 delivery status notification; AssertionError if it is not
    one."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        raise AssertionError("not a multipart/report: %r" % data[:2000])
    if (msg.get_param("report-type") or "").lower() != "delivery-status":
        raise AssertionError("report-type is not delivery-status: %r"
                             % msg["Content-Type"])
    parts = msg.get_payload()
    ds = [p for p in parts
          if p.get_content_type() == "message/delivery-status"]
    if len(ds) != 1:
        raise AssertionError("no message/delivery-status part: %r"
                             % [p.get_content_type() for p in parts])
    blocks = ds[0].get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise AssertionError("delivery-status without recipient fields")
    return msg, blocks[0], blocks[1:]


class DeliveryCase(ft.FerryTestCase):
    """Helpers; every test starts its own servers and daemon."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="ferry-delivery-")
        os.chmod(cls.tmp, 0o755)
        cls._certs = None

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @property
    def certs(self):
        if type(self)._certs is None:
            type(self)._certs = sh.Certs(os.path.join(self.tmp, "certs"))
        return type(self)._certs

    def setUp(self):
        super().setUp()
        if not os.access(DELIVER, os.X_OK):
            self.fail("delivery is not built: no %s" % DELIVER)
        self.servers = []

    def tearDown(self):
        if self._failed():
            for s in self.servers:
                sys.stderr.write("\n[%s] smarthost %s: %s\n" % (
                    self.id(), s.address, s.summary()))
        super().tearDown()

    def smarthost(self, **kw):
        s = sh.SmartHost(**kw).start()
        self.servers.append(s)
        self.addCleanup(s.stop)
        return s

    def dns(self, records):
        d = dnsmod.DNSServer(records).start()
        self.addCleanup(d.stop)
        return d

    @staticmethod
    def route(name, domains, hosts, **policy):
        r = {"name": name, "domains": list(domains), "hosts": list(hosts),
             "tls": "none"}
        r.update(policy)
        return r

    def ferry_to(self, dest, bounces=None, routes=(), delivery=None,
                 **options):
        """A daemon whose route "dest" goes to the smarthost dest (a
        SmartHost, or a list of "host:port") and route "origin" (the
        senders' domain) to bounces; retries every second."""
        hosts = [dest.address] if isinstance(dest, sh.SmartHost) else dest
        rs = [self.route("dest", ["dest.test", ".dest.test"], hosts,
                         **options.pop("policy", {}))]
        if bounces is not None:
            rs.append(self.route("origin", ["origin.test"],
                                 [bounces.address]))
        rs += list(routes)
        d = {"retry_schedule": [1], "connect_timeout": 5,
             "client_command_timeout": 10, "client_data_timeout": 30,
             "max_lifetime": 3600}
        d.update(delivery or {})
        return self.start_ferry(routes=rs, delivery=d, **options)

    def gone(self, ferry, qid, timeout=WAIT):
        """Waits until the message left the queue."""
        ok = ft.wait_for(lambda: ferry.count("message", "qid = ?",
                                             (qid,)) == 0, timeout, 0.1)
        self.assertTrue(ok, "%s still queued: %r" % (
            qid, ferry.message(qid) and ferry.message(qid)["recipients"]))

    def rcpt_rows(self, ferry, qid):
        return ferry.query(
            "SELECT r.* FROM recipient r JOIN message m ON "
            "m.id = r.message_id WHERE m.qid = ? ORDER BY r.id", (qid,))

    def attempts(self, ferry, qid):
        return ferry.query(
            "SELECT a.*, r.address FROM attempt a JOIN recipient r ON "
            "r.id = a.recipient_id JOIN message m ON m.id = r.message_id "
            "WHERE m.qid = ? ORDER BY a.id", (qid,))

    def wait_deferred(self, ferry, qid, n=1, timeout=WAIT):
        """Waits until every recipient was tried n times and is still
        pending; returns the recipient rows."""
        def check():
            rows = self.rcpt_rows(ferry, qid)
            return rows if rows and all(
                r["state"] == "pending" and r["attempts"] >= n
                for r in rows) else None
        rows = ft.wait_for(check, timeout, 0.1)
        self.assertTrue(rows, "%s: not deferred %d time(s): %r" % (
            qid, n, self.rcpt_rows(ferry, qid)))
        return rows

    def log_line(self, ferry, pattern, timeout=WAIT):
        m = ferry.wait_log(pattern, timeout)
        self.assertIsNotNone(m, "no log line %r" % pattern)
        return m

    def no_mail(self, server):
        """Nothing reached the server beyond the envelope's start."""
        self.assertEqual(server.messages, [])
        for s in server.sessions:
            self.assertNotIn("DATA", s.verbs, s)

    def bounce_for(self, server, qid, n=1, timeout=WAIT):
        """The n-th message at server, checked to be a bounce to SENDER
        from <>; returns (report, per-message, per-recipient)."""
        m = server.wait_messages(n, timeout)[n - 1]
        self.assertEqual(m.sender, "")
        self.assertEqual(m.recipients, [SENDER])
        return parse_dsn(m.data)


# ------------------------------------------------------------- content

class ContentTest(DeliveryCase):

    def test_byte_for_byte_with_log_lines(self):
        s = self.smarthost()
        d = self.ferry_to(s)
        content = (b"From: Sender <sender@origin.test>\r\n"
                   b"To: rcpt@dest.test\r\nSubject: relay me\r\n"
                   b"Message-ID: <1@origin.test>\r\n\r\n"
                   b".starts with a dot\r\n..two dots\r\n.\r\n"
                   b"trailing spaces   \r\n\tand a tab\r\n\r\nlast\r\n")
        qid = d.send(content, sender=SENDER, rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.sender, SENDER)
        self.assertEqual(m.recipients, [RCPT])
        hdr, rest = split_received(m.data)
        self.assertEqual(rest, content)
        self.assertEqual(hdr.group("qid").decode(), qid)
        self.assertEqual(hdr.group("host").decode(), d.hostname)
        # on the wire: dot-stuffed, CRLF.CRLF after it
        self.assertEqual(m.data_raw, ft.dot_stuff(m.data))
        self.assertIn(b"\r\n..starts with a dot\r\n...two dots\r\n..\r\n",
                      m.data_raw)
        self.assertIn(m.data_raw + b".\r\n", m.session.raw)
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=127\.0\.0\.1"
                         r"\[127\.0\.0\.1\]:%d, delay=[\d.e+-]+, "
                         r"delays=[\d.e+/-]+, tls=[^,]+, dsn=2\.0\.0, "
                         r"status=sent \(250 2\.0\.0 Ok: queued as SH1\)"
                      % (qid, s.port))
        self.log_line(d, r"%s: removed" % qid)
        self.gone(d, qid)

    def test_swaks_in_8bitmime_out(self):
        s = self.smarthost()
        d = self.ferry_to(s)
        content = ("Subject: 8bit\r\nContent-Type: text/plain; "
                   "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                   "\r\nGr\u00fc\u00dfe, d\u00e9j\u00e0 vu\r\n.\r\n"
                   ).encode("utf-8")
        path = os.path.join(d.dir, "in.eml")
        with open(path, "wb") as f:
            f.write(content.replace(b"\r\n", b"\n") + b".\n")
        p = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % d.port, "--from", SENDER,
             "--to", RCPT, "--data", "@" + path, "--timeout", "20",
             "--protocol", "ESMTP"], stdin=subprocess.DEVNULL,
            capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout[-2000:])
        # and one declared 8BITMIME
        with d.client() as c:
            c.ehlo()
            c.envelope(SENDER, [RCPT], mail_params=" BODY=8BITMIME")
            qid8 = ft.queued_id(c.data(ft.dot_stuff(content)))
        ms = s.wait_messages(2, WAIT)
        for m in ms:
            self.assertEqual(split_received(m.data)[1], content)
        (m8,) = [m for m in ms if split_received(m.data)[0].group("qid")
                 == qid8.encode()]
        self.assertEqual(m8.mail_params.get("BODY"), "8BITMIME")

    def test_two_megabytes_with_size(self):
        s = self.smarthost()
        d = self.ferry_to(s)
        line = b"abcdefghij" * 7 + b"\r\n"
        content = b"Subject: big\r\n\r\n" + \
            (line + b".dot\r\n") * (2 * 1024 * 1024 // (len(line) + 6))
        qid = d.send(content, sender=SENDER, rcpts=[RCPT],
                     mail_params=" SIZE=%d" % len(content))
        (m,) = s.wait_messages(1, 60)
        self.assertEqual(split_received(m.data)[1], content)
        self.assertEqual(m.data_raw, ft.dot_stuff(m.data))
        # SIZE= is the size of what ferry sends (its stored message)
        self.assertEqual(m.mail_params.get("SIZE"), str(len(m.data)))
        self.gone(d, qid)

    def test_dsn_parameters_passed_when_offered(self):
        s = self.smarthost()             # offers DSN
        d = self.ferry_to(s)
        with d.client() as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<%s> RET=HDRS ENVID=env+2B42" % SENDER)
            self.assertEqual(r.code, 250, r)
            r = c.cmd("RCPT TO:<a@dest.test> NOTIFY=SUCCESS,DELAY "
                      "ORCPT=rfc822;orig+2Ba@dest.test")
            self.assertEqual(r.code, 250, r)
            r = c.cmd("RCPT TO:<b@dest.test> NOTIFY=NEVER")
            self.assertEqual(r.code, 250, r)
            qid = ft.queued_id(c.data(b"Subject: dsn\r\n\r\nx\r\n"))
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.sender, SENDER)
        self.assertEqual(m.mail_params.get("RET"), "HDRS")
        self.assertEqual(m.mail_params.get("ENVID"), "env+2B42")
        by = {r.address: r.params for r in m.rcpts}
        self.assertEqual(set(by), {"a@dest.test", "b@dest.test"})
        self.assertEqual(by["a@dest.test"].get("NOTIFY"), "SUCCESS,DELAY")
        self.assertEqual(by["a@dest.test"].get("ORCPT"),
                         "rfc822;orig+2Ba@dest.test")
        self.assertEqual(by["b@dest.test"].get("NOTIFY"), "NEVER")
        self.gone(d, qid)

    def test_dsn_parameters_not_passed_when_not_offered(self):
        s = self.smarthost(extensions=["PIPELINING", "SIZE 10485760",
                                       "8BITMIME", "ENHANCEDSTATUSCODES"])
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b)
        with d.client() as c:
            c.ehlo()
            c.envelope(SENDER, [RCPT], mail_params=" RET=FULL ENVID=e1",
                       rcpt_params=" NOTIFY=FAILURE,DELAY "
                                   "ORCPT=rfc822;rcpt@dest.test")
            qid = ft.queued_id(c.data(b"Subject: no dsn\r\n\r\nx\r\n"))
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(set(m.mail_params) - {"SIZE", "BODY"}, set())
        self.assertEqual(m.rcpts[0].params, {})
        self.assertEqual(m.recipients, [RCPT])
        self.gone(d, qid)
        self.assertEqual(b.sessions, [])

    def test_envelope_several_recipients_one_transaction(self):
        s = self.smarthost()
        d = self.ferry_to(s)
        rcpts = ["r%d@dest.test" % i for i in range(5)]
        qid = d.send(b"Subject: many\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=rcpts)
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.recipients, rcpts)
        self.assertEqual(m.mail_line.split(b" ")[1],
                         b"FROM:<sender@origin.test>")
        self.gone(d, qid)
        for r in rcpts:
            self.log_line(d, r"%s: to=<%s>, .*status=sent" %
                          (qid, re.escape(r)))


# ------------------------------------------------- retries and bounces

class RetryBounceTest(DeliveryCase):

    def test_defer_at_rcpt_then_deliver(self):
        s = self.smarthost()
        s.reply_at("rcpt", "451 4.3.0 Try again later", times=1)
        d = self.ferry_to(s)
        qid = d.send(b"Subject: retry\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(split_received(m.data)[0].group("qid").decode(),
                         qid)
        first = s.transactions[0]
        self.assertEqual([r.code for r in first.rcpts], [451])
        self.assertIsNone(first.data_raw)
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=127\.0\.0\.1"
                         r"\[127\.0\.0\.1\]:%d, .*dsn=4\.3\.0, "
                         r"status=deferred \(.*451 4\.3\.0 Try again later"
                      % (qid, s.port))
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*status=sent" % qid)
        self.gone(d, qid)

    def test_smarthost_down_then_back(self):
        s = self.smarthost()
        s.pause()
        d = self.ferry_to(s)
        qid = d.send(b"Subject: down\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        rows = self.wait_deferred(d, qid, 2)
        self.assertTrue(rows[0]["last_reply"])
        self.assertRegex(rows[0]["last_dsn"] or "", r"^4\.\d+\.\d+$")
        hist = self.attempts(d, qid)
        self.assertGreaterEqual(len(hist), 2)
        self.assertEqual({h["status"] for h in hist}, {"deferred"})
        self.assertEqual(hist[0]["relay"], "none")
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=none, .*"
                         r"status=deferred" % qid)
        s.resume()
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(split_received(m.data)[1],
                         b"Subject: down\r\n\r\nx\r\n")
        self.gone(d, qid)

    def test_reload_reroutes_queued_mail(self):
        # the route is decided at every attempt: after SIGHUP with a new
        # host for the route, mail already queued goes there
        down = self.smarthost()
        down.pause()
        up = self.smarthost()
        d = self.ferry_to(down)
        qid = d.send(b"Subject: rerouted\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.wait_deferred(d, qid, 1)
        d.write_config(routes=[self.route("dest", ["dest.test"],
                                          [up.address])])
        start = d.log_size()
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(
            r"queue runner: configuration reloaded", WAIT, start))
        (m,) = up.wait_messages(1, WAIT)
        self.assertEqual(split_received(m.data)[1],
                         b"Subject: rerouted\r\n\r\nx\r\n")
        self.assertEqual(down.messages, [])
        self.gone(d, qid)

    def test_5xx_at_rcpt_bounces_through_senders_route(self):
        s = self.smarthost()
        reply = "550 5.1.1 <bad@dest.test>: Recipient address rejected"
        s.reply_at("rcpt", reply, rcpt="bad@dest.test")
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b)
        content = (b"From: sender@origin.test\r\nTo: bad@dest.test\r\n"
                   b"Subject: will bounce\r\nMessage-ID: <b1@origin.test>"
                   b"\r\n\r\nbody\r\n")
        qid = d.send(content, sender=SENDER,
                     rcpts=["good@dest.test", "bad@dest.test"])
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.recipients, ["good@dest.test"])
        report, per_msg, per_rcpt = self.bounce_for(b, qid)
        self.assertIn(SENDER, report["To"] or "")
        self.assertIn("dns;", unfold(per_msg["Reporting-MTA"]).replace(
            " ", "").lower())
        self.assertEqual(len(per_rcpt), 1)
        f = per_rcpt[0]
        self.assertEqual(unfold(f["Final-Recipient"]).lower().replace(
            " ", ""), "rfc822;bad@dest.test")
        self.assertEqual(unfold(f["Action"]).lower(), "failed")
        self.assertEqual(unfold(f["Status"]), "5.1.1")
        self.assertEqual(unfold(f["Diagnostic-Code"]), "smtp; " + reply)
        # the original is attached (whole, or its headers)
        kinds = [p.get_content_type() for p in report.get_payload()]
        self.assertTrue("message/rfc822" in kinds or
                        "text/rfc822-headers" in kinds, kinds)
        self.assertIn(b"Message-ID: <b1@origin.test>",
                      b.messages[0].data)
        self.log_line(d, r"%s: to=<bad@dest\.test>, relay=127\.0\.0\.1"
                         r"\[127\.0\.0\.1\]:%d, .*dsn=5\.1\.1, "
                         r"status=bounced \(.*%s"
                      % (qid, s.port, re.escape(reply)))
        self.gone(d, qid)
        # the bounce itself was logged from <> and left the queue
        self.log_line(d, r"\b(\w+): from=<>, size=\d+, nrcpt=1")
        ft.wait_for(lambda: d.count("message") == 0, WAIT)
        self.assertEqual(d.count("message"), 0)

    def test_delay_warning_once(self):
        # still failing after delivery.delay_warning: the sender hears that
        # the message is being retried - once, with the headers only
        s = self.smarthost()
        s.reply_at("rcpt", "451 4.3.0 try later")
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b,
                          delivery={"delay_warning": 1,
                                    "retry_schedule": [1]})
        qid = d.send(b"Subject: slow\r\nMessage-ID: <slow@origin.test>"
                     b"\r\n\r\nbody\r\n", sender=SENDER,
                     rcpts=["late@dest.test"])
        report, per_msg, per_rcpt = self.bounce_for(b, qid)
        self.assertIn("Delayed Mail", report["Subject"])
        f = per_rcpt[0]
        self.assertEqual(unfold(f["Action"]).lower(), "delayed")
        self.assertEqual(unfold(f["Status"]), "4.3.0")
        self.assertIn("Will-Retry-Until", f)
        kinds = [p.get_content_type() for p in report.get_payload()]
        self.assertIn("text/rfc822-headers", kinds)
        self.assertIn(b"Message-ID: <slow@origin.test>", b.messages[0].data)
        self.assertNotIn(b"\r\nbody\r\n", b.messages[0].data)
        # more retries, but no second warning; the message stays queued
        ft.wait_for(lambda: len(self.attempts(d, qid)) >= 3, WAIT)
        self.assertGreaterEqual(len(self.attempts(d, qid)), 3)
        self.assertEqual(len(b.messages), 1)
        self.assertEqual(d.count("message", "qid = ?", (qid,)), 1)

    def test_no_bounce_for_null_sender(self):
        s = self.smarthost()
        s.reply_at("rcpt", "550 5.1.1 No such user")
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b)
        qid = d.send(b"Subject: from <>\r\n\r\nx\r\n", sender="",
                     rcpts=[RCPT])
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*status=bounced" %
                      qid)
        self.gone(d, qid)
        time.sleep(2)
        self.assertEqual(d.count("message"), 0)
        self.assertEqual(b.sessions, [])
        self.assertEqual(len(s.sessions), 1)      # no retry either

    def test_size_too_big_bounced_at_once(self):
        s = self.smarthost(extensions=["PIPELINING", "SIZE 2000",
                                       "8BITMIME", "ENHANCEDSTATUSCODES"])
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b)
        content = b"Subject: big\r\n\r\n" + b"y" * 70 + b"\r\n" * 1 + \
            (b"z" * 70 + b"\r\n") * 80
        qid = d.send(content, sender=SENDER, rcpts=[RCPT])
        report, _, per_rcpt = self.bounce_for(b, qid)
        self.assertEqual(unfold(per_rcpt[0]["Action"]).lower(), "failed")
        self.assertEqual(unfold(per_rcpt[0]["Status"]), "5.3.4")
        self.gone(d, qid)
        time.sleep(2.5)                          # retries would be 1 s
        self.assertEqual(len(s.sessions), 1, s.summary())
        for t in s.transactions:
            self.assertIsNone(t.data_raw)        # no data was sent

    def test_smtputf8_to_host_without_it_bounced_5_6_7(self):
        s = self.smarthost(extensions=["PIPELINING", "SIZE 10485760",
                                       "8BITMIME", "ENHANCEDSTATUSCODES",
                                       "DSN"])
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b)
        content = ("Subject: gr\u00fc\u00dfe\r\nTo: j\u00f6rg@dest.test\r\n"
                   "\r\nx\r\n").encode("utf-8")
        with d.client() as c:
            c.ehlo()
            c.envelope(SENDER, ["j\u00f6rg@dest.test"],
                       mail_params=" SMTPUTF8 BODY=8BITMIME")
            qid = ft.queued_id(c.data(content))
        report, _, per_rcpt = self.bounce_for(b, qid)
        self.assertEqual(unfold(per_rcpt[0]["Action"]).lower(), "failed")
        self.assertEqual(unfold(per_rcpt[0]["Status"]), "5.6.7")
        self.no_mail(s)
        for sess in s.sessions:
            self.assertNotIn("MAIL", sess.verbs)
        self.gone(d, qid)


# ------------------------------------------------------------- failover

class FailoverTest(DeliveryCase):

    def test_first_host_refuses_connections(self):
        dead = "127.0.0.1:%d" % ft.free_port()   # nothing listens there
        s = self.smarthost()
        d = self.ferry_to([dead, s.address])
        qid = d.send(b"Subject: failover\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(split_received(m.data)[1],
                         b"Subject: failover\r\n\r\nx\r\n")
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=127\.0\.0\.1"
                         r"\[127\.0\.0\.1\]:%d, .*status=sent"
                      % (qid, s.port))
        self.gone(d, qid)

    def test_first_host_answers_421(self):
        first = self.smarthost()
        first.reply_at("greeting", "421 4.3.2 Too busy, try another")
        s = self.smarthost()
        d = self.ferry_to([first.address, s.address])
        qid = d.send(b"Subject: 421\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        s.wait_messages(1, WAIT)
        self.assertGreaterEqual(len(first.sessions), 1)
        self.no_mail(first)
        self.gone(d, qid)

    def test_first_host_421_at_ehlo(self):
        first = self.smarthost()
        first.reply_at("ehlo", "421 4.7.0 Closing")
        s = self.smarthost()
        d = self.ferry_to([first.address, s.address])
        qid = d.send(b"Subject: 421\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        s.wait_messages(1, WAIT)
        self.no_mail(first)
        self.gone(d, qid)


# ------------------------------------------------------------ TLS, AUTH

class TLSTest(DeliveryCase):
    """Route hosts are "localhost:PORT" (the system resolver: /etc/hosts;
    if it also gives ::1, ferry must go on to 127.0.0.1); certificates
    are checked against that name, or against the address for an
    address literal "[127.0.0.1]:PORT"."""

    def tls_ferry(self, s, policy, host=None, **route_opts):
        opts = {"tls": policy}
        opts.update(route_opts)
        return self.ferry_to([host or "localhost:%d" % s.port],
                             policy=opts)

    def tls_smarthost(self, cert, key, starttls=True, **kw):
        ext = list(sh.DEFAULT_EXTENSIONS) + (["STARTTLS"] if starttls
                                             else [])
        return self.smarthost(cert=cert, key=key, extensions=ext,
                              hostname="localhost", **kw)

    def test_verify_right_ca_and_name_delivers(self):
        cert, key = self.certs.server("localhost")
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "verify", ca_file=self.certs.ca_cert)
        qid = d.send(b"Subject: tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(m.session.verbs[:3], ["EHLO", "STARTTLS", "EHLO"])
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, relay=localhost"
                         r"\[127\.0\.0\.1\]:%d, .*tls=TLSv1\.[23]\b.*"
                         r"status=sent" % (qid, s.port))
        self.gone(d, qid)

    def test_verify_address_literal_against_ip(self):
        cert, key = self.certs.server("mx.test", "127.0.0.1")
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "verify", host="[127.0.0.1]:%d" % s.port,
                           ca_file=self.certs.ca_cert)
        qid = d.send(b"Subject: tls ip\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIsNotNone(m.tls)
        self.gone(d, qid)

    def test_verify_tls13_minimum(self):
        cert, key = self.certs.server("localhost")
        import ssl
        s = self.tls_smarthost(cert, key, tls_max_version=ssl.TLSVersion
                               .TLSv1_2)
        d = self.tls_ferry(s, "verify", ca_file=self.certs.ca_cert,
                           tls_min_version="TLSv1.3")
        qid = d.send(b"Subject: tls13\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.wait_deferred(d, qid)
        self.no_mail(s)

    def test_verify_wrong_name_defers(self):
        cert, key = self.certs.server("wrong.test")   # right CA, not name
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "verify", ca_file=self.certs.ca_cert)
        qid = d.send(b"Subject: tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        rows = self.wait_deferred(d, qid, 2)
        self.no_mail(s)
        for sess in s.sessions:
            self.assertNotIn("MAIL", sess.verbs)
        self.assertTrue(rows[0]["last_reply"])
        self.assertRegex(rows[0]["last_dsn"], r"^4\.")

    def test_verify_self_signed_defers(self):
        cert, key = self.certs.self_signed("localhost")
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "verify", ca_file=self.certs.ca_cert)
        qid = d.send(b"Subject: tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.wait_deferred(d, qid, 2)
        self.no_mail(s)

    def test_verify_without_starttls_defers(self):
        cert, key = self.certs.server("localhost")
        s = self.tls_smarthost(cert, key, starttls=False)
        d = self.tls_ferry(s, "verify", ca_file=self.certs.ca_cert)
        qid = d.send(b"Subject: tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.wait_deferred(d, qid, 2)
        self.no_mail(s)

    def test_may_without_starttls_delivers_plain(self):
        s = self.smarthost()
        d = self.tls_ferry(s, "may")
        qid = d.send(b"Subject: plain\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIsNone(m.tls)
        self.assertNotIn("STARTTLS", m.session.verbs)
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*tls=none, .*"
                         r"status=sent" % qid)
        self.gone(d, qid)

    def test_may_with_self_signed_uses_tls(self):
        cert, key = self.certs.self_signed("whatever.test")
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "may")
        qid = d.send(b"Subject: may\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIsNotNone(m.tls)
        self.gone(d, qid)

    def test_encrypt_without_starttls_defers(self):
        s = self.smarthost()
        d = self.tls_ferry(s, "encrypt")
        qid = d.send(b"Subject: enc\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.wait_deferred(d, qid, 2)
        self.no_mail(s)
        for sess in s.sessions:
            self.assertNotIn("MAIL", sess.verbs)

    def test_encrypt_accepts_unverified_certificate(self):
        cert, key = self.certs.self_signed("other.test")
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "encrypt")
        qid = d.send(b"Subject: enc\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIsNotNone(m.tls)
        self.gone(d, qid)

    def test_none_ignores_starttls(self):
        cert, key = self.certs.server("localhost")
        s = self.tls_smarthost(cert, key)
        d = self.tls_ferry(s, "none")
        qid = d.send(b"Subject: none\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertIsNone(m.tls)
        self.assertNotIn("STARTTLS", m.session.verbs)
        self.gone(d, qid)


class AuthTest(DeliveryCase):
    """Credentials file: lines "route-name username password", mode
    0600, named by delivery { credentials_file }."""

    def creds(self, text):
        path = os.path.join(self.tmp, "credentials-%s" % self.id()
                            .rsplit(".", 1)[-1])
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        return path

    def auth_ferry(self, s, tls, auth_plaintext=False, host=None):
        path = self.creds("# test credentials\n"
                          "dest relayuser s3cret-pw\n"
                          "origin other nope\n")
        return self.ferry_to([host or "localhost:%d" % s.port],
                             delivery={"credentials_file": path},
                             policy={"tls": tls, "auth": True,
                                     "auth_plaintext": auth_plaintext,
                                     "ca_file": self.certs.ca_cert})

    def test_auth_under_tls(self):
        cert, key = self.certs.server("localhost")
        s = self.smarthost(cert=cert, key=key, hostname="localhost",
                           extensions=["PIPELINING", "8BITMIME",
                                       "STARTTLS", "AUTH PLAIN LOGIN"],
                           credentials={"relayuser": "s3cret-pw"},
                           require_auth=True)
        d = self.auth_ferry(s, "verify")
        qid = d.send(b"Subject: auth\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.auth_user, "relayuser")
        self.assertIsNotNone(m.tls)
        att = s.auth_attempts()
        self.assertEqual(len(att), 1, att)
        self.assertEqual((att[0]["user"], att[0]["password"], att[0]["ok"]),
                         ("relayuser", "s3cret-pw", True))
        self.assertIsNotNone(att[0]["tls"])
        if att[0]["mech"] == "PLAIN":
            self.assertEqual(att[0]["authzid"] or "", "")
        self.gone(d, qid)

    def test_no_credentials_without_tls(self):
        s = self.smarthost(extensions=["PIPELINING", "8BITMIME",
                                       "AUTH PLAIN LOGIN"],
                           credentials={"relayuser": "s3cret-pw"})
        d = self.auth_ferry(s, "may")
        qid = d.send(b"Subject: auth\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.wait_deferred(d, qid, 2)
        self.assertEqual(s.auth_attempts(), [])
        for sess in s.sessions:
            self.assertNotIn(b"s3cret", sess.raw)
            self.assertNotIn(b"czNjcmV0", sess.raw)     # base64 of it
            self.assertNotIn("AUTH", sess.verbs)
        self.no_mail(s)

    def test_auth_plaintext_allowed_when_configured(self):
        s = self.smarthost(extensions=["PIPELINING", "8BITMIME",
                                       "AUTH PLAIN LOGIN"],
                           credentials={"relayuser": "s3cret-pw"},
                           require_auth=True)
        d = self.auth_ferry(s, "none", auth_plaintext=True)
        qid = d.send(b"Subject: auth\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.auth_user, "relayuser")
        self.assertIsNone(m.tls)
        self.gone(d, qid)


# --------------------------------------------------------------------- MX

class MXTest(DeliveryCase):
    """Two MX hosts on 127.0.0.2 and 127.0.0.3 with one port (mx port);
    the DNS server lists them in reverse order of preference."""

    def mx_setup(self, mx=None, cert=None, resolver=None, **dns_extra):
        port = sh.free_port(("127.0.0.2", "127.0.0.3"))
        tls = {}
        if cert is not None:
            tls = {"cert": cert[0], "key": cert[1], "extensions":
                   list(sh.DEFAULT_EXTENSIONS) + ["STARTTLS"]}
        mx1 = self.smarthost(host="127.0.0.2", port=port, hostname="mx1",
                             **tls)
        mx2 = self.smarthost(host="127.0.0.3", port=port, hostname="mx2",
                             **tls)
        records = {
            "mxdest.test": {"MX": [(20, "mx2.mxdest.test"),
                                   (10, "mx1.mxdest.test")]},
            "mx1.mxdest.test": {"A": ["127.0.0.2"]},
            "mx2.mxdest.test": {"A": ["127.0.0.3"]},
            "nullmx.test": {"MX": [(0, ".")]},
        }
        records.update(dns_extra)
        dns = self.dns(records)
        b = self.smarthost()
        d = self.start_ferry(
            routes=[self.route("origin", ["origin.test"], [b.address])],
            mx=dict({"port": port, "tls": "none"}, **(mx or {})),
            # every attempt on a new connection: an MX paused between two
            # messages must refuse the second (an agent that kept its
            # connection open would hand it over on it)
            delivery={"resolver": resolver or dns.address,
                      "retry_schedule": [1], "connect_timeout": 5,
                      "max_lifetime": 3600, "connection_idle": 0})
        return d, dns, mx1, mx2, b

    def test_preference_order_then_fallback(self):
        d, dns, mx1, mx2, b = self.mx_setup()
        qid = d.send(b"Subject: mx\r\n\r\n1\r\n", sender=SENDER,
                     rcpts=["u@mxdest.test"])
        (m,) = mx1.wait_messages(1, WAIT)
        self.assertEqual(m.recipients, ["u@mxdest.test"])
        self.assertEqual(mx2.sessions, [])
        self.assertTrue(dns.queried("mxdest.test", "MX"))
        self.log_line(d, r"%s: to=<u@mxdest\.test>, relay=mx1\.mxdest\.test"
                         r"\[127\.0\.0\.2\]:%d, .*status=sent"
                      % (qid, mx1.port))
        self.gone(d, qid)
        mx1.pause()                       # the first MX refuses now
        qid = d.send(b"Subject: mx\r\n\r\n2\r\n", sender=SENDER,
                     rcpts=["u@mxdest.test"])
        (m,) = mx2.wait_messages(1, WAIT)
        self.assertEqual(split_received(m.data)[1],
                         b"Subject: mx\r\n\r\n2\r\n")
        self.gone(d, qid)

    def test_mx_tls_verify_checks_the_mx_name(self):
        cert = self.certs.server("mx1.mxdest.test")
        d, dns, mx1, mx2, b = self.mx_setup(
            mx={"tls": "verify", "ca_file": self.certs.ca_cert}, cert=cert)
        qid = d.send(b"Subject: mx tls\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["u@mxdest.test"])
        (m,) = mx1.wait_messages(1, WAIT)
        self.assertIsNotNone(m.tls)
        self.gone(d, qid)
        # mx2 presents the same certificate: the name does not match
        mx1.pause()
        qid = d.send(b"Subject: mx tls 2\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["u@mxdest.test"])
        self.wait_deferred(d, qid, 2)
        self.no_mail(mx2)

    def test_null_mx_bounces(self):
        d, dns, mx1, mx2, b = self.mx_setup()
        qid = d.send(b"Subject: null mx\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["u@nullmx.test"])
        _, _, per_rcpt = self.bounce_for(b, qid)
        self.assertEqual(unfold(per_rcpt[0]["Action"]).lower(), "failed")
        self.assertEqual(unfold(per_rcpt[0]["Status"]), "5.1.10")
        self.gone(d, qid)

    def test_nxdomain_bounces_servfail_defers(self):
        d, dns, mx1, mx2, b = self.mx_setup()
        dns.servfail("flaky.test")
        q1 = d.send(b"Subject: servfail\r\n\r\nx\r\n", sender=SENDER,
                    rcpts=["u@flaky.test"])
        q2 = d.send(b"Subject: nxdomain\r\n\r\nx\r\n", sender=SENDER,
                    rcpts=["u@nowhere.test"])
        _, _, per_rcpt = self.bounce_for(b, q2)
        self.assertRegex(unfold(per_rcpt[0]["Status"]), r"^5\.\d+\.\d+$")
        self.assertEqual(unfold(per_rcpt[0]["Final-Recipient"]).lower()
                         .replace(" ", ""), "rfc822;u@nowhere.test")
        self.wait_deferred(d, q1, 2)
        self.assertEqual(len(b.messages), 1)

    def test_no_mx_the_domain_is_the_mx(self):
        # RFC 5321 5.1: no MX records, the domain's own address
        d, dns, mx1, mx2, b = self.mx_setup(
            **{"implicit.test": {"A": ["127.0.0.2"]}})
        qid = d.send(b"Subject: implicit\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["u@implicit.test"])
        (m,) = mx1.wait_messages(1, WAIT)
        self.assertEqual(m.recipients, ["u@implicit.test"])
        self.assertTrue(dns.queried("implicit.test", "MX"))
        self.assertTrue(dns.queried("implicit.test", "A"))
        self.gone(d, qid)

    def test_aaaa_when_the_mx_has_no_a(self):
        d, dns, mx1, mx2, b = self.mx_setup(
            **{"v6.test": {"MX": [(10, "mx6.v6.test")]},
               "mx6.v6.test": {"AAAA": ["::1"]}})
        mx6 = self.smarthost(host="::1", port=mx1.port, hostname="mx6")
        qid = d.send(b"Subject: v6\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["u@v6.test"])
        (m,) = mx6.wait_messages(1, WAIT)
        self.assertEqual(m.recipients, ["u@v6.test"])
        self.assertTrue(dns.queried("mx6.v6.test", "A"))
        self.assertTrue(dns.queried("mx6.v6.test", "AAAA"))
        self.assertEqual(mx1.sessions + mx2.sessions, [])
        self.log_line(d, r"%s: to=<u@v6\.test>, relay=mx6\.v6\.test"
                      r"\[::1\]:%d, .*status=sent" % (qid, mx1.port))

    def test_unanswered_dns_defers_within_a_deadline(self):
        # a resolver that never answers: the agent gives up on its own
        # (no unbounded wait) and the recipient is deferred, not bounced
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        self.addCleanup(silent.close)
        d, dns, mx1, mx2, b = self.mx_setup(
            resolver="127.0.0.1:%d" % silent.getsockname()[1])
        t0 = time.time()
        qid = d.send(b"Subject: silent dns\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["u@mxdest.test"])
        (r,) = self.wait_deferred(d, qid, 1, timeout=40)
        self.assertLess(time.time() - t0, 40)
        self.assertEqual(r["last_dsn"], "4.4.3")
        self.assertEqual(mx1.sessions + mx2.sessions, [])
        self.assertEqual(b.messages, [])
        # the server did receive the queries
        silent.settimeout(1)
        self.assertTrue(silent.recv(512))


# ---------------------------------------------------- reuse, crash safety

class ConnectionTest(DeliveryCase):

    def test_connection_reused_with_rset(self):
        s = self.smarthost()
        d = self.ferry_to(s, delivery={"agents": 1, "per_destination": 1,
                                       "connection_idle": 10})
        qids = []
        for i in range(3):
            qids.append(d.send(b"Subject: reuse %d\r\n\r\nx\r\n" % i,
                               sender=SENDER, rcpts=[RCPT]))
            s.wait_messages(i + 1, WAIT)
        ms = s.wait_messages(3, WAIT)
        self.assertEqual(len(s.sessions), 1, s.summary())
        self.assertEqual({m.session.number for m in ms}, {1})
        verbs = s.sessions[0].verbs
        self.assertEqual(verbs.count("EHLO"), 1)
        mails = [i for i, v in enumerate(verbs) if v == "MAIL"]
        self.assertEqual(len(mails), 3)
        for a, b in zip(mails, mails[1:]):
            self.assertIn("RSET", verbs[a:b], verbs)
        for q in qids:
            self.gone(d, q)

    def test_kept_connection_rset_goes_with_mail(self):
        # PIPELINING: a kept session's RSET is in the same write as MAIL,
        # so reusing it costs no round trip of its own
        s = self.smarthost()
        d = self.ferry_to(s, delivery={"agents": 1, "per_destination": 1,
                                       "connection_idle": 10})
        d.send(b"Subject: first\r\n\r\nx\r\n", sender=SENDER, rcpts=[RCPT])
        s.wait_messages(1, WAIT)
        gate = s.hold_at("rset", times=1)
        qid = d.send(b"Subject: second\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        self.assertTrue(gate.wait_reached(WAIT), "no RSET came")
        raw = s.sessions[0].raw
        at = raw.rindex(b"RSET\r\n")
        # the server has not answered RSET, and MAIL is already here
        self.assertTrue(ft.wait_for(lambda: b"MAIL FROM:" in
                                    s.sessions[0].raw[at:], 5, 0.05),
                        s.sessions[0].raw[at:])
        gate.release()
        s.wait_messages(2, WAIT)
        self.assertEqual(len(s.sessions), 1, s.summary())
        self.gone(d, qid)

    def test_kept_connection_gone_costs_no_retry(self):
        # the server drops the kept session at RSET (with and without
        # PIPELINING): the same attempt opens another session, and the
        # message is neither deferred nor sent twice
        for pipelining in (True, False):
            with self.subTest(pipelining=pipelining):
                s = self.smarthost()
                if not pipelining:
                    s.withdraw("PIPELINING")
                d = self.ferry_to(s, delivery={
                    "agents": 1, "per_destination": 1,
                    "connection_idle": 10})
                d.send(b"Subject: first\r\n\r\nx\r\n", sender=SENDER,
                       rcpts=[RCPT])
                s.wait_messages(1, WAIT)
                s.drop_at("rset", times=1)
                qid = d.send(b"Subject: second\r\n\r\nx\r\n",
                             sender=SENDER, rcpts=[RCPT])
                ms = s.wait_messages(2, WAIT)
                self.gone(d, qid)
                self.assertEqual(len(ms), 2, s.summary())
                self.assertEqual([m.session.number for m in ms], [1, 2])
                self.assertEqual(s.sessions[1].verbs.count("RSET"), 0,
                                 s.summary())
                self.assertNotIn("status=deferred", d.log_text())
                d.stop()
                s.stop()

    def test_refused_recipient_recorded_before_the_data_ends(self):
        # a result reaches the runner before the agent waits on the
        # server again: a recipient refused at RCPT is final in the
        # queue while the end of data is still unanswered
        s = self.smarthost()
        s.reply_at("rcpt", "550 5.1.1 no such user", rcpt="bad@dest.test")
        gate = s.hold_at("eod", times=1)
        d = self.ferry_to(s)
        qid = d.send(b"Subject: two\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["bad@dest.test", RCPT])
        self.assertTrue(gate.wait_reached(WAIT), "no end of data came")
        try:
            ok = ft.wait_for(lambda: [r["state"] for r in
                                      self.rcpt_rows(d, qid)] ==
                             ["failed", "pending"], 10, 0.05)
            self.assertTrue(ok, self.rcpt_rows(d, qid))
        finally:
            gate.release()
        s.wait_messages(1, WAIT)

    def test_runner_killed_during_delivery_loses_nothing(self):
        s = self.smarthost()
        gate = s.hold_at("eod", times=1)
        d = self.ferry_to(s)
        content = b"Subject: crash\r\n\r\nsurvive\r\n"
        qid = d.send(content, sender=SENDER, rcpts=[RCPT])
        self.assertTrue(gate.wait_reached(WAIT), "delivery never started")
        (runner,) = d.runners()
        os.kill(runner, signal.SIGKILL)
        killed_at = time.time()
        new = ft.wait_for(lambda: [p for p in d.runners() if p != runner],
                          30, 0.1)
        self.assertTrue(new, "the queue runner was not restarted")
        gate.release()
        # the message is still queued (the runner never recorded a
        # result), and the new runner delivers it again
        ok = s.wait(lambda: [m for m in s.messages
                             if m.session.started > killed_at], 60)
        self.assertTrue(ok, "not delivered after the restart")
        for m in s.messages:
            self.assertEqual(split_received(m.data)[1], content)
            self.assertEqual(split_received(m.data)[0].group("qid")
                             .decode(), qid)
        self.gone(d, qid, 30)


# ---------------------------------------------------------------- expiry

class ExpiryTest(DeliveryCase):
    """max_lifetime = 60 is the smallest allowed: the recipient must
    fail with 4.4.7 once a minute of 451s is over.  Rather than wait the
    minute, the test stops ferry, moves the message's arrival 50 seconds
    into the past in the queue file, and starts ferry again."""

    def test_lifetime_expiry_bounces_4_4_7(self):
        s = self.smarthost()
        s.reply_at("rcpt", "451 4.3.0 Always later")
        b = self.smarthost()
        d = self.ferry_to(s, bounces=b, delivery={"max_lifetime": 60,
                                                  "retry_schedule": [5]})
        qid = d.send(b"Subject: expire\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=[RCPT])
        # the schedule: deferred, next attempt about 5 s after the last
        rows = self.wait_deferred(d, qid, 1)
        r = rows[0]
        self.assertAlmostEqual(r["next_attempt"] - r["last_attempt"], 5,
                               delta=1.5)
        self.assertIn("451 4.3.0 Always later", r["last_reply"])
        self.assertEqual(r["last_dsn"], "4.3.0")
        # age the message: 50 s of its 60 are gone
        d.stop(remove=False)
        con = d.db()
        try:
            con.execute("UPDATE message SET received_at = received_at - 50"
                        " WHERE qid = ?", (qid,))
            con.commit()
        finally:
            con.close()
        d.start()
        received = d.message(qid)["received_at"]
        # the next deferral is planned for the end of the lifetime, not
        # 5 s on: never past it
        rows = self.wait_deferred(d, qid, 2)
        self.assertLessEqual(rows[0]["next_attempt"], received + 60 + 0.01,
                             rows[0])
        self.assertLess(rows[0]["next_attempt"] - rows[0]["last_attempt"],
                        5, rows[0])
        # at the end of the lifetime it expires and bounces
        _, _, per_rcpt = self.bounce_for(b, qid, timeout=WAIT)
        self.assertGreaterEqual(time.time() - received, 60)
        self.assertEqual(unfold(per_rcpt[0]["Action"]).lower(), "failed")
        self.assertEqual(unfold(per_rcpt[0]["Status"]), "4.4.7")
        self.assertIn(b"451 4.3.0 Always later", b.messages[0].data)
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*status=bounced" %
                      qid)
        self.gone(d, qid)
        self.assertEqual(b.messages[0].data.count(b"Status: 4.4.7"), 1)


if __name__ == "__main__":
    ft.main(need_root=True)
