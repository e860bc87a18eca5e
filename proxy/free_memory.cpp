#include "proxy/free_memory.hpp"

#include <malloc.h>

// Weak: resolved only when mimalloc is linked (cmake/Dependencies.cmake), null otherwise.
extern "C" void mi_collect(bool force) __attribute__((weak));

namespace sy {

void give_back_free_memory() {
    if (mi_collect != nullptr) {
        mi_collect(true);  // this thread's heap: the worker's own
    } else {
        ::malloc_trim(0);
    }
}

}  // namespace sy
