// The request-target and the Host field, checked as RFC 9112 §3.2 and RFC 3986 define them:
// which host a request addresses must never be ambiguous to a proxy. Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sy {

// uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3): a reg-name or IPv4 address,
// or an IPv6 literal in brackets; a port of digits only, at most 65535 (empty: none).
struct HostPort {
    bool ok = false;
    std::string_view host;  // as written (brackets of an IPv6 literal included)
    bool has_port = false;
    std::uint16_t port = 0;
};
HostPort parse_host_port(std::string_view text);

// RFC 9112 §3.2: origin-form "/p?q", absolute-form "http://host/p?q", authority-form
// "host:port" (CONNECT only), asterisk-form "*" (OPTIONS only).
enum class TargetForm { origin, absolute, authority, asterisk };

struct RequestTarget {
    bool ok = false;
    const char* reason = "";  // why not, for logs (the client gets a plain 400)
    TargetForm form = TargetForm::origin;
    // absolute-form and authority-form: the authority; for absolute-form it replaces the
    // Host field (RFC 9112 §3.2.2).
    std::string_view authority;
    // absolute-form: the origin-form target to forward ("/" when the path is empty). Empty
    // for the other forms, which are forwarded as received.
    std::string forward_target;
};

// Checks `target` for `method`: only the bytes RFC 3986 allows (unreserved, sub-delims,
// ":", "@", "/", "?", and "%" followed by two hex digits; "[" and "]" only around an IPv6
// literal in an authority): a raw "#", a space, a control byte or a byte >= 0x80 fails, as
// does userinfo in an absolute-form target (RFC 9110 §4.2.4).
RequestTarget parse_request_target(std::string_view method, std::string_view target);

}  // namespace sy
