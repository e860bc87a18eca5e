// Process-wide counters, shared by every worker and read by the admin listener.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace sy {

struct Metrics {
    std::atomic<std::int64_t> connections_active{0};          // client connections open
    std::atomic<std::uint64_t> connections_total{0};          // accepted
    std::atomic<std::uint64_t> connections_refused_total{0};  // over limits.max_connections
    std::atomic<std::int64_t> upstream_connections_active{0}; // open, idle ones included
    std::atomic<std::int64_t> upstream_connections_idle{0};   // in keep-alive pools
    std::atomic<std::uint64_t> upstream_connect_failures_total{0};
    std::atomic<std::uint64_t> requests_total{0};             // request heads parsed
    std::atomic<std::uint64_t> responses_proxy_total{0};      // answered by the proxy itself
    std::atomic<std::int64_t> tunnels_active{0};
    std::atomic<std::uint64_t> tunnels_total{0};
    std::atomic<std::uint64_t> bytes_from_clients_total{0};
    std::atomic<std::uint64_t> bytes_to_clients_total{0};

    // Prometheus text exposition format.
    std::string render() const;
};

extern Metrics g_metrics;

}  // namespace sy
