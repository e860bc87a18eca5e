// The chunk-size line of a chunked body (RFC 9112 §7.1, §7.1.1), checked by us rather than
// by llhttp: llhttp 8.1 refuses the optional whitespace (BWS) the grammar allows around
// ";" and "=" in chunk extensions. The wrapper reads each line itself, checks it here and
// hands llhttp only the size in canonical form ("HEX\r\n"); extensions are dropped, as
// the proxy re-frames every body it forwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sy {

// A line longer than this (CRLF included) is refused: extensions are never that long in
// honest traffic, and the bytes are held until the line ends.
inline constexpr std::size_t kMaxChunkLine = 4096;

struct ChunkLine {
    bool ok = false;
    std::uint64_t size = 0;
    const char* reason = "";  // why the line was refused, for logs
};

// `line` is the whole line without its CRLF:
//   chunk-size [ chunk-ext ]
//   chunk-size = 1*HEXDIG                (at most 2^64 - 1)
//   chunk-ext  = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
ChunkLine parse_chunk_line(std::string_view line);

// Writes the canonical line for `size` ("1a2b\r\n") into out[0..20) and returns its length.
std::size_t format_chunk_line(std::uint64_t size, char* out);

}  // namespace sy
