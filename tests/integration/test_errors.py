"""The proxy's own answers (docs/upgrades.md "Message framing" and "Everything
else"): 400 for ambiguous or malformed requests, 404, 431, 408, 502, 504, and the h2
preface. A refused request never reaches the backend."""

import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, dead_port, hang, main, make_config,
                     passive, serve_forever)

BAD_REQUESTS = {
    "content-length with transfer-encoding":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n3\r\nabc\r\n0\r\n\r\n",
    "two different content-lengths":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "obs-fold":
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "space before colon":
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "space before colon of transfer-encoding":
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "bare CR":
        b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    "chunked not final":
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
        b"0\r\n\r\n",
    "NUL in a value":
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "control character in a value":
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
    # The proxy drops what Connection names: the body would go on without its length and
    # the backend would read it as a second request.
    "connection names content-length":
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Content-Length\r\n"
        b"Content-Length: 32\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
    "connection names host":
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: host\r\n\r\n",
}


class ProxyErrors(unittest.TestCase):
    def assert_proxy_response(self, resp, status):
        """A small response of the proxy's own (serialize.hpp make_proxy_response)."""
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.raw.startswith(b"HTTP/1.1 %d " % status), resp.raw[:100])
        self.assertEqual(int(resp.header("Content-Length")), len(resp.body))

    def assert_refused_and_closed(self, client, request, status):
        resp = client.request(request)
        self.assert_proxy_response(resp, status)
        self.assertEqual(resp.header("Connection"), "close")
        self.assertTrue(client.is_closed(), "connection left open")
        return resp

    def test_malformed_requests_get_400_and_close(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            for name, request in BAD_REQUESTS.items():
                with self.subTest(name), Client(px.port) as c:
                    # a valid request behind the bad one must never be parsed
                    self.assert_refused_and_closed(
                        c, request + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400)
            time.sleep(0.1)
            self.assertEqual(be.all_received(), b"")
            px.assert_idle()

    BAD_CHUNKED = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                   b"zz\r\nabc\r\n0\r\n\r\n")

    def test_bad_chunk_size_is_400_and_reaches_no_backend(self):
        """Head and bad chunk in one write: the proxy knows the request is bad before it
        has anything to send upstream."""
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                self.assert_refused_and_closed(c, b"".join(self.BAD_CHUNKED), 400)
            time.sleep(0.1)
            self.assertEqual(be.all_received(), b"")
            px.assert_idle()

    def test_bad_chunk_size_after_the_head_was_forwarded_aborts_upstream(self):
        """The head went upstream already (streaming): the client gets 400 and close, the
        backend never sees a complete request and its connection is closed, not reused."""
        with ScriptedBackend(passive, keep_open=True) as be, \
                Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                c.send(self.BAD_CHUNKED[0])
                be.wait_accepted(1)
                conn = be.connections[0]
                head = conn.recv_until(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"POST / HTTP/1.1\r\n"))
                self.assert_refused_and_closed(c, self.BAD_CHUNKED[1], 400)
            self.assertTrue(conn.wait_closed(3.0), "upstream connection kept")
            self.assertEqual(conn.received, head)
            px.wait_metric("switchyard_upstream_connections_active", 0)
            px.assert_idle()

    def test_no_route_is_404(self):
        routes = [{"match": {"path_prefix": "/api"}, "upstream": "app"}]
        with ScriptedBackend() as be, Proxy(make_config([be.address], routes=routes)) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assert_proxy_response(resp, 404)
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
            self.assertEqual([r.split(b" ")[1] for r in be.connections[0].requests], [b"/api/x"])
            px.assert_idle()

    def test_head_over_max_header_bytes_is_431(self):
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], limits={"max_header_bytes": 1024})) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 400
                                           + b"\r\n\r\n").status, 200)
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 2000 + b"\r\n\r\n")
                self.assert_proxy_response(resp, 431)
            self.assertEqual(len(be.connections[0].requests), 1)
            px.assert_idle()

    def test_too_many_header_fields_is_431(self):
        def head(n):
            return (b"GET / HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-%d: v\r\n" % i for i in range(n - 1)) + b"\r\n")
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], limits={"max_headers": 10})) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(head(10)).status, 200)
            with Client(px.port) as c:
                self.assert_proxy_response(c.request(head(11)), 431)
            self.assertEqual(len(be.connections[0].requests), 1)
            px.assert_idle()

    def test_slow_request_head_is_408(self):
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], timeouts={"request_header": "300ms"})) as px:
            with Client(px.port) as c:
                start = time.monotonic()
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                time.sleep(0.1)
                c.send(b"X-Slow: 1\r\n")   # bytes keep coming, but the head is not done
                resp = c.read_response()
                elapsed = time.monotonic() - start
                self.assert_proxy_response(resp, 408)
                self.assertGreaterEqual(elapsed, 0.25)
                self.assertLess(elapsed, 3.0)
                self.assertTrue(c.is_closed())
            self.assertEqual(be.all_received(), b"")
            px.assert_idle()

    def expect_502(self, servers, **config):
        with Proxy(make_config(servers, **config)) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assert_proxy_response(resp, 502)
            px.assert_idle()

    def test_upstream_refusing_connections_is_502(self):
        self.expect_502([f"127.0.0.1:{dead_port()}"])

    def expect_502_for_answer(self, answer):
        """The backend reads the request, answers `answer` and waits: the client gets 502."""
        def respond(conn):
            conn.recv_request()
            conn.send(answer)
            conn.wait_closed()
        with ScriptedBackend(respond) as be:
            self.expect_502([be.address])

    def test_upstream_answering_garbage_is_502(self):
        self.expect_502_for_answer(b"this is not HTTP\r\n\r\n")

    def test_upstream_naming_content_length_in_connection_is_502(self):
        """Forwarded without its Content-Length (Connection names it), the body would run
        into the client's next response."""
        self.expect_502_for_answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello")

    def test_upstream_closing_without_answer_is_502(self):
        def close_at_once(conn):
            conn.recv_request()
        with ScriptedBackend(close_at_once) as be:
            self.expect_502([be.address])

    def test_upstream_closing_in_the_middle_of_the_head_is_502(self):
        def half_head(conn):
            conn.recv_request()
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Le")
        with ScriptedBackend(half_head) as be:
            self.expect_502([be.address])

    def test_upstream_never_answering_is_504(self):
        with ScriptedBackend(hang) as be, \
                Proxy(make_config([be.address],
                                  timeouts={"upstream_response": "300ms"})) as px:
            with Client(px.port) as c:
                start = time.monotonic()
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assert_proxy_response(resp, 504)
                self.assertGreaterEqual(time.monotonic() - start, 0.25)
            be.wait_accepted(1)
            self.assertTrue(be.connections[0].wait_closed(3.0),
                            "upstream connection kept after 504")
            px.assert_idle()

    def test_h2_prior_knowledge_preface_gets_an_error_and_close(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                data = c.read_all(timeout=3.0)
                self.assertRegex(data, rb"^HTTP/1\.1 [45]\d\d ")
            self.assertEqual(be.all_received(), b"")
            px.assert_idle()

    def test_error_then_keepalive_still_works_after_404(self):
        routes = [{"match": {"path_prefix": "/api"}, "upstream": "app"}]
        with ScriptedBackend(serve_forever(lambda c, r: b"HTTP/1.1 200 OK\r\n"
                                           b"Content-Length: 2\r\n\r\nok")) as be, \
                Proxy(make_config([be.address], routes=routes)) as px:
            with Client(px.port) as c:
                first = c.request(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(first.status, 404)
                if first.header("Connection") != "close":
                    self.assertEqual(c.request(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n").status,
                                     200)
            px.assert_idle()


if __name__ == "__main__":
    main()
