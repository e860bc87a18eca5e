// The PROXY protocol reader and writers (parser/proxy_protocol.hpp) against HAProxy's
// specification, "The PROXY protocol, Versions 1 & 2" (doc/proxy-protocol.txt in HAProxy's
// sources): §2.1 the text header (v1), §2.2 the binary header (v2) and its TLVs.
//
// Every case is read whole, with data after it (which must not change what is read or the
// length), and cut at every byte: parse_proxy_header() is handed "everything received so
// far", so every split of the input is one of its prefixes. Each prefix is checked against a
// reference written here from the specification, which says for any bytes whether they are
// a whole header (and its length), still the beginning of one, or can no longer become one:
// need_more is only for a prefix of a valid header, and the error comes with the first byte
// that rules that out. Each prefix is read from a heap buffer of its exact size.
//
// Where the specification leaves the receiver a choice, the test accepts either answer and
// says so (v2 DGRAM); inputs whose reading the specification leaves open are not used.
#include "parser/proxy_protocol.hpp"

#include <arpa/inet.h>  // inet_pton / inet_ntop: addresses read and shown independently
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace sy {
namespace {

using Status = ProxyHeader::Status;
using Family = ProxyAddress::Family;

constexpr std::size_t npos = std::string_view::npos;
const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);  // §2.2: the v2 signature, a NUL at byte 5

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int v : list) s.push_back(static_cast<char>(v));
    return s;
}

// Bytes as C-like text (\r, \n, \xNN) for failure messages; long runs are cut.
std::string printable(std::string_view in) {
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < in.size() && i < 160; ++i) {
        const unsigned char c = static_cast<unsigned char>(in[i]);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    if (in.size() > 160) out += "...(" + std::to_string(in.size()) + " bytes)";
    return out;
}

// doctest shows a const char* as a pointer: names and inputs are shown as std::string.
std::string name(Status s) {
    switch (s) {
        case Status::need_more: return "need_more";
        case Status::ok: return "ok";
        case Status::error: return "error";
    }
    return "?";
}

// ---- reference: what the specification allows ------------------------------------------------

enum class Ref { more, ok, error };

