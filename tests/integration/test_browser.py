"""A real browser through the proxy (docs/tls.md): headless chromium loads a page over
https:// and the page's script exchanges messages over wss:// with a python3-websockets
echo server behind the proxy; the verdict is read back from the DOM. The same over plain
http:// and ws://. A screenshot of the TLS run is kept in $SWITCHYARD_ARTIFACTS (default:
the system temp directory)."""

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

from e2e_support import WsEchoServer
from harness import Proxy, ScriptedBackend, main, make_config, serve_forever
from test_tls import Pki

CHROMIUM = shutil.which("chromium")

PAGE = b"""<!doctype html>
<html><head><title>switchyard</title></head><body><p id="verdict">pending</p>
<iframe src="/slow" style="display:none"></iframe>
<script>
const v = document.getElementById("verdict");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.binaryType = "arraybuffer";
const bytes = new Uint8Array(70000).map((_, i) => i % 251);
let step = 0;
ws.onopen = () => ws.send("hello " + location.protocol);
ws.onmessage = (e) => {
  if (step === 0) {
    if (e.data !== "hello " + location.protocol) { v.textContent = "FAIL text " + e.data; return; }
    step = 1; ws.send(bytes); return;
  }
  const got = new Uint8Array(e.data);
  const same = got.length === bytes.length && got.every((b, i) => b === bytes[i]);
  v.textContent = same ? "PASS " + location.protocol : "FAIL binary " + got.length;
  ws.close(1000, "done");
};
ws.onerror = () => { v.textContent = "FAIL error"; };
</script></body></html>
"""


def page_backend():
    import time

    def respond(conn, request):
        if request.startswith(b"GET /slow "):
            time.sleep(2)  # the load event, and so the DOM dump, waits for this frame
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/html\r\n\r\nok"
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
                % len(PAGE) + PAGE)
    return ScriptedBackend(serve_forever(respond))


def spki_hash(cert_path):
    der = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    key = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(key).digest()).decode()


@unittest.skipUnless(CHROMIUM, "chromium is needed")
class Browser(unittest.TestCase):
    def browse(self, url, extra=(), screenshot=None):
        profile = tempfile.mkdtemp(prefix="switchyard-chromium-")
        try:
            args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={profile}", "--host-resolver-rules=MAP a.test 127.0.0.1", *extra]
            if screenshot:
                args += [f"--screenshot={screenshot}", "--window-size=800,300", url]
            else:
                args += ["--dump-dom", url]
            out = subprocess.run(args, capture_output=True, timeout=60)
            return out.stdout.decode("utf-8", "replace")
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def config(self, page, ws, tls=None):
        listen = {"address": "127.0.0.1:0"}
        if tls:
            listen["tls"] = {"cert": tls[0], "key": tls[1]}
        return make_config([page.address], listen=[listen],
                           upstreams={"page": {"servers": [page.address]}, "ws": {"servers": [f"127.0.0.1:{ws.port}"]}},
                           routes=[{"match": {"path_prefix": "/ws"}, "upstream": "ws",
                                    "upgrade": {"allow": ["websocket"]}},
                                   {"match": {"path_prefix": "/"}, "upstream": "page"}])

    def test_https_page_and_wss_messages(self):
        pki = Pki()
        try:
            cert = pki.leaf("a.test")
            with WsEchoServer() as ws, page_backend() as page, Proxy(self.config(page, ws, cert)) as px:
                trust = (f"--ignore-certificate-errors-spki-list={spki_hash(cert[0])}",)
                dom = self.browse(f"https://a.test:{px.port}/", trust)
                self.assertIn('<p id="verdict">PASS https:</p>', dom)
                artifacts = os.environ.get("SWITCHYARD_ARTIFACTS", tempfile.gettempdir())
                os.makedirs(artifacts, exist_ok=True)
                shot = os.path.join(artifacts, "switchyard-browser-wss.png")
                self.browse(f"https://a.test:{px.port}/", trust, screenshot=shot)
                self.assertTrue(os.path.getsize(shot) > 0)
                px.wait_metric("switchyard_tunnels_active", 0)
        finally:
            pki.cleanup()

    def test_http_page_and_ws_messages(self):
        with WsEchoServer() as ws, page_backend() as page, Proxy(self.config(page, ws)) as px:
            dom = self.browse(f"http://a.test:{px.port}/")
            self.assertIn('<p id="verdict">PASS http:</p>', dom)
            px.wait_metric("switchyard_tunnels_active", 0)


if __name__ == "__main__":
    main()
