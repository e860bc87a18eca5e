"""Scale-out, small: two Switchyard instances behind an nftables DNAT "service" (numgen inc,
as kube-proxy's nftables mode) and then behind HAProxy (TCP, leastconn, send-proxy-v2 to
`proxy_protocol: true` listeners), in network namespaces made for the test and removed
afterwards, even when it fails (bench/scaleout/scaleout_lab.py, the lab bench/scaleout.sh
runs at full size; docs/scale-out.md).

What docs/operations.md and docs/configuration.md promise, through each front:
- the balancer spreads WebSocket sessions over both instances (switchyard_tunnels_active
  on each admin listener is > 0 and equals the sessions the backend saw through it);
- the backend sees each client's own address in X-Forwarded-For (DNAT keeps it; HAProxy
  hands it over in the PROXY v2 header), and so does each instance's JSON access log;
- SIGTERM: listeners close at once, tunnels go on until timeouts.shutdown_drain and are then
  closed (`shutdown`), and the process exits 0: the drained instance's sessions keep
  exchanging messages during the drain and end at its deadline, not before;
- sessions started after the instance was taken out of the balancer land on the other one,
  and no session anywhere loses or corrupts a message (sequence numbers and checksums,
  checked by the clients and by the backend).

Needs root, iproute2, nftables, haproxy, curl and python3-websockets: without them it FAILS
and says what is missing (it never skips).
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "scaleout"))
import scaleout_lab  # noqa: E402

FRONTS = ["nftables", "haproxy"]
DRAIN = 3.0


class ScaleOut(unittest.TestCase):
    results = None
    error = None
    prefix = f"sytest-{os.getpid()}"

    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("SWITCHYARD_BIN", "")
        problems = scaleout_lab.missing_requirements(FRONTS)
        if not binary:
            problems.append("SWITCHYARD_BIN is not set (CTest sets it to the switchyard under test)")
        if problems:
            cls.error = "cannot run the scale-out test:\n  " + "\n  ".join(problems)
            return
        # Configs, logs and records: kept when something fails (under the CI artifacts
        # folder when CTest gives one), removed otherwise.
        artifacts = os.environ.get("SWITCHYARD_ARTIFACTS")
        if artifacts:
            os.makedirs(artifacts, exist_ok=True)
        workdir = tempfile.mkdtemp(prefix="scaleout-", dir=artifacts or None)
        t0 = time.monotonic()
        try:
            results, _ = scaleout_lab.run_lab(cls.prefix, instances=2, sessions=60, wave2=20, drain=DRAIN,
                                              fronts=FRONTS, haproxy_drain="disable", sources=4,
                                              switchyard=binary, workdir=workdir)
        except Exception as e:  # reported by every test below, with the lab's own message
            cls.error = f"the scale-out lab failed: {type(e).__name__}: {e}\n(its files: {workdir})"
            return
        cls.results = {r["front"]: r for r in results}
        sys.stderr.write(scaleout_lab.summary(results) + f"\n(lab: {time.monotonic() - t0:.1f}s)\n")
        if all(r["passed"] for r in results):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            sys.stderr.write(f"the lab's files are kept in {workdir}\n")

    def setUp(self):
        if self.error:
            self.fail(self.error)

    def each_front(self):
        for front in FRONTS:
            with self.subTest(front=front):
                yield front, self.results[front]

    def test_namespaces_removed(self):
        left = [ns for ns in scaleout_lab.namespaces() if ns.startswith(self.prefix + "-")]
        self.assertEqual(left, [], "the lab's namespaces were not removed")

    def test_spread_over_both_instances(self):
        for front, r in self.each_front():
            spread = r["spread_tunnels_active"]
            self.assertEqual(sorted(spread), ["i1", "i2"])
            for inst, n in spread.items():
                self.assertGreater(n, 0, f"{front}: {inst} got no tunnel: {spread}")
                self.assertEqual(n, r["sessions_per_instance"][inst]["w1"],
                                 f"{front}: {inst}'s switchyard_tunnels_active is not the number of sessions "
                                 f"the backend saw through it: {r['sessions_per_instance']}")
            self.assertEqual(sum(spread.values()), 60)
            self.assertTrue(r["checks"]["all sessions opened"], r["checks"])

    def test_client_addresses_reach_the_backend(self):
        for front, r in self.each_front():
            sources = set(r["client_sources"])
            self.assertEqual(len(sources), 4)
            seen = set().union(*map(set, r["xff_seen_by_backend"].values()))
            self.assertEqual(seen, sources, f"{front}: X-Forwarded-For at the backend")
            logged = set().union(*(set(a["clients"]) for a in r["access_log"].values()))
            self.assertEqual(logged, sources, f"{front}: client addresses in the access logs")
            # Every session's X-Forwarded-For is exactly its own source (checked per session).
            self.assertTrue(r["checks"]["backends saw every client address"])
            self.assertFalse([b for b in r["broken_examples"] if any("Forwarded" in w for w in b["why"])])

    def test_proxy_protocol_from_haproxy(self):
        r = self.results["haproxy"]
        self.assertTrue(r["checks"]["no PROXY protocol errors"], r["checks"])
        self.assertNotIn(scaleout_lab.HAPROXY_ADDR, set().union(*map(set, r["xff_seen_by_backend"].values())),
                         "HAProxy's own address reached the backend: the PROXY header was not used")

    def test_drain(self):
        for front, r in self.each_front():
            d = r["drain"]
            self.assertEqual(d["exit_code"], 0, f"{front}: the drained instance's exit status")
            self.assertGreaterEqual(d["exit_after_s"], DRAIN - 0.2, f"{front}: exited before shutdown_drain")
            self.assertLessEqual(d["exit_after_s"], DRAIN + 2.0, f"{front}: exited long after shutdown_drain")
            self.assertGreater(d["sessions"], 0, f"{front}: no session was on the drained instance")
            self.assertEqual(r["drained_expected"], d["sessions"],
                             f"{front}: not every session on the drained instance ended at its deadline: "
                             f"{r['broken_examples']}")
            self.assertGreaterEqual(d["closed_after_s"]["min"], DRAIN - 0.3, f"{front}: a tunnel closed early")
            self.assertLessEqual(d["closed_after_s"]["max"], DRAIN + 1.5, f"{front}: a tunnel closed late")
            self.assertGreater(d["messages_during_drain_min"], 0, f"{front}: a tunnel was idle during the drain")
            ends = r["access_log"][d["instance"]]["ends"]
            self.assertEqual(ends, {"shutdown": d["sessions"]}, f"{front}: drained instance's access-log ends")

    def test_new_sessions_go_to_the_others(self):
        for front, r in self.each_front():
            per = r["sessions_per_instance"]
            self.assertEqual(per["i1"]["w2"], 0, f"{front}: new sessions reached the drained instance: {per}")
            self.assertEqual(per["i2"]["w2"], 20, f"{front}: {per}")
            self.assertEqual(r["tunnels_active_after_drain"]["i2"], per["i2"]["w1"] + per["i2"]["w2"])

    def test_no_broken_session(self):
        for front, r in self.each_front():
            self.assertEqual(r["broken"], 0, f"{front}: {r['broken_examples']}")
            self.assertEqual(r["ok"] + r["drained_expected"], 80)
            self.assertEqual(r["access_log"]["i2"]["ends"], {"eof": r["ok"]}, f"{front}: the other instance")
            self.assertTrue(r["passed"], r["checks"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
