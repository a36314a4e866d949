# Packages of what `cmake --install` installs: `cpack -G DEB` in a native
# Linux build (the CLI, ckptd, libckpt.a/.so, headers, the CMake package and
# the pkg-config file, under /usr), `cpack -G ZIP` in the Windows build (the
# CLI, libckpt.a, headers, CMake package).
set(CPACK_PACKAGE_NAME ckpt)
set(CPACK_PACKAGE_VENDOR "ckpt")
set(CPACK_PACKAGE_CONTACT "ckpt developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Checkpoint and migrate computations between hosts, operating systems and CPUs")
set(CPACK_PACKAGE_DESCRIPTION
    "ckpt moves running computations between machines without losing their work: the CKPT library (programs that resume on another OS or CPU), dependent process groups, a transparent Linux engine for unmodified processes, and ckpt migrate over OpenSSH or mutual TLS.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_README ${PROJECT_SOURCE_DIR}/README.md)
set(CPACK_PACKAGE_FILE_NAME "ckpt-${PROJECT_VERSION}-${CMAKE_SYSTEM_NAME}-${CMAKE_SYSTEM_PROCESSOR}")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
if(WIN32)
  set(CPACK_GENERATOR ZIP)
else()
  set(CPACK_GENERATOR DEB)
  set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
  set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
  set(CPACK_DEBIAN_PACKAGE_SECTION utils)
  # Depends from the binaries' shared libraries (dpkg-shlibdeps).
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  # libckpt.a's own link dependencies, for programs built against it.
  set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libzstd-dev, zlib1g-dev, pkg-config")
endif()
include(CPack)
