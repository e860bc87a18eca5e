// libFuzzer target: the WebSocket frame reader (parser/ws_frame.hpp) fed a client byte stream
// in pieces, against a reference reader written here from RFC 6455 §5 and the terminate-mode
// rules (1002 for a broken frame rule or a bad close payload, 1007 for invalid UTF-8 in a text
// message or a close reason, 1009 for a message over max_message), not from ws_frame.cpp.
//
// Input: byte 0 chooses max_message (0 = any), bytes 1-2 seed the split sizes, the rest is the
// stream. The stream is read whole into a separate buffer, in seeded pieces in place
// (out == in), in other pieces packed (out before in, each read's payloads moved to the start
// of its buffer, as the proxy does), and a byte at a time. Each read is a heap buffer of its
// exact size, as is a separate output buffer, so ASan sees any access outside them. Every way
// must give the reference's control frames, message ends and error, and its payload bytes;
// only for 1007 may less of the doomed message have been handed out before the error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "parser/ws_frame.hpp"

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_ws_frame: %s\n", what);
        std::abort();
    }
}

struct Outcome {
    std::string payload;
    std::string events;  // "T<offset>;" "B<offset>;" "P<payload>;" "O<payload>;" "C<code>,<reason>;"
    std::uint16_t error = 0;
};

// ---- reference -----------------------------------------------------------------------------

// UTF-8 one byte at a time (RFC 3629): a sequence's bytes are kept until it is whole; the
// values its completions can still reach form one interval, which must meet the scalar
// values (<= U+10FFFF, not a surrogate) of that sequence length.
struct RefUtf8 {
    std::uint32_t cp = 0;
    int len = 0;
    int have = 0;
    bool bad = false;

    bool push(unsigned char c) {
        if (bad) return false;
        if (have == 0) {
            if (c < 0x80) return true;
            if ((c & 0xE0) == 0xC0) {
                len = 2;
                cp = c & 0x1F;
            } else if ((c & 0xF0) == 0xE0) {
                len = 3;
                cp = c & 0x0F;
            } else if ((c & 0xF8) == 0xF0) {
                len = 4;
                cp = c & 0x07;
            } else {
                return !(bad = true);
            }
        } else {
            if ((c & 0xC0) != 0x80) return !(bad = true);
            cp = (cp << 6) | (c & 0x3F);
        }
        ++have;
        static constexpr std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        const int missing = len - have;
        const std::uint32_t lo = cp << (6 * missing);
        const std::uint32_t hi = lo | ((1u << (6 * missing)) - 1);
        const std::uint32_t a = lo > kMin[len] ? lo : kMin[len];
        const std::uint32_t z = hi < 0x10FFFF ? hi : 0x10FFFF;
        if (a > z || (a >= 0xD800 && z <= 0xDFFF)) return !(bad = true);
        if (missing == 0) have = 0;
        return true;
    }
    bool whole() const { return !bad && have == 0; }
};

