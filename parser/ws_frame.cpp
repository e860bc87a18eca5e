#include "parser/ws_frame.hpp"

#include <algorithm>
#include <cstring>

namespace sy {
namespace {

bool is_known_opcode(unsigned op) { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }
bool is_control(WsOpcode op) { return (static_cast<unsigned>(op) & 0x8) != 0; }

// A client header's size from its first two bytes (RFC 6455 §5.2): 2, then 0, 2 or 8
// length bytes, then the 4-byte masking key when the mask bit is set.
std::size_t header_size(unsigned char b1) {
    const unsigned len7 = b1 & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) != 0 ? 4 : 0);
}

}  // namespace

bool is_valid_close_code(std::uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

WsFrameReader::Step WsFrameReader::fail(std::uint16_t code, const char* reason, std::size_t consumed) {
    failed_ = true;
    Step s;
    s.kind = Step::Kind::error;
    s.consumed = consumed;
    s.error = code;
    s.reason = reason;
    return s;
}

const char* WsFrameReader::start_frame(const unsigned char* h, std::uint16_t* code) {
    *code = ws_close::protocol_error;
    const unsigned b0 = h[0];
    const unsigned b1 = h[1];
    if ((b0 & 0x70) != 0) return "RSV bit set without an extension";
    if (!is_known_opcode(b0 & 0x0F)) return "unknown opcode";
    if ((b1 & 0x80) == 0) return "unmasked client frame";  // §5.1
    const auto opcode = static_cast<WsOpcode>(b0 & 0x0F);
    const bool fin = (b0 & 0x80) != 0;
    std::uint64_t len = b1 & 0x7F;
    std::size_t at = 2;
    if (len == 126) {
        len = (std::uint64_t{h[2]} << 8) | h[3];
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | h[2 + i];
        at = 10;
        if ((len >> 63) != 0) return "64-bit length with its most significant bit set";
    }
    if (is_control(opcode)) {
        if (!fin) return "fragmented control frame";  // §5.5
        if (len > 125) return "control frame over 125 bytes";
        ctrl_len_ = 0;
    } else {
        if (opcode == WsOpcode::continuation) {
            if (!in_message_) return "continuation frame without a message";
        } else {
            if (in_message_) return "new data frame inside a fragmented message";  // §5.4
            in_message_ = true;
            message_text_ = opcode == WsOpcode::text;
            message_bytes_ = 0;
        }
        if (max_message_ != 0 && len > max_message_ - message_bytes_) {
            *code = ws_close::too_big;
            return "message over max_message";
        }
        message_bytes_ += len;
    }
    std::memcpy(mask_.data(), h + at, 4);
    mask_pos_ = 0;
    opcode_ = opcode;
    fin_ = fin;
    remaining_ = len;
    in_frame_ = true;
    return nullptr;
}

// dst is src or before it: each word is read before anything at or after it is written.
void WsFrameReader::unmask(char* dst, const char* src, std::size_t n) {
    std::size_t i = 0;
    for (; i < n && (mask_pos_ & 3) != 0; ++i) {
        dst[i] = static_cast<char>(src[i] ^ mask_[mask_pos_]);
        mask_pos_ = (mask_pos_ + 1) & 3;
    }
    if (n - i >= 8) {
        std::uint64_t key;
        unsigned char k8[8];
        for (int j = 0; j < 8; ++j) k8[j] = mask_[j & 3];
        std::memcpy(&key, k8, 8);
        for (; n - i >= 8; i += 8) {
            std::uint64_t word;
            std::memcpy(&word, src + i, 8);
            word ^= key;
            std::memcpy(dst + i, &word, 8);
        }
    }
    for (; i < n; ++i) {
        dst[i] = static_cast<char>(src[i] ^ mask_[mask_pos_]);
        mask_pos_ = (mask_pos_ + 1) & 3;
    }
}

WsFrameReader::Step WsFrameReader::next(char* in, std::size_t len, char* out) {
    if (failed_) return fail(ws_close::protocol_error, "read after an error", 0);
    std::size_t pos = 0;
    if (!in_frame_) {
        const unsigned char* h = nullptr;
        const auto* u = reinterpret_cast<const unsigned char*>(in);
        if (hdr_len_ == 0 && len >= 2 && len >= header_size(u[1])) {
            h = u;  // the whole header is here: read in place
            pos = header_size(u[1]);
        } else {
            while (hdr_len_ < 2 && pos < len) hdr_[hdr_len_++] = u[pos++];
            if (hdr_len_ < 2) return Step{Step::Kind::need_more, pos};
            const std::size_t need = header_size(hdr_[1]);
            while (hdr_len_ < need && pos < len) hdr_[hdr_len_++] = u[pos++];
            if (hdr_len_ < need) return Step{Step::Kind::need_more, pos};
            h = hdr_.data();
            hdr_len_ = 0;
        }
        std::uint16_t code = 0;
        if (const char* why = start_frame(h, &code)) return fail(code, why, pos);
    }

    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, len - pos));
    if (is_control(opcode_)) {
        unmask(ctrl_.data() + ctrl_len_, in + pos, n);
        ctrl_len_ = static_cast<std::uint8_t>(ctrl_len_ + n);
        remaining_ -= n;
        pos += n;
        if (remaining_ != 0) return Step{Step::Kind::need_more, pos};
        in_frame_ = false;
        Step s;
        s.kind = Step::Kind::control;
        s.consumed = pos;
        s.opcode = opcode_;
        if (opcode_ == WsOpcode::close && ctrl_len_ > 0) {
            // §5.5.1: no payload, or a 2-byte code and a UTF-8 reason.
            if (ctrl_len_ == 1) return fail(ws_close::protocol_error, "close payload of 1 byte", pos);
            const auto code = static_cast<std::uint16_t>((static_cast<unsigned char>(ctrl_[0]) << 8) |
                                                         static_cast<unsigned char>(ctrl_[1]));
            if (!is_valid_close_code(code)) return fail(ws_close::protocol_error, "invalid close code", pos);
            if (!is_valid_utf8(close_reason())) return fail(ws_close::invalid_data, "close reason not UTF-8", pos);
            s.close_code = code;
        }
        return s;
    }

    if (n == 0 && remaining_ != 0) return Step{Step::Kind::need_more, pos};
    unmask(out, in + pos, n);
    remaining_ -= n;
    pos += n;
    if (message_text_ && !utf8_.feed(out, n)) return fail(ws_close::invalid_data, "text message not UTF-8", pos);
    Step s;
    s.kind = Step::Kind::data;
    s.consumed = pos;
    s.length = n;
    s.text = message_text_;
    if (remaining_ == 0) {
        in_frame_ = false;
        if (fin_) {
            s.message_end = true;
            in_message_ = false;
            if (message_text_ && !utf8_.complete()) {
                return fail(ws_close::invalid_data, "text message ends inside a UTF-8 character", pos);
            }
            utf8_.reset();
        }
    }
    return s;
}

