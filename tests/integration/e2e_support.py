"""Real third-party peers for the end-to-end tests: a python3-websockets echo server, a
tiny HTTP/1.1 server (http.server) and nghttpx, each on 127.0.0.1 with bounded waits and
stopped on exit; plus a bounded runner for the command-line clients (curl, nghttp).

The tools come from Debian packages listed in .ci/install-deps (curl, nghttp2-client,
nghttp2-proxy, python3-websockets). A missing tool fails the test rather than skipping it,
so a CI image without them does not pass silently."""

import asyncio
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from harness import IO_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, dead_port

TOOL_TIMEOUT = 20.0    # any one curl / nghttp invocation


def require_tool(name):
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not found on PATH (run .ci/install-deps)")
    return path


def run_tool(args, timeout=TOOL_TIMEOUT):
    """Runs a client to completion (killed after `timeout`); returns CompletedProcess with
    bytes stdout/stderr."""
    require_tool(args[0])
    return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, check=False)


def wait_port(port, proc=None, what="server", timeout=START_TIMEOUT):
    """Waits until 127.0.0.1:port accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not listening on {port} after {timeout}s")
        time.sleep(0.02)


def wait_until(predicate, timeout=IO_TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- websockets


class WsEchoServer:
    """websockets.serve on 127.0.0.1:0 in a thread with its own event loop.

    Echoes every message. The text message "server-ping" makes the server ping the client,
    wait for the pong (5 s) and answer "server-pong-ok".

    Records: `requests` (path, [(name, value)]) for every HTTP request read, before the
    handshake is validated; `sessions` (paths of completed handshakes); `closes`
    (close_code, close_reason) seen by the server when a session ends."""

    def __init__(self):
        self.requests = []
        self.sessions = []
        self.closes = []
        self.errors = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = None
        self._stop = None
        self._thread = None
        self.port = None

    async def _process_request(self, path, headers):
        with self._lock:
            self.requests.append((path, list(headers.raw_items())))
        return None  # carry on with the handshake

    async def _handler(self, ws, path):
        import websockets
        with self._lock:
            self.sessions.append(path)
        try:
            async for message in ws:
                if message == "server-ping":
                    pong = await ws.ping(b"srv")
                    await asyncio.wait_for(pong, 5)
                    await ws.send("server-pong-ok")
                else:
                    await ws.send(message)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # reported by the test
            self.errors.append(e)
        await asyncio.wait_for(ws.wait_closed(), 5)
        with self._lock:
            self.closes.append((ws.close_code, ws.close_reason))

    def _main(self):
        import websockets
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._stop = loop.create_future()

        async def serve():
            async with websockets.serve(self._handler, "127.0.0.1", 0, max_size=None,
                                        process_request=self._process_request,
                                        close_timeout=5) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await self._stop

        try:
            loop.run_until_complete(serve())
        except Exception as e:
            self.errors.append(e)
            self._ready.set()
        finally:
            loop.close()

    def __enter__(self):
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self.port is None:
            raise AssertionError(f"websockets server did not start: {self.errors}")
        self.address = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        def stop():
            if not self._stop.done():
                self._stop.set_result(None)
        try:
            self._loop.call_soon_threadsafe(stop)
        except RuntimeError:  # loop already closed
            pass
        self._thread.join(STOP_TIMEOUT)
        return False


# --------------------------------------------------------------------------- HTTP/1.1 origin


class HttpOrigin:
    """http.server (HTTP/1.1, keep-alive) on 127.0.0.1:0 answering every GET with 200 and
    body_for(path), and every POST (Content-Length body) with 200 and
    "<sha256 hex of the body> <length>\\n". Records (request line, [(name, value)]) of every
    request."""

    @staticmethod
    def body_for(path):
        return b"known body from the origin for " + path.encode() + b"\n"

    def __init__(self):
        self.requests = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                origin.requests.append((self.requestline, list(self.headers.items())))
                body = HttpOrigin.body_for(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                # http.server answers "Expect: 100-continue" with 100 Continue itself
                n = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(n)
                origin.requests.append((self.requestline, list(self.headers.items())))
                body = hashlib.sha256(data).hexdigest().encode() + b" %d\n" % len(data)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(STOP_TIMEOUT)
        return False


# --------------------------------------------------------------------------- nghttpx


class Nghttpx:
    """nghttpx with one cleartext frontend (HTTP/1.1, h2c upgrade and h2c prior knowledge)
    on a free 127.0.0.1 port, proxying to `backend` ("host:port", HTTP/1.1).

    --conf=/dev/null keeps /etc/nghttpx/nghttpx.conf out; --single-process keeps one pid
    (signal handling is off in that mode, so SIGTERM simply ends it). The access log has
    one line per request: "<protocol_version> <alpn> <method> <path> <status>", where
    alpn is "h2c" for a request that arrived through an HTTP/1.1 Upgrade to h2c and
    "http/1.1" for a plain HTTP/1.1 request."""

    def __init__(self, backend):
        self.backend = backend

    def __enter__(self):
        exe = require_tool("nghttpx")
        self._dir = tempfile.TemporaryDirectory(prefix="e2e-nghttpx-")
        self.access_log = os.path.join(self._dir.name, "access.log")
        self.error_log = os.path.join(self._dir.name, "error.log")
        self.port = dead_port()
        host, _, port = self.backend.rpartition(":")
        self.args = [exe, "--conf=/dev/null", "--single-process", "--workers=1",
                     f"--frontend=127.0.0.1,{self.port};no-tls",
                     f"--backend={host},{port}",
                     f"--accesslog-file={self.access_log}",
                     "--accesslog-format=$protocol_version $alpn $method $path $status",
                     f"--errorlog-file={self.error_log}", "--log-level=WARN",
                     "--frontend-read-timeout=20s", "--backend-read-timeout=20s"]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, self.proc, "nghttpx")
        except BaseException:
            self._stop()
            raise
        self.address = f"127.0.0.1:{self.port}"
        return self

    def log_lines(self):
        try:
            with open(self.access_log) as f:
                return [line.rstrip("\n") for line in f if line.strip()]
        except OSError:
            return []

    def wait_log_lines(self, n, timeout=IO_TIMEOUT):
        wait_until(lambda: len(self.log_lines()) >= n, timeout,
                   f"{n} nghttpx access-log lines (have {self.log_lines()})")
        return self.log_lines()

    def error_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc):
        try:
            self._stop()
        finally:
            self._dir.cleanup()
        return False
