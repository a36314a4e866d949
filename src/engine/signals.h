// Signals: handlers (read by injected rt_sigaction at dump, installed by the
// restore child before its address space is rebuilt) and pending signals
// (read with PTRACE_PEEKSIGINFO, queued back by injected rt_sigqueueinfo).
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include "engine/inject.h"
#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

Status DumpSignals(Injector* inj, Signals* s);
// Runs in the restore child (a fork of ckpt): installs every handler.
// Returns 0 or the errno of the first failure; *bad_sig names the signal.
int ChildInstallSigactions(const Signals& s, int* bad_sig);
// A process that was stopped (SIGSTOP, SIGTSTP...) when it was dumped is
// stored with a SIGSTOP pending, and restored stopped: it stops before it
// runs any instruction and goes on at SIGCONT.
void RecordGroupStop(Signals* s);
// True if the image holds a SIGSTOP for the process (RecordGroupStop, or one
// that was being delivered when the dump began).
bool StopsAfterRestore(const ProcessModel& m);
// Queues the image's pending signals (process-wide and per thread) in the
// restored process, from inside it — except SIGSTOP, which cannot be blocked
// and would stop the process in the middle of the restore: the caller sends
// it (kill) once nothing is injected any more, before the threads are
// detached (StopsAfterRestore).
Status RestorePendingSignals(const ProcessModel& m, Injector* leader, pid_t tgid);

}  // namespace ckpt::engine
