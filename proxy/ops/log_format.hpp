// The access log's lines (docs/operations.md, "Access log"): one record, two formats.
// Pure functions: no I/O, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "routing/config.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

// `client`, `route`, `server` and `end` are written as they are: the proxy made them (an
// IP address, an end word) or validated them (route names, configured addresses never hold
// a quote, a backslash or a control character). Everything else is escaped.
struct AccessRecord {
    bool tunnel = false;             // event: "tunnel" (a tunnel ended) or "exchange"
    std::string_view client;         // client IP
    std::string_view method;         // empty: no request head was read
    std::string_view target;
    int http_major = 1;
    int http_minor = 1;
    int status = 0;                  // 0: none sent
    std::string_view route;          // empty: no route matched
    std::string_view upstream;       // empty: none used
    std::string_view server;         // empty: none used
    UpgradeOutcome upgrade = UpgradeOutcome::none;
    std::string_view protocol;       // empty: no upgrade
    std::uint64_t bytes_in = 0;      // from the client (a tunnel's: client to upstream)
    std::uint64_t bytes_out = 0;     // to the client (a tunnel's: upstream to client)
    double request_ms = 0;
    double tunnel_ms = -1;           // < 0: not a tunnel
    std::string_view end;            // ok | proxy | upstream_error | client_abort | switched | a TunnelEnd
};

// "2026-12-06T04:46:00.123Z" for milliseconds since the Unix epoch.
std::string rfc3339_ms(std::int64_t unix_ms);

// The most bytes one line of `record` can take, in either format.
std::size_t max_line_size(const AccessRecord& record, std::string_view time);
// Writes one line ('\n' included) at `out`, which has room for max_line_size bytes;
// returns the end of what was written. `time` is rfc3339_ms's text.
char* write_line(char* out, const AccessRecord& record, std::string_view time, AccessLogFormat format);

// The same, appended to a string.
void append_line(std::string& out, const AccessRecord& record, std::string_view time, AccessLogFormat format);
void append_text_line(std::string& out, const AccessRecord& record, std::string_view time);
void append_json_line(std::string& out, const AccessRecord& record, std::string_view time);

// A JSON string literal (quotes included) for arbitrary bytes: valid UTF-8 passes as is,
// `"` `\` and control characters are escaped, and every byte that is not part of valid
// UTF-8 becomes \u00XX of its value, so the result is always valid JSON.
void append_json_string(std::string& out, std::string_view bytes);

}  // namespace sy
