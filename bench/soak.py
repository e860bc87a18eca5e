"""Fault storm and soak: bench/soak.sh DURATION_SECONDS [OUT_DIR].

Runs the proxy (two workers, JSON access log, admin) in front of a chaos backend written
here, and drives a rate-limited mix against it for DURATION seconds:
  - verified traffic: GETs with keep-alive, POST bodies by Content-Length and chunked
    (echoed and compared), raw tunnels after a WebSocket 101 with data both ways and a
    half-close, a slow reader behind a 16 MiB flood;
  - faults from the backend: reset or close in the middle of a response, before it, right
    after a 101, garbage instead of a response, a 101 with a wrong accept, 200 to an
    upgrade, a stalled response (504), a refused server (502);
  - faults from clients: close or reset in the middle of a body, reset right after a 101 or
    in the middle of a tunnel, slowloris (408), silent connections;
  - hostile requests (smuggling attempts, bad Host, huge heads): the exact error status,
    and the backend never sees them;
  - a reload (SIGHUP) every 15 s.
Every second it samples the proxy's RSS and open descriptors into OUT_DIR/soak.csv (and
soak.png with gnuplot). It ends with verdicts: nothing corrupted or unexpected, no crash
(exit status 0 after SIGTERM), descriptors back to the idle figure, RSS flat after
warm-up. Exit status 0 only when every verdict holds.

Only 127.0.0.1; every wait is bounded. SWITCHYARD_BIN picks the binary; SOAK_RSS_VERDICT=0
drops the RSS verdict (for sanitizer builds, whose quarantine grows by design).
"""

import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Proxy, dead_port, make_config  # noqa: E402

from soak_backend import (HEADER_LIMIT, IO, KEEPALIVE_IDLE, REQUEST_HEADER, UPSTREAM_RESPONSE,  # noqa: E402
                          ChaosBackend, Unexpected, accept_for, at_eof, chunked, payload, read_head,
                          read_response, reset)


# --------------------------------------------------------------------------- scenarios

