// Small libuv helpers shared by the connection objects.
#pragma once

#include <uv.h>

namespace sy {

// Closes a heap-allocated timer and frees it once libuv is done with it; sets the pointer
// to null. No-op on null. Its callback never runs again after this call.
inline void close_and_free(uv_timer_t*& timer) {
    if (timer == nullptr) return;
    timer->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer = nullptr;
}

}  // namespace sy
