"""conf/kubernetes/: the manifests docs/scale-out.md describes hold together.

- The ConfigMap's configuration passes `switchyard --check`.
- terminationGracePeriodSeconds covers the preStop sleep plus timeouts.shutdown_drain (read
  from that configuration) with a margin, so SIGKILL never cuts a drain short.
- The readiness and liveness probes ask the admin listener's /healthz, on the port the
  configuration gives `admin.address`, reachable from the kubelet (not loopback).
- The listener, the container port and the Service's targetPort agree; the Deployment's,
  the Service's and the PodDisruptionBudget's selectors pick the pods.
- The configuration is mounted as a directory (subPath mounts are never updated) at the
  path the command reads; the reload sidecar watches that file and signals the pid in the
  pid_file, which lives in a volume both containers mount; non-root, read-only root
  filesystem, no capabilities, requests and limits; `workers` = the CPU limit.
- The sidecar's loop itself, run here with /bin/sh against a real Switchyard: a changed
  file is reloaded (SIGHUP), an invalid one is refused and the proxy keeps running.
- kubectl, when installed: `kubectl apply --dry-run=client --validate=false -f
  conf/kubernetes/`. Without a cluster kubectl still needs the API's discovery documents
  to map each kind to a resource, so the test serves those (and 404 for every object) on
  a loopback port; nothing validates the fields there (that needs a real API server).
"""

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import yaml

from harness import SWITCHYARD_BIN, main

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.normpath(os.path.join(HERE, "..", "..", "conf", "kubernetes"))


