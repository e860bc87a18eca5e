#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "parser/tokens.hpp"

using namespace sy;

TEST_CASE("iequals, to_lower, trim_ows") {
    CHECK(iequals("Upgrade", "uPGRADE"));
    CHECK(iequals("", ""));
    CHECK_FALSE(iequals("upgrade", "upgrades"));
    CHECK_FALSE(iequals("a", "b"));
    // Only ASCII letters fold: '@' / '`', '[' / '{' and bytes above 0x7f differ by 0x20 too.
    CHECK_FALSE(iequals("@", "`"));
    CHECK_FALSE(iequals("[", "{"));
    CHECK_FALSE(iequals("\xc3", "\xe3"));
    CHECK(iequals("X-\xc3\x84", "x-\xc3\x84"));
    CHECK(to_lower("WebSocket/13") == "websocket/13");
    CHECK(trim_ows(" \t a b \t ") == "a b");
    CHECK(trim_ows(" \t ").empty());
    CHECK(trim_ows("x") == "x");
}

TEST_CASE("split_list") {
    struct Case {
        const char* input;
        std::vector<std::string> expected;
    };
    const std::vector<Case> cases = {
        {"", {}},
        {"a", {"a"}},
        {"a,b", {"a", "b"}},
        {" a , b ,c ", {"a", "b", "c"}},
        {"a,,b", {"a", "b"}},
        {",, a ,\t,", {"a"}},
        {"\t", {}},
        {"keep-alive, Upgrade", {"keep-alive", "Upgrade"}},
        {"websocket, h2c/1.0 ", {"websocket", "h2c/1.0"}},
        {R"(a="x,y", b)", {R"(a="x,y")", "b"}},
        {R"("a\",b", c)", {R"("a\",b")", "c"}},
        {R"(x;q="1,2",y)", {R"(x;q="1,2")", "y"}},
        {R"("unterminated, a)", {R"("unterminated, a)"}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.input);
        const std::vector<std::string_view> got = split_list(c.input);
        std::vector<std::string> got_strings(got.begin(), got.end());
        CHECK(got_strings == c.expected);
    }
}

TEST_CASE("list_has_token") {
    struct Case {
        const char* value;
        const char* token;
        bool expected;
    };
    const std::vector<Case> cases = {
        {"Upgrade", "upgrade", true},
        {"keep-alive, UPGRADE", "upgrade", true},
        {"keep-alive,upgrade ", "upgrade", true},
        {"upgrades", "upgrade", false},
        {"", "upgrade", false},
        {R"("upgrade, x")", "upgrade", false},
        {"close", "close", true},
    };
    for (const Case& c : cases) {
        CAPTURE(c.value);
        CAPTURE(c.token);
        CHECK(list_has_token(c.value, c.token) == c.expected);
    }
}

TEST_CASE("collect_list, count_fields, find_field") {
    const HeaderList headers = {
        {"Upgrade", "websocket"},
        {"Host", "a"},
        {"upgrade", " h2c , , foo/2"},
        {"X", ""},
    };
    const std::vector<std::string_view> offer = collect_list(headers, "UPGRADE");
    CHECK(std::vector<std::string>(offer.begin(), offer.end()) ==
          std::vector<std::string>{"websocket", "h2c", "foo/2"});
    CHECK(collect_list(headers, "missing").empty());
    CHECK(count_fields(headers, "upgrade") == 2);
    CHECK(count_fields(headers, "host") == 1);
    CHECK(count_fields(headers, "nope") == 0);
    REQUIRE(find_field(headers, "HOST") != nullptr);
    CHECK(find_field(headers, "HOST")->value == "a");
    CHECK(find_field(headers, "upgrade") == &headers[0]);
    CHECK(find_field(headers, "nope") == nullptr);
}

TEST_CASE("is_tchar") {
    for (char c : std::string("!#$%&'*+-.^_`|~09azAZ")) {
        CAPTURE(c);
        CHECK(is_tchar(c));
    }
    for (char c : std::string(" \t\"(),/:;<=>?@[\\]{}\x7f\r\n")) {
        CAPTURE(static_cast<int>(c));
        CHECK_FALSE(is_tchar(c));
    }
    CHECK_FALSE(is_tchar('\0'));
    CHECK_FALSE(is_tchar(static_cast<char>(0xc3)));
}

