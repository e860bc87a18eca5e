"""Terminate mode (`upgrade.terminate: websocket`, docs/upgrades.md): the proxy is the
WebSocket server (RFC 6455 §4.2, §5-§7) and the upstream a plain TCP service.

- Three independent clients (python3-websockets, Autobahn|Python, node ws) through the
  proxy to a speak-first TCP echo service: subprotocol, declined permessage-deflate,
  messages of 0 B .. 1 MiB across the 7/16/64-bit length boundaries, 1,000 messages in
  order, SHA-256 both ways checked against what the service saw, close 1000; and 50
  concurrent sessions.
- The handshake the proxy answers itself: Sec-WebSocket-Accept, subprotocol selection, no
  extension, no HTTP upstream, policy errors (400/426), a discarded request body, 502 and
  no 101 when the upstream cannot be reached.
- Raw frames from our own framing code (terminate_support.py, itself checked against
  python3-websockets in FramingSelfCheck): every close code of the contract (1002, 1007,
  1009), nothing parsed after one, frames cut at every byte, valid UTF-8 split across
  fragments, ping/pong, control frames inside a fragmented message, how the proxy frames
  upstream bytes.
- Ends: the close handshake both ways (and the 5 s limit when the client never answers),
  queued payload before the upstream's EOF, upstream EOF (1000), upstream reset (1011),
  client EOF without a close frame, client reset; base64 subprotocol; backpressure both
  ways (proxy RSS stays flat); tunnel_idle; metrics and the access log; bad configs.

Every wait is bounded; everything runs on 127.0.0.1."""

import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (SWITCHYARD_BIN, Proxy, dead_port, main, make_config, metric_sum,
                     wait_metric_sum)
from terminate_support import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                               Eof, FrameReader, TcpService, WsClient, WsReferenceServer,
                               autobahn_session, build_frame, close_payload, handshake_request,
                               protocol_error_cases, read_head,
                               websockets_session, ws_accept)

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = "/usr/bin/node"
MiB = 1 << 20
GREETING = b"RFB 003.008\n"          # what a VNC server says first
SMALL_MAX = 1000                     # max_message of the /small route
SESSION_TIMEOUT = 30.0


def terminate_route(name, path, upstream, subprotocols=None, max_message=None,
                    allow=("websocket",)):
    up = {"allow": list(allow), "terminate": "websocket"}
    if subprotocols is not None:
        up["subprotocols"] = list(subprotocols)
    if max_message is not None:
        up["max_message"] = max_message
    return {"name": name, "match": {"path_prefix": path}, "upstream": upstream, "upgrade": up}


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def start(test_class, ctx):
    """Enters a context manager for a whole test class (exited in reverse order)."""
    value = ctx.__enter__()
    test_class.addClassCleanup(ctx.__exit__, None, None, None)
    return value


class TerminateCase(unittest.TestCase):
    """One proxy for the class: routes to an echo service (/echo, subprotocols binary and
    base64; /plain, none), a speak-first echo (/greet), a passive service the test drives
    (/ctl; /small with max_message 1000) and a dead port (/dead)."""

    proxy_sections = {}
    ctl_rcvbuf = None

    @classmethod
    def setUpClass(cls):
        cls.echo = start(cls, TcpService("echo"))
        cls.greeter = start(cls, TcpService("echo", greeting=GREETING))
        cls.ctl = start(cls, TcpService("passive", rcvbuf=cls.ctl_rcvbuf))
        upstreams = {"echo": {"servers": [cls.echo.address]},
                     "greeter": {"servers": [cls.greeter.address]},
                     "ctl": {"servers": [cls.ctl.address]},
                     "dead": {"servers": [f"127.0.0.1:{dead_port()}"]}}
        routes = [terminate_route("echo", "/echo", "echo", ["binary", "base64"]),
                  terminate_route("plain", "/plain", "echo"),
                  terminate_route("greet", "/greet", "greeter", ["binary"]),
                  terminate_route("ctl", "/ctl", "ctl", ["binary", "base64"]),
                  terminate_route("small", "/small", "ctl", max_message=SMALL_MAX),
                  terminate_route("dead", "/dead", "dead", ["binary"])]
        sections = {"tunnel": {"buffer": "64KiB"}}
        sections.update(cls.proxy_sections)
        cls.px = start(cls, Proxy(make_config([], upstreams=upstreams, routes=routes,
                                              **sections)))

    def setUp(self):
        for svc in (self.echo, self.greeter, self.ctl):
            svc.drain()
        # every test ends with no tunnel and no client connection left (checked after
        # the test's own cleanups have closed its sockets)
        self.addCleanup(self.px.assert_idle)
        self.addCleanup(wait_metric_sum, self.px, "switchyard_tunnels_active", 0)

    def open(self, path="/ctl", svc=None, **handshake):
        """A switched WsClient on `path` and the service connection behind it."""
        c = WsClient(self.px.port, path, **handshake)
        self.addCleanup(c.close)
        resp = c.open()
        self.assertEqual(resp.status, 101, resp)
        conn = (svc or self.ctl).next_conn()
        # A failed test must not leave a half-open tunnel behind (it would stay open,
        # as half-close wants, and hold the proxy's drain at the end).
        self.addCleanup(conn.close)
        return c, conn

    def metrics(self):
        return self.px.metrics()

    def closed(self, metrics, route, reason):
        return metric_sum(metrics, "switchyard_tunnels_closed_total", route=route,
                          protocol="websocket", reason=reason)


# --------------------------------------------------------------------------- our framing


