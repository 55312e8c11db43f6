"""dnsserver - a tiny authoritative DNS server for ferry's delivery tests.

Answers A, AAAA, MX (and CNAME) queries from a dict, over UDP and TCP on
127.0.0.1 and a free port (the same port for both):

    dns = DNSServer({
        "example.test": {"MX": [(10, "mx1.example.test"),
                                (20, "mx2.example.test")]},
        "mx1.example.test": {"A": ["127.0.0.2"]},
        "mx2.example.test": {"A": ["127.0.0.3"], "AAAA": ["::1"]},
    }).start()
    ... delivery { resolver = "%s" } % dns.address ...

Unknown names are NXDOMAIN, known names without the type asked NOERROR
with no answer.  PTR records are names too:
{"1.0.0.127.in-addr.arpa": {"PTR": ["client.test.example"]}}.
null_mx(name) publishes RFC 7505 "0 ." and servfail(name) makes queries
for a name (or, without one, every query) answer SERVFAIL; silent = True
makes the server read every query and answer none (a dead resolver).  Every query is recorded in .queries as (name, type,
"udp"|"tcp").  Answers are authoritative, with the owner name a
compression pointer to the question.  Python standard library only.
"""

import socket
import struct
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16,
         "AAAA": 28, "OPT": 41, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


def _norm(name):
    return name.rstrip(".").lower()


def encode_name(name):
    """A domain name in wire format, uncompressed ("." is the root)."""
    name = name.rstrip(".")
    out = b""
    if name:
        for label in name.split("."):
            b = label.encode("idna") if not label.isascii() else \
                label.encode("ascii")
            if not 0 < len(b) < 64:
                raise ValueError("bad label in %r" % name)
            out += bytes([len(b)]) + b
    return out + b"\0"


def decode_name(msg, off):
    """(name, offset after it) of the name at off; follows compression
    pointers (bounded)."""
    labels, end, jumps = [], None, 0
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or jumps > 20:
                raise ValueError("bad compression pointer")
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels), (end if end is not None else off)


