#!/usr/bin/python3
"""Several Switchyard instances behind a kernel balancer (nftables DNAT, `numgen inc`) or
HAProxy (TCP, leastconn, PROXY v2), in network namespaces made here and removed afterwards.

Used by bench/scaleout.sh (the full run) and tests/integration/test_scaleout.py (a small
one). Needs root, `ip` (iproute2), `nft` (nftables), curl, python3-websockets, and for the
HAProxy front `haproxy`.

    scaleout_lab.py run [--instances 3] [--sessions 300] [--wave2 60] [--drain 3]
                        [--fronts nftables,haproxy] [--haproxy-drain disable|check]
                        [--sources 8] [--out FILE] [--switchyard BIN] [--prefix P]
    scaleout_lab.py cleanup --prefix P      remove what a run with that prefix left
    scaleout_lab.py cleanup-stale           remove namespaces of runs whose process is gone

The topology (every address exists only inside these namespaces; the host's own network
configuration is never touched: no interface, route, sysctl or rule is added to it):

    P-c  (clients: 10.77.1.10, .11, ...)           P-b  backend 10.77.20.2:9000 (wsbackend.py)
      |                                              |
    P-r  router: forwards, and holds the nftables    P-h  HAProxy 10.77.30.2:80
      |  "service" 10.77.0.100:80 (on no interface,
      |  like a ClusterIP: DNAT in prerouting)
    P-i1 .. P-iN  Switchyard, 10.77.(10+K).2: :8080 plain, :8081 proxy_protocol, admin :9901

Each leaf namespace is joined to P-r by a veth pair created directly inside the two
namespaces, and routes everything through it.

One run per front: start the instances (and HAProxy), open wave 1 (N sessions, ramped),
scrape switchyard_tunnels_active on every instance (the spread), take instance 1 out of
the balancer (nftables: the service chain is rewritten without it, as kube-proxy does when
an endpoint goes away; HAProxy: `disable server`, or only its health check), start wave 2
(new sessions arriving through the whole drain), SIGTERM instance 1, check that it exits at
its shutdown_drain deadline and that its sessions were closed then and not before, then
close every other session cleanly and compare what the clients, the backend, the metrics
and the access logs saw.
"""

import argparse
import csv
import datetime
import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"

NET = "10.77"
VIP, VIP_PORT = f"{NET}.0.100", 80
HAPROXY_ADDR, HAPROXY_PORT = f"{NET}.30.2", 80
BACKEND_ADDR, BACKEND_PORT = f"{NET}.20.2", 9000
PLAIN_PORT, PROXY_PORT, ADMIN_PORT = 8080, 8081, 9901
NFT_TABLE = "switchyard_lb"

# Namespace names are "<kind>-<pid>-<role>"; cleanup-stale removes those whose pid is gone.
PREFIX_KINDS = ("syso", "sytest")
STALE_RE = re.compile(r"^(%s)-(\d+)-" % "|".join(PREFIX_KINDS))

START_TIMEOUT = 10.0


