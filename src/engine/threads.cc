#include "engine/threads.h"

#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "engine/guard.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

namespace {
constexpr std::uint64_t kAllSignals = ~0ull;
}

Status FrozenProcess::Attach(pid_t tid) {
  Status s = Seize(tid, 0);
  if (!s.ok()) {
    // Traced by another tracer since the checks before the freeze: say by whom.
    auto tracer = StatusField(tid, "TracerPid");
    pid_t by = tracer.ok() ? std::atoi(tracer->c_str()) : 0;
    if (by != 0 && by != ::getpid()) {
      return FailedPrecondition("thread " + std::to_string(tid) + " is traced by process " +
                                std::to_string(by) + " (" + CommOf(by) + "); detach that tracer first (" +
                                s.message() + ")");
    }
    return s;
  }
  FrozenThread t;
  t.tid = tid;
  // A thread in a group stop (SIGSTOP, SIGTSTP...) is in a ptrace stop as
  // soon as PTRACE_SEIZE returns (the kernel waits for that), reported as
  // PTRACE_EVENT_STOP with the stop signal. It needs no PTRACE_INTERRUPT:
  // one would stay pending and stop the thread again at its first resume,
  // in the middle of an injected call.
  int status = 0;
  pid_t r = ::waitpid(tid, &status, __WALL | WNOHANG);
  if (r == tid && WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP) {
    t.group_stop = WSTOPSIG(status);
  } else {
    RETURN_IF_ERROR(Interrupt(tid));
  }
  while (t.group_stop == 0) {
    StopInfo st;
    if (r == tid) {  // already collected above (a signal-delivery stop, or an exit)
      if (!WIFSTOPPED(status)) {
        return FailedPrecondition("thread " + std::to_string(tid) + " " + DescribeWaitStatus(status) +
                                  " while ckpt was stopping it");
      }
      st.status = status;
      st.signal = WSTOPSIG(status);
      st.event = status >> 16;
      r = 0;
    } else {
      ASSIGN_OR_RETURN(st, WaitStop(tid));
    }
    if (st.event == PTRACE_EVENT_STOP) break;
    if (st.event == 0) {
      // A signal was about to be delivered: keep it for later and go on.
      ASSIGN_OR_RETURN(std::string si, GetSiginfo(tid));
      t.stashed.push_back(si);
    }
    RETURN_IF_ERROR(Cont(tid, 0));
  }
  RETURN_IF_ERROR(GetRegs(tid, &t.regs));
  // Our interrupt, not a signal, ended a semop: it runs again when let go
  // (set at once: also if ckpt's worker dies and the kernel lets it go).
  if (t.stashed.empty() && arch::RestartInterruptedSemop(&t.regs)) RETURN_IF_ERROR(SetRegs(tid, t.regs));
  ASSIGN_OR_RETURN(t.sigmask, GetSigmask(tid));
  NoteFrozenThread(pid_, tid, t.sigmask, &t.regs);
  // Injected calls must not run signal handlers.
  RETURN_IF_ERROR(SetSigmask(tid, kAllSignals));
  threads_.push_back(std::move(t));
  return Status::Ok();
}

Result<std::unique_ptr<FrozenProcess>> FrozenProcess::Freeze(pid_t pid) {
  std::unique_ptr<FrozenProcess> p(new FrozenProcess(pid));
  // Threads may be created while we attach: list again until nothing is new.
  for (int round = 0; round < 100; ++round) {
    auto tids = ListThreads(pid);
    if (!tids.ok()) {
      if (round == 0) return tids.status();
      return FailedPrecondition("process " + std::to_string(pid) + " exited while ckpt was stopping it");
    }
    bool added = false;
    for (pid_t tid : *tids) {
      bool known = std::any_of(p->threads_.begin(), p->threads_.end(),
                               [&](const FrozenThread& t) { return t.tid == tid; });
      if (known) continue;
      Status s = p->Attach(tid);
      if (!s.ok()) {
        if (tid != pid && s.code() == Code::kNotFound) continue;  // the thread exited meanwhile
        if (s.code() == Code::kNotFound) {
          return NotFound("process " + std::to_string(pid) + " does not exist or exited");
        }
        return s.WithContext("stopping process " + std::to_string(pid));
      }
      added = true;
    }
    if (!added) {
      if (p->threads_.empty() || p->threads_[0].tid != pid) {
        return NotSupported("process " + std::to_string(pid) +
                            ": its main thread has exited (a zombie leader is not supported)");
      }
      return p;
    }
  }
  return FailedPrecondition("process " + std::to_string(pid) + " keeps creating threads; cannot stop it");
}

