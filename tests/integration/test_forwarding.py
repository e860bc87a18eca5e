"""Heads as they cross the proxy: byte-exact forwarding, X-Forwarded-*/Via, hop-by-hop
fields both ways (docs/upgrades.md "Hop-by-hop fields"), pipelining, and the one
upgrade rule of this stage: every Upgrade is stripped, and a 101 to it is a 502."""

import unittest

from harness import (FWD, Client, DemoBackend, Proxy, ScriptedBackend, http_request,
                     main, make_config, ok_response, serve_forever)



def strip_connection_close(head):
    """The proxy may ask the upstream to close ("Connection: close" as the last field,
    serialize.hpp); everything else must be exact."""
    suffix = b"Connection: close\r\n\r\n"
    return head[:-len(suffix)] + b"\r\n" if head.endswith(suffix) else head


class Forwarding(unittest.TestCase):
    def forwarded(self, request, **config):
        """Sends `request`, returns (bytes the backend received, client response)."""
        with ScriptedBackend() as be, Proxy(make_config([be.address], **config)) as px:
            resp = http_request(px.port, request)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(be.accepted, 1)
            got = be.connections[0].requests[0]
            px.assert_idle()
        return got, resp

    def test_request_forwarded_byte_exact(self):
        got, resp = self.forwarded(
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nFoo: bar\r\nfoo: Baz\r\n"
            b"X-Dup: 1\r\nX-Dup: 2\r\n\r\n")
        self.assertEqual(got, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nFoo: bar\r\nfoo: Baz\r\n"
                              b"X-Dup: 1\r\nX-Dup: 2\r\n" + FWD + b"\r\n")
        self.assertEqual(resp.raw, ok_response())

    def test_existing_x_forwarded_for_gets_client_appended_to_last_line(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nA: 1\r\n\r\n")
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n"
                              b"X-Forwarded-For: 10.0.0.2, 10.0.0.3, 127.0.0.1\r\nA: 1\r\n"
                              b"X-Forwarded-Proto: http\r\n\r\n")

    def test_client_x_forwarded_proto_is_replaced(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nA: 1\r\n\r\n")
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD + b"\r\n")

    def test_via_only(self):
        cfg = {"forwarding": {"x_forwarded_for": False, "x_forwarded_proto": False,
                              "via": True}}
        got, _ = self.forwarded(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n", **cfg)
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nVia: 1.1 switchyard\r\n\r\n")
        got, _ = self.forwarded(b"GET / HTTP/1.1\r\nHost: x\r\nVia: 1.0 fred\r\nA: 1\r\n\r\n",
                                **cfg)
        self.assertEqual(got, b"GET / HTTP/1.1\r\nHost: x\r\nVia: 1.0 fred, 1.1 switchyard\r\n"
                              b"A: 1\r\n\r\n")

    def test_nothing_added_when_all_forwarding_is_off(self):
        cfg = {"forwarding": {"x_forwarded_for": False, "x_forwarded_proto": False,
                              "via": False}}
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nA: 1\r\n\r\n"
        got, _ = self.forwarded(request, **cfg)
        self.assertEqual(got, request)

    def test_hop_by_hop_request_fields_are_not_forwarded(self):
        got, _ = self.forwarded(
            b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n"
            b"Keep-Alive: timeout=5\r\nA: 1\r\nProxy-Connection: keep-alive\r\nTE: deflate\r\n"
            b"Upgrade: foo/1\r\nProxy-Authorization: Basic abc\r\n"
            b"Proxy-Authenticate: Basic\r\nB: 2\r\n\r\n")
        self.assertEqual(strip_connection_close(got),
                         b"GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n" + FWD + b"\r\n")

    def test_connection_tokens_are_case_insensitive_with_odd_whitespace(self):
        got, _ = self.forwarded(
            b"GET / HTTP/1.1\r\nHost: x\r\nconnection: ,  x-one ,KEEP-ALIVE,,\r\n"
            b"X-One: 1\r\nCONNECTION: X-Two\r\nx-two: 2\r\nX-Three: 3\r\n\r\n")
        self.assertEqual(strip_connection_close(got),
                         b"GET / HTTP/1.1\r\nHost: x\r\nX-Three: 3\r\n" + FWD + b"\r\n")

    def test_hop_by_hop_response_fields_are_not_forwarded(self):
        response = (b"HTTP/1.1 200 OK\r\nB: 1\r\nConnection: X-Internal\r\nX-Internal: no\r\n"
                    b"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: foo\r\n"
                    b"TE: x\r\nProxy-Connection: keep-alive\r\nb: 2\r\nContent-Length: 2\r\n"
                    b"Z: 3\r\nZ: 4\r\n\r\nok")
        with ScriptedBackend(serve_forever(lambda c, r: response)) as be, \
                Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(resp.raw, b"HTTP/1.1 200 OK\r\nB: 1\r\nb: 2\r\n"
                                           b"Content-Length: 2\r\nZ: 3\r\nZ: 4\r\n\r\nok")
            px.assert_idle()

    def test_response_status_line_is_http11_with_reason(self):
        responses = iter([b"HTTP/1.0 404 Not Found\r\nContent-Length: 1\r\nX: y\r\n\r\nn",
                          b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"])
        with ScriptedBackend(serve_forever(lambda c, r: next(responses))) as be, \
                Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(resp.raw.startswith(b"HTTP/1.1 404 Not Found\r\n"), resp.raw)
                self.assertEqual(resp.fields[:2], [("Content-Length", "1"), ("X", "y")])
                self.assertEqual(resp.body, b"n")
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(resp.raw.startswith(b"HTTP/1.1 201 Created\r\n"), resp.raw)
            px.assert_idle()

    def test_pipelined_requests_answered_in_order(self):
        def respond(conn, req):
            path = req.split(b" ")[1]
            return ok_response(b"reply to " + path)
        with ScriptedBackend(serve_forever(respond)) as be, \
                Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                c.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                       b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
                for path in (b"/1", b"/2", b"/3"):
                    resp = c.read_response()
                    self.assertEqual((resp.status, resp.body), (200, b"reply to " + path))
            paths = [r.split(b" ")[1] for conn in be.connections for r in conn.requests]
            self.assertEqual(sorted(paths), [b"/1", b"/2", b"/3"])
            px.assert_idle()

    def test_demo_backend_sees_forwarded_request(self):
        with DemoBackend() as demo, Proxy(make_config([demo.address])) as px:
            resp = http_request(px.port, b"GET /hello?x=1 HTTP/1.1\r\nHost: demo\r\nA: b\r\n\r\n")
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.body, b"GET /hello?x=1 HTTP/1.1\nHost: demo\nA: b\n"
                                        b"X-Forwarded-For: 127.0.0.1\nX-Forwarded-Proto: http\n\n")
            px.assert_idle()


class StrippedUpgrades(unittest.TestCase):
    """No route allows an upgrade yet: every offer is stripped (on_disallowed: strip)."""

    UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

    def test_upgrade_and_connection_do_not_reach_the_backend(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(self.UPGRADE)
                self.assertEqual(resp.status, 200)
                self.assertIsNone(resp.header("Upgrade"))
                # The connection stays in HTTP mode: the next bytes are a request.
                resp = c.request(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(resp.status, 200)
            requests = [r for conn in be.connections for r in conn.requests]
            self.assertEqual(strip_connection_close(requests[0]),
                             b"GET /chat HTTP/1.1\r\nHost: x\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             b"Sec-WebSocket-Version: 13\r\n" + FWD + b"\r\n")
            self.assertTrue(requests[1].startswith(b"GET /next HTTP/1.1\r\n"))
            px.assert_idle()

    def test_bytes_after_a_stripped_upgrade_are_parsed_as_http(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                c.send(self.UPGRADE + b"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(c.read_response().status, 200)
                self.assertEqual(c.read_response().status, 200)
            paths = [r.split(b" ")[1] for conn in be.connections for r in conn.requests]
            self.assertEqual(paths, [b"/chat", b"/behind"])
            px.assert_idle()

    def check_101_is_502(self, request):
        switching = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        closed = []

        def script(conn):
            conn.recv_request()
            conn.send(switching + b"tunnel bytes")
            closed.append(conn.wait_closed())

        with ScriptedBackend(script) as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(request)
                self.assertEqual(resp.status, 502, resp)
                self.assertNotIn(b"tunnel bytes", resp.raw)
                self.assertTrue(c.is_closed(), "client connection left open after 502")
            be.wait_accepted(1)
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(closed, [True], "upstream connection left open after 101")
            px.assert_idle()

    def test_101_to_a_stripped_upgrade_is_502(self):
        self.check_101_is_502(self.UPGRADE)

    def test_unsolicited_101_is_502(self):
        self.check_101_is_502(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    def test_http10_upgrade_is_ignored(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            resp = http_request(px.port, b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                                         b"Connection: Upgrade\r\n\r\n")
            self.assertEqual(resp.status, 200)
            got = be.connections[0].requests[0]
            self.assertNotIn(b"upgrade:", got.lower())
            self.assertNotIn(b"websocket", got.lower())
            px.assert_idle()


if __name__ == "__main__":
    main()
