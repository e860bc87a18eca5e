// Idle tunnels asleep (docs/architecture.md, "Idle tunnels"). A raw tunnel over plain TCP
// that has carried no byte for kSleepAfter, with nothing queued and neither direction
// ended, gives up its connection objects, libuv handles and transports: what is left is a
// SleepingTunnel of about 200 bytes holding its two sockets, which wait in a per-worker
// epoll set (one uv_poll_t on it for the whole worker). The first event on either socket
// (bytes, EOF, an error) wakes it: the connection objects are made again around the same
// sockets and the tunnel goes on as if nothing had happened. Nothing is counted twice:
// the tunnel stays open in the metrics and keeps its places in the shared counts.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "proxy/admission.hpp"
#include "proxy/ops/stats.hpp"

namespace sy {

struct Generation;

struct SleepingTunnel {
    std::array<int, 2> fds{-1, -1};  // client, upstream
    std::shared_ptr<const Generation> gen;  // the configuration it runs under (kept alive)
    std::uint32_t route = 0;       // Config::routes index, or kNoRoute
    std::uint32_t upstream = 0;    // Generation::pools index
    std::uint32_t server = 0;      // the pool's slot
    std::uint32_t request_ms = 0;
    std::uint64_t switch_ms = 0;         // loop time of the switch
    std::uint64_t last_activity_ms = 0;  // loop time of the last byte
    std::array<std::uint64_t, 2> bytes{};         // from each side
    std::array<std::uint64_t, 2> handed_bytes{};  // counted by a predecessor process
    const ProtocolStats* protocol_stats = nullptr;
    SharedCount* route_reservation = nullptr;
    SharedCount* server_reservation = nullptr;
    std::string labels;  // protocol, method, target, client, each followed by a NUL
    std::size_t slot = 0;  // its place in Hibernation::sleeping_

    static constexpr std::uint32_t kNoRoute = UINT32_MAX;
    ~SleepingTunnel();  // closes the sockets it still holds
};

class Hibernation {
public:
    // A tunnel sleeps after this long without a byte either way.
    static constexpr std::chrono::milliseconds kSleepAfter{3000};

    // `wake`: makes a connection of a tunnel one of whose sockets has an event (or that
    // must end): it owns the tunnel from then on.
    using Wake = std::function<void(std::unique_ptr<SleepingTunnel>)>;
    Hibernation(uv_loop_t* loop, Wake wake);
    ~Hibernation();
    Hibernation(const Hibernation&) = delete;
    Hibernation& operator=(const Hibernation&) = delete;

    // False when the worker's epoll set could not be made (tunnels then stay awake).
    bool ok() const { return epoll_fd_ >= 0 && !broken_; }
    // Puts a tunnel to sleep; false (the tunnel given back in `tunnel`) if its sockets
    // cannot be watched.
    bool put(std::unique_ptr<SleepingTunnel>& tunnel);
    // Wakes every sleeping tunnel (a drain, a binary upgrade).
    void wake_all();
    // Wakes those for which `due(tunnel)` holds (the worker's sweep: tunnel_idle passed).
    void wake_if(const std::function<bool(const SleepingTunnel&)>& due);
    std::size_t size() const { return sleeping_.size(); }
    // Closes the watcher (the worker is finishing). Nothing may sleep any more.
    void close();

private:
    static void on_events(uv_poll_t* poll, int status, int events);
    std::unique_ptr<SleepingTunnel> take(SleepingTunnel* tunnel);

    Wake wake_;
    int epoll_fd_ = -1;
    uv_poll_t poll_{};
    bool polling_ = false;
    bool broken_ = false;  // the watcher failed: nothing sleeps
    std::vector<SleepingTunnel*> sleeping_;  // owned
};

}  // namespace sy
