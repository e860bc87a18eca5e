"""Real Socket.IO through the proxy (docs/upgrades.md, "Balancing long-lived connections"):
Debian's python3-socketio/python3-engineio, server and client, on aiohttp (python3-aiohttp).
An Engine.IO session lives in one server process; the client opens it with HTTP long-polling
(several requests) and then upgrades it to a WebSocket. Four server processes sit behind the
proxy, each naming itself in its events.

- round_robin: the polling requests and the WebSocket of a session are spread over the four
  servers, which do not know each other's sessions: sessions break (the servers answer 400).
- sticky cookie: the first response sets the cookie, every later request of the session and
  its WebSocket follow it: every session connects, upgrades and talks to one server.
- balance: hash on client_ip (clients on different loopback addresses): the same."""

import asyncio
import time
import unittest

from harness import Proxy, main, make_config
from balancing_support import ServerProcess

try:
    import aiohttp
    import socketio
except ImportError:  # pragma: no cover - reported as a skip
    aiohttp = socketio = None

SERVERS = 4
SESSIONS = 12
SOURCES = [f"127.0.0.{i}" for i in range(2, 2 + SESSIONS)]


def sio_config(servers, **upstream):
    upstreams = {"chat": dict({"servers": servers}, **upstream)}
    routes = [{"name": "sio", "match": {"path_prefix": "/"}, "upstream": "chat",
               "upgrade": {"allow": ["websocket"]}}]
    return make_config([], upstreams=upstreams, routes=routes)


