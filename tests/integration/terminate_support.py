"""Helpers for test_terminate.py (routes with `upgrade.terminate: websocket`, where the
proxy is the WebSocket server and the upstream a plain TCP service):

- TcpService: a plain TCP service on 127.0.0.1:0 (echo, sink, speak-first echo, or a
  passive one the test drives by hand: slow reader, reset, half-close). Every accepted
  connection is recorded (bytes in, SHA-256 each way, when its EOF arrived).
- Our own RFC 6455 framing (§5.2): masked client frames with any opcode, RSV bits, FIN,
  7/16/64-bit lengths (minimal or forced), and a reader of the proxy's frames that records
  how each was encoded, so the raw-frame tests can send exactly the bytes they mean.
- WsClient: a raw-socket WebSocket client built on that framing.

Every wait is bounded; everything is on 127.0.0.1."""

import base64
import hashlib
import os
import queue
import socket
import struct
import threading
import time

from harness import IO_TIMEOUT, Response

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)

RSV1, RSV2, RSV3 = 0x4, 0x2, 0x1      # as the 3-bit field of byte 0, bits 6..4


class Eof(Exception):
    """The peer closed (FIN or reset) while we were waiting for bytes."""


def ws_accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def new_key():
    return base64.b64encode(os.urandom(16))


def reset_close(sock):
    """Closes with SO_LINGER 0: the peer gets a RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


# --------------------------------------------------------------------------- framing


def mask_payload(payload, key):
    """XOR with the 4-byte masking key (§5.3); its own inverse."""
    n = len(payload)
    if n == 0:
        return b""
    reps = (key * (n // 4 + 1))[:n]
    x = int.from_bytes(payload, "little") ^ int.from_bytes(reps, "little")
    return x.to_bytes(n, "little")


def encode_length(n, form=None):
    """The 7-bit length field (with the mask bit clear) and the extended length bytes.
    form None = the minimal encoding (§5.2); 7, 16 or 64 forces one."""
    if form is None:
        form = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    if form == 7:
        assert n <= 125
        return bytes([n])
    if form == 16:
        assert n <= 0xFFFF
        return bytes([126]) + struct.pack("!H", n)
    assert form == 64
    return bytes([127]) + struct.pack("!Q", n)


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                length_form=None, length=None):
    """One frame's exact bytes. `mask` False sends it unmasked (illegal from a client);
    `length` overrides the length field (lying about the payload)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    lf = bytearray(encode_length(len(payload) if length is None else length, length_form))
    if mask:
        lf[0] |= 0x80
        key = mask_key if mask_key is not None else os.urandom(4)
        return bytes([b0]) + bytes(lf) + key + mask_payload(payload, key)
    return bytes([b0]) + bytes(lf) + payload


