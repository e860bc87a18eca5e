// Token and list utilities for HTTP field values (RFC 9110 §5.6).
#include "parser/tokens.hpp"

#include <algorithm>
#include <array>

namespace sy {

namespace {

constexpr std::array<unsigned char, 256> make_lower_table() {
    std::array<unsigned char, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<unsigned>(c)] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return t;
}
constexpr std::array<unsigned char, 256> kLower = make_lower_table();

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    // Bytes that are equal as they are (the usual case: the same spelling) skip the table.
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto x = static_cast<unsigned char>(a[i]);
        const auto y = static_cast<unsigned char>(b[i]);
        if (x != y && kLower[x] != kLower[y]) return false;
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
    any_list_element(value, [&](std::string_view element) {
        out.push_back(element);
        return false;
    });
    return out;
}

bool list_has_token(std::string_view value, std::string_view token) {
    return any_list_element(value, [&](std::string_view element) { return iequals(element, token); });
}

namespace {

template <typename Named>
std::vector<std::string_view> collect_list_of(const HeaderList& headers, Named named) {
    std::vector<std::string_view> out;
    for (const HeaderField& field : headers) {
        if (!named(field)) continue;
        any_list_element(field.value, [&](std::string_view element) {
            out.push_back(element);
            return false;
        });
    }
    return out;
}

template <typename Named>
std::size_t count_fields_of(const HeaderList& headers, Named named) {
    return static_cast<std::size_t>(std::count_if(headers.begin(), headers.end(), named));
}

template <typename Named>
const HeaderField* find_field_of(const HeaderList& headers, Named named) {
    const auto it = std::find_if(headers.begin(), headers.end(), named);
    return it == headers.end() ? nullptr : &*it;
}

// A predicate for fields named `name`: by FieldId when the name is a known one.
auto named_as(std::string_view name) {
    const FieldId id = field_id(name);
    return [id, name](const HeaderField& field) { return field_named(field, id, name); };
}
auto known_as(FieldId id) {
    return [id](const HeaderField& field) { return field_is(field, id); };
}

}  // namespace

std::vector<std::string_view> collect_list(const HeaderList& headers, std::string_view name) {
    return collect_list_of(headers, named_as(name));
}
std::vector<std::string_view> collect_list(const HeaderList& headers, FieldId id) {
    return collect_list_of(headers, known_as(id));
}

std::size_t count_fields(const HeaderList& headers, std::string_view name) {
    return count_fields_of(headers, named_as(name));
}
std::size_t count_fields(const HeaderList& headers, FieldId id) {
    return count_fields_of(headers, known_as(id));
}

const HeaderField* find_field(const HeaderList& headers, std::string_view name) {
    return find_field_of(headers, named_as(name));
}
const HeaderField* find_field(const HeaderList& headers, FieldId id) {
    return find_field_of(headers, known_as(id));
}

std::string_view field_name(FieldId id) {
    switch (id) {
        case FieldId::unknown:
        case FieldId::other: return {};
        case FieldId::host: return "Host";
        case FieldId::connection: return "Connection";
        case FieldId::upgrade: return "Upgrade";
        case FieldId::keep_alive: return "Keep-Alive";
        case FieldId::proxy_connection: return "Proxy-Connection";
        case FieldId::te: return "TE";
        case FieldId::transfer_encoding: return "Transfer-Encoding";
        case FieldId::content_length: return "Content-Length";
        case FieldId::proxy_authenticate: return "Proxy-Authenticate";
        case FieldId::proxy_authorization: return "Proxy-Authorization";
        case FieldId::x_forwarded_for: return "X-Forwarded-For";
        case FieldId::x_forwarded_proto: return "X-Forwarded-Proto";
        case FieldId::via: return "Via";
        case FieldId::http2_settings: return "HTTP2-Settings";
        case FieldId::sec_websocket_key: return "Sec-WebSocket-Key";
        case FieldId::sec_websocket_version: return "Sec-WebSocket-Version";
        case FieldId::sec_websocket_accept: return "Sec-WebSocket-Accept";
    }
    return {};
}

namespace {

// `name` equals `known` (lower-case letters, digits and '-') ignoring ASCII case. OR-ing
// 0x20 folds upper to lower case; it also maps CR to '-' and some control bytes to digits,
// none of which can be in a field name (the parser admits only tchars).
bool equals_lower(std::string_view name, std::string_view known) {
    for (std::size_t i = 0; i < known.size(); ++i) {
        if (static_cast<char>(name[i] | 0x20) != known[i]) return false;
    }
    return true;
}

}  // namespace

FieldId field_id(std::string_view name) {
    // By length first: at most three comparisons for any name.
    auto is = [&](std::string_view known) { return equals_lower(name, known); };
    switch (name.size()) {
        case 2: return is("te") ? FieldId::te : FieldId::other;
        case 3: return is("via") ? FieldId::via : FieldId::other;
        case 4: return is("host") ? FieldId::host : FieldId::other;
        case 7: return is("upgrade") ? FieldId::upgrade : FieldId::other;
        case 10:
            if (is("connection")) return FieldId::connection;
            return is("keep-alive") ? FieldId::keep_alive : FieldId::other;
        case 14:
            if (is("content-length")) return FieldId::content_length;
            return is("http2-settings") ? FieldId::http2_settings : FieldId::other;
        case 15: return is("x-forwarded-for") ? FieldId::x_forwarded_for : FieldId::other;
        case 16: return is("proxy-connection") ? FieldId::proxy_connection : FieldId::other;
        case 17:
            if (is("transfer-encoding")) return FieldId::transfer_encoding;
            if (is("x-forwarded-proto")) return FieldId::x_forwarded_proto;
            return is("sec-websocket-key") ? FieldId::sec_websocket_key : FieldId::other;
        case 18: return is("proxy-authenticate") ? FieldId::proxy_authenticate : FieldId::other;
        case 19: return is("proxy-authorization") ? FieldId::proxy_authorization : FieldId::other;
        case 20: return is("sec-websocket-accept") ? FieldId::sec_websocket_accept : FieldId::other;
        case 21: return is("sec-websocket-version") ? FieldId::sec_websocket_version : FieldId::other;
        default: return FieldId::other;
    }
}

// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
//         "|" / "~" / DIGIT / ALPHA   (RFC 9110 §5.6.2)

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

bool is_protocol(std::string_view s) {
    const std::size_t slash = s.find('/');
    if (slash == std::string_view::npos) return is_token(s);
    return is_token(s.substr(0, slash)) && is_token(s.substr(slash + 1));
}

}  // namespace sy
