// ClientConn's accounting: the access-log lines and the metrics of its exchanges and of
// its tunnel (docs/operations.md). Apart from the connection's state machine, which only
// calls these at the points where an outcome becomes known.
#include <cstdint>

#include "proxy/client_conn.hpp"
#include "proxy/ops/access_log.hpp"
#include "proxy/upstream_pool.hpp"

namespace sy {

std::string_view ClientConn::offered_protocol() const {
    const UpgradeDecision& d = http_->decision;
    const std::vector<std::string>& named = d.kind == UpgradeDecision::Kind::forward ? d.forwarded : d.offer;
    return named.empty() ? std::string_view() : std::string_view(named.front());
}

const RouteStats& ClientConn::route_stats() const {
    return route_stats_ != nullptr ? *route_stats_ : gen_->snapshot->stats.no_route;
}

void ClientConn::note_status_sent(int status) {
    status_sent_ = status;
    head_sent_ = true;
    count_request(route_stats(), status);
}

void ClientConn::count_upgrade(UpgradeOutcome outcome, std::string_view protocol) {
    outcome_ = outcome;
    protocol_stats_ = &route_stats().protocol(protocol);
    g_stats.add(protocol_stats_->upgrades + static_cast<MetricCell>(outcome));
}

std::uint64_t ClientConn::log_bytes_to_clients() {
    const std::uint64_t written = transport_->bytes_written();
    const std::uint64_t out = written - bytes_out_mark_;
    g_stats.add(g_stats.bytes_to_clients, static_cast<std::int64_t>(out));
    bytes_out_mark_ = written;
    return out;
}

void ClientConn::log_exchange(const char* end) {
    std::uint64_t out = log_bytes_to_clients();
    AccessLog& log = worker_.access_log();
    if (!log.enabled()) return;
    AccessRecord r;
    r.client = http_->client_ip;
    r.method = http_->req.method;
    r.target = http_->req.target;
    r.http_major = http_->req.http_major;
    r.http_minor = http_->req.http_minor;
    r.status = status_sent_;
    r.bytes_in = bytes_in_;
    r.bytes_out = out;
    r.request_ms = static_cast<double>(worker_.now_ms() - exchange_start_ms_);
    if (route_ != nullptr) r.route = route_->name;
    if (pool_ != nullptr) r.upstream = pool_->config().name;
    if (pool_ != nullptr && up_ != nullptr) r.server = pool_->server_name(up_->server());
    r.upgrade = outcome_;
    if (outcome_ == UpgradeOutcome::switched || outcome_ == UpgradeOutcome::terminated) {
        r.protocol = tunnel_->protocol();
    } else if (outcome_ != UpgradeOutcome::none) {
        r.protocol = offered_protocol();
    }
    r.end = end;
    log.write(worker_.id(), worker_.now_ms(), r, config().access_log.format);
}

void ClientConn::count_tunnel_open() {
    switch_ms_ = worker_.now_ms();
    request_ms_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(switch_ms_ - exchange_start_ms_, UINT32_MAX));
    g_stats.add(protocol_stats_->tunnels_active, 1);
    g_stats.add(protocol_stats_->tunnels_total, 1);
    g_stats.add(up_->pool().tunnels_cell(up_->server()), 1);
}

void ClientConn::count_tunnel_end(TunnelEnd how) {
    release_reservations();
    const ProtocolStats& p = *protocol_stats_;
    g_stats.add(p.tunnels_active, -1);
    g_stats.add(up_->pool().tunnels_cell(up_->server()), -1);
    g_stats.add(p.bytes_to_upstream,
                static_cast<std::int64_t>(tunnel_->bytes_from(TunnelBase::kClient) - handed_bytes_[TunnelBase::kClient]));
    g_stats.add(p.bytes_to_client,
                static_cast<std::int64_t>(tunnel_->bytes_from(TunnelBase::kUpstream) - handed_bytes_[TunnelBase::kUpstream]));
    g_stats.add(p.closed + static_cast<MetricCell>(how));
    // A tunnel handed to the new process goes on there, which observes its whole duration.
    if (how != TunnelEnd::handed_off) g_stats.registry.observe(p.duration, worker_.now_ms() - switch_ms_);
}

void ClientConn::tunnel_ended(TunnelEnd how) {
    if (asleep_) {  // the tunnel goes on, asleep (client_sleep.cpp)
        close();
        return;
    }
    count_tunnel_end(how);
    // Every byte toward the client since the 101 was counted by the tunnel.
    AccessLog& log = worker_.access_log();
    if (log.enabled()) {
        AccessRecord r;
        r.tunnel = true;
        r.client = tunnel_->client();
        r.method = tunnel_->method();
        r.target = tunnel_->target();
        r.status = 101;
        r.bytes_in = tunnel_->bytes_from(TunnelBase::kClient);
        r.bytes_out = tunnel_->bytes_from(TunnelBase::kUpstream);
        r.request_ms = request_ms_;
        r.tunnel_ms = static_cast<double>(worker_.now_ms() - switch_ms_);
        if (route_ != nullptr) r.route = route_->name;
        r.upstream = up_->pool().config().name;
        r.server = up_->pool().server_name(up_->server());
        r.upgrade = outcome_;  // switched, or terminated
        r.protocol = tunnel_->protocol();
        r.end = tunnel_end_name(how);
        log.write(worker_.id(), worker_.now_ms(), r, config().access_log.format);
    }
    close();
}

}  // namespace sy
