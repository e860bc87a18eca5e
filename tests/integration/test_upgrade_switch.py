"""The response side of upgrade mediation (docs/upgrades.md "Response side: switching,
or not" and "Bytes around the switch"): which 101s are accepted and what the client sees
of them, refused 101s (502, both connections closed), declined upgrades (the connection
stays HTTP, the upstream is not reused), bytes held before the switch and bytes riding
with the 101, request bodies and 100-continue before a switch."""

import socket
import threading
import time
import unittest

from harness import (Client, Proxy, Response, ScriptedBackend, main,
                     ok_response, parse_fields, serve_forever)
from upgrade_support import (FWD, WS_ACCEPT, decode_chunked, finish, recv_exact,
                             switching, upgrade_config, wait_eof, ws_forwarded, ws_accept,
                             ws_request)

FOO = (b"GET /foo HTTP/1.1\r\nHost: x\r\nUpgrade: foo/2\r\nConnection: Upgrade\r\n\r\n")
FOO_FORWARDED = (b"GET /foo HTTP/1.1\r\nHost: x\r\n" + FWD
                 + b"Upgrade: foo/2\r\nConnection: Upgrade\r\n\r\n")


class AcceptedSwitch(unittest.TestCase):
    def test_websocket_101_exact_bytes_then_raw_bytes_both_ways(self):
        seen = {}

        def script(conn):
            seen["request"] = conn.recv_request()
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + WS_ACCEPT + b"\r\n"
                      b"Sec-WebSocket-Protocol: chat\r\nX-Backend: yes\r\n\r\n")
            seen["up"] = recv_exact(conn.sock, len(UP))
            conn.send(DOWN)
            seen["eof"] = wait_eof(conn.sock)

        # HTTP-looking bytes and a WebSocket frame: never parsed, never changed.
        UP = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58GET / HTTP/1.1\r\nHost: y\r\n\r\n"
        DOWN = b"\x81\x05Hello" + bytes(range(256)) + b"HTTP/1.1 200 OK\r\n\r\n"
        with ScriptedBackend(script) as be, \
                Proxy(upgrade_config([be.address], ["websocket"])) as px:
            with Client(px.port) as c:
                c.send(ws_request(extra=b"Sec-WebSocket-Protocol: chat, superchat\r\n"))
                resp = c.read_response()
                self.assertEqual(resp.raw,
                                 b"HTTP/1.1 101 Switching Protocols\r\n"
                                 b"Sec-WebSocket-Accept: " + WS_ACCEPT + b"\r\n"
                                 b"Sec-WebSocket-Protocol: chat\r\nX-Backend: yes\r\n"
                                 b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                c.send(UP)
                self.assertEqual(recv_exact(c.sock, len(DOWN), initial=c.buf), DOWN)
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["request"], ws_forwarded(
                extra=b"Sec-WebSocket-Protocol: chat, superchat\r\n"))
            self.assertEqual(seen["up"], UP)
            self.assertIsNotNone(seen["eof"], "backend never saw the client's close")
            finish(px)

    def test_accept_computed_from_the_actual_key(self):
        key = b"x3JJHMbDL1EzLkh9GBhXDw=="
        seen = {}

        def script(conn):
            seen["request"] = conn.recv_request()
            conn.send(switching(accept=ws_accept(key), reason=b"Web Socket Protocol Handshake"))
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, \
                Proxy(upgrade_config([be.address], ["websocket"])) as px:
            with Client(px.port) as c:
                resp = c.request(ws_request(key=key))
                self.assertEqual(resp.status_line,
                                 "HTTP/1.1 101 Web Socket Protocol Handshake", resp)
                self.assertEqual(resp.header("Sec-WebSocket-Accept"), ws_accept(key).decode())
            for t in list(be._threads):
                t.join(6)
            finish(px)

    def test_101_protocol_compares_case_insensitively(self):
        seen = {}

        def script(conn):
            seen["request"] = conn.recv_request()
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: FOO/2\r\n"
                      b"connection: UPGRADE\r\n\r\nafter")
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                resp = c.request(FOO)
                self.assertEqual(resp.raw, b"HTTP/1.1 101 Switching Protocols\r\n"
                                           b"Upgrade: FOO/2\r\nConnection: Upgrade\r\n\r\n")
                self.assertEqual(recv_exact(c.sock, 5, initial=c.buf), b"after")
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["request"], FOO_FORWARDED)
            finish(px)


    def test_hop_by_hop_fields_of_the_101_are_not_passed(self):
        def script(conn):
            conn.recv_request()
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nKeep-Alive: timeout=5\r\n"
                      b"Upgrade: foo/2\r\nA: 1\r\nConnection: Upgrade, X-Hop\r\n"
                      b"X-Hop: secret\r\nProxy-Connection: keep-alive\r\nB: 2\r\n\r\n")
            wait_eof(conn.sock)

        with ScriptedBackend(script) as be, Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                resp = c.request(FOO)
                self.assertEqual(resp.raw, b"HTTP/1.1 101 Switching Protocols\r\nA: 1\r\n"
                                           b"B: 2\r\nUpgrade: foo/2\r\nConnection: Upgrade\r\n"
                                           b"\r\n")
            for t in list(be._threads):
                t.join(6)
            finish(px)


