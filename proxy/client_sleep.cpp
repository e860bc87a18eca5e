// A client connection's tunnel going to sleep and waking up (proxy/hibernation.hpp). Apart
// from the connection's state machine: a tunnel leaves and comes back in `tunnel`, and no
// metric, access-log line or shared count sees it go.
#include <utility>

#include "proxy/client_conn.hpp"
#include "proxy/hibernation.hpp"
#include "proxy/upstream_pool.hpp"
#include "proxy/uv_util.hpp"

namespace sy {

std::unique_ptr<SleepingTunnel> ClientConn::fall_asleep(std::uint64_t now) {
    auto* tunnel = dynamic_cast<Tunnel*>(tunnel_.get());
    if (closing_ || tunnel == nullptr || tunnel->ended() || tls_ != nullptr || !up_->plain()) return nullptr;
    if (now - tunnel->idle_since() < static_cast<std::uint64_t>(Hibernation::kSleepAfter.count())) return nullptr;
    const Tunnel::State state = tunnel->state();
    for (const Tunnel::DirectionState& dir : state.dirs) {
        if (dir.eof || dir.shutdown_requested || dir.done) return nullptr;  // half-closed: stays awake
    }
    if (transport_->queued() != 0 || up_->transport().queued() != 0) return nullptr;
    std::size_t u = 0;
    while (u < gen_->pools.size() && gen_->pools[u].get() != &up_->pool()) ++u;
    if (u == gen_->pools.size()) return nullptr;

    auto t = std::make_unique<SleepingTunnel>();
    std::string unwritten;
    t->fds[0] = static_cast<TcpTransport*>(transport_)->detach_for_handoff(&unwritten);
    if (t->fds[0] < 0 || !unwritten.empty()) return nullptr;
    t->fds[1] = up_->detach_for_handoff(&unwritten);
    if (t->fds[1] < 0 || !unwritten.empty()) return nullptr;
    t->gen = gen_;
    t->route = SleepingTunnel::kNoRoute;
    if (route_ != nullptr) t->route = static_cast<std::uint32_t>(route_ - gen_->config().routes.data());
    t->upstream = static_cast<std::uint32_t>(u);
    t->server = static_cast<std::uint32_t>(up_->server());
    t->request_ms = request_ms_;
    t->switch_ms = switch_ms_;
    t->last_activity_ms = tunnel->idle_since();
    t->bytes = state.bytes;
    t->handed_bytes = handed_bytes_;
    t->protocol_stats = protocol_stats_;
    t->labels = tunnel->labels_block();
    return t;
}

void ClientConn::sleep_closed(SleepingTunnel& asleep) {
    asleep.route_reservation = std::exchange(route_reservation_, nullptr);
    asleep.server_reservation = std::exchange(server_reservation_, nullptr);
    // The connection objects go as if the tunnel had never been: the counts they keep are
    // put back (the tunnel is still open, in its sockets), and no line is logged.
    asleep_ = true;
    g_stats.add(g_stats.connections_active, 1);           // ~ClientConn takes 1
    g_stats.add(g_stats.upstream_connections_active, 1);  // UpstreamConn::close takes 1
    up_->pool().hold_busy(up_->server());                  // ... and the slot's busy count
    worker_.remove_client(this);  // now, not at the close callback: max_connections counts it asleep
    close();
}

void ClientConn::wake(Worker& worker, std::unique_ptr<SleepingTunnel> t) {
    auto* conn = new ClientConn(worker);  // owns itself, like an accepted one
    g_stats.add(g_stats.connections_active, -1);  // counted while it slept
    g_stats.add(g_stats.connections_total, -1);
    conn->wake_tunnel(std::move(t));
}

void ClientConn::wake_tunnel(std::unique_ptr<SleepingTunnel> t) {
    gen_ = t->gen;
    const Config& config = this->config();
    UpstreamPool& pool = *gen_->pools[t->upstream];
    route_reservation_ = t->route_reservation;
    server_reservation_ = t->server_reservation;
    if (t->route != SleepingTunnel::kNoRoute) {
        route_ = &config.routes[t->route];
        route_stats_ = &gen_->snapshot->stats.routes[t->route];
    }
    outcome_ = UpgradeOutcome::switched;
    protocol_stats_ = t->protocol_stats;
    switch_ms_ = t->switch_ms;
    request_ms_ = t->request_ms;
    handed_bytes_ = t->handed_bytes;
    first_request_ = false;
    pool_ = &pool;
    g_stats.add(g_stats.upstream_connections_active, -1);  // the new UpstreamConn adds it again
    pool.release_busy(t->server);                           // pool.adopt takes it again
    const bool opened = static_cast<TcpTransport*>(transport_)->open(t->fds[0]);
    if (opened) t->fds[0] = -1;
    up_ = opened ? pool.adopt(t->server, *this, t->fds[1]) : nullptr;
    if (up_ == nullptr) {
        // Cannot happen short of a broken descriptor: the tunnel ends here, counted.
        log_error("a sleeping tunnel could not wake; it is closed");
        g_stats.add(protocol_stats_->tunnels_active, -1);
        g_stats.add(pool.tunnels_cell(t->server), -1);
        g_stats.add(protocol_stats_->closed + static_cast<MetricCell>(TunnelEnd::error));
        release_reservations();
        close();
        return;
    }
    t->fds[1] = -1;

    Tunnel* pump = continue_tunnel();
    pump->set_labels_block(std::move(t->labels));

    Tunnel::State state;
    state.bytes = t->bytes;
    const std::uint64_t now = worker_.now_ms();
    state.idle_ms = now > t->last_activity_ms ? now - t->last_activity_ms : 0;
    // Last: the tunnel may end inside (a side that closed while it slept).
    pump->resume(state, {});
}

}  // namespace sy
