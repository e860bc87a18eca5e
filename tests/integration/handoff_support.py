"""Helpers for test_handoff.py (SIGUSR2 hand-off): HandoffProxy follows the process named
by pid_file (the test process is a child subreaper, so every old process is reaped here
with its exit status); records (sequence number, length, SHA-256 prefix, payload) make a
lost, duplicated, reordered or altered byte fail at once; stream_backend answers
`Upgrade: stream/1`; Load runs WebSocket sessions, stream/1 tunnels and new connections
every few ms (GET, admin /healthz, new upgrades), any failed attempt being an error."""

import asyncio
import bisect
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import (ADMIN_RE, IO_TIMEOUT, LISTEN_RE, STOP_TIMEOUT, SWITCHYARD_BIN, Client,
                     Proxy, ScriptedBackend, _read, _wait_for_lines, get)
from upgrade_support import recv_exact, wait_eof

HANDOFF_TIMEOUT = 15.0   # SIGUSR2 -> new pid in pid_file; old process gone
STREAM_TIMEOUT = 10.0    # longest silence a streaming socket tolerates

ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
sys.setswitchinterval(0.0005)   # dozens of streaming threads: keep the churn going


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def fd_list(pid):
    """The descriptors of an idle process, as "fd->target"."""
    fds = sorted(os.listdir(f"/proc/{pid}/fd"), key=int)
    return [f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}" for fd in fds]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def wait_for(predicate, timeout, what, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail()}")
        time.sleep(0.01)


