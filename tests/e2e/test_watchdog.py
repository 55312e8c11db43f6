#!/usr/bin/env python3
"""End-to-end: the systemd watchdog, without systemd.  ferryd is started
with $NOTIFY_SOCKET naming a datagram socket the test listens on and
$WATCHDOG_USEC as systemd's WatchdogSec= would set it.  The master must
send WATCHDOG=1 about every quarter period while the queue runner
answers its liveness check, none once the runner has been stopped with
SIGSTOP (before the period is over, so systemd would restart ferry), and
again after SIGCONT.  Without $WATCHDOG_USEC it sends none.  Needs root
and a ferryd built with libsystemd (skipped otherwise)."""

import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

PERIOD = 2.0              # WATCHDOG_USEC, in seconds


def built_with_systemd():
    try:
        with open(os.path.join(ft.BUILDDIR, "autoconfig.h")) as f:
            return re.search(r"^#define HAVE_SYSTEMD 1", f.read(),
                             re.M) is not None
    except OSError:
        return False


class NotifyListener:
    """The service manager's end of sd_notify: records every datagram
    with the time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []          # (monotonic time, text)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(),
                                      data.decode("utf-8", "replace")))

    def close(self):
        self.stop_flag.set()
        self.thread.join(2)
        self.sock.close()

    def times(self, text, since=0.0):
        with self.lock:
            return [t for t, m in self.messages
                    if text in m.split("\n") and t >= since]


class WatchdogTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        if not built_with_systemd():
            self.skipTest("ferryd was built without libsystemd")

    def start(self, watchdog):
        d = ft.Ferry()
        path = os.path.join(d.dir, "notify.sock")
        n = NotifyListener(path)
        self.addCleanup(n.close)
        d.extra_env = {"NOTIFY_SOCKET": path}
        if watchdog:
            d.extra_env["WATCHDOG_USEC"] = str(int(PERIOD * 1e6))
        d.start()

        def cleanup():
            for pid in d.runners():
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        self.assertTrue(ft.wait_for(lambda: n.times("READY=1"), 5),
                        "no READY=1")
        return d, n

    def test_pings_stop_while_runner_is_stopped(self):
        d, n = self.start(watchdog=True)
        # well: about four pings a period
        t0 = time.monotonic()
        self.assertTrue(ft.wait_for(lambda: len(n.times("WATCHDOG=1",
                                                         t0)) >= 4,
                                    2 * PERIOD),
                        "fewer than 4 WATCHDOG=1 in %.0f s: %r"
                        % (2 * PERIOD, n.messages[-10:]))
        runner = d.runners()
        self.assertEqual(len(runner), 1, runner)
        runner = runner[0]

        os.kill(runner, signal.SIGSTOP)
        stopped = time.monotonic()
        time.sleep(2.5 * PERIOD)
        after = n.times("WATCHDOG=1", stopped)
        # the pings stop within the period (systemd would restart ferry)
        self.assertTrue(not after or after[-1] - stopped < PERIOD,
                        "WATCHDOG=1 %.2f s after the runner stopped"
                        % (after[-1] - stopped if after else 0))
        self.assertEqual(n.times("WATCHDOG=1", stopped + PERIOD), [])
        self.assertIn(runner, d.runners())    # not restarted by ferryd

        os.kill(runner, signal.SIGCONT)
        resumed = time.monotonic()
        self.assertTrue(ft.wait_for(lambda: len(n.times("WATCHDOG=1",
                                                         resumed)) >= 2,
                                    2 * PERIOD),
                        "no WATCHDOG=1 after SIGCONT")
        self.assertEqual(d.runners(), [runner])
        # and it still relays: a message is taken into the queue
        qid = d.send(b"Subject: after\r\n\r\nbody\r\n")
        self.assertTrue(qid)

    def test_no_watchdog_no_pings(self):
        d, n = self.start(watchdog=False)
        time.sleep(PERIOD)
        self.assertEqual(n.times("WATCHDOG=1"), [])
        self.assertTrue(n.times("READY=1"))


if __name__ == "__main__":
    ft.main(need_root=True)
