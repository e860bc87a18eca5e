"""Balancing long-lived connections (docs/upgrades.md, "Balancing long-lived connections";
docs/configuration.md `balance`, `hash_key`, `sticky`, `max_tunnels`, `slow_start`,
`upgrade.max_rate`, `upgrade.max_tunnels`).

The backends (balancing_support.WsServer) name themselves: `X-Server:` on a plain response,
the first WebSocket frame after a 101. They record every upgrade they receive, so "nothing
went upstream" is checked where it was supposed to arrive.

- balance: hash by header, client IP (clients bound to 127.0.0.2 ...), cookie and query:
  the same key always reaches the same server, keys spread, no key -> round robin;
  consistent: a server leaving the pool moves only its own keys, and they come back.
- a stopped server's keys move to the others (passive health) and come back after it is up.
- max_tunnels per server: the 5th upgrade on 2x2 gets 503 + Retry-After + Connection: close,
  outcome throttled, nothing upstream; places are reserved (concurrent upgrades) and given
  back (a declined upgrade, a 502, a closed tunnel); plain requests never limited.
- route upgrade.max_tunnels and upgrade.max_rate: the same 503; other routes and plain
  requests unaffected.
- a reconnect storm: 2,000 WebSocket clients against max_rate: 200, retrying after
  Retry-After; the backend never sees more than 400 upgrades in any 1 s window; all connect.
- slow_start: a server back from down gets a share of new tunnels growing over 4 s.
- sticky cookie: set on a 101 and on a plain response, followed, forged/stale values
  replaced, Secure on TLS, another server (and a new cookie) when its server is down or full.
- reload: lowering max_tunnels keeps open tunnels; new upgrades wait until under the cap."""

import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (SWITCHYARD_BIN, Proxy, dead_port, main, make_config, metric_sum, parse_fields, reload_config,
                     series, wait_metric_sum)
from balancing_support import (ServerProcess, WsClient, WsServer, plain, raise_nofile, upgrade_request)

Counter = collections.Counter

