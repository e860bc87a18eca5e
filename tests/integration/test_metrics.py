"""The admin /metrics page (docs/configuration.md "Metrics", docs/operations.md "Metrics"): the
exposition is valid Prometheus text 0.0.4 (promtool, prometheus_client), every documented
family is there with its type and labels, workers are added up into one series, and known
traffic moves each counter by exactly its amount: requests by route and status class,
upgrade outcomes, tunnels (gauges, bytes each way, durations, end reasons), tunnels per
server, connect failures per upstream, reloads.

promtool (Debian prometheus) and prometheus_client (python3-prometheus-client) are
required: a missing tool fails the test."""

import math
import re
import shutil
import subprocess
import time
import unittest

from harness import (Client, Proxy, ScriptedBackend, dead_port, get, http_request, main,
                     make_config, metric_sum, passive, reload_config, series, split_series,
                     wait_metric_sum)
from upgrade_support import (recv_exact, reset_close, switching, wait_eof,
                             ws_forwarded, ws_request)

OUTCOMES = {"forwarded", "stripped", "rejected", "required", "bad_request", "switched",
            "declined", "refused_101", "terminated", "throttled"}
REASONS = {"eof", "client_reset", "upstream_reset", "idle_timeout", "shutdown", "error",
           "protocol_error",  # a terminated WebSocket closed for a broken framing rule
           "handed_off"}  # moved to the new process by a binary upgrade (SIGUSR2)
CODES = {"1xx", "2xx", "3xx", "4xx", "5xx"}

# name: (type, label names) from docs/operations.md's table
FAMILIES = {
    "switchyard_requests_total": ("counter", {"route", "code"}),
    "switchyard_upgrades_total": ("counter", {"route", "protocol", "outcome"}),
    "switchyard_tunnels_active": ("gauge", {"route", "protocol"}),
    "switchyard_tunnels_total": ("counter", {"route", "protocol"}),
    "switchyard_tunnels_adopted_total": ("counter", {"route", "protocol"}),
    "switchyard_tunnel_bytes_total": ("counter", {"route", "protocol", "direction"}),
    "switchyard_tunnel_duration_seconds": ("histogram", {"route", "protocol"}),
    "switchyard_tunnels_closed_total": ("counter", {"route", "protocol", "reason"}),
    "switchyard_upstream_tunnels_active": ("gauge", {"upstream", "server"}),
    "switchyard_upstream_connect_failures_total": ("counter", {"upstream"}),
    "switchyard_upstream_connections_active": ("gauge", set()),
    "switchyard_upstream_connections_idle": ("gauge", set()),
    "switchyard_connections_active": ("gauge", set()),
    "switchyard_connections_total": ("counter", set()),
    "switchyard_connections_refused_total": ("counter", set()),
    "switchyard_responses_proxy_total": ("counter", set()),
    "switchyard_bytes_from_clients_total": ("counter", set()),
    "switchyard_bytes_to_clients_total": ("counter", set()),
    "switchyard_config_reloads_total": ("counter", {"result"}),
    "switchyard_config_last_reload_success_timestamp_seconds": ("gauge", set()),
    "switchyard_access_log_dropped_total": ("counter", set()),
}

DURATION = "switchyard_tunnel_duration_seconds"


def scrape(px):
    resp = http_request(px.admin_port,
                        b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
    return resp


def by_series(metrics, name=None):
    """{(name, frozenset(labels)): value} (optionally only `name`)."""
    out = {}
    for key, value in metrics.items():
        n, labels = split_series(key)
        if name is None or n == name:
            out[(n, frozenset(labels.items()))] = value
    return out


def changed(before, after, name):
    """{frozenset(labels): delta} of the series of `name` whose value moved."""
    b, a = by_series(before, name), by_series(after, name)
    out = {}
    for key in set(a) | set(b):
        delta = a.get(key, 0.0) - b.get(key, 0.0)
        if delta:
            out[key[1]] = delta
    return out


def ls(**labels):
    return frozenset(labels.items())


def delta(before, after, name, **labels):
    return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)


