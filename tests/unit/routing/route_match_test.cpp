#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "routing/config_loader.hpp"
#include "routing/route_match.hpp"

namespace sy {
namespace {

TEST_CASE("split_target") {
    struct Case {
        std::string_view target;
        std::string_view host;
        std::string_view path;
    };
    const std::vector<Case> cases = {
        {"/", "", "/"},
        {"/chat?room=1", "", "/chat"},
        {"/a/b#frag", "", "/a/b"},
        {"/?q", "", "/"},
        {"http://Host:80/p?q", "Host:80", "/p"},
        {"http://example.com", "example.com", "/"},
        {"http://example.com?x=1", "example.com", "/"},
        {"https://[::1]:8443/ws", "[::1]:8443", "/ws"},
        {"HTTP://user:pw@example.com/x", "example.com", "/x"},
        {"ws+x.y-z://h/p", "h", "/p"},
        {"*", "", "*"},
        {"example.com:443", "", "example.com:443"},
        {"", "", ""},
        {"1http://h/p", "", "1http://h/p"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.target);
        const TargetParts parts = split_target(c.target);
        CHECK(parts.host == c.host);
        CHECK(parts.path == c.path);
    }
}

TEST_CASE("protocol_matches") {
    struct Case {
        std::string_view pattern;
        std::string_view offered;
        bool matches;
    };
    const std::vector<Case> cases = {
        {"websocket", "websocket", true},
        {"websocket", "WebSocket", true},
        {"WEBSOCKET", "websocket/13", true},  // a name allows every version
        {"websocket/13", "websocket/13", true},
        {"websocket/13", "WebSocket/13", true},
        {"h2c/ABC", "h2c/abc", true},
        {"websocket/13", "websocket", false},  // a version allows exactly that one
        {"websocket/13", "websocket/14", false},
        {"websocket", "websockets", false},
        {"websocket", "web", false},
        {"h2c", "websocket", false},
        {"*", "anything/1", true},
        {"*", "h2c", true},
        {"*", "", false},
        {"websocket", "", false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.pattern);
        CAPTURE(c.offered);
        CHECK(protocol_matches(c.pattern, c.offered) == c.matches);
    }
}

TEST_CASE("host_matches") {
    struct Case {
        std::string_view pattern;
        std::string_view host;
        bool matches;
    };
    const std::vector<Case> cases = {
        {"example.com", "example.com", true},
        {"example.com", "Example.COM", true},
        {"example.com", "example.com:8080", true},
        {"example.com", "example.com.", true},
        {"example.com", "example.org", false},
        {"example.com", "www.example.com", false},
        {"example.com", "", false},
        {"*.example.com", "a.example.com", true},
        {"*.example.com", "A.B.Example.com:443", true},
        {"*.example.com", "example.com", false},
        {"*.example.com", ".example.com", false},
        {"*.example.com", "aexample.com", false},
        {"*.example.com", "a.example.org", false},
        {"127.0.0.1", "127.0.0.1:8080", true},
        {"[::1]", "[::1]:8080", true},
        {"[::1]", "[::1]", true},
        {"[::1]", "[::2]:8080", false},
        {"[2001:db8::1]", "[2001:DB8::1]", true},
    };
    for (const Case& c : cases) {
        CAPTURE(c.pattern);
        CAPTURE(c.host);
        CHECK(host_matches(c.pattern, c.host) == c.matches);
    }
}

TEST_CASE("match_route: first match in file order") {
    const ConfigResult loaded = load_config_string(
        "listen: [{ address: 127.0.0.1:0 }]\n"
        "upstreams: { a: { servers: [127.0.0.1:1] } }\n"
        "routes:\n"
        "  - match: { host: chat.example.com, path_prefix: /ws, upgrade: websocket }\n"  // 0
        "    upstream: a\n"
        "  - match: { host: chat.example.com, path_prefix: /ws }\n"  // 1
        "    upstream: a\n"
        "  - match: { host: '*.example.com', path_prefix: /api/ }\n"  // 2
        "    upstream: a\n"
        "  - match: { upgrade: h2c/2 }\n"  // 3
        "    upstream: a\n"
        "  - match: { path_prefix: /static }\n"  // 4
        "    upstream: a\n"
        "  - match: { host: only.example.org }\n"  // 5
        "    upstream: a\n",
        "t.yaml");
    REQUIRE(loaded.config.has_value());
    const Config& config = *loaded.config;

    struct Case {
        std::string_view name;
        std::string_view host;
        std::string_view path;
        std::vector<std::string_view> offer;
        int route;  // index, or -1 for none (404)
    };
    const std::vector<Case> cases = {
        {"websocket upgrade to chat", "chat.example.com", "/ws", {"websocket"}, 0},
        {"upgrade name case-insensitive, versioned offer", "Chat.Example.com:8080", "/ws/room", {"WebSocket/13"}, 0},
        {"websocket second in the offer", "chat.example.com", "/ws", {"h2c", "websocket"}, 0},
        {"plain request to /ws", "chat.example.com", "/ws", {}, 1},
        {"other protocol to /ws", "chat.example.com", "/ws", {"h2c"}, 1},
        {"path prefix is a plain string prefix", "chat.example.com", "/wsx", {}, 1},
        {"wildcard host", "api.example.com", "/api/v1", {}, 2},
        {"wildcard host, deeper", "a.b.example.com", "/api/", {}, 2},
        {"wildcard needs a label", "example.com", "/api/v1", {}, -1},
        {"prefix /api/ does not match /api", "api.example.com", "/api", {}, -1},
        {"h2c/2 offered", "", "/anything", {"h2c/2"}, 3},
        {"h2c without version does not match h2c/2", "", "/anything", {"h2c"}, -1},
        {"any host, path prefix", "", "/static/app.js", {}, 4},
        {"exact host", "ONLY.example.org", "/", {}, 5},
        {"no route", "example.net", "/", {}, -1},
        {"host-specific routes need a host", "", "/ws", {"websocket"}, -1},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        RouteRequest request;
        request.host = c.host;
        request.path = c.path;
        request.offer = c.offer;
        const RouteConfig* route = match_route(config, request);
        const int index = route == nullptr ? -1 : static_cast<int>(route - config.routes.data());
        CHECK(index == c.route);
    }
}

TEST_CASE("match_route: the default prefix matches every origin-form path") {
    const ConfigResult loaded = load_config_string(
        "listen: [{ address: 127.0.0.1:0 }]\n"
        "upstreams: { a: { servers: [127.0.0.1:1] } }\n"
        "routes: [{ upstream: a }]\n",
        "t.yaml");
    REQUIRE(loaded.config.has_value());
    for (std::string_view path : {"/", "/x", "/a/b/c"}) {
        CAPTURE(path);
        RouteRequest request;
        request.path = path;
        CHECK(match_route(*loaded.config, request) == &loaded.config->routes[0]);
    }
    RouteRequest asterisk;  // OPTIONS * names no path
    asterisk.path = "*";
    CHECK(match_route(*loaded.config, asterisk) == nullptr);
}

}  // namespace
}  // namespace sy
