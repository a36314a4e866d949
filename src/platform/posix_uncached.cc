// Large images past the page cache (O_DIRECT): DirectAppender writes a
// program's image in whole aligned blocks, UncachedReader reads what the
// page cache does not hold straight from the disk. On the test VM, writing
// 1 GiB through the page cache and fsyncing it took 1.4-5.5 s, almost all
// of it allocating and filling page-cache pages; written directly it took
// 0.6-0.9 s (docs/performance.md, "Batch schedulers").
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "platform/posix_util.h"

namespace ckpt::platform {

namespace {

constexpr std::size_t kDirectChunk = std::size_t{8} << 20;
constexpr std::size_t kWindow = std::size_t{16} << 20;

std::size_t PageSize() {
  static const std::size_t page = [] {
    long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<std::size_t>(p) : std::size_t{4096};
  }();
  return page;
}

// Offsets, lengths and buffers of direct I/O: whole pages, at least 4 KiB.
std::size_t DirectAlign() {
  return std::max<std::size_t>(4096, PageSize());
}

char* AlignedBuffer(std::size_t align, std::size_t size) {
  void* p = nullptr;
  return ::posix_memalign(&p, align, size) == 0 ? static_cast<char*>(p) : nullptr;
}

// Reads whole aligned blocks from `start` into `buf` (up to `cap` bytes)
// until the file's end; the bytes read, or -1 with `*err` set.
ssize_t ReadBlocks(int fd, char* buf, std::size_t cap, std::uint64_t start, int* err) {
  std::size_t got = 0;
  while (got < cap) {
    ssize_t r = ::pread(fd, buf + got, cap - got, static_cast<off_t>(start + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return -1;
    }
    if (r == 0) break;  // the file's end
    got += static_cast<std::size_t>(r);
    if (got % DirectAlign() != 0) break;  // the file's end, inside a block
  }
  return static_cast<ssize_t>(got);
}

}  // namespace

std::unique_ptr<DirectAppender> DirectAppender::Make(int fd, const std::string& path) {
#ifdef O_DIRECT
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::lseek(fd, 0, SEEK_CUR) != 0) return nullptr;
  const std::size_t align = DirectAlign();
  char* buf = AlignedBuffer(align, kDirectChunk);
  if (buf == nullptr) return nullptr;
  if (::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) {  // EINVAL: the file system cannot
    ::free(buf);
    return nullptr;
  }
  return std::unique_ptr<DirectAppender>(new DirectAppender(fd, path, align, buf));
#else
  (void)fd;
  (void)path;
  return nullptr;
#endif
}

DirectAppender::DirectAppender(int fd, std::string path, std::size_t align, char* buf)
    : fd_(fd), path_(std::move(path)), align_(align), buf_(buf) {}

DirectAppender::~DirectAppender() {
  if (direct_) StopDirect().IgnoreError();
  ::free(buf_);
}

Status DirectAppender::StopDirect() {
  direct_ = false;
#ifdef O_DIRECT
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0)
    return PosixError("turn off direct writes to", path_, errno);
#endif
  return Status::Ok();
}

Status DirectAppender::Plain(const char* p, std::size_t n) {
  return WriteFull(fd_, p, n, path_);
}

// Writes the first `n` bytes held (a multiple of the alignment) directly and
// keeps the rest. A file system that takes O_DIRECT but refuses the write
// (EINVAL: a larger block size) gets them, and everything after, through the
// page cache instead.
Status DirectAppender::WriteHeld(std::size_t n) {
  std::size_t done = 0;
  Status st = WriteFull(fd_, buf_, n, path_, &done);
  if (!st.ok() && direct_ && st.code() == Code::kInvalidArgument && done % align_ == 0) {
    RETURN_IF_ERROR(StopDirect());
    st = Plain(buf_ + done, n - done);
  }
  RETURN_IF_ERROR(st);
  std::memmove(buf_, buf_ + n, fill_ - n);
  fill_ -= n;
  return Status::Ok();
}

Status DirectAppender::Append(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    std::size_t k = std::min(size, kDirectChunk - fill_);
    std::memcpy(buf_ + fill_, p, k);
    fill_ += k;
    p += k;
    size -= k;
    if (fill_ == kDirectChunk) RETURN_IF_ERROR(WriteHeld(kDirectChunk));
  }
  return Status::Ok();
}

Status DirectAppender::Finish() {
  std::size_t aligned = fill_ - fill_ % align_;
  if (aligned > 0) RETURN_IF_ERROR(WriteHeld(aligned));
  if (direct_) RETURN_IF_ERROR(StopDirect());
  if (fill_ > 0) RETURN_IF_ERROR(Plain(buf_, fill_));
  fill_ = 0;
  return Status::Ok();
}

