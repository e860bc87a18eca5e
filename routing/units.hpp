// Parsing of the configuration's value types: durations, sizes, addresses.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "routing/config.hpp"

namespace sy {

// "250ms", "10s", "5m", "1h" (also "1d"); a non-negative integer and a unit, no spaces.
std::optional<Millis> parse_duration(std::string_view text);
// "1024", "64KiB", "1MiB", "1GiB" (also "KB"/"MB"/"GB" as powers of 1000, "k"/"K" etc.
// are not accepted). Overflow is an error.
std::optional<std::size_t> parse_size(std::string_view text);
// "host:port", "[v6]:port"; port 0..65535 (0 = ephemeral, useful for tests).
std::optional<Address> parse_address(std::string_view text);

}  // namespace sy
