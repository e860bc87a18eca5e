// Switchyard's metrics (docs/operations.md, "Metrics"): the families, the process-wide
// series, and the series of one configuration's routes and upstreams.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/ops/metrics.hpp"
#include "routing/config.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

// How a tunnel ended: the `reason` label and the access log's `end`.
// protocol_error: a terminated WebSocket closed by the proxy for a broken framing rule
// (close 1002, 1007 or 1009).
// handed_off: a binary upgrade moved the tunnel to the new process (it goes on there).
enum class TunnelEnd : std::uint8_t {
    eof, client_reset, upstream_reset, idle_timeout, shutdown, error, protocol_error, handed_off
};
inline constexpr std::size_t kTunnelEnds = 8;
const char* tunnel_end_name(TunnelEnd end);

// The series of one route and one protocol label.
struct ProtocolStats {
    std::string label;          // "websocket", "h2c", a name from `allow`, "other", "none"
    MetricCell upgrades = 0;    // kUpgradeOutcomes cells, indexed by UpgradeOutcome
    MetricCell tunnels_active = 0;
    MetricCell tunnels_total = 0;
    MetricCell tunnels_adopted = 0;  // taken over from the old process (binary upgrade)
    MetricCell bytes_to_upstream = 0;
    MetricCell bytes_to_client = 0;
    MetricCell duration = 0;    // histogram
    MetricCell closed = 0;      // kTunnelEnds cells, indexed by TunnelEnd
};

struct RouteStats {
    std::string name;             // the route's name; "-" for "no route matched"
    MetricCell requests = 0;      // 5 cells: 1xx .. 5xx
    std::vector<ProtocolStats> protocols;

    // The protocol label for `protocol` as offered ("WebSocket/13" -> "websocket"); "none"
    // for an empty one, "other" for a name the route does not list.
    const ProtocolStats& protocol(std::string_view protocol) const;
};

struct UpstreamStats {
    std::string name;
    MetricCell connect_failures = 0;
    std::vector<std::string> servers;     // the servers' addresses as configured
    std::vector<MetricCell> server_tunnels;  // per server: switchyard_upstream_tunnels_active
};

// The series one configuration uses, resolved when it is loaded (main thread).
struct StatsBinding {
    std::vector<RouteStats> routes;        // per Config::routes index
    RouteStats no_route;                   // route "-"
    std::vector<UpstreamStats> upstreams;  // per Config::upstreams index
};

// The process's metrics. `init` once at start, before the workers run.
struct Stats {
    MetricsRegistry registry;

    MetricCell connections_active = 0;
    MetricCell connections_total = 0;
    MetricCell connections_refused = 0;
    MetricCell proxy_protocol_errors = 0;
    MetricCell upstream_connections_active = 0;
    MetricCell upstream_connections_idle = 0;
    MetricCell responses_proxy = 0;
    MetricCell bytes_from_clients = 0;
    MetricCell bytes_to_clients = 0;
    MetricCell bytes_spliced = 0;  // tunnel bytes moved by splice(2)
    MetricCell tunnels_sleeping = 0;  // idle tunnels asleep (proxy/hibernation.hpp)
    MetricCell reloads_ok = 0;
    MetricCell reloads_failed = 0;
    MetricCell last_reload_success = 0;
    MetricCell access_log_dropped = 0;

    // Workers 0..workers-1, then the main thread, then the access-log writer.
    void init(unsigned workers);
    unsigned main_writer() const { return workers_; }
    unsigned log_writer() const { return workers_ + 1; }

    // Registers what `config` needs. Main thread only.
    StatsBinding bind(const Config& config);

    void add(MetricCell cell, std::int64_t n = 1) { registry.add(cell, n); }

private:
    RouteStats route_stats(const std::string& name, const UpgradeConfig* upgrade);
    unsigned workers_ = 0;
};

extern Stats g_stats;

// The status class cell ("2xx" -> +1) of `route` for `status`; nothing for 0.
void count_request(const RouteStats& route, int status);

}  // namespace sy
