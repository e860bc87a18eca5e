#!/usr/bin/env bash
# Fault storm and soak (docs/security.md, "Fault storm"): bench/soak.sh DURATION_SECONDS [OUT_DIR]
# Drives the release build (or $SWITCHYARD_BIN) (bench/soak.py: the scenarios; bench/soak_backend.py:
# the chaos backend and HTTP helpers) with verified traffic, faults from both
# sides and hostile requests for DURATION seconds; writes OUT_DIR/soak.csv, soak.png
# (gnuplot) and summary.json, prints the verdicts, and exits 1 if any of them fails.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:?usage: bench/soak.sh DURATION_SECONDS [OUT_DIR]}
out=${2:-build/soak}
export SWITCHYARD_BIN=${SWITCHYARD_BIN:-$PWD/build/release/proxy/switchyard}
if [[ ! -x $SWITCHYARD_BIN ]]; then
  echo "soak: $SWITCHYARD_BIN is missing: cmake --preset release && cmake --build --preset release" >&2
  exit 2
fi
mkdir -p "$out"
# The storm keeps up to about 2,400 descriptors open between the proxy and this driver.
ulimit -n 20000 2>/dev/null || true
exec timeout --kill-after=30 $((${duration%.*} + 240)) /usr/bin/python3 bench/soak.py "$duration" "$out"
