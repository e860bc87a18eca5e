"""Shared pieces of the integration tests: the proxy under test, a scripted raw-byte
backend, the demo backend, raw-socket clients and the admin metrics.

Everything binds 127.0.0.1:0 and every wait is bounded. Environment:
  SWITCHYARD_BIN            the switchyard executable
  SWITCHYARD_DEMO_BACKEND   the demo_backend executable
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SWITCHYARD_BIN = os.environ.get("SWITCHYARD_BIN", "")
DEMO_BACKEND = os.environ.get("SWITCHYARD_DEMO_BACKEND", "")

IO_TIMEOUT = 5.0       # any single socket wait
START_TIMEOUT = 10.0   # a process printing its "listening" line
STOP_TIMEOUT = 10.0    # a process exiting after SIGTERM

# The fields the default forwarding config appends to a request from this machine.
FWD = b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"

LISTEN_RE = re.compile(rb"^switchyard: listening on 127\.0\.0\.1:(\d+)$", re.M)
ADMIN_RE = re.compile(rb"^switchyard: admin listening on 127\.0\.0\.1:(\d+)$", re.M)


class PeerClosed(Exception):
    """The other side closed the connection while we were waiting for bytes."""


def dead_port():
    """A port on 127.0.0.1 where nothing listens (bound once, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- config


def _yaml(value, indent=0):
    """A tiny YAML emitter for configs built in tests (dicts, lists, scalars)."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                inner = _yaml(item, indent + 1).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict) and not v:
        return "{}"
    if isinstance(v, list) and not v:
        return "[]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_config(servers, *, routes=None, upstreams=None, admin=True, listeners=1, **sections):
    """YAML for one upstream `app` with `servers` ("host:port" strings) and a catch-all
    route, an admin listener, and the access log off. Keyword sections (timeouts, limits,
    forwarding, ...) are added as given; `routes`/`upstreams` replace the defaults."""
    cfg = {
        "listen": [{"address": "127.0.0.1:0"} for _ in range(listeners)],
        "upstreams": upstreams if upstreams is not None else {"app": {"servers": list(servers)}},
        "routes": routes if routes is not None
        else [{"match": {"path_prefix": "/"}, "upstream": "app"}],
        "access_log": {"path": "off"},
    }
    if admin:
        cfg["admin"] = {"address": "127.0.0.1:0"}
    cfg.update(sections)
    return _yaml(cfg) + "\n"


# --------------------------------------------------------------------------- processes


def _wait_for_lines(path, proc, pattern, count, what):
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with open(path, "rb") as f:
            found = pattern.findall(f.read())
        if len(found) >= count:
            return [int(p) for p in found[:count]]
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening:\n"
                                 + _read(path))
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not print its listening line(s) in "
                                 f"{START_TIMEOUT}s:\n" + _read(path))
        time.sleep(0.02)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Proxy:
    """The proxy under test, started on a YAML config text.

        with Proxy(make_config([backend.address])) as proxy:
            ... connect to proxy.port ...

    On exit: SIGTERM, then the exit status must be 0 within 10 s. Its stderr is printed
    when the block fails."""

    def __init__(self, config_text, *, listeners=None, admin=None):
        self.config_text = config_text
        self.listeners = listeners if listeners is not None else max(
            1, config_text.count("address:") - (1 if "admin:" in config_text else 0))
        self.has_admin = admin if admin is not None else ("admin:" in config_text)
        self.ports = []
        self.port = None
        self.admin_port = None
        self.proc = None
        self._dir = None
        self._signalled = False

    def __enter__(self):
        if not SWITCHYARD_BIN:
            raise unittest.SkipTest("SWITCHYARD_BIN is not set")
        self._dir = tempfile.TemporaryDirectory(prefix="switchyard-test-")
        self.config_path = os.path.join(self._dir.name, "switchyard.yaml")
        self.stdout_path = os.path.join(self._dir.name, "stdout")
        self.stderr_path = os.path.join(self._dir.name, "stderr")
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([SWITCHYARD_BIN, "--config", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            self.ports = _wait_for_lines(self.stderr_path, self.proc, LISTEN_RE,
                                         self.listeners, "switchyard")
            self.port = self.ports[0] if self.ports else None
            if self.has_admin:
                self.admin_port = _wait_for_lines(self.stderr_path, self.proc, ADMIN_RE, 1,
                                                  "switchyard admin")[0]
        except BaseException:
            self._kill()
            sys.stderr.write("--- config ---\n" + self.config_text)
            self._dir.cleanup()
            raise
        return self

    def stderr(self):
        return _read(self.stderr_path)

    def stdout(self):
        return _read(self.stdout_path)

    def sigterm(self):
        """Sends SIGTERM once (a second one may legitimately mean "stop now")."""
        if not self._signalled and self.proc.poll() is None:
            self._signalled = True
            self.proc.send_signal(signal.SIGTERM)

    def terminate(self):
        """SIGTERM (once) and wait; returns the exit status (None if still running)."""
        self.sigterm()
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, exc_type, exc, tb):
        try:
            status = self.terminate()
            if exc_type is not None:
                self._dump()
                return False
            if status != 0:
                self._dump()
                raise AssertionError(f"switchyard exit status after SIGTERM: {status} "
                                     "(None = still running after 10 s)")
            return False
        finally:
            self._kill()
            self._dir.cleanup()

    def _dump(self):
        sys.stderr.write("\n--- switchyard config ---\n" + self.config_text
                         + "--- switchyard stderr ---\n" + self.stderr()
                         + "--- switchyard stdout (tail) ---\n" + self.stdout()[-4000:] + "\n")

    # ---- admin

    def metrics(self):
        """The admin /metrics page as {name or name{labels}: float}."""
        resp = http_request(self.admin_port,
                            b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        if resp.status != 200:
            raise AssertionError(f"/metrics answered {resp.status}")
        values = {}
        self.declared = set()
        for line in resp.body.decode().splitlines():
            if line.startswith("# TYPE "):
                self.declared.add(line.split()[2])
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
        return values

    def metric(self, name):
        """The value of `name` ("family" or "family{labels}" as rendered). A bare family
        name whose series carry labels gives their sum (e.g. every route's tunnels)."""
        values = self.metrics()
        if name in values:
            return values[name]
        labelled = [v for k, v in values.items() if k.startswith(name + "{")]
        if labelled:
            return sum(labelled)
        # A declared family none of whose series has appeared yet (e.g. tunnels on routes
        # that never saw an upgrade) totals 0.
        return 0.0 if name in self.declared else None

    def wait_metric(self, name, value, timeout=5.0):
        """Waits until metric `name` equals `value`; fails with the last value seen."""
        wait_value(lambda: self.metric(name), value, timeout, f"metric {name}")

    def assert_idle(self):
        """End-of-test check (every test ends idle): no client connection is left open
        (admin connections are not client connections)."""
        self.wait_metric("switchyard_connections_active", 0)


def wait_value(fetch, value, timeout, what):
    """Polls fetch() until it returns `value`; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if last == value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} is {last}, expected {value} (waited {timeout}s)")
        time.sleep(0.05)


class DemoBackend:
    """tests/support/demo_backend on 127.0.0.1:0."""

    def __enter__(self):
        if not DEMO_BACKEND:
            raise unittest.SkipTest("SWITCHYARD_DEMO_BACKEND is not set")
        self._dir = tempfile.TemporaryDirectory(prefix="demo-backend-")
        self.stderr_path = os.path.join(self._dir.name, "stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([DEMO_BACKEND, "--listen", "127.0.0.1:0"],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        pattern = re.compile(rb"^demo_backend: listening on 127\.0\.0\.1:(\d+)$", re.M)
        self.port = _wait_for_lines(self.stderr_path, self.proc, pattern, 1, "demo_backend")[0]
        self.address = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = None
        self._dir.cleanup()
        if exc[0] is None and status != 0:
            raise AssertionError(f"demo_backend exit status after SIGTERM: {status}")
        return False


# --------------------------------------------------------------------------- bytes


def _read_head(recv_more, buf):
    """Returns (head incl. final CRLFCRLF, rest) reading with recv_more() -> bytes."""
    while b"\r\n\r\n" not in buf:
        buf += recv_more()
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def parse_fields(head):
    """[(name, value)] of a head's field lines (value without surrounding spaces)."""
    fields = []
    for line in head.split(b"\r\n")[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return fields


def _field(fields, name):
    for n, v in fields:
        if n.lower() == name.lower():
            return v
    return None


def _read_chunked(recv_more, buf):
    """Decodes a chunked body; returns (raw bytes, decoded body, rest)."""
    body = b""
    pos = 0
    while True:
        while b"\r\n" not in buf[pos:]:
            buf += recv_more()
        eol = buf.index(b"\r\n", pos)
        size = int(buf[pos:eol].split(b";")[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            # trailer section up to an empty line
            while True:
                while b"\r\n" not in buf[pos:]:
                    buf += recv_more()
                eol = buf.index(b"\r\n", pos)
                line = buf[pos:eol]
                pos = eol + 2
                if not line:
                    return buf[:pos], body, buf[pos:]
        while len(buf) < pos + size + 2:
            buf += recv_more()
        body += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise AssertionError("chunk data not followed by CRLF")
        pos += size + 2


def decode_chunked(raw):
    """The body of a complete chunked encoding (fails on a truncated or over-long one)."""
    def no_more():
        raise AssertionError("truncated chunked body")
    _, body, rest = _read_chunked(no_more, raw)
    assert rest == b"", rest
    return body


class Response:
    def __init__(self, head, body, raw):
        self.head = head                  # bytes, status line to the empty line included
        self.body = body                  # decoded body bytes
        self.raw = raw                    # exact bytes of the whole response
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        self.status_line = status_line
        parts = status_line.split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.fields = parse_fields(head)

    def header(self, name):
        return _field(self.fields, name)

    def headers(self, name):
        return [v for n, v in self.fields if n.lower() == name.lower()]

    def __repr__(self):
        return f"<Response {self.status_line!r} {self.fields} body={len(self.body)}B>"


class Client:
    """A raw client connection to 127.0.0.1:port: exact bytes out, parsed responses in."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _recv_more(self):
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            raise PeerClosed(f"connection closed; unparsed bytes: {self.buf[:200]!r}")
        return data

    def read_response(self, head_request=False):
        """Reads one whole response (1xx heads are returned on their own)."""
        head, self.buf = _read_head(self._recv_more, self.buf)
        self.buf, buf = b"", self.buf
        resp_head = Response(head, b"", head)
        status = resp_head.status
        te = resp_head.header("Transfer-Encoding")
        cl = resp_head.header("Content-Length")
        if head_request or 100 <= status < 200 or status in (204, 304):
            body, raw_body = b"", b""
        elif te is not None and te.lower().endswith("chunked"):
            raw_body, body, buf = _read_chunked(self._recv_more, buf)
        elif cl is not None:
            n = int(cl)
            while len(buf) < n:
                buf += self._recv_more()
            body, raw_body, buf = buf[:n], buf[:n], buf[n:]
        else:  # delimited by close
            while True:
                try:
                    buf += self._recv_more()
                except PeerClosed:
                    break
            body, raw_body, buf = buf, buf, b""
        self.buf = buf
        return Response(head, body, head + raw_body)

    def request(self, data, head_request=False):
        self.send(data)
        return self.read_response(head_request=head_request)

    def read_all(self, timeout=None):
        """Every byte until the peer closes (fails if it does not within the timeout)."""
        self.sock.settimeout(timeout or self.timeout)
        data, self.buf = self.buf, b""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        self.sock.settimeout(self.timeout)
        return data

    def is_closed(self, timeout=2.0):
        """True when the peer closes within `timeout` with no further bytes; False when it
        stays open; raises if unexpected bytes arrive."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if chunk:
            raise AssertionError(f"unexpected bytes: {chunk[:200]!r}")
        return True


def http_request(port, data, head_request=False):
    """One request on a fresh connection; returns the Response."""
    with Client(port) as c:
        return c.request(data, head_request=head_request)


def get(port, path="/", host="x", extra=b""):
    return http_request(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode()
                        + b"\r\n" + extra + b"Connection: close\r\n\r\n")


# --------------------------------------------------------------------------- scripted backend


class BackendConnection:
    """One accepted connection handed to a script."""

    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.received = b""     # every byte received on this connection
        self.requests = []      # what recv_request() returned, in order
        self._buf = b""
        self.closed_by_peer = False
        sock.settimeout(IO_TIMEOUT)

    def _recv_more(self):
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_by_peer = True
            raise PeerClosed(f"backend connection {self.index}: peer closed")
        self.received += data
        return data

    def recv_request(self):
        """Exact bytes of one request: head, then a Content-Length or chunked body."""
        head, rest = _read_head(self._recv_more, self._buf)
        fields = parse_fields(head)
        te = _field(fields, "Transfer-Encoding")
        cl = _field(fields, "Content-Length")
        if te is not None and te.lower().endswith("chunked"):
            raw, _, rest = _read_chunked(self._recv_more, rest)
        elif cl is not None:
            n = int(cl)
            while len(rest) < n:
                rest += self._recv_more()
            raw, rest = rest[:n], rest[n:]
        else:
            raw = b""
        self._buf = rest
        self.requests.append(head + raw)
        return head + raw

    def recv_until(self, marker):
        while marker not in self._buf:
            self._buf += self._recv_more()
        i = self._buf.index(marker) + len(marker)
        out, self._buf = self._buf[:i], self._buf[i:]
        return out

    def recv_some(self, timeout=1.0):
        """Whatever arrives within `timeout` (b"" if nothing; raises PeerClosed on EOF)."""
        if self._buf:
            out, self._buf = self._buf, b""
            return out
        self.sock.settimeout(timeout)
        try:
            return self._recv_more()
        except socket.timeout:
            return b""
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def wait_closed(self, timeout=IO_TIMEOUT):
        """True when the peer closes within `timeout` (bytes arriving meanwhile are kept)."""
        if self.closed_by_peer:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._buf += self.recv_some(max(0.01, deadline - time.monotonic()))
            except PeerClosed:
                return True
        return False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        """Closes the connection (also wakes a script blocked reading it)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def serve_forever(respond):
    """A script: answer every request on the connection with respond(conn, request_bytes)
    (bytes to send, or None to close), until the peer closes."""
    def script(conn):
        while True:
            try:
                req = conn.recv_request()
            except PeerClosed:
                return
            out = respond(conn, req)
            if out is None:
                conn.close()
                return
            conn.send(out)
    return script


def ok_response(body=b"ok", extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra
            + b"\r\n" + body)


class ScriptedBackend:
    """A raw TCP server on 127.0.0.1:0 running a script per accepted connection, each in
    its own thread. `script` is one function for every connection or a list (connection i
    gets script i; extra connections get the last one). A script gets a BackendConnection;
    the socket is closed when the script returns unless `keep_open` is set.

    `.accepted` counts connections; `.connections` keeps them (their `.received` bytes).
    Script exceptions other than PeerClosed/timeouts are re-raised on exit."""

    def __init__(self, script=None, keep_open=False):
        self.scripts = script if isinstance(script, list) else [
            script or serve_forever(lambda c, r: ok_response())]
        self.keep_open = keep_open
        self.connections = []
        self.errors = []
        self._lock = threading.Lock()
        self._threads = []
        self._stop = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    @property
    def accepted(self):
        with self._lock:
            return len(self.connections)

    def received(self, i=0):
        return self.connections[i].received

    def all_received(self):
        return b"".join(c.received for c in self.connections)

    def __enter__(self):
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                index = len(self.connections)
                conn = BackendConnection(sock, index)
                self.connections.append(conn)
            script = self.scripts[min(index, len(self.scripts) - 1)]
            t = threading.Thread(target=self._run, args=(script, conn), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, script, conn):
        try:
            script(conn)
        except (PeerClosed, OSError):  # includes timeouts and resets
            pass
        except Exception as e:  # reported on exit
            self.errors.append(e)
        finally:
            if not self.keep_open:
                conn.close()

    def wait_accepted(self, n, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.accepted < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"backend accepted {self.accepted} connections, "
                                     f"expected {n}")
            time.sleep(0.01)

    def __exit__(self, exc_type, *exc):
        self._stop.set()
        self.listener.close()
        self._acceptor.join(2)
        for c in list(self.connections):
            c.close()
        for t in self._threads:
            t.join(2)
        if exc_type is None and self.errors:
            raise self.errors[0]
        return False


def hang(conn):
    """A script that reads whatever comes and never answers, until the peer closes."""
    conn.sock.settimeout(30)
    while True:
        conn._recv_more()


def passive(conn):
    """A script that leaves the connection to the test thread (use keep_open=True)."""


def main():
    unittest.main(verbosity=2)


# --------------------------------------------------------------------------- ops helpers
# Labelled series, reloads and fixed ports for the operations tests (test_reload.py,
# test_metrics.py, test_json_log.py, test_ops.py).

_SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$", re.S)
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)', re.S)


def split_series(key):
    """'name{a="1",b="x"}' (a Proxy.metrics() key) -> ('name', {'a': '1', 'b': 'x'}),
    whatever order the labels were rendered in."""
    m = _SERIES_RE.match(key)
    if not m:
        raise AssertionError(f"unparsable series {key!r}")
    labels, body, pos = {}, m.group(2) or "", 0
    while pos < len(body):
        lm = _LABEL_RE.match(body, pos)
        if not lm or lm.end() == pos:
            raise AssertionError(f"unparsable labels in {key!r}")
        if lm.group(1) in labels:
            raise AssertionError(f"label {lm.group(1)} twice in {key!r}")
        labels[lm.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                     lm.group(2))
        pos = lm.end()
    return m.group(1), labels


def series(metrics, name, **labels):
    """[(labels, value)] of every series of `name` in `metrics` (Proxy.metrics()) whose
    labels include `labels` (order-independent)."""
    out = []
    for key, value in metrics.items():
        n, ls = split_series(key)
        if n == name and all(ls.get(k) == v for k, v in labels.items()):
            out.append((ls, value))
    return out


def metric_sum(metrics, name, **labels):
    """The sum of series(metrics, name, **labels); 0.0 when there is none (a series not
    shown yet counts as 0)."""
    return sum(v for _, v in series(metrics, name, **labels))


def wait_metric_sum(proxy, name, value, timeout=5.0, **labels):
    """Waits until metric_sum(proxy.metrics(), name, **labels) == value."""
    wait_value(lambda: metric_sum(proxy.metrics(), name, **labels), value, timeout,
               f"metric {name}{labels}")


def free_low_port():
    """A free 127.0.0.1 port below the ephemeral range (ports in 32768-60999 may be held by TIME_WAIT sockets), for configs that
    must name a fixed port."""
    import random
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port below 32768")


def reload_config(proxy, text, result="ok", timeout=5.0):
    """Replaces the proxy's configuration file with `text`, sends SIGHUP and waits until
    switchyard_config_reloads_total{result=`result`} went up by exactly one. Returns what
    the proxy wrote on stderr meanwhile."""
    err_before = len(proxy.stderr())
    before = metric_sum(proxy.metrics(), "switchyard_config_reloads_total", result=result)
    tmp = proxy.config_path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, proxy.config_path)
    proxy.config_text = text
    proxy.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        if proxy.proc.poll() is not None:
            raise AssertionError(f"switchyard exited with {proxy.proc.returncode} after SIGHUP")
        try:
            value = metric_sum(proxy.metrics(), "switchyard_config_reloads_total", result=result)
        except OSError:
            if proxy.proc.poll() is not None:
                continue
            raise
        if value == before + 1:
            return proxy.stderr()[err_before:]
        if value > before + 1 or time.monotonic() > deadline:
            raise AssertionError(
                f'switchyard_config_reloads_total{{result="{result}"}} is {value}, expected '
                f"{before + 1} (waited {timeout}s); stderr since SIGHUP:\n"
                + proxy.stderr()[err_before:])
        time.sleep(0.02)
