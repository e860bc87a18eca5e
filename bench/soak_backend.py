"""The pieces of bench/soak.py that are not the scenarios: the timeouts the storm
configures, HTTP reading and writing helpers on asyncio streams, and the chaos backend."""

import asyncio
import base64
import hashlib
import random
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
IO = 10.0            # any single wait inside a scenario
REQUEST_HEADER = 2   # timeouts.request_header (s)
UPSTREAM_RESPONSE = 2
KEEPALIVE_IDLE = 5   # timeouts.keepalive_idle (s)
HEADER_LIMIT = 8192  # limits.max_header_bytes


def payload(seed, n):
    return random.Random(seed).randbytes(n)


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


class Unexpected(Exception):
    """A scenario saw something the contract does not allow."""


# --------------------------------------------------------------------------- HTTP bits


async def read_head(reader, limit=65536):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO)
    if len(head) > limit:
        raise Unexpected("head too large")
    lines = head[:-4].split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
    return lines[0], fields


async def read_body(reader, fields, until_close=False):
    if "content-length" in fields:
        return await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), IO)
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), IO)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await asyncio.wait_for(reader.readuntil(b"\r\n"), IO)) != b"\r\n":
                    pass
                return body
            body += await asyncio.wait_for(reader.readexactly(size), IO)
            await asyncio.wait_for(reader.readexactly(2), IO)
    if until_close:
        return await asyncio.wait_for(reader.read(), IO)
    return b""


async def read_response(reader):
    """(status, fields, body) of one response from the proxy."""
    line, fields = await read_head(reader)
    status = int(line.split(b" ")[1])
    body = await read_body(reader, fields, until_close=fields.get("connection", "").lower() == "close")
    return status, fields, body


async def at_eof(reader, timeout=IO):
    """True when the peer closes (EOF or reset) within `timeout` with no further bytes."""
    try:
        data = await asyncio.wait_for(reader.read(65536), timeout)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except asyncio.TimeoutError:
        return False
    return data == b""


def reset(writer):
    """Closes with RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def chunked(body, rng):
    out, pos = b"", 0
    while pos < len(body):
        n = rng.randint(1, 20000)
        ext = rng.choice([b"", b";a=b", b" ; x = \"y z\""])
        out += b"%x%s\r\n" % (len(body[pos:pos + n]), ext) + body[pos:pos + n] + b"\r\n"
        pos += n
    return out + b"0\r\n\r\n"


# --------------------------------------------------------------------------- backend


class ChaosBackend:
    """Answers by path: /ok/SEED/N, /echo, /slow/SEED, /ws (101 + raw echo), /flood/SEED/N
    (101 + N bytes), and the faults /reset-mid, /close-mid, /reset-before, /garbage,
    /stall, /ws-reset, /ws-bad-accept, /ws-200. Records every request's t= token."""

    def __init__(self):
        self.tokens = set()
        self.writers = set()
        self.server = None
        self.port = None

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close_all(self):
        self.server.close()
        for w in list(self.writers):
            w.close()
        await asyncio.sleep(0.2)

    async def serve(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                lines = head[:-4].split(b"\r\n")
                fields = {}
                for fl in lines[1:]:
                    name, _, value = fl.partition(b":")
                    fields.setdefault(name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
                target = lines[0].split(b" ")[1].decode("latin-1")
                path, _, query = target.partition("?")
                for part in query.split("&"):
                    if part.startswith("t="):
                        self.tokens.add(part[2:])
                try:
                    body = await read_body(reader, fields)
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
                    return  # a client gave up in the middle of its body
                if not await self.respond(path, fields, body, reader, writer):
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # the proxy gave up on this connection (a client fault behind it)
        finally:
            self.writers.discard(writer)
            writer.close()

    async def respond(self, path, fields, body, reader, writer):
        """Answers one request; False when the connection is finished."""
        parts = path.strip("/").split("/")
        kind = parts[0]
        if kind == "ok":
            data = payload(int(parts[1]), int(parts[2]))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        elif kind == "echo":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif kind == "slow":
            data = payload(int(parts[1]), 400)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(data), 40):
                writer.write(b"%x\r\n" % 40 + data[i:i + 40] + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write(b"0\r\n\r\n")
        elif kind in ("reset-mid", "close-mid"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + payload(7, 1000))
            await writer.drain()
            await asyncio.sleep(0.05)
            if kind == "reset-mid":
                reset(writer)
            return False
        elif kind == "reset-before":
            reset(writer)
            return False
        elif kind == "garbage":
            writer.write(b"HTTP/1.1 2OO OK\r\n\x00garbage\r\n\r\n")
            await writer.drain()
            return False
        elif kind == "stall":
            await asyncio.sleep(UPSTREAM_RESPONSE + 3)
            return False
        elif kind in ("ws", "flood", "ws-reset", "ws-bad-accept"):
            key = fields.get("sec-websocket-key", "").encode()
            accept = accept_for(key) if kind != "ws-bad-accept" else accept_for(b"wrong")
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            await writer.drain()
            if kind == "ws":
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
                writer.write_eof()
                await asyncio.wait_for(reader.read(), IO)  # until the client closes
            elif kind == "flood":
                data = payload(int(parts[1]), int(parts[2]))
                for i in range(0, len(data), 65536):
                    writer.write(data[i:i + 65536])
                    await asyncio.wait_for(writer.drain(), 30)
            elif kind == "ws-reset":
                await asyncio.sleep(0.05)
                reset(writer)
            else:
                await asyncio.sleep(1)
            return False
        elif kind == "ws-200":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return True
