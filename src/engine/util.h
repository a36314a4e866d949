// Small helpers shared by the engine's files.
#pragma once

#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace ckpt::engine {

// CLOCK_MONOTONIC in nanoseconds.
inline std::int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Owns a file descriptor (-1: none) and closes it when destroyed or reset.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { reset(); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// True if the 4096 bytes at `p` (8-byte aligned) are all zero.
inline bool IsZeroPage(const unsigned char* p) {
  const std::uint64_t* w = reinterpret_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i < 4096 / 8; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) != 0)
      return false;
  }
  return true;
}

}  // namespace ckpt::engine