def close_payload(code=None, reason=b""):
    """A close frame's payload: nothing, or the 2-byte code and the reason (§5.5.1)."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload, header_len, minimal):
        self.fin, self.rsv, self.opcode, self.masked = fin, rsv, opcode, masked
        self.payload = payload
        self.header_len = header_len     # bytes before the payload (mask key included)
        self.minimal = minimal           # the length used the shortest encoding

    @property
    def size(self):
        return self.header_len + len(self.payload)

    def close_code(self):
        """(code, reason bytes) of a close frame; (None, b"") when it has no payload."""
        assert self.opcode == OP_CLOSE, self
        if len(self.payload) < 2:
            return None, self.payload
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return (f"<Frame op={self.opcode:#x} fin={int(self.fin)} rsv={self.rsv} "
                f"masked={int(self.masked)} len={len(self.payload)} {p!r}>")


class FrameReader:
    """Parses frames from a socket (any side's frames: unmasks masked ones)."""

    def __init__(self, sock, initial=b""):
        self.sock = sock
        self.buf = bytearray(initial)
        self.total = 0          # bytes of every frame parsed so far

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"got {len(self.buf)} of {n} bytes: "
                                     f"{bytes(self.buf[:60])!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 18)
            except socket.timeout:
                continue
            except ConnectionResetError:
                raise Eof("connection reset")
            if not chunk:
                raise Eof(f"EOF with {len(self.buf)} unparsed bytes: {bytes(self.buf[:60])!r}")
            self.buf += chunk

    def read_frame(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos, minimal = 4, n > 125
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos, minimal = 10, n > 0xFFFF
        else:
            minimal = True
        key = None
        if masked:
            self._fill(pos + 4, deadline)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self._fill(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if masked:
            payload = mask_payload(payload, key)
        self.total += pos + n
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload, pos, minimal)


# --------------------------------------------------------------------------- client


def handshake_request(path="/", key=None, protocols=None, extensions=None, extra=b"",
                      host=b"x", version=b"13", method=b"GET"):
    """The client's opening handshake (§4.1) as bytes."""
    if key is None:
        key = new_key()
    head = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: " + host
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
    if key is not False:
        head += b"Sec-WebSocket-Key: " + key + b"\r\n"
    if version is not None:
        head += b"Sec-WebSocket-Version: " + version + b"\r\n"
    if protocols is not None:
        head += b"Sec-WebSocket-Protocol: " + protocols.encode() + b"\r\n"
    if extensions is not None:
        head += b"Sec-WebSocket-Extensions: " + extensions.encode() + b"\r\n"
    return head + extra + b"\r\n"


def read_head(sock, timeout=IO_TIMEOUT):
    """(Response of the head, bytes after it) from a socket."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no response head within {timeout}s: {buf[:200]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Eof(f"closed before a full response head: {buf[:200]!r}")
        buf += chunk
    i = buf.index(b"\r\n\r\n") + 4
    return Response(buf[:i], b"", buf[:i]), buf[i:]


class WsClient:
    """A raw WebSocket client over one socket to 127.0.0.1:port.

        c = WsClient(port, "/echo", protocols="binary")
        resp = c.open()              # the handshake; resp.status == 101 for a switch
        c.send_binary(b"...")
        data = c.recv_data(3)        # data-frame payloads joined until 3 bytes
        code, reason = c.recv_close()

    Every frame received is kept in `frames`; `reader.total` counts their bytes."""

    def __init__(self, port, path="/", timeout=IO_TIMEOUT, rcvbuf=None, sndbuf=None,
                 **handshake):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.path = path
        key = handshake.pop("key", None)
        self.key = new_key() if key is None else key     # False: no Sec-WebSocket-Key
        self.handshake = handshake
        self.response = None
        self.reader = None
        self.frames = []
        self.data_opcodes = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def open(self, body=b""):
        """Sends the handshake (plus `body`, for a request with Content-Length) and reads
        the response head. Returns the Response."""
        self.sock.sendall(handshake_request(self.path, key=self.key, **self.handshake) + body)
        self.response, rest = read_head(self.sock, self.timeout)
        self.reader = FrameReader(self.sock, rest)
        return self.response

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        reset_close(self.sock)

    # ---- sending

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def send_binary(self, payload, **kw):
        self.send_frame(OP_BINARY, payload, **kw)

    def send_text(self, payload, **kw):
        self.send_frame(OP_TEXT, payload, **kw)

    def send_close(self, code=None, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    # ---- receiving

    def recv_frame(self, timeout=None):
        f = self.reader.read_frame(self.timeout if timeout is None else timeout)
        self.frames.append(f)
        if f.opcode in (OP_TEXT, OP_BINARY):
            self.data_opcodes.add(f.opcode)
        return f

    def recv_data(self, n, timeout=None, opcode=OP_BINARY):
        """Payloads of data frames (`opcode`, FIN set, unmasked, RSV clear, minimal length
        encoding: what the contract and §5.2 say the proxy sends) joined until `n` bytes;
        any other frame fails."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} payload bytes")
            f = self.recv_frame(left)
            if f.opcode != opcode or not f.fin or f.masked or f.rsv or not f.minimal:
                raise AssertionError(f"expected unmasked final frames of opcode {opcode}, "
                                     f"got {f!r} after {len(out)} of {n} bytes")
            out += f.payload
        if len(out) != n:
            raise AssertionError(f"got {len(out)} payload bytes, expected {n}")
        return bytes(out)

    def recv_close(self, timeout=None, allow_data=False):
        """(code, reason) of the next close frame. Data frames before it fail unless
        `allow_data` (their payloads are then in `data_before_close`)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.data_before_close = bytearray()
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                if f.masked or not f.fin or f.rsv:
                    raise AssertionError(f"malformed close frame from the proxy: {f!r}")
                return f.close_code()
            if allow_data and f.opcode in (OP_TEXT, OP_BINARY):
                self.data_before_close += f.payload
                continue
            raise AssertionError(f"expected a close frame, got {f!r}")

    def wait_eof(self, timeout=2.0):
        """Seconds until the peer's EOF/reset, None if still open after `timeout`. Bytes
        arriving meanwhile fail."""
        start = time.monotonic()
        try:
            f = self.recv_frame(timeout)
        except Eof:
            if self.reader.buf:
                raise AssertionError(f"EOF after a partial frame: {bytes(self.reader.buf)!r}")
            return time.monotonic() - start
        except socket.timeout:
            return None
        raise AssertionError(f"expected EOF, got a frame {f!r}")

    def no_frame(self, timeout=0.3):
        """True when nothing arrives within `timeout` (and the connection stays open)."""
        try:
            f = self.recv_frame(timeout)
        except socket.timeout:
            return True
        raise AssertionError(f"unexpected frame {f!r}")


# --------------------------------------------------------------------------- services


class ServiceConn:
    """One connection accepted by a TcpService."""

    def __init__(self, sock, index):
        self.sock = sock
        sock.settimeout(IO_TIMEOUT)
        self.index = index
        self.received = bytearray()
        self.sha_in = hashlib.sha256()
        self.sha_out = hashlib.sha256()
        self.sent = 0
        self.eof = threading.Event()        # the proxy's FIN (or reset) arrived
        self.eof_at = None
        self.reset_seen = False
        self.error = None
        self.accepted_at = time.monotonic()
        self._cond = threading.Condition()

    # ---- used by the service thread (or by the test in passive mode)

    def _got(self, data):
        with self._cond:
            self.received += data
            self.sha_in.update(data)
            self._cond.notify_all()

    def _got_eof(self, reset=False):
        with self._cond:
            self.reset_seen = reset
            self.eof_at = time.monotonic()
            self.eof.set()
            self._cond.notify_all()

    def send(self, data):
        self.sock.sendall(data)
        self.sha_out.update(data)
        self.sent += len(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        reset_close(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- passive mode: the test reads

    def recv_some(self, timeout=1.0):
        """Reads once (b"" on timeout); records EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 18)
        except socket.timeout:
            return b""
        except ConnectionResetError:
            self._got_eof(reset=True)
            return b""
        finally:
            try:
                self.sock.settimeout(IO_TIMEOUT)
            except OSError:
                pass
        if not data:
            self._got_eof()
            return b""
        self._got(data)
        return data

    def read_until_eof(self, timeout=IO_TIMEOUT):
        """Passive mode: reads until EOF; returns True if EOF came within `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.eof.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.recv_some(min(left, 0.5))
        return True

    def recv_exact(self, n, timeout=IO_TIMEOUT):
        """Passive mode: reads until `n` bytes in total have been received."""
        deadline = time.monotonic() + timeout
        while len(self.received) < n and not self.eof.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.recv_some(min(left, 0.5))
        if len(self.received) < n:
            raise AssertionError(f"service got {len(self.received)} of {n} bytes "
                                 f"(eof={self.eof.is_set()}): {bytes(self.received[:120])!r}")
        return bytes(self.received)

    # ---- threaded modes: the test waits

    def wait_received(self, n, timeout=IO_TIMEOUT):
        """Waits until `n` bytes in total were received; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0 or (self.eof.is_set() and len(self.received) < n):
                    raise AssertionError(f"service got {len(self.received)} of {n} bytes "
                                         f"(eof={self.eof.is_set()}): "
                                         f"{bytes(self.received[-120:])!r}")
                self._cond.wait(min(left, 0.1))
            return bytes(self.received)

    def wait_eof(self, timeout=IO_TIMEOUT):
        return self.eof.wait(timeout)


