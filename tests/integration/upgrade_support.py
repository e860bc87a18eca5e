"""Helpers shared by the upgrade-mediation tests (test_upgrade_policy.py,
test_upgrade_switch.py, test_tunnel.py): configs with upgrade policies, WebSocket
handshake bytes, the end-of-test gauge check, access-log waits and raw tunnels."""

import base64
import hashlib
import re
import socket
import time

from harness import FWD, IO_TIMEOUT, Client, PeerClosed, decode_chunked, make_config


# RFC 6455 §1.3's sample key and its accept value.
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
WS_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def route(allow=None, on_disallowed=None, require=None, path="/", upstream="app",
          match_upgrade=None):
    """One route dict; the `upgrade` section only when something in it is given."""
    match = {"path_prefix": path}
    if match_upgrade is not None:
        match["upgrade"] = match_upgrade
    r = {"match": match, "upstream": upstream}
    up = {}
    if allow is not None:
        up["allow"] = list(allow)
    if on_disallowed is not None:
        up["on_disallowed"] = on_disallowed
    if require is not None:
        up["require"] = require
    if up:
        r["upgrade"] = up
    return r


def upgrade_config(servers, allow=None, on_disallowed=None, require=None, access_log=False,
                   **sections):
    """make_config with one catch-all route carrying the given upgrade policy."""
    if access_log:
        sections["access_log"] = {"path": "-"}
    return make_config(servers, routes=[route(allow, on_disallowed, require)], **sections)


def ws_request(path=b"/chat", key=WS_KEY, version=b"13", method=b"GET", extra=b"",
               upgrade=b"websocket"):
    """A WebSocket opening handshake (RFC 6455 §4.1) as raw bytes."""
    head = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: " + upgrade + \
        b"\r\nConnection: Upgrade\r\n"
    if key is not None:
        head += b"Sec-WebSocket-Key: " + key + b"\r\n"
    if version is not None:
        head += b"Sec-WebSocket-Version: " + version + b"\r\n"
    return head + extra + b"\r\n"


def ws_forwarded(path=b"/chat", method=b"GET", extra=b""):
    """What the backend must receive for ws_request(path, extra=extra)."""
    return (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: " + WS_KEY
            + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + FWD
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")


def switching(protocol=b"websocket", accept=WS_ACCEPT, extra=b"",
              reason=b"Switching Protocols"):
    """A backend's 101 head; `protocol`/`accept` None leave the field out."""
    head = b"HTTP/1.1 101 " + reason + b"\r\n"
    if protocol is not None:
        head += b"Upgrade: " + protocol + b"\r\n"
    head += b"Connection: Upgrade\r\n"
    if accept is not None:
        head += b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    return head + extra + b"\r\n"


def strip_connection_close(head):
    """The proxy may ask the upstream to close ("Connection: close" as the last field);
    everything else must be exact."""
    suffix = b"Connection: close\r\n\r\n"
    return head[:-len(suffix)] + b"\r\n" if head.endswith(suffix) else head


def finish(px, timeout=5.0):
    """every test ends with no tunnel and no client connection left."""
    px.wait_metric("switchyard_tunnels_active", 0, timeout)
    px.wait_metric("switchyard_connections_active", 0, timeout)


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_log(px, pattern, timeout=5.0):
    """The first access-log line (proxy stdout) matching regex `pattern`, or fails."""
    rx = re.compile(pattern, re.M)

    def found():
        return rx.search(px.stdout())
    m = wait_until(found, timeout)
    if not m:
        raise AssertionError(f"no access-log line matching {pattern!r} within {timeout}s; "
                             f"log:\n{px.stdout()[-2000:]}")
    return m.group(0)


def recv_exact(sock, n, timeout=IO_TIMEOUT, initial=b""):
    """Exactly n bytes (starting with `initial`) from a raw socket, or fails."""
    data = bytearray(initial)
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(data)} of {n} bytes within {timeout}s: "
                                 f"{bytes(data[:200])!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(1 << 16, n - len(data)))
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise AssertionError(f"peer closed after {len(data)} of {n} bytes: "
                                 f"{bytes(data[:200])!r}")
        data += chunk
    sock.settimeout(IO_TIMEOUT)
    return bytes(data)


def wait_eof(sock, timeout=IO_TIMEOUT):
    """Seconds until the peer's EOF/reset arrives (bytes meanwhile fail), None if it
    does not arrive within `timeout`."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            return None
        except ConnectionResetError:
            chunk = b""
        finally:
            sock.settimeout(IO_TIMEOUT)
        if chunk:
            raise AssertionError(f"unexpected bytes while waiting for EOF: {chunk[:200]!r}")
        return time.monotonic() - start


def reset_close(sock):
    """Closes with SO_LINGER 0: the peer gets a RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def open_ws_tunnel(test, px, be, index=0, path=b"/chat"):
    """Opens a WebSocket tunnel through `px` to ScriptedBackend `be` (script `passive`,
    keep_open=True). Returns (client Client, backend BackendConnection)."""
    c = Client(px.port)
    c.send(ws_request(path))
    be.wait_accepted(index + 1)
    bc = be.connections[index]
    req = bc.recv_request()
    test.assertEqual(req, ws_forwarded(path))
    bc.send(switching())
    resp = c.read_response()
    test.assertEqual(resp.status, 101, resp)
    test.assertEqual(c.buf, b"")
    return c, bc


__all__ = ["FWD", "WS_KEY", "WS_ACCEPT", "ws_accept", "route", "upgrade_config",
           "ws_request", "ws_forwarded", "switching", "strip_connection_close",
           "decode_chunked", "finish", "wait_until", "wait_log", "recv_exact", "wait_eof",
           "reset_close", "open_ws_tunnel", "PeerClosed"]
