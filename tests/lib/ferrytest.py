"""ferrytest - the harness of ferry's end-to-end tests.

Each test class (or test) runs its own daemon: a private temporary
directory holds the configuration, the spool and the daemon's log; the
daemon listens on a free loopback port.  The harness starts
$FERRY_BUILDDIR/src/ferryd in the foreground, waits for the 220
greeting, and on teardown stops it (SIGTERM, then SIGKILL for the master
and every child it was seen with), so tests leave nothing behind.

Helpers: a raw SMTP client that speaks bytes and reads whole (multi-line)
replies, access to the queue database, and process inspection through
/proc.  Python standard library only.
"""

import atexit
import faulthandler
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILDDIR = os.environ.get("FERRY_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("FERRY_SRCDIR") or BUILDDIR
FERRYD = os.path.join(BUILDDIR, "src", "ferryd")
FERRYCTL = os.path.join(BUILDDIR, "src", "ferryctl")

SKIP = 77                 # automake's "skipped" exit status
HARD_ERROR = 99           # automake's "hard error" exit status
# no test file may run longer than this (seconds)
GLOBAL_TIMEOUT = int(os.environ.get("FERRY_TEST_TIMEOUT", "300"))
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
IO_TIMEOUT = 10.0

QUEUE_USER = "daemon"
SMTPD_USER = "nobody"
DELIVER_USER = "mail"      # the delivery agents (distinct from the others)
TOKEN_USER = "backup"      # ferry-token, when a route uses OAuth2 (ditto)

_live = []                # daemons not yet stopped, for the emergency exits
# Daemon logs that showed a sanitizer report or a panic; any such line
# fails the test program even when every assertion passed.
_bad_logs = []
_BAD_LOG_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                  "ERROR: LeakSanitizer", "panic: ")


# ---------------------------------------------------------------- global

def _emergency(signum, frame):
    sys.stderr.write("\n*** ferrytest: global time limit (%d s) reached; "
                     "stack follows\n" % GLOBAL_TIMEOUT)
    faulthandler.dump_traceback(all_threads=True)
    for d in list(_live):
        try:
            sys.stderr.write(d.log_tail())
        except Exception:
            pass
        d.kill_all()
        shutil.rmtree(d.dir, ignore_errors=True)
    os._exit(1)


def _cleanup_at_exit():
    for d in list(_live):
        d.stop()


_shared_copies = {}       # program -> copy other users can run


def shared_copy(program):
    """A copy of program in a world-readable temporary directory, so that
    a test can run it as another user whatever the checkout's location
    (root's home, and on Debian 12 every new user's, is mode 0700, so
    that user cannot reach the build tree).  Removed at exit."""
    copy = _shared_copies.get(program)
    if copy is None:
        d = tempfile.mkdtemp(prefix="ferry-e2e-bin-")
        os.chmod(d, 0o755)
        atexit.register(shutil.rmtree, d, True)
        copy = os.path.join(d, os.path.basename(program))
        shutil.copy(program, copy)
        os.chmod(copy, 0o755)
        _shared_copies[program] = copy
    return copy


