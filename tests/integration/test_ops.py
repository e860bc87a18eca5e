"""Operating the process (docs/configuration.md "Signals", `access_log`, `pid_file`; docs/operations.md):
a log sink that never drains costs no request any time (lines are dropped and counted, and
the process still stops), SIGUSR1 reopens the log file after a rotation without losing a
line, the pid file is written once the listeners are open and removed at a clean exit (and
moved by a reload), and SIGTERM drains: listeners close at once, a response in flight
completes, tunnels go on until timeouts.shutdown_drain; a second signal ends everything."""

import os
import re
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import (STOP_TIMEOUT, Client, Proxy, ScriptedBackend, free_low_port, main,
                     make_config, metric_sum, ok_response, passive, reload_config,
                     serve_forever, wait_metric_sum)
from upgrade_support import open_ws_tunnel, recv_exact, upgrade_config, wait_eof, wait_until


def all_tunnels_done(px):
    wait_metric_sum(px, "switchyard_tunnels_active", 0)
    px.assert_idle()


class StuckSink(unittest.TestCase):
    def test_fifo_nobody_reads_costs_no_latency_and_lines_are_dropped_and_counted(self):
        n = 4000
        pad = "p" * 480          # long targets: about 600 bytes a line, 2.4 MiB in all
        with tempfile.TemporaryDirectory(prefix="switchyard-fifo-") as d:
            fifo = os.path.join(d, "access.fifo")
            os.mkfifo(fifo)
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # open, never read
            try:
                with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"f"))) as be, \
                        Proxy(make_config([be.address],
                                          access_log={"path": fifo, "format": "text"})) as px:
                    worst, start = 0.0, time.monotonic()
                    with Client(px.port, timeout=2.0) as c:
                        for i in range(n):
                            t = time.monotonic()
                            resp = c.request(b"GET /%05d/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                                             % (i, pad.encode()))
                            worst = max(worst, time.monotonic() - t)
                            self.assertEqual((resp.status, resp.body), (200, b"f"), i)
                            self.assertLess(time.monotonic() - start, 50,
                                            f"only {i} requests in 50 s")
                    self.assertLess(worst, 1.0, "a request waited on the log sink")
                    wait_until(lambda: metric_sum(
                        px.metrics(), "switchyard_access_log_dropped_total") > 0, 3)
                    dropped = metric_sum(px.metrics(), "switchyard_access_log_dropped_total")
                    self.assertGreater(dropped, 0, "lines past the 1 MiB buffer must be "
                                                   "dropped and counted")
                    self.assertLessEqual(dropped, n)
                    px.assert_idle()
                    t = time.monotonic()
                    status = px.terminate()
                    self.assertEqual(status, 0, "exit status with a stuck log sink "
                                                "(None: still running after 10 s)")
                    self.assertLess(time.monotonic() - t, STOP_TIMEOUT)
            finally:
                os.close(reader)


class Reopen(unittest.TestCase):
    def test_sigusr1_reopens_the_log_file_without_losing_a_line(self):
        with tempfile.TemporaryDirectory(prefix="switchyard-log-") as d:
            path = os.path.join(d, "access.log")
            rotated = path + ".1"
            with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"r"))) as be, \
                    Proxy(make_config([be.address], access_log={"path": path})) as px:
                def one(target):
                    with Client(px.port) as c:
                        self.assertEqual(c.request(b"GET " + target.encode()
                                                   + b" HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)

                one("/before-rotation")
                self.assertTrue(wait_until(lambda: "/before-rotation" in read(path), 5))
                os.rename(path, rotated)
                one("/after-rename")            # the old file is still the one open

                done, failures = threading.Event(), []

                def traffic():
                    try:
                        with Client(px.port) as c:
                            for i in range(300):
                                r = c.request(b"GET /during/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                                if r.status != 200:
                                    failures.append(r)
                                time.sleep(0.002)
                    except Exception as e:
                        failures.append(e)
                    finally:
                        done.set()

                t = threading.Thread(target=traffic, daemon=True)
                t.start()
                time.sleep(0.2)
                px.proc.send_signal(signal.SIGUSR1)
                self.assertTrue(wait_until(lambda: os.path.exists(path), 5),
                                "SIGUSR1 did not create a new file at the original path")
                self.assertTrue(done.wait(20))
                self.assertEqual(failures, [])
                self.assertIsNone(px.proc.poll(), "SIGUSR1 ended the process")
                one("/after-reopen")
                expected = 1 + 1 + 300 + 1
                wait_until(lambda: len(lines(path)) + len(lines(rotated)) >= expected, 5)
                old, new = lines(rotated), lines(path)
                self.assertEqual(len(old) + len(new), expected, (old[-3:], new[-3:]))
                targets = [re.search(r'"GET (\S+) HTTP', x).group(1) for x in old + new]
                self.assertEqual(sorted(targets), sorted(
                    ["/before-rotation", "/after-rename", "/after-reopen"]
                    + [f"/during/{i}" for i in range(300)]))
                self.assertIn("/before-rotation", "".join(old))
                self.assertIn("/after-rename", "".join(old))
                self.assertIn("/after-reopen", "".join(new))
                self.assertNotIn("/after-reopen", "".join(old))
                px.assert_idle()

    def test_reload_moves_the_log_to_a_new_path_and_an_unopenable_path_fails_it(self):
        with tempfile.TemporaryDirectory(prefix="switchyard-log-") as d:
            first, second = os.path.join(d, "first.log"), os.path.join(d, "second.log")
            with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"r"))) as be:
                def cfg(path):
                    return make_config([be.address], access_log={"path": path})

                def one(target):
                    with Client(px.port) as c:
                        self.assertEqual(c.request(b"GET " + target.encode()
                                                   + b" HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                with Proxy(cfg(first)) as px:
                    one("/one")
                    self.assertTrue(wait_until(lambda: "/one" in read(first), 5))
                    reload_config(px, cfg(second))
                    one("/two")
                    self.assertTrue(wait_until(lambda: "/two" in read(second), 5),
                                    "no line in the new log file")
                    reload_config(px, cfg(os.path.join(d, "no", "such", "dir.log")),
                                  result="failed")
                    one("/three")
                    self.assertTrue(wait_until(lambda: "/three" in read(second), 5),
                                    "a failed reload moved the log")
                    self.assertEqual([x for x in lines(first) if "GET /" in x and "/one" not in x],
                                     [])
                    px.assert_idle()

    def test_sigusr1_with_the_log_on_stdout_is_harmless(self):
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], access_log={"path": "-"})) as px:
            px.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
            self.assertIsNone(px.proc.poll(), "SIGUSR1 ended the process")
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
            self.assertTrue(wait_until(lambda: '"GET /x HTTP/1.1" 200' in px.stdout(), 5))
            px.assert_idle()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def lines(path):
    text = read(path)
    return text.split("\n")[:-1] if text else []


