// Reloading the configuration (SIGHUP, docs/operations.md "Reload"): the pure parts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy/snapshot.hpp"
#include "routing/config.hpp"

namespace sy {

// For each listener of `next`, the index in `running` of the listener it continues (the
// same address as written, matched in order when an address appears more than once), or
// -1 for a listener to open. Running listeners no index names are to be closed.
std::vector<int> plan_listeners(const std::vector<ListenerConfig>& running, const std::vector<ListenerConfig>& next);

// What a reload changes that needs a restart, as log lines; `next` is adjusted to keep the
// running value (only `workers` today).
std::vector<std::string> restart_only_changes(const Config& running, Config& next);

// The snapshot of `config`: resolves every upstream server (false with `error` when one
// does not resolve) and registers the metric series it uses. Main thread.
std::shared_ptr<const Snapshot> make_snapshot(Config config, std::string* error);

}  // namespace sy
