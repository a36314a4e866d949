// The checks a dump makes before it stops anything: every refusal that /proc
// can decide — another tracer, seccomp, 32-bit code, descriptors the engine
// cannot save (sockets, inotify, anonymous inodes other than event files;
// event files shared with a process outside; epoll watches of closed
// descriptors), leases and flock/OFD locks on shared open file
// descriptions, POSIX timers, device mappings, a deleted working directory,
// members in different IPC namespaces, pipes shared with processes outside
// the dumped set — is decided here, so that a refused process is never
// frozen. The per-process checks run once more on each frozen member (the
// process ran on in between). Stateless; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// What the checks learnt about the pipes of the dumped processes.
struct PipeCensus {
  std::set<std::uint64_t> seen;      // inode of every pipe a checked process holds
  std::set<std::uint64_t> external;  // pipes a process outside the dumped set holds too
  std::vector<std::string> notes;    // the external pipes accepted (--external-pipes), described
};

// Checks `root` (with `tree`, every descendant as listed now) from /proc,
// touching nothing. A refusal is NotSupported (FailedPrecondition for a
// process traced by another tracer) naming every problem found; the
// processes run on as if ckpt had never looked. With `external_pipes`, pipes
// shared with processes outside are accepted (and described in the notes).
Result<PipeCensus> PrecheckDump(pid_t root, bool tree, bool external_pipes,
                                const std::vector<std::string>& external_unix = {});

// The per-process checks again, on a member that is frozen now (no tracer
// check: ckpt is its tracer).
Status RecheckFrozen(pid_t pid);

// After the freeze: classifies the pipes of `models` (members[i] is
// models[i]) that PrecheckDump did not see (created meanwhile), refusing
// external ones unless `external_pipes`.
Status CensusNewPipes(const std::vector<pid_t>& members, const std::vector<ProcessModel*>& models,
                      bool external_pipes, PipeCensus* census);

}  // namespace ckpt::engine
