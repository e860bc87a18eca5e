// A named pool of backend servers for one worker: server choice (round_robin or
// least_conn), passive health (max_fails / cooldown), and idle keep-alive connections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <sys/socket.h>
#include <uv.h>

#include "routing/config.hpp"

namespace sy {

class UpstreamConn;
class UpstreamEvents;
class Worker;

class UpstreamPool {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    UpstreamPool(Worker& worker, const UpstreamConfig& config, std::vector<sockaddr_storage> addresses);
    ~UpstreamPool();
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    // The next server to try, skipping those in `tried`, those cooling down after max_fails
    // connect failures and those the active check found down (unless every untried server
    // is one of those).
    std::size_t pick(const std::vector<bool>& tried);

    // A connection to `server` for `events`: an idle pooled one (already connected; the
    // caller proceeds at once) or a new one that is connecting. `*connected` tells which.
    UpstreamConn* acquire(std::size_t server, UpstreamEvents& events, bool* connected);

    void record_connect_result(std::size_t server, bool ok);
    // The active health check's verdict; true when it changed.
    bool set_check_result(std::size_t server, bool up);

    const UpstreamConfig& config() const { return config_; }
    const sockaddr* address(std::size_t server) const;
    Worker& worker() { return worker_; }
    std::size_t server_count() const { return servers_.size(); }

    // Closes every idle connection (shutdown) and refuses to pool more.
    void close_idle();

private:
    friend class UpstreamConn;
    struct Server {
        sockaddr_storage address{};
        std::uint32_t consecutive_fails = 0;
        std::uint64_t cooldown_until_ms = 0;
        std::uint32_t busy = 0;
        bool check_down = false;  // the active health check failed
    };

    // Called by UpstreamConn.
    void on_conn_released(UpstreamConn* conn);   // busy -> idle (or closed if no room)
    void on_conn_busy(UpstreamConn* conn);       // idle -> busy
    void on_conn_closed(UpstreamConn* conn, bool was_idle, bool was_counted_busy);
    bool cooling_down(const Server& s, std::uint64_t now) const;
    bool avoid(const Server& s, std::uint64_t now) const { return s.check_down || cooling_down(s, now); }

    Worker& worker_;
    const UpstreamConfig& config_;
    std::vector<Server> servers_;
    std::vector<UpstreamConn*> idle_;  // most recently used last
    std::size_t next_ = 0;             // round-robin cursor
    bool closing_ = false;
};

}  // namespace sy
