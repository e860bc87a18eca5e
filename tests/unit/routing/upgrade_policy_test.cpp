// Tables for the upgrade policy (routing/upgrade_policy.hpp, docs/upgrades.md).
// Requests and responses are built as MessageHeads directly: no parser involved.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "routing/upgrade_policy.hpp"

namespace sy {
namespace {

TEST_SUITE_BEGIN("upgrade_policy");

using Kind = UpgradeDecision::Kind;

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";       // RFC 6455 §1.3
constexpr std::string_view kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // its accept value
constexpr std::string_view kSettings = "AAMAAABkAAQCAAAAAAIAAAAA";

MessageHead request(std::string method, int minor, HeaderList headers) {
    MessageHead head;
    head.method = std::move(method);
    head.target = "/";
    head.http_minor = minor;
    head.headers = std::move(headers);
    return head;
}
MessageHead get(HeaderList headers) { return request("GET", 1, std::move(headers)); }

MessageHead response(int status, HeaderList headers) {
    MessageHead head;
    head.status = status;
    head.reason = status == 101 ? "Switching Protocols" : "Other";
    head.headers = std::move(headers);
    return head;
}

UpgradeConfig rule(std::vector<std::string> allow, OnDisallowed on = OnDisallowed::strip,
                   bool require = false) {
    UpgradeConfig config;
    config.allow = std::move(allow);
    config.on_disallowed = on;
    config.require = require;
    return config;
}
UpgradeConfig reject(std::vector<std::string> allow) {
    return rule(std::move(allow), OnDisallowed::reject);
}
UpgradeConfig require(std::vector<std::string> allow, OnDisallowed on = OnDisallowed::strip) {
    return rule(std::move(allow), on, true);
}

// A WebSocket handshake (RFC 6455 §4.1) with one field replaced or added.
HeaderList websocket_fields(HeaderList extra = {}, bool with_key = true, bool with_version = true) {
    HeaderList fields = {{"Host", "example.com"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
    if (with_key) fields.push_back({"Sec-WebSocket-Key", std::string(kKey)});
    if (with_version) fields.push_back({"Sec-WebSocket-Version", "13"});
    fields.insert(fields.end(), extra.begin(), extra.end());
    return fields;
}

MessageHead version_mismatch_request() {
    return get(websocket_fields({{"Sec-WebSocket-Version", "8"}}, true, false));
}

std::string_view kind_name(Kind kind) {
    switch (kind) {
        case Kind::plain: return "plain";
        case Kind::forward: return "forward";
        case Kind::strip: return "strip";
        case Kind::respond: return "respond";
    }
    return "?";
}

// Lists and field lists as one comparable, printable string.
std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& item : items) out += (out.empty() ? "" : "|") + item;
    return out;
}
std::string fields_text(const HeaderList& fields) {
    std::string out;
    for (const HeaderField& f : fields) out += (out.empty() ? "" : "\n") + f.name + ": " + f.value;
    return out;
}

// RFC 9110 §15.5.22 and §7.8: every 426 names the protocol and the upgrade option; the
// WebSocket version mismatch also names the version the proxy speaks (RFC 6455 §4.4).
constexpr std::string_view kVersion426Fields = "Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13";

struct DecideCase {
    std::string_view name;
    MessageHead request;
    UpgradeConfig rule;
    Kind kind;
    int status;                       // respond only; 0 otherwise
    std::string_view offer;           // joined with "|"
    std::string_view forwarded;       // joined with "|"
    std::string_view fields;          // upstream_fields (forward) or response_fields (respond)
    bool close;
    std::string_view body;            // response_body, exact
};

// The metrics' outcome word each expected decision must carry (docs/operations.md): a 426
// naming Sec-WebSocket-Version is a malformed handshake, any other 426 is `require`.
std::string_view expected_outcome(const DecideCase& c) {
    switch (c.kind) {
        case Kind::plain: return "none";
        case Kind::forward: return "forwarded";
        case Kind::strip: return "stripped";
        case Kind::respond: break;
    }
    if (c.status == 403) return "rejected";
    if (c.status == 400) return "bad_request";
    return c.fields.find("Sec-WebSocket-Version") != std::string_view::npos ? "bad_request" : "required";
}

void check_decision(const DecideCase& c) {
    CAPTURE(c.name);
    const UpgradeDecision d = decide(c.request, c.rule);
    CHECK(kind_name(d.kind) == kind_name(c.kind));
    CHECK(std::string_view(outcome_name(d.outcome)) == expected_outcome(c));
    CHECK(d.status == c.status);
    CHECK(join(d.offer) == c.offer);
    CHECK(join(d.forwarded) == c.forwarded);
    CHECK(fields_text(d.kind == Kind::respond ? d.response_fields : d.upstream_fields) == c.fields);
    CHECK(d.close == c.close);
    CHECK(d.response_body == c.body);
    if (d.kind == Kind::respond) {
        CHECK(d.upstream_fields.empty());
        CHECK(d.forwarded.empty());
        CHECK(d.websocket_accept.empty());
    } else {
        CHECK(d.response_fields.empty());
    }
    if (d.kind != Kind::plain) CHECK_FALSE(d.reason.empty());
}

TEST_CASE("upgrade policy: what is an upgrade request, and the offer") {
    const std::vector<DecideCase> cases = {
        {"plain GET", get({{"Host", "h"}}), rule({"websocket"}), Kind::plain, 0, "", "", "", false, ""},
        {"HTTP/1.0 with Upgrade and Connection: upgrade is not an upgrade request (RFC 9110 §7.8)",
         request("GET", 0, {{"Upgrade", "foo/2"}, {"Connection", "upgrade"}}), rule({"*"}),
         Kind::plain, 0, "", "", "", false, ""},
        {"Upgrade without the Connection token",
         get({{"Upgrade", "foo/2"}, {"Connection", "keep-alive"}}), rule({"*"}),
         Kind::plain, 0, "", "", "", false, ""},
        {"Upgrade without any Connection field", get({{"Upgrade", "foo/2"}}), rule({"*"}),
         Kind::plain, 0, "", "", "", false, ""},
        {"Connection: upgrade without an Upgrade field", get({{"Connection", "upgrade"}}), rule({"*"}),
         Kind::plain, 0, "", "", "", false, ""},
        {"'upgrade' must be a whole token", get({{"Upgrade", "foo/2"}, {"Connection", "upgraded, x-upgrade"}}),
         rule({"*"}), Kind::plain, 0, "", "", "", false, ""},
        {"token in the second of two Connection lines",
         get({{"Connection", "keep-alive"}, {"Upgrade", "foo/2"}, {"connection", "Upgrade"}}), rule({"foo"}),
         Kind::forward, 0, "foo/2", "foo/2", "Upgrade: foo/2\nConnection: Upgrade", false, ""},
        {"Upgrade list split over several lines",
         get({{"Upgrade", "a/1"}, {"Connection", "upgrade"}, {"Upgrade", "foo/2, bar"}, {"UPGRADE", "baz"}}),
         rule({"foo", "bar", "baz"}), Kind::forward, 0, "a/1|foo/2|bar|baz", "foo/2|bar|baz",
         "Upgrade: foo/2, bar, baz\nConnection: Upgrade", false, ""},
        {"odd whitespace and case",
         get({{"upgrade", "  WebSocket "}, {"CONNECTION", "keep-alive ,  UPGRADE"},
              {"sec-websocket-key", std::string(kKey)}, {"SEC-WEBSOCKET-VERSION", "13"}}),
         rule({"websocket"}), Kind::forward, 0, "WebSocket", "WebSocket",
         "Upgrade: WebSocket\nConnection: Upgrade", false, ""},
        {"empty list elements are ignored",
         get({{"Upgrade", ", ,foo/2,"}, {"Connection", ",,upgrade, ,"}}), rule({"foo/2"}),
         Kind::forward, 0, "foo/2", "foo/2", "Upgrade: foo/2\nConnection: Upgrade", false, ""},
        {"tab as whitespace", get({{"Upgrade", "foo/2\t,\tbar"}, {"Connection", "\tupgrade"}}),
         rule({"bar"}), Kind::forward, 0, "foo/2|bar", "bar", "Upgrade: bar\nConnection: Upgrade", false, ""},
        {"an empty Upgrade field is an upgrade request offering nothing",
         get({{"Upgrade", ""}, {"Connection", "upgrade"}}), rule({"*"}),
         Kind::strip, 0, "", "", "", false, ""},
    };
    for (const DecideCase& c : cases) check_decision(c);
}

TEST_CASE("upgrade policy: filtering the offer against the allow list") {
    const std::vector<DecideCase> cases = {
        {"the contract's example: example/1 dropped, foo/2 forwarded",
         get({{"Upgrade", "example/1, foo/2"}, {"Connection", "upgrade"}}), rule({"foo/2"}),
         Kind::forward, 0, "example/1|foo/2", "foo/2", "Upgrade: foo/2\nConnection: Upgrade", false, ""},
        {"allow foo/2: foo/1 dropped, foo/2 and FOO/2 kept as spelled",
         get({{"Upgrade", "foo/1, foo/2, FOO/2, foo"}, {"Connection", "upgrade"}}), rule({"foo/2"}),
         Kind::forward, 0, "foo/1|foo/2|FOO/2|foo", "foo/2|FOO/2",
         "Upgrade: foo/2, FOO/2\nConnection: Upgrade", false, ""},
        {"allow foo: every version of foo, not foobar",
         get({{"Upgrade", "foo/1, foobar, foo/2, Foo"}, {"Connection", "upgrade"}}), rule({"foo"}),
         Kind::forward, 0, "foo/1|foobar|foo/2|Foo", "foo/1|foo/2|Foo",
         "Upgrade: foo/1, foo/2, Foo\nConnection: Upgrade", false, ""},
        {"order of the offer kept, not of the allow list",
         get({{"Upgrade", "b, a"}, {"Connection", "upgrade"}}), rule({"a", "b"}),
         Kind::forward, 0, "b|a", "b|a", "Upgrade: b, a\nConnection: Upgrade", false, ""},
        {"* allows foo/2 but not h2c",
         get({{"Upgrade", "h2c, foo/2"}, {"Connection", "Upgrade, HTTP2-Settings"},
              {"HTTP2-Settings", std::string(kSettings)}}),
         rule({"*"}), Kind::forward, 0, "h2c|foo/2", "foo/2", "Upgrade: foo/2\nConnection: Upgrade", false, ""},
        {"* alone never forwards h2c",
         get({{"Upgrade", "h2c"}, {"Connection", "Upgrade, HTTP2-Settings"},
              {"HTTP2-Settings", std::string(kSettings)}}),
         rule({"*"}), Kind::strip, 0, "h2c", "", "", false, ""},
        {"* does not allow a versioned h2c either",
         get({{"Upgrade", "H2C/1"}, {"Connection", "upgrade"}, {"HTTP2-Settings", std::string(kSettings)}}),
         rule({"*"}), Kind::strip, 0, "H2C/1", "", "", false, ""},
        {"elements that are not protocols are never allowed, even by *",
         get({{"Upgrade", "\"foo\", foo bar, a/b/c, /1, foo/"}, {"Connection", "upgrade"}}), rule({"*"}),
         Kind::strip, 0, "\"foo\"|foo bar|a/b/c|/1|foo/", "", "", false, ""},
        {"empty allow list strips every offer",
         get({{"Upgrade", "websocket"}, {"Connection", "upgrade"}}), rule({}),
         Kind::strip, 0, "websocket", "", "", false, ""},
        {"a disallowed websocket offer is stripped, its handshake not checked",
         request("POST", 1, websocket_fields({}, false, false)), rule({"foo"}),
         Kind::strip, 0, "websocket", "", "", false, ""},
    };
    for (const DecideCase& c : cases) check_decision(c);
}

TEST_CASE("upgrade policy: h2c needs exactly one HTTP2-Settings (RFC 7540 §3.2.1)") {
    const HeaderList h2c = {{"Upgrade", "h2c"}, {"Connection", "Upgrade, HTTP2-Settings"}};
    auto with = [&](HeaderList extra, std::string_view upgrade = "h2c") {
        HeaderList fields = h2c;
        fields[0].value = std::string(upgrade);
        fields.insert(fields.end(), extra.begin(), extra.end());
        return get(std::move(fields));
    };
    const HeaderField settings{"HTTP2-Settings", std::string(kSettings)};
    const std::vector<DecideCase> cases = {
        {"h2c allowed, one HTTP2-Settings: kept first, named in Connection", with({settings}), rule({"h2c"}),
         Kind::forward, 0, "h2c", "h2c",
         "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\nUpgrade: h2c\nConnection: Upgrade, HTTP2-Settings", false, ""},
        {"h2c allowed as h2c/x with * beside it", with({{"http2-settings", "AA"}}, "foo, h2c"), rule({"*", "H2C"}),
         Kind::forward, 0, "foo|h2c", "foo|h2c",
         "HTTP2-Settings: AA\nUpgrade: foo, h2c\nConnection: Upgrade, HTTP2-Settings", false, ""},
        {"h2c allowed, no HTTP2-Settings: dropped, stripped", with({}), rule({"h2c"}),
         Kind::strip, 0, "h2c", "", "", false, ""},
        {"h2c allowed, two HTTP2-Settings: dropped, stripped", with({settings, settings}), rule({"h2c"}),
         Kind::strip, 0, "h2c", "", "", false, ""},
        {"h2c dropped for lack of settings, foo still forwarded", with({}, "h2c, foo"), rule({"h2c", "foo"}),
         Kind::forward, 0, "h2c|foo", "foo", "Upgrade: foo\nConnection: Upgrade", false, ""},
        {"h2c dropped for lack of settings under reject: 403 names it", with({}), reject({"h2c"}),
         Kind::respond, 403, "h2c", "", "", true, "upgrade refused: h2c\n"},
        {"h2c not allowed: its settings do not matter", with({settings}), rule({"websocket"}),
         Kind::strip, 0, "h2c", "", "", false, ""},
    };
    for (const DecideCase& c : cases) check_decision(c);
}

TEST_CASE("upgrade policy: the websocket profile (RFC 6455 §4.2.1, §4.4)") {
    const std::string accept_header = "Upgrade: websocket\nConnection: Upgrade";
    const std::string v13(kVersion426Fields);
    auto ws = [](std::string_view key, HeaderList extra = {}) {
        HeaderList fields = websocket_fields(std::move(extra), false);
        fields.push_back({"Sec-WebSocket-Key", std::string(key)});
        return get(std::move(fields));
    };
    auto version = [](HeaderList versions) { return get(websocket_fields(std::move(versions), true, false)); };
    const std::vector<DecideCase> cases = {
        {"good handshake", get(websocket_fields()), rule({"websocket"}),
         Kind::forward, 0, "websocket", "websocket", accept_header, false, ""},
        {"good handshake, versioned offer, key with OWS", ws(" dGhlIHNhbXBsZSBub25jZQ== ", {}),
         rule({"websocket"}), Kind::forward, 0, "websocket", "websocket", accept_header, false, ""},
        {"method other than GET", request("POST", 1, websocket_fields()), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: WebSocket handshake must use GET\n"},
        {"lower-case method (methods are case-sensitive)", request("get", 1, websocket_fields()),
         rule({"websocket"}), Kind::respond, 400, "websocket", "", "", true,
         "400 Bad Request: WebSocket handshake must use GET\n"},
        {"missing key", get(websocket_fields({}, false)), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: missing Sec-WebSocket-Key\n"},
        {"duplicate key", get(websocket_fields({{"Sec-WebSocket-Key", std::string(kKey)}})), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: duplicate Sec-WebSocket-Key\n"},
        {"short key (10 bytes)", ws("dGhlIHNhbXBsZQ=="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"key of 17 bytes", ws("dGhlIHNhbXBsZSBub25jZWE="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"key with a character outside base64", ws("dGhlIHNhbXBsZSBub25jZ!=="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"key in base64url", ws("dGhlIHNhbXBsZSBub25j-_=="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"key without padding", ws("dGhlIHNhbXBsZSBub25jZQ"), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"key with non-zero pad bits", ws("dGhlIHNhbXBsZSBub25jZR=="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"key with inner space", ws("dGhlIHNhbXBs ZSBub25jZ=="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"padding inside the key", ws("dGhlIHNhbXBsZSBub25j=Q=="), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"empty key", ws(""), rule({"websocket"}),
         Kind::respond, 400, "websocket", "", "", true, "400 Bad Request: invalid Sec-WebSocket-Key\n"},
        {"version 8: 426 naming 13, connection kept", version({{"Sec-WebSocket-Version", "8"}}),
         rule({"websocket"}), Kind::respond, 426, "websocket", "", v13, false,
         "426 Upgrade Required: Sec-WebSocket-Version 13\n"},
        {"missing version", version({}), rule({"websocket"}), Kind::respond, 426, "websocket", "", v13, false,
         "426 Upgrade Required: Sec-WebSocket-Version 13\n"},
        {"two version fields", version({{"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Version", "13"}}),
         rule({"websocket"}), Kind::respond, 426, "websocket", "", v13, false,
         "426 Upgrade Required: Sec-WebSocket-Version 13\n"},
        {"a version list", version({{"Sec-WebSocket-Version", "13, 8"}}), rule({"websocket"}),
         Kind::respond, 426, "websocket", "", v13, false, "426 Upgrade Required: Sec-WebSocket-Version 13\n"},
        {"bad method wins over bad version",
         request("PUT", 1, websocket_fields({{"Sec-WebSocket-Version", "8"}}, true, false)),
         rule({"websocket"}), Kind::respond, 400, "websocket", "", "", true,
         "400 Bad Request: WebSocket handshake must use GET\n"},
        {"websocket forwarded beside another protocol: the profile still applies",
         request("POST", 1, {{"Upgrade", "foo, websocket"}, {"Connection", "upgrade"}}), rule({"*"}),
         Kind::respond, 400, "foo|websocket", "", "", true, "400 Bad Request: WebSocket handshake must use GET\n"},
    };
    for (const DecideCase& c : cases) check_decision(c);
}

TEST_CASE("upgrade policy: websocket_accept") {
    const UpgradeDecision d = decide(get(websocket_fields()), rule({"websocket"}));
    CHECK(d.websocket_accept == kAccept);
    const UpgradeDecision other = decide(get(websocket_fields()), rule({"foo"}));
    CHECK(other.websocket_accept.empty());

    struct Case {
        std::string_view key;
        std::string_view accept;
    };
    const std::vector<Case> cases = {
        {kKey, kAccept},                                                  // RFC 6455 §1.3
        {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
        {"", "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w="},                             // SHA-1 of the GUID
    };
    for (const Case& c : cases) {
        CAPTURE(c.key);
        CHECK(websocket_accept_for(c.key) == c.accept);
    }
}

TEST_CASE("upgrade policy: reject, strip and require") {
    const HeaderList disallowed = {{"Upgrade", "example/1, foo/2"}, {"Connection", "upgrade"}};
    const HeaderList allowed = {{"Upgrade", "foo/2"}, {"Connection", "upgrade"}};
    const std::string_view require_fields = "Upgrade: websocket\nConnection: Upgrade";
    const std::string_view require_body = "426 Upgrade Required\n";
    const std::vector<DecideCase> cases = {
        {"strip (default): disallowed offer forwarded as an ordinary request", get(disallowed),
         rule({"websocket"}),
         Kind::strip, 0, "example/1|foo/2", "", "", false, ""},
        {"reject: 403 naming the refused protocols, close", get(disallowed), reject({"websocket"}),
         Kind::respond, 403, "example/1|foo/2", "", "", true, "upgrade refused: example/1, foo/2\n"},
        {"reject with an empty offer", get({{"Upgrade", ","}, {"Connection", "upgrade"}}), reject({"*"}),
         Kind::respond, 403, "", "", "", true, "upgrade refused: (empty offer)\n"},
        {"reject: a plain request is not refused", get({}), reject({"websocket"}),
         Kind::plain, 0, "", "", "", false, ""},
        {"reject: HTTP/1.0 upgrade is a plain request", request("GET", 0, disallowed), reject({"websocket"}),
         Kind::plain, 0, "", "", "", false, ""},
        {"reject: an allowed upgrade is forwarded", get(allowed), reject({"foo"}),
         Kind::forward, 0, "foo/2", "foo/2", "Upgrade: foo/2\nConnection: Upgrade", false, ""},
        {"require: plain request gets 426 naming the allow list", get({}), require({"websocket"}),
         Kind::respond, 426, "", "", require_fields, false, require_body},
        {"require: stripped offer gets 426", get(disallowed), require({"websocket"}),
         Kind::respond, 426, "example/1|foo/2", "", require_fields, false, require_body},
        {"require: upgrade request without the Connection token gets 426",
         get({{"Upgrade", "websocket"}}), require({"websocket"}),
         Kind::respond, 426, "", "", require_fields, false, require_body},
        {"require: HTTP/1.0 gets 426", request("GET", 0, allowed), require({"websocket"}),
         Kind::respond, 426, "", "", require_fields, false, require_body},
        {"require: allowed upgrade forwarded", get(allowed), require({"foo/2"}),
         Kind::forward, 0, "foo/2", "foo/2", "Upgrade: foo/2\nConnection: Upgrade", false, ""},
        {"require + reject: disallowed offer gets 403 (reject wins)", get(disallowed),
         require({"websocket"}, OnDisallowed::reject),
         Kind::respond, 403, "example/1|foo/2", "", "", true, "upgrade refused: example/1, foo/2\n"},
        {"require + reject: plain request gets 426", get({}), require({"websocket"}, OnDisallowed::reject),
         Kind::respond, 426, "", "", require_fields, false, require_body},
        {"require: the whole allow list, as written", get({}), require({"websocket", "foo/2"}),
         Kind::respond, 426, "", "", "Upgrade: websocket, foo/2\nConnection: Upgrade", false, require_body},
        {"require: * names no protocol", get({}), require({"*", "foo"}),
         Kind::respond, 426, "", "", "Upgrade: foo\nConnection: Upgrade", false, require_body},
        // Unreachable from a file (the config check refuses require with only "*"): an
        // empty Upgrade cannot be sent, so the field is left out.
        {"require: nothing to name, no Upgrade field", get({}), require({"*"}),
         Kind::respond, 426, "", "", "", false, require_body},
        {"require: websocket version mismatch is the profile's 426", version_mismatch_request(),
         require({"websocket"}), Kind::respond, 426, "websocket", "", kVersion426Fields, false,
         "426 Upgrade Required: Sec-WebSocket-Version 13\n"},
    };
    for (const DecideCase& c : cases) check_decision(c);
}

// A decision as decide() returns it for a forwarded offer.
UpgradeDecision forwarding(std::vector<std::string> forwarded, std::string_view accept = "") {
    UpgradeDecision d;
    d.kind = Kind::forward;
    d.offer = forwarded;
    d.forwarded = std::move(forwarded);
    d.websocket_accept = std::string(accept);
    return d;
}
UpgradeDecision not_forwarding(Kind kind) {
    UpgradeDecision d;
    d.kind = kind;
    d.offer = {"websocket"};
    return d;
}

TEST_CASE("upgrade policy: validate_switch") {
    struct Case {
        std::string_view name;
        UpgradeDecision decision;
        MessageHead response;
        bool accept;
        std::string_view reason;     // exact; empty when accepted
        std::string_view protocols;  // joined with "|"
    };
    const HeaderList ws101 = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                              {"Sec-WebSocket-Accept", std::string(kAccept)}};
    const UpgradeDecision ws = forwarding({"websocket"}, kAccept);
    const HeaderField sec_accept{"Sec-WebSocket-Accept", std::string(kAccept)};
    const std::vector<Case> cases = {
        {"unsolicited: decision plain", not_forwarding(Kind::plain), response(101, ws101),
         false, "unsolicited 101", ""},
        {"unsolicited: decision strip", not_forwarding(Kind::strip), response(101, ws101),
         false, "unsolicited 101", ""},
        {"unsolicited: decision respond", not_forwarding(Kind::respond), response(101, ws101),
         false, "unsolicited 101", ""},
        {"not a 101", forwarding({"foo/2"}), response(200, {{"Upgrade", "foo/2"}}), false, "not a 101", ""},
        {"no Upgrade", forwarding({"foo/2"}), response(101, {{"Connection", "Upgrade"}}),
         false, "101 without Upgrade", ""},
        {"empty Upgrade", forwarding({"foo/2"}), response(101, {{"Upgrade", " , "}, {"Connection", "Upgrade"}}),
         false, "101 with an empty Upgrade", ""},
        {"mismatched protocol", forwarding({"foo/2"}), response(101, {{"Upgrade", "bar"}}),
         false, "101 names protocol 'bar' that was not offered", ""},
        {"partially matching list", forwarding({"foo/2"}), response(101, {{"Upgrade", "foo/2, bar/1"}}),
         false, "101 names protocol 'bar/1' that was not offered", ""},
        {"partially matching list over two lines", forwarding({"foo/2"}),
         response(101, {{"Upgrade", "foo/2"}, {"Upgrade", "bar/1"}}),
         false, "101 names protocol 'bar/1' that was not offered", ""},
        {"a protocol offered by the client but not forwarded", forwarding({"foo/2"}),
         response(101, {{"Upgrade", "example/1"}}), false,
         "101 names protocol 'example/1' that was not offered", ""},
        {"other version than forwarded", forwarding({"foo/2"}), response(101, {{"Upgrade", "foo/3"}}),
         false, "101 names protocol 'foo/3' that was not offered", ""},
        {"versioned answer to a versionless offer", forwarding({"foo"}), response(101, {{"Upgrade", "foo/2"}}),
         false, "101 names protocol 'foo/2' that was not offered", ""},
        {"* is not a protocol", forwarding({"foo/2"}), response(101, {{"Upgrade", "*"}}),
         false, "101 names protocol '*' that was not offered", ""},
        {"exact match", forwarding({"foo/2"}), response(101, {{"Upgrade", "foo/2"}}), true, "", "foo/2"},
        {"versionless match", forwarding({"bar", "foo/2"}), response(101, {{"Upgrade", "foo"}}), true, "", "foo"},
        {"case-insensitive match", forwarding({"foo/2"}), response(101, {{"upgrade", "FOO/2"}}),
         true, "", "FOO/2"},
        {"several protocols, several lines, all forwarded", forwarding({"a", "b/1"}),
         response(101, {{"Upgrade", "a,"}, {"Upgrade", " b/1"}}), true, "", "a|b/1"},
        {"websocket with the right accept", ws, response(101, ws101), true, "", "websocket"},
        {"websocket, other case, accept name in lower case", ws,
         response(101, {{"Upgrade", "WebSocket"}, {"sec-websocket-accept", std::string(kAccept)}}),
         true, "", "WebSocket"},
        {"websocket with a wrong accept", ws,
         response(101, {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="}}),
         false, "bad Sec-WebSocket-Accept", ""},
        {"websocket accept compared case-sensitively", ws,
         response(101, {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", "S3PPLMBITXAQ9KYGZZHZRBK+XOO="}}),
         false, "bad Sec-WebSocket-Accept", ""},
        {"websocket without accept", ws, response(101, {{"Upgrade", "websocket"}}),
         false, "bad Sec-WebSocket-Accept", ""},
        {"websocket with two accepts", ws, response(101, {{"Upgrade", "websocket"}, sec_accept, sec_accept}),
         false, "bad Sec-WebSocket-Accept", ""},
        {"websocket with an empty accept", forwarding({"websocket"}, ""),
         response(101, {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", ""}}),
         false, "bad Sec-WebSocket-Accept", ""},
        {"no accept needed when the switch is not to websocket", forwarding({"websocket", "foo"}, kAccept),
         response(101, {{"Upgrade", "foo"}}), true, "", "foo"},
        {"h2c accepted", forwarding({"h2c"}), response(101, {{"Upgrade", "h2c"}, {"Connection", "Upgrade"}}),
         true, "", "h2c"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        const SwitchVerdict v = validate_switch(c.decision, c.response);
        CHECK(v.accept == c.accept);
        CHECK(v.reason == c.reason);
        CHECK(join(v.protocols) == c.protocols);
    }
}

TEST_CASE("upgrade policy: decide then validate_switch") {
    const UpgradeDecision ws = decide(get(websocket_fields()), rule({"websocket"}));
    REQUIRE(ws.kind == Kind::forward);
    const SwitchVerdict ok = validate_switch(
        ws, response(101, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                           {"Sec-WebSocket-Accept", websocket_accept_for(kKey)}}));
    CHECK(ok.accept);

    const UpgradeDecision h2c = decide(
        get({{"Upgrade", "h2c"}, {"Connection", "Upgrade, HTTP2-Settings"}, {"HTTP2-Settings", "AA"}}),
        rule({"h2c"}));
    REQUIRE(h2c.kind == Kind::forward);
    CHECK(validate_switch(h2c, response(101, {{"Upgrade", "h2c"}})).accept);

    // The contract's example: only foo/2 went upstream, so a 101 to example/1 is refused.
    const UpgradeDecision example =
        decide(get({{"Upgrade", "example/1, foo/2"}, {"Connection", "upgrade"}}), rule({"foo/2"}));
    CHECK_FALSE(validate_switch(example, response(101, {{"Upgrade", "example/1"}})).accept);
    CHECK(validate_switch(example, response(101, {{"Upgrade", "foo/2"}})).accept);
}

TEST_CASE("upgrade policy: filter_upgrade_field for a backend's 426") {
    struct Case {
        std::string_view name;
        HeaderList fields;
        UpgradeConfig rule;
        std::string_view expected;
    };
    const std::vector<Case> cases = {
        {"no Upgrade field", {{"Content-Length", "0"}}, rule({"*"}), ""},
        {"allowed kept, others dropped", {{"Upgrade", "websocket, foo/2"}}, rule({"websocket"}), "websocket"},
        {"nothing allowed", {{"Upgrade", "foo/2"}}, rule({"websocket"}), ""},
        {"empty allow list", {{"Upgrade", "websocket"}}, rule({}), ""},
        {"* drops h2c", {{"Upgrade", "h2c, foo/2"}}, rule({"*"}), "foo/2"},
        {"h2c named explicitly", {{"Upgrade", "h2c, foo/2"}}, rule({"h2c"}), "h2c"},
        {"versions, spelling kept", {{"Upgrade", "foo/1, FOO/2"}}, rule({"foo/2"}), "FOO/2"},
        {"several lines, empty elements, OWS", {{"Upgrade", " a ,, "}, {"upgrade", "b/1 ,c"}},
         rule({"a", "c", "b"}), "a, b/1, c"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(filter_upgrade_field(response(426, c.fields), c.rule) == c.expected);
    }
}

TEST_SUITE_END();

}  // namespace
}  // namespace sy
