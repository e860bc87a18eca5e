"""TLS on listeners (docs/tls.md): a throwaway CA made here with the openssl CLI; curl and
openssl s_client as clients nobody here wrote; ALPN, SNI, X-Forwarded-Proto, half-close
over TLS, a stalled handshake, and --check on bad files."""

import base64
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import (SWITCHYARD_BIN, Proxy, ScriptedBackend, main, make_config, ok_response, reload_config,
                     serve_forever)

HAVE_TOOLS = shutil.which("openssl") and shutil.which("curl")


def run(*args, **kw):
    return subprocess.run(args, capture_output=True, timeout=30, **kw)


class Pki:
    """A CA and leaf certificates signed by it, in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="switchyard-tls-")
        self.ca_key = self.path("ca.key")
        self.ca = self.path("ca.pem")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=Switchyard test CA",
            check=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def leaf(self, name, rsa=False):
        key, csr, cert = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        newkey = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        run("openssl", "req", "-new", *newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name,
            check=True)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{name}\n")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext, check=True)
        return cert, key

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_config(backend, certs, min_version=None, websocket=False, **sections):
    tls = ({"cert": certs[0][0], "key": certs[0][1]} if len(certs) == 1
           else {"certificates": [{"cert": c, "key": k} for c, k in certs]})
    if min_version:
        tls["min_version"] = min_version
    route = {"match": {"path_prefix": "/"}, "upstream": "app"}
    if websocket:
        route["upgrade"] = {"allow": ["websocket"]}
    return make_config([backend.address], listen=[{"address": "127.0.0.1:0", "tls": tls}], routes=[route],
                       **sections)


@unittest.skipUnless(HAVE_TOOLS, "openssl and curl are needed")
class TlsListener(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.a = cls.pki.leaf("a.test")
        cls.b = cls.pki.leaf("b.test", rsa=True)

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def curl(self, port, name, path="/x", extra=()):
        return run("curl", "-sS", "--cacert", self.pki.ca, "--resolve", f"{name}:{port}:127.0.0.1", *extra,
                   f"https://{name}:{port}{path}")

    def test_https_request_byte_exact_with_x_forwarded_proto(self):
        body = bytes(range(256)) * 40
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(body))) as be, \
                Proxy(tls_config(be, [self.a])) as px:
            out = self.curl(px.port, "a.test")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout, body)
            got = be.connections[0].requests[0]
            self.assertIn(b"X-Forwarded-Proto: https\r\n", got)
            self.assertTrue(got.startswith(b"GET /x HTTP/1.1\r\nHost: a.test:"), got)
            # http/1.1 only: curl asked for h2 and http/1.1 and got http/1.1
            out = self.curl(px.port, "a.test", extra=("--http2", "-o", "/dev/null", "-w", "%{http_version}"))
            self.assertEqual(out.stdout, b"1.1")
            px.assert_idle()

    def test_alpn_only_h2_gets_no_application_protocol(self):
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a])) as px:
            out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-servername", "a.test",
                      "-alpn", "h2", "-CAfile", self.pki.ca, input=b"")
            self.assertIn(b"no application protocol", out.stdout + out.stderr)
            out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-servername", "a.test",
                      "-CAfile", self.pki.ca, input=b"")  # no ALPN at all: served
            self.assertIn(b"Verify return code: 0 (ok)", out.stdout)
            self.assertEqual(be.accepted, 0)
            px.assert_idle()

    def test_sni_picks_the_certificate_first_is_default(self):
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a, self.b])) as px:
            for sni, cn in (("a.test", b"a.test"), ("b.test", b"b.test"), ("other.test", b"a.test")):
                out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-servername", sni,
                          input=b"")
                self.assertIn(b"subject=CN = " + cn, out.stdout, sni)
            out = self.curl(px.port, "b.test")
            self.assertEqual(out.returncode, 0, out.stderr)
            px.assert_idle()

    def test_min_version_and_old_protocols(self):
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a])) as px:
            for flag, ok in (("-tls1_2", True), ("-tls1_3", True), ("-tls1_1", False)):
                out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", flag, "-servername",
                          "a.test", input=b"")
                self.assertEqual(b"Cipher is (NONE)" not in out.stdout and out.returncode == 0, ok, flag)
            px.assert_idle()
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a], min_version="1.3")) as px:
            out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-tls1_2", input=b"")
            self.assertIn(b"Cipher is (NONE)", out.stdout)

    def test_stalled_handshake_is_cut(self):
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a], timeouts={"request_header": "1s"})) as px:
            s = socket.create_connection(("127.0.0.1", px.port))
            s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
            s.settimeout(5)
            start = time.monotonic()
            self.assertEqual(s.recv(100), b"")
            self.assertLess(time.monotonic() - start, 3)
            s.close()
            px.assert_idle()

    def test_websocket_tunnel_over_tls_to_a_plain_backend(self):
        def script(conn):
            req = conn.recv_request()
            key = [l.split(b": ")[1] for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            data = b""
            while len(data) < 1 << 20:
                chunk = conn.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            conn.send(hashlib.sha256(data).hexdigest().encode())
            conn.wait_closed()

        with ScriptedBackend(script) as be, Proxy(tls_config(be, [self.a], websocket=True)) as px:
            ctx = ssl.create_default_context(cafile=self.pki.ca)
            raw = socket.create_connection(("127.0.0.1", px.port))
            s = ctx.wrap_socket(raw, server_hostname="a.test")
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            payload = os.urandom(1 << 20)
            s.sendall(payload)
            s.settimeout(5)
            reply = b""
            while len(reply) < 64:
                chunk = s.recv(100)
                self.assertTrue(chunk, reply)
                reply += chunk
            self.assertEqual(reply, hashlib.sha256(payload).hexdigest().encode())
            s.close()
            px.assert_idle()


    def test_backend_eof_becomes_close_notify_and_the_client_direction_goes_on(self):
        # upgrade-semantics, TLS: an EOF from one side becomes close_notify plus a write
        # shutdown toward a TLS peer; the other direction keeps flowing.
        got_after = []

        def script(conn):
            req = conn.recv_request()
            key = [l.split(b": ")[1] for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\nfrom backend")
            conn.sock.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = conn.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            got_after.append(data)

        with ScriptedBackend(script) as be, Proxy(tls_config(be, [self.a], websocket=True)) as px:
            ctx = ssl.create_default_context(cafile=self.pki.ca)
            # suppress_ragged_eofs=False: a TCP EOF without close_notify raises instead of
            # reading as b"", so b"" below proves the close_notify.
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", px.port)), server_hostname="a.test",
                                suppress_ragged_eofs=False)
            s.settimeout(5)
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break  # close_notify
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 101 "), data)
            self.assertTrue(data.endswith(b"\r\n\r\nfrom backend"), data)
            s.sendall(b"after half-close")  # our direction is still open
            s.close()
            deadline = time.monotonic() + 5
            while not got_after and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(got_after, [b"after half-close"])
            px.wait_metric("switchyard_tunnels_active", 0)
            px.assert_idle()

    def test_wss_with_python_websockets(self):
        import asyncio
        import websockets
        from e2e_support import WsEchoServer

        with WsEchoServer() as server:
            class Be:
                address = f"127.0.0.1:{server.port}"
            with Proxy(tls_config(Be, [self.a], websocket=True)) as px:
                ctx = ssl.create_default_context(cafile=self.pki.ca)
                big = os.urandom(1 << 20)

                async def session():
                    async with websockets.connect(f"wss://a.test:{px.port}/chat", ssl=ctx, max_size=None,
                                                  host="127.0.0.1", port=px.port,
                                                  server_hostname="a.test") as ws:
                        await ws.send("hello")
                        self.assertEqual(await ws.recv(), "hello")
                        await ws.send(big)
                        self.assertEqual(await ws.recv(), big)
                        for i in range(200):
                            await ws.send(f"m{i}")
                        for i in range(200):
                            self.assertEqual(await ws.recv(), f"m{i}")
                        await ws.close(code=4001, reason="bye")

                asyncio.run(asyncio.wait_for(session(), 30))
                deadline = time.monotonic() + 5
                while not server.closes and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(server.closes[0][0], 4001)
                px.wait_metric("switchyard_tunnels_active", 0)
                px.assert_idle()

    def test_session_resumption(self):
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a])) as px:
            # A whole exchange each time, so that TLS 1.3's tickets (sent after the handshake)
            # reach the client before it leaves.
            request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
            for version in ("-tls1_2", "-tls1_3"):
                sess = self.pki.path("sess" + version)
                first = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-servername", "a.test",
                            version, "-ign_eof", "-sess_out", sess, input=request)
                self.assertIn(b"HTTP/1.1 200 OK", first.stdout, version)
                out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-servername", "a.test",
                          version, "-ign_eof", "-sess_in", sess, input=request)
                self.assertIn(b"Reused, TLS", out.stdout, version)
                self.assertIn(b"HTTP/1.1 200 OK", out.stdout, version)
            px.assert_idle()

    def test_reload_reads_certificates_again_and_a_bad_one_keeps_the_old(self):
        other = self.pki.leaf("c.test")
        with ScriptedBackend() as be, Proxy(tls_config(be, [self.a])) as px:
            def subject():
                out = run("openssl", "s_client", "-connect", f"127.0.0.1:{px.port}", "-servername", "x",
                          input=b"")
                return [l for l in out.stdout.split(b"\n") if l.startswith(b"subject=")][0]
            self.assertEqual(subject(), b"subject=CN = a.test")
            reload_config(px, tls_config(be, [other]))
            self.assertEqual(subject(), b"subject=CN = c.test")
            err = reload_config(px, tls_config(be, [(other[0], self.a[1])]), result="failed")
            self.assertIn("the key does not match the certificate", err)
            self.assertEqual(subject(), b"subject=CN = c.test")
            px.assert_idle()


class TlsBackend:
    """A TLS server on 127.0.0.1:0 (Python's ssl module): answers every request with
    200 "secure" and closes."""

    def __init__(self, cert, key):
        import threading
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                continue
            try:
                raw.settimeout(5)
                conn = self.ctx.wrap_socket(raw, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                key = [l.split(b": ", 1)[1] for l in data.split(b"\r\n")
                       if l.lower().startswith(b"sec-websocket-key:")]
                if key:  # an upgrade: 101, then echo until EOF (close_notify), then ours
                    accept = base64.b64encode(hashlib.sha1(key[0] + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                    while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        conn.sendall(chunk)
                    conn.unwrap()
                    raw.close()
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure")
                conn.close()
            except (OSError, ssl.SSLError):
                raw.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self.listener.close()
        return False


@unittest.skipUnless(HAVE_TOOLS, "openssl is needed")
class TlsUpstream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.a = cls.pki.leaf("a.test")

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def fetch(self, tls):
        from harness import get
        with TlsBackend(*self.a) as be, \
                Proxy(make_config([be.address], upstreams={"app": {"servers": [be.address], "tls": tls}})) as px:
            resp = get(px.port, "/s")
            px.assert_idle()
            return resp, be, px.stderr()

    def test_verified_server(self):
        resp, be, _ = self.fetch({"ca": self.pki.ca, "server_name": "a.test"})
        self.assertEqual((resp.status, resp.body), (200, b"secure"))
        self.assertTrue(be.requests[0].startswith(b"GET /s HTTP/1.1\r\n"))

    def test_certificate_for_another_name_is_502_with_the_reason_logged(self):
        resp, be, err = self.fetch({"ca": self.pki.ca, "server_name": "b.test"})
        self.assertEqual(resp.status, 502)
        self.assertEqual(be.requests, [])
        self.assertIn("TLS handshake failed", err)
        self.assertIn("certificate verify failed", err)

    def test_address_without_server_name_is_checked_against_the_address(self):
        resp, _, err = self.fetch({"ca": self.pki.ca})
        self.assertEqual(resp.status, 502)
        self.assertIn("certificate verify failed", err)

    def test_unknown_ca_is_502(self):
        resp, _, err = self.fetch({"server_name": "a.test"})  # the system store does not know our CA
        self.assertEqual(resp.status, 502)
        self.assertIn("certificate verify failed", err)

    def test_tls_client_to_tls_backend_tunnel(self):
        # wss from the client, TLS to the backend: two TLS transports around one tunnel.
        with TlsBackend(*self.a) as be:
            cfg = make_config([be.address],
                              upstreams={"app": {"servers": [be.address],
                                                 "tls": {"ca": self.pki.ca, "server_name": "a.test"}}},
                              listen=[{"address": "127.0.0.1:0", "tls": {"cert": self.a[0], "key": self.a[1]}}],
                              routes=[{"match": {"path_prefix": "/"}, "upstream": "app",
                                       "upgrade": {"allow": ["websocket"]}}])
            with Proxy(cfg) as px:
                ctx = ssl.create_default_context(cafile=self.pki.ca)
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", px.port)), server_hostname="a.test")
                s.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += s.recv(1)
                self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
                payload = os.urandom(300000)
                s.sendall(payload)
                s.settimeout(10)
                echoed = b""
                while len(echoed) < len(payload):
                    chunk = s.recv(65536)
                    self.assertTrue(chunk)
                    echoed += chunk
                self.assertEqual(echoed, payload)
                s.close()
                px.wait_metric("switchyard_tunnels_active", 0)
                px.assert_idle()

    def test_verify_false_accepts_any_certificate(self):
        resp, _, _ = self.fetch({"server_name": "b.test", "verify": False})
        self.assertEqual((resp.status, resp.body), (200, b"secure"))


@unittest.skipUnless(HAVE_TOOLS, "openssl is needed")
class TlsCheck(unittest.TestCase):
    def test_check_reports_unreadable_files_and_mismatched_keys(self):
        pki = Pki()
        try:
            a_cert, a_key = pki.leaf("a.test")
            b_cert, b_key = pki.leaf("b.test")
            for cert, key, line_col, message in (
                    ("/nonexistent.pem", a_key, "3:18", "cannot read /nonexistent.pem"),
                    (a_cert, b_key, "4:17", "the key does not match the certificate")):
                path = pki.path("c.yaml")
                with open(path, "w") as f:
                    f.write("listen:\n  - address: 127.0.0.1:8443\n    tls: { cert: " + cert + ",\n"
                            "           key: " + key + " }\n"
                            "upstreams: { app: { servers: [127.0.0.1:9000] } }\nroutes: [{ upstream: app }]\n")
                out = run(SWITCHYARD_BIN, "--check", "--config", path)
                self.assertEqual(out.returncode, 1, out.stderr)
                self.assertIn(f"{path}:{line_col}: {message}".encode(), out.stderr)
        finally:
            pki.cleanup()


if __name__ == "__main__":
    main()
