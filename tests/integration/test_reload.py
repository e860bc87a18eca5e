"""Reloading the configuration on SIGHUP (docs/configuration.md "Signals", docs/operations.md "Reload"):
established tunnels and exchanges in flight are untouched while new connections and new
exchanges follow the new file at once; an invalid file is reported as FILE:LINE:COL and
changes nothing; listeners in both files never refuse a connection, new ones open, removed
ones close; `workers` needs a restart; pooled connections follow their servers.

Each reload is confirmed by switchyard_config_reloads_total{result} going up by one."""

import asyncio
import hashlib
import random
import re
import signal
import socket
import threading
import time
import unittest

import websockets

from e2e_support import WsEchoServer
from harness import (Client, Proxy, ScriptedBackend, dead_port, free_low_port, get, main,
                     make_config, metric_sum, ok_response, passive, reload_config,
                     serve_forever, wait_metric_sum)
from upgrade_support import open_ws_tunnel, recv_exact, wait_eof, wait_until

RELOADS = "switchyard_config_reloads_total"


def answering(body):
    return ScriptedBackend(serve_forever(lambda c, r: ok_response(body)))


def web_route(name, upstream, path="/web"):
    return {"name": name, "match": {"path_prefix": path}, "upstream": upstream}


def ws_route(name="chat", upstream="chat", path="/ws"):
    return {"name": name, "match": {"path_prefix": path}, "upstream": upstream,
            "upgrade": {"allow": ["websocket"]}}


