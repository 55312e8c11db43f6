#!/usr/bin/env python3
"""Runs the installed ferry (called by tests/package/test-deb.sh, as root).

A copy of the installed /etc/ferry/ferry.conf, changed only where a test
must (a free port instead of 25, a smarthost: the test sink on
127.0.0.1), runs /usr/sbin/ferryd in the foreground with the package's
users and spool; a message goes in through /usr/sbin/sendmail (the
alternative, when it is ours) and must reach the sink; the workers must
run as the package's users; SIGHUP reloads; ferryctl answers; SIGTERM
stops everything.  Exit 0 when all of that held."""

import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import smarthost as sh  # noqa: E402

CONF = "/etc/ferry/ferry.conf"
TIMEOUT = 30


def fail(msg, log=None):
    sys.stderr.write("run_installed: FAIL: %s\n" % msg)
    if log:
        sys.stderr.write("---- ferryd log\n%s\n" % log)
    sys.exit(1)


def wait(pred, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            comm = st[st.index("(") + 1:st.rindex(")")]
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            uid = os.stat("/proc/%s" % d).st_uid
        except (OSError, ValueError):
            continue
        if ppid == pid:
            out.append((int(d), comm, pwd.getpwuid(uid).pw_name))
    return out


def main():
    seen = []
    sink = sh.SmartHost().start()
    port = sh.free_port()
    tmp = tempfile.mkdtemp(prefix="ferry-pkg-")
    os.chmod(tmp, 0o755)
    conf = os.path.join(tmp, "ferry.conf")
    logpath = os.path.join(tmp, "ferryd.log")
    with open(CONF) as f:
        text = f.read()
    # the shipped listener, on a free port
    text, n = re.subn(r'(listen "smtp" \{[^}]*?port = )25', r"\g<1>%d" % port,
                      text)
    if n != 1:
        fail("the shipped ferry.conf has no listen \"smtp\" on port 25")
    text += ('\nsmarthost {\n    host = "127.0.0.1"\n    port = %d\n'
             '    tls = "none"\n}\n' % sink.port)
    with open(conf, "w") as f:
        f.write(text)

    r = subprocess.run(["/usr/sbin/ferryd", "-n", "-f", conf],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("ferryd -n on the test copy: %s" % r.stderr)
    log = open(logpath, "w")
    d = subprocess.Popen(["/usr/sbin/ferryd", "-d", "-f", conf],
                         stdout=log, stderr=subprocess.STDOUT)

    def logtext():
        with open(logpath, errors="replace") as f:
            return f.read()
    try:
        if not wait(lambda: "started" in logtext() or d.poll() is not None):
            fail("ferryd did not start", logtext())
        if d.poll() is not None:
            fail("ferryd exited with %s" % d.returncode, logtext())

        # privilege separation with the package's users (delivery
        # agents start when mail is due: none at rest)
        users = wait(lambda: {u for _, _, u in children(d.pid)} >=
                     {"ferry", "ferry-smtpd"} and
                     {u for _, _, u in children(d.pid)})
        if not users:
            fail("children and their users: %r" % children(d.pid), logtext())
        if any(c == "ferry-deliver" for _, c, _ in children(d.pid)):
            fail("a delivery agent runs with no mail to deliver: %r" %
                 children(d.pid), logtext())
        print("run_installed: children run as %s" % ", ".join(sorted(users)))
        seen = children(d.pid)

        sendmail = "/usr/sbin/sendmail"
        if os.path.realpath(sendmail) != "/usr/sbin/ferry-sendmail":
            print("run_installed: %s is another MTA's; using "
                  "ferry-sendmail" % sendmail)
            sendmail = "/usr/sbin/ferry-sendmail"
        msg = (b"From: Package Test <pkg@origin.test>\n"
               b"To: someone@dest.test\nBcc: hidden@dest.test\n"
               b"Subject: installed ferry\n\nhello from the package test\n"
               b".dot line\n")
        r = subprocess.run([sendmail, "-C", conf, "-t", "-i", "-f",
                            "pkg@origin.test"], input=msg,
                           capture_output=True, timeout=TIMEOUT)
        if r.returncode != 0:
            fail("%s exited %d: %s" % (sendmail, r.returncode,
                                       r.stderr.decode(errors="replace")),
                 logtext())
        try:
            t = sink.wait_messages(1, timeout=TIMEOUT)[0]
        except AssertionError as e:
            fail(str(e), logtext())
        if t.sender != "pkg@origin.test" or sorted(t.recipients) != [
                "hidden@dest.test", "someone@dest.test"]:
            fail("envelope at the sink: %r %r" % (t.sender, t.recipients))
        if (b"hello from the package test\r\n.dot line\r\n" not in t.data or
                b"Bcc:" in t.data or b"Message-ID: <" not in t.data):
            fail("message at the sink: %r" % t.data[:2000])
        print("run_installed: message relayed to the sink")
        agents = [(p, u) for p, c, u in children(d.pid)
                  if c == "ferry-deliver"]
        if not agents or any(u != "ferry-deliver" for _, u in agents):
            fail("the delivery agent and its user: %r" % children(d.pid),
                 logtext())
        print("run_installed: the delivery agent runs as ferry-deliver")
        seen += children(d.pid)

        # ferryctl through the control socket, then a reload
        r = subprocess.run(["/usr/sbin/ferryctl", "-f", conf, "status"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        if r.returncode != 0:
            fail("ferryctl status: %s%s" % (r.stdout, r.stderr), logtext())
        d.send_signal(signal.SIGHUP)
        if not wait(lambda: "configuration reloaded" in logtext()):
            fail("no reload after SIGHUP", logtext())
        print("run_installed: ferryctl status and reload work")
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(60)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
                fail("ferryd did not stop on SIGTERM", logtext())
        sink.stop()
    if d.returncode != 0:
        fail("ferryd exited with %d after SIGTERM" % d.returncode, logtext())
    left = [c for c in seen if os.path.exists("/proc/%d" % c[0])]
    if left:
        fail("children left after stop: %r" % left)
    print("run_installed: stopped cleanly")


if __name__ == "__main__":
    main()
