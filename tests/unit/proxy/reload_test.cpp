// The pure parts of a reload (docs/operations.md, "Reload").
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/ops/reload.hpp"

using namespace sy;

namespace {

std::vector<ListenerConfig> listeners(const std::vector<std::pair<std::string, std::uint16_t>>& addresses) {
    std::vector<ListenerConfig> out;
    for (const auto& [host, port] : addresses) out.push_back(ListenerConfig{Address{host, port, false}, std::nullopt, false});
    return out;
}

}  // namespace

TEST_CASE("listeners are matched by address as written") {
    struct Case {
        std::string_view name;
        std::vector<ListenerConfig> running;
        std::vector<ListenerConfig> next;
        std::vector<int> plan;
    };
    const std::vector<Case> cases = {
        {"unchanged", listeners({{"127.0.0.1", 80}, {"127.0.0.1", 81}}), listeners({{"127.0.0.1", 80}, {"127.0.0.1", 81}}),
         {0, 1}},
        {"reordered", listeners({{"127.0.0.1", 80}, {"127.0.0.1", 81}}), listeners({{"127.0.0.1", 81}, {"127.0.0.1", 80}}),
         {1, 0}},
        {"one added", listeners({{"127.0.0.1", 80}}), listeners({{"127.0.0.1", 80}, {"127.0.0.1", 82}}), {0, -1}},
        {"one removed", listeners({{"127.0.0.1", 80}, {"127.0.0.1", 81}}), listeners({{"127.0.0.1", 81}}), {1}},
        {"a different host is another listener", listeners({{"127.0.0.1", 80}}), listeners({{"0.0.0.0", 80}}), {-1}},
        {"port 0 twice: matched in order", listeners({{"127.0.0.1", 0}, {"127.0.0.1", 0}}),
         listeners({{"127.0.0.1", 0}, {"127.0.0.1", 0}, {"127.0.0.1", 0}}), {0, 1, -1}},
        {"all replaced", listeners({{"127.0.0.1", 80}}), listeners({{"127.0.0.1", 90}, {"127.0.0.1", 91}}), {-1, -1}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(plan_listeners(c.running, c.next) == c.plan);
    }
}

TEST_CASE("'workers' needs a restart: the running value is kept and said so") {
    Config running;
    running.workers = 2;
    Config next;
    next.workers = 4;
    next.timeouts.tunnel_idle = Millis(5000);
    const std::vector<std::string> lines = restart_only_changes(running, next);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "reload: 'workers' changed from 2 to 4; this needs a restart, keeping 2");
    CHECK(next.workers == 2);
    CHECK(next.timeouts.tunnel_idle == Millis(5000));  // the rest applies

    Config same;
    same.workers = 2;
    CHECK(restart_only_changes(running, same).empty());
}
