#!/usr/bin/env python3
"""The load of tests/bench/pressure.sh: attacking SMTP connections and one
good client, against one server on loopback.

    pressure_clients.py --port P --count N --mode idle|trickle
                        [--setup S] [--still T] [--deadline D]
                        [--pss-root PID]
                        [--no-good-client]

Opens N attacking connections, each bound to its own loopback address
(127.10.x.y) before it connects, so per-client limits do not see one
client.  An idle attacker connects and then says nothing (it reads the
greeting if one comes).  A trickling attacker goes through EHLO, MAIL,
RCPT and DATA as a client should, then sends one byte of the message
every 2 seconds and never ends it.  Attackers do not reconnect when the
server closes them.  Once every attacker holds its place (or --setup
seconds have passed, or nothing has moved for --still seconds, 3 by
default), a good client connects from 127.0.0.1 and sends
one small message; the seconds to its greeting and to the final 250 are
timed, each bounded by --deadline.  With --pss-root, the PSS of that
process and all its descendants (sum of /proc/PID/smaps_rollup Pss) is
read while the attack is held.

Prints one JSON object: greeting and accepted (seconds, or null when
the deadline passed or the server refused), what the good client was
told when it failed, the attackers connected / greeted / in DATA /
closed by the server, and pss_kib.  Every socket is closed on exit; the
whole run is bounded by setup + deadline + a few seconds.
"""

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import threading
import time

TRICKLE_EVERY = 2.0          # seconds between two bytes in DATA
LINE = 70                    # message bytes before a CRLF


def attacker_address(i):
    return "127.10.%d.%d" % (i // 250, i % 250 + 1)


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        want = hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Attacker:
    """One attacking connection and where it is in its dialogue."""

    def __init__(self, index, port, mode):
        self.index = index
        self.mode = mode
        self.state = "connecting"   # connecting, greeting, ehlo, mail,
        self.buf = b""              # rcpt, data, trickling, idle, closed
        self.greeted = False
        self.sent = 0
        self.next_byte = 0.0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.bind((attacker_address(index), 0))
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))

    def holds(self):
        """Whether it has reached the place it means to hold."""
        if self.mode == "idle":
            return self.state == "idle"
        return self.state == "trickling"

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def send(self, data):
        try:
            self.sock.send(data)
        except OSError:
            self.state = "closed"

    def replies(self):
        """Complete replies in the buffer (the last line of each)."""
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            out.append(line.rstrip(b"\r"))
        return out

    def on_reply(self, line, now):
        code = line[:3]
        step = {
            "greeting": (b"220", b"EHLO attacker.example\r\n", "ehlo"),
            "ehlo": (b"250", b"MAIL FROM:<a@example.org>\r\n", "mail"),
            "mail": (b"250", b"RCPT TO:<b@example.com>\r\n", "rcpt"),
            "rcpt": (b"250", b"DATA\r\n", "data"),
        }
        if self.state == "greeting":
            self.greeted = code == b"220"
            if self.mode == "idle":
                self.state = "idle" if self.greeted else "closed"
                return
        if self.state in step:
            want, cmd, nxt = step[self.state]
            if code != want:
                self.state = "closed"
                return
            self.send(cmd)
            self.state = nxt if self.state != "closed" else "closed"
        elif self.state == "data":
            if code != b"354":
                self.state = "closed"
                return
            self.state = "trickling"
            self.next_byte = now + TRICKLE_EVERY

    def readable(self, now):
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            self.state = "closed"
            return
        if not data:
            self.state = "closed"
            return
        if self.state == "connecting":
            self.state = "greeting"
        self.buf += data
        for line in self.replies():
            if self.state == "closed":
                break
            self.on_reply(line, now)

    def trickle(self, now):
        if self.state != "trickling" or now < self.next_byte:
            return
        self.sent += 1
        self.send(b"\r\n" if self.sent % LINE == 0 else b"x")
        self.next_byte = now + TRICKLE_EVERY


