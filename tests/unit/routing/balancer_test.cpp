// Tables for the balancer (routing/balancer.hpp, docs/upgrades.md "Balancing long-lived
// connections"): rendezvous hashing's distribution and movement, the two passes (down
// servers last, full servers skipped by upgrades), affinity, round robin, least_conn and
// slow start. Pure: servers are ServerViews built here, keys are key_hash()es.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "routing/balancer.hpp"

namespace sy {
namespace {

TEST_SUITE_BEGIN("balancer");

constexpr std::size_t kNone = BalanceChoice::none;
constexpr int kKeys = 10'000;

std::string address_of(std::size_t index) { return "10.0.0." + std::to_string(index + 1) + ":8080"; }

// `count` servers of upstream "app", all in service, up, with room and a full share.
std::vector<ServerView> pool(std::size_t count) {
    std::vector<ServerView> servers(count);
    for (std::size_t i = 0; i < count; ++i) servers[i].id = server_id("app", address_of(i));
    return servers;
}

// Client addresses, as balance: hash with hash_key: client_ip sees them.
std::string key_text(int i) { return "198.51." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }

std::vector<std::uint64_t> keys() {
    std::vector<std::uint64_t> hashes;
    hashes.reserve(kKeys);
    for (int i = 0; i < kKeys; ++i) hashes.push_back(key_hash(key_text(i)));
    return hashes;
}

BalanceChoice pick(const std::vector<ServerView>& servers, BalanceRequest request) {
    return choose_server(servers, request);
}

BalanceRequest hashed(std::uint64_t key, bool upgrade = false) {
    BalanceRequest request;
    request.balance = Balance::hash;
    request.key = key;
    request.upgrade = upgrade;
    return request;
}

BalanceRequest rr(std::size_t cursor, bool upgrade = false) {
    BalanceRequest request;
    request.balance = Balance::round_robin;
    request.cursor = cursor;
    request.upgrade = upgrade;
    return request;
}

BalanceRequest least(std::size_t cursor, bool upgrade = false) {
    BalanceRequest request;
    request.balance = Balance::least_conn;
    request.cursor = cursor;
    request.upgrade = upgrade;
    return request;
}

// The id of the server each key lands on (0 when none).
std::vector<std::uint64_t> placement(const std::vector<ServerView>& servers, const std::vector<std::uint64_t>& hashes,
                                     bool upgrade = false) {
    std::vector<std::uint64_t> ids;
    ids.reserve(hashes.size());
    for (std::uint64_t key : hashes) {
        const BalanceChoice choice = pick(servers, hashed(key, upgrade));
        ids.push_back(choice.server < servers.size() ? servers[choice.server].id : 0);
    }
    return ids;
}

std::map<std::uint64_t, int> counts(const std::vector<std::uint64_t>& ids) {
    std::map<std::uint64_t, int> per_server;
    for (std::uint64_t id : ids) ++per_server[id];
    return per_server;
}

// ---------------------------------------------------------------------------------------
// server_id, key_hash, slow_start_share

TEST_CASE("server_id and key_hash are stable for the same input and distinct for different ones") {
    CHECK(server_id("app", "10.0.0.1:8080") == server_id("app", "10.0.0.1:8080"));
    CHECK(server_id("app", "10.0.0.1:8080") != server_id("app", "10.0.0.2:8080"));
    CHECK(server_id("app", "10.0.0.1:8080") != server_id("app", "10.0.0.1:8081"));
    CHECK(server_id("app", "10.0.0.1:8080") != server_id("chat", "10.0.0.1:8080"));
    // The two parts do not run together: ("ab", "c:1") is not ("a", "bc:1").
    CHECK(server_id("ab", "c:1") != server_id("a", "bc:1"));
    CHECK(server_id("app", "[::1]:80") != server_id("app", "[::2]:80"));

    CHECK(key_hash("192.0.2.1") == key_hash("192.0.2.1"));
    CHECK(key_hash("192.0.2.1") != key_hash("192.0.2.2"));
    CHECK(key_hash("a") != key_hash("A"));
    CHECK(key_hash("") != key_hash(" "));
    CHECK(key_hash("ab") != key_hash("ba"));

    // No collision among 10,000 client addresses nor among 1,000 server addresses.
    std::set<std::uint64_t> hashes;
    for (int i = 0; i < kKeys; ++i) hashes.insert(key_hash(key_text(i)));
    CHECK(hashes.size() == kKeys);
    std::set<std::uint64_t> ids;
    for (std::size_t i = 0; i < 1000; ++i) ids.insert(server_id("app", "10.1." + std::to_string(i) + ".1:80"));
    CHECK(ids.size() == 1000);
}

TEST_CASE("slow_start_share: 0 at the start, linear, 1 at and after the end, 1 when off") {
    struct Row {
        std::uint64_t since_ms;
        std::uint64_t slow_start_ms;
        double share;
    };
    const std::vector<Row> rows = {
        {0, 10'000, 0.0},      {1'000, 10'000, 0.1},  {2'500, 10'000, 0.25}, {5'000, 10'000, 0.5},
        {7'500, 10'000, 0.75}, {9'999, 10'000, 0.9999}, {10'000, 10'000, 1.0}, {10'001, 10'000, 1.0},
        {3'600'000, 10'000, 1.0}, {1, 2, 0.5},         {0, 0, 1.0},           {12'345, 0, 1.0},
        {30'000, 60'000, 0.5}, {UINT64_MAX, 10'000, 1.0},
    };
    for (const Row& row : rows) {
        CAPTURE(row.since_ms);
        CAPTURE(row.slow_start_ms);
        CHECK(slow_start_share(row.since_ms, row.slow_start_ms) == doctest::Approx(row.share).epsilon(1e-9));
    }
}

// ---------------------------------------------------------------------------------------
// balance: hash (rendezvous)

TEST_CASE("hash: 10,000 keys over 4 servers, each within 10% of the mean") {
    const std::vector<ServerView> servers = pool(4);
    const auto per_server = counts(placement(servers, keys()));
    REQUIRE(per_server.size() == 4);
    int low = kKeys, high = 0;
    for (const ServerView& server : servers) {
        const int n = per_server.count(server.id) ? per_server.at(server.id) : 0;
        low = std::min(low, n);
        high = std::max(high, n);
        CHECK(n >= 2250);
        CHECK(n <= 2750);
    }
    MESSAGE("hash over 4 servers, 10000 keys: min " << low << ", max " << high << " (mean 2500)");
}

TEST_CASE("hash: the choice is deterministic and does not depend on the servers' order") {
    const std::vector<ServerView> servers = pool(5);
    std::vector<ServerView> reversed(servers.rbegin(), servers.rend());
    const std::vector<std::uint64_t> hashes = keys();
    const auto first = placement(servers, hashes);
    CHECK(first == placement(servers, hashes));
    CHECK(first == placement(reversed, hashes));
    // The cursor and the draw play no part when the key is there.
    for (int i = 0; i < 200; ++i) {
        BalanceRequest request = hashed(hashes[i]);
        request.cursor = static_cast<std::size_t>(i) * 7;
        request.draw = (i % 10) / 10.0;
        const BalanceChoice choice = pick(servers, request);
        REQUIRE(choice.server < servers.size());
        CHECK(servers[choice.server].id == first[i]);
    }
    // busy (least_conn's count) plays no part either.
    std::vector<ServerView> busy = servers;
    for (std::size_t i = 0; i < busy.size(); ++i) busy[i].busy = static_cast<std::uint32_t>(100 * i);
    CHECK(first == placement(busy, hashes));
}

TEST_CASE("hash: removing one of 4 servers moves only its keys") {
    const std::vector<std::uint64_t> hashes = keys();
    const std::vector<ServerView> four = pool(4);
    for (std::size_t removed = 0; removed < 4; ++removed) {
        CAPTURE(removed);
        std::vector<ServerView> three;
        for (std::size_t i = 0; i < 4; ++i) {
            if (i != removed) three.push_back(four[i]);
        }
        const auto before = placement(four, hashes);
        const auto after = placement(three, hashes);
        int moved = 0, kept_wrongly_moved = 0;
        std::map<std::uint64_t, int> received;
        for (int k = 0; k < kKeys; ++k) {
            if (before[k] == four[removed].id) {
                ++moved;
                ++received[after[k]];
                CHECK(after[k] != four[removed].id);
            } else if (after[k] != before[k]) {
                ++kept_wrongly_moved;
            }
        }
        CHECK(kept_wrongly_moved == 0);
        // Its keys spread over the three others, not onto one.
        CHECK(received.size() == 3);
        for (const auto& [id, n] : received) CHECK(n * 100 >= moved * 20);
        for (const auto& [id, n] : received) CHECK(n * 100 <= moved * 47);
        if (removed == 0) MESSAGE("hash, removing 1 of 4 servers: " << moved * 100.0 / kKeys << "% of keys moved");
    }
}

TEST_CASE("hash: adding a fifth server moves about 1/5 of the keys, all to it") {
    const std::vector<std::uint64_t> hashes = keys();
    const std::vector<ServerView> five = pool(5);
    const std::vector<ServerView> four(five.begin(), five.begin() + 4);
    const auto before = placement(four, hashes);
    const auto after = placement(five, hashes);
    int moved = 0, elsewhere = 0;
    for (int k = 0; k < kKeys; ++k) {
        if (after[k] == before[k]) continue;
        ++moved;
        if (after[k] != five[4].id) ++elsewhere;
    }
    CHECK(elsewhere == 0);
    CHECK(moved >= kKeys * 15 / 100);
    CHECK(moved <= kKeys * 25 / 100);
    MESSAGE("hash, adding a 5th server: " << moved * 100.0 / kKeys << "% of keys moved, " << elsewhere
                                          << " elsewhere than the new server");
}

TEST_CASE("hash: a down server's keys spread over the others and all come back when it is up") {
    const std::vector<std::uint64_t> hashes = keys();
    const std::vector<ServerView> servers = pool(4);
    const auto healthy = placement(servers, hashes);
    std::vector<ServerView> one_down = servers;
    one_down[1].down = true;
    const auto degraded = placement(one_down, hashes);
    int its_keys = 0, others_moved = 0;
    std::map<std::uint64_t, int> received;
    for (int k = 0; k < kKeys; ++k) {
        CHECK(degraded[k] != servers[1].id);
        if (healthy[k] == servers[1].id) {
            ++its_keys;
            ++received[degraded[k]];
        } else if (degraded[k] != healthy[k]) {
            ++others_moved;
        }
    }
    CHECK(others_moved == 0);
    REQUIRE(its_keys > 0);
    CHECK(received.size() == 3);
    int most = 0;
    for (const auto& [id, n] : received) {
        most = std::max(most, n);
        CHECK(n * 100 >= its_keys * 20);
        CHECK(n * 100 <= its_keys * 47);
    }
    MESSAGE("hash, 1 of 4 down: " << its_keys << " keys moved, the most onto one server: " << most);
    // The same as if it were not in the pool (its keys' second choice).
    std::vector<ServerView> without = {servers[0], servers[2], servers[3]};
    CHECK(degraded == placement(without, hashes));
    // Up again: every key is back where it was.
    CHECK(placement(servers, hashes) == healthy);
}

TEST_CASE("hash: a tried (ineligible) server is left out, its keys going to their second choice") {
    const std::vector<std::uint64_t> hashes = keys();
    const std::vector<ServerView> servers = pool(4);
    std::vector<ServerView> tried = servers;
    tried[3].eligible = false;
    const std::vector<ServerView> without(servers.begin(), servers.begin() + 3);
    CHECK(placement(tried, hashes) == placement(without, hashes));
    // Even when it is the only one not down: ineligible is never taken.
    std::vector<ServerView> others_down = tried;
    for (std::size_t i = 0; i < 3; ++i) others_down[i].down = true;
    for (int k = 0; k < 100; ++k) {
        const BalanceChoice choice = pick(others_down, hashed(hashes[k]));
        CHECK(choice.server < 3);
    }
}

TEST_CASE("hash: a full server is skipped by upgrades only") {
    const std::vector<std::uint64_t> hashes = keys();
    const std::vector<ServerView> servers = pool(4);
    std::vector<ServerView> one_full = servers;
    one_full[2].full = true;
    const std::vector<ServerView> without = {servers[0], servers[1], servers[3]};
    // Plain requests ignore max_tunnels.
    CHECK(placement(one_full, hashes, false) == placement(servers, hashes, false));
    // Upgrades fall to their second choice.
    CHECK(placement(one_full, hashes, true) == placement(without, hashes, true));
}

TEST_CASE("hash: slow start gives the ramping server its weight's share of keys") {
    const std::vector<std::uint64_t> hashes = keys();
    const std::vector<ServerView> servers = pool(4);
    const std::vector<ServerView> others = {servers[0], servers[1], servers[3]};
    const auto without = placement(others, hashes);
    std::vector<std::uint64_t> previous(kKeys, 0);  // the keys it took at the previous share
    for (double share : {0.0, 0.1, 0.25, 0.5, 0.75, 1.0}) {
        CAPTURE(share);
        std::vector<ServerView> ramping = servers;
        ramping[2].share = share;
        const auto placed = placement(ramping, hashes);
        int taken = 0;
        for (int k = 0; k < kKeys; ++k) {
            if (placed[k] == servers[2].id) {
                ++taken;
            } else {
                // A key it does not take stays where it is without it.
                CHECK(placed[k] == without[k]);
            }
            // Its share grows monotonically: a key it took keeps going to it as it ramps.
            if (previous[k] == servers[2].id) CHECK(placed[k] == servers[2].id);
        }
        previous = placed;
        const double expected = share / (3.0 + share);
        const double measured = static_cast<double>(taken) / kKeys;
        CHECK(std::abs(measured - expected) <= 0.015);
        MESSAGE("hash, slow start share " << share << " among 4: " << measured * 100 << "% of keys (expected "
                                          << expected * 100 << "%)");
    }
}

TEST_CASE("hash: a request without its key is balanced round robin") {
    const std::vector<ServerView> servers = pool(4);
    BalanceRequest request;
    request.balance = Balance::hash;
    std::vector<std::size_t> order;
    for (int i = 0; i < 8; ++i) {
        const BalanceChoice choice = pick(servers, request);
        order.push_back(choice.server);
        request.cursor = choice.next_cursor;
    }
    CHECK(order == std::vector<std::size_t>{0, 1, 2, 3, 0, 1, 2, 3});
    request.cursor = 2;
    CHECK(pick(servers, request).server == 2);
}

// ---------------------------------------------------------------------------------------
// Two passes: down servers last, every server full

TEST_CASE("two passes: when every eligible server is down, a down one is still taken") {
    for (Balance balance : {Balance::round_robin, Balance::least_conn, Balance::hash}) {
        CAPTURE(static_cast<int>(balance));
        std::vector<ServerView> servers = pool(3);
        for (ServerView& server : servers) server.down = true;
        BalanceRequest request;
        request.balance = balance;
        request.key = key_hash("192.0.2.7");
        const BalanceChoice choice = pick(servers, request);
        CHECK(choice.server < 3);
        CHECK_FALSE(choice.all_full);

        // One up: it is taken whatever the key or cursor.
        servers[1].down = false;
        for (std::size_t cursor = 0; cursor < 3; ++cursor) {
            request.cursor = cursor;
            for (int k = 0; k < 50; ++k) {
                request.key = key_hash(key_text(k));
                CHECK(pick(servers, request).server == 1);
            }
        }

        // Down and eligible beats up and tried.
        servers[1].eligible = false;
        request.cursor = 1;
        const BalanceChoice fallback = pick(servers, request);
        CHECK((fallback.server == 0 || fallback.server == 2));
    }
}

TEST_CASE("two passes: nothing eligible -> none, and not all_full") {
    for (Balance balance : {Balance::round_robin, Balance::least_conn, Balance::hash}) {
        CAPTURE(static_cast<int>(balance));
        BalanceRequest request;
        request.balance = balance;
        request.key = key_hash("192.0.2.7");
        request.upgrade = true;
        const BalanceChoice empty = choose_server(std::span<const ServerView>(), request);
        CHECK(empty.server == kNone);
        CHECK_FALSE(empty.all_full);
        std::vector<ServerView> servers = pool(3);
        for (ServerView& server : servers) server.eligible = false;
        const BalanceChoice none = pick(servers, request);
        CHECK(none.server == kNone);
        CHECK_FALSE(none.all_full);
    }
}

TEST_CASE("full servers: skipped by upgrades, every one full -> all_full") {
    for (Balance balance : {Balance::round_robin, Balance::least_conn, Balance::hash}) {
        CAPTURE(static_cast<int>(balance));
        std::vector<ServerView> servers = pool(3);
        BalanceRequest request;
        request.balance = balance;
        request.key = key_hash("192.0.2.7");
        request.upgrade = true;
        // Two full: the upgrade goes to the third, whatever the key or cursor.
        servers[0].full = servers[2].full = true;
        for (std::size_t cursor = 0; cursor < 3; ++cursor) {
            request.cursor = cursor;
            const BalanceChoice choice = pick(servers, request);
            CHECK(choice.server == 1);
            CHECK_FALSE(choice.all_full);
        }
        // All full: none, all_full.
        servers[1].full = true;
        const BalanceChoice full = pick(servers, request);
        CHECK(full.server == kNone);
        CHECK(full.all_full);
        // A plain request ignores max_tunnels.
        request.upgrade = false;
        const BalanceChoice plain = pick(servers, request);
        CHECK(plain.server < 3);
        CHECK_FALSE(plain.all_full);
        // The full ones that are tried do not count: the rest being full is still all_full.
        request.upgrade = true;
        servers[0].eligible = false;
        const BalanceChoice rest = pick(servers, request);
        CHECK(rest.server == kNone);
        CHECK(rest.all_full);
    }
}

// ---------------------------------------------------------------------------------------
// sticky

TEST_CASE("sticky: the named server is taken when eligible, up and (for upgrades) not full") {
    for (Balance balance : {Balance::round_robin, Balance::least_conn, Balance::hash}) {
        CAPTURE(static_cast<int>(balance));
        std::vector<ServerView> servers = pool(4);
        servers[0].busy = 0;
        servers[1].busy = 5;
        servers[2].busy = 9;  // the busiest: least_conn would never pick it
        servers[3].busy = 1;
        BalanceRequest request;
        request.balance = balance;
        request.cursor = 0;
        // A key whose own choice is not server 2.
        int k = 0;
        for (;; ++k) {
            request.key = key_hash(key_text(k));
            request.sticky = SIZE_MAX;
            if (pick(servers, request).server != 2) break;
        }
        const std::size_t balanced = pick(servers, request).server;
        REQUIRE(balanced != 2);

        for (bool upgrade : {false, true}) {
            CAPTURE(upgrade);
            request.upgrade = upgrade;
            request.sticky = 2;
            CHECK(pick(servers, request).server == 2);

            std::vector<ServerView> changed = servers;
            changed[2].eligible = false;
            CHECK(pick(changed, request).server == balanced);
            changed = servers;
            changed[2].down = true;
            CHECK(pick(changed, request).server == balanced);
            changed = servers;
            changed[2].full = true;
            CHECK(pick(changed, request).server == (upgrade ? balanced : 2));
            // A ramping server is up: its affinity holds.
            changed = servers;
            changed[2].share = 0.0;
            request.draw = 0.99;
            CHECK(pick(changed, request).server == 2);
            request.draw = 0.0;
        }
        // An index out of range (a stale pool) is ignored.
        request.upgrade = true;
        request.sticky = 4;
        CHECK(pick(servers, request).server == balanced);
        request.sticky = 1000;
        CHECK(pick(servers, request).server == balanced);
    }
}

// ---------------------------------------------------------------------------------------
// round robin

TEST_CASE("round robin: starts at the cursor, next_cursor continues the rotation") {
    const std::vector<ServerView> servers = pool(4);
    for (std::size_t start = 0; start < 4; ++start) {
        CAPTURE(start);
        BalanceRequest request = rr(start);
        std::vector<std::size_t> order;
        for (int i = 0; i < 8; ++i) {
            const BalanceChoice choice = pick(servers, request);
            order.push_back(choice.server);
            CHECK_FALSE(choice.all_full);
            request.cursor = choice.next_cursor;
        }
        std::vector<std::size_t> expected;
        for (std::size_t i = 0; i < 8; ++i) expected.push_back((start + i) % 4);
        CHECK(order == expected);
    }
    // A cursor past the end (the pool shrank on a reload) wraps.
    CHECK(pick(servers, rr(5)).server == 1);
    CHECK(pick(servers, rr(4)).server == 0);
}

TEST_CASE("round robin: skipped servers are jumped, the rotation stays even over the rest") {
    struct Row {
        const char* name;
        std::vector<int> state;  // per server: 0 ok, 1 ineligible, 2 down, 3 full
        bool upgrade;
        std::vector<std::size_t> order;  // from cursor 0
    };
    const std::vector<Row> rows = {
        {"one tried", {0, 1, 0, 0}, false, {0, 2, 3, 0, 2, 3}},
        {"one down", {0, 0, 2, 0}, false, {0, 1, 3, 0, 1, 3}},
        {"first down", {2, 0, 0, 0}, false, {1, 2, 3, 1, 2, 3}},
        {"one full, upgrade", {0, 0, 0, 3}, true, {0, 1, 2, 0, 1, 2}},
        {"one full, plain", {0, 0, 0, 3}, false, {0, 1, 2, 3, 0, 1}},
        {"only one left", {2, 1, 0, 3}, true, {2, 2, 2, 2}},
    };
    for (const Row& row : rows) {
        const std::string name = row.name;
        CAPTURE(name);
        std::vector<ServerView> servers = pool(4);
        for (std::size_t i = 0; i < 4; ++i) {
            servers[i].eligible = row.state[i] != 1;
            servers[i].down = row.state[i] == 2;
            servers[i].full = row.state[i] == 3;
        }
        BalanceRequest request = rr(0, row.upgrade);
        std::vector<std::size_t> order;
        for (std::size_t i = 0; i < row.order.size(); ++i) {
            const BalanceChoice choice = pick(servers, request);
            order.push_back(choice.server);
            request.cursor = choice.next_cursor;
        }
        CHECK(order == row.order);
    }
}

TEST_CASE("round robin: 4,000 picks give each of 4 servers 1,000") {
    const std::vector<ServerView> servers = pool(4);
    BalanceRequest request = rr(0);
    std::vector<int> per_server(4, 0);
    for (int i = 0; i < 4000; ++i) {
        const BalanceChoice choice = pick(servers, request);
        REQUIRE(choice.server < 4);
        ++per_server[choice.server];
        request.cursor = choice.next_cursor;
    }
    CHECK(per_server == std::vector<int>{1000, 1000, 1000, 1000});
}

TEST_CASE("round robin with slow start: the ramping server is accepted at its turn with its share") {
    constexpr int kDraws = 1000;
    for (double share : {0.0, 0.1, 0.25, 0.5, 0.9, 1.0}) {
        CAPTURE(share);
        std::vector<ServerView> servers = pool(4);
        servers[1].share = share;
        int chosen = 0;
        for (int i = 0; i < kDraws; ++i) {
            BalanceRequest request = rr(1);
            request.draw = (i + 0.5) / kDraws;  // uniformly spread over [0,1)
            const BalanceChoice choice = pick(servers, request);
            REQUIRE(choice.server < 4);
            if (choice.server == 1) ++chosen;
        }
        const double measured = static_cast<double>(chosen) / kDraws;
        CHECK(std::abs(measured - share) <= 0.01);
        MESSAGE("round robin, slow start share " << share << ": taken at its turn " << measured * 100 << "%");
    }
    // Over whole rotations with random-looking draws, a server at share 0.5 gets about half
    // of what a server at full share gets.
    std::vector<ServerView> servers = pool(4);
    servers[1].share = 0.5;
    BalanceRequest request = rr(0);
    std::vector<int> per_server(4, 0);
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 40'000; ++i) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        request.draw = static_cast<double>(state >> 11) / 9007199254740992.0;  // [0,1)
        const BalanceChoice choice = pick(servers, request);
        REQUIRE(choice.server < 4);
        ++per_server[choice.server];
        request.cursor = choice.next_cursor;
    }
    const double ratio = static_cast<double>(per_server[1]) / per_server[0];
    CHECK(ratio >= 0.45);
    CHECK(ratio <= 0.55);
    MESSAGE("round robin, share 0.5: " << per_server[0] << " " << per_server[1] << " " << per_server[2] << " "
                                       << per_server[3]);
}

TEST_CASE("slow start: a ramping server is still taken when it is the only one left") {
    for (Balance balance : {Balance::round_robin, Balance::least_conn, Balance::hash}) {
        CAPTURE(static_cast<int>(balance));
        for (int others : {1, 2}) {  // 1: the others tried, 2: the others down
            CAPTURE(others);
            std::vector<ServerView> servers = pool(3);
            servers[1].share = 0.0;
            for (std::size_t i : {std::size_t{0}, std::size_t{2}}) {
                servers[i].eligible = others != 1;
                servers[i].down = others == 2;
            }
            for (std::size_t cursor = 0; cursor < 3; ++cursor) {
                BalanceRequest request;
                request.balance = balance;
                request.key = key_hash("192.0.2.7");
                request.cursor = cursor;
                request.draw = 0.99;
                CHECK(pick(servers, request).server == 1);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// least_conn

TEST_CASE("least_conn: the fewest busy, ties in rotation order from the cursor") {
    struct Row {
        const char* name;
        std::vector<std::uint32_t> busy;
        std::size_t cursor;
        std::size_t server;
    };
    const std::vector<Row> rows = {
        {"one least", {3, 1, 2, 5}, 0, 1},
        {"one least, cursor past it", {3, 1, 2, 5}, 2, 1},
        {"least last", {3, 4, 2, 0}, 0, 3},
        {"all equal, cursor 0", {2, 2, 2, 2}, 0, 0},
        {"all equal, cursor 3", {2, 2, 2, 2}, 3, 3},
        {"tie, cursor before both", {5, 1, 5, 1}, 0, 1},
        {"tie, cursor on the second", {5, 1, 5, 1}, 3, 3},
        {"tie, cursor between", {5, 1, 5, 1}, 2, 3},
        {"tie, wraps", {1, 5, 5, 1}, 3, 3},
        {"tie, wraps past the end", {1, 5, 1, 5}, 3, 0},
    };
    for (const Row& row : rows) {
        const std::string name = row.name;
        CAPTURE(name);
        std::vector<ServerView> servers = pool(4);
        for (std::size_t i = 0; i < 4; ++i) servers[i].busy = row.busy[i];
        CHECK(pick(servers, least(row.cursor)).server == row.server);
    }
}

TEST_CASE("least_conn: ties rotate when next_cursor is fed back") {
    std::vector<ServerView> servers = pool(4);
    for (ServerView& server : servers) server.busy = 7;
    servers[0].busy = 9;
    BalanceRequest request = least(0);
    std::vector<std::size_t> order;
    for (int i = 0; i < 6; ++i) {
        const BalanceChoice choice = pick(servers, request);
        order.push_back(choice.server);
        request.cursor = choice.next_cursor;
    }
    CHECK(order == std::vector<std::size_t>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("least_conn: the least busy is skipped when tried, down, or full for an upgrade") {
    std::vector<ServerView> servers = pool(4);
    const std::vector<std::uint32_t> busy = {4, 0, 2, 3};
    for (std::size_t i = 0; i < 4; ++i) servers[i].busy = busy[i];
    CHECK(pick(servers, least(0)).server == 1);
    std::vector<ServerView> changed = servers;
    changed[1].eligible = false;
    CHECK(pick(changed, least(0)).server == 2);
    changed = servers;
    changed[1].down = true;
    CHECK(pick(changed, least(0)).server == 2);
    changed = servers;
    changed[1].full = true;
    CHECK(pick(changed, least(0, true)).server == 2);
    CHECK(pick(changed, least(0, false)).server == 1);
}

TEST_CASE("least_conn with slow start: the least busy but ramping server gets its share, not every connection") {
    constexpr int kDraws = 1000;
    for (double share : {0.0, 0.1, 0.5, 1.0}) {
        CAPTURE(share);
        std::vector<ServerView> servers = pool(4);
        for (ServerView& server : servers) server.busy = 50;
        servers[3].busy = 0;  // just back: nothing open on it
        servers[3].share = share;
        int chosen = 0;
        for (int i = 0; i < kDraws; ++i) {
            BalanceRequest request = least(0);
            request.draw = (i + 0.5) / kDraws;
            const BalanceChoice choice = pick(servers, request);
            REQUIRE(choice.server < 4);
            if (choice.server == 3) ++chosen;
        }
        const double measured = static_cast<double>(chosen) / kDraws;
        CHECK(std::abs(measured - share) <= 0.01);
        MESSAGE("least_conn, slow start share " << share << ", least busy: taken " << measured * 100 << "%");
    }
}

TEST_SUITE_END();

}  // namespace
}  // namespace sy
