#!/usr/bin/env python3
"""End-to-end relay benchmark: smtp-source -> relay -> smtp-sink, ferry and
Postfix side by side in one run, rounds interleaved.

    sudo python3 tests/bench/relay.py [--rounds N] [--cases SPEC] [--keep]
        [--dkim rsa|ed25519|both] [--pss] [--rest-after S]
        [--ready status|smtp]

SPEC is a comma list of MESSAGESxSESSIONSxSIZE, by default the four cases
of the performance budget: 5000x1x1024,5000x10x1024,5000x50x1024,
1000x10x102400.

Both relays run with their shipped defaults.  ferry's configuration changes
only what one loopback load generator forces -- listener, smarthost, spool,
users, per-client abuse limits, log to stderr (there is no syslog daemon
here) -- and sizes its pools like Postfix's defaults (100 SMTP server
processes, 20 deliveries at once to one destination).  Postfix gets only
its relayhost.

Each relay runs in a cgroup of its own (cgroup v2), so the CPU time of every
one of its processes is counted, those that exited during the run too.
Where there is no cgroup v2 the figure falls back to /proc: the live
processes of the tree plus the time of the children the top process waited
for (cutime/cstime).  Memory is the PSS summed from /proc/PID/smaps_rollup
of the relay's processes: at rest (before the first message) and at the
peak (sampled every 0.2 s during the run).  With --rest-after S, also at
rest after the run: S seconds after the queue drained, the same wait for
every relay (110 s outlasts Postfix's max_idle of 100 s, after which its
idle daemons leave, and ferry's delivery.agent_idle and workers.spare_idle
of 60 s; ferry-anvil and ferry-resolve leave workers.helper_idle, 100 s,
after the workers let go of them, 10 s after their last session: 130 s
outlasts that).

Ready: Postfix is measured at rest as soon as its master runs, with no
probe.  ferry by default likewise opens no SMTP session, which would
start ferry-anvil (started on demand, like Postfix's anvil): it is ready
when queue.db exists, a worker runs and "ferryctl status" is answered
(the queue runner serves it).  --ready smtp waits for a worker's 220
greeting instead, as before (one session: anvil then runs at rest).

With --dkim, a second ferry ("ferry-dkim") runs beside the first with
dkim_key sections for example.org (the sender's domain in smtp-source's
From header): an RSA 2048 key, an Ed25519 key, or both, made with
ferryctl dkim keygen.

A round times from the first connection until the relay's queue is empty
(every message handed to the sink).  Needs root, a built tree and Debian's
postfix package (smtp-source, smtp-sink and the Postfix relay).
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_CASES = "5000x1x1024,5000x10x1024,5000x50x1024,1000x10x102400"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cgroup2_root():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    return None


class Group:
    """The processes of one relay: a cgroup v2 when there is one, else the
    process tree under a known top pid."""

    def __init__(self, name):
        root = cgroup2_root()
        self.path = None
        self.top = None
        if root:
            self.path = os.path.join(root, "ferry-bench-%s-%d" % (name, os.getpid()))
            os.makedirs(self.path, exist_ok=True)

    def enter(self):  # preexec_fn: runs in the child before exec
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write("0\n")

    def pids(self):
        if self.path:
            try:
                with open(os.path.join(self.path, "cgroup.procs")) as f:
                    return [int(x) for x in f.read().split()]
            except OSError:  # removed while a sampler still looks
                return []
        return tree(self.top) if self.top else []

    def cpu_seconds(self):
        if self.path:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) / 1e6
        total = 0
        hz = os.sysconf("SC_CLK_TCK")
        for p in self.pids():
            try:
                with open("/proc/%d/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
            if p == self.top:  # children it waited for
                total += int(fields[13]) + int(fields[14])
        return total / hz

    def pss_kib(self):
        return sum(v[1] for v in self.pss_by_name().values())

    def pss_by_name(self):
        """{process name: [processes, Pss, Pss_Anon, Pss_File,
        Private_Dirty]} in KiB, from /proc/PID/smaps_rollup."""
        by = {}
        for p in self.pids():
            try:
                with open("/proc/%d/comm" % p) as f:
                    comm = f.read().strip()
                with open("/proc/%d/smaps_rollup" % p) as f:
                    f.readline()  # the address range and "[rollup]"
                    rollup = dict((k, int(v.split()[0])) for k, v in
                                  (line.split(":", 1) for line in f))
            except (OSError, ValueError, IndexError):
                continue
            row = by.setdefault(comm, [0, 0, 0, 0, 0])
            row[0] += 1
            for i, k in enumerate(PSS_FIELDS, 1):
                row[i] += rollup.get(k, 0)
        return by

    def remove(self):
        if self.path:
            for _ in range(50):
                try:
                    os.rmdir(self.path)
                    return
                except OSError:
                    time.sleep(0.1)


def tree(top):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [top]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


PSS_FIELDS = ("Pss", "Pss_Anon", "Pss_File", "Private_Dirty")


def pss_table(by):
    """Lines of a per-process PSS table (MiB), biggest first."""
    out = ["    %-16s %5s %8s %8s %8s %8s" % (("process", "n") + PSS_FIELDS)]
    total = [0] * 5
    for comm, row in sorted(by.items(), key=lambda kv: -kv[1][1]):
        out.append("    %-16s %5d" % (comm, row[0]) + "".join(
            " %8.2f" % (v / 1024) for v in row[1:]))
        total = [a + b for a, b in zip(total, row)]
    out.append("    %-16s %5d" % ("total", total[0]) + "".join(
        " %8.2f" % (v / 1024) for v in total[1:]))
    return out


class PeakSampler(threading.Thread):
    def __init__(self, group):
        super().__init__(daemon=True)
        self.group, self.peak, self.stop = group, 0, threading.Event()
        self.peak_by = {}  # the per-process figures at the peak

    def run(self):
        while not self.stop.is_set():
            by = self.group.pss_by_name()
            total = sum(v[1] for v in by.values())
            if total > self.peak:
                self.peak, self.peak_by = total, by
            self.stop.wait(0.2)

    def finish(self):
        self.stop.set()
        self.join()
        return self.peak


def drain(queue_size, timeout=900):
    deadline = time.monotonic() + timeout
    while queue_size() != 0:
        if time.monotonic() > deadline:
            raise SystemExit("queue did not drain in %d s" % timeout)
        time.sleep(0.02)


def smtp_source(port, msgs, sess, size):
    subprocess.run(["smtp-source", "-s", str(sess), "-m", str(msgs),
                    "-l", str(size), "-f", "sender@example.org",
                    "-t", "rcpt@example.com", "127.0.0.1:%d" % port],
                   check=True)


class Ferry:
    name = "ferry"

    def __init__(self, work, sink, tree=TOP, name="ferry", extra=""):
        self.work, self.sink = work, sink
        self.extra = extra  # appended to the configuration
        self.tree, self.name = tree, name
        self.conf = os.path.join(work, name + ".conf")
        self.spool = os.path.join(work, name + "-spool")
        self.log = os.path.join(work, name + ".log")
        self.proc = None
        self.group = None
        self.wrap = []  # e.g. ["perf", "record", "-g", "--"]

    def start(self):
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(FERRY_CONF % {"spool": self.spool, "port": self.port,
                                  "sink": self.sink} + self.extra)
        shutil.rmtree(self.spool, ignore_errors=True)
        self.group = Group(self.name)
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(
            self.wrap + [os.path.join(self.tree, "src", "ferryd"), "-d", "-f", self.conf],
            stderr=self.logf, preexec_fn=self.group.enter)
        self.group.top = self.proc.pid
        db = os.path.join(self.spool, "queue", "queue.db")
        # serving: the queue exists and the runner answers ferryctl
        # status with a worker up (no SMTP session: see --ready), or a
        # worker greets 220 (a loaded machine can take longer than a few
        # seconds to get there)
        ready = self._greets if self.ready_probe == "smtp" else \
            self._status_answers
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.exists(db) and ready():
                break
            time.sleep(0.05)
        time.sleep(1.0)  # let the pools settle before measuring rest

    ready_probe = "status"

    def _status_answers(self):
        def comm(pid):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    return f.read().strip()
            except OSError:
                return ""
        if not any(comm(p) == "ferry-smtpd" for p in self.group.pids()):
            return False
        r = subprocess.run([os.path.join(self.tree, "src", "ferryctl"), "-s",
                            os.path.join(self.spool, "ferryctl.sock"),
                            "status"], stdin=subprocess.DEVNULL,
                           capture_output=True)
        return r.returncode == 0

    def _greets(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), 2) as c:
                c.settimeout(5)
                return c.recv(512).startswith(b"220")
        except OSError:
            return False

    def queue_size(self):
        r = subprocess.run(["sqlite3", os.path.join(self.spool, "queue", "queue.db"),
                            "select count(*) from message"],
                           capture_output=True, text=True)
        try:
            return int(r.stdout.strip())
        except ValueError:
            return 1

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        self.group.remove()

    def deferred(self):
        with open(self.log, errors="replace") as f:
            return sum(1 for line in f if "status=deferred" in line)


class Postfix:
    name = "postfix"

    def __init__(self, work, sink):
        self.work, self.sink = work, sink
        self.group = None

    def _sh(self, what, stdin=""):
        subprocess.run(["sh", "-c", '. "$1/tests/bench/postfix-instance.sh"; ' + what,
                        "sh", TOP], input=stdin, text=True, check=True,
                       env=dict(os.environ, WORK=self.work),
                       preexec_fn=self.group.enter)

    def start(self):
        self.port = free_port()
        self.group = Group("postfix")
        shutil.rmtree(os.path.join(self.work, "postfix-spool"), ignore_errors=True)
        try:
            os.unlink(os.path.join(self.work, "postfix.log"))
        except OSError:
            pass
        self._sh("postfix_instance_start %d" % self.port,
                 "relayhost = [127.0.0.1]:%d\n" % self.sink)
        time.sleep(1.0)

    def queue_size(self):
        n = 0
        for d in ("incoming", "active", "deferred", "maildrop", "hold"):
            for _, _, files in os.walk(os.path.join(self.work, "postfix-spool", d)):
                n += len(files)
        return n

    def stop(self):
        self._sh("postfix_instance_stop")
        self.group.remove()

    def deferred(self):
        try:
            with open(os.path.join(self.work, "postfix.log"), errors="replace") as f:
                return sum(1 for line in f if "status=deferred" in line)
        except OSError:
            return 0


FERRY_CONF = """\
user = "daemon"
smtpd_user = "nobody"
deliver_user = "mail"
spool_dir = "%(spool)s"
listen "bench" {
    address = "127.0.0.1"
    port = %(port)d
}
smarthost {
    host = "127.0.0.1"
    port = %(sink)d
    tls = "none"
    auth = false
}
# pools sized like Postfix's defaults (default_process_limit = 100,
# default_destination_concurrency_limit = 20)
workers {
    max = 100
}
delivery {
    agents = 20
    per_destination = 20
}
# one client (smtp-source on loopback) opens every connection
limits {
    max_connections_per_client = 100000
    connection_rate = 1000000
    message_rate = 1000000
}
log {
    target = "stderr"
}
"""


EVENTS = ("context-switches", "page-faults", "raw_syscalls:sys_enter")


class EventCounter:
    """Software events of one relay's cgroup (perf stat -G), counted over
    a round: unlike CPU time they hardly move with the machine's load, so
    they show where two builds differ when the timings are too noisy."""

    def __init__(self, group, work):
        self.out = os.path.join(work, "perf-stat.csv")
        cg = os.path.relpath(group.path, cgroup2_root())
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-a", "-o", self.out,
             "-e", ",".join(EVENTS), "-G", ",".join([cg] * len(EVENTS))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        counts = {}
        with open(self.out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2] in EVENTS:
                    try:
                        counts[parts[2]] = int(parts[0])
                    except ValueError:
                        counts[parts[2]] = 0
        return counts


def dkim_sections(work, which):
    """dkim_key sections for example.org with keys made by ferryctl."""
    text = ""
    for alg in (["rsa", "ed25519"] if which == "both" else [which]):
        key = os.path.join(work, "dkim-%s.pem" % alg)
        subprocess.run([os.path.join(TOP, "src", "ferryctl"), "dkim",
                        "keygen", "example.org", alg, "--out", key] +
                       (["--ed25519"] if alg == "ed25519" else []),
                       check=True, stdout=subprocess.DEVNULL)
        text += ('dkim_key "%s" {\n    domain = "example.org"\n'
                 '    selector = "%s"\n    key_file = "%s"\n}\n'
                 % (alg, alg, key))
    return text


def run_case(relay, msgs, sess, size, events=False, rest_after=0):
    """One timed run on a relay started afresh."""
    relay.start()
    rest_by = relay.group.pss_by_name()
    rest = sum(v[1] for v in rest_by.values())
    nproc = len(relay.group.pids())
    cpu0 = relay.group.cpu_seconds()
    sampler = PeakSampler(relay.group)
    sampler.start()
    counter = EventCounter(relay.group, relay.work) if events else None
    counts = {}
    try:
        t0 = time.monotonic()
        smtp_source(relay.port, msgs, sess, size)
        time.sleep(0.1)
        drain(relay.queue_size)
        t1 = time.monotonic()
        cpu = relay.group.cpu_seconds() - cpu0
        if counter:
            counts = counter.finish()
        peak = sampler.finish()
        deferred = relay.deferred()
        after_by = {}
        if rest_after > 0:
            time.sleep(rest_after)
            after_by = relay.group.pss_by_name()
    finally:
        sampler.stop.set()
        relay.stop()
    return {"rate": msgs / (t1 - t0), "secs": t1 - t0,
            "cpu_ms": cpu * 1000 / msgs, "rest_kib": rest, "peak_kib": peak,
            "procs": nproc, "deferred": deferred,
            "rest_by": rest_by, "peak_by": sampler.peak_by,
            "after_by": after_by,
            "after_kib": sum(v[1] for v in after_by.values()),
            "events": {k: v / msgs for k, v in counts.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--only", choices=["ferry", "postfix"])
    ap.add_argument("--before", metavar="TREE",
                    help="also run the ferry built in TREE (as ferry-before), "
                    "interleaved, for a before/after comparison")
    ap.add_argument("--events", action="store_true",
                    help="also count context switches, page faults and "
                    "system calls per message (perf stat on the cgroup)")
    ap.add_argument("--pss", action="store_true",
                    help="also print each round's PSS per process name at "
                    "rest and at the peak (Pss, Pss_Anon, Pss_File, "
                    "Private_Dirty from smaps_rollup)")
    ap.add_argument("--rest-after", type=float, default=0, metavar="S",
                    help="also measure PSS at rest S seconds after each "
                    "run's queue drained (the same wait for every relay)")
    ap.add_argument("--dkim", choices=["rsa", "ed25519", "both"],
                    help="also run a ferry that signs with DKIM (ferry-dkim)")
    ap.add_argument("--ready", choices=["status", "smtp"], default="status",
                    help="how ferry's readiness is waited for: ferryctl "
                    "status (no SMTP session, like Postfix, which gets no "
                    "probe) or a 220 greeting (one session, which starts "
                    "ferry-anvil)")
    args = ap.parse_args()
    Ferry.ready_probe = args.ready
    if args.events and not cgroup2_root():
        sys.exit("--events needs cgroup v2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",")]

    work = tempfile.mkdtemp(prefix="ferry-relay.")
    os.chmod(work, 0o755)
    sink_port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody",
                             "127.0.0.1:%d" % sink_port, "512"])
    ferry = Ferry(work, sink_port)
    postfix = Postfix(work, sink_port)
    relays = [r for r in (ferry, postfix) if args.only in (None, r.name)]
    if args.before:
        relays.insert(0, Ferry(work, sink_port, os.path.abspath(args.before),
                               "ferry-before"))
    if args.dkim:
        relays.insert(1, Ferry(work, sink_port, name="ferry-dkim",
                               extra=dkim_sections(work, args.dkim)))
    results = {}
    try:
        print("load average at start: %s" % open("/proc/loadavg").read().split()[:3],
              flush=True)
        for rnd in range(1, args.rounds + 1):
            for case in cases:
                for relay in relays:
                    r = run_case(relay, *case, events=args.events,
                                 rest_after=args.rest_after)
                    results.setdefault((case, relay.name), []).append(r)
                    print("round %d %5d x %6d B, %2d sessions: %-7s %6.1f msg/s "
                          "%5.2f ms CPU/msg  PSS rest %6.1f MiB (%d procs) "
                          "peak %6.1f MiB  deferred %d  load %s" % (
                              rnd, case[0], case[2], case[1], relay.name,
                              r["rate"], r["cpu_ms"], r["rest_kib"] / 1024,
                              r["procs"], r["peak_kib"] / 1024, r["deferred"],
                              open("/proc/loadavg").read().split()[0]),
                          flush=True)
                    if args.rest_after > 0:
                        print("        PSS at rest %.0f s after: %.1f MiB "
                              "(%d procs)" % (args.rest_after,
                                              r["after_kib"] / 1024,
                                              sum(v[0] for v in
                                                  r["after_by"].values())),
                              flush=True)
                    if args.pss:
                        print("\n".join(["  at rest:"] + pss_table(r["rest_by"])
                                        + ["  at the peak:"]
                                        + pss_table(r["peak_by"])), flush=True)
                        if args.rest_after > 0:
                            print("\n".join(["  at rest %.0f s after:" %
                                             args.rest_after]
                                            + pss_table(r["after_by"])),
                                  flush=True)
                    if r["events"]:
                        print("        per message: " + ", ".join(
                            "%s %.1f" % (k, v) for k, v in
                            sorted(r["events"].items())), flush=True)
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = lambda case, name, k: statistics.median(
        r[k] for r in results[(case, name)])
    names = [r.name for r in relays]
    print("\nmedians of %d rounds" % args.rounds)
    head = ["case"] + ["%s msg/s" % n for n in names]
    if "postfix" in names:
        head += ["%s / postfix" % n for n in names if n != "postfix"]
    head += ["%s CPU ms/msg" % n for n in names]
    head += ["%s PSS rest / peak MiB" % n for n in names]
    if args.rest_after > 0:
        head += ["%s PSS rest %.0f s after MiB" % (n, args.rest_after)
                 for n in names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case in cases:
        row = ["%d x %d KiB, %d session%s" % (case[0], case[2] // 1024,
               case[1], "" if case[1] == 1 else "s")]
        row += ["%.0f" % med(case, n, "rate") for n in names]
        if "postfix" in names:
            row += ["%.2f" % (med(case, n, "rate") / med(case, "postfix", "rate"))
                    for n in names if n != "postfix"]
        row += ["%.2f" % med(case, n, "cpu_ms") for n in names]
        row += ["%.1f / %.1f" % (med(case, n, "rest_kib") / 1024,
                                 med(case, n, "peak_kib") / 1024) for n in names]
        if args.rest_after > 0:
            row += ["%.1f" % (med(case, n, "after_kib") / 1024) for n in names]
        print("| " + " | ".join(row) + " |")
    if args.events:
        print("\nper message, medians: context switches / page faults / "
              "system calls")
        for case in cases:
            print("%s: " % (case,) + "; ".join(
                "%s %s" % (n, " / ".join(
                    "%.1f" % statistics.median(r["events"].get(e, 0) for r in
                                               results[(case, n)])
                    for e in EVENTS)) for n in names))
    print("load average at end: %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("relay.py needs root")
    main()
