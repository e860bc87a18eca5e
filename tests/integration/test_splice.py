"""splice(2) tunnels (tunnel.splice: auto, the default; docs/configuration.md "tunnel"):
bulk bytes move socket to socket through a pipe without entering the proxy, every byte
verified, with half-close, backpressure bounded by tunnel.buffer, writes that switch
between splice and copy mid-stream, and the descriptors given back. `splice: off` copies
and the splice counter stays 0."""

import hashlib
import os
import random
import socket
import time
import unittest

from harness import Proxy, ScriptedBackend, main, passive
from test_tunnel import MiB, Receiver, Sender, vm_rss_kib
from upgrade_support import finish, open_ws_tunnel, upgrade_config, wait_log, wait_until

SPLICED = "switchyard_tunnel_splice_bytes_total"


def splice_proxy(be, splice="auto", **sections):
    return Proxy(upgrade_config([be.address], ["websocket"], access_log=True,
                                tunnel=dict({"splice": splice}, **sections.pop("tunnel", {})), **sections))


def run_all(threads, timeout=60):
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, timeout - (time.monotonic() - start)))
    return [t for t in threads if t.is_alive()]


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Splice(unittest.TestCase):
    def both_ways(self, splice):
        size = 32 * MiB
        up, down = os.urandom(size), os.urandom(size)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be, splice) as px:
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
            spliced = px.metric(SPLICED)
            self.assertEqual(px.metric('switchyard_tunnel_bytes_total{route="route1",protocol="websocket",'
                                       'direction="client_to_upstream"}'), size)
            self.assertEqual(px.metric('switchyard_tunnel_bytes_total{route="route1",protocol="websocket",'
                                       'direction="upstream_to_client"}'), size)
            finish(px)
            return spliced, 2 * size

    def test_bulk_both_ways_is_spliced_and_exact(self):
        spliced, total = self.both_ways("auto")
        # The first reads of each direction are copied (they decide), the rest is spliced.
        self.assertGreater(spliced, total * 0.8, f"only {spliced} of {total} bytes spliced")

    def test_splice_off_copies_every_byte(self):
        spliced, _ = self.both_ways("off")
        self.assertEqual(spliced, 0)

    def test_mixed_sizes_switch_between_splice_and_copy_in_order(self):
        # Bursts from 1 byte to 512 KiB, with pauses so that reads come in small and large:
        # the direction turns to splice and back many times; the bytes stay in order.
        rng = random.Random(7)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                bc.sock.settimeout(30)
                receiver = Receiver(bc.sock)
                receiver.start()
                sha, total = hashlib.sha256(), 0
                for i in range(120):
                    burst = os.urandom(rng.choice([1, 17, 700, 3000, 20000, 70000, 300000, 524288]))
                    c.sock.sendall(burst)
                    sha.update(burst)
                    total += len(burst)
                    if i % 10 == 0:
                        time.sleep(0.02)
                c.sock.shutdown(socket.SHUT_WR)
                receiver.join(30)
                self.assertFalse(receiver.is_alive())
                self.assertIsNone(receiver.error)
                self.assertEqual(receiver.count, total)
                self.assertEqual(receiver.sha.hexdigest(), sha.hexdigest())
                self.assertTrue(receiver.eof)
            bc.close()
            self.assertGreater(px.metric(SPLICED), 0)
            finish(px)

    def test_urgent_data_in_a_spliced_stream_neither_stalls_nor_cuts_it(self):
        # splice(2) stops at TCP urgent data and does not step over it; the copy path's
        # read does (without SO_OOBINLINE the urgent byte leaves the stream). The bytes
        # after it, and the EOF after them, must still arrive.
        first, second = os.urandom(MiB), os.urandom(MiB)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                bc.sock.settimeout(20)
                receiver = Receiver(bc.sock)
                receiver.start()
                c.sock.sendall(first)
                wait_until(lambda: receiver.count >= len(first), 10)
                c.sock.send(b"!", socket.MSG_OOB)
                c.sock.sendall(second)
                c.sock.shutdown(socket.SHUT_WR)
                receiver.join(20)
                self.assertFalse(receiver.is_alive(), f"stalled after {receiver.count} bytes")
                self.assertIsNone(receiver.error)
                self.assertEqual(receiver.count, len(first) + len(second))
                self.assertEqual(receiver.sha.hexdigest(), hashlib.sha256(first + second).hexdigest())
                self.assertTrue(receiver.eof)
            bc.close()
            self.assertGreater(px.metric(SPLICED), 0)
            finish(px)

    def test_half_close_each_way_with_splice(self):
        size = 8 * MiB
        down, up = os.urandom(size), os.urandom(size)
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
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
                # Then the client's 8 MiB reach the backend, and EOF after them.
                threads = [Sender(c.sock, up, shutdown=True), Receiver(bc.sock)]
                self.assertEqual(run_all(threads, 30), [])
                self.assertEqual(threads[1].count, size)
                self.assertEqual(threads[1].sha.hexdigest(), hashlib.sha256(up).hexdigest())
                self.assertTrue(threads[1].eof)
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            self.assertGreater(px.metric(SPLICED), size)
            finish(px)

    def test_backpressure_with_splice_is_bounded_and_exact(self):
        # What the proxy holds is bounded by tunnel.buffer (its RSS, below); the kernel's
        # socket buffers on the way take 10 to 20 MiB here, more now and then when TCP
        # autotuning grows them: 96 MiB keep the sender blocked well before the end.
        size = 96 * MiB
        data = os.urandom(size)
        be = ScriptedBackend(passive, keep_open=True)
        with be, splice_proxy(be, tunnel={"buffer": "256KiB"}) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                bc.sock.settimeout(30)
                pid = px.proc.pid
                base = vm_rss_kib(pid)
                sender = Sender(bc.sock, data, shutdown=True)
                sender.start()
                # The client reads nothing for 2 s.
                peak = base
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    peak = max(peak, vm_rss_kib(pid))
                    time.sleep(0.05)
                self.assertTrue(sender.is_alive(), "all 64 MiB went out: nothing held the backend back")
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
            self.assertGreater(px.metric(SPLICED), 0)
            finish(px)

    def test_descriptors_are_given_back(self):
        with ScriptedBackend(passive, keep_open=True) as be, splice_proxy(be) as px:
            pid = px.proc.pid

            def one_round(n):
                pairs = [open_ws_tunnel(self, px, be, index=len(be.connections)) for _ in range(n)]
                payload = os.urandom(MiB)
                for c, bc in pairs:
                    c.sock.sendall(payload)
                for c, bc in pairs:
                    bc.sock.settimeout(10)
                    got = b""
                    while len(got) < len(payload):
                        got += bc.sock.recv(1 << 20)
                    self.assertEqual(got, payload)
                for c, bc in pairs:
                    c.close()
                    bc.close()
                wait_until(lambda: px.metric("switchyard_tunnels_active") == 0, 10)

            one_round(1)
            wait_until(lambda: px.metric("switchyard_connections_active") == 0, 10)
            # The admin connection that answered the metrics may still be closing: the
            # baseline is the lowest count seen over a moment.
            base = min(fd_count(pid) for _ in range(10) if time.sleep(0.02) is None)
            one_round(50)
            wait_until(lambda: px.metric("switchyard_connections_active") == 0, 10)
            wait_until(lambda: fd_count(pid) <= base, 10)
            self.assertLessEqual(fd_count(pid), base)
            self.assertGreater(px.metric(SPLICED), 50 * MiB * 0.8)
            finish(px)


if __name__ == "__main__":
    main()
