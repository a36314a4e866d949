#include "engine/inject.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

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

Result<long> Injector::Raw(long nr, std::initializer_list<std::uint64_t> args) {
  if (!have_saved_) RETURN_IF_ERROR(Save());
  std::uint64_t a[6] = {0, 0, 0, 0, 0, 0};
  int i = 0;
  for (std::uint64_t v : args) a[i++] = v;
  arch::Regs r = saved_;
  arch::SetSyscall(&r, gadget_, nr, a);
  RETURN_IF_ERROR(SetRegs(tid_, r));
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
    return Internal("injected system call " + std::to_string(nr) + " in thread " + std::to_string(tid_) +
                    " stopped by SIG" + (n != nullptr ? n : "?") + " at ip " + std::to_string(arch::Ip(now)));
  }
  arch::Regs out{};
  RETURN_IF_ERROR(GetRegs(tid_, &out));
  return arch::SyscallResult(out);
}

Result<std::uint64_t> Injector::Call(const std::string& what, long nr,
                                     std::initializer_list<std::uint64_t> args) {
  ASSIGN_OR_RETURN(long r, Raw(nr, args));
  if (r < 0 && r > -4096) {
    return PosixError(what, "(in process " + std::to_string(tid_) + ")", static_cast<int>(-r));
  }
  return static_cast<std::uint64_t>(r);
}

Status Injector::UnmapGadgetArea() {
  if (!have_saved_) RETURN_IF_ERROR(Save());
  std::uint64_t a[6] = {gadget_, kGadgetAreaSize, 0, 0, 0, 0};
  arch::Regs r = saved_;
  arch::SetSyscall(&r, gadget_, SYS_munmap, a);
  RETURN_IF_ERROR(SetRegs(tid_, r));
  for (int stop = 0; stop < 2; ++stop) {  // syscall entry, then exit
    RETURN_IF_ERROR(SyscallStep(tid_));
    ASSIGN_OR_RETURN(StopInfo st, WaitStop(tid_));
    if (st.signal != SIGTRAP) return Internal("unexpected stop while unmapping the gadget area");
  }
  arch::Regs out{};
  RETURN_IF_ERROR(GetRegs(tid_, &out));
  if (arch::SyscallResult(out) != 0) {
    return PosixError("munmap gadget area", "", static_cast<int>(-arch::SyscallResult(out)));
  }
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

Result<std::uint64_t> BootstrapGadget(pid_t tid, std::uint64_t exec_addr, std::uint64_t hint) {
  unsigned char orig[8];
  RETURN_IF_ERROR(ReadMemory(tid, exec_addr, orig, sizeof orig));
  unsigned char patched[8];
  std::memcpy(patched, orig, sizeof patched);
  std::memcpy(patched, arch::kGadget, arch::kGadgetSize);
  RETURN_IF_ERROR(WriteMemory(tid, exec_addr, patched, sizeof patched));
  Injector inj(tid, exec_addr);
  Status saved = inj.Save();
  Result<std::uint64_t> area =
      saved.ok() ? inj.Call("mmap gadget area", SYS_mmap,
                            {hint, kGadgetAreaSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                             static_cast<std::uint64_t>(MAP_PRIVATE | MAP_ANONYMOUS |
                                                        (hint != 0 ? MAP_FIXED_NOREPLACE : 0)),
                             static_cast<std::uint64_t>(-1), 0})
                 : Result<std::uint64_t>(saved);
  // Put the borrowed bytes and the registers back whatever happened.
  Status put_back = WriteMemory(tid, exec_addr, orig, sizeof orig);
  if (saved.ok()) {
    Status rs = inj.Restore();
    if (put_back.ok()) put_back = rs;
  }
  if (!area.ok()) return area.status();
  RETURN_IF_ERROR(put_back);
  RETURN_IF_ERROR(WriteMemory(tid, *area, arch::kGadget, arch::kGadgetSize));
  return *area;
}

}  // namespace ckpt::engine
