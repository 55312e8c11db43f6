#!/usr/bin/env python3
"""End-to-end: the master (ferryd) maps neither OpenSSL nor SQLite (nor
libxcrypt): the checks that need them run in ferry-check, which ferryd
runs on the text it read at start and at each reload.

- the running master's /proc/PID/maps names no libcrypto, libssl,
  libsqlite3 or libcrypt, with TLS-free but DKIM-signing configuration,
  before and after a reload (the queue runner's maps do name libsqlite3
  and libcrypto: the check sees libraries where they are);
- a reload's check does not stop the master: while ferry-check is held
  (a DKIM key_file that is a FIFO nobody writes yet), sessions are
  answered, and a drain and an undrain, which the master itself pushes
  to the workers, take effect; then the key turns out bad and the reload
  is refused with the key's error, generation 1 running on;
- a reload asked for while a check runs: the file is read again when
  that check ends and the last file is the one applied.
Needs root (the daemon drops privileges)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

WAIT = 20.0
LIBS = ("libcrypto.so", "libssl.so", "libsqlite3.so", "libcrypt.so")


def genkey(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    path], check=True, capture_output=True)
    os.chmod(path, 0o600)
    return path


def key_section(name, path):
    return ('dkim_key "%s" {\n    domain = "example.org"\n'
            '    selector = "%s"\n    key_file = "%s"\n}\n'
            % (name, name, path))


def mapped(pid):
    """The shared objects pid maps (their file names)."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[5]) for line in f
                if len(line.split()) >= 6}


def mapped_of(names, libs):
    return sorted(n for n in names if any(n.startswith(l) for l in libs))


class ExtraFerry(ft.Ferry):
    """A daemon whose configuration ends with the text self.extra."""

    extra = ""

    def config_text(self, **changes):
        return ft.Ferry.config_text(self, **changes) + self.extra


class MasterCheckTest(ft.FerryTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ferry-check-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.key = genkey(os.path.join(self.tmp, "good.pem"))

    def start(self):
        d = ExtraFerry()
        d.extra = key_section("good", self.key)
        return self.started(d)

    def generation(self, d):
        doc = d.ctl_json("status")
        self.assertTrue(doc["ok"], doc)
        return doc["master"]["generation"]

    def checkers(self, d):
        return d.children("ferry-check")

    def hold_check(self, d, name="held"):
        """Rewrites the file with a key_file that is a FIFO and signals a
        reload: ferry-check then waits in open() until the FIFO is
        written.  Returns the FIFO's path."""
        fifo = os.path.join(self.tmp, name + ".pem")
        os.mkfifo(fifo, 0o600)
        d.extra = key_section("good", self.key) + key_section(name, fifo)
        d.write_config()
        d.signal(signal.SIGHUP)
        self.assertTrue(ft.wait_for(lambda: self.checkers(d), WAIT),
                        "no ferry-check ran for the reload")
        return fifo

    def release(self, fifo, data):
        """Writes data into the FIFO the checker waits on (in a thread:
        open blocks until the reader is there)."""
        def write():
            with open(fifo, "w") as f:
                f.write(data)
        t = threading.Thread(target=write, daemon=True)
        t.start()
        t.join(WAIT)
        self.assertFalse(t.is_alive(), "nobody read the FIFO")

    def test_master_maps_no_crypto_or_sqlite(self):
        d = self.start()
        self.assertEqual(mapped_of(mapped(d.pid), LIBS), [],
                         "the master maps these")
        # where they are used, the same reading finds them
        runner = d.runners()[0]
        self.assertTrue(mapped_of(mapped(runner), ("libsqlite3.so",)),
                        "the runner maps no libsqlite3?")
        self.assertTrue(mapped_of(mapped(runner), ("libcrypto.so",)),
                        "the runner maps no libcrypto?")
        # after a reload (checked by ferry-check), still none
        d.write_config(workers={"min_idle": 3, "max_idle": 5, "max": 10})
        p = d.ctl("reload")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        self.assertEqual(self.generation(d), 2)
        self.assertEqual(mapped_of(mapped(d.pid), LIBS), [],
                         "the master maps these after a reload")
        self.assertEqual(self.checkers(d), [], "ferry-check stays")

    def test_reload_refused_while_the_master_serves(self):
        d = self.start()
        mark = d.log_size()
        fifo = self.hold_check(d)
        # the check runs; the master goes on: sessions are answered ...
        with d.client() as c:
            self.assertReply(c.greeting, 220)
            self.assertReply(c.ehlo(), 250)
            self.assertReply(c.cmd("QUIT"), 221)
        d.send(b"Subject: during the check\r\n\r\nx\r\n")
        # ... and the master pushes a drain to the workers and takes it
        # back (the runner passes it on; the master tells the workers)
        p = d.ctl("drain")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        with d.client() as c:
            self.assertReply(c.greeting, 421, "4.3.2")
        p = d.ctl("undrain")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
        with d.client() as c:
            self.assertReply(c.greeting, 220)
        self.assertTrue(self.checkers(d), "the check ended early")
        self.assertEqual(self.generation(d), 1)
        # the key is bad: the reload is refused, with the key's error
        self.release(fifo, "-----BEGIN PRIVATE KEY-----\nnot a key\n"
                     "-----END PRIVATE KEY-----\n")
        m = d.wait_log(r"reload refused: .*key_file \".*held\.pem\": not a "
                       r"PEM private key.*; keeping the running "
                       r"configuration", WAIT, mark)
        self.assertIsNotNone(m, "no refusal logged")
        self.assertTrue(ft.wait_for(lambda: not self.checkers(d), WAIT))
        self.assertEqual(self.generation(d), 1)
        self.assertNotIn("configuration reloaded", d.log_text()[mark:])
        d.send(b"Subject: after\r\n\r\nx\r\n")
        self.assertEqual(mapped_of(mapped(d.pid), LIBS), [])

    def test_reload_during_a_check_applies_the_last_file(self):
        d = self.start()
        mark = d.log_size()
        fifo = self.hold_check(d, "first")
        held = self.checkers(d)
        # a good file, and a reload asked for while the first check runs
        d.extra = key_section("good", self.key)
        d.write_config(workers={"min_idle": 3, "max_idle": 5, "max": 10})
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"a check of the file is under "
                                        r"way", WAIT, mark))
        self.assertEqual(self.generation(d), 1)
        # the first check ends (it would refuse); the file is read again
        self.release(fifo, "not a key\n")
        self.assertTrue(ft.wait_for(lambda: self.generation(d) == 2, WAIT),
                        "the last file was not applied")
        self.assertNotIn("reload refused", d.log_text()[mark:])
        self.assertEqual(d.log_text()[mark:].count(
            "ferryd[%d]: configuration reloaded" % d.pid), 1)
        self.assertTrue(set(held).isdisjoint(self.checkers(d)))


if __name__ == "__main__":
    ft.main(need_root=True)
