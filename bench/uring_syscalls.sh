#!/usr/bin/env bash
# Syscalls per unit for the io_uring experiment (docs/performance.md, "io_uring"): the proxy
# runs under `strace -f -c` (counts only; strace slows it, the counts do not change), for
# targets switchyard (splice auto), switchyard-copy (splice off) and switchyard-uring
# (SWITCHYARD_IO_URING=1), and sy_load performs an exact number of units:
#   echo    syscalls / 64 B echo message     8 tunnels, 1 message in flight each
#   stream  syscalls / MiB streamed          1 tunnel, backend -> client
# An idle run (start, listen, SIGTERM) is subtracted. Per-core instructions are not given:
# this machine has no hardware counters for perf, and callgrind sees only user space, where
# io_uring moves the work out of sight.
#
#   bench/uring_syscalls.sh [--echo N] [--mib N] [--no-build]
# Output: build/bench/uring_syscalls.json and a table on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ECHO_N=20000
MIB=512
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --echo) ECHO_N=$2; shift 2 ;;
    --mib) MIB=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "uring_syscalls.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
SY_LOAD=$ROOT/build/release/bench/sy_load
SWITCHYARD=$ROOT/build/release/proxy/switchyard
OUT=$ROOT/build/bench
if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release -j2 --target switchyard sy_load)
fi
command -v strace >/dev/null || { echo "uring_syscalls.sh: needs strace (apt-get install strace)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sy-uring.XXXXXX)
BACKEND_PID=""
TRACE_PID=""
cleanup() {
  [[ -n $TRACE_PID ]] && kill "$TRACE_PID" 2>/dev/null || true
  [[ -n $BACKEND_PID ]] && kill "$BACKEND_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=18090
BACKEND=127.0.0.1:19190
taskset -c 0 "$SY_LOAD" backend --listen "$BACKEND" > "$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
port_open() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
for _ in $(seq 1 100); do port_open 19190 && break; sleep 0.05; done

run() {  # run TARGET LOAD-ARGS... : prints "syscall calls" lines of the proxy, load's JSON in $WORK/load.json
  local t=$1; shift
  sed -e "s#@DIR@#$WORK#g; s#@PORT@#$PORT#g; s#@BACKEND@#$BACKEND#g" "$ROOT/bench/configs/switchyard.yaml.in" > "$WORK/sy.yaml"
  [[ $t == switchyard-copy ]] && echo 'tunnel: { splice: "off" }' >> "$WORK/sy.yaml"
  local env=()
  [[ $t == switchyard-uring ]] && env=(SWITCHYARD_IO_URING=1)
  env "${env[@]}" taskset -c 1 strace -f -c -o "$WORK/strace.out" "$SWITCHYARD" --config "$WORK/sy.yaml" > "$WORK/sy.log" 2>&1 &
  TRACE_PID=$!
  for _ in $(seq 1 200); do port_open $PORT && break; sleep 0.05; done
  if [[ $t == switchyard-uring ]] && ! grep -q "io_uring tunnels on" "$WORK/sy.log"; then
    sleep 0.3
    grep -q "io_uring tunnels on" "$WORK/sy.log" || { echo "uring_syscalls.sh: io_uring refused" >&2; cat "$WORK/sy.log" >&2; exit 1; }
  fi
  : > "$WORK/load.json"
  if [[ $# -gt 0 ]]; then taskset -c 0 timeout 300 "$SY_LOAD" "$@" --target 127.0.0.1:$PORT > "$WORK/load.json"; fi
  local pid
  pid=$(pgrep -P "$TRACE_PID" -x switchyard || true)
  [[ -n $pid ]] && kill -TERM "$pid"
  wait "$TRACE_PID" 2>/dev/null || true
  TRACE_PID=""
  for _ in $(seq 1 40); do port_open $PORT || break; sleep 0.05; done
  # strace -c: "% time seconds usecs/call calls [errors] syscall"; the total line is skipped.
  awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { print $NF, $4 }' "$WORK/strace.out"
}

units() { sed -n 's/.*"units":\([0-9.]*\).*/\1/p' "$WORK/load.json"; }

json="["
printf '%-18s %-7s %10s %12s   %s\n' target scenario units "syscalls/u" "per unit, by syscall"
for t in switchyard switchyard-copy switchyard-uring; do
  run "$t" > "$WORK/idle.txt"
  for s in echo stream; do
    if [[ $s == echo ]]; then
      run "$t" echo --conns 8 --msg 64 --count "$ECHO_N" > "$WORK/busy.txt"
    else
      run "$t" stream --tunnels 1 --direction down --count "$MIB" > "$WORK/busy.txt"
    fi
    u=$(units)
    [[ $s == stream ]] && u=$MIB
    per=$(awk -v u="$u" 'NR==FNR { idle[$1]=$2; next } { n=$2-idle[$1]; if (n>0) { tot+=n; by[$1]=n } }
      END { printf "%.3f", tot/u; for (k in by) if (by[k]/u >= 0.01) printf " %s=%.3f", k, by[k]/u }' "$WORK/idle.txt" "$WORK/busy.txt")
    total=${per%% *}
    detail=${per#* }
    [[ $detail == "$per" ]] && detail=""
    printf '%-18s %-7s %10s %12s   %s\n' "$t" "$s" "$u" "$total" "$detail"
    json+="{\"target\":\"$t\",\"scenario\":\"$s\",\"units\":$u,\"syscalls_per_unit\":$total,\"by_syscall\":\"$detail\"},"
  done
done
mkdir -p "$OUT"
echo "${json%,}]" > "$OUT/uring_syscalls.json"
echo "written: $OUT/uring_syscalls.json"
