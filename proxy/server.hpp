// The process: listening sockets, workers, the admin listener and signal handling.
#pragma once

#include <string>

#include "routing/config.hpp"

namespace sy {

// Runs the proxy until SIGINT/SIGTERM and a clean drain; SIGHUP reloads `config_path`.
// Returns the exit status.
int run_server(const Config& config, const std::string& config_path);

}  // namespace sy
