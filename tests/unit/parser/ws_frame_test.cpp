// The WebSocket frame reader and the server frame writer (parser/ws_frame.hpp) against
// RFC 6455: framing (§5.2), masking (§5.3), fragmentation (§5.4), control frames (§5.5),
// the §5.7 examples, close codes (§7.4.1), UTF-8 (§8.1), and the terminate-mode decisions
// (1002 for a broken frame rule or a bad close payload, 1007 for invalid UTF-8, 1009 for a
// message over max_message).
//
// Client frames are built here by a helper that masks with its own loop; every case is fed
// whole, cut once at every byte, cut twice everywhere (short inputs), a byte at a time and in
// fixed-size pieces, and each of those in the three ways the caller may place the output:
// a separate buffer, in place (out == in), and packed (out before in in the same buffer,
// every payload of a read moved to the start of that read's buffer, as the proxy does).
// Every way must give the same payload bytes, control frames and error; only for an
// invalid-UTF-8 error may less of the doomed message's bytes have been handed out first
// (the reader cannot know before the bad byte arrives), so there the payload is a prefix.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "parser/ws_frame.hpp"

namespace sy {
namespace {

using Key = std::array<unsigned char, 4>;
constexpr Key kRfcKey = {0x37, 0xfa, 0x21, 0x3d};  // the masking key of RFC 6455 §5.7

constexpr unsigned FIN = 0x80;
constexpr unsigned RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10;
constexpr unsigned CONT = 0x0, TEXT = 0x1, BIN = 0x2, CLOSE = 0x8, PING = 0x9, PONG = 0xA;

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int v : list) s.push_back(static_cast<char>(v));
    return s;
}

enum class LengthForm { minimal, bits16, bits64 };

// A client frame (RFC 6455 §5.2): first byte b0 (FIN, RSV, opcode), the payload length in the
// given form, the masking key when `masked`, the payload XOR key[i % 4] (§5.3).
std::string frame(unsigned b0, std::string_view payload, const Key& key = kRfcKey, bool masked = true,
                  LengthForm form = LengthForm::minimal) {
    std::string f;
    f.push_back(static_cast<char>(b0));
    const unsigned mask_bit = masked ? 0x80 : 0;
    const std::uint64_t n = payload.size();
    if (form == LengthForm::minimal) form = n < 126 ? LengthForm::minimal : n < 65536 ? LengthForm::bits16 : LengthForm::bits64;
    if (form == LengthForm::minimal) {
        f.push_back(static_cast<char>(mask_bit | n));
    } else if (form == LengthForm::bits16) {
        f.push_back(static_cast<char>(mask_bit | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xFF));
    } else {
        f.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<char>((n >> shift) & 0xFF));
    }
    if (masked) {
        for (unsigned char k : key) f.push_back(static_cast<char>(k));
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        f.push_back(masked ? static_cast<char>(static_cast<unsigned char>(payload[i]) ^ key[i % 4]) : payload[i]);
    }
    return f;
}

std::string close_payload(int code, std::string_view reason = {}) {
    std::string p = bytes({(code >> 8) & 0xFF, code & 0xFF});
    p.append(reason);
    return p;
}

std::string pattern(std::size_t n, unsigned seed = 1) {
    std::string s;
    std::uint32_t x = seed;
    for (std::size_t i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        s.push_back(static_cast<char>(x >> 24));
    }
    return s;
}

std::string escape(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F && u != '\\') {
            out.push_back(c);
        } else {
            out += "\\x";
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0xF]);
        }
    }
    return out;
}

// ---- the driver ----------------------------------------------------------------------------

enum class Mode { separate, in_place, packed };
const char* mode_name(Mode m) { return m == Mode::separate ? "separate" : m == Mode::in_place ? "in place" : "packed"; }

struct Outcome {
    std::string payload;              // every data step's bytes, in order
    std::vector<std::string> events;  // "T@n" / "B@n": a text / binary message ended at payload offset n;
                                      // "ping(p)@n", "pong(p)@n", "close(code,reason)@n"
    std::uint16_t error = 0;
    std::string problem;  // a broken promise of the Step contract
};

