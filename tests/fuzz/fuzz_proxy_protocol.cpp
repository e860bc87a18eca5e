// libFuzzer target: the PROXY protocol reader and writers (parser/proxy_protocol.hpp), checked
// for properties that follow from the header's contract and HAProxy's specification rather
// than against a second parser:
//   - no crash, no read outside the input (every parse reads a heap copy of its exact size);
//   - ok: version 1 or 2, 0 < length <= input size (v1 at most 107 bytes, v2 16 to
//     kMaxProxyHeader), and input[0, length) alone reads back the same header;
//   - every proper prefix of an ok header gives need_more, every longer input ok with the same
//     header (what follows is the connection's data);
//   - monotonic: once a prefix gives error, every longer input does; once ok, every longer
//     input gives the same ok. So need_more for an input means need_more for its prefixes;
//   - an error carries a reason;
//   - the writers' headers for addresses drawn from the input read back to those addresses (v1
//     UNKNOWN / v2 LOCAL, family none, when the families are unknown or differ), also with the
//     input after them.
// Input: the bytes a connection starts with. Seeds in corpus-proxy/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "parser/proxy_protocol.hpp"

namespace {

using sy::ProxyAddress;
using sy::ProxyHeader;
using Status = ProxyHeader::Status;
using Family = ProxyAddress::Family;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_proxy_protocol: %s\n", what);
        std::abort();
    }
}

// A parse of data[0, n) from a heap buffer of exactly n bytes.
ProxyHeader parse(const std::uint8_t* data, std::size_t n) {
    const std::unique_ptr<char[]> copy(new char[n == 0 ? 1 : n]);
    if (n != 0) std::memcpy(copy.get(), data, n);
    return sy::parse_proxy_header(std::string_view(copy.get(), n));
}

bool same_address(const ProxyAddress& a, const ProxyAddress& b) {
    if (a.family != b.family) return false;
    if (a.family == Family::none) return true;
    const std::size_t n = a.family == Family::ipv4 ? 4 : 16;
    return a.port == b.port && std::memcmp(a.ip.data(), b.ip.data(), n) == 0;
}

bool same_header(const ProxyHeader& a, const ProxyHeader& b) {
    return a.status == b.status && a.length == b.length && a.version == b.version &&
           same_address(a.source, b.source) && same_address(a.destination, b.destination);
}

void check_result_shape(const ProxyHeader& r, std::size_t n) {
    check(r.status == Status::need_more || r.status == Status::ok || r.status == Status::error, "status out of range");
    if (r.status == Status::error) check(r.reason != nullptr && r.reason[0] != '\0', "an error without a reason");
    if (r.status != Status::ok) return;
    check(r.length > 0 && r.length <= n, "ok with a length outside the input");
    check(r.version == 1 || r.version == 2, "ok with a version other than 1 or 2");
    if (r.version == 1) check(r.length <= 107, "a v1 header over 107 bytes");
    if (r.version == 2) check(r.length >= 16 && r.length <= sy::kMaxProxyHeader, "a v2 length out of bounds");
    check((r.source.family == Family::none) == (r.destination.family == Family::none),
          "one end with an address, the other without");
    for (const ProxyAddress* a : {&r.source, &r.destination}) {
        check((a->family == Family::none) == a->ip_text().empty(), "ip_text empty exactly for family none");
    }
}

// The prefix lengths to try: all of them for short inputs, else the first and last 64, and
// 64 spread in between.
template <typename F>
void for_prefixes(std::size_t n, F&& f) {
    if (n <= 320) {
        for (std::size_t k = 0; k < n; ++k) f(k);
        return;
    }
    for (std::size_t k = 0; k < 64; ++k) f(k);
    for (std::size_t i = 1; i < 64; ++i) f(64 + (n - 128) * i / 64);
    for (std::size_t k = n - 64; k < n; ++k) f(k);
}

// An address of the family chosen by `sel` (0/3 none, 1 IPv4, 2 IPv6) from the input's bytes.
ProxyAddress drawn(unsigned sel, const std::uint8_t* data, std::size_t n, std::size_t at) {
    ProxyAddress a;
    const auto byte = [&](std::size_t i) {
        return n == 0 ? static_cast<std::uint8_t>(i * 37) : static_cast<std::uint8_t>(data[(at + i) % n] ^ (i * 37));
    };
    a.family = sel == 1 ? Family::ipv4 : sel == 2 ? Family::ipv6 : Family::none;
    if (a.family == Family::none) return a;
    for (std::size_t i = 0; i < (a.family == Family::ipv4 ? 4u : 16u); ++i) a.ip[i] = byte(i);
    a.port = static_cast<std::uint16_t>(byte(16) << 8 | byte(17));
    return a;
}

void check_writers(const std::uint8_t* data, std::size_t n) {
    const unsigned sel = n == 0 ? 0 : data[n - 1];
    const ProxyAddress src = drawn(sel & 3, data, n, 1);
    const ProxyAddress dst = drawn((sel >> 2) & 3, data, n, 19);
    const bool known = src.family != Family::none && src.family == dst.family;
    for (int version : {1, 2}) {
        const std::string h = version == 1 ? sy::proxy_header_v1(src, dst) : sy::proxy_header_v2(src, dst);
        const std::string with_data = n == 0 ? h : h + std::string(reinterpret_cast<const char*>(data), n);
        for (const std::string* input : {&h, &with_data}) {
            const ProxyHeader r = parse(reinterpret_cast<const std::uint8_t*>(input->data()), input->size());
            check(r.status == Status::ok, "a written header does not read back");
            check(r.length == h.size(), "a written header reads back with another length");
            check(r.version == version, "a written header reads back with another version");
            if (known) {
                check(same_address(r.source, src) && same_address(r.destination, dst),
                      "a written header reads back with other addresses");
            } else {
                check(r.source.family == Family::none && r.destination.family == Family::none,
                      "unknown or mixed families written as addresses");
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ProxyHeader whole = parse(data, size);
    check_result_shape(whole, size);

    if (whole.status == Status::ok) {
        const ProxyHeader alone = parse(data, whole.length);
        check(same_header(alone, whole), "input[0, length) does not read back the same header");
    }

    for_prefixes(size, [&](std::size_t k) {
        const ProxyHeader part = parse(data, k);
        check_result_shape(part, k);
        if (whole.status == Status::ok && k < whole.length) {
            check(part.status == Status::need_more, "a proper prefix of an ok header is not need_more");
        }
        if (part.status == Status::error) {
            check(whole.status == Status::error, "an error for a prefix, not for the longer input (not monotonic)");
        }
        if (part.status == Status::ok) {
            check(same_header(part, whole), "ok for a prefix, not the same ok for the longer input");
        }
    });

    check_writers(data, size);
    return 0;
}
