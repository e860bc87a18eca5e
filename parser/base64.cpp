#include "parser/base64.hpp"

#include <array>

namespace sy {
namespace {

constexpr const char* kAlphabet = detail::kBase64Alphabet;
constexpr const std::array<std::int8_t, 256>& kValues = detail::kBase64Values;

}  // namespace

void base64_encode(const char* in, std::size_t n, char* out) {
    const auto* p = reinterpret_cast<const unsigned char*>(in);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
        *out++ = kAlphabet[v >> 18];
        *out++ = kAlphabet[(v >> 12) & 63];
        *out++ = kAlphabet[(v >> 6) & 63];
        *out++ = kAlphabet[v & 63];
    }
    if (i < n) {
        std::uint32_t v = std::uint32_t{p[i]} << 16;
        if (i + 1 < n) v |= std::uint32_t{p[i + 1]} << 8;
        *out++ = kAlphabet[v >> 18];
        *out++ = kAlphabet[(v >> 12) & 63];
        *out++ = i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
}

std::ptrdiff_t Base64Decoder::decode(const char* in, std::size_t n, char* out) {
    if (failed_) return -1;
    char* const start = out;
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(in[i]);
        if (ended_) {
            failed_ = true;  // data after the padded last group
            return -1;
        }
        if (c == '=') {
            // Only as the third or fourth character of a group, and once started, to its end.
            if (have_ + padding_ < 2) {
                failed_ = true;
                return -1;
            }
            ++padding_;
        } else {
            const std::int8_t v = kValues[c];
            if (v < 0 || padding_ != 0) {
                failed_ = true;
                return -1;
            }
            bits_ = (bits_ << 6) | static_cast<std::uint32_t>(v);
            ++have_;
        }
        if (have_ + padding_ < 4) continue;
        // A whole group: 3 bytes, or 2 / 1 before padding (whose unused bits must be 0,
        // RFC 4648 §3.5).
        if (padding_ == 0) {
            *out++ = static_cast<char>(bits_ >> 16);
            *out++ = static_cast<char>(bits_ >> 8);
            *out++ = static_cast<char>(bits_);
        } else if (padding_ == 1) {
            if ((bits_ & 0x3) != 0) {
                failed_ = true;
                return -1;
            }
            *out++ = static_cast<char>(bits_ >> 10);
            *out++ = static_cast<char>(bits_ >> 2);
            ended_ = true;
        } else {
            if ((bits_ & 0xF) != 0) {
                failed_ = true;
                return -1;
            }
            *out++ = static_cast<char>(bits_ >> 4);
            ended_ = true;
        }
        bits_ = 0;
        have_ = 0;
        padding_ = 0;
    }
    return out - start;
}

bool Base64Decoder::finish() {
    const bool ok = !failed_ && have_ == 0 && padding_ == 0;
    *this = Base64Decoder{};
    return ok;
}

}  // namespace sy
