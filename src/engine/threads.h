// Threads: stopping every thread of a process with PTRACE_SEIZE/INTERRUPT,
// capturing each thread's registers, FPU state, signal mask, rseq, TID
// address and alternate stack; at restore, recreating threads with their
// TIDs (clone3 set_tid) and giving each its state back. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/arch/x86_64/regs.h"
#include "engine/inject.h"
#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

struct FrozenThread {
  pid_t tid = 0;
  arch::Regs regs{};
  std::uint64_t sigmask = 0;
  std::vector<std::string> stashed;  // signals caught in signal-delivery-stop while freezing
  int group_stop = 0;                // the stop signal, if it was in a group stop (SIGSTOP...) when seized
};

// A process whose threads are all in a ptrace stop. The destructor detaches
// (the process runs on) unless Kill() or Release() was called.
class FrozenProcess {
 public:
  static Result<std::unique_ptr<FrozenProcess>> Freeze(pid_t pid);
  ~FrozenProcess();
  FrozenProcess(const FrozenProcess&) = delete;
  FrozenProcess& operator=(const FrozenProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::vector<FrozenThread>& threads() { return threads_; }
  // True if the process was stopped (SIGSTOP, SIGTSTP...) when it was
  // seized; released, it stops again.
  bool group_stopped() const;
  // Puts registers and masks back and lets every thread run.
  Status Release();
  // Kills the process and waits until its threads are gone.
  Status Kill();
  // Kills the process without waiting for it to finish exiting (freeing a
  // large address space takes ~0.1 s/GiB): it can no longer run any of its
  // code. A detached thread collects the threads' exit notifications.
  Status KillNoWait();

 private:
  explicit FrozenProcess(pid_t pid) : pid_(pid) {}
  Status Attach(pid_t tid);
  pid_t pid_;
  std::vector<FrozenThread> threads_;
  bool done_ = false;
};

// Captures every thread's state into m->threads; `gadget` is the injection area.
Status DumpThreads(FrozenProcess& p, std::uint64_t gadget, ProcessModel* m);

// Restore side. The new process's leader is stopped and traced; `leader`
// injects into it. Creates the other threads with their TIDs and restores
// the per-thread kernel state (TID address, rseq, alternate stack) of all.
// Returns the TIDs of the created threads (to be cleaned up on failure).
Status RestoreThreads(const ProcessModel& m, Injector* leader, std::vector<pid_t>* created);
// Loads the final registers, FPU state and signal mask into thread `tid`.
Status LoadThreadState(pid_t tid, const ThreadState& t, std::uint32_t xsave_size_here);

}  // namespace ckpt::engine