// Feeds `input` cut at `cuts` (sorted offsets), each piece copied into a buffer of its own
// (as a socket read would be), stepping the way the header says: after each step but
// need_more, call again with the rest.
Outcome run(std::string_view input, std::uint64_t max_message, const std::vector<std::size_t>& cuts, Mode mode) {
    Outcome o;
    WsFrameReader reader(max_message);
    bool message_open = false;
    bool message_text = false;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(input.size());
    std::size_t begin = 0;
    for (std::size_t end : ends) {
        if (end <= begin) continue;
        std::vector<char> buf(input.begin() + static_cast<std::ptrdiff_t>(begin), input.begin() + static_cast<std::ptrdiff_t>(end));
        begin = end;
        const std::size_t len = buf.size();
        std::size_t pos = 0;
        std::size_t written = 0;      // packed: payload bytes at the start of buf
        std::string read_payload;     // this read's payload, as each step reported it
        bool stop = false;
        for (int guard = 0; pos < len && !stop; ++guard) {
            if (guard > 1000000) {
                o.problem = "no progress";
                return o;
            }
            char* in = buf.data() + pos;
            std::vector<char> separate;
            char* out = in;
            if (mode == Mode::separate) {
                separate.assign(len - pos, '\x5A');
                out = separate.data();
            } else if (mode == Mode::packed) {
                out = buf.data() + written;
            }
            const WsFrameReader::Step s = reader.next(in, len - pos, out);
            if (s.consumed > len - pos) {
                o.problem = "consumed more than given";
                return o;
            }
            switch (s.kind) {
            case WsFrameReader::Step::Kind::need_more:
                if (s.consumed != len - pos) o.problem = "need_more without using every byte";
                break;
            case WsFrameReader::Step::Kind::data: {
                if (s.consumed == 0) o.problem = "a data step that used no input";
                if (s.length > s.consumed) o.problem = "more payload than input used";
                if (message_open && s.text != message_text) o.problem = "text flag changed inside a message";
                message_open = true;
                message_text = s.text;
                const std::string_view bytes_out(out, s.length);
                o.payload.append(bytes_out);
                read_payload.append(bytes_out);
                written += s.length;
                if (s.message_end) {
                    o.events.push_back(std::string(s.text ? "T@" : "B@") + std::to_string(o.payload.size()));
                    message_open = false;
                }
                if (reader.in_message() != !s.message_end) o.problem = "in_message() disagrees with message_end";
                break;
            }
            case WsFrameReader::Step::Kind::control: {
                if (s.consumed == 0) o.problem = "a control step that used no input";
                std::string e;
                const std::string_view p = reader.control_payload();
                if (s.opcode == WsOpcode::ping) {
                    e = "ping(" + escape(p) + ")";
                } else if (s.opcode == WsOpcode::pong) {
                    e = "pong(" + escape(p) + ")";
                } else if (s.opcode == WsOpcode::close) {
                    e = "close(" + std::to_string(s.close_code) + "," + escape(reader.close_reason()) + ")";
                    const std::size_t want = s.close_code == 0 ? 0 : 2 + reader.close_reason().size();
                    if (p.size() != want) o.problem = "close payload size disagrees with code and reason";
                } else {
                    e = "control with opcode " + std::to_string(static_cast<int>(s.opcode));
                }
                if (reader.in_message() != message_open) o.problem = "a control frame changed in_message()";
                o.events.push_back(e + "@" + std::to_string(o.payload.size()));
                break;
            }
            case WsFrameReader::Step::Kind::error:
                o.error = s.error;
                if (s.reason == nullptr || std::string_view(s.reason).empty()) o.problem = "error without a reason";
                stop = true;
                break;
            }
            pos += s.consumed;
            if (s.kind == WsFrameReader::Step::Kind::need_more) pos = len;
        }
        // packed: what the proxy writes upstream is buf[0, written): later steps must not have
        // overwritten earlier payload
        if (mode == Mode::packed && std::string_view(buf.data(), written) != read_payload) {
            o.problem = "packed payload overwritten by a later step";
        }
        if (stop) {
            // an error is final
            char dummy[4] = {};
            const WsFrameReader::Step again = reader.next(dummy, sizeof dummy, dummy);
            if (again.kind != WsFrameReader::Step::Kind::error) o.problem = "read on after an error";
            return o;
        }
    }
    return o;
}

std::vector<std::vector<std::size_t>> splits(std::size_t n) {
    std::vector<std::vector<std::size_t>> out;
    out.push_back({});
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < n; ++i) every.push_back(i);
    if (n <= 4096) {
        for (std::size_t i = 1; i < n; ++i) out.push_back({i});
    } else {
        for (std::size_t i = 1; i < n; i += (i < 40 || i > n - 40) ? 1 : 997) out.push_back({i});
    }
    if (n <= 32) {
        for (std::size_t i = 1; i < n; ++i) {
            for (std::size_t j = i + 1; j < n; ++j) out.push_back({i, j});
        }
    }
    out.push_back(every);
    for (std::size_t piece : {2u, 3u, 5u, 7u, 13u}) {
        std::vector<std::size_t> cuts;
        for (std::size_t i = piece; i < n; i += piece) cuts.push_back(i);
        out.push_back(cuts);
    }
    return out;
}

struct WsCase {
    std::string name;
    std::string input;
    std::uint64_t max_message;
    std::string payload;              // every payload byte handed out (1007: at most these)
    std::vector<std::string> events;
    std::uint16_t error;
};

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& e : v) s += (s.empty() ? "" : " ") + e;
    return s;
}

// The first way of feeding c.input that does not give the expected outcome ("" when none).
std::string check_case(const WsCase& c) {
    for (Mode mode : {Mode::separate, Mode::in_place, Mode::packed}) {
        for (const auto& cuts : splits(c.input.size())) {
            const Outcome o = run(c.input, c.max_message, cuts, mode);
            std::string why;
            if (!o.problem.empty()) {
                why = o.problem;
            } else if (o.error != c.error) {
                why = "error " + std::to_string(o.error) + " instead of " + std::to_string(c.error);
            } else if (o.events != c.events) {
                why = "events [" + join(o.events) + "] instead of [" + join(c.events) + "]";
            } else if (c.error == ws_close::invalid_data ? c.payload.compare(0, o.payload.size(), o.payload) != 0 ||
                                                               o.payload.size() > c.payload.size()
                                                         : o.payload != c.payload) {
                why = "payload \"" + escape(o.payload.substr(0, 200)) + "\" instead of \"" + escape(c.payload.substr(0, 200)) + "\"";
            }
            if (!why.empty()) {
                std::string where;
                for (std::size_t cut : cuts) {
                    if (where.size() > 120) {
                        where += "...";
                        break;
                    }
                    where += std::to_string(cut) + " ";
                }
                return std::string(mode_name(mode)) + ", cuts [" + where + "]: " + why;
            }
        }
    }
    return "";
}

void check_cases(const std::vector<WsCase>& cases) {
    for (const WsCase& c : cases) {
        const std::string name = c.name;
        const std::string input = escape(c.input.substr(0, 64));
        CAPTURE(name);
        CAPTURE(input);
        CHECK(check_case(c) == "");
    }
}

const std::string kHello = "Hello";

}  // namespace

// ---- RFC 6455 §5.7 ---------------------------------------------------------------------------

