#!/usr/bin/env bash
# Starts the demo backend on 127.0.0.1:9000 and Switchyard on 127.0.0.1:8080 with
# conf/switchyard.yaml, and says how to try them. Ctrl-C stops both.
#   usage: run-demo.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: run-demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$build/tests/support/demo_backend" --listen 127.0.0.1:9000 &
pids+=($!)
"$build/proxy/switchyard" --config "$root/conf/switchyard.yaml" &
pids+=($!)
sleep 0.5

cat <<MSG

Switchyard is listening on http://127.0.0.1:8080 in front of the demo backend (127.0.0.1:9000).

  Plain HTTP:  curl -i http://127.0.0.1:8080/hello
               curl -i --data-binary 'some body' http://127.0.0.1:8080/echo
  WebSocket:   /usr/bin/python3 -m websockets ws://127.0.0.1:8080/ws
               (type a line: the backend echoes it back through the proxy)
  Metrics:     curl http://127.0.0.1:9901/metrics

Access log lines appear below. Ctrl-C stops both.

MSG
wait -n "${pids[@]}"
