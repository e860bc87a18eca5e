#include "parser/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace sy {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::size_t kV1Max = 107;  // "PROXY TCP6 " + two full IPv6 + two ports + CRLF
constexpr std::string_view kV2Signature("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

ProxyHeader fail(const char* reason) {
    ProxyHeader h;
    h.status = ProxyHeader::Status::error;
    h.reason = reason;
    return h;
}

// A port: 1 to 5 digits, no leading zero (but "0"), at most 65535.
bool parse_port(std::string_view s, std::uint16_t* port) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535) return false;
    *port = static_cast<std::uint16_t>(v);
    return true;
}

bool parse_ip(std::string_view s, ProxyAddress::Family family, ProxyAddress* out) {
    if (s.empty() || s.size() > 45) return false;
    char text[46];
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    out->family = family;
    return inet_pton(family == ProxyAddress::Family::ipv4 ? AF_INET : AF_INET6, text, out->ip.data()) == 1;
}

ProxyHeader parse_v1(std::string_view data) {
    const std::size_t crlf = data.find("\r\n");
    if (crlf == std::string_view::npos) {
        if (data.size() >= kV1Max) return fail("PROXY v1 line over 107 bytes");
        if (data.find('\n') != std::string_view::npos) return fail("PROXY v1 line without CRLF");
        return ProxyHeader{};
    }
    if (crlf + 2 > kV1Max) return fail("PROXY v1 line over 107 bytes");
    const std::string_view line = data.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
    ProxyHeader h;
    h.version = 1;
    h.length = crlf + 2;
    if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) {
        h.status = ProxyHeader::Status::ok;  // the rest of an UNKNOWN line is ignored (spec 2.1)
        return h;
    }
    // TCP4|TCP6 SP src SP dst SP sport SP dport, single spaces.
    std::array<std::string_view, 5> f;
    std::size_t pos = 0;
    for (std::size_t i = 0; i < f.size(); ++i) {
        const std::size_t sp = i + 1 < f.size() ? line.find(' ', pos) : line.size();
        if (sp == std::string_view::npos) return fail("PROXY v1 line with too few fields");
        f[i] = line.substr(pos, sp - pos);
        pos = sp + 1;
    }
    if (pos <= line.size()) return fail("PROXY v1 line with too many fields");
    ProxyAddress::Family family;
    if (f[0] == "TCP4") {
        family = ProxyAddress::Family::ipv4;
    } else if (f[0] == "TCP6") {
        family = ProxyAddress::Family::ipv6;
    } else {
        return fail("PROXY v1 protocol neither TCP4, TCP6 nor UNKNOWN");
    }
    if (!parse_ip(f[1], family, &h.source) || !parse_ip(f[2], family, &h.destination)) {
        return fail("PROXY v1 address not of its family");
    }
    if (!parse_port(f[3], &h.source.port) || !parse_port(f[4], &h.destination.port)) {
        return fail("PROXY v1 bad port");
    }
    h.status = ProxyHeader::Status::ok;
    return h;
}

ProxyHeader parse_v2(std::string_view data) {
    if (data.size() < 16) return ProxyHeader{};
    const auto* b = reinterpret_cast<const unsigned char*>(data.data());
    if ((b[12] >> 4) != 2) return fail("PROXY v2 version is not 2");
    const unsigned command = b[12] & 0x0F;
    if (command > 1) return fail("PROXY v2 command neither LOCAL nor PROXY");
    const std::size_t len = (static_cast<std::size_t>(b[14]) << 8) | b[15];
    if (16 + len > kMaxProxyHeader) return fail("PROXY v2 header over 4096 bytes");
    const unsigned family = b[13] >> 4;
    const unsigned transport = b[13] & 0x0F;
    if (family > 3 || transport > 2) return fail("PROXY v2 unknown address family or transport");
    const std::size_t need = family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
    if (len < need) return fail("PROXY v2 length shorter than its addresses");
    if (data.size() < 16 + len) return ProxyHeader{};
    ProxyHeader h;
    h.status = ProxyHeader::Status::ok;
    h.version = 2;
    h.length = 16 + len;
    // LOCAL (the balancer speaking for itself), UNSPEC and UNIX carry no client IP.
    if (command == 0 || (family != 1 && family != 2)) return h;
    if (transport != 1) return fail("PROXY v2 transport is not STREAM");
    const unsigned char* a = b + 16;
    const std::size_t ip_len = family == 1 ? 4 : 16;
    h.source.family = h.destination.family = family == 1 ? ProxyAddress::Family::ipv4 : ProxyAddress::Family::ipv6;
    std::memcpy(h.source.ip.data(), a, ip_len);
    std::memcpy(h.destination.ip.data(), a + ip_len, ip_len);
    h.source.port = static_cast<std::uint16_t>((a[2 * ip_len] << 8) | a[2 * ip_len + 1]);
    h.destination.port = static_cast<std::uint16_t>((a[2 * ip_len + 2] << 8) | a[2 * ip_len + 3]);
    return h;
}

void put16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xFF));
}

}  // namespace

std::string ProxyAddress::ip_text() const {
    if (family == Family::none) return std::string();
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(family == Family::ipv4 ? AF_INET : AF_INET6, ip.data(), text, sizeof text) == nullptr) return {};
    return text;
}

ProxyHeader parse_proxy_header(std::string_view data) {
    // Which version: decided by the first bytes, before they are all here.
    const std::size_t v1 = std::min(data.size(), kV1Prefix.size());
    if (data.substr(0, v1) == kV1Prefix.substr(0, v1)) {
        return data.size() < kV1Prefix.size() ? ProxyHeader{} : parse_v1(data);
    }
    const std::size_t v2 = std::min(data.size(), kV2Signature.size());
    if (data.substr(0, v2) == kV2Signature.substr(0, v2)) {
        return data.size() < kV2Signature.size() ? ProxyHeader{} : parse_v2(data);
    }
    return fail("the connection does not start with a PROXY protocol header");
}

std::string proxy_header_v1(const ProxyAddress& source, const ProxyAddress& destination) {
    if (source.family == ProxyAddress::Family::none || source.family != destination.family) {
        return "PROXY UNKNOWN\r\n";
    }
    std::string out = source.family == ProxyAddress::Family::ipv4 ? "PROXY TCP4 " : "PROXY TCP6 ";
    out += source.ip_text();
    out += ' ';
    out += destination.ip_text();
    out += ' ';
    out += std::to_string(source.port);
    out += ' ';
    out += std::to_string(destination.port);
    out += "\r\n";
    return out;
}

std::string proxy_header_v2(const ProxyAddress& source, const ProxyAddress& destination) {
    std::string out(kV2Signature);
    if (source.family == ProxyAddress::Family::none || source.family != destination.family) {
        out.push_back('\x20');  // v2, LOCAL
        out.push_back('\x00');  // UNSPEC
        put16(out, 0);
        return out;
    }
    const bool v4 = source.family == ProxyAddress::Family::ipv4;
    const std::size_t ip_len = v4 ? 4 : 16;
    out.push_back('\x21');                 // v2, PROXY
    out.push_back(v4 ? '\x11' : '\x21');   // INET/INET6, STREAM
    put16(out, static_cast<std::uint16_t>(2 * ip_len + 4));
    out.append(reinterpret_cast<const char*>(source.ip.data()), ip_len);
    out.append(reinterpret_cast<const char*>(destination.ip.data()), ip_len);
    put16(out, source.port);
    put16(out, destination.port);
    return out;
}

}  // namespace sy
