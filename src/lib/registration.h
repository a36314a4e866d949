// The registration file of a running ckpt session: RuntimeDir/<pid>.json,
// which `ckpt checkpoint PID` reads to find the session, send it a request
// and wait for the new image. It records the process start time so that a
// stale file never leads to signalling an unrelated process that reused the
// PID. Written atomically; removed when the session ends, except after a
// checkpoint-and-exit, when it stays (marked "exited") for the requester to
// read and remove. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "platform/env.h"

namespace ckpt::lib {

class Registration {
 public:
  Registration(platform::Env* env, std::string program, std::string dir);
  ~Registration();
  // Rewrites the file with the count of checkpoints written so far.
  Status Publish(std::uint64_t generation, const std::string& last_image, const std::string& last_error,
                 bool exited = false);
  static std::string PathFor(platform::Env* env, std::int64_t pid);

 private:
  platform::Env* env_;
  std::string program_;
  std::string dir_;
  std::string path_;
  std::uint64_t start_time_ = 0;
  bool written_ = false;
  bool keep_ = false;
};

}  // namespace ckpt::lib
