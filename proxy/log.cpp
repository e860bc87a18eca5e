#include "proxy/log.hpp"

#include <cstdio>

namespace sy {

bool g_trace_enabled = false;

namespace {
void emit(const char* prefix, const char* fmt, va_list ap) {
    // One fprintf per line would interleave between workers; build the line first.
    char line[1024];
    int n = std::snprintf(line, sizeof line, "switchyard: %s", prefix);
    if (n < 0) return;
    int m = std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, ap);
    if (m < 0) return;
    size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    std::fwrite(line, 1, len, stderr);
    std::fflush(stderr);
}
}  // namespace

void log_info(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}

void log_error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit("error: ", fmt, ap);
    va_end(ap);
}

void log_trace(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit("trace: ", fmt, ap);
    va_end(ap);
}

}  // namespace sy
