// Runs system calls inside a stopped, traced thread: its registers are
// pointed at a `syscall; int3` gadget mapped in the tracee, the thread runs
// to the breakpoint, and rax holds the result. Also reads and writes tracee
// memory. One Injector per traced thread; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "engine/arch/x86_64/regs.h"
#include "util/status.h"

namespace ckpt::engine {

// Size of the gadget area the engine maps in a tracee: the gadget page and a
// scratch area for syscall arguments (paths, structs).
inline constexpr std::uint64_t kGadgetAreaSize = 16 * 4096;
inline constexpr std::uint64_t kScratchOffset = 4096;

class Injector {
 public:
  Injector(pid_t tid, std::uint64_t gadget) : tid_(tid), gadget_(gadget) {}

  // Captures the thread's registers: every call starts from them, and
  // Restore() puts them back.
  Status Save();
  Status Restore();
  const arch::Regs& saved() const { return saved_; }
  void set_saved(const arch::Regs& r) { saved_ = r; }

  // Runs system call `nr`; returns the raw result (-errno on failure).
  Result<long> Raw(long nr, std::initializer_list<std::uint64_t> args);
  // Like Raw, but a negative result becomes an error naming `what`.
  Result<std::uint64_t> Call(const std::string& what, long nr, std::initializer_list<std::uint64_t> args);

  pid_t tid() const { return tid_; }
  std::uint64_t gadget() const { return gadget_; }
  void set_gadget(std::uint64_t g) { gadget_ = g; }
  std::uint64_t scratch() const { return gadget_ + kScratchOffset; }
  // Unmaps the gadget area with the last injected call, stopping at its
  // syscall exit so nothing runs from the vanished page. The thread's
  // registers must be set (Restore or final state) before it runs again.
  Status UnmapGadgetArea();
  // Writes `data` into the scratch area at `offset`; returns its tracee address.
  Result<std::uint64_t> PutScratch(std::uint64_t offset, const void* data, std::size_t size);

 private:
  pid_t tid_;
  std::uint64_t gadget_;
  arch::Regs saved_{};
  bool have_saved_ = false;
};

// Tracee memory. Writes fall back to /proc/PID/mem for read-only pages.
Status ReadMemory(pid_t pid, std::uint64_t addr, void* dst, std::size_t size);
Status WriteMemory(pid_t pid, std::uint64_t addr, const void* src, std::size_t size);

// Maps a gadget area (kGadgetAreaSize bytes, RWX) into a stopped tracee that
// has no gadget yet, by borrowing the first bytes of executable mapping
// `exec_addr` for one mmap call and putting them back. `hint` is a preferred
// address (0: anywhere). Returns the area's address.
Result<std::uint64_t> BootstrapGadget(pid_t tid, std::uint64_t exec_addr, std::uint64_t hint);

}  // namespace ckpt::engine