class AttackLoop(threading.Thread):
    """Keeps every attacker going until stopped."""

    def __init__(self, attackers):
        super().__init__(daemon=True)
        self.attackers = attackers
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        for a in attackers:
            self.sel.register(a.sock, selectors.EVENT_READ |
                              selectors.EVENT_WRITE, a)

    def run(self):
        while not self.stop.is_set():
            events = self.sel.select(timeout=0.2)
            now = time.monotonic()
            with self.lock:
                for key, mask in events:
                    a = key.data
                    if a.state == "connecting" and mask & \
                            selectors.EVENT_WRITE:
                        err = a.sock.getsockopt(socket.SOL_SOCKET,
                                                socket.SO_ERROR)
                        if err:
                            a.state = "closed"
                        else:
                            a.state = "greeting"
                            self.sel.modify(a.sock, selectors.EVENT_READ, a)
                    if mask & selectors.EVENT_READ and a.state != "closed":
                        a.readable(now)
                    if a.state == "closed":
                        self.sel.unregister(a.sock)
                        a.close()
                for a in self.attackers:
                    if a.sock is not None:
                        a.trickle(now)
                        if a.state == "closed":
                            self.sel.unregister(a.sock)
                            a.close()

    def counts(self):
        with self.lock:
            att = self.attackers
            return {
                "attackers": len(att),
                "connected": sum(a.state not in ("connecting", "closed")
                                 for a in att),
                "greeted": sum(a.greeted for a in att),
                "in_data": sum(a.state == "trickling" for a in att),
                "closed": sum(a.state == "closed" for a in att),
                "holding": sum(a.holds() for a in att),
            }


class GoodClient:
    """One message from 127.0.0.1, timed, every step within the deadline."""

    def __init__(self, port, deadline):
        self.port = port
        self.end = None
        self.deadline = deadline
        self.buf = b""
        self.sock = None

    def reply(self):
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if len(line) >= 4 and line[3:4] == b"-":
                    continue
                return line.rstrip(b"\r").decode("ascii", "replace")
            left = self.end - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline")
            self.sock.settimeout(left)
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("closed by the server")
            self.buf += data

    def expect(self, send, code):
        if send is not None:
            self.sock.sendall(send)
        line = self.reply()
        if not line.startswith(code):
            raise EOFError(line)
        return line

    def run(self):
        out = {"greeting": None, "accepted": None, "failure": None}
        t0 = time.monotonic()
        self.end = t0 + self.deadline
        try:
            self.sock = socket.create_connection(("127.0.0.1", self.port),
                                                 timeout=self.deadline)
            self.expect(None, "220")
            out["greeting"] = round(time.monotonic() - t0, 3)
            self.expect(b"EHLO good.example\r\n", "250")
            self.expect(b"MAIL FROM:<good@example.org>\r\n", "250")
            self.expect(b"RCPT TO:<rcpt@example.com>\r\n", "250")
            self.expect(b"DATA\r\n", "354")
            self.expect(b"Subject: pressure bench\r\n\r\nhello\r\n.\r\n",
                        "250")
            out["accepted"] = round(time.monotonic() - t0, 3)
            try:
                self.sock.sendall(b"QUIT\r\n")
            except OSError:
                pass
        except (OSError, EOFError, TimeoutError) as e:
            out["failure"] = str(e) or e.__class__.__name__
        finally:
            if self.sock is not None:
                self.sock.close()
        return out


def descendants(root):
    """root and every process under it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_kib(root):
    total, procs = 0, 0
    for pid in descendants(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        procs += 1
                        break
        except OSError:
            continue
    return total, procs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--mode", choices=("idle", "trickle"), required=True)
    ap.add_argument("--setup", type=float, default=20.0,
                    help="seconds the attackers get to take their places")
    ap.add_argument("--deadline", type=float, default=60.0,
                    help="seconds the good client waits at most")
    ap.add_argument("--still", type=float, default=3.0,
                    help="seconds without progress that end the setup")
    ap.add_argument("--pss-root", type=int, default=0)
    ap.add_argument("--no-good-client", action="store_true")
    args = ap.parse_args()

    raise_fd_limit(args.count + 256)
    attackers = []
    result = {"mode": args.mode, "count": args.count}
    try:
        for i in range(args.count):
            attackers.append(Attacker(i, args.port, args.mode))
        loop = AttackLoop(attackers)
        loop.start()
        t0 = time.monotonic()
        end = t0 + args.setup
        last, still_since = None, time.monotonic()
        while time.monotonic() < end:
            c = loop.counts()
            if c["holding"] + c["closed"] >= args.count:
                break
            # a server that takes no more: stop waiting once nothing
            # has moved for STILL seconds
            now = time.monotonic()
            if c != last:
                last, still_since = c, now
            elif now - still_since >= args.still:
                break
            time.sleep(0.1)
        result["setup_s"] = round(time.monotonic() - t0, 2)
        result.update(loop.counts())
        if args.pss_root:
            result["pss_kib"], result["pss_processes"] = \
                pss_kib(args.pss_root)
        if not args.no_good_client:
            result.update(GoodClient(args.port, args.deadline).run())
            result["after"] = loop.counts()
        loop.stop.set()
        loop.join(5)
    finally:
        for a in attackers:
            a.close()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
