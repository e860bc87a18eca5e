#!/usr/bin/env bash
# Switchyard vs nginx vs HAProxy (with and without splice-auto) vs a direct client->backend
# baseline, on one machine, then docs/performance.md + docs/performance.png.
#
#   bench/compare.sh                 full run: 3 repetitions, 5 s per measurement (~13 min)
#   bench/compare.sh --quick         1 repetition, 2 s per measurement (~3 min)
#   options: --reps N --duration S --targets "switchyard nginx ..." --scenarios "http echo ..."
#            --idle-tunnels N --no-install --no-build --no-report
#   extra targets: switchyard-copy (tunnel.splice: off), haproxy-splice-forced (HAProxy's
#   splice-request + splice-response: splice for every transfer),
#   switchyard-xff and switchyard-balanced (the same + balance: hash and admission
#   limits on every upgrade: what they cost),
#   switchyard-json (access log in JSON to a file), switchyard-base (the
#   binary in $SWITCHYARD_BASE, e.g. an older commit built elsewhere, on the same config)
#
# Each proxy runs alone, pinned to CPU 1 (taskset); sy_load (client) and the sy_load backend
# share CPU 0. Targets are interleaved (the order rotates every repetition) and every
# measurement starts a fresh proxy. The proxy's own CPU time (utime+stime of its process
# tree, /proc/PID/stat) is recorded, so the figure compared is work per fully used core.
# Raw results: build/bench/results.jsonl (one JSON line per measurement).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3
DURATION=5
TARGETS="switchyard nginx haproxy haproxy-splice direct"
SCENARIOS="http wrk handshakes echo stream1 stream8 idle"
IDLE_TUNNELS=9900   # 2 fds per tunnel in the proxy; the open-files cap is 20,000
INSTALL=1 BUILD=1 REPORT=1 QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; REPS=1; DURATION=2; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --idle-tunnels) IDLE_TUNNELS=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-report) REPORT=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

PROXY_CPU=1
LOAD_CPU=0
PORT=18080
BACKEND=127.0.0.1:19100
OUT=$ROOT/build/bench
RESULTS=$OUT/results.jsonl
SY_LOAD=$ROOT/build/release/bench/sy_load
SWITCHYARD=$ROOT/build/release/proxy/switchyard
CLK_TCK=$(getconf CLK_TCK)

log() { echo "compare: $*" >&2; }

# ---- dependencies and build -----------------------------------------------------------------
if [[ $INSTALL == 1 ]]; then
  "$ROOT/.ci/install-deps" --bench
  # apt may start the packaged services: stop those (only the ones using /etc configs)
  for name in nginx haproxy; do
    for pid in $(pgrep -x "$name" || true); do
      cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
      [[ $cmd == *sy-bench* ]] && continue                          # one of ours
      [[ $(ps -o ppid= -p "$pid" | tr -d ' ') == 1 ]] || continue  # only daemon masters
      log "stopping the packaged $name service (pid $pid: $cmd)"
      kill "$pid" || true
    done
  done
