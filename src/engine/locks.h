// File locks held through descriptors: POSIX (fcntl), OFD (open file
// description) and flock locks. Dump reads them from the "lock:" lines of
// fdinfo while the process is frozen; restore takes each again, by
// injection, in the stopped process once its map-file descriptors are
// closed (closing any descriptor of a file drops the process's POSIX locks
// on it) and before it runs: a lock another process took in between is a
// restore error naming it. Leases, and flock/OFD locks on an open file
// description another process shares, are refused at dump (precheck.cc).
// Stateless.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/inject.h"
#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// One "lock:" line of fdinfo (or a /proc/locks line without its prefix).
struct LockLine {
  std::string kind;        // POSIX, OFDLCK, FLOCK, LEASE, DELEG, ACCESS...
  std::string type;        // READ, WRITE, ...
  pid_t pid = 0;           // who took it (-1 for OFD locks)
  std::string start, end;  // "EOF" for the end of the file
};

// The lock lines of an fdinfo text.
std::vector<LockLine> ParseFdLockLines(const std::string& fdinfo);

// Reads the locks held through descriptor `fd` of frozen process `pid`
// (fdinfo text `info`) into *out.
Status DumpFdLocks(pid_t pid, int fd, const std::string& info, std::vector<FileLock>* out);

// In the stopped member: takes every lock of `m` again (never waiting).
Status RetakeLocks(const ProcessModel& m, Injector* inj);

// "a POSIX (fcntl) write lock on bytes 0-99 of fd 3", for messages.
std::string DescribeFileLock(const FileLock& l);

}  // namespace ckpt::engine
