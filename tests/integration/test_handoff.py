"""SIGUSR2 (docs/operations.md): the binary now on disk takes over the listeners (no attempt
refused or reset) and every plain-TCP tunnel (nothing lost, duplicated or reordered, half-
closed directions and queued bytes included); the old process exits 0 and pid_file names
the new one. A failing new binary or config leaves the old process serving everything.
Terminated WebSockets stay in the old process until they end or timeouts.shutdown_drain.
NOTIFY_SOCKET gets READY=1, then MAINPID=<new pid> and READY=1 from the new process."""

import array
import contextlib
import os
import random
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

from e2e_support import WsEchoServer
from handoff_support import (HandoffProxy, Load, WsStream, alive, fd_list, rss_kib,
                             stream_backend, wait_for)
from harness import (SWITCHYARD_BIN, Client, ScriptedBackend, get, main, make_config,
                     ok_response, passive, serve_forever, wait_metric_sum)
from upgrade_support import open_ws_tunnel, recv_exact, upgrade_config, wait_eof, wait_until

RSS_SLACK_KIB = 8 * 1024     # the final process may hold this much more than a fresh one


def web_backend(idle_timeout=None):
    """200 "web" to every request ("slow" after 1 s to GET /slow); idle keep-alive
    connections kept `idle_timeout` s."""
    serve = serve_forever(lambda c, r: ok_response(b"web") if not r.startswith(b"GET /slow ")
                          else time.sleep(1) or ok_response(b"slow"))

    def script(conn):
        conn.sock.settimeout(idle_timeout or 5)
        serve(conn)
    return ScriptedBackend(script)


def raw_echo(conn):
    conn.sock.settimeout(60)
    while data := conn.sock.recv(1 << 16):
        conn.sock.sendall(data)


def service_config(chat, stream, web, term=None, keepalive=0, **sections):
    """/ws -> chat (websocket), /stream -> stream (stream/1), /term -> term (terminated
    WebSocket to a TCP service), anything else -> web."""
    def rt(name, allow=None, **up):
        r = {"name": name, "match": {"path_prefix": "/" if name == "web" else "/" + name},
             "upstream": name}
        return dict(r, upgrade=dict(allow=allow, **up)) if allow else r
    routes = [rt("ws", ["websocket"]), rt("stream", ["stream/1"])]
    ups = {"ws": {"servers": [chat]}, "stream": {"servers": [stream]},
           "web": {"servers": [web], "keepalive": keepalive}}
    if term:
        routes.append(rt("term", ["websocket"], terminate="websocket"))
        ups["term"] = {"servers": [term]}
    return make_config([], routes=routes + [rt("web")], upstreams=ups, **sections)


@contextlib.contextmanager
def services(copy_binary=False, **sections):
    """The four upstreams and the proxy in front of them: yields (proxy, stream backend)."""
    with WsEchoServer() as chat, stream_backend() as sb, web_backend() as web, \
            ScriptedBackend(raw_echo) as term, \
            HandoffProxy(service_config(chat.address, sb.address, web.address, term.address,
                                        **sections), copy_binary=copy_binary) as px:
        yield px, sb


def settle(px):
    px.wait_metric("switchyard_tunnels_active", 0)
    px.wait_metric("switchyard_connections_active", 0)


