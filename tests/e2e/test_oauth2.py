#!/usr/bin/env python3
"""End-to-end: OAuth2 to the upstream.  A route's credentials line
"dest USER oauth2 token_url=... client_id=... refresh_token=..." makes
ferryd start ferry-token, which gets access tokens from a local HTTPS
token endpoint (Python http.server + ssl, with a CA made by the test and
passed by the line's ca_file) with the refresh-token grant; the agents
AUTH to the test smarthost with XOAUTH2 or OAUTHBEARER (RFC 7628) and the
exact SASL strings are checked.  Covered: both mechanisms and the choice
between them, the grant's form fields, expiry and refresh before use,
a rotated refresh token saved in the file (mode 0600) and used next, the
endpoint down (4.7.x deferral, status, then recovery), a revoked token
(400 invalid_grant: deferred, never bounced), a 535 from the smarthost
(one refresh, then the retry delivers), no token in the logs or in
ferryctl's output, and no ferry-token process at all when no route uses
OAuth2.  Needs root."""

import http.server
import json
import os
import pwd
import ssl
import stat
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402
import smarthost as sh  # noqa: E402
from test_delivery import DeliveryCase, SENDER, RCPT, WAIT  # noqa: E402
from test_metrics import MetricsFerry  # noqa: E402

USER = "relay@contoso.test"
CLIENT_ID = "ferry-client-id"
CLIENT_SECRET = "client-secret-XYZ"
SCOPE = "https://outlook.office.com/SMTP.Send offline_access"
REFRESH0 = "1//refresh-token-0.abc_DEF-ghi"
TOKEN = os.path.join(ft.BUILDDIR, "src", "ferry-token")


def read(path):
    with open(path) as f:
        return f.read()


