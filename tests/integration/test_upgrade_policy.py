"""The request side of upgrade mediation (docs/upgrades.md "Request side: the policy
decision", "Everything else"): what an upgrade offer becomes upstream under a route's
upgrade.allow / on_disallowed / require, the WebSocket and h2c profiles, and
match.upgrade routing. Backends here never switch; see test_upgrade_switch.py."""

import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, main, make_config, ok_response,
                     parse_fields, serve_forever)
from upgrade_support import (FWD, WS_KEY, finish, route, strip_connection_close,
                             upgrade_config, ws_request)

H2_SETTINGS = b"AAMAAABkAARAAAAAAAIAAAAA"


def upgrade_tail(offer):
    return b"Upgrade: " + offer + b"\r\nConnection: Upgrade\r\n\r\n"


class Policy(unittest.TestCase):
    def forwarded(self, request, allow=None, on_disallowed=None, require=None, routes=None):
        """Sends `request` through a proxy with the given policy; the backend answers
        200. Returns (bytes the backend received for it, client response)."""
        with ScriptedBackend() as be:
            cfg = (make_config([be.address], routes=routes) if routes is not None
                   else upgrade_config([be.address], allow, on_disallowed, require))
            with Proxy(cfg) as px:
                with Client(px.port) as c:
                    resp = c.request(request)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(be.accepted, 1)
                got = be.connections[0].requests[0]
                finish(px)
        return got, resp

    def assert_plain(self, got, expected):
        """`got` is an ordinary request: exactly `expected` (modulo a trailing
        Connection: close the proxy may add), no Upgrade, no upgrade token."""
        self.assertEqual(strip_connection_close(got), expected)
        fields = parse_fields(got)
        self.assertNotIn("upgrade", [n.lower() for n, _ in fields])
        for n, v in fields:
            if n.lower() == "connection":
                self.assertNotIn("upgrade", v.lower())

    # ---- forward

    def test_forward_filters_offer_to_allowed(self):
        # The contract's example: offer example/1, foo/2 with only foo/2 allowed.
        got, _ = self.forwarded(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: example/1, foo/2\r\n"
            b"Connection: Upgrade\r\nA: 1\r\n\r\n", allow=["foo/2"])
        self.assertEqual(got, b"GET /chat HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + upgrade_tail(b"foo/2"))

    def test_forward_keeps_client_order_not_allow_list_order(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            b"Upgrade: c/1, nope, a, b/2\r\nB: 2\r\n\r\n", allow=["a", "b", "c"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nB: 2\r\n" + FWD
                         + upgrade_tail(b"c/1, a, b/2"))

    def test_versions(self):
        # foo/2 allows exactly foo/2; a bare name allows every version of it.
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/1, bar/7, foo/2, foo/3, bar\r\n"
            b"Connection: Upgrade\r\n\r\n", allow=["foo/2", "bar"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\n" + FWD
                         + upgrade_tail(b"bar/7, foo/2, bar"))

    def test_offer_of_only_a_disallowed_version_is_stripped(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/1\r\nConnection: Upgrade\r\n"
            b"A: 1\r\n\r\n", allow=["foo/2"])
        self.assert_plain(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD + b"\r\n")

    def test_names_and_connection_tokens_are_case_insensitive(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nupgrade:  fOO/2 ,Other/1\r\n"
            b"CONNECTION: keep-alive ,  UPGRADE\r\nA: 1\r\n\r\n", allow=["Foo", "BAZ"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + upgrade_tail(b"fOO/2"))

    def test_version_compare_is_case_insensitive(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: Proto/V2\r\nConnection: upgrade\r\n\r\n",
            allow=["proto/v2"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\n" + FWD
                         + upgrade_tail(b"Proto/V2"))

    def test_upgrade_split_over_two_lines(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: example/1\r\nConnection: Upgrade\r\n"
            b"A: 1\r\nUpgrade: foo/2, bar\r\n\r\n", allow=["foo", "bar", "example/2"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + upgrade_tail(b"foo/2, bar"))

    def test_upgrade_token_in_a_second_connection_line(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nUpgrade: foo/2\r\n"
            b"A: 1\r\nConnection: X-Hop, Upgrade\r\nX-Hop: h\r\n\r\n", allow=["foo"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + upgrade_tail(b"foo/2"))

    def test_empty_list_elements_are_ignored(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: , foo/2,, ,bar,\r\n"
            b"Connection: ,, upgrade ,\r\n\r\n", allow=["foo", "bar"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\n" + FWD
                         + upgrade_tail(b"foo/2, bar"))

    # ---- not an upgrade request: stripped whatever it carries

    def test_http10_upgrade_is_stripped(self):
        got, _ = self.forwarded(
            b"GET /old HTTP/1.0\r\nHost: x\r\nUpgrade: foo/2\r\nConnection: Upgrade\r\n"
            b"A: 1\r\n\r\n", allow=["foo"])
        # The upstream request line's version is the proxy's business; the fields are not.
        line, _, rest = got.partition(b"\r\n")
        self.assertTrue(line.startswith(b"GET /old HTTP/1."), line)
        fields = [(n, v) for n, v in parse_fields(got)
                  if not (n.lower() == "connection" and v.lower() in ("close", "keep-alive"))]
        self.assertEqual(fields, [("Host", "x"), ("A", "1"), ("X-Forwarded-For", "127.0.0.1"),
                                  ("X-Forwarded-Proto", "http")])

    def test_upgrade_without_connection_token_is_stripped(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/2\r\nConnection: keep-alive\r\n"
            b"A: 1\r\n\r\n", allow=["foo"])
        self.assert_plain(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD + b"\r\n")

    def test_upgrade_without_any_connection_field_is_stripped(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/2\r\nA: 1\r\n\r\n", allow=["foo"])
        self.assert_plain(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD + b"\r\n")

    # ---- strip

    def test_strip_is_the_default(self):
        request = (b"GET /s HTTP/1.1\r\nHost: x\r\nUpgrade: bar/1, websocket\r\n"
                   b"Connection: Upgrade, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: 5\r\n"
                   b"A: 1\r\nSec-WebSocket-Key: " + WS_KEY + b"\r\n\r\n")
        expected = (b"GET /s HTTP/1.1\r\nHost: x\r\nA: 1\r\nSec-WebSocket-Key: " + WS_KEY
                    + b"\r\n" + FWD + b"\r\n")
        for allow, on_disallowed in ((["foo"], None), (["foo"], "strip"), (None, None)):
            with self.subTest(allow=allow, on_disallowed=on_disallowed):
                got, resp = self.forwarded(request, allow=allow, on_disallowed=on_disallowed)
                self.assert_plain(got, expected)
                self.assertEqual(resp.raw, ok_response())

    def test_stripped_connection_stays_http(self):
        with ScriptedBackend() as be, \
                Proxy(upgrade_config([be.address], allow=["foo"])) as px:
            with Client(px.port) as c:
                c.send(b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: bar\r\nConnection: Upgrade\r\n"
                       b"\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(c.read_response().raw, ok_response())
                self.assertEqual(c.read_response().raw, ok_response())
            paths = [r.split(b" ")[1] for conn in be.connections for r in conn.requests]
            self.assertEqual(paths, [b"/a", b"/b"])
            finish(px)

    # ---- reject

    def test_reject_answers_403_and_closes(self):
        with ScriptedBackend() as be, \
                Proxy(upgrade_config([be.address], allow=["foo"],
                                     on_disallowed="reject")) as px:
            with Client(px.port) as c:
                c.send(b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: bar/1, baz\r\n"
                       b"Connection: Upgrade\r\n\r\n"
                       b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
                resp = c.read_response()
                self.assertEqual(resp.status_line, "HTTP/1.1 403 Forbidden", resp)
                self.assertEqual(resp.header("Connection"), "close", resp)
                self.assertIn(b"bar/1", resp.body)
                self.assertIn(b"baz", resp.body)
                # The optimistic request behind it is never parsed: no second response.
                rest = c.read_all(3.0)
                self.assertEqual(rest, b"", "bytes after the 403")
            time.sleep(0.2)
            self.assertEqual(be.accepted, 0, "backend saw a connection")
            finish(px)

    def test_reject_does_not_touch_allowed_or_plain_requests(self):
        with ScriptedBackend() as be, \
                Proxy(upgrade_config([be.address], allow=["foo"],
                                     on_disallowed="reject")) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: bar, foo\r\n"
                       b"Connection: Upgrade\r\n\r\n")
                self.assertEqual(c.read_response().status, 200)
            reqs = [r for conn in be.connections for r in conn.requests]
            self.assertEqual(len(reqs), 2)
            self.assertTrue(reqs[1].endswith(FWD + upgrade_tail(b"foo")), reqs[1])
            finish(px)

    # ---- require

    def test_require_answers_426_with_allow_list(self):
        with ScriptedBackend() as be, \
                Proxy(upgrade_config([be.address], allow=["foo/2", "bar"],
                                     require=True)) as px:
            with Client(px.port) as c:
                for request in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/1, baz\r\n"
                                b"Connection: Upgrade\r\n\r\n",
                                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/2\r\n\r\n"):
                    with self.subTest(request=request):
                        resp = c.request(request)  # same connection: it stays open
                        self.assertEqual(resp.status_line, "HTTP/1.1 426 Upgrade Required",
                                         resp)
                        self.assertEqual(resp.headers("Upgrade"), ["foo/2, bar"], resp)
                        self.assertEqual(resp.header("Connection"), "Upgrade", resp)
                time.sleep(0.2)
                self.assertEqual(be.accepted, 0, "backend saw a connection")
                # An allowed offer goes through.
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: baz, bar/3\r\n"
                                 b"Connection: upgrade\r\n\r\n")
                self.assertEqual(resp.status, 200, resp)
            self.assertTrue(be.connections[0].requests[0].endswith(FWD + upgrade_tail(b"bar/3")))
            finish(px)

    def test_reject_wins_over_require_for_disallowed_offer(self):
        with ScriptedBackend() as be, \
                Proxy(upgrade_config([be.address], allow=["foo"], on_disallowed="reject",
                                     require=True)) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: bar\r\n"
                                 b"Connection: Upgrade\r\n\r\n")
                self.assertEqual(resp.status, 403, resp)
                self.assertEqual(resp.header("Connection"), "close", resp)
                self.assertTrue(c.is_closed())
            with Client(px.port) as c:  # no offer at all: require's 426
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(resp.status, 426, resp)
                self.assertEqual(resp.header("Upgrade"), "foo")
            self.assertEqual(be.accepted, 0)
            finish(px)

    # ---- "*" and h2c

    def test_star_allows_anything_but_h2c(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo/2\r\nConnection: Upgrade\r\n\r\n",
            allow=["*"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\n" + FWD + upgrade_tail(b"foo/2"))
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + H2_SETTINGS + b"\r\nA: 1\r\n\r\n",
            allow=["*"])
        self.assert_plain(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD + b"\r\n")
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: H2C, foo/2\r\nHTTP2-Settings: " + H2_SETTINGS + b"\r\nA: 1\r\n\r\n",
            allow=["*"])
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + upgrade_tail(b"foo/2"))

    def test_h2c_allowed_with_one_settings_field(self):
        got, _ = self.forwarded(
            b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + H2_SETTINGS + b"\r\nA: 1\r\n\r\n",
            allow=["h2c"])
        self.assertEqual(got, b"GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + b"HTTP2-Settings: " + H2_SETTINGS + b"\r\nUpgrade: h2c\r\n"
                         b"Connection: Upgrade, HTTP2-Settings\r\n\r\n")

    def test_h2c_with_two_or_no_settings_fields_is_dropped(self):
        two = (b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: " + H2_SETTINGS + b"\r\nA: 1\r\n"
               b"HTTP2-Settings: " + H2_SETTINGS + b"\r\n\r\n")
        none = (b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: h2c\r\nA: 1\r\n\r\n")
        for request in (two, none):
            with self.subTest(request=request):
                got, _ = self.forwarded(request, allow=["h2c", "foo"])
                self.assert_plain(got, b"GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                                  + b"\r\n")
        # h2c dropped from a longer offer: the rest is forwarded, HTTP2-Settings is not.
        got, _ = self.forwarded(two.replace(b"Upgrade: h2c", b"Upgrade: h2c, foo/2"),
                                allow=["h2c", "foo"])
        self.assertEqual(got, b"GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                         + upgrade_tail(b"foo/2"))

    # ---- WebSocket profile

    def profile_status(self, request, allow=("websocket",)):
        """The proxy's own answer to `request` (the backend must see nothing)."""
        with ScriptedBackend() as be, Proxy(upgrade_config([be.address], list(allow))) as px:
            with Client(px.port) as c:
                resp = c.request(request)
            time.sleep(0.1)
            self.assertEqual(be.accepted, 0, f"backend saw {be.all_received()[:300]!r}")
            finish(px)
        return resp

    def test_websocket_bad_method_is_400(self):
        for method in (b"POST", b"PUT"):
            with self.subTest(method=method):
                req = ws_request(method=method, extra=b"Content-Length: 0\r\n")
                self.assertEqual(self.profile_status(req).status, 400)

    def test_websocket_bad_key_is_400(self):
        cases = {
            "missing": ws_request(key=None),
            "15 bytes": ws_request(key=b"AAAAAAAAAAAAAAAAAAAA"),
            "17 bytes": ws_request(key=b"AAAAAAAAAAAAAAAAAAAAAAA="),
            "not base64": ws_request(key=b"!!!!!!!!!!!!!!!!!!!!!!=="),
            "empty": ws_request(key=b""),
            "duplicate": ws_request(extra=b"Sec-WebSocket-Key: " + WS_KEY + b"\r\n"),
        }
        for name, req in cases.items():
            with self.subTest(name):
                resp = self.profile_status(req)
                self.assertEqual(resp.status, 400, resp)

    def test_websocket_other_version_is_426(self):
        for version in (b"8", b"12", b"14"):
            with self.subTest(version=version):
                resp = self.profile_status(ws_request(version=version))
                self.assertEqual(resp.status, 426, resp)
                self.assertEqual(resp.headers("Sec-WebSocket-Version"), ["13"], resp)

    def test_websocket_missing_version_is_refused(self):
        resp = self.profile_status(ws_request(version=None))
        self.assertIn(resp.status, (400, 426), resp)

    def test_websocket_profile_only_applies_when_websocket_is_forwarded(self):
        # websocket is not allowed here: its broken key is none of the proxy's business.
        got, _ = self.forwarded(
            ws_request(key=b"bad", upgrade=b"websocket, foo"), allow=["foo"])
        self.assertEqual(got, b"GET /chat HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: bad\r\n"
                              b"Sec-WebSocket-Version: 13\r\n" + FWD + upgrade_tail(b"foo"))

    def test_connect_is_answered_405_by_the_proxy(self):
        with ScriptedBackend() as be, Proxy(upgrade_config([be.address], ["*"])) as px:
            with Client(px.port) as c:
                resp = c.request(b"CONNECT example.com:443 HTTP/1.1\r\n"
                                 b"Host: example.com:443\r\n\r\n")
                self.assertEqual(resp.status, 405, resp)
            time.sleep(0.1)
            self.assertEqual(be.accepted, 0)
            finish(px)

    # ---- match.upgrade

    def test_match_upgrade_routes_websocket_to_its_own_upstream(self):
        routes = [route(["websocket"], upstream="a", match_upgrade="websocket"),
                  route(upstream="b")]
        a_reply = ok_response(b"from a")
        b_reply = ok_response(b"from b")
        with ScriptedBackend(serve_forever(lambda c, r: a_reply)) as a, \
                ScriptedBackend(serve_forever(lambda c, r: b_reply)) as b, \
                Proxy(make_config([], routes=routes,
                                  upstreams={"a": {"servers": [a.address]},
                                             "b": {"servers": [b.address]}})) as px:
            cases = [
                (ws_request(), b"from a"),
                (ws_request(upgrade=b"foo, WebSocket"), b"from a"),
                (b"GET /chat HTTP/1.1\r\nHost: x\r\n\r\n", b"from b"),
                (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n"
                 b"Connection: Upgrade\r\n\r\n", b"from b"),
                # not upgrade requests, whatever they carry
                (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", b"from b"),
                (b"GET /chat HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + WS_KEY + b"\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n", b"from b"),
            ]
            for request, body in cases:
                with self.subTest(request=request):
                    with Client(px.port) as c:
                        resp = c.request(request)
                    self.assertEqual((resp.status, resp.body), (200, body), resp)
            a_reqs = [r for conn in a.connections for r in conn.requests]
            b_reqs = [r for conn in b.connections for r in conn.requests]
            self.assertEqual(len(a_reqs), 2)
            self.assertEqual(len(b_reqs), 4)
            self.assertTrue(a_reqs[0].endswith(FWD + upgrade_tail(b"websocket")), a_reqs[0])
            self.assertTrue(a_reqs[1].endswith(FWD + upgrade_tail(b"WebSocket")), a_reqs[1])
            for r in b_reqs:
                self.assertNotIn(b"upgrade", r.lower())
            finish(px)


if __name__ == "__main__":
    main()
