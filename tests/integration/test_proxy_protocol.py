"""The PROXY protocol (HAProxy's specification, versions 1 and 2; docs/configuration.md
`listen[].proxy_protocol` and `upstreams.<name>.proxy_protocol`).

A listener with `proxy_protocol: true` reads a v1 or v2 header before anything else (TLS
included) and uses the client address it carries in X-Forwarded-For and the access log; a
missing, invalid or slow header closes the connection without a response, counted in
switchyard_proxy_protocol_errors_total. A listener without it treats a header as a bad request.
An upstream with `proxy_protocol: v1 | v2` gets a header first on every connection (plain
exchanges, forwarded WebSocket tunnels, terminate mode), naming the client; such connections
are never reused; active health checks send LOCAL (v2) or UNKNOWN (v1).

Headers are written here from the specification, byte by byte; raw backends record the exact
bytes they receive first. HAProxy (Debian's haproxy, `mode tcp`, `send-proxy` and
`send-proxy-v2`) is the real peer in front: it must be installed (this file fails, not skips,
without it)."""

import json
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (Client, PeerClosed, Proxy, ScriptedBackend, free_low_port, main,
                     make_config, ok_response, passive, serve_forever)
from terminate_support import WsClient
from test_tls import Pki, run
from upgrade_support import (finish, recv_exact, strip_connection_close, switching, wait_eof,
                             wait_until, ws_request)

HAPROXY = "/usr/sbin/haproxy"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"                      # §2.2: the v2 signature
V2_LOCAL = SIG + b"\x20\x00\x00\x00"                 # version 2, LOCAL, UNSPEC, no address
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"
ERRORS = "switchyard_proxy_protocol_errors_total"


# --------------------------------------------------------------------------- headers


def v1(src, dst, sport, dport):
    """A v1 line (§2.1) naming the given ends."""
    proto = b"TCP6" if ":" in src else b"TCP4"
    return b"PROXY %s %s %s %d %d\r\n" % (proto, src.encode(), dst.encode(), sport, dport)


def v2(src, dst, sport, dport, tlvs=b""):
    """A v2 header (§2.2): PROXY command, STREAM, the addresses and ports, then `tlvs`."""
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    body = (socket.inet_pton(fam, src) + socket.inet_pton(fam, dst)
            + struct.pack("!HH", sport, dport) + tlvs)
    fam_byte = 0x21 if fam == socket.AF_INET6 else 0x11
    return SIG + bytes([0x21, fam_byte]) + struct.pack("!H", len(body)) + body


