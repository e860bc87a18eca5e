"""The access log's formats (docs/configuration.md `access_log`, docs/operations.md "Access log"):
`format: json` writes one JSON object per line with exactly the documented keys in the
documented order, matching the traffic (exchanges, upgrade outcomes, a tunnel's end line),
and stays valid JSON whatever bytes a request carried; `format: text` names routes and
escapes bytes outside printable ASCII; a reload switches the format for new exchanges."""

import codecs
import datetime
import json
import re
import time
import unittest

from harness import (Client, PeerClosed, Proxy, ScriptedBackend, dead_port, main,
                     make_config, ok_response, passive, reload_config, serve_forever,
                     wait_metric_sum)
from upgrade_support import open_ws_tunnel, recv_exact, wait_eof, ws_request

KEYS = ["time", "event", "client", "method", "target", "version", "status", "route",
        "upstream", "server", "upgrade", "protocol", "bytes_in", "bytes_out", "request_ms",
        "tunnel_ms", "end"]
OUTCOMES = {"forwarded", "stripped", "rejected", "required", "bad_request", "switched",
            "declined", "refused_101", "terminated", "throttled"}
EXCHANGE_ENDS = {"ok", "proxy", "upstream_error", "client_abort", "switched"}
TUNNEL_ENDS = {"eof", "client_reset", "upstream_reset", "idle_timeout", "shutdown", "error"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _bytes_as_code_points(err):
    return "".join(chr(b) for b in err.object[err.start:err.end]), err.end


codecs.register_error("switchyard-bytes", _bytes_as_code_points)


def as_logged(raw):
    """What a JSON string must decode to for request bytes `raw`: UTF-8 where the bytes
    are valid UTF-8, every other byte as the code point of its value (\\u00XX)."""
    return raw.decode("utf-8", "switchyard-bytes")


def json_config(servers, routes, upstreams=None, fmt="json", **sections):
    return make_config(servers, routes=routes, upstreams=upstreams,
                       access_log={"path": "-", "format": fmt}, **sections)


class JsonLog:
    """Reads and checks the proxy's stdout as a JSON access log."""

    def __init__(self, test, px):
        self.test, self.px = test, px

    def complete_lines(self):
        with open(self.px.stdout_path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")      # strict: raw invalid UTF-8 fails here
        except UnicodeDecodeError as e:
            self.test.fail(f"access log is not valid UTF-8: {e}: "
                           f"{raw[max(0, e.start - 80):e.end + 40]!r}")
        return text.split("\n")[:-1]        # what follows the last newline is unfinished

    def records(self):
        return [self.parse(line) for line in self.complete_lines()]

    def wait(self, count, timeout=5.0):
        """The first `count` records, once that many were written."""
        deadline = time.monotonic() + timeout
        while len(self.complete_lines()) < count:
            if time.monotonic() > deadline:
                self.test.fail(f"{len(self.complete_lines())} access-log lines after "
                               f"{timeout}s, expected {count}:\n" + "\n".join(
                                   self.complete_lines()[-10:]))
            time.sleep(0.02)
        return self.records()[:count]

    def settle(self, count, wait=0.5):
        """No line beyond the first `count` after `wait` seconds."""
        time.sleep(wait)
        lines = self.complete_lines()
        self.test.assertEqual(len(lines), count, "unexpected extra lines:\n"
                              + "\n".join(lines[count:]))

    def parse(self, line):
        t = self.test
        try:
            pairs = json.loads(line, object_pairs_hook=lambda p: p)
        except ValueError as e:
            t.fail(f"not JSON ({e}): {line!r}")
        t.assertIsInstance(pairs, list, line)
        t.assertEqual([k for k, _ in pairs], KEYS, f"keys or their order: {line}")
        rec = dict(pairs)
        t.assertRegex(rec["time"], TIME_RE, line)
        written = datetime.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc)
        now = datetime.datetime.now(datetime.timezone.utc)
        t.assertLess(abs((now - written).total_seconds()), 60, f"time far off: {line}")
        t.assertIn(rec["event"], ("exchange", "tunnel"), line)
        t.assertEqual(rec["client"], "127.0.0.1", line)
        for k in ("method", "target", "version", "route", "upstream", "server", "protocol"):
            t.assertIsInstance(rec[k], (str, type(None)), f"{k}: {line}")
        for k in ("status", "bytes_in", "bytes_out"):
            t.assertFalse(isinstance(rec[k], bool), f"{k}: {line}")
        t.assertIsInstance(rec["status"], (int, type(None)), line)
        t.assertIsInstance(rec["bytes_in"], int, line)
        t.assertIsInstance(rec["bytes_out"], int, line)
        t.assertGreaterEqual(min(rec["bytes_in"], rec["bytes_out"]), 0, line)
        t.assertIsInstance(rec["request_ms"], (int, float, type(None)), line)
        if rec["upgrade"] is not None:
            t.assertIn(rec["upgrade"], OUTCOMES, line)
        if rec["event"] == "exchange":
            t.assertIsNone(rec["tunnel_ms"], line)
            t.assertIn(rec["end"], EXCHANGE_ENDS, line)
        else:
            t.assertIsInstance(rec["tunnel_ms"], (int, float), line)
            t.assertIn(rec["end"], TUNNEL_ENDS, line)
        return rec


def routes_for_exchanges():
    return [
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "app"},
        {"match": {"path_prefix": "/web"}, "upstream": "app"},                 # route2
        {"name": "gone", "match": {"path_prefix": "/gone"}, "upstream": "gone"},
        {"name": "ws", "match": {"path_prefix": "/ws"}, "upstream": "app",
         "upgrade": {"allow": ["websocket"]}},
    ]


