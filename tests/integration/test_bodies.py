"""Message bodies through the proxy (RFC 9112 §6.3, §7.1): request bodies by
Content-Length and chunked (re-chunked upstream), response bodies by Content-Length,
chunked and connection close, and the responses that never have a body."""

import os
import random
import unittest

from harness import (FWD, Client, Proxy, ScriptedBackend, decode_chunked, main, make_config,
                     ok_response, serve_forever)

BIG = 1024 * 1024 + 12345


def chunked(body, rng):
    """`body` in chunks of random sizes, one with a chunk extension."""
    out, pos, first = b"", 0, True
    while pos < len(body):
        n = rng.randint(1, 70000)
        piece = body[pos:pos + n]
        out += b"%x%s\r\n" % (len(piece), b";name=value" if first else b"") + piece + b"\r\n"
        pos += n
        first = False
    return out + b"0\r\n\r\n"


class RequestBodies(unittest.TestCase):
    def test_content_length_body_arrives_intact(self):
        body = os.urandom(BIG)
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
                c.send(head + b"\r\n")
                c.send(body[:1000])
                c.send(body[1000:])
                self.assertEqual(c.read_response().status, 200)
            self.assertEqual(be.connections[0].requests[0], head + FWD + b"\r\n" + body)
            px.assert_idle()

    def test_chunked_body_is_rechunked_and_arrives_intact(self):
        body = os.urandom(BIG)
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                 b"A: 1\r\n\r\n" + chunked(body, random.Random(1)))
                self.assertEqual(resp.status, 200)
                # and the connection is still usable
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
            got = be.connections[0].requests[0]
            head, _, raw_body = got.partition(b"\r\n\r\n")
            self.assertEqual(head + b"\r\n\r\n",
                             b"POST /up HTTP/1.1\r\nHost: x\r\nA: 1\r\n" + FWD
                             + b"Transfer-Encoding: chunked\r\n\r\n")
            self.assertEqual(decode_chunked(raw_body), body)
            px.assert_idle()

    def test_empty_chunked_body(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                 b"\r\n0\r\n\r\n")
                self.assertEqual(resp.status, 200)
            got = be.connections[0].requests[0]
            head, _, raw_body = got.partition(b"\r\n\r\n")
            self.assertEqual(decode_chunked(raw_body), b"")
            px.assert_idle()

    def test_chunk_extensions_with_optional_whitespace_pass_and_are_dropped(self):
        # RFC 9112 §7.1.1: BWS around ";" and "="; extensions are not forwarded (re-chunked).
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3 ; a = b\r\nabc\r\n2\t;\tq=\"x y\";n\r\nde\r\n0 ; end\r\n\r\n")
                self.assertEqual(resp.status, 200)
            raw_body = be.connections[0].requests[0].partition(b"\r\n\r\n")[2]
            self.assertEqual(decode_chunked(raw_body), b"abcde")
            self.assertNotIn(b";", raw_body)
            px.assert_idle()

    def test_malformed_chunk_lines_get_400_and_close(self):
        bad_lines = [b"3 \r\nabc", b" 3\r\nabc", b"3;\r\nabc", b"3;a=\"b\r\nabc", b"3\nabc",
                     b"3;a=" + b"b" * 5000 + b"\r\nabc", b"0x3\r\nabc"]
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            for line in bad_lines:
                with self.subTest(line=line[:20]), Client(px.port) as c:
                    resp = c.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     + line + b"\r\n0\r\n\r\n")
                    self.assertEqual(resp.status, 400)
                    self.assertEqual(resp.header("Connection"), "close")
                    self.assertTrue(c.is_closed())
            px.assert_idle()


class ResponseBodies(unittest.TestCase):
    def fetch(self, response, close_after=False):
        """Backend answers every request with `response` (closing after it when asked);
        returns the client's response to one GET."""
        def script(conn):
            conn.recv_request()
            conn.send(response)
            if not close_after:
                conn.wait_closed()
        with ScriptedBackend(script) as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            px.assert_idle()
        return resp

    def test_content_length_response(self):
        body = os.urandom(BIG)
        resp = self.fetch(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Content-Length"), str(len(body)))
        self.assertEqual(resp.body, body)

    def test_chunked_response(self):
        body = os.urandom(BIG)
        resp = self.fetch(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n"
                          + chunked(body, random.Random(2)))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("X"), "y")
        self.assertEqual(resp.body, body)

    def test_close_delimited_response(self):
        body = os.urandom(BIG)
        resp = self.fetch(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\n" + body, close_after=True)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, body)

    def test_close_delimited_response_is_not_reused_upstream(self):
        def script(conn):
            conn.recv_request()
            conn.send(b"HTTP/1.1 200 OK\r\n\r\nfirst")
        with ScriptedBackend(script) as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").body, b"first")
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").body, b"first")
            self.assertEqual(be.accepted, 2)
            px.assert_idle()

    def no_body_then_next(self, method, response):
        """`response` (no body on the wire) then an ordinary one on the same upstream
        connection: the client must get both, the first without a body."""
        responses = iter([response, ok_response(b"second")])
        with ScriptedBackend(serve_forever(lambda c, r: next(responses))) as be, \
                Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                first = c.request(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n",
                                  head_request=(method == b"HEAD"))
                second = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(second.body, b"second")
                self.assertEqual(c.buf, b"")
            self.assertEqual(be.accepted, 1)
            px.assert_idle()
        return first

    def test_head_response_with_content_length_has_no_body(self):
        first = self.no_body_then_next(
            b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX: y\r\n\r\n")
        self.assertEqual(first.status, 200)
        self.assertEqual(first.header("Content-Length"), "1234")
        self.assertEqual(first.raw, b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX: y\r\n\r\n")

    def test_204_has_no_body(self):
        first = self.no_body_then_next(b"GET", b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n")
        self.assertEqual(first.raw, b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n")

    def test_304_has_no_body(self):
        first = self.no_body_then_next(
            b"GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nContent-Length: 99\r\n\r\n")
        self.assertEqual(first.status, 304)
        self.assertEqual(first.header("ETag"), '"a"')


if __name__ == "__main__":
    main()
