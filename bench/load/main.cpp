// sy_load: Switchyard's load generator. One binary, two roles:
//   sy_load backend --listen ADDR [--duration S]
//   sy_load http|handshakes|echo|stream|idle --target ADDR [options]
// Every client scenario verifies the bytes it receives and prints one JSON line.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sy_load.hpp"
#include "ws.hpp"

namespace {
void usage() {
  std::fputs(
      "usage: sy_load backend --listen ADDR [--duration S]\n"
      "       sy_load http       --target ADDR [--conns N] [--duration S | --count N] [--body BYTES]\n"
      "       sy_load handshakes --target ADDR [--conns N] [--duration S | --count N]\n"
      "       sy_load echo       --target ADDR [--conns N] [--msg BYTES] [--depth D] [--duration S | --count N]\n"
      "       sy_load stream     --target ADDR [--tunnels N] [--direction down|up] [--duration S | --count MiB]\n"
      "       sy_load idle       --target ADDR [--tunnels N] [--concurrency N] [--hold S]\n"
      "       sy_load ws-services --listen HOST:PORT  (WebSocket /sink /echo; PORT+1 TCP sink; PORT+2 TCP echo)\n"
      "       sy_load ws-stream  --target ADDR [--tunnels N] [--msg BYTES] [--duration S | --count MiB]\n"
      "       sy_load ws-echo    --target ADDR [--conns N] [--msg BYTES] [--depth D] [--duration S | --count N]\n"
      "       (ws-*: WebSocket frames; --cpu-pid PID --svc-pid PID report those processes' CPU time)\n"
      "common: --label TEXT (copied into the JSON line)\n",
      stderr);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  syload::Options o;
  o.cmd = argv[1];
  if (o.cmd == "backend" || o.cmd == "ws-services") o.duration = 0;  // until SIGTERM unless --duration
  if (o.cmd == "ws-stream") o.msg = 65536;
  syload::WsOptions ws;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "sy_load: %s needs a value\n", k.c_str());
      return 2;
    }
    const char* v = argv[++i];
    if (k == "--listen") o.listen = v;
    else if (k == "--target") o.target = v;
    else if (k == "--label") o.label = v;
    else if (k == "--conns") o.conns = std::atoi(v);
    else if (k == "--duration") o.duration = std::atof(v);
    else if (k == "--count") o.count = std::strtoull(v, nullptr, 10);
    else if (k == "--msg") o.msg = std::strtoul(v, nullptr, 10);
    else if (k == "--depth") o.depth = std::atoi(v);
    else if (k == "--tunnels") o.tunnels = std::atoi(v);
    else if (k == "--direction") o.direction = v;
    else if (k == "--body") o.body = std::strtoul(v, nullptr, 10);
    else if (k == "--hold") o.hold = std::atof(v);
    else if (k == "--concurrency") o.concurrency = std::atoi(v);
    else if (k == "--cpu-pid") ws.cpu_pid = std::atoi(v);
    else if (k == "--svc-pid") ws.svc_pid = std::atoi(v);
    else {
      std::fprintf(stderr, "sy_load: unknown option %s\n", k.c_str());
      usage();
      return 2;
    }
  }
  if (o.conns < 1 || o.tunnels < 1 || o.depth < 1 || o.msg < 1 || o.msg > 65536 || o.body > 65536 ||
      (o.direction != "up" && o.direction != "down")) {
    std::fprintf(stderr, "sy_load: option out of range\n");
    return 2;
  }
  if (o.cmd == "backend") return syload::run_backend(o);
  if (o.cmd == "ws-services") return syload::run_ws_services(o);
  if (o.cmd == "ws-stream" || o.cmd == "ws-echo") return syload::run_ws_client(o, ws);
  if (o.cmd == "-h" || o.cmd == "--help") {
    usage();
    return 0;
  }
  return syload::run_client(o);
}