def buckets(metrics, **labels):
    """{le (float): value} of the duration histogram's buckets with `labels`."""
    out = {}
    for lab, value in series(metrics, DURATION + "_bucket", **labels):
        le = float(lab["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def path_script(conn):
    """Backend: answers by request path, for the counters' tests.
    /ws/switch: a valid 101, then a tunnel read until the client's EOF;
    /ws/bad101: a 101 with a wrong Sec-WebSocket-Accept;
    /api/created: 201; /api/missing: 404; /api/err: 500; anything else: 200."""
    while True:
        req = conn.recv_request()
        target = req.split(b" ", 2)[1]
        if target.startswith(b"/ws/switch"):
            conn.send(switching())
            conn.sock.settimeout(10)
            while conn.sock.recv(1 << 16):
                pass
            return
        if target.startswith(b"/ws/bad101"):
            conn.send(switching(accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
            conn.wait_closed()
            return
        status = {b"/api/created": b"201 Created", b"/api/missing": b"404 Not Found",
                  b"/api/err": b"500 Internal Server Error"}.get(target, b"200 OK")
        conn.send(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")


def send_one(port, data):
    """One request on its own connection; the response status."""
    with Client(port) as c:
        return c.request(data).status


def open_tunnel_any(test, px, backends, path=b"/chat"):
    """Opens a WebSocket tunnel to whichever of `backends` (passive, keep_open) gets the
    connection; returns (client, backend connection, the backend)."""
    before = [b.accepted for b in backends]
    c = Client(px.port)
    c.send(ws_request(path))
    deadline = time.monotonic() + 5
    while sum(b.accepted for b in backends) == sum(before):
        test.assertLess(time.monotonic(), deadline, "no backend got the upgrade")
        time.sleep(0.01)
    be = next(b for b, n in zip(backends, before) if b.accepted > n)
    bc = be.connections[-1]
    test.assertEqual(bc.recv_request(), ws_forwarded(path))
    bc.send(switching())
    test.assertEqual(c.read_response().status, 101)
    return c, bc, be


class Exposition(unittest.TestCase):
    def test_page_passes_promtool_and_prometheus_client_with_two_workers_added_up(self):
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if not shutil.which(promtool):
            self.fail("promtool not found (Debian package prometheus)")
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            self.fail("prometheus_client not importable (Debian python3-prometheus-client; "
                      "run under /usr/bin/python3)")

        dead = f"127.0.0.1:{dead_port()}"
        with ScriptedBackend(path_script) as be, ScriptedBackend(passive, keep_open=True) as tb:
            ups = {"app": {"servers": [be.address]}, "tun": {"servers": [tb.address]},
                   "gone": {"servers": [dead]}}
            routes = [
                {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "app"},
                {"name": "chat", "match": {"path_prefix": "/chat"}, "upstream": "tun",
                 "upgrade": {"allow": ["websocket"]}},
                {"match": {"path_prefix": "/gone"}, "upstream": "gone"},
            ]
            cfg = make_config([], upstreams=ups, routes=routes, workers=2)
            with Proxy(cfg) as px:
                n = 40
                for i in range(n):              # new connections: both workers serve
                    self.assertEqual(get(px.port, f"/api/{i}").status, 200)
                self.assertEqual(get(px.port, "/nowhere").status, 404)
                self.assertEqual(get(px.port, "/gone").status, 502)
                self.assertEqual(send_one(px.port, ws_request(b"/api/strip")), 200)
                c1, b1, _ = open_tunnel_any(self, px, [tb])     # one closed tunnel
                c1.send(b"abc")
                self.assertEqual(recv_exact(b1.sock, 3), b"abc")
                c1.close()
                b1.close()
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                c2, b2, _ = open_tunnel_any(self, px, [tb])     # and one open
                reload_config(px, cfg)
                reload_config(px, "routes: [\n", result="failed")
                reload_config(px, cfg)

                resp = scrape(px)
                self.assertEqual(resp.status, 200)
                text = resp.body.decode("utf-8")

                r = subprocess.run([promtool, "check", "metrics"], input=resp.body,
                                   capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, "promtool check metrics:\n"
                                 + (r.stdout + r.stderr).decode(errors="replace"))

                families = {f.name: f for f in text_string_to_metric_families(text)}
                for name, (kind, labels) in FAMILIES.items():
                    fam_name = name[:-len("_total")] if kind == "counter" else name
                    with self.subTest(name):
                        self.assertIn(fam_name, families, f"family {name} missing")
                        fam = families[fam_name]
                        self.assertEqual(fam.type, kind)
                        self.assertTrue(fam.documentation, f"{name} has no HELP")
                        self.assertTrue(fam.samples, f"{name} has no sample")
                        for s in fam.samples:
                            got = set(s.labels) - ({"le"} if s.name.endswith("_bucket")
                                                   else set())
                            self.assertEqual(got, labels, s)
                self.check_structure(text)
                self.check_label_values(px.metrics(), {"api", "chat", "route3", "-"})
                self.check_histograms(px.metrics())

                m = px.metrics()
                self.assertEqual(metric_sum(m, "switchyard_requests_total", route="api",
                                            code="2xx"), n + 1,
                                 "the workers' counts must be added up")
                self.assertEqual(metric_sum(m, "switchyard_tunnels_active", route="chat",
                                            protocol="websocket"), 1)
                c2.close()
                b2.close()
                finish_all(px)
                # one Content-Type, the exposition format's
                ctypes = resp.headers("Content-Type")
                self.assertEqual(len(ctypes), 1, f"Content-Type fields: {ctypes}")
                self.assertRegex(ctypes[0], r"^text/plain; *version=0\.0\.4( *; *charset=utf-8)?$")

    def check_structure(self, text):
        """What the parsers let pass: one HELP and one TYPE per family before its samples,
        a family's samples together, no series twice."""
        seen_types, seen_series, order = {}, set(), []
        current = None
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.assertNotIn(name, seen_types, f"second TYPE for {name}")
                seen_types[name] = kind
                current = name
                order.append(name)
                continue
            if line.startswith("#"):
                continue
            key = line.rpartition(" ")[0]
            name, labels = split_series(key)
            family = name
            if seen_types.get(current) == "histogram":
                family = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertEqual(family, current, f"sample {line!r} outside its family's block")
            ident = (name, frozenset(labels.items()))
            self.assertNotIn(ident, seen_series, f"series twice: {line!r}")
            seen_series.add(ident)

    def check_label_values(self, m, routes):
        allowed = {"route": routes, "code": CODES, "outcome": OUTCOMES, "reason": REASONS,
                   "direction": {"client_to_upstream", "upstream_to_client"},
                   "result": {"ok", "failed"}}
        for key in m:
            name, labels = split_series(key)
            for label, values in allowed.items():
                if label in labels:
                    self.assertIn(labels[label], values, key)
            if "protocol" in labels:
                self.assertRegex(labels["protocol"], r"^[a-z0-9_.+-]+$", key)

    def check_histograms(self, m):
        """Buckets from 0.1 s or less up to a day or more, cumulative, +Inf = _count."""
        groups = {}
        for lab, value in series(m, DURATION + "_bucket"):
            rest = frozenset((k, v) for k, v in lab.items() if k != "le")
            groups.setdefault(rest, {})[float(lab["le"])] = value
        self.assertTrue(groups, "no duration buckets")
        for rest, bks in groups.items():
            les = sorted(bks)
            self.assertLessEqual(les[0], 0.1, les)
            self.assertIn(math.inf, bks, les)
            self.assertGreaterEqual(les[-2], 86400, les)
            values = [bks[le] for le in les]
            self.assertEqual(values, sorted(values), f"buckets not cumulative: {bks}")
            self.assertEqual(bks[math.inf], metric_sum(m, DURATION + "_count", **dict(rest)))


class Counters(unittest.TestCase):
    def test_requests_total_by_route_and_status_class(self):
        dead = f"127.0.0.1:{dead_port()}"
        with ScriptedBackend(path_script) as be:
            ups = {"app": {"servers": [be.address]}, "gone": {"servers": [dead]}}
            routes = [
                {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "app"},
                {"match": {"path_prefix": "/gone"}, "upstream": "gone"},     # route2
                {"match": {"path_prefix": "/spare"}, "upstream": "app"},     # route3
            ]
            with Proxy(make_config([], upstreams=ups, routes=routes)) as px:
                m0 = px.metrics()
                self.assertTrue(series(m0, "switchyard_requests_total", route="route3"),
                                "the routes of the current file always have series")
                for path, status in (("/api/a", 200), ("/api/b", 200), ("/api/c", 200),
                                     ("/api/created", 201), ("/api/missing", 404),
                                     ("/api/missing", 404), ("/api/err", 500),
                                     ("/nowhere", 404), ("/gone/1", 502), ("/gone/2", 502)):
                    self.assertEqual(get(px.port, path).status, status, path)
                m1 = px.metrics()
                self.assertEqual(changed(m0, m1, "switchyard_requests_total"), {
                    ls(route="api", code="2xx"): 4,
                    ls(route="api", code="4xx"): 2,
                    ls(route="api", code="5xx"): 1,
                    ls(route="-", code="4xx"): 1,
                    ls(route="route2", code="5xx"): 2,
                })
                self.assertEqual(delta(m0, m1, "switchyard_responses_proxy_total"), 3)
                px.assert_idle()

    def test_upstream_connect_failures_by_upstream(self):
        dead = f"127.0.0.1:{dead_port()}"
        with ScriptedBackend() as be:
            ups = {"app": {"servers": [be.address]}, "gone": {"servers": [dead]}}
            routes = [{"match": {"path_prefix": "/gone"}, "upstream": "gone"},
                      {"match": {"path_prefix": "/"}, "upstream": "app"}]
            with Proxy(make_config([], upstreams=ups, routes=routes)) as px:
                m0 = px.metrics()
                for _ in range(2):      # below health.max_fails: each one tries the server
                    self.assertEqual(get(px.port, "/gone").status, 502)
                self.assertEqual(get(px.port, "/ok").status, 200)
                m1 = px.metrics()
                self.assertEqual(changed(m0, m1, "switchyard_upstream_connect_failures_total"),
                                 {ls(upstream="gone"): 2})
                px.assert_idle()

    def test_upgrade_outcomes_are_counted_exactly(self):
        with ScriptedBackend(path_script) as be:
            routes = [
                {"name": "ws", "match": {"path_prefix": "/ws"}, "upstream": "app",
                 "upgrade": {"allow": ["websocket"]}},
                {"name": "strict", "match": {"path_prefix": "/strict"}, "upstream": "app",
                 "upgrade": {"allow": ["foo"], "on_disallowed": "reject"}},
                {"name": "req", "match": {"path_prefix": "/req"}, "upstream": "app",
                 "upgrade": {"allow": ["websocket"], "require": True}},
                {"name": "strip", "match": {"path_prefix": "/strip"}, "upstream": "app"},
                {"name": "foo", "match": {"path_prefix": "/foo"}, "upstream": "app",
                 "upgrade": {"allow": ["Foo/2"]}},
            ]
            with Proxy(make_config([be.address], routes=routes)) as px:
                m0 = px.metrics()
                # forwarded + switched
                with Client(px.port) as c:
                    self.assertEqual(c.request(ws_request(b"/ws/switch")).status, 101)
                    c.send(b"tunnelled")
                    c.shutdown_write()
                    self.assertIsNotNone(wait_eof(c.sock, 5))
                for request, status in (
                        (ws_request(b"/ws/decline"), 200),           # forwarded + declined
                        (ws_request(b"/ws/bad101"), 502),            # forwarded + refused_101
                        (ws_request(b"/ws/k", key=b"c2hvcnQ="), 400),  # bad_request (key)
                        (ws_request(b"/ws/v", version=b"8"), 426),   # bad_request (version)
                        (ws_request(b"/strict"), 403),               # rejected
                        (b"GET /req HTTP/1.1\r\nHost: x\r\n\r\n", 426),  # required, none
                        (ws_request(b"/strip"), 200),                # stripped, websocket
                        (b"GET /strip HTTP/1.1\r\nHost: x\r\nUpgrade: bar/1\r\n"
                         b"Connection: Upgrade\r\n\r\n", 200),       # stripped, other
                        (b"GET /foo HTTP/1.1\r\nHost: x\r\nUpgrade: FOO/2\r\n"
                         b"Connection: Upgrade\r\n\r\n", 200),       # forwarded + declined
                ):
                    self.assertEqual(send_one(px.port, request), status, request)
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                m1 = px.metrics()
                ws = dict(route="ws", protocol="websocket")
                self.assertEqual(changed(m0, m1, "switchyard_upgrades_total"), {
                    ls(outcome="forwarded", **ws): 3,
                    ls(outcome="switched", **ws): 1,
                    ls(outcome="declined", **ws): 1,
                    ls(outcome="refused_101", **ws): 1,
                    ls(outcome="bad_request", **ws): 2,
                    ls(route="strict", protocol="websocket", outcome="rejected"): 1,
                    ls(route="req", protocol="none", outcome="required"): 1,
                    ls(route="strip", protocol="websocket", outcome="stripped"): 1,
                    ls(route="strip", protocol="other", outcome="stripped"): 1,
                    ls(route="foo", protocol="foo", outcome="forwarded"): 1,
                    ls(route="foo", protocol="foo", outcome="declined"): 1,
                })
                self.assertEqual(changed(m0, m1, "switchyard_requests_total"), {
                    ls(route="ws", code="1xx"): 1,       # a switched upgrade counts as 1xx
                    ls(route="ws", code="2xx"): 1,
                    ls(route="ws", code="4xx"): 2,
                    ls(route="ws", code="5xx"): 1,
                    ls(route="strict", code="4xx"): 1,
                    ls(route="req", code="4xx"): 1,
                    ls(route="strip", code="2xx"): 2,
                    ls(route="foo", code="2xx"): 1,
                })
                finish_all(px)

    def test_tunnel_gauges_bytes_duration_and_end_reasons(self):
        with ScriptedBackend(passive, keep_open=True) as be:
            routes = [{"name": "chat", "match": {"path_prefix": "/"}, "upstream": "app",
                       "upgrade": {"allow": ["websocket"]}}]
            with Proxy(make_config([be.address], routes=routes)) as px:
                chat = dict(route="chat", protocol="websocket")
                m0 = px.metrics()
                # 1: 1000 bytes up, 2345 down, held 1.5 s, both sides end: eof
                c, bc, _ = open_tunnel_any(self, px, [be])
                opened = time.monotonic()
                m = px.metrics()
                self.assertEqual(metric_sum(m, "switchyard_tunnels_active", **chat), 1)
                self.assertEqual(delta(m0, m, "switchyard_tunnels_total", **chat), 1)
                self.assertEqual(metric_sum(m, "switchyard_upstream_tunnels_active",
                                            upstream="app", server=be.address), 1)
                up, down = bytes(range(250)) * 4, b"d" * 2345
                c.send(up)
                self.assertEqual(recv_exact(bc.sock, len(up)), up)
                bc.send(down)
                self.assertEqual(recv_exact(c.sock, len(down)), down)
                time.sleep(max(0.0, 1.5 - (time.monotonic() - opened)))
                c.shutdown_write()
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()
                self.assertIsNotNone(wait_eof(c.sock))
                c.close()
                wait_metric_sum(px, "switchyard_tunnels_active", 0, **chat)
                m1 = px.metrics()
                self.assertEqual(metric_sum(m1, "switchyard_upstream_tunnels_active",
                                            upstream="app", server=be.address), 0)
                self.assertEqual(changed(m0, m1, "switchyard_tunnel_bytes_total"), {
                    ls(direction="client_to_upstream", **chat): 1000,
                    ls(direction="upstream_to_client", **chat): 2345})
                self.assertEqual(changed(m0, m1, "switchyard_tunnels_closed_total"),
                                 {ls(reason="eof", **chat): 1})
                self.assertEqual(delta(m0, m1, DURATION + "_count", **chat), 1)
                took = delta(m0, m1, DURATION + "_sum", **chat)
                self.assertTrue(1.4 <= took < 5, f"duration {took} s for a 1.5 s tunnel")
                b0, b1 = buckets(m0, **chat), buckets(m1, **chat)
                moved = {le: b1[le] - b0.get(le, 0.0) for le in b1}
                self.assertTrue(any(le <= 1 for le in moved) and any(le >= 5 for le in moved),
                                moved)
                for le, d in moved.items():
                    if le <= 1 or le >= 5:
                        self.assertEqual(d, 0 if le <= 1 else 1, f"bucket le={le}: {moved}")

                # 2: the client resets: client_reset; 3: the backend resets: upstream_reset
                c, bc, _ = open_tunnel_any(self, px, [be])
                c.send(b"1234567")
                self.assertEqual(recv_exact(bc.sock, 7), b"1234567")
                reset_close(c.sock)
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()
                c, bc, _ = open_tunnel_any(self, px, [be])
                bc.send(b"12345678901")
                self.assertEqual(recv_exact(c.sock, 11), b"12345678901")
                reset_close(bc.sock)
                self.assertIsNotNone(wait_eof(c.sock))
                c.close()
                wait_metric_sum(px, "switchyard_tunnels_active", 0, **chat)
                m2 = px.metrics()
                self.assertEqual(changed(m1, m2, "switchyard_tunnels_closed_total"),
                                 {ls(reason="client_reset", **chat): 1,
                                  ls(reason="upstream_reset", **chat): 1})
                self.assertEqual(changed(m1, m2, "switchyard_tunnel_bytes_total"), {
                    ls(direction="client_to_upstream", **chat): 7,
                    ls(direction="upstream_to_client", **chat): 11})
                self.assertEqual(delta(m1, m2, "switchyard_tunnels_total", **chat), 2)
                self.assertEqual(delta(m1, m2, DURATION + "_count", **chat), 2)
                finish_all(px)

    def test_idle_timeout_reason(self):
        with ScriptedBackend(passive, keep_open=True) as be:
            routes = [{"match": {"path_prefix": "/"}, "upstream": "app",
                       "upgrade": {"allow": ["websocket"]}}]
            with Proxy(make_config([be.address], routes=routes,
                                   timeouts={"tunnel_idle": "300ms"})) as px:
                m0 = px.metrics()
                c, bc, _ = open_tunnel_any(self, px, [be])
                self.assertIsNotNone(wait_eof(c.sock, 3))
                c.close()
                bc.close()
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                self.assertEqual(changed(m0, px.metrics(), "switchyard_tunnels_closed_total"),
                                 {ls(route="route1", protocol="websocket",
                                     reason="idle_timeout"): 1})
                finish_all(px)

    def test_upstream_tunnels_active_per_server(self):
        with ScriptedBackend(passive, keep_open=True) as b1, \
                ScriptedBackend(passive, keep_open=True) as b2:
            routes = [{"match": {"path_prefix": "/"}, "upstream": "pool",
                       "upgrade": {"allow": ["websocket"]}}]
            ups = {"pool": {"servers": [b1.address, b2.address]}}
            with Proxy(make_config([], upstreams=ups, routes=routes)) as px:
                tunnels = [open_tunnel_any(self, px, [b1, b2]) for _ in range(5)]
                on = {b.address: sum(1 for _, _, t in tunnels if t is b) for b in (b1, b2)}
                m = px.metrics()
                for address, count in on.items():
                    self.assertEqual(metric_sum(m, "switchyard_upstream_tunnels_active",
                                                upstream="pool", server=address), count, m)
                self.assertEqual(metric_sum(m, "switchyard_upstream_tunnels_active"), 5)
                for i, (c, bc, t) in enumerate(tunnels):
                    c.close()
                    bc.close()
                    on[t.address] -= 1
                    wait_metric_sum(px, "switchyard_upstream_tunnels_active", on[t.address],
                                    upstream="pool", server=t.address)
                finish_all(px)


class Reloads(unittest.TestCase):
    def test_reload_counters_timestamp_and_counters_never_going_down(self):
        with ScriptedBackend() as be:
            def cfg(name, path):
                return make_config([be.address], routes=[
                    {"name": name, "match": {"path_prefix": path}, "upstream": "app"}])
            t_start = time.time()
            with Proxy(cfg("old", "/old")) as px:
                m0 = px.metrics()
                self.assertEqual(metric_sum(m0, "switchyard_config_reloads_total"), 0,
                                 "the start is not a reload")
                ts0 = m0.get("switchyard_config_last_reload_success_timestamp_seconds")
                self.assertIsNotNone(ts0)
                self.assertTrue(t_start - 1 <= ts0 <= time.time() + 1,
                                f"start timestamp {ts0}, started at {t_start}")
                self.assertEqual(get(px.port, "/old").status, 200)
                time.sleep(1.1)

                t_reload = time.time()
                before = px.metrics()
                reload_config(px, cfg("new", "/new"))
                m1 = px.metrics()
                self.assertEqual(metric_sum(m1, "switchyard_config_reloads_total", result="ok"), 1)
                ts1 = m1["switchyard_config_last_reload_success_timestamp_seconds"]
                self.assertTrue(t_reload - 1 <= ts1 <= time.time() + 1 and ts1 > ts0,
                                f"timestamp {ts1} after a reload at {t_reload}")
                self.assert_not_down(before, m1)
                self.assertEqual(metric_sum(m1, "switchyard_requests_total", route="old",
                                            code="2xx"), 1,
                                 "a removed route keeps its last values")
                self.assertEqual(get(px.port, "/old").status, 404)
                self.assertEqual(get(px.port, "/new").status, 200)

                before = px.metrics()
                reload_config(px, "listen: [ {\n", result="failed")
                m2 = px.metrics()
                self.assertEqual(metric_sum(m2, "switchyard_config_reloads_total", result="failed"), 1)
                self.assertEqual(metric_sum(m2, "switchyard_config_reloads_total", result="ok"), 1)
                self.assertEqual(m2["switchyard_config_last_reload_success_timestamp_seconds"], ts1)
                self.assert_not_down(before, m2)
                self.assertEqual(metric_sum(m2, "switchyard_requests_total", route="new",
                                            code="2xx"), 1)
                px.assert_idle()

    def assert_not_down(self, before, after):
        """Every counter series (and histogram part) present before is present after with
        a value at least as large."""
        b, a = by_series(before), by_series(after)
        for (name, labels), value in b.items():
            if re.search(r"(_total|_count|_sum|_bucket)$", name):
                self.assertIn((name, labels), a, f"series {name}{dict(labels)} vanished")
                self.assertGreaterEqual(a[(name, labels)], value, f"{name}{dict(labels)}")


def finish_all(px):
    """finish() for labelled gauges: no tunnel and no client connection left."""
    wait_metric_sum(px, "switchyard_tunnels_active", 0)
    wait_metric_sum(px, "switchyard_upstream_tunnels_active", 0)
    px.assert_idle()


if __name__ == "__main__":
    main()
