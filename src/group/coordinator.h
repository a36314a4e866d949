// The coordinator of a dependent process group: starts the members (fresh or
// resuming from a group image), tracks them over loopback TCP, runs
// coordinated checkpoints (periodic, asked by `ckpt checkpoint GROUP` or by a
// member) and commits each group image atomically. Portable: OS calls go
// through src/platform. One thread drives it; helper threads only read
// sockets and feed its event queue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "platform/env.h"

namespace ckpt::group {

struct CoordinatorOptions {
  std::string name = "group";   // group name: image file prefix, `ckpt checkpoint NAME`
  std::string dir = ".";        // where group images go
  double every_seconds = 0;     // periodic checkpoints
  double timeout_seconds = 30;  // for members to reach a quiescent point
  int keep = 2;                 // group images kept in dir
  std::string codec = "none";
  int level = 0;
  std::uint64_t stop_after = 0;  // after this run's N-th checkpoint the members exit (status 75)
  std::string resume;            // a group image to resume from
  bool quiet = false;
  unsigned image_mode = platform::kDefaultImageMode;  // permission bits of new group images
};

// Runs the group to its end; returns the exit status for `ckpt run`/`ckpt
// resume`: 0 when every member exited 0, 75 when they stopped after a
// checkpoint, 1 on failure (with a message on stderr).
int RunGroup(platform::Env* env, const CoordinatorOptions& options,
             const std::vector<std::vector<std::string>>& launches);

}  // namespace ckpt::group
