"""TLS client for bench/tls.sh: connections one after another for SECONDS, one GET each,
full handshakes (`new`) or resumed ones (`resume`: every connection offers the ticket the
previous one received, as TLS 1.3 tickets are single-use). Prints one JSON line:
{"connections": N, "resumed": R}. Loopback only; bounded by SECONDS."""

import json
import socket
import ssl
import sys
import time


def main():
    port, seconds, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    session = None
    connections = resumed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="bench.test", session=session if mode == "resume" else None)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        connections += 1
        resumed += 1 if s.session_reused else 0
        session = s.session  # after the response: TLS 1.3 tickets arrive after the handshake
        s.close()
    print(json.dumps({"connections": connections, "resumed": resumed}))


if __name__ == "__main__":
    main()
