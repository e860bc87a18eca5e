"""wss stream client for bench/tls.sh: one TLS connection through the proxy to the sy_load
backend's /source (a WebSocket upgrade, then the backend sends as fast as it is read), read
for SECONDS into one buffer; the proxy decrypts nothing and encrypts everything, which is
the cost measured. Verifies the 101 and a sample of the stream against the backend's
pattern. Prints one JSON line: {"bytes": N, "seconds": S}. Loopback only; bounded."""

import json
import socket
import ssl
import sys
import time

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def main():
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="bench.test")
    s.sendall(("GET /source HTTP/1.1\r\nHost: bench.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("tls_stream: closed before the 101")
        head += chunk
    status, _, rest = head.partition(b"\r\n\r\n")
    if not status.startswith(b"HTTP/1.1 101") or ACCEPT.encode() not in status:
        raise SystemExit("tls_stream: no valid 101: %r" % status[:200])
    total = len(rest)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        n = s.recv_into(view)
        if n == 0:
            raise SystemExit("tls_stream: the stream ended early")
        total += n
    elapsed = time.monotonic() - start
    s.close()
    print(json.dumps({"bytes": total, "seconds": round(elapsed, 3)}))


if __name__ == "__main__":
    main()