bool ref_close_code_ok(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

Outcome reference(const unsigned char* p, std::size_t n, std::uint64_t max_message) {
    Outcome o;
    std::size_t at = 0;
    bool in_message = false;
    bool text = false;
    std::uint64_t message_bytes = 0;
    RefUtf8 utf8;
    while (n - at >= 2) {
        const unsigned b0 = p[at];
        const unsigned b1 = p[at + 1];
        const unsigned len7 = b1 & 0x7F;
        const bool masked = (b1 & 0x80) != 0;
        const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        const std::size_t header = 2 + ext + (masked ? 4 : 0);
        if (n - at < header) break;
        std::uint64_t len = len7;
        if (ext != 0) {
            len = 0;
            for (std::size_t i = 0; i < ext; ++i) len = (len << 8) | p[at + 2 + i];
        }
        const unsigned opcode = b0 & 0x0F;
        const bool fin = (b0 & 0x80) != 0;
        const bool control = opcode >= 8;
        const bool known = opcode == 0 || opcode == 1 || opcode == 2 || opcode == 8 || opcode == 9 || opcode == 10;
        bool broken = (b0 & 0x70) != 0 || !known || !masked || (len >> 63) != 0;
        if (!broken && control) broken = !fin || len > 125;
        if (!broken && !control) broken = (opcode == 0) != in_message;
        if (broken) {
            o.error = 1002;
            return o;
        }
        if (!control) {
            if (opcode != 0) {
                in_message = true;
                text = opcode == 1;
                message_bytes = 0;
                utf8 = RefUtf8{};
            }
            if (max_message != 0 && message_bytes + len > max_message) {
                o.error = 1009;
                return o;
            }
            message_bytes += len;
        }
        const unsigned char* key = p + at + header - 4;
        at += header;
        const std::size_t avail = static_cast<std::size_t>(len < n - at ? len : n - at);
        std::string payload;
        for (std::size_t i = 0; i < avail; ++i) payload.push_back(static_cast<char>(p[at + i] ^ key[i % 4]));
        at += avail;
        if (control) {
            if (avail < len) break;
            if (opcode == 8) {
                if (payload.size() == 1) {
                    o.error = 1002;
                    return o;
                }
                unsigned code = 0;
                if (payload.size() >= 2) {
                    code = (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
                    if (!ref_close_code_ok(code)) {
                        o.error = 1002;
                        return o;
                    }
                    RefUtf8 reason;
                    for (std::size_t i = 2; i < payload.size(); ++i) reason.push(static_cast<unsigned char>(payload[i]));
                    if (!reason.whole()) {
                        o.error = 1007;
                        return o;
                    }
                }
                o.events += "C" + std::to_string(code) + "," + payload.substr(payload.size() >= 2 ? 2 : 0) + ";";
            } else {
                o.events += (opcode == 9 ? "P" : "O") + payload + ";";
            }
            continue;
        }
        if (text) {
            for (std::size_t i = 0; i < payload.size(); ++i) {
                if (!utf8.push(static_cast<unsigned char>(payload[i]))) {
                    o.payload.append(payload, 0, i);
                    o.error = 1007;
                    return o;
                }
            }
        }
        o.payload += payload;
        if (avail < len) break;
        if (fin) {
            if (text && !utf8.whole()) {
                o.error = 1007;
                return o;
            }
            in_message = false;
            o.events += (text ? "T" : "B") + std::to_string(o.payload.size()) + ";";
        }
    }
    return o;
}

// ---- the reader, fed in pieces -------------------------------------------------------------

enum class Mode { separate, in_place, packed };

struct Rng {
    std::uint32_t x;
    std::uint32_t next() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return x;
    }
};

// piece_max 0: one piece; otherwise sizes 1..piece_max from the generator.
Outcome feed(const unsigned char* p, std::size_t n, std::uint64_t max_message, Mode mode, std::size_t piece_max, Rng rng) {
    Outcome o;
    sy::WsFrameReader reader(max_message);
    bool message_open = false;
    bool message_text = false;
    std::size_t begin = 0;
    while (begin < n) {
        std::size_t size = n - begin;
        if (piece_max != 0) {
            const std::size_t want = 1 + rng.next() % piece_max;
            if (want < size) size = want;
        }
        // exactly the bytes of this read, on the heap
        std::unique_ptr<char[]> buf(new char[size]);
        for (std::size_t i = 0; i < size; ++i) buf[i] = static_cast<char>(p[begin + i]);
        begin += size;
        std::size_t pos = 0;
        std::size_t written = 0;
        std::string read_payload;
        while (pos < size) {
            std::unique_ptr<char[]> separate;
            char* in = buf.get() + pos;
            char* out = in;
            if (mode == Mode::separate) {
                separate.reset(new char[size - pos]);
                out = separate.get();
            } else if (mode == Mode::packed) {
                out = buf.get() + written;
            }
            const sy::WsFrameReader::Step s = reader.next(in, size - pos, out);
            check(s.consumed <= size - pos, "consumed more than given");
            using Kind = sy::WsFrameReader::Step::Kind;
            if (s.kind == Kind::need_more) {
                check(s.consumed == size - pos, "need_more left bytes unused");
                break;
            }
            if (s.kind == Kind::error) {
                o.error = s.error;
                check(s.reason != nullptr, "error without a reason");
                char dummy[2] = {};
                check(reader.next(dummy, sizeof dummy, dummy).kind == Kind::error, "read on after an error");
                if (mode == Mode::packed) check(std::string_view(buf.get(), written) == read_payload, "packed payload clobbered");
                return o;
            }
            check(s.consumed != 0, "a step that used no input");
            if (s.kind == Kind::data) {
                check(s.length <= s.consumed, "more payload than input");
                check(!message_open || s.text == message_text, "text flag changed inside a message");
                message_open = !s.message_end;
                message_text = s.text;
                o.payload.append(out, s.length);
                read_payload.append(out, s.length);
                written += s.length;
                if (s.message_end) o.events += (s.text ? "T" : "B") + std::to_string(o.payload.size()) + ";";
                check(reader.in_message() == !s.message_end, "in_message() disagrees");
            } else {
                const std::string_view payload = reader.control_payload();
                check(reader.in_message() == message_open, "a control frame changed in_message()");
                if (s.opcode == sy::WsOpcode::close) {
                    check(payload.size() == (s.close_code == 0 ? 0 : 2 + reader.close_reason().size()), "close payload size");
                    o.events += "C" + std::to_string(s.close_code) + "," + std::string(reader.close_reason()) + ";";
                } else {
                    check(s.opcode == sy::WsOpcode::ping || s.opcode == sy::WsOpcode::pong, "control opcode");
                    o.events += (s.opcode == sy::WsOpcode::ping ? "P" : "O") + std::string(payload) + ";";
                }
            }
            pos += s.consumed;
        }
        if (mode == Mode::packed) check(std::string_view(buf.get(), written) == read_payload, "packed payload clobbered");
    }
    return o;
}

void compare(const Outcome& got, const Outcome& want) {
    check(got.error == want.error, "error code differs from the reference");
    check(got.events == want.events, "control frames / message ends differ from the reference");
    if (want.error == sy::ws_close::invalid_data) {
        check(got.payload.size() <= want.payload.size() && want.payload.compare(0, got.payload.size(), got.payload) == 0,
              "payload before a 1007 is not a prefix of the reference");
    } else {
        check(got.payload == want.payload, "payload differs from the reference");
    }
}

// The server frame writer: header bytes per RFC 6455 §5.2, read back by hand.
void check_server_header(const std::uint8_t* bytes, std::size_t size) {
    if (size < 9) return;
    std::uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | bytes[1 + i];
    len >>= (bytes[0] & 0x3F);  // spread over all magnitudes
    const auto opcode = static_cast<sy::WsOpcode>((bytes[0] >> 6) == 0 ? 0x2 : (bytes[0] >> 6) == 1 ? 0x1 : 0x0);
    const bool fin = (bytes[0] & 0x80) != 0;
    const std::size_t hs = sy::server_frame_header_size(len);
    std::unique_ptr<unsigned char[]> out(new unsigned char[hs]);
    check(sy::write_server_frame_header(reinterpret_cast<char*>(out.get()), opcode, len, fin) == hs, "server header size");
    check(hs == (len < 126 ? 2u : len < 65536 ? 4u : 10u), "server header size class");
    check(out[0] == ((fin ? 0x80u : 0u) | static_cast<unsigned>(opcode)), "server header first byte");
    check((out[1] & 0x80) == 0, "server frame masked");
    std::uint64_t back = out[1] & 0x7F;
    if (hs == 4) {
        check(back == 126, "16-bit length marker");
        back = (std::uint64_t{out[2]} << 8) | out[3];
    } else if (hs == 10) {
        check(back == 127, "64-bit length marker");
        back = 0;
        for (int i = 0; i < 8; ++i) back = (back << 8) | out[2 + i];
    }
    check(back == len, "server header length");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    check_server_header(bytes, size);
    if (size < 3) return 0;
    const std::uint64_t max_message = std::uint64_t{bytes[0] & 0x3Fu} << (4 * (bytes[0] >> 6));
    Rng rng{(std::uint32_t{bytes[1]} << 8 | bytes[2]) * 2654435761u + 1};
    const std::size_t piece_max = 1 + (bytes[1] & 0x1F) * ((bytes[2] & 1) != 0 ? 1 : 9);
    const unsigned char* stream = bytes + 3;
    const std::size_t n = size - 3;

    const Outcome want = reference(stream, n, max_message);
    compare(feed(stream, n, max_message, Mode::separate, 0, rng), want);
    compare(feed(stream, n, max_message, Mode::in_place, piece_max, rng), want);
    rng.next();
    compare(feed(stream, n, max_message, Mode::packed, piece_max, rng), want);
    compare(feed(stream, n, max_message, Mode::packed, 0, rng), want);
    if (n <= 512) compare(feed(stream, n, max_message, Mode::in_place, 1, rng), want);
    return 0;
}