class RefusedSwitch(unittest.TestCase):
    """Any 101 that does not answer a forwarded offer: 502 to the client, both connections
    closed, the 101 (and whatever followed it) never passed on."""

    AFTER = b"bytes-after-the-101"
    EARLY = b"early-client-bytes"

    def check_refused(self, request, response, allow):
        result = {}

        def script(conn):
            result["request"] = conn.recv_request()
            conn.send(response + self.AFTER)
            result["closed"] = conn.wait_closed()

        with ScriptedBackend(script) as be, \
                Proxy(upgrade_config([be.address], allow)) as px:
            with Client(px.port) as c:
                c.send(request + self.EARLY)  # optimistic bytes: must never go upstream
                try:
                    raw = c.read_all(5.0)
                except socket.timeout:
                    raw = None
                self.assertIsNotNone(raw, "client connection left open")
                self.assertNotIn(b" 101 ", raw)
                self.assertNotIn(self.AFTER, raw)
                self.assertTrue(raw.startswith(b"HTTP/1.1 502 "), raw)
                head = raw[:raw.index(b"\r\n\r\n") + 4]
                self.assertEqual(Response(head, b"", raw).header("Connection"), "close", raw)
            be.wait_accepted(1)
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(result.get("closed"), True, "upstream connection left open")
            self.assertNotIn(self.EARLY, be.all_received())
            self.assertEqual(be.accepted, 1)
            finish(px)
        return result["request"]

    def test_unsolicited_101_to_a_stripped_offer(self):
        self.check_refused(ws_request(), switching(), allow=[])

    def test_unsolicited_101_to_a_plain_request(self):
        self.check_refused(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", switching(), ["websocket"])

    def test_101_with_a_protocol_not_offered(self):
        self.check_refused(FOO, switching(b"bar/1", accept=None), ["foo", "bar"])

    def test_101_with_another_version_of_the_offered_protocol(self):
        self.check_refused(FOO, switching(b"foo/3", accept=None), ["foo"])

    def test_101_with_a_protocol_the_proxy_filtered_out(self):
        req = self.check_refused(
            b"GET /foo HTTP/1.1\r\nHost: x\r\nUpgrade: example/1, foo/2\r\n"
            b"Connection: Upgrade\r\n\r\n", switching(b"example/1", accept=None), ["foo/2"])
        self.assertEqual(req, FOO_FORWARDED)

    def test_101_naming_offered_and_unoffered_protocols(self):
        self.check_refused(FOO, switching(b"foo/2, bar", accept=None), ["foo", "bar"])

    def test_101_without_upgrade(self):
        self.check_refused(FOO, switching(None, accept=None), ["foo"])

    def test_101_with_bad_websocket_accept(self):
        self.check_refused(ws_request(), switching(accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                           ["websocket"])

    def test_101_without_websocket_accept(self):
        self.check_refused(ws_request(), switching(accept=None), ["websocket"])


class DeclinedUpgrade(unittest.TestCase):
    """A final non-101 answer to an upgrade: an ordinary response; the client connection
    stays HTTP (also for the bytes sent along with the upgrade request) and the upstream
    connection that carried it is not reused."""

    def check_declined(self, request, declined, allow, expect_upgrade=None):
        def respond(conn, req):
            path = req.split(b" ")[1]
            if path in (b"/foo", b"/chat"):
                return declined
            return ok_response(b"reply to " + path)

        with ScriptedBackend(serve_forever(respond)) as be, \
                Proxy(upgrade_config([be.address], allow)) as px:
            with Client(px.port) as c:
                c.send(request + b"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n")
                first = c.read_response()
                second = c.read_response()
                self.assertEqual((second.status, second.body), (200, b"reply to /behind"))
                third = c.request(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual((third.status, third.body), (200, b"reply to /after"))
            conn0 = be.connections[0]
            self.assertEqual(len(conn0.requests), 1, conn0.received)
            self.assertNotIn(b"/behind", conn0.received)
            self.assertNotIn(b"/after", conn0.received)
            later = [r.split(b" ")[1] for conn in be.connections[1:] for r in conn.requests]
            self.assertEqual(later, [b"/behind", b"/after"])
            finish(px)
        return first

    def test_200_to_an_upgrade_is_an_ordinary_response(self):
        resp = self.check_declined(FOO, ok_response(b"no switch"), ["foo"])
        self.assertEqual(resp.raw, ok_response(b"no switch"))

    def test_401_to_a_websocket_upgrade(self):
        declined = (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n"
                    b"Content-Length: 4\r\n\r\nauth")
        resp = self.check_declined(ws_request(), declined, ["websocket"])
        self.assertEqual(resp.raw, declined)

    def test_426_from_backend_keeps_upgrade_filtered_to_allow_list(self):
        declined = (b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: foo/2, bar/1, baz\r\n"
                    b"Connection: Upgrade\r\nContent-Length: 3\r\n\r\nnew")
        resp = self.check_declined(FOO, declined, ["foo", "baz"])
        self.assertEqual(resp.status_line, "HTTP/1.1 426 Upgrade Required")
        self.assertEqual(resp.headers("Upgrade"), ["foo/2, baz"], resp)
        self.assertEqual(resp.body, b"new")

    def test_upgrade_held_behind_a_declined_one_can_switch(self):
        seen = {}

        def declined(conn):
            seen["first"] = conn.recv_request()
            conn.send(ok_response(b"not now"))
            seen["first_rest"] = conn.recv_some(0.5) if not conn.wait_closed(0.5) else b""

        def accepted(conn):
            seen["second"] = conn.recv_request()
            conn.send(switching(b"foo/2", accept=None))
            seen["tunnel"] = recv_exact(conn.sock, 4)
            conn.send(b"pong")
            seen["eof"] = wait_eof(conn.sock)

        second = FOO.replace(b"/foo", b"/foo2")
        with ScriptedBackend([declined, accepted]) as be, \
                Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                c.send(FOO + second)
                self.assertEqual(c.read_response().raw, ok_response(b"not now"))
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                c.send(b"ping")
                self.assertEqual(recv_exact(c.sock, 4, initial=c.buf), b"pong")
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["first"], FOO_FORWARDED)
            self.assertEqual(seen["first_rest"], b"")
            self.assertEqual(seen["second"], FOO_FORWARDED.replace(b"/foo", b"/foo2"))
            self.assertEqual(seen["tunnel"], b"ping")
            finish(px)

    def test_frame_bytes_after_a_declined_upgrade_are_never_tunnelled(self):
        # WebSocket smuggling: the client claims a switch and sends frame bytes; the
        # backend declines; those bytes are parsed as HTTP (and are garbage) and never
        # reach any backend.
        frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"nope"))) as be, \
                Proxy(upgrade_config([be.address], ["websocket"])) as px:
            with Client(px.port) as c:
                c.send(ws_request() + frame)
                self.assertEqual(c.read_response().raw, ok_response(b"nope"))
                try:
                    rest = c.read_all(5.0)
                except socket.timeout:
                    self.fail("client connection left open after garbage")
                self.assertTrue(rest == b"" or rest.startswith(b"HTTP/1.1 400 "), rest)
            self.assertEqual(len([r for conn in be.connections for r in conn.requests]), 1)
            self.assertNotIn(frame, be.all_received())
            finish(px)


