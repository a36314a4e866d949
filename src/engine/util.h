// Small helpers shared by the engine's files.
#pragma once

#include <errno.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/bytes.h"

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

// A message between ckpt and its worker or guardian: a type byte, a u32
// length, the payload.
inline std::string Frame(char type, const std::string& payload) {
  std::string f(1, type);
  PutU32(&f, static_cast<std::uint32_t>(payload.size()));
  return f + payload;
}

// Writes all of `s` to `fd`, through EINTR. A socket is written with
// MSG_NOSIGNAL: a peer that died must not take the writer with it.
inline bool WriteAll(int fd, const std::string& s, bool socket = false) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = socket ? ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL)
                       : ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace ckpt::engine
