// A named pool of backend servers for one worker: server choice (round_robin or
// least_conn), passive health (max_fails / cooldown), idle keep-alive connections, and
// what survives a reload (docs/operations.md, "Reload").
//
// A pool lives as long as the worker's configuration names its upstream, and after that
// as long as a connection of it is open (connections hold it by shared_ptr). Servers sit in
// slots that keep their index for as long as a connection may refer to it: a reload keeps
// the slot (health state, idle connections) of every server whose address stays, retires
// the slots of removed servers (their idle connections close, busy ones finish), and puts
// new servers in free slots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>
#include <uv.h>

#include "proxy/admission.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/transport/tls_context.hpp"
#include "routing/balancer.hpp"
#include "routing/config.hpp"

namespace sy {

class UpstreamConn;
class UpstreamEvents;
class Worker;

class UpstreamPool : public std::enable_shared_from_this<UpstreamPool> {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    // `tunnels`: per server of `config`, its open tunnels counted by every worker.
    UpstreamPool(Worker& worker, const UpstreamConfig& config, const UpstreamStats& stats,
                 const std::vector<sockaddr_storage>& addresses, const std::vector<SharedCount*>& tunnels);
    ~UpstreamPool();
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    // A reload kept this upstream's name: diff the servers by address (see above).
    void reconfigure(const UpstreamConfig& config, const UpstreamStats& stats,
                     const std::vector<sockaddr_storage>& addresses, const std::vector<SharedCount*>& tunnels);
    // A reload removed this upstream: idle connections close, none is pooled any more.
    void retire() { close_idle(); }

    // What the balancer needs of a request (docs/upgrades.md, "Balancing long-lived
    // connections").
    struct PickRequest {
        bool upgrade = false;               // it may become a tunnel: max_tunnels applies
        std::optional<std::uint64_t> key;   // balance: hash, when the request carries its key
        std::string_view affinity;          // the sticky cookie's value, if the request has one
    };
    struct Picked {
        std::size_t server = npos;
        bool all_full = false;      // npos because every server left is at max_tunnels
        bool affinity_kept = false; // the sticky cookie named this server: no new cookie
        // An upgrade's place in the server's max_tunnels, taken here; the caller gives it
        // back (SharedCount::release) when no tunnel comes of it or the tunnel ends.
        SharedCount* reservation = nullptr;
    };
    // The next server to try, skipping those in `tried` (indexed by slot, slot_count()
    // long), those cooling down after max_fails connect failures and those the active
    // check found down (unless every untried server is one of those), and for an upgrade
    // those at max_tunnels.
    Picked pick(const std::vector<bool>& tried, const PickRequest& request);
    // The affinity cookie's value for `server` (sticky).
    const std::string& affinity_value(std::size_t server) const { return slots_[server].affinity; }

    // A connection to `server` for `events`: an idle pooled one (already connected; the
    // caller proceeds at once) or a new one connecting within `connect_timeout`.
    // `*connected` tells which. `reuse` false: always a new one.
    // `proxy_header`: for a new connection to a server that expects the PROXY protocol
    // (such a connection carries one client's address: never pooled nor reused).
    UpstreamConn* acquire(std::size_t server, UpstreamEvents& events, Millis connect_timeout, bool* connected,
                          bool reuse = true, std::string proxy_header = {});

    // A binary upgrade: a connected socket to `server`, handed over by the old process,
    // becomes a busy connection for `events`. Null when `fd` cannot be used (left open).
    UpstreamConn* adopt(std::size_t server, UpstreamEvents& events, int fd);
    // A tunnel to `server` sleeps (proxy/hibernation.hpp) without a connection object: it
    // still counts as a busy, open connection of the server.
    void hold_busy(std::size_t server) {
        slots_[server].busy++;
        slots_[server].open++;
    }
    void release_busy(std::size_t server) {
        slots_[server].busy--;
        slots_[server].open--;
    }
    // The slot of the server configured as `name` ("127.0.0.1:9001"), or npos.
    std::size_t find_server(std::string_view name) const;

    void record_connect_result(std::size_t server, bool ok);
    // The active health check's verdict; true when it changed.
    bool set_check_result(std::size_t server, bool up);

    const UpstreamConfig& config() const { return config_; }
    // TLS toward the servers (null: plain TCP), from the current configuration snapshot.
    void set_tls(std::shared_ptr<const ClientTls> tls) { tls_ = std::move(tls); }
    const ClientTls* tls() const { return tls_.get(); }
    // The name TLS sends (SNI) and verifies for `server`: server_name, else its host.
    std::string tls_name(std::size_t server) const;
    const sockaddr* address(std::size_t server) const;
    // The server's address as configured ("127.0.0.1:9001"), for logs and labels.
    const std::string& server_name(std::size_t server) const { return slots_[server].name; }
    // Its switchyard_upstream_tunnels_active series.
    MetricCell tunnels_cell(std::size_t server) const { return slots_[server].tunnels; }
    // Its open tunnels counted by every worker (max_tunnels).
    SharedCount* tunnels_shared(std::size_t server) const { return slots_[server].tunnels_shared; }
    Worker& worker() { return worker_; }
    std::size_t slot_count() const { return slots_.size(); }
    // A slot holds a server of the current configuration (not a retired one).
    bool in_service(std::size_t server) const { return !slots_[server].retired; }

    // Closes every idle connection (shutdown, retirement) and refuses to pool more.
    void close_idle();

private:
    friend class UpstreamConn;
    struct Slot {
        std::string name;               // address as configured; the diff key
        sockaddr_storage address{};
        MetricCell tunnels = 0;
        std::uint32_t consecutive_fails = 0;
        std::uint64_t cooldown_until_ms = 0;
        std::uint32_t busy = 0;         // connections carrying an exchange or a tunnel
        std::uint32_t open = 0;         // every open connection, idle ones included
        bool check_down = false;        // the active health check failed
        bool retired = false;           // removed by a reload; reusable once open == 0
        std::uint64_t id = 0;           // server_id(upstream, address): the hash's input
        std::string affinity;           // its sticky cookie value
        SharedCount* tunnels_shared = nullptr;  // open tunnels, all workers (max_tunnels)
        std::uint64_t back_since_ms = 0;        // when it last came back from down (slow start)
    };

    // Called by UpstreamConn.
    void on_conn_released(UpstreamConn* conn);   // busy -> idle (or closed if no room)
    void on_conn_busy(UpstreamConn* conn);       // idle -> busy
    void on_conn_closed(UpstreamConn* conn, bool was_idle, bool was_counted_busy);
    bool cooling_down(const Slot& s, std::uint64_t now) const;
    bool avoid(const Slot& s, std::uint64_t now) const { return s.check_down || cooling_down(s, now); }
    void close_idle_of(std::size_t server);
    void trim_idle();

    Worker& worker_;
    UpstreamConfig config_;
    std::shared_ptr<const ClientTls> tls_;
    std::vector<Slot> slots_;
    std::vector<std::size_t> order_;   // slots in service, in the configuration's order
    std::vector<UpstreamConn*> idle_;  // most recently used last
    std::size_t next_ = 0;             // round-robin cursor into order_
    std::vector<ServerView> views_;    // pick's scratch, parallel to order_
    std::uint64_t random_state_;       // slow start's draws (xorshift)
    MetricCell connect_failures_ = 0;
    bool closing_ = false;
};

}  // namespace sy