fi
if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release -j2 --target switchyard sy_load)
fi
for bin in "$SY_LOAD" "$SWITCHYARD"; do
  [[ -x $bin ]] || { echo "compare.sh: $bin is missing (build first)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/sy-bench.XXXXXX)
mkdir -p "$OUT"
: > "$RESULTS"
BACKEND_PID=""
PROXY_PID=""
cleanup() {
  [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null || true
  [[ -n $BACKEND_PID ]] && kill "$BACKEND_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

render() {  # render TEMPLATE OUT SPLICE
  sed -e "s#@DIR@#$WORK#g; s#@PORT@#$PORT#g; s#@BACKEND@#$BACKEND#g; s#@SPLICE@#$3#g" "$ROOT/bench/configs/$1" > "$2"
}

port_open() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

wait_port() {  # wait_port PORT PID
  for _ in $(seq 1 100); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# the proxy's process tree (nginx: master + worker)
tree_pids() {
  echo "$1"
  local c
  for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done
}
cpu_ticks() {  # utime + stime of the tree, in clock ticks
  local sum=0 p f
  for p in $(tree_pids "$1"); do
    f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    set -- $f
    sum=$((sum + ${12} + ${13}))
  done
  echo "$sum"
}
rss_kb() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

start_target() {  # sets PROXY_PID and TARGET_ADDR
  local t=$1
  PROXY_PID=""
  TARGET_ADDR=127.0.0.1:$PORT
  case "$t" in
    direct) TARGET_ADDR=$BACKEND; return 0 ;;
    switchyard|switchyard-base)
      render switchyard.yaml.in "$WORK/switchyard.yaml" ""
      local bin=$SWITCHYARD
      [[ $t == switchyard-base ]] && bin=${SWITCHYARD_BASE:?set SWITCHYARD_BASE to the baseline binary}
      taskset -c $PROXY_CPU "$bin" --config "$WORK/switchyard.yaml" > "$WORK/switchyard.log" 2>&1 &
      ;;
    switchyard-xff|switchyard-balanced)
      # switchyard-xff: the bench config with X-Forwarded-For on (the default), so the client's
      # address is read (getpeername) on every connection. switchyard-balanced: the same plus
      # balance: hash on that address, the per-server and per-route admission counters and the
      # rate bucket in the path of every upgrade, limits far above the load. The pair measures
      # what hashing and admission cost (docs/upgrades.md), and nothing else.
      render switchyard.yaml.in "$WORK/switchyard.yaml" ""
      sed -i -e "s#x_forwarded_for: false#x_forwarded_for: true#" "$WORK/switchyard.yaml"
      if [[ $t == switchyard-balanced ]]; then
        sed -i -e "s#^    keepalive: 128#    keepalive: 128\n    balance: hash\n    hash_key: client_ip\n    max_tunnels: 1000000#" \
          -e "s#upgrade: { allow: \[websocket\] }#upgrade: { allow: [websocket], max_rate: 1000000, max_tunnels: 1000000 }#" \
          "$WORK/switchyard.yaml"
      fi
      taskset -c $PROXY_CPU "$SWITCHYARD" --config "$WORK/switchyard.yaml" > "$WORK/switchyard.log" 2>&1 &
      ;;
    switchyard-copy)
      # tunnel.splice: off: every tunnel byte read into a pooled buffer and written from it.
      render switchyard.yaml.in "$WORK/switchyard.yaml" ""
      echo "tunnel: { splice: \"off\" }" >> "$WORK/switchyard.yaml"
      taskset -c $PROXY_CPU "$SWITCHYARD" --config "$WORK/switchyard.yaml" > "$WORK/switchyard.log" 2>&1 &
      ;;
    switchyard-json)
      render switchyard.yaml.in "$WORK/switchyard.yaml" ""
      sed -i "s#^access_log:.*#access_log: { path: $WORK/access.log, format: json }#" "$WORK/switchyard.yaml"
      taskset -c $PROXY_CPU "$SWITCHYARD" --config "$WORK/switchyard.yaml" > "$WORK/switchyard.log" 2>&1 &
      ;;
    nginx)
      render nginx.conf.in "$WORK/nginx.conf" ""
      taskset -c $PROXY_CPU nginx -p "$WORK" -c "$WORK/nginx.conf" > "$WORK/nginx.log" 2>&1 &
      ;;
    haproxy)
      render haproxy.cfg.in "$WORK/haproxy.cfg" ""
      taskset -c $PROXY_CPU haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
      ;;
    haproxy-splice)
      render haproxy.cfg.in "$WORK/haproxy.cfg" "option splice-auto"
      taskset -c $PROXY_CPU haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
      ;;
    haproxy-splice-forced)
      # splice(2) for every transfer, small or large (HAProxy's option splice-request and
      # splice-response, instead of splice-auto's heuristic).
      render haproxy.cfg.in "$WORK/haproxy.cfg" "option splice-request"
      sed -i 's/^\([[:space:]]*\)option splice-request$/&\n\1option splice-response/' "$WORK/haproxy.cfg"
      taskset -c $PROXY_CPU haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
      ;;
    *) echo "compare.sh: unknown target $t" >&2; exit 2 ;;
  esac
  PROXY_PID=$!
  if ! wait_port $PORT $PROXY_PID; then
    log "$t did not start:"; cat "$WORK"/*.log >&2 || true
    exit 1
  fi
}

stop_target() {
  [[ -z $PROXY_PID ]] && return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
  for _ in $(seq 1 40); do port_open $PORT || break; sleep 0.05; done
}

load() { taskset -c $LOAD_CPU timeout $((${DURATION%.*} + 150)) "$SY_LOAD" "$@"; }

# one measurement: prints one JSON line (the client's, plus target, rep, cpu, rss)
measure() {  # measure SCENARIO TARGET REP
  local s=$1 t=$2 rep=$3 line="" c0 c1 r0 r1 extra=""
  start_target "$t"
  sleep 0.2
  [[ -n $PROXY_PID ]] && { c0=$(cpu_ticks "$PROXY_PID"); r0=$(rss_kb "$PROXY_PID"); }
  local t0; t0=$(date +%s.%N)
  case "$s" in
    http) line=$(load http --target "$TARGET_ADDR" --conns 64 --duration "$DURATION" --label "$t" || true) ;;
    wrk)
      local w
      w=$(taskset -c $LOAD_CPU wrk -t1 -c64 -d"${DURATION}s" --latency "http://$TARGET_ADDR/plain/128/0" 2>&1 || true)
      local rps non2xx errs
      rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$w")
      non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$w")
      errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$w")
      local total; total=$(awk '/requests in/ {print $1}' <<<"$w")
      line="{\"scenario\":\"wrk\",\"label\":\"$t\",\"units\":${total:-0},\"rate\":${rps:-0},\"seconds\":$DURATION,\"errors\":$(( ${non2xx:-0} + ${errs:-0} ))}"
      ;;
    handshakes) line=$(load handshakes --target "$TARGET_ADDR" --conns 64 --duration "$DURATION" --label "$t" || true) ;;
    echo) line=$(load echo --target "$TARGET_ADDR" --conns 64 --msg 64 --duration "$DURATION" --label "$t" || true) ;;
    stream1) line=$(load stream --target "$TARGET_ADDR" --tunnels 1 --direction down --duration "$DURATION" --label "$t" || true) ;;
    stream8) line=$(load stream --target "$TARGET_ADDR" --tunnels 8 --direction down --duration "$DURATION" --label "$t" || true) ;;
    idle)
      local f=$WORK/idle.out
      : > "$f"
      load idle --target "$TARGET_ADDR" --tunnels "$IDLE_TUNNELS" --concurrency 256 --hold 9 --label "$t" > "$f" &
      local lp=$!
      for _ in $(seq 1 1200); do grep -q '"ready"' "$f" && break; kill -0 $lp 2>/dev/null || break; sleep 0.1; done
      # Idle tunnels, sampled once they have been idle for 5 s (Switchyard puts a tunnel
      # quiet for 3 s to sleep: docs/architecture.md, "Idle tunnels").
      sleep 5
      if [[ -n $PROXY_PID ]]; then
        r1=$(rss_kb "$PROXY_PID")
        extra=",\"rss0_kb\":$r0,\"rss1_kb\":$r1,\"proxy_fds\":$(ls /proc/"$PROXY_PID"/fd 2>/dev/null | wc -l)"
      fi
      wait $lp || true
      line=$(head -n1 "$f")
      ;;
  esac
  local t1; t1=$(date +%s.%N)
  if [[ -n $PROXY_PID ]]; then
    c1=$(cpu_ticks "$PROXY_PID")
    extra="$extra,\"cpu_s\":$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/h}')"
  fi
  stop_target
  [[ -z $line ]] && line="{\"scenario\":\"$s\",\"label\":\"$t\",\"errors\":1,\"first_error\":\"no output\"}"
  line="${line%\}}$extra,\"bench\":\"$s\",\"target_name\":\"$t\",\"rep\":$rep,\"wall_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')}"
  echo "$line" >> "$RESULTS"
  log "$(printf '%-10s %-15s rep %d: ' "$s" "$t" "$rep")$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("rate=%s errors=%s cpu_s=%s %s" % (d.get("rate"), d.get("errors"), d.get("cpu_s","-"), d.get("first_error","")))' "$line")"
}

# ---- run -----------------------------------------------------------------------------------------
taskset -c $LOAD_CPU "$SY_LOAD" backend --listen $BACKEND > "$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
wait_port ${BACKEND##*:} $BACKEND_PID || { log "backend did not start"; cat "$WORK/backend.log" >&2; exit 1; }

read -r -a targets <<<"$TARGETS"
n=${#targets[@]}
for rep in $(seq 1 "$REPS"); do
  for s in $SCENARIOS; do
    for i in $(seq 0 $((n - 1))); do
      t=${targets[$(((i + rep - 1) % n))]}
      [[ $s == idle && $t == direct ]] && continue
      measure "$s" "$t" "$rep"
    done
  done
done

# the run's conditions, for the report
{
  echo "{\"meta\":true,\"reps\":$REPS,\"duration\":$DURATION,\"quick\":$QUICK,\"idle_tunnels\":$IDLE_TUNNELS,"
  echo "\"cpu\":\"$(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2; exit}')\","
  echo "\"cpus\":$(nproc),\"kernel\":\"$(uname -sr)\",\"os\":\"$(. /etc/os-release; echo "$PRETTY_NAME")\","
  echo "\"hypervisor\":\"$(lscpu | awk -F: '/Hypervisor vendor/ {gsub(/^ +/,"",$2); print $2; exit}')\","
  echo "\"nginx\":\"$(nginx -v 2>&1 | sed 's/.*nginx\///')\",\"haproxy\":\"$(haproxy -v | awk 'NR==1{print $3}')\","
  echo "\"wrk\":\"$(wrk -v 2>&1 | awk 'NR==1{print $2}')\","
  echo "\"switchyard_rev\":\"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git -C "$ROOT" status --porcelain -- proxy parser routing 2>/dev/null) ]] && echo '+dirty')\","
  echo "\"date\":\"$(date -u +%Y-%m-%dT%H:%MZ)\",\"nofile\":$(ulimit -n)}"
} | tr -d '\n' >> "$RESULTS"
echo >> "$RESULTS"

log "results: $RESULTS"
if [[ $REPORT == 1 ]]; then
  python3 "$ROOT/bench/report.py" --results "$RESULTS" --callgrind "$OUT/callgrind.json" --out "$ROOT/docs/performance.md"
fi
