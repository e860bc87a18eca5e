#include "routing/balancer.hpp"

#include <cmath>
#include <string>

namespace sy {
namespace {

// splitmix64's finaliser: every input bit affects every output bit.
std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

// The weighted rendezvous score of `server` for `key`.
double score(std::uint64_t key, const ServerView& server) {
    const std::uint64_t h = mix(key ^ mix(server.id + 0x9e3779b97f4a7c15ull));
    const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;  // uniform in (0,1)
    const double weight = server.share > 1e-6 ? server.share : 1e-6;
    return -weight / std::log(u);
}

}  // namespace

std::uint64_t key_hash(std::string_view key) {
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then mixed
    for (char c : key) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    return mix(h);
}

std::uint64_t server_id(std::string_view upstream, std::string_view address) {
    std::string joined(upstream);
    joined.push_back('\0');
    joined.append(address);
    return key_hash(joined);
}

double slow_start_share(std::uint64_t since_ms, std::uint64_t slow_start_ms) {
    if (slow_start_ms == 0 || since_ms >= slow_start_ms) return 1.0;
    return static_cast<double>(since_ms) / static_cast<double>(slow_start_ms);
}

BalanceChoice choose_server(std::span<const ServerView> servers, const BalanceRequest& request) {
    BalanceChoice choice;
    const std::size_t n = servers.size();
    choice.next_cursor = n == 0 ? 0 : request.cursor % n;
    const auto usable = [&](const ServerView& s) { return s.eligible && !(request.upgrade && s.full); };

    // The affinity cookie's server, while it is up and not full.
    if (request.sticky < n && usable(servers[request.sticky]) && !servers[request.sticky].down) {
        choice.server = request.sticky;
        return choice;
    }

    // Two passes: servers in good health first; when every usable one is down, try those
    // rather than fail without an attempt.
    for (int pass = 0; pass < 2; ++pass) {
        const auto candidate = [&](const ServerView& s) { return usable(s) && (pass == 1 || !s.down); };
        if (request.balance == Balance::hash && request.key) {
            double best_score = -1.0;
            for (std::size_t i = 0; i < n; ++i) {
                if (!candidate(servers[i])) continue;
                const double sc = score(*request.key, servers[i]);
                if (sc > best_score) {
                    best_score = sc;
                    choice.server = i;
                }
            }
            if (choice.server != BalanceChoice::none) return choice;
            continue;
        }
        // Round robin (also balance: hash without a key) or least_conn, from the cursor. A
        // ramping server is taken only when the draw falls within its share; when every
        // candidate is ramping, the first of them is taken.
        std::size_t best = BalanceChoice::none;
        std::size_t best_k = 0;
        std::size_t fallback = BalanceChoice::none;
        std::size_t fallback_k = 0;
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t i = (choice.next_cursor + k) % n;
            const ServerView& s = servers[i];
            if (!candidate(s)) continue;
            if (s.share < 1.0 && request.draw >= s.share) {
                if (fallback == BalanceChoice::none) {
                    fallback = i;
                    fallback_k = k;
                }
                continue;
            }
            if (request.balance != Balance::least_conn) {
                best = i;
                best_k = k;
                break;
            }
            if (best == BalanceChoice::none || s.busy < servers[best].busy) {
                best = i;
                best_k = k;
            }
        }
        if (best == BalanceChoice::none) {
            best = fallback;
            best_k = fallback_k;
        }
        if (best != BalanceChoice::none) {
            choice.server = best;
            choice.next_cursor = (choice.next_cursor + best_k + 1) % n;
            return choice;
        }
    }
    // Nothing usable: say whether it is because every server still eligible is full.
    bool any_eligible = false;
    bool all_full = true;
    for (const ServerView& s : servers) {
        if (!s.eligible) continue;
        any_eligible = true;
        all_full = all_full && s.full;
    }
    choice.all_full = request.upgrade && any_eligible && all_full;
    return choice;
}

}  // namespace sy
