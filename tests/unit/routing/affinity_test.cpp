// What of a request the balancer looks at (routing/affinity.hpp, docs/upgrades.md
// "Balancing long-lived connections"): cookies (RFC 6265 §4.2.1), query parameters, the
// hash key of each kind, and the affinity cookie's value and Set-Cookie line.
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "routing/affinity.hpp"
#include "routing/balancer.hpp"

namespace sy {
namespace {

TEST_SUITE_BEGIN("affinity");

using namespace std::chrono_literals;

// nullopt prints as "(none)" so that a mismatch reads well.
std::string shown(std::optional<std::string_view> value) {
    return value ? "'" + std::string(*value) + "'" : std::string("(none)");
}

MessageHead request(std::string target, HeaderList headers) {
    MessageHead head;
    head.method = "GET";
    head.target = std::move(target);
    head.headers = std::move(headers);
    return head;
}

// ---------------------------------------------------------------------------------------
// find_cookie

TEST_CASE("find_cookie: RFC 6265 cookie-strings") {
    struct Row {
        const char* name;
        HeaderList headers;
        std::string_view cookie;
        std::optional<std::string_view> value;
    };
    const std::vector<Row> rows = {
        {"only pair", {{"Cookie", "sy=abc"}}, "sy", "abc"},
        {"first of several", {{"Cookie", "sy=abc; lang=en; theme=dark"}}, "sy", "abc"},
        {"middle of several", {{"Cookie", "lang=en; sy=abc; theme=dark"}}, "sy", "abc"},
        {"last of several", {{"Cookie", "lang=en; theme=dark; sy=abc"}}, "sy", "abc"},
        {"no space after ;", {{"Cookie", "lang=en;sy=abc"}}, "sy", "abc"},
        {"several spaces after ;", {{"Cookie", "lang=en;   sy=abc"}}, "sy", "abc"},
        {"tab after ;", {{"Cookie", "lang=en;\tsy=abc"}}, "sy", "abc"},
        {"trailing ;", {{"Cookie", "lang=en; sy=abc;"}}, "sy", "abc"},
        {"empty value", {{"Cookie", "lang=en; sy=; x=1"}}, "sy", ""},
        {"empty value at the end", {{"Cookie", "lang=en; sy="}}, "sy", ""},
        {"value with '='", {{"Cookie", "sy=a=b; x=1"}}, "sy", "a=b"},
        {"value with '/' and ':'", {{"Cookie", "sy=a/b:c"}}, "sy", "a/b:c"},
        {"second Cookie field", {{"Cookie", "lang=en"}, {"Cookie", "sy=abc"}}, "sy", "abc"},
        {"field name in any case", {{"cookie", "sy=abc"}}, "sy", "abc"},
        {"field name upper case", {{"COOKIE", "sy=abc"}}, "sy", "abc"},
        {"among other fields", {{"Host", "a"}, {"Accept", "*/*"}, {"Cookie", "sy=abc"}, {"X-Y", "z"}}, "sy", "abc"},
        {"first occurrence wins", {{"Cookie", "sy=one; sy=two"}}, "sy", "one"},
        {"first occurrence wins across fields", {{"Cookie", "sy=one"}, {"Cookie", "sy=two"}}, "sy", "one"},
        {"names compare exactly (case)", {{"Cookie", "SY=upper; Sy=mixed; sy=lower"}}, "sy", "lower"},
        {"names compare exactly (asked upper)", {{"Cookie", "sy=lower; SY=upper"}}, "SY", "upper"},
        {"name is a prefix of another", {{"Cookie", "sy_affinity_old=old; sy_affinity=new"}}, "sy_affinity", "new"},
        {"only a longer name", {{"Cookie", "sy_affinity_old=old"}}, "sy_affinity", std::nullopt},
        {"only a name ending in it", {{"Cookie", "xsy=1; my_sy=2"}}, "sy", std::nullopt},
        {"name inside a value", {{"Cookie", "a=sy=3; b=sy"}}, "sy", std::nullopt},
        {"asked name longer than the cookie's", {{"Cookie", "sy=1"}}, "sy_affinity", std::nullopt},
        {"no match", {{"Cookie", "lang=en; theme=dark"}}, "sy", std::nullopt},
        {"no Cookie field", {{"Host", "example.com"}}, "sy", std::nullopt},
        {"no fields", {}, "sy", std::nullopt},
        {"empty Cookie field", {{"Cookie", ""}}, "sy", std::nullopt},
        {"Set-Cookie is not a request cookie", {{"Set-Cookie", "sy=abc"}}, "sy", std::nullopt},
        {"another field named like it", {{"X-Cookie", "sy=abc"}, {"Cookie2", "sy=def"}}, "sy", std::nullopt},
        {"pair without '='", {{"Cookie", "sy; lang=en"}}, "sy", std::nullopt},
    };
    for (const Row& row : rows) {
        const std::string name = row.name;
        CAPTURE(name);
        CHECK(shown(find_cookie(row.headers, row.cookie)) == shown(row.value));
    }
}

TEST_CASE("find_cookie: a quoted value (cookie-value = DQUOTE *cookie-octet DQUOTE)") {
    const HeaderList headers = {{"Cookie", "lang=en; sy=\"abc\"; x=1"}};
    const auto value = find_cookie(headers, "sy");
    REQUIRE(value.has_value());
    // RFC 6265 §4.2.1 lets the value be written with or without its quotes: the quotes
    // may be kept or removed, but the value is not cut short nor run into the next pair.
    CHECK((*value == "abc" || *value == "\"abc\""));
    CHECK(shown(find_cookie(headers, "x")) == "'1'");
    MESSAGE("find_cookie of sy=\"abc\" gives " << shown(value));
}

// ---------------------------------------------------------------------------------------
// find_query_param

TEST_CASE("find_query_param: the value as written") {
    struct Row {
        const char* name;
        std::string_view target;
        std::string_view param;
        std::optional<std::string_view> value;
    };
    const std::vector<Row> rows = {
        {"only one", "/p?room=42", "room", "42"},
        {"first of two", "/p?room=42&x=1", "room", "42"},
        {"second of two", "/p?x=1&room=42", "room", "42"},
        {"first match wins", "/p?room=42&room=43", "room", "42"},
        {"empty value", "/p?room=&x=1", "room", ""},
        {"empty value at the end", "/p?x=1&room=", "room", ""},
        {"no '=': present and empty", "/p?room&x=1", "room", ""},
        {"no '=' at the end", "/p?x=1&room", "room", ""},
        {"value with '='", "/p?room=a=b&x=1", "room", "a=b"},
        {"percent-encoding kept", "/p?room=a%20b&x=1", "room", "a%20b"},
        {"'+' kept", "/p?room=a+b", "room", "a+b"},
        {"empty pairs", "/p?&&room=42&", "room", "42"},
        {"fragment after", "/p?room=42#frag", "room", "42"},
        {"fragment after the second", "/p?x=1&room=42#frag&room=7", "room", "42"},
        {"only in the fragment", "/p?x=1#room=42", "room", std::nullopt},
        {"fragment before the query", "/p#?room=42", "room", std::nullopt},
        {"no query", "/p", "room", std::nullopt},
        {"empty query", "/p?", "room", std::nullopt},
        {"root with query", "/?room=42", "room", "42"},
        {"absolute-form target", "http://chat.example.com/p?room=42", "room", "42"},
        {"socket.io", "/socket.io/?EIO=4&transport=websocket&sid=Qx2", "sid", "Qx2"},
        {"name is a prefix of another", "/p?rooms=1&room=2", "room", "2"},
        {"only a longer name", "/p?rooms=1", "room", std::nullopt},
        {"only a name ending in it", "/p?myroom=1", "room", std::nullopt},
        {"name inside a value", "/p?x=room=5", "room", std::nullopt},
        {"in the path, not the query", "/room=5?x=1", "room", std::nullopt},
        {"names compare exactly", "/p?Room=1&room=2", "room", "2"},
        {"asked longer than given", "/p?room=1", "rooms", std::nullopt},
    };
    for (const Row& row : rows) {
        const std::string name = row.name;
        CAPTURE(name);
        CHECK(shown(find_query_param(row.target, row.param)) == shown(row.value));
    }
}

// ---------------------------------------------------------------------------------------
// balance_key

TEST_CASE("balance_key: each kind of hash_key") {
    const HashKey client_ip{HashKey::Kind::client_ip, ""};
    const HashKey header{HashKey::Kind::header, "x-tenant"};
    const HashKey cookie{HashKey::Kind::cookie, "session"};
    const HashKey query{HashKey::Kind::query, "room"};
    const MessageHead full = request("/chat?room=42&x=1", {{"Host", "chat.example.com"},
                                                           {"X-Tenant", "acme"},
                                                           {"Cookie", "lang=en; session=s3cr3t"},
                                                           {"X-Tenant", "other"}});
    const MessageHead bare = request("/chat", {{"Host", "chat.example.com"}});

    struct Row {
        const char* name;
        const HashKey* key;
        const MessageHead* head;
        std::string_view client;
        std::optional<std::string_view> value;
    };
    const MessageHead padded = request("/", {{"x-tenant", "  acme \t"}});
    const MessageHead upper = request("/", {{"X-TENANT", "acme"}});
    const MessageHead v6 = request("/", {});
    const std::vector<Row> rows = {
        {"client_ip", &client_ip, &full, "192.0.2.7", "192.0.2.7"},
        {"client_ip v6", &client_ip, &v6, "2001:db8::1", "2001:db8::1"},
        {"client_ip unknown '-'", &client_ip, &full, "-", std::nullopt},
        {"client_ip empty", &client_ip, &full, "", std::nullopt},
        {"header: the first such field", &header, &full, "192.0.2.7", "acme"},
        {"header: any case of the name", &header, &upper, "192.0.2.7", "acme"},
        {"header: trimmed", &header, &padded, "192.0.2.7", "acme"},
        {"header: absent", &header, &bare, "192.0.2.7", std::nullopt},
        {"cookie", &cookie, &full, "192.0.2.7", "s3cr3t"},
        {"cookie: absent", &cookie, &bare, "192.0.2.7", std::nullopt},
        {"query", &query, &full, "192.0.2.7", "42"},
        {"query: absent", &query, &bare, "192.0.2.7", std::nullopt},
    };
    for (const Row& row : rows) {
        const std::string name = row.name;
        CAPTURE(name);
        CHECK(shown(balance_key(*row.key, *row.head, row.client)) == shown(row.value));
    }
}

// ---------------------------------------------------------------------------------------
// affinity_value, affinity_set_cookie

bool lower_hex(std::string_view text) {
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::string hex64(std::uint64_t value) {
    std::array<char, 17> text{};
    std::snprintf(text.data(), text.size(), "%016llx", static_cast<unsigned long long>(value));
    return text.data();
}

TEST_CASE("affinity_value: 16 lowercase hex digits, stable, one per server, not the address") {
    const std::uint64_t id = server_id("app", "127.0.0.1:9000");
    const std::string value = affinity_value(id);
    CHECK(value.size() == 16);
    CHECK(lower_hex(value));
    CHECK(affinity_value(id) == value);
    CHECK(affinity_value(server_id("app", "127.0.0.1:9000")) == value);
    // Another server, the same server in another upstream: another value.
    CHECK(affinity_value(server_id("app", "127.0.0.1:9001")) != value);
    CHECK(affinity_value(server_id("app", "127.0.0.2:9000")) != value);
    CHECK(affinity_value(server_id("chat", "127.0.0.1:9000")) != value);
    // It names the server without revealing it: neither the address nor the id as such.
    CHECK(value.find("127") == std::string::npos);
    CHECK(value.find("7f000001") == std::string::npos);  // 127.0.0.1
    CHECK(value.find("2328") == std::string::npos);      // 9000
    CHECK(value != hex64(id));
    CHECK(affinity_value(0) != hex64(0));
    CHECK(affinity_value(1) != hex64(1));

    // Every server of a large pool has its own value, each of the same form.
    std::set<std::string> values;
    for (int i = 0; i < 2000; ++i) {
        const std::string v = affinity_value(server_id("app", "10.2." + std::to_string(i / 250) + "." +
                                                                  std::to_string(i % 250) + ":8080"));
        CHECK(v.size() == 16);
        CHECK(lower_hex(v));
        values.insert(v);
    }
    CHECK(values.size() == 2000);
    // Neighbouring ids too.
    CHECK(affinity_value(1) != affinity_value(2));
    CHECK(affinity_value(UINT64_MAX) != affinity_value(UINT64_MAX - 1));
}

// One line of what another process computes, to compare with this one's.
std::string identities() {
    return "ids " + hex64(server_id("app", "127.0.0.1:9000")) + " " + hex64(key_hash("192.0.2.7")) + " " +
           affinity_value(server_id("chat", "[::1]:9001"));
}

TEST_CASE("affinity: values and hashes are the same in another process") {
    if (std::getenv("SY_AFFINITY_CHILD") != nullptr) {
        std::printf("%s\n", identities().c_str());
        return;
    }
    // The same binary run again: another address-space layout, another start time.
    const std::string command =
        "SY_AFFINITY_CHILD=1 /proc/" + std::to_string(::getpid()) +
        "/exe --test-case='affinity: values and hashes are the same in another process' 2>&1";
    FILE* child = ::popen(command.c_str(), "r");
    REQUIRE(child != nullptr);
    std::string output;
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), buffer.size(), child) != nullptr) output += buffer.data();
    CHECK(::pclose(child) == 0);
    CAPTURE(output);
    CHECK(output.find(identities() + "\n") != std::string::npos);
}

