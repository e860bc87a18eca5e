// The WebSocket half of demo_backend (RFC 6455): the handshake key check and an echo
// session that turns client frames into the server's replies. Pure functions of bytes:
// no sockets here, so the rules can be read (and tested) on their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace demo::ws {

enum class Opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 step 5.4):
// base64(SHA-1(key + GUID)). nullopt when the key is not base64 of exactly 16 bytes
// (§4.1 point 7), in which case the handshake must be refused.
std::optional<std::string> accept_for_key(std::string_view key);

// One unfragmented, unmasked frame as a server sends it (§5.2, §5.1: servers never mask).
std::string encode_frame(Opcode opcode, std::string_view payload);

// Echo behaviour of one WebSocket connection after its 101:
// - text and binary messages come back as one frame of the same type, with the whole
//   (reassembled, §5.4) message as payload;
// - ping gets a pong with the same payload (§5.5.2); pongs are ignored (§5.5.3);
// - close gets a close with the same status code (§5.5.1), then the connection ends;
// - a protocol violation (unmasked client frame, reserved bits, bad opcode, fragmented or
//   oversized control frame, stray continuation) gets close 1002, a message over
//   kMaxMessageBytes gets close 1009, and the connection ends.
class EchoSession {
public:
    static constexpr std::size_t kMaxMessageBytes = 64u * 1024u * 1024u;

    // Consumes bytes from the client, appends the bytes to send back to `out`. Returns
    // false once the session has ended: send `out`, then close the TCP connection.
    bool feed(std::string_view in, std::string& out);

private:
    bool fail(std::uint16_t close_code, std::string& out);

    std::string pending_;   // received bytes not yet forming a whole frame
    std::string message_;   // fragments of the data message being reassembled
    Opcode message_opcode_ = Opcode::text;
    bool in_message_ = false;
    bool ended_ = false;
};

}  // namespace demo::ws