std::size_t write_server_frame_header(char* out, WsOpcode opcode, std::uint64_t len, bool fin) {
    auto* o = reinterpret_cast<unsigned char*>(out);
    o[0] = static_cast<unsigned char>((fin ? 0x80 : 0) | static_cast<unsigned>(opcode));
    if (len < 126) {
        o[1] = static_cast<unsigned char>(len);
        return 2;
    }
    if (len < 65536) {
        o[1] = 126;
        o[2] = static_cast<unsigned char>(len >> 8);
        o[3] = static_cast<unsigned char>(len);
        return 4;
    }
    o[1] = 127;
    for (int i = 0; i < 8; ++i) o[2 + i] = static_cast<unsigned char>(len >> (8 * (7 - i)));
    return 10;
}

std::string server_control_frame(WsOpcode opcode, std::string_view payload) {
    payload = payload.substr(0, 125);  // §5.5: a control frame's payload is at most 125 bytes
    std::string frame(2, '\0');
    write_server_frame_header(frame.data(), opcode, payload.size());
    frame.append(payload);
    return frame;
}

std::string server_close_frame(std::uint16_t code, std::string_view reason) {
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xFF));
    // At most 123 bytes of reason, cut at a character boundary: the reason must stay UTF-8.
    std::size_t keep = reason.size() < 123 ? reason.size() : 123;
    if (keep < reason.size()) {
        while (keep > 0 && (static_cast<unsigned char>(reason[keep]) & 0xC0) == 0x80) --keep;
    }
    payload.append(reason.substr(0, keep));
    return server_control_frame(WsOpcode::close, payload);
}

}  // namespace sy
