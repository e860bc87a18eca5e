// A tunnel on its way between processes (proxy/handoff/): the record and its two sockets,
// and the thread-safe queue a worker puts the tunnels it lets go into.
#pragma once

#include <utility>

#include <unistd.h>

#include "proxy/handoff/handoff_wire.hpp"

namespace sy {

struct MovingTunnel {
    HandedTunnel record;
    int client_fd = -1;
    int upstream_fd = -1;

    MovingTunnel() = default;
    MovingTunnel(MovingTunnel&& o) noexcept
        : record(std::move(o.record)), client_fd(std::exchange(o.client_fd, -1)),
          upstream_fd(std::exchange(o.upstream_fd, -1)) {}
    MovingTunnel& operator=(MovingTunnel&& o) noexcept {
        if (this != &o) {
            close_fds();
            record = std::move(o.record);
            client_fd = std::exchange(o.client_fd, -1);
            upstream_fd = std::exchange(o.upstream_fd, -1);
        }
        return *this;
    }
    ~MovingTunnel() { close_fds(); }
    void close_fds() {
        if (client_fd >= 0) ::close(client_fd);
        if (upstream_fd >= 0) ::close(upstream_fd);
        client_fd = upstream_fd = -1;
    }
};

// Where a worker of the old process puts the tunnels it hands over. Thread-safe.
class HandoffOutbox {
public:
    virtual ~HandoffOutbox() = default;
    virtual void push(MovingTunnel tunnel) = 0;
};

}  // namespace sy
