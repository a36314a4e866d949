// A migration's directory in the receiver's spool. Removed when the
// migration ends (unless kept), also if the receiver is killed: on POSIX a
// small guardian process (a fork, waiting on a pipe) removes it when the
// receiver dies first; on Windows, and for anything older, each receiver
// sweeps entries no live receiver holds (a lock on ENTRY/.lock: flock on
// POSIX, LockFileEx on Windows, both let go by the OS when the holder ends).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "util/status.h"

namespace ckpt::net {

class SpoolEntry {
 public:
  // Makes SPOOL/m-ID (it must not exist), after sweeping stale entries.
  static Result<std::unique_ptr<SpoolEntry>> Create(const std::string& spool, const std::string& id);
  ~SpoolEntry();
  const std::string& dir() const { return dir_; }
  // The entry stays after this object (--keep); its lock goes.
  void Keep() { keep_ = true; }

 private:
  explicit SpoolEntry(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
  bool keep_ = false;
  std::intptr_t lock_ = 0;  // a held lock on ENTRY/.lock (POSIX: fd + 1; Windows: a HANDLE)
  int guard_fd_ = -1;       // write end of the guardian's pipe
  long guard_pid_ = -1;
};

// Outcome records, for a source that lost the target's DONE after sending
// COMMIT: SPOOL/outcomes/ID says "committed" once the target's copy was let
// go (written after the release: a receiver that dies in between leaves the
// copy running and no record — running twice is recoverable, losing the
// computation is not).
Status RecordCommitted(const std::string& spool, const std::string& id);
// "committed", or "not committed" once no live receiver holds ID's spool
// entry (waits up to `wait_ms` for one that still does: "pending" then).
std::string QueryOutcome(const std::string& spool, const std::string& id, int wait_ms);

}  // namespace ckpt::net