TEST_CASE("the frame builder writes the RFC 6455 §5.7 bytes") {
    CHECK(frame(FIN | TEXT, kHello) == bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    CHECK(frame(FIN | PONG, kHello) == bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    CHECK(frame(FIN | TEXT, kHello, kRfcKey, false) == bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    CHECK(frame(TEXT, "Hel", kRfcKey, false) == bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
    CHECK(frame(FIN | CONT, "lo", kRfcKey, false) == bytes({0x80, 0x02, 0x6c, 0x6f}));
    CHECK(frame(FIN | PING, kHello, kRfcKey, false) == bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    CHECK(frame(FIN | BIN, pattern(256), kRfcKey, false).substr(0, 4) == bytes({0x82, 0x7E, 0x01, 0x00}));
    CHECK(frame(FIN | BIN, pattern(65536), kRfcKey, false).substr(0, 10) ==
          bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
    CHECK(frame(FIN | BIN, pattern(256)).substr(0, 8) == bytes({0x82, 0xFE, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d}));
}

TEST_CASE("RFC 6455 §5.7: a single masked text frame, step by step") {
    std::string in = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    WsFrameReader reader(0);
    char out[16];
    const WsFrameReader::Step s = reader.next(in.data(), in.size(), out);
    CHECK(s.kind == WsFrameReader::Step::Kind::data);
    CHECK(s.consumed == 11);
    CHECK(s.length == 5);
    CHECK(s.text);
    CHECK(s.message_end);
    CHECK(std::string(out, 5) == "Hello");
    CHECK_FALSE(reader.in_message());

    // the header a byte at a time: need_more, each byte used
    WsFrameReader r2(0);
    for (std::size_t i = 0; i < 6; ++i) {
        const WsFrameReader::Step n = r2.next(in.data() + i, 1, out);
        CHECK(n.kind == WsFrameReader::Step::Kind::need_more);
        CHECK(n.consumed == 1);
    }
    const WsFrameReader::Step rest = r2.next(in.data() + 6, 5, in.data() + 6);
    CHECK(rest.kind == WsFrameReader::Step::Kind::data);
    CHECK(rest.consumed == 5);
    CHECK(rest.length == 5);
    CHECK(std::string(in.data() + 6, 5) == "Hello");
}

TEST_CASE("RFC 6455 §5.7 examples, split every way") {
    const std::string p256 = pattern(256, 7);
    const std::string p64k = pattern(65536, 9);
    check_cases({
        {"single-frame masked text", bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}), 0, kHello,
         {"T@5"}, 0},
        {"fragmented masked text Hel + lo", frame(TEXT, "Hel") + frame(FIN | CONT, "lo"), 0, kHello, {"T@5"}, 0},
        {"masked ping", frame(FIN | PING, kHello), 0, "", {"ping(Hello)@0"}, 0},
        {"masked pong (the §5.7 bytes)", bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}), 0, "",
         {"pong(Hello)@0"}, 0},
        {"256 bytes binary, 16-bit length", frame(FIN | BIN, p256), 0, p256, {"B@256"}, 0},
        {"64 KiB binary, 64-bit length", frame(FIN | BIN, p64k, {0x01, 0x80, 0xFE, 0x7F}), 0, p64k, {"B@65536"}, 0},
        {"the unmasked single-frame text of §5.7 from a client", bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), 0, "",
         {}, ws_close::protocol_error},
        {"the unmasked fragmented text of §5.7 from a client",
         bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}), 0, "", {}, ws_close::protocol_error},
        {"the unmasked ping of §5.7 from a client", bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), 0, "", {},
         ws_close::protocol_error},
    });
}

TEST_CASE("unmasking at every length and key, across word and key boundaries") {
    const Key keys[] = {{0x00, 0x00, 0x00, 0x00}, {0xFF, 0xFF, 0xFF, 0xFF}, {0x01, 0x02, 0x03, 0x04}, {0x80, 0x7F, 0x00, 0xC3}};
    std::vector<WsCase> cases;
    for (const Key& k : keys) {
        for (std::size_t n = 0; n <= 40; ++n) {
            const std::string p = pattern(n, static_cast<unsigned>(n + 3));
            cases.push_back({"binary of " + std::to_string(n) + " key " + std::to_string(k[3]), frame(FIN | BIN, p, k), 0, p,
                             {"B@" + std::to_string(n)}, 0});
        }
    }
    // two frames back to back in one read: the second's key starts over
    const std::string a = pattern(13, 5), b2 = pattern(22, 6);
    cases.push_back({"two messages", frame(FIN | BIN, a, {1, 2, 3, 4}) + frame(FIN | BIN, b2, {9, 8, 7, 6}), 0, a + b2,
                     {"B@13", "B@35"}, 0});
    // A longer length form than needed: RFC 6455 §5.2 tells senders to use the minimal one
    // but gives receivers no rule, and the contract's list of frame errors does not name it.
    cases.push_back({"16-bit form for 5 bytes", frame(FIN | BIN, kHello, kRfcKey, true, LengthForm::bits16), 0, kHello, {"B@5"}, 0});
    cases.push_back({"64-bit form for 300 bytes", frame(FIN | BIN, pattern(300), kRfcKey, true, LengthForm::bits64), 0,
                     pattern(300), {"B@300"}, 0});
    check_cases(cases);
}

// ---- errors ----------------------------------------------------------------------------------

