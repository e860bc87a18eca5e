#include "routing/route_match.hpp"

#include <algorithm>

#include "parser/tokens.hpp"

namespace sy {
namespace {

bool iends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && iequals(text.substr(text.size() - suffix.size()), suffix);
}

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). Returns the length
// of "scheme://" at the start of `target`, or 0.
std::size_t scheme_prefix_length(std::string_view target) {
    const auto colon = target.find("://");
    if (colon == 0 || colon == std::string_view::npos) {
        return 0;
    }
    for (std::size_t i = 0; i < colon; ++i) {
        const char c = ascii_lower(target[i]);
        const bool alpha = c >= 'a' && c <= 'z';
        if (!alpha && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))) {
            return 0;
        }
    }
    return colon + 3;
}

// The path of an origin-form target or of the rest of an absolute-form one: up to '?'
// or '#', "/" when empty.
std::string_view path_without_query(std::string_view rest) {
    const std::string_view path = rest.substr(0, rest.find_first_of("?#"));
    return path.empty() ? std::string_view("/") : path;
}

// The host of a Host value or an authority: brackets of an IPv6 literal, the port and a
// trailing dot removed.
std::string_view host_without_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') {
        const auto close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(1, close - 1);
    }
    const auto colon = host.find(':');
    if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
        host = host.substr(0, colon);  // one colon: a port; more: a bare IPv6 address
    }
    if (host.size() > 1 && host.back() == '.') {
        host.remove_suffix(1);
    }
    return host;
}

bool offers_protocol(const std::vector<std::string_view>& offer, std::string_view pattern) {
    return std::any_of(offer.begin(), offer.end(),
                       [&](std::string_view offered) { return protocol_matches(pattern, offered); });
}

}  // namespace

TargetParts split_target(std::string_view target) {
    if (target.starts_with('/')) {
        return {{}, path_without_query(target)};
    }
    const std::size_t scheme = scheme_prefix_length(target);
    if (scheme == 0) {
        return {{}, target};  // "*" (OPTIONS) or authority-form (CONNECT)
    }
    std::string_view rest = target.substr(scheme);
    const auto authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    std::string_view authority = rest.substr(0, authority_end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1);  // userinfo: the proxy refuses it before routing
                                          // (parser/request_target.hpp); here it is skipped
    }
    return {authority, path_without_query(rest.substr(authority_end))};
}

bool protocol_matches(std::string_view pattern, std::string_view offered) {
    if (offered.empty()) {
        return false;
    }
    if (pattern == "*") {
        return true;
    }
    if (pattern.find('/') != std::string_view::npos) {
        return iequals(pattern, offered);
    }
    return iequals(pattern, offered.substr(0, offered.find('/')));
}

bool host_matches(std::string_view pattern, std::string_view host) {
    host = host_without_port(host);
    if (host.empty()) {
        return false;
    }
    if (pattern.starts_with("*.")) {
        const std::string_view suffix = pattern.substr(1);  // ".example.com"
        return host.size() > suffix.size() && iends_with(host, suffix);
    }
    if (pattern.size() > 2 && pattern.front() == '[' && pattern.back() == ']') {
        pattern = pattern.substr(1, pattern.size() - 2);
    }
    return iequals(pattern, host);
}

const RouteConfig* match_route(const Config& config, const RouteRequest& request) {
    for (const RouteConfig& route : config.routes) {
        const RouteMatch& match = route.match;
        if (!match.host.empty() && !host_matches(match.host, request.host)) {
            continue;
        }
        if (!request.path.starts_with(match.path_prefix)) {
            continue;
        }
        if (!match.upgrade.empty() && !offers_protocol(request.offer, match.upgrade)) {
            continue;
        }
        return &route;
    }
    return nullptr;
}

}  // namespace sy