UPGRADES = "switchyard_upgrades_total"
SERVER_TUNNELS = "switchyard_upstream_tunnels_active"
ROUTE_TUNNELS = "switchyard_tunnels_active"
COOKIE_RE = re.compile(r"^sy_aff=([0-9a-f]{16}); Path=/; HttpOnly; Max-Age=(\d+)(; Secure)?$")


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def backends(n, **kw):
    """n WsServers named A, B, C ..."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(WsServer(chr(ord("A") + i), **kw)) for i in range(n)]


def ws_route(name="ws", path="/", upstream="app", **upgrade):
    return {"name": name, "match": {"path_prefix": path}, "upstream": upstream,
            "upgrade": dict({"allow": ["websocket"]}, **upgrade)}


def config(servers, routes=None, sections=None, **upstream):
    """One upstream `app` (keys as given) behind one route `ws` allowing websocket."""
    upstreams = {"app": dict({"servers": [s.address if hasattr(s, "address") else s for s in servers]},
                             **upstream)}
    return make_config([], upstreams=upstreams, routes=routes or [ws_route()], **(sections or {}))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def tunnels_per_server(px, upstream="app"):
    return {ls["server"]: v for ls, v in series(px.metrics(), SERVER_TUNNELS, upstream=upstream)}


def throttled(px, route="ws"):
    return metric_sum(px.metrics(), UPGRADES, route=route, outcome="throttled")


def served_by(resp):
    return resp.header("X-Server")


def key_header(key):
    return b"X-User: " + key.encode() + b"\r\n"


def upgrades_received(servers):
    return sum(s.upgrade_count() for s in servers)


class Case(unittest.TestCase):
    def assert_throttled(self, ws, retry_after="1"):
        """A 503 refusal of an upgrade: Retry-After (whole seconds >= 1), Connection: close,
        and the connection closed after it."""
        resp = ws.response
        self.assertEqual(resp.status, 503, resp.raw)
        ra = resp.header("Retry-After")
        self.assertIsNotNone(ra, resp.raw)
        self.assertRegex(ra, r"^[1-9][0-9]*$", resp.raw)
        if retry_after is not None:
            self.assertEqual(ra, retry_after, resp.raw)
        self.assertEqual(resp.header("Connection"), "close", resp.raw)
        self.assertIsNone(resp.header("Upgrade"), resp.raw)
        self.assertTrue(ws.is_closed(3), "the connection stayed open after the 503")
        ws.close()

    def open_tunnels(self, port, n, **kw):
        out = []
        for i in range(n):
            ws = WsClient(port, **kw)
            self.assertEqual(ws.status, 101, f"upgrade {i}: {ws.response.raw}")
            out.append(ws)
        return out


# --------------------------------------------------------------------------- balance: hash


class Hash(Case):
    def mapping(self, px, keys):
        """key -> the server its plain request reached."""
        return {k: served_by(plain(px.port, extra=key_header(k))) for k in keys}

    def test_header_key_sticks_to_one_server_and_keys_spread(self):
        with backends(4) as bs, Proxy(config(bs, balance="hash", hash_key="header:X-User")) as px:
            where = {}
            for i in range(40):
                key = f"user-{i}"
                seen = {served_by(plain(px.port, extra=key_header(key))) for _ in range(2)}
                # the field's value is trimmed: the same key with spaces around it
                seen.add(served_by(plain(px.port, extra=b"X-User:   " + key.encode() + b"  \r\n")))
                with WsClient(px.port, extra=key_header(key)) as ws:
                    self.assertEqual(ws.status, 101, ws.response.raw)
                    seen.add(ws.server)
                self.assertEqual(len(seen), 1, f"key {key} reached {seen}")
                where[key] = seen.pop()
            spread = Counter(where.values())
            print(f"\n40 header keys over 4 servers: {dict(sorted(spread.items()))}")
            self.assertGreaterEqual(len(spread), 3, spread)
            # another process with the same servers makes the same choices
            with Proxy(config(bs, balance="hash", hash_key="header:X-User")) as other:
                self.assertEqual(self.mapping(other, where), where)
                other.assert_idle()
            # no key: round robin, so 8 requests are 2 on each of the 4 servers
            no_key = Counter(served_by(plain(px.port)) for _ in range(8))
            self.assertEqual(sorted(no_key.values()), [2, 2, 2, 2], no_key)
            px.assert_idle()

    def test_client_ip_key_from_several_loopback_addresses(self):
        sources = [f"127.0.0.{i}" for i in range(2, 26)]
        with backends(4) as bs, Proxy(config(bs, balance="hash", hash_key="client_ip")) as px:
            where = {}
            for src in sources:
                seen = {served_by(plain(px.port, source=src)) for _ in range(2)}
                with WsClient(px.port, source=src) as ws:
                    self.assertEqual(ws.status, 101, ws.response.raw)
                    seen.add(ws.server)
                self.assertEqual(len(seen), 1, f"client {src} reached {seen}")
                where[src] = seen.pop()
            spread = Counter(where.values())
            print(f"\n{len(sources)} client addresses over 4 servers: {dict(sorted(spread.items()))}")
            self.assertGreaterEqual(len(spread), 3, spread)
            # the key is the client's address: every backend saw it in X-Forwarded-For
            for b in bs:
                self.assertTrue(set(b.names_seen("X-Forwarded-For")) <= set(sources))
            px.assert_idle()

    def test_cookie_and_query_keys(self):
        upstreams = {"bycookie": {"servers": [], "balance": "hash", "hash_key": "cookie:room"},
                     "byquery": {"servers": [], "balance": "hash", "hash_key": "query:room"}}
        routes = [ws_route("c", "/c", "bycookie"), ws_route("q", "/q", "byquery")]
        with backends(4) as bs:
            for u in upstreams.values():
                u["servers"] = [b.address for b in bs]
            with Proxy(make_config([], upstreams=upstreams, routes=routes)) as px:
                by_cookie, by_query = {}, {}
                for i in range(24):
                    room = f"r{i}"
                    seen = {served_by(plain(px.port, "/c", extra=b"Cookie: room=" + room.encode() + b"\r\n")),
                            served_by(plain(px.port, "/c", extra=b"Cookie: a=1; room=" + room.encode()
                                            + b"; b=2\r\n"))}
                    with WsClient(px.port, "/c", extra=b"Cookie: x=y; room=" + room.encode() + b"\r\n") as ws:
                        seen.add(ws.server)
                    self.assertEqual(len(seen), 1, f"cookie room={room}: {seen}")
                    by_cookie[room] = seen.pop()
                    seen = {served_by(plain(px.port, f"/q?room={room}")),
                            served_by(plain(px.port, f"/q/x?a=1&room={room}&b=2"))}
                    with WsClient(px.port, f"/q?room={room}&t={i}") as ws:
                        seen.add(ws.server)
                    self.assertEqual(len(seen), 1, f"query room={room}: {seen}")
                    by_query[room] = seen.pop()
                self.assertGreaterEqual(len(set(by_cookie.values())), 3, by_cookie)
                self.assertGreaterEqual(len(set(by_query.values())), 3, by_query)
                px.assert_idle()

    def test_removing_a_server_moves_only_its_keys_and_adding_it_brings_them_back(self):
        keys = [f"k{i}" for i in range(80)]
        with backends(4) as bs:
            full = config(bs, balance="hash", hash_key="header:X-User")
            with Proxy(full) as px:
                before = self.mapping(px, keys)
                gone = Counter(before.values()).most_common(1)[0][0]
                rest = [b for b in bs if b.name != gone]
                reload_config(px, config(rest, balance="hash", hash_key="header:X-User"))
                after = self.mapping(px, keys)
                moved = {k for k in keys if after[k] != before[k]}
                self.assertEqual(moved, {k for k in keys if before[k] == gone},
                                 "a key of a server that stayed moved")
                spread = Counter(after[k] for k in moved)
                print(f"\nkeys of {gone} ({len(moved)}) went to {dict(sorted(spread.items()))}")
                self.assertGreaterEqual(len(spread), 2, spread)
                reload_config(px, full)
                self.assertEqual(self.mapping(px, keys), before)
                px.assert_idle()


# --------------------------------------------------------------------------- health


class HashAndHealth(Case):
    def test_stopped_server_keys_move_away_and_come_back(self):
        keys = [f"k{i}" for i in range(60)]
        with backends(3) as bs:
            by_name = {b.name: b for b in bs}
            cfg = config(bs, balance="hash", hash_key="header:X-User",
                         health={"max_fails": 1, "cooldown": "1s"})
            with Proxy(cfg) as px:
                mapping = lambda: {k: served_by(plain(px.port, extra=key_header(k))) for k in keys}
                before = mapping()
                victim = by_name[Counter(before.values()).most_common(1)[0][0]]
                victim.stop()
                down = mapping()          # every request answered: the dead server is skipped
                for k in keys:
                    if before[k] == victim.name:
                        self.assertNotEqual(down[k], victim.name)
                    else:
                        self.assertEqual(down[k], before[k], f"key {k} of a live server moved")
                spread = Counter(down[k] for k in keys if before[k] == victim.name)
                print(f"\n{victim.name} down: its {sum(spread.values())} keys went to "
                      f"{dict(sorted(spread.items()))}")
                self.assertEqual(len(spread), 2, spread)
                # stable while it is down, upgrades included
                self.assertEqual(mapping(), down)
                for k in [k for k in keys if before[k] == victim.name][:5]:
                    with WsClient(px.port, extra=key_header(k)) as ws:
                        self.assertEqual((ws.status, ws.server), (101, down[k]))
                victim.start()            # the same port again
                wait_until(lambda: mapping() == before, 8, "the keys to come back to " + victim.name)
                for k in [k for k in keys if before[k] == victim.name][:5]:
                    with WsClient(px.port, extra=key_header(k)) as ws:
                        self.assertEqual((ws.status, ws.server), (101, victim.name))
                px.assert_idle()


# --------------------------------------------------------------------------- max_tunnels (server)


class ServerMaxTunnels(Case):
    def test_fifth_upgrade_on_two_full_servers_is_throttled(self):
        log = {"access_log": {"path": "-", "format": "json"}}
        with backends(2) as bs, Proxy(config(bs, max_tunnels=2, sections=log)) as px:
            tunnels = self.open_tunnels(px.port, 4)
            self.assertEqual(Counter(t.server for t in tunnels), {"A": 2, "B": 2})
            self.assertEqual(tunnels_per_server(px), {bs[0].address: 2, bs[1].address: 2})
            fifth = WsClient(px.port)
            self.assert_throttled(fifth)
            self.assertEqual(throttled(px), 1)
            self.assertEqual(upgrades_received(bs), 4, "the throttled upgrade reached a backend")

            def throttled_lines():
                lines = [json.loads(l) for l in px.stdout().splitlines() if l.startswith("{")]
                return [l for l in lines if l.get("upgrade") == "throttled"]
            line = wait_until(throttled_lines, 5, "the access-log line of the 503")[0]
            self.assertEqual((line["status"], line["protocol"], line["route"]), (503, "websocket", "ws"))
            # plain requests are not limited by max_tunnels
            self.assertEqual(sorted(served_by(plain(px.port)) for _ in range(4)), ["A", "A", "B", "B"])
            # every tunnel still carries bytes
            for i, t in enumerate(tunnels):
                self.assertEqual(t.echo(f"m{i}"), f"m{i}")
            # closing a tunnel frees its place (on its server)
            freed = tunnels.pop(0)
            freed.close()
            wait_metric_sum(px, SERVER_TUNNELS, 1, server=[b.address for b in bs if b.name == freed.server][0])
            again = WsClient(px.port)
            self.assertEqual((again.status, again.server), (101, freed.server), again.response.raw)
            tunnels.append(again)
            self.assert_throttled(WsClient(px.port))
            self.assertEqual(throttled(px), 2)
            self.assertEqual(upgrades_received(bs), 5)
            self.assertEqual(tunnels_per_server(px), {bs[0].address: 2, bs[1].address: 2})
            for t in tunnels:
                t.close()
            wait_metric_sum(px, SERVER_TUNNELS, 0)
            px.assert_idle()

    def test_concurrent_upgrades_never_exceed_the_cap(self):
        # The backends take 0.5 s to answer: all 10 requests are in flight at once, each
        # holding its place from the moment its server is chosen.
        # Two workers: the count is shared by both.
        with backends(2, upgrade_delay=0.5) as bs, \
                Proxy(config(bs, max_tunnels=2, sections={"workers": 2})) as px:
            results = [None] * 10

            def one(i):
                results[i] = WsClient(px.port, timeout=10)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
            self.assertTrue(all(results), "a client did not finish")
            statuses = Counter(r.status for r in results)
            self.assertEqual(statuses, {101: 4, 503: 6})
            self.assertEqual(Counter(r.server for r in results if r.status == 101), {"A": 2, "B": 2})
            self.assertEqual(upgrades_received(bs), 4)
            self.assertEqual(throttled(px), 6)
            for r in results:
                if r.status == 503:
                    self.assert_throttled(r)
                r.close()
            wait_metric_sum(px, SERVER_TUNNELS, 0)
            px.assert_idle()

    def test_terminated_websockets_count_too(self):
        # upgrade.terminate: the proxy answers the 101 and the server is a TCP service
        with backends(1) as (svc,), \
                Proxy(config([svc], max_tunnels=1, routes=[ws_route(terminate="websocket")])) as px:
            first = WsClient(px.port, expect_name=False)
            self.assertEqual(first.status, 101, first.response.raw)
            self.assertEqual(tunnels_per_server(px), {svc.address: 1})
            self.assert_throttled(WsClient(px.port, expect_name=False))
            self.assertEqual(throttled(px), 1)
            first.close()
            wait_metric_sum(px, SERVER_TUNNELS, 0)
            with WsClient(px.port, expect_name=False) as again:
                self.assertEqual(again.status, 101, again.response.raw)
            wait_metric_sum(px, SERVER_TUNNELS, 0)
            px.assert_idle()

    def test_declined_upgrade_and_502_give_the_place_back(self):
        upstreams = {"app": {"servers": [], "max_tunnels": 1},
                     "dead": {"servers": [f"127.0.0.1:{dead_port()}"], "max_tunnels": 1}}
        routes = [ws_route("dead", "/dead", "dead"), ws_route()]
        with backends(1) as (a,):
            upstreams["app"]["servers"] = [a.address]
            with Proxy(make_config([], upstreams=upstreams, routes=routes)) as px:
                for _ in range(3):   # the backend answers 200: no tunnel, the place is back
                    with WsClient(px.port, "/decline") as ws:
                        self.assertEqual(ws.status, 200, ws.response.raw)
                        self.assertEqual(ws.response.body, b"A")
                for _ in range(3):   # no server reachable: 502, not 503, each time
                    with WsClient(px.port, "/dead") as ws:
                        self.assertEqual(ws.status, 502, ws.response.raw)
                t = WsClient(px.port)
                self.assertEqual((t.status, t.server), (101, "A"))
                self.assert_throttled(WsClient(px.port))
                self.assertEqual(throttled(px), 1)
                t.close()
                wait_metric_sum(px, SERVER_TUNNELS, 0)
                px.assert_idle()


# --------------------------------------------------------------------------- route admission


class RouteAdmission(Case):
    def test_route_max_tunnels(self):
        routes = [ws_route("free", "/free"), ws_route("ws", "/ws", max_tunnels=2)]
        with backends(2) as bs, Proxy(config(bs, routes=routes)) as px:
            tunnels = self.open_tunnels(px.port, 2, path="/ws")
            self.assert_throttled(WsClient(px.port, "/ws"))
            self.assertEqual(throttled(px, "ws"), 1)
            self.assertEqual(upgrades_received(bs), 2)
            # plain requests on the route, and upgrades on another route, go on
            self.assertEqual([plain(px.port, "/ws").status for _ in range(4)], [200] * 4)
            other = WsClient(px.port, "/free")
            self.assertEqual(other.status, 101)
            self.assertEqual(upgrades_received(bs), 3)
            tunnels[0].close()
            wait_metric_sum(px, ROUTE_TUNNELS, 1, route="ws")
            again = WsClient(px.port, "/ws")
            self.assertEqual(again.status, 101, again.response.raw)
            self.assert_throttled(WsClient(px.port, "/ws"))
            self.assertEqual(throttled(px, "ws"), 2)
            self.assertEqual(throttled(px, "free"), 0)
            for t in tunnels[1:] + [other, again]:
                t.close()
            wait_metric_sum(px, ROUTE_TUNNELS, 0)
            px.assert_idle()

    def test_route_max_rate(self):
        routes = [ws_route("free", "/free"), ws_route("ws", "/ws", max_rate=5)]
        with backends(1) as bs, Proxy(config(bs, routes=routes)) as px:
            time.sleep(1.1)      # a quiet second: the bucket holds max_rate
            t0 = time.monotonic()
            for i in range(5):
                with WsClient(px.port, "/ws") as ws:
                    self.assertEqual(ws.status, 101, f"upgrade {i} of the burst: {ws.response.raw}")
            sixth = WsClient(px.port, "/ws")
            elapsed = time.monotonic() - t0
            if elapsed < 0.15:   # no token could have come back yet (one per 0.2 s)
                self.assert_throttled(sixth, retry_after=None)
                self.assertEqual(throttled(px, "ws"), 1)
            else:
                sixth.close()
                self.skipTest(f"the burst took {elapsed:.2f}s; cannot tell refill from overflow")
            # plain requests on the route and upgrades elsewhere are not limited
            self.assertEqual([plain(px.port, "/ws").status for _ in range(10)], [200] * 10)
            for _ in range(8):
                with WsClient(px.port, "/free") as ws:
                    self.assertEqual(ws.status, 101)
            # one token per 1/5 s
            time.sleep(0.3)
            with WsClient(px.port, "/ws") as ws:
                self.assertEqual(ws.status, 101, ws.response.raw)
            self.assertEqual(upgrades_received(bs), 5 + 8 + 1)
            px.assert_idle()


# --------------------------------------------------------------------------- reconnect storm


CLIENTS = 2000
RATE = 200


async def storm_client(port, record, deadline):
    """Upgrades until it gets a 101, waiting Retry-After (+ up to 1 s of jitter) after each
    503. Returns (connected time, reader, writer)."""
    while True:
        if time.monotonic() > deadline:
            raise AssertionError("client gave up: storm deadline passed")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            record["connect_errors"].append(repr(e))
            await asyncio.sleep(0.2 + random.random())
            continue
        writer.write(upgrade_request("/ws"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            first = await asyncio.wait_for(reader.readexactly(2), 20)   # the backend's name frame
            await asyncio.wait_for(reader.readexactly(first[1] & 0x7F), 20)
            return time.monotonic(), reader, writer
        fields = {n.lower(): v for n, v in parse_fields(head)}
        if status != 503:
            raise AssertionError(f"unexpected answer {head!r}")
        record["throttled"] += 1
        record["retry_after"][fields.get("retry-after")] += 1
        if fields.get("connection", "").lower() != "close":
            record["no_close"] += 1
        rest = await asyncio.wait_for(reader.read(), 10)    # the body, then the proxy's close
        if len(rest) != int(fields.get("content-length", "0")):
            record["bad_body"] += 1
        writer.close()
        retry_after = int(fields.get("retry-after", "1"))
        await asyncio.sleep(retry_after + random.random())


class Storm(Case):
    def test_two_thousand_clients_against_max_rate_200(self):
        soft = raise_nofile(20000)
        if soft < 3 * CLIENTS + 500:
            self.skipTest(f"open-files limit {soft} is too low for {CLIENTS} clients")
        workdir = tempfile.mkdtemp(prefix="switchyard-storm-")
        arrivals_path = os.path.join(workdir, "arrivals.json")
        try:
            with ServerProcess("ws-server", "S", arrivals_path) as backend:
                # Two workers: the bucket is shared by both.
                cfg = config([backend.address], routes=[ws_route("ws", "/", max_rate=RATE)],
                             sections={"workers": 2})
                with Proxy(cfg) as px:
                    time.sleep(1.1)
                    record = {"throttled": 0, "retry_after": Counter(), "no_close": 0, "bad_body": 0,
                              "connect_errors": []}

                    async def storm():
                        start = time.monotonic()
                        deadline = start + 60
                        results = await asyncio.wait_for(asyncio.gather(
                            *(storm_client(px.port, record, deadline) for _ in range(CLIENTS)),
                            return_exceptions=True), 70)
                        try:
                            snapshot = px.metrics()   # every client still holds its tunnel
                        finally:
                            for r in results:
                                if not isinstance(r, BaseException):
                                    r[2].close()
                            await asyncio.sleep(0.2)
                        return start, results, snapshot

                    start, results, snapshot = asyncio.run(storm())
                    failures = [r for r in results if isinstance(r, BaseException)]
                    self.assertEqual(failures[:3], [], f"{len(failures)} clients failed")
                    done = max(r[0] for r in results) - start
                    wait_metric_sum(px, ROUTE_TUNNELS, 0, timeout=30)
                    px.assert_idle()
            with open(arrivals_path) as f:
                arrivals = sorted(json.load(f))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        worst, j = 0, 0
        for i, t in enumerate(arrivals):       # every window [t, t+1) starting at an arrival
            while j < len(arrivals) and arrivals[j] < t + 1.0:
                j += 1
            worst = max(worst, j - i)
        per_second = Counter(int(t - arrivals[0]) for t in arrivals)
        print(f"\nstorm: {CLIENTS} clients, max_rate {RATE}: all connected after {done:.1f}s; "
              f"{record['throttled']} answers 503 (Retry-After {dict(record['retry_after'])}); "
              f"most upgrades reaching the backend in any 1 s window: {worst}; per second: "
              f"{[per_second[s] for s in range(max(per_second) + 1)]}; connect errors: "
              f"{len(record['connect_errors'])}")
        self.assertEqual(len(arrivals), CLIENTS, "the backend saw a throttled upgrade, or missed one")
        self.assertEqual(metric_sum(snapshot, ROUTE_TUNNELS, route="ws"), CLIENTS)
        # GCRA with a bucket of RATE: at most RATE at once plus RATE over the next second. The
        # backend stamps arrivals, which lag admission by a few ms that vary: RATE/20 of slack.
        self.assertLessEqual(worst, 2 * RATE + RATE // 20)
        self.assertGreater(record["throttled"], 0)
        self.assertEqual(metric_sum(snapshot, UPGRADES, route="ws", outcome="throttled"), record["throttled"])
        self.assertEqual(record["no_close"], 0)
        self.assertEqual(record["bad_body"], 0)


# --------------------------------------------------------------------------- slow start


class SlowStart(Case):
    RAMP = 4.0

    def measure(self, upstream_extra, request_extra):
        """A down (active check) server A recovers; returns A's share of new tunnels per
        second since the check saw it up (and in the second before)."""
        with backends(2) as (a, b):
            a.health_status = 503
            cfg = config([a, b], slow_start="4s", health={"check": {"path": "/healthz", "interval": "100ms"}},
                         **upstream_extra)
            with Proxy(cfg) as px:
                wait_until(lambda: len(a.health) >= 3, 5, "A's failed checks")
                stop = threading.Event()
                errors = []

                def drive():
                    # about 500 new tunnels a second, one at a time (TIME_WAIT stays modest)
                    next_at = time.monotonic()
                    while not stop.is_set():
                        next_at += 1 / 500
                        pause = next_at - time.monotonic()
                        if pause > 0:
                            time.sleep(pause)
                        try:
                            with WsClient(px.port, extra=request_extra()) as ws:
                                if ws.status != 101:
                                    errors.append(ws.response.raw)
                        except Exception as e:   # reported below
                            errors.append(repr(e))
                            return

                driver = threading.Thread(target=drive, daemon=True)
                driver.start()
                time.sleep(1.0)
                a.health_status = 200
                up_at = wait_until(lambda: next((t for t, s in a.health if s == 200), None), 3,
                                   "A's first good check")
                time.sleep(self.RAMP + 1.2 - (time.monotonic() - up_at))
                stop.set()
                driver.join(10)
                self.assertEqual(errors[:3], [])
                px.assert_idle()
        bins = {}
        for server, times in (("A", a.upgrades), ("B", b.upgrades)):
            for t, _ in times:
                k = int((t - up_at) // 1)
                if -1 <= k <= self.RAMP:
                    bins.setdefault(k, Counter())[server] += 1
        shares = {k: bins[k]["A"] / sum(bins[k].values()) for k in sorted(bins)}
        counts = {k: sum(bins[k].values()) for k in sorted(bins)}
        return shares, counts

    def check(self, label, shares, counts):
        print(f"\nslow_start 4s ({label}): A's share of new tunnels per second since it came back "
              f"(full share 0.5): " + ", ".join(f"[{k},{k + 1})s: {shares[k]:.2f} of {counts[k]}"
                                                 for k in sorted(shares)))
        for k in range(-1, int(self.RAMP) + 1):
            self.assertGreaterEqual(counts.get(k, 0), 30, f"too few tunnels in second {k} to tell")
        self.assertEqual(shares[-1], 0.0, "A got tunnels while its check failed")
        self.assertLess(shares[0], 0.25, "first second: not well below the full share")
        self.assertGreater(shares[3], 0.35, "last second of the ramp: not close to the full share")
        self.assertGreater(shares[4], 0.4, "after the ramp: not the full share")
        self.assertLess(shares[4], 0.6)
        for k in range(0, int(self.RAMP)):
            self.assertGreater(shares[k + 1], shares[k] - 0.08, f"the share fell from second {k} to {k + 1}")
        self.assertLess(shares[0], shares[2])
        self.assertLess(shares[1], shares[3])

    def test_round_robin_ramp(self):
        self.check("round_robin", *self.measure({}, lambda: b""))

    def test_hash_ramp(self):
        self.check("hash on a header, a new key per tunnel",
                   *self.measure({"balance": "hash", "hash_key": "header:X-User"},
                                 lambda: key_header(os.urandom(6).hex())))


# --------------------------------------------------------------------------- sticky


def cookie_of(resp):
    values = resp.headers("Set-Cookie")
    if not values:
        return None
    if len(values) != 1:
        raise AssertionError(f"several Set-Cookie fields: {values}")
    return values[0]


def cookie_header(value):
    return b"Cookie: " + value.encode() + b"\r\n"


class Sticky(Case):
    def sticky_config(self, servers, **extra):
        return config(servers, sticky={"cookie": "sy_aff"}, **extra)

    def learn_values(self, px, servers):
        """server name -> cookie value, from plain requests without a cookie."""
        values = {}
        for _ in range(3 * len(servers)):
            resp = plain(px.port)
            m = COOKIE_RE.match(cookie_of(resp) or "")
            self.assertIsNotNone(m, f"no or bad Set-Cookie on a request without cookie: {resp.raw}")
            self.assertEqual(m.group(2), "3600")
            self.assertIsNone(m.group(3), "Secure on a plain listener")
            old = values.setdefault(served_by(resp), m.group(1))
            self.assertEqual(old, m.group(1), "one server, two cookie values")
        self.assertEqual(len(values), len(servers))
        self.assertEqual(len(set(values.values())), len(servers), values)
        return values

    def test_cookie_set_when_absent_followed_and_forged_values_replaced(self):
        with backends(3) as bs, Proxy(self.sticky_config(bs)) as px:
            values = self.learn_values(px, bs)
            for b in bs:   # the value does not show the address
                self.assertNotIn(str(b.port), values[b.name])
            # a 101 without cookie sets it too
            with WsClient(px.port) as ws:
                self.assertEqual(ws.status, 101)
                m = COOKIE_RE.match(cookie_of(ws.response) or "")
                self.assertIsNotNone(m, ws.response.raw)
                self.assertEqual(m.group(1), values[ws.server])
            # followed, by plain requests and upgrades alike; no new cookie then
            for name, value in values.items():
                for extra in (cookie_header(f"sy_aff={value}"), cookie_header(f"a=1; sy_aff={value}; b=2")):
                    for _ in range(3):
                        resp = plain(px.port, extra=extra)
                        self.assertEqual(served_by(resp), name)
                        self.assertIsNone(cookie_of(resp), resp.raw)
                    with WsClient(px.port, extra=extra) as ws:
                        self.assertEqual((ws.status, ws.server), (101, name))
                        self.assertIsNone(cookie_of(ws.response), ws.response.raw)
                        self.assertEqual(ws.echo("x"), "x")
            # forged values: ignored (balanced as usual) and replaced by the serving server's
            forged = ["0123456789abcdef", "zz", "", values["A"].upper(), values["A"] + "0",
                      values["A"][:-1]]
            landed = Counter()
            for value in forged:
                for upgrade in (False, True):
                    if upgrade:
                        with WsClient(px.port, extra=cookie_header(f"sy_aff={value}")) as ws:
                            self.assertEqual(ws.status, 101)
                            resp, name = ws.response, ws.server
                    else:
                        resp = plain(px.port, extra=cookie_header(f"sy_aff={value}"))
                        name = served_by(resp)
                    m = COOKIE_RE.match(cookie_of(resp) or "")
                    self.assertIsNotNone(m, f"forged {value!r} not replaced: {resp.raw}")
                    self.assertEqual(m.group(1), values[name], f"forged {value!r}")
                    landed[name] += 1
            self.assertEqual(len(landed), 3, f"forged cookies were not balanced: {landed}")
            # the same values from another process with the same configuration
            with Proxy(self.sticky_config(bs)) as other:
                self.assertEqual(self.learn_values(other, bs), values)
                other.assert_idle()
            px.assert_idle()

    def test_stale_value_after_its_server_left_the_pool_is_replaced(self):
        with backends(3) as bs, Proxy(self.sticky_config(bs)) as px:
            values = self.learn_values(px, bs)
            reload_config(px, self.sticky_config(bs[:2]))
            for upgrade in (False, True):
                if upgrade:
                    with WsClient(px.port, extra=cookie_header(f"sy_aff={values['C']}")) as ws:
                        self.assertEqual(ws.status, 101)
                        resp, name = ws.response, ws.server
                else:
                    resp = plain(px.port, extra=cookie_header(f"sy_aff={values['C']}"))
                    name = served_by(resp)
                self.assertIn(name, ("A", "B"))
                m = COOKIE_RE.match(cookie_of(resp) or "")
                self.assertIsNotNone(m, resp.raw)
                self.assertEqual(m.group(1), values[name])
            self.assertEqual(bs[2].upgrade_count() + len(bs[2].requests), 3)   # only learn_values'
            px.assert_idle()

    def test_cookie_server_down_gives_another_server_and_a_new_cookie(self):
        with backends(2) as (a, b), \
                Proxy(self.sticky_config([a, b], health={"max_fails": 1, "cooldown": "10s"})) as px:
            values = self.learn_values(px, [a, b])
            a.stop()
            for upgrade in (False, True, False, True):
                if upgrade:
                    with WsClient(px.port, extra=cookie_header(f"sy_aff={values['A']}")) as ws:
                        resp, name = ws.response, ws.server
                        self.assertEqual(ws.status, 101, resp.raw)
                else:
                    resp = plain(px.port, extra=cookie_header(f"sy_aff={values['A']}"))
                    name = served_by(resp)
                    self.assertEqual(resp.status, 200, resp.raw)
                self.assertEqual(name, "B")
                self.assertEqual((COOKIE_RE.match(cookie_of(resp) or "") or [None, None])[1], values["B"],
                                 resp.raw)
            px.assert_idle()

    def test_cookie_server_full_gives_another_server_and_a_new_cookie(self):
        with backends(2) as (a, b), Proxy(self.sticky_config([a, b], max_tunnels=1)) as px:
            values = self.learn_values(px, [a, b])
            first = WsClient(px.port, extra=cookie_header(f"sy_aff={values['A']}"))
            self.assertEqual((first.status, first.server), (101, "A"))
            self.assertIsNone(cookie_of(first.response))
            second = WsClient(px.port, extra=cookie_header(f"sy_aff={values['A']}"))
            self.assertEqual((second.status, second.server), (101, "B"), second.response.raw)
            self.assertEqual(COOKIE_RE.match(cookie_of(second.response) or "")[1], values["B"])
            # plain requests are not limited: the cookie's server takes them
            resp = plain(px.port, extra=cookie_header(f"sy_aff={values['A']}"))
            self.assertEqual(served_by(resp), "A")
            self.assertIsNone(cookie_of(resp))
            # both full: 503
            self.assert_throttled(WsClient(px.port, extra=cookie_header(f"sy_aff={values['A']}")))
            first.close()
            second.close()
            wait_metric_sum(px, SERVER_TUNNELS, 0)
            px.assert_idle()

    @unittest.skipUnless(shutil.which("openssl"), "openssl is needed")
    def test_secure_on_a_tls_listener_only(self):
        tmp = tempfile.mkdtemp(prefix="switchyard-sticky-tls-")
        try:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=a.test",
                            "-addext", "subjectAltName=DNS:a.test"], check=True, capture_output=True, timeout=30)
            ctx = ssl.create_default_context(cafile=cert)
            with backends(2) as bs:
                cfg = config(bs, sticky={"cookie": "sy_aff", "max_age": "2m"},
                             sections={"listen": [{"address": "127.0.0.1:0"},
                                                  {"address": "127.0.0.1:0", "tls": {"cert": cert, "key": key}}]})
                with Proxy(cfg, listeners=2) as px:
                    plain_port, tls_port = px.ports
                    resp = plain(plain_port)
                    self.assertRegex(cookie_of(resp), r"^sy_aff=[0-9a-f]{16}; Path=/; HttpOnly; Max-Age=120$")
                    for request in (b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                                    upgrade_request("/", "a.test")):
                        with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw, \
                                ctx.wrap_socket(raw, server_hostname="a.test") as s:
                            s.sendall(request)
                            data = b""
                            while b"\r\n\r\n" not in data:
                                chunk = s.recv(4096)
                                if not chunk:
                                    break
                                data += chunk
                        head = data.split(b"\r\n\r\n")[0]
                        self.assertRegex(head, rb"^HTTP/1\.1 (200|101) ")
                        cookies = [v for n, v in parse_fields(head + b"\r\n\r\n") if n.lower() == "set-cookie"]
                        self.assertEqual(len(cookies), 1, head)
                        self.assertRegex(cookies[0],
                                         r"^sy_aff=[0-9a-f]{16}; Path=/; HttpOnly; Max-Age=120; Secure$")
                    px.assert_idle()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- config errors


class ConfigErrors(unittest.TestCase):
    BASE = ("listen: [{{ address: 127.0.0.1:8080 }}]\n"
            "upstreams:\n  app:\n    servers: [127.0.0.1:9000]\n{upstream}"
            "routes:\n  - match: {{ path_prefix: / }}\n    upstream: app\n{route}")

    def check(self, upstream="", route=""):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(self.BASE.format(upstream=upstream, route=route))
            f.flush()
            out = subprocess.run([SWITCHYARD_BIN, "--check", "--config", f.name], capture_output=True,
                                 text=True, timeout=10)
            return out.returncode, (out.stdout + out.stderr).strip(), f.name

    def test_bad_balancing_keys_are_reported_with_their_place(self):
        if not SWITCHYARD_BIN:
            self.skipTest("SWITCHYARD_BIN is not set")
        rc, text, _ = self.check("    balance: hash\n    hash_key: header:X-User\n    sticky: { cookie: sy }\n"
                                 "    max_tunnels: 3\n    slow_start: 2s\n",
                                 "    upgrade: { allow: [websocket], max_rate: 10, max_tunnels: 5 }\n")
        self.assertEqual(rc, 0, text)
        cases = [
            ("    hash_key: client_ip\n", "", "hash_key"),                    # without balance: hash
            ("    balance: hash\n    hash_key: bogus\n", "", "bogus"),
            ("    balance: hash\n    hash_key: \"header:\"\n", "", "header:"),
            ("    sticky: { max_age: 1h }\n", "", "cookie"),
            ("    max_tunnels: -1\n", "", "max_tunnels"),
            ("    slow_start: fast\n", "", "fast"),
            ("", "    upgrade: { allow: [websocket], max_rate: -5 }\n", "max_rate"),
            ("", "    upgrade: { allow: [websocket], max_tunnels: many }\n", "max_tunnels"),
        ]
        for upstream, route, word in cases:
            with self.subTest(upstream=upstream, route=route):
                rc, text, path = self.check(upstream, route)
                self.assertEqual(rc, 1, text)
                self.assertRegex(text, "^" + re.escape(path) + r":\d+:\d+: ")
                self.assertIn(word, text)


# --------------------------------------------------------------------------- reload


class Reload(Case):
    def test_lowering_server_max_tunnels_keeps_open_tunnels(self):
        with backends(1) as (a,), Proxy(config([a], max_tunnels=4)) as px:
            tunnels = self.open_tunnels(px.port, 4)
            reload_config(px, config([a], max_tunnels=2))
            self.assertEqual(tunnels_per_server(px), {a.address: 4})
            for i, t in enumerate(tunnels):       # untouched
                self.assertEqual(t.echo(f"still {i}"), f"still {i}")
            self.assert_throttled(WsClient(px.port))
            tunnels.pop().close()
            tunnels.pop().close()
            wait_metric_sum(px, SERVER_TUNNELS, 2)
            self.assert_throttled(WsClient(px.port))     # 2 open, cap 2: still full
            tunnels.pop().close()
            wait_metric_sum(px, SERVER_TUNNELS, 1)
            t = WsClient(px.port)
            self.assertEqual(t.status, 101, t.response.raw)
            tunnels.append(t)
            self.assert_throttled(WsClient(px.port))
            self.assertEqual(throttled(px), 3)
            self.assertEqual(a.upgrade_count(), 5)
            for t in tunnels:
                t.close()
            wait_metric_sum(px, SERVER_TUNNELS, 0)
            px.assert_idle()

    def test_route_max_tunnels_set_by_reload_counts_tunnels_opened_before(self):
        with backends(1) as (a,), Proxy(config([a])) as px:
            tunnels = self.open_tunnels(px.port, 3)
            reload_config(px, config([a], routes=[ws_route(max_tunnels=2)]))
            self.assert_throttled(WsClient(px.port))
            self.assertEqual([plain(px.port).status for _ in range(3)], [200] * 3)
            tunnels.pop().close()
            wait_metric_sum(px, ROUTE_TUNNELS, 2, route="ws")
            self.assert_throttled(WsClient(px.port))
            tunnels.pop().close()
            wait_metric_sum(px, ROUTE_TUNNELS, 1, route="ws")
            t = WsClient(px.port)
            self.assertEqual(t.status, 101, t.response.raw)
            tunnels.append(t)
            self.assertEqual(a.upgrade_count(), 4)
            for t in tunnels:
                t.close()
            wait_metric_sum(px, ROUTE_TUNNELS, 0)
            px.assert_idle()


if __name__ == "__main__":
    main()
