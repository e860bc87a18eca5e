#include "proxy/ops/log_format.hpp"

#include "parser/serialize.hpp"

#include <cstdio>
#include <ctime>

namespace sy {

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::size_t kTextTargetMax = 512;

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

void append_u00(std::string& out, unsigned char byte) {
    out += "\\u00";
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
}

// Milliseconds with microsecond resolution, without trailing zeros ("0.412", "30534.2").
void append_ms(std::string& out, double ms) {
    char text[40];
    int n = std::snprintf(text, sizeof text, "%.3f", ms < 0 ? 0.0 : ms);
    std::string_view v(text, static_cast<std::size_t>(n));
    while (v.back() == '0') v.remove_suffix(1);
    if (v.back() == '.') v.remove_suffix(1);
    out += v;
}

void append_json_or_null(std::string& out, std::string_view value) {
    if (value.empty()) {
        out += "null";
    } else {
        append_json_string(out, value);
    }
}

// Request-line bytes for the text format: printable ASCII as is, everything else (and the
// quote and backslash, so the quoted request line stays unambiguous) as \xHH.
void append_text_escaped(std::string& out, std::string_view bytes) {
    for (char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        if (b > 0x20 && b < 0x7f && c != '"' && c != '\\') {
            out += c;
        } else {
            out += "\\x";
            out += kHex[b >> 4];
            out += kHex[b & 0xf];
        }
    }
}

void append_text_field(std::string& out, std::string_view v) {
    if (v.empty()) {
        out += '-';
    } else {
        append_text_escaped(out, v);
    }
}

}  // namespace

void append_json_string(std::string& out, std::string_view bytes) {
    out += '"';
    std::size_t i = 0;
    while (i < bytes.size()) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        if (b >= 0x80) {
            const std::size_t n = utf8_sequence(bytes.substr(i));
            if (n == 0) {
                append_u00(out, b);
                ++i;
            } else {
                out.append(bytes.data() + i, n);
                i += n;
            }
            continue;
        }
        switch (b) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (b < 0x20 || b == 0x7f) {
                    append_u00(out, b);
                } else {
                    out += static_cast<char>(b);
                }
        }
        ++i;
    }
    out += '"';
}

std::string rfc3339_ms(std::int64_t unix_ms) {
    const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[40];
    std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
    return text;
}

void append_text_line(std::string& out, const AccessRecord& r, std::string_view time) {
    out += time;
    out += ' ';
    append_text_field(out, r.client);
    out += " \"";
    if (r.method.empty()) {
        out += "- - -";
    } else {
        append_text_escaped(out, r.method);
        out += ' ';
        append_text_escaped(out, r.target.substr(0, kTextTargetMax));
        out += " HTTP/";
        out += static_cast<char>('0' + r.http_major % 10);
        out += '.';
        out += static_cast<char>('0' + r.http_minor % 10);
    }
    out += "\" ";
    append_number(out, static_cast<std::uint64_t>(r.status));
    out += " in=";
    append_number(out, r.bytes_in);
    out += " out=";
    append_number(out, r.bytes_out);
    out += ' ';
    append_number(out, static_cast<std::uint64_t>(r.tunnel ? r.tunnel_ms : r.request_ms));
    out += "ms route=";
    append_text_field(out, r.route);
    out += " upstream=";
    append_text_field(out, r.upstream);
    out += " server=";
    append_text_field(out, r.server);
    out += ' ';
    if (r.tunnel) out += "tunnel_";
    out += r.end;
    if (!r.protocol.empty()) {
        out += " proto=";
        append_text_escaped(out, r.protocol);
    }
    out += '\n';
}

void append_json_line(std::string& out, const AccessRecord& r, std::string_view time) {
    out += "{\"time\":\"";
    out += time;
    out += r.tunnel ? "\",\"event\":\"tunnel\",\"client\":" : "\",\"event\":\"exchange\",\"client\":";
    append_json_or_null(out, r.client);
    out += ",\"method\":";
    append_json_or_null(out, r.method);
    out += ",\"target\":";
    if (r.method.empty()) {
        out += "null,\"version\":null";
    } else {
        append_json_string(out, r.target);
        out += ",\"version\":\"";
        out += static_cast<char>('0' + r.http_major % 10);
        out += '.';
        out += static_cast<char>('0' + r.http_minor % 10);
        out += '"';
    }
    out += ",\"status\":";
    if (r.status == 0) {
        out += "null";
    } else {
        append_number(out, static_cast<std::uint64_t>(r.status));
    }
    out += ",\"route\":";
    append_json_or_null(out, r.route);
    out += ",\"upstream\":";
    append_json_or_null(out, r.upstream);
    out += ",\"server\":";
    append_json_or_null(out, r.server);
    out += ",\"upgrade\":";
    if (r.upgrade == UpgradeOutcome::none) {
        out += "null";
    } else {
        out += '"';
        out += outcome_name(r.upgrade);
        out += '"';
    }
    out += ",\"protocol\":";
    append_json_or_null(out, r.protocol);
    out += ",\"bytes_in\":";
    append_number(out, r.bytes_in);
    out += ",\"bytes_out\":";
    append_number(out, r.bytes_out);
    out += ",\"request_ms\":";
    append_ms(out, r.request_ms);
    out += ",\"tunnel_ms\":";
    if (r.tunnel_ms < 0) {
        out += "null";
    } else {
        append_ms(out, r.tunnel_ms);
    }
    out += ",\"end\":";
    append_json_or_null(out, r.end);
    out += "}\n";
}

void append_line(std::string& out, const AccessRecord& record, std::string_view time, AccessLogFormat format) {
    if (format == AccessLogFormat::json) {
        append_json_line(out, record, time);
    } else {
        append_text_line(out, record, time);
    }
}

}  // namespace sy
