// Which server of a pool takes a request (docs/upgrades.md, "Balancing long-lived
// connections"): a pure function of the servers' state and the request's key. No I/O, no
// clock, no randomness of its own (the caller passes the time-derived shares and a random
// draw), so that every rule is a table test.
//
// balance: hash uses rendezvous hashing (highest random weight): each server scores
// hash(key, server) and the highest score wins. Removing or adding one of N servers moves
// only the keys that server wins (about 1/N), every other key stays; a down, full or
// already tried server is simply left out, so its keys spread over the others and come back
// when it does. Weighted (score = -weight / ln(u), u uniform in (0,1)), a server's share of
// keys is exactly its weight's share, which is how slow start ramps a recovered server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "routing/config.hpp"

namespace sy {

struct ServerView {
    std::uint64_t id = 0;     // stable per server (server_id(upstream, address)): the hash's input
    bool eligible = true;     // in service and not tried yet for this request
    bool down = false;        // failing its health (taken only when every eligible one is down)
    bool full = false;        // at max_tunnels (an upgrade request skips it)
    double share = 1.0;       // slow start: 0 (just recovered) .. 1 (full share)
    std::uint32_t busy = 0;   // open connections (least_conn)
};

struct BalanceRequest {
    Balance balance = Balance::round_robin;
    std::optional<std::uint64_t> key;  // balance: hash, when the request carries its key
    std::size_t sticky = SIZE_MAX;     // the server the affinity cookie names (an index), if any
    bool upgrade = false;              // full servers are skipped only for upgrade requests
    std::size_t cursor = 0;            // round robin: where to start
    double draw = 0.0;                 // uniform in [0,1): slow start's acceptance
};

struct BalanceChoice {
    static constexpr std::size_t none = SIZE_MAX;
    std::size_t server = none;  // an index into the servers given
    bool all_full = false;      // none: every eligible server is full (503, not 502)
    std::size_t next_cursor = 0;
};

BalanceChoice choose_server(std::span<const ServerView> servers, const BalanceRequest& request);

// A stable 64-bit identity for a server of an upstream, the same in every process and
// instance (so that instances behind one balancer hash keys alike).
std::uint64_t server_id(std::string_view upstream, std::string_view address);
// The key's hash for balance: hash.
std::uint64_t key_hash(std::string_view key);

// Slow start's share for a server that came back `since_ms` ago: linear from 0 to 1 over
// `slow_start_ms` (1 when slow start is off).
double slow_start_share(std::uint64_t since_ms, std::uint64_t slow_start_ms);

}  // namespace sy