def main(need_root=False):
    """Runs the unittest program of the calling file: exit 0 when all
    passed, 1 otherwise, 77 when the environment cannot run the tests."""
    signal.signal(signal.SIGALRM, _emergency)
    signal.alarm(GLOBAL_TIMEOUT)
    atexit.register(_cleanup_at_exit)
    if not os.access(FERRYD, os.X_OK):
        sys.stderr.write("ferrytest: %s is not built (set FERRY_BUILDDIR)\n"
                         % FERRYD)
        sys.exit(HARD_ERROR)
    if need_root and os.geteuid() != 0:
        sys.stderr.write("ferrytest: these tests need root; skipping\n")
        sys.exit(SKIP)
    for user in (QUEUE_USER, SMTPD_USER, DELIVER_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            sys.stderr.write("ferrytest: no user %s; skipping\n" % user)
            sys.exit(SKIP)
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    signal.alarm(0)
    _cleanup_at_exit()
    for where, line in _bad_logs:
        sys.stderr.write("ferrytest: daemon log %s: %s\n" % (where, line))
    sys.exit(0 if prog.result.wasSuccessful() and not _bad_logs else 1)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it returns something true, at most timeout
    seconds; returns the last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


# ----------------------------------------------------------------- /proc

def proc_stat(pid):
    """(comm, state, ppid) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    lp, rp = data.index("("), data.rindex(")")
    rest = data[rp + 2:].split()
    return data[lp + 1:rp], rest[0], int(rest[1])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[1] != "Z"


def proc_status(pid):
    """/proc/<pid>/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_limits(pid):
    """/proc/<pid>/limits as {name: (soft, hard)}."""
    out = {}
    with open("/proc/%d/limits" % pid) as f:
        next(f)
        for line in f:
            m = re.match(r"(.+?)\s{2,}(\S+)\s+(\S+)", line)
            if m:
                out[m.group(1).strip()] = (m.group(2), m.group(3))
    return out


def socket_inodes(pid):
    """The inodes of the sockets a process has open."""
    out = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            out.add(int(m.group(1)))
    return out


def tcp_inode(local_port, remote_port):
    """Inode of the IPv4 TCP socket bound to 127.0.0.1:local_port and
    connected to 127.0.0.1:remote_port (the server side of a session)."""
    want = ("0100007F:%04X" % local_port, "0100007F:%04X" % remote_port)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if (p[1], p[2]) == want:
                return int(p[9])
    return None


# ------------------------------------------------------------ SMTP client

class SMTPError(Exception):
    pass


class Reply:
    """One SMTP reply: code, the text of each line, and the raw bytes."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return self.lines[-1]

    @property
    def esc(self):
        """The enhanced status code of the last line, or None."""
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})( |$)", self.lines[-1])
        return m.group(1) if m else None

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class Client:
    """A raw SMTP client: sends bytes as given, reads whole replies.
    Every operation has a timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT,
                 greeting=True, tls_context=None, server_hostname=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls_context is not None:     # implicit TLS (RFC 8314)
            self.sock = tls_context.wrap_socket(
                self.sock, server_hostname=server_hostname)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.server_port = port
        self.greeting = self.reply() if greeting else None

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def read_line(self, timeout=None):
        end = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply line")
            self._fill(left)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self, timeout=None):
        """Reads one reply, multi-line or not."""
        lines, raw, code = [], b"", None
        while True:
            line = self.read_line(timeout)
            raw += line + b"\r\n"
            m = re.match(rb"(\d{3})([ -])(.*)$", line, re.S)
            if m is None:
                raise SMTPError("malformed reply line %r" % line)
            c = int(m.group(1))
            if code is not None and c != code:
                raise SMTPError("reply code changed within a reply: %r"
                                % raw)
            code = c
            lines.append(m.group(3).decode("utf-8", "surrogateescape"))
            if m.group(2) == b" ":
                return Reply(code, lines, raw)

    def cmd(self, line, timeout=None):
        """Sends one command line (CRLF appended) and reads its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def is_closed(self, timeout=5.0):
        """True when the server closes the connection within timeout
        (pending input is discarded)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            finally:
                try:
                    self.sock.settimeout(self.timeout)
                except OSError:
                    pass
            if not chunk:
                return True
            self.buf += chunk

    def starttls(self, context, server_hostname=None):
        """TLS on the connection after a 220 to STARTTLS; anything the
        server sent before the handshake fails the test."""
        if self.buf:
            raise SMTPError("bytes before the handshake: %r" % self.buf)
        self.sock = context.wrap_socket(self.sock,
                                        server_hostname=server_hostname)
        self.sock.settimeout(self.timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # transaction helpers --------------------------------------------------

    def ehlo(self, name="client.example"):
        r = self.cmd("EHLO " + name)
        if r.code != 250:
            raise SMTPError("EHLO refused: %r" % r)
        return r

    def envelope(self, sender, rcpts, mail_params="", rcpt_params=""):
        """MAIL and RCPT; raises unless all are accepted."""
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, mail_params))
        if r.code != 250:
            raise SMTPError("MAIL refused: %r" % r)
        for rc in rcpts:
            r = self.cmd("RCPT TO:<%s>%s" % (rc, rcpt_params))
            if r.code != 250:
                raise SMTPError("RCPT refused: %r" % r)

    def data(self, stuffed):
        """DATA with the given (already dot-stuffed, CRLF) content, to
        which the end-of-data line is added; returns the final reply."""
        r = self.cmd("DATA")
        if r.code != 354:
            raise SMTPError("DATA refused: %r" % r)
        self.send(stuffed + b".\r\n")
        return self.reply()

    def send_message(self, sender, rcpts, content, mail_params="",
                     rcpt_params=""):
        """A whole transaction; content is CRLF text that is dot-stuffed
        here.  Returns the queue id from the 250 reply."""
        self.envelope(sender, rcpts, mail_params, rcpt_params)
        r = self.data(dot_stuff(content))
        return queued_id(r)