class HandoffProxy:
    """The proxy under test on `config_text` plus a pid_file line; with copy_binary it runs
    from a copy in its temporary directory (replace_binary swaps that file)."""

    metrics, metric, wait_metric = Proxy.metrics, Proxy.metric, Proxy.wait_metric

    def __init__(self, config_text, *, copy_binary=False, env=None):
        self.config_text, self.copy_binary, self.env = config_text, copy_binary, env or {}
        self.pids = []           # every switchyard pid seen, in order
        self.handoffs = []       # (SIGUSR2 sent, old process gone), monotonic

    def __enter__(self):
        if not SWITCHYARD_BIN:
            raise unittest.SkipTest("SWITCHYARD_BIN is not set")
        self._dir = tempfile.TemporaryDirectory(prefix="switchyard-handoff-")
        path = lambda name: os.path.join(self._dir.name, name)  # noqa: E731
        self.config_path, self.pid_path = path("switchyard.yaml"), path("switchyard.pid")
        self.stdout_path, self.stderr_path = path("stdout"), path("stderr")
        self.binary = path("switchyard") if self.copy_binary else SWITCHYARD_BIN
        if self.copy_binary:
            shutil.copy2(SWITCHYARD_BIN, self.binary)
        self.write_config(self.config_text)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([self.binary, "--config", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=dict(os.environ, **self.env))
        self.pid = self.proc.pid
        self.pids.append(self.pid)
        try:
            self.port = _wait_for_lines(self.stderr_path, self.proc, LISTEN_RE, 1, "switchyard")[0]
            self.admin_port = _wait_for_lines(self.stderr_path, self.proc, ADMIN_RE, 1,
                                              "switchyard admin")[0]
            wait_for(lambda: self.read_pid() == self.pid, 5, "pid_file", self.stderr)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def write_config(self, text, raw=False):
        with open(self.config_path + ".new", "w") as f:
            f.write(text if raw else text + f'pid_file: "{self.pid_path}"\n')
        os.rename(self.config_path + ".new", self.config_path)

    def replace_binary(self, content):
        """Atomically (a new file renamed over it) puts `content` where the binary is."""
        with open(self.binary + ".new", "wb") as f:
            f.write(content)
        os.chmod(self.binary + ".new", 0o755)
        os.rename(self.binary + ".new", self.binary)

    def read_pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stderr(self):
        return _read(self.stderr_path)

    def stdout(self):
        return _read(self.stdout_path)

    def exit_status(self, pid, timeout):
        """Exit status of `pid` once it ended (our child), "gone" (reaped elsewhere), or
        None if still running after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if pid == self.proc.pid:
                if self.proc.poll() is not None:
                    return self.proc.returncode
            else:
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                    if got == pid:
                        return os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    if not alive(pid):
                        return "gone"
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)

    def expect_exit(self, pid, timeout=HANDOFF_TIMEOUT):
        status = self.exit_status(pid, timeout)
        if status not in (0, "gone"):
            raise AssertionError(f"old process {pid}: exit status {status} (None = still "
                                 f"running after {timeout}s); stderr:\n{self.stderr()[-3000:]}")

    def handoff(self, wait_old=True):
        """SIGUSR2; waits for pid_file to name a new process and (wait_old) for the old one
        to exit 0. Returns (old, new)."""
        old, mark, t0 = self.pid, len(self.stderr()), time.monotonic()
        os.kill(old, signal.SIGUSR2)
        wait_for(lambda: self.read_pid() not in (None, old)
                 or "hand-off failed" in self.stderr()[mark:], HANDOFF_TIMEOUT,
                 "pid_file to name a new process", lambda: self.stderr()[mark:])
        if self.read_pid() == old:
            raise AssertionError("hand-off failed:\n" + self.stderr()[mark:])
        self.pid = self.read_pid()
        self.pids.append(self.pid)
        if wait_old:
            self.expect_exit(old)
        self.handoffs.append((t0, time.monotonic()))
        return old, self.pid

    def _ours(self):
        """Live pids of switchyard processes running on this config (by their cmdline)."""
        found = set(p for p in self.pids if alive(p))
        for entry in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if self.config_path.encode() in f.read() and alive(int(entry)):
                    found.add(int(entry))
        return found

    def __exit__(self, exc_type, exc, tb):
        failure = None
        try:
            if exc_type is None:
                os.kill(self.pid, signal.SIGTERM)
                status, left = self.exit_status(self.pid, STOP_TIMEOUT), self._ours()
                if status not in (0, "gone") or left:
                    failure = (f"after SIGTERM to {self.pid}: exit status {status} (None = "
                               f"still running); processes left: {sorted(left)}")
            if exc_type is not None or failure:
                sys.stderr.write(f"\n--- switchyard pids {self.pids} ---\n--- stderr ---\n"
                                 + self.stderr()[-6000:] + "--- stdout (tail) ---\n"
                                 + self.stdout()[-2000:] + "\n")
        finally:
            for pid in self._ours():
                os.kill(pid, signal.SIGKILL)
                self.exit_status(pid, 5)
            self._dir.cleanup()
        if failure:
            raise AssertionError(failure)
        return False


# --------------------------------------------------------------------------- records

HDR = struct.Struct(">QI8s")


def record(seq, payload):
    return HDR.pack(seq, len(payload), hashlib.sha256(payload).digest()[:8]) + payload


class RecordReader:
    """Checks a stream of records: consecutive sequence numbers from 0, checksums."""

    def __init__(self):
        self.buf, self.count, self.times = bytearray(), 0, []

    def feed(self, data):
        self.buf += data
        while len(self.buf) >= HDR.size:
            seq, n, digest = HDR.unpack_from(self.buf)
            if seq != self.count or n > 1 << 20:
                raise AssertionError(f"record {self.count} expected, got seq={seq} len={n} "
                                     "(lost, duplicated or reordered bytes)")
            if len(self.buf) < HDR.size + n:
                return
            if hashlib.sha256(self.buf[HDR.size:HDR.size + n]).digest()[:8] != digest:
                raise AssertionError(f"record {seq}: checksum mismatch")
            del self.buf[:HDR.size + n]
            self.count += 1
            self.times.append(time.monotonic())


class Duplex:
    """Sends a record every `interval` on `sock` while checking the peer's records; stop()
    ends the sending with a FIN (with stop_on_eof, so does the peer's EOF)."""

    def __init__(self, sock, initial=b"", stop_on_eof=False, interval=0.002):
        self.sock, self.initial, self.stop_on_eof, self.interval = sock, initial, stop_on_eof, interval
        self.reader, self.sent, self.eof, self.errors = RecordReader(), 0, False, []
        self._halt = threading.Event()
        sock.settimeout(STREAM_TIMEOUT)
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._tx, self._rx)]
        for t in self._threads:
            t.start()

    def _tx(self):
        try:
            while not self._halt.is_set():
                size = 1 + int.from_bytes(os.urandom(2), "big") % 4096
                self.sock.sendall(record(self.sent, os.urandom(size)))
                self.sent += 1
                time.sleep(self.interval)
            self.sock.shutdown(socket.SHUT_WR)
        except Exception as e:
            self.errors.append(f"send after {self.sent} records: {e!r}")

    def _rx(self):
        try:
            self.reader.feed(self.initial)
            while data := self.sock.recv(1 << 16):
                self.reader.feed(data)
            self.eof = True
            if self.reader.buf:
                self.errors.append(f"EOF inside a record ({len(self.reader.buf)} bytes)")
        except Exception as e:
            self.errors.append(f"recv after {self.reader.count} records: {e!r}")
        finally:
            if self.stop_on_eof:
                self._halt.set()

    def stop(self):
        self._halt.set()

    def join(self, timeout=STREAM_TIMEOUT):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.01, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


