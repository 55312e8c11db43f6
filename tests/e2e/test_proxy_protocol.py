#!/usr/bin/env python3
"""End-to-end: the PROXY protocol (v1 and v2) on listeners.

Our own raw-socket client plays the load balancer: it connects from
127.0.0.1 (inside proxy_networks) and sends a PROXY header naming another
client.  That client's address is the one ferry uses: the connect log
line and the balancer's line, the Received header at the smarthost, the
relay policy (relay_networks) and anvil's per-client connection limit.
A connection from outside proxy_networks is closed and logged, as is a
header that is malformed, over-long, plain SMTP instead of a header, or
too slow; a v2 LOCAL header (a health check) is closed quietly.  With
implicit TLS the header comes before the handshake.  Every closed
connection is counted in ferry_connections_total."""

import os
import re
import socket
import shutil
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
RCPT = "rcpt@dest.test"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
BALANCER = "127.0.0.1"


def v1(src, sport, dst="127.0.0.1", dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport,
                                           dport)).encode()


def v2(src=None, sport=0, dst=None, dport=25, local=False, tlvs=b""):
    if local:
        return V2_SIG + b"\x20\x00\x00\x00"
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
        dst = dst or "::1"
    else:
        fam, af = 0x11, socket.AF_INET
        dst = dst or "127.0.0.1"
    block = (socket.inet_pton(af, src) + socket.inet_pton(af, dst) +
             struct.pack("!HH", sport, dport) + tlvs)
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(block)) + \
        block


class ProxyClient(ft.Client):
    """A Client whose connection begins with a PROXY header (sent before
    anything else, as a balancer does), from the given source address;
    with tls_context, the handshake follows the header."""

    def __init__(self, port, header, source=BALANCER, timeout=ft.IO_TIMEOUT,
                 greeting=True, tls_context=None, server_hostname=None):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0))
        if header:
            self.sock.sendall(header)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(
                self.sock, server_hostname=server_hostname)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.server_port = port
        self.greeting = self.reply() if greeting else None


class MetricsFerry(ft.Ferry):
    """A Ferry with metrics { enabled } on a port of its own."""

    metrics_port = None

    def config_text(self, **changes):
        if self.metrics_port is None:
            self.metrics_port = ft.free_port()
        return (super().config_text(**changes) +
                'metrics {\n    enabled = true\n'
                '    address = "127.0.0.1"\n    port = %d\n}\n'
                % self.metrics_port)

    def connections(self, listener, outcome):
        """ferry_connections_total{listener, outcome} (0 when absent)."""
        s = socket.create_connection(("127.0.0.1", self.metrics_port),
                                     timeout=10)
        try:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            raw = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                raw += b
        finally:
            s.close()
        m = re.search(r'^ferry_connections_total\{listener="%s",'
                      r'outcome="%s"\} (\d+)$' % (listener, outcome),
                      raw.decode("utf-8", "replace"), re.M)
        return int(m.group(1)) if m else 0