def dot_stuff(content):
    """RFC 5321 4.5.2 transparency; content must end in CRLF (or be
    empty)."""
    out = re.sub(rb"(^|\r\n)\.", rb"\1..", content)
    return out


def queued_id(reply):
    m = re.match(r"2\.0\.0 Ok: queued as (\S+)$", reply.text)
    if reply.code != 250 or m is None:
        raise SMTPError("message not queued: %r" % reply)
    return m.group(1)


# ---------------------------------------------------------------- daemon

DEFAULTS = {
    "hostname": "mx.ferry-test.example",
    "shutdown_timeout": 3,
    # Every test client is 127.0.0.1: no lookup of its name (only
    # test_client_names.py turns client_names on, with its own DNS).
    "workers": {"min_idle": 2, "max_idle": 4, "max": 16, "sessions": 100,
                "client_names": False},
    # The abuse limits are counted per client address, and every test
    # client is 127.0.0.1: generous by default, so only the tests of
    # those limits (test_abuse_limits.py) meet them.
    "limits": {"max_connections_per_client": 1000,
               "connection_rate": 1000000, "message_rate": 1000000},
    "networks": ["127.0.0.0/8", "::1/128"],
    "debug": False,
    # delivery (written only when given):
    #   routes     [{"name": "out", "domains": [...], "hosts": [...],
    #                "tls": "none", ...}, ...] -> route "out" { ... }
    #   smarthost  {"host": ..., "port": ..., "tls": ...}
    #   mx         {"port": ..., "tls": ...}
    #   delivery   {"retry_schedule": [1], "resolver": "127.0.0.1:53",...}
    "routes": [],
    "smarthost": None,
    "mx": None,
    "delivery": None,
    # inbound TLS, AUTH and relay policy (written only when given):
    #   listen          {"tls": "starttls", "auth": True, ...}: more options
    #                   of the listener "test"
    #   more_listeners  [{"name": "smtps", "tls": "implicit", ...}]: each
    #                   gets a free port, self.ports["smtps"]
    #   tls / auth      {"cert_file": ...} -> tls { ... } / auth { ... }
    #   accept_domains  ["example.com", ...] -> relay { accept_domains }
    "listen": {},
    "more_listeners": [],
    "tls": None,
    "auth": None,
    "accept_domains": [],
}