class FramingSelfCheck(unittest.TestCase):
    """Our framing code against python3-websockets (no proxy): the same bad-frame table
    gets the same close codes from an independent server, and our frames of every length
    form round-trip. If this fails, the proxy tests below prove nothing."""

    def test_bad_frames_get_the_same_close_codes_from_websockets(self):
        with WsReferenceServer(subprotocols=["binary"], max_size=SMALL_MAX) as ref:
            for name, frames, code, _ in protocol_error_cases(SMALL_MAX):
                with self.subTest(name), WsClient(ref.port, "/", protocols="binary") as c:
                    self.assertEqual(c.open().status, 101)
                    for f in frames:
                        c.send_raw(f)
                    self.assertEqual(c.recv_close()[0], code)

    def test_every_length_form_round_trips(self):
        with WsReferenceServer(max_size=2 * MiB) as ref, WsClient(ref.port, "/") as c:
            resp = c.open()
            self.assertEqual(resp.header("Sec-WebSocket-Accept"), ws_accept(c.key).decode())
            for n, form in [(0, None), (125, None), (126, None), (65535, None),
                            (65536, None), (MiB, None), (5, 16), (5, 64), (300, 64)]:
                payload = os.urandom(n)
                c.send_binary(payload, length_form=form)
                f = c.recv_frame()
                self.assertEqual((f.opcode, f.payload, f.masked, f.minimal),
                                 (OP_BINARY, payload, False, True), n)
                self.assertEqual(f.header_len, 2 if n <= 125 else 4 if n <= 65535 else 10)
            c.send_frame(OP_TEXT, "\u20ac".encode()[:1], fin=False)
            c.send_frame(OP_PING, b"between")
            c.send_frame(OP_CONT, "\u20ac".encode()[1:])
            self.assertEqual(c.recv_frame().payload, b"between")
            self.assertEqual(c.recv_frame().payload, "\u20ac".encode())
            c.send_close(4000, "bye")
            self.assertEqual(c.recv_close(), (4000, b"bye"))


# --------------------------------------------------------------------------- three clients


class ThreeClients(TerminateCase):
    """The same scenario (terminate_support._scenario) from three independent client
    implementations through /greet to a speak-first echo service."""

    def check(self, result, name):
        self.assertEqual(result["errors"], [], result)
        self.assertEqual(result["protocol"], "binary", result)
        self.assertFalse(result["extensions"], f"{name}: an extension was negotiated: {result}")
        self.assertEqual(result.get("negotiated_extensions", []), [], result)
        self.assertEqual(result["greeting"], GREETING.decode(), result)
        self.assertEqual(result["sizes"], [[s, True] for s in
                                           (0, 1, 125, 126, 127, 65535, 65536, MiB)], result)
        self.assertTrue(result["text_ok"], result)
        self.assertTrue(result["order_ok"], result)
        self.assertEqual(result["close_code"], 1000, result)
        # upstream bytes only ever come back as binary messages (subprotocol binary)
        self.assertEqual(result["message_types"], ["binary"], result)
        # checksums both ways: what the client sent is what the service received, and
        # what the service sent (greeting + echoes) is what the client received
        conn = self.greeter.next_conn()
        self.assertTrue(conn.wait_eof(5), f"{name}: the service never saw EOF after the close")
        self.assertEqual(len(conn.received), result["sent_bytes"])
        self.assertEqual(conn.sha_in.hexdigest(), result["sent_sha256"],
                         f"{name}: client->service bytes differ")
        self.assertEqual(conn.sent, result["recv_bytes"])
        self.assertEqual(conn.sha_out.hexdigest(), result["recv_sha256"],
                         f"{name}: service->client bytes differ")

    def run_async(self, session):
        url = f"ws://127.0.0.1:{self.px.port}/greet"
        return asyncio.run(asyncio.wait_for(session(url, "binary", len(GREETING)),
                                            SESSION_TIMEOUT))

    def test_python_websockets(self):
        self.check(self.run_async(websockets_session), "websockets")

    def test_autobahn(self):
        result = self.run_async(autobahn_session)
        self.assertTrue(result["was_clean"], result)
        self.check(result, "autobahn")

    def test_fifty_concurrent_websockets_clients(self):
        """50 sessions at once through /echo, each with its own random stream: no bytes
        cross between tunnels (per-connection framing and decoding state)."""
        import random
        import websockets

        async def one(i):
            rng = random.Random(i)
            async with websockets.connect(f"ws://127.0.0.1:{self.px.port}/echo",
                                          subprotocols=["binary"], max_size=None,
                                          open_timeout=10, close_timeout=5) as ws:
                sent = b"".join([rng.randbytes(rng.randrange(0, 20000)) for _ in range(20)])
                got = bytearray()
                pos = 0
                for _ in range(20):
                    n = rng.randrange(0, 20000)
                    await ws.send(sent[pos:pos + n])
                    pos += n
                await ws.send(sent[pos:])

                while len(got) < len(sent):
                    got += await ws.recv()
                await ws.close(1000)
                return sent, bytes(got), ws.close_code

        async def all_sessions():
            return await asyncio.gather(*(one(i) for i in range(50)))

        results = asyncio.run(asyncio.wait_for(all_sessions(), SESSION_TIMEOUT))
        for i, (sent, got, code) in enumerate(results):
            self.assertEqual(len(got), len(sent), i)
            self.assertTrue(got == sent, f"session {i}: echoed bytes differ")
            self.assertEqual(code, 1000)
        conns = [self.echo.next_conn() for _ in range(50)]
        for conn in conns:
            self.assertTrue(conn.wait_eof(5))
        self.assertEqual(sorted(c.sha_in.hexdigest() for c in conns),
                         sorted(hashlib.sha256(sent).hexdigest() for sent, _, _ in results))

    def test_node_ws(self):
        self.assertTrue(os.path.exists(NODE), "node is needed (.ci/install-deps)")
        out = subprocess.run([NODE, os.path.join(HERE, "terminate_node_client.js"),
                              f"ws://127.0.0.1:{self.px.port}/greet", "binary",
                              str(len(GREETING))], capture_output=True,
                             timeout=SESSION_TIMEOUT + 10)
        lines = out.stdout.decode().strip().splitlines()
        self.assertTrue(lines, f"node printed nothing: {out.stderr.decode()[-2000:]}")
        result = json.loads(lines[-1])
        self.assertEqual(out.returncode, 0, (result, out.stderr.decode()[-2000:]))
        self.check(result, "node ws")


