#include "demo_websocket.hpp"

#include <openssl/evp.h>

#include <array>

namespace demo::ws {
namespace {

constexpr std::string_view kHandshakeGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kMaxControlPayload = 125;  // §5.5

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

std::string close_payload(std::uint16_t code) {
    return {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
}

}  // namespace

std::optional<std::string> accept_for_key(std::string_view key) {
    // Base64 of 16 bytes is always 22 significant characters followed by "==".
    if (key.size() != 24 || key.substr(22) != "==") {
        return std::nullopt;
    }
    for (char c : key.substr(0, 22)) {
        if (!is_base64_char(c)) {
            return std::nullopt;
        }
    }

    std::string input(key);
    input += kHandshakeGuid;
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_len = 0;
    if (EVP_Digest(input.data(), input.size(), digest.data(), &digest_len, EVP_sha1(),
                   nullptr) != 1) {
        return std::nullopt;
    }
    std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> encoded{};
    const int encoded_len = EVP_EncodeBlock(encoded.data(), digest.data(),
                                            static_cast<int>(digest_len));
    return std::string(reinterpret_cast<const char*>(encoded.data()),
                       static_cast<std::size_t>(encoded_len));
}

std::string encode_frame(Opcode opcode, std::string_view payload) {
    std::string frame;
    frame.reserve(payload.size() + 10);
    frame += static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));  // FIN set
    const std::uint64_t len = payload.size();
    if (len <= 125) {
        frame += static_cast<char>(len);
    } else if (len <= 0xFFFF) {
        frame += static_cast<char>(126);
        frame += static_cast<char>((len >> 8) & 0xFF);
        frame += static_cast<char>(len & 0xFF);
    } else {
        frame += static_cast<char>(127);
        for (int shift = 56; shift >= 0; shift -= 8) {
            frame += static_cast<char>((len >> shift) & 0xFF);
        }
    }
    frame += payload;
    return frame;
}

bool EchoSession::fail(std::uint16_t close_code, std::string& out) {
    out += encode_frame(Opcode::close, close_payload(close_code));
    ended_ = true;
    return false;
}

bool EchoSession::feed(std::string_view in, std::string& out) {
    if (ended_) {
        return false;
    }
    pending_ += in;
    std::size_t pos = 0;
    bool alive = true;
    while (alive) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(pending_.data()) + pos;
        const std::size_t available = pending_.size() - pos;
        if (available < 2) {
            break;
        }
        // Frame header (§5.2).
        const bool fin = (bytes[0] & 0x80) != 0;
        const unsigned reserved = bytes[0] & 0x70;
        const auto opcode = static_cast<Opcode>(bytes[0] & 0x0F);
        const bool masked = (bytes[1] & 0x80) != 0;
        std::uint64_t len = bytes[1] & 0x7F;
        std::size_t header_len = 2;
        if (len == 126) {
            header_len = 4;
            if (available < header_len) {
                break;
            }
            len = (std::uint64_t{bytes[2]} << 8) | bytes[3];
        } else if (len == 127) {
            header_len = 10;
            if (available < header_len) {
                break;
            }
            len = 0;
            for (std::size_t i = 2; i < 10; ++i) {
                len = (len << 8) | bytes[i];
            }
            if ((len >> 63) != 0) {
                return fail(1002, out);  // §5.2: the most significant bit must be 0
            }
        }
        const bool is_control = (static_cast<unsigned>(opcode) & 0x8) != 0;
        if (reserved != 0 || !masked) {
            return fail(1002, out);  // no extension negotiated; §5.1: clients mask
        }
        if (is_control && (!fin || len > kMaxControlPayload)) {
            return fail(1002, out);
        }
        if (len > kMaxMessageBytes || message_.size() + len > kMaxMessageBytes) {
            return fail(1009, out);
        }
        header_len += 4;  // masking key
        if (available < header_len + len) {
            break;
        }

        const unsigned char* mask = bytes + header_len - 4;
        std::string payload(reinterpret_cast<const char*>(bytes + header_len),
                            static_cast<std::size_t>(len));
        for (std::size_t i = 0; i < payload.size(); ++i) {
            payload[i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]);
        }
        pos += header_len + static_cast<std::size_t>(len);

        switch (opcode) {
        case Opcode::text:
        case Opcode::binary:
            if (in_message_) {
                return fail(1002, out);  // §5.4: a new message inside a fragmented one
            }
            if (fin) {
                out += encode_frame(opcode, payload);
            } else {
                in_message_ = true;
                message_opcode_ = opcode;
                message_ = std::move(payload);
            }
            break;
        case Opcode::continuation:
            if (!in_message_) {
                return fail(1002, out);
            }
            message_ += payload;
            if (fin) {
                out += encode_frame(message_opcode_, message_);
                message_.clear();
                in_message_ = false;
            }
            break;
        case Opcode::ping:
            out += encode_frame(Opcode::pong, payload);
            break;
        case Opcode::pong:
            break;
        case Opcode::close:
            out += encode_frame(Opcode::close, payload.substr(0, payload.size() >= 2 ? 2 : 0));
            ended_ = true;
            alive = false;
            break;
        default:
            return fail(1002, out);  // reserved opcode
        }
    }
    pending_.erase(0, pos);
    return alive;
}

}  // namespace demo::ws
