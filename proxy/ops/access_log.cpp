#include "proxy/access_log.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>

namespace sy {

bool AccessLog::open(const AccessLogConfig& config, std::string* error) {
    if (!config.enabled()) return true;
    if (config.path == "-") {
        out_ = stdout;
        std::setvbuf(out_, nullptr, _IOFBF, 64 * 1024);
        return true;
    }
    out_ = std::fopen(config.path.c_str(), "a");
    if (out_ == nullptr) {
        *error = "cannot open access log '" + config.path + "': " + std::strerror(errno);
        return false;
    }
    owns_ = true;
    std::setvbuf(out_, nullptr, _IOFBF, 64 * 1024);
    return true;
}

AccessLog::~AccessLog() {
    flush();
    if (owns_ && out_ != nullptr) std::fclose(out_);
}

void AccessLog::flush() {
    if (out_ == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    std::fflush(out_);
}

void AccessLog::write(const AccessRecord& r) {
    if (out_ == nullptr) return;
    char when[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char line[2048];
    int n = std::snprintf(line, sizeof line,
                          "%s %.*s \"%.*s %.*s HTTP/%d.%d\" %d in=%llu out=%llu %llums route=%d upstream=%.*s %.*s%s%.*s\n",
                          when, static_cast<int>(r.client.size()), r.client.data(),
                          static_cast<int>(r.method.size()), r.method.data(),
                          static_cast<int>(r.target.size() > 512 ? 512 : r.target.size()), r.target.data(),
                          r.http_major, r.http_minor, r.status, static_cast<unsigned long long>(r.bytes_in),
                          static_cast<unsigned long long>(r.bytes_out), static_cast<unsigned long long>(r.duration_ms),
                          r.route_line, static_cast<int>(r.upstream.size()), r.upstream.data(),
                          static_cast<int>(r.outcome.size()), r.outcome.data(), r.protocol.empty() ? "" : " proto=",
                          static_cast<int>(r.protocol.size()), r.protocol.data());
    if (n <= 0) return;
    std::size_t len = static_cast<std::size_t>(n) < sizeof line ? static_cast<std::size_t>(n) : sizeof line - 1;
    std::lock_guard<std::mutex> lock(mutex_);
    std::fwrite(line, 1, len, out_);
}

}  // namespace sy