# --------------------------------------------------------------------------- handshake


class Handshake(TerminateCase):
    def test_101_is_the_proxys_own_and_nothing_http_goes_upstream(self):
        c = WsClient(self.px.port, "/echo?x=1", protocols="binary",
                     extensions="permessage-deflate; client_max_window_bits")
        with c:
            resp = c.open()
            self.assertEqual(resp.status, 101, resp)
            self.assertTrue(resp.status_line.startswith("HTTP/1.1 101"), resp)
            self.assertEqual(resp.header("Upgrade").lower(), "websocket", resp)
            self.assertIn("upgrade", [t.strip().lower() for t in
                                      (resp.header("Connection") or "").split(",")], resp)
            self.assertEqual(resp.headers("Sec-WebSocket-Accept"), [ws_accept(c.key).decode()])
            self.assertEqual(resp.headers("Sec-WebSocket-Protocol"), ["binary"])
            self.assertEqual(resp.headers("Sec-WebSocket-Extensions"), [],
                             "permessage-deflate must be declined by omission")
            self.assertIsNone(resp.header("Content-Length"))
            self.assertIsNone(resp.header("Transfer-Encoding"))
            conn = self.echo.next_conn()
            c.send_binary(b"first bytes")
            self.assertEqual(c.recv_data(11), b"first bytes")
            # the service saw the payload and nothing else: no request head, no frame header
            self.assertEqual(bytes(conn.received), b"first bytes")
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)

    def test_frames_sent_with_the_handshake_reach_the_service_after_the_switch(self):
        # A client that does not wait for the 101 (bytes around the switch): its frames,
        # held while the proxy connects, reach the service in order once it answers; a close
        # among them is answered and ends the session there, nothing after it is read.
        s = socket.create_connection(("127.0.0.1", self.px.port), timeout=5)
        try:
            s.sendall(handshake_request("/ctl") + build_frame(OP_BINARY, b"early ")
                      + build_frame(OP_TEXT, b"bytes") + build_frame(OP_CLOSE, close_payload(1001))
                      + build_frame(OP_BINARY, b"after the close"))
            resp, rest = read_head(s)
            self.assertEqual(resp.status, 101, resp)
            conn = self.ctl.next_conn()
            self.assertTrue(conn.read_until_eof(), "the service never got EOF")
            self.assertEqual(bytes(conn.received), b"early bytes")
            frame = FrameReader(s, rest).read_frame()
            self.assertEqual((frame.opcode, frame.close_code()[0]), (OP_CLOSE, 1001))
            s.settimeout(3)
            self.assertEqual(s.recv(100), b"", "the connection stays open after the close handshake")
        finally:
            s.close()

    def test_subprotocol_is_the_routes_first_that_the_client_offered(self):
        cases = [  # (path, offered Sec-WebSocket-Protocol lines, selected)
            ("/echo", ["binary"], "binary"),
            ("/echo", ["base64"], "base64"),
            ("/echo", ["base64, binary"], "binary"),      # the route's order wins
            ("/echo", ["foo, base64"], "base64"),
            ("/echo", ["foo", "base64"], "base64"),        # offers on two field lines
            ("/echo", ["foo"], None),                     # nothing matches: no field
            ("/echo", None, None),                        # nothing offered: no field
            ("/plain", ["binary"], None),                 # the route lists none
        ]
        for path, offered, selected in cases:
            with self.subTest(path=path, offered=offered):
                extra = b""
                for line in (offered or [])[1:]:
                    extra += b"Sec-WebSocket-Protocol: " + line.encode() + b"\r\n"
                with WsClient(self.px.port, path, extra=extra,
                              protocols=offered[0] if offered else None) as c:
                    resp = c.open()
                    self.assertEqual(resp.status, 101, resp)
                    self.assertEqual(resp.headers("Sec-WebSocket-Protocol"),
                                     [selected] if selected else [], resp)
                    self.assertEqual(resp.headers("Sec-WebSocket-Extensions"), [])
                    self.echo.next_conn()
                    c.send_close()
                    self.assertEqual(c.recv_close()[0], 1000)

    def test_speak_first_service_bytes_follow_the_101(self):
        with WsClient(self.px.port, "/greet", protocols="binary") as c:
            self.assertEqual(c.open().status, 101)
            self.assertEqual(c.recv_data(len(GREETING)), GREETING)
            self.greeter.next_conn()
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)

    def test_bad_websocket_requests_get_400_or_426_and_nothing_goes_upstream(self):
        before = self.echo.accepted
        cases = [
            ("version 8", dict(version=b"8"), 426),
            ("no key", dict(key=False), 400),
            ("key of 8 bytes", dict(key=base64.b64encode(b"12345678")), 400),
            ("POST", dict(method=b"POST", extra=b"Content-Length: 0\r\n"), 400),
        ]
        for name, kw, status in cases:
            with self.subTest(name), WsClient(self.px.port, "/echo", protocols="binary",
                                              **kw) as c:
                resp = c.open()
                self.assertEqual(resp.status, status, resp)
                self.assertEqual(resp.headers("Sec-WebSocket-Accept"), [])
                if status == 426:
                    self.assertEqual(resp.header("Sec-WebSocket-Version"), "13", resp)
                    self.assertEqual(resp.header("Upgrade").lower(), "websocket", resp)
        time.sleep(0.2)
        self.assertEqual(self.echo.accepted, before, "the proxy connected upstream for a "
                         "request it refused")

    def test_request_body_is_discarded_before_the_switch(self):
        c = WsClient(self.px.port, "/echo", protocols="binary",
                     extra=b"Content-Length: 11\r\n")
        with c:
            resp = c.open(body=b"body-bytes!")
            self.assertEqual(resp.status, 101, resp)
            conn = self.echo.next_conn()
            c.send_binary(b"payload")
            self.assertEqual(c.recv_data(7), b"payload")
            self.assertEqual(bytes(conn.received), b"payload")
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)

    def test_unreachable_upstream_gets_502_and_no_101(self):
        m0 = self.metrics()
        with WsClient(self.px.port, "/dead", protocols="binary") as c:
            resp = c.open()
            self.assertEqual(resp.status, 502, resp)
            self.assertEqual(resp.headers("Sec-WebSocket-Accept"), [])
            self.assertEqual(resp.headers("Upgrade"), [])
        m1 = self.metrics()
        self.assertEqual(metric_sum(m1, "switchyard_upstream_connect_failures_total",
                                    upstream="dead")
                         - metric_sum(m0, "switchyard_upstream_connect_failures_total",
                                      upstream="dead"), 1)
        self.assertEqual(metric_sum(m1, "switchyard_upgrades_total", route="dead",
                                    outcome="terminated")
                         - metric_sum(m0, "switchyard_upgrades_total", route="dead",
                                      outcome="terminated"), 0)


