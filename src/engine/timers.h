// Interval timers (setitimer: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF)
// and POSIX timers (timer_create), read and re-armed with injected calls.
// The time the process spends dumped does not count: each timer resumes
// with the time it had left. A POSIX timer keeps its id (prctl
// PR_TIMER_CREATE_RESTORE_IDS, Linux 6.16), clock, signal, target thread and
// sigev_value; its overrun count is not restored. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <vector>

#include "engine/inject.h"
#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

Status DumpTimers(Injector* inj, Core* core);
Status RestoreTimers(const Core& core, Injector* inj);

// The POSIX timers of frozen process `pid` (/proc/PID/timers, then
// timer_gettime and timer_getoverrun injected through `inj`).
Status DumpPosixTimers(pid_t pid, Injector* inj, std::vector<PosixTimer>* out);
// In the stopped member, every thread back: creates each timer with its id
// and arms it.
Status RestorePosixTimers(const std::vector<PosixTimer>& timers, Injector* inj);

}  // namespace ckpt::engine
