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
// Queues the image's pending signals (process-wide and per thread) in the
// restored process, from inside it.
Status RestorePendingSignals(const ProcessModel& m, Injector* leader, pid_t tgid);

}  // namespace ckpt::engine
