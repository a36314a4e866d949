#include "engine/inject.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "engine/ptrace.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

Status Injector::Save() {
  RETURN_IF_ERROR(GetRegs(tid_, &saved_));
  have_saved_ = true;
  return Status::Ok();
}

Status Injector::Restore() {
  if (!have_saved_) return Internal("Injector::Restore without Save");
  return SetRegs(tid_, saved_);
}

Status Injector::Load(std::uint64_t insn, long nr, std::initializer_list<std::uint64_t> args) {
  if (!have_saved_) RETURN_IF_ERROR(Save());
  std::uint64_t a[6] = {0, 0, 0, 0, 0, 0};
  int i = 0;
  for (std::uint64_t v : args) {
    if (i == 6) return Internal("more than six system call arguments");
    a[i++] = v;
  }
  arch::Regs r = saved_;
  arch::SetSyscall(&r, insn, nr, a);
  return SetRegs(tid_, r);
}

Result<long> Injector::Raw(long nr, std::initializer_list<std::uint64_t> args) {
  RETURN_IF_ERROR(Load(gadget_, nr, args));
  ASSIGN_OR_RETURN(arch::Regs out, Trap("injected system call " + std::to_string(nr)));
  return arch::SyscallResult(out);
}

Result<arch::Regs> Injector::RunToTrap(const arch::Regs& r, const std::string& what) {
  if (!have_saved_) RETURN_IF_ERROR(Save());
  RETURN_IF_ERROR(SetRegs(tid_, r));
  return Trap(what);
}

Result<arch::Regs> Injector::Trap(const std::string& what) {
  RETURN_IF_ERROR(Cont(tid_, 0));
  while (true) {
    ASSIGN_OR_RETURN(StopInfo st, WaitStop(tid_));
    if (st.event != 0) {  // PTRACE_EVENT_CLONE and friends: the call goes on
      RETURN_IF_ERROR(Cont(tid_, 0));
      continue;
    }
    if (st.signal == SIGTRAP) break;
    arch::Regs now{};
    (void)GetRegs(tid_, &now);
    const char* n = sigabbrev_np(st.signal);
    return Internal(what + " in thread " + std::to_string(tid_) + " stopped by SIG" +
                    (n != nullptr ? n : "?") + " at ip " + std::to_string(arch::Ip(now)));
  }
  arch::Regs out{};
  RETURN_IF_ERROR(GetRegs(tid_, &out));
  return out;
}

Result<std::uint64_t> Injector::Call(const std::string& what, long nr,
                                     std::initializer_list<std::uint64_t> args) {
  ASSIGN_OR_RETURN(long r, Raw(nr, args));
  if (r < 0 && r > -4096) {
    return PosixError(what, "(in process " + std::to_string(tid_) + ")", static_cast<int>(-r));
  }
  return static_cast<std::uint64_t>(r);
}

Result<long> Injector::RawToSyscallExit(std::uint64_t insn, long nr,
                                        std::initializer_list<std::uint64_t> args) {
  RETURN_IF_ERROR(Load(insn, nr, args));
  for (int stop = 0; stop < 2; ++stop) {  // syscall entry, then exit
    RETURN_IF_ERROR(SyscallStep(tid_));
    ASSIGN_OR_RETURN(StopInfo st, WaitStop(tid_));
    if (st.signal != SIGTRAP) {
      return Internal("thread " + std::to_string(tid_) + " stopped by signal " + std::to_string(st.signal) +
                      " instead of at a system call");
    }
  }
  arch::Regs out{};
  RETURN_IF_ERROR(GetRegs(tid_, &out));
  return arch::SyscallResult(out);
}

Status Injector::UnmapGadgetArea() {
  ASSIGN_OR_RETURN(long r, RawToSyscallExit(gadget_, SYS_munmap, {gadget_, kGadgetAreaSize}));
  if (r != 0) return PosixError("munmap gadget area", "", static_cast<int>(-r));
  return Status::Ok();
}

Result<std::uint64_t> Injector::PutScratch(std::uint64_t offset, const void* data, std::size_t size) {
  if (offset + size > kGadgetAreaSize - kScratchOffset) return Internal("scratch area overflow");
  std::uint64_t addr = scratch() + offset;
  RETURN_IF_ERROR(WriteMemory(tid_, addr, data, size));
  return addr;
}

namespace {

// process_vm_readv/writev, falling back to /proc/PID/mem (FOLL_FORCE) for
// pages whose protection refuses the fast path.
Status MemoryIo(pid_t pid, std::uint64_t addr, void* buf, std::size_t size, bool write) {
  struct iovec l = {buf, size};
  struct iovec r = {reinterpret_cast<void*>(addr), size};
  ssize_t n = write ? ::process_vm_writev(pid, &l, 1, &r, 1, 0) : ::process_vm_readv(pid, &l, 1, &r, 1, 0);
  if (n == static_cast<ssize_t>(size)) return Status::Ok();
  std::string mem = "/proc/" + std::to_string(pid) + "/mem";
  int fd = ::open(mem.c_str(), (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return PosixError("open", mem, errno);
  ssize_t done = write ? ::pwrite(fd, buf, size, static_cast<off_t>(addr))
                       : ::pread(fd, buf, size, static_cast<off_t>(addr));
  int e = errno;
  ::close(fd);
  if (done != static_cast<ssize_t>(size)) {
    return PosixError(std::string(write ? "write" : "read") + " memory at " + std::to_string(addr) + " of",
                      "process " + std::to_string(pid), done < 0 ? e : EIO);
  }
  return Status::Ok();
}

}  // namespace

Status ReadMemory(pid_t pid, std::uint64_t addr, void* dst, std::size_t size) {
  return MemoryIo(pid, addr, dst, size, false);
}

Status WriteMemory(pid_t pid, std::uint64_t addr, const void* src, std::size_t size) {
  return MemoryIo(pid, addr, const_cast<void*>(src), size, true);
}

Result<std::uint64_t> FindSyscallInstruction(
    pid_t pid, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges) {
  std::string buf;
  for (const auto& [lo, hi] : ranges) {
    for (std::uint64_t at = lo; at < hi; at += 1 << 20) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(hi - at, 1 << 20));
      buf.resize(n);
      if (!ReadMemory(pid, at, buf.data(), n).ok()) break;
      for (std::size_t i = 0; i + 1 < n; ++i) {
        if (static_cast<unsigned char>(buf[i]) == 0x0f && static_cast<unsigned char>(buf[i + 1]) == 0x05) {
          return at + i;
        }
      }
    }
  }
  return NotSupported("process " + std::to_string(pid) + " has no system call instruction in its code");
}

Result<std::uint64_t> BootstrapGadget(pid_t tid, std::uint64_t insn) {
  Injector inj(tid, insn);
  RETURN_IF_ERROR(inj.Save());
  Result<long> area = inj.RawToSyscallExit(insn, SYS_mmap,
                                           {0, kGadgetAreaSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                                            MAP_PRIVATE | MAP_ANONYMOUS, static_cast<std::uint64_t>(-1), 0});
  Status rs = inj.Restore();
  if (!area.ok()) return area.status();
  if (*area < 0 && *area > -4096)
    return PosixError("mmap gadget area", "in process " + std::to_string(tid), static_cast<int>(-*area));
  RETURN_IF_ERROR(rs);
  std::uint64_t at = static_cast<std::uint64_t>(*area);
  RETURN_IF_ERROR(WriteMemory(tid, at, arch::kGadget, arch::kGadgetSize));
  return at;
}

}  // namespace ckpt::engine
