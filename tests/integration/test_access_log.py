"""The access log (docs/configuration.md `access_log`): one line per exchange with the bytes each way,
and one per tunnel with route, protocol, bytes each way and how it ended
(docs/upgrades.md, "The tunnel")."""

import re
import unittest

from harness import Client, Proxy, ScriptedBackend, main, make_config, ok_response, passive, \
    serve_forever
from upgrade_support import finish, open_ws_tunnel, recv_exact, wait_eof, wait_log

LINE = re.compile(r'^\S+ (?P<client>\S+) "(?P<method>\S+) (?P<target>\S+) HTTP/1\.1" (?P<status>\d+) '
                  r'in=(?P<inb>\d+) out=(?P<outb>\d+) \d+ms route=(?P<route>\S+) '
                  r'upstream=(?P<upstream>\S+) server=(?P<server>\S+) (?P<outcome>\S+)(?: proto=(?P<proto>\S+))?$')


def logged(px, pattern):
    m = LINE.match(wait_log(px, r"^.*" + pattern + r".*$"))
    assert m, pattern
    return m


class AccessLog(unittest.TestCase):
    def test_exchange_line_counts_the_bytes_each_way(self):
        request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        body = b"hello, log"
        with ScriptedBackend(serve_forever(lambda c, r: ok_response(body))) as be, \
                Proxy(make_config([be.address], access_log={"path": "-"})) as px:
            with Client(px.port) as c:
                c.send(request)
                resp = c.read_response()
                self.assertEqual(resp.body, body)
                m = logged(px, r'"GET /a HTTP/1\.1" 200 .* ok$')
            self.assertEqual(m["client"], "127.0.0.1")
            self.assertEqual(int(m["inb"]), len(request))
            self.assertEqual(int(m["outb"]), len(resp.raw))
            self.assertEqual(m["upstream"], "app")
            self.assertEqual(m["server"], be.address)
            self.assertEqual(m["route"], "route1")  # docs/configuration.md: unnamed routes are route<N>
            px.assert_idle()

    def test_proxy_answers_are_logged_with_their_status(self):
        with ScriptedBackend() as be, \
                Proxy(make_config([be.address], access_log={"path": "-"},
                                  routes=[{"match": {"path_prefix": "/api"}, "upstream": "app"}])) as px:
            with Client(px.port) as c:
                self.assertEqual(c.request(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").status, 404)
            logged(px, r'"GET /nope HTTP/1\.1" 404 ')
            px.assert_idle()

    def test_tunnel_line_has_protocol_bytes_and_ending(self):
        cfg = make_config([], access_log={"path": "-"},
                          upstreams={"app": {"servers": []}},
                          routes=[{"match": {"path_prefix": "/"}, "upstream": "app",
                                   "upgrade": {"allow": ["websocket"]}}])
        with ScriptedBackend(passive, keep_open=True) as be:
            cfg = cfg.replace("servers: []", f'servers: ["{be.address}"]')
            with Proxy(cfg) as px:
                c, bc = open_ws_tunnel(self, px, be)
                c.send(b"12345")
                self.assertEqual(recv_exact(bc.sock, 5), b"12345")
                bc.send(b"abc")
                self.assertEqual(recv_exact(c.sock, 3), b"abc")
                c.shutdown_write()
                self.assertIsNotNone(wait_eof(bc.sock))
                bc.close()
                self.assertIsNotNone(wait_eof(c.sock))
                c.close()
                m = logged(px, r"tunnel_eof proto=websocket$")
                self.assertEqual(m["status"], "101")
                self.assertEqual(m["target"], "/chat")
                self.assertEqual((int(m["inb"]), int(m["outb"])), (5, 3))
                self.assertEqual(m["client"], "127.0.0.1")
                finish(px)


if __name__ == "__main__":
    main()
