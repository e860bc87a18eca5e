"""The io_uring experiment (SWITCHYARD_IO_URING=1; docs/performance.md, "io_uring"): a raw
tunnel over plain TCP both ways is driven by the worker's ring (multishot receive into
provided buffers, sends from those buffers) instead of epoll and read/write. The contract
does not change: every byte both ways in order (large streams and small messages),
half-close each way, backpressure bounded by tunnel.buffer with a stalled reader, a reset
ends the tunnel, and the descriptors are given back. Uring tunnels never splice: the splice
counter stays 0 with tunnel.splice: auto."""

import hashlib
import os
import socket
import time
import unittest

# Before the harness starts any proxy: every proxy of this file runs the experiment.
os.environ["SWITCHYARD_IO_URING"] = "1"

from harness import ScriptedBackend, main, passive  # noqa: E402
from test_splice import SPLICED, fd_count, run_all, splice_proxy  # noqa: E402
from test_tunnel import MiB, Receiver, Sender, vm_rss_kib  # noqa: E402
from upgrade_support import (finish, open_ws_tunnel, recv_exact, reset_close, wait_eof,  # noqa: E402
                             wait_log, wait_until)

URING_ON = "io_uring tunnels on"


def recv_exactly(sock, n):
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return bytes(got)


class Uring(unittest.TestCase):
    def assert_on_ring(self, px):
        # The experiment is really on (the kernel took the ring): otherwise this file would
        # test the epoll path.
        self.assertIn(URING_ON, px.stderr())
        self.assertNotIn("io_uring refused", px.stderr())

    def test_bulk_both_ways_is_exact_and_never_spliced(self):
        size = 32 * MiB
        up, down = os.urandom(size), os.urandom(size)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be, "auto") as px:
            self.assert_on_ring(px)
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                for s in (c.sock, bc.sock):
                    s.settimeout(60)
                threads = [Sender(c.sock, up, shutdown=True), Sender(bc.sock, down, shutdown=True),
                           Receiver(bc.sock), Receiver(c.sock)]
                self.assertEqual(run_all(threads), [], "not done in 60 s")
                for t in threads:
                    self.assertIsNone(t.error, t)
                to_backend, to_client = threads[2], threads[3]
                self.assertEqual((to_backend.count, to_client.count), (size, size))
                self.assertEqual(to_backend.sha.hexdigest(), hashlib.sha256(up).hexdigest())
                self.assertEqual(to_client.sha.hexdigest(), hashlib.sha256(down).hexdigest())
                self.assertTrue(to_backend.eof and to_client.eof)
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            self.assertEqual(px.metric('switchyard_tunnel_bytes_total{route="route1",protocol="websocket",'
                                       'direction="client_to_upstream"}'), size)
            self.assertEqual(px.metric('switchyard_tunnel_bytes_total{route="route1",protocol="websocket",'
                                       'direction="upstream_to_client"}'), size)
            self.assertEqual(px.metric(SPLICED), 0)
            finish(px)

    def test_small_messages_both_ways_in_order(self):
        # Echo-style round trips of 1 byte to 4 KiB, each side answering the other: every
        # message arrives whole and in order, one at a time.
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            self.assert_on_ring(px)
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                for s in (c.sock, bc.sock):
                    s.settimeout(10)
                for i in range(300):
                    msg = os.urandom(1 + (i * 37) % 4096)
                    c.sock.sendall(msg)
                    self.assertEqual(recv_exactly(bc.sock, len(msg)), msg, f"message {i} to the backend")
                    reply = msg[::-1] + bytes([i % 256])
                    bc.sock.sendall(reply)
                    self.assertEqual(recv_exactly(c.sock, len(reply)), reply, f"reply {i} to the client")
                # Bytes the client sends right behind its request reach the backend too.
                c.sock.shutdown(socket.SHUT_WR)
                self.assertEqual(bc.sock.recv(1), b"")
                bc.sock.shutdown(socket.SHUT_WR)
                self.assertEqual(c.sock.recv(1), b"")
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            finish(px)

    def test_half_close_each_way(self):
        size = 8 * MiB
        down, up = os.urandom(size), os.urandom(size)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            self.assert_on_ring(px)
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                for s in (c.sock, bc.sock):
                    s.settimeout(30)
                # The backend sends 8 MiB and ends its direction: the client gets all of it,
                # then EOF, while its own direction stays open.
                threads = [Sender(bc.sock, down, shutdown=True), Receiver(c.sock)]
                self.assertEqual(run_all(threads, 30), [])
                self.assertEqual(threads[1].count, size)
                self.assertEqual(threads[1].sha.hexdigest(), hashlib.sha256(down).hexdigest())
                self.assertTrue(threads[1].eof)
                # The tunnel is still open, half-closed.
                self.assertEqual(px.metric("switchyard_tunnels_active"), 1)
                # Then the client's 8 MiB reach the backend, and EOF after them.
                threads = [Sender(c.sock, up, shutdown=True), Receiver(bc.sock)]
                self.assertEqual(run_all(threads, 30), [])
                self.assertEqual(threads[1].count, size)
                self.assertEqual(threads[1].sha.hexdigest(), hashlib.sha256(up).hexdigest())
                self.assertTrue(threads[1].eof)
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            finish(px)

    def test_client_half_close_first(self):
        # The other order: the client ends its direction first, the backend keeps sending.
        data = os.urandom(2 * MiB)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                for s in (c.sock, bc.sock):
                    s.settimeout(20)
                c.sock.sendall(b"last words")
                c.sock.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_exactly(bc.sock, 10), b"last words")
                self.assertEqual(bc.sock.recv(1), b"")
                threads = [Sender(bc.sock, data, shutdown=True), Receiver(c.sock)]
                self.assertEqual(run_all(threads, 20), [])
                self.assertEqual(threads[1].count, len(data))
                self.assertEqual(threads[1].sha.hexdigest(), hashlib.sha256(data).hexdigest())
                self.assertTrue(threads[1].eof)
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            finish(px)

    def test_backpressure_is_bounded_and_exact(self):
        # The client reads nothing for 2 s: the proxy stops receiving from the backend once
        # tunnel.buffer waits toward the client, so the backend's sender blocks and the
        # proxy's RSS stays flat. Then every byte arrives, in order.
        size = 96 * MiB
        data = os.urandom(size)
        be = ScriptedBackend(passive, keep_open=True)
        with be, splice_proxy(be, tunnel={"buffer": "256KiB"}) as px:
            self.assert_on_ring(px)
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                bc.sock.settimeout(30)
                pid = px.proc.pid
                base = vm_rss_kib(pid)
                sender = Sender(bc.sock, data, shutdown=True)
                sender.start()
                peak = base
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    peak = max(peak, vm_rss_kib(pid))
                    time.sleep(0.05)
                self.assertTrue(sender.is_alive(), "all 96 MiB went out: nothing held the backend back")
                self.assertLess(sender.sent, size // 2)
                self.assertLess(peak - base, 8 * 1024, f"proxy RSS grew {peak - base} KiB with a stalled reader")
                c.sock.settimeout(30)
                receiver = Receiver(c.sock)
                receiver.start()
                sender.join(30)
                receiver.join(30)
                self.assertFalse(sender.is_alive() or receiver.is_alive(), "not done in 30 s")
                self.assertEqual(receiver.count, size)
                self.assertEqual(receiver.sha.hexdigest(), hashlib.sha256(data).hexdigest())
                self.assertTrue(receiver.eof)
            bc.close()
            finish(px)

    def test_resets_end_the_tunnel(self):
        for who in ("client", "upstream"):
            with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
                c, bc = open_ws_tunnel(self, px, be)
                with c:
                    c.send(b"ping")
                    self.assertEqual(recv_exact(bc.sock, 4), b"ping")
                    bc.send(b"pong")
                    self.assertEqual(recv_exact(c.sock, 4), b"pong")
                    reset_close(c.sock if who == "client" else bc.sock)
                    other = bc.sock if who == "client" else c.sock
                    self.assertIsNotNone(wait_eof(other, 3), f"other side left open after the {who}'s reset")
                if who == "client":
                    bc.close()
                wait_log(px, rf"tunnel_{who}_reset proto=websocket$")
                finish(px)

    def test_descriptors_are_given_back(self):
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            self.assert_on_ring(px)
            pid = px.proc.pid

            def one_round(n):
                pairs = [open_ws_tunnel(self, px, be, index=len(be.connections)) for _ in range(n)]
                payload = os.urandom(MiB)
                for c, bc in pairs:
                    c.sock.sendall(payload)
                for c, bc in pairs:
                    bc.sock.settimeout(10)
                    self.assertEqual(recv_exactly(bc.sock, len(payload)), payload)
                for c, bc in pairs:
                    c.close()
                    bc.close()
                wait_until(lambda: px.metric("switchyard_tunnels_active") == 0, 10)

            one_round(1)
            wait_until(lambda: px.metric("switchyard_connections_active") == 0, 10)
            base = min(fd_count(pid) for _ in range(10) if time.sleep(0.02) is None)
            for _ in range(4):
                one_round(50)
            wait_until(lambda: px.metric("switchyard_connections_active") == 0, 10)
            wait_until(lambda: fd_count(pid) <= base, 10)
            self.assertLessEqual(fd_count(pid), base)
            self.assertEqual(px.metric(SPLICED), 0)
            finish(px)


if __name__ == "__main__":
    main()
