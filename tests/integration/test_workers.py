"""Process-level behaviour: several workers sharing a port (docs/configuration.md `workers`), an IPv6
listener, and an admin client that never speaks (it must not hold up shutdown)."""

import socket
import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, get, main, make_config, ok_response,
                     passive, serve_forever)
from upgrade_support import finish, open_ws_tunnel, recv_exact, upgrade_config


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Workers(unittest.TestCase):
    def test_two_workers_share_the_port_and_both_serve(self):
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"w"))) as be, \
                Proxy(make_config([be.address], workers=2)) as px:
            for _ in range(40):
                resp = get(px.port, "/x")
                self.assertEqual((resp.status, resp.body), (200, b"w"))
            self.assertEqual(px.metric("switchyard_requests_total"), 40)
            px.assert_idle()

    def test_tunnels_work_with_two_workers(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                Proxy(upgrade_config([be.address], ["websocket"], workers=2)) as px:
            tunnels = [open_ws_tunnel(self, px, be, i) for i in range(4)]
            for i, (c, bc) in enumerate(tunnels):
                c.send(b"hello %d" % i)
                self.assertEqual(recv_exact(bc.sock, 7), b"hello %d" % i)
                bc.send(b"back %d" % i)
                self.assertEqual(recv_exact(c.sock, 6), b"back %d" % i)
            for c, bc in tunnels:
                c.close()
                bc.close()
            finish(px)


class Listeners(unittest.TestCase):
    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback here")
    def test_ipv6_listener(self):
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"v6"))) as be:
            cfg = make_config([be.address], admin=False).replace("127.0.0.1:0", "[::1]:0", 1)
            with Proxy(cfg, listeners=0, admin=False) as px:
                deadline = time.monotonic() + 5
                port = None
                while port is None and time.monotonic() < deadline:
                    for line in px.stderr().splitlines():
                        if "listening on [::1]:" in line:
                            port = int(line.rsplit(":", 1)[1])
                    time.sleep(0.02)
                self.assertIsNotNone(port, px.stderr())
                with socket.create_connection(("::1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"), data)
                self.assertTrue(data.endswith(b"v6"), data)
                # X-Forwarded-For carries the IPv6 client address.
                self.assertIn(b"X-Forwarded-For: ::1\r\n", be.received(0))


class ConnectionLimit(unittest.TestCase):
    def test_connections_over_max_connections_are_closed_at_once(self):
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], limits={"max_connections": 2})) as px:
            held = [Client(px.port), Client(px.port)]
            for c in held:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(c.read_response().status, 200)
            with Client(px.port) as extra:
                self.assertTrue(extra.is_closed(2.0), "a third connection was served")
            self.assertGreaterEqual(px.metric("switchyard_connections_refused_total"), 1)
            for c in held:
                c.close()
            px.assert_idle()
            # Below the limit again: served.
            self.assertEqual(get(px.port, "/again").status, 200)


class Shutdown(unittest.TestCase):
    def test_silent_admin_client_does_not_hold_up_shutdown(self):
        with ScriptedBackend() as be:
            px = Proxy(make_config([be.address]))
            with px:
                silent = socket.create_connection(("127.0.0.1", px.admin_port))
                time.sleep(0.1)
                start = time.monotonic()
                px.sigterm()
                code = px.proc.wait(timeout=15)
                took = time.monotonic() - start
                silent.close()
                self.assertEqual(code, 0)
                self.assertLess(took, 8.0)


if __name__ == "__main__":
    main()
