"""Upstream health (docs/configuration.md `upstreams.*.health`): the active check (`check: {path,
interval}`: GET, 2xx = up) and the passive one (`max_fails` consecutive connect failures
skip a server for `cooldown`)."""

import threading
import time
import unittest

from harness import (Proxy, ScriptedBackend, dead_port, get, main, make_config, ok_response,
                     serve_forever)


class Server:
    """A backend whose /healthz answers `health_status`; other paths answer `name`."""

    def __init__(self, name):
        self.name = name.encode()
        self.health_status = 200
        self.health_requests = []
        self.lock = threading.Lock()
        self.backend = ScriptedBackend(serve_forever(self.respond))

    def respond(self, conn, request):
        if request.startswith(b"GET /healthz "):
            with self.lock:
                self.health_requests.append(request)
                status = self.health_status
            reason = b"OK" if status == 200 else b"Service Unavailable"
            return (b"HTTP/1.1 " + str(status).encode() + b" " + reason +
                    b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return ok_response(self.name)


def config(servers, **health):
    upstreams = {"app": {"servers": servers, "health": health}}
    return make_config(servers, upstreams=upstreams)


def bodies(port, n):
    return [get(port, "/x").body for _ in range(n)]


class ActiveCheck(unittest.TestCase):
    def test_probe_request_is_a_plain_get_of_the_path(self):
        a = Server("A")
        with a.backend, Proxy(config([a.backend.address],
                                     check={"path": "/healthz", "interval": "200ms"})) as px:
            deadline = time.time() + 5
            while not a.health_requests and time.time() < deadline:
                time.sleep(0.02)
            self.assertTrue(a.health_requests, "no health probe arrived")
            self.assertEqual(
                a.health_requests[0],
                b"GET /healthz HTTP/1.1\r\nHost: " + a.backend.address.encode() +
                b"\r\nUser-Agent: switchyard-health-check\r\nConnection: close\r\n\r\n")
            px.assert_idle()

    def test_server_failing_its_check_gets_no_requests_until_it_recovers(self):
        a, b = Server("A"), Server("B")
        a.health_status = 503
        servers = [a.backend.address, b.backend.address]
        with a.backend, b.backend, Proxy(config(servers, check={"path": "/healthz",
                                                                "interval": "150ms"})) as px:
            time.sleep(0.5)  # the first probes run at start
            self.assertEqual(bodies(px.port, 6), [b"B"] * 6)
            with a.lock:
                a.health_status = 200
            time.sleep(0.5)
            self.assertIn(b"A", bodies(px.port, 6))
            px.assert_idle()

    def test_every_server_down_still_gets_requests(self):
        a, b = Server("A"), Server("B")
        a.health_status = b.health_status = 503
        servers = [a.backend.address, b.backend.address]
        with a.backend, b.backend, Proxy(config(servers, check={"path": "/healthz",
                                                                "interval": "150ms"})) as px:
            time.sleep(0.5)
            got = bodies(px.port, 4)
            self.assertEqual(sorted(got), [b"A", b"A", b"B", b"B"])
            px.assert_idle()


class PassiveCheck(unittest.TestCase):
    def test_dead_server_is_skipped_during_its_cooldown(self):
        b = Server("B")
        servers = [f"127.0.0.1:{dead_port()}", b.backend.address]
        with b.backend, Proxy(config(servers, max_fails=1, cooldown="10s")) as px:
            self.assertEqual(bodies(px.port, 6), [b"B"] * 6)
            # One failed attempt, then the dead server sits out its cooldown.
            self.assertEqual(px.metric("switchyard_upstream_connect_failures_total"), 1)
            px.assert_idle()

    def test_zero_cooldown_tries_the_dead_server_again(self):
        b = Server("B")
        servers = [f"127.0.0.1:{dead_port()}", b.backend.address]
        with b.backend, Proxy(config(servers, max_fails=1, cooldown="0s")) as px:
            self.assertEqual(bodies(px.port, 4), [b"B"] * 4)
            self.assertGreaterEqual(px.metric("switchyard_upstream_connect_failures_total"), 2)
            px.assert_idle()


if __name__ == "__main__":
    main()
