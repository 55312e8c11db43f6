#!/usr/bin/env python3
"""End-to-end: how a delivery agent reads a server's replies.  Once a
reply was not there when the agent first looked, the connection waits
for the socket before it reads (and now and then reads first again);
whichever way it reads, replies that come in pieces are put together
whole, a reply cut short still times out, and a server that answers at
once again is served as before.

- every reply of the smarthost comes in two pieces 50 ms apart: twelve
  messages sent one after another are delivered byte for byte, and a
  451 given in two pieces is logged with its whole text (dsn=4.3.0);
  then the replies come in one piece again and twelve more go;
- the replies come in pieces, then the rest of one stays away longer
  than client_command_timeout: the agent gives up with "timed out"
  (4.4.2, deferred) and the message goes on the next try.
Needs root (the daemon drops privileges)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from test_delivery import DeliveryCase, WAIT, SENDER  # noqa: E402

RCPT = "rcpt@dest.test"


def message(i):
    return ("Subject: piece %d\r\n\r\nline one of %d\r\nline two\r\n"
            % (i, i)).encode()


class AgentReadsTest(DeliveryCase):

    def send_all(self, d, s, first, n):
        """Sends messages first..first+n-1 one after another and checks
        each arrived whole and was logged as sent."""
        qids = []
        for i in range(first, first + n):
            qids.append(d.send(message(i), sender=SENDER, rcpts=[RCPT]))
        got = s.wait_messages(first + n, WAIT)
        bodies = [m.data for m in got[first:first + n]]
        for i in range(first, first + n):
            self.assertTrue(any(b.endswith(message(i).split(b"\r\n\r\n",
                            1)[1]) for b in bodies),
                            "message %d not delivered whole" % i)
        for qid in qids:
            self.log_line(d, r"%s: to=<%s>, .*status=sent" %
                          (qid, re.escape(RCPT)))
            self.gone(d, qid)

    def test_replies_in_pieces_then_whole(self):
        s = self.smarthost()
        s.reply_pause = 0.05
        d = self.ferry_to(s)
        self.send_all(d, s, 0, 12)
        # a refusal in two pieces: its whole text reaches the log
        s.reply_at("rcpt", "451 4.3.0 come back later, said in pieces",
                   times=1)
        qid = d.send(message(100), sender=SENDER, rcpts=[RCPT])
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*dsn=4\.3\.0, "
                         r"status=deferred \(.*451 4\.3\.0 come back "
                         r"later, said in pieces \(in reply to RCPT TO" % qid)
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*status=sent" % qid)
        self.gone(d, qid)
        # the server is quick again
        s.reply_pause = 0
        self.send_all(d, s, 13, 12)

    def test_reply_cut_short_times_out(self):
        s = self.smarthost()
        s.reply_pause = 0.05
        d = self.ferry_to(s, delivery={"client_command_timeout": 2})
        self.send_all(d, s, 0, 3)
        s.reply_pause = 4.0      # the rest of each reply after the timeout
        qid = d.send(message(50), sender=SENDER, rcpts=[RCPT])
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*dsn=4\.4\.2, "
                         r"status=deferred \(conversation with .* timed "
                         r"out while" % qid, timeout=WAIT)
        s.reply_pause = 0
        self.log_line(d, r"%s: to=<rcpt@dest\.test>, .*status=sent" % qid,
                      timeout=WAIT)
        self.gone(d, qid)


if __name__ == "__main__":
    ft.main(need_root=True)
