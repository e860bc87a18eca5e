#include "routing/affinity.hpp"

#include "parser/tokens.hpp"
#include "routing/balancer.hpp"

namespace sy {

std::optional<std::string_view> find_cookie(const HeaderList& headers, std::string_view name) {
    for (const HeaderField& field : headers) {
        if (!iequals(field.name, "cookie")) continue;
        std::string_view rest = field.value;
        while (!rest.empty()) {
            const std::size_t semi = rest.find(';');
            std::string_view pair = trim_ows(rest.substr(0, semi));
            rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
            const std::size_t eq = pair.find('=');
            if (eq == std::string_view::npos || trim_ows(pair.substr(0, eq)) != name) continue;
            std::string_view value = trim_ows(pair.substr(eq + 1));
            // RFC 6265 §4.1.1: a value may be in double quotes.
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
            return value;
        }
    }
    return std::nullopt;
}

std::optional<std::string_view> find_query_param(std::string_view target, std::string_view name) {
    target = target.substr(0, target.find('#'));  // RFC 3986 §3.5: the fragment is not the query
    const std::size_t q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        const std::size_t eq = pair.find('=');
        if (pair.substr(0, eq) != name) continue;
        return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    return std::nullopt;
}

std::optional<std::string_view> balance_key(const HashKey& key, const MessageHead& request, std::string_view client_ip) {
    switch (key.kind) {
        case HashKey::Kind::client_ip:
            if (client_ip.empty() || client_ip == "-") return std::nullopt;
            return client_ip;
        case HashKey::Kind::header:
            if (const HeaderField* f = find_field(request.headers, key.name)) return trim_ows(f->value);
            return std::nullopt;
        case HashKey::Kind::cookie: return find_cookie(request.headers, key.name);
        case HashKey::Kind::query: return find_query_param(request.target, key.name);
    }
    return std::nullopt;
}

std::string affinity_value(std::uint64_t id) {
    // A different mix from the hash's own (key_hash of a tagged identity): knowing the
    // cookie tells nothing usable about the rendezvous scores, nor the address.
    std::uint64_t v = key_hash("switchyard-affinity:" + std::to_string(id));
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = kHex[v & 0xF];
        v >>= 4;
    }
    return out;
}

std::string affinity_set_cookie(const StickyConfig& sticky, std::string_view value, bool secure) {
    std::string out = sticky.cookie;
    out += '=';
    out += value;
    out += "; Path=/; HttpOnly; Max-Age=";
    out += std::to_string(sticky.max_age.count() / 1000);
    if (secure) out += "; Secure";
    return out;
}

}  // namespace sy
