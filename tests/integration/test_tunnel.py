"""The tunnel after an accepted 101 (docs/upgrades.md "The tunnel"): bulk bytes both
ways at once, half-close each way, resets, the idle timeout, backpressure bounded by
tunnel.buffer, the access-log record, and SIGTERM's drain deadline."""

import hashlib
import os
import socket
import threading
import time
import unittest

from harness import Client, Proxy, ScriptedBackend, main, passive
from upgrade_support import (finish, open_ws_tunnel, recv_exact, reset_close, switching,
                             upgrade_config, wait_eof, wait_log, wait_until, ws_forwarded,
                             ws_request)

MiB = 1024 * 1024


def tunnel_proxy(be, access_log=True, **sections):
    return Proxy(upgrade_config([be.address], ["websocket"], access_log=access_log,
                                **sections))


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Sender(threading.Thread):
    """Sends `data` on `sock` in 256 KiB slices; records how much went out."""

    def __init__(self, sock, data, shutdown=False):
        super().__init__(daemon=True)
        self.sock, self.data, self.shutdown = sock, data, shutdown
        self.sent = 0
        self.error = None

    def run(self):
        view = memoryview(self.data)
        try:
            while self.sent < len(view):
                n = self.sock.send(view[self.sent:self.sent + 256 * 1024])
                self.sent += n
            if self.shutdown:
                self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = e


class Receiver(threading.Thread):
    """Reads until EOF (or `limit` bytes), hashing as it goes."""

    def __init__(self, sock, limit=None):
        super().__init__(daemon=True)
        self.sock, self.limit = sock, limit
        self.sha = hashlib.sha256()
        self.count = 0
        self.eof = False
        self.error = None

    def run(self):
        try:
            while self.limit is None or self.count < self.limit:
                chunk = self.sock.recv(1 << 18)
                if not chunk:
                    self.eof = True
                    return
                self.sha.update(chunk)
                self.count += len(chunk)
        except OSError as e:
            self.error = e