class TcpService:
    """A plain TCP service on 127.0.0.1:0, one thread per connection.

    mode "echo": sends `greeting` (speak-first), then echoes every byte; on the proxy's
    EOF it shuts down its own write side. "sink": reads and records. "passive": the test
    drives the connection (ServiceConn.recv_some/send/reset...). Connections are handed
    out in accept order by next_conn()."""

    def __init__(self, mode="echo", greeting=b"", rcvbuf=None):
        assert mode in ("echo", "sink", "passive")
        self.mode, self.greeting = mode, greeting
        self.conns = []
        self._queue = queue.Queue()
        self._stop = threading.Event()
        self._threads = []
        self.listener = socket.socket()
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self):
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.listener.close()
        for c in list(self.conns):
            c.close()
        for t in self._threads:
            t.join(2)
        return False

    @property
    def accepted(self):
        return len(self.conns)

    def drain(self):
        """Forgets connections accepted but not yet handed out (a test's leftovers)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def next_conn(self, timeout=IO_TIMEOUT):
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"service {self.mode} accepted no further connection "
                                 f"within {timeout}s ({len(self.conns)} so far)")

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = ServiceConn(sock, len(self.conns))
            self.conns.append(conn)
            if self.mode != "passive":
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                t.start()
                self._threads.append(t)
            self._queue.put(conn)

    def _serve(self, conn):
        sock = conn.sock
        try:
            if self.greeting:
                conn.send(self.greeting)
            sock.settimeout(60)
            while not self._stop.is_set():
                try:
                    data = sock.recv(1 << 18)
                except ConnectionResetError:
                    conn._got_eof(reset=True)
                    return
                if not data:
                    conn._got_eof()
                    if self.mode == "echo":
                        sock.shutdown(socket.SHUT_WR)
                    return
                conn._got(data)
                if self.mode == "echo":
                    conn.send(data)
        except OSError as e:
            conn.error = e
            if not conn.eof.is_set():
                conn._got_eof(reset=True)
        finally:
            # Linger a little so the proxy reads our FIN before the socket goes away.
            time.sleep(0.05)
            conn.close()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- frame cases


def protocol_error_cases(max_message):
    """Client frame sequences that break a rule of RFC 6455 §5 (as the contract lists
    them), each with the close code the server must answer (§7.4.1) and the payload
    bytes of the offending frame that must not reach the upstream (None when the rule
    may legitimately be noticed only after earlier bytes went through).
    Built fresh on each call (new masking keys)."""
    B = build_frame
    half = max_message // 2
    cases = [
        ("unmasked frame", [B(OP_BINARY, b"unmasked-payload", mask=False)], 1002,
         b"unmasked-payload"),
        ("RSV1 set (no extension negotiated)", [B(OP_BINARY, b"rsv1-payload", rsv=RSV1)],
         1002, b"rsv1-payload"),
        ("RSV2 set", [B(OP_TEXT, b"rsv2-payload", rsv=RSV2)], 1002, b"rsv2-payload"),
        ("RSV3 set", [B(OP_BINARY, b"rsv3-payload", rsv=RSV3)], 1002, b"rsv3-payload"),
        ("reserved data opcode 0x3", [B(0x3, b"opcode3-payload")], 1002, b"opcode3-payload"),
        ("reserved control opcode 0xB", [B(0xB, b"opcodeB-payload")], 1002,
         b"opcodeB-payload"),
        ("ping over 125 bytes", [B(OP_PING, b"p" * 126)], 1002, None),
        ("close over 125 bytes", [B(OP_CLOSE, close_payload(1000, b"r" * 124))], 1002, None),
        ("fragmented ping", [B(OP_PING, b"frag-ping", fin=False)], 1002, None),
        ("continuation without a start", [B(OP_CONT, b"orphan-continuation")], 1002,
         b"orphan-continuation"),
        ("new data frame inside a fragmented message",
         [B(OP_TEXT, b"first-part", fin=False), B(OP_BINARY, b"intruder-frame")], 1002,
         b"intruder-frame"),
        ("new text frame inside a fragmented binary message",
         [B(OP_BINARY, b"bin-part", fin=False), B(OP_TEXT, b"text-intruder", fin=False)],
         1002, b"text-intruder"),
        ("close payload of 1 byte", [B(OP_CLOSE, b"\x03")], 1002, None),
    ]
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
        cases.append((f"close code {code}", [B(OP_CLOSE, close_payload(code, b"x"))], 1002,
                      None))
    cases += [
        ("invalid UTF-8 in a text message", [B(OP_TEXT, b"bad\xff\xfetext")], 1007, None),
        ("overlong UTF-8", [B(OP_TEXT, b"\xc0\xaf")], 1007, None),
        ("UTF-16 surrogate in UTF-8", [B(OP_TEXT, b"\xed\xa0\x80")], 1007, None),
        ("code point over U+10FFFF", [B(OP_TEXT, b"\xf4\x90\x80\x80")], 1007, None),
        ("invalid UTF-8 split across fragments",
         [B(OP_TEXT, b"ab\xe2\x82", fin=False), B(OP_CONT, b"\x28cd")], 1007, None),
        ("text message ending inside a code point",
         [B(OP_TEXT, b"ab\xe2", fin=False), B(OP_CONT, b"\x82")], 1007, None),
        ("invalid UTF-8 close reason", [B(OP_CLOSE, close_payload(1000, b"bye\xff"))], 1007,
         None),
        ("message over max_message", [B(OP_BINARY, b"x" * (max_message + 1))], 1009, None),
        ("message over max_message across fragments",
         [B(OP_BINARY, b"x" * half, fin=False),
          B(OP_CONT, b"y" * (max_message - half + 1))], 1009, None),
        ("text message over max_message across fragments",
         [B(OP_TEXT, b"t" * half, fin=False), B(OP_CONT, b"u" * half, fin=False),
          B(OP_CONT, b"v")], 1009, None),
    ]
    return cases


# --------------------------------------------------------------------------- reference


class WsReferenceServer:
    """A python3-websockets (asyncio) echo server on 127.0.0.1:0 in its own thread: the
    independent peer our framing code is checked against. It selects `subprotocols`,
    enforces `max_size` per message, echoes each message and records the close code."""

    def __init__(self, subprotocols=None, max_size=1 << 20, greeting=None):
        self.subprotocols = subprotocols
        self.max_size = max_size
        self.greeting = greeting
        self.messages = []
        self.closes = []
        self._ready = threading.Event()
        self.port = None

    async def _handler(self, ws, path=None):
        import websockets
        try:
            if self.greeting is not None:
                await ws.send(self.greeting)
            async for m in ws:
                self.messages.append(m)
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        self.closes.append((ws.close_code, ws.close_reason))

    def _run(self):
        import asyncio
        import websockets

        async def main():
            self._stop = asyncio.get_running_loop().create_future()
            async with websockets.serve(self._handler, "127.0.0.1", 0,
                                        subprotocols=self.subprotocols,
                                        max_size=self.max_size, compression=None) as srv:
                self.port = srv.sockets[0].getsockname()[1]
                self._ready.set()
                await self._stop
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.close()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("websockets reference server did not start")
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(10)
        return False


# --------------------------------------------------------------------------- client sessions
# The same scenario run by each independent client implementation (python3-websockets,
# Autobahn|Python here; node ws in terminate_node_client.js): open with a subprotocol
# (offering permessage-deflate, which the server must decline), read a speak-first
# service's greeting, echo binary messages of 0 B .. 1 MiB across the 7/16/64-bit length
# boundaries, echo a UTF-8 text message, echo 1,000 numbered messages sent in one burst,
# close with 1000. Echoed bytes may come back split over any number of messages, so they
# are joined as one stream. Each returns the same result dict as the node client prints.

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]
TEXT = "text \u00e9\u00e8 \u20ac \U0001f600 " * 20


def numbered_messages(n=1000):
    return [b"%04d:" % i + b"n" * (i % 37) + b";" for i in range(n)]


class _Stream:
    """Received message payloads joined into one byte stream (plus hashes and counts)."""

    def __init__(self, next_message):
        self.next_message = next_message      # async () -> (bytes, is_binary)
        self.buf = bytearray()
        self.sha = hashlib.sha256()
        self.count = 0
        self.types = set()

    async def take(self, n):
        while len(self.buf) < n:
            data, is_binary = await self.next_message()
            self.types.add("binary" if is_binary else "text")
            self.sha.update(data)
            self.count += len(data)
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


async def _scenario(result, stream, send, greeting_length):
    """The shared steps; `send(payload bytes, is_binary)` is awaited per message."""
    sent = hashlib.sha256()
    count = 0

    async def out(data, is_binary):
        nonlocal count
        sent.update(data)
        count += len(data)
        await send(data, is_binary)

    if greeting_length:
        result["greeting"] = (await stream.take(greeting_length)).decode("latin-1")
    for size in SIZES:
        payload = os.urandom(size)
        await out(payload, True)
        back = await stream.take(size) if size else b""
        result["sizes"].append([size, back == payload])
    text = TEXT.encode()
    await out(text, False)
    result["text_ok"] = await stream.take(len(text)) == text
    parts = numbered_messages()
    for p in parts:
        await out(p, True)
    whole = b"".join(parts)
    result["order_ok"] = await stream.take(len(whole)) == whole
    result["sent_sha256"] = sent.hexdigest()
    result["sent_bytes"] = count


def _new_result():
    return {"protocol": None, "extensions": None, "greeting": "", "sizes": [],
            "text_ok": False, "order_ok": False, "close_code": None, "close_reason": "",
            "errors": []}


async def websockets_session(url, protocol, greeting_length):
    """python3-websockets (asyncio API) client."""
    import websockets
    result = _new_result()
    async with websockets.connect(url, subprotocols=[protocol], max_size=None,
                                  max_queue=None, open_timeout=5, close_timeout=5) as ws:
        result["protocol"] = ws.subprotocol
        result["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        result["negotiated_extensions"] = [type(e).__name__ for e in ws.extensions]

        async def next_message():
            m = await ws.recv()
            return (m.encode(), False) if isinstance(m, str) else (m, True)

        async def send(data, is_binary):
            await ws.send(data if is_binary else data.decode())

        stream = _Stream(next_message)
        await _scenario(result, stream, send, greeting_length)
        await ws.close(1000, "websockets done")
        result["close_code"], result["close_reason"] = ws.close_code, ws.close_reason
    result["recv_sha256"], result["recv_bytes"] = stream.sha.hexdigest(), stream.count
    result["message_types"] = sorted(stream.types)
    return result


async def autobahn_session(url, protocol, greeting_length):
    """Autobahn|Python (python3-autobahn, asyncio API) client."""
    import asyncio
    from urllib.parse import urlparse
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol
    from autobahn.websocket.compress import PerMessageDeflateOffer

    loop = asyncio.get_running_loop()
    result = _new_result()
    inbox = asyncio.Queue()
    opened, closed = loop.create_future(), loop.create_future()

    class Client(WebSocketClientProtocol):
        def onConnect(self, response):
            result["protocol"] = response.protocol
            result["extensions"] = response.headers.get("sec-websocket-extensions", "")
            result["negotiated_extensions"] = [str(e) for e in response.extensions]

        def onOpen(self):
            if not opened.done():
                opened.set_result(self)

        def onMessage(self, payload, isBinary):
            inbox.put_nowait((payload, isBinary))

        def onClose(self, wasClean, code, reason):
            if not closed.done():
                closed.set_result((wasClean, code, reason))
            if not opened.done():
                opened.set_exception(AssertionError(f"autobahn: closed before open: "
                                                    f"{wasClean} {code} {reason}"))

    factory = WebSocketClientFactory(url, protocols=[protocol])
    factory.protocol = Client
    factory.setProtocolOptions(maxFramePayloadSize=0, maxMessagePayloadSize=0,
                               autoFragmentSize=0, openHandshakeTimeout=5,
                               closeHandshakeTimeout=5,
                               perMessageCompressionOffers=[PerMessageDeflateOffer()])
    u = urlparse(url)
    transport, _ = await loop.create_connection(factory, u.hostname, u.port)
    try:
        proto = await asyncio.wait_for(opened, 5)

        async def next_message():
            if not inbox.empty():
                return inbox.get_nowait()
            if not closed.done():
                getter = asyncio.ensure_future(inbox.get())
                await asyncio.wait([getter, closed], return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    return getter.result()
                getter.cancel()
            raise AssertionError(f"autobahn: closed while reading: {closed.result()}")

        async def send(data, is_binary):
            proto.sendMessage(data, isBinary=is_binary)
            await asyncio.sleep(0)

        stream = _Stream(next_message)
        await _scenario(result, stream, send, greeting_length)
        proto.sendClose(1000, "autobahn done")
        was_clean, code, reason = await asyncio.wait_for(closed, 5)
        result["was_clean"] = was_clean
        result["close_code"], result["close_reason"] = code, reason or ""
        result["recv_sha256"], result["recv_bytes"] = stream.sha.hexdigest(), stream.count
        result["message_types"] = sorted(stream.types)
    finally:
        transport.close()
    return result
