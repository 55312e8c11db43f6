"""smarthost - a scriptable SMTP server that records what it receives.

The next hop of ferry's delivery tests.  A SmartHost listens on a free
port of a loopback address, serves any number of connections at once (one
thread each) and records every session exactly: the raw bytes the client
sent, every command line, the envelope of each transaction with its
parameters, the DATA payload as it came over the wire (dot-stuffed) and
unstuffed, TLS version and cipher, and AUTH attempts with the identity
and password presented.

Everything is changeable while it runs (a session reads the settings at
the step that uses them): the EHLO extensions offered, the TLS
certificate for STARTTLS, the accepted AUTH credentials, and scripted
behaviour per step - answer a given reply, stall, hold until released,
drop the connection, or answer something hostile.  pause() stops
listening (connections are refused) and resume() listens again on the
same port.

Certs makes a test CA, server certificates signed by it and self-signed
ones with the openssl command, in a directory of the test's.

Python standard library only.
"""

import base64
import os
import re
import socket
import ssl
import subprocess
import threading
import time

IO_TIMEOUT = 30.0           # a session waits this long for a command
HOLD_LIMIT = 300.0          # a held step goes on after this at the latest
MAX_LINE = 100000           # command lines longer than this end the session

DEFAULT_EXTENSIONS = ("PIPELINING", "SIZE 10485760", "8BITMIME",
                      "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN")

STEPS = ("connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data",
         "eod", "rset", "noop", "quit")
_STEP_ALIAS = {"greeting": "connect", "helo": "ehlo", "end_of_data": "eod",
               "dot": "eod"}
HOSTILE = ("bare_lf", "no_code", "endless", "long_line", "mixed_codes",
           "garbage")


