"""Nothing leaks (brief: "no descriptor or memory leak"): after a mix of every way an
exchange or a tunnel can end, the proxy holds exactly the descriptors it held when idle.
Memory leaks are caught by the same suite under the asan preset."""

import os
import socket
import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, dead_port, get, hang, main, make_config,
                     ok_response,
                     passive, serve_forever)
from upgrade_support import (finish, open_ws_tunnel, recv_exact, reset_close, switching,
                             wait_eof, ws_request)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Descriptors(unittest.TestCase):
    def test_every_ending_gives_its_descriptors_back(self):
        plain = ScriptedBackend(serve_forever(lambda c, r: ok_response()))
        tunnels = ScriptedBackend(passive, keep_open=True)
        silent = ScriptedBackend(hang)
        with plain, tunnels, silent:
            upstreams = {
                "plain": {"servers": [plain.address], "keepalive": 0},
                "ws": {"servers": [tunnels.address], "keepalive": 0},
                "slow": {"servers": [silent.address], "keepalive": 0},
                "dead": {"servers": [f"127.0.0.1:{dead_port()}"], "keepalive": 0},
            }
            routes = [
                {"match": {"path_prefix": "/ws"}, "upstream": "ws",
                 "upgrade": {"allow": ["websocket"]}},
                {"match": {"path_prefix": "/slow"}, "upstream": "slow"},
                {"match": {"path_prefix": "/dead"}, "upstream": "dead"},
                {"match": {"path_prefix": "/"}, "upstream": "plain"},
            ]
            cfg = make_config([], upstreams=upstreams, routes=routes,
                                 timeouts={"tunnel_idle": "300ms", "upstream_response": "300ms",
                                           "request_header": "300ms"})
            with Proxy(cfg) as px:
                pid = px.proc.pid
                time.sleep(0.2)
                baseline = fd_count(pid)

                for _ in range(3):
                    self.assertEqual(get(px.port, "/a").status, 200)             # plain
                    self.assertEqual(get(px.port, "/dead").status, 502)          # refused
                    self.assertEqual(get(px.port, "/slow").status, 504)          # timeout
                    with Client(px.port) as c:                                   # 400
                        self.assertEqual(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n"
                                                   b"Content-Length: 1\r\nContent-Length: 2"
                                                   b"\r\n\r\n").status, 400)
                    with Client(px.port) as c:                                   # 408
                        c.send(b"GET / HTTP/1.1\r\n")
                        self.assertEqual(c.read_response().status, 408)
                    with Client(px.port) as c:                                   # client gone
                        c.send(b"GET /a HTTP/1.1\r\nHost")

                n = 0
                # Tunnels: ended by EOF both ways, by either side's reset, by idle timeout.
                c, bc = open_ws_tunnel(self, px, tunnels, n, path=b"/ws"); n += 1
                c.shutdown_write()
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()
                self.assertIsNotNone(wait_eof(c.sock))
                c.close()

                c, bc = open_ws_tunnel(self, px, tunnels, n, path=b"/ws"); n += 1
                reset_close(c.sock)
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()

                c, bc = open_ws_tunnel(self, px, tunnels, n, path=b"/ws"); n += 1
                c.send(b"abc")
                self.assertEqual(recv_exact(bc.sock, 3), b"abc")
                reset_close(bc.sock)
                self.assertIsNotNone(wait_eof(c.sock))
                c.close()

                c, bc = open_ws_tunnel(self, px, tunnels, n, path=b"/ws"); n += 1
                self.assertIsNotNone(wait_eof(c.sock, 3))          # idle timeout
                bc.close()
                c.close()

                # A refused 101 (wrong protocol) closes both.
                with Client(px.port) as c:
                    c.send(ws_request(b"/ws"))
                    tunnels.wait_accepted(n + 1)
                    bc = tunnels.connections[n]
                    bc.recv_request()
                    bc.send(switching(protocol=b"other"))
                    self.assertEqual(c.read_response().status, 502)
                    bc.close()

                finish(px)
                px.wait_metric("switchyard_upstream_connections_active", 0)
                deadline = time.monotonic() + 5
                while fd_count(pid) != baseline and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(fd_count(pid), baseline,
                                 sorted(os.readlink(f"/proc/{pid}/fd/{fd}")
                                        for fd in os.listdir(f"/proc/{pid}/fd")))


if __name__ == "__main__":
    main()
