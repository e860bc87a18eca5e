// libFuzzer target: the upgrade policy decision (decide) against an oracle written here from
// the contract (docs/upgrades.md, "Request side"), not from routing/upgrade_policy.cpp.
// Input: byte 0 = rule flags (bit 0 on_disallowed: reject, bit 1 require), byte 1 = which
// entries of kAllow the route allows, then a request head for the strict request parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "parser/http_parser.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "parser/tokens.hpp"
#include "routing/upgrade_policy.hpp"

namespace {

constexpr const char* kAllow[8] = {"websocket", "h2c", "foo", "foo/2", "*", "WebSocket/13", "bar/1", "x-y"};

void check(bool ok) {
    if (!ok) std::abort();
}

bool ieq(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Every field named `name`, joined as one comma list (RFC 9110 §5.6.1: a comma inside a
// quoted-string does not split, a backslash there escapes the next byte), elements
// trimmed, empty ones dropped.
std::vector<std::string> list_of(const sy::MessageHead& h, std::string_view name) {
    std::vector<std::string> out;
    for (const sy::HeaderField& f : h.headers) {
        if (!ieq(f.name, name)) continue;
        const std::string_view v = f.value;
        std::size_t start = 0;
        bool quoted = false;
        for (std::size_t i = 0; i <= v.size(); ++i) {
            if (i < v.size() && quoted) {
                if (v[i] == '\\') ++i;
                else if (v[i] == '"') quoted = false;
                continue;
            }
            if (i < v.size() && v[i] == '"') quoted = true;
            if (i < v.size() && v[i] != ',') continue;
            const std::string_view item = trim(v.substr(start, i - start));
            if (!item.empty()) out.emplace_back(item);
            start = i + 1;
        }
    }
    return out;
}

std::size_t count_of(const sy::MessageHead& h, std::string_view name) {
    std::size_t n = 0;
    for (const sy::HeaderField& f : h.headers) n += ieq(f.name, name) ? 1 : 0;
    return n;
}

const sy::HeaderField* field_of(const sy::HeaderList& fields, std::string_view name) {
    for (const sy::HeaderField& f : fields) {
        if (ieq(f.name, name)) return &f;
    }
    return nullptr;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (!sy::is_tchar(c)) return false;
    }
    return true;
}

std::string_view name_of(std::string_view protocol) { return protocol.substr(0, protocol.find('/')); }

// "name" or "name/version", both tokens.
bool well_formed(std::string_view protocol) {
    const std::size_t slash = protocol.find('/');
    if (slash == std::string_view::npos) return is_token(protocol);
    return is_token(protocol.substr(0, slash)) && is_token(protocol.substr(slash + 1));
}

bool allowed(const std::vector<std::string>& allow, std::string_view protocol) {
    if (!well_formed(protocol)) return false;
    for (const std::string& entry : allow) {
        if (entry == "*") {
            if (!ieq(name_of(protocol), "h2c")) return true;  // h2c only when named
        } else if (entry.find('/') == std::string::npos) {
            if (ieq(entry, name_of(protocol))) return true;
        } else if (ieq(entry, protocol)) {
            return true;
        }
    }
    return false;
}

bool upgrade_request(const sy::MessageHead& h) {
    if (h.http_major != 1 || h.http_minor < 1 || count_of(h, "Upgrade") == 0) return false;
    for (const std::string& token : list_of(h, "Connection")) {
        if (ieq(token, "upgrade")) return true;
    }
    return false;
}

// RFC 6455 §4.1: base64 of exactly 16 bytes, in canonical form.
bool valid_key(std::string_view key) {
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (key.size() != 24 || key.substr(22) != "==") return false;
    unsigned bits = 0;
    for (std::size_t i = 0; i < 22; ++i) {
        const std::size_t v = kAlphabet.find(key[i]);
        if (v == std::string_view::npos) return false;
        bits = static_cast<unsigned>(v);
    }
    return (bits & 0x0f) == 0;  // 16 bytes = 128 bits: the last character carries 2 of them
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 2) return 0;
    sy::UpgradeConfig rule;
    rule.on_disallowed = (bytes[0] & 1) != 0 ? sy::OnDisallowed::reject : sy::OnDisallowed::strip;
    rule.require = (bytes[0] & 2) != 0;
    for (int i = 0; i < 8; ++i) {
        if ((bytes[1] >> i) & 1) rule.allow.emplace_back(kAllow[i]);
    }
    fuzz::HeadCatcher handler(sy::HttpParser::AfterHead::pause);
    sy::HttpParser parser(sy::HttpParser::Kind::request, handler, sy::HttpParser::Limits{8192, 64});
    parser.feed(reinterpret_cast<const char*>(bytes + 2), size - 2);
    if (!handler.have_head) return 0;
    const sy::MessageHead& request = handler.head;

    const sy::UpgradeDecision d = sy::decide(request, rule);
    using Kind = sy::UpgradeDecision::Kind;

    // The oracle: the offer filtered to what the route allows, order kept; h2c only with
    // exactly one HTTP2-Settings.
    const bool is_upgrade = upgrade_request(request);
    check(is_upgrade == sy::is_upgrade_request(request));
    std::vector<std::string> expected;
    if (is_upgrade) {
        for (const std::string& p : list_of(request, "Upgrade")) {
            if (ieq(name_of(p), "h2c") && count_of(request, "HTTP2-Settings") != 1) continue;
            if (allowed(rule.allow, p)) expected.push_back(p);
        }
    }
    bool websocket = false;
    for (const std::string& p : expected) websocket = websocket || ieq(name_of(p), "websocket");

    if (!expected.empty()) {
        if (websocket) {
            const sy::HeaderField* key = field_of(request.headers, "Sec-WebSocket-Key");
            const sy::HeaderField* version = field_of(request.headers, "Sec-WebSocket-Version");
            const bool key_ok = count_of(request, "Sec-WebSocket-Key") == 1 && valid_key(trim(key->value));
            const bool version_ok = count_of(request, "Sec-WebSocket-Version") == 1 && trim(version->value) == "13";
            if (request.method != "GET" || !key_ok) {
                check(d.kind == Kind::respond && d.status == 400 && d.close);
                return 0;
            }
            if (!version_ok) {
                check(d.kind == Kind::respond && d.status == 426);
                const sy::HeaderField* v = field_of(d.response_fields, "Sec-WebSocket-Version");
                const sy::HeaderField* up = field_of(d.response_fields, "Upgrade");
                check(v != nullptr && v->value == "13" && up != nullptr && ieq(up->value, "websocket"));
                check(field_of(d.response_fields, "Connection") != nullptr);
                return 0;
            }
            check(d.websocket_accept == sy::websocket_accept_for(trim(key->value)));
        }
        check(d.kind == Kind::forward && d.outcome == sy::UpgradeOutcome::forwarded);
        check(d.forwarded == expected);
        const sy::HeaderField* up = field_of(d.upstream_fields, "Upgrade");
        const sy::HeaderField* conn = field_of(d.upstream_fields, "Connection");
        check(up != nullptr && up->value == joined(expected));
        check(conn != nullptr && conn->value.find("Upgrade") != std::string::npos);
        bool h2c = false;
        for (const std::string& p : expected) h2c = h2c || ieq(name_of(p), "h2c");
        check((field_of(d.upstream_fields, "HTTP2-Settings") != nullptr) == h2c);
        if (h2c) check(conn->value.find("HTTP2-Settings") != std::string::npos);
    } else if (is_upgrade && rule.on_disallowed == sy::OnDisallowed::reject) {
        check(d.kind == Kind::respond && d.status == 403 && d.close);
        check(d.outcome == sy::UpgradeOutcome::rejected);
    } else if (rule.require) {
        check(d.kind == Kind::respond && d.status == 426 && d.outcome == sy::UpgradeOutcome::required);
        bool names_one = false;
        for (const std::string& a : rule.allow) names_one = names_one || a != "*";
        if (names_one) {  // RFC 9110 §15.5.22: a 426 names what to switch to
            const sy::HeaderField* up = field_of(d.response_fields, "Upgrade");
            const sy::HeaderField* conn = field_of(d.response_fields, "Connection");
            check(up != nullptr && !up->value.empty() && conn != nullptr && ieq(conn->value, "Upgrade"));
        }
    } else {
        check(d.kind == (is_upgrade ? Kind::strip : Kind::plain));
        check(d.forwarded.empty() && d.status == 0);
    }

    // A switch is never accepted for a request the policy did not forward.
    if (d.kind != Kind::forward) {
        sy::MessageHead response;
        response.status = 101;
        response.headers = {{"Upgrade", "websocket", sy::FieldId::upgrade},
                            {"Connection", "Upgrade", sy::FieldId::connection}};
        check(!sy::validate_switch(d, response).accept);
    }
    return 0;
}
