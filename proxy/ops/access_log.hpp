// The access log: one line per HTTP exchange (and, later, per tunnel), to stdout or a file.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include "routing/config.hpp"

namespace sy {

struct AccessRecord {
    std::string_view client;       // client IP
    std::string_view method;
    std::string_view target;
    int http_major = 1;
    int http_minor = 1;
    int status = 0;                // 0 when no response was sent
    std::uint64_t bytes_in = 0;    // bytes read from the client for this exchange
    std::uint64_t bytes_out = 0;   // bytes written to the client for this exchange
    std::uint64_t duration_ms = 0;
    int route_line = 0;            // line of the route in the config, 0 = none
    std::string_view upstream;     // pool name, "-" when none
    std::string_view outcome;      // "ok", "proxy", "upstream_error", "client_abort",
                                   // "tunnel_<how it ended>"
    std::string_view protocol;     // tunnels: the protocol switched to
};

class AccessLog {
public:
    // Opens the log as configured; returns false (with `error` set) when the file cannot be
    // opened.
    bool open(const AccessLogConfig& config, std::string* error);
    ~AccessLog();
    bool enabled() const { return out_ != nullptr; }
    // Appends one line to the log's buffer (64 KiB, flushed when full and by flush()).
    void write(const AccessRecord& record);
    // Hands buffered lines to the file; the main loop calls it every 200 ms and at exit,
    // so a line is never more than that late and a request costs no write(2) of its own.
    void flush();

private:
    std::FILE* out_ = nullptr;
    bool owns_ = false;
    std::mutex mutex_;
};

}  // namespace sy