def conf_value(v):
    """A Python value in libconfuse syntax."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "{ %s }" % ", ".join(conf_value(x) for x in v)
    return '"%s"' % str(v).replace("\\", "\\\\").replace('"', '\\"')


def conf_section(head, opts):
    """Lines of a section: head is 'delivery' or 'route "name"'."""
    return ([head + " {"] +
            ["    %s = %s" % (k, conf_value(v)) for k, v in
             sorted(opts.items())] + ["}"])


class Ferry:
    """One running ferryd with its own directory, spool and port."""

    def __init__(self, **overrides):
        self.opts = {k: (dict(v) if isinstance(v, dict) else v)
                     for k, v in DEFAULTS.items()}
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(self.opts.get(k), dict):
                self.opts[k].update(v)
            else:
                self.opts[k] = v
        self.dir = tempfile.mkdtemp(prefix="ferry-e2e-")
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        self.conf = os.path.join(self.dir, "ferry.conf")
        self.logpath = os.path.join(self.dir, "ferryd.log")
        self.db_path = os.path.join(self.spool, "queue", "queue.db")
        self.proc = None
        self.port = None
        self.exit_status = None
        self.seen = {}              # pid -> comm of every child seen
        self._watch_stop = threading.Event()
        self._watcher = None

    # configuration ----------------------------------------------------

    def config_text(self, **changes):
        o = dict(self.opts)
        o.update(changes)
        w = o["workers"]
        lines = [
            "# written by ferrytest",
            'hostname = "%s"' % o["hostname"],
            'user = "%s"' % QUEUE_USER,
            'smtpd_user = "%s"' % SMTPD_USER,
            'deliver_user = "%s"' % DELIVER_USER,
            'token_user = "%s"' % TOKEN_USER,
            'spool_dir = "%s"' % self.spool,
            "shutdown_timeout = %d" % o["shutdown_timeout"],
            'listen "test" {',
            '    address = "127.0.0.1"',
            "    port = %d" % self.port,
        ] + ["    %s = %s" % (k, conf_value(v))
             for k, v in sorted(o["listen"].items())] + ["}"]
        for ml in o["more_listeners"]:
            ml = dict(ml)
            name = ml.pop("name")
            ml.setdefault("address", "127.0.0.1")
            ml["port"] = self.ports[name]
            lines += conf_section('listen "%s"' % name, ml)
        for sec in ("tls", "auth"):
            if o[sec] is not None:
                lines += conf_section(sec, o[sec])
        lines += [
            "workers {",
        ]
        lines += ["    %s = %s" % (k, conf_value(w[k])) for k in sorted(w)]
        lines += ["}", "limits {"]
        lines += ["    %s = %d" % (k, v) for k, v in
                  sorted(o["limits"].items())]
        lines += ["}", "relay {",
                  "    networks = { %s }" % ", ".join(
                      '"%s"' % n for n in o["networks"])]
        if o["accept_domains"]:
            lines += ["    accept_domains = %s"
                      % conf_value(o["accept_domains"])]
        lines += ["}"]
        for r in o["routes"] or ():
            r = dict(r)
            lines += conf_section('route "%s"' % r.pop("name"), r)
        delivery_wanted = any(o[k] for k in
                              ("routes", "smarthost", "mx", "delivery"))
        for sec in ("smarthost", "mx", "delivery"):
            if o[sec] is not None:
                lines += conf_section(sec, o[sec])
        if o.get("history") is not None:
            lines += conf_section("history", o["history"])
        if not delivery_wanted:
            # Intake-only tests: mail stays queued, untouched, and no
            # lookup ever leaves this machine.
            lines += ["delivery {", "    paused = true",
                      '    resolver = "127.0.0.1:1"', "}"]
        lines += ["log {", '    target = "stderr"',
                  "    debug = %s" % ("true" if o["debug"] else "false")]
        if o.get("log_format"):
            lines += ['    format = "%s"' % o["log_format"]]
        lines += ["}", ""]
        return "\n".join(lines)

    def write_config(self, text=None, **changes):
        """Rewrites the configuration file (for reload tests)."""
        if text is None:
            text = self.config_text(**changes)
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf)

    @property
    def hostname(self):
        return self.opts["hostname"]

    # life -------------------------------------------------------------

    def start(self):
        last = None
        for _ in range(3):      # a free port may be taken meanwhile
            self.port = free_port()
            self.ports = {ml["name"]: free_port()
                          for ml in self.opts["more_listeners"]}
            self.write_config()
            try:
                self._start_once()
                return self
            except OSError as e:
                last = e
                if "Address already in use" not in self.log_text():
                    break
        self.stop()
        raise RuntimeError("ferryd did not start: %s\n%s"
                           % (last, self.log_tail()))

    def _start_once(self):
        self.logf = open(self.logpath, "ab")
        # extra_env: variables a test sets for ferryd (NOTIFY_SOCKET...)
        extra = getattr(self, "extra_env", None)
        self.proc = subprocess.Popen(
            [FERRYD, "-d", "-f", self.conf], stdin=subprocess.DEVNULL,
            stdout=self.logf, stderr=self.logf, cwd=self.dir,
            env=dict(os.environ, **extra) if extra else None)
        self.pid = self.proc.pid
        _live.append(self)
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        end = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.exit_status = self.proc.returncode
                self._forget()
                raise OSError("ferryd exited with status %d"
                              % self.proc.returncode)
            # serving: a worker greets and the runner has opened the queue
            # (or, without its store, a worker answers 421 4.3.0 for it);
            # quiet_start: no SMTP session (it would start ferry-anvil),
            # the runner answers ferryctl status and a worker runs
            try:
                log = self.log_text()
                if ("queue runner started" in log and
                        getattr(self, "quiet_start", False)):
                    if (self.workers() and
                            self.ctl("status").returncode == 0):
                        return
                elif "queue runner started" in log:
                    with Client(self.port, timeout=2) as c:
                        if c.greeting.code == 220:
                            c.cmd("QUIT")
                            return
                        if (c.greeting.code == 421 and
                                "without its store" in log):
                            return
            except (OSError, EOFError, SMTPError):
                pass
            if time.monotonic() >= end:
                raise OSError("no 220 greeting within %.0f s"
                              % START_TIMEOUT)
            time.sleep(0.05)

    def _watch(self):
        while not self._watch_stop.wait(0.2):
            self.children()
            self.agents()

    def _forget(self):
        self._watch_stop.set()
        if self in _live:
            _live.remove(self)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.exit_status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_status

    def kill_all(self):
        """SIGKILL the master and every recorded child still alive."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for pid, comm in list(self.seen.items()):
            st = proc_stat(pid)
            if st is not None and st[0] == comm:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def stop(self, remove=True):
        """SIGTERM, a bounded wait, then SIGKILL whatever is left."""
        if self.proc is not None:
            self.children()
            if self.proc.poll() is None:
                try:
                    self.proc.terminate()
                except OSError:
                    pass
                self.wait_exit(STOP_TIMEOUT)
            self.kill_all()
            self.exit_status = self.proc.returncode
            # children die with the master; wait for them briefly
            wait_for(lambda: not any(
                (proc_stat(p) or ("",))[0] == c
                for p, c in self.seen.items()), 5)
        self._forget()
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        try:
            for line in self.log_text().splitlines():
                if any(m in line for m in _BAD_LOG_MARKS):
                    _bad_logs.append((self.dir, line))
        except OSError:
            pass
        if remove and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    # processes ----------------------------------------------------------

    def children(self, comm=None):
        """Live children of the master (recording them), optionally only
        those running the named program."""
        out = []
        if self.proc is None:
            return out
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            st = proc_stat(int(name))
            if st is None or st[2] != self.pid or st[1] == "Z":
                continue
            self.seen[int(name)] = st[0]
            if comm is None or st[0] == comm:
                out.append(int(name))
        return sorted(out)

    def workers(self):
        return self.children("ferry-smtpd")

    def runners(self):
        return self.children("ferry-queue")

    def anvils(self):
        return self.children("ferry-anvil")

    def resolvers(self):
        return self.children("ferry-resolve")

    def agents(self):
        """Live delivery agents (ferry-deliver children of the master, or
        children of the queue runner), recorded so that kill_all reaches
        them too."""
        runners = set(self.runners())
        out = self.children("ferry-deliver")
        if not runners:
            return out
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            st = proc_stat(int(name))
            if st is None or st[2] not in runners or st[1] == "Z":
                continue
            self.seen[int(name)] = st[0]
            if int(name) not in out:
                out.append(int(name))
        return sorted(out)

    def worker_for(self, client):
        """The worker serving a Client's connection, or None."""
        inode = tcp_inode(self.port, client.local_port)
        if inode is None:
            return None
        for pid in self.workers():
            if inode in socket_inodes(pid):
                return pid
        return None

    # log ----------------------------------------------------------------

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()[-n:]
        return ("---- ferryd log (%s), last %d lines ----\n%s\n"
                "---- end of log ----\n" % (self.logpath, len(lines),
                                            "\n".join(lines)))

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Waits until the log (from offset start) matches the regular
        expression; returns the match or None."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_text(), start), timeout)

    def log_size(self):
        return len(self.log_text())

    # SMTP ---------------------------------------------------------------

    def client(self, **kw):
        return Client(self.port, **kw)

    def send(self, content, sender="sender@example.org",
             rcpts=("rcpt@example.com",), helo="client.example", **kw):
        """One message in a fresh session; returns its queue id."""
        with self.client() as c:
            c.ehlo(helo)
            qid = c.send_message(sender, list(rcpts), content, **kw)
            c.cmd("QUIT")
            return qid

    # ferryctl -----------------------------------------------------------

    @property
    def ctl_socket(self):
        return os.path.join(self.spool, "ferryctl.sock")

    def ctl(self, *args, json_output=False, user=None, timeout=IO_TIMEOUT):
        """Runs ferryctl -s <socket> [--json] args... (as user when
        given: setgid/setuid in the child); returns the CompletedProcess
        (text stdout and stderr)."""
        # another user runs a copy it can reach (shared_copy)
        argv = [FERRYCTL if user is None else shared_copy(FERRYCTL),
                "-s", self.ctl_socket]
        if json_output:
            argv.append("--json")
        argv += list(args)
        preexec = None
        if user is not None:
            pw = pwd.getpwnam(user)

            def preexec():
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        return subprocess.run(argv, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=timeout, preexec_fn=preexec,
                              cwd=self.dir)

    def ctl_json(self, *args, **kw):
        """ferryctl --json args...: the parsed document (AssertionError
        when ferryctl failed or printed no JSON)."""
        p = self.ctl(*args, json_output=True, **kw)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            raise AssertionError("ferryctl %s: exit %d, no JSON: %r %r"
                                 % (" ".join(args), p.returncode,
                                    p.stdout[:500], p.stderr[:500]))
        return doc

    # queue database -----------------------------------------------------

    def db(self):
        # mode=rw: never create the file (it must be the runner's)
        con = sqlite3.connect("file:%s?mode=rw" % self.db_path, uri=True,
                              timeout=10)
        con.row_factory = sqlite3.Row
        return con

    def query(self, sql, args=()):
        con = self.db()
        try:
            return [dict(r) for r in con.execute(sql, args).fetchall()]
        finally:
            con.close()

    def count(self, table="message", where="1", args=()):
        return self.query("SELECT count(*) AS n FROM %s WHERE %s"
                          % (table, where), args)[0]["n"]

    def message(self, qid):
        """The message with its recipients (in order) and body (the chunks
        concatenated in seq order), or None."""
        con = self.db()
        try:
            row = con.execute("SELECT * FROM message WHERE qid = ?",
                              (qid,)).fetchone()
            if row is None:
                return None
            m = dict(row)
            m["recipients"] = [dict(r) for r in con.execute(
                "SELECT * FROM recipient WHERE message_id = ? ORDER BY id",
                (m["id"],))]
            chunks = con.execute(
                "SELECT seq, chunk FROM body WHERE message_id = ? "
                "ORDER BY seq", (m["id"],)).fetchall()
            m["chunks"] = len(chunks)
            m["seqs"] = [c["seq"] for c in chunks]
            m["body"] = b"".join(bytes(c["chunk"]) for c in chunks)
            return m
        finally:
            con.close()


