# install.cmake - what `cmake --install BUILD [--prefix DIR]` installs, where
# GNUInstallDirs says (Debian's layout under /usr):
#
#   sbin/outboxd                    the daemon
#   bin/outbox                      the client
#   lib/liboutbox.so.0.1.0, .so.0, .so, liboutbox.a
#   include/outbox/*.h              the public headers
#   lib/pkgconfig/outbox.pc         pkg-config (Requires.private: the static link)
#   lib/cmake/outbox/               find_package(outbox): outbox::outbox (shared),
#                                   outbox::outbox_static
#   lib/systemd/system/outboxd.service  the unit (systemd/outboxd.service.in)
#   etc/outbox/outboxd.conf         the example config (systemd/outboxd.conf)
#   share/bash-completion/completions/outbox, outboxd
#   share/man/man{1,3,5,8}/         outbox(1), liboutbox(3), outboxd.conf(5),
#                                   outboxd(8) (man/*.scd, by scdoc)
#
# tests/install.sh installs into a scratch prefix and builds two programs
# against that tree alone, one with pkg-config and make, one with CMake.
include(CMakePackageConfigHelpers)

install(TARGETS outboxd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS outbox_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS outbox_shared outbox EXPORT outboxTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/outbox
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev FILES_MATCHING PATTERN "*.h")

# pkg-config. The public headers include <jansson.h>, so jansson is a
# public requirement; the libraries liboutbox links are needed only to
# link it statically (pkg-config --static). The prefix is found from where
# the file lies (${pcfiledir}), so the tree works wherever it is installed
# (--prefix at install time, a package's staging directory).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(OB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(OB_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(OB_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  string(REGEX REPLACE "[^/]+" ".." OB_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(OB_PC_PREFIX "\${pcfiledir}/${OB_PC_UP}")
  set(OB_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(OB_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/outbox.pc.in ${CMAKE_BINARY_DIR}/outbox.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/outbox.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# The CMake package.
set(OB_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/outbox)
install(EXPORT outboxTargets NAMESPACE outbox:: DESTINATION ${OB_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/outboxConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/outboxConfig.cmake
                              INSTALL_DESTINATION ${OB_CMAKE_DIR})
# 0.x: a minor version may change the API (SameMinorVersion); from 1.0 on,
# the major.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/outboxConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/outboxConfig.cmake ${CMAKE_BINARY_DIR}/outboxConfigVersion.cmake
        DESTINATION ${OB_CMAKE_DIR} COMPONENT dev)

install(FILES ${PROJECT_SOURCE_DIR}/completions/outbox.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME outbox)
install(FILES ${PROJECT_SOURCE_DIR}/completions/outboxd.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME outboxd)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/outboxd.conf
        DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/outbox)

# The systemd unit, naming where outboxd is installed: made at install
# time, when the prefix (--prefix) is known.
# OB_SYSTEMD_UNITDIR is under the prefix, or absolute (Debian's package:
# /lib/systemd/system; DESTDIR still applies).
set(OB_SYSTEMD_UNITDIR lib/systemd/system CACHE STRING "where outboxd.service goes")
if(IS_ABSOLUTE "${OB_SYSTEMD_UNITDIR}")
  set(OB_UNIT_DEST "${OB_SYSTEMD_UNITDIR}")
else()
  set(OB_UNIT_DEST "\${CMAKE_INSTALL_PREFIX}/${OB_SYSTEMD_UNITDIR}")
endif()
install(CODE "
  set(OB_SBINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/systemd/outboxd.service.in\"
                 \"${CMAKE_BINARY_DIR}/unit/outboxd.service\" @ONLY)
  file(INSTALL DESTINATION \"${OB_UNIT_DEST}\"
       TYPE FILE FILES \"${CMAKE_BINARY_DIR}/unit/outboxd.service\")")

# The man pages: man/*.scd, made by scdoc at build time (tests/manpages.sh
# checks them against --help and the headers).
find_program(SCDOC scdoc REQUIRED)
set(OB_MAN_PAGES outboxd.8 outbox.1 outboxd.conf.5 liboutbox.3)
set(OB_MAN_OUT "")
foreach(page ${OB_MAN_PAGES})
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${page}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND sh -c "\"$0\" < \"$1\" > \"$2\"" ${SCDOC} ${PROJECT_SOURCE_DIR}/man/${page}.scd
            ${CMAKE_BINARY_DIR}/man/${page}
    DEPENDS ${PROJECT_SOURCE_DIR}/man/${page}.scd VERBATIM)
  list(APPEND OB_MAN_OUT ${CMAKE_BINARY_DIR}/man/${page})
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  install(FILES ${CMAKE_BINARY_DIR}/man/${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man ALL DEPENDS ${OB_MAN_OUT})
