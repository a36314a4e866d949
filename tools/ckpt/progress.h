// A percentage on stderr for long engine work, shown when stderr is a
// terminal or when asked for. One per command; not thread-safe.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ckpt::cli {

class ProgressLine {
 public:
  ProgressLine(std::string what, bool forced) : what_(std::move(what)), on_(forced || ::isatty(2) != 0) {}
  ~ProgressLine() { End(); }
  void End() {
    if (shown_) std::fprintf(stderr, "\n");
    shown_ = false;
    last_ = -1;
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

// A migration's progress on stderr (a terminal, or when asked): the phase,
// and during the transfer bytes, rate and time left, at most 10 times a
// second. One per command; not thread-safe.
class TransferProgress {
 public:
  explicit TransferProgress(bool forced) : on_(forced || ::isatty(2) != 0) {}
  ~TransferProgress() { End(); }
  void Phase(const std::string& what) {
    if (!on_) return;
    End();
    std::fprintf(stderr, "%s...", what.c_str());
    std::fflush(stderr);
    shown_ = true;
    phase_ = what;
    t0_ = Clock::now();
    last_ = {};
  }
  void Update(std::uint64_t done, std::uint64_t total) {
    if (!on_) return;
    auto now = Clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - t0_).count();
    double rate = secs > 0 ? done / secs : 0;
    char eta[32] = "";
    if (total > done && rate > 0) std::snprintf(eta, sizeof eta, "  %.0f s left", (total - done) / rate);
    std::fprintf(stderr, "\r%s %.1f of %.1f MiB  %.0f MiB/s%s   ", phase_.c_str(), done / 1048576.0,
                 total / 1048576.0, rate / 1048576.0, eta);
    std::fflush(stderr);
    shown_ = true;
  }
  void End() {
    if (shown_) std::fprintf(stderr, "\n");
    shown_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool on_;
  bool shown_ = false;
  std::string phase_;
  Clock::time_point t0_, last_;
};

}  // namespace ckpt::cli
