#include "parser/utf8.hpp"

#include <cstring>

namespace sy {

bool Utf8Validator::feed(const char* data, std::size_t len) {
    if (failed_) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    const unsigned char* end = p + len;
    while (p < end) {
        if (need_ == 0) {
            // ASCII runs, 8 bytes at a time.
            while (end - p >= 8) {
                std::uint64_t word;
                std::memcpy(&word, p, sizeof word);
                if ((word & 0x8080808080808080ull) != 0) break;
                p += 8;
            }
            if (p == end) break;
            const unsigned char c = *p++;
            if (c < 0x80) continue;
            // The first byte fixes the length and the range of the second byte (RFC 3629
            // §4's table): E0 and F0 exclude overlong forms, ED the surrogates, F4 what lies
            // above U+10FFFF.
            lo_ = 0x80;
            hi_ = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need_ = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                need_ = 2;
                if (c == 0xE0) lo_ = 0xA0;
                if (c == 0xED) hi_ = 0x9F;
            } else if (c >= 0xF0 && c <= 0xF4) {
                need_ = 3;
                if (c == 0xF0) lo_ = 0x90;
                if (c == 0xF4) hi_ = 0x8F;
            } else {
                failed_ = true;  // 80..C1 (a continuation or an overlong start), F5..FF
                return false;
            }
            continue;
        }
        const unsigned char c = *p++;
        if (c < lo_ || c > hi_) {
            failed_ = true;
            return false;
        }
        --need_;
        lo_ = 0x80;
        hi_ = 0xBF;
    }
    return true;
}

bool is_valid_utf8(std::string_view s) {
    Utf8Validator v;
    return v.feed(s) && v.complete();
}

}  // namespace sy
