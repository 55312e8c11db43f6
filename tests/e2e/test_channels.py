#!/usr/bin/env python3
"""End-to-end: a compromised SMTP worker lying on its channels.  A
process running as the SMTP user connects to the runner's intake socket
and to ferry-anvil's socket and sends frames its side may not send (a
type outside its table, a frame over the channel's cap, a malformed
request).  Each time the receiver logs that the peer broke the protocol
and drops that connection, and only that one: the runner and anvil keep
running and mail keeps flowing.  The same holds for a delivery agent on
the agent socket and a client on the control socket, which is also
answered in frames when it asks properly.  Needs root (exit 77
otherwise)."""

import json
import os
import pwd
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402

IPC_VERSION = 1


def ipc_types():
    """ipc.h's enum ipc_type as the compiler numbers it (from 1, in
    order), so the frames below follow the header."""
    with open(os.path.join(ft.SRCDIR, "include", "ipc.h")) as f:
        text = f.read()
    body = text[text.index("enum ipc_type {"):text.index("IMSG_TYPE_MAX")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    assert "IMSG_TX_BEGIN = 1," in body
    names = re.findall(r"IMSG_(\w+)", body)
    return {n: i + 1 for i, n in enumerate(names)}


_T = ipc_types()
TX_BEGIN, TX_DATA = _T["TX_BEGIN"], _T["TX_DATA"]
AGENT_HELLO, JOB, RCPT_RESULT = _T["AGENT_HELLO"], _T["JOB"], _T["RCPT_RESULT"]
ANVIL_CONNECT, ANVIL_DISCONNECT, ANVIL_ANSWER = (
    _T["ANVIL_CONNECT"], _T["ANVIL_DISCONNECT"], _T["ANVIL_ANSWER"])
CTL_REQUEST, CTL_ANSWER, CTL_ANSWER_END = (
    _T["CTL_REQUEST"], _T["CTL_ANSWER"], _T["CTL_ANSWER_END"])
QUEUE_STATE = _T["QUEUE_STATE"]
IPC_MAX_PAYLOAD = 1024 * 1024


def talk(path, data):
    """Connects to path, sends data, and returns (what came back before
    the peer closed or went quiet, whether it closed)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(3)
    sock.connect(path)
    sock.sendall(data)
    got, closed = b"", False
    try:
        while True:
            b = sock.recv(4096)
            if not b:
                closed = True
                break
            got += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    sock.close()
    return got, closed


def frame(ftype, payload=b"", plen=None):
    if plen is None:
        plen = len(payload)
    return struct.pack("!IHH", plen, ftype, IPC_VERSION) + payload


def u32(v):
    return struct.pack("!I", v)


def s(text):
    b = text.encode()
    return u32(len(b)) + b


class ChannelTest(ft.FerryTestCase):
    ferry_options = {"hostname": "channels.ferry-test.example"}

    def as_worker(self, sock_name, data):
        """Sends data to a socket in the workers' chroot from a process
        running as the SMTP user; returns (bytes answered, closed?)."""
        return self.as_user(ft.SMTPD_USER,
                            os.path.join(self.ferry.spool, "smtpd",
                                         sock_name), data)

    def as_user(self, user, path, data):
        """Sends data to the socket at path from a process running as
        user; returns (bytes answered, closed?)."""
        pw = pwd.getpwnam(user)
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(rd)
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                got, closed = talk(path, data)
                os.write(wr, (b"C" if closed else b"O") + got)
                os._exit(0)
            except BaseException:
                os._exit(1)
        os.close(wr)
        out = b""
        while True:
            b = os.read(rd, 65536)
            if not b:
                break
            out += b
        os.close(rd)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0, "the worker impersonation failed")
        return out[1:], out[:1] == b"C"

    def after_state(self, answer):
        """What the runner answered after the queue state it sends every
        worker when it accepts its connection (asserted well-formed:
        state 0, ok, and the bytes free above min_free)."""
        head = struct.calcsize("!IHH")
        self.assertGreaterEqual(len(answer), head + 9, answer)
        plen, ftype, version = struct.unpack("!IHH", answer[:head])
        self.assertEqual((plen, ftype, version), (9, QUEUE_STATE,
                                                  IPC_VERSION))
        self.assertEqual(answer[head], 0)
        return answer[head + 9:]

    def mail_still_flows(self):
        qid = self.ferry.send(b"Subject: after\r\n\r\nstill here\r\n")
        self.assertIsNotNone(self.ferry.message(qid))

    def test_intake_type_outside_table(self):
        runner = self.ferry.runners()
        start = self.ferry.log_size()
        answer, closed = self.as_worker("queue.sock",
                                        frame(JOB, u32(1)))
        self.assertEqual(self.after_state(answer), b"")
        self.assertTrue(closed, "the runner kept a lying worker")
        self.assertTrue(self.ferry.wait_log(
            r"SMTP worker on intake connection \d+ broke the protocol: "
            r"JOB is not a message it may send", start=start),
            self.ferry.log_tail())
        self.assertEqual(self.ferry.runners(), runner)
        self.mail_still_flows()

    def test_intake_frame_over_cap(self):
        runner = self.ferry.runners()
        start = self.ferry.log_size()
        # only the header: the runner must not wait for the payload
        answer, closed = self.as_worker(
            "queue.sock", frame(TX_DATA, plen=IPC_MAX_PAYLOAD + 1))
        self.assertTrue(closed)
        self.assertTrue(self.ferry.wait_log(
            r"intake connection \d+ broke the protocol: bad frame header",
            start=start), self.ferry.log_tail())
        self.assertEqual(self.ferry.runners(), runner)
        self.mail_still_flows()

    def test_intake_data_outside_transaction(self):
        start = self.ferry.log_size()
        _, closed = self.as_worker(
            "queue.sock", frame(TX_DATA, u32(0) + s("x")))
        self.assertTrue(closed)
        self.assertTrue(self.ferry.wait_log(
            r"broke the protocol: DATA outside a transaction \(TX_DATA\)",
            start=start), self.ferry.log_tail())

    def test_anvil_answers_then_drops_a_liar(self):
        anvil = self.ferry.anvils()
        self.assertEqual(len(anvil), 1)
        # a well-formed question is answered, the connection kept
        answer, closed = self.as_worker(
            "anvil.sock", frame(ANVIL_CONNECT, u32(7) + s("192.0.2.7")) +
            frame(ANVIL_DISCONNECT, u32(8) + s("192.0.2.7")))
        # seq, ANVIL_OK, no messages granted (a connection)
        self.assertEqual(answer,
                         frame(ANVIL_ANSWER, u32(7) + u32(0) + u32(0)))
        self.assertFalse(closed)
        # a type only the runner's peers send
        start = self.ferry.log_size()
        answer, closed = self.as_worker("anvil.sock",
                                        frame(TX_BEGIN, u32(1)))
        self.assertEqual(answer, b"")
        self.assertTrue(closed)
        self.assertTrue(self.ferry.wait_log(
            r"SMTP worker pid \d+ broke the protocol: TX_BEGIN is not a "
            r"message it may send", start=start), self.ferry.log_tail())
        # over anvil's cap
        start = self.ferry.log_size()
        _, closed = self.as_worker(
            "anvil.sock", frame(ANVIL_CONNECT, u32(1) + s("x" * 3000)))
        self.assertTrue(closed)
        self.assertTrue(self.ferry.wait_log(
            r"SMTP worker pid \d+ broke the protocol: ANVIL_CONNECT of "
            r"\d+ bytes is over the cap", start=start),
            self.ferry.log_tail())
        # a malformed request of an allowed type
        start = self.ferry.log_size()
        _, closed = self.as_worker("anvil.sock",
                                   frame(ANVIL_CONNECT, u32(1)))
        self.assertTrue(closed)
        self.assertTrue(self.ferry.wait_log(
            r"broke the protocol: malformed ANVIL_CONNECT", start=start),
            self.ferry.log_tail())
        time.sleep(0.2)
        self.assertEqual(self.ferry.anvils(), anvil)
        self.mail_still_flows()

    def test_agent_socket_drops_a_liar(self):
        runner = self.ferry.runners()
        agent_sock = os.path.join(self.ferry.spool, "agent.sock")
        # a job is the runner's to send, not an agent's
        start = self.ferry.log_size()
        answer, closed = self.as_user(
            ft.DELIVER_USER, agent_sock,
            frame(AGENT_HELLO, u32(4242)) + frame(JOB, u32(1)))
        self.assertEqual(answer, b"")
        self.assertTrue(closed, "the runner kept a lying agent")
        self.assertTrue(self.ferry.wait_log(
            r"delivery agent \(pid 4242\) broke the protocol: JOB is not "
            r"a message it may send", start=start), self.ferry.log_tail())
        # over the agents' cap: the header alone is enough
        start = self.ferry.log_size()
        _, closed = self.as_user(ft.DELIVER_USER, agent_sock,
                                 frame(RCPT_RESULT, plen=65537))
        self.assertTrue(closed)
        self.assertTrue(self.ferry.wait_log(
            r"delivery agent broke the protocol: RCPT_RESULT of 65537 "
            r"bytes is over the cap", start=start), self.ferry.log_tail())
        self.assertEqual(self.ferry.runners(), runner)
        self.mail_still_flows()

    def test_control_socket_frames(self):
        runner = self.ferry.runners()
        # a request in frames is answered in frames: pieces, then the end
        answer, closed = talk(self.ferry.ctl_socket, frame(
            CTL_REQUEST, u32(3) + s("queue") + s("") + s("list")))
        self.assertTrue(closed)
        doc = b""
        while answer:
            plen, ftype, _ = struct.unpack("!IHH", answer[:8])
            body, answer = answer[8:8 + plen], answer[8 + plen:]
            if ftype == CTL_ANSWER_END:
                self.assertEqual((body, answer), (b"", b""))
                break
            self.assertEqual(ftype, CTL_ANSWER)
            self.assertEqual(struct.unpack("!I", body[:4])[0],
                             len(body) - 4)
            doc += body[4:]
        else:
            self.fail("no CTL_ANSWER_END")
        self.assertIs(json.loads(doc)["ok"], True, doc)
        # the old line protocol is a bad frame header: dropped unanswered
        start = self.ferry.log_size()
        answer, closed = talk(self.ferry.ctl_socket, b"queue list\n")
        self.assertEqual((answer, closed), (b"", True))
        self.assertTrue(self.ferry.wait_log(
            r"ferryctl \(control connection\) broke the protocol: bad "
            r"frame header", start=start), self.ferry.log_tail())
        # an answer is not the client's to send
        start = self.ferry.log_size()
        answer, closed = talk(self.ferry.ctl_socket,
                              frame(CTL_ANSWER, s("{}")))
        self.assertEqual((answer, closed), (b"", True))
        self.assertTrue(self.ferry.wait_log(
            r"broke the protocol: CTL_ANSWER is not a message it may send",
            start=start), self.ferry.log_tail())
        self.assertEqual(self.ferry.runners(), runner)
        p = self.ferry.ctl("status")
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))


if __name__ == "__main__":
    ft.main(need_root=True)