class PidFile(unittest.TestCase):
    def test_pid_file_written_once_listening_moved_by_reload_and_removed_at_exit(self):
        port = free_low_port()
        with tempfile.TemporaryDirectory(prefix="switchyard-pid-") as d:
            first, second = os.path.join(d, "first.pid"), os.path.join(d, "second.pid")
            seen = {}

            def watch():
                """Reads the pid file the moment it appears, and connects at once."""
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    if os.path.exists(first):
                        seen["content"] = read(first)
                        try:
                            socket.create_connection(("127.0.0.1", port), timeout=2).close()
                            seen["connect"] = "ok"
                        except OSError as e:
                            seen["connect"] = repr(e)
                        return
                    time.sleep(0.0005)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            with ScriptedBackend() as be:
                def cfg(pid_path):
                    return make_config([be.address], listen=[{"address": f"127.0.0.1:{port}"}],
                                       pid_file=pid_path)
                with Proxy(cfg(first)) as px:
                    watcher.join(10)
                    self.assertIn("content", seen, "no pid file appeared")
                    self.assertRegex(seen["content"], r"^\d+\n?$",
                                     "the pid file was seen incomplete (not atomic)")
                    self.assertEqual(int(seen["content"]), px.proc.pid)
                    self.assertEqual(seen["connect"], "ok",
                                     "the pid file appeared before the listener accepted")
                    reload_config(px, cfg(second))
                    self.assertTrue(wait_until(lambda: os.path.exists(second), 3))
                    self.assertEqual(int(read(second)), px.proc.pid)
                    self.assertFalse(os.path.exists(first), "the old pid file was kept")
                    status = px.terminate()
                    self.assertEqual(status, 0)
                    self.assertFalse(os.path.exists(second), "pid file left after a clean exit")
                    self.assertEqual(os.listdir(d), [], "files left behind")


