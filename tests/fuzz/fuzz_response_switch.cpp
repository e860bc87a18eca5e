// libFuzzer target: backend responses to a forwarded WebSocket upgrade, parsed by the
// response parser; every 101 goes through validate_switch. An accepted switch must answer
// what was forwarded: a 101 whose Upgrade names only offered protocols and whose
// Sec-WebSocket-Accept is the one computed from the key (docs/upgrades.md, "The response").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "parser/http_parser.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "parser/tokens.hpp"
#include "routing/upgrade_policy.hpp"

namespace {

sy::UpgradeDecision forwarded_websocket() {
    sy::MessageHead request;
    request.method = "GET";
    request.target = "/chat";
    request.http_major = 1;
    request.http_minor = 1;
    request.headers = {{"Host", "x", sy::FieldId::host},
                       {"Upgrade", "websocket", sy::FieldId::upgrade},
                       {"Connection", "Upgrade", sy::FieldId::connection},
                       {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", sy::FieldId::sec_websocket_key},
                       {"Sec-WebSocket-Version", "13", sy::FieldId::sec_websocket_version}};
    sy::UpgradeConfig rule;
    rule.allow = {"websocket"};
    return sy::decide(request, rule);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    static const sy::UpgradeDecision decision = forwarded_websocket();
    if (decision.kind != sy::UpgradeDecision::Kind::forward) std::abort();
    fuzz::HeadCatcher handler;
    sy::HttpParser parser(sy::HttpParser::Kind::response, handler, sy::HttpParser::Limits{8192, 64});
    const sy::HttpParser::Result r = parser.feed(reinterpret_cast<const char*>(bytes), size);
    if (r.consumed > size) std::abort();
    if (r.status != sy::HttpParser::Status::upgrade || !handler.have_head) return 0;
    const sy::SwitchVerdict verdict = sy::validate_switch(decision, handler.head);
    if (!verdict.accept) return 0;
    if (handler.head.status != 101 || verdict.protocols.empty()) std::abort();
    for (const std::string& p : verdict.protocols) {
        if (!sy::iequals(p.substr(0, p.find('/')), "websocket")) std::abort();
    }
    const sy::HeaderField* accept = sy::find_field(handler.head.headers, "Sec-WebSocket-Accept");
    if (accept == nullptr || sy::trim_ows(accept->value) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") std::abort();
    return 0;
}