def log(msg):
    sys.stderr.write(f"[scaleout {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def run(argv, timeout=10.0, check=True, input=None):
    r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def missing_requirements(fronts):
    """What stops a run here, as sentences (empty: nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: network namespaces, veth pairs and nftables need root (run as root)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("curl", "curl")):
        if not shutil.which(tool):
            problems.append(f"'{tool}' not found: apt-get install -y {package}")
    if "haproxy" in fronts and not shutil.which("haproxy"):
        problems.append("'haproxy' not found: apt-get install -y haproxy")
    r = subprocess.run([PY, "-c", "import websockets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        problems.append("python3-websockets is not importable by /usr/bin/python3: apt-get install -y python3-websockets")
    return problems


# --------------------------------------------------------------------------- cleanup


def namespaces():
    r = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def remove_namespace(ns):
    """Kills the processes running in `ns` (all started by a run of this lab: nothing else
    enters these namespaces), then deletes it; its veth ends go with it."""
    r = run(["ip", "netns", "pids", ns], check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + 5
    while run(["ip", "netns", "pids", ns], check=False).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    run(["ip", "netns", "del", ns], check=False)


def cleanup_prefix(prefix):
    gone = [ns for ns in namespaces() if ns.startswith(prefix + "-")]
    for ns in gone:
        remove_namespace(ns)
    return gone


def cleanup_stale():
    """Namespaces left by a run of this lab whose process no longer exists (killed with
    SIGKILL, say, so that its own cleanup could not run)."""
    gone = []
    for ns in namespaces():
        m = STALE_RE.match(ns)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            remove_namespace(ns)
            gone.append(ns)
    return gone


# --------------------------------------------------------------------------- processes


class Proc:
    """A process inside a namespace (`ip netns exec` execs it: the pid is its own)."""

    def __init__(self, lab, role, argv, name, stdin=None, stdout_pipe=False):
        self.name = name
        self.out_path = os.path.join(lab.workdir, f"{name}.out")
        self.err_path = os.path.join(lab.workdir, f"{name}.err")
        self._out = open(self.out_path, "wb") if not stdout_pipe else None
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(["ip", "netns", "exec", lab.ns(role)] + argv, stdin=stdin,
                                  stdout=subprocess.PIPE if stdout_pipe else self._out, stderr=self._err,
                                  start_new_session=True)
        lab.procs.append(self)

    def text(self, which="err"):
        with open(self.err_path if which == "err" else self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=START_TIMEOUT, which="err", count=1):
        deadline = time.monotonic() + timeout
        while True:
            if len(re.findall(pattern, self.text(which), re.M)) >= count:
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.p.returncode} before '{pattern}':\n"
                                   + self.text("err")[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no '{pattern}' within {timeout}s:\n" + self.text("err")[-3000:])
            time.sleep(0.05)

    def stop(self, timeout=10.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                pass


class ClientDriver:
    """wsclient.py in the client namespace, driven over its stdin/stdout."""

    def __init__(self, lab, target, name):
        self.proc = Proc(lab, "c", [PY, os.path.join(HERE, "wsclient.py"), "--target", target,
                                    "--sources", ",".join(lab.sources), "--interval", str(lab.interval)],
                         name, stdin=subprocess.PIPE, stdout_pipe=True)
        self.events = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.expect("ready", timeout=START_TIMEOUT)

    def _read(self):
        for line in self.proc.p.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "garbage", "line": line[:200].decode("utf-8", "replace")})
        self.events.put({"event": "eof"})

    def send(self, **cmd):
        self.proc.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.p.stdin.flush()

    def expect(self, event, timeout, **match):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"client: no '{event}' {match} event within {timeout}s; stderr:\n"
                                   + self.proc.text("err")[-3000:])
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.get("event") == "eof":
                raise RuntimeError(f"client exited while waiting for '{event}'; stderr:\n" + self.proc.text("err")[-3000:])
            if ev.get("event") == event and all(ev.get(k) == v for k, v in match.items()):
                return ev


# --------------------------------------------------------------------------- metrics


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def parse_metrics(text):
    """{name: [(labels_text, value), ...]} from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m:
            out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return out


def metric_sum(metrics, name, contains=""):
    return sum(v for labels, v in metrics.get(name, []) if contains in labels)


# --------------------------------------------------------------------------- the lab


class Lab:
    def __init__(self, prefix, instances, switchyard, workdir, drain=3.0, sources=8, interval=0.25):
        self.prefix = prefix
        self.n = instances
        self.switchyard = switchyard
        self.workdir = workdir
        self.drain = drain
        self.sources = [f"{NET}.1.{10 + j}" for j in range(sources)]
        self.interval = interval
        self.procs = []
        self.backend = None
        self.haproxy = None
        self.instances = {}
        self.roles = ["r", "c", "b", "h"] + [f"i{k}" for k in range(1, instances + 1)]

    def ns(self, role):
        return f"{self.prefix}-{role}"

    @staticmethod
    def instance_addr(k):
        return f"{NET}.{10 + k}.2"

    def addr_to_instance(self, addr):
        for k in range(1, self.n + 1):
            if addr == self.instance_addr(k):
                return f"i{k}"
        return addr

    # ---- topology

    def setup(self):
        t0 = time.monotonic()
        for role in self.roles:
            run(["ip", "netns", "add", self.ns(role)])
            run(["ip", "-n", self.ns(role), "link", "set", "lo", "up"])
            # IPv4 only here: no router solicitations or duplicate address detection noise.
            run(["ip", "netns", "exec", self.ns(role), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check=False)
        run(["ip", "netns", "exec", self.ns("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        nets = {"c": 1, "b": 20, "h": 30}
        nets.update({f"i{k}": 10 + k for k in range(1, self.n + 1)})
        for role, net in nets.items():
            # Created directly inside the two namespaces: nothing appears in the host's.
            run(["ip", "link", "add", "name", f"to-{role}", "netns", self.ns("r"), "type", "veth",
                 "peer", "name", "eth0", "netns", self.ns(role)])
            run(["ip", "-n", self.ns("r"), "addr", "add", f"{NET}.{net}.1/24", "dev", f"to-{role}"])
            run(["ip", "-n", self.ns("r"), "link", "set", f"to-{role}", "up"])
            addrs = self.sources if role == "c" else [f"{NET}.{net}.2"]
            for a in addrs:
                run(["ip", "-n", self.ns(role), "addr", "add", f"{a}/24", "dev", "eth0"])
            run(["ip", "-n", self.ns(role), "link", "set", "eth0", "up"])
            run(["ip", "-n", self.ns(role), "route", "add", "default", "via", f"{NET}.{net}.1"])
        self.setup_s = time.monotonic() - t0

    def cleanup(self):
        for p in self.procs:
            p.kill()
        cleanup_prefix(self.prefix)

    # ---- services

    def start_backend(self):
        self.backend_record = os.path.join(self.workdir, "backend.jsonl")
        self.backend = Proc(self, "b", [PY, os.path.join(HERE, "wsbackend.py"), "--listen",
                                        f"{BACKEND_ADDR}:{BACKEND_PORT}", "--record", self.backend_record], "backend")
        self.backend.wait_for(r"^wsbackend: listening", which="out")

    def backend_records(self, sid_prefix):
        out = {}
        if os.path.exists(self.backend_record):
            with open(self.backend_record) as f:
                for line in f:
                    rec = json.loads(line)
                    if rec["sid"].startswith(sid_prefix):
                        out[rec["sid"]] = rec
        return out

    def instance_config(self, name):
        return f"""# {name}: generated by bench/scaleout/scaleout_lab.py
listen:
  - address: 0.0.0.0:{PLAIN_PORT}          # behind nftables DNAT: sees the client's own address
  - address: 0.0.0.0:{PROXY_PORT}          # behind HAProxy send-proxy-v2
    proxy_protocol: true
workers: 1
upstreams:
  echo:
    servers: [{BACKEND_ADDR}:{BACKEND_PORT}]
routes:
  - name: ws
    match: {{ path_prefix: /s/ }}
    upstream: echo
    upgrade: {{ allow: [websocket], require: true }}
timeouts:
  shutdown_drain: {self.drain:g}s
admin:
  address: 0.0.0.0:{ADMIN_PORT}
access_log:
  path: {self.workdir}/{name}-access.jsonl
  format: json
"""

    def start_instances(self, phase):
        self.instances = {}
        for k in range(1, self.n + 1):
            name = f"i{k}"
            cfg = os.path.join(self.workdir, f"{phase}-{name}.yaml")
            with open(cfg, "w") as f:
                f.write(self.instance_config(f"{phase}-{name}"))
            run([self.switchyard, "--check", "--config", cfg])
            self.instances[name] = Proc(self, name, [self.switchyard, "--config", cfg], f"{phase}-{name}")
        for p in self.instances.values():
            p.wait_for(r"^switchyard: admin listening on")

    def scrape(self, name):
        r = run(["ip", "netns", "exec", self.ns(name), "curl", "-sS", "--max-time", "3",
                 f"http://127.0.0.1:{ADMIN_PORT}/metrics"], timeout=6)
        return parse_metrics(r.stdout)

    def access_log(self, phase, name):
        path = os.path.join(self.workdir, f"{phase}-{name}-access.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    # ---- nftables front

    def nft_apply(self, endpoints, first=False):
        """The "service": DNAT from VIP:80 to one of `endpoints` (instance names), chosen
        by `numgen inc mod N` as kube-proxy's nftables mode does (it uses `numgen random`).
        One `nft -f` transaction: the swap is atomic, and connections already DNATed keep
        their conntrack entry (and so their instance)."""
        lines = []
        if first:
            lines.append(f"table ip {NFT_TABLE} {{}}")
            lines.append(f"delete table ip {NFT_TABLE}")
            lines.append(f"table ip {NFT_TABLE} {{")
            for k in range(1, self.n + 1):
                lines.append(f"  chain ep-i{k} {{ meta l4proto tcp dnat to {self.instance_addr(k)}:{PLAIN_PORT}; }}")
            lines.append("  chain svc-ws { }")
            lines.append("  chain prerouting {")
            lines.append("    type nat hook prerouting priority dstnat; policy accept;")
            lines.append(f"    ip daddr {VIP} tcp dport {VIP_PORT} jump svc-ws")
            lines.append("  }")
            lines.append("}")
        vmap = ", ".join(f"{i} : goto ep-{name}" for i, name in enumerate(endpoints))
        lines.append(f"flush chain ip {NFT_TABLE} svc-ws")
        lines.append(f"add rule ip {NFT_TABLE} svc-ws numgen inc mod {len(endpoints)} vmap {{ {vmap} }}")
        text = "\n".join(lines) + "\n"
        with open(os.path.join(self.workdir, f"nft-{len(endpoints)}.nft"), "w") as f:
            f.write(text)
        run(["ip", "netns", "exec", self.ns("r"), "nft", "-f", "-"], input=text)

    def nft_ruleset(self):
        return run(["ip", "netns", "exec", self.ns("r"), "nft", "list", "table", "ip", NFT_TABLE]).stdout

    # ---- HAProxy front

    def start_haproxy(self):
        self.haproxy_sock = os.path.join(self.workdir, "haproxy.sock")
        servers = "\n".join(f"    server i{k} {self.instance_addr(k)}:{PROXY_PORT}" for k in range(1, self.n + 1))
        cfg = f"""# generated by bench/scaleout/scaleout_lab.py
global
    maxconn 8000            # the descriptor cap here is 20,000 per process
    stats socket {self.haproxy_sock} mode 600 level admin
    stats timeout 10s

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    retries 3
    option redispatch 1

frontend ws
    bind {HAPROXY_ADDR}:{HAPROXY_PORT}
    default_backend switchyard

backend switchyard
    balance leastconn
    # The health check asks each instance's admin listener (it closes at SIGTERM);
    # traffic goes to the proxy_protocol listener with a PROXY v2 header first.
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    default-server send-proxy-v2 check port {ADMIN_PORT} inter 500ms fall 2 rise 2
{servers}
"""
        path = os.path.join(self.workdir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        run(["haproxy", "-c", "-f", path])
        self.haproxy = Proc(self, "h", ["haproxy", "-db", "-f", path], "haproxy")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.haproxy.p.poll() is not None:
                raise RuntimeError("haproxy exited:\n" + self.haproxy.text())
            try:
                stats = self.haproxy_stats()
                if all(stats.get(f"i{k}", {}).get("status") == "UP" for k in range(1, self.n + 1)):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy: servers not all UP within {START_TIMEOUT}s: {self.haproxy_stats()}")
            time.sleep(0.1)

    def haproxy_cmd(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(3)
            s.connect(self.haproxy_sock)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode("utf-8", "replace")

    def haproxy_stats(self):
        text = self.haproxy_cmd("show stat").lstrip("# ")
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == "switchyard" and row.get("svname", "").startswith("i"):
                out[row["svname"]] = {"status": row["status"], "scur": int(row["scur"] or 0),
                                      "stot": int(row["stot"] or 0), "retries": int(row["wretr"] or 0),
                                      "redispatches": int(row["wredis"] or 0)}
        return out


# --------------------------------------------------------------------------- one front


def run_front(lab, front, wave1, wave2, haproxy_drain="disable"):
    """One scenario through `front` ("nftables" or "haproxy"); returns the result dict."""
    t_start = time.time()
    phase = {"nftables": "nft", "haproxy": "hap"}[front]
    log(f"{front}: starting {lab.n} instances")
    lab.start_instances(phase)
    names = list(lab.instances)
    drained = names[0]
    if front == "nftables":
        lab.nft_apply(names, first=True)
        target = f"ws://{VIP}:{VIP_PORT}"
    else:
        lab.start_haproxy()
        target = f"ws://{HAPROXY_ADDR}:{HAPROXY_PORT}"
    client = ClientDriver(lab, target, f"{phase}-client")
    checks = {}

    # Wave 1, ramped at about 100 new sessions a second.
    ramp = max(1.0, wave1 / 100.0)
    log(f"{front}: opening {wave1} sessions over {ramp:.1f}s through {target}")
    t0 = time.monotonic()
    client.send(cmd="open", tag=f"{phase}-w1", n=wave1, over=ramp)
    opened1 = client.expect("opened", timeout=ramp + 30, tag=f"{phase}-w1")
    wave1_open_s = time.monotonic() - t0
    time.sleep(1.0)  # a few message rounds on every session
    plateau_metrics = {n: lab.scrape(n) for n in names}
    plateau = {n: int(metric_sum(m, "switchyard_tunnels_active", 'route="ws"')) for n, m in plateau_metrics.items()}
    pp_errors = {n: int(metric_sum(m, "switchyard_proxy_protocol_errors_total"))
                 if "switchyard_proxy_protocol_errors_total" in m else None for n, m in plateau_metrics.items()}
    hap_before = lab.haproxy_stats() if front == "haproxy" else None
    log(f"{front}: tunnels_active per instance: {plateau}")

    # Take the drained instance out of the balancer, then new sessions keep arriving
    # through the whole drain, then SIGTERM.
    t_remove = time.time()
    nft_after = None
    if front == "nftables":
        lab.nft_apply(names[1:])
        nft_after = lab.nft_ruleset()
        removal = f"service chain rewritten without {drained} (numgen inc mod {len(names) - 1})"
    elif haproxy_drain == "disable":
        answer = lab.haproxy_cmd(f"disable server switchyard/{drained}").strip()
        removal = f"haproxy runtime API: disable server switchyard/{drained}" + (f" ({answer})" if answer else "")
    else:
        removal = "none before SIGTERM: haproxy's health check (admin /healthz, inter 500ms, fall 2) finds it"
    wave2_over = 0.5 + lab.drain + 1.0
    client.send(cmd="open", tag=f"{phase}-w2", n=wave2, over=wave2_over)
    time.sleep(0.5)
    client.send(cmd="mark", name="sigterm")
    client.expect("marked", timeout=5)
    t_sigterm = time.time()
    # From when no new connection may reach the drained instance: the removal, or with
    # only a health check, the SIGTERM (its listener closes at once; HAProxy retries a
    # refused connection on another server).
    t_out = t_remove if (front == "nftables" or haproxy_drain == "disable") else t_sigterm
    log(f"{front}: {removal}; SIGTERM to {drained}; {wave2} new sessions over {wave2_over:.1f}s")
    lab.instances[drained].p.send_signal(signal.SIGTERM)
    try:
        exit_code = lab.instances[drained].p.wait(lab.drain + 15)
    except subprocess.TimeoutExpired:
        exit_code = None
    t_exit = time.time()
    hap_during = lab.haproxy_stats() if front == "haproxy" else None
    opened2 = client.expect("opened", timeout=wave2_over + 30, tag=f"{phase}-w2")
    time.sleep(1.0)
    after_metrics = {n: lab.scrape(n) for n in names[1:]}
    after = {n: int(metric_sum(m, "switchyard_tunnels_active", 'route="ws"')) for n, m in after_metrics.items()}
    hap_after = lab.haproxy_stats() if front == "haproxy" else None
    log(f"{front}: {drained} exited {exit_code} after {t_exit - t_sigterm:.2f}s; tunnels_active now {after}")

    # Close every session cleanly, then stop the rest.
    t_finish = time.time()
    client.send(cmd="finish")
    sessions = client.expect("result", timeout=40)["sessions"]
    client.proc.p.wait(10)
    final_metrics = {n: lab.scrape(n) for n in names[1:]}
    for n in names[1:]:
        lab.instances[n].stop()
    if lab.haproxy:
        lab.haproxy.stop()
        lab.haproxy = None

    # What the backend saw (one line per session, written when it ended).
    sids = {s["sid"] for s in sessions if s["t_open"] is not None}
    deadline = time.monotonic() + 10
    while True:
        backend = lab.backend_records(f"{phase}-")
        if sids <= set(backend) or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    # ---- verdict per session
    ok = drained_ok = late_on_drained = 0
    broken = []
    drained_close_after, drained_during, in_flight_at_deadline, drained_codes = [], [], 0, {}
    by_instance = {n: {"w1": 0, "w2": 0} for n in names}
    xff_seen = {n: set() for n in names}
    for s in sessions:
        inst = lab.addr_to_instance(s["instance"]) if s["instance"] else None
        wave = s["tag"].rsplit("-", 1)[1]
        if inst in by_instance:
            by_instance[inst][wave] += 1
        b = backend.get(s["sid"])
        why = []
        if s["t_open"] is None:
            why.append(f"never opened ({s['end']}: {s['error']})")
        if b is None and s["t_open"] is not None:
            why.append("no backend record")
        if s["xff"] != [s["src"]]:
            why.append(f"X-Forwarded-For {s['xff']} (source {s['src']})")
        if b is not None:
            if b["bad"]:
                why.append(f"backend found {b['bad']} bad messages ({b['first_bad']})")
            if b["xff"] != [s["src"]] or b["src"] != s["src"]:
                why.append(f"backend saw X-Forwarded-For {b['xff']} for source {s['src']}")
            xff_seen.setdefault(inst, set()).update(b["xff"])
        if s["end"] == "mismatch":
            why.append(f"echo mismatch: {s['error']}")
        on_drained = inst == drained
        if on_drained and s["t_start"] > t_out:
            why.append(f"started {s['t_start'] - t_out:.2f}s after {drained} was taken out, and reached it")
            late_on_drained += 1
        if on_drained and s["t_open"] is not None:
            after_s = (s["t_lost"] or 0) - t_sigterm
            during = s["verified"] - s["at_mark"].get("sigterm", s["verified"])
            if s["end"] != "closed_by_peer":
                why.append(f"on the drained instance but ended '{s['end']}' ({s['error']})")
            elif not (lab.drain - 0.3 <= after_s <= lab.drain + 1.5):
                why.append(f"on the drained instance, closed {after_s:.2f}s after SIGTERM (drain {lab.drain}s)")
            if during <= 0:
                why.append("exchanged nothing during the drain")
            if b is not None and b["verified"] not in (s["verified"], s["verified"] + 1):
                why.append(f"backend verified {b['verified']}, client {s['verified']}")
            if not why:
                drained_ok += 1
                drained_close_after.append(after_s)
                drained_during.append(during)
                drained_codes[str(s["close_code"])] = drained_codes.get(str(s["close_code"]), 0) + 1
                in_flight_at_deadline += 1 if s["in_flight"] else 0
                continue
        elif s["t_open"] is not None:
            if s["end"] != "client_close" or s["close_code"] != 1000:
                why.append(f"ended '{s['end']}' code {s['close_code']} ({s['error']})")
            if s["verified"] < 1:
                why.append("no message verified")
            if b is not None and b["verified"] != s["verified"]:
                why.append(f"backend verified {b['verified']}, client {s['verified']}")
        if why:
            broken.append({"sid": s["sid"], "src": s["src"], "instance": inst, "why": why})
        else:
            ok += 1

    # ---- access logs: the client address each instance logged, and how tunnels ended
    access = {}
    for n in names:
        tunnels = [e for e in lab.access_log(phase, n) if e.get("event") == "tunnel"]
        ends = {}
        for e in tunnels:
            ends[e["end"]] = ends.get(e["end"], 0) + 1
        access[n] = {"tunnels": len(tunnels), "clients": sorted({e["client"] for e in tunnels}), "ends": ends}

    n_drained = by_instance[drained]["w1"] + by_instance[drained]["w2"]
    messages = sum(s["verified"] for s in sessions)
    sources = set(lab.sources)
    checks["all sessions opened"] = opened1["failed"] == 0 and opened2["failed"] == 0
    checks["spread: every instance got tunnels"] = all(plateau[n] > 0 for n in names)
    checks["tunnels_active = sessions per instance"] = all(plateau[n] == by_instance[n]["w1"] for n in names)
    checks["backends saw every client address"] = set().union(*xff_seen.values()) == sources
    checks["access logs name the client addresses"] = (
        set().union(*(set(a["clients"]) for a in access.values())) == sources)
    checks["new sessions avoided the drained instance"] = late_on_drained == 0 and all(
        by_instance[n]["w2"] > 0 for n in names[1:])
    checks["drained instance exited 0 at its deadline"] = (
        exit_code == 0 and lab.drain - 0.2 <= t_exit - t_sigterm <= lab.drain + 2.0)
    checks["drained tunnels closed at the deadline"] = drained_ok == n_drained and n_drained > 0
    checks["drained access log: reason shutdown"] = access[drained]["ends"].get("shutdown", 0) == n_drained
    checks["no PROXY protocol errors"] = all(v == 0 for v in pp_errors.values())
    checks["no broken session"] = not broken
    if front == "haproxy":
        checks["haproxy marked the drained server down"] = hap_after.get(drained, {}).get("status", "") != "UP"

    result = {
        "bench": "scaleout",
        "front": front,
        "balancer": ("nftables DNAT numgen inc mod N (kube-proxy style service chain)" if front == "nftables"
                     else "haproxy 2.6 mode tcp, balance leastconn, send-proxy-v2, httpchk on admin /healthz"),
        "haproxy_drain": haproxy_drain if front == "haproxy" else None,
        "time": datetime.datetime.fromtimestamp(t_start, datetime.timezone.utc).isoformat(timespec="seconds"),
        "instances": lab.n,
        "drain_s": lab.drain,
        "sessions": {"wave1": wave1, "wave2": wave2, "total": len(sessions)},
        "spread_tunnels_active": plateau,
        "sessions_per_instance": by_instance,
        "tunnels_active_after_drain": after,
        "proxy_protocol_errors": pp_errors,
        "haproxy": {"before": hap_before, "during_drain": hap_during, "after": hap_after} if front == "haproxy" else None,
        "client_sources": sorted(sources),
        "xff_seen_by_backend": {n: sorted(v) for n, v in xff_seen.items() if n in names},
        "access_log": access,
        "removal": removal,
        "nft_ruleset_after_removal": nft_after,
        "drain": {
            "instance": drained,
            "sessions": n_drained,
            "exit_code": exit_code,
            "exit_after_s": round(t_exit - t_sigterm, 3),
            "removed_before_sigterm_s": round(t_sigterm - t_remove, 3),
            "closed_after_s": {"min": round(min(drained_close_after), 3), "max": round(max(drained_close_after), 3)}
            if drained_close_after else None,
            "messages_during_drain_min": min(drained_during) if drained_during else None,
            "in_flight_at_deadline": in_flight_at_deadline,
            "client_close_codes": drained_codes,
        },
        "ok": ok,
        "drained_expected": drained_ok,
        "broken": len(broken),
        "broken_examples": broken[:10],
        "messages_verified": messages,
        "tunnels_closed_remaining": {n: {labels: int(v) for labels, v in m.get("switchyard_tunnels_closed_total", [])}
                                     for n, m in final_metrics.items()},
        "durations_s": {
            "wave1_open": round(wave1_open_s, 2),
            "sigterm_to_exit": round(t_exit - t_sigterm, 2),
            "finish": round(time.time() - t_finish, 2),
            "total": round(time.time() - t_start, 2),
        },
        "checks": checks,
        "passed": all(checks.values()),
    }
    return result


# --------------------------------------------------------------------------- report


def summary(results):
    out = []
    for r in results:
        out.append(f"== {r['front']}: {r['balancer']}")
        out.append(f"   drained {r['drain']['instance']} ({r['removal']}), shutdown_drain {r['drain_s']:g}s")
        out.append(f"   {'instance':<9}{'tunnels_active':>15}{'wave1':>7}{'wave2':>7}{'after drain':>12}"
                   f"{'log tunnels':>12}  access-log ends")
        for n, c in r["sessions_per_instance"].items():
            after = r["tunnels_active_after_drain"].get(n, "-")
            a = r["access_log"][n]
            ends = ", ".join(f"{k}={v}" for k, v in sorted(a["ends"].items()))
            out.append(f"   {n:<9}{r['spread_tunnels_active'][n]:>15}{c['w1']:>7}{c['w2']:>7}{after!s:>12}"
                       f"{a['tunnels']:>12}  {ends}")
        if r["haproxy"]:
            out.append("   haproxy stot (connections per server): "
                       + ", ".join(f"{n}={v['stot']}" for n, v in r["haproxy"]["after"].items())
                       + "; status after: " + ", ".join(f"{n}={v['status']}" for n, v in r["haproxy"]["after"].items())
                       + "; retries: " + ", ".join(f"{n}={v['retries']}" for n, v in r["haproxy"]["after"].items())
                       + "; redispatches: " + ", ".join(f"{n}={v['redispatches']}"
                                                         for n, v in r["haproxy"]["after"].items()))
        seen = sorted(set().union(*map(set, r["xff_seen_by_backend"].values())), key=socket.inet_aton)
        out.append(f"   client addresses (X-Forwarded-For at the backend): {len(seen)} of "
                   f"{len(r['client_sources'])}: {', '.join(seen)}")
        d = r["drain"]
        ca = d["closed_after_s"]
        out.append(f"   drain: exit code {d['exit_code']} after {d['exit_after_s']}s; its {d['sessions']} sessions "
                   f"closed {ca['min'] if ca else '-'}..{ca['max'] if ca else '-'}s after SIGTERM, each exchanged "
                   f">= {d['messages_during_drain_min']} messages during the drain, "
                   f"{d['in_flight_at_deadline']} had one in flight at the deadline; close codes seen by "
                   f"the clients: {d['client_close_codes']}")
        out.append(f"   sessions: {r['ok']} ok, {r['drained_expected']} closed at the drain deadline (expected), "
                   f"{r['broken']} broken; {r['messages_verified']} messages verified; "
                   f"durations {r['durations_s']}")
        for name, passed in r["checks"].items():
            out.append(f"   [{'ok' if passed else 'FAIL'}] {name}")
        for b in r["broken_examples"]:
            out.append(f"   broken: {b}")
    return "\n".join(out)


def run_lab(prefix, instances, sessions, wave2, drain, fronts, haproxy_drain, sources, switchyard,
            workdir=None, interval=0.25):
    """Builds the lab, runs each front, always removes the lab (namespaces and processes;
    the work directory, with every config and log, is the caller's). Returns (results,
    workdir)."""
    problems = missing_requirements(fronts)
    if problems:
        raise RuntimeError("cannot run the scale-out lab:\n  " + "\n  ".join(problems))
    if not (switchyard and os.access(switchyard, os.X_OK)):
        raise RuntimeError(f"switchyard binary not found or not executable: {switchyard!r}")
    cleanup_stale()
    workdir = workdir or tempfile.mkdtemp(prefix="switchyard-scaleout-")
    lab = Lab(prefix, instances, switchyard, workdir, drain=drain, sources=sources, interval=interval)
    results = []
    try:
        log(f"namespaces {prefix}-*, work directory {workdir}")
        lab.setup()
        lab.start_backend()
        for front in fronts:
            results.append(run_front(lab, front, sessions, wave2, haproxy_drain))
    except BaseException as e:
        log(f"stopped by {type(e).__name__}: configs, logs and records kept in {workdir}")
        raise
    finally:
        lab.cleanup()
        left = [ns for ns in namespaces() if ns.startswith(prefix + "-")]
        if left:
            log(f"WARNING: namespaces left behind: {left}")
    return results, workdir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--prefix", default=f"syso-{os.getpid()}")
    r.add_argument("--instances", type=int, default=3)
    r.add_argument("--sessions", type=int, default=300)
    r.add_argument("--wave2", type=int, default=60)
    r.add_argument("--drain", type=float, default=3.0)
    r.add_argument("--fronts", default="nftables,haproxy")
    r.add_argument("--haproxy-drain", choices=("disable", "check"), default="disable")
    r.add_argument("--sources", type=int, default=8)
    r.add_argument("--switchyard", default=os.environ.get(
        "SWITCHYARD_BIN", os.path.join(ROOT, "build", "release", "proxy", "switchyard")))
    r.add_argument("--out", default=None, help="JSON lines, one per front (truncated first)")
    c = sub.add_parser("cleanup")
    c.add_argument("--prefix", required=True)
    sub.add_parser("cleanup-stale")
    args = ap.parse_args()

    if args.cmd == "cleanup":
        gone = cleanup_prefix(args.prefix)
        if gone:
            log(f"removed {' '.join(gone)}")
        return 0
    if args.cmd == "cleanup-stale":
        gone = cleanup_stale()
        if gone:
            log(f"removed {' '.join(gone)}")
        return 0

    if not 2 <= args.instances <= 9:
        ap.error("--instances must be 2 to 9")
    if not 1 <= args.sources <= 200:
        ap.error("--sources must be 1 to 200")
    fronts = [f for f in args.fronts.split(",") if f]
    if not fronts or any(f not in ("nftables", "haproxy") for f in fronts):
        ap.error("--fronts: nftables and/or haproxy")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: remove the lab
    try:
        results, workdir = run_lab(args.prefix, args.instances, args.sessions, args.wave2, args.drain, fronts,
                                   args.haproxy_drain, args.sources, args.switchyard)
    except RuntimeError as e:
        log(f"FAILED: {e}")
        return 2
    print(summary(results))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            for res in results:
                f.write(json.dumps(res, sort_keys=True) + "\n")
        log(f"wrote {args.out}")
    if all(r["passed"] for r in results):
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    log(f"some checks failed: configs, logs and records kept in {workdir}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
