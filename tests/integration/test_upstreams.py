"""Upstream connections: the keep-alive pool, failover past a dead server, round_robin
and least_conn (docs/configuration.md `upstreams`)."""

import socket
import struct
import threading
import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, dead_port, get, http_request, main, make_config,
                     ok_response, serve_forever)


def requests_of(backend):
    return [r for conn in backend.connections for r in conn.requests]


class KeepAlive(unittest.TestCase):
    def test_two_requests_on_one_client_connection_share_one_upstream_connection(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                self.assertEqual(c.request(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
            self.assertEqual(be.accepted, 1)
            self.assertEqual(len(be.connections[0].requests), 2)
            px.assert_idle()

    def test_pooled_connection_is_reused_by_the_next_client(self):
        with ScriptedBackend() as be, Proxy(make_config([be.address])) as px:
            for path in (b"/1", b"/2", b"/3"):
                with Client(px.port) as c:
                    resp = c.request(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assertEqual(resp.status, 200)
            self.assertEqual(be.accepted, 1)
            self.assertEqual(len(be.connections[0].requests), 3)
            px.wait_metric("switchyard_upstream_connections_active", 1)
            px.wait_metric("switchyard_upstream_connections_idle", 1)
            px.assert_idle()

    def test_upstream_answering_connection_close_is_not_reused(self):
        closed = []

        def script(conn):
            conn.recv_request()
            conn.send(ok_response(extra=b"Connection: close\r\n"))
            # the proxy must close it even though we do not
            closed.append(conn.wait_closed(3.0))

        with ScriptedBackend(script) as be, Proxy(make_config([be.address])) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                self.assertEqual(c.request(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
            self.assertEqual(be.accepted, 2)
            be.wait_accepted(2)
            deadline = time.monotonic() + 5
            while len(closed) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(closed, [True, True])
            px.wait_metric("switchyard_upstream_connections_active", 0)
            px.assert_idle()

    def test_backend_closing_an_idle_pooled_connection_is_handled(self):
        def script(conn):
            conn.recv_request()
            conn.send(ok_response())
            time.sleep(0.2)   # then close while idle in the pool

        with ScriptedBackend(script) as be, Proxy(make_config([be.address])) as px:
            self.assertEqual(get(px.port, "/1").status, 200)
            time.sleep(0.5)
            self.assertEqual(get(px.port, "/2").status, 200)
            self.assertEqual(be.accepted, 2)
            px.wait_metric("switchyard_upstream_connections_active", 0)
            px.assert_idle()

    def test_idempotent_request_meeting_a_closing_pooled_connection_is_retried_once(self):
        # The server resets a pooled connection as the second request arrives on it (its
        # idle timeout racing the proxy's reuse): a GET goes again on a fresh connection
        # (RFC 9110 §9.2.2); a POST is not sent twice and gets 502.
        for method, status in ((b"GET", 200), (b"POST", 502)):
            with self.subTest(method=method):
                def first(conn):
                    conn.recv_request()
                    conn.send(ok_response())
                    conn.recv_request()
                    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.sock.close()

                # "Connection: close" on the answer to the retry, so that no pooled connection
                # outlives the test (the backend would keep it until its own 5 s timeout).
                again = ok_response(b"again", extra=b"Connection: close\r\n")
                with ScriptedBackend([first, serve_forever(lambda c, r: again)]) as be, \
                        Proxy(make_config([be.address])) as px:
                    self.assertEqual(get(px.port, "/1").status, 200)
                    resp = http_request(px.port, method + b" /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    self.assertEqual(resp.status, status)
                    if status == 200:
                        self.assertEqual(resp.body, b"again")
                        self.assertEqual(be.accepted, 2)
                        self.assertTrue(be.connections[1].requests[0].startswith(b"GET /2 "))
                    else:
                        time.sleep(0.2)
                        self.assertEqual(be.accepted, 1)
                    px.wait_metric("switchyard_upstream_connections_active", 0)
                    px.assert_idle()


class Balancing(unittest.TestCase):
    def test_failover_past_a_dead_server(self):
        dead = f"127.0.0.1:{dead_port()}"
        with ScriptedBackend() as be, Proxy(make_config([dead, be.address])) as px:
            for i in range(6):
                resp = get(px.port, f"/{i}")
                self.assertEqual(resp.status, 200, f"request {i}: {resp}")
            self.assertEqual(len(requests_of(be)), 6)
            px.assert_idle()

    def test_round_robin_spreads_requests(self):
        with ScriptedBackend() as a, ScriptedBackend() as b, \
                Proxy(make_config([a.address, b.address])) as px:
            for i in range(4):
                self.assertEqual(get(px.port, f"/{i}").status, 200)
            self.assertEqual((len(requests_of(a)), len(requests_of(b))), (2, 2))
            px.assert_idle()

    def test_least_conn_prefers_the_less_busy_server(self):
        release = threading.Event()

        def respond(conn, req):
            if req.startswith(b"GET /slow "):
                release.wait(5)
            return ok_response()

        upstreams = {"app": {"servers": [], "balance": "least_conn"}}
        with ScriptedBackend(serve_forever(respond)) as a, \
                ScriptedBackend(serve_forever(respond)) as b:
            upstreams["app"]["servers"] = [a.address, b.address]
            with Proxy(make_config([], upstreams=upstreams)) as px:
                with Client(px.port) as slow:
                    slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                    deadline = time.monotonic() + 5
                    while not (requests_of(a) or requests_of(b)):
                        self.assertLess(time.monotonic(), deadline, "slow request not forwarded")
                        time.sleep(0.01)
                    busy, idle = (a, b) if requests_of(a) else (b, a)
                    for i in range(3):
                        self.assertEqual(get(px.port, f"/quick{i}").status, 200)
                    self.assertEqual(len(requests_of(idle)), 3)
                    self.assertEqual(len(requests_of(busy)), 1)
                    release.set()
                    self.assertEqual(slow.read_response().status, 200)
                px.assert_idle()


if __name__ == "__main__":
    main()
