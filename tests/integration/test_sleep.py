"""Idle tunnels asleep (docs/architecture.md, "Idle tunnels"): a raw tunnel quiet for 3 s
gives up its connection objects and waits on its two sockets alone. Whatever happens next
must be as if it had stayed awake: bytes either way, in order and exact; an EOF or a
reset on either side while asleep; the idle timeout; a drain; a binary upgrade; a reload
that removes its route. The metrics do not see it go (it stays open, one line in the
access log at its end with every byte), and `switchyard_tunnels_sleeping` counts it."""

import hashlib
import os
import signal
import socket
import time
import unittest

from handoff_support import HandoffProxy
from harness import Proxy, ScriptedBackend, main, passive
from test_tunnel import MiB, Receiver, Sender
from upgrade_support import (finish, open_ws_tunnel, recv_exact, reset_close, upgrade_config, wait_eof,
                             wait_log, wait_until)

SLEEPING = "switchyard_tunnels_sleeping"
ASLEEP_AFTER = 3.0  # Hibernation::kSleepAfter


def sleep_proxy(be, **sections):
    return Proxy(upgrade_config([be.address], ["websocket"], access_log=True, **sections))


class Sleep(unittest.TestCase):
    def open_asleep(self, px, be, n):
        pairs = [open_ws_tunnel(self, px, be, index=len(be.connections)) for _ in range(n)]
        for c, bc in pairs:
            c.send(b"hi")
            self.assertEqual(recv_exact(bc.sock, 2), b"hi")
        self.assertTrue(wait_until(lambda: px.metric(SLEEPING) == n, ASLEEP_AFTER + 3),
                        f"{px.metric(SLEEPING)} of {n} tunnels asleep")
        return pairs

    def test_sleeping_tunnels_wake_on_bytes_either_way_exactly(self):
        with ScriptedBackend(passive, keep_open=True) as be, sleep_proxy(be) as px:
            pairs = self.open_asleep(px, be, 6)
            # Asleep, they are still open tunnels and connections.
            self.assertEqual(px.metric("switchyard_tunnels_active"), 6)
            self.assertEqual(px.metric("switchyard_connections_active"), 6)
            self.assertEqual(px.metric("switchyard_upstream_tunnels_active"), 6)
            self.assertEqual(px.metric("switchyard_upstream_connections_active"), 6)
            for i, (c, bc) in enumerate(pairs):
                big = os.urandom(300_000 + i)
                if i % 2:
                    bc.send(big)  # the backend speaks first
                    self.assertEqual(recv_exact(c.sock, len(big)), big)
                    c.send(b"ack%d" % i)
                    self.assertEqual(recv_exact(bc.sock, 4), b"ack%d" % i)
                else:
                    c.send(big)
                    self.assertEqual(recv_exact(bc.sock, len(big)), big)
                    bc.send(b"ack%d" % i)
                    self.assertEqual(recv_exact(c.sock, 4), b"ack%d" % i)
            self.assertEqual(px.metric(SLEEPING), 0)
            # They fall asleep again, and wake again.
            self.assertTrue(wait_until(lambda: px.metric(SLEEPING) == 6, ASLEEP_AFTER + 3))
            for c, bc in pairs:
                c.send(b"again")
                self.assertEqual(recv_exact(bc.sock, 5), b"again")
            for c, bc in pairs:
                c.close()
                bc.close()
            line = wait_log(px, r"^.*tunnel_eof proto=websocket$")
            # The one access-log line counts the bytes from before and after the sleep.
            counts = dict(kv.split("=") for kv in line.split() if kv[:3] in ("in=", "out"))
            self.assertGreaterEqual(int(counts["in"]) + int(counts["out"]), 300_000)
            self.assertEqual(px.metric("switchyard_tunnels_total"), 6)
            finish(px)

    def test_a_tunnel_holding_queued_bytes_stays_awake_and_loses_none(self):
        # Backpressure (the client reads nothing) for longer than the quiet spell that
        # puts a tunnel to sleep: no byte moves, but bytes wait in the proxy, so it must
        # not sleep; when the client reads, every byte arrives in order.
        data = os.urandom(16 * MiB)
        with ScriptedBackend(passive, keep_open=True) as be, sleep_proxy(be, tunnel={"buffer": "64KiB"}) as px:
            c, bc = open_ws_tunnel(self, px, be)
            with c:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                bc.sock.settimeout(30)
                sender = Sender(bc.sock, data, shutdown=True)
                sender.start()
                time.sleep(ASLEEP_AFTER + 1.5)
                self.assertTrue(sender.is_alive(), "nothing held the backend back")
                self.assertEqual(px.metric(SLEEPING), 0)
                c.sock.settimeout(30)
                receiver = Receiver(c.sock)
                receiver.start()
                sender.join(30)
                receiver.join(30)
                self.assertFalse(sender.is_alive() or receiver.is_alive())
                self.assertEqual(receiver.count, len(data))
                self.assertEqual(receiver.sha.hexdigest(), hashlib.sha256(data).hexdigest())
                self.assertTrue(receiver.eof)
            bc.close()
            finish(px)

    def test_eof_and_reset_while_asleep(self):
        with ScriptedBackend(passive, keep_open=True) as be, sleep_proxy(be) as px:
            (c1, b1), (c2, b2), (c3, b3) = self.open_asleep(px, be, 3)
            # The backend ends its direction while asleep: the client sees the EOF and can
            # still send; then it ends too.
            b1.sock.shutdown(socket.SHUT_WR)
            self.assertIsNotNone(wait_eof(c1.sock, 3), "the client never saw the backend's EOF")
            c1.send(b"after")
            self.assertEqual(recv_exact(b1.sock, 5), b"after")
            c1.shutdown_write()
            self.assertIsNotNone(wait_eof(b1.sock, 3))
            # The client resets while asleep: the backend side closes at once.
            reset_close(c2.sock)
            self.assertIsNotNone(wait_eof(b2.sock, 3), "the backend side stayed open after a reset")
            # The backend closes outright while asleep.
            b3.close()
            self.assertIsNotNone(wait_eof(c3.sock, 3))
            for s in (c1, b1, b2, c3):
                s.close()
            wait_until(lambda: px.metric("switchyard_tunnels_active") == 0, 5)
            # The access log is written by its own thread: wait for the three lines.
            wait_until(lambda: px.stdout().count(" tunnel_") == 3, 5)
            log = px.stdout()
            self.assertEqual(log.count("tunnel_eof proto=websocket"), 2, log)
            self.assertEqual(log.count("tunnel_client_reset proto=websocket"), 1, log)
            finish(px)

    def test_idle_timeout_of_a_sleeping_tunnel(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                sleep_proxy(be, timeouts={"tunnel_idle": "5s"}) as px:
            (c, bc), = self.open_asleep(px, be, 1)
            start = time.monotonic()
            self.assertIsNotNone(wait_eof(c.sock, 6), "the sleeping tunnel outlived tunnel_idle")
            self.assertIsNotNone(wait_eof(bc.sock, 1))
            bc.close()
            c.close()
            wait_log(px, r"tunnel_idle_timeout proto=websocket$")
            self.assertLess(time.monotonic() - start, 6)
            finish(px)

    def test_sigterm_drains_sleeping_tunnels(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                sleep_proxy(be, timeouts={"shutdown_drain": "2s"}) as px:
            (c, bc), = self.open_asleep(px, be, 1)
            px.sigterm()
            # Awake again and carrying bytes during the drain, closed at its deadline.
            c.send(b"during the drain")
            self.assertEqual(recv_exact(bc.sock, 16), b"during the drain")
            self.assertIsNotNone(wait_eof(c.sock, 4))
            self.assertEqual(px.proc.wait(10), 0)
            bc.close()
            c.close()
            wait_until(lambda: "tunnel_shutdown proto=websocket" in px.stdout(), 5)
            self.assertIn("tunnel_shutdown proto=websocket", px.stdout())

    def test_a_reload_that_removes_its_route_does_not_disturb_a_sleeping_tunnel(self):
        with ScriptedBackend(passive, keep_open=True) as be, sleep_proxy(be) as px:
            (c, bc), = self.open_asleep(px, be, 1)
            with open(px.config_path, "w") as f:
                f.write(upgrade_config([be.address], ["h2c"], access_log=True))
            px.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "reloaded" in px.stderr(), 5)
            c.send(b"still")
            self.assertEqual(recv_exact(bc.sock, 5), b"still")
            bc.send(b"here")
            self.assertEqual(recv_exact(c.sock, 4), b"here")
            c.close()
            bc.close()
            wait_log(px, r"tunnel_eof proto=websocket$")
            finish(px)

    def test_a_binary_upgrade_moves_sleeping_tunnels(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                HandoffProxy(upgrade_config([be.address], ["websocket"])) as px:
            pairs = self.open_asleep(px, be, 4)
            px.handoff()
            for i, (c, bc) in enumerate(pairs):
                c.send(b"moved %d" % i)
                self.assertEqual(recv_exact(bc.sock, 7), b"moved %d" % i)
                bc.send(b"back %d" % i)
                self.assertEqual(recv_exact(c.sock, 6), b"back %d" % i)
            self.assertEqual(px.metric("switchyard_tunnels_active"), 4)
            for c, bc in pairs:
                c.close()
                bc.close()
            wait_until(lambda: px.metric("switchyard_tunnels_active") == 0, 5)


if __name__ == "__main__":
    main()
