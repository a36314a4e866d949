// Credentials: every thread's user and group IDs (real, effective, saved,
// filesystem), supplementary groups, capability sets (inheritable,
// permitted, effective, bounding, ambient), securebits and no_new_privs,
// and the process's dumpable flag. Dumped from /proc and injected prctl
// calls; at restore given back to every thread by injected calls once
// everything that needs ckpt's privileges is done, so a process dumped as
// an unprivileged user never runs with the privileges of the ckpt that
// restores it. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/inject.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "util/status.h"

namespace ckpt::engine {

// A thread's credentials from /proc (securebits left 0).
Result<ThreadCreds> ReadThreadCreds(pid_t pid, pid_t tid);
// Records the credentials of every frozen thread (`gadget`: the injection area).
Status DumpCreds(FrozenProcess& p, std::uint64_t gadget, Creds* out);
// Gives restored thread `tids[i]` (ckpt's PID namespace) the credentials
// recorded for m.threads[i], then checks them in /proc. Capabilities ckpt
// itself lacks are left out (never more privileges than recorded), said in
// *warnings. Without recorded credentials (an old image) nothing changes:
// the process keeps ckpt's.
Status RestoreCreds(const ProcessModel& m, pid_t pid, const std::vector<pid_t>& tids, std::uint64_t gadget,
                    std::string* warnings);
// "uid 65534 gid 65534, capabilities none" for messages and inspect.
std::string DescribeCreds(const ThreadCreds& c);

}  // namespace ckpt::engine