class Drain(unittest.TestCase):
    def test_sigterm_closes_listeners_completes_in_flight_and_ends_tunnels_at_the_deadline(self):
        drain = 2.5
        chunks, chunk = 10, b"0123456789" * 1000
        arrived = threading.Event()

        def slow(conn):
            """/slow: a 100,000-byte body over one second; anything else: 200 at once."""
            while True:
                req = conn.recv_request()
                if not req.startswith(b"GET /slow "):
                    conn.send(ok_response(b"quick"))
                    continue
                arrived.set()
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (chunks * len(chunk)))
                for _ in range(chunks):
                    time.sleep(0.1)
                    conn.send(chunk)

        with ScriptedBackend(slow) as web, ScriptedBackend(passive, keep_open=True) as tb:
            ups = {"web": {"servers": [web.address]}, "tun": {"servers": [tb.address]}}
            routes = [{"name": "chat", "match": {"path_prefix": "/chat"}, "upstream": "tun",
                       "upgrade": {"allow": ["websocket"]}},
                      {"name": "web", "match": {"path_prefix": "/"}, "upstream": "web"}]
            cfg = make_config([], upstreams=ups, routes=routes,
                              timeouts={"shutdown_drain": f"{int(drain * 1000)}ms"},
                              access_log={"path": "-"})
            with Proxy(cfg) as px:
                tc, tbc = open_ws_tunnel(self, px, tb)
                idle = Client(px.port)
                self.assertEqual(idle.request(b"GET /q HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
                slow_client = Client(px.port, timeout=10)
                slow_client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(arrived.wait(5))
                result = {}

                def read_slow():
                    try:
                        result["resp"] = slow_client.read_response()
                        result["closed"] = slow_client.is_closed(3)
                    except Exception as e:
                        result["error"] = e

                reader = threading.Thread(target=read_slow, daemon=True)
                reader.start()

                t0 = time.monotonic()
                px.sigterm()
                refused_after = None
                while time.monotonic() - t0 < 1.0:
                    try:
                        socket.create_connection(("127.0.0.1", px.port), timeout=1).close()
                    except (ConnectionRefusedError, ConnectionResetError):
                        # Reset: the SYN reached the listener's queue just before it closed
                        # (the kernel resets what was never accepted). Either way: not served.
                        refused_after = time.monotonic() - t0
                        break
                    time.sleep(0.01)
                self.assertIsNotNone(refused_after, "new connections still accepted 1 s "
                                                    "into the drain")
                self.assertLess(refused_after, 0.5)
                self.assertTrue(idle.is_closed(1.5), "idle keep-alive connection kept open")
                idle.close()

                # the tunnel keeps going during the drain
                for i, at in enumerate((0.5, 1.5)):
                    time.sleep(max(0.0, at - (time.monotonic() - t0)))
                    tc.send(b"up %d" % i)
                    self.assertEqual(recv_exact(tbc.sock, 4), b"up %d" % i)
                    tbc.send(b"down %d" % i)
                    self.assertEqual(recv_exact(tc.sock, 6), b"down %d" % i)

                reader.join(5)
                self.assertNotIn("error", result, result)
                resp = result["resp"]
                self.assertEqual((resp.status, len(resp.body)), (200, chunks * len(chunk)))
                self.assertEqual(resp.body, chunk * chunks)
                self.assertTrue(result["closed"], "connection kept open after its response "
                                                  "during the drain")
                slow_client.close()

                took = wait_eof(tc.sock, drain + 3 - (time.monotonic() - t0))
                self.assertIsNotNone(took, "tunnel not closed at the drain deadline")
                ended = time.monotonic() - t0
                self.assertGreater(ended, drain - 0.5, "tunnel closed before shutdown_drain")
                self.assertLess(ended, drain + 1.5)
                self.assertIsNotNone(wait_eof(tbc.sock, 2), "upstream side of the tunnel "
                                                            "left open")
                tc.close()
                tbc.close()
                try:
                    status = px.proc.wait(5)
                except Exception:
                    status = None
                self.assertEqual(status, 0)
                self.assertLess(time.monotonic() - t0, drain + 4)
                out = px.stdout()
                self.assertRegex(out, r'(?m)^.*"GET /slow HTTP/1\.1" 200 in=\d+ out=(\d+) .* ok$')
                out_bytes = int(re.search(r'"GET /slow HTTP/1\.1" 200 in=\d+ out=(\d+)',
                                          out).group(1))
                self.assertGreater(out_bytes, chunks * len(chunk))
                self.assertRegex(out, r"(?m)^.*route=chat .*tunnel_shutdown proto=websocket$")

    def test_second_signal_closes_everything_at_once(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                Proxy(upgrade_config([be.address], ["websocket"],
                                     timeouts={"shutdown_drain": "30s"})) as px:
            c, bc = open_ws_tunnel(self, px, be)
            px.sigterm()
            time.sleep(0.3)
            c.send(b"still")
            self.assertEqual(recv_exact(bc.sock, 5), b"still")
            t = time.monotonic()
            px.proc.send_signal(signal.SIGTERM)
            self.assertIsNotNone(wait_eof(c.sock, 2), "tunnel kept after a second signal")
            self.assertIsNotNone(wait_eof(bc.sock, 2))
            self.assertEqual(px.proc.wait(3), 0)
            self.assertLess(time.monotonic() - t, 3)
            c.close()
            bc.close()


if __name__ == "__main__":
    main()
