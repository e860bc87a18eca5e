// Token and list utilities for HTTP field values (RFC 9110 §5.6).
#include "parser/tokens.hpp"

#include <array>

#include <algorithm>

namespace sy {
namespace {

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

// RFC 9110 §5.6.1: a list element ends at a comma outside a quoted-string; inside a
// quoted-string a backslash escapes the next character (§5.6.4).
std::vector<std::string_view> split_list(std::string_view value) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    bool quoted = false;
    for (std::size_t i = 0; i <= value.size(); ++i) {
        if (i < value.size()) {
            const char c = value[i];
            if (quoted) {
                if (c == '\\') {
                    ++i;
                } else if (c == '"') {
                    quoted = false;
                }
                continue;
            }
            if (c == '"') {
                quoted = true;
                continue;
            }
            if (c != ',') continue;
        }
        const std::string_view element =
            trim_ows(value.substr(start, std::min(i, value.size()) - start));
        if (!element.empty()) out.push_back(element);
        start = i + 1;
    }
    return out;
}

bool list_has_token(std::string_view value, std::string_view token) {
    for (std::string_view element : split_list(value)) {
        if (iequals(element, token)) return true;
    }
    return false;
}

std::vector<std::string_view> collect_list(const HeaderList& headers, std::string_view name) {
    std::vector<std::string_view> out;
    for (const HeaderField& field : headers) {
        if (!iequals(field.name, name)) continue;
        for (std::string_view element : split_list(field.value)) out.push_back(element);
    }
    return out;
}

std::size_t count_fields(const HeaderList& headers, std::string_view name) {
    std::size_t n = 0;
    for (const HeaderField& field : headers) {
        if (iequals(field.name, name)) ++n;
    }
    return n;
}

const HeaderField* find_field(const HeaderList& headers, std::string_view name) {
    for (const HeaderField& field : headers) {
        if (iequals(field.name, name)) return &field;
    }
    return nullptr;
}

// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
//         "|" / "~" / DIGIT / ALPHA   (RFC 9110 §5.6.2)
namespace {

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. A table: it runs for every byte of every
// field name.
constexpr std::array<bool, 256> make_tchar_table() {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[static_cast<unsigned>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<unsigned>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<unsigned>(c)] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
}
constexpr std::array<bool, 256> kTchar = make_tchar_table();

}  // namespace

bool is_tchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

}  // namespace sy