bool FrozenProcess::group_stopped() const {
  return std::any_of(threads_.begin(), threads_.end(),
                     [](const FrozenThread& t) { return t.group_stop != 0; });
}

Status FrozenProcess::Release() {
  if (done_) return Status::Ok();
  done_ = true;
  Status first;
  for (auto& t : threads_) {
    Status s = SetRegs(t.tid, t.regs);
    if (s.ok()) s = SetSigmask(t.tid, t.sigmask);
    int sig = 0;
    if (!t.stashed.empty()) std::memcpy(&sig, t.stashed.front().data(), sizeof sig);
    Status d = Detach(t.tid, sig);
    if (first.ok() && !s.ok()) first = s;
    if (first.ok() && !d.ok()) first = d;
  }
  return first;
}

Status FrozenProcess::Kill() {
  if (done_) return Status::Ok();
  done_ = true;
  ::kill(pid_, SIGKILL);
  // The leader's exit is reported only once the other threads are gone.
  for (auto it = threads_.rbegin(); it != threads_.rend(); ++it) {
    int status;
    while (::waitpid(it->tid, &status, __WALL) == -1 && errno == EINTR) {
    }
  }
  return Status::Ok();
}

Status FrozenProcess::KillNoWait() {
  if (done_) return Status::Ok();
  done_ = true;
  if (::kill(pid_, SIGKILL) != 0)
    return platform::PosixError("kill", "process " + std::to_string(pid_), errno);
  std::vector<pid_t> tids;
  for (auto it = threads_.rbegin(); it != threads_.rend(); ++it) tids.push_back(it->tid);
  std::thread([tids] {
    for (pid_t tid : tids) {
      int status;
      while (::waitpid(tid, &status, __WALL) == -1 && errno == EINTR) {
      }
    }
  }).detach();
  return Status::Ok();
}

FrozenProcess::~FrozenProcess() {
  Release().IgnoreError();
}

Status DumpThreads(FrozenProcess& p, std::uint64_t gadget, ProcessModel* m) {
  for (auto& ft : p.threads()) {
    ThreadState t;
    t.tid = ft.tid;
    arch::Regs r = ft.regs;
    arch::FixSyscallRestart(&r);
    t.gpregs = arch::ToArray(r);
    ASSIGN_OR_RETURN(t.xsave, GetXstate(ft.tid));
    t.sigmask = ft.sigmask;
    auto rseq = GetRseq(ft.tid);
    if (rseq.ok()) {
      t.rseq_ptr = rseq->ptr;
      t.rseq_len = rseq->len;
      t.rseq_sig = rseq->sig;
    }
    ASSIGN_OR_RETURN(t.pending, PeekPendingSignals(ft.tid, false));
    if (::syscall(SYS_get_robust_list, ft.tid, &t.robust_list, &t.robust_len) != 0) {
      return platform::PosixError("get_robust_list", "thread " + std::to_string(ft.tid), errno);
    }
    ASSIGN_OR_RETURN(t.comm, ReadProcFile(p.pid(), "task/" + std::to_string(ft.tid) + "/comm"));
    if (!t.comm.empty() && t.comm.back() == '\n') t.comm.pop_back();
    t.pending.insert(t.pending.end(), ft.stashed.begin(), ft.stashed.end());

    Injector inj(ft.tid, gadget);
    RETURN_IF_ERROR(inj.Save());
    Status st = [&]() -> Status {
      std::uint64_t slot = inj.scratch();
      RETURN_IF_ERROR(inj.Call("prctl(PR_GET_TID_ADDRESS)", SYS_prctl, {PR_GET_TID_ADDRESS, slot}).status());
      RETURN_IF_ERROR(ReadMemory(ft.tid, slot, &t.clear_tid, sizeof t.clear_tid));
      RETURN_IF_ERROR(inj.Call("sigaltstack", SYS_sigaltstack, {0, slot}).status());
      unsigned char ss[24];
      RETURN_IF_ERROR(ReadMemory(ft.tid, slot, ss, sizeof ss));
      std::memcpy(&t.altstack_sp, ss, 8);
      std::int32_t flags;
      std::memcpy(&flags, ss + 8, 4);
      t.altstack_flags = static_cast<std::uint32_t>(flags);
      std::memcpy(&t.altstack_size, ss + 16, 8);
      return Status::Ok();
    }();
    Status rs = inj.Restore();
    RETURN_IF_ERROR(st);
    RETURN_IF_ERROR(rs);
    m->threads.push_back(std::move(t));
  }
  return Status::Ok();
}