TEST_CASE("broken frame rules close with 1002 (RFC 6455 §5.1-§5.5)") {
    const std::string hello = frame(FIN | TEXT, kHello);
    std::vector<WsCase> cases = {
        {"unmasked text", frame(FIN | TEXT, kHello, kRfcKey, false), 0, "", {}, 1002},
        {"unmasked empty binary", frame(FIN | BIN, "", kRfcKey, false), 0, "", {}, 1002},
        {"unmasked close", frame(FIN | CLOSE, close_payload(1000), kRfcKey, false), 0, "", {}, 1002},
        {"unmasked continuation inside a message", frame(TEXT, "Hel") + frame(FIN | CONT, "lo", kRfcKey, false), 0, "Hel",
         {}, 1002},
        {"unmasked after a good message", hello + frame(FIN | BIN, "x", kRfcKey, false), 0, kHello, {"T@5"}, 1002},
        {"RSV1 on text", frame(FIN | RSV1 | TEXT, kHello), 0, "", {}, 1002},
        {"RSV2 on text", frame(FIN | RSV2 | TEXT, kHello), 0, "", {}, 1002},
        {"RSV3 on text", frame(FIN | RSV3 | TEXT, kHello), 0, "", {}, 1002},
        {"RSV1 on binary (permessage-deflate was not negotiated)", frame(FIN | RSV1 | BIN, "x"), 0, "", {}, 1002},
        {"all RSV bits", frame(FIN | RSV1 | RSV2 | RSV3 | BIN, "x"), 0, "", {}, 1002},
        {"RSV1 on ping", frame(FIN | RSV1 | PING, ""), 0, "", {}, 1002},
        {"RSV2 on close", frame(FIN | RSV2 | CLOSE, ""), 0, "", {}, 1002},
        {"RSV3 on a continuation", frame(TEXT, "Hel") + frame(FIN | RSV3 | CONT, "lo"), 0, "Hel", {}, 1002},
        {"RSV1 after a good message", hello + frame(FIN | RSV1 | TEXT, kHello), 0, kHello, {"T@5"}, 1002},
        {"control frame of 126 bytes: ping", frame(FIN | PING, std::string(126, 'p')), 0, "", {}, 1002},
        {"control frame of 126 bytes: pong", frame(FIN | PONG, std::string(126, 'p')), 0, "", {}, 1002},
        {"control frame of 126 bytes: close", frame(FIN | CLOSE, close_payload(1000, std::string(124, 'r'))), 0, "", {}, 1002},
        {"control frame with a 64-bit length of 65536", frame(FIN | PING, std::string(65536, 'p')), 0, "", {}, 1002},
        {"fragmented ping", frame(PING, "x"), 0, "", {}, 1002},
        {"fragmented pong", frame(PONG, "x"), 0, "", {}, 1002},
        {"fragmented close", frame(CLOSE, close_payload(1000)), 0, "", {}, 1002},
        {"fragmented empty ping", frame(PING, ""), 0, "", {}, 1002},
        {"fragmented ping inside a fragmented message", frame(TEXT, "Hel") + frame(PING, "x") + frame(FIN | CONT, "lo"), 0,
         "Hel", {}, 1002},
        {"continuation without a start (FIN)", frame(FIN | CONT, kHello), 0, "", {}, 1002},
        {"continuation without a start (no FIN)", frame(CONT, kHello), 0, "", {}, 1002},
        {"empty continuation without a start", frame(FIN | CONT, ""), 0, "", {}, 1002},
        {"continuation after a whole message", hello + frame(FIN | CONT, "!"), 0, kHello, {"T@5"}, 1002},
        {"continuation after a fragmented message ended", frame(TEXT, "Hel") + frame(FIN | CONT, "lo") + frame(FIN | CONT, "!"),
         0, kHello, {"T@5"}, 1002},
        {"text inside a fragmented text message", frame(TEXT, "Hel") + frame(FIN | TEXT, "lo"), 0, "Hel", {}, 1002},
        {"binary inside a fragmented text message", frame(TEXT, "Hel") + frame(FIN | BIN, "lo"), 0, "Hel", {}, 1002},
        {"text inside a fragmented binary message", frame(BIN, "Hel") + frame(FIN | TEXT, "lo"), 0, "Hel", {}, 1002},
        {"unfinished binary inside a fragmented binary message", frame(BIN, "Hel") + frame(BIN, "lo"), 0, "Hel", {}, 1002},
        {"text inside a message after a continuation", frame(TEXT, "H") + frame(CONT, "el") + frame(TEXT, "lo"), 0, "Hel", {},
         1002},
        {"empty text inside a fragmented message", frame(BIN, "Hel") + frame(FIN | TEXT, ""), 0, "Hel", {}, 1002},
        {"close with a 1-byte payload", frame(FIN | CLOSE, "\x03"), 0, "", {}, 1002},
        {"close with the 1-byte payload 0F (0F00 would be the valid 3840)", frame(FIN | CLOSE, "\x0F"), 0, "", {}, 1002},
        {"close with a 1-byte payload after a ping of 00 E8 (03 E8 would be 1000)",
         frame(FIN | PING, bytes({0x00, 0xE8})) + frame(FIN | CLOSE, "\x03"), 0, "", {"ping(\\x00\\xE8)@0"}, 1002},
        {"close with a 1-byte payload after a message", hello + frame(FIN | CLOSE, "x"), 0, kHello, {"T@5"}, 1002},
        {"64-bit length with its most significant bit set",
         bytes({0x82, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x37, 0xfa, 0x21, 0x3d}) + "abcde", 0, "", {}, 1002},
        {"64-bit length of all ones",
         bytes({0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x37, 0xfa, 0x21, 0x3d}) + "abc", 0, "", {}, 1002},
        {"64-bit length MSB on a continuation", frame(BIN, "ab") +
                                                    bytes({0x80, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 1, 2, 3, 4}),
         0, "ab", {}, 1002},
    };
    for (unsigned op : {3u, 4u, 5u, 6u, 7u, 0xBu, 0xCu, 0xDu, 0xEu, 0xFu}) {
        cases.push_back({"unknown opcode " + std::to_string(op), frame(FIN | op, "abc"), 0, "", {}, 1002});
        cases.push_back({"unknown opcode " + std::to_string(op) + ", empty, no FIN", frame(op, ""), 0, "", {}, 1002});
        cases.push_back({"unknown opcode " + std::to_string(op) + " inside a message", frame(TEXT, "Hel") + frame(FIN | op, "x"), 0,
                         "Hel", {}, 1002});
    }
    check_cases(cases);
}

