#include "proxy/upstream_pool.hpp"

#include <algorithm>

#include "proxy/upstream_conn.hpp"
#include "proxy/worker.hpp"
#include "routing/affinity.hpp"

namespace sy {

UpstreamPool::UpstreamPool(Worker& worker, const UpstreamConfig& config, const UpstreamStats& stats,
                           const std::vector<sockaddr_storage>& addresses, const std::vector<SharedCount*>& tunnels)
    : worker_(worker), random_state_(0x9e3779b97f4a7c15ull ^ (worker.id() + 1) * 0xbf58476d1ce4e5b9ull) {
    reconfigure(config, stats, addresses, tunnels);
    // Workers start at different servers so that round robin spreads from the first request.
    if (!order_.empty()) next_ = worker.id() % order_.size();
}

UpstreamPool::~UpstreamPool() = default;

void UpstreamPool::reconfigure(const UpstreamConfig& config, const UpstreamStats& stats,
                               const std::vector<sockaddr_storage>& addresses, const std::vector<SharedCount*>& tunnels) {
    config_ = config;
    connect_failures_ = stats.connect_failures;
    std::vector<bool> kept(slots_.size(), false);
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < config.servers.size(); ++i) {
        const std::string& name = stats.servers[i];
        std::size_t slot = npos;
        for (std::size_t s = 0; s < slots_.size(); ++s) {
            if (!slots_[s].retired && !kept[s] && slots_[s].name == name) {
                slot = s;  // the same server: health state and idle connections stay
                break;
            }
        }
        if (slot == npos) {
            for (std::size_t s = 0; s < slots_.size(); ++s) {
                if (slots_[s].retired && slots_[s].open == 0) {
                    slot = s;
                    break;
                }
            }
            if (slot == npos) {
                slot = slots_.size();
                slots_.emplace_back();
                kept.push_back(false);
            }
            slots_[slot] = Slot{};
            slots_[slot].name = name;
        }
        kept[slot] = true;
        slots_[slot].address = addresses[i];
        slots_[slot].tunnels = stats.server_tunnels[i];
        slots_[slot].tunnels_shared = tunnels[i];
        slots_[slot].id = server_id(config.name, name);
        slots_[slot].affinity = sy::affinity_value(slots_[slot].id);
        order.push_back(slot);
    }
    for (std::size_t s = 0; s < slots_.size(); ++s) {
        if (kept[s] || slots_[s].retired) continue;
        slots_[s].retired = true;
        close_idle_of(s);
    }
    order_ = std::move(order);
    if (next_ >= order_.size()) next_ = 0;
    trim_idle();
}

const sockaddr* UpstreamPool::address(std::size_t server) const {
    return reinterpret_cast<const sockaddr*>(&slots_[server].address);
}

bool UpstreamPool::cooling_down(const Slot& s, std::uint64_t now) const {
    return s.consecutive_fails >= config_.health.max_fails && now < s.cooldown_until_ms;
}

UpstreamPool::Picked UpstreamPool::pick(const std::vector<bool>& tried, const PickRequest& request) {
    const std::size_t n = order_.size();
    const std::uint64_t now = worker_.now_ms();
    const auto slow_start_ms = static_cast<std::uint64_t>(config_.slow_start.count());
    views_.resize(n);
    BalanceRequest br;
    br.balance = config_.balance;
    br.key = request.key;
    br.upgrade = request.upgrade;
    br.cursor = next_;
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    br.draw = static_cast<double>(random_state_ >> 11) * 0x1.0p-53;
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = order_[k];
        const Slot& s = slots_[i];
        ServerView& v = views_[k];
        v.id = s.id;
        v.eligible = !(i < tried.size() && tried[i]);
        v.down = avoid(s, now);
        v.full = s.tunnels_shared != nullptr && s.tunnels_shared->full(config_.max_tunnels);
        v.share = s.back_since_ms == 0 || now < s.back_since_ms ? 1.0
                                                                 : slow_start_share(now - s.back_since_ms, slow_start_ms);
        v.busy = s.busy;
        if (!request.affinity.empty() && request.affinity == s.affinity) br.sticky = k;
    }
    Picked picked;
    // An upgrade takes its place in the server's max_tunnels here; another worker may take
    // the last one between the look and the take, and then the server counts as full.
    for (std::size_t attempt = 0; attempt <= n; ++attempt) {
        const BalanceChoice choice = choose_server(views_, br);
        if (choice.server == BalanceChoice::none) {
            picked.all_full = choice.all_full;
            return picked;
        }
        const std::size_t slot = order_[choice.server];
        if (request.upgrade && slots_[slot].tunnels_shared != nullptr) {
            if (!slots_[slot].tunnels_shared->try_acquire(config_.max_tunnels)) {
                views_[choice.server].full = true;
                continue;
            }
            picked.reservation = slots_[slot].tunnels_shared;
        }
        next_ = choice.next_cursor;
        picked.server = slot;
        picked.affinity_kept = br.sticky == choice.server;
        return picked;
    }
    picked.all_full = true;
    return picked;
}