class JsonFormat(unittest.TestCase):
    def test_exchange_lines_have_the_documented_keys_and_match_the_traffic(self):
        body = b"hello json"
        dead = f"127.0.0.1:{dead_port()}"
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(body))) as be:
            ups = {"app": {"servers": [be.address]}, "gone": {"servers": [dead]}}
            with Proxy(json_config([], routes_for_exchanges(), ups)) as px:
                log = JsonLog(self, px)
                sent = []
                for request in (
                        b"GET /api/a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"POST /api/p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
                        b"hello world",
                        b"GET /web/old HTTP/1.0\r\nHost: x\r\n\r\n",
                        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n",
                        ws_request(b"/api/strip"),
                        ws_request(b"/ws/decline")):
                    with Client(px.port) as c:
                        resp = c.request(request)
                    sent.append((request, resp))
                    log.wait(len(sent))
                recs = log.wait(len(sent))
                log.settle(len(sent))
                common = dict(event="exchange", client="127.0.0.1", tunnel_ms=None)
                expected = [
                    dict(method="GET", target="/api/a?x=1", version="1.1", status=200,
                         route="api", upstream="app", server=be.address, upgrade=None,
                         protocol=None, end="ok"),
                    dict(method="POST", target="/api/p", version="1.1", status=200,
                         route="api", upstream="app", server=be.address, upgrade=None,
                         protocol=None, end="ok"),
                    dict(method="GET", target="/web/old", version="1.0", status=200,
                         route="route2", upstream="app", server=be.address, upgrade=None,
                         protocol=None, end="ok"),
                    dict(method="GET", target="/nowhere", version="1.1", status=404,
                         route=None, upstream=None, server=None, upgrade=None,
                         protocol=None, end="proxy"),
                    dict(method="GET", target="/gone", version="1.1", status=502,
                         route="gone", upstream="gone", upgrade=None, protocol=None),
                    dict(method="GET", target="/api/strip", version="1.1", status=200,
                         route="api", upstream="app", server=be.address, upgrade="stripped",
                         protocol="websocket", end="ok"),
                    dict(method="GET", target="/ws/decline", version="1.1", status=200,
                         route="ws", upstream="app", server=be.address, upgrade="declined",
                         protocol="websocket", end="ok"),
                ]
                for rec, (request, resp), want in zip(recs, sent, expected):
                    with self.subTest(want["target"]):
                        self.assertEqual({k: rec[k] for k in want}, want, rec)
                        self.assertEqual({k: rec[k] for k in common}, common, rec)
                        self.assertEqual(rec["status"], resp.status)
                        self.assertEqual(rec["bytes_in"], len(request), rec)
                        self.assertEqual(rec["bytes_out"], len(resp.raw), rec)
                        self.assertIsInstance(rec["request_ms"], (int, float), rec)
                        self.assertTrue(0 <= rec["request_ms"] < 5000, rec)
                # a 502 for an unreachable server: answered by the proxy because of the
                # upstream; either word reads right, and the server tried or none
                self.assertIn(recs[4]["end"], ("upstream_error", "proxy"), recs[4])
                self.assertIn(recs[4]["server"], (dead, None), recs[4])
                px.assert_idle()

    def test_switched_exchange_line_and_tunnel_end_line(self):
        with ScriptedBackend(passive, keep_open=True) as be:
            routes = [{"name": "chat", "match": {"path_prefix": "/"}, "upstream": "app",
                       "upgrade": {"allow": ["websocket"]}}]
            with Proxy(json_config([be.address], routes)) as px:
                log = JsonLog(self, px)
                c, bc = open_ws_tunnel(self, px, be)
                opened = time.monotonic()
                c.send(b"12345")
                self.assertEqual(recv_exact(bc.sock, 5), b"12345")
                bc.send(b"abc")
                self.assertEqual(recv_exact(c.sock, 3), b"abc")
                time.sleep(0.3)
                c.shutdown_write()
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()
                self.assertIsNotNone(wait_eof(c.sock))
                held = (time.monotonic() - opened) * 1000
                c.close()
                switched, tunnel = log.wait(2)
                log.settle(2)
                same = dict(client="127.0.0.1", method="GET", target="/chat", version="1.1",
                            status=101, route="chat", upstream="app", server=be.address,
                            upgrade="switched", protocol="websocket")
                self.assertEqual({k: switched[k] for k in same}, same, switched)
                self.assertEqual({k: tunnel[k] for k in same}, same, tunnel)
                self.assertEqual((switched["event"], switched["end"], switched["tunnel_ms"]),
                                 ("exchange", "switched", None), switched)
                self.assertEqual(switched["bytes_in"], len(ws_request(b"/chat")), switched)
                self.assertGreater(switched["bytes_out"], 0, switched)
                self.assertEqual((tunnel["event"], tunnel["end"]), ("tunnel", "eof"), tunnel)
                self.assertEqual((tunnel["bytes_in"], tunnel["bytes_out"]), (5, 3), tunnel)
                self.assertTrue(250 <= tunnel["tunnel_ms"] <= held + 500, (tunnel, held))
                self.assertIsInstance(tunnel["request_ms"], (int, float), tunnel)
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                px.assert_idle()

    def test_hostile_bytes_still_give_valid_json(self):
        long_target = b"/long/" + b"\xff" * 600
        cases = [
            # (raw request, target bytes the log may show)
            (b"GET /caf\xc3\xa9/\xff\xfe?q=\x80\xbf HTTP/1.1\r\n", b"/caf\xc3\xa9/\xff\xfe?q=\x80\xbf"),
            (b"GET /over\xc0\xaf/sur\xed\xa0\x80/cut\xe2\x82 HTTP/1.1\r\n",
             b"/over\xc0\xaf/sur\xed\xa0\x80/cut\xe2\x82"),
            (b'GET /q"uo\\te\\"x HTTP/1.1\r\n', b'/q"uo\\te\\"x'),
            (b'GET /x","status":999,"inject":"y HTTP/1.1\r\n', b'/x","status":999,"inject":"y'),
            (b"GET /ctl\x01\x7f HTTP/1.1\r\n", b"/ctl\x01\x7f"),
            (b"GET /nul\x00x HTTP/1.1\r\n", b"/nul\x00x"),
            (b"GET /esc\x1b[31m\x1b]0;t\x07 HTTP/1.1\r\n", b"/esc\x1b[31m\x1b]0;t\x07"),
            (b"GET " + long_target + b" HTTP/1.1\r\n", long_target),
            (b"G\xffT /method HTTP/1.1\r\n", b"/method"),
        ]
        headers = [
            (b"X-Junk: \xff\xfe\x80 \"\\ \xc3\xa9 \\u0000\r\n", b"/hdr-obs-text"),
            (b"X-Junk: a\x01b\r\n", b"/hdr-ctl"),
            (b"X-Junk: a\x7fb\r\n", b"/hdr-del"),
            (b"Upgrade: w\xffb\"s\\ock\xc3\xa9t\r\nConnection: Upgrade\r\n", b"/hdr-upgrade"),
            (b"Us\xffer-Agent: x\r\n", b"/hdr-name"),
        ]
        for field, target in headers:
            cases.append((b"GET " + target + b" HTTP/1.1\r\n" + field, target))
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"k"))) as be:
            routes = [{"name": "all", "match": {"path_prefix": "/"}, "upstream": "app",
                       "upgrade": {"allow": ["websocket"]}}]
            with Proxy(json_config([be.address], routes)) as px:
                log = JsonLog(self, px)
                statuses = []
                for i, (head, _) in enumerate(cases):
                    request = head + b"Host: x\r\nConnection: close\r\n\r\n"
                    with Client(px.port) as c:
                        c.send(request)
                        try:
                            statuses.append(c.read_response().status)
                        except PeerClosed:
                            statuses.append(None)
                    log.wait(i + 1)
                recs = log.wait(len(cases))
                log.settle(len(cases))
                for (head, target), status, rec in zip(cases, statuses, recs):
                    with self.subTest(head[:40]):
                        self.assertEqual(rec["status"], status, rec)
                        self.assertEqual(rec["event"], "exchange", rec)
                        if rec["target"] is not None:
                            want = as_logged(target)
                            if target is long_target:
                                self.assertTrue(want.startswith(rec["target"]), rec)
                                self.assertGreaterEqual(len(rec["target"]), 512, rec)
                            else:
                                self.assertEqual(rec["target"], want, rec)
                        if status is not None and 200 <= status < 300:
                            self.assertEqual((rec["route"], rec["upstream"], rec["end"]),
                                             ("all", "app", "ok"), rec)
                            self.assertIsNotNone(rec["target"], rec)
                        if rec["upgrade"] == "stripped":
                            self.assertEqual(rec["protocol"],
                                             as_logged(b"w\xffb\"s\\ock\xc3\xa9t"), rec)
                # The proxy refuses the targets RFC 3986 does not allow (raw bytes >= 0x80,
                # controls, quotes: 400) and still logs them as valid JSON; obs-text in a
                # field value is forwarded.
                self.assertEqual(statuses[0], 400, "raw bytes >= 0x80 in a target")
                self.assertEqual(statuses[9], 200, "obs-text in a field value")
                px.assert_idle()


