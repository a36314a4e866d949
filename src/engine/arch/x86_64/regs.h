// x86-64 specifics of the engine: the general register set in image order,
// system-call injection registers, syscall-restart fix-ups and the gadget
// bytes. Stateless helpers; thread-safe.
#pragma once

#include <sys/user.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "engine/model.h"

namespace ckpt::engine::arch {

using Regs = struct user_regs_struct;

// The gadget every injected system call runs: `syscall; int3`, then `jmp .`:
// a thread let go at the int3 stop (ckpt's dump worker killed) spins there
// harmlessly until its registers are put back (guard.h).
inline constexpr unsigned char kGadget[] = {0x0f, 0x05, 0xcc, 0xeb, 0xfe};
inline constexpr int kGadgetSize = 5;
// Address of the same gadget compiled into ckpt (valid in a fork of ckpt).
std::uint64_t BuiltinGadget();

// A loop of pwrite64 calls for a tracee to write its own memory into a file
// with one injection: machine code to copy into the gadget area, its
// register set-up, and where it stopped. Table entries are three 64-bit
// words: address, length, file offset.
std::pair<const unsigned char*, std::size_t> WriteLoopCode();
void SetWriteLoop(Regs* r, std::uint64_t code, std::uint64_t table, std::uint64_t count, int fd);
struct WriteLoopStop {
  std::uint64_t done = 0;  // entries fully written
  bool failed = false;     // entry `done` wrote less than asked (or failed)
};
WriteLoopStop WriteLoopProgress(const Regs& r, std::uint64_t count);

std::array<std::uint64_t, kGpRegs> ToArray(const Regs& r);
Regs FromArray(const std::array<std::uint64_t, kGpRegs>& a);

// Prepares `r` to run system call `nr` at `gadget` with up to six arguments.
void SetSyscall(Regs* r, std::uint64_t gadget, long nr, const std::uint64_t args[6]);
long SyscallResult(const Regs& r);
std::uint64_t Ip(const Regs& r);
std::uint64_t Sp(const Regs& r);
std::uint64_t FsBase(const Regs& r);
// True when the thread runs 64-bit code (not a 32-bit compat process).
bool IsNative64(const Regs& r);

// A thread stopped inside an interrupted system call would have it restarted
// by the kernel on resume. In a restored process there is no such kernel
// state: turn the registers into "about to execute the syscall again" (or
// EINTR for restart_syscall) as they would be seen in user space.
void FixSyscallRestart(Regs* r);
// A thread stopped by ckpt inside semop/semtimedop comes back with -EINTR
// (System V semaphores never restart by themselves). Nothing was done by
// the call, so it is set to run again instead: ckpt's stop must not be
// visible to the program. Returns whether it changed anything.
bool RestartInterruptedSemop(Regs* r);
// Registers for a restored thread: no in-kernel syscall state.
void ClearInSyscall(Regs* r);

}  // namespace ckpt::engine::arch
