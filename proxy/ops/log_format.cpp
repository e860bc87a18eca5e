#include "proxy/ops/log_format.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

namespace sy {

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::size_t kTextTargetMax = 512;
// Everything of a line that is not a variable string: keys, punctuation, numbers, words.
constexpr std::size_t kFixedPart = 400;

// A raw cursor into memory the caller sized with max_line_size: no bounds checks, no
// per-piece capacity checks (a line is some forty pieces; std::string::append per piece
// cost more than the rest of the formatting).
class Cursor {
public:
    explicit Cursor(char* p) : p_(p) {}
    char* end() const { return p_; }

    void put(char c) { *p_++ = c; }
    void put(std::string_view s) {
        std::memcpy(p_, s.data(), s.size());
        p_ += s.size();
    }
    template <std::size_t N>
    void lit(const char (&s)[N]) {
        std::memcpy(p_, s, N - 1);
        p_ += N - 1;
    }
    void number(std::uint64_t v) { p_ = std::to_chars(p_, p_ + 20, v).ptr; }
    // Copies bytes while `keep` says so (byte by byte: the runs are short, and a memcpy
    // call costs more than the copy); returns where it stopped.
    template <typename Keep>
    std::size_t copy_while(std::string_view s, std::size_t i, Keep keep) {
        while (i < s.size() && keep(static_cast<unsigned char>(s[i]))) *p_++ = s[i++];
        return i;
    }
    void hex_byte(unsigned char b) {
        put(kHex[b >> 4]);
        put(kHex[b & 0xf]);
    }

private:
    char* p_;
};

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (b0 < 0x80) return 1;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        n = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        n = 3;
        if (b0 == 0xe0) lo = 0xa0;
        if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        n = 4;
        if (b0 == 0xf0) lo = 0x90;
        if (b0 == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (s.size() < n) return 0;
    const auto b1 = static_cast<unsigned char>(s[1]);
    if (b1 < lo || b1 > hi) return 0;
    for (std::size_t i = 2; i < n; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80 || b > 0xbf) return 0;
    }
    return n;
}

// Bytes that go into a JSON string, and into the text format, as they are: printable
// ASCII but the quote and the backslash. A table: one load per byte on the hot loop.
constexpr std::array<bool, 256> kPlain = [] {
    std::array<bool, 256> table{};
    for (int b = 0x20; b < 0x7f; ++b) table[static_cast<std::size_t>(b)] = b != '"' && b != '\\';
    return table;
}();
bool plain(unsigned char b) { return kPlain[b]; }

