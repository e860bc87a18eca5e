// Diagnostics on stderr. The access log is separate (proxy/ops/access_log.hpp).
#pragma once

#include <cstdarg>

namespace sy {

// Trace lines (state transitions) are printed only when enabled (--trace or
// SWITCHYARD_TRACE=1); they cost one branch otherwise.
extern bool g_trace_enabled;

void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_trace(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

#define SY_TRACE(...)                            \
    do {                                         \
        if (::sy::g_trace_enabled) {             \
            ::sy::log_trace(__VA_ARGS__);        \
        }                                        \
    } while (0)

}  // namespace sy