def free_port(addresses=("127.0.0.1",)):
    """A TCP port that is free, at the moment, on every given address."""
    for _ in range(200):
        socks = []
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
            for a in addresses[1:]:
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(t)
                t.bind((a, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError("no port free on all of %r" % (addresses,))


def unstuff(wire):
    """RFC 5321 4.5.2: removes the leading dot of every line that has
    one (lines end in CRLF)."""
    return re.sub(rb"(^|\r\n)\.", rb"\1", wire)


def _params(text):
    """ESMTP parameters "A=b C" as {"A": "b", "C": None} (keys upper)."""
    out = {}
    for p in text.split():
        k, eq, v = p.partition("=")
        out[k.upper()] = v if eq else None
    return out


# --------------------------------------------------------------- records

class Rcpt:
    """One RCPT command: the raw line, the address, its parameters and
    the reply code it got."""

    def __init__(self, line, address, params):
        self.line = line
        self.address = address
        self.params = params
        self.code = None

    def __repr__(self):
        return "Rcpt(%r, %r, %s)" % (self.address, self.params, self.code)


class Transaction:
    """One MAIL transaction of a session."""

    def __init__(self, session, line, sender, params):
        self.session = session
        self.mail_line = line          # b"MAIL FROM:<a@b> SIZE=12"
        self.sender = sender           # "a@b", "" for the null sender
        self.mail_params = params      # {"SIZE": "12", "BODY": "8BITMIME"}
        self.mail_code = None
        self.rcpts = []                # every RCPT, accepted or not
        self.data_code = None          # reply to DATA
        self.data_raw = None           # DATA payload as on the wire
        self.data = None               # unstuffed
        self.result = None             # reply code at end of data
        self.tls = session.tls_version
        self.auth_user = session.auth_user
        self.started = time.time()
        self.ended = None

    @property
    def recipients(self):
        """Addresses of the accepted recipients, in order."""
        return [r.address for r in self.rcpts if r.code == 250]

    @property
    def rcpt_lines(self):
        return [r.line for r in self.rcpts]

    @property
    def accepted(self):
        return self.result == 250

    def __repr__(self):
        return ("Transaction(from=%r, to=%r, size=%s, result=%s, tls=%s)"
                % (self.sender, [r.address for r in self.rcpts],
                   None if self.data_raw is None else len(self.data_raw),
                   self.result, self.tls))


class Session:
    """One TCP connection to the smarthost."""

    def __init__(self, server, sock, peer, number):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.number = number
        self.raw_in = bytearray()      # every byte the client sent (in
        self.raw_out = bytearray()     # clear, after TLS too) / we sent
        self.commands = []             # command lines, CRLF removed
        self.ehlo = None               # EHLO/HELO argument
        self.tls_version = None        # "TLSv1.3" once STARTTLS is done
        self.tls_cipher = None
        self.tls_error = None
        self.before_tls = b""          # what the client pipelined after
                                       # STARTTLS (discarded)
        self.auth = []                 # dicts: mech, authzid, user,
                                       # password, ok, tls
        self.auth_user = None
        self.transactions = []
        self.started = time.time()
        self.ended = None
        self.error = None              # why the session ended early
        self.buf = b""
        self.tx = None

    @property
    def raw(self):
        return bytes(self.raw_in)

    @property
    def verbs(self):
        """The command verbs in order, upper case (b"MAIL FROM:" ->
        "MAIL")."""
        return [c.split(b" ", 1)[0].split(b":", 1)[0].decode(
            "ascii", "replace").upper() for c in self.commands]

    def __repr__(self):
        return "Session(#%d, %s, tls=%s, verbs=%s, error=%r)" % (
            self.number, self.peer, self.tls_version, self.verbs,
            self.error)

    # I/O ----------------------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.raw_out += data
        self.sock.sendall(data)

    def reply(self, text):
        """Sends a reply: a string (one line, or lines separated by
        newlines, each a complete "250-..." line) or a list of lines."""
        if isinstance(text, (list, tuple)):
            lines = list(text)
        else:
            lines = text.split("\n")
        data = "".join(line.rstrip("\r") + "\r\n" for line in lines)
        pause = self.server.reply_pause
        if pause and len(data) > 6:
            # in two pieces, the first a few bytes of the code line
            self.send(data[:6])
            self.server.stopping.wait(pause)
            data = data[6:]
        self.send(data)

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("client closed the connection")
        self.raw_in += chunk
        self.buf += chunk

    def read_line(self):
        """One line with its line ending (LF, or CRLF)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > MAX_LINE:
                raise ValueError("command line longer than %d" % MAX_LINE)
            self._recv()

    def read_data(self, limit):
        """The DATA payload up to CRLF.CRLF: (wire bytes including the
        last line's CRLF, the end marker excluded)."""
        start = 0
        while True:
            probe = b"\r\n" + self.buf
            i = probe.find(b"\r\n.\r\n", start)
            if i >= 0:
                wire = self.buf[:i]
                self.buf = self.buf[i + 3:]
                return wire
            start = max(0, len(probe) - 4)
            if limit and len(self.buf) > limit + 10 * 1024 * 1024:
                raise ValueError("DATA far beyond the size limit")
            self._recv()


class Gate:
    """A step held until release(): reached is set when a session gets
    there."""

    def __init__(self):
        self.reached = threading.Event()
        self.released = threading.Event()
        self.sessions = []

    def wait_reached(self, timeout=30.0):
        return self.reached.wait(timeout)

    def release(self):
        self.released.set()


class Rule:
    def __init__(self, step, action, arg=None, rcpt=None, times=None):
        step = _STEP_ALIAS.get(step, step)
        if step not in STEPS:
            raise ValueError("unknown step %r" % step)
        if action == "hostile" and arg not in HOSTILE:
            raise ValueError("unknown hostile reply %r" % arg)
        self.step = step
        self.action = action          # reply, stall, hold, drop, hostile
        self.arg = arg
        self.rcpt = rcpt.lower() if rcpt else None
        self.times = times            # None: for ever
        self.hits = 0

    def __repr__(self):
        return "Rule(%s %s %r rcpt=%s times=%s hits=%d)" % (
            self.step, self.action, self.arg, self.rcpt, self.times,
            self.hits)


class _Drop(Exception):
    pass


# ---------------------------------------------------------------- server

class SmartHost:
    """A recording SMTP server on host:port (port 0: a free one).

    Settings (attributes, changeable at any time):
      extensions   EHLO keywords offered, e.g. ["PIPELINING", "SIZE 1000",
                   "8BITMIME", "SMTPUTF8", "DSN", "STARTTLS",
                   "AUTH PLAIN LOGIN"]; STARTTLS is offered only when a
                   certificate is set and the session is not yet in TLS
      credentials  {user: password} accepted by AUTH
      oauth_tokens {user: access token} accepted by AUTH XOAUTH2 and
                   OAUTHBEARER (offer them with "AUTH XOAUTH2
                   OAUTHBEARER"); each attempt records the decoded SASL
                   string ("sasl"), the token and, after a refused
                   token's 334 error challenge, the client's answer
      require_auth MAIL is answered 530 before a successful AUTH
      strict       MAIL/RCPT parameters of extensions not offered are
                   answered 555 5.5.4, and bare LF in commands 500
      hostname     the name in the greeting and EHLO reply
      max_rcpts    recipients one transaction takes (None: any); past
                   it RCPT is answered 452 4.5.3 (too many recipients)
      reply_pause  seconds between the first 6 bytes of every reply and
                   the rest (0: a reply goes in one piece)
    """

    def __init__(self, host="127.0.0.1", port=0, extensions=None,
                 hostname="smarthost.test", cert=None, key=None,
                 credentials=None, require_auth=False, strict=True,
                 tls_min_version=None, tls_max_version=None,
                 oauth_tokens=None):
        self.host = host
        self.port = port
        self.hostname = hostname
        self.extensions = list(DEFAULT_EXTENSIONS if extensions is None
                               else extensions)
        self.credentials = dict(credentials or {})
        self.oauth_tokens = dict(oauth_tokens or {})
        self.require_auth = require_auth
        self.strict = strict
        self.tls_context = None
        if cert is not None:
            self.set_certificate(cert, key, tls_min_version,
                                 tls_max_version)
        self.max_rcpts = None
        self.reply_pause = 0
        self.rules = []
        self.sessions = []
        self.transactions = []
        self.messages = []            # transactions accepted at end of data
        self.counter = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.listener = None
        self.accept_thread = None
        self.threads = []

    # settings -----------------------------------------------------------

    def set_certificate(self, cert, key, min_version=None,
                        max_version=None):
        """The certificate (and key) STARTTLS presents; None: no TLS."""
        if cert is None:
            self.tls_context = None
            return
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
        self.tls_context = ctx

    def offer(self, *extensions):
        """Adds EHLO keywords (replacing one with the same first word)."""
        for e in extensions:
            self.withdraw(e.split()[0])
            self.extensions.append(e)

    def withdraw(self, *keywords):
        """Stops offering the EHLO keywords named."""
        kw = {k.upper() for k in keywords}
        self.extensions = [e for e in self.extensions
                           if e.split()[0].upper() not in kw]

    def offers(self, keyword):
        """The whole EHLO line of the keyword, or None."""
        for e in self.extensions:
            if e.split()[0].upper() == keyword.upper():
                return e
        return None

    def size_limit(self):
        e = self.offers("SIZE")
        if e is None or len(e.split()) < 2:
            return 0
        return int(e.split()[1])

    # scripted behaviour --------------------------------------------------

    def _add(self, rule):
        with self.lock:
            self.rules.append(rule)
        return rule

    def reply_at(self, step, text, rcpt=None, times=None):
        """Answers text (e.g. "451 4.3.0 try later") at the step instead
        of the normal reply; for rcpt, only to that address when given.
        A 421 reply closes the connection after it is sent."""
        return self._add(Rule(step, "reply", text, rcpt, times))

    def stall_at(self, step, seconds, rcpt=None, times=None):
        """Sleeps before answering the step, then goes on normally."""
        return self._add(Rule(step, "stall", seconds, rcpt, times))

    def hold_at(self, step, rcpt=None, times=None):
        """Holds the step until the returned Gate is released (or the
        server stops, or HOLD_LIMIT passes), then goes on normally."""
        gate = Gate()
        self._add(Rule(step, "hold", gate, rcpt, times))
        return gate

    def drop_at(self, step, rcpt=None, times=None):
        """Closes the connection at the step without answering."""
        return self._add(Rule(step, "drop", None, rcpt, times))

    def hostile_at(self, step, kind, rcpt=None, times=None):
        """Answers the step with a broken reply: bare_lf ("250 ok" ended
        by LF alone), no_code (a line without a reply code), endless
        (250- continuation lines until the client gives up), long_line
        (a 100000 character reply line), mixed_codes (a multi-line
        reply whose code changes), garbage (binary bytes)."""
        return self._add(Rule(step, "hostile", kind, rcpt, times))

    def clear_rules(self):
        with self.lock:
            for r in self.rules:
                if r.action == "hold":
                    r.arg.release()
            self.rules = []

    def _rule(self, step, rcpt=None):
        with self.lock:
            for r in self.rules:
                if r.step != step or (r.times is not None and
                                      r.hits >= r.times):
                    continue
                if r.rcpt is not None and (rcpt or "").lower() != r.rcpt:
                    continue
                r.hits += 1
                return r
        return None

    # life ----------------------------------------------------------------

    def start(self):
        self._listen()
        return self

    def _listen(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self.listener = s
        self.accept_thread = threading.Thread(
            target=self._accept_loop, args=(s,), daemon=True,
            name="smarthost-accept-%d" % self.port)
        self.accept_thread.start()

    @property
    def address(self):
        """"host:port", as a route's hosts entry."""
        return "%s:%d" % (self.host, self.port)

    def pause(self):
        """Stops listening: new connections are refused."""
        s, self.listener = self.listener, None
        if s is not None:
            s.close()
        if self.accept_thread is not None:
            self.accept_thread.join(5)
            self.accept_thread = None

    def resume(self):
        """Listens again on the same port."""
        if self.listener is None:
            self._listen()

    def stop(self):
        self.stopping.set()
        self.clear_rules()
        self.pause()
        with self.lock:
            sessions = list(self.sessions)
        for s in sessions:
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.sock.close()
            except OSError:
                pass
        for t in list(self.threads):
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self, listener):
        while not self.stopping.is_set() and self.listener is listener:
            try:
                conn, peer = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT)
            with self.lock:
                self.counter += 1
                sess = Session(self, conn, peer, self.counter)
                self.sessions.append(sess)
                self.changed.notify_all()
            t = threading.Thread(target=self._serve, args=(sess,),
                                 daemon=True,
                                 name="smarthost-%d-%d" % (self.port,
                                                           sess.number))
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
            t.start()

    # waiting ---------------------------------------------------------------

    def wait(self, pred, timeout=30.0):
        """Waits until pred() (called under the lock) is true; returns
        its value (false on timeout)."""
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                v = pred()
                left = end - time.monotonic()
                if v or left <= 0:
                    return v
                self.changed.wait(min(left, 0.5))

    def wait_messages(self, n, timeout=30.0):
        """The first n accepted messages; AssertionError after timeout."""
        if not self.wait(lambda: len(self.messages) >= n, timeout):
            raise AssertionError(
                "smarthost %s: %d of %d messages within %.0f s; "
                "sessions: %s" % (self.address, len(self.messages), n,
                                  timeout, self.summary()))
        with self.lock:
            return list(self.messages[:n])

    def wait_sessions(self, n, timeout=30.0):
        if not self.wait(lambda: len(self.sessions) >= n, timeout):
            raise AssertionError("smarthost %s: %d of %d sessions"
                                 % (self.address, len(self.sessions), n))
        with self.lock:
            return list(self.sessions[:n])

    def wait_transactions(self, n, timeout=30.0):
        """The first n transactions that ended (any result)."""
        done = lambda: [t for t in self.transactions  # noqa: E731
                        if t.ended is not None]
        if not self.wait(lambda: len(done()) >= n, timeout):
            raise AssertionError("smarthost %s: %d of %d transactions; "
                                 "sessions: %s" % (
                                     self.address, len(done()), n,
                                     self.summary()))
        with self.lock:
            return done()[:n]

    def arrival_times(self):
        """When each accepted message arrived (its final 250), in
        order."""
        with self.lock:
            return sorted(t.ended for t in self.messages)

    def max_concurrent_sessions(self):
        """The most sessions that were open at once."""
        with self.lock:
            edges = []
            for s in self.sessions:
                edges.append((s.started, 1))
                edges.append((s.ended if s.ended is not None
                              else float("inf"), -1))
        most = now = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
            now += step
            most = max(most, now)
        return most

    def summary(self):
        return "; ".join(repr(s) for s in list(self.sessions)) or "none"

    def auth_attempts(self):
        return [a for s in list(self.sessions) for a in s.auth]

    # the protocol ------------------------------------------------------------

    def _notify(self):
        with self.lock:
            self.changed.notify_all()

    def _serve(self, s):
        try:
            self._session(s)
        except _Drop:
            s.error = "dropped by script"
        except (EOFError, OSError, ValueError, ssl.SSLError) as e:
            s.error = "%s: %s" % (type(e).__name__, e)
        finally:
            s.ended = time.time()
            if s.tx is not None and s.tx.ended is None:
                s.tx.ended = s.ended
            try:
                s.sock.close()
            except OSError:
                pass
            self._notify()

    def _scripted(self, s, step, rcpt=None):
        """Applies the rule for the step, if any.  Returns None when the
        normal reply is to be sent, else the code of the reply the rule
        sent (0 for a hostile one)."""
        r = self._rule(step, rcpt)
        if r is None:
            return None
        if r.action == "stall":
            self.stopping.wait(r.arg)
            return None
        if r.action == "hold":
            gate = r.arg
            gate.sessions.append(s)
            gate.reached.set()
            end = time.monotonic() + HOLD_LIMIT
            while not gate.released.wait(0.1):
                if self.stopping.is_set() or time.monotonic() > end:
                    break
            return None
        if r.action == "drop":
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raise _Drop()
        if r.action == "hostile":
            self._hostile(s, r.arg)
            return 0
        s.reply(r.arg)
        text = r.arg if isinstance(r.arg, str) else r.arg[-1]
        code = int(text[:3]) if text[:3].isdigit() else 0
        if code == 421:
            raise _Drop()
        return code

    def _hostile(self, s, kind):
        if kind == "bare_lf":
            s.send(b"250 2.0.0 Ok\n")
        elif kind == "no_code":
            s.send(b"hello, this is not a reply\r\n")
        elif kind == "long_line":
            s.send(b"250 " + b"x" * 100000 + b"\r\n")
        elif kind == "mixed_codes":
            s.send(b"250-first\r\n550-second\r\n354 third\r\n")
        elif kind == "garbage":
            s.send(bytes(range(256)) + b"\r\n")
        elif kind == "endless":
            chunk = b"250-this reply never ends\r\n" * 256
            end = time.monotonic() + 120
            while not self.stopping.is_set() and time.monotonic() < end:
                s.send(chunk)     # raises once the client has gone
            raise _Drop()

    def _session(self, s):
        code = self._scripted(s, "connect")
        if code is None:
            s.reply("220 %s ESMTP test smarthost" % self.hostname)
        serving = code in (None, 220)
        while True:
            line = s.read_line()
            cmd = line.rstrip(b"\r\n") if line.endswith(b"\r\n") else \
                line.rstrip(b"\n")
            s.commands.append(cmd)
            self._notify()
            text = cmd.decode("utf-8", "surrogateescape")
            verb = re.split(r"[ :]", text, 1)[0].upper()
            if self.strict and not line.endswith(b"\r\n"):
                s.reply("500 5.5.2 Command line not ended by CRLF")
                continue
            if not serving and verb != "QUIT":
                s.reply("503 5.5.1 No service")
                continue
            handler = getattr(self, "_cmd_" + verb.lower(), None)
            if handler is None or verb not in (
                    "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT",
                    "DATA", "RSET", "NOOP", "QUIT", "VRFY", "BDAT"):
                s.reply("500 5.5.2 Command unrecognized")
                continue
            if handler(s, text) == "quit":
                return

    def _end_tx(self, s):
        if s.tx is not None and s.tx.ended is None:
            s.tx.ended = time.time()
        s.tx = None

    def _ehlo_lines(self, s, name):
        lines = ["%s Hello %s" % (self.hostname, name)]
        for e in list(self.extensions):
            kw = e.split()[0].upper()
            if kw == "STARTTLS" and (self.tls_context is None or
                                     s.tls_version is not None):
                continue
            lines.append(e)
        return ["250%s%s" % ("-" if i < len(lines) - 1 else " ", l)
                for i, l in enumerate(lines)]

    def _cmd_ehlo(self, s, text):
        if self._scripted(s, "ehlo") is not None:
            return
        parts = text.split(None, 1)
        if len(parts) < 2:
            s.reply("501 5.5.4 Syntax: EHLO hostname")
            return
        self._end_tx(s)
        s.ehlo = parts[1]
        if parts[0].upper() == "HELO":
            s.reply("250 %s" % self.hostname)
        else:
            s.reply(self._ehlo_lines(s, parts[1]))

    _cmd_helo = _cmd_ehlo

    def _cmd_starttls(self, s, text):
        if self.tls_context is None or s.tls_version is not None or \
                not self.offers("STARTTLS"):
            s.reply("502 5.5.1 STARTTLS not offered")
            return
        if self._scripted(s, "starttls") is not None:
            return
        s.reply("220 2.0.0 Ready to start TLS")
        s.before_tls, s.buf = s.buf, b""
        try:
            tls = self.tls_context.wrap_socket(s.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            s.tls_error = str(e)
            raise
        s.sock = tls
        s.tls_version = tls.version()
        s.tls_cipher = tls.cipher()[0]
        s.ehlo = None
        s.auth_user = None
        self._end_tx(s)

    def _cmd_auth(self, s, text):
        parts = text.split()
        offered = self.offers("AUTH")
        mechs = [m.upper() for m in offered.split()[1:]] if offered else []
        rec = {"mech": parts[1].upper() if len(parts) > 1 else "",
               "authzid": None, "user": None, "password": None,
               "ok": False, "tls": s.tls_version, "line": text}
        s.auth.append(rec)
        self._notify()
        if not offered:
            s.reply("503 5.5.1 AUTH not offered")
            return
        if s.auth_user is not None:
            s.reply("503 5.5.1 Already authenticated")
            return
        if rec["mech"] not in mechs:
            s.reply("504 5.5.4 Unrecognized authentication type")
            return
        if self._scripted(s, "auth") is not None:
            return

        def ask(challenge):
            s.reply("334 " + challenge)
            resp = s.read_line().rstrip(b"\r\n")
            s.commands.append(resp)
            if resp == b"*":
                return None
            return base64.b64decode(resp, validate=True)

        if rec["mech"] in ("XOAUTH2", "OAUTHBEARER"):
            self._auth_oauth(s, rec, parts, ask)
            return
        try:
            if rec["mech"] == "PLAIN":
                if len(parts) > 2 and parts[2] != "=":
                    blob = base64.b64decode(parts[2], validate=True)
                elif len(parts) > 2:
                    blob = b""
                else:
                    blob = ask("")
                if blob is None:
                    s.reply("501 5.0.0 Authentication cancelled")
                    return
                authzid, user, pw = blob.split(b"\0", 2)
                rec["authzid"] = authzid.decode("utf-8", "replace")
            else:
                user = base64.b64decode(parts[2], validate=True) \
                    if len(parts) > 2 else ask("VXNlcm5hbWU6")
                if user is None:
                    s.reply("501 5.0.0 Authentication cancelled")
                    return
                pw = ask("UGFzc3dvcmQ6")
                if pw is None:
                    s.reply("501 5.0.0 Authentication cancelled")
                    return
        except (ValueError, TypeError):
            s.reply("501 5.5.2 Cannot decode response")
            return
        rec["user"] = user.decode("utf-8", "replace")
        rec["password"] = pw.decode("utf-8", "replace")
        if self.credentials.get(rec["user"]) == rec["password"]:
            rec["ok"] = True
            s.auth_user = rec["user"]
            s.reply("235 2.7.0 Authentication successful")
        else:
            s.reply("535 5.7.8 Authentication credentials invalid")

    def _auth_oauth(self, s, rec, parts, ask):
        """XOAUTH2 (user=U^Aauth=Bearer T^A^A) and OAUTHBEARER (RFC 7628:
        n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A)."""
        try:
            blob = base64.b64decode(parts[2], validate=True) \
                if len(parts) > 2 else ask("")
        except (ValueError, TypeError):
            s.reply("501 5.5.2 Cannot decode response")
            return
        if blob is None:
            s.reply("501 5.0.0 Authentication cancelled")
            return
        text = blob.decode("utf-8", "replace")
        rec["sasl"] = text
        fields = text.split("\x01")
        kv = {}
        for f in fields[1:] if rec["mech"] == "OAUTHBEARER" else fields:
            if "=" in f:
                k, v = f.split("=", 1)
                kv[k] = v
        if rec["mech"] == "OAUTHBEARER":
            gs2 = fields[0].split(",")
            user = gs2[1][2:] if len(gs2) > 1 and gs2[1].startswith("a=") \
                else ""
            user = user.replace("=2C", ",").replace("=3D", "=")
            rec["host"] = kv.get("host")
            rec["port"] = kv.get("port")
        else:
            user = kv.get("user", "")
        auth = kv.get("auth", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        rec["user"] = user
        rec["token"] = token
        if token is not None and self.oauth_tokens.get(user) == token:
            rec["ok"] = True
            s.auth_user = user
            s.reply("235 2.7.0 Authentication successful")
            return
        err = base64.b64encode(b'{"status":"invalid_token",'
                               b'"schemes":"bearer","scope":'
                               b'"https://mail.example/"}').decode()
        s.reply("334 " + err)
        resp = s.read_line().rstrip(b"\r\n")
        s.commands.append(resp)
        rec["after_challenge"] = resp.decode("ascii", "replace")
        s.reply("535 5.7.8 Username and Password not accepted")

    def _param_problem(self, params, allowed):
        for k in params:
            need = allowed.get(k)
            if need is None or not self.offers(need):
                return k
        return None

    def _cmd_mail(self, s, text):
        m = re.match(r"(?i)MAIL FROM:<([^>]*)>( .*)?$", text)
        if s.ehlo is None:
            s.reply("503 5.5.1 Send EHLO first")
            return
        if s.tx is not None:
            s.reply("503 5.5.1 Nested MAIL command")
            return
        if m is None:
            s.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        params = _params(m.group(2) or "")
        tx = Transaction(s, s.commands[-1], m.group(1), params)
        with self.lock:
            self.transactions.append(tx)
            s.transactions.append(tx)
        s.tx = tx
        code = self._scripted(s, "mail")
        if code is not None:
            tx.mail_code = code
            if code not in (0, 250):     # a hostile reply keeps it going
                self._end_tx(s)
            return
        bad = self._param_problem(params, {
            "SIZE": "SIZE", "BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8",
            "RET": "DSN", "ENVID": "DSN", "AUTH": "AUTH"})
        limit = self.size_limit()
        if self.require_auth and s.auth_user is None:
            tx.mail_code = 530
            s.reply("530 5.7.0 Authentication required")
        elif self.strict and bad:
            tx.mail_code = 555
            s.reply("555 5.5.4 %s parameter not supported" % bad)
        elif limit and "SIZE" in params and \
                int(params["SIZE"] or 0) > limit:
            tx.mail_code = 552
            s.reply("552 5.3.4 Message size exceeds fixed limit")
        else:
            tx.mail_code = 250
            s.reply("250 2.1.0 Ok")
        if tx.mail_code != 250:
            self._end_tx(s)

    def _cmd_rcpt(self, s, text):
        m = re.match(r"(?i)RCPT TO:<([^>]*)>( .*)?$", text)
        if s.tx is None:
            s.reply("503 5.5.1 Need MAIL command")
            return
        if m is None:
            s.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        r = Rcpt(s.commands[-1], m.group(1), _params(m.group(2) or ""))
        s.tx.rcpts.append(r)
        code = self._scripted(s, "rcpt", r.address)
        if code is not None:
            r.code = code
            self._notify()
            return
        bad = self._param_problem(r.params, {"NOTIFY": "DSN",
                                             "ORCPT": "DSN"})
        if self.max_rcpts is not None and \
                len(s.tx.recipients) >= self.max_rcpts:
            r.code = 452
            s.reply("452 4.5.3 Error: too many recipients")
        elif self.strict and bad:
            r.code = 555
            s.reply("555 5.5.4 %s parameter not supported" % bad)
        else:
            r.code = 250
            s.reply("250 2.1.5 Ok")
        self._notify()

    def _cmd_data(self, s, text):
        tx = s.tx
        if tx is None:
            s.reply("503 5.5.1 Need MAIL command")
            return
        if not tx.recipients:
            tx.data_code = 554
            s.reply("554 5.5.1 No valid recipients")
            self._end_tx(s)
            return
        code = self._scripted(s, "data")
        if code is not None:
            tx.data_code = code
            if code != 354:
                return          # the transaction stays; the client may RSET
        else:
            tx.data_code = 354
            s.reply("354 End data with <CR><LF>.<CR><LF>")
        tx.data_raw = s.read_data(self.size_limit())
        tx.data = unstuff(tx.data_raw)
        self._notify()
        code = self._scripted(s, "eod")
        if code is not None:
            tx.result = code
        else:
            limit = self.size_limit()
            if limit and len(tx.data) > limit:
                tx.result = 552
                s.reply("552 5.3.4 Message size exceeds fixed limit")
            else:
                tx.result = 250
                n = len(self.messages) + 1
                s.reply("250 2.0.0 Ok: queued as SH%d" % n)
        with self.lock:
            if tx.result == 250:
                self.messages.append(tx)
            tx.ended = time.time()
            self.changed.notify_all()
        s.tx = None

    def _cmd_bdat(self, s, text):
        s.reply("502 5.5.1 BDAT not supported")

    def _cmd_rset(self, s, text):
        if self._scripted(s, "rset") is not None:
            return
        self._end_tx(s)
        s.reply("250 2.0.0 Ok")

    def _cmd_noop(self, s, text):
        if self._scripted(s, "noop") is not None:
            return
        s.reply("250 2.0.0 Ok")

    def _cmd_vrfy(self, s, text):
        s.reply("252 2.1.5 Cannot VRFY user")

    def _cmd_quit(self, s, text):
        if self._scripted(s, "quit") is not None:
            return "quit"
        self._end_tx(s)
        s.reply("221 2.0.0 Bye")
        return "quit"


# ----------------------------------------------------------- certificates

class Certs:
    """Test certificates made with the openssl command in directory d:
    a CA (ca_cert, ca_key), server certificates signed by it, and
    self-signed ones."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.serial = 1
        self.ca_cert = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self._openssl(
            "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            self.ca_key, "-out", self.ca_cert, "-days", "3", "-subj",
            "/CN=ferry test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")

    def _openssl(self, *args):
        p = subprocess.run(("openssl",) + args, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (
                args[0], p.stderr.decode("utf-8", "replace")))

    @staticmethod
    def _san(names):
        return ",".join(("IP:%s" if re.match(r"^[\d.]+$|:", n) else
                         "DNS:%s") % n for n in names)

    def server(self, name, *alt_names):
        """(cert, key) for name (and alt_names: host names or IP
        addresses), signed by the CA."""
        base = os.path.join(self.dir, "%s-%d" % (name, self.serial))
        key, csr, crt, ext = (base + ".key", base + ".csr", base + ".pem",
                              base + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n"
                    "subjectAltName=%s\n" % self._san((name,) + alt_names))
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                      key, "-out", csr, "-subj", "/CN=%s" % name)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert,
                      "-CAkey", self.ca_key, "-set_serial",
                      str(1000 + self.serial), "-days", "3", "-out", crt,
                      "-extfile", ext)
        self.serial += 1
        return crt, key

    def self_signed(self, name, *alt_names):
        """(cert, key) of a self-signed certificate for name."""
        base = os.path.join(self.dir, "self-%s-%d" % (name, self.serial))
        self.serial += 1
        self._openssl(
            "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            base + ".key", "-out", base + ".pem", "-days", "3", "-subj",
            "/CN=%s" % name, "-addext",
            "subjectAltName=%s" % self._san((name,) + alt_names))
        return base + ".pem", base + ".key"
