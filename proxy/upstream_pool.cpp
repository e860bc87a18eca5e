#include "proxy/upstream_pool.hpp"

#include <algorithm>

#include "proxy/metrics.hpp"
#include "proxy/upstream_conn.hpp"
#include "proxy/worker.hpp"

namespace sy {

UpstreamPool::UpstreamPool(Worker& worker, const UpstreamConfig& config, std::vector<sockaddr_storage> addresses)
    : worker_(worker), config_(config) {
    servers_.resize(addresses.size());
    for (std::size_t i = 0; i < addresses.size(); ++i) servers_[i].address = addresses[i];
    // Workers start at different servers so that round robin spreads from the first request.
    if (!servers_.empty()) next_ = worker.id() % servers_.size();
}

UpstreamPool::~UpstreamPool() = default;

const sockaddr* UpstreamPool::address(std::size_t server) const {
    return reinterpret_cast<const sockaddr*>(&servers_[server].address);
}

bool UpstreamPool::cooling_down(const Server& s, std::uint64_t now) const {
    return s.consecutive_fails >= config_.health.max_fails && now < s.cooldown_until_ms;
}

std::size_t UpstreamPool::pick(const std::vector<bool>& tried) {
    const std::size_t n = servers_.size();
    const std::uint64_t now = worker_.now_ms();
    // Two passes: healthy servers first; if every untried one is cooling down, try them
    // anyway rather than failing without an attempt.
    for (int pass = 0; pass < 2; ++pass) {
        std::size_t best = npos;
        for (std::size_t k = 0; k < n; ++k) {
            std::size_t i = (next_ + k) % n;
            if (tried[i]) continue;
            if (pass == 0 && avoid(servers_[i], now)) continue;
            if (config_.balance == Balance::round_robin) {
                best = i;
                break;
            }
            if (best == npos || servers_[i].busy < servers_[best].busy) best = i;
        }
        if (best != npos) {
            next_ = (best + 1) % n;
            return best;
        }
    }
    return npos;
}

UpstreamConn* UpstreamPool::acquire(std::size_t server, UpstreamEvents& events, bool* connected) {
    // Most recently used first: it is the least likely to have been closed by the server.
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
        UpstreamConn* conn = *it;
        if (conn->server() != server) continue;
        idle_.erase(std::next(it).base());
        g_metrics.upstream_connections_idle.fetch_sub(1, std::memory_order_relaxed);
        conn->attach(events);
        *connected = true;
        return conn;
    }
    auto* conn = new UpstreamConn(*this, server);
    servers_[server].busy++;
    conn->connect(events);
    *connected = false;
    return conn;
}

void UpstreamPool::record_connect_result(std::size_t server, bool ok) {
    Server& s = servers_[server];
    if (ok) {
        s.consecutive_fails = 0;
        return;
    }
    g_metrics.upstream_connect_failures_total.fetch_add(1, std::memory_order_relaxed);
    if (++s.consecutive_fails >= config_.health.max_fails) {
        s.cooldown_until_ms = worker_.now_ms() + static_cast<std::uint64_t>(config_.health.cooldown.count());
    }
}

bool UpstreamPool::set_check_result(std::size_t server, bool up) {
    Server& s = servers_[server];
    bool changed = s.check_down == up;
    s.check_down = !up;
    return changed;
}

void UpstreamPool::on_conn_busy(UpstreamConn* conn) { servers_[conn->server()].busy++; }

void UpstreamPool::on_conn_released(UpstreamConn* conn) {
    servers_[conn->server()].busy--;
    if (closing_ || worker_.draining() || idle_.size() >= config_.keepalive) {
        // No room: close it (close() sees it idle and does not count it busy again).
        conn->close();
        return;
    }
    idle_.push_back(conn);
    g_metrics.upstream_connections_idle.fetch_add(1, std::memory_order_relaxed);
}

void UpstreamPool::on_conn_closed(UpstreamConn* conn, bool was_idle, bool was_counted_busy) {
    if (was_idle) {
        auto it = std::find(idle_.begin(), idle_.end(), conn);
        if (it != idle_.end()) {
            idle_.erase(it);
            g_metrics.upstream_connections_idle.fetch_sub(1, std::memory_order_relaxed);
        }
    } else if (was_counted_busy) {
        servers_[conn->server()].busy--;
    }
}

void UpstreamPool::close_idle() {
    closing_ = true;
    std::vector<UpstreamConn*> conns;
    conns.swap(idle_);
    for (UpstreamConn* conn : conns) {
        g_metrics.upstream_connections_idle.fetch_sub(1, std::memory_order_relaxed);
        conn->close();
    }
}

}  // namespace sy
