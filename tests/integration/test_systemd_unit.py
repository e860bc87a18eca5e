"""conf/switchyard.service: systemd accepts it (systemd-analyze verify) and it has what
docs/operations.md promises: its own user, reload by SIGHUP, stop by SIGTERM with time for
the drain, a raised descriptor limit, CAP_NET_BIND_SERVICE and sandboxing."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import SWITCHYARD_BIN, main

UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "switchyard.service")


def directives(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("["):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


class SystemdUnit(unittest.TestCase):
    def setUp(self):
        with open(UNIT) as f:
            self.text = f.read()
        self.d = directives(self.text)

    def test_systemd_analyze_verifies_it(self):
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze not found (package systemd, see .ci/install-deps)")
        if not SWITCHYARD_BIN:
            raise unittest.SkipTest("SWITCHYARD_BIN is not set")
        with tempfile.TemporaryDirectory() as d:
            # The unit as installed, pointing at the binary under test.
            unit = os.path.join(d, "switchyard.service")
            with open(unit, "w") as f:
                f.write(self.text.replace("/usr/local/bin/switchyard", os.path.abspath(SWITCHYARD_BIN)))
            r = subprocess.run([analyze, "verify", unit], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=60, check=False)
            out = r.stdout.decode(errors="replace")
            # Lines about the host (no network-online target in a container) are not ours.
            ours = [l for l in out.splitlines() if "switchyard.service" in l]
            self.assertEqual(ours, [], out)

    def test_what_operations_md_promises(self):
        d = self.d
        self.assertEqual(d["User"], ["switchyard"])
        # Readiness, and the binary upgrade's new process taking over as the main process.
        self.assertEqual(d["Type"], ["notify"])
        self.assertEqual(d["NotifyAccess"], ["all"])
        self.assertTrue(any(re.fullmatch(r"(/bin/|/usr/bin/)?kill -HUP \$MAINPID", v) for v in d["ExecReload"]))
        self.assertEqual(d.get("KillSignal", ["SIGTERM"]), ["SIGTERM"])
        # The default shutdown_drain is 30 s: systemd must wait longer before SIGKILL.
        self.assertRegex(d["TimeoutStopSec"][0], r"^(3[1-9]|[4-9]\d|\d{3,})s$")
        self.assertGreaterEqual(int(d["LimitNOFILE"][0]), 65536)
        self.assertIn("CAP_NET_BIND_SERVICE", d["AmbientCapabilities"][0])
        for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
            self.assertIn(hardening, d)
        self.assertTrue(any("--check" in v for v in d["ExecStartPre"]))


if __name__ == "__main__":
    main()