async def one_session(port, source=None, calls=3):
    """One Socket.IO client session; returns a dict: ok, error, the hello event (first server
    seen, on polling), the whoami replies (over the WebSocket), and every HTTP exchange the
    client made (method, URL, status), in order."""
    exchanges = []

    async def on_end(session, ctx, params):
        exchanges.append((params.method, str(params.url), params.response.status))

    async def on_exc(session, ctx, params):
        exchanges.append((params.method, str(params.url), repr(params.exception)))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exc)
    connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
    # unsafe=True: keep cookies of an IP-address host (aiohttp drops them otherwise).
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector,
                                 trace_configs=[trace])
    sio = socketio.AsyncClient(reconnection=False, http_session=http, request_timeout=5)
    hello = asyncio.get_running_loop().create_future()

    @sio.on("hello")
    async def on_hello(data):
        if not hello.done():
            hello.set_result(data)

    result = {"ok": False, "error": None, "hello": None, "replies": [], "exchanges": exchanges,
              "transport": None}
    try:
        await asyncio.wait_for(sio.connect(f"http://127.0.0.1:{port}", transports=["polling", "websocket"],
                                           wait_timeout=5), 10)
        result["hello"] = await asyncio.wait_for(hello, 5)
        deadline = time.monotonic() + 5
        while sio.transport() != "websocket":
            if time.monotonic() > deadline or not sio.connected:
                raise AssertionError(f"no upgrade to websocket (transport {sio.transport()}, "
                                     f"connected {sio.connected})")
            await asyncio.sleep(0.05)
        result["transport"] = sio.transport()
        for i in range(calls):
            result["replies"].append(await sio.call("whoami", i, timeout=5))
        result["ok"] = True
    except Exception as e:  # what broke is the finding
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        try:
            await asyncio.wait_for(sio.disconnect(), 5)
        except Exception:
            pass
        # Engine.IO's loops may still be ending (a broken session); once they have, nothing
        # of this session may be left open toward the proxy. Engine.IO opens a fresh
        # ClientSession of its own when it finds ours closed: close that one too.
        tasks = [t for t in (sio.eio.read_loop_task, sio.eio.write_loop_task) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for h in {id(x): x for x in (http, sio.eio.http) if x is not None}.values():
            await h.close()
    return result


def run_sessions(port, sources=None, n=SESSIONS):
    async def all_sessions():
        return await asyncio.gather(*(one_session(port, sources[i] if sources else None)
                                      for i in range(n)))
    return asyncio.run(asyncio.wait_for(all_sessions(), 60))


@unittest.skipIf(socketio is None, "python3-socketio and python3-aiohttp are needed")
class SocketIO(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = []
        try:
            for i in range(SERVERS):
                cls.servers.append(ServerProcess("sio-server", f"s{i + 1}").__enter__())
        except BaseException:
            cls.tearDownClass()
            raise
        cls.addresses = [s.address for s in cls.servers]
        cls.names = {s.address: s.name for s in cls.servers}

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.finish()

    def assert_every_session_on_one_server(self, results):
        for i, r in enumerate(results):
            with self.subTest(session=i):
                self.assertTrue(r["ok"], f"session {i} failed: {r['error']}; exchanges: {r['exchanges']}")
                # polling first: the handshake went out as transport=polling and the server saw that
                self.assertIn("transport=polling", r["exchanges"][0][1], r["exchanges"])
                self.assertNotIn("sid=", r["exchanges"][0][1])
                self.assertEqual(r["exchanges"][0][2], 200, r["exchanges"])
                self.assertIn("transport=polling", r["hello"]["query"])   # the server's own view
                # ... then the WebSocket for the same session: a 101 on transport=websocket&sid=
                ws = [e for e in r["exchanges"] if "transport=websocket" in e[1]]
                self.assertEqual(len(ws), 1, r["exchanges"])
                self.assertIn("sid=", ws[0][1])
                self.assertEqual(ws[0][2], 101, r["exchanges"])
                self.assertEqual(r["transport"], "websocket")
                # every HTTP exchange succeeded, and every event came from one server,
                # which saw the WebSocket transport
                self.assertEqual([e for e in r["exchanges"] if e[2] not in (200, 101)], [])
                server = r["hello"]["server"]
                self.assertEqual([(x["server"], x["transport"], x["echo"]) for x in r["replies"]],
                                 [(server, "websocket", i) for i in range(3)])

    def test_round_robin_breaks_sessions(self):
        with Proxy(sio_config(self.addresses)) as px:
            results = run_sessions(px.port)
            broken = [r for r in results if not r["ok"]]
            statuses = [e[2] for r in results for e in r["exchanges"]]
            print(f"\nround_robin: {len(broken)} of {len(results)} sessions broke; "
                  f"HTTP statuses seen: {sorted(set(map(str, statuses)))}; first error: "
                  f"{broken[0]['error'] if broken else None}")
            self.assertGreaterEqual(len(broken), 1, "every session survived round robin")
            # the servers themselves said no: 400 (unknown session) to a request of a session
            # created on another server
            self.assertIn(400, statuses)
            # the servers answer held polls within their ping interval (2 s)
            px.wait_metric("switchyard_connections_active", 0, timeout=10)

    def test_sticky_cookie_keeps_each_session_on_one_server(self):
        with Proxy(sio_config(self.addresses, sticky={"cookie": "io_aff"})) as px:
            results = run_sessions(px.port)
            self.assert_every_session_on_one_server(results)
            used = {r["hello"]["server"] for r in results}
            print(f"\nsticky: {len(results)} sessions on servers {sorted(used)}")
            self.assertGreaterEqual(len(used), 2, "sessions were not balanced at all")
            # the servers answer held polls within their ping interval (2 s)
            px.wait_metric("switchyard_connections_active", 0, timeout=10)

    def test_hash_on_client_ip_keeps_each_session_on_one_server(self):
        with Proxy(sio_config(self.addresses, balance="hash", hash_key="client_ip")) as px:
            results = run_sessions(px.port, SOURCES)
            self.assert_every_session_on_one_server(results)
            used = {r["hello"]["server"] for r in results}
            print(f"\nhash client_ip: {len(results)} sessions from {len(SOURCES)} addresses on "
                  f"servers {sorted(used)}")
            self.assertGreaterEqual(len(used), 2, "every client address hashed to one server")
            # the servers answer held polls within their ping interval (2 s)
            px.wait_metric("switchyard_connections_active", 0, timeout=10)


if __name__ == "__main__":
    main()
