// UTF-8 validation that can be fed a message in pieces split anywhere (RFC 3629 §4: no
// overlong forms, no surrogates, nothing above U+10FFFF), for WebSocket text messages and
// close reasons (RFC 6455 §8.1), which must fail as soon as the bytes cannot be UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sy {

class Utf8Validator {
public:
    // False once the bytes so far cannot begin valid UTF-8 (and from then on).
    bool feed(const char* data, std::size_t len);
    bool feed(std::string_view s) { return feed(s.data(), s.size()); }
    // The bytes so far are whole valid UTF-8 (no character cut off at the end).
    bool complete() const { return !failed_ && need_ == 0; }
    void reset() { *this = Utf8Validator{}; }

private:
    std::uint8_t need_ = 0;   // continuation bytes still expected
    std::uint8_t lo_ = 0x80;  // the range the next continuation byte must be in
    std::uint8_t hi_ = 0xBF;
    bool failed_ = false;
};

bool is_valid_utf8(std::string_view s);

}  // namespace sy