// At most 6 bytes out per byte in (\u00XX).
void json_string(Cursor& out, std::string_view bytes) {
    out.put('"');
    std::size_t i = 0;
    while (i < bytes.size()) {
        i = out.copy_while(bytes, i, plain);  // the common case: plain ASCII
        if (i == bytes.size()) break;
        const auto b = static_cast<unsigned char>(bytes[i]);
        if (b >= 0x80) {
            const std::size_t n = utf8_sequence(bytes.substr(i));
            if (n == 0) {
                out.lit("\\u00");
                out.hex_byte(b);
                ++i;
            } else {
                out.put(bytes.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (b) {
            case '"': out.lit("\\\""); break;
            case '\\': out.lit("\\\\"); break;
            case '\n': out.lit("\\n"); break;
            case '\r': out.lit("\\r"); break;
            case '\t': out.lit("\\t"); break;
            default:  // the other control characters and DEL
                out.lit("\\u00");
                out.hex_byte(b);
        }
        ++i;
    }
    out.put('"');
}

// A string the proxy made or validated itself (an IP address, a route name, a server
// address from the configuration, an end word): never anything to escape, so no scan.
void json_known_plain_or_null(Cursor& out, std::string_view value) {
    if (value.empty()) {
        out.lit("null");
        return;
    }
    out.put('"');
    out.put(value);
    out.put('"');
}

void json_or_null(Cursor& out, std::string_view value) {
    if (value.empty()) {
        out.lit("null");
    } else {
        json_string(out, value);
    }
}

// Milliseconds with microsecond resolution, without trailing zeros ("0.412", "30534.2").
void milliseconds(Cursor& out, double ms) {
    const auto us = static_cast<std::uint64_t>(ms <= 0 ? 0.0 : ms * 1000.0 + 0.5);
    out.number(us / 1000);
    const std::uint64_t fraction = us % 1000;
    if (fraction == 0) return;
    const char digits[4] = {'.', static_cast<char>('0' + fraction / 100), static_cast<char>('0' + fraction / 10 % 10),
                            static_cast<char>('0' + fraction % 10)};
    std::size_t n = 4;
    while (digits[n - 1] == '0') --n;
    out.put(std::string_view(digits, n));
}

void http_version(Cursor& out, const AccessRecord& r) {
    out.put(static_cast<char>('0' + r.http_major % 10));
    out.put('.');
    out.put(static_cast<char>('0' + r.http_minor % 10));
}

// Request-line bytes for the text format: printable ASCII but the space, the quote and the
// backslash (so the quoted request line stays unambiguous) as is, the rest as \xHH. At
// most 4 bytes out per byte in.
void text_escaped(Cursor& out, std::string_view bytes) {
    std::size_t i = 0;
    while (i < bytes.size()) {
        i = out.copy_while(bytes, i, [](unsigned char b) { return plain(b) && b != ' '; });
        if (i == bytes.size()) break;
        out.lit("\\x");
        out.hex_byte(static_cast<unsigned char>(bytes[i++]));
    }
}

void text_field(Cursor& out, std::string_view v) {
    if (v.empty()) {
        out.put('-');
    } else {
        text_escaped(out, v);
    }
}

char* write_text_line(char* begin, const AccessRecord& r, std::string_view time) {
    Cursor out(begin);
    out.put(time);
    out.put(' ');
    text_field(out, r.client);
    out.lit(" \"");
    if (r.method.empty()) {
        out.lit("- - -");
    } else {
        text_escaped(out, r.method);
        out.put(' ');
        text_escaped(out, r.target.substr(0, kTextTargetMax));
        out.lit(" HTTP/");
        http_version(out, r);
    }
    out.lit("\" ");
    out.number(static_cast<std::uint64_t>(r.status));
    out.lit(" in=");
    out.number(r.bytes_in);
    out.lit(" out=");
    out.number(r.bytes_out);
    out.put(' ');
    out.number(static_cast<std::uint64_t>(r.tunnel ? r.tunnel_ms : r.request_ms));
    out.lit("ms route=");
    text_field(out, r.route);
    out.lit(" upstream=");
    text_field(out, r.upstream);
    out.lit(" server=");
    text_field(out, r.server);
    out.put(' ');
    if (r.tunnel) out.lit("tunnel_");
    out.put(r.end);
    if (!r.protocol.empty()) {
        out.lit(" proto=");
        text_escaped(out, r.protocol);
    }
    out.put('\n');
    return out.end();
}

char* write_json_line(char* begin, const AccessRecord& r, std::string_view time) {
    Cursor out(begin);
    out.lit("{\"time\":\"");
    out.put(time);
    if (r.tunnel) {
        out.lit("\",\"event\":\"tunnel\",\"client\":");
    } else {
        out.lit("\",\"event\":\"exchange\",\"client\":");
    }
    json_known_plain_or_null(out, r.client);
    out.lit(",\"method\":");
    json_or_null(out, r.method);
    out.lit(",\"target\":");
    if (r.method.empty()) {
        out.lit("null,\"version\":null");
    } else {
        json_string(out, r.target);
        out.lit(",\"version\":\"");
        http_version(out, r);
        out.put('"');
    }
    out.lit(",\"status\":");
    if (r.status == 0) {
        out.lit("null");
    } else {
        out.number(static_cast<std::uint64_t>(r.status));
    }
    out.lit(",\"route\":");
    json_known_plain_or_null(out, r.route);
    out.lit(",\"upstream\":");
    json_or_null(out, r.upstream);
    out.lit(",\"server\":");
    json_known_plain_or_null(out, r.server);
    out.lit(",\"upgrade\":");
    if (r.upgrade == UpgradeOutcome::none) {
        out.lit("null");
    } else {
        out.put('"');
        out.put(outcome_name(r.upgrade));
        out.put('"');
    }
    out.lit(",\"protocol\":");
    json_or_null(out, r.protocol);
    out.lit(",\"bytes_in\":");
    out.number(r.bytes_in);
    out.lit(",\"bytes_out\":");
    out.number(r.bytes_out);
    out.lit(",\"request_ms\":");
    milliseconds(out, r.request_ms);
    out.lit(",\"tunnel_ms\":");
    if (r.tunnel_ms < 0) {
        out.lit("null");
    } else {
        milliseconds(out, r.tunnel_ms);
    }
    out.lit(",\"end\":");
    json_known_plain_or_null(out, r.end);
    out.lit("}\n");
    return out.end();
}

}  // namespace

std::size_t max_line_size(const AccessRecord& r, std::string_view time) {
    const std::size_t strings = r.client.size() + r.method.size() + r.target.size() + r.route.size() +
                                r.upstream.size() + r.server.size() + r.protocol.size() + r.end.size();
    return kFixedPart + time.size() + 6 * strings;
}

char* write_line(char* out, const AccessRecord& record, std::string_view time, AccessLogFormat format) {
    return format == AccessLogFormat::json ? write_json_line(out, record, time) : write_text_line(out, record, time);
}

void append_line(std::string& out, const AccessRecord& record, std::string_view time, AccessLogFormat format) {
    const std::size_t old = out.size();
    out.resize(old + max_line_size(record, time));
    char* end = write_line(out.data() + old, record, time, format);
    out.resize(static_cast<std::size_t>(end - out.data()));
}

void append_text_line(std::string& out, const AccessRecord& record, std::string_view time) {
    append_line(out, record, time, AccessLogFormat::text);
}

void append_json_line(std::string& out, const AccessRecord& record, std::string_view time) {
    append_line(out, record, time, AccessLogFormat::json);
}

void append_json_string(std::string& out, std::string_view bytes) {
    const std::size_t old = out.size();
    out.resize(old + 2 + 6 * bytes.size());
    Cursor cursor(out.data() + old);
    json_string(cursor, bytes);
    out.resize(static_cast<std::size_t>(cursor.end() - out.data()));
}

std::string rfc3339_ms(std::int64_t unix_ms) {
    // The date and time change once a second: each thread keeps its last one.
    thread_local std::int64_t last_second = -1;
    thread_local char prefix[24];
    thread_local std::size_t prefix_len = 0;
    const std::int64_t second = unix_ms / 1000;
    if (second != last_second) {
        const auto seconds = static_cast<std::time_t>(second);
        std::tm tm{};
        gmtime_r(&seconds, &tm);
        prefix_len = std::strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        last_second = second;
    }
    const auto ms = static_cast<int>(unix_ms % 1000);
    std::string text(prefix, prefix_len);
    const char tail[5] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                          static_cast<char>('0' + ms % 10), 'Z'};
    text.append(tail, 5);
    return text;
}

}  // namespace sy
