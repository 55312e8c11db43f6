#!/usr/bin/env python3
"""Where ferry's CPU goes: one relay run (default 5000 x 1 KiB, 10
sessions, the configuration of relay.py) under `perf record -g`, every
ferry process included (perf follows the master's children), then a
summary by process and by shared object, and the top symbols.

    sudo python3 tests/bench/profile.py [--case 5000x10x1024] [--out DIR]

The raw perf.data and the reports stay in DIR (default /tmp/ferry-profile).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay  # noqa: E402


def report(data, out, name, *args):
    with open(os.path.join(out, name), "w") as f:
        subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                        "--percent-limit", "0.3"] + list(args),
                       stdout=f, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="5000x10x1024")
    ap.add_argument("--out", default="/tmp/ferry-profile")
    args = ap.parse_args()
    msgs, sess, size = (int(x) for x in args.case.split("x"))
    os.makedirs(args.out, exist_ok=True)
    data = os.path.join(args.out, "perf.data")
    work = tempfile.mkdtemp(prefix="ferry-profile.")
    os.chmod(work, 0o755)
    sink_port = relay.free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody",
                             "127.0.0.1:%d" % sink_port, "512"])
    ferry = relay.Ferry(work, sink_port)
    ferry.wrap = ["perf", "record", "-q", "-g", "-F", "2000", "-o", data, "--"]
    try:
        ferry.start()
        t0 = time.monotonic()
        relay.smtp_source(ferry.port, msgs, sess, size)
        time.sleep(0.1)
        relay.drain(ferry.queue_size)
        t1 = time.monotonic()
        # perf forwards SIGTERM to ferryd and writes its data
        ferry.stop()
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("%d messages in %.2f s (%.0f msg/s under perf)" % (msgs, t1 - t0, msgs / (t1 - t0)))
    report(data, args.out, "by-comm.txt", "--sort", "comm", "-g", "none")
    report(data, args.out, "by-dso.txt", "--sort", "comm,dso", "-g", "none")
    report(data, args.out, "by-symbol.txt", "--sort", "comm,dso,symbol", "-g", "none")
    report(data, args.out, "callers.txt", "--sort", "comm,symbol", "-g",
           "caller,0.5,callee,function,percent")
    print("reports in %s" % args.out)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("profile.py needs root")
    main()
