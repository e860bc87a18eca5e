"""End to end: plain HTTP/1.1 through the proxy with curl against the demo backend, which
answers 200 with the request as it arrived (request line, fields, empty line, body; see
tests/support/demo_backend.cpp)."""

import hashlib
import os
import tempfile
import unittest

from e2e_support import HttpOrigin, run_tool
from harness import DemoBackend, Proxy, main, make_config

CURL = ["curl", "-sS", "--max-time", "15"]


def split_echo(body):
    """The demo backend's echo: (head lines, body bytes)."""
    head, sep, rest = body.partition(b"\n\n")
    assert sep, body[:200]
    return head.decode("latin-1").split("\n"), rest


def field_values(lines, name):
    out = []
    for line in lines[1:]:
        n, _, v = line.partition(":")
        if n.lower() == name.lower():
            out.append(v.strip())
    return out


class CurlThroughProxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="e2e-curl-")
        cls.upload = os.path.join(cls._tmp.name, "upload.bin")
        cls.data = os.urandom(2 << 20)              # 2 MiB
        with open(cls.upload, "wb") as f:
            f.write(cls.data)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def curl(self, *args):
        r = run_tool(CURL + list(args))
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r

    def url(self, px, path):
        return f"http://127.0.0.1:{px.port}{path}"

    def test_get(self):
        with DemoBackend() as demo, Proxy(make_config([demo.address])) as px:
            r = self.curl("-o", "-", "-w", "\n@@%{http_code} %{http_version}",
                          "-H", "X-E2E: one", self.url(px, "/hello?q=1"))
            body, _, tail = r.stdout.rpartition(b"\n@@")
            self.assertEqual(tail, b"200 1.1")
            lines, rest = split_echo(body)
            self.assertEqual(lines[0], "GET /hello?q=1 HTTP/1.1")
            self.assertEqual(field_values(lines, "Host"), [f"127.0.0.1:{px.port}"])
            self.assertTrue(field_values(lines, "User-Agent")[0].startswith("curl/"))
            self.assertEqual(field_values(lines, "X-E2E"), ["one"])
            self.assertEqual(field_values(lines, "X-Forwarded-For"), ["127.0.0.1"])
            self.assertEqual(rest, b"")
            px.assert_idle()

    def test_post_2mib_content_length(self):
        # curl adds "Expect: 100-continue" above 1 MiB: the proxy must cope with it too
        with DemoBackend() as demo, Proxy(make_config([demo.address])) as px:
            r = self.curl("-o", "-", "-H", "Content-Type: application/octet-stream",
                          "--data-binary", "@" + self.upload, self.url(px, "/upload"))
            lines, rest = split_echo(r.stdout)
            self.assertEqual(lines[0], "POST /upload HTTP/1.1")
            self.assertEqual(field_values(lines, "Content-Length"), [str(len(self.data))])
            self.assertEqual(len(rest), len(self.data))
            self.assertTrue(rest == self.data, "echoed body differs from the upload")
            px.assert_idle()

    def test_expect_100_continue_is_passed_through(self):
        """docs/upgrades.md: a 1xx other than 101 is passed to the client. The demo
        backend never sends 100 Continue (curl then waits 1 s and sends anyway); Python's
        http.server does, so curl must see it through the proxy and not time out."""
        with HttpOrigin() as origin, Proxy(make_config([origin.address])) as px:
            r = self.curl("-v", "-o", "-", "--expect100-timeout", "10",
                          "-H", "Expect: 100-continue",
                          "--data-binary", "@" + self.upload, self.url(px, "/expect"))
            err = r.stderr.decode(errors="replace")
            self.assertIn("> Expect: 100-continue", err)
            self.assertIn("< HTTP/1.1 100", err)
            self.assertNotIn("Done waiting for 100-continue", err)
            self.assertIn("< HTTP/1.1 200", err)
            self.assertEqual(r.stdout, hashlib.sha256(self.data).hexdigest().encode()
                             + b" %d\n" % len(self.data))
            self.assertEqual(len(origin.requests), 1)
            px.assert_idle()

    def test_post_2mib_chunked(self):
        with DemoBackend() as demo, Proxy(make_config([demo.address])) as px:
            r = self.curl("-v", "-o", "-", "-H", "Transfer-Encoding: chunked",
                          "-H", "Content-Type: application/octet-stream",
                          "--data-binary", "@" + self.upload, self.url(px, "/chunked"))
            self.assertIn(b"> Transfer-Encoding: chunked", r.stderr)
            lines, rest = split_echo(r.stdout)
            self.assertEqual(lines[0], "POST /chunked HTTP/1.1")
            # re-framed by the proxy: exactly one framing header reaches the backend
            framing = field_values(lines, "Content-Length") + field_values(
                lines, "Transfer-Encoding")
            self.assertEqual(len(framing), 1, lines)
            self.assertEqual(len(rest), len(self.data))
            self.assertTrue(rest == self.data, "echoed body differs from the upload")
            px.assert_idle()

    def test_keepalive_reuses_one_connection(self):
        with DemoBackend() as demo, Proxy(make_config([demo.address])) as px:
            before = px.metric("switchyard_connections_total")
            r = self.curl("-v", "-o", "-", "-o", "-",
                          self.url(px, "/first"), self.url(px, "/second"))
            err = r.stderr.decode(errors="replace")
            self.assertIn("Re-using existing connection", err)
            self.assertEqual(err.count("Connected to 127.0.0.1"), 1, err)
            self.assertIn(b"GET /first HTTP/1.1\n", r.stdout)
            self.assertIn(b"GET /second HTTP/1.1\n", r.stdout)
            self.assertLess(r.stdout.index(b"GET /first"), r.stdout.index(b"GET /second"))
            self.assertEqual(px.metric("switchyard_connections_total") - before, 1)
            px.assert_idle()

    def test_head(self):
        with DemoBackend() as demo, Proxy(make_config([demo.address])) as px:
            r = self.curl("-I", self.url(px, "/head-me"))
            head = r.stdout.decode("latin-1")
            self.assertTrue(head.startswith("HTTP/1.1 200"), head)
            lengths = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")]
            self.assertEqual(len(lengths), 1, head)
            self.assertGreater(int(lengths[0]), 0)
            self.assertTrue(head.endswith("\r\n\r\n"), head)   # a head and no body
            px.assert_idle()

    def test_404_when_no_route_matches(self):
        routes = [{"match": {"path_prefix": "/api"}, "upstream": "app"}]
        with DemoBackend() as demo, Proxy(make_config([demo.address], routes=routes)) as px:
            r = self.curl("-o", "/dev/null", "-w", "%{http_code}", self.url(px, "/other"))
            self.assertEqual(r.stdout, b"404")
            r = self.curl("-o", "-", self.url(px, "/api/x"))
            self.assertTrue(r.stdout.startswith(b"GET /api/x HTTP/1.1\n"), r.stdout[:100])
            px.assert_idle()


if __name__ == "__main__":
    main()