HOSTILE = [
    # (request, expected status); every one carries ?t=TOKEN so the backend can tell
    (b"POST /h?t=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /h?t=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
    (b"POST /h?t=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /h?t=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    (b"POST /h?t=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"GET /h?t=%s HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),
    (b"GET /h?t=%s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET /h?t=%s HTTP/1.1\r\n\r\n", 400),
    (b"GET /h?t=%s HTTP/1.1\r\nHost: user@evil\r\n\r\n", 400),
    (b"GET http://user@evil/h?t=%s HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /h?t=%s#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /h?t=%s HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /h?t=%s HTTP/1.1\r\nHost: x\r\nX: \rY\r\n\r\n", 400),
    (b"GET /h?t=%s HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /h?t=%s HTTP/1.1\r\nHost: x\r\nX: " + b"a" * HEADER_LIMIT + b"\r\n\r\n", 431),
    (b"POST /h?t=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400),
    (b"GET /ws?t=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
]


class Storm:
    def __init__(self, port):
        self.port = port
        self.ok = collections.Counter()
        self.failed = collections.Counter()
        self.failures = []
        self.hostile_tokens = set()
        self.rng = random.Random(1)
        self.seq = 0

    def token(self):
        self.seq += 1
        return "s%d" % self.seq

    async def connect(self):
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20), IO)

    async def run(self, name, coro):
        try:
            await asyncio.wait_for(coro, 60)
            self.ok[name] += 1
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its scenario
            self.failed[name] += 1
            if len(self.failures) < 50:
                self.failures.append(f"{name}: {type(e).__name__}: {e}")

    # ---- verified traffic

    async def get(self):
        r, w = await self.connect()
        try:
            for _ in range(self.rng.randint(1, 4)):
                seed, n = self.rng.randint(0, 1 << 30), self.rng.choice([0, 10, 1000, 20000, 65536])
                w.write(b"GET /ok/%d/%d?t=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (seed, n, self.token().encode()))
                status, _, body = await read_response(r)
                if status != 200 or body != payload(seed, n):
                    raise Unexpected(f"GET /ok: {status}, {len(body)} bytes (want {n})")
        finally:
            w.close()

    async def post(self, chunked_body):
        r, w = await self.connect()
        try:
            body = os.urandom(self.rng.choice([0, 1, 5000, 70000, 262144]))
            if chunked_body:
                w.write(b"POST /echo?t=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        % self.token().encode() + chunked(body, self.rng))
            else:
                w.write(b"POST /echo?t=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                        % (self.token().encode(), len(body)) + body)
            status, _, echoed = await read_response(r)
            if status != 200 or echoed != body:
                raise Unexpected(f"POST echo: {status}, {len(echoed)} of {len(body)} bytes")
        finally:
            w.close()

    async def upgrade(self, path):
        r, w = await self.connect()
        key = base64.b64encode(os.urandom(16))
        w.write(b"GET " + path + b"?t=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " % self.token().encode() + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        return r, w, key

    async def tunnel(self):
        r, w, key = await self.upgrade(b"/ws")
        try:
            line, fields = await read_head(r)
            if b" 101 " not in line or fields.get("sec-websocket-accept", "").encode() != accept_for(key):
                raise Unexpected(f"tunnel: {line!r}")
            sent = b"".join(os.urandom(self.rng.choice([1, 100, 4096, 65536])) for _ in range(self.rng.randint(1, 20)))

            async def send():
                for i in range(0, len(sent), 8192):
                    w.write(sent[i:i + 8192])
                    await w.drain()
                    if self.rng.random() < 0.05:
                        await asyncio.sleep(0.01)
                w.write_eof()

            sender = asyncio.ensure_future(send())
            got = await asyncio.wait_for(r.readexactly(len(sent)), 30)
            await sender
            if got != sent:
                raise Unexpected("tunnel: echoed bytes differ")
            if not await at_eof(r):
                raise Unexpected("tunnel: no EOF after the half-close")
        finally:
            w.close()

    async def slow_reader(self):
        seed, n = self.rng.randint(0, 1 << 30), 16 << 20
        r, w, _ = await self.upgrade(b"/flood/%d/%d" % (seed, n))
        try:
            line, _ = await read_head(r)
            if b" 101 " not in line:
                raise Unexpected(f"flood: {line!r}")
            want = hashlib.sha256(payload(seed, n)).hexdigest()
            h, got = hashlib.sha256(), 0
            while got < n:
                data = await asyncio.wait_for(r.read(min(65536, n - got)), 30)
                if not data:
                    raise Unexpected(f"flood: EOF after {got} of {n}")
                h.update(data)
                got += len(data)
                await asyncio.sleep(0.01)  # at most about 6 MiB/s
            if h.hexdigest() != want:
                raise Unexpected("flood: bytes differ")
        finally:
            w.close()

    async def slow_response(self):
        r, w = await self.connect()
        try:
            seed = self.rng.randint(0, 1 << 30)
            w.write(b"GET /slow/%d?t=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (seed, self.token().encode()))
            status, _, body = await read_response(r)
            if status != 200 or body != payload(seed, 400):
                raise Unexpected(f"slow: {status}, {len(body)} bytes")
        finally:
            w.close()

    # ---- backend faults: the exact answer the contract gives

    async def expect_status(self, path, status, then_closed):
        r, w = await self.connect()
        try:
            w.write(b"GET " + path + b"?t=%s HTTP/1.1\r\nHost: x\r\n\r\n" % self.token().encode())
            got, fields, _ = await read_response(r)
            if got != status:
                raise Unexpected(f"{path.decode()}: {got} (want {status})")
            if then_closed and not await at_eof(r):
                raise Unexpected(f"{path.decode()}: connection left open")
        finally:
            w.close()

    async def truncated_response(self, path):
        """The head went out, then the backend failed: the client gets a prefix of the
        body and the connection closes; never bytes that were not sent."""
        r, w = await self.connect()
        try:
            w.write(b"GET " + path + b"?t=%s HTTP/1.1\r\nHost: x\r\n\r\n" % self.token().encode())
            line, fields = await read_head(r)
            if b" 200 " not in line or fields.get("content-length") != "100000":
                raise Unexpected(f"{path.decode()}: {line!r}")
            body = b""
            while True:
                try:
                    data = await asyncio.wait_for(r.read(65536), IO)
                except ConnectionResetError:
                    break
                if not data:
                    break
                body += data
            if len(body) >= 100000 or body != payload(7, 1000)[:len(body)]:
                raise Unexpected(f"{path.decode()}: {len(body)} body bytes, or not the sent ones")
        finally:
            w.close()

    async def bad_switch(self, path, status):
        r, w, _ = await self.upgrade(path)
        try:
            got, _, _ = await read_response(r)
            if got != status:
                raise Unexpected(f"{path.decode()}: {got} (want {status})")
            if status == 200:  # declined upgrade: still HTTP
                w.write(b"GET /ok/1/10?t=%s HTTP/1.1\r\nHost: x\r\n\r\n" % self.token().encode())
                again, _, body = await read_response(r)
                if again != 200 or body != payload(1, 10):
                    raise Unexpected("after a declined upgrade the connection is not HTTP")
            elif not await at_eof(r):
                raise Unexpected(f"{path.decode()}: connection left open")
        finally:
            w.close()

    async def reset_after_101_by_backend(self):
        r, w, _ = await self.upgrade(b"/ws-reset")
        try:
            line, _ = await read_head(r)
            if b" 101 " not in line:
                raise Unexpected(f"ws-reset: {line!r}")
            if not await at_eof(r):
                raise Unexpected("ws-reset: the client side stayed open")
        finally:
            w.close()

    # ---- client faults: nothing to see for the client; the descriptor verdict checks them

    async def client_gives_up_mid_body(self, rst):
        r, w = await self.connect()
        w.write(b"POST /echo?t=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                % self.token().encode() + os.urandom(self.rng.randint(0, 50000)))
        await w.drain()
        await asyncio.sleep(self.rng.random() * 0.1)
        if rst:
            reset(w)
        else:
            w.close()

    async def client_resets_tunnel(self, right_after_101):
        r, w, _ = await self.upgrade(b"/ws")
        try:
            await read_head(r)
            if not right_after_101:
                w.write(os.urandom(100000))
                await asyncio.sleep(self.rng.random() * 0.05)
        finally:
            reset(w)

    async def slowloris(self):
        r, w = await self.connect()
        try:
            start = time.monotonic()
            w.write(b"GET /ok/1/1?t=%s HTTP/1.1\r\nHost: x\r\n" % self.token().encode())
            for _ in range(REQUEST_HEADER * 4 + 4):
                try:
                    w.write(b"X")
                    await w.drain()
                except ConnectionError:
                    pass  # the proxy may have answered and closed: read what it sent
                try:
                    data = await asyncio.wait_for(r.read(65536), 0.5)
                except asyncio.TimeoutError:
                    continue
                if not data:
                    raise Unexpected("slowloris: closed without a 408")
                if b" 408 " not in data.split(b"\r\n")[0]:
                    raise Unexpected(f"slowloris: {data[:40]!r}")
                if time.monotonic() - start > REQUEST_HEADER + 1.5:
                    raise Unexpected("slowloris: 408 too late")
                return
            raise Unexpected("slowloris: never cut")
        finally:
            w.close()

    async def silent(self):
        """A connection that never sends a byte: a 408 (or nothing) and close, after
        timeouts.request_header."""
        r, w = await self.connect()
        try:
            start = time.monotonic()
            try:
                data = await asyncio.wait_for(r.read(), REQUEST_HEADER + 3)
            except ConnectionResetError:
                data = b""
            if data and not data.startswith(b"HTTP/1.1 408 "):
                raise Unexpected(f"silent connection: {data[:40]!r}")
            if time.monotonic() - start < REQUEST_HEADER - 0.5:
                raise Unexpected("silent connection: closed before timeouts.request_header")
        finally:
            w.close()

    async def hostile(self):
        template, status = self.rng.choice(HOSTILE)
        token = self.token()
        self.hostile_tokens.add(token)
        r, w = await self.connect()
        try:
            w.write(template.replace(b"%s", token.encode(), 1))
            got, fields, _ = await read_response(r)
            if got != status:
                raise Unexpected(f"hostile {template[:40]!r}: {got} (want {status})")
        finally:
            w.close()

    def mix(self):
        """(ops per second, name, factory)."""
        return [
            (40, "get", self.get),
            (10, "post_content_length", lambda: self.post(False)),
            (8, "post_chunked", lambda: self.post(True)),
            (8, "tunnel_echo", self.tunnel),
            (0.3, "tunnel_slow_reader", self.slow_reader),
            (2, "slow_response", self.slow_response),
            (2, "backend_reset_mid_response", lambda: self.truncated_response(b"/reset-mid")),
            (2, "backend_close_mid_response", lambda: self.truncated_response(b"/close-mid")),
            (2, "backend_reset_before_response", lambda: self.expect_status(b"/reset-before", 502, False)),
            (2, "backend_garbage", lambda: self.expect_status(b"/garbage", 502, False)),
            (0.5, "backend_stall", lambda: self.expect_status(b"/stall", 504, False)),
            (2, "backend_refused", lambda: self.expect_status(b"/refused/x", 502, False)),
            (2, "backend_bad_101", lambda: self.bad_switch(b"/ws-bad-accept", 502)),
            (2, "backend_200_to_upgrade", lambda: self.bad_switch(b"/ws-200", 200)),
            (2, "backend_reset_after_101", self.reset_after_101_by_backend),
            (3, "client_close_mid_body", lambda: self.client_gives_up_mid_body(False)),
            (3, "client_reset_mid_body", lambda: self.client_gives_up_mid_body(True)),
            (2, "client_reset_after_101", lambda: self.client_resets_tunnel(True)),
            (2, "client_reset_mid_tunnel", lambda: self.client_resets_tunnel(False)),
            (0.5, "slowloris", self.slowloris),
            (0.5, "silent_client", self.silent),
            (5, "hostile", self.hostile),
        ]


# --------------------------------------------------------------------------- sampling


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def write_png(csv_path, png_path):
    if shutil.which("gnuplot") is None:
        return False
    script = f"""
set terminal pngcairo size 1000,500 noenhanced
set output '{png_path}'
set datafile separator ','
set key autotitle columnhead left top
set xlabel 'seconds'
set ylabel 'RSS (MiB)'
set y2label 'open descriptors'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set title 'Switchyard under the fault storm'
plot '{csv_path}' using 1:($2/1024) with lines lw 2 title 'RSS (MiB)', \\
     '' using 1:3 axes x1y2 with lines lw 2 title 'open descriptors', \\
     '' using 1:4 axes x1y2 with lines title 'scenarios in flight'
"""
    return subprocess.run(["gnuplot"], input=script.encode(), capture_output=True).returncode == 0


# --------------------------------------------------------------------------- main


async def soak(duration, out_dir):
    backend = ChaosBackend()
    await backend.start()
    config = make_config(
        [f"127.0.0.1:{backend.port}"],
        upstreams={"app": {"servers": [f"127.0.0.1:{backend.port}"], "keepalive": 16},
                   "dead": {"servers": [f"127.0.0.1:{dead_port()}"]}},
        routes=[{"match": {"path_prefix": "/refused"}, "upstream": "dead"},
                {"match": {"path_prefix": "/"}, "upstream": "app", "upgrade": {"allow": ["websocket"]}}],
        workers=2,
        timeouts={"request_header": f"{REQUEST_HEADER}s", "upstream_connect": "1s",
                  "upstream_response": f"{UPSTREAM_RESPONSE}s", "keepalive_idle": f"{KEEPALIVE_IDLE}s", "tunnel_idle": "30s"},
        limits={"max_header_bytes": HEADER_LIMIT},
        tunnel={"buffer": "64KiB"},
        access_log={"path": os.path.join(out_dir, "access.log"), "format": "json"},
    )
    storm_result = {}
    with Proxy(config) as px:
        pid = px.proc.pid
        await asyncio.sleep(1)
        idle_rss, idle_fds = proc_sample(pid)
        storm = Storm(px.port)
        csv_path = os.path.join(out_dir, "soak.csv")
        rows = []
        tasks = set()
        mix = storm.mix()
        credit = [0.0] * len(mix)
        start = time.monotonic()
        next_sample = start
        next_reload = start + 15
        last = start
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            if now - start >= duration:
                break
            for i, (rate, name, factory) in enumerate(mix):
                credit[i] += rate * (now - last)
                while credit[i] >= 1 and len(tasks) < 800:
                    credit[i] -= 1
                    t = loop.create_task(storm.run(name, factory()))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
            last = now
            if now >= next_reload:
                px.proc.send_signal(signal.SIGHUP)
                next_reload += 15
            if now >= next_sample:
                rss, fds = proc_sample(pid)
                rows.append((round(now - start, 1), rss, fds, len(tasks),
                             sum(storm.ok.values()), sum(storm.failed.values())))
                next_sample += 1
            if px.proc.poll() is not None:
                break
            await asyncio.sleep(0.01)

        # Drain: let every scenario finish (each is bounded by 60 s), then close the
        # backend's connections so pooled upstream connections go too.
        if tasks:
            await asyncio.wait(set(tasks), timeout=70)
        await backend.close_all()
        settle_deadline = time.monotonic() + 15
        alive = px.proc.poll() is None
        final_rss, final_fds = idle_rss, -1
        while alive and time.monotonic() < settle_deadline:
            final_rss, final_fds = proc_sample(pid)
            rows.append((round(time.monotonic() - start, 1), final_rss, final_fds, len(tasks),
                         sum(storm.ok.values()), sum(storm.failed.values())))
            if final_fds <= idle_fds:
                break
            await asyncio.sleep(1)
        with open(csv_path, "w") as f:
            f.write("seconds,rss_kib,open_fds,client_tasks,ops_ok,ops_failed\n")
            for row in rows:
                f.write(",".join(str(v) for v in row) + "\n")
        png = write_png(csv_path, os.path.join(out_dir, "soak.png"))

        leaked_hostile = sorted(storm.hostile_tokens & backend.tokens)
        loaded = [r for r in rows if r[0] <= duration]
        warm = [r[1] for r in loaded if r[0] >= max(10, duration * 0.25)]
        third = max(1, len(warm) // 3)
        early, late = warm[:third], warm[-third:]
        early_mean = sum(early) / len(early) if early else 0
        late_mean = sum(late) / len(late) if late else 0
        ops_ok = sum(storm.ok.values())
        verdicts = {
            "nothing corrupted or unexpected": sum(storm.failed.values()) == 0 and ops_ok > 0,
            "hostile requests never reached the backend": not leaked_hostile,
            "no crash": alive,
            "descriptors back to the idle figure": alive and final_fds <= idle_fds,
            "RSS flat after warm-up": bool(warm) and late_mean <= early_mean * 1.10 + 1024,
        }
        if os.environ.get("SOAK_RSS_VERDICT", "1") == "0":  # sanitizer builds: quarantine grows
            verdicts.pop("RSS flat after warm-up")
        storm_result = {
            "duration_s": duration, "operations_ok": ops_ok,
            "operations_failed": sum(storm.failed.values()),
            "per_scenario": {name: {"ok": storm.ok[name], "failed": storm.failed[name]}
                             for _, name, _ in mix},
            "failures": storm.failures, "hostile_leaked": leaked_hostile,
            "idle_rss_kib": idle_rss, "idle_fds": idle_fds, "final_fds": final_fds,
            "rss_after_warmup_first_third_kib": round(early_mean), "rss_last_third_kib": round(late_mean),
            "rss_max_kib": max(r[1] for r in rows), "fds_max": max(r[2] for r in rows),
            "csv": csv_path, "png": os.path.join(out_dir, "soak.png") if png else None,
        }
        exit_status = px.terminate() if alive else px.proc.returncode
        verdicts["no crash"] = alive and exit_status == 0
        storm_result["exit_status_after_sigterm"] = exit_status
        storm_result["verdicts"] = verdicts
    return storm_result


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: soak.py DURATION_SECONDS [OUT_DIR]")
    duration = float(sys.argv[1])
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.getcwd(), "soak-out")
    os.makedirs(out_dir, exist_ok=True)
    result = asyncio.run(soak(duration, out_dir))
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"soak: {result['duration_s']:.0f} s, {result['operations_ok']} operations verified, "
          f"{result['operations_failed']} failed")
    width = max(len(n) for n in result["per_scenario"])
    for name, c in result["per_scenario"].items():
        print(f"  {name:<{width}}  ok {c['ok']:>6}  failed {c['failed']}")
    for line in result["failures"][:20]:
        print("  FAILURE " + line)
    print(f"  RSS: idle {result['idle_rss_kib']} KiB, after warm-up {result['rss_after_warmup_first_third_kib']}"
          f" KiB, last third {result['rss_last_third_kib']} KiB, max {result['rss_max_kib']} KiB")
    print(f"  descriptors: idle {result['idle_fds']}, max {result['fds_max']}, at the end {result['final_fds']}")
    print(f"  data: {result['csv']}" + (f", plot: {result['png']}" if result["png"] else ""))
    ok = True
    for name, held in result["verdicts"].items():
        print(f"  verdict: {name}: {'yes' if held else 'NO'}")
        ok = ok and held
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