class ProxyCase(ft.FerryTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp(prefix="ferry-proxy-")
        certs = sh.Certs(os.path.join(cls.dir, "certs"))
        cls.cert, cls.key = certs.server("mx.ferry-test.example",
                                         "127.0.0.1")
        cls.ca = certs.ca_cert
        cls.smarthost = sh.SmartHost().start()
        route = {"name": "dest", "domains": ["dest.test"],
                 "hosts": [cls.smarthost.address], "tls": "none"}
        proxy = {"proxy_networks": ["127.0.0.1/32"],
                 "relay_networks": ["192.0.2.0/24", "2001:db8::/32"]}
        d = MetricsFerry(
            routes=[route],
            delivery={"retry_schedule": [1], "connect_timeout": 5},
            limits={"max_connections_per_client": 2,
                    "connection_rate": 1000000, "message_rate": 1000000},
            tls={"cert_file": cls.cert, "key_file": cls.key},
            more_listeners=[
                dict(proxy, name="pv1", proxy_protocol="v1"),
                dict(proxy, name="pv2", proxy_protocol="v2",
                     proxy_timeout=1),
                dict(proxy, name="pv2tls", proxy_protocol="v2",
                     tls="implicit"),
            ])
        cls.ferry = d.start()

    @classmethod
    def tearDownClass(cls):
        cls.smarthost.stop()
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def port(self, name):
        return self.ferry.ports[name]

    def received_from(self, addr, qid):
        """The message qid at the smarthost; its Received header names
        addr."""
        def arrived():
            for m in self.smarthost.messages:
                try:
                    hdr, _ = ft.split_received(m.data)
                except AssertionError:
                    continue
                if hdr.group("qid").decode() == qid:
                    return hdr
            return None
        hdr = self.smarthost.wait(arrived, WAIT)
        self.assertIsNotNone(hdr, "%s never reached the smarthost" % qid)
        self.assertEqual(hdr.group("addr").decode(), addr)
        return hdr

    def send_through(self, listener, header, content, **kw):
        with ProxyClient(self.port(listener), header, **kw) as c:
            self.assertReply(c.greeting, 220)
            c.ehlo()
            qid = c.send_message(SENDER, [RCPT], content)
            c.cmd("QUIT")
        return qid

    def assert_closed_unserved(self, c, what):
        """The connection is closed without a byte of SMTP."""
        self.assertTrue(c.is_closed(5.0), "%s: not closed" % what)
        self.assertEqual(c.buf, b"", "%s: ferry spoke: %r" % (what, c.buf))

    # the client's address from the header ------------------------------

    def test_v1_header_address_everywhere(self):
        d = self.ferry
        start = d.log_size()
        qid = self.send_through("pv1", v1("192.0.2.7", 40001),
                                b"Subject: via v1\r\n\r\nbody\r\n")
        self.received_from("192.0.2.7", qid)
        self.assertTrue(d.wait_log(
            r'listen "pv1": PROXY v1 from 127\.0\.0\.1 port \d+: client '
            r'192\.0\.2\.7 port 40001', 5, start), d.log_tail())
        self.assertTrue(d.wait_log(r"connect from unknown\[192\.0\.2\.7\]",
                                   5, start))
        self.assertTrue(d.wait_log(r"%s: client=unknown\[192\.0\.2\.7\]"
                                   % qid, 5, start))

    def test_v2_tcp4_and_tcp6(self):
        tlv = b"\x04\x00\x02\x00\x00"        # a NOOP TLV, skipped
        qid4 = self.send_through("pv2", v2("192.0.2.8", 40002, tlvs=tlv),
                                 b"Subject: via v2\r\n\r\nbody\r\n")
        qid6 = self.send_through("pv2", v2("2001:db8::8", 40003),
                                 b"Subject: via v2 6\r\n\r\nbody\r\n")
        self.received_from("192.0.2.8", qid4)
        self.received_from("2001:db8::8", qid6)
        self.assertTrue(self.ferry.wait_log(
            r'PROXY v2 from 127\.0\.0\.1 port \d+: client 2001:db8::8 '
            r'port 40003', 5))

    def test_v1_unknown_keeps_the_balancer(self):
        with ProxyClient(self.port("pv1"), b"PROXY UNKNOWN\r\n") as c:
            self.assertReply(c.greeting, 220)
            c.cmd("QUIT")
        self.assertTrue(self.ferry.wait_log(
            r"PROXY v1 from 127\.0\.0\.1 port \d+: client 127\.0\.0\.1 "
            r"port \d+ \(no address in the header", 5))

    def test_relay_policy_sees_the_header_address(self):
        # relay_networks of the proxy listeners: 192.0.2.0/24 only
        with ProxyClient(self.port("pv1"), v1("198.51.100.9", 1)) as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
            self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 554, "5.7.1")
            c.cmd("QUIT")
        with ProxyClient(self.port("pv1"), v1("192.0.2.9", 1)) as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
            self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
            c.cmd("QUIT")

    def test_anvil_counts_per_header_address(self):
        # max_connections_per_client = 2: the third from one header
        # address is refused, while another header address (over the
        # same balancer address) still gets in
        held = []
        try:
            for _ in range(2):
                c = ProxyClient(self.port("pv2"), v2("192.0.2.50", 1000))
                held.append(c)
                self.assertReply(c.greeting, 220)
            with ProxyClient(self.port("pv2"), v2("192.0.2.50", 1001)) as c:
                self.assertReply(c.greeting, 421, None, "192.0.2.50")
            with ProxyClient(self.port("pv2"), v2("192.0.2.51", 1002)) as c:
                self.assertReply(c.greeting, 220)
                c.cmd("QUIT")
        finally:
            for c in held:
                c.close()
        self.assertTrue(self.ferry.wait_log(
            r"refusing unknown\[192\.0\.2\.50\]: connection limit "
            r"exceeded \(this client\)", 5))

    def test_implicit_tls_header_before_handshake(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        with ProxyClient(self.port("pv2tls"), v2("192.0.2.60", 4000),
                         tls_context=ctx,
                         server_hostname="mx.ferry-test.example") as c:
            self.assertReply(c.greeting, 220)
            c.ehlo()
            qid = c.send_message(SENDER, [RCPT],
                                 b"Subject: tls\r\n\r\nbody\r\n")
            c.cmd("QUIT")
        hdr = self.received_from("192.0.2.60", qid)
        self.assertIsNotNone(hdr.group("tls"))

    # what is refused ---------------------------------------------------

    def test_not_from_proxy_networks(self):
        d = self.ferry
        before = d.connections("pv1", "proxy_refused")
        start = d.log_size()
        c = ProxyClient(self.port("pv1"), v1("192.0.2.7", 1),
                        source="127.0.0.9", greeting=False)
        with c:
            self.assert_closed_unserved(c, "from 127.0.0.9")
        self.assertTrue(d.wait_log(
            r'listen "pv1": connection from 127\.0\.0\.9 port \d+, which '
            r'is not in proxy_networks: closed', 5, start), d.log_tail())
        self.assertTrue(ft.wait_for(lambda: d.connections(
            "pv1", "proxy_refused") == before + 1, 5))

    def test_bad_headers_closed(self):
        d = self.ferry
        cases = [
            ("pv1", b"EHLO client.example\r\n", "v1: does not begin"),
            ("pv1", b"PROXY TCP4 192.0.2.300 127.0.0.1 1 25\r\n",
             "v1: bad IPv4 address"),
            ("pv1", b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25\n",
             "v1: bare LF"),
            ("pv1", b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",
             "v1: no CRLF within 107 bytes"),
            ("pv1", v2("192.0.2.1", 1), "v1: does not begin"),
            ("pv2", v1("192.0.2.1", 1), "v2: no PROXY v2 signature"),
            ("pv2", V2_SIG + b"\x21\x11\x00\x0b" + b"\x00" * 11,
             "v2: address block too short"),
            ("pv2", V2_SIG + b"\x21\x11\x04\x00", "v2: header longer than"),
            ("pv2", V2_SIG + b"\x23\x11\x00\x00",
             "v2: command is neither"),
            ("pv2", v2("192.0.2.1", 1, tlvs=b"\x04\x00\x09"),
             "v2: malformed TLV"),
        ]
        before = {n: d.connections(n, "proxy_failed") for n in ("pv1",
                                                                 "pv2")}
        start = d.log_size()
        for listener, header, why in cases:
            c = ProxyClient(self.port(listener), header, greeting=False)
            port = c.local_port
            with c:
                self.assert_closed_unserved(c, repr(header[:40]))
            self.assertTrue(d.wait_log(
                r'listen "%s": PROXY header from 127\.0\.0\.1 port %d: '
                r'%s.*; connection closed' % (listener, port,
                                              re.escape(why)), 5, start),
                "%r: %s" % (header[:40], d.log_tail()))
        self.assertTrue(ft.wait_for(lambda: d.connections(
            "pv1", "proxy_failed") == before["pv1"] + 5, 5))
        self.assertTrue(ft.wait_for(lambda: d.connections(
            "pv2", "proxy_failed") == before["pv2"] + 5, 5))
        # and no session was started for any of them
        self.assertNotRegex(d.log_text()[start:], r"connect from")

    def test_truncated_header_closed(self):
        d = self.ferry
        start = d.log_size()
        c = ProxyClient(self.port("pv1"), b"PROXY TCP4 192.0.2.1 12",
                        greeting=False)
        port = c.local_port
        c.sock.shutdown(socket.SHUT_WR)
        with c:
            self.assert_closed_unserved(c, "truncated")
        self.assertTrue(d.wait_log(
            r'PROXY header from 127\.0\.0\.1 port %d: truncated: closed '
            r'after 23 bytes' % port, 5, start), d.log_tail())

    def test_slow_header_times_out(self):
        # pv2: proxy_timeout = 1; half a header, then nothing
        d = self.ferry
        start = d.log_size()
        t0 = time.monotonic()
        c = ProxyClient(self.port("pv2"), v2("192.0.2.1", 1)[:20],
                        greeting=False)
        port = c.local_port
        with c:
            self.assert_closed_unserved(c, "slow header")
        took = time.monotonic() - t0
        self.assertGreater(took, 0.8)
        self.assertLess(took, 4.5)
        self.assertTrue(d.wait_log(
            r'PROXY header from 127\.0\.0\.1 port %d: timed out after 1 s '
            r'with 20 bytes; connection closed' % port, 5, start))
        # and nothing at all: the same deadline
        c = ProxyClient(self.port("pv2"), b"", greeting=False)
        port = c.local_port
        with c:
            self.assert_closed_unserved(c, "no header")
        self.assertTrue(d.wait_log(
            r'port %d: timed out after 1 s with 0 bytes' % port, 5,
            start))

    def test_local_closed_quietly(self):
        d = self.ferry
        failed = d.connections("pv2", "proxy_failed")
        start = d.log_size()
        c = ProxyClient(self.port("pv2"), v2(local=True), greeting=False)
        port = c.local_port
        with c:
            self.assert_closed_unserved(c, "LOCAL")
        # a later connection's lines show the log caught up
        with ProxyClient(self.port("pv2"), v2("192.0.2.70", 1)) as c2:
            c2.cmd("QUIT")
        self.assertTrue(d.wait_log(r"client 192\.0\.2\.70", 5, start))
        text = d.log_text()[start:]
        self.assertNotRegex(text, r"PROXY header from|port %d: " % port)
        self.assertEqual(d.connections("pv2", "proxy_failed"), failed)


class SlotReuseTest(ft.FerryTestCase):
    """Connections closed before any session (health checks, refused
    balancers, bad headers) give their slot back: one worker with two
    slots takes many more of them, then still serves a session."""

    ferry_options = {
        "workers": {"min_idle": 1, "max_idle": 1, "max": 1,
                    "sessions_per_worker": 2},
        "more_listeners": [{"name": "pv2", "proxy_protocol": "v2",
                            "proxy_networks": ["127.0.0.1/32"],
                            "relay_networks": ["192.0.2.0/24"]}],
    }

    def test_slots_come_back(self):
        d = self.ferry
        worker = ft.wait_for(lambda: d.workers(), 10)[0]
        port = d.ports["pv2"]
        for i in range(8):
            with ProxyClient(port, v2(local=True), greeting=False) as c:
                self.assertTrue(c.is_closed(5.0), "LOCAL %d not closed" % i)
            with ProxyClient(port, b"GET / HTTP/1.0\r\n\r\n",
                             greeting=False) as c:
                self.assertTrue(c.is_closed(5.0), "bad header %d" % i)
        with ProxyClient(port, v2("192.0.2.80", 1)) as c:
            self.assertEqual(c.greeting.code, 220)
            c.cmd("QUIT")
        self.assertEqual(d.workers(), [worker], "the worker was replaced")


if __name__ == "__main__":
    ft.main(need_root=True)
