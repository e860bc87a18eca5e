// Terminate mode's handshake (routing/terminate_policy.hpp, docs/upgrades.md "Terminating
// WebSocket"): when the proxy answers itself, the 101's fields, the subprotocol choice.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "routing/terminate_policy.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {
namespace {

constexpr const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";       // RFC 6455 §1.3
constexpr const char* kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // its accept value

MessageHead ws_request(HeaderList extra) {
    MessageHead head;
    head.method = "GET";
    head.target = "/vnc";
    head.http_minor = 1;
    head.headers = {{"Host", "x"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                    {"Sec-WebSocket-Key", kKey}, {"Sec-WebSocket-Version", "13"}};
    for (HeaderField& f : extra) head.headers.push_back(std::move(f));
    return head;
}

UpgradeConfig terminating(std::vector<std::string> subprotocols, std::vector<std::string> allow = {"websocket"}) {
    UpgradeConfig rule;
    rule.allow = std::move(allow);
    rule.terminate = Terminate::websocket;
    rule.subprotocols = std::move(subprotocols);
    return rule;
}

TerminatePlan plan(const MessageHead& request, const UpgradeConfig& rule) {
    return plan_termination(decide(request, rule), request, rule);
}

TEST_CASE("terminate: the subprotocol is the route's first that the client offered") {
    struct Case {
        const char* name;
        HeaderList offer;                    // the client's Sec-WebSocket-Protocol fields
        std::vector<std::string> route;      // the route's subprotocols
        std::string chosen;
    };
    const std::vector<Case> cases = {
        {"none offered", {}, {"binary"}, ""},
        {"none listed", {{"Sec-WebSocket-Protocol", "binary"}}, {}, ""},
        {"one match", {{"Sec-WebSocket-Protocol", "binary"}}, {"binary"}, "binary"},
        {"the route's order wins", {{"Sec-WebSocket-Protocol", "binary, base64"}}, {"base64", "binary"}, "base64"},
        {"the route's order wins (2)", {{"Sec-WebSocket-Protocol", "base64, binary"}}, {"binary", "base64"}, "binary"},
        {"several fields are one list",
         {{"Sec-WebSocket-Protocol", "chat"}, {"Sec-WebSocket-Protocol", " base64 "}}, {"binary", "base64"}, "base64"},
        {"no match", {{"Sec-WebSocket-Protocol", "chat, superchat"}}, {"binary", "base64"}, ""},
        {"values compare exactly", {{"Sec-WebSocket-Protocol", "Binary"}}, {"binary"}, ""},
        {"empty elements are skipped", {{"Sec-WebSocket-Protocol", ", ,binary,"}}, {"binary"}, "binary"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        const TerminatePlan p = plan(ws_request(c.offer), terminating(c.route));
        REQUIRE(p.terminate);
        CHECK(p.subprotocol == c.chosen);
        HeaderList expected = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", kAccept}};
        if (!c.chosen.empty()) expected.push_back({"Sec-WebSocket-Protocol", c.chosen});
        REQUIRE(p.response_fields.size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            CHECK(p.response_fields[i].name == expected[i].name);
            CHECK(p.response_fields[i].value == expected[i].value);
        }
    }
}

TEST_CASE("terminate: an extension offer is declined by omission") {
    const TerminatePlan p =
        plan(ws_request({{"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"}}), terminating({}));
    REQUIRE(p.terminate);
    for (const HeaderField& f : p.response_fields) CHECK(f.name != "Sec-WebSocket-Extensions");
}

TEST_CASE("terminate: only a request the policy forwards as websocket is terminated") {
    UpgradeConfig plain = terminating({"binary"});
    plain.terminate = Terminate::none;
    MessageHead post = ws_request({});
    post.method = "POST";
    MessageHead no_upgrade = ws_request({});
    no_upgrade.headers = {{"Host", "x"}};
    MessageHead other = ws_request({});
    other.headers[1].value = "foo/1";
    MessageHead http10 = ws_request({});
    http10.http_minor = 0;
    MessageHead bad_version = ws_request({});
    bad_version.headers[4].value = "8";
    struct Case {
        const char* name;
        MessageHead request;
        UpgradeConfig rule;
        bool terminated;
    };
    const std::vector<Case> cases = {
        {"a WebSocket handshake", ws_request({}), terminating({}), true},
        {"allow '*'", ws_request({}), terminating({}, {"*"}), true},
        {"a route without terminate", ws_request({}), plain, false},
        {"a bad method (400)", post, terminating({}), false},
        {"a bad version (426)", bad_version, terminating({}), false},
        {"not an upgrade request", no_upgrade, terminating({}), false},
        {"another protocol offered", other, terminating({}, {"websocket", "foo"}), false},
        {"HTTP/1.0", http10, terminating({}), false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(plan(c.request, c.rule).terminate == c.terminated);
    }
}

}  // namespace
}  // namespace sy