# --------------------------------------------------------------------------- frames


class Frames(TerminateCase):
    def test_every_protocol_error_gets_its_close_code(self):
        """Each case: a good message goes through, then the bad frame(s): the proxy sends
        close 1002/1007/1009, then its FIN; the upstream connection is closed; the bad
        frame's payload never reaches the upstream; the tunnel counts as protocol_error."""
        cases = protocol_error_cases(SMALL_MAX)
        m0 = self.metrics()
        for name, frames, code, forbidden in cases:
            with self.subTest(name):
                c, conn = self.open("/small")
                with c:
                    c.send_binary(b"before")
                    self.assertEqual(conn.recv_exact(6), b"before")
                    for f in frames:
                        c.send_raw(f)
                    got, reason = c.recv_close()
                    self.assertEqual(got, code, f"{name}: close {got} {reason!r}")
                    self.assertIsNotNone(c.wait_eof(2), f"{name}: no FIN after the close frame")
                self.assertTrue(conn.read_until_eof(3), f"{name}: upstream left open")
                if forbidden is not None:
                    self.assertNotIn(forbidden, bytes(conn.received), name)
                conn.close()
        wait_metric_sum(self.px, "switchyard_tunnels_closed_total",
                        self.closed(m0, "small", "protocol_error") + len(cases),
                        route="small", protocol="websocket", reason="protocol_error")

    def test_nothing_is_parsed_after_a_protocol_error(self):
        """After its close frame for a protocol error the proxy parses nothing more: a
        ping behind the bad frame gets no pong, data behind it never reaches the
        upstream; the connection goes as soon as the client closes (not 5 s later)."""
        after = build_frame(OP_PING, b"after-error") + build_frame(OP_BINARY, b"after-data")
        cases = [("unmasked", build_frame(OP_BINARY, b"bad", mask=False), 1002),
                 ("invalid UTF-8", build_frame(OP_TEXT, b"\xff"), 1007),
                 ("too big", build_frame(OP_BINARY, b"x" * (SMALL_MAX + 1)), 1009)]
        for name, bad, code in cases:
            with self.subTest(name):
                c, conn = self.open("/small")
                with c:
                    c.send_raw(bad + after)          # one segment: all of it arrives at once
                    self.assertEqual(c.recv_close()[0], code)
                    self.assertIsNotNone(c.wait_eof(2), "a frame after the close frame")
                    c.sock.shutdown(socket.SHUT_WR)
                    start = time.monotonic()
                    self.px.wait_metric("switchyard_connections_active", 0, 2.0)
                    self.assertLess(time.monotonic() - start, 2.0)
                self.assertTrue(conn.read_until_eof(3))
                self.assertNotIn(b"after-data", bytes(conn.received))
                conn.close()

    def test_frames_split_at_every_byte(self):
        """The frame parser copes with any TCP segmentation: headers (7/16/64-bit lengths,
        masking keys) and payloads cut into single bytes and odd-sized pieces."""
        big = os.urandom(70000)
        stream = (build_frame(OP_TEXT, b"s" * 200, fin=False)      # 16-bit length
                  + build_frame(OP_PING, b"split-ping")
                  + build_frame(OP_CONT, b"e" * 5, fin=False)       # 7-bit length
                  + build_frame(OP_CONT, b"!")
                  + build_frame(OP_BINARY, big))                    # 64-bit length
        c, conn = self.open("/ctl")
        with c:
            pos = 0
            for size in [1] * 260 + [7, 13, 1000, 3] + [1] * 20:
                c.send_raw(stream[pos:pos + size])
                pos += size
                if size == 1 and pos % 20 == 0:
                    time.sleep(0.002)       # let some single bytes travel on their own
            c.send_raw(stream[pos:])
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"split-ping"), f)
            want = b"s" * 200 + b"e" * 5 + b"!" + big
            self.assertEqual(conn.recv_exact(len(want)), want)
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        self.assertEqual(bytes(conn.received), want)
        conn.close()

    def test_message_over_the_default_max_message_gets_1009(self):
        """Default max_message is 1 MiB: exactly 1 MiB passes (ThreeClients), one more
        byte closes with 1009."""
        c, conn = self.open("/ctl")
        with c:
            frame = build_frame(OP_BINARY, b"z" * (MiB + 1))
            sender = threading.Thread(target=self._send_quietly, args=(c.sock, frame),
                                      daemon=True)
            sender.start()
            self.assertEqual(c.recv_close()[0], 1009)
            self.assertIsNotNone(c.wait_eof(2))
            c.sock.shutdown(socket.SHUT_RDWR)      # also wakes the blocked sender
        self.assertTrue(conn.read_until_eof(3))
        sender.join(5)
        conn.close()

    @staticmethod
    def _send_quietly(sock, data):
        try:
            sock.sendall(data)
        except OSError:
            pass

    def test_valid_utf8_split_across_fragments_passes(self):
        text = "a\u00e9\u20ac\U0001f600z".encode()
        c, conn = self.open("/ctl")
        with c:
            # one byte per fragment: every code point is cut
            c.send_frame(OP_TEXT, text[:1], fin=False)
            for i in range(1, len(text) - 1):
                c.send_frame(OP_CONT, text[i:i + 1], fin=False)
            c.send_frame(OP_CONT, text[-1:])
            # an empty fragment in the middle of a message is legal too
            c.send_frame(OP_TEXT, "\u20ac".encode()[:2], fin=False)
            c.send_frame(OP_CONT, b"", fin=False)
            c.send_frame(OP_CONT, "\u20ac".encode()[2:])
            # a binary message may hold anything, split anywhere
            c.send_frame(OP_BINARY, b"\xff\xfe", fin=False)
            c.send_frame(OP_CONT, b"\xc0")
            want = text + "\u20ac".encode() + b"\xff\xfe\xc0"
            self.assertEqual(conn.recv_exact(len(want)), want)
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        self.assertEqual(bytes(conn.received), want)
        conn.close()

    def test_ping_gets_a_pong_with_the_same_payload_and_pongs_are_ignored(self):
        c, conn = self.open("/ctl")
        with c:
            for payload in (b"hello-ping", b"", os.urandom(125)):
                c.send_frame(OP_PING, payload)
                f = c.recv_frame()
                self.assertEqual((f.opcode, f.fin, f.masked, f.rsv, f.payload),
                                 (OP_PONG, True, False, 0, payload), f)
            c.send_frame(OP_PONG, b"unsolicited")
            c.send_binary(b"data")
            c.send_frame(OP_PING, b"p2")
            f = c.recv_frame()          # nothing answered the pong: the next frame is p2's
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"p2"), f)
            self.assertEqual(conn.recv_exact(4), b"data")
            self.assertTrue(c.no_frame(0.2))
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        self.assertEqual(bytes(conn.received), b"data", "ping/pong payloads leaked upstream")
        conn.close()

    def test_control_frames_inside_a_fragmented_message(self):
        c, conn = self.open("/ctl")
        with c:
            c.send_frame(OP_TEXT, b"Hel", fin=False)
            c.send_frame(OP_PING, b"inside")
            c.send_frame(OP_CONT, b"lo, ", fin=False)
            c.send_frame(OP_PONG, b"ignored")
            c.send_frame(OP_CONT, b"world")
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"inside"), f)
            self.assertEqual(conn.recv_exact(12), b"Hello, world")
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        self.assertEqual(bytes(conn.received), b"Hello, world")
        conn.close()

    def test_upstream_bytes_become_unmasked_binary_frames(self):
        """1 MiB written by the service at once arrives as binary frames (FIN, unmasked,
        minimal lengths; reads are at most tunnel.buffer = 64 KiB, so several frames)."""
        data = os.urandom(MiB)
        c, conn = self.open("/ctl", protocols="binary")
        with c:
            threading.Thread(target=conn.send, args=(data,), daemon=True).start()
            self.assertEqual(c.recv_data(len(data), timeout=10), data)
            self.assertGreater(len(c.frames), 1)
            self.assertTrue(all(len(f.payload) <= 64 * 1024 for f in c.frames),
                            max(len(f.payload) for f in c.frames))
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        conn.close()


