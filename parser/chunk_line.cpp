#include "parser/chunk_line.hpp"

#include "parser/tokens.hpp"

namespace sy {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_obs_text(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
bool is_qdtext(char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == '\t' || c == ' ' || u == 0x21 || (u >= 0x23 && u <= 0x5B) ||
           (u >= 0x5D && u <= 0x7E) || is_obs_text(c);
}

// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
bool is_quotable(char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == '\t' || c == ' ' || (u >= 0x21 && u <= 0x7E) || is_obs_text(c);
}

class Reader {
public:
    explicit Reader(std::string_view s) : s_(s) {}
    bool done() const { return i_ == s_.size(); }
    std::size_t pos() const { return i_; }
    void rewind(std::size_t pos) { i_ = pos; }
    char peek() const { return s_[i_]; }
    void skip_bws() {
        while (!done() && is_ows(peek())) ++i_;
    }
    bool take(char c) {
        if (done() || peek() != c) return false;
        ++i_;
        return true;
    }
    bool take_token() {
        const std::size_t start = i_;
        while (!done() && is_tchar(peek())) ++i_;
        return i_ > start;
    }
    bool take_quoted_string() {
        if (!take('"')) return false;
        while (!done()) {
            const char c = s_[i_++];
            if (c == '"') return true;
            if (c == '\\') {
                if (done() || !is_quotable(peek())) return false;
                ++i_;
            } else if (!is_qdtext(c)) {
                return false;
            }
        }
        return false;
    }

private:
    std::string_view s_;
    std::size_t i_ = 0;
};

ChunkLine refused(const char* reason) { return ChunkLine{false, 0, reason}; }

}  // namespace

ChunkLine parse_chunk_line(std::string_view line) {
    std::size_t i = 0;
    std::uint64_t size = 0;
    while (i < line.size() && hex_value(line[i]) >= 0) {
        if (size >> 60 != 0) return refused("chunk size too large");
        size = size << 4 | static_cast<std::uint64_t>(hex_value(line[i]));
        ++i;
    }
    if (i == 0) return refused("invalid chunk size");

    // BWS is allowed before ";" and around "=", never at the end of the line ("3 ").
    Reader r(line.substr(i));
    while (!r.done()) {
        r.skip_bws();
        if (r.done()) return refused("whitespace at the end of a chunk size line");
        if (!r.take(';')) return refused("invalid character in chunk size line");
        r.skip_bws();
        if (!r.take_token()) return refused("invalid chunk extension name");
        const std::size_t after_name = r.pos();
        r.skip_bws();
        if (r.take('=')) {
            r.skip_bws();
            const bool value = !r.done() && r.peek() == '"' ? r.take_quoted_string() : r.take_token();
            if (!value) return refused("invalid chunk extension value");
        } else {
            r.rewind(after_name);  // the whitespace belongs to the next ";" (or is trailing)
        }
    }
    return ChunkLine{true, size, ""};
}

std::size_t format_chunk_line(std::uint64_t size, char* out) {
    static constexpr char kDigits[] = "0123456789abcdef";
    char tmp[16];
    std::size_t n = 0;
    do {
        tmp[n++] = kDigits[size & 0xF];
        size >>= 4;
    } while (size != 0);
    for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

}  // namespace sy
