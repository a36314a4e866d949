// A percentage on stderr for long engine work, shown when stderr is a
// terminal or when asked for. One per command; not thread-safe.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace ckpt::cli {

class ProgressLine {
 public:
  ProgressLine(std::string what, bool forced) : what_(std::move(what)), on_(forced || ::isatty(2) != 0) {}
  ~ProgressLine() {
    if (shown_) std::fprintf(stderr, "\n");
  }
  void Update(std::uint64_t done, std::uint64_t total) {
    if (!on_ || total == 0) return;
    int pct = static_cast<int>(done * 100 / total);
    if (pct == last_) return;
    last_ = pct;
    shown_ = true;
    std::fprintf(stderr, "\r%s %3d%%", what_.c_str(), pct);
    std::fflush(stderr);
  }

 private:
  std::string what_;
  bool on_;
  bool shown_ = false;
  int last_ = -1;
};

}  // namespace ckpt::cli
