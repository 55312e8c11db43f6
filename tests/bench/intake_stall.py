#!/usr/bin/env python3
"""intake_stall.py - how long intake stops while something else runs.

    intake_stall.py PORT [GAP] -- COMMAND [ARG...]

Sends small messages one after another (GAP seconds apart, default 0)
over one SMTP session to
127.0.0.1:PORT while COMMAND runs (and for a moment before and after),
and prints, for the messages sent while it ran: how many, the median
time from the end of DATA to the 250, and the longest (the longest
stall of intake, plus one message's own time), in milliseconds, and
how long COMMAND took.  COMMAND's output is thrown away.
"""
import smtplib
import subprocess
import sys
import threading
import time


def main():
    args = sys.argv[1:]
    if "--" not in args or args.index("--") not in (1, 2) or \
            args.index("--") == len(args) - 1:
        sys.exit(__doc__)
    k = args.index("--")
    port = int(args[0])
    gap = float(args[1]) if k == 2 else 0.0
    cmd = args[k + 1:]
    stop = threading.Event()
    during = threading.Event()
    seen = []                            # (ms, sent while COMMAND ran)

    def sender():
        s = smtplib.SMTP("127.0.0.1", port, timeout=60)
        s.ehlo("stall.example")
        i = 0
        while not stop.is_set():
            s.mail("sender@example.org")
            s.rcpt("rcpt@example.com")
            body = b"Subject: stall %d\r\n\r\nx\r\n" % i
            s.putcmd("data")
            s.getreply()
            s.send(body + b".\r\n")
            t0 = time.monotonic()
            code, _ = s.getreply()
            ms = (time.monotonic() - t0) * 1000.0
            if code != 250:
                sys.exit("intake_stall: DATA answered %d" % code)
            seen.append((ms, during.is_set()))
            i += 1
            if gap > 0:
                stop.wait(gap)
        s.quit()

    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.5)
    during.set()
    t0 = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    took = time.monotonic() - t0
    during.clear()
    time.sleep(0.3)
    stop.set()
    t.join()
    lat = sorted(ms for ms, d in seen if d)
    if not lat:
        print("0 messages, median 0 ms, longest 0 ms, command %.3f s" % took)
        return
    print("%d messages, median %.1f ms, longest %.1f ms, command %.3f s"
          % (len(lat), lat[len(lat) // 2], lat[-1], took))


if __name__ == "__main__":
    main()
