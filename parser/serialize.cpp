// Re-serialisation of heads toward the other side of the proxy (RFC 9112 §3, §4),
// hop-by-hop field handling (RFC 9110 §7.6.1) and the proxy's own small responses.
#include "parser/serialize.hpp"

#include <algorithm>

#include <array>
#include <charconv>
#include <cstring>
#include <optional>

#include "parser/tokens.hpp"

namespace sy {
namespace {

constexpr std::string_view kViaToken = "1.1 switchyard";

// "name: value\r\n", grown once and filled in place (four appends cost twice as much).
void append_field(std::string& out, std::string_view name, std::string_view value) {
    const std::size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    // An empty view may hold a null pointer, which memcpy must not be given even for 0 bytes.
    if (!name.empty()) std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    if (!value.empty()) std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

// A field whose value gets `suffix` appended as one more list element.
void append_field_with_element(std::string& out, const HeaderField& field,
                               std::string_view suffix) {
    out.append(field.name);
    out.append(": ");
    if (!trim_ows(field.value).empty()) {
        out.append(field.value);
        out.append(", ");
    }
    out.append(suffix);
    out.append("\r\n");
}

// The fixed hop-by-hop names (RFC 9110 §7.6.1, §7.8, §11.7).
bool fixed_hop_by_hop(FieldId id) {
    switch (id) {
        case FieldId::connection:
        case FieldId::keep_alive:
        case FieldId::proxy_connection:
        case FieldId::te:
        case FieldId::transfer_encoding:
        case FieldId::upgrade:
        case FieldId::proxy_authenticate:
        case FieldId::proxy_authorization:
            return true;
        default:
            return false;
    }
}
bool fixed_hop_by_hop(const HeaderField& field) {
    return fixed_hop_by_hop(field.id == FieldId::unknown ? field_id(field.name) : field.id);
}

// Hop-by-hop judgement for the fields of one head: the fixed names, and the names its
// Connection fields list. Allocates nothing (this runs for every field of every message):
// the listed names are read once, and those that are fixed names anyway ("Upgrade",
// "keep-alive") are left out, so a typical head compares each field with at most a "close".
class HopByHop {
public:
    explicit HopByHop(const HeaderList& headers) {
        for (const HeaderField& f : headers) {
            if (!field_is(f, FieldId::connection)) continue;
            any_list_element(f.value, [&](std::string_view token) {
                if (fixed_hop_by_hop(field_id(token))) return false;
                if (count_ < names_.size()) {
                    names_[count_++] = token;
                    return false;
                }
                overflow_ = true;
                return true;
            });
            if (overflow_) break;
        }
        if (overflow_) headers_ = &headers;
    }

    bool operator()(const HeaderField& field) const {
        if (fixed_hop_by_hop(field)) return true;
        for (std::size_t i = 0; i < count_; ++i) {
            if (iequals(field.name, names_[i])) return true;
        }
        if (headers_ == nullptr) return false;
        // More listed names than fit: read the Connection fields again.
        for (const HeaderField& c : *headers_) {
            if (field_is(c, FieldId::connection) && list_has_token(c.value, field.name)) return true;
        }
        return false;
    }

private:
    std::array<std::string_view, 8> names_{};
    std::size_t count_ = 0;
    bool overflow_ = false;
    const HeaderList* headers_ = nullptr;
};

// Index of the last forwarded field named `name` (FieldId `id`), if any.
std::optional<std::size_t> last_forwarded(const HeaderList& headers, const HopByHop& hop_by_hop, FieldId id,
                                          std::string_view name) {
    std::optional<std::size_t> found;
    for (std::size_t i = 0; i < headers.size(); ++i) {
        if (field_named(headers[i], id, name) && !hop_by_hop(headers[i])) found = i;
    }
    return found;
}

// Room for a head: its fields as received, the fields added, and a margin for the start
// line and the proxy's own fields. One allocation instead of the doubling steps of a
// string that grows field by field.
std::size_t head_room(const HeaderList& headers, const HeaderList& extra, std::size_t start_line) {
    std::size_t n = start_line + 160;
    for (const HeaderField& f : headers) n += f.name.size() + f.value.size() + 4;
    for (const HeaderField& f : extra) n += f.name.size() + f.value.size() + 4;
    return n;
}

bool status_has_no_body(int status) {
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

void append_status_line(std::string& out, int status, std::string_view reason) {
    out.append("HTTP/1.1 ");
    append_number(out, static_cast<unsigned long long>(status < 0 ? 0 : status));
    out.push_back(' ');
    out.append(reason.empty() ? reason_phrase(status) : reason);
    out.append("\r\n");
}

}  // namespace

void append_number(std::string& out, unsigned long long n, int base) {
    char buf[24];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n, base);
    (void)ec;  // 24 bytes always hold a 64-bit number
    out.append(buf, end);
}

std::vector<std::string> connection_tokens(const HeaderList& headers) {
    std::vector<std::string> tokens;
    for (std::string_view element : collect_list(headers, "Connection")) {
        tokens.push_back(to_lower(element));
    }
    return tokens;
}

bool is_hop_by_hop(const HeaderField& field, const std::vector<std::string>& conn_tokens) {
    if (fixed_hop_by_hop(field)) return true;
    for (const std::string& token : conn_tokens) {
        if (iequals(field.name, token)) return true;
    }
    return false;
}

void append_upstream_request_head(std::string& out, const MessageHead& req,
                                  const ForwardingOptions& fwd, const HeaderList& extra,
                                  bool connection_close) {
    out.reserve(out.size() + head_room(req.headers, extra, req.method.size() + req.target.size() + fwd.target.size() +
                                                                fwd.host.size() + fwd.client_address.size() +
                                                                fwd.proto.size()));
    out.append(req.method);
    out.push_back(' ');
    out.append(fwd.target.empty() ? std::string_view(req.target) : fwd.target);
    out.append(" HTTP/1.1\r\n");
    const bool replace_host = !fwd.host.empty();
    if (replace_host && std::none_of(req.headers.begin(), req.headers.end(), [](const HeaderField& f) {
            return field_named(f, FieldId::host, "Host");
        })) {
        append_field(out, "Host", fwd.host);
    }

    const HopByHop hop_by_hop(req.headers);
    const bool add_xff = fwd.x_forwarded_for && !fwd.client_address.empty();
    const std::optional<std::size_t> last_xff =
        add_xff ? last_forwarded(req.headers, hop_by_hop, FieldId::x_forwarded_for, "X-Forwarded-For")
                : std::nullopt;
    const std::optional<std::size_t> last_via =
        fwd.via ? last_forwarded(req.headers, hop_by_hop, FieldId::via, "Via") : std::nullopt;

    for (std::size_t i = 0; i < req.headers.size(); ++i) {
        const HeaderField& field = req.headers[i];
        if (hop_by_hop(field)) continue;
        if (fwd.x_forwarded_proto && field_named(field, FieldId::x_forwarded_proto, "X-Forwarded-Proto")) continue;
        if (replace_host && field_named(field, FieldId::host, "Host")) {
            append_field(out, field.name, fwd.host);
        } else if (i == last_xff) {
            append_field_with_element(out, field, fwd.client_address);
        } else if (i == last_via) {
            append_field_with_element(out, field, kViaToken);
        } else {
            append_field(out, field.name, field.value);
        }
    }

    if (add_xff && !last_xff) append_field(out, "X-Forwarded-For", fwd.client_address);
    if (fwd.x_forwarded_proto) append_field(out, "X-Forwarded-Proto", fwd.proto);
    if (fwd.via && !last_via) append_field(out, "Via", kViaToken);
    for (const HeaderField& field : extra) append_field(out, field.name, field.value);
    if (req.framing == BodyFraming::chunked) append_field(out, "Transfer-Encoding", "chunked");
    if (connection_close) append_field(out, "Connection", "close");
    out.append("\r\n");
}

void append_client_response_head(std::string& out, const MessageHead& resp,
                                 const ClientResponseOptions& opts, const HeaderList& extra) {
    out.reserve(out.size() + head_room(resp.headers, extra, resp.reason.size()));
    append_status_line(out, resp.status, resp.reason);

    const HopByHop hop_by_hop(resp.headers);
    const std::optional<std::size_t> last_via =
        opts.via ? last_forwarded(resp.headers, hop_by_hop, FieldId::via, "Via") : std::nullopt;
    const bool chunked = opts.framing == BodyFraming::chunked;

    for (std::size_t i = 0; i < resp.headers.size(); ++i) {
        const HeaderField& field = resp.headers[i];
        if (hop_by_hop(field)) continue;
        if (chunked && field_named(field, FieldId::content_length, "Content-Length")) continue;
        if (i == last_via) {
            append_field_with_element(out, field, kViaToken);
        } else {
            append_field(out, field.name, field.value);
        }
    }

    if (opts.via && !last_via) append_field(out, "Via", kViaToken);
    for (const HeaderField& field : extra) append_field(out, field.name, field.value);
    if (chunked) append_field(out, "Transfer-Encoding", "chunked");
    if (opts.close) {
        append_field(out, "Connection", "close");
    } else if (opts.keep_alive_10) {
        append_field(out, "Connection", "keep-alive");
    }
    out.append("\r\n");
}

void append_chunk_header(std::string& out, std::size_t size) {
    append_number(out, size, 16);
    out.append("\r\n");
}

std::string_view reason_phrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 102: return "Processing";
        case 103: return "Early Hints";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 203: return "Non-Authoritative Information";
        case 204: return "No Content";
        case 205: return "Reset Content";
        case 206: return "Partial Content";
        case 300: return "Multiple Choices";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 303: return "See Other";
        case 304: return "Not Modified";
        case 305: return "Use Proxy";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 402: return "Payment Required";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 407: return "Proxy Authentication Required";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 417: return "Expectation Failed";
        case 421: return "Misdirected Request";
        case 422: return "Unprocessable Content";
        case 425: return "Too Early";
        case 426: return "Upgrade Required";
        case 428: return "Precondition Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

// 1xx, 204 and 304 cannot carry content (RFC 9110 §6.4.1), nor a Content-Length for
// 1xx/204 (§8.6): such responses get neither a body nor the body's fields.
std::string make_proxy_response(int status, bool close, const HeaderList& extra,
                                std::string_view body, bool head) {
    const std::string_view reason = reason_phrase(status);
    std::string default_body;
    const bool has_body = !status_has_no_body(status);
    if (has_body && body.empty()) {
        append_number(default_body, static_cast<unsigned long long>(status < 0 ? 0 : status));
        default_body.push_back(' ');
        default_body.append(reason);
        default_body.push_back('\n');
        body = default_body;
    }

    std::string out;
    append_status_line(out, status, reason);
    if (has_body) {
        // The caller's Content-Type (e.g. the metrics page's) replaces the default.
        const bool typed = std::any_of(extra.begin(), extra.end(),
                                       [](const HeaderField& f) { return iequals(f.name, "Content-Type"); });
        if (!typed) append_field(out, "Content-Type", "text/plain; charset=utf-8");
        out.append("Content-Length: ");
        append_number(out, body.size());
        out.append("\r\n");
    }
    bool connection_sent = false;
    for (const HeaderField& field : extra) {
        if (close && iequals(field.name, "Connection")) {
            // One Connection field with every option (RFC 9110 §7.6.1): "Upgrade, close".
            append_field(out, field.name, field.value + ", close");
            connection_sent = true;
        } else {
            append_field(out, field.name, field.value);
        }
    }
    if (close && !connection_sent) append_field(out, "Connection", "close");
    out.append("\r\n");
    if (has_body && !head) out.append(body);
    return out;
}

}  // namespace sy
