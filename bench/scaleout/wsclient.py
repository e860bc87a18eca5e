"""The scale-out bench's clients: many WebSocket sessions (python3-websockets) from several
source addresses, each exchanging sequence-numbered, checksummed messages with the echo
backend (wsbackend.py) until told to stop, every wait bounded.

    wsclient.py --target ws://HOST:PORT --sources A,B,C [--interval 0.25]

Driven by JSON commands on stdin, one a line; answers with JSON events on stdout:
  {"cmd": "open", "tag": T, "n": N, "over": S}  opens N sessions evenly over S seconds
        (sources used in turn); when every one of them is open or has failed:
        {"event": "opened", "tag": T, "ok": K, "failed": F}
  {"cmd": "mark", "name": M}   remembers each session's verified count now; {"event": "marked"}
  {"cmd": "finish"}            closes every open session with 1000, then prints
        {"event": "result", "sessions": [...]} and exits.

A session: connect from its source address to TARGET/s/<sid>?src=<source>, read the
backend's hello (the instance it came through, the X-Forwarded-For it saw), then loop:
send "<sid> <seq> <payload> <crc32>", wait for the same text back (5 s at most), sleep
about `interval`. Its record says how it ended: `client_close` (we closed it, on finish),
`closed_by_peer` (the connection was closed under it: close code, time, and the seq of a
message still unanswered, if any), `mismatch`, `timeout`, `connect_failed`, `error`.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
import zlib

import websockets

REPLY_TIMEOUT = 5.0
OPEN_TIMEOUT = 8.0
CLOSE_TIMEOUT = 3.0


async def close_quietly(ws, code):
    try:
        await asyncio.wait_for(ws.close(code), CLOSE_TIMEOUT + 1)
    except Exception:
        pass  # the session's end is already recorded


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Session:
    def __init__(self, sid, tag, src):
        self.sid, self.tag, self.src = sid, tag, src
        self.instance = None
        self.xff = None
        self.t_start = time.time()
        self.t_open = None
        self.t_lost = None        # when the connection was seen closed, whoever closed it
        self.t_last_ok = None
        self.verified = 0
        self.at_mark = {}
        self.in_flight = None     # seq sent and not yet echoed
        self.end = None
        self.close_code = None
        self.error = None
        self.opened = asyncio.Event()

    def record(self):
        return {k: getattr(self, k) for k in (
            "sid", "tag", "src", "instance", "xff", "t_start", "t_open", "t_lost", "t_last_ok",
            "verified", "at_mark", "in_flight", "end", "close_code", "error")}


class Client:
    def __init__(self, target, sources, interval):
        self.target = target.rstrip("/")
        self.sources = sources
        self.interval = interval
        self.sessions = []
        self.tasks = []
        self.finishing = asyncio.Event()
        self.next_source = 0

    async def run_session(self, s):
        url = f"{self.target}/s/{s.sid}?src={s.src}"
        try:
            ws = await asyncio.wait_for(
                websockets.connect(url, local_addr=(s.src, 0), compression=None, open_timeout=OPEN_TIMEOUT,
                                   ping_interval=None, close_timeout=CLOSE_TIMEOUT),
                OPEN_TIMEOUT + 1)
        except Exception as e:
            s.end, s.error = "connect_failed", f"{type(e).__name__}: {e}"
            s.t_lost = time.time()
            s.opened.set()
            return

        async def watch():
            await ws.wait_closed()
            s.t_lost = s.t_lost or time.time()
        watcher = asyncio.ensure_future(watch())
        rng = random.Random(s.sid)
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT))
            s.instance, s.xff = hello.get("peer"), hello.get("xff")
            s.t_open = time.time()
            s.opened.set()
            seq = 0
            while not self.finishing.is_set():
                seq += 1
                payload = os.urandom(rng.randint(8, 96)).hex()
                message = f"{s.sid} {seq} {payload} {zlib.crc32(payload.encode()):08x}"
                await ws.send(message)
                s.in_flight = seq  # handed to the connection, not yet echoed
                reply = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
                if reply != message:
                    s.end, s.error = "mismatch", f"seq {seq}: got {reply[:80]!r}"
                    await close_quietly(ws, 1002)
                    return
                s.in_flight = None
                s.verified += 1
                s.t_last_ok = time.time()
                try:
                    await asyncio.wait_for(self.finishing.wait(), self.interval * rng.uniform(0.8, 1.2))
                except asyncio.TimeoutError:
                    pass
            await ws.close(1000)
            s.end, s.close_code = "client_close", ws.close_code
        except websockets.ConnectionClosed as e:
            s.end, s.close_code = "closed_by_peer", e.code
            s.t_lost = s.t_lost or time.time()
        except asyncio.TimeoutError:
            s.end, s.error = "timeout", f"no reply within {REPLY_TIMEOUT}s (seq {s.in_flight})"
            await close_quietly(ws, 1000)
        except Exception as e:
            s.end, s.error = "error", f"{type(e).__name__}: {e}"
        finally:
            s.opened.set()
            try:
                await asyncio.wait_for(watcher, CLOSE_TIMEOUT + 1)
            except (asyncio.TimeoutError, Exception):
                watcher.cancel()

    async def open_wave(self, tag, n, over):
        wave = []
        start = time.monotonic()
        for i in range(n):
            delay = start + (over * i / n if n else 0) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            src = self.sources[self.next_source % len(self.sources)]
            self.next_source += 1
            s = Session(f"{tag}-{i}", tag, src)
            self.sessions.append(s)
            wave.append(s)
            self.tasks.append(asyncio.ensure_future(self.run_session(s)))
        try:
            await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in wave)), OPEN_TIMEOUT + REPLY_TIMEOUT + 5)
        except asyncio.TimeoutError:
            pass  # counted as failed below
        ok = sum(1 for s in wave if s.t_open is not None)
        emit({"event": "opened", "tag": tag, "ok": ok, "failed": n - ok, "t": time.time()})

    async def finish(self):
        self.finishing.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=REPLY_TIMEOUT + CLOSE_TIMEOUT + 5)
        for s in self.sessions:
            if s.end is None:
                s.end = "unfinished"
        emit({"event": "result", "sessions": [s.record() for s in self.sessions]})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--sources", required=True, help="comma-separated local addresses")
    ap.add_argument("--interval", type=float, default=0.25)
    args = ap.parse_args()
    client = Client(args.target, args.sources.split(","), args.interval)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    waves = []
    emit({"event": "ready"})
    while True:
        line = await reader.readline()
        if not line:  # the driver went away: close everything and stop
            await client.finish()
            return
        cmd = json.loads(line)
        if cmd["cmd"] == "open":
            waves.append(asyncio.ensure_future(client.open_wave(cmd["tag"], int(cmd["n"]), float(cmd["over"]))))
        elif cmd["cmd"] == "mark":
            for s in client.sessions:
                s.at_mark[cmd["name"]] = s.verified
            emit({"event": "marked", "name": cmd["name"], "t": time.time()})
        elif cmd["cmd"] == "finish":
            if waves:
                await asyncio.wait(waves, timeout=OPEN_TIMEOUT + REPLY_TIMEOUT + 10)
            await client.finish()
            return


if __name__ == "__main__":
    asyncio.run(main())
