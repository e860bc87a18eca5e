#include "routing/units.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <limits>

namespace sy {
namespace {

struct Unit {
    std::string_view suffix;
    std::uint64_t factor;
};

constexpr std::array<Unit, 5> kDurationUnits{{
    {"ms", 1},
    {"s", 1'000},
    {"m", 60'000},
    {"h", 3'600'000},
    {"d", 86'400'000},
}};

// Plain bytes ("") and the suffixes of docs/configuration.md; "K"/"k" alone are deliberately absent.
constexpr std::array<Unit, 8> kSizeUnits{{
    {"", 1},
    {"B", 1},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"KB", 1'000},
    {"MB", 1'000'000},
    {"GB", 1'000'000'000},
}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A run of decimal digits (at least one), or nullopt when empty, not all digits, or over
// `max`.
std::optional<std::uint64_t> parse_decimal(std::string_view digits, std::uint64_t max) {
    if (digits.empty()) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    for (char c : digits) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (max - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

// "<integer><unit>" with the unit taken from `units`; the product must not exceed `max`.
template <std::size_t N>
std::optional<std::uint64_t> parse_scaled(std::string_view text,
                                          const std::array<Unit, N>& units,
                                          std::uint64_t max) {
    std::size_t digits_end = 0;
    while (digits_end < text.size() && is_digit(text[digits_end])) {
        ++digits_end;
    }
    const std::string_view suffix = text.substr(digits_end);
    for (const Unit& unit : units) {
        if (unit.suffix != suffix) {
            continue;
        }
        const auto number = parse_decimal(text.substr(0, digits_end), max);
        if (!number || *number > max / unit.factor) {
            return std::nullopt;
        }
        return *number * unit.factor;
    }
    return std::nullopt;
}

// A DNS-style name (letters, digits, '-', '_', dot-separated non-empty labels) or a
// dotted-quad IPv4 address. Anything all-numeric must be a valid IPv4 address.
bool is_valid_host(std::string_view host) {
    if (host.empty() || host.size() > 253) {
        return false;
    }
    bool numeric = true;
    std::size_t label_length = 0;
    for (char c : host) {
        if (c == '.') {
            if (label_length == 0) {
                return false;
            }
            label_length = 0;
            continue;
        }
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alpha && !is_digit(c) && c != '-' && c != '_') {
            return false;
        }
        numeric = numeric && is_digit(c);
        if (++label_length > 63) {
            return false;
        }
    }
    if (label_length == 0) {
        return false;
    }
    if (numeric) {
        in_addr v4{};
        return inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1;
    }
    return true;
}

bool is_valid_ipv6(std::string_view host) {
    if (host.empty() || host.size() >= INET6_ADDRSTRLEN) {
        return false;
    }
    in6_addr v6{};
    return inet_pton(AF_INET6, std::string(host).c_str(), &v6) == 1;
}

}  // namespace

std::optional<Millis> parse_duration(std::string_view text) {
    const auto max = static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max());
    const auto millis = parse_scaled(text, kDurationUnits, max);
    if (!millis) {
        return std::nullopt;
    }
    return Millis{static_cast<Millis::rep>(*millis)};
}

std::optional<std::size_t> parse_size(std::string_view text) {
    const auto bytes = parse_scaled(text, kSizeUnits, std::numeric_limits<std::size_t>::max());
    if (!bytes) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(*bytes);
}

std::optional<Address> parse_address(std::string_view text) {
    Address address;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        const std::string_view host = text.substr(1, close - 1);
        if (!is_valid_ipv6(host)) {
            return std::nullopt;
        }
        address.host = host;
        address.is_ipv6 = true;
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view host = text.substr(0, colon);
        if (!is_valid_host(host)) {  // also rejects a bare IPv6 address (it has colons)
            return std::nullopt;
        }
        address.host = host;
        port_text = text.substr(colon + 1);
    }
    if (port_text.size() > 5) {
        return std::nullopt;
    }
    const auto port = parse_decimal(port_text, 65535);
    if (!port) {
        return std::nullopt;
    }
    address.port = static_cast<std::uint16_t>(*port);
    return address;
}

}  // namespace sy
