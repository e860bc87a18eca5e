# Warning and sanitizer flags for the project's own targets (not for llhttp's C sources).
set(SWITCHYARD_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
# GCC 12 at -O2/-O3 reports impossible std::string copies as -Wrestrict/-Wstringop-overflow
# (GCC bug 105329): those two warnings are off for GCC < 13.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND SWITCHYARD_WARNINGS -Wno-restrict -Wno-stringop-overflow)
endif()
if(SWITCHYARD_WERROR)
  list(APPEND SWITCHYARD_WARNINGS -Werror)
endif()

if(SWITCHYARD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# switchyard_target(<name>): apply the project's warnings to one of our targets.
function(switchyard_target name)
  target_compile_options(${name} PRIVATE ${SWITCHYARD_WARNINGS})
endfunction()