class TextFormat(unittest.TestCase):
    LINE = re.compile(r'^(?P<time>\S+) (?P<client>\S+) "(?P<method>\S+) (?P<target>.*) '
                      r'HTTP/1\.[01]" (?P<status>\d+) in=\d+ out=\d+ \d+ms '
                      r'route=(?P<route>\S+) upstream=(?P<upstream>\S+) '
                      r'server=(?P<server>\S+) (?P<end>\S+)(?: proto=(?P<proto>\S+))?$')

    def test_text_lines_name_the_route_and_escape_bytes(self):
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"t"))) as be:
            routes = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "app"},
                      {"match": {"path_prefix": "/web"}, "upstream": "app"}]
            with Proxy(json_config([be.address], routes, fmt="text")) as px:
                long_target = "/web/" + "a" * 700
                for target in (b"/api/x", b"/web/y", b"/nowhere", b"/api/caf\xc3\xa9\xff",
                               long_target.encode()):
                    with Client(px.port) as c:
                        c.request(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                lines = self.wait_lines(px, 5)
                m = [self.LINE.match(line) for line in lines]
                self.assertTrue(all(m), lines)
                got = [(x["target"], x["status"], x["route"], x["upstream"], x["server"],
                        x["end"]) for x in m]
                self.assertEqual(got[:3], [
                    ("/api/x", "200", "api", "app", be.address, "ok"),
                    ("/web/y", "200", "route2", "app", be.address, "ok"),
                    ("/nowhere", "404", "-", "-", "-", "proxy")])
                self.assertEqual(got[3][0].lower(), "/api/caf\\xc3\\xa9\\xff")
                self.assertEqual(got[3][1:3], ("400", "-"), "raw bytes >= 0x80: 400 before routing")
                logged = got[4][0]
                self.assertEqual(logged[:512], long_target[:512])
                self.assertNotIn(long_target[:513], logged, "target not cut at 512 bytes")
                px.assert_idle()

    @staticmethod
    def wait_lines(px, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            with open(px.stdout_path, "rb") as f:
                raw = f.read()
            lines = raw.split(b"\n")[:-1]
            if len(lines) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for line in lines:
            assert all(0x20 <= b < 0x7f for b in line), f"not printable ASCII: {line!r}"
        return [line.decode("ascii") for line in lines]

    def test_reload_switches_the_format_for_new_exchanges(self):
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"t"))) as be:
            routes = [{"name": "api", "match": {"path_prefix": "/"}, "upstream": "app"}]
            with Proxy(json_config([be.address], routes, fmt="text")) as px:
                with Client(px.port) as c:
                    c.request(b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n")
                first = self.wait_lines(px, 1)
                self.assertTrue(self.LINE.match(first[0]), first)
                reload_config(px, json_config([be.address], routes, fmt="json"))
                with Client(px.port) as c:
                    c.request(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
                deadline = time.monotonic() + 5
                while len(px.stdout().splitlines()) < 2 and time.monotonic() < deadline:
                    time.sleep(0.02)
                lines = px.stdout().splitlines()
                self.assertEqual(len(lines), 2, lines)
                rec = JsonLog(self, px).parse(lines[1])
                self.assertEqual((rec["target"], rec["route"], rec["status"]),
                                 ("/after", "api", 200))
                px.assert_idle()


if __name__ == "__main__":
    main()
