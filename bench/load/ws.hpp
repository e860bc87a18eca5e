// sy_load: the WebSocket-framed roles (ws.cpp): ws-services, ws-stream, ws-echo.
#pragma once

#include "sy_load.hpp"

namespace syload {

struct WsOptions {
  int cpu_pid = 0;  // --cpu-pid: the proxy, whose CPU time over the measured interval is reported
  int svc_pid = 0;  // --svc-pid: the services process, likewise
};

int run_ws_services(const Options& o);
int run_ws_client(const Options& o, const WsOptions& w);

}  // namespace syload
