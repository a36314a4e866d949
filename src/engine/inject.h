// Runs system calls inside a stopped, traced thread: its registers are
// pointed at a `syscall; int3` gadget mapped in the tracee, the thread runs
// to the breakpoint, and rax holds the result. Also reads and writes tracee
// memory. One Injector per traced thread; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

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

  // Runs system call `nr`; returns the raw result (-errno on failure).
  Result<long> Raw(long nr, std::initializer_list<std::uint64_t> args);
  // Like Raw, but a negative result becomes an error naming `what`.
  Result<std::uint64_t> Call(const std::string& what, long nr, std::initializer_list<std::uint64_t> args);

  pid_t tid() const { return tid_; }
  std::uint64_t gadget() const { return gadget_; }
  void set_gadget(std::uint64_t g) { gadget_ = g; }
  std::uint64_t scratch() const { return gadget_ + kScratchOffset; }
  // Runs system call `nr` at the `syscall` instruction `insn` (anywhere in
  // the process's code) and stops at its exit: nothing after it runs.
  Result<long> RawToSyscallExit(std::uint64_t insn, long nr, std::initializer_list<std::uint64_t> args);
  // Unmaps the gadget area with the last injected call, stopping at its
  // syscall exit so nothing runs from the vanished page. The thread's
  // registers must be set (Restore or final state) before it runs again.
  Status UnmapGadgetArea();
  // Runs the thread from registers `r` (code the caller put in the gadget
  // area) until it stops at an int3; returns the registers there.
  Result<arch::Regs> RunToTrap(const arch::Regs& r, const std::string& what);
  // Writes `data` into the scratch area at `offset`; returns its tracee address.
  Result<std::uint64_t> PutScratch(std::uint64_t offset, const void* data, std::size_t size);

 private:
  // Sets the saved registers up to run `nr` at `insn`.
  Status Load(std::uint64_t insn, long nr, std::initializer_list<std::uint64_t> args);
  // Lets the thread run from the registers set until it stops at an int3.
  Result<arch::Regs> Trap(const std::string& what);
  pid_t tid_;
  std::uint64_t gadget_;
  arch::Regs saved_{};
  bool have_saved_ = false;
};

// Tracee memory. Writes fall back to /proc/PID/mem for read-only pages.
Status ReadMemory(pid_t pid, std::uint64_t addr, void* dst, std::size_t size);
Status WriteMemory(pid_t pid, std::uint64_t addr, const void* src, std::size_t size);

// The address of a `syscall` instruction (0f 05) in one of `ranges`
// (executable mappings of `pid`), to run the first injected call from.
Result<std::uint64_t> FindSyscallInstruction(
    pid_t pid, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges);
// Maps a gadget area (kGadgetAreaSize bytes, RWX) into a stopped tracee by
// running one mmap at its own `syscall` instruction `insn`, stopping at the
// syscall exit: no byte of the process is changed. Returns the area.
Result<std::uint64_t> BootstrapGadget(pid_t tid, std::uint64_t insn);

}  // namespace ckpt::engine