TEST_CASE("close codes (RFC 6455 §7.4.1, §7.4.2; terminate decisions): invalid ones are 1002") {
    std::vector<WsCase> cases;
    for (int code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        cases.push_back({"close code " + std::to_string(code), frame(FIN | CLOSE, close_payload(code)), 0, "", {}, 1002});
        cases.push_back({"close code " + std::to_string(code) + " with a reason", frame(FIN | CLOSE, close_payload(code, "bye")),
                         0, "", {}, 1002});
    }
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
        cases.push_back({"close code " + std::to_string(code), frame(FIN | CLOSE, close_payload(code)), 0, "",
                         {"close(" + std::to_string(code) + ",)@0"}, 0});
        cases.push_back({"close code " + std::to_string(code) + " with a reason",
                         frame(FIN | CLOSE, close_payload(code, "going")), 0, "",
                         {"close(" + std::to_string(code) + ",going)@0"}, 0});
    }
    check_cases(cases);

    std::vector<int> wrong;
    for (int code = 0; code <= 65535; ++code) {
        const bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
        if (is_valid_close_code(static_cast<std::uint16_t>(code)) != valid) wrong.push_back(code);
    }
    const int first_wrong = wrong.empty() ? -1 : wrong.front();
    CAPTURE(first_wrong);
    CHECK(wrong.empty());
}

