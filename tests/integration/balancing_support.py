"""Helpers for the balancing tests (docs/upgrades.md, "Balancing long-lived connections"):
WebSocket-speaking backends that say which server they are, raw clients that can pick their
loopback source address, and two small server programs run as separate processes.

In-process backends (`WsServer`) share one asyncio loop in a background thread. Each:
  - answers a plain request with `200`, body and `X-Server:` its name (keep-alive);
  - answers `GET /healthz` with `health_status` (the active check);
  - answers a WebSocket upgrade with `101` and the right Sec-WebSocket-Accept, then sends
    one text frame holding its name, echoes data frames, answers ping and close; a request
    whose path starts with `/decline` is answered `200` instead of `101`;
  - records the monotonic arrival time of every upgrade and request it receives;
  - can be stopped (listener and every connection closed) and started again on its port.

As programs (`/usr/bin/python3 balancing_support.py ...`):
  ws-server NAME OUTFILE   the same backend in its own process; prints "listening PORT";
                           when its stdin closes it writes the upgrade arrival times (JSON,
                           time.monotonic(), comparable across processes) to OUTFILE and exits
  sio-server NAME          a python3-socketio AsyncServer (aiohttp) on 127.0.0.1:0; prints
                           "listening PORT"; on connect it emits `hello` {server, transport};
                           the `whoami` event returns {server, transport}; stops on stdin EOF
"""

import asyncio
import base64
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import IO_TIMEOUT, Client, parse_fields

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HERE = os.path.dirname(os.path.abspath(__file__))


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def frame(opcode, payload, mask=True):
    """One final frame (RFC 6455 §5.2), masked as a client must send it."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def parse_frame(buf):
    """(opcode, payload, rest) for the first whole frame in buf, or None."""
    if len(buf) < 2:
        return None
    opcode, n, masked, pos = buf[0] & 0x0F, buf[1] & 0x7F, buf[1] & 0x80, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = int.from_bytes(buf[2:10], "big"), 10
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key, pos = buf[pos:pos + 4], pos + 4
    if len(buf) < pos + n:
        return None
    payload = buf[pos:pos + n]
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload, buf[pos + n:]


def upgrade_request(path="/ws", host="x", extra=b""):
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def raise_nofile(wanted):
    """Raises this process's soft open-files limit toward `wanted` (never above the hard
    limit); child processes inherit it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------- clients


class SourceClient(Client):
    """harness.Client whose socket is bound to a loopback `source` address first (the proxy
    then sees that client address)."""

    def __init__(self, port, source=None, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout


def plain(port, path="/", extra=b"", source=None, host="x"):
    """One GET on a fresh connection (Connection: close); returns the harness Response."""
    with SourceClient(port, source) as c:
        return c.request(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                         + extra + b"Connection: close\r\n\r\n")


class WsClient:
    """A WebSocket upgrade through the proxy on raw bytes. After construction `.response` is
    the proxy's answer; on a 101, `.server` is the name the backend sent in its first frame
    (unless expect_name is false: a terminated WebSocket, whose service says nothing).
    Any other answer is read whole (body included)."""

    def __init__(self, port, path="/ws", extra=b"", source=None, host="x", timeout=IO_TIMEOUT,
                 expect_name=True):
        self.client = SourceClient(port, source, timeout)
        self.server = None
        try:
            self.client.send(upgrade_request(path, host, extra))
            self.response = self.client.read_response()
            if self.response.status == 101 and expect_name:
                self.server = self.recv_frame()[1].decode()
        except BaseException:
            self.client.close()
            raise

    @property
    def status(self):
        return self.response.status

    def recv_frame(self):
        while True:
            got = parse_frame(self.client.buf)
            if got:
                opcode, payload, self.client.buf = got
                return opcode, payload
            self.client.buf += self.client._recv_more()

    def echo(self, text):
        """Sends a text frame and returns the payload the backend echoed."""
        self.client.send(frame(1, text.encode()))
        opcode, payload = self.recv_frame()
        if opcode != 1:
            raise AssertionError(f"expected an echoed text frame, got opcode {opcode}")
        return payload.decode()

    def is_closed(self, timeout=2.0):
        return self.client.is_closed(timeout)

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------- backends


class _Loop:
    """One asyncio loop in a daemon thread, shared by every in-process WsServer."""

    _instance = None
    _lock = threading.Lock()

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class WsServer:
    """See the module docstring. Use as a context manager, or start()/close()."""

    def __init__(self, name, upgrade_delay=0.0, loop=None):
        self.name = name
        self.name_bytes = name.encode()
        self.upgrade_delay = upgrade_delay   # seconds before answering an upgrade
        self.health_status = 200
        self.upgrades = []      # (monotonic arrival time, request head)
        self.requests = []      # plain requests: (monotonic arrival time, request head)
        self.health = []        # (monotonic time answered, status)
        self.open_tunnels = 0
        self.port = 0
        self.address = None
        self._server = None
        self._writers = set()
        self._own_loop = loop
        self._loop = None

    # ---- lifetime

    def _run(self, coro):
        if self._own_loop is not None:
            return self._own_loop.run_until_complete(coro)
        return _Loop.get().run(coro)

    def start(self):
        """Listens on 127.0.0.1 (port 0 the first time, the same port afterwards)."""
        self._run(self._start())
        self.address = f"127.0.0.1:{self.port}"
        return self

    async def _start(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                          reuse_address=True, backlog=4096)
                break
            except OSError:
                if not self.port or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self):
        """Closes the listener and every open connection (the server is gone: connects to
        its port are refused)."""
        self._run(self._stop())

    async def _stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        for _ in range(100):
            if not self._writers:
                break
            await asyncio.sleep(0.01)

    def close(self):
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- what it saw

    def upgrade_count(self):
        return len(self.upgrades)

    def names_seen(self, header):
        """Values of request field `header` over every upgrade and plain request."""
        out = []
        for _, head in self.upgrades + self.requests:
            for n, v in parse_fields(head):
                if n.lower() == header.lower():
                    out.append(v)
        return out

    # ---- the protocol

    async def _handle(self, reader, writer):
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.monotonic()
                first = head.split(b"\r\n", 1)[0].split(b" ")
                target = first[1] if len(first) > 1 else b"/"
                fields = {n.lower(): v for n, v in parse_fields(head)}
                length = int(fields.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                close = "close" in fields.get("connection", "").lower()
                if "websocket" in fields.get("upgrade", "").lower() and not target.startswith(b"/decline"):
                    self.upgrades.append((now, head))
                    if self.upgrade_delay:
                        await asyncio.sleep(self.upgrade_delay)
                    key = fields.get("sec-websocket-key", "").encode()
                    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + ws_accept(key)
                                 + b"\r\n\r\n" + frame(1, self.name_bytes, mask=False))
                    await writer.drain()
                    self.open_tunnels += 1
                    try:
                        await self._tunnel(reader, writer)
                    finally:
                        self.open_tunnels -= 1
                    return
                if target == b"/healthz":
                    status = self.health_status
                    self.health.append((time.monotonic(), status))
                    writer.write(b"HTTP/1.1 " + str(status).encode() + b" X\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                    await writer.drain()
                    return
                self.requests.append((now, head))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(self.name_bytes)).encode()
                             + b"\r\nX-Server: " + self.name_bytes + b"\r\n"
                             + (b"Connection: close\r\n" if close else b"") + b"\r\n" + self.name_bytes)
                await writer.drain()
                if close:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _tunnel(self, reader, writer):
        buf = b""
        while True:
            got = parse_frame(buf)
            if got is None:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
                continue
            opcode, payload, buf = got
            if opcode == 8:
                writer.write(frame(8, payload[:2] or b"\x03\xe8", mask=False))
                await writer.drain()
                return
            if opcode == 9:
                writer.write(frame(10, payload, mask=False))
            elif opcode in (1, 2):
                writer.write(frame(opcode, payload, mask=False))
            await writer.drain()


