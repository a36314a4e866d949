// Process-wide attributes: command name, executable, cwd, umask, rlimits,
// personality. Dumped from /proc; restored by the restore child itself
// before its address space is rebuilt. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <string>

#include "engine/filetable.h"
#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

Status DumpTask(pid_t pid, FileTable* files, Core* core);
// In the restore child. Returns 0 or an errno with *what naming the step.
// Limits it may not raise (no CAP_SYS_RESOURCE) are kept at the current
// hard limit; *warnings says which.
int ChildSetupTask(const Core& core, std::string* what, std::string* warnings);

}  // namespace ckpt::engine