class TokenEndpoint:
    """A token endpoint on https://127.0.0.1:PORT/token.  mode: "ok",
    "error500" or "revoked" (400 invalid_grant); stop() makes it refuse
    connections.  Issues access tokens "ya29.access-N-secret" with
    expires_in, and, for the first `rotate` grants, a new refresh token
    "1//rotated-N-secret" each time.  requests: the form fields of each
    request; on_issue(token) is called for each token issued."""

    def __init__(self, cert, key, expires_in=3600, rotate=0):
        self.mode = "ok"
        self.expires_in = expires_in
        self.rotate = rotate
        self.requests = []
        self.issued = []
        self.on_issue = None
        self.lock = threading.Lock()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.port = sh.free_port()
        self.httpd = None
        self.thread = None

    @property
    def url(self):
        return "https://127.0.0.1:%d/token" % self.port

    def start(self):
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(
                    self.rfile.read(n).decode(), keep_blank_values=True)
                form = {k: v[0] for k, v in form.items()}
                with ep.lock:
                    ep.requests.append(form)
                    mode = ep.mode
                if mode == "error500":
                    self.answer(500, {"error": "server_error"})
                    return
                if mode == "revoked" or \
                        form.get("grant_type") != "refresh_token":
                    self.answer(400, {
                        "error": "invalid_grant",
                        "error_description": "AADSTS70008: The refresh "
                        "token has expired or was revoked."})
                    return
                with ep.lock:
                    n = len(ep.issued) + 1
                    tok = "ya29.access-%d-secret" % n
                    ep.issued.append(tok)
                body = {"token_type": "Bearer", "access_token": tok,
                        "expires_in": ep.expires_in}
                if n <= ep.rotate:
                    body["refresh_token"] = "1//rotated-%d-secret" % n
                if ep.on_issue:
                    ep.on_issue(tok)
                self.answer(200, body)

            def answer(self, code, doc):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1",
                                                      self.port), Handler)
        self.httpd.socket = self.ctx.wrap_socket(self.httpd.socket,
                                                 server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def wait_requests(self, n, timeout=WAIT):
        ok = ft.wait_for(lambda: len(self.requests) >= n, timeout, 0.05)
        if not ok:
            raise AssertionError("token endpoint: %d request(s), not %d"
                                 % (len(self.requests), n))
        return self.requests


class OAuth2Test(DeliveryCase):

    def setUp(self):
        super().setUp()
        if not os.access(TOKEN, os.X_OK):
            self.fail("ferry-token is not built: no %s" % TOKEN)
        self.cert, self.key = self.certs.server("localhost", "127.0.0.1")

    # helpers --------------------------------------------------------------

    def start_ferry(self, **options):
        """Every daemon here serves its metrics too."""
        d = MetricsFerry(**options).start()

        def cleanup():
            self.dump_logs_if_failed(d)
            d.stop()
        self.addCleanup(cleanup)
        return d

    def metrics(self, d):
        """The /metrics text (waiting for the endpoint to answer)."""
        got = []

        def scrape():
            try:
                code, _, body = d.http("GET", "/metrics")
            except OSError:
                return False
            if code == 200:
                got.append(body.decode())
            return code == 200
        self.assertTrue(ft.wait_for(scrape, WAIT, 0.1), "no /metrics")
        return got[-1]

    def metric(self, d, line_start):
        """The value of the sample whose line starts with line_start."""
        for line in self.metrics(d).splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        return None

    def endpoint(self, **kw):
        ep = TokenEndpoint(self.cert, self.key, **kw).start()
        self.addCleanup(ep.stop)
        return ep

    def oauth_smarthost(self, mechs="XOAUTH2 OAUTHBEARER", tokens=None):
        return self.smarthost(cert=self.cert, key=self.key,
                              hostname="localhost",
                              extensions=["PIPELINING", "8BITMIME",
                                          "STARTTLS", "AUTH " + mechs],
                              oauth_tokens=tokens or {},
                              require_auth=True)

    def creds_file(self, ep, refresh=REFRESH0):
        path = os.path.join(self.tmp, "credentials-%s" % self.id()
                            .rsplit(".", 1)[-1])
        with open(path, "w") as f:
            f.write("# test credentials\n"
                    "origin other nope\n"
                    "dest %s oauth2 token_url=%s client_id=%s "
                    "client_secret=%s scope=%s refresh_token=%s "
                    "ca_file=%s\n" % (USER, ep.url, CLIENT_ID, CLIENT_SECRET,
                                      SCOPE.replace(" ", "+"), refresh,
                                      self.certs.ca_cert))
        os.chmod(path, 0o600)
        self.creds_text = read(path)
        return path

    def oauth_ferry(self, s, ep, bounces=None, **delivery):
        path = self.creds_file(ep)
        delivery["credentials_file"] = path
        d = self.ferry_to(["localhost:%d" % s.port], bounces=bounces,
                          delivery=delivery, debug=True,
                          policy={"tls": "verify", "auth": True,
                                  "ca_file": self.certs.ca_cert})
        return d, path

    def follow(self, s, ep):
        """The smarthost accepts the token the endpoint issued last."""
        def issued(tok):
            s.oauth_tokens[USER] = tok
        ep.on_issue = issued

    def no_secrets(self, d, ep, *more):
        """No token, refresh token or client secret in the log, in
        ferryctl status (text and JSON) or in the metrics."""
        secrets = list(ep.issued) + [REFRESH0, CLIENT_SECRET] + list(more)
        secrets += ["1//rotated-%d-secret" % n
                    for n in range(1, len(ep.issued) + 1)]
        outputs = {"log": d.log_text(),
                   "metrics": self.metrics(d),
                   "status": d.ctl("status").stdout,
                   "status --json": d.ctl("status",
                                          json_output=True).stdout}
        for where, text in outputs.items():
            for sec in secrets:
                self.assertNotIn(sec, text, "%s holds a secret" % where)

    def send(self, d):
        return d.send(b"Subject: oauth2\r\n\r\nx\r\n", sender=SENDER,
                      rcpts=[RCPT])

    # mechanisms -----------------------------------------------------------

    def test_xoauth2_exact_string_and_grant_fields(self):
        s = self.oauth_smarthost("PLAIN XOAUTH2")
        ep = self.endpoint()
        self.follow(s, ep)
        d, _ = self.oauth_ferry(s, ep)
        qid = self.send(d)
        (m,) = s.wait_messages(1, WAIT)
        self.assertEqual(m.auth_user, USER)
        att = s.auth_attempts()
        self.assertEqual(len(att), 1, att)
        self.assertEqual(att[0]["mech"], "XOAUTH2")
        self.assertEqual(att[0]["sasl"], "user=%s\x01auth=Bearer "
                         "ya29.access-1-secret\x01\x01" % USER)
        self.assertIsNotNone(att[0]["tls"])
        req = ep.requests[0]
        self.assertEqual(req, {"grant_type": "refresh_token",
                               "refresh_token": REFRESH0,
                               "client_id": CLIENT_ID,
                               "client_secret": CLIENT_SECRET,
                               "scope": SCOPE})
        self.gone(d, qid)
        self.no_secrets(d, ep)

    def test_oauthbearer_preferred_exact_string(self):
        s = self.oauth_smarthost("XOAUTH2 OAUTHBEARER")
        ep = self.endpoint()
        self.follow(s, ep)
        d, _ = self.oauth_ferry(s, ep)
        qid = self.send(d)
        s.wait_messages(1, WAIT)
        (att,) = s.auth_attempts()
        self.assertEqual(att["mech"], "OAUTHBEARER")
        self.assertEqual(att["sasl"], "n,a=%s,\x01host=localhost\x01"
                         "port=%d\x01auth=Bearer ya29.access-1-secret"
                         "\x01\x01" % (USER, s.port))
        self.gone(d, qid)
        self.no_secrets(d, ep)

    # lifetime of tokens ---------------------------------------------------

    def test_expiry_refreshes_before_use(self):
        s = self.oauth_smarthost()
        ep = self.endpoint(expires_in=3)
        self.follow(s, ep)
        d, _ = self.oauth_ferry(s, ep)
        # at 80 % of 3 s: a second and a third token without any mail
        ep.wait_requests(3, WAIT)
        self.assertTrue(all(r["refresh_token"] == REFRESH0
                            for r in ep.requests))
        qid = self.send(d)
        s.wait_messages(1, WAIT)
        (att,) = s.auth_attempts()
        self.assertTrue(att["ok"])
        # the token used is one issued after the first had expired
        used = int(att["token"].split("-")[1])
        self.assertGreaterEqual(used, 3, att["token"])
        self.gone(d, qid)

    def test_rotated_refresh_token_saved_and_used(self):
        s = self.oauth_smarthost()
        # the first grant rotates; the next ones must use that token
        ep = self.endpoint(expires_in=3, rotate=1)
        self.follow(s, ep)
        d, path = self.oauth_ferry(s, ep)
        before = self.creds_text
        ep.wait_requests(3, WAIT)
        reqs = ep.requests
        self.assertEqual(reqs[0]["refresh_token"], REFRESH0)
        self.assertEqual(reqs[1]["refresh_token"], "1//rotated-1-secret")
        self.assertEqual(reqs[2]["refresh_token"], "1//rotated-1-secret")
        ok = ft.wait_for(lambda: "refresh_token=1//rotated-1-secret " in
                         read(path), WAIT, 0.05)
        self.assertTrue(ok, read(path))
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        after = read(path)
        # only that line's refresh token changed
        self.assertEqual(after, before.replace(REFRESH0,
                                               "1//rotated-1-secret"))
        self.assertFalse(os.path.exists(path + ".ferry-new"))
        qid = self.send(d)
        s.wait_messages(1, WAIT)
        self.gone(d, qid)
        self.log_line(d, r"route dest: rotated refresh token saved")

    # failures -------------------------------------------------------------

    def test_endpoint_down_defers_then_recovers(self):
        s = self.oauth_smarthost()
        ep = self.endpoint()
        self.follow(s, ep)
        ep.mode = "error500"
        d, _ = self.oauth_ferry(s, ep)
        qid = self.send(d)
        rows = self.wait_deferred(d, qid, 1)
        self.assertIn("OAuth2 access token for route dest unavailable",
                      rows[0]["last_reply"])
        self.assertIn("HTTP 500", rows[0]["last_reply"])
        self.assertEqual(s.auth_attempts(), [])
        self.log_line(d, r"oauth2: route dest: refreshing the access "
                      r"token failed: HTTP 500")
        st = d.ctl_json("status")
        (o,) = [r for r in st["oauth2"] if r["route"] == "dest"]
        self.assertEqual(o["state"], "failed")
        self.assertIn("HTTP 500", o["reason"])
        self.assertIn("HTTP 500", d.ctl("status").stdout)
        self.assertGreaterEqual(self.metric(
            d, 'ferry_oauth_refresh_total{route="dest",result="failed"}'),
            1)
        self.assertEqual(self.metric(
            d, 'ferry_oauth_token_state{route="dest",state="failed"}'), 1)
        # connection refused is a failure too, with its own reason
        ep.stop()
        self.log_line(d, r"refreshing the access token failed: .*"
                      r"(refused|Failed to connect|Could not connect)")
        ep2 = TokenEndpoint(self.cert, self.key)
        ep2.port = ep.port
        ep2.issued = ep.issued
        self.follow(s, ep2)
        ep2.start()
        self.addCleanup(ep2.stop)
        s.wait_messages(1, 60)
        self.gone(d, qid)
        st = d.ctl_json("status")
        (o,) = [r for r in st["oauth2"] if r["route"] == "dest"]
        self.assertEqual(o["state"], "ok")
        self.assertGreater(o["expires_at"], time.time())
        self.assertEqual(self.metric(
            d, 'ferry_oauth_refresh_total{route="dest",result="ok"}'), 1)
        self.assertEqual(self.metric(
            d, 'ferry_oauth_token_state{route="dest",state="ok"}'), 1)
        self.no_secrets(d, ep2)

    def test_revoked_defers_never_bounces(self):
        b = self.smarthost()
        s = self.oauth_smarthost()
        ep = self.endpoint()
        ep.mode = "revoked"
        d, _ = self.oauth_ferry(s, ep, bounces=b)
        qid = self.send(d)
        rows = self.wait_deferred(d, qid, 2)
        self.assertIn("invalid_grant", rows[0]["last_reply"])
        for a in self.attempts(d, qid):
            self.assertEqual(a["status"], "deferred", a)
        time.sleep(1.0)
        self.assertEqual(b.messages, [])
        self.assertEqual(s.auth_attempts(), [])
        self.assertIsNotNone(d.ctl_json("status"))
        self.no_secrets(d, ep)

    def test_535_refreshes_once_and_retries(self):
        s = self.oauth_smarthost("OAUTHBEARER")
        ep = self.endpoint()
        # the smarthost takes only the second token issued
        s.oauth_tokens[USER] = "ya29.access-2-secret"
        d, _ = self.oauth_ferry(s, ep)
        qid = self.send(d)
        s.wait_messages(1, WAIT)
        att = s.auth_attempts()
        self.assertEqual([a["token"] for a in att],
                         ["ya29.access-1-secret", "ya29.access-2-secret"])
        self.assertFalse(att[0]["ok"])
        # RFC 7628 3.2.3: the client answers the error challenge with ^A
        self.assertEqual(att[0]["after_challenge"], "AQ==")
        self.assertTrue(att[1]["ok"])
        self.assertEqual(len(ep.requests), 2)
        self.gone(d, qid)
        self.log_line(d, r"route dest: the server refused the access "
                      r"token; refreshing it")
        self.no_secrets(d, ep)

    # processes ------------------------------------------------------------

    def test_token_process_only_with_oauth2(self):
        s = self.oauth_smarthost()
        ep = self.endpoint()
        self.follow(s, ep)
        d, _ = self.oauth_ferry(s, ep)
        ep.wait_requests(1, WAIT)
        (pid,) = d.children("ferry-token")
        with open("/proc/%d/status" % pid) as f:
            uids = [line.split()[1:] for line in f
                    if line.startswith("Uid:")][0]
        want = pwd.getpwnam(ft.TOKEN_USER).pw_uid
        self.assertEqual(set(int(u) for u in uids), {want})
        self.assertTrue(os.path.exists(os.path.join(d.spool, "token.sock")))
        # only ferry-token links libcurl
        for prog in ("ferry-deliver", "ferry-queue", "ferry-smtpd",
                     "ferryd"):
            with open(os.path.join(ft.BUILDDIR, "src", prog), "rb") as f:
                self.assertNotIn(b"libcurl.so", f.read(), prog)

        # a relay whose credentials are all passwords runs none
        plain = self.smarthost()
        path = os.path.join(self.tmp, "credentials-plain")
        with open(path, "w") as f:
            f.write("dest relayuser s3cret-pw\n")
        os.chmod(path, 0o600)
        d2 = self.ferry_to(plain, delivery={"credentials_file": path})
        qid = self.send(d2)
        plain.wait_messages(1, WAIT)
        self.gone(d2, qid)
        self.assertEqual(d2.children("ferry-token"), [])
        self.assertFalse(any(c == "ferry-token" for c in d2.seen.values()))
        self.assertFalse(os.path.exists(os.path.join(d2.spool,
                                                     "token.sock")))


if __name__ == "__main__":
    ft.main(need_root=True)
