// The balancing keys of docs/configuration.md: on upstreams balance: hash, hash_key, sticky,
// max_tunnels, slow_start; on routes upgrade.max_rate and upgrade.max_tunnels. What loads
// (and to what), and every error with its exact position.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "routing/config_loader.hpp"
#include "config_test_support.hpp"

namespace sy {
namespace {

TEST_SUITE_BEGIN("config_balance");

using namespace std::chrono_literals;

const std::string kListen = "listen: [{ address: 127.0.0.1:8080 }]\n";                  // line 1
const std::string kUpstreams = "upstreams: { app: { servers: [127.0.0.1:9000] } }\n";    // line 2
const std::string kRoutes = "routes: [{ upstream: app }]\n";

// An upstream "app" whose keys after `servers` are `lines` (starting at line 5).
std::string upstream_with(const std::string& lines) {
    return kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:9000, 127.0.0.1:9001]\n" + lines + kRoutes;
}
// A route whose upgrade map is `upgrade` (on line 5).
std::string route_with(const std::string& upgrade) {
    return kListen + kUpstreams + "routes:\n  - upstream: app\n    upgrade: " + upgrade + "\n";
}

using namespace config_test;

// ---------------------------------------------------------------------------------------
// What loads

TEST_CASE("balancing keys: the defaults") {
    const Config config = load_ok(kListen + kUpstreams + kRoutes);
    REQUIRE(config.upstreams.size() == 1);
    const UpstreamConfig& app = config.upstreams[0];
    CHECK(app.balance == Balance::round_robin);
    CHECK(app.hash_key.kind == HashKey::Kind::client_ip);
    CHECK(app.hash_key.name.empty());
    CHECK_FALSE(app.sticky.has_value());
    CHECK(app.max_tunnels == 0);
    CHECK(app.slow_start == 0ms);
    REQUIRE(config.routes.size() == 1);
    CHECK(config.routes[0].upgrade.max_rate == 0);
    CHECK(config.routes[0].upgrade.max_tunnels == 0);
}

TEST_CASE("balancing keys: every key set") {
    const std::string yaml =
        kListen +                                                         // 1
        "upstreams:\n"                                                    // 2
        "  chat:\n"                                                       // 3
        "    servers: [127.0.0.1:9001, 127.0.0.1:9002]\n"                 // 4
        "    balance: hash\n"                                             // 5
        "    hash_key: header:X-Tenant\n"                                 // 6
        "    sticky: { cookie: sy_affinity, max_age: 30m }\n"             // 7
        "    max_tunnels: 500\n"                                          // 8
        "    slow_start: 30s\n"                                           // 9
        "  web:\n"                                                        // 10
        "    servers: [127.0.0.1:9000]\n"                                 // 11
        "routes:\n"                                                       // 12
        "  - upstream: chat\n"                                            // 13
        "    upgrade: { allow: [websocket], max_rate: 200, max_tunnels: 10000 }\n"
        "  - upstream: web\n";
    const Config config = load_ok(yaml);
    REQUIRE(config.upstreams.size() == 2);
    const UpstreamConfig& chat = config.upstreams[0];
    CHECK(chat.name == "chat");
    CHECK(chat.balance == Balance::hash);
    CHECK(chat.hash_key.kind == HashKey::Kind::header);
    CHECK(chat.hash_key.name == "x-tenant");
    REQUIRE(chat.sticky.has_value());
    CHECK(chat.sticky->cookie == "sy_affinity");
    CHECK(chat.sticky->max_age == 30min);
    CHECK(chat.max_tunnels == 500);
    CHECK(chat.slow_start == 30s);

    const UpstreamConfig& web = config.upstreams[1];
    CHECK(web.balance == Balance::round_robin);
    CHECK_FALSE(web.sticky.has_value());
    CHECK(web.max_tunnels == 0);
    CHECK(web.slow_start == 0ms);

    REQUIRE(config.routes.size() == 2);
    CHECK(config.routes[0].upgrade.max_rate == 200);
    CHECK(config.routes[0].upgrade.max_tunnels == 10000);
    CHECK(config.routes[1].upgrade.max_rate == 0);
    CHECK(config.routes[1].upgrade.max_tunnels == 0);
}

TEST_CASE("balance and hash_key: each form") {
    struct Row {
        std::string lines;
        Balance balance;
        HashKey::Kind kind;
        std::string name;
    };
    const std::vector<Row> rows = {
        {"    balance: round_robin\n", Balance::round_robin, HashKey::Kind::client_ip, ""},
        {"    balance: least_conn\n", Balance::least_conn, HashKey::Kind::client_ip, ""},
        {"    balance: hash\n", Balance::hash, HashKey::Kind::client_ip, ""},
        {"    balance: hash\n    hash_key: client_ip\n", Balance::hash, HashKey::Kind::client_ip, ""},
        {"    balance: hash\n    hash_key: header:X-Tenant\n", Balance::hash, HashKey::Kind::header, "x-tenant"},
        {"    balance: hash\n    hash_key: header:x-tenant\n", Balance::hash, HashKey::Kind::header, "x-tenant"},
        {"    balance: hash\n    hash_key: header:X-USER-ID\n", Balance::hash, HashKey::Kind::header, "x-user-id"},
        {"    balance: hash\n    hash_key: cookie:SessionID\n", Balance::hash, HashKey::Kind::cookie, "SessionID"},
        {"    balance: hash\n    hash_key: cookie:sid\n", Balance::hash, HashKey::Kind::cookie, "sid"},
        {"    balance: hash\n    hash_key: query:room\n", Balance::hash, HashKey::Kind::query, "room"},
        {"    balance: hash\n    hash_key: query:Room_ID\n", Balance::hash, HashKey::Kind::query, "Room_ID"},
        {"    balance: hash\n    hash_key: 'cookie:sid'\n", Balance::hash, HashKey::Kind::cookie, "sid"},
        // Key order does not matter.
        {"    hash_key: query:room\n    balance: hash\n", Balance::hash, HashKey::Kind::query, "room"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.lines);
        const Config config = load_ok(upstream_with(row.lines));
        REQUIRE(config.upstreams.size() == 1);
        CHECK(config.upstreams[0].balance == row.balance);
        CHECK(config.upstreams[0].hash_key.kind == row.kind);
        CHECK(config.upstreams[0].hash_key.name == row.name);
    }
}

TEST_CASE("sticky, max_tunnels and slow_start: values") {
    {
        const Config config = load_ok(upstream_with("    sticky: { cookie: sy_affinity }\n"));
        REQUIRE(config.upstreams[0].sticky.has_value());
        CHECK(config.upstreams[0].sticky->cookie == "sy_affinity");
        CHECK(config.upstreams[0].sticky->max_age == 1h);  // the default
    }
    {
        const Config config = load_ok(upstream_with("    sticky:\n      cookie: SRV\n      max_age: 2h\n"));
        REQUIRE(config.upstreams[0].sticky.has_value());
        CHECK(config.upstreams[0].sticky->cookie == "SRV");
        CHECK(config.upstreams[0].sticky->max_age == 2h);
    }
    {
        // With any balance.
        const Config config =
            load_ok(upstream_with("    balance: least_conn\n    sticky: { cookie: sid, max_age: 90s }\n"));
        CHECK(config.upstreams[0].balance == Balance::least_conn);
        REQUIRE(config.upstreams[0].sticky.has_value());
        CHECK(config.upstreams[0].sticky->max_age == 90s);
    }
    {
        const Config config = load_ok(
            upstream_with("    balance: hash\n    hash_key: cookie:sid\n    sticky: { cookie: sy, max_age: 1d }\n"));
        REQUIRE(config.upstreams[0].sticky.has_value());
        CHECK(config.upstreams[0].sticky->max_age == 24h);
    }
    struct Row {
        std::string lines;
        std::uint32_t max_tunnels;
        Millis slow_start;
    };
    const std::vector<Row> rows = {
        {"    max_tunnels: 0\n", 0, 0ms},
        {"    max_tunnels: 1\n", 1, 0ms},
        {"    max_tunnels: 4294967295\n", 4294967295u, 0ms},
        {"    slow_start: 0s\n", 0, 0ms},
        {"    slow_start: 250ms\n", 0, 250ms},
        {"    slow_start: 1m\n", 0, 60s},
        {"    max_tunnels: 100\n    slow_start: 2m\n", 100, 120s},
    };
    for (const Row& row : rows) {
        CAPTURE(row.lines);
        const Config config = load_ok(upstream_with(row.lines));
        CHECK(config.upstreams[0].max_tunnels == row.max_tunnels);
        CHECK(config.upstreams[0].slow_start == row.slow_start);
    }
}

TEST_CASE("route max_rate and max_tunnels: values") {
    struct Row {
        std::string upgrade;
        std::uint32_t max_rate;
        std::uint32_t max_tunnels;
    };
    const std::vector<Row> rows = {
        {"{ max_rate: 0 }", 0, 0},
        {"{ max_rate: 1 }", 1, 0},
        {"{ max_rate: 200 }", 200, 0},
        {"{ max_tunnels: 10000 }", 0, 10000},
        {"{ max_rate: 1000000, max_tunnels: 4294967295 }", 1000000u, 4294967295u},
        {"{ allow: [websocket], max_rate: 50, max_tunnels: 7 }", 50, 7},
    };
    for (const Row& row : rows) {
        CAPTURE(row.upgrade);
        const Config config = load_ok(route_with(row.upgrade));
        REQUIRE(config.routes.size() == 1);
        CHECK(config.routes[0].upgrade.max_rate == row.max_rate);
        CHECK(config.routes[0].upgrade.max_tunnels == row.max_tunnels);
    }
}

// ---------------------------------------------------------------------------------------
// Errors

TEST_CASE("the base of the error cases is valid") {
    CHECK(errors_of(upstream_with("")).empty());
    CHECK(errors_of(route_with("{ allow: [websocket] }")).empty());
}

const std::string kExpectedKey = " (expected client_ip, header:NAME, cookie:NAME or query:NAME)";

TEST_CASE("config errors: hash_key") {
    run({
        {"hash_key without balance", upstream_with("    hash_key: client_ip\n"),
         {"5:5: 'hash_key' applies only with balance: hash"}},
        {"hash_key with least_conn", upstream_with("    balance: least_conn\n    hash_key: header:x-tenant\n"),
         {"6:5: 'hash_key' applies only with balance: hash"}},
        {"hash_key with round_robin", upstream_with("    hash_key: cookie:sid\n    balance: round_robin\n"),
         {"5:5: 'hash_key' applies only with balance: hash"}},
        {"header without a name", upstream_with("    balance: hash\n    hash_key: 'header:'\n"),
         {"6:15: invalid hash_key 'header:'" + kExpectedKey}},
        {"cookie without a name", upstream_with("    balance: hash\n    hash_key: 'cookie:'\n"),
         {"6:15: invalid hash_key 'cookie:'" + kExpectedKey}},
        {"query without a name", upstream_with("    balance: hash\n    hash_key: 'query:'\n"),
         {"6:15: invalid hash_key 'query:'" + kExpectedKey}},
        {"unknown kind", upstream_with("    balance: hash\n    hash_key: ip\n"),
         {"6:15: invalid hash_key 'ip'" + kExpectedKey}},
        {"unknown kind with a name", upstream_with("    balance: hash\n    hash_key: path:x\n"),
         {"6:15: invalid hash_key 'path:x'" + kExpectedKey}},
        {"kind without its colon", upstream_with("    balance: hash\n    hash_key: header\n"),
         {"6:15: invalid hash_key 'header'" + kExpectedKey}},
        {"name with a space", upstream_with("    balance: hash\n    hash_key: cookie:a b\n"),
         {"6:15: invalid hash_key 'cookie:a b'" + kExpectedKey}},
        {"header name with a colon", upstream_with("    balance: hash\n    hash_key: 'header:x:y'\n"),
         {"6:15: invalid hash_key 'header:x:y'" + kExpectedKey}},
        {"client_ip with a name", upstream_with("    balance: hash\n    hash_key: client_ip:x\n"),
         {"6:15: invalid hash_key 'client_ip:x'" + kExpectedKey}},
        {"empty", upstream_with("    balance: hash\n    hash_key: ''\n"),
         {"6:15: invalid hash_key ''" + kExpectedKey}},
    });
}

TEST_CASE("config errors: sticky") {
    run({
        {"sticky without cookie", upstream_with("    sticky: { max_age: 1h }\n"),
         {"5:13: missing required key 'cookie'"}},
        {"sticky empty map", upstream_with("    sticky: {}\n"), {"5:13: missing required key 'cookie'"}},
        {"sticky not a map", upstream_with("    sticky: sy_affinity\n"),
         {"5:13: expected a map for 'sticky', got 'sy_affinity'"}},
        {"cookie name with a space", upstream_with("    sticky: { cookie: 'a b' }\n"),
         {"5:23: invalid cookie name 'a b' (expected a token)"}},
        {"cookie name with ';'", upstream_with("    sticky: { cookie: 'a;b' }\n"),
         {"5:23: invalid cookie name 'a;b' (expected a token)"}},
        {"cookie name with '='", upstream_with("    sticky: { cookie: 'a=b' }\n"),
         {"5:23: invalid cookie name 'a=b' (expected a token)"}},
        {"empty cookie name", upstream_with("    sticky: { cookie: '' }\n"),
         {"5:23: invalid cookie name '' (expected a token)"}},
        {"bad max_age", upstream_with("    sticky: { cookie: sy, max_age: 1 }\n"),
         {"5:36: invalid duration '1' (expected a number with a unit: ms, s, m, h)"}},
        {"unknown sticky key", upstream_with("    sticky: { cookie: sy, maxage: 1h }\n"),
         {"5:27: unknown key 'maxage' (did you mean 'max_age'?)"}},
        {"block form, bad name", upstream_with("    sticky:\n      cookie: a,b\n"),
         {"6:15: invalid cookie name 'a,b' (expected a token)"}},
    });
}

TEST_CASE("config errors: max_tunnels, slow_start, max_rate") {
    run({
        {"negative max_tunnels", upstream_with("    max_tunnels: -1\n"),
         {"5:18: invalid value '-1' for 'max_tunnels' (expected an integer >= 0)"}},
        {"word max_tunnels", upstream_with("    max_tunnels: many\n"),
         {"5:18: invalid value 'many' for 'max_tunnels' (expected an integer >= 0)"}},
        {"huge max_tunnels", upstream_with("    max_tunnels: 4294967296\n"),
         {"5:18: invalid value '4294967296' for 'max_tunnels' (expected an integer from 0 to 4294967295)"}},
        {"slow_start without unit", upstream_with("    slow_start: 10\n"),
         {"5:17: invalid duration '10' (expected a number with a unit: ms, s, m, h)"}},
        {"route max_rate fast", route_with("{ max_rate: fast }"),
         {"5:26: invalid value 'fast' for 'max_rate' (expected an integer from 0 to 1000000)"}},
        {"route max_rate negative", route_with("{ max_rate: -5 }"),
         {"5:26: invalid value '-5' for 'max_rate' (expected an integer from 0 to 1000000)"}},
        {"route max_rate over a million", route_with("{ max_rate: 1000001 }"),
         {"5:26: invalid value '1000001' for 'max_rate' (expected an integer from 0 to 1000000)"}},
        {"route max_tunnels negative", route_with("{ max_tunnels: -1 }"),
         {"5:29: invalid value '-1' for 'max_tunnels' (expected an integer >= 0)"}},
        {"route max_tunnels misspelt", route_with("{ max_tunnel: 1 }"),
         {"5:16: unknown key 'max_tunnel' (did you mean 'max_tunnels'?)"}},
    });
}

TEST_CASE("config errors: several balancing errors, in file order") {
    const std::string yaml = kListen +                         // 1
                             "upstreams:\n"                    // 2
                             "  app:\n"                        // 3
                             "    servers: [127.0.0.1:9000]\n"  // 4
                             "    hash_key: ip\n"              // 5
                             "    sticky: { cookie: 'a b' }\n"  // 6
                             "    max_tunnels: -1\n"           // 7
                             "    slow_start: soon\n"          // 8
                             "routes:\n"                       // 9
                             "  - upstream: app\n"             // 10
                             "    upgrade: { max_rate: fast, max_tunnels: x }\n";  // 11
    run({{"all at once", yaml,
          {"5:5: 'hash_key' applies only with balance: hash", "6:23: invalid cookie name 'a b' (expected a token)",
           "7:18: invalid value '-1' for 'max_tunnels' (expected an integer >= 0)",
           "8:17: invalid duration 'soon' (expected a number with a unit: ms, s, m, h)",
           "11:26: invalid value 'fast' for 'max_rate' (expected an integer from 0 to 1000000)",
           "11:45: invalid value 'x' for 'max_tunnels' (expected an integer >= 0)"}}});
}

TEST_SUITE_END();

}  // namespace
}  // namespace sy
