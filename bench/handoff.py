#!/usr/bin/python3
"""Binary upgrade under load: how long a tunnel stalls while SIGUSR2 moves it to the new
process, and how long a hand-off takes with many tunnels open.

    bench/handoff.py [--binary build/release/proxy/switchyard] [--active 200] [--idle 4000]
                     [--rate 50] [--handoffs 3] [--workers 2]

`--active` tunnels each send a sequence-numbered 32-byte message every 1/rate s to an echo
backend through the proxy and time its echo; `--idle` more tunnels are open and silent.
Between warm-ups, SIGUSR2 goes to the process named by the pid file; the script waits
until the file names a new process and the old one is gone. Every echo is checked (order,
content), so a lost, duplicated or reordered byte fails the run. Reports, per hand-off, the
time until the new process listened and until the old one exited, and over all active
tunnels the longest round trip seen during a hand-off against the p99 outside them.
Appends one JSON line to bench/results/handoff.jsonl. Loopback only; every wait bounded.
"""

import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST = (b"GET /bench HTTP/1.1\r\nHost: bench\r\nUpgrade: echo/1\r\nConnection: Upgrade\r\n\r\n")
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo/1\r\nConnection: Upgrade\r\n\r\n"
MESSAGE = struct.Struct("!QQd8x")  # tunnel, sequence number, send time


async def backend(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"upgrade: echo/1" not in head.lower():
            writer.close()
            return
        writer.write(SWITCH)
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    writer.close()


async def open_tunnel(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("no 101: %r" % head[:100])
    return reader, writer


class Active:
    def __init__(self, index, reader, writer):
        self.index, self.reader, self.writer = index, reader, writer
        self.sent = self.received = 0
        self.rtts = []  # (receive time, round trip)

    async def run(self, rate, stop):
        period = 1.0 / rate
        receiver = asyncio.ensure_future(self.receive())
        try:
            while not stop.is_set():
                self.writer.write(MESSAGE.pack(self.index, self.sent, time.monotonic()))
                self.sent += 1
                await asyncio.sleep(period)
            await asyncio.wait_for(self.wait_all(), 10)
        finally:
            receiver.cancel()

    async def wait_all(self):
        while self.received < self.sent:
            await asyncio.sleep(0.01)

    async def receive(self):
        while True:
            data = await self.reader.readexactly(MESSAGE.size)
            index, seq, sent_at = MESSAGE.unpack(data)
            if index != self.index or seq != self.received:
                raise RuntimeError(f"tunnel {self.index}: got message {index}/{seq}, expected {self.received}")
            now = time.monotonic()
            self.rtts.append((now, now - sent_at))
            self.received += 1


def pid_of(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def alive(pid):
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


async def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.005)


async def main(args):
    server = await asyncio.start_server(backend, "127.0.0.1", 0, backlog=4096)
    backend_port = server.sockets[0].getsockname()[1]
    work = tempfile.mkdtemp(prefix="sy-handoff-")
    pid_file = os.path.join(work, "pid")
    config = os.path.join(work, "switchyard.yaml")
    with open(config, "w") as f:
        f.write(f"""workers: {args.workers}
listen:
  - address: 127.0.0.1:0
upstreams:
  app:
    servers: ["127.0.0.1:{backend_port}"]
routes:
  - match: {{path_prefix: /}}
    upstream: app
    upgrade:
      allow: [echo/1]
access_log: {{path: "off"}}
timeouts: {{tunnel_idle: 10m}}
pid_file: {pid_file}
""")
    err = open(os.path.join(work, "stderr"), "wb")
    proc = await asyncio.create_subprocess_exec(args.binary, "--config", config, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=err)
    await wait_for(lambda: pid_of(pid_file) == proc.pid, 10)
    with open(os.path.join(work, "stderr"), "rb") as f:
        port = int(f.read().split(b"listening on 127.0.0.1:")[1].split(b"\n")[0])

    idle = []
    for i in range(0, args.idle, 200):
        idle += await asyncio.gather(*(open_tunnel(port) for _ in range(min(200, args.idle - i))))
    actives = [Active(i, *(await open_tunnel(port))) for i in range(args.active)]
    stop = asyncio.Event()
    runners = [asyncio.ensure_future(a.run(args.rate, stop)) for a in actives]
    await asyncio.sleep(2)

    windows, handoffs = [], []
    for _ in range(args.handoffs):
        old = pid_of(pid_file)
        start = time.monotonic()
        os.kill(old, signal.SIGUSR2)
        await wait_for(lambda: pid_of(pid_file) not in (0, old), 15)
        listening = time.monotonic() - start
        await wait_for(lambda: not alive(old), 60)
        gone = time.monotonic() - start
        if old == proc.pid:
            await proc.wait()
        windows.append((start, start + gone + 0.5))
        handoffs.append({"listening_ms": round(listening * 1000, 1), "old_exited_ms": round(gone * 1000, 1)})
        await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*runners)

    # The idle tunnels are all still there: each echoes one last message.
    for reader, writer in idle:
        writer.write(b"x")
    for reader, writer in idle:
        if await asyncio.wait_for(reader.readexactly(1), 10) != b"x":
            raise RuntimeError("an idle tunnel lost its byte")
    final = pid_of(pid_file)
    fds = len(os.listdir(f"/proc/{final}/fd"))
    for reader, writer in idle:
        writer.close()
    for a in actives:
        a.writer.close()
    os.kill(final, signal.SIGTERM)
    await wait_for(lambda: not alive(final), 15)
    server.close()

    inside = [rtt for a in actives for (t, rtt) in a.rtts if any(w0 <= t <= w1 for w0, w1 in windows)]
    outside = sorted(rtt for a in actives for (t, rtt) in a.rtts if not any(w0 <= t <= w1 for w0, w1 in windows))
    result = {
        "bench": "handoff", "active": args.active, "idle": args.idle, "rate": args.rate, "workers": args.workers,
        "handoffs": handoffs,
        "messages": sum(a.received for a in actives),
        "max_rtt_during_handoff_ms": round(max(inside) * 1000, 2) if inside else None,
        "p99_rtt_outside_ms": round(outside[int(len(outside) * 0.99)] * 1000, 2) if outside else None,
        "final_process_fds_with_tunnels_open": fds,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "handoff.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "proxy", "switchyard"))
    parser.add_argument("--active", type=int, default=200)
    parser.add_argument("--idle", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--handoffs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    try:
        asyncio.run(asyncio.wait_for(main(parser.parse_args()), 300))
    except RuntimeError as e:
        sys.exit(f"handoff bench failed: {e}")