def v2_raw(ver_cmd, fam, body):
    return SIG + bytes([ver_cmd, fam]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


# --------------------------------------------------------------------------- backends


def take(conn, n):
    """Exactly n bytes from a BackendConnection (kept in its .received too)."""
    while len(conn._buf) < n:
        conn._buf += conn._recv_more()
    out, conn._buf = conn._buf[:n], conn._buf[n:]
    return out


def read_proxy_header(conn):
    """The PROXY header a connection starts with, as exact bytes: a v1 line up to its CRLF,
    or a v2 header's 16 bytes and its stated length. Whatever else a connection starts with is
    returned up to its first CRLF (and then fails the test's comparison)."""
    first = take(conn, 1)
    if first != b"\r":
        return first + conn.recv_until(b"\r\n")
    fixed = first + take(conn, 15)
    if fixed[:12] != SIG:
        return fixed
    return fixed + take(conn, struct.unpack("!H", fixed[14:16])[0])


def pp_serve(respond=None):
    """A script for a server behind `proxy_protocol`: the header first (kept as
    conn.proxy_header), then requests answered as serve_forever does."""
    respond = respond or (lambda c, r: ok_response())

    def script(conn):
        conn.proxy_header = read_proxy_header(conn)
        serve_forever(respond)(conn)
    return script


# --------------------------------------------------------------------------- configs and logs


def config(servers, listen_pp=True, upstream_pp=None, routes=None, extra_listeners=(), **sections):
    """One listener (proxy_protocol as given), one upstream `app`, JSON access log."""
    up = {"servers": list(servers)}
    if upstream_pp is not None:
        up["proxy_protocol"] = upstream_pp
    listen = [{"address": "127.0.0.1:0", "proxy_protocol": listen_pp}] + list(extra_listeners)
    return make_config(servers, listen=listen, upstreams={"app": up}, routes=routes,
                       access_log={"path": "-", "format": "json"}, **sections)


def log_records(px):
    out = []
    for line in px.stdout().split("\n")[:-1]:
        if line.strip():
            out.append(json.loads(line))
    return out


def wait_record(px, target, timeout=5.0):
    """The JSON access-log record of the exchange for `target`."""
    def find():
        for rec in log_records(px):
            if rec.get("target") == target and rec.get("event") == "exchange":
                return rec
        return None
    rec = wait_until(find, timeout)
    if rec is None:
        raise AssertionError(f"no access-log record for {target}; log:\n{px.stdout()[-2000:]}")
    return rec


def errors(px):
    return px.metric(ERRORS)


def connect(port, source="127.0.0.1"):
    s = socket.socket()
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_without_bytes(sock, timeout):
    """True when the peer closes within `timeout` having sent nothing at all."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1 << 16)
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
    if data:
        raise AssertionError(f"the proxy answered: {data[:200]!r}")
    return True


def backend_request(be, path, timeout=5.0):
    """The one request for `path` any connection of ScriptedBackend `be` received (the proxy
    may have reused a pooled connection for it)."""
    target = b" " + path.encode() + b" HTTP/1.1"

    def find():
        return [r for c in list(be.connections) for r in list(c.requests)
                if r.split(b"\r\n", 1)[0].endswith(target)]
    got = wait_until(find, timeout)
    if len(got) != 1:
        raise AssertionError(f"{len(got)} requests for {path} reached the backend")
    return got[0]


def get_request(path):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def forwarded(path, client, proto=b"http"):
    """What the backend must receive for get_request(path) from `client`."""
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + client.encode()
            + b"\r\nX-Forwarded-Proto: " + proto + b"\r\n\r\n")


# --------------------------------------------------------------------------- listeners


class Listener(unittest.TestCase):
    def exchange(self, px, be, header, path, client):
        """header + a GET on a fresh connection: 200, the backend's request names `client`,
        so does the access log."""
        with Client(px.port) as c:
            c.send(header + get_request(path))
            resp = c.read_response()
            self.assertEqual(resp.status, 200, resp)
        self.assertEqual(strip_connection_close(backend_request(be, path)), forwarded(path, client))
        self.assertEqual(wait_record(px, path)["client"], client)

    def test_v1_and_v2_client_address_in_x_forwarded_for_and_the_log(self):
        cases = [
            ("/v1-tcp4", v1("203.0.113.7", "192.0.2.10", 40000, 443), "203.0.113.7"),
            ("/v1-tcp4-longest", v1("255.255.255.254", "255.255.255.255", 65535, 65535), "255.255.255.254"),
            ("/v1-tcp6", v1("2001:db8::7", "2001:db8::1", 40001, 443), "2001:db8::7"),
            ("/v1-tcp6-full", v1("2001:0db8:0000:0000:0000:0000:0000:0008", "::1", 1, 2), "2001:db8::8"),
            ("/v2-inet", v2("198.51.100.9", "192.0.2.10", 40002, 80), "198.51.100.9"),
            ("/v2-inet6", v2("2001:db8:1::9", "2001:db8:2::1", 40003, 80), "2001:db8:1::9"),
            ("/v2-inet-tlvs", v2("192.0.2.77", "192.0.2.10", 40004, 80,
                                 tlv(0x01, b"http/1.1") + tlv(0x02, b"example.com") + tlv(0x04, b"\0" * 9)
                                 + tlv(0xE0, b"x" * 500)), "192.0.2.77"),
            ("/v2-inet6-tlvs", v2("fe80::1:2", "fe80::3", 5, 6, tlv(0x05, b"u" * 128)), "fe80::1:2"),
            # 16 + 12 + 3 + 4065: the largest header there may be (4096 bytes)
            ("/v2-4096", v2("192.0.2.78", "192.0.2.10", 7, 8, tlv(0x04, b"\0" * 4065)), "192.0.2.78"),
        ]
        self.assertEqual(len(cases[-1][1]), 4096)
        with ScriptedBackend() as be, Proxy(config([be.address])) as px:
            for path, header, client in cases:
                with self.subTest(path):
                    self.exchange(px, be, header, path, client)
            self.assertEqual(errors(px), 0)
            px.assert_idle()

    def test_local_unknown_and_unspec_use_the_connections_own_address(self):
        cases = [
            ("/v2-local", V2_LOCAL),
            ("/v2-local-tlv", v2_raw(0x20, 0x00, tlv(0x04, b"pad"))),
            ("/v2-local-addresses", v2_raw(0x20, 0x11, socket.inet_aton("203.0.113.1") * 2 + b"\0\1\0\2")),
            ("/v2-unspec", v2_raw(0x21, 0x00, b"")),
            ("/v2-unix", v2_raw(0x21, 0x31, b"/run/a.sock".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0"))),
            ("/v1-unknown", V1_UNKNOWN),
            ("/v1-unknown-long", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
        ]
        with ScriptedBackend() as be, Proxy(config([be.address])) as px:
            for path, header in cases:
                with self.subTest(path):
                    self.exchange(px, be, header, path, "127.0.0.1")
            self.assertEqual(errors(px), 0)
            px.assert_idle()

    def test_requests_pipelined_after_the_header_in_one_write(self):
        with ScriptedBackend() as be, Proxy(config([be.address])) as px:
            for header, client in ((v1("203.0.113.70", "192.0.2.10", 1, 2), "203.0.113.70"),
                                   (v2("2001:db8::70", "2001:db8::1", 1, 2), "2001:db8::70")):
                with self.subTest(client), Client(px.port) as c:
                    paths = [f"/pipe-{client}-{i}" for i in range(3)]
                    c.send(header + b"".join(get_request(p) for p in paths))
                    for p in paths:
                        resp = c.read_response()
                        self.assertEqual(resp.status, 200, resp)
                    for p in paths:
                        self.assertEqual(strip_connection_close(backend_request(be, p)), forwarded(p, client))
                        self.assertEqual(wait_record(px, p)["client"], client)
            px.assert_idle()

    def test_large_request_in_the_same_write_as_the_header(self):
        """What follows the header is the connection's data, however much of it came with the
        header: an 8 KiB field and a 64 KiB body written together with it."""
        body = bytes(range(256)) * 256
        with ScriptedBackend() as be, Proxy(config([be.address])) as px:
            for header, client in ((v1("203.0.113.80", "192.0.2.10", 1, 2), "203.0.113.80"),
                                   (v2("2001:db8::80", "2001:db8::1", 1, 2), "2001:db8::80")):
                path = f"/large-{client}"
                request = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 8192
                           + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                with self.subTest(client), Client(px.port) as c:
                    c.send(header + request)
                    try:
                        resp = c.read_response()
                    except (OSError, PeerClosed) as e:
                        self.fail(f"no response: {e!r}")
                    self.assertEqual(resp.status, 200, resp)
                    got = backend_request(be, path)
                    self.assertTrue(got.endswith(b"\r\n\r\n" + body), got[-100:])
                    self.assertIn(b"\r\nX-Forwarded-For: " + client.encode() + b"\r\n", got)
            px.assert_idle()

    def test_hash_key_client_ip_uses_the_headers_address(self):
        """balance: hash on client_ip: one client (by its header) always lands on one server,
        whatever its real connection; different clients spread over both servers."""
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(b"A"))) as a, \
                ScriptedBackend(serve_forever(lambda c, r: ok_response(b"B"))) as b:
            ups = {"app": {"servers": [a.address, b.address], "balance": "hash", "hash_key": "client_ip"}}
            cfg = make_config([], upstreams=ups, listen=[{"address": "127.0.0.1:0", "proxy_protocol": True}])
            with Proxy(cfg) as px:
                chosen = {}
                for i in range(16):
                    client = f"198.51.100.{i + 1}"
                    for n in range(3):
                        header = (v1 if n % 2 else v2)(client, "192.0.2.10", 1000 + n, 80)
                        with Client(px.port) as c:
                            body = c.request(header + get_request("/h")).body
                        chosen.setdefault(client, set()).add(body)
                self.assertTrue(all(len(v) == 1 for v in chosen.values()), chosen)
                self.assertEqual(set().union(*chosen.values()), {b"A", b"B"})
                px.assert_idle()

    def test_header_trickled_byte_by_byte_within_request_header(self):
        cases = [
            ("/slow-v1", v1("203.0.113.21", "192.0.2.10", 1111, 80), "203.0.113.21"),
            ("/slow-v2", v2("2001:db8::21", "2001:db8::1", 2222, 80, tlv(0x04, b"ab")), "2001:db8::21"),
        ]
        with ScriptedBackend() as be, Proxy(config([be.address], timeouts={"request_header": "5s"})) as px:
            for path, header, client in cases:
                with self.subTest(path), Client(px.port) as c:
                    data = header + get_request(path)
                    for b in data:          # the header and the request, one byte per write
                        c.send(bytes([b]))
                        time.sleep(0.01)
                    resp = c.read_response()
                    self.assertEqual(resp.status, 200, resp)
                    self.assertEqual(strip_connection_close(backend_request(be, path)), forwarded(path, client))
            self.assertEqual(errors(px), 0)
            px.assert_idle()

    def test_header_slower_than_request_header_is_closed(self):
        with ScriptedBackend() as be, Proxy(config([be.address], timeouts={"request_header": "500ms"})) as px:
            for header in (v1("203.0.113.30", "192.0.2.10", 3333, 80),
                           v2("203.0.113.31", "192.0.2.10", 3334, 80)):
                with self.subTest(header[:6]):
                    before = errors(px)
                    s = connect(px.port)
                    start = time.monotonic()
                    sent = 0
                    closed = False
                    while sent < len(header):       # a valid beginning, 1 byte per 100 ms
                        try:
                            s.sendall(header[sent:sent + 1])
                        except OSError:
                            closed = True
                            break
                        sent += 1
                        if closed_without_bytes(s, 0.1):
                            closed = True
                            break
                    elapsed = time.monotonic() - start
                    self.assertTrue(closed or closed_without_bytes(s, 2.0), "still open")
                    s.close()
                    self.assertLess(sent, len(header), "the whole header got through")
                    self.assertGreater(elapsed, 0.4, "closed before request_header passed")
                    px.wait_metric(ERRORS, before + 1)
            self.assertEqual(be.accepted, 0)
            px.assert_idle()

    def test_no_header_garbage_or_http_is_closed_without_a_response_and_counted(self):
        cases = [
            ("nothing at all", b""),
            ("an HTTP request", get_request("/direct")),
            ("a TLS ClientHello's start", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            ("garbage", b"\x00\x01\x02 hello\r\n\r\n"),
            ("lower-case proxy", b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + get_request("/x")),
            ("v1, a port over 65535", b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n" + get_request("/x")),
            ("v1, IPv6 with TCP4", b"PROXY TCP4 ::1 ::2 1 2\r\n" + get_request("/x")),
            ("v1, LF only", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + get_request("/x")),
            ("v1, over 107 bytes", b"PROXY UNKNOWN " + b"f" * 120 + b"\r\n" + get_request("/x")),
            ("v2, version 1", v2_raw(0x11, 0x11, b"\0" * 12) + get_request("/x")),
            ("v2, command 2", v2_raw(0x22, 0x11, b"\0" * 12) + get_request("/x")),
            ("v2, length short of the addresses", v2_raw(0x21, 0x21, b"\0" * 12) + get_request("/x")),
            ("v2, over 4096 bytes", SIG + b"\x21\x11\x0f\xf2" + b"\0" * 4082 + get_request("/x")),
        ]
        with ScriptedBackend() as be, Proxy(config([be.address], timeouts={"request_header": "1s"})) as px:
            for what, data in cases:
                with self.subTest(what):
                    before = errors(px)
                    err_before = len(px.stderr())
                    s = connect(px.port)
                    if data:
                        s.sendall(data)
                    self.assertTrue(closed_without_bytes(s, 4.0), "still open")
                    s.close()
                    px.wait_metric(ERRORS, before + 1)
                    logged = wait_until(lambda: px.stderr()[err_before:].strip(), 2)
                    self.assertIn("proxy", (logged or "").lower(), "nothing logged for a refused header")
            self.assertEqual(be.accepted, 0)
            self.assertEqual(log_records(px), [])
            px.assert_idle()

    def test_listener_without_proxy_protocol_answers_400_to_a_header(self):
        with ScriptedBackend() as be, Proxy(config([be.address], listen_pp=False)) as px:
            for what, header in (("v1", v1("203.0.113.40", "192.0.2.10", 1, 2)),
                                 ("v1 unknown", V1_UNKNOWN),
                                 ("v2", v2("203.0.113.41", "192.0.2.10", 1, 2))):
                with self.subTest(what), Client(px.port) as c:
                    c.send(header + get_request("/spoofed"))
                    resp = c.read_response()
                    self.assertEqual(resp.status, 400, resp)
            self.assertEqual(be.accepted, 0)
            self.assertEqual(errors(px), 0)
            px.assert_idle()

    def test_mixed_listeners_each_keep_their_rule(self):
        """One listener with proxy_protocol and one without, side by side."""
        with ScriptedBackend() as be, Proxy(config([be.address], extra_listeners=[{"address": "127.0.0.1:0"}])) as px:
            pp_port, plain_port = px.ports
            with Client(plain_port) as c:       # the plain listener: a request as usual
                resp = c.request(get_request("/plain"))
                self.assertEqual(resp.status, 200, resp)
            self.assertEqual(wait_record(px, "/plain")["client"], "127.0.0.1")
            with Client(pp_port) as c:
                resp = c.request(v1("203.0.113.50", "192.0.2.10", 1, 2) + get_request("/pp"))
                self.assertEqual(resp.status, 200, resp)
            self.assertEqual(wait_record(px, "/pp")["client"], "203.0.113.50")
            s = connect(pp_port)                # the PP listener: a bare request is refused
            s.sendall(get_request("/bare"))
            self.assertTrue(closed_without_bytes(s, 3.0))
            s.close()
            px.wait_metric(ERRORS, 1)
            px.assert_idle()


class TlsListener(unittest.TestCase):
    """`proxy_protocol` with `tls` on one listener: the header comes before the handshake."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert = cls.pki.leaf("a.test")

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def tls_config(self, be):
        listen = [{"address": "127.0.0.1:0", "proxy_protocol": True,
                   "tls": {"cert": self.cert[0], "key": self.cert[1]}}]
        return make_config([be.address], listen=listen, access_log={"path": "-", "format": "json"})

    def tls_exchange(self, port, header, path, segments):
        """header, a TLS handshake (SNI a.test) and a GET over one raw socket, the client's
        bytes cut as `segments` says: "together" (the header and the ClientHello in one
        write), "apart" (two writes 50 ms apart) or "split-header" (the header's first 5 bytes,
        then the rest of it with the ClientHello). Returns the response bytes."""
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="a.test")
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        s = connect(port)
        try:
            if segments == "together":
                s.sendall(header + hello)
            elif segments == "apart":
                s.sendall(header)
                time.sleep(0.05)
                s.sendall(hello)
            else:
                s.sendall(header[:5])
                time.sleep(0.05)
                s.sendall(header[5:] + hello)
            s.settimeout(3)

            def pump():
                data = s.recv(1 << 16)
                if not data:
                    raise PeerClosed("closed by the proxy")
                incoming.write(data)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    s.sendall(outgoing.read())
                    pump()
            tls.write(get_request(path))
            s.sendall(outgoing.read())
            response = b""
            while b"\r\n\r\nok" not in response:
                try:
                    response += tls.read(1 << 16)
                except ssl.SSLWantReadError:
                    pump()
            return response
        finally:
            s.close()

    def test_header_then_tls_in_one_write_or_apart(self):
        cases = [("v1-4", v1("198.51.100.20", "192.0.2.10", 5000, 443), "198.51.100.20"),
                 ("v1-6", v1("2001:db8::20", "2001:db8::1", 5001, 443), "2001:db8::20"),
                 ("v2-4", v2("198.51.100.21", "192.0.2.10", 5002, 443), "198.51.100.21"),
                 ("v2-6", v2("2001:db8::21", "2001:db8::1", 5003, 443, tlv(0x04, b"x")), "2001:db8::21")]
        with ScriptedBackend() as be, Proxy(self.tls_config(be)) as px:
            for segments in ("apart", "together", "split-header"):
                for name, header, client in cases:
                    path = f"/{segments}-{name}"
                    with self.subTest(path):
                        try:
                            response = self.tls_exchange(px.port, header, path, segments)
                        except (OSError, PeerClosed) as e:   # socket.timeout is an OSError
                            self.fail(f"no response: {e!r}")
                        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response[:200])
                        self.assertEqual(strip_connection_close(backend_request(be, path)),
                                         forwarded(path, client, b"https"))
                        self.assertEqual(wait_record(px, path)["client"], client)
            self.assertEqual(errors(px), 0)
            px.assert_idle()

    def test_curl_haproxy_protocol_and_curl_without_it(self):
        with ScriptedBackend() as be, Proxy(self.tls_config(be)) as px:
            for i in range(3):
                out = run("curl", "-sS", "--haproxy-protocol", "--cacert", self.pki.ca,
                          "--resolve", f"a.test:{px.port}:127.0.0.1", f"https://a.test:{px.port}/curl{i}")
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(out.stdout, b"ok")
                req = backend_request(be, f"/curl{i}")
                self.assertIn(b"\r\nX-Forwarded-For: 127.0.0.1\r\n", req)
                self.assertIn(b"\r\nX-Forwarded-Proto: https\r\n", req)
                self.assertEqual(wait_record(px, f"/curl{i}")["client"], "127.0.0.1")
            self.assertEqual(errors(px), 0)
            # Without the header: a ClientHello is not a PROXY header.
            out = run("curl", "-sS", "--cacert", self.pki.ca, "--resolve", f"a.test:{px.port}:127.0.0.1",
                      f"https://a.test:{px.port}/no-header")
            self.assertNotEqual(out.returncode, 0)
            px.wait_metric(ERRORS, 1)
            self.assertEqual(sum(len(c.requests) for c in be.connections), 3)
            px.assert_idle()