class Tunnel(unittest.TestCase):
    def test_64_mib_each_way_at_once(self):
        size = 64 * MiB
        up, down = os.urandom(size), os.urandom(size)
        with ScriptedBackend(passive, keep_open=True) as be, tunnel_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                for s in (c.sock, bc.sock):
                    s.settimeout(60)
                threads = [Sender(c.sock, up, shutdown=True), Sender(bc.sock, down,
                                                                     shutdown=True),
                           Receiver(bc.sock), Receiver(c.sock)]
                start = time.monotonic()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(max(0.1, 60 - (time.monotonic() - start)))
                self.assertFalse(any(t.is_alive() for t in threads),
                                 f"not done in 60 s: sent {threads[0].sent}/{threads[1].sent},"
                                 f" received {threads[2].count}/{threads[3].count}")
                for t in threads:
                    self.assertIsNone(t.error, t)
                to_backend, to_client = threads[2], threads[3]
                self.assertEqual(to_backend.count, size)
                self.assertEqual(to_client.count, size)
                self.assertEqual(to_backend.sha.hexdigest(), hashlib.sha256(up).hexdigest())
                self.assertEqual(to_client.sha.hexdigest(), hashlib.sha256(down).hexdigest())
                self.assertTrue(to_backend.eof and to_client.eof)
            bc.close()
            line = wait_log(px, r"^.*tunnel_\w+ proto=websocket$")
            self.assertRegex(line, r" route=route1 upstream=app server=127\.0\.0\.1:\d+ tunnel_eof proto=websocket$")
            # bytes each way: at least the tunnelled bytes (the handshake may be counted)
            counts = dict(kv.split("=") for kv in line.split() if kv[:3] in ("in=", "out"))
            self.assertGreaterEqual(int(counts["in"]), size, line)
            self.assertGreaterEqual(int(counts["out"]), size, line)
            finish(px)

    def test_half_close_client_to_backend(self):
        with ScriptedBackend(passive, keep_open=True) as be, tunnel_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                c.send(b"last words")
                c.shutdown_write()
                self.assertEqual(recv_exact(bc.sock, 10), b"last words")
                self.assertIsNotNone(wait_eof(bc.sock, 3), "backend never saw the EOF")
                # the other direction keeps flowing
                for i in range(3):
                    bc.send(b"still here %d" % i)
                    self.assertEqual(recv_exact(c.sock, 12), b"still here %d" % i)
                    time.sleep(0.05)
                bc.close()
                self.assertIsNotNone(wait_eof(c.sock, 3), "client never saw the EOF")
            wait_log(px, r"tunnel_eof proto=websocket$")
            finish(px)

    def test_half_close_backend_to_client(self):
        with ScriptedBackend(passive, keep_open=True) as be, tunnel_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                bc.send(b"bye from backend")
                bc.sock.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_exact(c.sock, 16), b"bye from backend")
                self.assertIsNotNone(wait_eof(c.sock, 3), "client never saw the EOF")
                for i in range(3):
                    c.send(b"client still %d" % i)
                    self.assertEqual(recv_exact(bc.sock, 14), b"client still %d" % i)
                    time.sleep(0.05)
                c.shutdown_write()
                self.assertIsNotNone(wait_eof(bc.sock, 3), "backend never saw the EOF")
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            finish(px)

    def test_client_reset_closes_the_backend_side(self):
        with ScriptedBackend(passive, keep_open=True) as be, tunnel_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            c.send(b"ping")
            self.assertEqual(recv_exact(bc.sock, 4), b"ping")
            self.assertEqual(px.metric("switchyard_tunnels_active"), 1)
            reset_close(c.sock)
            took = wait_eof(bc.sock, 3)
            self.assertIsNotNone(took, "backend side left open after the client's reset")
            self.assertLess(took, 1.0)
            bc.close()
            wait_log(px, r"tunnel_client_reset proto=websocket$")
            finish(px)

    def test_backend_reset_closes_the_client_side(self):
        with ScriptedBackend(passive, keep_open=True) as be, tunnel_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                bc.send(b"pong")
                self.assertEqual(recv_exact(c.sock, 4), b"pong")
                reset_close(bc.sock)
                took = wait_eof(c.sock, 3)
                self.assertIsNotNone(took, "client side left open after the backend's reset")
                self.assertLess(took, 1.0)
            wait_log(px, r"tunnel_upstream_reset proto=websocket$")
            finish(px)

    def test_idle_timeout_closes_both_sides(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                tunnel_proxy(be, timeouts={"tunnel_idle": "500ms"}) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                c.send(b"x")
                self.assertEqual(recv_exact(bc.sock, 1), b"x")
                start = time.monotonic()
                took = wait_eof(c.sock, 3)
                self.assertIsNotNone(took, "idle tunnel not closed on the client side")
                self.assertIsNotNone(wait_eof(bc.sock, 1), "idle tunnel left open upstream")
                elapsed = time.monotonic() - start
                self.assertGreater(elapsed, 0.4)
                self.assertLess(elapsed, 1.5)
            bc.close()
            wait_log(px, r"tunnel_idle_timeout proto=websocket$")
            finish(px)

    def test_traffic_keeps_a_tunnel_alive_past_the_idle_timeout(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                tunnel_proxy(be, timeouts={"tunnel_idle": "500ms"}) as px:
            c1, b1 = open_ws_tunnel(self, px, be, 0)   # client -> backend traffic
            c2, b2 = open_ws_tunnel(self, px, be, 1)   # backend -> client traffic
            with c1, c2:
                start = time.monotonic()
                i = 0
                while time.monotonic() - start < 1.5:
                    c1.send(b"%04d" % i)
                    self.assertEqual(recv_exact(b1.sock, 4), b"%04d" % i)
                    b2.send(b"%04d" % i)
                    self.assertEqual(recv_exact(c2.sock, 4), b"%04d" % i)
                    i += 1
                    time.sleep(0.2)
                self.assertEqual(px.metric("switchyard_tunnels_active"), 2)
                for c, bc in ((c1, b1), (c2, b2)):
                    c.send(b"up")
                    self.assertEqual(recv_exact(bc.sock, 2), b"up")
                    bc.send(b"down")
                    self.assertEqual(recv_exact(c.sock, 4), b"down")
            b1.close()
            b2.close()
            finish(px)

    def test_backpressure_bounds_proxy_memory(self):
        size = 32 * MiB
        data = os.urandom(size)
        # Small kernel buffers at both ends, so what the proxy does not hold is visible.
        be = ScriptedBackend(passive, keep_open=True)
        be.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        with be, tunnel_proxy(be, tunnel={"buffer": "64KiB"}) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                c.sock.settimeout(30)
                pid = px.proc.pid
                base = vm_rss_kib(pid)
                sender = Sender(c.sock, data)
                sender.start()
                # The backend reads nothing for 2 s.
                peak = base
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    peak = max(peak, vm_rss_kib(pid))
                    time.sleep(0.05)
                stalled_at = sender.sent
                self.assertTrue(sender.is_alive(), "the client's 32 MiB all went out: "
                                "nothing stopped reading")
                self.assertLess(stalled_at, size // 2, "sends did not block")
                self.assertLess(peak - base, 8 * 1024,
                                f"proxy RSS grew {peak - base} KiB with a stalled reader "
                                f"(base {base} KiB, peak {peak} KiB, client sent "
                                f"{stalled_at} bytes)")
                # Now the backend reads everything.
                bc.sock.settimeout(30)
                receiver = Receiver(bc.sock, limit=size)
                receiver.start()
                sender.join(30)
                receiver.join(30)
                self.assertFalse(sender.is_alive() or receiver.is_alive(), "not done in 30 s")
                self.assertIsNone(sender.error)
                self.assertEqual(receiver.count, size)
                self.assertEqual(receiver.sha.hexdigest(), hashlib.sha256(data).hexdigest())
                peak = max(peak, vm_rss_kib(pid))
                self.assertLess(peak - base, 8 * 1024, f"proxy RSS grew {peak - base} KiB")
            bc.close()
            finish(px)

    def test_sigterm_closes_tunnel_at_drain_deadline_and_exits_0(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                tunnel_proxy(be, timeouts={"shutdown_drain": "500ms"}) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                start = time.monotonic()
                px.sigterm()
                # During the drain the tunnel still carries bytes.
                time.sleep(0.1)
                c.send(b"during drain")
                self.assertEqual(recv_exact(bc.sock, 12), b"during drain")
                bc.send(b"reply")
                self.assertEqual(recv_exact(c.sock, 5), b"reply")
                took_client = wait_eof(c.sock, 3)
                self.assertIsNotNone(took_client, "tunnel not closed on the client side")
                self.assertIsNotNone(wait_eof(bc.sock, 1), "tunnel not closed upstream")
                elapsed = time.monotonic() - start
                self.assertGreater(elapsed, 0.4)
                self.assertLess(elapsed, 1.5)
            bc.close()
            status = px.terminate()
            self.assertEqual(status, 0, px.stderr())
            self.assertLess(time.monotonic() - start, 3.0)
            self.assertTrue(wait_until(lambda: "proto=websocket" in px.stdout(), 1.0),
                            "no tunnel access-log record")
            # The admin listener is gone with the process: the gauges can not be read.


class HeldBytes(unittest.TestCase):
    """docs/upgrades.md, "Bytes around the switch": bytes the client sends before the
    response are held, bounded (the proxy stops reading at tunnel.buffer), and delivered in
    order once the 101 is accepted."""

    def test_bytes_held_before_the_101_are_bounded_by_tunnel_buffer(self):
        size = 32 * MiB
        early = os.urandom(size)
        with ScriptedBackend(passive, keep_open=True) as be, \
                tunnel_proxy(be, tunnel={"buffer": "64KiB"}) as px:
            c = Client(px.port)
            with c:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                c.sock.settimeout(30)
                pid = px.proc.pid
                base = vm_rss_kib(pid)
                sender = Sender(c.sock, ws_request() + early)
                sender.start()
                be.wait_accepted(1)
                bc = be.connections[0]
                self.assertEqual(bc.recv_request(), ws_forwarded())
                # The backend sits on its answer for 1.5 s while the client keeps sending.
                peak = base
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    peak = max(peak, vm_rss_kib(pid))
                    time.sleep(0.05)
                self.assertEqual(bc.recv_some(0.1), b"", "bytes forwarded before the 101")
                self.assertTrue(sender.is_alive(), "all 32 MiB went out: nothing stopped reading")
                self.assertLess(sender.sent, size // 2, "the client's sends did not block")
                self.assertLess(peak - base, 8 * 1024,
                                f"proxy RSS grew {peak - base} KiB while holding early bytes")
                # The switch: every held byte reaches the backend, in order.
                bc.send(switching())
                resp = c.read_response()
                self.assertEqual(resp.status, 101, resp)
                bc.sock.settimeout(30)
                receiver = Receiver(bc.sock, limit=size)
                receiver.start()
                sender.join(30)
                receiver.join(30)
                self.assertFalse(sender.is_alive() or receiver.is_alive(), "not done in 30 s")
                self.assertEqual(receiver.count, size)
                self.assertEqual(receiver.sha.hexdigest(), hashlib.sha256(early).hexdigest())
            bc.close()
            finish(px)


if __name__ == "__main__":
    main()
