// The guard around work that changes other processes (docs/engine.md,
// "Interrupting a dump"). The work runs in a worker: a fork of ckpt in a
// process group of its own. The ckpt process the user started waits for it
// and passes SIGINT, SIGTERM and SIGHUP on; if that process dies — even by
// SIGKILL — the worker learns it at once (PR_SET_PDEATHSIG). Either way the
// worker, which is the tracer and holds everything it changed, stops at its
// next check and puts everything back before it exits, so no signal to
// `ckpt dump` can leave a stopped, half-changed process behind.
// One worker at a time per process; the caller must have a single thread.
// guard.cc (dump worker, repair), restore_guard.cc (RestoreGuard).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "util/status.h"

namespace ckpt::engine {

// In the worker: the signal that asked it to stop (SIGINT, SIGTERM, SIGHUP,
// or SIGKILL when the ckpt process that started it died), or 0.
int Interruption();
// Says why the worker was asked to stop ("SIGINT", "ckpt (PID 12) was
// killed"), "" if it was not.
std::string InterruptionText();
// The same for signal `sig` ("interrupted by SIGINT").
std::string SignalText(int sig);
// An error naming the interruption, if there was one: the work stops at
// this point and rolls back.
Status CheckInterrupted();

// In the worker: what it changed, told to the ckpt process that started it
// as it happens. If the worker itself dies (a SIGKILL aimed at it), that
// process puts back what it can: it attaches to every thread noted, gives
// it its signal mask back, unmaps the gadget area where no thread is inside
// it, and lets the processes go. No-ops outside a worker.
// `regs`: the registers the thread is let go with (sizeof(arch::Regs) bytes).
void NoteFrozenThread(pid_t pid, pid_t tid, std::uint64_t sigmask, const void* regs);
void NoteGadget(pid_t pid, std::uint64_t gadget);  // 0: unmapped again
void NoteImageInPlace();                           // the dump has happened
void NoteKilling();                                // the processes are being killed, as asked
void NoteImageFd(pid_t pid, int fd);               // the process opened the image (-1: closed it)
// Semaphore set `semid` had `values` before ckpt moved them (empty: they
// are back).
void NoteSemValues(int semid, const std::vector<int>& values);
// The processes that operated each semaphore of `semid` last, before
// ckpt's own semops made it the last (empty: they are again).
void NoteSemLastOperators(int semid, const std::vector<std::int32_t>& sempid);
// The SEM_UNDO adjustments of process `pid` on `semid` were taken from it
// (empty `adj`: they were given back).
void NoteSemUndo(pid_t pid, int semid, const std::vector<std::int16_t>& adj);
// TCP socket `fd` of `pid` went into repair mode under network lock `lock`
// (net_lock.h); pid -1: every one is out of it again, the lock still on;
// pid 0: out of it and the lock is gone.
void NoteTcpRepair(pid_t pid, int fd, const std::string& lock);

// Runs `work` in a worker and returns the bytes it returns (or its error).
// The worker's progress reports (the Progress it is given) reach `progress`
// here; they are dropped while this process does not read them (stopped by
// Ctrl-Z, say), so the worker never waits for it. If the worker dies
// without an answer, the error says how. A SIGINT, SIGTERM or SIGHUP that
// arrives here after the worker answered goes to *late_signal (0 if none).
Result<std::string> RunInWorker(const std::function<Result<std::string>(const Progress&)>& work,
                                const Progress& progress, int* late_signal);

// Undoes a restore that ckpt could not finish because it died (SIGKILL, or
// any signal that ends it). The processes ckpt traces die with it
// (PTRACE_O_EXITKILL); what outlives it — System V objects and /dev/shm
// files the restore created on this host, restored processes already let
// go — is undone by a small guardian process: a grandchild of ckpt in a
// session of its own, told about each object as it is created. When ckpt's
// end of the pipe closes before Commit() (or the destructor), the guardian
// kills the processes named with KillOnDeath and removes the objects.
class RestoreGuard {
 public:
  RestoreGuard() = default;
  ~RestoreGuard();  // the restore returned (done or cleaned up itself): the guardian leaves
  RestoreGuard(const RestoreGuard&) = delete;
  RestoreGuard& operator=(const RestoreGuard&) = delete;
  Status Start();
  // Called just before System V object `id` (kind 's', 'e', 'q') with `key`
  // is created in this IPC namespace: removed if ckpt dies (if it still has
  // that key).
  void SysvCreating(char kind, int id, std::int32_t key);
  // File `path` was created: unlinked if ckpt dies.
  void FileCreated(const std::string& path);
  // Processes (ckpt's PID namespace) killed if ckpt dies.
  void KillOnDeath(const std::vector<pid_t>& pids);
  // A copy of `fd` kept open by the guardian until it has killed those
  // processes (if ckpt dies) or the restore ends.
  void HoldUntilKilled(int fd);
  // Everything runs: nothing to undo any more; the guardian leaves.
  void Commit();

 private:
  void Send(char type, const std::string& payload);
  void SendFds(const std::vector<int>& fds);
  int fd_ = -1;
};

}  // namespace ckpt::engine
