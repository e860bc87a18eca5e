// Gives memory the allocator holds but no object uses back to the system: after many idle
// tunnels went to sleep at once (proxy/hibernation.hpp), so that the process's RSS follows.
#pragma once

namespace sy {

// mimalloc's mi_collect when the process is linked with it (the release build), else
// glibc's malloc_trim. Frees nothing in use; costs a walk over the free pages.
void give_back_free_memory();

}  // namespace sy