UpstreamConn* UpstreamPool::acquire(std::size_t server, UpstreamEvents& events, Millis connect_timeout,
                                    bool* connected, bool reuse, std::string proxy_header) {
    // Most recently used first: it is the least likely to have been closed by the server.
    reuse = reuse && config_.proxy_protocol == ProxyProtocolOut::off;  // one client's per connection
    for (auto it = idle_.rbegin(); reuse && it != idle_.rend(); ++it) {
        UpstreamConn* conn = *it;
        if (conn->server() != server) continue;
        idle_.erase(std::next(it).base());
        g_stats.add(g_stats.upstream_connections_idle, -1);
        conn->attach(events);
        *connected = true;
        return conn;
    }
    auto* conn = new UpstreamConn(shared_from_this(), server);
    slots_[server].busy++;
    slots_[server].open++;
    conn->connect(events, connect_timeout, std::move(proxy_header));
    *connected = false;
    return conn;
}

void UpstreamPool::record_connect_result(std::size_t server, bool ok) {
    Slot& s = slots_[server];
    if (ok) {
        s.consecutive_fails = 0;
        return;
    }
    g_stats.add(connect_failures_);
    if (++s.consecutive_fails >= config_.health.max_fails) {
        s.cooldown_until_ms = worker_.now_ms() + static_cast<std::uint64_t>(config_.health.cooldown.count());
        // Tried again when the cooldown ends: slow start counts from then.
        s.back_since_ms = s.cooldown_until_ms;
    }
}

bool UpstreamPool::set_check_result(std::size_t server, bool up) {
    Slot& s = slots_[server];
    bool changed = s.check_down == up;
    s.check_down = !up;
    if (changed && up) s.back_since_ms = worker_.now_ms();  // back from down: slow start
    return changed;
}

void UpstreamPool::on_conn_busy(UpstreamConn* conn) { slots_[conn->server()].busy++; }

void UpstreamPool::on_conn_released(UpstreamConn* conn) {
    Slot& slot = slots_[conn->server()];
    slot.busy--;
    if (closing_ || slot.retired || worker_.draining() || idle_.size() >= config_.keepalive ||
        config_.proxy_protocol != ProxyProtocolOut::off) {
        // No room: close it (close() sees it idle and does not count it busy again).
        conn->close();
        return;
    }
    idle_.push_back(conn);
    g_stats.add(g_stats.upstream_connections_idle, 1);
}

UpstreamConn* UpstreamPool::adopt(std::size_t server, UpstreamEvents& events, int fd) {
    auto* conn = new UpstreamConn(shared_from_this(), server);
    slots_[server].busy++;
    slots_[server].open++;
    if (!conn->adopt(events, fd)) {
        conn->close();
        return nullptr;
    }
    return conn;
}

std::size_t UpstreamPool::find_server(std::string_view name) const {
    for (std::size_t s = 0; s < slots_.size(); ++s) {
        if (!slots_[s].retired && slots_[s].name == name) return s;
    }
    return npos;
}

void UpstreamPool::on_conn_closed(UpstreamConn* conn, bool was_idle, bool was_counted_busy) {
    Slot& slot = slots_[conn->server()];
    slot.open--;
    if (was_idle) {
        auto it = std::find(idle_.begin(), idle_.end(), conn);
        if (it != idle_.end()) {
            idle_.erase(it);
            g_stats.add(g_stats.upstream_connections_idle, -1);
        }
    } else if (was_counted_busy) {
        slot.busy--;
    }
}

void UpstreamPool::close_idle_of(std::size_t server) {
    std::vector<UpstreamConn*> doomed;
    for (UpstreamConn* conn : idle_) {
        if (conn->server() == server) doomed.push_back(conn);
    }
    for (UpstreamConn* conn : doomed) conn->close();  // on_conn_closed takes it out of idle_
}

// keepalive may have shrunk: the oldest idle connections go first.
void UpstreamPool::trim_idle() {
    while (idle_.size() > config_.keepalive) idle_.front()->close();
}

void UpstreamPool::close_idle() {
    closing_ = true;
    while (!idle_.empty()) idle_.back()->close();
}

std::string UpstreamPool::tls_name(std::size_t server) const {
    if (config_.tls && !config_.tls->server_name.empty()) return config_.tls->server_name;
    std::string host = slots_[server].name;
    const std::size_t colon = host.rfind(':');
    if (colon != std::string::npos) host.erase(colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return host;
}

}  // namespace sy