namespace {

// Per-thread kernel state that only the thread itself can set.
Status RestoreThreadKernelState(Injector* inj, const ThreadState& t) {
  RETURN_IF_ERROR(inj->Call("set_tid_address", SYS_set_tid_address, {t.clear_tid}).status());
  if (t.altstack_size != 0 && (t.altstack_flags & SS_DISABLE) == 0) {
    unsigned char ss[24] = {0};
    std::memcpy(ss, &t.altstack_sp, 8);
    std::int32_t flags =
        static_cast<std::int32_t>(t.altstack_flags & ~static_cast<std::uint32_t>(SS_ONSTACK));
    std::memcpy(ss + 8, &flags, 4);
    std::memcpy(ss + 16, &t.altstack_size, 8);
    ASSIGN_OR_RETURN(std::uint64_t a, inj->PutScratch(0, ss, sizeof ss));
    RETURN_IF_ERROR(inj->Call("sigaltstack", SYS_sigaltstack, {a, 0}).status());
  }
  if (t.robust_list != 0) {
    RETURN_IF_ERROR(
        inj->Call("set_robust_list", SYS_set_robust_list, {t.robust_list, t.robust_len}).status());
  }
  if (!t.comm.empty()) {
    std::string name = t.comm.substr(0, 15);
    ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(256, name.c_str(), name.size() + 1));
    RETURN_IF_ERROR(inj->Call("prctl(PR_SET_NAME)", SYS_prctl, {PR_SET_NAME, at}).status());
  }
  if (t.rseq_ptr != 0 && t.rseq_len != 0) {
    RETURN_IF_ERROR(inj->Call("rseq register", SYS_rseq, {t.rseq_ptr, t.rseq_len, 0, t.rseq_sig}).status());
  }
  return Status::Ok();
}

}  // namespace

Status RestoreThreads(const ProcessModel& m, Injector* leader, std::vector<pid_t>* created) {
  RETURN_IF_ERROR(RestoreThreadKernelState(leader, m.threads[0]));
  for (std::size_t i = 1; i < m.threads.size(); ++i) {
    const ThreadState& t = m.threads[i];
    // struct clone_args (kernel ABI, 88 bytes with set_tid).
    std::uint64_t args[11] = {0};
    ASSIGN_OR_RETURN(std::vector<pid_t> before, ListThreads(leader->tid()));
    std::uint64_t tid64 = static_cast<std::uint64_t>(t.tid);
    ASSIGN_OR_RETURN(std::uint64_t tid_at, leader->PutScratch(512, &tid64, sizeof tid64));
    args[0] = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    args[8] = tid_at;  // set_tid
    args[9] = 1;       // set_tid_size
    ASSIGN_OR_RETURN(std::uint64_t args_at, leader->PutScratch(0, args, sizeof args));
    auto r = leader->Raw(SYS_clone3, {args_at, sizeof args});
    if (!r.ok()) return r.status();
    if (*r < 0) {
      if (*r == -EEXIST) {
        return FailedPrecondition("thread ID " + std::to_string(t.tid) +
                                  " is in use; restore with --pidns to give the process its own IDs");
      }
      return platform::PosixError("clone3 thread " + std::to_string(t.tid), "", static_cast<int>(-*r));
    }
    // The result is the TID inside the process's PID namespace; ptrace needs ours.
    ASSIGN_OR_RETURN(std::vector<pid_t> after, ListThreads(leader->tid()));
    pid_t tid = 0;
    for (pid_t a : after) {
      if (std::find(before.begin(), before.end(), a) == before.end()) tid = a;
    }
    if (tid == 0) return Internal("cannot find the thread clone3 created for TID " + std::to_string(t.tid));
    created->push_back(tid);
    // The new thread is traced automatically (PTRACE_O_TRACECLONE) and stops first.
    ASSIGN_OR_RETURN(StopInfo st, WaitStop(tid));
    (void)st;
    Injector inj(tid, leader->gadget());
    RETURN_IF_ERROR(inj.Save());
    RETURN_IF_ERROR(RestoreThreadKernelState(&inj, t));
  }
  return Status::Ok();
}

Status LoadThreadState(pid_t tid, const ThreadState& t, std::uint32_t xsave_size_here) {
  arch::Regs r = arch::FromArray(t.gpregs);
  arch::ClearInSyscall(&r);
  RETURN_IF_ERROR(SetRegs(tid, r));
  if (!t.xsave.empty()) {
    if (t.xsave.size() == xsave_size_here) {
      RETURN_IF_ERROR(SetXstate(tid, t.xsave));
    } else {
      return NotSupported("thread " + std::to_string(t.tid) + ": the image's FPU state is " +
                          std::to_string(t.xsave.size()) + " bytes of xsave, this CPU uses " +
                          std::to_string(xsave_size_here) +
                          "; restoring on another CPU model is not supported");
    }
  }
  return SetSigmask(tid, t.sigmask);
}

}  // namespace ckpt::engine
