# The Debian package: `cmake --build --preset release --target package` writes
# build/release/switchyard_<version>-<revision>_<arch>.deb (docs/operations.md, "Packaging").
#
#   /usr/sbin/switchyard                        the binary (stripped)
#   /etc/switchyard/switchyard.yaml             packaging/switchyard.yaml, a conffile
#   /lib/systemd/system/switchyard.service      conf/switchyard.service, its paths set to /usr/sbin
#   /usr/share/man/man8/switchyard.8.gz         docs/switchyard.8.md, through pandoc
#   /usr/share/doc/switchyard/                  README.md, docs/, examples/, copyright,
#                                               changelog.Debian.gz
#   /usr/share/lintian/overrides/switchyard     packaging/lintian-overrides
#
# The maintainer scripts (packaging/postinst, prerm, postrm) create and remove the system
# user `switchyard` and handle the unit with deb-systemd-helper and deb-systemd-invoke.
# These install rules describe the package's file system (prefix /usr): a bare
# `cmake --install` is not a supported way to install Switchyard.
#
# Needs pandoc (the man page) and dpkg-dev (dpkg-shlibdeps computes Depends); a missing one
# stops configure with the package's name. SWITCHYARD_PACKAGING=OFF leaves all of it out.

set(_sy_pkg_dir ${PROJECT_SOURCE_DIR}/packaging)
set(_sy_pkg_out ${PROJECT_BINARY_DIR}/packaging)

find_program(SWITCHYARD_PANDOC pandoc)
if(NOT SWITCHYARD_PANDOC)
  message(FATAL_ERROR
    "pandoc not found: the man page switchyard(8) is generated from docs/switchyard.8.md by "
    "pandoc. Install the Debian package 'pandoc' (apt-get install -y pandoc), or run "
    ".ci/install-deps; or configure with -DSWITCHYARD_PACKAGING=OFF to build without the "
    "Debian package")