def children(pid):
    """Pids whose parent is `pid`, zombies included."""
    def parent(entry):
        with contextlib.suppress(OSError, IndexError), open(f"/proc/{entry}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    return [int(e) for e in filter(str.isdigit, os.listdir("/proc")) if parent(e) == pid]


def tunnel_log(px, path, end="eof"):
    """(in, out) of the access-log line ending the tunnel of `path` (route1, websocket)."""
    rx = re.compile(r'"GET ' + re.escape(path) + r' HTTP/1\.1" 101 in=(\d+) out=(\d+) \d+ms '
                    r"route=route1 upstream=app server=\S+ tunnel_" + end + " proto=websocket$", re.M)
    wait_for(lambda: rx.search(px.stdout()), 5, f"tunnel_eof line for {path}", px.stdout)
    return tuple(int(g) for g in rx.search(px.stdout()).groups())


class HandoffUnderLoad(unittest.TestCase):
    def test_three_handoffs_in_a_row_lose_nothing_and_leak_nothing(self):
        with services() as (px, sb):
            # The same work in the fresh process first: its descriptors and memory after.
            warm = Load(px, sb, streams=6, sessions=3)
            warm.progress(self)
            time.sleep(1.0)
            warm.finish(self)
            settle(px)
            samples = []      # the lowest count: the admin side of a scrape closes too
            for _ in range(10):
                time.sleep(0.05)
                samples.append(fd_list(px.pid))
            base_fds, base_rss = min(samples, key=len), rss_kib(px.pid)

            load = Load(px, sb, streams=6, sessions=3)
            load.progress(self)
            for _ in range(3):
                px.handoff()
                load.progress(self)
                time.sleep(0.3)
            self.assertEqual(len(set(px.pids)), 4, px.pids)
            gaps = load.max_gaps(px.handoffs)
            sys.stderr.write(
                f"\nhandoff pause: {max(gaps) * 1000:.1f} ms, the longest gap between "
                "consecutive messages of a streaming tunnel during a hand-off (per hand-off: "
                f"{', '.join(f'{g * 1000:.1f}' for g in gaps)} ms; {len(load.sessions)} "
                f"WebSocket sessions, {len(load.streams)} stream/1 tunnels both ways, "
                f"{len(load.churn_times)} new connections, "
                f"{sum(t0 <= t <= t1 for t in load.churn_times for t0, t1 in px.handoffs)} "
                "of them during the hand-offs)\n")
            self.assertLess(max(gaps), 5.0)
            load.finish(self)
            settle(px)
            sys.stderr.write(f"handoff resources: final process {len(fd_list(px.pid))} fds, VmRSS "
                             f"{rss_kib(px.pid)} KiB; fresh one {len(base_fds)} fds, {base_rss} KiB\n")
            if not wait_until(lambda: len(fd_list(px.pid)) == len(base_fds), 5):
                self.fail(f"final process: {fd_list(px.pid)}\nfresh one: {base_fds}")
            self.assertLess(rss_kib(px.pid), base_rss + RSS_SLACK_KIB,
                            f"VmRSS (KiB) of the final process vs. a fresh one's {base_rss}")

    def test_two_workers(self):
        with services(workers=2) as (px, sb):
            load = Load(px, sb, streams=6, sessions=2)
            load.progress(self)
            for _ in range(2):
                px.handoff()
                load.progress(self)
            load.finish(self)
            settle(px)


class FailedHandoff(unittest.TestCase):
    def failed_handoff(self, px, load):
        """SIGUSR2 must fail (a `hand-off failed` line) and change nothing."""
        pid, mark = px.pid, len(px.stderr())
        os.kill(pid, signal.SIGUSR2)
        wait_for(lambda: "hand-off failed" in px.stderr()[mark:], 20,
                 "a 'hand-off failed' line", lambda: px.stderr()[mark:])
        self.assertEqual(px.read_pid(), pid)
        self.assertTrue(alive(pid))
        load.progress(self)
        self.assertEqual(get(px.port, "/web").body, b"web")
        self.assertEqual(get(px.admin_port, "/healthz").status, 200)
        self.assertGreaterEqual(px.metric("switchyard_tunnels_active"),
                                len(load.streams) + len(load.sessions))
        # the failed child was reaped: nothing left behind
        self.assertTrue(wait_until(lambda: children(pid) == [], 5), children(pid))

    def test_a_new_binary_that_exits_at_once_leaves_the_service_intact(self):
        with services(copy_binary=True) as (px, sb):
            load = Load(px, sb, streams=2, sessions=1)
            load.progress(self)
            px.replace_binary(b"#!/bin/sh\nexit 1\n")
            self.failed_handoff(px, load)
            self.failed_handoff(px, load)     # again: the first failure left no state behind
            with open(SWITCHYARD_BIN, "rb") as f:
                px.replace_binary(f.read())
            px.handoff()
            load.progress(self)
            load.finish(self)

    def test_a_new_binary_that_never_gets_ready_leaves_the_service_intact(self):
        with services(copy_binary=True) as (px, sb):
            load = Load(px, sb, streams=2, sessions=1)
            load.progress(self)
            # ready within 10 s or killed; "$@" keeps the config path in its command line
            px.replace_binary(b"#!/bin/sh\nexec /usr/bin/python3 -c 'import time; "
                              b"time.sleep(30)' \"$@\"\n")
            self.failed_handoff(px, load)
            load.finish(self)

    def test_a_config_now_invalid_leaves_the_service_intact(self):
        with services() as (px, sb):
            load = Load(px, sb, streams=2, sessions=1)
            load.progress(self)
            px.write_config("listen: [ {address: 127.0.0.1:0\nroutes: {\n", raw=True)
            self.failed_handoff(px, load)
            px.write_config(px.config_text)
            px.handoff()
            load.progress(self)
            load.finish(self)


class TunnelState(unittest.TestCase):
    def test_half_closed_tunnels_survive_exactly(self):
        big = os.urandom(300_000)
        with ScriptedBackend(passive, keep_open=True) as be, \
                HandoffProxy(upgrade_config([be.address], ["websocket"], access_log=True)) as px:
            # a: the client ended its direction; b: the backend ended its direction.
            ca, ba = open_ws_tunnel(self, px, be, 0, path=b"/a")
            cb, bb = open_ws_tunnel(self, px, be, 1, path=b"/b")
            ca.send(b"A-before")
            ca.shutdown_write()
            self.assertEqual(recv_exact(ba.sock, 8), b"A-before")
            self.assertIsNotNone(wait_eof(ba.sock), "backend a did not see the client's EOF")
            bb.send(b"B-before")
            bb.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_exact(cb.sock, 8), b"B-before")
            self.assertIsNotNone(wait_eof(cb.sock), "client b did not see the backend's EOF")

            px.handoff()

            # The open direction still carries bytes; the ended one still reads EOF (not a
            # reset, no byte); then the other direction ends too and the tunnel closes.
            for sender, receiver, ended in ((ba, ca.sock, ba.sock), (cb, bb.sock, cb.sock)):
                sender.send(big)
                self.assertEqual(recv_exact(receiver, len(big)), big)
                ended.settimeout(1)
                self.assertEqual(ended.recv(1), b"")
                sender.sock.shutdown(socket.SHUT_WR)
                self.assertIsNotNone(wait_eof(receiver), "no EOF at the end")
            # counted from the start: bytes before and after the hand-off
            self.assertEqual(tunnel_log(px, "/a"), (8, len(big)))
            self.assertEqual(tunnel_log(px, "/b"), (len(big), 8))
            for s in (ca, cb, ba, bb):
                s.close()
            settle(px)

    def test_the_new_process_counts_handed_over_tunnels_under_their_labels(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                HandoffProxy(upgrade_config([be.address], ["websocket"])) as px:
            c, bc = open_ws_tunnel(self, px, be)
            c.send(b"12345")
            self.assertEqual(recv_exact(bc.sock, 5), b"12345")
            px.handoff()
            labels = {"route": "route1", "protocol": "websocket"}
            wait_metric_sum(px, "switchyard_upstream_tunnels_active", 1, upstream="app")
            wait_metric_sum(px, "switchyard_tunnels_active", 1, **labels)
            wait_metric_sum(px, "switchyard_tunnels_adopted_total", 1, **labels)
            c.send(b"678")
            self.assertEqual(recv_exact(bc.sock, 3), b"678")
            c.close()
            bc.close()
            wait_metric_sum(px, "switchyard_tunnels_active", 0, **labels)
            wait_metric_sum(px, "switchyard_tunnels_closed_total", 1, reason="eof", **labels)
            # Counters are per process: the old one counted the 5 bytes before the hand-off
            # (its tunnel ended "handed_off"), this one counts only what it carried, so a
            # sum over both (Prometheus' increase() across the reset) counts each byte once.
            wait_metric_sum(px, "switchyard_tunnel_bytes_total", 3, direction="client_to_upstream",
                            **labels)

    def test_queued_bytes_survive_exactly(self):
        block = 1 << 16

        def data(k, way):       # block k of a direction's stream (deterministic)
            return random.Random(k * 2 + way).randbytes(block)

        def push(sock, way, state):     # until told to stop; then a FIN
            try:
                while not state.get("stop"):
                    sock.sendall(data(state["sent"], way))
                    state["sent"] += 1
                sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                state["error"] = repr(e)

        def check(sock, way):           # every block in order, then EOF: how many
            buf, k = bytearray(), 0
            while chunk := sock.recv(1 << 20):
                buf += chunk
                while len(buf) >= block:
                    self.assertTrue(buf[:block] == data(k, way), f"block {k} altered")
                    del buf[:block]
                    k += 1
            self.assertEqual(len(buf), 0)
            return k

        for splice in ("auto", "off"):
            with self.subTest(splice=splice), ScriptedBackend(passive, keep_open=True) as be, \
                    HandoffProxy(upgrade_config([be.address], ["websocket"], access_log=True,
                                                tunnel={"splice": splice})) as px:
                c, bc = open_ws_tunnel(self, px, be)
                states = [{"sent": 0}, {"sent": 0}]
                for s in (c.sock, bc.sock):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
                    s.settimeout(30)
                pushers = [threading.Thread(target=push, args=a, daemon=True)
                           for a in ((bc.sock, 0, states[0]), (c.sock, 1, states[1]))]
                for t in pushers:
                    t.start()
                # Nobody reads: wait until both pushers are stuck (the proxy holds bytes).
                last, still_since, deadline = None, time.monotonic(), time.monotonic() + 30
                while time.monotonic() - still_since < 0.5:
                    if [st["sent"] for st in states] != last:
                        last, still_since = [st["sent"] for st in states], time.monotonic()
                    self.assertLess(time.monotonic(), deadline, "the pushers never stalled")
                    time.sleep(0.05)
                for st in states:
                    st["stop"] = True

                px.handoff()

                self.assertEqual(check(c.sock, 0), states[0]["sent"], "blocks to the client")
                self.assertEqual(check(bc.sock, 1), states[1]["sent"], "blocks to the backend")
                for t in pushers:
                    t.join(5)
                self.assertEqual([st.get("error") for st in states], [None, None])
                self.assertEqual(tunnel_log(px, "/chat"), (states[1]["sent"] * block,
                                                          states[0]["sent"] * block))
                c.close()
                bc.close()
                settle(px)

    def test_the_idle_deadline_carries_over(self):
        with ScriptedBackend(passive, keep_open=True) as be, \
                HandoffProxy(upgrade_config([be.address], ["websocket"], access_log=True,
                                            timeouts={"tunnel_idle": "3s"})) as px:
            c, bc = open_ws_tunnel(self, px, be)
            c.send(b"x")
            self.assertEqual(recv_exact(bc.sock, 1), b"x")
            last_byte = time.monotonic()
            time.sleep(2)
            px.handoff()
            # closed 3 s after the last byte (a deadline restarted by the hand-off: 5 s)
            self.assertIsNotNone(wait_eof(c.sock, 6), "the idle tunnel was not closed")
            self.assertLess(time.monotonic() - last_byte, 4.6)
            self.assertEqual(tunnel_log(px, "/chat", "idle_timeout"), (1, 0))
            c.close()
            bc.close()
            settle(px)


class StaysInTheOldProcess(unittest.TestCase):
    def test_terminated_websockets_stay_until_they_end_or_the_drain(self):
        with services(timeouts={"shutdown_drain": "3s"}) as (px, sb):
            load = Load(px, sb, streams=1, sessions=1, churn=False)
            a, b = (WsStream(f"ws://127.0.0.1:{px.port}/term/{n}", split=True) for n in "ab")
            for s in (a, b):
                self.assertTrue(s.started.wait(10) and not s.errors, s.errors)
            old, new = px.handoff(wait_old=False)
            load.progress(self)
            self.assertTrue(alive(old), "the old process left while holding terminated sessions")
            c = WsStream(f"ws://127.0.0.1:{px.port}/term/c", split=True)   # in the new one
            for s in (a, b, c):
                n = s.count + 20
                wait_until(lambda: s.count >= n or s.errors or not s.is_alive(), 5)
                self.assertEqual(s.errors, [])
                self.assertGreaterEqual(s.count, n)
            a.stop()
            a.join(10)
            self.assertEqual((a.close_code, a.errors), (1000, []))
            self.assertTrue(alive(old), "the old process left while holding a terminated session")
            # b is closed at the drain deadline (1001, going away); the old process exits 0
            px.expect_exit(old, 3 + 10)
            b.join(10)
            self.assertFalse(b.is_alive())
            self.assertEqual(b.ws.close_code, 1001, b.errors)
            load.progress(self)
            c.stop()
            c.join(10)
            self.assertEqual((c.close_code, c.errors), (1000, []))
            load.finish(self)
            settle(px)


class Systemd(unittest.TestCase):
    def test_sd_notify_exchanges_in_flight_and_idle_pooled_connections(self):
        with tempfile.TemporaryDirectory(prefix="notify-") as d, \
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns, \
                WsEchoServer() as chat, stream_backend() as sb, web_backend(30) as web:
            ns.bind(os.path.join(d, "notify"))
            ns.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            cfg = service_config(chat.address, sb.address, web.address, keepalive=8)
            with HandoffProxy(cfg, env={"NOTIFY_SOCKET": os.path.join(d, "notify")}) as px:
                self.assertEqual(self.notified(ns, ["READY=1"]), px.pid)
                slow = Client(px.port)       # an exchange in flight during the hand-off
                slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                wait_for(lambda: web.accepted == 1 and web.connections[0].requests, 5, "/slow")
                self.assertEqual(get(px.port, "/web").body, b"web")
                time.sleep(0.3)
                self.assertFalse(web.connections[1].closed_by_peer, "not pooled: nothing to check")
                old, new = px.handoff()
                self.assertEqual(self.notified(ns, [f"MAINPID={new}", "READY=1"]), new,
                                 "the datagram's sender")
                self.assertEqual(slow.read_response().body, b"slow")
                # the idle pooled upstream connections were closed, not handed over
                self.assertTrue(web.connections[1].wait_closed(5) and web.connections[0].wait_closed(5))
                self.assertEqual(get(px.port, "/web").body, b"web")
                self.assertEqual(web.accepted, 3)
                slow.close()

    def notified(self, ns, lines, timeout=10.0):
        """Reads datagrams until one holds every line in `lines`; returns its sender pid."""
        deadline, seen = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            ns.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, anc, _, _ = ns.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                break
            seen.append(data)
            if all(line in data.decode().split("\n") for line in lines):
                creds = [c for lv, k, c in anc if (lv, k) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)]
                self.assertTrue(creds, "no sender credentials on the datagram")
                return array.array("i", creds[0][:12])[0]
        self.fail(f"no datagram with {lines} within {timeout}s; got {seen}")


if __name__ == "__main__":
    main()
