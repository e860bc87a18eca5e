// What of a request the balancer looks at (docs/upgrades.md, "Balancing long-lived
// connections"): the hash key (client_ip, header:NAME, cookie:NAME, query:NAME) and the
// affinity cookie, whose value names a server without revealing its address. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "parser/message.hpp"
#include "routing/config.hpp"

namespace sy {

// The value of cookie `name` in the request's Cookie field(s) (RFC 6265 §4.2.1:
// "a=b; c=d"; names compare exactly; the first occurrence wins).
std::optional<std::string_view> find_cookie(const HeaderList& headers, std::string_view name);
// The value of query parameter `name` in a request target ("/p?a=1&b=2"), as written.
std::optional<std::string_view> find_query_param(std::string_view target, std::string_view name);
// The request's key for balance: hash; none when the request does not carry it.
std::optional<std::string_view> balance_key(const HashKey& key, const MessageHead& request, std::string_view client_ip);

// The affinity cookie's value for a server (server_id of routing/balancer.hpp): 16 hex
// digits of a one-way mix of its identity, the same in every process and instance.
std::string affinity_value(std::uint64_t server_id);
// The Set-Cookie value: NAME=VALUE; Path=/; HttpOnly; Max-Age=N (; Secure on TLS).
std::string affinity_set_cookie(const StickyConfig& sticky, std::string_view value, bool secure);

}  // namespace sy
