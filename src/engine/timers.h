// Interval timers (setitimer: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF),
// read and re-armed with injected calls. The time the process spends dumped
// does not count: each timer resumes with the time it had left. Not
// thread-safe.
#pragma once

#include "engine/inject.h"
#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

Status DumpTimers(Injector* inj, Core* core);
Status RestoreTimers(const Core& core, Injector* inj);

}  // namespace ckpt::engine