class ServerProcess:
    """`balancing_support.py ws-server` or `sio-server` in its own process (own GIL)."""

    def __init__(self, kind, name, outfile=None):
        self.kind, self.name, self.outfile = kind, name, outfile
        self.proc = None
        self.port = None
        self.address = None

    def __enter__(self):
        args = [sys.executable, os.path.join(HERE, "balancing_support.py"), self.kind, self.name]
        if self.outfile:
            args.append(self.outfile)
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, cwd=HERE)
        # The first line says where it listens (read in a thread: the wait is bounded).
        got = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(15)
        line = got[0] if got else b""
        if not line.startswith(b"listening "):
            err = self.finish(kill=True)
            raise AssertionError(f"{self.kind} {self.name} did not start: {line!r}\n{err}")
        self.port = int(line.split()[1])
        self.address = f"127.0.0.1:{self.port}"
        return self

    def finish(self, timeout=15, kill=False):
        """Closes its stdin (it stops) and waits; returns what it wrote on stderr."""
        if self.proc is None:
            return ""
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._err.seek(0)
        err = self._err.read().decode(errors="replace")
        self._err.close()
        self.proc = None
        return err

    def __exit__(self, *exc):
        self.finish()
        return False


# --------------------------------------------------------------------------- programs


async def _wait_stdin_eof():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


def _ws_server_main(name, outfile):
    raise_nofile(20000)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = WsServer(name, loop=loop).start()
    print(f"listening {server.port}", flush=True)
    loop.run_until_complete(_wait_stdin_eof())
    with open(outfile, "w") as f:
        json.dump([t for t, _ in server.upgrades], f)
    loop.run_until_complete(server._stop())


def _sio_server_main(name):
    import socketio
    from aiohttp import web

    # Short ping interval: a long-polling request the server holds is answered within 2 s,
    # so a test can wait until the proxy has nothing in flight.
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", ping_interval=2,
                               ping_timeout=5)
    app = web.Application()
    sio.attach(app)

    def transport(sid):
        return sio.eio.transport(sio.manager.eio_sid_from_sid(sid, "/"))

    @sio.event
    async def connect(sid, environ):
        await sio.emit("hello", {"server": name, "transport": transport(sid),
                                 "query": environ.get("QUERY_STRING", "")}, to=sid)

    @sio.event
    async def whoami(sid, data):
        return {"server": name, "transport": transport(sid), "echo": data}

    async def run():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await _wait_stdin_eof()
        await runner.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "ws-server":
        _ws_server_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "sio-server":
        _sio_server_main(sys.argv[2])
    else:
        sys.exit("usage: balancing_support.py ws-server NAME OUTFILE | sio-server NAME")
