#!/usr/bin/env bash
# Noise-free costs: the proxy runs under `valgrind --tool=callgrind --trace-syscalls=yes`, so
# one run gives both its user-space instructions (callgrind's `totals:` line) and the
# syscalls it made (one `SYSCALL[pid,tid](nr) sys_...` line each in valgrind's log). An idle
# run (start, listen, SIGTERM) is subtracted, then divided by the exact unit count sy_load
# performed (--count):
#   http        instructions / plain request          8 keep-alive connections
#   handshakes  instructions / upgrade handshake      8 in flight (connect, 101, close)
#   echo        instructions / 64 B echo message      8 tunnels, 1 message in flight each
#   stream      instructions / MiB streamed           1 tunnel, client -> backend
# The connection (and tunnel) set-up of the 8 connections is inside the figure; with the
# counts below it is well under 1%. LD_BIND_NOW=1 moves symbol binding into start-up.
#
#   bench/callgrind.sh [--targets "switchyard nginx haproxy"] [--scale F] [--no-build]
#   (also switchyard-copy: tunnel.splice off; switchyard-json: JSON access log to a file;
#   switchyard-base: $SWITCHYARD_BASE;
#   switchyard-xff and switchyard-balanced: X-Forwarded-For on, the second with balance:
#   hash on client_ip and admission limits on every upgrade, as in bench/compare.sh)
# Output: build/bench/callgrind.json (+ the callgrind.out files in build/bench/callgrind/,
# for callgrind_annotate). Needs valgrind (`.ci/install-deps --bench`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGETS="switchyard"
SCALE=1
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --targets) TARGETS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "callgrind.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

PORT=18090
BACKEND=127.0.0.1:19190
OUT=$ROOT/build/bench
CG=$OUT/callgrind
SY_LOAD=$ROOT/build/release/bench/sy_load
SWITCHYARD=$ROOT/build/release/proxy/switchyard
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is missing (.ci/install-deps --bench)" >&2; exit 1; }
if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release -j2 --target switchyard sy_load)
fi
mkdir -p "$CG"
WORK=$(mktemp -d /tmp/sy-callgrind.XXXXXX)
BACKEND_PID="" PROXY_PID=""
cleanup() {
  [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null || true
  [[ -n $BACKEND_PID ]] && kill "$BACKEND_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

n() { awk -v a="$1" -v s="$SCALE" 'BEGIN{printf "%d", a*s}'; }
declare -A COUNT=([http]=$(n 20000) [handshakes]=$(n 2000) [echo]=$(n 50000) [stream]=$(n 1024))
declare -A ARGS=(
  [http]="http --conns 8"
  [handshakes]="handshakes --conns 8"
  [echo]="echo --conns 8 --msg 64 --depth 1"
  [stream]="stream --tunnels 1 --direction up")

render() {
  sed -e "s#@DIR@#$WORK#g; s#@PORT@#$PORT#g; s#@BACKEND@#$BACKEND#g; s#@SPLICE@#$2#g" "$ROOT/bench/configs/$1"
}

start_proxy() {  # start_proxy TARGET NAME
  local t=$1 name=$2 cmd=()
  case "$t" in
    switchyard) render switchyard.yaml.in "" > "$WORK/sy.yaml"; cmd=("$SWITCHYARD" --config "$WORK/sy.yaml") ;;
    # tunnel.splice: off: tunnel bytes copied through pooled buffers (the path TLS tunnels take)
    switchyard-copy) { render switchyard.yaml.in ""; echo 'tunnel: { splice: "off" }'; } > "$WORK/sy.yaml"
                     cmd=("$SWITCHYARD" --config "$WORK/sy.yaml") ;;
    # the access log in JSON to a file; the binary in $SWITCHYARD_BASE (an older build)
    switchyard-json) render switchyard.yaml.in "" | sed "s#^access_log:.*#access_log: { path: $WORK/access.log, format: json }#" > "$WORK/sy.yaml"
                     cmd=("$SWITCHYARD" --config "$WORK/sy.yaml") ;;
    switchyard-base) render switchyard.yaml.in "" > "$WORK/sy.yaml"; cmd=("${SWITCHYARD_BASE:?set SWITCHYARD_BASE}" --config "$WORK/sy.yaml") ;;
    switchyard-xff) render switchyard.yaml.in "" | sed "s#x_forwarded_for: false#x_forwarded_for: true#" > "$WORK/sy.yaml"
      cmd=("$SWITCHYARD" --config "$WORK/sy.yaml") ;;
    switchyard-balanced) render switchyard.yaml.in "" | sed -e "s#x_forwarded_for: false#x_forwarded_for: true#" \
        -e "s#^    keepalive: 128#    keepalive: 128\n    balance: hash\n    hash_key: client_ip\n    max_tunnels: 1000000#" \
        -e "s#upgrade: { allow: \[websocket\] }#upgrade: { allow: [websocket], max_rate: 1000000, max_tunnels: 1000000 }#" > "$WORK/sy.yaml"
      cmd=("$SWITCHYARD" --config "$WORK/sy.yaml") ;;
    # one process: no master, so the one callgrind file has all the work
    nginx) render nginx.conf.in "" | sed 's/^master_process on;/master_process off;/' > "$WORK/nginx.conf"
           cmd=(nginx -p "$WORK" -c "$WORK/nginx.conf") ;;
    haproxy) render haproxy.cfg.in "" > "$WORK/haproxy.cfg"; cmd=(haproxy -db -f "$WORK/haproxy.cfg") ;;
    haproxy-splice) render haproxy.cfg.in "option splice-auto" > "$WORK/haproxy.cfg"; cmd=(haproxy -db -f "$WORK/haproxy.cfg") ;;
    *) echo "callgrind.sh: unknown target $t" >&2; exit 2 ;;
  esac
  rm -f "$CG/$name.out" "$WORK/vg.log"
  # LD_BIND_NOW: resolve every symbol at start-up, so lazy binding (first calls) lands in
  # the idle run too and is subtracted instead of being charged to the work
  LD_BIND_NOW=1 valgrind --tool=callgrind --callgrind-out-file="$CG/$name.out" --dump-instr=yes \
    --trace-syscalls=yes --log-file="$WORK/vg.log" "${cmd[@]}" > "$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  for _ in $(seq 1 300); do
    [[ -n $(ss -Hltn "sport = :$PORT") ]] && return 0
    kill -0 $PROXY_PID 2>/dev/null || break
    sleep 0.1
  done
  echo "callgrind.sh: $t did not start under valgrind" >&2; cat "$WORK/proxy.log" "$WORK/vg.log" >&2 | tail -20
  exit 1
}