def stream_upgrade(path):
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: stream/1\r\n"
            b"Connection: Upgrade\r\n\r\n")


def stream_backend():
    """A ScriptedBackend for stream/1 upgrades; `.ends` maps a path to its Duplex."""
    ends = {}

    def script(conn):
        path = conn.recv_request().split(b" ", 2)[1].decode()
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: stream/1\r\n"
                  b"Connection: Upgrade\r\n\r\n")
        initial, conn._buf = conn._buf, b""
        if path == "/stream/once":     # echo one record (of 200 bytes), then wait for the EOF
            conn.send(recv_exact(conn.sock, HDR.size + 200, initial=initial))
            conn.wait_closed()
        else:
            ends[path] = Duplex(conn.sock, initial, stop_on_eof=True)
            ends[path].join(120)
    be = ScriptedBackend(script)
    be.ends = ends
    return be


def upgrade_once(port):
    """A new stream/1 tunnel: one record echoed, then a clean end both ways."""
    with Client(port) as c:
        resp = c.request(stream_upgrade("/stream/once"))
        if resp.status != 101:
            raise AssertionError(f"upgrade answered {resp.status_line}")
        rec = record(0, os.urandom(200))
        c.send(rec)
        if recv_exact(c.sock, len(rec), initial=c.buf) != rec:
            raise AssertionError("echoed record altered")
        c.shutdown_write()
        if wait_eof(c.sock) is None:
            raise AssertionError("no EOF after the echo")


class StreamTunnel:
    """A client stream/1 tunnel to /stream/<name> streaming records both ways."""

    def __init__(self, port, name):
        self.path, self.client = f"/stream/{name}", Client(port)
        resp = self.client.request(stream_upgrade(self.path))
        if resp.status != 101:
            raise AssertionError(f"{self.path}: {resp}")
        self.duplex = Duplex(self.client.sock, self.client.buf)


class WsStream(threading.Thread):
    """A python3-websockets session: numbered, checksummed messages (text and binary) to an
    echo server one at a time until stop(), then a close with 1000. split: binary only,
    an echo may come back in pieces (a terminated WebSocket frames each service read)."""

    def __init__(self, url, split=False):
        super().__init__(daemon=True)
        self.url, self.split, self.errors, self.times = url, split, [], []
        self.count, self.close_code, self.ws = 0, None, None
        self.started, self._halt = threading.Event(), threading.Event()
        self.start()

    def stop(self):
        self._halt.set()

    def run(self):
        try:
            asyncio.run(asyncio.wait_for(self._session(), 120))
        except BaseException as e:
            self.errors.append(repr(e))
        finally:
            self.started.set()

    async def _session(self):
        import websockets
        async with websockets.connect(self.url, max_size=None, close_timeout=5,
                                      ping_interval=None, compression=None) as ws:
            self.ws = ws
            self.started.set()
            while not self._halt.is_set():
                message = record(self.count, os.urandom(1 + self.count * 997 % 16384))
                if not self.split and self.count % 2 == 0:
                    message = message.hex()
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), STREAM_TIMEOUT)
                while self.split and len(echo) < len(message):
                    echo += await asyncio.wait_for(ws.recv(), STREAM_TIMEOUT)
                if echo != message:
                    raise AssertionError(f"message {self.count} came back altered")
                self.count += 1
                self.times.append(time.monotonic())
                await asyncio.sleep(0.002)
            await ws.close(code=1000, reason="done")
            self.close_code = ws.close_code


