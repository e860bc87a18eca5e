#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/units.hpp"

namespace sy {
namespace {

TEST_CASE("parse_duration") {
    struct Case {
        std::string_view text;
        std::optional<long long> millis;  // nullopt = invalid
    };
    const std::vector<Case> cases = {
        {"250ms", 250},
        {"0ms", 0},
        {"10s", 10'000},
        {"5m", 300'000},
        {"1h", 3'600'000},
        {"2d", 172'800'000},
        {"007s", 7'000},
        {"0s", 0},
        {"9223372036854775807ms", 9223372036854775807LL},
        {"9223372036854775808ms", std::nullopt},  // overflow
        {"9223372036854776s", std::nullopt},      // overflow after scaling
        {"", std::nullopt},
        {"10", std::nullopt},  // no unit
        {"s", std::nullopt},   // no number
        {"10 s", std::nullopt},
        {" 10s", std::nullopt},
        {"10S", std::nullopt},
        {"10sec", std::nullopt},
        {"1.5s", std::nullopt},
        {"-1s", std::nullopt},
        {"+1s", std::nullopt},
        {"10us", std::nullopt},
        {"1h30m", std::nullopt},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const auto parsed = parse_duration(c.text);
        REQUIRE(parsed.has_value() == c.millis.has_value());
        if (c.millis) {
            CHECK(parsed->count() == *c.millis);
        }
    }
}

TEST_CASE("parse_size") {
    struct Case {
        std::string_view text;
        std::optional<std::size_t> bytes;
    };
    const std::vector<Case> cases = {
        {"0", 0},
        {"1024", 1024},
        {"1B", 1},
        {"64KiB", 64 * 1024},
        {"1MiB", 1024 * 1024},
        {"1GiB", std::size_t{1} << 30},
        {"2KB", 2000},
        {"3MB", 3'000'000},
        {"1GB", 1'000'000'000},
        {"18446744073709551615", std::numeric_limits<std::size_t>::max()},
        {"18446744073709551616", std::nullopt},  // overflow
        {"17179869184GiB", std::nullopt},        // 2^64 bytes: overflow after scaling
        {"", std::nullopt},
        {"KiB", std::nullopt},
        {"64K", std::nullopt},
        {"64k", std::nullopt},
        {"64kib", std::nullopt},
        {"64 KiB", std::nullopt},
        {"1.5MiB", std::nullopt},
        {"-1", std::nullopt},
        {"0x10", std::nullopt},
        {"1TiB", std::nullopt},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const auto parsed = parse_size(c.text);
        REQUIRE(parsed.has_value() == c.bytes.has_value());
        if (c.bytes) {
            CHECK(*parsed == *c.bytes);
        }
    }
}

TEST_CASE("parse_address and Address::to_string") {
    struct Case {
        std::string_view text;
        bool valid;
        std::string_view host = {};
        std::uint16_t port = 0;
        bool is_ipv6 = false;
    };
    const std::vector<Case> cases = {
        {"127.0.0.1:8080", true, "127.0.0.1", 8080},
        {"0.0.0.0:0", true, "0.0.0.0", 0},
        {"localhost:65535", true, "localhost", 65535},
        {"backend-1.internal:9000", true, "backend-1.internal", 9000},
        {"Chat.Example.COM:80", true, "Chat.Example.COM", 80},
        {"my_host:1", true, "my_host", 1},
        {"[::1]:9001", true, "::1", 9001, true},
        {"[::]:80", true, "::", 80, true},
        {"[2001:db8::1]:443", true, "2001:db8::1", 443, true},
        {"[::ffff:127.0.0.1]:80", true, "::ffff:127.0.0.1", 80, true},
        {"127.0.0.1:008", true, "127.0.0.1", 8},
        {"127.0.0.1", false},  // missing port
        {"127.0.0.1:", false},
        {":8080", false},  // empty host
        {"localhost", false},
        {"localhost:65536", false},
        {"localhost:99999999999999999999", false},
        {"localhost:-1", false},
        {"localhost:+80", false},
        {"localhost:80x", false},
        {"local host:80", false},
        {"a..b:80", false},
        {".a:80", false},
        {"a.:80", false},
        {"256.0.0.1:80", false},
        {"1.2.3:80", false},
        {"::1:80", false},  // IPv6 needs brackets
        {"[::1]", false},
        {"[::1]80", false},
        {"[::1:80", false},
        {"::1]:80", false},
        {"[]:80", false},
        {"[nothex]:80", false},
        {"[127.0.0.1]:80", false},
        {"http://a:80", false},
        {"", false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const auto parsed = parse_address(c.text);
        REQUIRE(parsed.has_value() == c.valid);
        if (!c.valid) {
            continue;
        }
        CHECK(parsed->host == c.host);
        CHECK(parsed->port == c.port);
        CHECK(parsed->is_ipv6 == c.is_ipv6);
        if (!c.text.starts_with("127.0.0.1:0")) {  // leading zeros in the port do not survive
            CHECK(parsed->to_string() == c.text);
        }
        const auto again = parse_address(parsed->to_string());
        REQUIRE(again.has_value());
        CHECK(again->host == parsed->host);
        CHECK(again->port == parsed->port);
        CHECK(again->is_ipv6 == parsed->is_ipv6);
    }
}

}  // namespace
}  // namespace sy