def load_manifests():
    out = {}
    for name in sorted(os.listdir(KDIR)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(KDIR, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                out.setdefault(doc["kind"], []).append(doc)
    return out


def seconds(duration):
    """A Switchyard duration ('30s', '250ms', '1m', '1h') in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(duration))
    if not m:
        raise AssertionError(f"not a duration: {duration!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def host_of(address):
    return str(address).rsplit(":", 1)[0]


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = load_manifests()
        cls.configmap = cls.m["ConfigMap"][0]
        cls.deployment = cls.m["Deployment"][0]
        cls.service = cls.m["Service"][0]
        cls.pdb = cls.m["PodDisruptionBudget"][0]
        cls.config_text = cls.configmap["data"]["switchyard.yaml"]
        cls.config = yaml.safe_load(cls.config_text)
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        cls.containers = {c["name"]: c for c in cls.pod["containers"]}
        cls.proxy = cls.containers["switchyard"]
        cls.reloader = cls.containers["config-reloader"]

    def named_port(self, container, port):
        if isinstance(port, int):
            return port
        for p in container.get("ports", []):
            if p["name"] == port:
                return p["containerPort"]
        self.fail(f"container {container['name']} has no port named {port!r}")

    def prestop_seconds(self):
        pre = self.proxy["lifecycle"]["preStop"]
        if "sleep" in pre:
            return pre["sleep"]["seconds"]
        cmd = pre["exec"]["command"]
        self.assertRegex(cmd[0], r"(^|/)sleep$")
        return int(cmd[1])

    def test_one_of_each_kind(self):
        self.assertEqual({k: len(v) for k, v in self.m.items()},
                         {"ConfigMap": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1})
        for docs in self.m.values():
            self.assertEqual(docs[0]["metadata"]["name"], "switchyard")
        self.assertEqual(self.deployment["apiVersion"], "apps/v1")
        self.assertEqual(self.pdb["apiVersion"], "policy/v1")

    def test_config_passes_switchyard_check(self):
        self.assertTrue(SWITCHYARD_BIN, "SWITCHYARD_BIN is not set (CTest sets it to the switchyard under test)")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "switchyard.yaml")
            with open(path, "w") as f:
                f.write(self.config_text)
            r = subprocess.run([SWITCHYARD_BIN, "--check", "--config", path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30, check=False)
            out = r.stdout.decode(errors="replace")
            self.assertEqual(r.returncode, 0, out)
            self.assertIn(f"{path}: ok", out)

    def test_grace_period_covers_prestop_and_drain(self):
        drain = seconds(self.config["timeouts"]["shutdown_drain"])
        grace = self.pod["terminationGracePeriodSeconds"]
        prestop = self.prestop_seconds()
        self.assertGreater(prestop, 0, "preStop must wait for the endpoints to be removed")
        self.assertGreaterEqual(grace, prestop + drain + 5,
                                f"terminationGracePeriodSeconds {grace} must exceed preStop {prestop} s + "
                                f"shutdown_drain {drain} s with a margin")
        # A wedged process is killed sooner than a draining one is waited for.
        self.assertLess(self.proxy["livenessProbe"].get("terminationGracePeriodSeconds", grace), grace)

    def test_probes_ask_the_admin_healthz(self):
        admin = self.config["admin"]["address"]
        self.assertEqual(host_of(admin), "0.0.0.0", "the kubelet probes the pod's address, not its loopback")
        for probe in ("readinessProbe", "livenessProbe"):
            get = self.proxy[probe]["httpGet"]
            self.assertEqual(get["path"], "/healthz", probe)
            self.assertEqual(self.named_port(self.proxy, get["port"]), port_of(admin), probe)
        ann = self.deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(ann["prometheus.io/port"]), port_of(admin))

    def test_listener_container_port_and_service_agree(self):
        listeners = self.config["listen"]
        self.assertEqual(len(listeners), 1)
        self.assertEqual(host_of(listeners[0]["address"]), "0.0.0.0")
        (sport,) = self.service["spec"]["ports"]
        self.assertEqual(self.named_port(self.proxy, sport["targetPort"]), port_of(listeners[0]["address"]))
        self.assertNotIn(port_of(self.config["admin"]["address"]),
                         [p.get("targetPort") for p in self.service["spec"]["ports"]] + [
                             self.named_port(self.proxy, p["targetPort"]) for p in self.service["spec"]["ports"]],
                         "the Service must not expose the admin port")

    def test_selectors_pick_the_pods(self):
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        for selector in (self.deployment["spec"]["selector"]["matchLabels"], self.service["spec"]["selector"],
                         self.pdb["spec"]["selector"]["matchLabels"]):
            self.assertTrue(selector)
            self.assertLessEqual(selector.items(), labels.items())
        replicas = self.deployment["spec"]["replicas"]
        self.assertGreaterEqual(replicas, 2)
        if "maxUnavailable" in self.pdb["spec"]:
            self.assertLess(self.pdb["spec"]["maxUnavailable"], replicas)
        else:
            self.assertLess(self.pdb["spec"]["minAvailable"], replicas)
        self.assertEqual(self.deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

    def test_config_mount_and_reload_wiring(self):
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        cm_volumes = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "switchyard"]
        self.assertEqual(len(cm_volumes), 1)
        command = " ".join(self.proxy["command"] + self.proxy.get("args", []))
        self.assertIn("--config /etc/switchyard/switchyard.yaml", command)
        self.assertRegex(command, r"exec /usr/s?bin/switchyard ", "the shell must exec Switchyard (signals)")
        pid_file = self.config["pid_file"]
        for c in (self.proxy, self.reloader):
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            m = mounts.get("/etc/switchyard")
            self.assertIsNotNone(m, f"{c['name']}: the ConfigMap is not at /etc/switchyard")
            self.assertEqual(m["name"], cm_volumes[0])
            self.assertNotIn("subPath", m, "a subPath mount is never updated")
            pid_mount = mounts.get(os.path.dirname(pid_file))
            self.assertIsNotNone(pid_mount, f"{c['name']}: pid_file's directory is not mounted")
            self.assertIn("emptyDir", volumes[pid_mount["name"]])
        self.assertFalse(self.proxy_mount(os.path.dirname(pid_file)).get("readOnly", False))
        self.assertTrue(self.pod["shareProcessNamespace"], "the sidecar must see Switchyard's process")
        script = self.reloader["command"][-1]
        self.assertIn("/etc/switchyard/switchyard.yaml", script)
        self.assertIn(pid_file, script)
        self.assertIn("kill -HUP", script)
        # Same user: a process may signal another of its own user, no capability needed.
        ctx = self.pod["securityContext"]
        for c in (self.proxy, self.reloader):
            self.assertEqual(c.get("securityContext", {}).get("runAsUser", ctx["runAsUser"]), ctx["runAsUser"])

    def proxy_mount(self, path):
        return next(m for m in self.proxy["volumeMounts"] if m["mountPath"] == path)

    def test_non_root_read_only_and_resources(self):
        ctx = self.pod["securityContext"]
        self.assertTrue(ctx["runAsNonRoot"])
        self.assertGreater(ctx["runAsUser"], 0)
        for c in self.pod["containers"]:
            sc = c["securityContext"]
            self.assertTrue(sc["readOnlyRootFilesystem"], c["name"])
            self.assertFalse(sc["allowPrivilegeEscalation"], c["name"])
            self.assertEqual(sc["capabilities"]["drop"], ["ALL"], c["name"])
            for kind in ("requests", "limits"):
                self.assertEqual(set(c["resources"][kind]), {"cpu", "memory"}, f"{c['name']} {kind}")
        self.assertEqual(int(self.config["workers"]), int(self.proxy["resources"]["limits"]["cpu"]),
                         "workers = the container's CPU limit ('auto' would count the node's cores)")
        # The descriptor limit: raised to the hard limit before Switchyard starts.
        self.assertIn('ulimit -n "$(ulimit -Hn)"', self.proxy["command"][-1])

    def test_reload_sidecar_loop_against_switchyard(self):
        """The sidecar's script, with its paths moved to a temporary directory and its
        5 s poll made 0.2 s, run by /bin/sh beside a real Switchyard."""
        self.assertTrue(SWITCHYARD_BIN, "SWITCHYARD_BIN is not set (CTest sets it to the switchyard under test)")
        with tempfile.TemporaryDirectory() as d:
            conf, pid = os.path.join(d, "switchyard.yaml"), os.path.join(d, "switchyard.pid")
            base = ("listen: [{ address: 127.0.0.1:0 }]\n"
                    "upstreams: { app: { servers: [127.0.0.1:9] } }\n"
                    f"pid_file: {pid}\naccess_log: {{ path: 'off' }}\n")
            routes = "routes:\n  - { upstream: app }\n"

            def replace(text):  # as the kubelet does: the new file appears whole
                tmp = conf + ".new"
                with open(tmp, "w") as f:
                    f.write(text)
                os.rename(tmp, conf)

            replace(base + routes)
            script = (self.reloader["command"][-1].replace("/etc/switchyard/switchyard.yaml", conf)
                      .replace(self.config["pid_file"], pid).replace("sleep 5", "sleep 0.2"))
            self.assertNotIn("/etc/switchyard", script)
            err = open(os.path.join(d, "stderr"), "wb")
            proxy = subprocess.Popen([SWITCHYARD_BIN, "--config", conf], stdout=subprocess.DEVNULL, stderr=err)
            sidecar = None
            try:
                wait_until(lambda: os.path.exists(pid), 10, "the pid file")
                sidecar = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                time.sleep(0.5)  # the loop has read the first checksum
                replace(base + "routes:\n  - { name: changed, upstream: app }\n")
                wait_until(lambda: "reloaded" in read(err.name), 10, "'reloaded' after the file changed")
                replace(base + "routes: [ { upstream: nowhere } ]\n")
                wait_until(lambda: "reload failed" in read(err.name), 10, "'reload failed' for an invalid file")
                self.assertIsNone(proxy.poll(), "Switchyard stopped on an invalid file:\n" + read(err.name))
                self.assertEqual(read(err.name).count("reloaded"), 1, read(err.name))
                sidecar.send_signal(signal.SIGTERM)
                out = sidecar.communicate(timeout=10)[0].decode()
                self.assertEqual(sidecar.returncode, 0, out)
                self.assertEqual(out.count("sent SIGHUP to"), 2, out)
            finally:
                for p in (sidecar, proxy):
                    if p and p.poll() is None:
                        p.kill()
                        p.wait(10)
                err.close()

    def test_kubectl_client_dry_run(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl is not installed: the client dry run was not run")
        server = DiscoveryStub()
        try:
            with tempfile.TemporaryDirectory() as d:
                kubeconfig = os.path.join(d, "kubeconfig")
                with open(kubeconfig, "w") as f:
                    f.write(server.kubeconfig())
                argv = [kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=client", "--validate=false",
                        "-f", KDIR]
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, check=False,
                                   env=dict(os.environ, KUBECONFIG=kubeconfig))
                out = r.stdout.decode(errors="replace")
                print(f"\nran: {' '.join(argv)}\n{out}", flush=True)
                self.assertEqual(r.returncode, 0, out)
                for obj in ("configmap/switchyard", "deployment.apps/switchyard",
                            "poddisruptionbudget.policy/switchyard", "service/switchyard"):
                    self.assertIn(f"{obj} created (dry run)", out)
        finally:
            server.close()


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.05)


class DiscoveryStub:
    """Answers kubectl's discovery requests for the four kinds in conf/kubernetes/ on a
    loopback port, and 404 for every object (so that `apply` would create it). It stands
    in for the API server only for what a client dry run needs to map kinds to resources;
    it validates nothing."""

    RESOURCES = {
        "/api/v1": ("v1", [("configmaps", "ConfigMap"), ("services", "Service")]),
        "/apis/apps/v1": ("apps/v1", [("deployments", "Deployment")]),
        "/apis/policy/v1": ("policy/v1", [("poddisruptionbudgets", "PodDisruptionBudget")]),
    }

    def __init__(self):
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                code, body = stub.answer(self.path.split("?", 1)[0])
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path):
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in ("apps", "policy")]}
        if path in self.RESOURCES:
            gv, resources = self.RESOURCES[path]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": name, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch", "update"]} for name, kind in resources]}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                     "message": f"{path} not found"}

    def kubeconfig(self):
        port = self.httpd.server_address[1]
        return ("apiVersion: v1\nkind: Config\n"
                f"clusters: [{{name: stub, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
                "contexts: [{name: stub, context: {cluster: stub, namespace: default}}]\n"
                "current-context: stub\nusers: []\n")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    main()