def get_on(client, path):
    """One keep-alive GET on an open Client; returns (status, body)."""
    resp = client.request(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    return resp.status, resp.body


def get_keepalive(port, path):
    """A GET on a fresh connection that does not ask for Connection: close (the upstream
    connection may then be pooled); returns the body."""
    with Client(port) as c:
        return get_on(c, path)[1]


def reload_then_stderr(px, text, result, word, timeout=3.0):
    """reload_config, then waits until `word` was printed; returns stderr since SIGHUP."""
    start = len(px.stderr())
    reload_config(px, text, result=result)
    wait_until(lambda: word in px.stderr()[start:], timeout)
    return px.stderr()[start:]


# --------------------------------------------------------------------------- WebSocket peers


class WsSession(threading.Thread):
    """A python3-websockets client exchanging checksummed messages with an echo server,
    one at a time and without pause, until stop() is called; then it closes with 1000.

    A message carries its sequence number, the SHA-256 of its payload and the payload
    (text and binary alternate, 1 B to 64 KiB); every echo must come back byte for byte
    and its checksum must verify."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.count = 0
        self.sent_bytes = 0     # message payload bytes sent (frames add to them on the wire)
        self.errors = []
        self.close_code = None
        self.started = threading.Event()
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def run(self):
        try:
            asyncio.run(asyncio.wait_for(self._session(), 90))
        except BaseException as e:  # reported by the test
            self.errors.append(e)
        finally:
            self.started.set()

    @staticmethod
    def _verify(n, echo):
        if isinstance(echo, str):
            seq, digest, hexpayload = echo.split(":", 2)
            payload = bytes.fromhex(hexpayload)
        else:
            seq, digest, payload = int.from_bytes(echo[:8], "big"), echo[8:40].hex(), echo[40:]
        return int(seq) == n and hashlib.sha256(payload).hexdigest() == digest

    async def _session(self):
        rng = random.Random(20261206)
        # no permessage-deflate: bytes on the wire are at least the payload bytes
        async with websockets.connect(self.url, max_size=None, close_timeout=5,
                                      ping_interval=None, compression=None) as ws:
            self.started.set()
            while not self._halt.is_set():
                n = self.count
                payload = rng.randbytes(rng.choice((1, 100, 1000, 16384, 65536)))
                digest = hashlib.sha256(payload)
                if n % 2:
                    message = f"{n}:{digest.hexdigest()}:{payload.hex()}"
                else:
                    message = n.to_bytes(8, "big") + digest.digest() + payload
                await ws.send(message)
                self.sent_bytes += len(message)
                echo = await asyncio.wait_for(ws.recv(), 5)
                if echo != message or not self._verify(n, echo):
                    self.errors.append(AssertionError(f"message {n} came back altered "
                                                      f"({len(echo)} bytes)"))
                    return
                self.count += 1
            await ws.close(code=1000, reason="session done")
            self.close_code = ws.close_code

    def wait_progress(self, test, messages=20, timeout=5.0):
        """Fails unless `messages` more echoes arrive intact within `timeout`."""
        target = self.count + messages
        deadline = time.monotonic() + timeout
        while self.count < target and not self.errors and self.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        test.assertEqual(self.errors, [])
        test.assertGreaterEqual(self.count, target,
                                f"the session stalled at message {self.count}")


def ws_echo_once(port, path, text="hello"):
    """A fresh WebSocket session: one message, its echo, a close. Returns the echo, or the
    HTTP status when the handshake was refused."""
    async def go():
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}{path}", close_timeout=5,
                                          ping_interval=None) as ws:
                await ws.send(text)
                return await asyncio.wait_for(ws.recv(), 5)
        except websockets.InvalidStatusCode as e:
            return e.status_code
    return asyncio.run(asyncio.wait_for(go(), 15))


# --------------------------------------------------------------------------- tests


class ReloadKeepsTunnels(unittest.TestCase):
    def test_websocket_session_survives_five_reloads_while_new_connections_follow_each_file(self):
        with WsEchoServer() as srv1, WsEchoServer() as srv2, \
                answering(b"A") as be_a, answering(b"B") as be_b:
            ups = {"chat": {"servers": [srv1.address]}, "web_a": {"servers": [be_a.address]},
                   "web_b": {"servers": [be_b.address]}}

            def cfg(routes, upstreams=None):
                return make_config([], upstreams=upstreams or ups, routes=routes)

            c0 = cfg([ws_route(), web_route("web", "web_a")])
            with Proxy(c0) as px:
                session = WsSession(f"ws://127.0.0.1:{px.port}/ws/session")
                session.start()
                try:
                    self.assertTrue(session.started.wait(10), "session did not start")
                    session.wait_progress(self)
                    keep = Client(px.port)          # a keep-alive client across reloads
                    self.assertEqual(get_on(keep, "/web"), (200, b"A"))
                    wait_metric_sum(px, "switchyard_tunnels_active", 1, route="chat",
                                    protocol="websocket")

                    # 1: the plain route moves to another scripted backend
                    reload_config(px, cfg([ws_route(), web_route("web", "web_b")]))
                    self.assertEqual(get(px.port, "/web").body, b"B")
                    self.assertEqual(get_on(keep, "/web"), (200, b"B"),
                                     "the next request on a keep-alive connection must "
                                     "use the new file")
                    session.wait_progress(self)

                    # 2: the session's upstream now names another server
                    ups2 = dict(ups, chat={"servers": [srv2.address]})
                    reload_config(px, cfg([ws_route(), web_route("web", "web_b")], ups2))
                    self.assertEqual(ws_echo_once(px.port, "/ws/after-2"), "hello")
                    self.assertEqual(srv2.sessions, ["/ws/after-2"])
                    session.wait_progress(self)
                    self.assertEqual(srv1.sessions, ["/ws/session"])
                    # the session's tunnel still counts against the server it is on
                    wait_metric_sum(px, "switchyard_upstream_tunnels_active", 1,
                                    upstream="chat", server=srv1.address)

                    # 3: the session's route and its upstream are gone
                    ups3 = {"web_b": ups["web_b"]}
                    reload_config(px, cfg([web_route("web", "web_b")], ups3))
                    self.assertEqual(get(px.port, "/ws/x").status, 404)
                    self.assertEqual(ws_echo_once(px.port, "/ws/after-3"), 404)
                    self.assertEqual(get(px.port, "/web").body, b"B")
                    session.wait_progress(self)
                    # the tunnel keeps its route and protocol labels
                    wait_metric_sum(px, "switchyard_tunnels_active", 1, route="chat",
                                    protocol="websocket")

                    # 4: routes under new names
                    ups4 = {"web_a": ups["web_a"], "web_b": ups["web_b"]}
                    reload_config(px, cfg([web_route("site", "web_a"),
                                           web_route("fresh", "web_b", "/fresh")], ups4))
                    self.assertEqual(get(px.port, "/web").body, b"A")
                    self.assertEqual(get(px.port, "/fresh").body, b"B")
                    self.assertEqual(get_on(keep, "/web"), (200, b"A"))
                    m = px.metrics()
                    self.assertEqual(metric_sum(m, "switchyard_requests_total", route="site",
                                                code="2xx"), 2)
                    self.assertEqual(metric_sum(m, "switchyard_requests_total", route="fresh",
                                                code="2xx"), 1)
                    self.assertEqual(get(px.port, "/ws/x").status, 404)
                    session.wait_progress(self)

                    # 5: back to the first file
                    reload_config(px, c0)
                    self.assertEqual(ws_echo_once(px.port, "/ws/after-5"), "hello")
                    self.assertEqual(srv1.sessions, ["/ws/session", "/ws/after-5"])
                    self.assertEqual(get(px.port, "/web").body, b"A")
                    session.wait_progress(self)
                    keep.close()
                finally:
                    session.stop()
                    session.join(15)
                self.assertFalse(session.is_alive(), "session did not finish")
                self.assertEqual(session.errors, [])
                self.assertEqual(session.close_code, 1000)
                self.assertGreater(session.count, 100)
                self.assertTrue(wait_until(lambda: len(srv1.closes) == 2, 5), srv1.closes)
                self.assertIn((1000, "session done"), srv1.closes)
                self.assertEqual(srv1.errors + srv2.errors, [])
                self.assertEqual(metric_sum(px.metrics(), RELOADS, result="ok"), 5)
                self.assertEqual(metric_sum(px.metrics(), RELOADS, result="failed"), 0)
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                # the tunnel kept its byte counters through the reloads
                m = px.metrics()
                for direction in ("client_to_upstream", "upstream_to_client"):
                    self.assertGreaterEqual(
                        metric_sum(m, "switchyard_tunnel_bytes_total", route="chat",
                                   protocol="websocket", direction=direction),
                        session.sent_bytes, direction)
                px.assert_idle()

    def test_established_tunnel_keeps_its_idle_timeout_new_tunnels_get_the_new_one(self):
        with ScriptedBackend(passive, keep_open=True) as be:
            def cfg(idle):
                return make_config([be.address], routes=[ws_route("t", "app", "/")],
                                   timeouts={"tunnel_idle": idle})
            with Proxy(cfg("1h")) as px:
                old_c, old_b = open_ws_tunnel(self, px, be, 0)
                reload_config(px, cfg("400ms"))
                new_c, new_b = open_ws_tunnel(self, px, be, 1)
                start = time.monotonic()
                self.assertIsNotNone(wait_eof(new_c.sock, 3),
                                     "a tunnel opened after the reload ignored the new "
                                     "tunnel_idle")
                self.assertLess(time.monotonic() - start, 2.0)
                time.sleep(max(0.0, 1.2 - (time.monotonic() - start)))
                # the old tunnel, idle for longer than the new limit, still carries bytes
                old_c.send(b"still open")
                self.assertEqual(recv_exact(old_b.sock, 10), b"still open")
                old_b.send(b"yes")
                self.assertEqual(recv_exact(old_c.sock, 3), b"yes")
                for s in (old_c, new_c, old_b, new_b):
                    s.close()
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                px.assert_idle()


class InvalidReload(unittest.TestCase):
    def test_invalid_file_is_reported_as_file_line_col_and_the_old_config_keeps_serving(self):
        with answering(b"A") as be_a, answering(b"B") as be_b:
            good = make_config([], upstreams={"web_a": {"servers": [be_a.address]}},
                               routes=[web_route("web", "web_a")])
            # Line numbers matter: two errors, on lines 9 and 11.
            bad = (
                'listen: [{ address: "127.0.0.1:0" }]\n'                      # 1
                'admin: { address: "127.0.0.1:0" }\n'                         # 2
                f'upstreams: {{ web_b: {{ servers: ["{be_b.address}"] }} }}\n'  # 3
                "routes:\n"                                                   # 4
                "  - name: web\n"                                             # 5
                "    match: { path_prefix: /web }\n"                          # 6
                "    upstream: web_b\n"                                       # 7
                "timeouts:\n"                                                 # 8
                "  tunnel_idel: 1h\n"                                         # 9
                "limits:\n"                                                   # 10
                "  max_header_bytes: lots\n"                                  # 11
                'access_log: { path: "off" }\n')                              # 12
            with Proxy(good) as px:
                self.assertEqual(get(px.port, "/web").body, b"A")
                ts0 = px.metric("switchyard_config_last_reload_success_timestamp_seconds")
                self.assertIsNotNone(ts0)
                path = re.escape(px.config_path)

                err = reload_then_stderr(px, bad, "failed", "reload failed")
                self.assertEqual(get(px.port, "/web").body, b"A",
                                 "an invalid file must change nothing")
                located = re.findall(rf"^{path}:(\d+):(\d+): (.+)$", err, re.M)
                self.assertEqual(sorted(int(l) for l, _, _ in located), [9, 11], err)
                where = {int(l): (int(c), msg) for l, c, msg in located}
                self.assertEqual(where[9][0], 3, err)
                self.assertIn("tunnel_idle", where[9][1], "an unknown key gets a did-you-mean")
                self.assertRegex(err, r"(?m)^switchyard: error: reload failed: 2 errors, keeping "
                                      r"the running configuration$")
                self.assertNotIn("reloaded", err)

                # a file that is not even YAML
                err = reload_then_stderr(px, good.replace("routes:", "routes: [ {", 1),
                                         "failed", "reload failed")
                self.assertRegex(err, rf"(?m)^{path}:\d+:\d+: .+$")

                m = px.metrics()
                self.assertEqual(metric_sum(m, RELOADS, result="failed"), 2)
                self.assertEqual(metric_sum(m, RELOADS, result="ok"), 0)
                self.assertEqual(
                    m.get("switchyard_config_last_reload_success_timestamp_seconds"), ts0)
                self.assertEqual(get(px.port, "/web").body, b"A")

                # and the next valid file applies
                err = reload_then_stderr(px, bad.replace("tunnel_idel", "tunnel_idle")
                                         .replace("lots", "32KiB"), "ok", "reloaded")
                self.assertEqual(get(px.port, "/web").body, b"B")
                self.assertRegex(err, rf"(?m)^switchyard: reloaded {path}$")
                px.assert_idle()

    def test_a_new_listener_that_cannot_be_bound_fails_the_whole_reload(self):
        with answering(b"A") as be_a, answering(b"B") as be_b:
            ups = {"web_a": {"servers": [be_a.address]}, "web_b": {"servers": [be_b.address]}}
            good = make_config([], upstreams=ups, routes=[web_route("web", "web_a")])
            taken = socket.socket()
            taken.bind(("127.0.0.1", 0))
            taken.listen(8)
            try:
                port = taken.getsockname()[1]
                bad = make_config([], upstreams=ups, routes=[web_route("web", "web_b")],
                                  listen=[{"address": "127.0.0.1:0"},
                                          {"address": f"127.0.0.1:{port}"}])
                with Proxy(good) as px:
                    reload_config(px, bad, result="failed")
                    self.assertEqual(get(px.port, "/web").body, b"A",
                                     "a reload that failed on a listener changed routes")
                    self.assertEqual(metric_sum(px.metrics(), RELOADS, result="ok"), 0)
                    px.assert_idle()
            finally:
                taken.close()


class Listeners(unittest.TestCase):
    def test_kept_listener_never_refuses_while_listeners_come_and_go(self):
        p_removed, p_added = free_low_port(), free_low_port()
        while p_added == p_removed:
            p_added = free_low_port()
        kept = {"address": "127.0.0.1:0"}
        removed = {"address": f"127.0.0.1:{p_removed}"}
        added = {"address": f"127.0.0.1:{p_added}"}
        with answering(b"h") as be:
            def cfg(listen, via=False):
                return make_config([be.address], listen=listen, workers=2,
                                   forwarding={"via": via})

            with Proxy(cfg([kept, removed])) as px:
                kept_port = next(p for p in px.ports if p != p_removed)
                self.assertIn(p_removed, px.ports)
                self.assertEqual(get(p_removed, "/").body, b"h")
                hammers = [Hammer(kept_port) for _ in range(4)]
                for h in hammers:
                    h.start()

                def done():
                    return sum(h.ok for h in hammers)
                try:
                    self.assertTrue(wait_until(lambda: done() >= 40, 5), "hammers idle")
                    steps = [
                        ([kept, added], [p_added], [p_removed]),
                        ([kept, added], [p_added], [p_removed]),   # same listeners, via on
                        ([kept, added, removed], [p_added, p_removed], []),
                        ([kept], [], [p_added, p_removed]),
                        ([kept, removed], [p_removed], [p_added]),
                    ] * 2
                    for i, (listen, accepting, refusing) in enumerate(steps):
                        at = done()
                        reload_config(px, cfg(listen, via=(i % 2 == 1)))
                        for p in accepting:
                            self.assertEqual(get(p, "/").body, b"h", f"step {i}: port {p}")
                        for p in refusing:
                            self.assert_refused(p, f"step {i}")
                        self.assertTrue(wait_until(lambda: done() >= at + 40, 5),
                                        f"hammers stalled after reload {i}")
                finally:
                    for h in hammers:
                        h.stop()
                    for h in hammers:
                        h.join(10)
                failures = [f for h in hammers for f in h.failures]
                self.assertEqual(failures, [],
                                 f"{len(failures)} of {done() + len(failures)} connections "
                                 "to the kept listener failed")
                self.assertGreater(done(), 400)
                px.assert_idle()

    def assert_refused(self, port, what):
        for _ in range(20):     # several connections: every worker's socket must be gone
            with self.assertRaises(ConnectionRefusedError, msg=f"{what}: port {port} "
                                   "still accepts after its listener was removed"):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()


class Hammer(threading.Thread):
    """New connections to `port` one after another, each a GET answered 200 "h"; any
    refusal, reset, timeout or wrong answer is a failure."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.ok = 0
        self.failures = []
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def run(self):
        while not self._halt.is_set():
            try:
                resp = get(self.port, "/")
                if (resp.status, resp.body) == (200, b"h"):
                    self.ok += 1
                else:
                    self.failures.append(repr(resp))
            except Exception as e:
                self.failures.append(repr(e))


class RestartOnly(unittest.TestCase):
    def test_workers_change_is_logged_as_needing_a_restart_and_the_rest_applies(self):
        with answering(b"A") as be_a, answering(b"B") as be_b:
            ups = {"web_a": {"servers": [be_a.address]}, "web_b": {"servers": [be_b.address]}}
            with Proxy(make_config([], upstreams=ups, routes=[web_route("web", "web_a")],
                                   workers=1)) as px:
                self.assertEqual(get(px.port, "/web").body, b"A")
                err = reload_config(px, make_config([], upstreams=ups,
                                                    routes=[web_route("web", "web_b")],
                                                    workers=2))
                self.assertTrue(wait_until(lambda: "needs a restart" in px.stderr(), 3))
                self.assertRegex(px.stderr(), r"(?m)^switchyard: reload: 'workers' changed "
                                              r"from 1 to 2; this needs a restart, keeping 1$")
                for _ in range(5):
                    self.assertEqual(get(px.port, "/web").body, b"B",
                                     "the rest of the file must apply")
                self.assertEqual(metric_sum(px.metrics(), RELOADS, result="failed"), 0, err)
                px.assert_idle()


class InFlight(unittest.TestCase):
    def test_request_in_flight_completes_after_its_route_and_upstream_are_removed(self):
        arrived, release = threading.Event(), threading.Event()
        body = b"held body " * 5000

        def held(conn, req):
            arrived.set()
            release.wait(10)
            return ok_response(body)

        with ScriptedBackend(serve_forever(held)) as be_a, answering(b"B") as be_b:
            old = make_config([], upstreams={"web_a": {"servers": [be_a.address]}},
                              routes=[web_route("web", "web_a")],
                              timeouts={"upstream_response": "10s"})
            new = make_config([], upstreams={"other": {"servers": [be_b.address]}},
                              routes=[web_route("other", "other", "/other")],
                              timeouts={"upstream_response": "300ms"})
            with Proxy(old) as px:
                with Client(px.port) as c:
                    c.send(b"GET /web HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.assertTrue(arrived.wait(5), "request never reached the backend")
                    reload_config(px, new)
                    self.assertEqual(get(px.port, "/web").status, 404)
                    self.assertEqual(get(px.port, "/other").body, b"B")
                    time.sleep(1.0)     # past the new file's upstream_response
                    release.set()
                    resp = c.read_response()
                    self.assertEqual((resp.status, resp.body), (200, body),
                                     "the exchange must finish under its own configuration")
                    # the next exchange on the same connection uses the new file
                    self.assertEqual(get_on(c, "/web")[0], 404)
                    self.assertEqual(get_on(c, "/other"), (200, b"B"))
                # the removed server's connection is not kept once its exchange ended
                self.assertTrue(wait_until(lambda: be_a.connections[0].closed_by_peer, 3),
                                "connection to a removed server kept after its exchange")
                px.assert_idle()


class Pools(unittest.TestCase):
    def test_idle_pooled_connections_kept_for_kept_servers_and_closed_for_removed_ones(self):
        with answering(b"A") as be_a, answering(b"B") as be_b:
            both = make_config([], upstreams={"keep": {"servers": [be_a.address]},
                                              "drop": {"servers": [be_b.address]}},
                               routes=[web_route("a", "keep", "/a"),
                                       web_route("b", "drop", "/b")])
            one = make_config([], upstreams={"keep": {"servers": [be_a.address]}},
                              routes=[web_route("a2", "keep", "/a")])
            with Proxy(both) as px:
                self.assertEqual(get_keepalive(px.port, "/a"), b"A")
                self.assertEqual(get_keepalive(px.port, "/b"), b"B")
                self.assertEqual((be_a.accepted, be_b.accepted), (1, 1))
                reload_config(px, one)
                self.assertTrue(wait_until(lambda: be_b.connections[0].closed_by_peer, 3),
                                "idle connection to a removed server left open")
                self.assertFalse(be_a.connections[0].closed_by_peer)
                for _ in range(3):
                    self.assertEqual(get_keepalive(px.port, "/a"), b"A")
                self.assertEqual(be_a.accepted, 1,
                                 "a server in both files must keep its idle connections")
                px.assert_idle()


class EveryWorker(unittest.TestCase):
    def test_every_worker_routes_and_limits_by_the_new_file_at_once(self):
        with answering(b"A") as be_a, answering(b"B") as be_b:
            ups = {"web_a": {"servers": [be_a.address]}, "web_b": {"servers": [be_b.address]}}

            def cfg(upstream, max_header_bytes):
                return make_config([], upstreams=ups, routes=[web_route("web", upstream)],
                                   workers=2, limits={"max_header_bytes": max_header_bytes})
            big = b"X-Big: " + b"b" * 2048 + b"\r\n"
            with Proxy(cfg("web_a", "32KiB")) as px:
                for _ in range(10):
                    self.assertEqual(get(px.port, "/web", extra=big).body, b"A")
                reload_config(px, cfg("web_b", "1KiB"))
                for i in range(30):     # new connections, spread over both workers
                    self.assertEqual(get(px.port, "/web").body, b"B", f"connection {i}")
                    self.assertEqual(get(px.port, "/web", extra=big).status, 431,
                                     f"connection {i}")
                px.assert_idle()


class KeptState(unittest.TestCase):
    def test_a_server_in_both_files_keeps_its_health_state(self):
        dead = f"127.0.0.1:{dead_port()}"
        with answering(b"A") as be_a:
            def cfg(route_name):
                return make_config([], upstreams={"app": {
                    "servers": [dead, be_a.address],
                    "health": {"max_fails": 1, "cooldown": "1h"}}},
                    routes=[web_route(route_name, "app", "/")])
            failures = "switchyard_upstream_connect_failures_total"
            with Proxy(cfg("one")) as px:
                for _ in range(4):          # round robin reaches the dead server: down
                    self.assertEqual(get(px.port, "/").body, b"A")
                self.assertEqual(metric_sum(px.metrics(), failures, upstream="app"), 1)
                reload_config(px, cfg("two"))
                for _ in range(6):
                    self.assertEqual(get(px.port, "/").body, b"A")
                self.assertEqual(metric_sum(px.metrics(), failures, upstream="app"), 1,
                                 "the reload forgot that the server is down")
                px.assert_idle()

    def test_admin_listener_moves_when_its_address_changes(self):
        new_admin = free_low_port()
        with answering(b"A") as be:
            with Proxy(make_config([be.address])) as px:
                old_admin = px.admin_port
                block = 'admin:\n  address: "127.0.0.1:0"'
                self.assertIn(block, px.config_text)
                text = px.config_text.replace(block, f'admin:\n  address: "127.0.0.1:{new_admin}"')
                with open(px.config_path, "w") as f:
                    f.write(text)
                px.config_text = text
                px.proc.send_signal(signal.SIGHUP)
                px.admin_port = new_admin

                def moved():
                    try:
                        return metric_sum(px.metrics(), RELOADS, result="ok") == 1
                    except OSError:
                        return False
                self.assertTrue(wait_until(moved, 5), "no admin on the new address")
                with self.assertRaises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", old_admin), timeout=2).close()
                self.assertEqual(get(px.port, "/").body, b"A")
                px.assert_idle()


if __name__ == "__main__":
    main()