TEST_CASE("affinity_set_cookie: the exact Set-Cookie value") {
    struct Row {
        const char* name;
        const char* cookie;
        Millis max_age;
        std::string_view value;
        bool secure;
        std::string_view expected;
    };
    const std::vector<Row> rows = {
        {"default max_age", "sy_affinity", 1h, "4f3a9c01d2e87b65", false,
         "sy_affinity=4f3a9c01d2e87b65; Path=/; HttpOnly; Max-Age=3600"},
        {"TLS listener", "sy_affinity", 1h, "4f3a9c01d2e87b65", true,
         "sy_affinity=4f3a9c01d2e87b65; Path=/; HttpOnly; Max-Age=3600; Secure"},
        {"90 s", "srv", 90s, "0123456789abcdef", false, "srv=0123456789abcdef; Path=/; HttpOnly; Max-Age=90"},
        {"a day", "srv", 24h, "0123456789abcdef", true,
         "srv=0123456789abcdef; Path=/; HttpOnly; Max-Age=86400; Secure"},
        {"minutes in ms", "SRV_ID", Millis(120'000), "ffffffffffffffff", false,
         "SRV_ID=ffffffffffffffff; Path=/; HttpOnly; Max-Age=120"},
    };
    for (const Row& row : rows) {
        const std::string name = row.name;
        CAPTURE(name);
        StickyConfig sticky;
        sticky.cookie = row.cookie;
        sticky.max_age = row.max_age;
        CHECK(affinity_set_cookie(sticky, row.value, row.secure) == row.expected);
    }
    // The value it sets is the one find_cookie finds back.
    StickyConfig sticky;
    sticky.cookie = "sy_affinity";
    const std::string value = affinity_value(server_id("app", "127.0.0.1:9000"));
    const std::string line = affinity_set_cookie(sticky, value, false);
    const std::string pair = line.substr(0, line.find(';'));
    CHECK(shown(find_cookie({{"Cookie", "lang=en; " + pair}}, "sy_affinity")) == "'" + value + "'");
}

TEST_SUITE_END();

}  // namespace
}  // namespace sy
