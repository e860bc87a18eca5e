// The process: listening sockets, workers, the admin listener and signal handling.
#pragma once

#include <string>

#include "routing/config.hpp"

namespace sy {

// Runs the proxy until SIGINT/SIGTERM and a clean drain (or, after SIGUSR2, until its
// successor holds the listeners and it holds nothing); SIGHUP reloads `config_path`.
// `handoff_channel` >= 0: this process is a binary upgrade's new one, and takes the
// listening sockets and tunnels from the old one over that socket. Returns the exit status.
int run_server(const Config& config, const std::string& config_path, int handoff_channel = -1);

}  // namespace sy
