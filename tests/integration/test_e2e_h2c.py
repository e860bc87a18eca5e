"""End to end: HTTP/1.1 Upgrade to h2c (RFC 7540 §3.2) through the proxy, with real
clients (nghttp -u, curl --http2) and a real h2c server: nghttpx with a cleartext frontend,
in front of a tiny HTTP/1.1 origin (http.server) that answers 200 with a known body.

    client --HTTP/1.1 Upgrade: h2c--> switchyard --> nghttpx (no-tls frontend) --> origin

docs/upgrades.md: h2c is forwarded only when the allow list names it; "*" does not
(h2c smuggling). When it is not forwarded, the request goes on as plain HTTP/1.1.

nghttpx's access log (e2e_support.Nghttpx) says per request "<version> <alpn> ...": alpn
"h2c" means the request arrived through an h2c upgrade, "http/1.1" a plain request."""

import unittest

from e2e_support import HttpOrigin, Nghttpx, run_tool
from harness import Proxy, main, make_config

PATH = "/h2c/known?x=1"
BODY = HttpOrigin.body_for(PATH)


def config(address, **upgrade):
    return make_config([address], routes=[
        {"match": {"path_prefix": "/"}, "upstream": "app", "upgrade": upgrade}])


def text(b):
    return b.decode("utf-8", "replace")


class H2cThroughProxy(unittest.TestCase):
    def url(self, px):
        return f"http://127.0.0.1:{px.port}{PATH}"

    def curl_http2(self, px):
        """curl --http2 on http:// sends Upgrade: h2c + HTTP2-Settings. Returns
        (body, http_version, verbose stderr)."""
        r = run_tool(["curl", "-sS", "-v", "--http2", "--max-time", "15",
                      "-o", "-", "-w", "\n@@%{http_version}", self.url(px)])
        self.assertEqual(r.returncode, 0, text(r.stderr))
        body, _, version = r.stdout.rpartition(b"\n@@")
        return body, version.decode(), text(r.stderr)

    # ------------------------------------------------------------------ allowed

    def test_h2c_allowed(self):
        with HttpOrigin() as origin, Nghttpx(origin.address) as nx, \
                Proxy(config(nx.address, allow=["h2c"])) as px:
            # nghttp -u: HTTP/1.1 Upgrade, then HTTP/2 frames over the tunnel
            r = run_tool(["nghttp", "-u", "-v", "-t", "15", self.url(px)])
            out = text(r.stdout) + text(r.stderr)
            self.assertEqual(r.returncode, 0, out)
            self.assertIn("HTTP Upgrade request", out)
            self.assertIn("upgrade: h2c", out)
            self.assertIn("HTTP/1.1 101 Switching Protocols", out)
            self.assertIn("HTTP Upgrade success", out)
            self.assertIn("recv SETTINGS frame", out)
            self.assertIn("recv HEADERS frame", out)
            self.assertIn("recv (stream_id=1) :status: 200", out)
            self.assertIn("recv DATA frame", out)
            self.assertIn(text(BODY), out)
            self.assertNotIn("HTTP Upgrade failed", out)

            # nghttp -u without -v: stdout is exactly the body
            r = run_tool(["nghttp", "-u", "-t", "15", self.url(px)])
            self.assertEqual((r.returncode, r.stdout), (0, BODY), text(r.stderr))

            # curl --http2: 101, then HTTP/2 200
            body, version, verbose = self.curl_http2(px)
            self.assertEqual(body, BODY)
            self.assertEqual(version, "2")
            self.assertIn("< HTTP/1.1 101", verbose)
            self.assertIn("< HTTP/2 200", verbose)

            lines = nx.wait_log_lines(3)
            self.assertEqual([line.split()[1] for line in lines], ["h2c"] * 3, lines)
            self.assertEqual(len(origin.requests), 3)
            px.wait_metric("switchyard_tunnels_total", 3)
            px.wait_metric("switchyard_tunnels_active", 0)
            px.assert_idle()

    # ------------------------------------------------------------------ not allowed

    def check_not_upgraded(self, upgrade):
        with HttpOrigin() as origin, Nghttpx(origin.address) as nx, \
                Proxy(config(nx.address, **upgrade)) as px:
            # curl falls back: the body over HTTP/1.1, no 101
            body, version, verbose = self.curl_http2(px)
            self.assertEqual(body, BODY)
            self.assertEqual(version, "1.1")
            self.assertIn("> Upgrade: h2c", verbose)     # curl did offer it
            self.assertIn("< HTTP/1.1 200", verbose)
            self.assertNotIn("< HTTP/1.1 101", verbose)
            self.assertNotIn("HTTP/2", verbose.replace("--http2", ""))
            lines = nx.wait_log_lines(1)
            self.assertEqual(lines[0].split()[:2], ["HTTP/1.1", "http/1.1"], lines)

            # nghttp -u does not fall back: it prints the HTTP/1.1 response as the
            # "HTTP Upgrade response", reports "HTTP Upgrade failed" and processes no
            # request (nghttp 1.52 still exits 0; the exit status is not asserted).
            r = run_tool(["nghttp", "-u", "-v", "-t", "15", self.url(px)])
            out = text(r.stdout) + text(r.stderr)
            self.assertIn("HTTP Upgrade response\nHTTP/1.1 200", out)
            self.assertIn("HTTP Upgrade failed", out)
            self.assertNotIn("HTTP Upgrade success", out)
            self.assertNotIn("101 Switching Protocols", out)
            self.assertIn(text(BODY), out)               # the HTTP/1.1 body, in the dump
            self.assertNotIn("recv SETTINGS frame", out)

            lines = nx.wait_log_lines(2)
            self.assertEqual([line.split()[:2] for line in lines],
                             [["HTTP/1.1", "http/1.1"]] * 2, lines)
            self.assertEqual(len(origin.requests), 2)
            self.assertEqual(px.metric("switchyard_tunnels_total"), 0)
            px.assert_idle()

    def test_h2c_not_allowed_falls_back_to_http11(self):
        self.check_not_upgraded({"allow": ["websocket"]})

    def test_star_does_not_allow_h2c(self):
        self.check_not_upgraded({"allow": ["*"]})

    def test_h2c_not_allowed_reject(self):
        with HttpOrigin() as origin, Nghttpx(origin.address) as nx, \
                Proxy(config(nx.address, allow=["websocket"], on_disallowed="reject")) as px:
            r = run_tool(["curl", "-sS", "--http2", "--max-time", "15", "-o", "/dev/null",
                          "-w", "%{http_code}", self.url(px)])
            self.assertEqual((r.returncode, r.stdout), (0, b"403"), text(r.stderr))
            self.assertEqual(nx.log_lines(), [])
            self.assertEqual(origin.requests, [])
            px.assert_idle()


if __name__ == "__main__":
    main()
