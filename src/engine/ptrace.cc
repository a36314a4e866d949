#include "engine/ptrace.h"

#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cstring>

#include "platform/posix_util.h"

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

namespace ckpt::engine {

using platform::PosixError;

namespace {

std::string Tid(pid_t tid) {
  return "thread " + std::to_string(tid);
}

Status Call(const char* op, long req, pid_t tid, void* addr, void* data) {
  if (::ptrace(static_cast<enum __ptrace_request>(req), tid, addr, data) == -1) {
    int e = errno;
    if (e == ESRCH) return NotFound(std::string(op) + " " + Tid(tid) + ": the thread is gone or not stopped");
    return PosixError(op, Tid(tid), e);
  }
  return Status::Ok();
}

struct PeekSiginfoArgs {
  std::uint64_t off;
  std::uint32_t flags;
  std::int32_t nr;
};

}  // namespace

Status Seize(pid_t tid, long options) {
  return Call("PTRACE_SEIZE", PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(options));
}
Status Interrupt(pid_t tid) {
  return Call("PTRACE_INTERRUPT", PTRACE_INTERRUPT, tid, nullptr, nullptr);
}
Status Cont(pid_t tid, int sig) {
  return Call("PTRACE_CONT", PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
}
Status Detach(pid_t tid, int sig) {
  return Call("PTRACE_DETACH", PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
}
Status SyscallStep(pid_t tid) {
  return Call("PTRACE_SYSCALL", PTRACE_SYSCALL, tid, nullptr, nullptr);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* n = sigabbrev_np(WTERMSIG(status));
    return std::string("was killed by SIG") + (n != nullptr ? n : std::to_string(WTERMSIG(status)).c_str());
  }
  if (WIFSTOPPED(status)) {
    const char* n = sigabbrev_np(WSTOPSIG(status));
    return std::string("stopped by SIG") + (n != nullptr ? n : std::to_string(WSTOPSIG(status)).c_str()) +
           " (event " + std::to_string(status >> 16) + ")";
  }
  return "changed state (wait status " + std::to_string(status) + ")";
}

Result<StopInfo> WaitStop(pid_t tid) {
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(tid, &status, __WALL);
    if (r == tid) break;
    if (r == -1 && errno == EINTR) continue;
    return PosixError("waitpid", Tid(tid), errno);
  }
  if (!WIFSTOPPED(status)) {
    return FailedPrecondition(Tid(tid) + " " + DescribeWaitStatus(status) + " while ckpt was working on it");
  }
  StopInfo s;
  s.status = status;
  s.signal = WSTOPSIG(status);
  s.event = status >> 16;
  return s;
}

Status GetRegs(pid_t tid, arch::Regs* r) {
  return Call("PTRACE_GETREGS", PTRACE_GETREGS, tid, nullptr, r);
}
Status SetRegs(pid_t tid, const arch::Regs& r) {
  return Call("PTRACE_SETREGS", PTRACE_SETREGS, tid, nullptr, const_cast<arch::Regs*>(&r));
}

Result<std::string> GetXstate(pid_t tid) {
  std::string buf(16384, '\0');
  struct iovec iov = {buf.data(), buf.size()};
  RETURN_IF_ERROR(Call("PTRACE_GETREGSET(NT_X86_XSTATE)", PTRACE_GETREGSET, tid,
                       reinterpret_cast<void*>(NT_X86_XSTATE), &iov));
  buf.resize(iov.iov_len);
  return buf;
}

Status SetXstate(pid_t tid, const std::string& xsave) {
  std::string copy = xsave;
  struct iovec iov = {copy.data(), copy.size()};
  return Call("PTRACE_SETREGSET(NT_X86_XSTATE)", PTRACE_SETREGSET, tid,
              reinterpret_cast<void*>(NT_X86_XSTATE), &iov);
}

Result<std::uint64_t> GetSigmask(pid_t tid) {
  std::uint64_t m = 0;
  RETURN_IF_ERROR(Call("PTRACE_GETSIGMASK", PTRACE_GETSIGMASK, tid, reinterpret_cast<void*>(sizeof m), &m));
  return m;
}

Status SetSigmask(pid_t tid, std::uint64_t mask) {
  return Call("PTRACE_SETSIGMASK", PTRACE_SETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask);
}

Result<std::string> GetSiginfo(pid_t tid) {
  std::string si(128, '\0');
  RETURN_IF_ERROR(Call("PTRACE_GETSIGINFO", PTRACE_GETSIGINFO, tid, nullptr, si.data()));
  return si;
}

Result<std::vector<std::string>> PeekPendingSignals(pid_t tid, bool shared) {
  std::vector<std::string> out;
  constexpr int kBatch = 32;
  char buf[kBatch * 128];
  for (std::uint64_t off = 0;; off += kBatch) {
    PeekSiginfoArgs a{off, shared ? 1u : 0u, kBatch};
    long n = ::ptrace(PTRACE_PEEKSIGINFO, tid, &a, buf);
    if (n < 0) return PosixError("PTRACE_PEEKSIGINFO", Tid(tid), errno);
    for (long i = 0; i < n; ++i) out.emplace_back(buf + i * 128, 128);
    if (n < kBatch) break;
  }
  return out;
}

Result<RseqConfig> GetRseq(pid_t tid) {
  struct {
    std::uint64_t rseq_abi_pointer;
    std::uint32_t rseq_abi_size;
    std::uint32_t signature;
    std::uint32_t flags;
    std::uint32_t pad;
  } conf{};
  long n = ::ptrace(static_cast<enum __ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid,
                    reinterpret_cast<void*>(sizeof conf), &conf);
  if (n < 0) return PosixError("PTRACE_GET_RSEQ_CONFIGURATION", Tid(tid), errno);
  RseqConfig c;
  c.ptr = conf.rseq_abi_pointer;
  c.len = conf.rseq_abi_size;
  c.sig = conf.signature;
  c.flags = conf.flags;
  return c;
}

}  // namespace ckpt::engine