# --------------------------------------------------------------------------- ends


class Ends(TerminateCase):
    def test_client_close_is_answered_with_its_code_then_upstream_eof(self):
        for sent, expected in [(None, 1000), (1000, 1000), (1001, 1001), (1003, 1003),
                               (1008, 1008), (1011, 1011), (1014, 1014), (3000, 3000),
                               (4999, 4999)]:
            with self.subTest(code=sent):
                c, conn = self.open("/ctl")
                with c:
                    c.send_binary(b"last words")
                    self.assertEqual(conn.recv_exact(10), b"last words")
                    self.assertEqual(conn.recv_some(0.1), b"")
                    self.assertFalse(conn.eof.is_set(), "upstream EOF before the close frame")
                    c.send_close(sent, b"bye" if sent else b"")
                    code, _ = c.recv_close()
                    self.assertEqual(code, expected)
                    self.assertIsNotNone(c.wait_eof(2), "client connection left open after "
                                         "the close handshake")
                self.assertTrue(conn.read_until_eof(3), "the service never saw EOF")
                self.assertEqual(bytes(conn.received), b"last words")
                conn.close()

    def test_upstream_eof_becomes_close_1000_and_client_data_still_flows(self):
        m0 = self.metrics()
        c, conn = self.open("/ctl")
        with c:
            conn.send(b"goodbye from the service")
            conn.shutdown_write()
            code, _ = c.recv_close(allow_data=True)
            self.assertEqual(code, 1000)
            self.assertEqual(bytes(c.data_before_close), b"goodbye from the service")
            # until the client's close arrives, its data frames still go upstream
            c.send_binary(b"after the close")
            self.assertEqual(conn.recv_exact(15), b"after the close")
            c.send_close(1000)
            self.assertIsNotNone(c.wait_eof(2), "client connection left open")
        self.assertTrue(conn.read_until_eof(3))
        conn.close()
        wait_metric_sum(self.px, "switchyard_tunnels_closed_total",
                        self.closed(m0, "ctl", "eof") + 1,
                        route="ctl", protocol="websocket", reason="eof")

    def test_queued_payload_reaches_the_upstream_before_its_eof(self):
        """Data and the close frame in one segment while the service reads nothing:
        every payload byte is written upstream first, then the write shutdown."""
        data = os.urandom(MiB)
        c, conn = self.open("/ctl")
        with c:
            frames = b"".join(build_frame(OP_BINARY, data[i:i + 65536])
                              for i in range(0, len(data), 65536))
            sender = threading.Thread(target=c.send_raw,
                                      args=(frames + build_frame(OP_CLOSE, b"\x03\xe8"),),
                                      daemon=True)
            sender.start()
            time.sleep(0.3)                 # the service is slow to start reading
            self.assertTrue(conn.read_until_eof(10))
            self.assertEqual(len(conn.received), len(data))
            self.assertTrue(bytes(conn.received) == data, "payload differs")
            sender.join(5)
            self.assertEqual(c.recv_close()[0], 1000)
            self.assertIsNotNone(c.wait_eof(2))
        conn.close()

    def test_a_client_that_never_answers_the_close_is_dropped_after_5_s(self):
        c, conn = self.open("/ctl")
        with c:
            conn.shutdown_write()
            self.assertEqual(c.recv_close()[0], 1000)
            start = time.monotonic()
            took = c.wait_eof(8)
            self.assertIsNotNone(took, "client connection still open 8 s after the close")
            self.assertTrue(4.0 < time.monotonic() - start < 7.0, took)
        conn.close()

    def test_client_eof_without_close_frame_is_a_half_close(self):
        c, conn = self.open("/ctl")
        with c:
            c.send_binary(b"one")
            c.shutdown_write()
            self.assertTrue(conn.read_until_eof(3), "the service never saw EOF")
            self.assertEqual(bytes(conn.received), b"one")
            conn.send(b"still flowing")
            self.assertEqual(c.recv_data(13), b"still flowing")
            conn.shutdown_write()
            self.assertEqual(c.recv_close()[0], 1000)
            self.assertIsNotNone(c.wait_eof(2))
        conn.close()

    def test_upstream_reset_becomes_close_1011(self):
        m0 = self.metrics()
        c, conn = self.open("/ctl")
        with c:
            conn.send(b"x")
            self.assertEqual(c.recv_data(1), b"x")
            conn.reset()
            self.assertEqual(c.recv_close()[0], 1011)
            # the client completes the close handshake; then the proxy closes the TCP
            # connection (without our reply it may wait up to 5 s)
            c.send_close(1011)
            self.assertIsNotNone(c.wait_eof(2), "client connection left open after the "
                                 "close handshake")
        wait_metric_sum(self.px, "switchyard_tunnels_closed_total",
                        self.closed(m0, "ctl", "upstream_reset") + 1,
                        route="ctl", protocol="websocket", reason="upstream_reset")

    def test_client_reset_closes_the_upstream(self):
        m0 = self.metrics()
        c, conn = self.open("/ctl")
        c.send_binary(b"abc")
        self.assertEqual(conn.recv_exact(3), b"abc")
        c.reset()
        self.assertTrue(conn.read_until_eof(3), "upstream left open after the client's reset")
        conn.close()
        wait_metric_sum(self.px, "switchyard_tunnels_closed_total",
                        self.closed(m0, "ctl", "client_reset") + 1,
                        route="ctl", protocol="websocket", reason="client_reset")


