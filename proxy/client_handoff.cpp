// A binary upgrade's side of a client connection (docs/operations.md, "Binary upgrade"):
// the old process lets an established raw tunnel go to its successor (hand_off), and the
// new process makes a connection of what arrives (adopt). Apart from the connection's
// state machine, which is not involved: a handed tunnel leaves and arrives in `tunnel`.
#include <cstdint>

#include "proxy/client_conn.hpp"
#include "proxy/handoff/handoff_queue.hpp"
#include "proxy/upstream_pool.hpp"
#include "proxy/uv_util.hpp"

namespace sy {

bool ClientConn::hand_off(HandoffOutbox& outbox) {
    // Only a raw tunnel over plain TCP both ways moves: TLS keeps its record state in
    // OpenSSL, and a terminated WebSocket its frame decoder.
    auto* tunnel = dynamic_cast<Tunnel*>(tunnel_.get());
    if (closing_ || tunnel == nullptr || tunnel->ended() || tls_ != nullptr) return false;
    MovingTunnel moving;
    HandedTunnel& r = moving.record;
    moving.client_fd = static_cast<TcpTransport*>(transport_)->detach_for_handoff(&r.sides[TunnelBase::kClient].unwritten);
    if (moving.client_fd < 0) return false;
    moving.upstream_fd = up_->detach_for_handoff(&r.sides[TunnelBase::kUpstream].unwritten);
    if (moving.upstream_fd < 0) return false;  // `moving` closes the client's duplicate

    if (route_ != nullptr) r.route = route_->name;
    r.upstream = up_->pool().config().name;
    r.server = up_->pool().server_name(up_->server());
    r.protocol = tunnel->protocol();
    r.method = tunnel->method();
    r.target = tunnel->target();
    r.client = tunnel->client();
    const Tunnel::State state = tunnel->state();
    r.bytes = state.bytes;
    r.idle_ms = state.idle_ms;
    r.age_ms = worker_.now_ms() - switch_ms_;
    r.request_ms = request_ms_;
    for (int side : {TunnelBase::kClient, TunnelBase::kUpstream}) {
        r.sides[side].eof_read = state.dirs[side].eof;
        r.sides[side].shutdown_requested = state.dirs[side].shutdown_requested;
        r.sides[side].shutdown_done = state.dirs[side].done;
    }
    SY_TRACE("client %p tunnel handed over", static_cast<void*>(this));
    outbox.push(std::move(moving));
    // Ends here (logged and counted as handed_off) and closes: the queued writes are
    // cancelled unsent, and closing our descriptors sends nothing, the sockets living on
    // in the duplicates.
    tunnel_->end(TunnelEnd::handed_off);
    return true;
}

void ClientConn::adopt(Worker& worker, MovingTunnel moving) {
    auto* conn = new ClientConn(worker);  // owns itself, like an accepted one
    g_stats.add(g_stats.connections_total, -1);  // accepted once, by the old process
    conn->adopt_tunnel(std::move(moving));
}

// Both transports are open and the accounting is done: the connection becomes a tunnel's
// owner, holding nothing an HTTP exchange needs. The caller sets the labels and resumes it.
Tunnel* ClientConn::continue_tunnel() {
    set_req_state(ReqState::tunnel);
    set_res_state(ResState::tunnel);
    auto tunnel = std::make_unique<Tunnel>(static_cast<TunnelOwner&>(*this), worker_.loop(), *transport_,
                                           up_->transport(), config().tunnel.buffer, splice_pipe());
    Tunnel* pump = tunnel.get();
    tunnel_ = std::move(tunnel);
    close_and_free(timer_);
    close_and_free(up_timer_);
    up_->enter_tunnel();
    http_.reset();
    transport_->drop_cork_buffer();
    return pump;
}

void ClientConn::adopt_tunnel(MovingTunnel moving) {
    HandedTunnel& r = moving.record;
    const Config& config = this->config();
    // The upstream and its server, by name: a tunnel whose upstream the new configuration
    // no longer has cannot be counted anywhere, and closes.
    std::size_t u = 0;
    while (u < gen_->pools.size() && gen_->pools[u]->config().name != r.upstream) ++u;
    const std::size_t server = u < gen_->pools.size() ? gen_->pools[u]->find_server(r.server) : UpstreamPool::npos;
    if (server == UpstreamPool::npos) {
        log_error("hand-off: a tunnel to %s (%s) closes: the configuration has no such upstream server",
                  r.upstream.c_str(), r.server.c_str());
        close();
        return;
    }
    if (!static_cast<TcpTransport*>(transport_)->open(moving.client_fd)) {
        close();
        return;
    }
    moving.client_fd = -1;  // the transport's now
    pool_ = gen_->pools[u].get();
    up_ = gen_->pools[u]->adopt(server, *this, moving.upstream_fd);
    if (up_ == nullptr) {
        close();
        return;
    }
    moving.upstream_fd = -1;

    // The route by name; a route the configuration no longer has counts as "no route".
    for (std::size_t i = 0; i < config.routes.size(); ++i) {
        if (config.routes[i].name != r.route) continue;
        route_ = &config.routes[i];
        route_stats_ = &gen_->snapshot->stats.routes[i];
        route_reservation_ = gen_->snapshot->admission.routes[i].tunnels;
        if (route_reservation_ != nullptr) route_reservation_->try_acquire(0);
        break;
    }
    server_reservation_ = gen_->pools[u]->tunnels_shared(server);
    if (server_reservation_ != nullptr) server_reservation_->try_acquire(0);
    outcome_ = UpgradeOutcome::switched;
    protocol_stats_ = &route_stats().protocol(r.protocol);
    // Open here from now on; tunnels_total counted it where it opened.
    g_stats.add(protocol_stats_->tunnels_active, 1);
    g_stats.add(protocol_stats_->tunnels_adopted, 1);
    g_stats.add(up_->pool().tunnels_cell(server), 1);
    const std::uint64_t now = worker_.now_ms();
    switch_ms_ = now > r.age_ms ? now - r.age_ms : 0;
    request_ms_ = r.request_ms;
    handed_bytes_ = r.bytes;
    first_request_ = false;

    Tunnel* pump = continue_tunnel();
    pump->set_labels(r.protocol, r.method, r.target, r.client);

    Tunnel::State state;
    state.bytes = r.bytes;
    state.idle_ms = r.idle_ms;
    for (int side : {TunnelBase::kClient, TunnelBase::kUpstream}) {
        state.dirs[side].eof = r.sides[side].eof_read;
        state.dirs[side].shutdown_requested = r.sides[side].shutdown_requested;
        state.dirs[side].done = r.sides[side].shutdown_done;
    }
    SY_TRACE("client %p tunnel adopted", static_cast<void*>(this));
    // Last: the tunnel may end inside (a side gone meanwhile), which closes this connection.
    pump->resume(state, {r.sides[TunnelBase::kClient].unwritten, r.sides[TunnelBase::kUpstream].unwritten});
}

}  // namespace sy
