# Batch schedulers (docs/schedulers.md): `ckpt job` and `ckpt evacuate`
# against a real Slurm that each case starts under a private directory
# (tests/lib/slurm.py), label `slurm`. Skips (exit 77) without slurm-wlm and
# munge. Each case runs a cluster of its own in namespaces (no shared port,
# address or PID space), so cases may run side by side.
set(_slurm_cases outside_slurm preempt_program checkpoint_fails evacuate_group drain_transparent node_dies rebalance)
if(CKPT_SANITIZE)
  set(_slurm_cases outside_slurm checkpoint_fails)  # the error paths; the wrappers are small, the cases slow
endif()
foreach(c ${_slurm_cases})
  add_test(NAME slurm_${c}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/slurm/test_slurm.py ${c}
                   --bin ${CMAKE_BINARY_DIR}/bin)
  set_tests_properties(slurm_${c} PROPERTIES LABELS slurm SKIP_RETURN_CODE 77 TIMEOUT 400)
endforeach()