# --------------------------------------------------------------------------- base64


class Base64(TerminateCase):
    def frames_decoded(self, c, n):
        """Text frames until `n` decoded bytes; each frame is the base64 of one chunk."""
        out = bytearray()
        deadline = time.monotonic() + 10
        while len(out) < n:
            f = c.recv_frame(max(0.0, deadline - time.monotonic()))
            self.assertEqual((f.opcode, f.fin, f.masked), (OP_TEXT, True, False), f)
            out += base64.b64decode(f.payload, validate=True)
        self.assertEqual(len(out), n)
        return bytes(out)

    def test_text_is_decoded_upstream_and_upstream_bytes_come_back_as_base64_text(self):
        data = os.urandom(100_000)
        c, conn = self.open("/ctl", protocols="base64")
        with c:
            self.assertEqual(c.response.headers("Sec-WebSocket-Protocol"), ["base64"])
            c.send_text(base64.b64encode(b"hello \x00\xff"))
            self.assertEqual(conn.recv_exact(8), b"hello \x00\xff")
            c.send_text(base64.b64encode(data))
            self.assertEqual(conn.recv_exact(8 + len(data))[8:], data)
            small = b"\x00\x01binary\xfe\xff"
            conn.send(small)
            self.assertEqual(self.frames_decoded(c, len(small)), small)
            threading.Thread(target=conn.send, args=(data,), daemon=True).start()
            self.assertEqual(self.frames_decoded(c, len(data)), data)
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        conn.close()

    def test_fragmented_base64_message_is_decoded_as_a_whole(self):
        """Fragments are joined before decoding: cuts inside a 4-character group."""
        raw = bytes(range(256)) * 3
        text = base64.b64encode(raw)
        c, conn = self.open("/ctl", protocols="base64")
        with c:
            c.send_frame(OP_TEXT, text[:5], fin=False)
            c.send_frame(OP_CONT, text[5:11], fin=False)
            c.send_frame(OP_CONT, text[11:])
            self.assertEqual(conn.recv_exact(len(raw)), raw)
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        conn.close()


# --------------------------------------------------------------------------- backpressure


