"""The command line: --check, configuration errors as FILE:LINE:COL, --version, --help
(docs/configuration.md)."""

import os
import re
import subprocess
import tempfile
import unittest

from harness import SWITCHYARD_BIN, main

GOOD = """\
listen: [{ address: 127.0.0.1:8080 }]
upstreams: { app: { servers: [127.0.0.1:9000] } }
routes:
  - match: { path_prefix: / }
    upstream: app
    upgrade: { allow: [websocket] }
"""

FULL = """\
listen:
  - address: 127.0.0.1:8080
workers: 1
upstreams:
  chat:
    servers: [127.0.0.1:9001, 127.0.0.1:9002]
    balance: least_conn
    keepalive: 32
    health:
      max_fails: 3
      cooldown: 10s
      check: { path: /healthz, interval: 5s }
routes:
  - match:
      host: chat.example.com
      path_prefix: /ws
      upgrade: websocket
    upstream: chat
    upgrade:
      allow: [websocket]
      on_disallowed: strip
      require: false
  - match: { path_prefix: / }
    upstream: chat
timeouts:
  request_header: 10s
  keepalive_idle: 60s
  upstream_connect: 5s
  upstream_response: 60s
  tunnel_idle: 1h
  shutdown_drain: 30s
limits:
  max_connections: 10000
  max_header_bytes: 32KiB
  max_headers: 100
tunnel:
  buffer: 256KiB
  splice: auto
forwarding:
  x_forwarded_for: true
  x_forwarded_proto: true
  via: false
admin:
  address: 127.0.0.1:9901
access_log:
  path: "-"
"""

BASE = "listen: [{ address: 127.0.0.1:8080 }]\nupstreams: { app: { servers: [127.0.0.1:9000] } }\n"

# (name, file text, expected "LINE:COL" or None when only the format is checked,
#  words the message must contain)
BAD = [
    ("unknown top-level key", BASE + "routes: [{ match: { path_prefix: / }, upstream: app }]\n"
     "timeout: { request_header: 1s }\n", "4:1", ["timeouts"]),
    ("route names an unknown upstream", BASE + "routes:\n  - upstream: nope\n", None, ["nope"]),
    ("bad duration", BASE + "routes: [{ upstream: app }]\ntimeouts:\n  request_header: 10 parsecs\n",
     "5:19", []),
    ("bad size", BASE + "routes: [{ upstream: app }]\nlimits: { max_header_bytes: lots }\n",
     None, []),
    ("bad address", "listen: [{ address: nowhere }]\nupstreams: { app: { servers: [127.0.0.1:9000] } }\n"
     "routes: [{ upstream: app }]\n", None, []),
    ("upstream without servers", "listen: [{ address: 127.0.0.1:8080 }]\n"
     "upstreams: { app: { servers: [] } }\nroutes: [{ upstream: app }]\n", None, []),
    ("missing routes", BASE, None, ["routes"]),
    ("wrong type", BASE + "routes: [{ upstream: app }]\nworkers: [1, 2]\n", None, []),
    ("not YAML", "listen: [\n", None, []),
]


def run(args, cwd=None):
    if not SWITCHYARD_BIN:
        raise unittest.SkipTest("SWITCHYARD_BIN is not set")
    return subprocess.run([SWITCHYARD_BIN] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=10)


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="switchyard-cli-")
        self.addCleanup(self.dir.cleanup)

    def write(self, name, text):
        with open(os.path.join(self.dir.name, name), "w") as f:
            f.write(text)

    def test_check_good_config_prints_path_ok(self):
        for name, text in (("good.yaml", GOOD), ("full.yaml", FULL)):
            with self.subTest(name):
                self.write(name, text)
                r = run(["--check", "--config", name], cwd=self.dir.name)
                self.assertEqual(r.returncode, 0, r.stderr)
                out = (r.stdout + r.stderr).decode()
                self.assertIn(f"{name}: ok\n", out)

    def test_check_prints_the_path_as_given(self):
        os.mkdir(os.path.join(self.dir.name, "sub"))
        self.write("sub/good.yaml", GOOD)
        r = run(["--check", "--config", "./sub/good.yaml"], cwd=self.dir.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("./sub/good.yaml: ok\n", (r.stdout + r.stderr).decode())

    def test_bad_configs_are_reported_as_file_line_col(self):
        for name, text, where, words in BAD:
            with self.subTest(name):
                self.write("bad.yaml", text)
                for args in (["--check", "--config", "bad.yaml"], ["--config", "bad.yaml"]):
                    r = run(args, cwd=self.dir.name)
                    self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
                    err = r.stderr.decode()
                    m = re.search(r"^bad\.yaml:(\d+):(\d+): \S.*$", err, re.M)
                    self.assertIsNotNone(m, f"no FILE:LINE:COL: message in {err!r}")
                    if where:
                        self.assertEqual(f"{m.group(1)}:{m.group(2)}", where, err)
                    for w in words:
                        self.assertIn(w, m.group(0))
                    self.assertNotIn("listening", err)

    def test_missing_file_exits_1(self):
        r = run(["--check", "--config", "absent.yaml"], cwd=self.dir.name)
        self.assertEqual(r.returncode, 1)
        self.assertIn("absent.yaml", r.stderr.decode())

    def test_version(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex((r.stdout + r.stderr).decode(), r"\d+\.\d+\.\d+")

    def test_help(self):
        r = run(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--config", (r.stdout + r.stderr).decode())

    def test_unknown_option_fails(self):
        r = run(["--bogus"])
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    main()
