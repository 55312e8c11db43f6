#!/usr/bin/env python3
"""What queue.db holds after a backlog: N messages queued with the
smarthost down (ferry's shipped defaults, relay.py's configuration),
then the smarthost (smtp-sink) comes up, "ferryctl queue flush", the
queue drains, and the file is watched until it stops shrinking
(incremental vacuum, in bounded steps).  Prints the sizes and, from
SQLite's dbstat, the bytes each table and index still takes, the free
list and the delivery history's rows.

    sudo python3 tests/bench/queue_shrink.py [messages]   (default 20000)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay  # noqa: E402

BREAKDOWN = ("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
             " ORDER BY 2 DESC LIMIT 12;"
             "PRAGMA freelist_count;"
             "SELECT (SELECT count(*) FROM history_message)"
             " + (SELECT count(*) FROM history_new_message),"
             " (SELECT count(*) FROM history_attempt)"
             " + (SELECT count(*) FROM history_new_attempt);")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    work = tempfile.mkdtemp(prefix="ferry-shrink.")
    os.chmod(work, 0o755)
    port = relay.free_port()
    ferry = relay.Ferry(work, port)
    sink = None
    try:
        ferry.start()
        db = os.path.join(ferry.spool, "queue", "queue.db")
        relay.smtp_source(ferry.port, n, 10, 1024)
        time.sleep(5)   # every message has had its first attempt
        wal = db + "-wal"
        peak = os.path.getsize(db) + (os.path.getsize(wal)
                                      if os.path.exists(wal) else 0)
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody",
                                 "127.0.0.1:%d" % port, "512"])
        subprocess.run([os.path.join(relay.TOP, "src", "ferryctl"), "-f",
                        ferry.conf, "queue", "flush"], check=True,
                       stdout=subprocess.DEVNULL)
        relay.drain(ferry.queue_size)
        drained = os.path.getsize(db)
        t0, last = time.monotonic(), -1
        while time.monotonic() - t0 < 300:
            time.sleep(1)
            size = os.path.getsize(db)
            if size == last:
                break
            last = size
        settled = time.monotonic() - t0
        print("%d messages: queue.db (and WAL) %d bytes queued, %d at the "
              "end of the drain, %d once it stopped shrinking (%.0f s)"
              % (n, peak, drained, last, settled))
        out = subprocess.run(["sqlite3", "file:%s?mode=ro" % db, BREAKDOWN],
                             capture_output=True, text=True, check=True)
        lines = out.stdout.split()
        for line in lines[:-2]:
            name, size = line.rsplit("|", 1)
            print("  %-32s %10d bytes" % (name, int(size)))
        print("  free list: %s pages; history: %s messages, %s attempts"
              % ((lines[-2],) + tuple(lines[-1].split("|"))))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
        ferry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