UncachedReader::~UncachedReader() {
  JoinAhead();
  if (direct_fd_ >= 0) ::close(direct_fd_);
  ::free(window_);
  ::free(ahead_);
}

Status UncachedReader::Read(std::uint64_t offset, std::size_t size, void* dst) {
  char* out = static_cast<char*>(dst);
  while (size > 0) {
    if (offset >= win_start_ && offset < win_start_ + win_len_) {  // read from the disk before
      std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(size, win_start_ + win_len_ - offset));
      std::memcpy(out, window_ + (offset - win_start_), k);
      out += k;
      size -= k;
      offset += k;
      continue;
    }
    if (size < kMinBytes || unavailable_) break;
    // What the page cache holds is copied from it; the rest comes from the
    // disk a window at a time. (mincore asks without side effects; a
    // RWF_NOWAIT read that finds nothing still starts readahead into the
    // page cache.)
    std::size_t k = std::min(size, kWindow);
    if (FullyCached(offset, k)) {
      RETURN_IF_ERROR(PreadFull(fd_, offset, k, out, path_));
      out += k;
      size -= k;
      offset += k;
      continue;
    }
    Status st = Fill(offset);
    if (st.code() == Code::kNotSupported) break;  // unavailable_ is set
    RETURN_IF_ERROR(st);
  }
  return size == 0 ? Status::Ok() : PreadFull(fd_, offset, size, out, path_);
}

// Waits for the window being read ahead; false if there is none. In a child
// forked meanwhile the thread does not exist: its handle is left alone (a
// join would wait forever) and the window is not used.
bool UncachedReader::JoinAhead() {
  if (!ahead_thread_) return false;
  if (ahead_owner_ != ::getpid()) {
    (void)ahead_thread_.release();
    return false;
  }
  ahead_thread_->join();
  ahead_thread_.reset();
  return true;
}

bool UncachedReader::FullyCached(std::uint64_t offset, std::size_t size) const {
  const std::uint64_t page = PageSize();
  const std::uint64_t start = offset - offset % page;
  const std::size_t len = static_cast<std::size_t>(offset + size - start);
  void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(start));
  if (m == MAP_FAILED) return false;
  std::vector<unsigned char> in((len + page - 1) / page);
  bool all = ::mincore(m, len, in.data()) == 0 &&
             std::all_of(in.begin(), in.end(), [](unsigned char c) { return (c & 1) != 0; });
  ::munmap(m, len);
  return all;
}

// Reads the aligned window holding `offset` through the O_DIRECT descriptor:
// the one read ahead if it is that one, else now. A full window has the next
// one read ahead on a helper thread while the caller copies out of this one.
// NotSupported (and unavailable_ set) where direct reads cannot be made.
Status UncachedReader::Fill(std::uint64_t offset) {
#ifdef O_DIRECT
  if (direct_fd_ < 0) {
    std::string self = "/proc/self/fd/" + std::to_string(fd_);
    direct_fd_ = ::open(self.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    window_ = direct_fd_ >= 0 ? AlignedBuffer(DirectAlign(), kWindow) : nullptr;
    ahead_ = window_ != nullptr ? AlignedBuffer(DirectAlign(), kWindow) : nullptr;
    if (ahead_ == nullptr) {
      unavailable_ = true;
      return NotSupported("no direct reads");
    }
    // The small reads outside the window go on through the page cache:
    // without readahead, so that each brings in one page, not the frames
    // after it.
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
  }
  const std::uint64_t start = offset - offset % DirectAlign();
  win_len_ = 0;
  ssize_t got = -1;
  if (JoinAhead()) {
    if (ahead_start_ == start && ahead_got_ >= 0) {
      std::swap(window_, ahead_);
      got = ahead_got_;
    }
  }
  if (got < 0) {
    int err = 0;
    got = ReadBlocks(direct_fd_, window_, kWindow, start, &err);
    if (got < 0 && err == EINVAL) {
      unavailable_ = true;
      ::posix_fadvise(fd_, 0, 0, POSIX_FADV_NORMAL);  // plain reads from here on: readahead back
      return NotSupported("no direct reads");
    }
    if (got < 0) return PosixError("read", path_, err);
  }
  if (start + static_cast<std::uint64_t>(got) <= offset)
    return Corruption(path_ + ": file shrank while being read");
  win_start_ = start;
  win_len_ = static_cast<std::size_t>(got);
  if (win_len_ == kWindow) {
    ahead_start_ = start + kWindow;
    ahead_owner_ = ::getpid();
    ahead_thread_ = std::make_unique<std::thread>([this] {
      int err = 0;
      ahead_got_ = ReadBlocks(direct_fd_, ahead_, kWindow, ahead_start_, &err);
    });
  }
  return Status::Ok();
#else
  (void)offset;
  unavailable_ = true;
  return NotSupported("no direct reads");
#endif
}

}  // namespace ckpt::platform
