// The upgrade policy (docs/upgrades.md, "Request side" and
// "Response side"). Pure functions of their arguments: no I/O.
#include "routing/upgrade_policy.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <utility>
#include <string_view>

#include "parser/base64.hpp"
#include "parser/tokens.hpp"
#include "routing/route_match.hpp"

namespace sy {
namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string_view protocol_name(std::string_view protocol) {
    return protocol.substr(0, protocol.find('/'));
}

// Anything in an Upgrade list that is not an RFC 9110 §7.8 protocol (is_protocol: quoted
// strings, inner spaces, "a/b/c") is never allowed nor accepted, whatever the allow list says.

bool is_h2c(std::string_view protocol) { return iequals(protocol_name(protocol), "h2c"); }
bool is_websocket(std::string_view protocol) {
    return iequals(protocol_name(protocol), "websocket");
}

// Is `protocol` allowed by the route's allow list? "*" allows anything except h2c, which
// is forwarded only when named ("h2c" or "h2c/..."): a blind h2c pass-through lets a
// client tunnel past the proxy's routing and access rules ("h2c smuggling").
bool allowed(const std::vector<std::string>& allow, std::string_view protocol) {
    if (!is_protocol(protocol)) return false;
    return std::any_of(allow.begin(), allow.end(), [&](const std::string& pattern) {
        if (pattern == "*") return !is_h2c(protocol);
        return protocol_matches(pattern, protocol);
    });
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

std::vector<std::string> to_strings(const std::vector<std::string_view>& views) {
    return {views.begin(), views.end()};
}

bool connection_has_upgrade(const HeaderList& headers) {
    return std::any_of(headers.begin(), headers.end(), [](const HeaderField& field) {
        return field_is(field, FieldId::connection) && list_has_token(field.value, "upgrade");
    });
}


// RFC 6455 §4.1: the key is a base64-encoded 16-byte nonce, so exactly 24 characters of
// strict base64 (RFC 4648 §4, padding included, the unused bits zero: §3.5): 22 characters
// of the alphabet, the last of which carries 2 bits of data and 4 zero bits, then "==".
bool is_websocket_key(std::string_view key) {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    for (std::size_t i = 0; i < 22; ++i) {
        if (base64_value(key[i]) < 0) return false;
    }
    return (base64_value(key[21]) & 0x0f) == 0;
}

// The one field named `id`: nullptr when there is none or more than one.
const HeaderField* single_field(const HeaderList& headers, FieldId id, std::size_t* count) {
    const HeaderField* found = nullptr;
    *count = 0;
    for (const HeaderField& field : headers) {
        if (!field_is(field, id)) continue;
        if (++*count == 1) found = &field;
    }
    return *count == 1 ? found : nullptr;
}

UpgradeDecision respond(UpgradeDecision decision, int status, std::string reason) {
    decision.kind = UpgradeDecision::Kind::respond;
    decision.status = status;
    decision.close = false;
    decision.reason = std::move(reason);
    decision.forwarded.clear();
    decision.upstream_fields.clear();
    decision.websocket_accept.clear();
    return decision;
}

// Every 426 the proxy sends (RFC 9110 §15.5.22: "The server MUST send an Upgrade header
// field in a 426 response to indicate the required protocol(s)"; §7.8: a sender of Upgrade
// also sends the "upgrade" connection option). `protocols` is empty only for a require rule
// whose allow list is just "*", which the config check refuses. `extra` follows
// (Sec-WebSocket-Version: 13).
UpgradeDecision upgrade_required(UpgradeDecision decision, const std::vector<std::string>& protocols,
                                 std::string reason, HeaderList extra = {}) {
    decision = respond(std::move(decision), 426, std::move(reason));
    // An empty list cannot be sent as Upgrade; the config check makes it unreachable.
    if (!protocols.empty()) decision.response_fields = {{"Upgrade", join(protocols)}, {"Connection", "Upgrade"}};
    for (HeaderField& field : extra) decision.response_fields.push_back(std::move(field));
    return decision;
}

// A malformed WebSocket handshake: 400, and the connection closes, so frames the client
// may have sent optimistically behind the request are never parsed as HTTP.
UpgradeDecision bad_handshake(UpgradeDecision decision, const std::string& what) {
    decision = respond(std::move(decision), 400, what);
    decision.outcome = UpgradeOutcome::bad_request;
    decision.close = true;
    decision.response_body = "400 Bad Request: " + what + "\n";
    return decision;
}

// RFC 6455 §4.2.1 / §4.4, applied when websocket is forwarded: method, then key, then
// version. Fills websocket_accept, or turns the decision into a 400 / 426.
void apply_websocket_profile(UpgradeDecision& decision, const MessageHead& request) {
    if (request.method != "GET") {
        decision = bad_handshake(std::move(decision), "WebSocket handshake must use GET");
        return;
    }
    std::size_t keys = 0;
    const HeaderField* key_field = single_field(request.headers, FieldId::sec_websocket_key, &keys);
    if (key_field == nullptr) {
        decision = bad_handshake(std::move(decision),
                                 std::string(keys == 0 ? "missing" : "duplicate") + " Sec-WebSocket-Key");
        return;
    }
    const std::string_view key = trim_ows(key_field->value);
    if (!is_websocket_key(key)) {
        decision = bad_handshake(std::move(decision), "invalid Sec-WebSocket-Key");
        return;
    }
    std::size_t versions = 0;
    const HeaderField* version = single_field(request.headers, FieldId::sec_websocket_version, &versions);
    if (version == nullptr || trim_ows(version->value) != "13") {
        // §4.4: answer 426 naming the version we speak; the connection stays usable.
        decision = upgrade_required(std::move(decision), {"websocket"},
                                    versions == 0 ? "missing Sec-WebSocket-Version"
                                                  : "unsupported Sec-WebSocket-Version",
                                    {{"Sec-WebSocket-Version", "13"}});
        decision.outcome = UpgradeOutcome::bad_request;
        decision.response_body = "426 Upgrade Required: Sec-WebSocket-Version 13\n";
        return;
    }
    decision.websocket_accept = websocket_accept_for(key);
}

}  // namespace

const char* outcome_name(UpgradeOutcome outcome) {
    switch (outcome) {
        case UpgradeOutcome::none: return "none";
        case UpgradeOutcome::forwarded: return "forwarded";
        case UpgradeOutcome::stripped: return "stripped";
        case UpgradeOutcome::rejected: return "rejected";
        case UpgradeOutcome::required: return "required";
        case UpgradeOutcome::bad_request: return "bad_request";
        case UpgradeOutcome::switched: return "switched";
        case UpgradeOutcome::declined: return "declined";
        case UpgradeOutcome::refused_101: return "refused_101";
        case UpgradeOutcome::terminated: return "terminated";
        case UpgradeOutcome::throttled: return "throttled";
    }
    return "none";
}

// RFC 9110 §7.8: only HTTP/1.1 (and later) requests can upgrade; a server must ignore
// Upgrade in an HTTP/1.0 request. The "upgrade" token must be in Connection (§7.6.1).
bool is_upgrade_request(const MessageHead& request) {
    const bool http11 = request.http_major > 1 || (request.http_major == 1 && request.http_minor >= 1);
    return http11 && find_field(request.headers, FieldId::upgrade) != nullptr &&
           connection_has_upgrade(request.headers);
}

UpgradeDecision decide(const MessageHead& request, const UpgradeConfig& rule) {
    const bool upgrade_request = is_upgrade_request(request);
    return decide(request, rule, upgrade_request,
                  upgrade_request ? collect_list(request.headers, FieldId::upgrade) : std::vector<std::string_view>());
}

UpgradeDecision decide(const MessageHead& request, const UpgradeConfig& rule, bool upgrade_request,
                       const std::vector<std::string_view>& offer) {
    UpgradeDecision decision;
    if (upgrade_request) {
        decision.offer = to_strings(offer);
        const bool h2c_settings_ok = count_fields(request.headers, FieldId::http2_settings) == 1;
        for (const std::string& protocol : decision.offer) {
            // RFC 7540 §3.2.1: no upgrade to h2c without exactly one HTTP2-Settings.
            if (is_h2c(protocol) && !h2c_settings_ok) continue;
            if (allowed(rule.allow, protocol)) decision.forwarded.push_back(protocol);
        }
    }

    if (!decision.forwarded.empty()) {
        decision.kind = UpgradeDecision::Kind::forward;
        decision.outcome = UpgradeOutcome::forwarded;
        decision.reason = "upgrade forwarded: " + join(decision.forwarded);
        if (std::any_of(decision.forwarded.begin(), decision.forwarded.end(),
                        [](const std::string& p) { return is_websocket(p); })) {
            apply_websocket_profile(decision, request);
            if (decision.kind != UpgradeDecision::Kind::forward) return decision;
        }
        const bool h2c = std::any_of(decision.forwarded.begin(), decision.forwarded.end(),
                                     [](const std::string& p) { return is_h2c(p); });
        if (h2c) {
            decision.upstream_fields.push_back(
                {"HTTP2-Settings", find_field(request.headers, FieldId::http2_settings)->value});
        }
        decision.upstream_fields.push_back({"Upgrade", join(decision.forwarded)});
        decision.upstream_fields.push_back(
            {"Connection", h2c ? "Upgrade, HTTP2-Settings" : "Upgrade"});
        return decision;
    }

    if (upgrade_request && rule.on_disallowed == OnDisallowed::reject) {
        // Answer and close: whatever the client sent optimistically behind the request is
        // never parsed (docs/upgrades.md, "reject").
        const std::string refused = decision.offer.empty() ? "(empty offer)" : join(decision.offer);
        decision = respond(std::move(decision), 403, "upgrade refused: " + refused);
        decision.outcome = UpgradeOutcome::rejected;
        decision.close = true;
        decision.response_body = "upgrade refused: " + refused + "\n";
        return decision;
    }

    if (rule.require) {
        // "*" names no protocol, so it is left out of the 426's Upgrade.
        std::vector<std::string> names;
        std::copy_if(rule.allow.begin(), rule.allow.end(), std::back_inserter(names),
                     [](const std::string& p) { return p != "*"; });
        decision = upgrade_required(std::move(decision), names,
                                    upgrade_request ? "upgrade required (offer not allowed)" : "upgrade required");
        decision.outcome = UpgradeOutcome::required;
        decision.response_body = "426 Upgrade Required\n";
        return decision;
    }

    if (upgrade_request) {
        decision.kind = UpgradeDecision::Kind::strip;
        decision.outcome = UpgradeOutcome::stripped;
        decision.reason = "upgrade stripped: " +
                          (decision.offer.empty() ? std::string("(empty offer)") : join(decision.offer));
        return decision;
    }
    decision.kind = UpgradeDecision::Kind::plain;
    return decision;
}

SwitchVerdict validate_switch(const UpgradeDecision& decision, const MessageHead& response) {
    SwitchVerdict verdict;
    if (decision.kind != UpgradeDecision::Kind::forward) {
        verdict.reason = "unsolicited 101";
        return verdict;
    }
    if (response.status != 101) {
        verdict.reason = "not a 101";
        return verdict;
    }
    if (find_field(response.headers, FieldId::upgrade) == nullptr) {
        verdict.reason = "101 without Upgrade";
        return verdict;
    }
    const std::vector<std::string> protocols = to_strings(collect_list(response.headers, FieldId::upgrade));
    if (protocols.empty()) {
        verdict.reason = "101 with an empty Upgrade";
        return verdict;
    }
    bool websocket = false;
    for (const std::string& protocol : protocols) {
        // "*" is our allow-list wildcard, not a protocol: it must not match through
        // protocol_matches.
        const bool offered =
            is_protocol(protocol) && protocol != "*" &&
            std::any_of(decision.forwarded.begin(), decision.forwarded.end(),
                        [&](const std::string& f) { return protocol_matches(protocol, f); });
        if (!offered) {
            verdict.reason = "101 names protocol '" + protocol + "' that was not offered";
            return verdict;
        }
        websocket = websocket || is_websocket(protocol);
    }
    if (websocket) {
        // RFC 6455 §4.1 (client side, which the proxy enforces for its client): exactly
        // one Sec-WebSocket-Accept, equal to the value computed from the key.
        std::size_t accepts = 0;
        const HeaderField* accept = single_field(response.headers, FieldId::sec_websocket_accept, &accepts);
        if (decision.websocket_accept.empty() || accept == nullptr ||
            trim_ows(accept->value) != decision.websocket_accept) {
            verdict.reason = "bad Sec-WebSocket-Accept";
            return verdict;
        }
    }
    verdict.accept = true;
    verdict.protocols = protocols;
    return verdict;
}

std::string filter_upgrade_field(const MessageHead& response, const UpgradeConfig& rule) {
    std::vector<std::string> kept;
    for (std::string_view protocol : collect_list(response.headers, FieldId::upgrade)) {
        if (allowed(rule.allow, protocol)) kept.emplace_back(protocol);
    }
    return join(kept);
}

namespace {

// OpenSSL 3 looks an algorithm up in its provider registry on every EVP_sha1() digest
// (EVP_DigestInit_ex: about 5,000 instructions); fetching SHA-1 once per thread and
// reusing one context brings a handshake's digest down to the hash itself.
struct Sha1 {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Sha1() {
        EVP_MD_CTX_free(ctx);
        EVP_MD_free(md);
    }
};

Sha1& thread_sha1() {
    thread_local Sha1 sha1;
    return sha1;
}

}  // namespace

void prepare_websocket_accept() { (void)thread_sha1(); }

std::string websocket_accept_for(std::string_view key) {
    Sha1& sha1 = thread_sha1();
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_len = 0;
    if (sha1.md == nullptr || sha1.ctx == nullptr || EVP_DigestInit_ex(sha1.ctx, sha1.md, nullptr) != 1 ||
        EVP_DigestUpdate(sha1.ctx, key.data(), key.size()) != 1 ||
        EVP_DigestUpdate(sha1.ctx, kWebSocketGuid.data(), kWebSocketGuid.size()) != 1 ||
        EVP_DigestFinal_ex(sha1.ctx, digest.data(), &digest_len) != 1) {
        return {};  // only on allocation failure inside OpenSSL; an empty value never matches
    }
    std::string encoded(base64_encoded_size(digest_len), '\0');
    base64_encode(reinterpret_cast<const char*>(digest.data()), digest_len, encoded.data());
    return encoded;
}

}  // namespace sy
