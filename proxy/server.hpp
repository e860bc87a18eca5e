// The process: listening sockets, workers, the admin listener and signal handling.
#pragma once

#include "routing/config.hpp"

namespace sy {

// Runs the proxy until SIGINT/SIGTERM and a clean drain. Returns the exit status.
int run_server(const Config& config);

}  // namespace sy
