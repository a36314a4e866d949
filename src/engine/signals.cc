#include "engine/signals.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "engine/ptrace.h"

namespace ckpt::engine {

namespace {
struct KernelSigaction {
  std::uint64_t handler, flags, restorer, mask;
};
}  // namespace

Status DumpSignals(Injector* inj, Signals* s) {
  std::uint64_t slot = inj->scratch();
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    RETURN_IF_ERROR(inj->Call("rt_sigaction(" + std::to_string(sig) + ")", SYS_rt_sigaction,
                              {static_cast<std::uint64_t>(sig), 0, slot, 8})
                        .status());
    KernelSigaction ka;
    RETURN_IF_ERROR(ReadMemory(inj->tid(), slot, &ka, sizeof ka));
    s->actions[sig - 1] = {ka.handler, ka.flags, ka.restorer, ka.mask};
  }
  ASSIGN_OR_RETURN(s->pending, PeekPendingSignals(inj->tid(), true));
  return Status::Ok();
}

int ChildInstallSigactions(const Signals& s, int* bad_sig) {
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const SigAction& a = s.actions[sig - 1];
    KernelSigaction ka = {a.handler, a.flags, a.restorer, a.mask};
    if (::syscall(SYS_rt_sigaction, sig, &ka, nullptr, 8) != 0) {
      *bad_sig = sig;
      return errno;
    }
  }
  return 0;
}

namespace {
int SignalOf(const std::string& si) {
  int sig = 0;
  if (si.size() >= sizeof sig) std::memcpy(&sig, si.data(), sizeof sig);
  return sig;
}
}  // namespace

void RecordGroupStop(Signals* s) {
  // siginfo_t: si_signo, si_errno, si_code (SI_USER), then zeros.
  std::string si(128, '\0');
  std::int32_t head[3] = {SIGSTOP, 0, SI_USER};
  std::memcpy(si.data(), head, sizeof head);
  s->pending.push_back(std::move(si));
}

bool StopsAfterRestore(const ProcessModel& m) {
  for (const auto& si : m.signals.pending) {
    if (SignalOf(si) == SIGSTOP) return true;
  }
  for (const auto& t : m.threads) {
    for (const auto& si : t.pending) {
      if (SignalOf(si) == SIGSTOP) return true;
    }
  }
  return false;
}

Status RestorePendingSignals(const ProcessModel& m, Injector* leader, pid_t tgid) {
  auto queue = [&](const std::string& si, bool thread, pid_t tid) -> Status {
    int sig = SignalOf(si);
    if (sig == SIGSTOP) return Status::Ok();  // sent by the caller at the end
    ASSIGN_OR_RETURN(std::uint64_t at, leader->PutScratch(1024, si.data(), si.size()));
    if (thread) {
      return leader
          ->Call("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo,
                 {static_cast<std::uint64_t>(tgid), static_cast<std::uint64_t>(tid),
                  static_cast<std::uint64_t>(sig), at})
          .status();
    }
    return leader
        ->Call("rt_sigqueueinfo", SYS_rt_sigqueueinfo,
               {static_cast<std::uint64_t>(tgid), static_cast<std::uint64_t>(sig), at})
        .status();
  };
  for (const auto& si : m.signals.pending) RETURN_IF_ERROR(queue(si, false, 0));
  for (const auto& t : m.threads) {
    for (const auto& si : t.pending) RETURN_IF_ERROR(queue(si, true, t.tid));
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
