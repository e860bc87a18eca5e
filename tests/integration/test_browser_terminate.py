"""A real browser against terminate mode (upgrade.terminate: websocket): headless chromium
loads browser_terminate.html through the proxy; the page opens a WebSocket with
subprotocol `binary` on a route where the proxy itself is the WebSocket server in front of
a plain TCP echo service, sends 100 binary messages (sizes across the 7/16/64-bit length
boundaries) and checks the echoed byte stream, the selected subprotocol, that chromium's
permessage-deflate offer was declined, and a clean close 1000. The verdict is read back
from the DOM; a screenshot is kept in $SWITCHYARD_ARTIFACTS (default: the temp dir)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import Proxy, ScriptedBackend, main, make_config, serve_forever, wait_metric_sum
from terminate_support import TcpService

CHROMIUM = shutil.which("chromium")
PAGE = open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "browser_terminate.html"), "rb").read()
VERDICT = re.compile(r'<p id="verdict">([^<]*)</p>')


def page_backend(echo):
    def respond(conn, request):
        if request.startswith(b"GET /slow "):
            # Hold the page's load event (and --dump-dom) until the page's WebSocket has
            # ended: the echo service sees EOF once the proxy got the page's close frame.
            deadline_conn = None
            try:
                deadline_conn = echo.next_conn(15)
            except AssertionError:
                pass
            if deadline_conn is not None:
                deadline_conn.wait_eof(15)
            import time
            time.sleep(0.5)   # the close reply reaches the page and its onclose runs
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/html\r\n\r\nok"
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n" % len(PAGE) + PAGE)
    return ScriptedBackend(serve_forever(respond))


@unittest.skipUnless(CHROMIUM, "chromium is needed")
class BrowserTerminate(unittest.TestCase):
    def browse(self, url, screenshot=None):
        profile = tempfile.mkdtemp(prefix="switchyard-chromium-")
        try:
            args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={profile}"]
            if screenshot:
                args += [f"--screenshot={screenshot}", "--window-size=800,300", url]
            else:
                args += ["--dump-dom", url]
            out = subprocess.run(args, capture_output=True, timeout=60)
            return out.stdout.decode("utf-8", "replace")
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def test_chromium_binary_messages_through_terminate(self):
        with TcpService("echo") as echo, page_backend(echo) as page:
            cfg = make_config([], upstreams={"page": {"servers": [page.address]},
                                             "echo": {"servers": [echo.address]}},
                              routes=[{"name": "ws", "match": {"path_prefix": "/ws"},
                                       "upstream": "echo",
                                       "upgrade": {"allow": ["websocket"],
                                                   "terminate": "websocket",
                                                   "subprotocols": ["binary"]}},
                                      {"name": "page", "match": {"path_prefix": "/"},
                                       "upstream": "page"}])
            with Proxy(cfg) as px:
                dom = self.browse(f"http://127.0.0.1:{px.port}/")
                m = VERDICT.search(dom)
                self.assertIsNotNone(m, f"no verdict in the DOM: {dom[-2000:]!r}")
                self.assertTrue(m.group(1).startswith("PASS 100 binary messages"), m.group(1))
                conn = echo.conns[0]
                self.assertTrue(conn.eof.is_set(), "the echo service never saw EOF")
                # the service got exactly the page's bytes: no HTTP, no frame headers
                self.assertEqual(len(conn.received), int(m.group(1).split(", ")[1].split()[0]))
                wait_metric_sum(px, "switchyard_upgrades_total", 1, route="ws",
                                protocol="websocket", outcome="terminated")
                wait_metric_sum(px, "switchyard_tunnels_active", 0)
                # A picture of the page after a second run, for people.
                artifacts = os.environ.get("SWITCHYARD_ARTIFACTS", tempfile.gettempdir())
                os.makedirs(artifacts, exist_ok=True)
                shot = os.path.join(artifacts, "switchyard-browser-terminate.png")
                self.browse(f"http://127.0.0.1:{px.port}/", screenshot=shot)
                self.assertTrue(os.path.getsize(shot) > 0)
                wait_metric_sum(px, "switchyard_tunnels_active", 0)


if __name__ == "__main__":
    main()