TEST_CASE("field_id classifies the names the proxy looks at, in any case") {
    struct Case {
        const char* name;
        sy::FieldId id;
    };
    const std::vector<Case> cases = {
        {"Host", sy::FieldId::host},
        {"HOST", sy::FieldId::host},
        {"connection", sy::FieldId::connection},
        {"Upgrade", sy::FieldId::upgrade},
        {"Keep-Alive", sy::FieldId::keep_alive},
        {"Proxy-Connection", sy::FieldId::proxy_connection},
        {"TE", sy::FieldId::te},
        {"Transfer-Encoding", sy::FieldId::transfer_encoding},
        {"Content-Length", sy::FieldId::content_length},
        {"Proxy-Authenticate", sy::FieldId::proxy_authenticate},
        {"Proxy-Authorization", sy::FieldId::proxy_authorization},
        {"X-Forwarded-For", sy::FieldId::x_forwarded_for},
        {"x-forwarded-proto", sy::FieldId::x_forwarded_proto},
        {"Via", sy::FieldId::via},
        {"HTTP2-Settings", sy::FieldId::http2_settings},
        {"Sec-WebSocket-Key", sy::FieldId::sec_websocket_key},
        {"Sec-WebSocket-Version", sy::FieldId::sec_websocket_version},
        {"Sec-WebSocket-Accept", sy::FieldId::sec_websocket_accept},
        {"Hosts", sy::FieldId::other},
        {"Hos", sy::FieldId::other},
        {"X-Forwarded-Fox", sy::FieldId::other},
        {"Connectio_", sy::FieldId::other},
        {"", sy::FieldId::other},
        {"Te-", sy::FieldId::other},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(sy::field_id(c.name) == c.id);
    }
}

TEST_CASE("lookups agree for parsed (classified) and hand-built (unclassified) fields") {
    sy::HeaderList parsed = {{"Host", "a", sy::FieldId::host}, {"X-Other", "b", sy::FieldId::other},
                             {"UPGRADE", "ws", sy::FieldId::upgrade}};
    sy::HeaderList built = {{"Host", "a"}, {"X-Other", "b"}, {"UPGRADE", "ws"}};
    for (const sy::HeaderList* list : {&parsed, &built}) {
        CHECK(sy::count_fields(*list, "host") == 1);
        CHECK(sy::count_fields(*list, "upgrade") == 1);
        CHECK(sy::count_fields(*list, "x-other") == 1);
        CHECK(sy::count_fields(*list, "connection") == 0);
        REQUIRE(sy::find_field(*list, "Upgrade") != nullptr);
        CHECK(sy::find_field(*list, "Upgrade")->value == "ws");
    }
}

TEST_CASE("field_name spells every known FieldId so that field_id reads it back") {
    for (int i = static_cast<int>(sy::FieldId::host); i <= static_cast<int>(sy::FieldId::sec_websocket_accept); ++i) {
        const auto id = static_cast<sy::FieldId>(i);
        CAPTURE(i);
        CHECK(sy::field_id(sy::field_name(id)) == id);
    }
    CHECK(sy::field_name(sy::FieldId::unknown).empty());
    CHECK(sy::field_name(sy::FieldId::other).empty());
}

TEST_CASE("lookups by FieldId agree with lookups by name, for parsed and hand-built fields") {
    sy::HeaderList parsed = {{"Connection", "keep-alive", sy::FieldId::connection},
                             {"Host", "a", sy::FieldId::host},
                             {"connection", "Upgrade, x", sy::FieldId::connection},
                             {"X-Other", "b", sy::FieldId::other}};
    sy::HeaderList built = {{"Connection", "keep-alive"}, {"Host", "a"}, {"connection", "Upgrade, x"}, {"X-Other", "b"}};
    for (const sy::HeaderList* list : {&parsed, &built}) {
        CHECK(sy::count_fields(*list, sy::FieldId::connection) == 2);
        CHECK(sy::count_fields(*list, sy::FieldId::host) == 1);
        CHECK(sy::count_fields(*list, sy::FieldId::upgrade) == 0);
        CHECK(sy::find_field(*list, sy::FieldId::upgrade) == nullptr);
        REQUIRE(sy::find_field(*list, sy::FieldId::connection) != nullptr);
        CHECK(sy::find_field(*list, sy::FieldId::connection)->value == "keep-alive");
        CHECK(sy::collect_list(*list, sy::FieldId::connection) ==
              std::vector<std::string_view>{"keep-alive", "Upgrade", "x"});
        CHECK(sy::collect_list(*list, sy::FieldId::connection) == sy::collect_list(*list, "CONNECTION"));
    }
    // A field a parser classified as `other` is never a known name, whatever its spelling.
    sy::HeaderList odd = {{"Host", "a", sy::FieldId::other}};
    CHECK(sy::find_field(odd, sy::FieldId::host) == nullptr);
}