TEST_CASE("close frames: no payload, code, reason; UTF-8 of the reason is 1007 (RFC 6455 §5.5.1, §8.1)") {
    check_cases({
        {"empty close", frame(FIN | CLOSE, ""), 0, "", {"close(0,)@0"}, 0},
        {"close 1000", frame(FIN | CLOSE, close_payload(1000)), 0, "", {"close(1000,)@0"}, 0},
        {"close with a 123-byte reason (125 bytes)", frame(FIN | CLOSE, close_payload(1001, std::string(123, 'r'))), 0, "",
         {"close(1001," + std::string(123, 'r') + ")@0"}, 0},
        {"close with a multi-byte reason", frame(FIN | CLOSE, close_payload(1000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")),
         0, "", {"close(1000,\\xCE\\xBA\\xE1\\xBD\\xB9\\xCF\\x83\\xCE\\xBC\\xCE\\xB5)@0"}, 0},
        {"close with a 4-byte character reason", frame(FIN | CLOSE, close_payload(4000, "\xF0\x9D\x84\x9E")), 0, "",
         {"close(4000,\\xF0\\x9D\\x84\\x9E)@0"}, 0},
        {"close reason with an invalid byte", frame(FIN | CLOSE, close_payload(1000, "ab\xFF")), 0, "", {}, 1007},
        {"close reason cut inside a character", frame(FIN | CLOSE, close_payload(1000, "ab\xE2\x82")), 0, "", {}, 1007},
        {"close reason overlong", frame(FIN | CLOSE, close_payload(1000, "\xC0\xAF")), 0, "", {}, 1007},
        {"close reason surrogate", frame(FIN | CLOSE, close_payload(1000, "\xED\xA0\x80")), 0, "", {}, 1007},
        {"close reason above U+10FFFF", frame(FIN | CLOSE, close_payload(1000, "\xF4\x90\x80\x80")), 0, "", {}, 1007},
        {"close inside a fragmented message", frame(TEXT, "Hel") + frame(FIN | CLOSE, close_payload(1000, "bye")), 0, "Hel",
         {"close(1000,bye)@3"}, 0},
        {"close after a message", frame(FIN | TEXT, kHello) + frame(FIN | CLOSE, close_payload(1001)), 0, kHello,
         {"T@5", "close(1001,)@5"}, 0},
        {"invalid-reason close after a message", frame(FIN | BIN, kHello) + frame(FIN | CLOSE, close_payload(1000, "\x80")), 0,
         kHello, {"B@5"}, 1007},
    });
}

TEST_CASE("text messages must be UTF-8: 1007 (RFC 6455 §8.1)") {
    check_cases({
        {"invalid byte in one frame", frame(FIN | TEXT, "ab\xFF" "cd"), 0, "ab", {}, 1007},
        {"overlong in one frame", frame(FIN | TEXT, "\xC0\x80"), 0, "", {}, 1007},
        {"surrogate in one frame", frame(FIN | TEXT, "x\xED\xA0\x80y"), 0, "x\xED", {}, 1007},
        {"above U+10FFFF", frame(FIN | TEXT, "\xF4\x90\x80\x80"), 0, "\xF4", {}, 1007},
        {"Autobahn 6.3.1", frame(FIN | TEXT, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64"), 0,
         "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED", {}, 1007},
        {"invalid byte in the second fragment", frame(TEXT, "Hel") + frame(FIN | CONT, "l\xFF"), 0, "Hell", {}, 1007},
        {"character split across fragments, bad continuation", frame(TEXT, "a\xCE") + frame(FIN | CONT, "\x41"), 0, "a\xCE", {},
         1007},
        {"surrogate split across fragments", frame(TEXT, "\xED") + frame(FIN | CONT, "\xA0\x80"), 0, "\xED", {}, 1007},
        {"over U+10FFFF split across three fragments", frame(TEXT, "\xF4") + frame(CONT, "") + frame(FIN | CONT, "\x90\x80\x80"),
         0, "\xF4", {}, 1007},
        {"message ends inside a character", frame(FIN | TEXT, "a\xE2\x82"), 0, "a\xE2\x82", {}, 1007},
        {"fragmented message ends inside a character", frame(TEXT, "a\xE2") + frame(FIN | CONT, "\x82"), 0, "a\xE2\x82", {},
         1007},
        {"message ends inside a character after an empty last fragment", frame(TEXT, "a\xF0\x9F") + frame(FIN | CONT, ""), 0,
         "a\xF0\x9F", {}, 1007},
        {"the next message starts with a continuation byte", frame(FIN | TEXT, "ok") + frame(FIN | TEXT, "\x80"), 0, "ok",
         {"T@2"}, 1007},
        {"invalid after a ping inside the message", frame(TEXT, "a") + frame(FIN | PING, "p") + frame(FIN | CONT, "\xC1\x81"), 0,
         "a", {"ping(p)@1"}, 1007},
        // not errors
        {"binary messages are not UTF-8-checked", frame(FIN | BIN, "\xFF\xC0\x80\xED\xA0\x80"), 0, "\xFF\xC0\x80\xED\xA0\x80",
         {"B@6"}, 0},
        {"binary then text: the text is checked from its start",
         frame(BIN, "\xE2") + frame(FIN | CONT, "") + frame(FIN | TEXT, "\x82\xAC"), 0, "\xE2", {"B@1"}, 1007},
        {"a character completed after a ping", frame(TEXT, "a\xE2\x82") + frame(FIN | PING, "") + frame(FIN | CONT, "\xAC"), 0,
         "a\xE2\x82\xAC", {"ping()@3", "T@4"}, 0},
        {"a ping's payload is not UTF-8-checked", frame(FIN | PING, "\xFF") + frame(FIN | PONG, "\xC0"), 0, "",
         {"ping(\\xFF)@0", "pong(\\xC0)@0"}, 0},
        {"noncharacters are UTF-8", frame(FIN | TEXT, "\xEF\xBF\xBE\xEF\xBF\xBF\xF4\x8F\xBF\xBF"), 0,
         "\xEF\xBF\xBE\xEF\xBF\xBF\xF4\x8F\xBF\xBF", {"T@10"}, 0},
    });
}

TEST_CASE("valid multi-byte UTF-8 split across fragments at every position") {
    // 2-, 3- and 4-byte characters (κόσμε, €, 𝄞) between ASCII
    const std::string text = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5-\xE2\x82\xAC-\xF0\x9D\x84\x9E!";
    const std::string end = "T@" + std::to_string(text.size());
    std::vector<WsCase> cases;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        cases.push_back({"two fragments at " + std::to_string(i), frame(TEXT, text.substr(0, i)) + frame(FIN | CONT, text.substr(i)),
                         0, text, {end}, 0});
    }
    check_cases(cases);

    // three fragments at every pair of positions, and a pong between them (fewer splits)
    std::string mismatch;
    for (std::size_t i = 0; i <= text.size() && mismatch.empty(); ++i) {
        for (std::size_t j = i; j <= text.size() && mismatch.empty(); ++j) {
            const std::string input = frame(TEXT, text.substr(0, i)) + frame(FIN | PONG, "") + frame(CONT, text.substr(i, j - i)) +
                                      frame(FIN | CONT, text.substr(j));
            for (Mode mode : {Mode::separate, Mode::in_place, Mode::packed}) {
                for (const std::vector<std::size_t>& cuts : {std::vector<std::size_t>{}, [&] {
                         std::vector<std::size_t> every;
                         for (std::size_t k = 1; k < input.size(); ++k) every.push_back(k);
                         return every;
                     }()}) {
                    const Outcome o = run(input, 0, cuts, mode);
                    const std::vector<std::string> want = {"pong()@" + std::to_string(i), end};
                    if (!o.problem.empty() || o.error != 0 || o.payload != text || o.events != want) {
                        mismatch = "fragments at " + std::to_string(i) + "," + std::to_string(j) + " " + mode_name(mode) +
                                   ": error " + std::to_string(o.error) + " events [" + join(o.events) + "] " + o.problem;
                    }
                }
            }
        }
    }
    CHECK(mismatch == "");
}

TEST_CASE("max_message: a message over the limit is 1009, exactly the limit passes") {
    const std::string p10 = pattern(10, 3);
    const std::string p64k = pattern(65536, 4);
    check_cases({
        {"single frame of max + 1", frame(FIN | BIN, pattern(11)), 10, "", {}, 1009},
        {"single text frame of max + 1", frame(FIN | TEXT, std::string(11, 't')), 10, "", {}, 1009},
        {"single frame of exactly max", frame(FIN | BIN, p10), 10, p10, {"B@10"}, 0},
        {"fragments 5 + 6", frame(BIN, p10.substr(0, 5)) + frame(FIN | CONT, "abcdef"), 10, p10.substr(0, 5), {}, 1009},
        {"fragments 4 + 4 + 4", frame(TEXT, "abcd") + frame(CONT, "efgh") + frame(FIN | CONT, "ijkl"), 10, "abcdefgh", {}, 1009},
        {"fragments 5 + 5", frame(BIN, p10.substr(0, 5)) + frame(FIN | CONT, p10.substr(5)), 10, p10, {"B@10"}, 0},
        {"fragments 10 + 0", frame(BIN, p10) + frame(FIN | CONT, ""), 10, p10, {"B@10"}, 0},
        {"fragments 10 + 1", frame(BIN, p10) + frame(FIN | CONT, "x"), 10, p10, {}, 1009},
        {"the limit is per message", frame(FIN | BIN, p10) + frame(FIN | TEXT, "0123456789") + frame(BIN, "01234") +
                                         frame(FIN | CONT, "56789"),
         10, p10 + "0123456789" + "0123456789", {"B@10", "T@20", "B@30"}, 0},
        {"control frames are not counted", frame(BIN, "01234") + frame(FIN | PING, std::string(100, 'p')) + frame(FIN | CONT, "56789"),
         10, "0123456789", {"ping(" + std::string(100, 'p') + ")@5", "B@10"}, 0},
        {"a control frame longer than max_message", frame(FIN | PONG, std::string(125, 'q')), 10, "",
         {"pong(" + std::string(125, 'q') + ")@0"}, 0},
        {"a close frame longer than max_message", frame(FIN | CLOSE, close_payload(1000, "a long goodbye")), 10, "",
         {"close(1000,a long goodbye)@0"}, 0},
        {"max 1: one byte", frame(FIN | TEXT, "a"), 1, "a", {"T@1"}, 0},
        {"max 1: two bytes", frame(FIN | TEXT, "ab"), 1, "", {}, 1009},
        {"max 1: empty message", frame(FIN | TEXT, ""), 1, "", {"T@0"}, 0},
        {"64 KiB at a max of 65536", frame(FIN | BIN, p64k), 65536, p64k, {"B@65536"}, 0},
        {"64 KiB at a max of 65535", frame(FIN | BIN, p64k), 65535, "", {}, 1009},
        {"a declared 2^40 bytes over 1 MiB",
         bytes({0x82, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x37, 0xfa, 0x21, 0x3d}) + "abc", 1 << 20, "", {}, 1009},
    });
}

TEST_CASE("max_message 0 accepts any length; the payload streams before the frame ends") {
    // a 2^40-byte frame: its first 100 bytes are handed out as they come
    const std::string p = pattern(100, 11);
    std::string in = bytes({0x82, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x37, 0xfa, 0x21, 0x3d});
    for (std::size_t i = 0; i < p.size(); ++i) in.push_back(static_cast<char>(static_cast<unsigned char>(p[i]) ^ kRfcKey[i % 4]));
    check_cases({{"2^40-byte frame, first 100 bytes", in, 0, p, {}, 0},
                 {"2^63 - 1 bytes declared",
                  bytes({0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}) + "xyz", 0, "xyz", {}, 0}});
}

TEST_CASE("control frames interleaved in a fragmented message; zero-length frames") {
    check_cases({
        {"ping and pong between fragments",
         frame(TEXT, "Hel") + frame(FIN | PING, "are you there") + frame(FIN | PONG, "") + frame(FIN | CONT, "lo"), 0, kHello,
         {"ping(are you there)@3", "pong()@3", "T@5"}, 0},
        {"pings between every fragment",
         frame(BIN, "a") + frame(FIN | PING, "1") + frame(CONT, "b") + frame(FIN | PING, "2") + frame(CONT, "c") +
             frame(FIN | PING, "3") + frame(FIN | CONT, "d"),
         0, "abcd", {"ping(1)@1", "ping(2)@2", "ping(3)@3", "B@4"}, 0},
        {"a ping of 125 bytes inside a message", frame(TEXT, "x") + frame(FIN | PING, std::string(125, 'z')) + frame(FIN | CONT, "y"),
         0, "xy", {"ping(" + std::string(125, 'z') + ")@1", "T@2"}, 0},
        {"empty text", frame(FIN | TEXT, ""), 0, "", {"T@0"}, 0},
        {"empty binary", frame(FIN | BIN, ""), 0, "", {"B@0"}, 0},
        {"empty close", frame(FIN | CLOSE, ""), 0, "", {"close(0,)@0"}, 0},
        {"empty ping", frame(FIN | PING, ""), 0, "", {"ping()@0"}, 0},
        {"empty pong", frame(FIN | PONG, ""), 0, "", {"pong()@0"}, 0},
        {"empty fragments", frame(TEXT, "") + frame(CONT, "") + frame(FIN | CONT, ""), 0, "", {"T@0"}, 0},
        {"empty first fragment", frame(BIN, "") + frame(FIN | CONT, "abc"), 0, "abc", {"B@3"}, 0},
        {"empty last fragment", frame(TEXT, "abc") + frame(FIN | CONT, ""), 0, "abc", {"T@3"}, 0},
        {"empty messages in a row", frame(FIN | TEXT, "") + frame(FIN | BIN, "") + frame(FIN | PING, "") + frame(FIN | TEXT, ""), 0,
         "", {"T@0", "B@0", "ping()@0", "T@0"}, 0},
        {"a stream of messages and controls",
         frame(FIN | TEXT, "one") + frame(FIN | PING, "p") + frame(BIN, "tw") + frame(FIN | PONG, "q") + frame(FIN | CONT, "o") +
             frame(FIN | TEXT, "three", {0xAA, 0xBB, 0xCC, 0xDD}) + frame(FIN | CLOSE, close_payload(1000, "done")),
         0, "onetwothree", {"T@3", "ping(p)@3", "pong(q)@5", "B@6", "T@11", "close(1000,done)@11"}, 0},
    });
}

TEST_CASE("the reader's own promises: a frame header cut short is need_more; an error is final") {
    WsFrameReader reader(0);
    std::string in = frame(FIN | BIN, "abc");
    char out[8];
    WsFrameReader::Step s = reader.next(in.data(), 1, out);
    CHECK(s.kind == WsFrameReader::Step::Kind::need_more);
    CHECK(s.consumed == 1);
    s = reader.next(in.data() + 1, 5, out);  // the rest of the header
    CHECK(s.kind == WsFrameReader::Step::Kind::need_more);
    CHECK(s.consumed == 5);
    CHECK(reader.in_message());
    s = reader.next(in.data() + 6, 1, out);
    CHECK(s.kind == WsFrameReader::Step::Kind::data);
    CHECK(s.length == 1);
    CHECK_FALSE(s.message_end);
    CHECK(out[0] == 'a');
    s = reader.next(in.data() + 7, 2, out);
    CHECK(s.kind == WsFrameReader::Step::Kind::data);
    CHECK(s.length == 2);
    CHECK(s.message_end);
    CHECK(std::string(out, 2) == "bc");

    std::string bad = frame(FIN | RSV1 | TEXT, "x") + frame(FIN | TEXT, "fine");
    WsFrameReader r2(0);
    s = r2.next(bad.data(), bad.size(), out);
    CHECK(s.kind == WsFrameReader::Step::Kind::error);
    CHECK(s.error == ws_close::protocol_error);
    CHECK(s.reason != nullptr);
    // whatever follows is not read
    std::string good = frame(FIN | TEXT, "fine");
    s = r2.next(good.data(), good.size(), out);
    CHECK(s.kind == WsFrameReader::Step::Kind::error);
}

TEST_CASE("packed in place: the payloads of one read end up at the start of its buffer") {
    const std::string a = pattern(300, 21);
    std::string buf = frame(FIN | TEXT, kHello) + frame(FIN | PING, "ping!") + frame(BIN, a, {5, 6, 7, 8}) + frame(FIN | PONG, "") +
                      frame(FIN | CONT, " world", {0xF0, 0x0F, 0x55, 0xAA}) + frame(FIN | CLOSE, close_payload(1000));
    WsFrameReader reader(0);
    std::size_t pos = 0;
    std::size_t written = 0;
    std::string controls;
    while (pos < buf.size()) {
        const WsFrameReader::Step s = reader.next(buf.data() + pos, buf.size() - pos, buf.data() + written);
        REQUIRE(s.kind != WsFrameReader::Step::Kind::error);
        REQUIRE(s.kind != WsFrameReader::Step::Kind::need_more);
        if (s.kind == WsFrameReader::Step::Kind::data) written += s.length;
        if (s.kind == WsFrameReader::Step::Kind::control) controls += std::string(reader.control_payload()) + "|";
        pos += s.consumed;
    }
    CHECK(written == 5 + 300 + 6);
    CHECK(buf.substr(0, written) == kHello + a + " world");
    CHECK(controls == "ping!||" + close_payload(1000) + "|");
}

// ---- the server frame writer -----------------------------------------------------------------

TEST_CASE("server frame headers: 2, 4 or 10 bytes at 125/126/65535/65536 (RFC 6455 §5.2)") {
    struct HeaderCase {
        WsOpcode opcode;
        std::uint64_t len;
        bool fin;
        std::string want;
    };
    const std::vector<HeaderCase> cases = {
        {WsOpcode::binary, 0, true, bytes({0x82, 0x00})},
        {WsOpcode::binary, 5, true, bytes({0x82, 0x05})},
        {WsOpcode::text, 125, true, bytes({0x81, 0x7D})},
        {WsOpcode::binary, 126, true, bytes({0x82, 0x7E, 0x00, 0x7E})},
        {WsOpcode::binary, 256, true, bytes({0x82, 0x7E, 0x01, 0x00})},  // §5.7
        {WsOpcode::binary, 65535, true, bytes({0x82, 0x7E, 0xFF, 0xFF})},
        {WsOpcode::binary, 65536, true, bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00})},  // §5.7
        {WsOpcode::binary, 0x0123456789ABCDEFull, true, bytes({0x82, 0x7F, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF})},
        {WsOpcode::binary, 0x7FFFFFFFFFFFFFFFull, true, bytes({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})},
        {WsOpcode::text, 3, false, bytes({0x01, 0x03})},
        {WsOpcode::continuation, 70000, true, bytes({0x80, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x70})},
        {WsOpcode::continuation, 200, false, bytes({0x00, 0x7E, 0x00, 0xC8})},
        {WsOpcode::close, 2, true, bytes({0x88, 0x02})},
        {WsOpcode::ping, 0, true, bytes({0x89, 0x00})},
        {WsOpcode::pong, 125, true, bytes({0x8A, 0x7D})},
    };
    for (const HeaderCase& c : cases) {
        const std::uint64_t len = c.len;
        CAPTURE(len);
        char out[kMaxServerFrameHeader + 4];
        std::fill(std::begin(out), std::end(out), '#');
        const std::size_t n = write_server_frame_header(out, c.opcode, c.len, c.fin);
        CHECK(n == c.want.size());
        CHECK(server_frame_header_size(c.len) == c.want.size());
        CHECK(std::string(out, n) == c.want);
        CHECK(std::string(out + n, sizeof out - n) == std::string(sizeof out - n, '#'));  // nothing written past it
    }
    CHECK(kMaxServerFrameHeader == 10);
    CHECK(server_frame_header_size(125) == 2);
    CHECK(server_frame_header_size(126) == 4);
    CHECK(server_frame_header_size(65535) == 4);
    CHECK(server_frame_header_size(65536) == 10);
    // the default is a final frame
    char out[2];
    write_server_frame_header(out, WsOpcode::binary, 1);
    CHECK(static_cast<unsigned char>(out[0]) == 0x82);
}

