#!/usr/bin/env python3
"""End-to-end: the delivery history.  A message that leaves the queue
(delivered, bounced by a 5xx from the smarthost, expired, or deleted by
an operator) is kept in
the history tables of the queue database; "ferryctl history" finds it by
recipient, recipient domain, sender, status, route and time, as text and
as JSON, newest first; "ferryctl queue show ID" shows it after it left;
with a short history.retention it is pruned, and with retention 0 none
is kept.

Recipients are @dest.test (route "dest" to a test smarthost), senders
@origin.test (route "origin" to a second smarthost that takes the
bounces).  Needs root (the daemon drops privileges)."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402

WAIT = 20.0
SENDER = "sender@origin.test"
BAD_REPLY = "550 5.1.1 <bad@dest.test>: Recipient address rejected"


class HistoryCase(ft.FerryTestCase):

    def smarthost(self, **kw):
        s = sh.SmartHost(**kw).start()
        self.addCleanup(s.stop)
        return s

    @staticmethod
    def route(name, domains, hosts):
        return {"name": name, "domains": list(domains), "hosts": list(hosts),
                "tls": "none"}

    def ferry_to(self, dest, bounces, delivery=None, **options):
        rs = [self.route("dest", ["dest.test"], [dest.address]),
              self.route("origin", ["origin.test"], [bounces.address])]
        d = {"retry_schedule": [1], "connect_timeout": 5,
             "client_command_timeout": 10, "client_data_timeout": 30,
             "max_lifetime": 3600}
        d.update(delivery or {})
        return self.start_ferry(routes=rs, delivery=d, **options)

    def gone(self, ferry, qid, timeout=WAIT):
        ok = ft.wait_for(lambda: ferry.count("message", "qid = ?",
                                             (qid,)) == 0, timeout, 0.1)
        self.assertTrue(ok, "%s still queued" % qid)

    @staticmethod
    def kept(ferry, where="1", args=()):
        """Messages in the history, filed or still staged, counted in one
        statement (the runner may move them between two counts)."""
        rows = ferry.query(
            "SELECT (SELECT count(*) FROM history_message WHERE %s) +"
            " (SELECT count(*) FROM history_new_message WHERE %s) AS n"
            % (where, where), tuple(args) * 2)
        return rows[0]["n"]

    def history(self, ferry, *args):
        doc = ferry.ctl_json("history", *args)
        self.assertTrue(doc.get("ok"), doc)
        return doc["history"]

    def rows_of(self, ferry, qid, *args):
        return [r for r in self.history(ferry, *args) if r["id"] == qid]


class HistoryTest(HistoryCase):

    def test_delivered_and_bounced_with_filters(self):
        s = self.smarthost()
        s.reply_at("rcpt", BAD_REPLY, rcpt="bad@dest.test")
        b = self.smarthost()
        d = self.ferry_to(s, b)
        t0 = int(time.time()) - 1
        qid = d.send(b"Subject: history\r\n\r\nbody\r\n", sender=SENDER,
                     rcpts=["good@dest.test", "bad@dest.test"])
        s.wait_messages(1, WAIT)
        b.wait_messages(1, WAIT)
        self.gone(d, qid)

        rows = {r["recipient"]: r for r in self.rows_of(d, qid)}
        self.assertEqual(sorted(rows), ["bad@dest.test", "good@dest.test"])
        good, bad = rows["good@dest.test"], rows["bad@dest.test"]
        self.assertEqual(good["status"], "sent")
        self.assertEqual(good["dsn"], "2.0.0")
        self.assertEqual(good["sender"], SENDER)
        self.assertEqual(good["client_addr"], "127.0.0.1")
        self.assertGreater(good["size"], 0)
        self.assertGreaterEqual(good["delay"], 0)
        self.assertEqual(good["attempts"], 1)
        self.assertIn("[127.0.0.1]", good["relay"])
        self.assertEqual(bad["status"], "bounced")
        self.assertEqual(bad["dsn"], "5.1.1")
        self.assertIn(BAD_REPLY, bad["reply"])
        self.assertGreaterEqual(good["left_at"], good["received_at"])
        # the body is not kept: nothing in the history holds it
        cols = [r["name"] for t in ("history_message", "history_rcpt",
                                    "history_attempt")
                for r in d.query("SELECT name FROM pragma_table_info(?)",
                                 (t,))]
        self.assertNotIn("chunk", cols)
        self.assertNotIn("body", cols)
        self.assertEqual(d.count("body"), 0)

        # filters: recipient (whole address, any case), domain, sender,
        # status, route (the relay's host), time
        r = self.history(d, "--rcpt", "BAD@dest.test")
        self.assertEqual([(x["id"], x["status"]) for x in r],
                         [(qid, "bounced")])
        self.assertEqual(self.history(d, "--rcpt", "bad@dest"), [])
        self.assertEqual(len(self.rows_of(d, qid, "--rcpt", "@dest.test")), 2)
        self.assertEqual(len(self.rows_of(d, qid, "--sender", SENDER)), 2)
        self.assertEqual(len(self.rows_of(d, qid, "--sender",
                                          "@origin.test")), 2)
        self.assertEqual(self.rows_of(d, qid, "--sender", "x@origin.test"),
                         [])
        self.assertEqual([x["recipient"] for x in
                          self.rows_of(d, qid, "--status", "sent")],
                         ["good@dest.test"])
        self.assertEqual([x["recipient"] for x in
                          self.rows_of(d, qid, "--status", "bounced")],
                         ["bad@dest.test"])
        self.assertEqual(self.rows_of(d, qid, "--status", "expired"), [])
        host = good["relay"].split("[")[0]
        self.assertEqual(len(self.rows_of(d, qid, "--route", host)), 2)
        self.assertEqual(self.rows_of(d, qid, "--route", "elsewhere.test"),
                         [])
        self.assertEqual(len(self.rows_of(d, qid, "--since", str(t0))), 2)
        self.assertEqual(self.rows_of(d, qid, "--until", str(t0)), [])
        self.assertEqual(len(self.rows_of(d, qid, "--since", "1h")), 2)
        self.assertEqual(len(self.rows_of(
            d, qid, "--since", time.strftime("%Y-%m-%d", time.gmtime(t0)))),
            2)
        # the bounce ferry sent to the sender is history too
        r = self.history(d, "--rcpt", SENDER)
        self.assertEqual([x["status"] for x in r], ["sent"])
        self.assertEqual(r[0]["sender"], "")
        # newest first, and --limit
        r = self.history(d)
        self.assertEqual(len(r), 3)
        self.assertEqual(r[0]["recipient"], SENDER)
        lim = d.ctl_json("history", "--limit", "1")
        self.assertEqual(len(lim["history"]), 1)
        self.assertTrue(lim["truncated"])

        # as text
        p = d.ctl("history", "--rcpt", "bad@dest.test")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid, p.stdout)
        self.assertIn("bounced", p.stdout)
        self.assertIn("<bad@dest.test>", p.stdout)
        self.assertIn("5.1.1", p.stdout)
        # bad filters are refused
        p = d.ctl("history", "--status", "lost")
        self.assertEqual(p.returncode, 1)
        self.assertIn("status is sent", p.stderr)
        p = d.ctl("history", "--since", "yesterday")
        self.assertEqual(p.returncode, 2)
        # history's own filters do not go with queue list
        p = d.ctl("queue", "list", "--since", "1d")
        self.assertEqual(p.returncode, 2)
        self.assertIn("go with history", p.stderr)
        p = d.ctl("history", "--state", "hold")
        self.assertEqual(p.returncode, 2)
        self.assertIn("go with queue list", p.stderr)

        # queue show falls back to the history
        doc = d.ctl_json("queue", "show", qid)
        self.assertTrue(doc["ok"], doc)
        m = doc["message"]
        self.assertTrue(m["in_history"])
        self.assertEqual(m["state"], "done")
        self.assertEqual(m["sender"], SENDER)
        st = {x["address"]: x for x in m["recipients"]}
        self.assertEqual(st["good@dest.test"]["state"], "sent")
        self.assertEqual(st["bad@dest.test"]["state"], "bounced")
        self.assertEqual(st["bad@dest.test"]["history"][-1]["status"],
                         "bounced")
        self.assertIn(BAD_REPLY, st["bad@dest.test"]["last_reply"])
        p = d.ctl("queue", "show", qid)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(done)", p.stdout)

    def test_expired_and_deferred(self):
        s = self.smarthost()
        s.reply_at("rcpt", "451 4.3.0 Always later")
        b = self.smarthost()
        d = self.ferry_to(s, b, delivery={"max_lifetime": 60})
        qid = d.send(b"Subject: expire\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["late@dest.test"])
        ok = ft.wait_for(lambda: d.count("attempt") >= 1, WAIT, 0.1)
        self.assertTrue(ok, "no attempt")
        # age the message past its lifetime; the next attempt expires it
        d.stop(remove=False)
        con = d.db()
        try:
            con.execute("UPDATE message SET received_at = received_at - 120"
                        " WHERE qid = ?", (qid,))
            con.commit()
        finally:
            con.close()
        d.start()
        b.wait_messages(1, WAIT)
        self.gone(d, qid)
        r = self.rows_of(d, qid, "--rcpt", "late@dest.test")
        self.assertEqual(len(r), 1)
        self.assertEqual(r[0]["status"], "expired")
        self.assertGreaterEqual(r[0]["deferred"], 1)
        self.assertEqual(self.rows_of(d, qid, "--status", "expired")[0]
                         ["recipient"], "late@dest.test")
        self.assertEqual(len(self.rows_of(d, qid, "--status", "deferred")),
                         1)
        show = d.ctl_json("queue", "show", qid)["message"]
        hist = show["recipients"][0]["history"]
        self.assertEqual(hist[0]["status"], "deferred")
        self.assertEqual(hist[-1]["status"], "expired")


class BigAnswerTest(HistoryCase):

    def test_answer_over_one_piece(self):
        """An answer longer than one CTL_ANSWER piece (64 KiB) reaches
        ferryctl whole: 1000 rows of history."""
        s = self.smarthost()
        b = self.smarthost()
        d = self.ferry_to(s, b)
        # recent rows: older than history.retention (7 days) they would
        # be pruned while the test reads them
        base = time.time() - 3600
        con = d.db()
        try:
            con.execute("BEGIN IMMEDIATE")
            for i in range(1, 1001):
                cur = con.execute(
                    "INSERT INTO history_message (qid, received_at, left_at,"
                    " sender, size, client_addr, client_name, helo,"
                    " protocol) VALUES (?, ?, ?, ?, 100, '127.0.0.1',"
                    " 'unknown', 'h', 'ESMTP')",
                    ("%012X" % i, base + i, base + i + 1, SENDER))
                con.execute(
                    "INSERT INTO history_rcpt (hmsg_id, src_rcpt, left_at,"
                    " qid, sender, sender_domain, address, domain, status,"
                    " deferred, attempts, relay, relay_host, dsn, reply)"
                    " VALUES (?, ?, ?, ?, ?, 'origin.test', 'many@dest.test',"
                    " 'dest.test', 'sent', 0, 1, 'h[127.0.0.1]:25', 'h',"
                    " '2.0.0', ?)",
                    (cur.lastrowid, i, base + i + 1, "%012X" % i, SENDER,
                     "250 2.0.0 " + "x" * 100))
            con.commit()
        finally:
            con.close()
        p = d.ctl("--json", "history", "--rcpt", "many@dest.test",
                  "--limit", "1000")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreater(len(p.stdout), 65536)
        doc = json.loads(p.stdout)
        self.assertEqual(len(doc["history"]), 1000)
        self.assertEqual(doc["history"][0]["id"], "%012X" % 1000)
        self.assertFalse(doc["truncated"])
        p = d.ctl("history", "--rcpt", "many@dest.test", "--limit", "1000")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("-- 1000 row(s)", p.stdout)


class DeleteTest(HistoryCase):

    def test_operator_delete_is_kept(self):
        """"queue delete" of a deferred message: it leaves the queue and
        the history keeps it, its pending recipient as deleted with the
        last reply it had."""
        s = self.smarthost()
        s.reply_at("rcpt", "451 4.3.0 try later")
        b = self.smarthost()
        d = self.ferry_to(s, b, delivery={"retry_schedule": [3600]})
        qid = d.send(b"Subject: delete\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["del@dest.test"])
        ok = ft.wait_for(lambda: d.count("attempt") > 0, WAIT, 0.1)
        self.assertTrue(ok, "no attempt was made")
        doc = d.ctl_json("queue", "delete", qid)
        self.assertTrue(doc.get("ok"), doc)
        self.gone(d, qid)
        rows = self.rows_of(d, qid, "--status", "deleted")
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["recipient"], "del@dest.test")
        self.assertEqual(rows[0]["status"], "deleted")
        self.assertIn("451 4.3.0 try later", rows[0]["reply"])
        self.assertEqual(self.rows_of(d, qid, "--status", "sent"), [])
        # nothing was sent, and no bounce either
        time.sleep(0.5)
        with s.lock, b.lock:
            self.assertEqual((len(s.messages), len(b.messages)), (0, 0))


class RetentionTest(HistoryCase):

    def test_short_retention_is_pruned(self):
        s = self.smarthost()
        b = self.smarthost()
        d = self.ferry_to(s, b, history={"retention": "2s"})
        qid = d.send(b"Subject: prune\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["p@dest.test"])
        s.wait_messages(1, WAIT)
        self.gone(d, qid)
        # kept for a while (filed from the staging table within a
        # second, while the relay is idle)...
        self.assertEqual(self.kept(d, "qid = ?", (qid,)), 1)
        # ...then pruned with its recipients and attempts
        ok = ft.wait_for(lambda: self.kept(d) == 0, 15, 0.2)
        self.assertTrue(ok, "history not pruned")
        self.assertEqual(d.count("history_rcpt"), 0)
        self.assertEqual(d.count("history_attempt"), 0)
        self.assertEqual(self.history(d), [])
        doc = d.ctl_json("queue", "show", qid)
        self.assertFalse(doc["ok"])

    def test_retention_zero_keeps_nothing(self):
        s = self.smarthost()
        b = self.smarthost()
        d = self.ferry_to(s, b, history={"retention": "0"})
        qid = d.send(b"Subject: none\r\n\r\nx\r\n", sender=SENDER,
                     rcpts=["n@dest.test"])
        s.wait_messages(1, WAIT)
        self.gone(d, qid)
        time.sleep(0.5)
        self.assertEqual(d.count("history_message"), 0)
        self.assertEqual(d.count("history_new_message"), 0)
        self.assertEqual(self.history(d), [])


if __name__ == "__main__":
    ft.main(need_root=True)
