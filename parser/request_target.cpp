#include "parser/request_target.hpp"

#include <algorithm>
#include <string>

#include "parser/tokens.hpp"

namespace sy {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 3986 §2.3 unreserved and §2.2 sub-delims.
bool is_unreserved(char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
bool is_sub_delim(char c) {
    switch (c) {
        case '!': case '$': case '&': case '\'': case '(': case ')':
        case '*': case '+': case ',': case ';': case '=':
            return true;
        default:
            return false;
    }
}

// Every "%" in `s` starts a pct-encoded byte (RFC 3986 §2.1), and every other byte is
// unreserved, a sub-delim or one of `extra`.
bool only(std::string_view s, std::string_view extra) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
            i += 2;
            continue;
        }
        if (!is_unreserved(c) && !is_sub_delim(c) && extra.find(c) == std::string_view::npos) return false;
    }
    return true;
}

// path-abempty / absolute-path, then an optional "?" query (RFC 3986 §3.3, §3.4).
bool is_path_and_query(std::string_view s) { return only(s, ":@/?"); }

// RFC 3986 §3.2.2 IPv4address: four decimal octets, no leading zeros beyond "0".
bool is_ipv4(std::string_view s) {
    int parts = 0;
    std::size_t i = 0;
    while (i <= s.size()) {
        std::size_t end = s.find('.', i);
        if (end == std::string_view::npos) end = s.size();
        const std::string_view octet = s.substr(i, end - i);
        if (octet.empty() || octet.size() > 3 || (octet.size() > 1 && octet[0] == '0')) return false;
        int value = 0;
        for (char c : octet) {
            if (!is_digit(c)) return false;
            value = value * 10 + (c - '0');
        }
        if (value > 255) return false;
        ++parts;
        i = end + 1;
        if (end == s.size()) break;
    }
    return parts == 4;
}

// RFC 3986 §3.2.2 IPv6address, checked for its shape: 1-4 hex digit groups separated by
// ":", at most one "::", an optional trailing IPv4 address, 8 groups in all (fewer with "::").
bool is_ipv6(std::string_view s) {
    if (s.size() < 2) return false;
    int groups = 0;
    bool compressed = false;
    std::size_t i = 0;
    if (s.starts_with("::")) {
        compressed = true;
        i = 2;
        if (i == s.size()) return true;
    } else if (s.front() == ':') {
        return false;
    }
    while (i < s.size()) {
        std::size_t end = s.find(':', i);
        if (end == std::string_view::npos) end = s.size();
        const std::string_view group = s.substr(i, end - i);
        if (group.find('.') != std::string_view::npos) {
            // An IPv4 address ends the address and counts as two groups.
            if (end != s.size() || !is_ipv4(group)) return false;
            groups += 2;
            break;
        }
        if (group.empty() || group.size() > 4) return false;
        for (char c : group) {
            if (!is_hex(c)) return false;
        }
        ++groups;
        if (end == s.size()) break;
        if (end + 1 < s.size() && s[end + 1] == ':') {
            if (compressed) return false;  // a second "::"
            compressed = true;
            i = end + 2;
            if (i == s.size()) break;
        } else {
            i = end + 1;
            if (i == s.size()) return false;  // a trailing single ":"
        }
    }
    return compressed ? groups < 8 : groups == 8;
}

}  // namespace

HostPort parse_host_port(std::string_view text) {
    HostPort out;
    std::string_view host = text;
    std::string_view port;
    bool has_colon = false;
    if (text.starts_with('[')) {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || !is_ipv6(text.substr(1, close - 1))) return out;
        host = text.substr(0, close + 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return out;
            has_colon = true;
            port = rest.substr(1);
        }
    } else {
        const std::size_t colon = text.find(':');
        if (colon != std::string_view::npos) {
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
            has_colon = true;
        }
        // reg-name (which covers IPv4address): no "@" (userinfo), no other delimiter.
        if (host.empty() || !only(host, "")) return out;
    }
    if (has_colon && !port.empty()) {
        if (port.size() > 5) return out;
        unsigned value = 0;
        for (char c : port) {
            if (!is_digit(c)) return out;
            value = value * 10 + static_cast<unsigned>(c - '0');
        }
        if (value > 65535) return out;
        out.has_port = true;
        out.port = static_cast<std::uint16_t>(value);
    }
    out.ok = true;
    out.host = host;
    return out;
}

RequestTarget parse_request_target(std::string_view method, std::string_view target) {
    RequestTarget t;
    if (target.empty()) {
        t.reason = "empty request-target";
        return t;
    }
    if (target.front() == '/') {
        if (!is_path_and_query(target)) {
            t.reason = "request-target holds a byte RFC 3986 does not allow";
            return t;
        }
        t.ok = true;
        t.form = TargetForm::origin;
        return t;
    }
    if (target == "*") {
        if (method != "OPTIONS") {
            t.reason = "asterisk-form is for OPTIONS only";
            return t;
        }
        t.ok = true;
        t.form = TargetForm::asterisk;
        return t;
    }
    if (method == "CONNECT") {
        const HostPort hp = parse_host_port(target);
        if (!hp.ok || !hp.has_port) {
            t.reason = "bad authority-form target";
            return t;
        }
        t.ok = true;
        t.form = TargetForm::authority;
        t.authority = target;
        return t;
    }
    // absolute-form: "http" or "https", "://", authority, path-abempty, query.
    const std::size_t scheme_end = target.find("://");
    const std::string_view scheme = scheme_end == std::string_view::npos ? std::string_view() : target.substr(0, scheme_end);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) {
        t.reason = "request-target is neither origin-form nor an http(s) absolute-form";
        return t;
    }
    const std::string_view rest = target.substr(scheme_end + 3);
    const std::size_t authority_end = std::min(rest.find_first_of("/?"), rest.size());
    const std::string_view authority = rest.substr(0, authority_end);
    if (authority.find('@') != std::string_view::npos) {
        t.reason = "userinfo in the request-target";  // RFC 9110 §4.2.4
        return t;
    }
    if (!parse_host_port(authority).ok) {
        t.reason = "bad authority in the request-target";
        return t;
    }
    const std::string_view path = rest.substr(authority_end);
    if (!is_path_and_query(path)) {
        t.reason = "request-target holds a byte RFC 3986 does not allow";
        return t;
    }
    t.ok = true;
    t.form = TargetForm::absolute;
    t.authority = authority;
    // An empty path is "/" in origin-form (RFC 9112 §3.2.1).
    t.forward_target = path.empty() || path.front() == '?' ? "/" + std::string(path) : std::string(path);
    return t;
}

}  // namespace sy
