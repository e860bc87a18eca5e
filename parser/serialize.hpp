// Re-serialisation of heads for the other side of the proxy, hop-by-hop handling
// (RFC 9110 §7.6.1), and the proxy's own small responses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "parser/message.hpp"

namespace sy {

// Tokens of every Connection field, lower-cased.
std::vector<std::string> connection_tokens(const HeaderList& headers);

// True when `field` must not be forwarded as received: Connection and every field it
// names (`conn_tokens`, lower-case), Keep-Alive, Proxy-Connection, TE, Transfer-Encoding,
// Upgrade, Proxy-Authenticate, Proxy-Authorization.
bool is_hop_by_hop(const HeaderField& field, const std::vector<std::string>& conn_tokens);

struct ForwardingOptions {
    bool x_forwarded_for = true;     // append client_address to the last X-Forwarded-For,
                                     // or add the field at the end when there is none
    bool x_forwarded_proto = true;   // drop the client's X-Forwarded-Proto, add ours at the end
    bool via = false;                // append "1.1 switchyard" to the last Via, or add it
    std::string_view client_address; // textual IP, no port
    std::string_view proto = "http";
    // The request-target to send instead of the received one (an absolute-form target goes
    // on in origin-form, RFC 9112 §3.2.2); empty: as received.
    std::string_view target;
    // The Host value to send (RFC 9112 §3.2.2: an absolute-form target's authority replaces
    // the received Host; an HTTP/1.0 request without Host gains one); empty: as received.
    // Replaces the received field in place, or goes first when there is none.
    std::string_view host;
};

// Appends the head of the request as it goes upstream: "METHOD target HTTP/1.1", the
// end-to-end fields byte for byte in their order (Content-Length stays where it was),
// the forwarding fields, then `extra` (fields the proxy regenerates, e.g. Upgrade and
// Connection), then "Transfer-Encoding: chunked" when req.framing is chunked,
// "Connection: close" when connection_close, and the final CRLF.
void append_upstream_request_head(std::string& out, const MessageHead& req,
                                  const ForwardingOptions& fwd, const HeaderList& extra = {},
                                  bool connection_close = false);

struct ClientResponseOptions {
    BodyFraming framing = BodyFraming::content_length;  // how the body goes to the client
    bool close = false;           // add "Connection: close"
    bool keep_alive_10 = false;   // HTTP/1.0 client kept alive: add "Connection: keep-alive"
    bool via = false;             // append/add Via as for requests
};

// Appends the response head as it goes to the client: "HTTP/1.1 <status> <reason>", the
// end-to-end fields byte for byte in order (Content-Length kept unless the framing toward
// the client is chunked), `extra`, "Transfer-Encoding: chunked" when opts.framing is
// chunked, the Connection field chosen by opts, and the final CRLF.
void append_client_response_head(std::string& out, const MessageHead& resp,
                                 const ClientResponseOptions& opts, const HeaderList& extra = {});

// Chunked coding (RFC 9112 §7.1): "<hex size>\r\n" before `size` data bytes, "\r\n" after.
void append_chunk_header(std::string& out, std::size_t size);
inline constexpr std::string_view kChunkEnd = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// `n` in decimal (or `base`), appended without allocation of its own.
void append_number(std::string& out, unsigned long long n, int base = 10);

// The standard reason phrase for a status code ("Unknown" when there is none).
std::string_view reason_phrase(int status);

// A complete small response from the proxy itself:
//   HTTP/1.1 <status> <reason>\r\n
//   Content-Type: text/plain; charset=utf-8\r\n   (when there is a body; a Content-Type in
//                                                 `extra` replaces it)
//   Content-Length: <n>\r\n
//   <extra fields>             (a Connection field in `extra` gains ", close" when close)
//   Connection: close\r\n      (when close and `extra` has no Connection field)
//   \r\n
//   <body>        (default body: "<status> <reason>\n"; none for 1xx/204/304)
// `head`: the answer to a HEAD request: the same fields, Content-Length included (RFC 9110
// §9.3.2, §8.6), and no body.
std::string make_proxy_response(int status, bool close, const HeaderList& extra = {},
                                std::string_view body = {}, bool head = false);

}  // namespace sy