# --------------------------------------------------------------------------- upstreams


class Upstream(unittest.TestCase):
    def expected_header(self, version, src, dst, sport, dport):
        return v1(src, dst, sport, dport) if version == "v1" else v2(src, dst, sport, dport)

    def test_plain_requests_start_with_a_header_naming_the_client(self):
        for version in ("v1", "v2"):
            with self.subTest(version):
                # A PP listener in front: the addresses of its header, relayed (§3: "the relayed
                # information is the one advertised in this connection's PROXY line").
                with ScriptedBackend(pp_serve()) as be, \
                        Proxy(config([be.address], upstream_pp=version)) as px:
                    sent = [("/a", v1("203.0.113.7", "192.0.2.10", 40000, 443),
                             self.expected_header(version, "203.0.113.7", "192.0.2.10", 40000, 443)),
                            ("/b", v2("2001:db8::7", "2001:db8::1", 40001, 8443),
                             self.expected_header(version, "2001:db8::7", "2001:db8::1", 40001, 8443))]
                    for i, (path, header, want) in enumerate(sent):
                        with Client(px.port) as c:
                            resp = c.request(header + get_request(path))
                            self.assertEqual(resp.status, 200, resp)
                        be.wait_accepted(i + 1)
                        conn = be.connections[i]
                        wait_until(lambda: conn.requests, 5)
                        self.assertEqual(conn.proxy_header, want)
                        self.assertTrue(conn.received.startswith(want), conn.received[:120])
                    # LOCAL in front: the connection's own ends.
                    with Client(px.port) as c:
                        cport = c.sock.getsockname()[1]
                        resp = c.request(V2_LOCAL + get_request("/local"))
                        self.assertEqual(resp.status, 200, resp)
                    be.wait_accepted(3)
                    wait_until(lambda: be.connections[2].requests, 5)
                    self.assertEqual(be.connections[2].proxy_header,
                                     self.expected_header(version, "127.0.0.1", "127.0.0.1", cport, px.port))
                    px.assert_idle()
                # No PP listener: the client connection's own ends.
                with ScriptedBackend(pp_serve()) as be, \
                        Proxy(config([be.address], listen_pp=False, upstream_pp=version)) as px:
                    with Client(px.port) as c:
                        cport = c.sock.getsockname()[1]
                        resp = c.request(get_request("/own"))
                        self.assertEqual(resp.status, 200, resp)
                    be.wait_accepted(1)
                    conn = be.connections[0]
                    wait_until(lambda: conn.requests, 5)
                    want = self.expected_header(version, "127.0.0.1", "127.0.0.1", cport, px.port)
                    self.assertEqual(conn.proxy_header, want)
                    self.assertEqual(strip_connection_close(conn.requests[0]), forwarded("/own", "127.0.0.1"))
                    px.assert_idle()

    def test_connections_with_a_header_are_never_reused(self):
        for version in ("v1", "v2", None):      # None: the control, where the pool reuses
            with self.subTest(version):
                script = pp_serve() if version else serve_forever(lambda c, r: ok_response())
                with ScriptedBackend(script) as be, \
                        Proxy(config([be.address], listen_pp=False, upstream_pp=version or "off")) as px:
                    with Client(px.port) as c:
                        cport = c.sock.getsockname()[1]
                        for path in ("/first", "/second"):
                            resp = c.request(get_request(path))
                            self.assertEqual(resp.status, 200, resp)
                    want = self.expected_header(version or "v1", "127.0.0.1", "127.0.0.1", cport, px.port)
                    if version is None:
                        self.assertEqual(be.accepted, 1)
                        self.assertEqual(len(be.connections[0].requests), 2)
                    else:
                        be.wait_accepted(2)
                        time.sleep(0.2)
                        self.assertEqual(be.accepted, 2)
                        for conn in be.connections:
                            wait_until(lambda: conn.requests, 5)
                            self.assertEqual(conn.proxy_header, want)
                            self.assertEqual(len(conn.requests), 1)
                        self.assertEqual(px.metric("switchyard_upstream_connections_idle"), 0)
                    px.assert_idle()

    def test_forwarded_websocket_tunnel_starts_with_the_header(self):
        routes = [{"match": {"path_prefix": "/"}, "upstream": "app", "upgrade": {"allow": ["websocket"]}}]
        for version in ("v1", "v2"):
            with self.subTest(version), ScriptedBackend(passive, keep_open=True) as be, \
                    Proxy(config([be.address], upstream_pp=version, routes=routes)) as px:
                c = Client(px.port)
                c.send(v1("203.0.113.60", "192.0.2.10", 6000, 80) + ws_request())
                be.wait_accepted(1)
                bc = be.connections[0]
                want = self.expected_header(version, "203.0.113.60", "192.0.2.10", 6000, 80)
                self.assertEqual(read_proxy_header(bc), want)
                req = bc.recv_request()
                self.assertTrue(req.startswith(b"GET /chat HTTP/1.1\r\n"), req)
                self.assertIn(b"\r\nX-Forwarded-For: 203.0.113.60\r\n", req)
                bc.send(switching())
                self.assertEqual(c.read_response().status, 101)
                c.send(b"to the server")
                self.assertEqual(recv_exact(bc.sock, 13), b"to the server")
                bc.send(b"to the client")
                self.assertEqual(recv_exact(c.sock, 13), b"to the client")
                self.assertTrue(bc.received.startswith(want))
                c.shutdown_write()
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()
                self.assertIsNotNone(wait_eof(c.sock))
                c.close()
                finish(px)

    def test_terminate_mode_service_gets_the_header_first(self):
        routes = [{"match": {"path_prefix": "/vnc"}, "upstream": "app",
                   "upgrade": {"allow": ["websocket"], "terminate": "websocket"}}]
        for version in ("v1", "v2"):
            with self.subTest(version), ScriptedBackend(passive, keep_open=True) as be, \
                    Proxy(config([be.address], upstream_pp=version, routes=routes)) as px:
                with WsClient(px.port, "/vnc") as ws:
                    ws.send_raw(v2("2001:db8::61", "2001:db8::1", 6100, 443))
                    self.assertEqual(ws.open().status, 101)
                    ws.send_binary(b"hello")
                    be.wait_accepted(1)
                    bc = be.connections[0]
                    want = self.expected_header(version, "2001:db8::61", "2001:db8::1", 6100, 443)
                    self.assertEqual(recv_exact(bc.sock, len(want) + 5), want + b"hello")
                    bc.send(b"world")
                    self.assertEqual(ws.recv_data(5), b"world")
                    ws.send_close(1000)
                    self.assertEqual(ws.recv_close()[0], 1000)
                bc.close()
                finish(px)

    def test_health_checks_send_local_or_unknown_and_the_server_stays_up(self):
        for version, probe in (("v1", V1_UNKNOWN), ("v2", V2_LOCAL)):
            with self.subTest(version):
                lock = threading.Lock()
                probes = {"A": [], "B": []}

                def respond_as(name):
                    def respond(conn, req):
                        if req.startswith(b"GET /healthz "):
                            with lock:
                                probes[name].append(conn.proxy_header)
                            good = name == "B" or conn.proxy_header == probe
                            return (b"HTTP/1.1 " + (b"200 OK" if good else b"503 Service Unavailable")
                                    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        return ok_response(name.encode())
                    return respond

                # A answers its check only when the probe carries the right header; B always.
                with ScriptedBackend(pp_serve(respond_as("A"))) as a, \
                        ScriptedBackend(pp_serve(respond_as("B"))) as b:
                    ups = {"app": {"servers": [a.address, b.address], "proxy_protocol": version,
                                   "health": {"check": {"path": "/healthz", "interval": "150ms"}}}}
                    with Proxy(make_config([], upstreams=ups, listen=[{"address": "127.0.0.1:0"}])) as px:
                        self.assertTrue(wait_until(lambda: len(probes["A"]) >= 3, 5), probes)
                        with lock:
                            self.assertEqual(set(probes["A"]), {probe})
                        bodies = []
                        for _ in range(6):
                            with Client(px.port) as c:
                                bodies.append(c.request(get_request("/x")).body)
                        self.assertEqual(sorted(bodies), [b"A"] * 3 + [b"B"] * 3)
                        px.assert_idle()


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise PeerClosed(f"closed after {data!r}")
        data += chunk
    return data


def read_header_exactly(sock):
    """A PROXY header read without a byte more (what follows is a TLS handshake)."""
    first = recv_exactly(sock, 1)
    if first != b"\r":
        line = first
        while not line.endswith(b"\r\n") and len(line) < 108:
            line += recv_exactly(sock, 1)
        return line
    fixed = first + recv_exactly(sock, 15)
    if fixed[:12] != SIG:
        return fixed
    return fixed + recv_exactly(sock, struct.unpack("!H", fixed[14:16])[0])


class UpstreamTls(unittest.TestCase):
    """`proxy_protocol` with `tls` toward the servers: the header comes before the handshake."""

    def test_header_before_the_tls_handshake(self):
        pki = Pki()
        self.addCleanup(pki.cleanup)
        cert, key = pki.leaf("up.test")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        for version in ("v1", "v2"):
            with self.subTest(version):
                seen = []

                def script(conn):
                    header = read_header_exactly(conn.sock)
                    with ctx.wrap_socket(conn.sock, server_side=True) as tls:
                        data = b""
                        while b"\r\n\r\n" not in data:
                            chunk = tls.recv(1 << 16)
                            if not chunk:
                                break
                            data += chunk
                        seen.append((header, data))
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure")

                with ScriptedBackend(script) as be:
                    ups = {"app": {"servers": [be.address], "proxy_protocol": version,
                                   "tls": {"ca": pki.ca, "server_name": "up.test"}}}
                    cfg = make_config([], upstreams=ups, listen=[{"address": "127.0.0.1:0", "proxy_protocol": True}])
                    with Proxy(cfg) as px, Client(px.port) as c:
                        resp = c.request(v1("203.0.113.90", "192.0.2.10", 9000, 443) + get_request("/secure"))
                        self.assertEqual((resp.status, resp.body), (200, b"secure"), px.stderr())
                        want = (v1 if version == "v1" else v2)("203.0.113.90", "192.0.2.10", 9000, 443)
                        self.assertEqual(len(seen), 1)
                        self.assertEqual(seen[0][0], want)
                        self.assertTrue(seen[0][1].startswith(b"GET /secure HTTP/1.1\r\n"), seen[0][1])
                        self.assertIn(b"\r\nX-Forwarded-For: 203.0.113.90\r\n", seen[0][1])


# --------------------------------------------------------------------------- HAProxy in front


class HaproxyInFront(unittest.TestCase):
    """Debian's HAProxy in `mode tcp` in front of a proxy_protocol listener."""

    def setUp(self):
        self.assertTrue(os.access(HAPROXY, os.X_OK), f"{HAPROXY} is needed (apt-get install haproxy)")

    def haproxy(self, sy_port):
        """HAProxy with two TCP frontends to Switchyard: one `send-proxy-v2`, one `send-proxy`.
        Returns (process, v2 port, v1 port, temporary directory)."""
        p2, p1 = free_low_port(), free_low_port()
        while p1 == p2:
            p1 = free_low_port()
        tmp = tempfile.TemporaryDirectory(prefix="switchyard-haproxy-")
        cfg = os.path.join(tmp.name, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(f"""global
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_v2
    bind 127.0.0.1:{p2}
    default_backend be_v2
frontend fe_v1
    bind 127.0.0.1:{p1}
    default_backend be_v1
backend be_v2
    server sy 127.0.0.1:{sy_port} send-proxy-v2
backend be_v1
    server sy 127.0.0.1:{sy_port} send-proxy
""")
        err = open(os.path.join(tmp.name, "stderr"), "wb")
        proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
        err.close()
        self.addCleanup(self.stop, proc, tmp)
        deadline = time.monotonic() + 10
        for port in (p2, p1):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        with open(os.path.join(tmp.name, "stderr"), "rb") as f:
                            self.fail(f"haproxy did not listen on {port}: {f.read()[-2000:]!r}")
                    time.sleep(0.05)
        return proc, p2, p1

    @staticmethod
    def stop(proc, tmp):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        tmp.cleanup()

    def test_send_proxy_v2_and_v1_client_address_from_127_0_0_2(self):
        with ScriptedBackend() as be, Proxy(config([be.address])) as px:
            _, p2, p1 = self.haproxy(px.port)
            for path, port in (("/via-v2", p2), ("/via-v1", p1)):
                with self.subTest(path):
                    s = connect(port, source="127.0.0.2")
                    s.sendall(get_request(path))
                    data = b""
                    while b"\r\n\r\nok" not in data:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            break
                        data += chunk
                    s.close()
                    self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
                    self.assertEqual(strip_connection_close(backend_request(be, path)),
                                     forwarded(path, "127.0.0.2"))
                    self.assertEqual(wait_record(px, path)["client"], "127.0.0.2")
            self.assertEqual(errors(px), 0)
            px.assert_idle()

    def test_websocket_through_haproxy(self):
        routes = [{"match": {"path_prefix": "/"}, "upstream": "app", "upgrade": {"allow": ["websocket"]}}]
        with ScriptedBackend(passive, keep_open=True) as be, Proxy(config([be.address], routes=routes)) as px:
            _, p2, p1 = self.haproxy(px.port)
            for i, port in enumerate((p2, p1)):
                with self.subTest(port):
                    s = connect(port, source="127.0.0.2")
                    s.sendall(ws_request())
                    be.wait_accepted(i + 1)
                    bc = be.connections[i]
                    req = bc.recv_request()
                    self.assertTrue(req.startswith(b"GET /chat HTTP/1.1\r\n"), req)
                    self.assertIn(b"\r\nX-Forwarded-For: 127.0.0.2\r\n", req)
                    bc.send(switching())
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = s.recv(1)
                        if not chunk:
                            raise PeerClosed("closed before the 101")
                        head += chunk
                    self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
                    payload = bytes(range(256)) * 64
                    s.sendall(payload)
                    self.assertEqual(recv_exact(bc.sock, len(payload)), payload)
                    bc.send(payload[::-1])
                    self.assertEqual(recv_exact(s, len(payload)), payload[::-1])
                    s.shutdown(socket.SHUT_WR)
                    self.assertIsNotNone(wait_eof(bc.sock))
                    bc.close()
                    self.assertIsNotNone(wait_eof(s))
                    s.close()
            finish(px)


if __name__ == "__main__":
    main()
