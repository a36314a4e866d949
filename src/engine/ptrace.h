// Thin wrappers over ptrace(2) and waitpid for one traced thread. Each
// failure becomes a Status naming the request and the thread. Stateless;
// a thread may be traced by one ckpt thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/arch/x86_64/regs.h"
#include "util/status.h"

namespace ckpt::engine {

// How a thread came to a stop.
struct StopInfo {
  int status = 0;  // raw wait status
  int signal = 0;  // WSTOPSIG
  int event = 0;   // PTRACE_EVENT_* (status >> 16)
};

Status Seize(pid_t tid, long options);
Status Interrupt(pid_t tid);
Status Cont(pid_t tid, int sig);
Status Detach(pid_t tid, int sig);
Status SyscallStep(pid_t tid);  // PTRACE_SYSCALL
// Waits for the next stop of `tid`; an exit or a kill is an error that says so.
Result<StopInfo> WaitStop(pid_t tid);

Status GetRegs(pid_t tid, arch::Regs* r);
Status SetRegs(pid_t tid, const arch::Regs& r);
Result<std::string> GetXstate(pid_t tid);
Status SetXstate(pid_t tid, const std::string& xsave);
Result<std::uint64_t> GetSigmask(pid_t tid);
Status SetSigmask(pid_t tid, std::uint64_t mask);
Result<std::string> GetSiginfo(pid_t tid);
// Pending signals queued to the thread (or, with `shared`, to the process), 128 bytes each.
Result<std::vector<std::string>> PeekPendingSignals(pid_t tid, bool shared);

struct RseqConfig {
  std::uint64_t ptr = 0;
  std::uint32_t len = 0, sig = 0, flags = 0;
};
Result<RseqConfig> GetRseq(pid_t tid);

// "process 123 exited (status 0)" style description of a wait status.
std::string DescribeWaitStatus(int status);

}  // namespace ckpt::engine
