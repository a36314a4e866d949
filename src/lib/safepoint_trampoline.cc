// Support for the x86-64 safepoint trampoline (safepoint_x86_64.S): the size
// and method of saving the extended register state, probed once with CPUID,
// and the C entry point the trampoline calls. Exceptions never cross the
// trampoline: they are parked in the session and rethrown by the caller.
#include <cpuid.h>

#include <cstdint>

#include "ckpt/ckpt.hpp"

// Hidden: the trampoline reaches them %rip-relative, which a shared libckpt
// (or libckpt.a inside another shared object) can only do for symbols of its own.
extern "C" {
// Read by the trampoline. Until probed: FXSAVE of 512 bytes (plus alignment slack).
__attribute__((visibility("hidden"))) std::uint64_t ckpt_xstate_size = 512 + 64;
__attribute__((visibility("hidden"))) unsigned char ckpt_xstate_xsave = 0;
}

namespace ckpt::detail {

void ProbeExtendedState() {
  static bool done = false;
  if (done) return;
  done = true;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  const bool osxsave = (c & (1u << 27)) != 0;
  if (!osxsave || __get_cpuid_max(0, nullptr) < 0xD) return;
  __cpuid_count(0xD, 0, a, b, c, d);
  // EBX: bytes needed for the components enabled in XCR0 (standard form).
  if (b < 576) return;
  ckpt_xstate_size = b + 64;
  ckpt_xstate_xsave = 1;
}

}  // namespace ckpt::detail

extern "C" __attribute__((visibility("hidden"))) long ckpt_safepoint_slow_c(ckpt::Session* s) noexcept {
  return ckpt::detail::SafepointEntry(s);
}