class BytesAroundTheSwitch(unittest.TestCase):
    def test_early_client_bytes_are_held_until_101_then_forwarded_in_order(self):
        early, later = b"EARLY-\x00\x01\x02-bytes", b"-LATER"
        seen = {}

        def script(conn):
            seen["request"] = conn.recv_request()
            seen["before_101"] = conn.recv_some(0.3)  # must be nothing
            conn.send(switching(b"foo/2", accept=None))
            seen["after_101"] = conn.recv_until(later)
            conn.send(b"ack")
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                c.send(FOO + early)
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                c.send(later)
                self.assertEqual(recv_exact(c.sock, 3, initial=c.buf), b"ack")
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["request"], FOO_FORWARDED)
            self.assertEqual(seen["before_101"], b"", "early bytes forwarded before the 101")
            self.assertEqual(seen["after_101"], early + later)
            finish(px)

    def test_large_early_data_is_held_then_delivered_whole(self):
        early = bytes(range(256)) * 4096  # 1 MiB, more than tunnel.buffer
        seen = {}

        def script(conn):
            seen["request"] = conn.recv_request()
            seen["before_101"] = conn.recv_some(0.5)
            conn.send(switching(b"foo/2", accept=None))
            seen["after_101"] = recv_exact(conn.sock, len(early), timeout=10)
            conn.send(b"done")
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, \
                Proxy(upgrade_config([be.address], ["foo"],
                                     tunnel={"buffer": "64KiB"})) as px:
            with Client(px.port) as c:
                sender = threading.Thread(target=c.send, args=(FOO + early,), daemon=True)
                sender.start()
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                self.assertEqual(recv_exact(c.sock, 4, timeout=10, initial=c.buf), b"done")
                sender.join(10)
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["before_101"], b"", "early bytes forwarded before the 101")
            self.assertTrue(seen["after_101"] == early, "early bytes changed or reordered")
            finish(px)

    def test_backend_bytes_in_the_101_segment_follow_the_101(self):
        first_frame = b"\x81\x0bhello world"

        def script(conn):
            conn.recv_request()
            conn.send(switching() + first_frame)  # one write, one segment
            wait_eof(conn.sock)

        with ScriptedBackend(script) as be, \
                Proxy(upgrade_config([be.address], ["websocket"])) as px:
            with Client(px.port) as c:
                c.send(ws_request())
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                self.assertEqual(recv_exact(c.sock, len(first_frame), initial=c.buf),
                                 first_frame)
            for t in list(be._threads):
                t.join(6)
            finish(px)

    def body_then_switch(self, request, check_request, later_client_bytes=b""):
        """The client sends `request` (with a body) followed by b"TUNNEL"; the backend
        must get the whole request, nothing more before its 101, then b"TUNNEL"."""
        seen = {}

        def script(conn):
            seen["request"] = conn.recv_request()
            seen["before_101"] = conn.recv_some(0.3)
            conn.send(switching(b"foo", accept=None))
            seen["after_101"] = conn.recv_until(b"TUNNEL")
            conn.send(b"ack")
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                c.send(request + b"TUNNEL")
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                self.assertEqual(recv_exact(c.sock, 3, initial=c.buf), b"ack")
            for t in list(be._threads):
                t.join(6)
            check_request(seen["request"])
            self.assertEqual(seen["before_101"], b"")
            self.assertEqual(seen["after_101"], b"TUNNEL")
            finish(px)

    def test_content_length_body_is_forwarded_before_the_switch(self):
        def check(got):
            self.assertEqual(got, b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                             + FWD + b"Upgrade: foo\r\nConnection: Upgrade\r\n\r\n0123456789")
        self.body_then_switch(b"POST /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n"
                              b"Connection: Upgrade\r\nContent-Length: 10\r\n\r\n0123456789",
                              check)

    def test_chunked_body_is_forwarded_before_the_switch(self):
        def check(got):
            head, _, raw_body = got.partition(b"\r\n\r\n")
            fields = parse_fields(head + b"\r\n\r\n")
            self.assertEqual(decode_chunked(raw_body), b"hello world")
            names = [(n.lower(), v) for n, v in fields]
            self.assertIn(("upgrade", "foo"), names)
            self.assertIn(("connection", "Upgrade"), names)
            self.assertIn(("transfer-encoding", "chunked"), names)
            self.assertTrue(head.startswith(b"POST /up HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD),
                            head)
        self.body_then_switch(b"POST /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n"
                              b"Connection: Upgrade\r\nTransfer-Encoding: chunked\r\nA: 1\r\n"
                              b"\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n", check)

    def test_early_101_waits_for_the_rest_of_the_body(self):
        # The backend switches after the head only; the body's second half and the tunnel
        # bytes arrive later: the backend gets the whole body, then the tunnel bytes.
        seen = {}
        head = (b"POST /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n"
                b"Content-Length: 10\r\n\r\n")

        def script(conn):
            seen["head"] = conn.recv_until(b"\r\n\r\n")
            conn.send(switching(b"foo", accept=None))
            seen["rest"] = conn.recv_until(b"TUNNEL")
            conn.send(b"ack")
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                c.send(head + b"01234")
                time.sleep(0.3)
                c.send(b"56789TUNNEL")
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                self.assertEqual(recv_exact(c.sock, 3, initial=c.buf), b"ack")
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["rest"], b"0123456789TUNNEL")
            finish(px)

    def test_100_continue_passes_then_101(self):
        seen = {}

        def script(conn):
            seen["head"] = conn.recv_until(b"\r\n\r\n")
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            seen["body"] = recv_exact(conn.sock, 5)
            conn.send(switching(b"foo", accept=None))
            seen["tunnel"] = recv_exact(conn.sock, 6)
            conn.send(b"ack")
            seen["eof"] = wait_eof(conn.sock)

        with ScriptedBackend(script) as be, Proxy(upgrade_config([be.address], ["foo"])) as px:
            with Client(px.port) as c:
                c.send(b"PUT /up HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n"
                       b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                resp = c.read_response()
                self.assertEqual(resp.status_line, "HTTP/1.1 100 Continue", resp)
                c.send(b"hello")
                resp = c.read_response()
                while resp.status == 100:  # tolerate a second 100 (the proxy's own)
                    resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                self.assertEqual(resp.header("Upgrade"), "foo")
                c.send(b"TUNNEL")
                self.assertEqual(recv_exact(c.sock, 3, initial=c.buf), b"ack")
            for t in list(be._threads):
                t.join(6)
            self.assertEqual(seen["body"], b"hello")
            self.assertEqual(seen["tunnel"], b"TUNNEL")
            self.assertIn(b"\r\nExpect: 100-continue\r\n", seen["head"])
            finish(px)


if __name__ == "__main__":
    main()
