// Valid configurations: defaults, every key, and the shipped examples.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "routing/config_loader.hpp"
#include "config_test_support.hpp"

namespace sy {
namespace {

using namespace std::chrono_literals;

using config_test::load_ok;

std::filesystem::path examples_dir() {
    // tests/unit/routing/<this file> -> <repo>/conf/examples
    return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path() /
           "conf" / "examples";
}

// The minimal file of docs/configuration.md, byte for byte.
const std::string kMinimal =
    "listen: [{ address: 127.0.0.1:8080 }]\n"
    "upstreams: { app: { servers: [127.0.0.1:9000] } }\n"
    "routes:\n"
    "  - match: { path_prefix: / }\n"
    "    upstream: app\n"
    "    upgrade: { allow: [websocket] }\n";

TEST_CASE("the minimal config of docs/configuration.md loads with every default") {
    const Config config = load_ok(kMinimal);
    CHECK(config.file == "t.yaml");
    REQUIRE(config.listen.size() == 1);
    CHECK(config.listen[0].address.to_string() == "127.0.0.1:8080");
    CHECK(config.workers == 1);

    REQUIRE(config.upstreams.size() == 1);
    const UpstreamConfig& app = config.upstreams[0];
    CHECK(app.name == "app");
    REQUIRE(app.servers.size() == 1);
    CHECK(app.servers[0].host == "127.0.0.1");
    CHECK(app.servers[0].port == 9000);
    CHECK_FALSE(app.servers[0].is_ipv6);
    CHECK(app.balance == Balance::round_robin);
    CHECK(app.keepalive == 32);
    CHECK(app.health.max_fails == 3);
    CHECK(app.health.cooldown == 10s);
    CHECK_FALSE(app.health.check.has_value());

    REQUIRE(config.routes.size() == 1);
    const RouteConfig& route = config.routes[0];
    CHECK(route.match.host.empty());
    CHECK(route.match.path_prefix == "/");
    CHECK(route.match.upgrade.empty());
    CHECK(route.upstream == "app");
    CHECK(route.upstream_index == 0);
    CHECK(route.upgrade.allow == std::vector<std::string>{"websocket"});
    CHECK(route.upgrade.on_disallowed == OnDisallowed::strip);
    CHECK_FALSE(route.upgrade.require);
    CHECK(route.line == 4);

    CHECK(config.timeouts.request_header == 10s);
    CHECK(config.timeouts.keepalive_idle == 60s);
    CHECK(config.timeouts.upstream_connect == 5s);
    CHECK(config.timeouts.upstream_response == 60s);
    CHECK(config.timeouts.tunnel_idle == 1h);
    CHECK(config.timeouts.shutdown_drain == 30s);
    CHECK(config.limits.max_connections == 10'000);
    CHECK(config.limits.max_header_bytes == 32 * 1024);
    CHECK(config.limits.max_headers == 100);
    CHECK(config.tunnel.buffer == 256 * 1024);
    CHECK(config.tunnel.splice);
    CHECK(config.forwarding.x_forwarded_for);
    CHECK(config.forwarding.x_forwarded_proto);
    CHECK_FALSE(config.forwarding.via);
    CHECK_FALSE(config.admin.has_value());
    CHECK(config.access_log.path == "-");
    CHECK(config.access_log.format == AccessLogFormat::text);
    CHECK(config.access_log.enabled());
    CHECK(config.pid_file.empty());
    CHECK(route.name == "route1");
}

TEST_CASE("route names (default route<N>), the access log format and pid_file") {
    const Config config = load_ok(
        "listen: [{ address: 127.0.0.1:8080 }]\n"
        "upstreams: { app: { servers: [127.0.0.1:9000] } }\n"
        "routes:\n"
        "  - { name: chat-ws, match: { path_prefix: /ws }, upstream: app }\n"
        "  - { match: { path_prefix: /api }, upstream: app }\n"
        "  - { name: 'v2.catch_all', upstream: app }\n"
        "access_log: { path: /var/log/sy.log, format: json }\n"
        "pid_file: /run/switchyard.pid\n");
    REQUIRE(config.routes.size() == 3);
    CHECK(config.routes[0].name == "chat-ws");
    CHECK(config.routes[1].name == "route2");  // its position, counted from 1
    CHECK(config.routes[2].name == "v2.catch_all");
    CHECK(config.access_log.format == AccessLogFormat::json);
    CHECK(config.access_log.path == "/var/log/sy.log");
    CHECK(config.pid_file == "/run/switchyard.pid");
}

TEST_CASE("terminate mode: terminate, subprotocols, max_message and their defaults") {
    const Config config = load_ok(
        "listen: [{ address: 127.0.0.1:8080 }]\n"
        "upstreams: { vnc: { servers: [127.0.0.1:5901] } }\n"
        "routes:\n"
        "  - upstream: vnc\n"
        "    upgrade: { allow: [WebSocket/13], terminate: websocket, subprotocols: [base64, binary], max_message: 64KiB }\n"
        "  - upstream: vnc\n"
        "    upgrade: { allow: ['*'], terminate: websocket }\n"
        "  - upstream: vnc\n"
        "    upgrade: { allow: [websocket] }\n");
    REQUIRE(config.routes.size() == 3);
    CHECK(config.routes[0].upgrade.terminate == Terminate::websocket);
    CHECK(config.routes[0].upgrade.subprotocols == std::vector<std::string>{"base64", "binary"});
    CHECK(config.routes[0].upgrade.max_message == 64 * 1024);
    CHECK(config.routes[1].upgrade.terminate == Terminate::websocket);
    CHECK(config.routes[1].upgrade.subprotocols.empty());
    CHECK(config.routes[1].upgrade.max_message == 1024 * 1024);  // the documented default
    CHECK(config.routes[2].upgrade.terminate == Terminate::none);
}

TEST_CASE("a config with every key, none at its default") {
    const std::string yaml =
        "listen:\n"                                    // 1
        "  - address: 0.0.0.0:8080\n"                  // 2
        "  - address: '[::1]:8081'\n"                  // 3
        "workers: 3\n"                                 // 4
        "upstreams:\n"                                 // 5
        "  web:\n"                                     // 6
        "    servers: [10.0.0.1:80]\n"                 // 7
        "  chat:\n"                                    // 8
        "    servers: [127.0.0.1:9001, '[2001:db8::2]:9002', backend.local:9003]\n"  // 9
        "    balance: least_conn\n"                    // 10
        "    keepalive: 0\n"                           // 11
        "    health:\n"                                // 12
        "      max_fails: 5\n"                         // 13
        "      cooldown: 0s\n"                         // 14
        "      check: { path: /up, interval: 250ms }\n"  // 15
        "routes:\n"                                    // 16
        "  - match:\n"                                 // 17
        "      host: Chat.Example.COM\n"               // 18
        "      path_prefix: /ws\n"                     // 19
        "      upgrade: WebSocket/13\n"                // 20
        "    upstream: chat\n"                         // 21
        "    upgrade:\n"                               // 22
        "      allow: [websocket, h2c/2, '*']\n"       // 23
        "      on_disallowed: reject\n"                // 24
        "      require: true\n"                        // 25
        "  - match: { host: '*.Example.com' }\n"       // 26
        "    upstream: web\n"                          // 27
        "  - upstream: chat\n"                         // 28
        "timeouts:\n"                                  // 29
        "  request_header: 1s\n"
        "  keepalive_idle: 2m\n"
        "  upstream_connect: 300ms\n"
        "  upstream_response: 2h\n"
        "  tunnel_idle: 1d\n"
        "  shutdown_drain: 45s\n"
        "limits:\n"
        "  max_connections: 50\n"
        "  max_header_bytes: 8KiB\n"
        "  max_headers: 20\n"
        "tunnel:\n"
        "  buffer: 1MiB\n"
        "  splice: off\n"
        "forwarding:\n"
        "  x_forwarded_for: false\n"
        "  x_forwarded_proto: false\n"
        "  via: true\n"
        "admin:\n"
        "  address: 127.0.0.1:9901\n"
        "access_log:\n"
        "  path: off\n";
    const Config config = load_ok(yaml);

    REQUIRE(config.listen.size() == 2);
    CHECK(config.listen[0].address.to_string() == "0.0.0.0:8080");
    CHECK(config.listen[1].address.host == "::1");
    CHECK(config.listen[1].address.is_ipv6);
    CHECK(config.listen[1].address.port == 8081);
    CHECK(config.workers == 3);

    REQUIRE(config.upstreams.size() == 2);
    CHECK(config.upstreams[0].name == "web");
    const UpstreamConfig& chat = config.upstreams[1];
    CHECK(chat.name == "chat");
    REQUIRE(chat.servers.size() == 3);
    CHECK(chat.servers[1].to_string() == "[2001:db8::2]:9002");
    CHECK(chat.servers[2].to_string() == "backend.local:9003");
    CHECK(chat.balance == Balance::least_conn);
    CHECK(chat.keepalive == 0);
    CHECK(chat.health.max_fails == 5);
    CHECK(chat.health.cooldown == 0ms);
    REQUIRE(chat.health.check.has_value());
    CHECK(chat.health.check->path == "/up");
    CHECK(chat.health.check->interval == 250ms);

    REQUIRE(config.routes.size() == 3);
    const RouteConfig& ws = config.routes[0];
    CHECK(ws.match.host == "chat.example.com");  // lower-cased
    CHECK(ws.match.path_prefix == "/ws");
    CHECK(ws.match.upgrade == "WebSocket/13");   // as written; compared case-insensitively
    CHECK(ws.upstream == "chat");
    CHECK(ws.upstream_index == 1);
    CHECK(ws.upgrade.allow == std::vector<std::string>{"websocket", "h2c/2", "*"});
    CHECK(ws.upgrade.on_disallowed == OnDisallowed::reject);
    CHECK(ws.upgrade.require);
    CHECK(ws.line == 17);
    CHECK(config.routes[1].match.host == "*.example.com");
    CHECK(config.routes[1].upstream_index == 0);
    CHECK(config.routes[1].line == 26);
    CHECK(config.routes[2].match.path_prefix == "/");
    CHECK(config.routes[2].upstream_index == 1);
    CHECK(config.routes[2].line == 28);

    CHECK(config.timeouts.request_header == 1s);
    CHECK(config.timeouts.keepalive_idle == 2min);
    CHECK(config.timeouts.upstream_connect == 300ms);
    CHECK(config.timeouts.upstream_response == 2h);
    CHECK(config.timeouts.tunnel_idle == 24h);
    CHECK(config.timeouts.shutdown_drain == 45s);
    CHECK(config.limits.max_connections == 50);
    CHECK(config.limits.max_header_bytes == 8192);
    CHECK(config.limits.max_headers == 20);
    CHECK(config.tunnel.buffer == 1024 * 1024);
    CHECK_FALSE(config.tunnel.splice);
    CHECK_FALSE(config.forwarding.x_forwarded_for);
    CHECK_FALSE(config.forwarding.x_forwarded_proto);
    CHECK(config.forwarding.via);
    REQUIRE(config.admin.has_value());
    CHECK(config.admin->address.to_string() == "127.0.0.1:9901");
    CHECK(config.access_log.path == "off");
    CHECK_FALSE(config.access_log.enabled());
}

TEST_CASE("scalar spellings that are accepted") {
    struct Case {
        std::string addition;  // appended to the minimal config
        unsigned workers;
        std::size_t max_header_bytes;
        std::string access_log;
    };
    const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    const std::vector<Case> cases = {
        {"workers: auto\n", cores, 32 * 1024, "-"},
        {"workers: '2'\n", 2, 32 * 1024, "-"},
        {"workers: 1024\n", 1024, 32 * 1024, "-"},
        {"limits: { max_header_bytes: 4096 }\n", 1, 4096, "-"},
        {"limits: { max_header_bytes: '4096' }\n", 1, 4096, "-"},
        {"limits: { max_header_bytes: 64KB }\n", 1, 64'000, "-"},
        {"access_log: { path: /var/log/switchyard.log }\n", 1, 32 * 1024, "/var/log/switchyard.log"},
        {"access_log: {}\n", 1, 32 * 1024, "-"},
        {"timeouts: {}\nlimits: {}\ntunnel: {}\nforwarding: {}\n", 1, 32 * 1024, "-"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.addition);
        const Config config = load_ok(kMinimal + c.addition);
        CHECK(config.workers == c.workers);
        CHECK(config.limits.max_header_bytes == c.max_header_bytes);
        CHECK(config.access_log.path == c.access_log);
    }
}

TEST_CASE("a health check block without keys takes the defaults") {
    const Config config = load_ok(
        "listen: [{ address: 127.0.0.1:0 }]\n"
        "upstreams: { app: { servers: [127.0.0.1:1], health: { check: {} } } }\n"
        "routes: [{ upstream: app }]\n");
    const HealthConfig& health = config.upstreams[0].health;
    REQUIRE(health.check.has_value());
    CHECK(health.check->path == "/healthz");
    CHECK(health.check->interval == 5s);
    CHECK(health.max_fails == 3);
}

TEST_CASE("every example in conf/examples loads") {
    const std::filesystem::path dir = examples_dir();
    CAPTURE(dir.string());
    std::vector<std::string> names;
    for (const auto& file : std::filesystem::directory_iterator(dir)) {
        if (file.path().extension() != ".yaml") {
            continue;
        }
        names.push_back(file.path().filename().string());
        const ConfigResult result = load_config_file(file.path().string());
        CAPTURE(file.path().string());
        for (const ConfigError& error : result.errors) {
            CAPTURE(error.to_string());
            CHECK(false);
        }
        REQUIRE(result.config.has_value());
        CHECK(result.config->file == file.path().string());
    }
    for (const char* expected : {"minimal.yaml", "websocket-chat.yaml", "h2c.yaml", "full.yaml"}) {
        CAPTURE(expected);
        CHECK(std::find(names.begin(), names.end(), expected) != names.end());
    }
}

TEST_CASE("conf/examples/minimal.yaml is docs/configuration.md's minimal file") {
    const ConfigResult result = load_config_file((examples_dir() / "minimal.yaml").string());
    REQUIRE(result.config.has_value());
    const Config& config = *result.config;
    CHECK(config.listen[0].address.to_string() == "127.0.0.1:8080");
    CHECK(config.upstreams[0].servers[0].to_string() == "127.0.0.1:9000");
    CHECK(config.routes[0].upgrade.allow == std::vector<std::string>{"websocket"});
}

TEST_CASE("conf/examples/full.yaml has docs/configuration.md's values") {
    const ConfigResult result = load_config_file((examples_dir() / "full.yaml").string());
    REQUIRE(result.config.has_value());
    const Config& config = *result.config;
    CHECK(config.listen[0].address.to_string() == "0.0.0.0:8080");
    CHECK(config.upstreams[0].balance == Balance::least_conn);
    REQUIRE(config.upstreams[0].health.check.has_value());
    CHECK(config.routes[0].match.host == "chat.example.com");
    CHECK(config.routes[0].match.upgrade == "websocket");
    CHECK(config.routes[1].match.path_prefix == "/");
    REQUIRE(config.admin.has_value());
    CHECK(config.admin->address.port == 9901);
    // Everything else in it is written at its default.
    const Config defaults{};
    CHECK(config.timeouts.request_header == defaults.timeouts.request_header);
    CHECK(config.timeouts.tunnel_idle == defaults.timeouts.tunnel_idle);
    CHECK(config.limits.max_header_bytes == defaults.limits.max_header_bytes);
    CHECK(config.tunnel.buffer == defaults.tunnel.buffer);
    CHECK(config.tunnel.splice == defaults.tunnel.splice);
    CHECK(config.access_log.path == defaults.access_log.path);
}

}  // namespace
}  // namespace sy
