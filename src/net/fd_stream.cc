// Stream over descriptors: POSIX read/write with poll for timeouts; on
// Windows the C runtime's _read/_write in binary mode (no timeouts there:
// the ssh or daemon on the other side bounds how long the peer may wait).
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "net/stream.h"

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#endif

namespace ckpt::net {

namespace {

Status StreamError(const std::string& op, const std::string& who, int err) {
  return IoError(op + " " + who + ": " + std::strerror(err));
}

#ifndef _WIN32
// A pipe (ssh's, or sshd's to `ckpt receive`) of 1 MiB instead of 64 KiB:
// a 1 MiB DATA frame then crosses in one write and one read instead of 16
// wake-ups of each side. Best effort (the limit is /proc/sys/fs/pipe-max-size).
void WidenPipe(int fd) {
#ifdef F_SETPIPE_SZ
  struct stat st;
  if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#else
  (void)fd;
#endif
}
#endif

class FdStream final : public Stream {
 public:
  FdStream(int rfd, int wfd, std::string describe, bool own)
      : rfd_(rfd), wfd_(wfd), describe_(std::move(describe)), own_(own) {
#ifdef _WIN32
    _setmode(rfd_, _O_BINARY);
    _setmode(wfd_, _O_BINARY);
#else
    // A peer that goes away must give EPIPE here, not kill ckpt.
    ::signal(SIGPIPE, SIG_IGN);
    WidenPipe(rfd_);
    WidenPipe(wfd_);
#endif
  }
  ~FdStream() override {
    if (!own_) return;
    CloseWrite();
    if (rfd_ >= 0 && rfd_ != wfd_) Close(rfd_);
  }

  Status Write(const void* data, std::size_t size) override {
    if (wfd_ < 0) return FailedPrecondition("writing to " + describe_ + " after closing it");
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
#ifdef _WIN32
      int n = _write(wfd_, p, static_cast<unsigned>(size > (1u << 30) ? (1u << 30) : size));
#else
      ssize_t n = ::write(wfd_, p, size);
      if (n < 0 && errno == EINTR) continue;
#endif
      if (n < 0) return StreamError("write to", describe_, errno);
      p += n;
      size -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  Status Read(void* data, std::size_t size, int timeout_ms) override {
    char* p = static_cast<char*>(data);
#ifndef _WIN32
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
#endif
    while (size > 0) {
#ifdef _WIN32
      (void)timeout_ms;
      int n = _read(rfd_, p, static_cast<unsigned>(size > (1u << 30) ? (1u << 30) : size));
#else
      if (timeout_ms >= 0 || intr_fd_ >= 0) {
        int wait = -1;
        if (timeout_ms >= 0) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                            std::chrono::steady_clock::now());
          wait = left.count() > 0 ? static_cast<int>(left.count()) : 0;
        }
        struct pollfd pfd[2] = {{rfd_, POLLIN, 0}, {intr_fd_, POLLIN, 0}};
        int r = ::poll(pfd, intr_fd_ >= 0 ? 2 : 1, wait);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return StreamError("wait for", describe_, errno);
        if (intr_fd_ >= 0 && (pfd[1].revents & POLLIN))
          return Timeout("interrupted while waiting for " + describe_);
        if (r == 0)
          return Timeout(describe_ + " sent nothing for " + std::to_string(timeout_ms / 1000) + " s");
      }
      ssize_t n = ::read(rfd_, p, size);
      if (n < 0 && errno == EINTR) continue;
#endif
      if (n < 0) return StreamError("read from", describe_, errno);
      if (n == 0) return NotFound(describe_ + " closed the connection");
      p += n;
      size -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  void CloseWrite() override {
    if (wfd_ < 0) return;
    if (own_ && wfd_ != rfd_) Close(wfd_);
    wfd_ = -1;
  }

  std::string Describe() const override {
    return describe_;
  }
  void SetInterruptFd(int fd) override {
    intr_fd_ = fd;
  }
  bool Fds(int* read_fd, int* write_fd) const override {
    *read_fd = rfd_;
    *write_fd = wfd_;
    return rfd_ >= 0 && wfd_ >= 0;
  }

 private:
  static void Close(int fd) {
#ifdef _WIN32
    _close(fd);
#else
    ::close(fd);
#endif
  }
  int rfd_, wfd_;
  std::string describe_;
  bool own_;
  int intr_fd_ = -1;
};

}  // namespace

std::unique_ptr<Stream> StdioStream(std::string describe) {
  std::fflush(stdout);
#ifdef _WIN32
  int out = _dup(1);
  _dup2(2, 1);
#else
  int out = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  ::dup2(2, 1);
#endif
  return std::make_unique<FdStream>(0, out, std::move(describe), false);
}

ResultPipe::ResultPipe() {
#ifndef _WIN32
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) == 0) {
    rfd_ = fds[0];
    wfd_ = fds[1];
  }
#endif
}

ResultPipe::~ResultPipe() {
#ifndef _WIN32
  if (rfd_ >= 0) ::close(rfd_);
  if (wfd_ >= 0) ::close(wfd_);
#endif
}

void ResultPipe::Put(const std::string& text) {
#ifndef _WIN32
  const char* p = text.data();
  std::size_t n = text.size();
  while (n > 0 && wfd_ >= 0) {
    ssize_t w = ::write(wfd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
#else
  (void)text;
#endif
}

std::string ResultPipe::Take() {
  std::string s;
#ifndef _WIN32
  if (wfd_ >= 0) ::close(wfd_);
  wfd_ = -1;
  char buf[4096];
  ssize_t n;
  while (rfd_ >= 0 && ((n = ::read(rfd_, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))) {
    if (n > 0) s.append(buf, static_cast<std::size_t>(n));
  }
#endif
  return s;
}

std::unique_ptr<Stream> NewFdStream(int read_fd, int write_fd, std::string describe, bool own) {
  return std::make_unique<FdStream>(read_fd, write_fd, std::move(describe), own);
}

}  // namespace ckpt::net
