#!/usr/bin/env python3
"""End-to-end: sender-dependent routes.  Each precedence rule of
config_route_select (ferry.conf(5)) is proved by the test smarthost the
message reaches: a route matching sender and recipient domain beats one
matching the domain only, which beats a sender-only route, which beats
the default smarthost; an address beats "@domain"; the first in the file
breaks a tie; the null sender matches no senders list; one message with
recipients for two routes is split between them; each route AUTHs with
its own credentials.  Needs root."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
from test_delivery import DeliveryCase, WAIT  # noqa: E402


class SenderRouteTest(DeliveryCase):

    def setUp(self):
        super().setUp()
        names = ("both", "dest", "billing", "pager", "tie1", "tie2",
                 "default")
        self.sh = {n: self.smarthost() for n in names}
        rs = [
            {"name": "both", "senders": ["@billing.origin.test"],
             "domains": ["dest.test"]},
            {"name": "dest", "domains": ["dest.test"]},
            {"name": "billing", "senders": ["@billing.origin.test"]},
            {"name": "pager", "senders": ["pager@billing.origin.test"]},
            {"name": "tie1", "senders": ["@tie.origin.test"]},
            {"name": "tie2", "senders": ["@tie.origin.test"],
             "domains": ["*"]},
        ]
        for r in rs:
            r.update(hosts=[self.sh[r["name"]].address], tls="none")
        self.d = self.start_ferry(
            routes=rs,
            smarthost={"host": "127.0.0.1",
                       "port": self.sh["default"].port, "tls": "none"},
            delivery={"retry_schedule": [1], "connect_timeout": 5,
                      "max_lifetime": 3600})

    def reaches(self, sender, rcpt, name):
        """A message from sender to rcpt arrives at smarthost name, with
        its envelope intact; no other smarthost sees it."""
        before = {n: len(s.messages) for n, s in self.sh.items()}
        qid = self.d.send(b"Subject: route\r\n\r\nbody\r\n", sender=sender,
                          rcpts=[rcpt])
        s = self.sh[name]
        m = s.wait_messages(before[name] + 1, WAIT)[-1]
        self.assertEqual(m.sender, sender)
        self.assertEqual(m.recipients, [rcpt])
        self.gone(self.d, qid)
        for n, other in self.sh.items():
            if n != name:
                self.assertEqual(len(other.messages), before[n],
                                 "%s also reached %s" % (qid, n))

    def test_sender_and_domain_beat_domain_only(self):
        self.reaches("inv@billing.origin.test", "r@dest.test", "both")

    def test_domain_only_without_matching_sender(self):
        self.reaches("a@other.origin.test", "r@dest.test", "dest")

    def test_domain_only_beats_sender_only(self):
        # @tie senders have routes, but none names dest.test
        self.reaches("x@tie.origin.test", "r@dest.test", "dest")

    def test_sender_only_beats_smarthost(self):
        self.reaches("inv@BILLING.origin.test", "r@else.test", "billing")

    def test_smarthost_last(self):
        self.reaches("a@other.origin.test", "r@else.test", "default")

    def test_address_beats_domain(self):
        self.reaches("pager@billing.origin.test", "r@else.test", "pager")

    def test_first_in_file_breaks_tie(self):
        # tie1 (no domains) and tie2 (domains "*") are both sender-only
        self.reaches("x@tie.origin.test", "r@else.test", "tie1")

    def test_one_message_split_between_routes(self):
        qid = self.d.send(b"Subject: split\r\n\r\nbody\r\n",
                          sender="inv@billing.origin.test",
                          rcpts=["r@dest.test", "r@else.test"])
        (a,) = self.sh["both"].wait_messages(1, WAIT)
        (b,) = self.sh["billing"].wait_messages(1, WAIT)
        self.assertEqual(a.recipients, ["r@dest.test"])
        self.assertEqual(b.recipients, ["r@else.test"])
        self.gone(self.d, qid)

    def test_bounce_ignores_senders(self):
        # a bounce to a billing address comes from <>: no senders list
        # matches it, so it takes the default smarthost
        self.sh["billing"].reply_at("rcpt", "550 5.1.1 no such user")
        qid = self.d.send(b"Subject: fail\r\n\r\nbody\r\n",
                          sender="inv@billing.origin.test",
                          rcpts=["nobody@else.test"])
        (m,) = self.sh["default"].wait_messages(1, WAIT)
        self.assertEqual(m.sender, "")
        self.assertEqual(m.recipients, ["inv@billing.origin.test"])
        self.assertIn(qid.encode(), m.data)


class SenderCredentialsTest(DeliveryCase):
    """Each route AUTHs with its own credentials line, also when a
    sender route and the smarthost lead to the same server: a connection
    authenticated for one route is never reused for the other."""

    def test_route_credentials_by_sender(self):
        s = self.smarthost(extensions=["PIPELINING", "8BITMIME",
                                       "AUTH PLAIN LOGIN"],
                           credentials={"billing-user": "pw-1",
                                        "default-user": "pw-2"},
                           require_auth=True)
        path = os.path.join(self.tmp, "credentials-senders")
        with open(path, "w") as f:
            f.write("billing billing-user pw-1\n"
                    "smarthost default-user pw-2\n")
        os.chmod(path, 0o600)
        auth = {"tls": "none", "auth": True, "auth_plaintext": True}
        d = self.start_ferry(
            routes=[dict(name="billing", senders=["@billing.origin.test"],
                         hosts=[s.address], **auth)],
            smarthost=dict(host="127.0.0.1", port=s.port, **auth),
            delivery={"retry_schedule": [1], "connect_timeout": 5,
                      "max_lifetime": 3600, "credentials_file": path})
        want = []
        for i, sender in enumerate(["inv@billing.origin.test",
                                    "a@other.origin.test",
                                    "inv@billing.origin.test"]):
            qid = d.send(b"Subject: auth\r\n\r\nx\r\n", sender=sender,
                         rcpts=["r@else.test"])
            want.append((sender, "billing-user" if "billing" in sender
                         else "default-user"))
            s.wait_messages(i + 1, WAIT)
            self.gone(d, qid)
        self.assertEqual([(m.sender, m.auth_user) for m in s.messages],
                         want)


if __name__ == "__main__":
    ft.main(need_root=True)