RECEIVED_RE = re.compile(
    rb"Received: from (?P<helo>\S+) \((?P<name>\S+) \[(?P<addr>[^\]]+)\]\)"
    rb"(?:\r\n\t\((?P<tls>using [^\r\n]*)\))?"
    rb"\r\n\tby (?P<host>\S+) \(ferry\) with (?P<proto>\S+) id (?P<qid>\S+)"
    rb"(?:\r\n\tfor <(?P<rcpt>[^>]*)>; |;\r\n\t)(?P<date>[^\r\n]+)\r\n")


def split_received(body):
    """(match of the Received header, the rest of the body)."""
    m = RECEIVED_RE.match(body)
    if m is None:
        raise AssertionError("body does not start with ferry's Received "
                             "header: %r" % body[:300])
    return m, body[m.end():]


# ------------------------------------------------------------ test cases

class FerryTestCase(unittest.TestCase):
    """Base class.  A class attribute `ferry_options` (a dict) makes
    setUpClass start one daemon for the class (self.ferry); on a failure
    the daemon's log tail is printed."""

    ferry_options = None
    ferry = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.ferry_options is not None:
            cls.ferry = Ferry(**cls.ferry_options).start()

    @classmethod
    def tearDownClass(cls):
        if cls.ferry is not None:
            cls.ferry.stop()
            cls.ferry = None
        super().tearDownClass()

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "success") and not outcome.success:
            return True
        res = getattr(outcome, "result", None)
        if res is not None:
            for t, _ in list(res.failures) + list(res.errors):
                if t is self:
                    return True
        return False

    def dump_logs_if_failed(self, *daemons):
        if self._failed():
            for d in daemons or (self.ferry,):
                if d is not None:
                    sys.stderr.write("\n[%s]\n%s" % (self.id(),
                                                     d.log_tail()))

    def tearDown(self):
        self.dump_logs_if_failed()
        super().tearDown()

    def start_ferry(self, **options):
        """A daemon of this test only, stopped at cleanup (its log tail is
        printed if the test failed)."""
        return self.started(Ferry(**options))

    def started(self, d):
        """Starts the daemon d (a Ferry, or one of a subclass, set up as
        the test needs) and stops it at cleanup, printing its log tail if
        the test failed."""
        d.start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        return d

    # assertions ---------------------------------------------------------

    def assertReply(self, reply, code, esc=None, text=None):
        self.assertEqual(reply.code, code, "unexpected reply %r" % reply)
        if esc is not None:
            self.assertEqual(reply.esc, esc, "unexpected reply %r" % reply)
        if text is not None:
            self.assertIn(text, reply.text, "unexpected reply %r" % reply)
