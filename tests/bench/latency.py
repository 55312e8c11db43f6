#!/usr/bin/env python3
"""Single-message latency through an idle ferry: the time from the 250 the
client gets at the end of DATA to the 250 the smarthost gives for the same
message, for N messages sent one at a time (the next only after the
previous one reached the smarthost).

    sudo python3 tests/bench/latency.py [--messages 1000]

ferry runs with the configuration of relay.py (shipped defaults, pools
sized like Postfix's).  The smarthost is a small SMTP sink in this process
that notes the moment it answers 250 to each message, so both ends are
timed on one clock.  Prints p50, p90, p99 and the maximum in ms.
Needs root and a built tree.
"""
import argparse
import os
import shutil
import smtplib
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay  # noqa: E402


class Sink(threading.Thread):
    """Accepts any mail (PIPELINING) and records, per probe number, when
    it answered 250 to the message's data."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.received = {}
        self.cond = threading.Condition()

    def run(self):
        while True:
            conn, _ = self.sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        buf = b""
        conn.sendall(b"220 sink ESMTP\r\n")
        in_data = False
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                out = []
                while True:
                    if in_data:
                        end = buf.find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        body, buf = buf[:end], buf[end + 5:]
                        in_data = False
                        probe = None
                        for line in body.split(b"\r\n"):
                            if line.startswith(b"X-Probe: "):
                                probe = int(line[9:])
                                break
                        out.append(b"250 2.0.0 ok\r\n")
                        if probe is not None:
                            conn.sendall(b"".join(out))
                            out = []
                            with self.cond:
                                self.received[probe] = time.monotonic()
                                self.cond.notify_all()
                        continue
                    nl = buf.find(b"\r\n")
                    if nl < 0:
                        break
                    line, buf = buf[:nl], buf[nl + 2:]
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        out.append(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        out.append(b"354 go\r\n")
                        in_data = True
                    elif verb == b"QUIT":
                        conn.sendall(b"".join(out) + b"221 bye\r\n")
                        return
                    else:
                        out.append(b"250 ok\r\n")
                if out:
                    conn.sendall(b"".join(out))
        except OSError:
            return
        finally:
            conn.close()

    def wait_for(self, probe, timeout=120):
        with self.cond:
            if not self.cond.wait_for(lambda: probe in self.received, timeout):
                raise SystemExit("message %d never reached the smarthost" % probe)
            return self.received[probe]


def percentile(sorted_values, p):
    k = max(0, min(len(sorted_values) - 1,
                   int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--tree", default=relay.TOP,
                    help="the built ferry tree to run (default: this one)")
    args = ap.parse_args()
    sink = Sink()
    sink.start()
    work = tempfile.mkdtemp(prefix="ferry-latency.")
    os.chmod(work, 0o755)
    ferry = relay.Ferry(work, sink.port, os.path.abspath(args.tree))
    ferry.start()
    lat = []
    try:
        smtp = smtplib.SMTP("127.0.0.1", ferry.port)
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo("probe.example.org")
        for n in range(args.messages):
            msg = ("From: sender@example.org\r\nTo: rcpt@example.com\r\n"
                   "Subject: probe %d\r\nX-Probe: %d\r\n\r\nprobe\r\n" % (n, n))
            smtp.sendmail("sender@example.org", ["rcpt@example.com"], msg)
            accepted = time.monotonic()
            delivered = sink.wait_for(n)
            lat.append((delivered - accepted) * 1000)
        smtp.quit()
    finally:
        ferry.stop()
        shutil.rmtree(work, ignore_errors=True)
    lat.sort()
    print("latency, client's 250 -> smarthost's 250, %d messages one at a time: "
          "p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  (load %s)" % (
              len(lat), percentile(lat, 50), percentile(lat, 90),
              percentile(lat, 99), lat[-1],
              " ".join(open("/proc/loadavg").read().split()[:3])))


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("latency.py needs root")
    main()