class Load:
    """`sessions` WebSocket sessions to /ws/<i>, `streams` stream/1 tunnels, and (churn)
    three threads opening new connections every few ms, all through `px`."""

    def __init__(self, px, backend, streams=4, sessions=2, churn=True):
        self.px, self.backend, self.errors, self.churn_times = px, backend, [], []
        self._halt = threading.Event()
        self.sessions = [WsStream(f"ws://127.0.0.1:{px.port}/ws/{i}") for i in range(sessions)]
        for s in self.sessions:
            if not s.started.wait(10) or s.errors:
                raise AssertionError(f"session did not start: {s.errors}")
        tag = os.urandom(4).hex()
        self.streams = [StreamTunnel(px.port, f"{tag}-{i}") for i in range(streams)]
        self.churners = [threading.Thread(target=self._churn, args=(k,), daemon=True)
                         for k in range(3 if churn else 0)]
        for t in self.churners:
            t.start()

    def _churn(self, i):
        while not self._halt.is_set():
            try:
                if i % 3 == 2:
                    upgrade_once(self.px.port)
                else:
                    r = get(self.px.admin_port, "/healthz") if i % 3 else get(self.px.port, "/web")
                    if r.status != 200 or (i % 3 == 0 and r.body != b"web"):
                        raise AssertionError(f"{r}")
            except Exception as e:
                self.errors.append(f"new connection #{i} ({('GET', 'admin', 'upgrade')[i % 3]})"
                                   f" at {time.monotonic():.3f}: {e!r}")
            self.churn_times.append(time.monotonic())
            i += 3
            time.sleep(0.003)

    def _ends(self):
        return [self.backend.ends.get(st.path) for st in self.streams]

    def counters(self):
        out = [s.count for s in self.sessions]
        for st, end in zip(self.streams, self._ends()):
            out += [st.duplex.reader.count, end.reader.count if end else 0]
        return out

    def progress(self, test, n=5, timeout=IO_TIMEOUT):
        """Every session and both directions of every tunnel move `n` messages on (failed
        new connections are reported by finish)."""
        start = self.counters()
        wait_for(lambda: all(b >= a + n for a, b in zip(start, self.counters())), timeout,
                 "progress", lambda: f"{start} -> {self.counters()}: {self.all_errors()}")
        test.assertEqual(self.all_errors(churn=False), [])

    def all_errors(self, churn=True):
        errs = (self.errors if churn else []) + [f"session {s.url}: {e}" for s in self.sessions
                                                 for e in s.errors]
        for st, end in zip(self.streams, self._ends()):
            errs += [f"client {st.path}: {e}" for e in st.duplex.errors]
            errs += [f"backend {st.path}: {e}" for e in (end.errors if end else ["missing"])]
        return errs

    def finish(self, test):
        """Stops everything; every message and record must have arrived exactly once."""
        self._halt.set()
        for t in self.churners:
            t.join(IO_TIMEOUT * 2)
        for x in self.sessions + [st.duplex for st in self.streams]:
            x.stop()
        for s in self.sessions:
            s.join(15)
            test.assertEqual((s.is_alive(), s.close_code), (False, 1000), s.errors)
        for st, end in zip(self.streams, self._ends()):
            test.assertTrue(st.duplex.join() and end.join(), f"{st.path} did not end")
            test.assertTrue(st.duplex.eof and end.eof, f"{st.path}: no clean EOF")
            test.assertEqual((st.duplex.sent, end.sent), (end.reader.count, st.duplex.reader.count),
                             f"{st.path}: records sent vs. received, each way")
            st.client.close()
        test.assertEqual(self.all_errors(), [])
        test.assertGreater(len(self.churn_times), 20 if self.churners else -1)

    def max_gaps(self, windows):
        """Per (start, end) window, the longest gap between consecutive messages of any
        stream (either direction of a tunnel, or a session's echoes) overlapping it."""
        series = [s.times for s in self.sessions] + [st.duplex.reader.times for st in self.streams]
        series += [end.reader.times for end in self._ends()]
        gaps = [0.0] * len(windows)
        for times in series:
            for w, (t0, t1) in enumerate(windows):
                i = max(1, bisect.bisect_left(times, t0))
                while i < len(times) and times[i - 1] <= t1:
                    gaps[w] = max(gaps[w], times[i] - times[i - 1])
                    i += 1
        return gaps
