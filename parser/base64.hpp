// Base64 (RFC 4648 §4) for the `base64` WebSocket subprotocol, websockify's: text messages
// carry base64 of the bytes. Encoding writes into a caller's buffer; decoding takes a
// message in pieces split anywhere and is strict (alphabet only, padding only at the end).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace sy {

constexpr std::size_t base64_encoded_size(std::size_t n) { return (n + 2) / 3 * 4; }
// Writes base64_encoded_size(n) characters at `out` (which must not overlap `in`).
void base64_encode(const char* in, std::size_t n, char* out);
namespace detail {
inline constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::array<std::int8_t, 256> make_base64_values() {
    std::array<std::int8_t, 256> values{};
    for (auto& v : values) v = -1;
    for (int i = 0; i < 64; ++i) values[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<std::int8_t>(i);
    return values;
}
inline constexpr std::array<std::int8_t, 256> kBase64Values = make_base64_values();
}  // namespace detail

// The value (0..63) of one character of the base64 alphabet; -1 for any other byte ('='
// too).
inline int base64_value(char c) { return detail::kBase64Values[static_cast<unsigned char>(c)]; }

class Base64Decoder {
public:
    // Decodes the next piece of a message into `out` (room for (n + 3) / 4 * 3 bytes; no
    // overlap with `in`) and returns how many bytes it wrote, or -1 when the text is not
    // base64 (and from then on).
    std::ptrdiff_t decode(const char* in, std::size_t n, char* out);
    // The message ends here: true when it ended on a whole group.
    bool finish();

private:
    std::uint32_t bits_ = 0;     // the sextets of the group being read
    std::uint8_t have_ = 0;      // how many of them (0..3)
    std::uint8_t padding_ = 0;   // '=' seen in this group
    bool ended_ = false;         // a padded group ended the data
    bool failed_ = false;
};

}  // namespace sy
