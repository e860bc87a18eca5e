#!/usr/bin/env bash
# Scale-out on one machine: two or three Switchyard instances behind a kernel balancer
# (nftables DNAT, `numgen inc mod N`, as kube-proxy's nftables mode spreads a Service) and
# then behind HAProxy (TCP, `balance leastconn`, `send-proxy-v2` to listeners with
# `proxy_protocol: true`), in network namespaces created here and removed afterwards,
# also on failure or Ctrl-C. Through each front: many WebSocket sessions (checksummed,
# sequence-numbered echo messages), the spread per instance (switchyard_tunnels_active),
# the clients' own addresses at the backend (X-Forwarded-For, several source addresses),
# and one instance taken out of the balancer and drained with SIGTERM while new sessions
# keep arriving. docs/scale-out.md explains the set-up and the results.
#
#   bench/scaleout.sh [--instances 3] [--sessions 300] [--wave2 60] [--drain 3]
#                     [--fronts nftables,haproxy] [--haproxy-drain disable|check] [--sources 8]
#
# Results: a summary on stdout, one JSON line per front in bench/results/scaleout.jsonl.
# Exit status: 0 when every check passed, 1 when one failed, 2 when it could not run.
# Needs root; installs nftables and haproxy (Debian) if they are missing, and says so.
# Uses build/release/proxy/switchyard, or $SWITCHYARD_BIN. Every wait is bounded; a run
# takes about 25 s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX="syso-$$"

if [[ $(id -u) -ne 0 ]]; then
  echo "scaleout.sh: needs root (network namespaces, veth pairs, nftables)" >&2
  exit 2
fi

need=()
command -v nft >/dev/null || need+=(nftables)
command -v haproxy >/dev/null || need+=(haproxy)
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import websockets' 2>/dev/null || need+=(python3-websockets)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "scaleout.sh: installing missing packages: ${need[*]} (apt-get install -y)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# Whatever happens (an error, Ctrl-C, SIGTERM), remove this run's namespaces and what
# runs in them (only this run's processes are in there). The lab removes them itself;
# this is the safety net if it was killed.
cleanup() {
  local ns pid
  for ns in $(ip netns list | awk -v p="$PREFIX-" 'index($1, p) == 1 { print $1 }'); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
LAB=""
stop() {  # forward the signal to the lab (it removes its namespaces), then leave
  [[ -n $LAB ]] && kill -TERM "$LAB" 2>/dev/null && wait "$LAB" 2>/dev/null
  exit "$1"
}
trap cleanup EXIT
trap 'stop 130' INT
trap 'stop 143' TERM

# In the background so that a signal reaches the traps at once.
/usr/bin/python3 "$ROOT/bench/scaleout/scaleout_lab.py" run --prefix "$PREFIX" \
  --out "$ROOT/bench/results/scaleout.jsonl" "$@" &
LAB=$!
status=0
wait "$LAB" || status=$?
LAB=""
exit "$status"
