# Warning and sanitizer flags for the project's own targets (not for llhttp's C sources).
set(SWITCHYARD_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
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
