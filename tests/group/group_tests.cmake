# End-to-end tests of dependent process groups, label `group`. The Wine case
# needs the windows-x64 cross build (CKPT_WINDOWS_BIN, default
# build/windows-x64/bin) and skips (exit 77) without it.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(CKPT_WINDOWS_BIN "${PROJECT_SOURCE_DIR}/build/windows-x64/bin" CACHE PATH "Windows build of the examples for Wine tests")
set(_group_cases ring_checkpoints jacobi_bitwise blocked_consumer barrier_checkpoint timeout client_timeout kill_member
    kill_coordinator corrupt_image wine_migration s390x_migration solo_objects solo_wine wine_barriers
    auth_clients auth_slow_client auth_fake_member signals wine_orphans)
foreach(c ${_group_cases})
  add_test(NAME group_${c}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/group/test_group.py ${c}
                   --bin ${CMAKE_BINARY_DIR}/bin --winbin ${CKPT_WINDOWS_BIN}
                   --s390xbin ${PROJECT_SOURCE_DIR}/build/linux-s390x/bin)
  set_tests_properties(group_${c} PROPERTIES LABELS group SKIP_RETURN_CODE 77 TIMEOUT 240
                       ENVIRONMENT "WINEDEBUG=-all")
endforeach()
set_tests_properties(group_wine_migration group_solo_wine group_wine_barriers group_wine_orphans
                     PROPERTIES RESOURCE_LOCK wine)

# Unit tests of the group building blocks, in the unit_tests binary (label unit).
target_sources(unit_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/group/group_unit_test.cc)
