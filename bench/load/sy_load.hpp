// sy_load: options and the entry points of each role.
#pragma once

#include <cstdint>
#include <string>

namespace syload {

struct Options {
  std::string cmd;
  std::string listen = "127.0.0.1:9100";
  std::string target = "127.0.0.1:8080";
  std::string label;           // copied into the JSON line
  int conns = 64;              // connections (http, handshakes in flight, echo)
  double duration = 5;         // seconds of measurement (backend: 0 = until SIGTERM)
  std::uint64_t count = 0;     // exact units, then stop (0 = use --duration)
  std::size_t msg = 64;        // echo message size
  int depth = 1;               // echo messages in flight per connection
  int tunnels = 1;             // stream / idle
  std::string direction = "down";  // stream: down = backend->client, up = client->backend
  std::size_t body = 128;      // http body size
  double hold = 3;             // idle: seconds to keep the tunnels open after "ready"
  int concurrency = 256;       // idle: tunnels being opened at once
};

int run_backend(const Options& o);
int run_client(const Options& o);

}  // namespace syload