std::string name(Ref r) { return r == Ref::more ? "need_more" : r == Ref::ok ? "ok" : "error"; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A decimal number (an IPv4 byte or a port): at least one digit, no heading zero (§2.1,
// "to avoid any possible confusion with octal numbers"), at most `max`. `open`: the field
// may still go on.
Ref ref_decimal(std::string_view f, bool open, unsigned max, std::size_t max_digits) {
    if (f.empty()) return open ? Ref::more : Ref::error;
    if (f.size() > max_digits) return Ref::error;
    unsigned v = 0;
    for (char c : f) {
        if (!is_digit(c)) return Ref::error;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (f.size() > 1 && f[0] == '0') return Ref::error;
    if (v > max) return Ref::error;
    return open ? Ref::more : Ref::ok;
}

// §2.1: "exactly 4 integers in the range [0..255] ... separated by exactly one dot".
Ref ref_ipv4(std::string_view f, bool open) {
    std::size_t groups = 1;
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = f.find('.', start);
        const bool last = dot == npos;
        const std::string_view g = f.substr(start, last ? npos : dot - start);
        if (ref_decimal(g, last && open, 255, 3) == Ref::error) return Ref::error;
        if (last) break;
        if (++groups > 4) return Ref::error;
        start = dot + 1;
    }
    if (!open && groups != 4) return Ref::error;
    return open ? Ref::more : Ref::ok;
}

// §2.1: groups of up to 4 hexadecimal digits (either case) between colons, at most one "::"
// standing for one or more zero groups, 128 bits in all; the last 32 bits may be written as a
// dotted IPv4 address (RFC 4291 §2.2, the form RFC 5952 §5 recommends for IPv4-mapped ones).
Ref ref_ipv6(std::string_view f, bool open) {
    if (const std::size_t dot = f.find('.'); dot != npos) {
        const std::size_t colon = f.rfind(':', dot);
        if (colon == npos || ref_ipv4(f.substr(colon + 1), open) == Ref::error) return Ref::error;
        const std::string head = std::string(f.substr(0, colon + 1)) + "0:0";  // the tail's two groups
        const Ref r = ref_ipv6(head, false);
        if (r == Ref::error) return Ref::error;
        return open ? Ref::more : Ref::ok;
    }
    if (f.find(":::") != npos) return Ref::error;
    const std::size_t dc = f.find("::");
    if (dc != npos && f.find("::", dc + 1) != npos) return Ref::error;
    std::size_t groups = 0;
    std::size_t run = 0;
    for (char c : f) {
        if (is_hex(c)) {
            if (run == 0) ++groups;
            if (++run > 4) return Ref::error;
        } else if (c == ':') {
            run = 0;
        } else {
            return Ref::error;
        }
    }
    if (f.size() >= 2 && f[0] == ':' && f[1] != ':') return Ref::error;
    // A colon that is not half of "::" must be followed by a group (or become "::").
    const bool dangling = !f.empty() && f.back() == ':' && !(f.size() >= 2 && f[f.size() - 2] == ':');
    if (dc != npos) {
        if (groups + (dangling ? 1 : 0) > 7) return Ref::error;
        if (!open) return dangling ? Ref::error : Ref::ok;
        return Ref::more;
    }
    if (!open) return groups == 8 && !dangling ? Ref::ok : Ref::error;
    if (dangling ? groups > 7 : groups > 8) return Ref::error;
    return Ref::more;
}

// §2.1: "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF, or "PROXY"
// SP "UNKNOWN" and anything up to the CRLF; 107 bytes at most with the CRLF; a lone CR or LF
// never ends the line.
Ref ref_v1(std::string_view s, std::size_t* length) {
    constexpr std::string_view kPrefix = "PROXY ";
    if (s.size() < kPrefix.size()) return kPrefix.substr(0, s.size()) == s ? Ref::more : Ref::error;
    if (s.substr(0, kPrefix.size()) != kPrefix) return Ref::error;
    const std::size_t crlf = s.find("\r\n");
    std::size_t line_end;
    bool closed;
    if (crlf != npos) {
        if (crlf + 2 > 107) return Ref::error;
        line_end = crlf;
        closed = true;
        *length = crlf + 2;
    } else {
        closed = s.back() == '\r';  // then the line can only end here
        line_end = closed ? s.size() - 1 : s.size();
        if (line_end + 2 > 107) return Ref::error;
    }
    const std::string_view line = s.substr(kPrefix.size(), line_end - kPrefix.size());
    if (line.find_first_of("\r\n") != npos) return Ref::error;
    std::vector<std::string_view> t;
    for (std::size_t at = 0;;) {
        const std::size_t sp = line.find(' ', at);
        t.push_back(line.substr(at, sp == npos ? npos : sp - at));
        if (sp == npos) break;
        at = sp + 1;
    }
    const Ref whole = crlf != npos ? Ref::ok : Ref::more;  // a final CR: all but its LF
    if (t.size() == 1 && !closed) {
        for (std::string_view p : {"TCP4", "TCP6", "UNKNOWN"}) {
            if (p.substr(0, t[0].size()) == t[0]) return Ref::more;
        }
        return Ref::error;
    }
    if (t[0] == "UNKNOWN") return whole;  // "the receiver must ignore anything presented before the CRLF"
    if (t[0] != "TCP4" && t[0] != "TCP6") return Ref::error;
    const bool v4 = t[0] == "TCP4";
    if (t.size() > 5 || (closed && t.size() < 5)) return Ref::error;
    for (std::size_t i = 1; i < t.size(); ++i) {
        const bool open = !closed && i == t.size() - 1;
        const Ref r = i <= 2 ? (v4 ? ref_ipv4(t[i], open) : ref_ipv6(t[i], open))
                             : ref_decimal(t[i], open, 65535, 5);
        if (r == Ref::error) return Ref::error;
    }
    return whole;
}

// §2.2: signature, version 2, command LOCAL (0) or PROXY (1); with PROXY a known family
// (UNSPEC, INET, INET6, UNIX) and protocol (UNSPEC, STREAM, DGRAM) whose addresses fit in the
// length; LOCAL ignores the family and skips the length. 16 + length <= kMaxProxyHeader.
Ref ref_v2(std::string_view s, std::size_t* length) {
    const std::size_t n = std::min<std::size_t>(s.size(), kSig.size());
    if (s.substr(0, n) != std::string_view(kSig).substr(0, n)) return Ref::error;
    if (s.size() < 13) return Ref::more;
    const unsigned ver_cmd = static_cast<unsigned char>(s[12]);
    if ((ver_cmd >> 4) != 2 || (ver_cmd & 0xF) > 1) return Ref::error;
    const bool proxy = (ver_cmd & 0xF) == 1;
    if (s.size() < 14) return Ref::more;
    const unsigned fam = static_cast<unsigned char>(s[13]);
    if (proxy && ((fam >> 4) > 3 || (fam & 0xF) > 2)) return Ref::error;
    if (s.size() < 16) return Ref::more;
    const std::size_t len = (static_cast<std::size_t>(static_cast<unsigned char>(s[14])) << 8) |
                            static_cast<unsigned char>(s[15]);
    if (16 + len > kMaxProxyHeader) return Ref::error;
    if (proxy) {
        static constexpr std::size_t kAddresses[4] = {0, 12, 36, 216};
        if (len < kAddresses[fam >> 4]) return Ref::error;
    }
    if (s.size() < 16 + len) return Ref::more;
    *length = 16 + len;
    return Ref::ok;
}

Ref reference(std::string_view s, std::size_t* length) {
    if (s.empty()) return Ref::more;
    return s[0] == '\r' ? ref_v2(s, length) : ref_v1(s, length);
}

// The reference checks itself on the specification's own examples.
TEST_CASE("the test's reference reader agrees with the specification's examples") {
    std::size_t len = 0;
    CHECK(reference("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /", &len) == Ref::ok);
    CHECK(len == 47);
    CHECK(reference("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", &len) == Ref::ok);
    CHECK(len == 56);
    CHECK(reference("PROXY UNKNOWN\r\n", &len) == Ref::ok);
    CHECK(len == 15);
    CHECK(reference("PROXY TCP4 192.168.0.1 192.168.0.11 56324 44", &len) == Ref::more);
    CHECK(reference("PROXY TCP4 192.168.0.1 192.168.0.011", &len) == Ref::error);
    CHECK(reference("PROXY TCP6 1:2:3:4:5:6:7:8:", &len) == Ref::error);
    CHECK(reference("PROXY TCP6 1:2:3:4:5:6:7:", &len) == Ref::more);
    CHECK(reference("PROXY TCP6 1::2:3:4:5:6:7:", &len) == Ref::error);
    CHECK(reference(kSig + bytes({0x21, 0x11, 0x00, 0x0C}), &len) == Ref::more);
    CHECK(reference(kSig + bytes({0x21, 0x11, 0x00, 0x0B}), &len) == Ref::error);
    CHECK(reference(kSig + bytes({0x20, 0x00, 0x00, 0x00}), &len) == Ref::ok);
    CHECK(len == 16);
}

// ---- addresses --------------------------------------------------------------------------------

ProxyAddress address(const char* text, std::uint16_t port) {
    ProxyAddress a;
    a.port = port;
    if (inet_pton(AF_INET, text, a.ip.data()) == 1) {
        a.family = Family::ipv4;
    } else if (inet_pton(AF_INET6, text, a.ip.data()) == 1) {
        a.family = Family::ipv6;
    } else {
        FAIL("bad address in the test: " << text);
    }
    return a;
}

ProxyAddress none() { return ProxyAddress{}; }

// The address as inet_ntop shows it, with its port ("none" for family none): how results are
// compared, so that a failure reads plainly and does not rest on ip_text().
std::string show(const ProxyAddress& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    switch (a.family) {
        case Family::none: return "none";
        case Family::ipv4: inet_ntop(AF_INET, a.ip.data(), buf, sizeof buf); break;
        case Family::ipv6: inet_ntop(AF_INET6, a.ip.data(), buf, sizeof buf); break;
    }
    return std::string(a.family == Family::ipv4 ? "v4 " : "v6 ") + buf + " port " + std::to_string(a.port);
}

std::string ip_bytes(const ProxyAddress& a) {
    return std::string(reinterpret_cast<const char*>(a.ip.data()), a.family == Family::ipv4 ? 4 : 16);
}

std::string port_bytes(std::uint16_t p) { return bytes({p >> 8, p & 0xFF}); }

// A v2 header: signature, version/command, family/protocol, the length of `body`, `body`.
std::string v2(int ver_cmd, int fam, const std::string& body) {
    return kSig + bytes({ver_cmd, fam, static_cast<int>(body.size() >> 8), static_cast<int>(body.size() & 0xFF)}) + body;
}
// ... with a stated length that need not be the body's.
std::string v2_len(int ver_cmd, int fam, std::size_t len, const std::string& body) {
    return kSig + bytes({ver_cmd, fam, static_cast<int>(len >> 8), static_cast<int>(len & 0xFF)}) + body;
}

std::string addresses(const ProxyAddress& src, const ProxyAddress& dst) {
    return ip_bytes(src) + ip_bytes(dst) + port_bytes(src.port) + port_bytes(dst.port);
}

std::string tlv(int type, const std::string& value) {
    return bytes({type, static_cast<int>(value.size() >> 8), static_cast<int>(value.size() & 0xFF)}) + value;
}

std::string unix_path(const char* path) {
    std::string p(path);
    p.resize(108, '\0');
    return p;
}

// ---- driving ----------------------------------------------------------------------------------

ProxyHeader parse_copy(std::string_view input) {
    const std::unique_ptr<char[]> heap(new char[input.size() + 1]);
    std::memcpy(heap.get(), input.data(), input.size());
    return parse_proxy_header(std::string_view(heap.get(), input.size()));
}

// Every prefix of `input` (every way the bytes may have arrived so far) against the
// reference; returns how many prefixes disagreed. Always: a prefix the reference calls a
// beginning gives need_more (never an early error), a whole header gives ok and its length,
// and once an error, every longer prefix is one too. `strict` adds: a prefix the reference
// rules out gives error at once (the header's contract: need_more only for a prefix of a
// valid header; the specification: "abort the connection as soon as possible").
int check_every_prefix(std::string_view input, bool strict) {
    int wrong = 0;
    bool seen_error = false;
    for (std::size_t k = 0; k <= input.size(); ++k) {
        const std::string_view prefix = input.substr(0, k);
        std::size_t want_len = 0;
        const Ref want = reference(prefix, &want_len);
        const ProxyHeader got = parse_copy(prefix);
        bool same = true;
        if (want == Ref::more) same = got.status == Status::need_more;
        if (want == Ref::ok) same = got.status == Status::ok && got.length == want_len;
        if (want == Ref::error) same = got.status == Status::error || (!strict && got.status == Status::need_more);
        if (seen_error && got.status != Status::error) same = false;
        seen_error = seen_error || got.status == Status::error;
        if (!same && wrong++ < 3) {
            const std::string shown = printable(prefix);
            CAPTURE(shown);
            CAPTURE(k);
            FAIL_CHECK("after " << k << " bytes: expected " << name(want) << " (length " << want_len
                                 << "), got " << name(got.status) << " (length " << got.length << ")");
        }
    }
    return wrong;
}

const std::string kAfter = "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";

struct Accepted {
    const char* what;
    std::string input;  // exactly the header
    int version;
    ProxyAddress source;
    ProxyAddress destination;
};

// An accepted header: read whole, followed by data of several kinds, and at every prefix.
void check_accepted(const Accepted& c) {
    const std::string what = c.what;
    CAPTURE(what);
    for (const std::string& after : {std::string(), kAfter, std::string("\r\n"), std::string(1, '\0'),
                                     std::string("PROXY UNKNOWN\r\n"), kSig + bytes({0x20, 0x00, 0, 0})}) {
        const std::string input = c.input + after;
        const ProxyHeader got = parse_copy(input);
        const std::string shown_after = printable(after);
        CAPTURE(shown_after);
        if (got.status != Status::ok) {
            FAIL_CHECK("got " << name(got.status) << ": " << std::string(got.reason ? got.reason : "(no reason)"));
            return;
        }
        CHECK(got.length == c.input.size());
        CHECK(got.version == c.version);
        CHECK(show(got.source) == show(c.source));
        CHECK(show(got.destination) == show(c.destination));
        CHECK(input.substr(got.length) == after);
    }
    for (std::size_t k = 0; k < c.input.size(); ++k) {
        const ProxyHeader got = parse_copy(std::string_view(c.input).substr(0, k));
        if (got.status != Status::need_more) {
            FAIL_CHECK("a proper prefix of " << c.input.size() << " bytes, cut at " << k << ", gave "
                                             << name(got.status));
            break;
        }
    }
    CHECK(check_every_prefix(c.input + kAfter, true) == 0);
}

struct Refused {
    const char* what;
    std::string input;
};

// A refused input: an error with a reason, whatever follows it; its prefixes as
// check_every_prefix says (`strict`: the error with the first byte that rules a header out).
void check_refused(const Refused& c, bool strict) {
    const std::string what = c.what;
    CAPTURE(what);
    const std::string shown = printable(c.input);
    CAPTURE(shown);
    std::size_t unused = 0;
    if (reference(c.input, &unused) != Ref::error) {
        FAIL_CHECK("the test's case is not an error by the reference");
        return;
    }
    for (const std::string& after : {std::string(), kAfter, std::string("\r\n")}) {
        const ProxyHeader got = parse_copy(c.input + after);
        CHECK_MESSAGE(name(got.status) == "error", "with " << after.size() << " bytes after it: " << name(got.status)
                                                           << " length " << got.length);
        if (got.status == Status::error) CHECK((got.reason != nullptr && *got.reason != '\0'));
    }
    CHECK(check_every_prefix(c.input, strict) == 0);
}

// ---- v1 ---------------------------------------------------------------------------------------

const std::string kFfff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";  // 39 characters

TEST_CASE("v1 headers that are accepted (§2.1)") {
    const std::vector<Accepted> cases = {
        {"the specification's example", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 1,
         address("192.168.0.1", 56324), address("192.168.0.11", 443)},
        {"TCP4, the longest (56 bytes)", "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 1,
         address("255.255.255.255", 65535), address("255.255.255.255", 65535)},
        {"TCP4, zeros", "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", 1, address("0.0.0.0", 0), address("0.0.0.0", 0)},
        {"TCP4, one to three digits", "PROXY TCP4 10.0.100.9 1.20.255.0 1 65534\r\n", 1,
         address("10.0.100.9", 1), address("1.20.255.0", 65534)},
        {"TCP6, the longest (104 bytes)", "PROXY TCP6 " + kFfff + " " + kFfff + " 65535 65535\r\n", 1,
         address(kFfff.c_str(), 65535), address(kFfff.c_str(), 65535)},
        {"TCP6, compressed, upper-case hex", "PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 1234 443\r\n", 1,
         address("2001:db8::1", 1234), address("2001:db8::2", 443)},
        {"TCP6, :: and ::1", "PROXY TCP6 :: ::1 0 80\r\n", 1, address("::", 0), address("::1", 80)},
        {"TCP6, 4-digit groups with heading zeros",
         "PROXY TCP6 0001:0db8:0000:0000:0000:0000:0000:0001 fe80::0001:0002 5 6\r\n", 1,
         address("1:db8::1", 5), address("fe80::1:2", 6)},
        {"TCP6, :: for one group at each end", "PROXY TCP6 1:2:3:4:5:6:7:: ::2:3:4:5:6:7:8 7 8\r\n", 1,
         address("1:2:3:4:5:6:7:0", 7), address("0:2:3:4:5:6:7:8", 8)},
        {"UNKNOWN, short form (15 bytes)", "PROXY UNKNOWN\r\n", 1, none(), none()},
        {"UNKNOWN with addresses", "PROXY UNKNOWN 192.0.2.1 192.0.2.2 1 2\r\n", 1, none(), none()},
        {"UNKNOWN, the worst case (107 bytes)", "PROXY UNKNOWN " + kFfff + " " + kFfff + " 65535 65535\r\n", 1,
         none(), none()},
        {"UNKNOWN, anything before the CRLF is ignored", "PROXY UNKNOWN whatever 999.1.1.1 ! 00 x\r\n", 1,
         none(), none()},
    };
    CHECK(cases[1].input.size() == 56);
    CHECK(cases[4].input.size() == 104);
    CHECK(cases[9].input.size() == 15);
    CHECK(cases[11].input.size() == 107);
    for (const Accepted& c : cases) check_accepted(c);
}

std::vector<Refused> v1_refused() {
    const std::string a = "192.0.2.1", b = "192.0.2.2";
    const auto tcp4 = [&](const std::string& src, const std::string& dst, const std::string& sport = "1",
                          const std::string& dport = "2") {
        return "PROXY TCP4 " + src + " " + dst + " " + sport + " " + dport + "\r\n";
    };
    const auto tcp6 = [&](const std::string& src, const std::string& dst) {
        return "PROXY TCP6 " + src + " " + dst + " 1 2\r\n";
    };
    std::vector<Refused> cases = {
        // the protocol's name
        {"lower-case proxy", "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"Proxy", "Proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"no space after PROXY", "PROXYTCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"a tab after PROXY", "PROXY\tTCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"an HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"an HTTP/2 preface (PR...)", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
        {"a TLS ClientHello", bytes({0x16, 0x03, 0x01, 0x02, 0x00, 0x01})},
        // the transport
        {"tcp4 in lower case", "PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"unknown in lower case", "PROXY unknown\r\n"},
        {"TCP5", "PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"UDP4", "PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"TCP without a version", "PROXY TCP 192.0.2.1 192.0.2.2 1 2\r\n"},
        // missing and extra fields
        {"PROXY alone", "PROXY\r\n"},
        {"PROXY and a space", "PROXY \r\n"},
        {"no addresses", "PROXY TCP4\r\n"},
        {"source address only", "PROXY TCP4 192.0.2.1\r\n"},
        {"no ports", "PROXY TCP4 192.0.2.1 192.0.2.2\r\n"},
        {"no destination port", "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n"},
        {"no destination port, TCP6", "PROXY TCP6 ::1 ::2 1\r\n"},
        {"an extra field", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n"},
        {"a trailing space", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n"},
        {"a leading space", " PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        // exactly one space
        {"two spaces after PROXY", "PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
        {"two spaces after TCP4", "PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n"},
        {"two spaces between addresses", "PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n"},
        {"two spaces before the ports", "PROXY TCP4 192.0.2.1 192.0.2.2  1 2\r\n"},
        {"two spaces between the ports", "PROXY TCP4 192.0.2.1 192.0.2.2 1  2\r\n"},
        {"a tab between fields", "PROXY TCP4 192.0.2.1\t192.0.2.2 1 2\r\n"},
        // IPv4
        {"a byte over 255", tcp4("256.0.0.1", b)},
        {"a last byte over 255", tcp4(a, "1.2.3.256")},
        {"four digits", tcp4(a, "1.2.3.1000")},
        {"three bytes", tcp4("1.2.3", b)},
        {"five bytes", tcp4("1.2.3.4.5", b)},
        {"a heading zero", tcp4("01.2.3.4", b)},
        {"a heading zero in the last byte", tcp4(a, "1.2.3.04")},
        {"00", tcp4("1.2.00.4", b)},
        {"an empty byte", tcp4("1..2.3", b)},
        {"a trailing dot", tcp4("1.2.3.", b)},
        {"a leading dot", tcp4(".1.2.3", b)},
        {"a letter", tcp4("1.2.3.4a", b)},
        {"a hexadecimal byte", tcp4("0x1.2.3.4", b)},
        {"a sign", tcp4("1.2.3.-4", b)},
        {"a name", tcp4("localhost", b)},
        // IPv6
        {"three colons", tcp6("2001:db8:::1", "::2")},
        {":::", tcp6(":::", "::2")},
        {"nine groups", tcp6("1:2:3:4:5:6:7:8:9", "::2")},
        {"a five-digit group", tcp6("12345::1", "::2")},
        {"seven groups without ::", tcp6("1:2:3:4:5:6:7", "::2")},
        {"two ::", tcp6("::1::2", "::2")},
        {"a non-hex digit", tcp6("g::1", "::2")},
        {"a single leading colon", tcp6(":1::2", "::2")},
        {"a single trailing colon", tcp6("1::2:", "::2")},
        {"eight groups and ::", tcp6("1:2:3:4:5:6:7:8::", "::2")},
        {":: and eight groups", tcp6("::1:2:3:4:5:6:7:8", "::2")},
        {"a zone", tcp6("fe80::1%eth0", "::2")},
        {"brackets", tcp6("[::1]", "::2")},
        // the family must match
        {"IPv6 addresses with TCP4", tcp4("::1", "::2")},
        {"an IPv6 destination with TCP4", tcp4(a, "::2")},
        {"IPv4 addresses with TCP6", tcp6(a, b)},
        {"an IPv4 destination with TCP6", tcp6("::1", b)},
        // ports
        {"a port over 65535", tcp4(a, b, "65536")},
        {"a destination port over 65535", tcp4(a, b, "1", "99999")},
        {"six digits", tcp4(a, b, "100000")},
        {"a port of 00", tcp4(a, b, "00")},
        {"a heading zero in a port", tcp4(a, b, "01")},
        {"a heading zero in the destination port", tcp4(a, b, "1", "080")},
        {"a negative port", tcp4(a, b, "-1")},
        {"a plus sign", tcp4(a, b, "+1")},
        {"a letter in a port", tcp4(a, b, "1a")},
        {"a hexadecimal port", tcp4(a, b, "0x10")},
        // the end of the line
        {"LF only", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\nGET / HTTP/1.1\r\n"},
        {"LF only, UNKNOWN", "PROXY UNKNOWN\n"},
        {"UNKNOWN, a lone LF before the CRLF", "PROXY UNKNOWN a\nb\r\n"},
        {"CR only", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rGET / HTTP/1.1\r\n"},
        {"CR CR LF", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\r\n"},
        {"LF CR", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n\r"},
        {"no CRLF, the request follows", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 GET / HTTP/1.1\r\n\r\n"},
        {"UNKNOWN, 108 bytes", "PROXY UNKNOWN " + kFfff + " " + kFfff + " 65535 655355\r\n"},
        {"UNKNOWN, no CRLF in the first 107 bytes", "PROXY UNKNOWN " + std::string(200, 'x') + "\r\n"},
        {"UNKNOWN, CR at byte 107", "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n"},
    };
    return cases;
}

TEST_CASE("v1 headers that are refused (§2.1)") {
    const std::vector<Refused> cases = v1_refused();
    CHECK(cases[cases.size() - 3].input.size() == 108);
    for (const Refused& c : cases) check_refused(c, false);
}

TEST_CASE("v1: a line without its CRLF is still a beginning; 107 bytes without one are not") {
    for (const char* line : {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r",
                             "PROXY TCP6 ::1 ::2 1 2", "PROXY UNKNOWN", "PROXY UNKNOWN\r", "PROXY UNKNOWN 1 2 3",
                             "PROXY", "P", ""}) {
        const std::string shown = printable(line);
        CAPTURE(shown);
        CHECK(name(parse_copy(line).status) == "need_more");
    }
    const std::string longest = "PROXY UNKNOWN " + std::string(91, 'x');  // 105 bytes: CRLF may still follow
    CHECK(name(parse_copy(longest).status) == "need_more");
    CHECK(name(parse_copy(longest + "\r").status) == "need_more");
    CHECK(name(parse_copy(longest + "\r\n").status) == "ok");
    CHECK(parse_copy(longest + "\r\n").length == 107);
    CHECK(name(parse_copy(longest + "xx").status) == "error");
    CHECK(name(parse_copy(longest + "x\r\n").status) == "error");
}

// ---- v2 ---------------------------------------------------------------------------------------

TEST_CASE("v2 headers that are accepted (§2.2)") {
    const ProxyAddress s4 = address("192.0.2.1", 56324), d4 = address("198.51.100.7", 443);
    const ProxyAddress s6 = address("2001:db8::1", 1234), d6 = address("2001:db8:ffff::2", 65535);
    const std::string tlvs = tlv(0x04, "") + tlv(0x02, "example.com") + tlv(0x01, "http/1.1") +
                             tlv(0xE0, std::string(300, 'z')) + tlv(0x05, std::string(128, '\x7f'));
    // 16 + 12 + 3 + 4065 = 4096: the largest header there may be.
    const std::string biggest = v2(0x21, 0x11, addresses(s4, d4) + tlv(0x04, std::string(4065, '\0')));
    const std::vector<Accepted> cases = {
        {"PROXY, TCP over IPv4 (28 bytes)", v2(0x21, 0x11, addresses(s4, d4)), 2, s4, d4},
        {"PROXY, TCP over IPv6 (52 bytes)", v2(0x21, 0x21, addresses(s6, d6)), 2, s6, d6},
        {"PROXY, IPv4, TLVs after the addresses", v2(0x21, 0x11, addresses(s4, d4) + tlvs), 2, s4, d4},
        {"PROXY, IPv6, TLVs after the addresses", v2(0x21, 0x21, addresses(s6, d6) + tlvs), 2, s6, d6},
        {"PROXY, IPv4, 4096 bytes in all", biggest, 2, s4, d4},
        {"PROXY, UNSPEC, no address", v2(0x21, 0x00, ""), 2, none(), none()},
        {"PROXY, UNSPEC, address bytes to ignore", v2(0x21, 0x00, addresses(s4, d4)), 2, none(), none()},
        {"PROXY, UNIX stream (216 bytes of paths)", v2(0x21, 0x31, unix_path("/run/a.sock") + unix_path("/run/b")), 2,
         none(), none()},
        {"PROXY, UNIX datagram, with a TLV",
         v2(0x21, 0x32, unix_path("/run/a.sock") + unix_path("/run/b") + tlv(0x04, "")), 2, none(), none()},
        {"LOCAL, UNSPEC (16 bytes)", v2(0x20, 0x00, ""), 2, none(), none()},
        {"LOCAL with IPv4 addresses: discarded", v2(0x20, 0x11, addresses(s4, d4)), 2, none(), none()},
        {"LOCAL with TLVs only", v2(0x20, 0x00, tlv(0x04, "abcd")), 2, none(), none()},
        {"LOCAL, the family is ignored: IPv4 and no address", v2(0x20, 0x11, ""), 2, none(), none()},
        {"LOCAL, the family is ignored: IPv6 and no address", v2(0x20, 0x21, ""), 2, none(), none()},
    };
    CHECK(cases[0].input.size() == 28);
    CHECK(cases[1].input.size() == 52);
    CHECK(cases[4].input.size() == kMaxProxyHeader);
    CHECK(cases[7].input.size() == 16 + 216);
    CHECK(cases[9].input.size() == 16);
    for (const Accepted& c : cases) check_accepted(c);
}

TEST_CASE("v2 DGRAM: accepted, with its addresses or as UNSPEC (§2.2: the receiver may fall back)") {
    const ProxyAddress s4 = address("192.0.2.1", 53), d4 = address("198.51.100.7", 5353);
    const ProxyAddress s6 = address("2001:db8::1", 53), d6 = address("2001:db8::2", 5353);
    for (const auto& [input, src, dst] :
         {std::tuple{v2(0x21, 0x12, addresses(s4, d4)), s4, d4}, std::tuple{v2(0x21, 0x22, addresses(s6, d6)), s6, d6}}) {
        const ProxyHeader got = parse_copy(input + kAfter);
        CHECK_MESSAGE(name(got.status) == "ok", std::string(got.reason ? got.reason : ""));
        if (got.status != Status::ok) continue;
        CHECK(got.length == input.size());
        if (got.source.family != Family::none) {
            CHECK(show(got.source) == show(src));
            CHECK(show(got.destination) == show(dst));
        } else {
            CHECK(got.destination.family == Family::none);
        }
        CHECK(check_every_prefix(input + kAfter, true) == 0);
    }
}

std::vector<Refused> v2_refused() {
    const ProxyAddress s4 = address("192.0.2.1", 1), d4 = address("192.0.2.2", 2);
    const ProxyAddress s6 = address("::1", 1), d6 = address("::2", 2);
    const std::string a4 = addresses(s4, d4), a6 = addresses(s6, d6);
    std::vector<Refused> cases = {
        {"version 1 in the binary form", v2(0x11, 0x11, a4)},
        {"version 3", v2(0x31, 0x11, a4)},
        {"version 0", v2(0x01, 0x11, a4)},
        {"version 15", v2(0xF1, 0x11, a4)},
        {"command 2", v2(0x22, 0x11, a4)},
        {"command 15", v2(0x2F, 0x11, a4)},
        {"family 4", v2(0x21, 0x41, a4)},
        {"family 15", v2(0x21, 0xF1, a4)},
        {"protocol 3", v2(0x21, 0x13, a4)},
        {"protocol 15", v2(0x21, 0x1F, a4)},
        {"IPv4, length 11", v2_len(0x21, 0x11, 11, a4.substr(0, 11))},
        {"IPv4, length 0", v2_len(0x21, 0x11, 0, "")},
        {"IPv6, length 35", v2_len(0x21, 0x21, 35, a6.substr(0, 35))},
        {"IPv6, an IPv4-sized block", v2(0x21, 0x21, a4)},
        {"UNIX, length 215", v2_len(0x21, 0x31, 215, std::string(215, '\0'))},
        {"IPv4 DGRAM, length 11", v2_len(0x21, 0x12, 11, a4.substr(0, 11))},
        {"4097 bytes in all", v2_len(0x21, 0x11, 4081, a4)},
        {"length 65535", v2_len(0x21, 0x11, 0xFFFF, a4)},
        {"LOCAL, 4097 bytes in all", v2_len(0x20, 0x00, 4081, "")},
        {"the signature, then an HTTP request", "\r\n\r\nGET / HTTP/1.1\r\n\r\n"},
        {"CRLF CRLF NUL CRLF quit", std::string("\r\n\r\n\0\r\nquit\n", 12) + bytes({0x21, 0x11, 0, 12}) + a4},
    };
    for (std::size_t i = 0; i < kSig.size(); ++i) {  // each byte of the signature wrong in turn
        std::string bad = v2(0x21, 0x11, a4);
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        cases.push_back({"a signature byte flipped", bad});
    }
    return cases;
}

TEST_CASE("v2 headers that are refused (§2.2)") {
    for (const Refused& c : v2_refused()) check_refused(c, false);
}

// ---- the first byte that rules a header out -------------------------------------------------

TEST_CASE("errors come with the first byte that rules a header out") {
    // Every refused case of both tables, every prefix, against the reference.
    for (const Refused& c : v1_refused()) check_refused(c, true);
    for (const Refused& c : v2_refused()) check_refused(c, true);

    // A few spelled out: the prefix of `at` bytes is the first that can no longer be a header.
    const std::string a4 = addresses(address("192.0.2.1", 1), address("192.0.2.2", 2));
    const auto error_at = [](const std::string& input, std::size_t at) {
        const std::string shown = printable(input);
        CAPTURE(shown);
        CAPTURE(at);
        CHECK(name(parse_copy(std::string_view(input).substr(0, at - 1)).status) == "need_more");
        CHECK(name(parse_copy(std::string_view(input).substr(0, at)).status) == "error");
    };
    error_at("GET / HTTP/1.1\r\n", 1);
    error_at("PRI * HTTP/2.0\r\n", 3);
    error_at("PROXY\r\n", 6);
    error_at("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31);             // LF without CR
    error_at("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 32);            // CR without LF
    error_at("PROXY TCP5 ", 10);
    error_at("PROXY tcp4 ", 7);
    error_at("PROXY TCP4 256.", 14);
    error_at("PROXY TCP4 1.2.3.4  ", 20);                         // two spaces
    error_at("PROXY TCP4 1.2.3.4 5.6.7.8 65536 ", 32);
    error_at("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", 31);              // a sixth field
    error_at("PROXY TCP4 ::1 ", 12);                              // IPv6 with TCP4
    error_at("PROXY UNKNOWN " + std::string(92, 'x'), 106);       // no CRLF can fit any more
    error_at(v2(0x11, 0x11, a4), 13);                             // the version nibble
    error_at(v2(0x22, 0x11, a4), 13);                             // the command nibble
    error_at(v2(0x21, 0x41, a4), 14);                             // the family
    error_at(v2(0x21, 0x13, a4), 14);                             // the transport
    error_at(v2_len(0x21, 0x11, 11, a4), 16);                     // the length, short of the addresses
    error_at(v2_len(0x21, 0x11, 4081, a4), 16);                   // the length, over the bound
    error_at(std::string("\r\n\r\n\x01", 5), 5);                // the signature's NUL
}

// ---- writers ----------------------------------------------------------------------------------

void check_round_trip(const ProxyAddress& src, const ProxyAddress& dst) {
    CAPTURE(show(src));
    CAPTURE(show(dst));
    for (int version : {1, 2}) {
        CAPTURE(version);
        const std::string h = version == 1 ? proxy_header_v1(src, dst) : proxy_header_v2(src, dst);
        std::size_t ref_len = 0;
        CHECK(name(reference(h, &ref_len)) == "ok");  // what the specification accepts, independently
        CHECK(ref_len == h.size());
        const ProxyHeader got = parse_copy(h + kAfter);
        CHECK(name(got.status) == "ok");
        if (got.status != Status::ok) continue;
        CHECK(got.length == h.size());
        CHECK(got.version == version);
        CHECK(show(got.source) == show(src));
        CHECK(show(got.destination) == show(dst));
    }
}

TEST_CASE("writers: exact bytes") {
    const ProxyAddress s4 = address("192.0.2.1", 56324), d4 = address("198.51.100.7", 443);
    const ProxyAddress s6 = address("2001:db8::1", 1234), d6 = address("2001:db8:ffff::2", 65535);
    CHECK(proxy_header_v1(s4, d4) == "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
    CHECK(proxy_header_v1(address("0.0.0.0", 0), address("255.255.255.255", 65535)) ==
          "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    CHECK(proxy_header_v1(address(kFfff.c_str(), 65535), address(kFfff.c_str(), 65535)) ==
          "PROXY TCP6 " + kFfff + " " + kFfff + " 65535 65535\r\n");
    const std::string v1_6 = proxy_header_v1(s6, d6);
    CHECK(v1_6.rfind("PROXY TCP6 ", 0) == 0);
    CHECK(v1_6.size() >= 2);
    CHECK(v1_6.substr(v1_6.size() - 13) == " 1234 65535\r\n");

    // §2.2's layout: signature, 0x21 (version 2, PROXY), 0x11 (INET, STREAM), length 12 in
    // network order, source and destination addresses, source and destination ports.
    CHECK(proxy_header_v2(s4, d4) == kSig + bytes({0x21, 0x11, 0x00, 0x0C, 192, 0, 2, 1, 198, 51, 100, 7,
                                                   0xDC, 0x04, 0x01, 0xBB}));
    CHECK(proxy_header_v2(s6, d6) == kSig + bytes({0x21, 0x21, 0x00, 0x24,
                                                   0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
                                                   0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
                                                   0x04, 0xD2, 0xFF, 0xFF}));

    // Unknown or different families: v1 UNKNOWN (short form), v2 LOCAL with no address.
    const std::string local = kSig + bytes({0x20, 0x00, 0x00, 0x00});
    for (const auto& [src, dst] : {std::pair{none(), none()}, std::pair{s4, d6}, std::pair{s6, d4},
                                   std::pair{none(), d4}, std::pair{s6, none()}}) {
        CAPTURE(show(src));
        CAPTURE(show(dst));
        CHECK(proxy_header_v1(src, dst) == "PROXY UNKNOWN\r\n");
        CHECK(proxy_header_v2(src, dst) == local);
        for (const std::string& h : {proxy_header_v1(src, dst), proxy_header_v2(src, dst)}) {
            const ProxyHeader got = parse_copy(h);
            CHECK(name(got.status) == "ok");
            CHECK(got.length == h.size());
            CHECK(got.source.family == Family::none);
            CHECK(got.destination.family == Family::none);
        }
    }
}

TEST_CASE("writers: what they write reads back") {
    check_round_trip(address("192.0.2.1", 56324), address("198.51.100.7", 443));
    check_round_trip(address("0.0.0.0", 0), address("255.255.255.255", 65535));
    check_round_trip(address("127.0.0.2", 1), address("127.0.0.1", 8080));
    check_round_trip(address("2001:db8::1", 1234), address("2001:db8:ffff::2", 65535));
    check_round_trip(address("::", 0), address("::1", 1));
    check_round_trip(address(kFfff.c_str(), 65535), address("fe80::1:0:0:0", 7));
    check_round_trip(address("::ffff:192.0.2.1", 9), address("1:0:0:1:0:0:0:1", 10));
    check_round_trip(address("64:ff9b::c000:201", 11), address("1::", 12));
    // Pseudo-random addresses, zero runs included (a fixed xorshift seed: repeatable).
    std::uint32_t x = 0x9e3779b9u;
    const auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return x;
    };
    for (int i = 0; i < 400; ++i) {
        ProxyAddress src, dst;
        for (ProxyAddress* a : {&src, &dst}) {
            a->family = i % 2 ? Family::ipv6 : Family::ipv4;
            for (std::size_t j = 0; j < (a->family == Family::ipv4 ? 4u : 16u); ++j) {
                const std::uint32_t r = next();
                a->ip[j] = (r & 0x300) == 0 ? 0 : static_cast<std::uint8_t>(r);
            }
            a->port = static_cast<std::uint16_t>(next());
        }
        check_round_trip(src, dst);
    }
}

TEST_CASE("ip_text") {
    CHECK(address("192.0.2.1", 0).ip_text() == "192.0.2.1");
    CHECK(address("0.0.0.0", 0).ip_text() == "0.0.0.0");
    CHECK(address("255.255.255.255", 0).ip_text() == "255.255.255.255");
    CHECK(address("2001:db8::1", 0).ip_text() == "2001:db8::1");
    CHECK(address("::1", 0).ip_text() == "::1");
    CHECK(address("::", 0).ip_text() == "::");
    CHECK(none().ip_text() == "");
    // Any IPv6 address: text that inet_pton reads back to the same bytes.
    for (const char* text : {"2001:db8:0:0:1:0:0:1", "fe80::", kFfff.c_str(), "1:2:3:4:5:6:7:8", "0:0:0:0:0:0:0:2"}) {
        const ProxyAddress a = address(text, 0);
        ProxyAddress back;
        REQUIRE(inet_pton(AF_INET6, a.ip_text().c_str(), back.ip.data()) == 1);
        CHECK(back.ip == a.ip);
    }
}

}  // namespace
}  // namespace sy
