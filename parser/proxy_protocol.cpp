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

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A decimal field (a port, an IPv4 byte): digits, no leading zero (spec 2.1: "to avoid any
// possible confusion with octal numbers"), at most `max`. `open`: more digits may follow.
bool decimal_ok(std::string_view f, bool open, unsigned max, std::size_t digits) {
    if (f.empty()) return open;
    if (f.size() > digits || (f.size() > 1 && f[0] == '0')) return false;
    unsigned v = 0;
    for (char c : f) {
        if (!is_digit(c)) return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v <= max;
}

// Could `f` be (open: begin) a dotted-quad IPv4 address?
bool ipv4_ok(std::string_view f, bool open) {
    std::size_t groups = 1;
    for (std::size_t at = 0;;) {
        const std::size_t dot = f.find('.', at);
        const bool last = dot == std::string_view::npos;
        if (!decimal_ok(f.substr(at, last ? std::string_view::npos : dot - at), last && open, 255, 3)) return false;
        if (last) break;
        if (++groups > 4) return false;
        at = dot + 1;
    }
    return open || groups == 4;
}

// Could `f` be (open: begin) an IPv6 address in RFC 4291 §2.2 text: groups of 1 to 4 hex
// digits between colons, at most one "::" for one or more zero groups, 8 groups in all, the
// last two possibly written as a dotted IPv4 address?
bool ipv6_ok(std::string_view f, bool open) {
    if (f.size() > 45) return false;
    const std::size_t dot = f.find('.');
    std::size_t tail_groups = 0;
    if (dot != std::string_view::npos) {
        // An IPv4 tail: after the last colon.
        const std::size_t colon = f.rfind(':', dot);
        if (colon == std::string_view::npos || !ipv4_ok(f.substr(colon + 1), open)) return false;
        f = f.substr(0, colon + 1);
        tail_groups = 2;
        if (f.size() < 2 || f[f.size() - 2] != ':') f.remove_suffix(1);  // "a:b:1.2.3.4": the colon only separates
        open = false;  // the hex part is complete
    }
    const std::size_t dc = f.find("::");
    if (f.find(":::") != std::string_view::npos) return false;
    if (dc != std::string_view::npos && f.find("::", dc + 1) != std::string_view::npos) return false;
    if (f.size() >= 2 && f[0] == ':' && f[1] != ':') return false;
    if (f.size() == 1 && f[0] == ':' && !open) return false;
    std::size_t groups = tail_groups;
    std::size_t run = 0;
    for (char c : f) {
        if (c == ':') {
            run = 0;
        } else if (is_hex(c)) {
            if (run == 0) ++groups;
            if (++run > 4) return false;
        } else {
            return false;
        }
    }
    // A colon that is not half of "::" must be followed by a group (or become "::").
    const bool dangling = !f.empty() && f.back() == ':' && !(f.size() >= 2 && f[f.size() - 2] == ':') &&
                          tail_groups == 0;
    if (dc != std::string_view::npos) {
        if (groups + (dangling ? 1 : 0) > 7) return false;
        return open || !dangling;
    }
    if (!open) return groups == 8 && !dangling;
    return dangling ? groups <= 7 : groups <= 8;
}

bool parse_ip(std::string_view s, ProxyAddress::Family family, ProxyAddress* out) {
    if (s.empty() || s.size() > 45) return false;
    if (!(family == ProxyAddress::Family::ipv4 ? ipv4_ok(s, false) : ipv6_ok(s, false))) return false;
    char text[46];
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    out->family = family;
    return inet_pton(family == ProxyAddress::Family::ipv4 ? AF_INET : AF_INET6, text, out->ip.data()) == 1;
}

bool parse_port(std::string_view s, std::uint16_t* port) {
    if (!decimal_ok(s, false, 65535, 5)) return false;
    unsigned v = 0;
    for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
    *port = static_cast<std::uint16_t>(v);
    return true;
}

// Spec 2.1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF, or "PROXY"
// SP "UNKNOWN" and anything up to the CRLF; 107 bytes at most. Checked as the bytes come:
// a line that can no longer become a header is an error at once, not at its CRLF.
ProxyHeader parse_v1(std::string_view data) {
    const std::size_t eol = data.find_first_of("\r\n", kV1Prefix.size());
    bool whole = false;   // the CRLF is here
    bool closed = false;  // the line's text is complete (its CR seen)
    std::size_t line_end = data.size();
    if (eol != std::string_view::npos) {
        if (data[eol] == '\n') return fail("PROXY v1 line ended by a lone LF");
        closed = true;
        line_end = eol;
        if (eol + 1 < data.size()) {
            if (data[eol + 1] != '\n') return fail("PROXY v1 line with a CR not followed by LF");
            whole = true;
        }
    }
    if (line_end + 2 > kV1Max) return fail("PROXY v1 line over 107 bytes");
    const std::string_view line = data.substr(kV1Prefix.size(), line_end - kV1Prefix.size());
    std::array<std::string_view, 6> f;
    std::size_t fields = 0;
    for (std::size_t at = 0;;) {
        const std::size_t sp = line.find(' ', at);
        const std::string_view field = line.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at);
        if (fields < f.size()) f[fields] = field;
        ++fields;
        if (sp == std::string_view::npos) break;
        at = sp + 1;
    }
    const auto need_more = [] { return ProxyHeader{}; };
    // The protocol: while it is all there is, it must be the beginning of one.
    if (fields == 1 && !closed) {
        for (std::string_view p : {"TCP4", "TCP6", "UNKNOWN"}) {
            if (p.starts_with(f[0])) return need_more();
        }
        return fail("PROXY v1 protocol neither TCP4, TCP6 nor UNKNOWN");
    }
    ProxyHeader h;
    h.version = 1;
    if (f[0] == "UNKNOWN") {  // the rest of an UNKNOWN line is ignored (spec 2.1)
        if (!whole) return need_more();
        h.status = ProxyHeader::Status::ok;
        h.length = line_end + 2;
        return h;
    }
    if (f[0] != "TCP4" && f[0] != "TCP6") return fail("PROXY v1 protocol neither TCP4, TCP6 nor UNKNOWN");
    const bool v4 = f[0] == "TCP4";
    if (fields > 5) return fail("PROXY v1 line with too many fields");
    if (closed && fields < 5) return fail("PROXY v1 line with too few fields");
    for (std::size_t i = 1; i < fields; ++i) {
        const bool open = !closed && i == fields - 1;  // the field being received
        bool ok;
        if (i <= 2) {
            ok = v4 ? ipv4_ok(f[i], open) : ipv6_ok(f[i], open);
        } else {
            ok = decimal_ok(f[i], open, 65535, 5);
        }
        if (!ok) return fail(i <= 2 ? "PROXY v1 address not of its family" : "PROXY v1 bad port");
    }
    if (!whole) return need_more();
    const ProxyAddress::Family family = v4 ? ProxyAddress::Family::ipv4 : ProxyAddress::Family::ipv6;
    if (!parse_ip(f[1], family, &h.source) || !parse_ip(f[2], family, &h.destination)) {
        return fail("PROXY v1 address not of its family");
    }
    if (!parse_port(f[3], &h.source.port) || !parse_port(f[4], &h.destination.port)) {
        return fail("PROXY v1 bad port");
    }
    h.status = ProxyHeader::Status::ok;
    h.length = line_end + 2;
    return h;
}

// Spec 2.2: signature, version 2, command LOCAL (0) or PROXY (1); with PROXY a known family
// and transport whose addresses fit in the length. Each byte is checked as it arrives.
ProxyHeader parse_v2(std::string_view data) {
    const auto* b = reinterpret_cast<const unsigned char*>(data.data());
    if (data.size() < 13) return ProxyHeader{};
    if ((b[12] >> 4) != 2) return fail("PROXY v2 version is not 2");
    const unsigned command = b[12] & 0x0F;
    if (command > 1) return fail("PROXY v2 command neither LOCAL nor PROXY");
    if (data.size() < 14) return ProxyHeader{};
    const unsigned family = b[13] >> 4;
    const unsigned transport = b[13] & 0x0F;
    // LOCAL: the balancer speaking for itself; whatever family it names is ignored.
    if (command == 1 && (family > 3 || transport > 2)) return fail("PROXY v2 unknown address family or transport");
    if (data.size() < 16) return ProxyHeader{};
    const std::size_t len = (static_cast<std::size_t>(b[14]) << 8) | b[15];
    if (16 + len > kMaxProxyHeader) return fail("PROXY v2 header over 4096 bytes");
    const std::size_t need = command == 0 ? 0 : family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
    if (len < need) return fail("PROXY v2 length shorter than its addresses");
    if (data.size() < 16 + len) return ProxyHeader{};
    ProxyHeader h;
    h.status = ProxyHeader::Status::ok;
    h.version = 2;
    h.length = 16 + len;
    // LOCAL, UNSPEC and UNIX carry no client IP, nor does a datagram transport (the spec lets
    // a receiver treat what it does not support as UNSPEC): the connection's own is used.
    if (command == 0 || (family != 1 && family != 2) || transport != 1) return h;
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
