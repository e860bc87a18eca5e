# Every dependency comes from a Debian package; a missing one stops configure with the
# package's name, so the fix is one `apt-get install` (or `.ci/install-deps`).
find_package(PkgConfig)

function(switchyard_missing what package)
  message(FATAL_ERROR
    "${what} not found: install the Debian package '${package}' "
    "(apt-get install -y ${package}), or run .ci/install-deps")
endfunction()

# libuv: event loop and sockets.
if(PkgConfig_FOUND)
  pkg_check_modules(LIBUV IMPORTED_TARGET libuv>=1.44)
endif()
if(NOT LIBUV_FOUND)
  switchyard_missing("libuv" "libuv1-dev")
endif()

# libsystemd: sd_notify (READY=1, and MAINPID= after a binary upgrade, so that systemd
# follows the new process). Debian's own implementation of the protocol rather than ours.
if(PkgConfig_FOUND)
  pkg_check_modules(LIBSYSTEMD IMPORTED_TARGET libsystemd)
endif()
if(NOT LIBSYSTEMD_FOUND)
  switchyard_missing("libsystemd" "libsystemd-dev")
endif()

# yaml-cpp: configuration.
find_package(yaml-cpp QUIET)
if(NOT yaml-cpp_FOUND)
  switchyard_missing("yaml-cpp" "libyaml-cpp-dev")
endif()
if(TARGET yaml-cpp::yaml-cpp)
  set(SWITCHYARD_YAML yaml-cpp::yaml-cpp)
else()
  set(SWITCHYARD_YAML yaml-cpp)
endif()

# doctest: header-only unit tests.
find_path(DOCTEST_INCLUDE_DIR doctest/doctest.h)
if(NOT DOCTEST_INCLUDE_DIR)
  switchyard_missing("doctest" "doctest-dev")
endif()

# OpenSSL: libcrypto for SHA-1 (Sec-WebSocket-Accept), libssl for TLS (proxy/transport/).
find_package(OpenSSL QUIET COMPONENTS Crypto SSL)
if(NOT OpenSSL_FOUND)
  switchyard_missing("OpenSSL" "libssl-dev")
endif()

# llhttp: Debian's node-llhttp ships the C sources and header; we build them here.
set(LLHTTP_SOURCE_DIR "/usr/share/llhttp" CACHE PATH "Directory with llhttp's C sources")
set(LLHTTP_INCLUDE_DIR "/usr/share/include/llhttp" CACHE PATH "Directory with llhttp.h")
if(NOT EXISTS "${LLHTTP_SOURCE_DIR}/llhttp.c" OR NOT EXISTS "${LLHTTP_INCLUDE_DIR}/llhttp.h")
  switchyard_missing("llhttp sources" "node-llhttp")
endif()
add_library(llhttp STATIC
  ${LLHTTP_SOURCE_DIR}/llhttp.c
  ${LLHTTP_SOURCE_DIR}/api.c
  ${LLHTTP_SOURCE_DIR}/http.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(llhttp PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
target_compile_options(llhttp PRIVATE -w)

find_package(Threads REQUIRED)

# mimalloc (Debian's libmimalloc-dev) replaces glibc's malloc in the switchyard binary:
# about a third of glibc's instructions per allocation, and size-class pages that keep an
# idle tunnel's few small objects dense (docs/performance.md). Not with sanitizers, which
# bring their own allocator. Optional: without it the build uses glibc's malloc.
option(SWITCHYARD_MIMALLOC "Link the proxy with mimalloc when available" ON)
set(SWITCHYARD_ALLOCATOR "")
if(SWITCHYARD_MIMALLOC AND NOT SWITCHYARD_SANITIZE)
  find_library(MIMALLOC_LIBRARY NAMES mimalloc)
  if(MIMALLOC_LIBRARY)
    set(SWITCHYARD_ALLOCATOR ${MIMALLOC_LIBRARY})
    message(STATUS "switchyard: linking mimalloc (${MIMALLOC_LIBRARY})")
  else()
    message(STATUS "switchyard: mimalloc not found (apt-get install libmimalloc-dev); using glibc malloc")
  endif()
endif()