endif()
find_program(SWITCHYARD_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(NOT SWITCHYARD_DPKG_SHLIBDEPS)
  message(FATAL_ERROR
    "dpkg-shlibdeps not found: the Debian package's Depends are computed with it. Install the "
    "Debian package 'dpkg-dev' (apt-get install -y dpkg-dev), or run .ci/install-deps; or "
    "configure with -DSWITCHYARD_PACKAGING=OFF")
endif()
find_program(SWITCHYARD_GZIP gzip REQUIRED)

include(GNUInstallDirs)
set(SWITCHYARD_PACKAGE_PREFIX /usr)
set(SWITCHYARD_PACKAGE_SBIN ${SWITCHYARD_PACKAGE_PREFIX}/${CMAKE_INSTALL_SBINDIR})
set(SWITCHYARD_PACKAGE_DOC ${SWITCHYARD_PACKAGE_PREFIX}/share/doc/switchyard)

# The Debian version comes from packaging/changelog's first entry, `switchyard (U-R) ...`:
# U must be the project's version, R is the Debian revision. The man page's date is that
# entry's date, so the build is reproducible.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${_sy_pkg_dir}/changelog ${PROJECT_SOURCE_DIR}/conf/switchyard.service)
file(STRINGS ${_sy_pkg_dir}/changelog _sy_changelog)
list(GET _sy_changelog 0 _sy_head)
if(NOT _sy_head MATCHES "^switchyard \\(([^)-]+)-([^)]+)\\) ")
  message(FATAL_ERROR "packaging/changelog: the first line is not 'switchyard (VERSION-REVISION) ...'")
endif()
set(_sy_deb_upstream ${CMAKE_MATCH_1})
set(_sy_deb_revision ${CMAKE_MATCH_2})
if(NOT _sy_deb_upstream STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR
    "packaging/changelog's latest entry is for ${_sy_deb_upstream}, the project is "
    "${PROJECT_VERSION}: add an entry 'switchyard (${PROJECT_VERSION}-1)' at the top")
endif()
set(_sy_deb_date "")
foreach(_line IN LISTS _sy_changelog)
  if(_line MATCHES "^ -- .*>  [A-Z][a-z][a-z], ([0-9]+) ([A-Z][a-z][a-z]) ([0-9][0-9][0-9][0-9]) ")
    set(_sy_deb_date "${CMAKE_MATCH_1} ${CMAKE_MATCH_2} ${CMAKE_MATCH_3}")
    break()
  endif()
endforeach()
if(NOT _sy_deb_date)
  message(FATAL_ERROR "packaging/changelog: no trailer line ' -- NAME <EMAIL>  DATE' in the first entry")
endif()

# The man page: docs/switchyard.8.md -> roff (pandoc) -> gzip -9n. Part of `all`, so the
# package target (which builds `all` first) always has it.
set(_sy_man_src ${PROJECT_SOURCE_DIR}/docs/switchyard.8.md)
add_custom_command(
  OUTPUT ${_sy_pkg_out}/switchyard.8 ${_sy_pkg_out}/switchyard.8.gz
  COMMAND ${SWITCHYARD_PANDOC} --standalone --to man
          --metadata "footer=switchyard ${PROJECT_VERSION}" --metadata "date=${_sy_deb_date}"
          --output ${_sy_pkg_out}/switchyard.8 ${_sy_man_src}
  COMMAND ${SWITCHYARD_GZIP} -9 -n -f -k ${_sy_pkg_out}/switchyard.8
  DEPENDS ${_sy_man_src} ${_sy_pkg_dir}/changelog
  COMMENT "Generating the man page switchyard(8) (pandoc)"
  VERBATIM)
add_custom_target(manpage ALL DEPENDS ${_sy_pkg_out}/switchyard.8.gz)

# changelog.Debian.gz, compressed without a name or time stamp (reproducible).
add_custom_command(
  OUTPUT ${_sy_pkg_out}/changelog.Debian.gz
  COMMAND ${CMAKE_COMMAND} -E copy ${_sy_pkg_dir}/changelog ${_sy_pkg_out}/changelog.Debian
  COMMAND ${SWITCHYARD_GZIP} -9 -n -f ${_sy_pkg_out}/changelog.Debian
  DEPENDS ${_sy_pkg_dir}/changelog
  COMMENT "Compressing changelog.Debian"
  VERBATIM)
add_custom_target(package_changelog ALL DEPENDS ${_sy_pkg_out}/changelog.Debian.gz)

# The packaged unit is the repository's conf/switchyard.service (the one docs/operations.md
# installs by hand, tested by tests/integration/test_systemd_unit.py) with the binary in
# /usr/sbin, and the documentation where the package puts it.
file(READ ${PROJECT_SOURCE_DIR}/conf/switchyard.service _sy_unit)
foreach(_from IN ITEMS
    "ExecStartPre=/usr/local/bin/switchyard "
    "ExecStart=/usr/local/bin/switchyard "
    "Documentation=file:///usr/share/doc/switchyard/operations.md")
  string(FIND "${_sy_unit}" "${_from}" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "conf/switchyard.service has no '${_from}': update packaging/Packaging.cmake")
  endif()
endforeach()
string(REPLACE "/usr/local/bin/switchyard " "${SWITCHYARD_PACKAGE_SBIN}/switchyard " _sy_unit "${_sy_unit}")
string(REPLACE "Documentation=file:///usr/share/doc/switchyard/operations.md"
  "Documentation=man:switchyard(8) file://${SWITCHYARD_PACKAGE_DOC}/docs/operations.md" _sy_unit "${_sy_unit}")
if(_sy_unit MATCHES "/usr/local")
  message(FATAL_ERROR "conf/switchyard.service names /usr/local in a place packaging/Packaging.cmake does not rewrite")
endif()
file(WRITE ${_sy_pkg_out}/switchyard.service.tmp "${_sy_unit}")
configure_file(${_sy_pkg_out}/switchyard.service.tmp ${_sy_pkg_out}/switchyard.service COPYONLY)

# The packaged default configuration must pass --check (ctest -L packaging).
if(TARGET switchyard)
  add_test(NAME packaging.default_config
    COMMAND switchyard --check --config ${_sy_pkg_dir}/switchyard.yaml)
  set_tests_properties(packaging.default_config PROPERTIES LABELS "packaging"
    PASS_REGULAR_EXPRESSION "switchyard.yaml: ok")
endif()

# What goes where. Directories 0755 whatever the umask; files 0644, the binary 0755.
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
install(TARGETS switchyard RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(FILES ${_sy_pkg_dir}/switchyard.yaml DESTINATION /etc/switchyard)
install(FILES ${_sy_pkg_out}/switchyard.service DESTINATION /lib/systemd/system)
install(FILES ${_sy_pkg_out}/switchyard.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES
    ${PROJECT_SOURCE_DIR}/README.md
    ${_sy_pkg_dir}/copyright
    ${_sy_pkg_out}/changelog.Debian.gz
  DESTINATION share/doc/switchyard)
# docs/ keeps its place next to README.md so that the README's links work; the man page's
# Markdown source is not documentation of its own.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/switchyard/docs
  FILES_MATCHING PATTERN "*.md" PATTERN "*.png" PATTERN "switchyard.8.md" EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/conf/examples/ DESTINATION share/doc/switchyard/examples
  FILES_MATCHING PATTERN "*.yaml")
# lintian's overrides, each with its reason (packaging/lintian-overrides).
install(FILES ${_sy_pkg_dir}/lintian-overrides DESTINATION share/lintian/overrides RENAME switchyard)

# CPack: one Debian package.
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build/" "/\\\\.cache/" "__pycache__")
set(CPACK_PACKAGE_NAME switchyard)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "The Switchyard developers")
set(CPACK_PACKAGE_CONTACT "Switchyard maintainers <maintainers@users.noreply.r-seed-5c26cb51.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX ${SWITCHYARD_PACKAGE_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "reverse proxy for HTTP/1.1 that mediates protocol upgrades")
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended description.
set(CPACK_PACKAGE_DESCRIPTION "Switchyard is a transparent HTTP/1.1 reverse proxy whose specialty is the
protocol upgrade (WebSocket, h2c, custom protocols). Per route, the operator
says in YAML which protocols a client may switch to; Switchyard forwards,
strips or refuses each Upgrade offer, checks the backend's 101 answer, and
turns the two connections into a byte tunnel. It can also terminate
WebSocket itself in front of plain TCP services.
.
It reloads its configuration on SIGHUP without dropping a connection,
drains on SIGTERM, exports Prometheus metrics and writes a text or JSON
access log. The package runs it as a systemd service under its own user.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${_sy_deb_revision})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_sy_pkg_dir}/conffiles ${_sy_pkg_dir}/postinst ${_sy_pkg_dir}/prerm ${_sy_pkg_dir}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
