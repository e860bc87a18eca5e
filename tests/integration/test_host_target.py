"""Which host a request addresses is never ambiguous (RFC 9112 §3.2, RFC 9110 §4.2.4, §7.2):
exactly one valid Host, a request-target of RFC 3986 bytes in a form that fits the method,
an absolute-form target's authority as the Host upstream, and a Host for HTTP/1.0 requests
that had none. Each case checks what reached the backend, byte for byte, or that nothing
did."""

import time
import unittest

from harness import FWD, Client, Proxy, ScriptedBackend, main, make_config, ok_response, serve_forever


def backend():
    return ScriptedBackend(serve_forever(lambda c, r: ok_response(b"ok")))


class HostAndTarget(unittest.TestCase):
    def refused(self, px, be, request):
        """400 and close; the backend saw nothing."""
        self.refused_with(px, be, request, 400)

    def refused_with(self, px, be, request, status):
        before = len(be.all_received())
        with Client(px.port) as c:
            resp = c.request(request)
            self.assertEqual(resp.status, status, request)
            self.assertEqual(resp.header("Connection"), "close")
            self.assertTrue(c.is_closed())
        time.sleep(0.05)
        self.assertEqual(be.all_received()[before:], b"", request)

    def forwarded(self, px, be, request, expected):
        """200, and the backend received exactly `expected`."""
        before = len(be.all_received())
        with Client(px.port) as c:
            self.assertEqual(c.request(request).status, 200, request)
        deadline = time.monotonic() + 2
        while len(be.all_received()) - before < len(expected) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(be.all_received()[before:], expected)

    def test_host_must_be_one_valid_uri_host_and_port(self):
        bad_hosts = [b"", b"a b", b"user@example.com", b"user:pw@example.com", b"example.com:99999",
                     b"example.com:8a", b"example.com:80:81", b"[::1", b"::1", b"exa\"mple", b"a/b",
                     b"a?b", b"a#b", b"caf\xc3\xa9.example"]
        with backend() as be, Proxy(make_config([be.address])) as px:
            self.refused(px, be, b"GET / HTTP/1.1\r\n\r\n")
            self.refused(px, be, b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
            for host in bad_hosts:
                with self.subTest(host=host):
                    self.refused(px, be, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            for host in (b"example.com", b"example.com:8080", b"127.0.0.1:1", b"[::1]:8443", b"x%41"):
                with self.subTest(host=host):
                    self.forwarded(px, be, b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
                                   b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\n" + FWD + b"\r\n")
            px.assert_idle()

    def test_target_holds_only_rfc3986_bytes(self):
        bad_targets = [b"/a#frag", b"/caf\xc3\xa9", b"/\xff", b"/a\x01b", b"/a\x7f", b"/a\"b", b"/a<b>",
                       b"/a\\b", b"/a{b}", b"/a|b", b"/%zz", b"/%4", b"*", b"a/b", b"example.com:443"]
        with backend() as be, Proxy(make_config([be.address])) as px:
            for target in bad_targets:
                with self.subTest(target=target):
                    self.refused(px, be, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            ok = b"/a:b@c!$&'()*+,;=-._~%20/?q=/?"
            self.forwarded(px, be, b"GET " + ok + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                           b"GET " + ok + b" HTTP/1.1\r\nHost: x\r\n" + FWD + b"\r\n")
            px.assert_idle()

    def test_absolute_form_authority_is_the_host(self):
        routes = [{"match": {"host": "example.com", "path_prefix": "/"}, "upstream": "app"}]
        with backend() as be, Proxy(make_config([be.address], routes=routes)) as px:
            # Routed by the authority, not by the Host field, which is replaced upstream.
            self.forwarded(px, be, b"GET http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n",
                           b"GET /p?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\n" + FWD + b"\r\n")
            self.forwarded(px, be, b"GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
                           b"GET / HTTP/1.1\r\nHost: example.com\r\n" + FWD + b"\r\n")
            # The Host field alone would not have matched the route.
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET /p HTTP/1.1\r\nHost: other.test\r\n\r\n").status, 404)
            for target in (b"http://user@example.com/", b"http://user:pw@evil.test@example.com/",
                           b"http:///p", b"http://example.com:99999/", b"ftp://example.com/"):
                with self.subTest(target=target):
                    before = len(be.all_received())
                    with Client(px.port) as c:
                        self.assertEqual(c.request(b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
                                         .status, 400)
                    self.assertEqual(len(be.all_received()), before)
            px.assert_idle()

    def test_absolute_form_is_routed_by_its_path(self):
        routes = [{"match": {"path_prefix": "/api"}, "upstream": "app"}]
        with backend() as be, Proxy(make_config([be.address], routes=routes)) as px:
            self.forwarded(px, be, b"GET http://example.com/api/v?q=/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
                           b"GET /api/v?q=/x HTTP/1.1\r\nHost: example.com\r\n" + FWD + b"\r\n")
            # The query is not part of the path, nor is the authority.
            for target in (b"http://example.com/other?/api", b"http://api.example.com/other"):
                with self.subTest(target=target), Client(px.port) as c:
                    self.assertEqual(c.request(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n").status, 404)
            px.assert_idle()

    def test_http10_without_host_gains_one_and_options_star_passes(self):
        with backend() as be, Proxy(make_config([be.address])) as px:
            self.forwarded(px, be, b"GET /old HTTP/1.0\r\n\r\n",
                           b"GET /old HTTP/1.1\r\nHost: " + be.address.encode() + b"\r\n" + FWD + b"\r\n")
            self.forwarded(px, be, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
                           b"OPTIONS * HTTP/1.1\r\nHost: x\r\n" + FWD + b"\r\n")
            px.assert_idle()

    def test_higher_minor_version_is_handled_as_http11(self):
        # RFC 9110 §2.5: HTTP/1.2 is an HTTP/1.1 request to us, and forwarded as one.
        with backend() as be, Proxy(make_config([be.address])) as px:
            self.forwarded(px, be, b"GET /v HTTP/1.2\r\nHost: x\r\n\r\n",
                           b"GET /v HTTP/1.1\r\nHost: x\r\n" + FWD + b"\r\n")
            with Client(px.port) as c:  # and persistent by default, as 1.1 is
                self.assertEqual(c.request(b"GET /a HTTP/1.9\r\nHost: x\r\n\r\n").status, 200)
                self.assertEqual(c.request(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n").status, 200)
            self.refused_with(px, be, b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505)
            self.refused_with(px, be, b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505)
            px.assert_idle()


if __name__ == "__main__":
    main()
