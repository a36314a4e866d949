# Installing libckpt for other projects: headers, libckpt.a (and libckpt.so),
# a CMake package (find_package(ckpt) -> ckpt::ckpt, ckpt::shared) and a
# pkg-config file (pkg-config --cflags --libs ckpt; --static for libckpt.a).
include(CMakePackageConfigHelpers)

set(_ckpt_lib_targets ckpt_core)
if(CKPT_BUILD_SHARED)
  list(APPEND _ckpt_lib_targets ckpt_shared)
endif()
install(TARGETS ${_ckpt_lib_targets} EXPORT ckptTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/ckpt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(CKPT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ckpt)
install(EXPORT ckptTargets NAMESPACE ckpt:: DESTINATION ${CKPT_CMAKE_DIR} FILE ckptTargets.cmake)
configure_package_config_file(cmake/ckptConfig.cmake.in ${CMAKE_BINARY_DIR}/packaging/ckptConfig.cmake
                              INSTALL_DESTINATION ${CKPT_CMAKE_DIR})
# 0.x: a minor version may change the API (SameMinorVersion); from 1.0 on, SameMajorVersion.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/ckptConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/packaging/ckptConfig.cmake ${CMAKE_BINARY_DIR}/packaging/ckptConfigVersion.cmake
        DESTINATION ${CKPT_CMAKE_DIR})

# pkg-config: paths relative to the file's own place (relocatable prefix).
set(CKPT_PC_CFLAGS "")
foreach(o ${CKPT_CONSUMER_OPTIONS})
  string(APPEND CKPT_PC_CFLAGS " ${o}")
endforeach()
set(CKPT_PC_SYSTEM_LIBS "")
foreach(l ${CKPT_SYSTEM_LIBS})
  string(APPEND CKPT_PC_SYSTEM_LIBS " -l${l}")
endforeach()
file(RELATIVE_PATH CKPT_PC_PREFIX_FROM_PC "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
configure_file(cmake/ckpt.pc.in ${CMAKE_BINARY_DIR}/packaging/ckpt.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/ckpt.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
