"""Process and connection lifetime: graceful SIGTERM with a request in flight, idle
keep-alive connections, and the client keep-alive timeout."""

import threading
import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, main, make_config, ok_response,
                     serve_forever)


class Lifecycle(unittest.TestCase):
    def test_sigterm_lets_an_in_flight_request_complete(self):
        arrived = threading.Event()

        def slow(conn, req):
            arrived.set()
            time.sleep(0.5)
            return ok_response(b"late but whole")

        with ScriptedBackend(serve_forever(slow)) as be, \
                Proxy(make_config([be.address], timeouts={"shutdown_drain": "5s"})) as px:
            with Client(px.port) as c:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(arrived.wait(5), "request never reached the backend")
                start = time.monotonic()
                px.sigterm()
                resp = c.read_response()
                self.assertEqual((resp.status, resp.body), (200, b"late but whole"))
                status = px.terminate()
                self.assertEqual(status, 0, px.stderr())
                self.assertLess(time.monotonic() - start, 5)

    def test_sigterm_with_an_idle_keepalive_client_exits_promptly(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                start = time.monotonic()
                status = px.terminate()
                self.assertEqual(status, 0, px.stderr())
                self.assertLess(time.monotonic() - start, 3)
                self.assertTrue(c.is_closed(1.0))

    def test_client_gone_while_its_response_is_split_over_two_reads(self):
        # The client closes while its request waits upstream; the head reaches the dead
        # socket (the kernel answers with a reset), the body 50 ms later: writing it fails
        # while the exchange finishes. A regression test for a crash found by the Socket.IO
        # tests (the failed write closed the connection inside close_after_flush).
        def split(conn):
            conn.recv_request()
            time.sleep(0.6)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n")
            time.sleep(0.05)
            conn.send(b"late")

        with ScriptedBackend(split) as be, Proxy(make_config([be.address])) as px:
            c = Client(px.port)
            c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            c.close()
            time.sleep(1.0)
            self.assertIsNone(px.proc.poll(), "the proxy died: " + px.stderr())
            with Client(px.port) as c2:  # and it still serves
                c2.send(b"GET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            px.assert_idle()

    def test_idle_client_connection_is_closed_after_keepalive_idle(self):
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], timeouts={"keepalive_idle": "300ms"})) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                start = time.monotonic()
                self.assertTrue(c.is_closed(3.0), "idle connection kept open")
                self.assertGreaterEqual(time.monotonic() - start, 0.2)
            px.assert_idle()

    def test_connection_close_from_client_is_honoured(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.header("Connection"), "close")
                self.assertTrue(c.is_closed())
            px.assert_idle()

    def test_http10_client_without_keepalive_is_closed(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                resp = c.request(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                self.assertEqual(resp.status, 200)
                self.assertTrue(c.is_closed())
            px.assert_idle()

    def test_metrics_count_requests(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            before = px.metric("switchyard_requests_total")
            with Client(px.port) as c:
                for _ in range(3):
                    self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                self.assertEqual(px.metric("switchyard_connections_active"), 1)
            self.assertEqual(px.metric("switchyard_requests_total"), before + 3)
            px.assert_idle()


if __name__ == "__main__":
    main()
