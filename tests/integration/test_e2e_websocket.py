"""End to end: a real WebSocket client and server (python3-websockets 10.x, asyncio API)
talking through the proxy (docs/upgrades.md: forward, strip, reject; the tunnel).
The server runs in its own thread and event loop (e2e_support.WsEchoServer); the client
runs in the test thread under asyncio.run with an overall deadline."""

import asyncio
import os
import unittest

import websockets

from e2e_support import WsEchoServer, wait_until
from harness import DemoBackend, Proxy, main, make_config

SESSION_TIMEOUT = 20.0


def upgrade_config(address, **upgrade):
    return make_config([address], routes=[
        {"match": {"path_prefix": "/"}, "upstream": "app", "upgrade": upgrade}])


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, SESSION_TIMEOUT))


def fields(raw_items, name):
    return [v for n, v in raw_items if n.lower() == name.lower()]


class WebSocketThroughProxy(unittest.TestCase):
    def assert_tunnels_done(self, px, count):
        px.wait_metric("switchyard_tunnels_total", count)
        px.wait_metric("switchyard_tunnels_active", 0)
        px.assert_idle()

    def test_echo_ping_and_close_handshake(self):
        big = os.urandom(1 << 20)

        async def session(port):
            async with websockets.connect(f"ws://127.0.0.1:{port}/chat?room=1",
                                          max_size=None, close_timeout=5) as ws:
                await ws.send("hello, text")
                self.assertEqual(await ws.recv(), "hello, text")
                await ws.send("unicode: \u00e9\u4e2d\U0001f600")
                self.assertEqual(await ws.recv(), "unicode: \u00e9\u4e2d\U0001f600")
                await ws.send(b"\x00\x01\x02binary\xff")
                self.assertEqual(await ws.recv(), b"\x00\x01\x02binary\xff")
                await ws.send(big)                       # 1 MiB binary message
                echoed = await ws.recv()
                self.assertEqual(len(echoed), len(big))
                self.assertEqual(echoed, big)
                pong = await ws.ping(b"client-ping")     # client ping, server pong
                await asyncio.wait_for(pong, 5)
                await ws.send("server-ping")             # server ping, client pong
                self.assertEqual(await ws.recv(), "server-pong-ok")
                await ws.close(code=1000, reason="bye from client")
                return ws.close_code, ws.close_reason

        with WsEchoServer() as srv, Proxy(upgrade_config(srv.address, allow=["websocket"])) as px:
            code, reason = run(session(px.port))
            self.assertEqual((code, reason), (1000, "bye from client"))
            wait_until(lambda: srv.closes, what="the server to see the close")
            self.assertEqual(srv.closes, [(1000, "bye from client")])
            self.assertEqual(srv.sessions, ["/chat?room=1"])
            self.assertEqual(srv.errors, [])
            # what the server received: a forwarded websocket upgrade
            path, raw = srv.requests[0]
            self.assertEqual(path, "/chat?room=1")
            self.assertEqual([v.lower() for v in fields(raw, "Upgrade")], ["websocket"])
            self.assertEqual(len(fields(raw, "Sec-WebSocket-Key")), 1)
            self.assert_tunnels_done(px, 1)

    def test_thousand_messages_arrive_in_order(self):
        n = 1000

        async def session(port):
            async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None,
                                          close_timeout=5) as ws:
                # a burst of text and binary messages, then read all the echoes
                for i in range(n):
                    await ws.send(f"msg-{i}" if i % 2 else f"msg-{i}".encode())
                got = [await ws.recv() for _ in range(n)]
                await ws.close(code=1000, reason="done")
                return got

        with WsEchoServer() as srv, Proxy(upgrade_config(srv.address, allow=["websocket"])) as px:
            got = run(session(px.port))
            self.assertEqual(got, [f"msg-{i}" if i % 2 else f"msg-{i}".encode()
                                   for i in range(n)])
            wait_until(lambda: srv.closes, what="the server to see the close")
            self.assertEqual(srv.closes, [(1000, "done")])
            self.assert_tunnels_done(px, 1)

    def test_star_allows_websocket(self):
        async def session(port):
            async with websockets.connect(f"ws://127.0.0.1:{port}/any",
                                          close_timeout=5) as ws:
                await ws.send("via star")
                self.assertEqual(await ws.recv(), "via star")

        with WsEchoServer() as srv, Proxy(upgrade_config(srv.address, allow=["*"])) as px:
            run(session(px.port))
            self.assertEqual(srv.sessions, ["/any"])
            self.assert_tunnels_done(px, 1)

    def test_demo_backend_through_proxy(self):
        big = os.urandom(1 << 20)

        async def session(port):
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None,
                                          close_timeout=5) as ws:
                for message in ("hello demo", b"\x00bin\xff", "x" * 300, big):
                    await ws.send(message)
                    self.assertEqual(await ws.recv(), message)
                await ws.send(["frag", "ment", "ed"])
                self.assertEqual(await ws.recv(), "fragmented")
                pong = await ws.ping(b"pp")
                await asyncio.wait_for(pong, 5)
                for i in range(200):
                    await ws.send(f"m{i}")
                self.assertEqual([await ws.recv() for _ in range(200)],
                                 [f"m{i}" for i in range(200)])
                await ws.close(code=1000, reason="bye demo")
                return ws.close_code

        with DemoBackend() as demo, Proxy(upgrade_config(demo.address,
                                                         allow=["websocket"])) as px:
            self.assertEqual(run(session(px.port)), 1000)
            self.assert_tunnels_done(px, 1)

    def test_not_allowed_is_stripped(self):
        """allow: [] (strip): the request reaches the server as a plain GET, the server
        refuses it with 426, and the client's handshake fails."""
        async def session(port):
            with self.assertRaises(websockets.InvalidStatusCode) as cm:
                async with websockets.connect(f"ws://127.0.0.1:{port}/chat",
                                              close_timeout=5):
                    pass
            return cm.exception

        with WsEchoServer() as srv, Proxy(upgrade_config(srv.address, allow=[])) as px:
            err = run(session(px.port))
            self.assertNotEqual(err.status_code, 101)
            self.assertEqual(err.status_code, 426)   # websockets' answer to a plain GET
            # the backend's Upgrade is filtered to what the route allows: nothing
            self.assertIsNone(err.headers.get("Upgrade"), dict(err.headers.raw_items()))
            self.assertEqual(srv.sessions, [])
            self.assertEqual(len(srv.requests), 1)
            path, raw = srv.requests[0]
            self.assertEqual(path, "/chat")
            self.assertEqual(fields(raw, "Upgrade"), [], raw)
            for value in fields(raw, "Connection"):
                self.assertNotIn("upgrade", value.lower(), raw)
            self.assertEqual(px.metric("switchyard_tunnels_total"), 0)
            px.assert_idle()

    def test_not_allowed_is_rejected_with_403(self):
        async def session(port):
            with self.assertRaises(websockets.InvalidStatusCode) as cm:
                async with websockets.connect(f"ws://127.0.0.1:{port}/chat",
                                              close_timeout=5):
                    pass
            return cm.exception

        with WsEchoServer() as srv, Proxy(upgrade_config(
                srv.address, allow=["h2c"], on_disallowed="reject")) as px:
            err = run(session(px.port))
            self.assertEqual(err.status_code, 403)
            self.assertEqual(srv.requests, [])       # nothing went upstream
            self.assertEqual(srv.sessions, [])
            self.assertEqual(px.metric("switchyard_tunnels_total"), 0)
            px.assert_idle()


if __name__ == "__main__":
    main()