class DNSServer:
    def __init__(self, records=None, host="127.0.0.1", ttl=60, tcp=True):
        self.host = host
        self.ttl = ttl
        self.tcp = tcp
        self.records = {}
        for name, rr in (records or {}).items():
            self.records[_norm(name)] = {k.upper(): list(v) if
                                         isinstance(v, (list, tuple))
                                         else v for k, v in rr.items()}
        self.servfail_names = set()
        self.servfail_all = False
        self.silent = False
        self.queries = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.port = None
        self.udp = self.tcp_sock = None

    # the data ------------------------------------------------------------

    def set(self, name, rtype, values):
        """Replaces the records of one type of a name."""
        with self.lock:
            self.records.setdefault(_norm(name), {})[rtype.upper()] = \
                list(values)

    def remove(self, name):
        with self.lock:
            self.records.pop(_norm(name), None)

    def null_mx(self, name):
        """RFC 7505: the domain accepts no mail (MX 0 ".")."""
        self.set(name, "MX", [(0, ".")])

    def servfail(self, name=None, on=True):
        """Queries for name (every query when None) answer SERVFAIL."""
        with self.lock:
            if name is None:
                self.servfail_all = on
            elif on:
                self.servfail_names.add(_norm(name))
            else:
                self.servfail_names.discard(_norm(name))

    @property
    def address(self):
        """"127.0.0.1:port", for delivery { resolver = ... }."""
        return "%s:%d" % (self.host, self.port)

    def queried(self, name=None, rtype=None):
        with self.lock:
            return [q for q in self.queries
                    if (name is None or q[0] == _norm(name)) and
                    (rtype is None or q[1] == rtype)]

    # life ----------------------------------------------------------------

    def start(self):
        for _ in range(100):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((self.host, 0))
            port = u.getsockname()[1]
            if not self.tcp:
                break
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind((self.host, port))
            except OSError:
                u.close()
                t.close()
                continue
            t.listen(16)
            t.settimeout(0.2)
            self.tcp_sock = t
            break
        else:
            raise OSError("no port free for UDP and TCP")
        u.settimeout(0.2)
        self.udp, self.port = u, port
        self._thread(self._udp_loop)
        if self.tcp_sock is not None:
            self._thread(self._tcp_loop)
        return self

    def _thread(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True,
                             name="dns-%s" % fn.__name__)
        self.threads.append(t)
        t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(5)
        for s in (self.udp, self.tcp_sock):
            if s is not None:
                s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _udp_loop(self):
        while not self.stopping.is_set():
            try:
                q, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            r = self.answer(q, "udp")
            if r is not None:
                try:
                    self.udp.sendto(r, peer)
                except OSError:
                    pass

    def _tcp_loop(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.tcp_sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._thread(self._tcp_conn, c)

    def _tcp_conn(self, c):
        c.settimeout(5)

        def read(n):
            b = b""
            while len(b) < n:
                chunk = c.recv(n - len(b))
                if not chunk:
                    raise EOFError()
                b += chunk
            return b
        try:
            while not self.stopping.is_set():
                n = struct.unpack("!H", read(2))[0]
                r = self.answer(read(n), "tcp")
                if r is None:
                    return
                c.sendall(struct.pack("!H", len(r)) + r)
        except (OSError, EOFError):
            pass
        finally:
            c.close()

    # the protocol ------------------------------------------------------

    def _rdata(self, rtype, value):
        if rtype == "A":
            return socket.inet_pton(socket.AF_INET, value)
        if rtype == "AAAA":
            return socket.inet_pton(socket.AF_INET6, value)
        if rtype == "MX":
            return struct.pack("!H", value[0]) + encode_name(value[1])
        if rtype in ("CNAME", "NS", "PTR"):
            return encode_name(value)
        if rtype == "TXT":
            b = value.encode()
            return bytes([len(b)]) + b
        raise ValueError(rtype)

    def _rr(self, owner, rtype, value):
        data = self._rdata(rtype, value)
        return owner + struct.pack("!HHIH", TYPES[rtype], 1, self.ttl,
                                   len(data)) + data

    def answer(self, q, proto):
        """The response to query q (bytes), or None to stay silent."""
        if len(q) < 12:
            return None
        qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", q[:12])
        if flags & 0x8000:
            return None                       # a response: ignore
        opcode = (flags >> 11) & 0xF
        rd = flags & 0x0100

        def header(rcode, nq, nan):
            return struct.pack("!HHHHHH", qid, 0x8000 | (opcode << 11) |
                               0x0400 | rd | 0x0080 | rcode, nq, nan, 0, 0)
        if opcode != 0:
            return header(NOTIMP, 0, 0)
        if qd != 1:
            return header(FORMERR, 0, 0)
        try:
            name, off = decode_name(q, 12)
            qtype, qclass = struct.unpack("!HH", q[off:off + 4])
        except (ValueError, struct.error):
            return header(FORMERR, 0, 0)
        question = q[12:off + 4]
        limit = 512
        if ar and proto == "udp":
            try:
                _, o2 = decode_name(q, off + 4)
                t, cls = struct.unpack("!HH", q[o2:o2 + 4])
                if t == TYPES["OPT"]:
                    limit = max(512, cls)
            except (ValueError, struct.error):
                pass
        key = _norm(name)
        tname = TYPE_NAMES.get(qtype, str(qtype))
        with self.lock:
            self.queries.append((key, tname, proto))
            if self.silent:
                return None
            if self.servfail_all or key in self.servfail_names:
                return header(SERVFAIL, 1, 0) + question
            rrs = self.records.get(key)
            if rrs is None:
                exists = any(k.endswith("." + key) for k in self.records)
                return header(NOERROR if exists else NXDOMAIN, 1, 0) + \
                    question
            answers = []
            owner = b"\xc0\x0c"
            if "CNAME" in rrs and tname != "CNAME":
                answers.append(self._rr(owner, "CNAME", rrs["CNAME"]))
                target = self.records.get(_norm(rrs["CNAME"]), {})
                owner = encode_name(rrs["CNAME"])
                rrs = target
            for t in (("A", "AAAA", "MX", "TXT", "NS", "PTR")
                      if tname == "ANY"
                      else (tname,)):
                vals = rrs.get(t)
                if vals is None or t == "CNAME":
                    continue
                for v in (vals if isinstance(vals, list) else [vals]):
                    answers.append(self._rr(owner, t, v))
        if qclass != 1:
            answers = []
        resp = header(NOERROR, 1, len(answers)) + question + \
            b"".join(answers)
        if proto == "udp" and len(resp) > limit:
            h = bytearray(header(NOERROR, 1, 0))
            h[2] |= 0x02                      # TC: ask again over TCP
            return bytes(h) + question
        return resp


# ------------------------------------------------------------ a client

def query(server, name, rtype="A", proto="udp", qid=0x1234, timeout=5.0):
    """Asks server ("host:port") one question; returns (rcode, flags,
    answers) where answers are (name, type, ttl, value) with values
    decoded like the records dict (A/AAAA text, MX (pref, host))."""
    host, port = server.rsplit(":", 1)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + \
        encode_name(name) + struct.pack("!HH", TYPES[rtype], 1)
    if proto == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q, (host, int(port)))
            r, _ = s.recvfrom(65535)
    else:
        with socket.create_connection((host, int(port)), timeout) as s:
            s.sendall(struct.pack("!H", len(q)) + q)
            b = b""
            while len(b) < 2 or len(b) < 2 + struct.unpack("!H",
                                                           b[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    raise EOFError("DNS server closed the connection")
                b += chunk
            r = b[2:]
    rid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", r[:12])
    if rid != qid:
        raise ValueError("answer id %#x for query %#x" % (rid, qid))
    off = 12
    for _ in range(qd):
        _, off = decode_name(r, off)
        off += 4
    answers = []
    for _ in range(an):
        owner, off = decode_name(r, off)
        t, cls, ttl, ln = struct.unpack("!HHIH", r[off:off + 10])
        off += 10
        data = r[off:off + ln]
        tn = TYPE_NAMES.get(t, str(t))
        if tn == "A":
            v = socket.inet_ntop(socket.AF_INET, data)
        elif tn == "AAAA":
            v = socket.inet_ntop(socket.AF_INET6, data)
        elif tn == "MX":
            v = (struct.unpack("!H", data[:2])[0],
                 decode_name(r, off + 2)[0] or ".")
        elif tn in ("CNAME", "NS", "PTR"):
            v = decode_name(r, off)[0]
        else:
            v = data
        answers.append((owner, tn, ttl, v))
        off += ln
    return flags & 0xF, flags, answers
