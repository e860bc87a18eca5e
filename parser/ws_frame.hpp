// WebSocket framing (RFC 6455 §5) for the proxy's own WebSocket server end (terminate
// mode, docs/upgrades.md): a reader for client frames fed in pieces split anywhere, and the
// writer of server frames. Pure: no I/O.
//
// The reader unmasks data payloads straight to where the caller wants them (`out`, which
// may be the very bytes being read, or before them in the same buffer: the payloads of a
// read are then packed at the start of its buffer in one pass, with no second copy), joins
// fragments, checks every rule of §5 and maps each broken rule to the close code the proxy
// sends (§7.4.1): 1002 protocol error, 1007 invalid UTF-8 in a text message or close reason
// (§8.1), 1009 a message over the size limit.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "parser/utf8.hpp"

namespace sy {

enum class WsOpcode : std::uint8_t { continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA };

// Close codes (RFC 6455 §7.4.1).
namespace ws_close {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t invalid_data = 1007;
inline constexpr std::uint16_t too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace ws_close

// May a peer send `code` in a close frame? 1000-1003 and 1007-1014 (RFC 6455 §7.4.1 and
// the IANA registry), 3000-4999 (registered and private use). 1004-1006 and 1015 are
// never sent on the wire.
bool is_valid_close_code(std::uint16_t code);

class WsFrameReader {
public:
    // `max_message`: the largest message (all its fragments' payloads) accepted; 0 = any.
    explicit WsFrameReader(std::uint64_t max_message) : max_message_(max_message) {}

    struct Step {
        enum class Kind : std::uint8_t {
            need_more,  // every byte given was used; more are needed
            data,       // `length` unmasked payload bytes of a data message were written at `out`
            control,    // a whole control frame (close, ping, pong): opcode, control_payload()
            error,      // a broken rule: send close `error`, read nothing more
        };
        Kind kind = Kind::need_more;
        std::size_t consumed = 0;  // input bytes used by this step
        // data
        std::size_t length = 0;
        bool text = false;          // the message is a text message
        bool message_end = false;   // these bytes end the message
        // control
        WsOpcode opcode = WsOpcode::continuation;
        std::uint16_t close_code = 0;  // close: the code, 0 when the frame had none
        // error
        std::uint16_t error = 0;
        const char* reason = nullptr;  // for logs
    };

    // Reads frames from in[0, len). A data step writes its bytes at `out`, which must not be
    // after `in` (out == in, or earlier in the same buffer, or elsewhere with room for len
    // bytes). Call again with the rest of the input after each step but need_more.
    Step next(char* in, std::size_t len, char* out);

    // The last control frame's payload (unmasked) and, for a close, its reason: valid until
    // the next call.
    std::string_view control_payload() const { return {ctrl_.data(), ctrl_len_}; }
    std::string_view close_reason() const {
        return ctrl_len_ > 2 ? std::string_view(ctrl_.data() + 2, ctrl_len_ - 2) : std::string_view();
    }
    // A data message has begun and not ended.
    bool in_message() const { return in_message_; }

private:
    Step fail(std::uint16_t code, const char* reason, std::size_t consumed);
    // Checks a complete header in hdr_ (or `h` when read in place) and starts its frame.
    const char* start_frame(const unsigned char* h, std::uint16_t* code);
    void unmask(char* dst, const char* src, std::size_t n);

    std::uint64_t max_message_;
    std::uint64_t message_bytes_ = 0;  // payload of the current message so far
    std::uint64_t remaining_ = 0;      // payload bytes of the current frame still to read
    std::array<unsigned char, 14> hdr_{};
    std::uint8_t hdr_len_ = 0;         // header bytes collected (only across reads)
    std::uint8_t mask_pos_ = 0;        // which key byte unmasks the next payload byte
    std::array<unsigned char, 4> mask_{};
    WsOpcode opcode_ = WsOpcode::continuation;  // of the current frame
    bool fin_ = false;
    bool in_frame_ = false;            // a header was read and its payload is being read
    bool in_message_ = false;
    bool message_text_ = false;
    bool failed_ = false;
    std::uint8_t ctrl_len_ = 0;
    Utf8Validator utf8_;
    std::array<char, 125> ctrl_{};
};

// Server frames (never masked, RFC 6455 §5.1).
inline constexpr std::size_t kMaxServerFrameHeader = 10;
constexpr std::size_t server_frame_header_size(std::uint64_t len) { return len < 126 ? 2 : len < 65536 ? 4 : 10; }
// Writes the header of a frame with `len` payload bytes at `out` (room for
// server_frame_header_size(len) bytes) and returns its size.
std::size_t write_server_frame_header(char* out, WsOpcode opcode, std::uint64_t len, bool fin = true);
// A whole control frame: a close with `code` and `reason` (cut to at most 123 bytes at a
// UTF-8 character boundary), a pong (payload cut to 125 bytes, §5.5).
std::string server_close_frame(std::uint16_t code, std::string_view reason = {});
std::string server_control_frame(WsOpcode opcode, std::string_view payload);

}  // namespace sy
