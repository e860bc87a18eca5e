// A parsed HTTP/1.x message head, as the proxy needs it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sy {

// The field names the proxy looks at. The parser classifies each field it reads once, so
// lookups and hop-by-hop checks compare a byte instead of strings. `unknown`: not
// classified (a field built by hand); `other`: classified, none of these.
enum class FieldId : std::uint8_t {
    unknown = 0,
    other,
    host,
    connection,
    upgrade,
    keep_alive,
    proxy_connection,
    te,
    transfer_encoding,
    content_length,
    proxy_authenticate,
    proxy_authorization,
    x_forwarded_for,
    x_forwarded_proto,
    via,
    http2_settings,
    sec_websocket_key,
    sec_websocket_version,
    sec_websocket_accept,
};

// One header field line exactly as received: name spelling and value bytes kept
// (leading and trailing whitespace of the value removed, as RFC 9112 §5 says).
struct HeaderField {
    std::string name;
    std::string value;
    FieldId id = FieldId::unknown;
};
using HeaderList = std::vector<HeaderField>;

// How the body of a message is delimited (RFC 9112 §6.3).
enum class BodyFraming {
    none,            // no body (requests without CL/TE; 1xx/204/304; responses to HEAD)
    content_length,  // exactly `content_length` bytes
    chunked,         // chunked transfer coding
    until_close,     // response delimited by the server closing the connection
};

struct MessageHead {
    // Request line (requests only).
    std::string method;
    std::string target;
    // Status line (responses only).
    int status = 0;
    std::string reason;

    int http_major = 1;
    int http_minor = 1;
    HeaderList headers;

    // llhttp_should_keep_alive() at the end of the head.
    bool keep_alive = true;
    // llhttp's upgrade flag: `Upgrade` plus the `upgrade` token in `Connection` for a
    // request (any HTTP version: HTTP/1.0 must be ignored by the caller); status 101 for a
    // response.
    bool upgrade = false;
    BodyFraming framing = BodyFraming::none;
    std::uint64_t content_length = 0;  // valid when framing == content_length

    bool is_http10() const { return http_major == 1 && http_minor == 0; }
    // RFC 9110 §9.2.2: a request that may be sent again after a failure without changing
    // what it does (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    bool is_idempotent() const {
        return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
               method == "PUT" || method == "DELETE";
    }
};

}  // namespace sy
