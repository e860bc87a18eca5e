"""Every response the proxy generates itself, byte for byte, and what the connection does
next (RFC 9110/9112 MUST-level fields): 400, 403, 404, 405, 408, 426 (both causes), 431,
505, 502, 504, and the proxy's answers to HEAD.

- A 426 always carries `Upgrade` naming the protocol(s) and `Connection: Upgrade`
  (RFC 9110 §15.5.22, §7.8).
- A 405 carries `Allow` (§15.5.6).
- Where the connection cannot safely continue, `Connection: close` and the proxy closes;
  where it can (404, 426), the next request on the same connection is served.
- A HEAD request gets the same head, Content-Length included, and no body (§9.3.2)."""

import unittest

from harness import (Client, Proxy, ScriptedBackend, dead_port, hang, main, make_config,
                     ok_response, serve_forever)
from upgrade_support import route, ws_request

TEXT = b"Content-Type: text/plain; charset=utf-8\r\n"


def head(status_line, body, fields=b"", close=False):
    """The exact bytes of a proxy response: status line, Content-Type, Content-Length,
    extra fields, Connection: close, empty line, body."""
    return (b"HTTP/1.1 " + status_line + b"\r\n" + TEXT + b"Content-Length: %d\r\n" % len(body)
            + fields + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)


NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


class LocalResponses(unittest.TestCase):
    def assert_closed_after(self, px, request, expected):
        with Client(px.port) as c:
            c.send(request)
            self.assertEqual(c.read_all(), expected)

    def assert_kept_after(self, c, expected):
        """`expected` arrives exactly, then the same connection serves another request."""
        got = b""
        while len(got) < len(expected):
            chunk = c.sock.recv(65536)
            self.assertTrue(chunk, f"closed after {got!r}")
            got += chunk
        self.assertEqual(got, expected)
        self.assertEqual(c.request(NEXT).body, b"next")

    def test_every_locally_generated_status(self):
        routes = [
            route(["websocket"], require=True, path="/required"),
            route(["websocket"], on_disallowed="reject", path="/reject"),
            route(["websocket"], path="/ws"),
            {"match": {"path_prefix": "/dead"}, "upstream": "dead"},
            {"match": {"path_prefix": "/slow"}, "upstream": "slow"},
            {"match": {"path_prefix": "/next"}, "upstream": "app"},
        ]
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"next"))) as be, \
                ScriptedBackend(hang) as slow:
            cfg = make_config([], routes=routes, upstreams={
                "app": {"servers": [be.address]},
                "dead": {"servers": [f"127.0.0.1:{dead_port()}"]},
                "slow": {"servers": [slow.address]},
            }, timeouts={"request_header": "300ms", "upstream_response": "300ms"},
                limits={"max_header_bytes": 1024})
            with Proxy(cfg) as px:
                with self.subTest("400: missing Host"):
                    self.assert_closed_after(px, b"GET /next HTTP/1.1\r\n\r\n",
                                             head(b"400 Bad Request", b"400 Bad Request\n", close=True))
                with self.subTest("400: bad WebSocket key"):
                    self.assert_closed_after(
                        px, ws_request(b"/ws", key=b"short"),
                        head(b"400 Bad Request", b"400 Bad Request: invalid Sec-WebSocket-Key\n", close=True))
                with self.subTest("403: on_disallowed reject"):
                    self.assert_closed_after(
                        px, ws_request(b"/reject", upgrade=b"foo"),
                        head(b"403 Forbidden", b"upgrade refused: foo\n", close=True))
                with self.subTest("404: no route, the connection goes on"), \
                        Client(px.port) as c:
                    c.send(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assert_kept_after(c, head(b"404 Not Found", b"404 Not Found\n"))
                with self.subTest("405: CONNECT, with Allow"):
                    self.assert_closed_after(
                        px, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                        head(b"405 Method Not Allowed", b"405 Method Not Allowed\n",
                             b"Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n", close=True))
                with self.subTest("408: the head does not arrive in time"):
                    self.assert_closed_after(px, b"GET /next HTTP/1.1\r\nHost:",
                                             head(b"408 Request Timeout", b"408 Request Timeout\n", close=True))
                with self.subTest("426: require, the connection goes on"), Client(px.port) as c:
                    c.send(b"GET /required HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assert_kept_after(c, head(b"426 Upgrade Required", b"426 Upgrade Required\n",
                                                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"))
                with self.subTest("426: WebSocket version 8 names websocket too"), Client(px.port) as c:
                    c.send(ws_request(b"/ws", version=b"8"))
                    self.assert_kept_after(c, head(
                        b"426 Upgrade Required", b"426 Upgrade Required: Sec-WebSocket-Version 13\n",
                        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"))
                with self.subTest("426 when the connection cannot go on: one Connection field"):
                    # A request body the proxy did not read: the connection closes.
                    self.assert_closed_after(
                        px, b"POST /required HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                        head(b"426 Upgrade Required", b"426 Upgrade Required\n",
                             b"Upgrade: websocket\r\nConnection: Upgrade, close\r\n"))
                with self.subTest("431: head too large"):
                    self.assert_closed_after(
                        px, b"GET /next HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n",
                        head(b"431 Request Header Fields Too Large",
                             b"431 Request Header Fields Too Large\n", close=True))
                with self.subTest("505: a request line in HTTP/2.0 (not the h2 preface)"):
                    self.assert_closed_after(px, b"GET /next HTTP/2.0\r\nHost: x\r\n\r\n",
                                             head(b"505 HTTP Version Not Supported",
                                                  b"505 HTTP Version Not Supported\n", close=True))
                with self.subTest("502: upstream refuses"):
                    self.assert_closed_after(px, b"GET /dead HTTP/1.1\r\nHost: x\r\n\r\n",
                                             head(b"502 Bad Gateway", b"502 Bad Gateway\n", close=True))
                with self.subTest("504: upstream never answers"):
                    self.assert_closed_after(px, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
                                             head(b"504 Gateway Timeout", b"504 Gateway Timeout\n", close=True))
                px.assert_idle()

    def test_head_requests_get_the_head_without_a_body(self):
        routes = [route(["websocket"], require=True, path="/required"),
                  {"match": {"path_prefix": "/next"}, "upstream": "app"},
                  {"match": {"path_prefix": "/dead"}, "upstream": "dead"}]
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"next"))) as be:
            cfg = make_config([], routes=routes, upstreams={
                "app": {"servers": [be.address]},
                "dead": {"servers": [f"127.0.0.1:{dead_port()}"]}})
            with Proxy(cfg) as px:
                def without_body(status_line, body, fields=b"", close=False):
                    full = head(status_line, body, fields, close)
                    return full[:len(full) - len(body)]

                with self.subTest("404"), Client(px.port) as c:
                    c.send(b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
                    # Nothing after the head: the next response starts right behind it.
                    self.assert_kept_after(c, without_body(b"404 Not Found", b"404 Not Found\n"))
                with self.subTest("426"), Client(px.port) as c:
                    c.send(b"HEAD /required HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assert_kept_after(c, without_body(b"426 Upgrade Required", b"426 Upgrade Required\n",
                                                           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"))
                with self.subTest("502"):
                    self.assert_closed_after(px, b"HEAD /dead HTTP/1.1\r\nHost: x\r\n\r\n",
                                             without_body(b"502 Bad Gateway", b"502 Bad Gateway\n", close=True))
                with self.subTest("admin"), Client(px.admin_port) as c:
                    c.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assertEqual(c.read_all(), without_body(b"200 OK", b"ok\n", close=True))
                px.assert_idle()


if __name__ == "__main__":
    main()