class Backpressure(TerminateCase):
    """tunnel.buffer is 64 KiB here: a fast sender to a stalled reader never grows the
    proxy's memory; once the reader reads, every byte arrives intact."""

    # The kernel's socket buffers on the way hold 10 to 20 MiB here, more now and then when
    # TCP autotuning grows them: the streams are long enough to keep the sender blocked.
    SIZE = 96 * MiB
    ctl_rcvbuf = 64 * 1024

    def test_client_to_slow_service(self):
        data = os.urandom(self.SIZE)
        frames = [build_frame(OP_BINARY, data[i:i + 65536])
                  for i in range(0, len(data), 65536)]
        c, conn = self.open("/ctl", sndbuf=64 * 1024)
        with c:
            pid = self.px.proc.pid
            base = vm_rss_kib(pid)
            sent = [0]

            def send_all():
                c.sock.settimeout(30)
                try:
                    for f in frames:
                        c.sock.sendall(f)
                        sent[0] += 1
                except OSError:
                    pass
            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            peak = base
            deadline = time.monotonic() + 2.0        # the service reads nothing for 2 s
            while time.monotonic() < deadline:
                peak = max(peak, vm_rss_kib(pid))
                time.sleep(0.05)
            stalled = sent[0]
            self.assertTrue(sender.is_alive(), "all 32 MiB went out: nothing stopped reading")
            self.assertLess(stalled, len(frames) // 2, "the client's sends did not block")
            self.assertLess(peak - base, 8 * 1024, f"proxy RSS grew {peak - base} KiB with a "
                            f"stalled service ({stalled} frames sent)")
            sha, count, next_sample = hashlib.sha256(), 0, MiB
            end = time.monotonic() + 30
            conn.sock.settimeout(1)
            while count < self.SIZE and time.monotonic() < end:
                try:
                    chunk = conn.sock.recv(1 << 18)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                sha.update(chunk)
                count += len(chunk)
                if count >= next_sample:
                    peak = max(peak, vm_rss_kib(pid))
                    next_sample += MiB
            sender.join(10)
            self.assertEqual(count, self.SIZE)
            self.assertEqual(sha.hexdigest(), hashlib.sha256(data).hexdigest())
            self.assertLess(peak - base, 8 * 1024, f"proxy RSS grew {peak - base} KiB")
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        conn.close()

    def test_service_to_slow_client(self):
        data = os.urandom(self.SIZE)
        c, conn = self.open("/ctl", rcvbuf=64 * 1024)
        with c:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            pid = self.px.proc.pid
            base = vm_rss_kib(pid)
            sent = [0]

            def send_all():
                conn.sock.settimeout(30)
                try:
                    for i in range(0, len(data), 65536):
                        conn.sock.sendall(data[i:i + 65536])
                        sent[0] += 65536
                except OSError:
                    pass
            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            peak = base
            deadline = time.monotonic() + 2.0        # the client reads nothing for 2 s
            while time.monotonic() < deadline:
                peak = max(peak, vm_rss_kib(pid))
                time.sleep(0.05)
            self.assertTrue(sender.is_alive(), "all 32 MiB went out: nothing stopped reading")
            self.assertLess(sent[0], self.SIZE // 2, "the service's sends did not block")
            self.assertLess(peak - base, 8 * 1024, f"proxy RSS grew {peak - base} KiB with a "
                            f"stalled client ({sent[0]} bytes sent)")
            got = c.recv_data(self.SIZE, timeout=30)
            sender.join(10)
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
            peak = max(peak, vm_rss_kib(pid))
            self.assertLess(peak - base, 8 * 1024, f"proxy RSS grew {peak - base} KiB")
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
        self.assertTrue(conn.read_until_eof(3))
        conn.close()


# --------------------------------------------------------------------------- idle timeout


class IdleTimeout(TerminateCase):
    proxy_sections = {"timeouts": {"tunnel_idle": "500ms"}}

    def test_idle_tunnel_is_closed_on_both_sides(self):
        m0 = self.metrics()
        c, conn = self.open("/ctl")
        with c:
            c.send_binary(b"x")
            self.assertEqual(conn.recv_exact(1), b"x")
            start = time.monotonic()
            # a close frame (any code) may precede the end of the connection
            try:
                while True:
                    f = c.recv_frame(3)
                    self.assertEqual(f.opcode, OP_CLOSE, f"unexpected frame {f!r}")
            except Eof:
                pass
            elapsed = time.monotonic() - start
            self.assertGreater(elapsed, 0.4)
            self.assertLess(elapsed, 2.0)
        self.assertTrue(conn.read_until_eof(2), "idle tunnel left open upstream")
        conn.close()
        wait_metric_sum(self.px, "switchyard_tunnels_closed_total",
                        self.closed(m0, "ctl", "idle_timeout") + 1,
                        route="ctl", protocol="websocket", reason="idle_timeout")


# --------------------------------------------------------------------------- metrics, log


class MetricsAndLog(TerminateCase):
    proxy_sections = {"access_log": {"path": "-", "format": "json"}}

    def delta(self, m0, m1, name, **labels):
        return metric_sum(m1, name, **labels) - metric_sum(m0, name, **labels)

    def log_records(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            lines = [json.loads(l) for l in self.px.stdout().splitlines() if l.startswith("{")]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def test_counters_gauges_and_access_log(self):
        ctl = dict(route="ctl", protocol="websocket")
        m0 = self.metrics()
        log0 = len(self.log_records(0))

        # 1: a tunnel that ends with the close handshake: eof
        c, conn = self.open("/ctl", protocols="binary")
        m = self.metrics()
        self.assertEqual(metric_sum(m, "switchyard_tunnels_active", **ctl), 1)
        self.assertEqual(self.delta(m0, m, "switchyard_upgrades_total", outcome="terminated",
                                    **ctl), 1)
        for outcome in ("forwarded", "switched"):
            self.assertEqual(self.delta(m0, m, "switchyard_upgrades_total", outcome=outcome,
                                        **ctl), 0, outcome)
        with c:
            c.send_binary(b"b" * 1000)
            c.send_text("t" * 234)
            self.assertEqual(len(conn.recv_exact(1234)), 1234)
            conn.send(b"d" * 2345)
            self.assertEqual(c.recv_data(2345), b"d" * 2345)
            c.send_close(1000)
            self.assertEqual(c.recv_close()[0], 1000)
            self.assertIsNotNone(c.wait_eof(2))
            frame_bytes = c.reader.total          # every frame the proxy wrote to us
        self.assertTrue(conn.read_until_eof(3))
        conn.close()
        wait_metric_sum(self.px, "switchyard_tunnels_active", 0, **ctl)
        m1 = self.metrics()
        self.assertEqual(self.delta(m0, m1, "switchyard_tunnels_closed_total", reason="eof",
                                    **ctl), 1)
        self.assertEqual(self.delta(m0, m1, "switchyard_tunnel_bytes_total",
                                    direction="client_to_upstream", **ctl), 1234)
        data_frames = sum(f.size for f in c.frames if f.opcode == OP_BINARY)
        self.assertEqual(self.delta(m0, m1, "switchyard_tunnel_bytes_total",
                                    direction="upstream_to_client", **ctl), frame_bytes,
                         f"expected every frame byte written to the client ({frame_bytes}; "
                         f"data frames alone: {data_frames})")
        records = [r for r in self.log_records(log0 + 2)[log0:] if r["route"] == "ctl"]
        self.assertEqual(len(records), 2, records)
        ex, tu = records
        self.assertEqual((ex["event"], ex["status"], ex["route"], ex["upgrade"],
                          ex["protocol"]), ("exchange", 101, "ctl", "terminated", "websocket"),
                         ex)
        self.assertEqual((tu["event"], tu["route"], tu["end"], tu["bytes_in"],
                          tu["bytes_out"]), ("tunnel", "ctl", "eof", 1234, frame_bytes), tu)

        # 2: upstream reset (1011): upstream_reset; 3: an unmasked frame (1002):
        # protocol_error; 4: the client resets: client_reset
        c, conn = self.open("/ctl")
        with c:
            conn.reset()
            self.assertEqual(c.recv_close()[0], 1011)
        c, conn = self.open("/ctl")
        with c:
            c.send_binary(b"plain", mask=False)
            self.assertEqual(c.recv_close()[0], 1002)
            self.assertIsNotNone(c.wait_eof(2))
        self.assertTrue(conn.read_until_eof(3))
        conn.close()
        c, conn = self.open("/ctl")
        m = self.metrics()
        self.assertEqual(metric_sum(m, "switchyard_tunnels_active", **ctl), 1)
        c.reset()
        self.assertTrue(conn.read_until_eof(3))
        conn.close()
        wait_metric_sum(self.px, "switchyard_tunnels_active", 0, **ctl)
        m2 = self.metrics()
        for reason in ("upstream_reset", "protocol_error", "client_reset"):
            self.assertEqual(self.delta(m1, m2, "switchyard_tunnels_closed_total",
                                        reason=reason, **ctl), 1, reason)
        self.assertEqual(self.delta(m1, m2, "switchyard_tunnels_closed_total", reason="eof",
                                    **ctl), 0)
        self.assertEqual(self.delta(m0, m2, "switchyard_upgrades_total",
                                    outcome="terminated", **ctl), 4)
        ends = [r["end"] for r in self.log_records(log0 + 8)[log0:]
                if r["event"] == "tunnel" and r["route"] == "ctl"][1:]
        self.assertEqual(ends, ["upstream_reset", "protocol_error", "client_reset"])


# --------------------------------------------------------------------------- config


BASE_CONFIG = """\
listen: [{ address: 127.0.0.1:0 }]
upstreams: { vnc: { servers: [127.0.0.1:5901] } }
routes:
  - name: vnc
    match: { path_prefix: /vnc }
    upstream: vnc
    upgrade:
"""


class Config(unittest.TestCase):
    def setUp(self):
        if not SWITCHYARD_BIN:
            raise unittest.SkipTest("SWITCHYARD_BIN is not set")
        self.dir = tempfile.TemporaryDirectory(prefix="switchyard-terminate-")
        self.addCleanup(self.dir.cleanup)

    def run_proxy(self, text, *args):
        with open(os.path.join(self.dir.name, "t.yaml"), "w") as f:
            f.write(text)
        return subprocess.run([SWITCHYARD_BIN, *args, "--config", "t.yaml"], cwd=self.dir.name,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=10)

    def test_good_terminate_routes_check_ok(self):
        for upgrade in ("      allow: [websocket]\n      terminate: websocket\n"
                        "      subprotocols: [binary, base64]\n      max_message: 64KiB\n",
                        "      allow: ['*']\n      terminate: websocket\n",
                        "      allow: [websocket]\n      terminate: websocket\n"
                        "      subprotocols: []\n      max_message: 1000\n"):
            with self.subTest(upgrade):
                r = self.run_proxy(BASE_CONFIG + upgrade, "--check")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("t.yaml: ok\n", (r.stdout + r.stderr).decode())

    def test_bad_terminate_configs_are_file_line_col_and_exit_1(self):
        cases = [  # (name, upgrade section, the keys whose line the error may point at)
            ("terminate without websocket in allow",
             "      allow: [h2c]\n      terminate: websocket\n", ("allow", "terminate")),
            ("terminate with an empty allow",
             "      allow: []\n      terminate: websocket\n", ("allow", "terminate")),
            ("terminate and no allow", "      terminate: websocket\n", ("terminate",)),
            ("unknown subprotocol",
             "      allow: [websocket]\n      terminate: websocket\n"
             "      subprotocols: [binary, chat]\n", ("subprotocols",)),
            ("terminate of something else",
             "      allow: [websocket]\n      terminate: tcp\n", ("terminate",)),
            ("bad max_message",
             "      allow: [websocket]\n      terminate: websocket\n      max_message: lots\n",
             ("max_message",)),
        ]
        for name, upgrade, keys in cases:
            text = BASE_CONFIG + upgrade
            # the key named, or the `upgrade:` mapping that holds it
            lines = {i + 1 for i, l in enumerate(text.splitlines())
                     if l.strip().split(":")[0] in keys + ("upgrade",)}
            for args in (["--check"], []):
                with self.subTest(name, args=args):
                    r = self.run_proxy(text, *args)
                    err = r.stderr.decode()
                    self.assertEqual(r.returncode, 1, (r.stdout, err))
                    m = re.search(r"^t\.yaml:(\d+):(\d+): \S.*$", err, re.M)
                    self.assertIsNotNone(m, f"no FILE:LINE:COL: message in {err!r}")
                    self.assertIn(int(m.group(1)), lines, err)
                    self.assertNotIn("listening", err)


if __name__ == "__main__":
    main()
