// OpenFollowedFile on POSIX: pread at any offset, waiting (short naps, fstat)
// for the writer to get there.
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "platform/env.h"
#include "platform/posix_util.h"

namespace ckpt::platform {

namespace {

class FollowedFile final : public image::RandomAccessSource {
 public:
  FollowedFile(std::string path, int fd, std::uint64_t size, FollowSpec spec)
      : path_(std::move(path)), fd_(fd), spec_(std::move(spec)), known_(size) {}
  ~FollowedFile() override { ::close(fd_); }

  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    if (offset + size < offset) return Corruption(path_ + ": read past any possible end");
    if (offset + size > known_) RETURN_IF_ERROR(WaitFor(offset + size, false));
    return PreadFull(fd_, offset, size, dst, path_);
  }
  // The complete file's size: waits for the writer to finish.
  // (If the writer fails first, the size so far: the trailer check refuses it.)
  std::uint64_t Size() const override {
    if (!complete_) WaitFor(0, true).IgnoreError();
    return known_;
  }
  const std::string& Name() const override { return path_; }

 private:
  // Until the file holds `end` bytes (or, with `whole`, is complete).
  Status WaitFor(std::uint64_t end, bool whole) const {
    auto last_growth = std::chrono::steady_clock::now();
    int nap_us = 20;
    while (true) {
      bool done = complete_ || ::access(spec_.complete_marker.c_str(), F_OK) == 0;
      struct stat st;
      if (::fstat(fd_, &st) != 0) return PosixError("stat", path_, errno);
      std::uint64_t now_size = static_cast<std::uint64_t>(st.st_size);
      if (now_size != known_) last_growth = std::chrono::steady_clock::now();
      known_ = now_size;
      complete_ = done;
      if (whole ? done : known_ >= end) return Status::Ok();
      if (done) {
        return Corruption(path_ + ": the image ends after " + std::to_string(known_) +
                          " bytes, in the middle of its data (it was cut short)");
      }
      if (spec_.writer_pid > 0 && ::kill(static_cast<pid_t>(spec_.writer_pid), 0) != 0 && errno == ESRCH &&
          ::access(spec_.complete_marker.c_str(), F_OK) != 0) {
        return IoError("the process writing " + path_ + " (pid " + std::to_string(spec_.writer_pid) +
                       ") ended before the image was complete");
      }
      auto idle = std::chrono::steady_clock::now() - last_growth;
      if (idle > std::chrono::milliseconds(spec_.stall_timeout_ms)) {
        return Timeout(path_ + " stopped growing at " + std::to_string(known_) + " bytes for " +
                       std::to_string(spec_.stall_timeout_ms / 1000) + " s before it was complete");
      }
      ::usleep(static_cast<useconds_t>(nap_us));
      nap_us = std::min(nap_us * 2, 2000);
    }
  }

  std::string path_;
  int fd_;
  FollowSpec spec_;
  mutable std::uint64_t known_;  // bytes the file held when last looked at
  mutable bool complete_ = false;
};

}  // namespace

Result<std::unique_ptr<image::RandomAccessSource>> OpenFollowedFile(const std::string& path,
                                                                    const FollowSpec& spec) {
  struct stat st;
  ASSIGN_OR_RETURN(int fd, OpenForReading(path, &st));
  return std::unique_ptr<image::RandomAccessSource>(
      new FollowedFile(path, fd, static_cast<std::uint64_t>(st.st_size), spec));
}

}  // namespace ckpt::platform