TEST_CASE("server close and pong frames are whole, unmasked control frames (RFC 6455 §5.5)") {
    CHECK(server_close_frame(1000) == bytes({0x88, 0x02, 0x03, 0xE8}));
    CHECK(server_close_frame(1002) == bytes({0x88, 0x02, 0x03, 0xEA}));
    CHECK(server_close_frame(1007) == bytes({0x88, 0x02, 0x03, 0xEF}));
    CHECK(server_close_frame(1009) == bytes({0x88, 0x02, 0x03, 0xF1}));
    CHECK(server_close_frame(1011, "bye") == bytes({0x88, 0x05, 0x03, 0xF3, 'b', 'y', 'e'}));
    CHECK(server_close_frame(4999) == bytes({0x88, 0x02, 0x13, 0x87}));
    const std::string reason123(123, 'r');
    CHECK(server_close_frame(1001, reason123) == bytes({0x88, 0x7D, 0x03, 0xE9}) + reason123);
    // never a control frame over 125 bytes
    const std::string longer = server_close_frame(1001, std::string(200, 'r'));
    CHECK(longer.size() <= 127);
    CHECK(static_cast<std::size_t>(static_cast<unsigned char>(longer[1])) == longer.size() - 2);

    CHECK(server_control_frame(WsOpcode::pong, kHello) == bytes({0x8A, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    CHECK(server_control_frame(WsOpcode::pong, "") == bytes({0x8A, 0x00}));
    const std::string p125(125, '\xFF');
    CHECK(server_control_frame(WsOpcode::pong, p125) == bytes({0x8A, 0x7D}) + p125);
    CHECK(server_control_frame(WsOpcode::ping, "x") == bytes({0x89, 0x01, 'x'}));
    // a pong answering a ping carries the same payload: read a ping, answer it
    WsFrameReader reader(0);
    std::string ping = frame(FIN | PING, std::string("\x00\x01\xFE\xFF", 4), {0x11, 0x22, 0x33, 0x44});
    const WsFrameReader::Step s = reader.next(ping.data(), ping.size(), ping.data());
    REQUIRE(s.kind == WsFrameReader::Step::Kind::control);
    CHECK(server_control_frame(WsOpcode::pong, reader.control_payload()) == bytes({0x8A, 0x04, 0x00, 0x01, 0xFE, 0xFF}));
}

}  // namespace sy
