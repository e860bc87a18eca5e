// Token and list utilities for HTTP field values (RFC 9110 §5.6.1, §5.6.2).
// Pure functions over string_views; no allocation unless a function returns a container.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "parser/message.hpp"

namespace sy {

// ASCII lower case of one byte (locale-independent).
inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
// Optional whitespace (RFC 9110 §5.6.3): SP or HTAB.
inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);
// ASCII lower-case copy.
std::string to_lower(std::string_view s);
// Strips optional whitespace (SP / HTAB) from both ends.
std::string_view trim_ows(std::string_view s);

// Splits a comma-separated list (#rule): elements are trimmed of OWS, empty elements are
// skipped. Quoted strings are respected (a comma inside "..." does not split).
std::vector<std::string_view> split_list(std::string_view value);

// True when the comma list `value` contains `token` (case-insensitive).
bool list_has_token(std::string_view value, std::string_view token);

// Joins the values of every field named `name` (case-insensitive) into one list, in order.
std::vector<std::string_view> collect_list(const HeaderList& headers, std::string_view name);
std::vector<std::string_view> collect_list(const HeaderList& headers, FieldId id);

// Number of fields named `name` (case-insensitive).
std::size_t count_fields(const HeaderList& headers, std::string_view name);
std::size_t count_fields(const HeaderList& headers, FieldId id);

// The first field named `name` (case-insensitive), or nullptr.
const HeaderField* find_field(const HeaderList& headers, std::string_view name);
const HeaderField* find_field(const HeaderList& headers, FieldId id);

namespace detail {
// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. A table, inline: it runs for every byte of
// every field name.
constexpr std::array<bool, 256> make_tchar_table() {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[static_cast<unsigned>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<unsigned>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<unsigned>(c)] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
}
inline constexpr std::array<bool, 256> kTchar = make_tchar_table();
}  // namespace detail

// An RFC 9110 token character (tchar).
inline bool is_tchar(char c) { return detail::kTchar[static_cast<unsigned char>(c)]; }
// An RFC 9110 §5.6.2 token: one or more tchars.
bool is_token(std::string_view s);
// RFC 9110 §7.8: protocol = protocol-name ["/" protocol-version], both tokens.
bool is_protocol(std::string_view s);

// The FieldId of a field name (case-insensitive); FieldId::other for any other name.
FieldId field_id(std::string_view name);

// The usual spelling of a known field name ("Sec-WebSocket-Key"); empty for unknown and
// other.
std::string_view field_name(FieldId id);

// Does `field` have the name `name`, whose FieldId is `id` (field_id(name))? Compares the
// ids when both are known, the names otherwise.
inline bool field_named(const HeaderField& field, FieldId id, std::string_view name) {
    if (field.id != FieldId::unknown && id != FieldId::other) return field.id == id;
    return iequals(field.name, name);
}
// The same for a known name (`id` neither unknown nor other): a parsed field compares one
// byte, a field built by hand its name.
inline bool field_is(const HeaderField& field, FieldId id) {
    if (field.id != FieldId::unknown) return field.id == id;
    return iequals(field.name, field_name(id));
}

// Calls fn(element) for each element of a comma list (RFC 9110 §5.6.1: OWS trimmed, empty
// elements skipped, commas inside quoted strings kept) until fn returns true; returns
// whether it did. Allocates nothing.
template <typename Fn>
bool any_list_element(std::string_view value, Fn&& fn) {
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
        const std::size_t end = i < value.size() ? i : value.size();
        const std::string_view element = trim_ows(value.substr(start, end - start));
        if (!element.empty() && fn(element)) return true;
        start = i + 1;
    }
    return false;
}

}  // namespace sy
