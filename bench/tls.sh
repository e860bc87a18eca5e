#!/usr/bin/env bash
# TLS handshakes per fully used proxy core: Switchyard, nginx and HAProxy (Debian packages)
# with the same certificate, ECDSA P-256 and RSA 2048, full handshakes and resumed ones
# (bench/tls_client.py: each connection offers the ticket the previous one got, as TLS 1.3
# tickets are single-use), one GET per connection to the sy_load backend.
# Each proxy runs alone on CPU 1 with one worker/thread, the client and the backend on CPU 0;
# the proxy's own CPU time (utime+stime, /proc) is recorded, so the figure compared is
# handshakes per second of proxy CPU. Then wss stream throughput (bench/tls_stream.py: the
# backend's /source read through the proxy over TLS), in MB per second of proxy CPU. Every
# run is bounded by DURATION seconds.
#   bench/tls.sh [DURATION]        (default 5)     results: build/bench/tls.jsonl
# Needs: cmake --build --preset release; .ci/install-deps --bench (nginx, haproxy).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${1:-5}
WORK=$(mktemp -d /tmp/switchyard-tls-bench.XXXXXX)
OUT=$ROOT/build/bench/tls.jsonl
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
SY=$ROOT/build/release/proxy/switchyard
SY_LOAD=$ROOT/build/release/bench/sy_load
BACKEND=127.0.0.1:19080
PORT=19443
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

for kind in ecdsa rsa; do
  if [[ $kind == ecdsa ]]; then newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else newkey=(-newkey rsa:2048); fi
  openssl req -x509 "${newkey[@]}" -nodes -keyout "$WORK/$kind.key" -out "$WORK/$kind.pem" -days 2 \
    -subj /CN=bench.test -addext subjectAltName=DNS:bench.test 2>/dev/null
  cat "$WORK/$kind.pem" "$WORK/$kind.key" > "$WORK/$kind.combined"
done

taskset -c 0 "$SY_LOAD" backend --listen $BACKEND > "$WORK/backend.log" 2>&1 &
sleep 0.5

cpu_ticks() { local f; f=$(sed 's/^.*) //' "/proc/$1/stat"); set -- $f; echo $(( ${12} + ${13} )); }
tree_ticks() { local sum=0 p; for p in $1 $(pgrep -P "$1" || true); do sum=$((sum + $(cpu_ticks "$p"))); done; echo $sum; }

start_proxy() {  # $1 target, $2 kind -> PROXY_PID
  local t=$1 kind=$2
  case $t in
    switchyard)
      cat > "$WORK/sy.yaml" <<YAML
listen: [{ address: 127.0.0.1:$PORT, tls: { cert: $WORK/$kind.pem, key: $WORK/$kind.key } }]
workers: 1
upstreams: { app: { servers: [$BACKEND] } }
routes: [{ upstream: app, upgrade: { allow: [websocket] } }]
access_log: { path: "off" }
YAML
      taskset -c 1 "$SY" --config "$WORK/sy.yaml" 2> "$WORK/sy.log" &
      PROXY_PID=$! ;;
    nginx)
      sed -e "s|@DIR@|$WORK|g" -e "s|@BACKEND@|$BACKEND|g" -e "s|@PORT@|$PORT ssl|g" \
        "$ROOT/bench/configs/nginx.conf.in" > "$WORK/nginx.conf"
      sed -i "s|listen 127.0.0.1:$PORT ssl;|listen 127.0.0.1:$PORT ssl; ssl_certificate $WORK/$kind.pem; ssl_certificate_key $WORK/$kind.key; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;|" "$WORK/nginx.conf"
      taskset -c 1 nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
      PROXY_PID=$! ;;
    haproxy)
      sed -e "s|@DIR@|$WORK|g" -e "s|@BACKEND@|$BACKEND|g" -e "s|@PORT@|$PORT ssl crt $WORK/$kind.combined alpn http/1.1|g" \
        -e "s|@SPLICE@||g" "$ROOT/bench/configs/haproxy.cfg.in" > "$WORK/haproxy.cfg"
      taskset -c 1 haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
      PROXY_PID=$! ;;
  esac
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "tls.sh: $t did not start" >&2; return 1
}

for kind in ecdsa rsa; do
  for mode in new resume; do
    for t in switchyard nginx haproxy; do
      start_proxy $t $kind
      c0=$(tree_ticks $PROXY_PID)
      out=$(taskset -c 0 timeout $((DURATION + 20)) /usr/bin/python3 "$ROOT/bench/tls_client.py" $PORT \
              "$DURATION" $mode 2>&1 || true)
      c1=$(tree_ticks $PROXY_PID)
      kill $PROXY_PID; wait $PROXY_PID 2>/dev/null || true
      n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["connections"])' "$out" 2>/dev/null || echo 0)
      r=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["resumed"])' "$out" 2>/dev/null || echo 0)
      cpu=$(awk -v a=$c0 -v b=$c1 -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')
      per_core=$(awk -v n="${n:-0}" -v c=$cpu 'BEGIN{ if (c > 0) printf "%.0f", n/c; else print 0 }')
      line="{\"target\":\"$t\",\"cert\":\"$kind\",\"mode\":\"$mode\",\"connections\":${n:-0},\"resumed\":${r:-0},\"seconds\":$DURATION,\"proxy_cpu_s\":$cpu,\"per_proxy_cpu_s\":$per_core}"
      echo "$line" | tee -a "$OUT"
    done
  done
done
# wss stream: one connection reading the backend's /source through the proxy (ECDSA), the
# proxy encrypting; MB per second of proxy CPU.
for t in switchyard nginx haproxy; do
  start_proxy $t ecdsa
  c0=$(tree_ticks $PROXY_PID)
  out=$(taskset -c 0 timeout $((DURATION + 20)) /usr/bin/python3 "$ROOT/bench/tls_stream.py" $PORT "$DURATION" 2>&1 || true)
  c1=$(tree_ticks $PROXY_PID)
  kill $PROXY_PID; wait $PROXY_PID 2>/dev/null || true
  b=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bytes"])' "$out" 2>/dev/null || echo 0)
  secs=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$out" 2>/dev/null || echo 0)
  cpu=$(awk -v a=$c0 -v b=$c1 -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')
  mbs=$(awk -v b="${b:-0}" -v s="${secs:-0}" 'BEGIN{ if (s > 0) printf "%.0f", b/s/1e6; else print 0 }')
  per_core=$(awk -v b="${b:-0}" -v c=$cpu 'BEGIN{ if (c > 0) printf "%.0f", b/c/1e6; else print 0 }')
  line="{\"target\":\"$t\",\"cert\":\"ecdsa\",\"mode\":\"wss_stream\",\"bytes\":${b:-0},\"seconds\":${secs:-0},\"MBps\":$mbs,\"proxy_cpu_s\":$cpu,\"MB_per_proxy_cpu_s\":$per_core}"
  echo "$line" | tee -a "$OUT"
done
echo "tls.sh: $OUT" >&2