stop_proxy() {
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

# prints "instructions syscalls" of the last run
totals() {
  local ir sc
  ir=$(awk '/^totals:/ {print $2}' "$CG/$1.out")
  sc=$(grep -c -E '^SYSCALL\[[0-9]+,[0-9]+\]\([0-9]+\) sys_' "$WORK/vg.log" || true)
  echo "${ir:-0} ${sc:-0}"
}

"$SY_LOAD" backend --listen $BACKEND > "$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
sleep 0.3

JSON=$OUT/callgrind.json
echo "[" > "$JSON.tmp"
first=1
for t in $TARGETS; do
  start_proxy "$t" "$t-idle"
  sleep 1
  stop_proxy
  read -r idle_ir idle_sc < <(totals "$t-idle")
  echo "callgrind: $t idle: $idle_ir instructions, $idle_sc syscalls" >&2
  for s in http handshakes echo stream; do
    start_proxy "$t" "$t-$s"
    # shellcheck disable=SC2086
    res=$(timeout 900 "$SY_LOAD" ${ARGS[$s]} --target 127.0.0.1:$PORT --count "${COUNT[$s]}" --label "$t" || true)
    stop_proxy
    read -r ir sc < <(totals "$t-$s")
    units=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["units"])' "$res" 2>/dev/null || echo 0)
    errors=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["errors"])' "$res" 2>/dev/null || echo 1)
    line=$(python3 - "$t" "$s" "$ir" "$sc" "$idle_ir" "$idle_sc" "$units" "$errors" "${COUNT[$s]}" <<'EOF'
import json, sys
t, s, ir, sc, iir, isc, units, errors, count = sys.argv[1:]
ir, sc, iir, isc, units, count = map(int, (ir, sc, iir, isc, units, count))
u = max(units, 1)
if ir == 0:  # no callgrind totals (the proxy did not exit cleanly): not a measurement
    errors = 1
print(json.dumps({"target": t, "scenario": s, "count": count, "units": units, "errors": int(errors),
                  "instructions": ir, "syscalls": sc, "idle_instructions": iir, "idle_syscalls": isc,
                  "instr_per_unit": round((ir - iir) / u, 1), "syscalls_per_unit": round((sc - isc) / u, 2)}))
EOF
)
    echo "callgrind: $line" >&2
    [[ $first == 1 ]] || echo "," >> "$JSON.tmp"
    first=0
    echo "$line" >> "$JSON.tmp"
  done
done
echo "]" >> "$JSON.tmp"
mv "$JSON.tmp" "$JSON"
echo "callgrind: $JSON; top functions: callgrind_annotate $CG/<target>-<scenario>.out" >&2
