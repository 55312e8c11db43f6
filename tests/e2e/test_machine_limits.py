#!/usr/bin/env python3
"""End-to-end: the limits of the machine follow limits { max_connections }.
The master raises the open-file limit to what max_connections needs (two
descriptors a connection, four a worker, 64 of a process's own) and every
child inherits it; the listen backlog is max_connections, capped by
net.core.somaxconn with a warning; and a master that cannot get that many
descriptors (a hard limit it may not raise) refuses to start and says
why.  Needs root (exit 77 otherwise)."""

import os
import re
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

POOL = {"min_idle": 2, "max_idle": 4, "max": 16}


def needed(max_connections, workers_max):
    return 2 * max_connections + 4 * workers_max + 64


def somaxconn():
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def listen_backlog(port):
    """The backlog of the listening socket on port (ss's Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port],
                         capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "LISTEN":
            return int(fields[2])
    return None


class MachineLimitsTest(ft.FerryTestCase):

    def test_children_inherit_the_raised_limit(self):
        conns = 5000
        want = needed(conns, POOL["max"])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < want:
            self.skipTest("hard open-file limit %d under %d" % (hard, want))
        # start low, so that the master has to raise it
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            d = self.start_ferry(workers=POOL,
                                 limits={"max_connections": conns,
                                         "max_connections_per_client": 20})
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        hard_text = "unlimited" if hard == resource.RLIM_INFINITY \
            else str(hard)
        pids = [d.pid] + d.workers() + d.anvils() + d.runners()
        self.assertGreaterEqual(len(d.workers()), 1)
        for pid in pids:
            lim = ft.proc_limits(pid)["Max open files"]
            self.assertEqual(lim, (str(want), hard_text),
                             "pid %d: %r" % (pid, lim))
        # the backlog: max_connections, capped by somaxconn (warned)
        cap = somaxconn()
        backlog = listen_backlog(d.port)
        if cap > 0 and cap < conns:
            self.assertEqual(backlog, cap)
            self.assertTrue(d.wait_log(
                r"warning: net\.core\.somaxconn is %d, under limits \{ "
                r"max_connections = %d \}" % (cap, conns)))
        else:
            self.assertEqual(backlog, conns)

    def test_backlog_follows_max_connections(self):
        d = self.start_ferry(workers=POOL,
                             limits={"max_connections": 1500})
        cap = somaxconn()
        self.assertEqual(listen_backlog(d.port),
                         min(1500, cap) if cap > 0 else 1500)
        # never under the old 511
        d2 = self.start_ferry(workers=POOL, limits={"max_connections": 20})
        self.assertEqual(listen_backlog(d2.port),
                         min(511, cap) if cap > 0 else 511)

    def test_refuses_to_start_without_the_descriptors(self):
        d = ft.Ferry(workers=POOL, limits={"max_connections": 1000})
        self.addCleanup(d.stop)
        d.port = ft.free_port()
        d.ports = {ml["name"]: ft.free_port()
                   for ml in d.opts["more_listeners"]}
        d.write_config()

        def low_hard_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

        # as root without CAP_SYS_RESOURCE: the hard limit is final
        r = subprocess.run(["setpriv", "--bounding-set=-sys_resource",
                            ft.FERRYD, "-d", "-f", d.conf],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30, preexec_fn=low_hard_limit,
                           cwd=d.dir)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, re.escape(
            "limits { max_connections = 1000 } with workers { max = 16 } "
            "needs %d open files per process, but the open-file limit "
            "is 256 (hard 256) and the hard limit cannot be raised to %d"
            % (needed(1000, 16), needed(1000, 16))))
        self.assertIn("raise the hard limit (LimitNOFILE= in the systemd "
                      "unit, ulimit -Hn) or lower max_connections",
                      r.stderr)
        self.assertNotIn("listening on", r.stderr)


if __name__ == "__main__":
    ft.main(need_root=True)
