// A loaded configuration and what the process derives from it on the main thread: the
// metric series it uses and its servers' resolved addresses. Immutable once published;
// shared by reference count, so whoever still uses one (a worker, an exchange, a tunnel)
// keeps it alive and the last one frees it (docs/operations.md, "Reload").
#pragma once

#include <memory>
#include <vector>

#include <sys/socket.h>

#include "proxy/admission.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/transport/tls_context.hpp"
#include "routing/config.hpp"

namespace sy {

struct Snapshot {
    Config config;
    StatsBinding stats;
    AdmissionBinding admission;  // the counters and rate buckets shared by every worker
    bool needs_client_ip = false;  // an upstream hashes on client_ip
    std::vector<std::vector<sockaddr_storage>> server_addresses;  // per Config::upstreams index
    std::vector<std::shared_ptr<ServerTls>> listener_tls;  // per Config::listen index; null: plain
    std::vector<std::shared_ptr<ClientTls>> upstream_tls;  // per Config::upstreams index; null: plain
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace sy
