// POSIX-only helpers shared by the POSIX Env and the Linux engine.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "image/io.h"
#include "util/status.h"

namespace ckpt::platform {

// "op object: strerror(err)" as a Status of a fitting code.
Status PosixError(const std::string& op, const std::string& object, int err);
// Opens `path` read-only (O_CLOEXEC) and fstat()s what was opened, so that
// what is checked is what is read. The caller owns the descriptor.
Result<int> OpenForReading(const std::string& path, struct stat* st);
// A source reading the open file `fd` (owned: closed with the source) of
// `size` bytes with pread; `path` names it in messages.
std::unique_ptr<image::RandomAccessSource> NewFdSource(std::string path, int fd, std::uint64_t size);
// Reads exactly `size` bytes at `offset` of `fd` (pread, EINTR retried); a
// file that ends first is Corruption ("shrank while being read").
Status PreadFull(int fd, std::uint64_t offset, std::size_t size, void* dst, const std::string& path);
// Writes all `n` bytes at `fd`'s offset (write, EINTR and short writes
// retried); `*done` (if given) counts what went out, also on an error.
Status WriteFull(int fd, const char* p, std::size_t n, const std::string& path, std::size_t* done = nullptr);
// The real-time signal a ckpt session listens on for checkpoint requests.
int CheckpointSignal();

// Appends to a new file in whole aligned blocks written past the page cache
// (O_DIRECT; posix_uncached.cc): a large image costs neither the page-cache
// pages nor the copy into them, and is on the disk when the last block is.
// The file's descriptor keeps O_DIRECT until Finish().
class DirectAppender {
 public:
  // Null where `fd` (at offset 0) cannot be written directly: the file
  // system refuses O_DIRECT or needs an alignment above a page.
  static std::unique_ptr<DirectAppender> Make(int fd, const std::string& path);
  ~DirectAppender();
  DirectAppender(const DirectAppender&) = delete;
  DirectAppender& operator=(const DirectAppender&) = delete;
  Status Append(const void* data, std::size_t size);
  // Writes what is held (its aligned part directly, the rest through the
  // page cache) and turns O_DIRECT off: later writes to the descriptor are
  // ordinary ones.
  Status Finish();

 private:
  DirectAppender(int fd, std::string path, std::size_t align, char* buf);
  Status WriteHeld(std::size_t n);
  Status Plain(const char* p, std::size_t n);
  Status StopDirect();

  int fd_;
  std::string path_;
  std::size_t align_;
  char* buf_;
  std::size_t fill_ = 0;
  bool direct_ = true;
};

// Reads `size` bytes at `offset` of `fd` like PreadFull, except that a large
// read (a variable's frames) whose bytes the page cache does not hold comes
// through a second, O_DIRECT descriptor of the same file, a window of 16 MiB
// at a time, the next one read ahead on a helper thread; reads inside the
// last window (the next frame's header) are served from it. A large image read once (a resume) then neither
// fills the page cache nor pays for its pages. Where the file system cannot (no O_DIRECT), PreadFull.
class UncachedReader {
 public:
  UncachedReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~UncachedReader();
  UncachedReader(const UncachedReader&) = delete;
  UncachedReader& operator=(const UncachedReader&) = delete;
  Status Read(std::uint64_t offset, std::size_t size, void* dst);
  // Reads of at least this size try the page cache, then the disk directly.
  static constexpr std::size_t kMinBytes = std::size_t{1} << 20;

 private:
  Status Fill(std::uint64_t offset);
  bool FullyCached(std::uint64_t offset, std::size_t size) const;

  int fd_;
  std::string path_;
  int direct_fd_ = -1;
  bool unavailable_ = false;
  char* window_ = nullptr;
  std::uint64_t win_start_ = 0;
  std::size_t win_len_ = 0;
  bool JoinAhead();

  // The next window, read on ahead_thread_ (joined before it is used) of
  // process ahead_owner_.
  char* ahead_ = nullptr;
  std::uint64_t ahead_start_ = 0;
  ssize_t ahead_got_ = -1;
  std::unique_ptr<std::thread> ahead_thread_;
  pid_t ahead_owner_ = 0;
};

}  // namespace ckpt::platform
