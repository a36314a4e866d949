// A migration's directory in the receiver's spool. Removed when the
// migration ends (unless kept), also if the receiver is killed: on POSIX a
// small guardian process (a fork, waiting on a pipe) removes it when the
// receiver dies first; elsewhere, and for anything older, each receiver
// sweeps entries no live receiver holds (a lock on ENTRY/.lock).
#pragma once

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
  int lock_fd_ = -1;
  int guard_fd_ = -1;  // write end of the guardian's pipe
  long guard_pid_ = -1;
};

}  // namespace ckpt::net
