// The PROXY protocol (HAProxy's specification, versions 1 and 2) that an L4 balancer puts at
// the start of each connection to say who the client is (docs/operations.md, "PROXY
// protocol"): the reader for listeners with proxy_protocol: true, and the writers for
// upstreams with proxy_protocol: v1 | v2. Pure: no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sy {

struct ProxyAddress {
    enum class Family : std::uint8_t { none, ipv4, ipv6 };
    Family family = Family::none;
    std::array<std::uint8_t, 16> ip{};  // network order; the first 4 bytes for IPv4
    std::uint16_t port = 0;
    std::string ip_text() const;        // "192.0.2.1", "2001:db8::1"; "" for none
};

struct ProxyHeader {
    enum class Status : std::uint8_t { need_more, ok, error };
    Status status = Status::need_more;
    std::size_t length = 0;   // ok: the header's bytes (what follows is the connection's data)
    int version = 0;          // 1 or 2
    // ok: the connection's true ends; family none for v1 UNKNOWN, v2 LOCAL (a balancer's own
    // health check; its family and addresses are ignored), and v2 headers that carry no TCP
    // client IP (UNSPEC, UNIX, a DGRAM transport): then the connection's own addresses are
    // used.
    ProxyAddress source;
    ProxyAddress destination;
    const char* reason = nullptr;  // error: why
};

// Reads a header at the start of `data` (everything received on the connection so far).
// need_more: a prefix of a valid header, call again with more; error: this cannot be one,
// found as soon as a byte rules it out (v1: not "PROXY ", an unknown protocol, a field that
// cannot become an address or port, too many or too few fields, a CR or LF alone, over 107
// bytes; v2: not the signature, a version other than 2, a command other than LOCAL/PROXY,
// an unknown family or transport with PROXY, a length that does not hold its addresses, over
// kMaxProxyHeader bytes). v1 IPv6 fields are fully checked once complete.
ProxyHeader parse_proxy_header(std::string_view data);
inline constexpr std::size_t kMaxProxyHeader = 4096;  // v2 with its TLVs

// Headers to send to a server: v1 text ("PROXY TCP4 ... \r\n", "PROXY UNKNOWN\r\n" when the
// families are unknown or differ) and v2 binary (PROXY command, STREAM; LOCAL when unknown).
std::string proxy_header_v1(const ProxyAddress& source, const ProxyAddress& destination);
std::string proxy_header_v2(const ProxyAddress& source, const ProxyAddress& destination);

}  // namespace sy
