// SharedSegment and WaitQueue for Linux: shm_open + mmap (MAP_FIXED_NOREPLACE
// for a fixed base) and futexes on shared words.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "platform/posix_util.h"
#include "platform/shm.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace ckpt::platform {

namespace {

std::string PosixName(const std::string& name) {
  return "/" + name;
}

std::string Hex(std::uintptr_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

Result<void*> MapFd(const std::string& name, int fd, std::size_t size, std::uintptr_t base) {
  int flags = MAP_SHARED;
  if (base != 0) flags |= MAP_FIXED_NOREPLACE;
  void* p = ::mmap(reinterpret_cast<void*>(base), size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    if (base != 0 && e == EEXIST) {
      return FailedPrecondition("map shared segment " + name + " at base " + Hex(base) + ": the range " +
                                Hex(base) + ".." + Hex(base + size) + " is already in use in this process");
    }
    return PosixError("map shared segment", name, e);
  }
  if (base != 0 && reinterpret_cast<std::uintptr_t>(p) != base) {  // kernels before 4.17 ignore NOREPLACE
    ::munmap(p, size);
    return FailedPrecondition("map shared segment " + name + " at base " + Hex(base) +
                              ": the kernel placed it elsewhere (the range is in use)");
  }
  return p;
}

}  // namespace

Result<std::unique_ptr<SharedSegment>> SharedSegment::Create(const std::string& name, std::size_t size,
                                                             std::uintptr_t base) {
  std::string pn = PosixName(name);
  int fd = ::shm_open(pn.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError("create shared segment", pn, errno);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    ::shm_unlink(pn.c_str());
    return PosixError("size shared segment " + pn + " to " + std::to_string(size) + " bytes", "", e);
  }
  auto p = MapFd(pn, fd, size, base);
  if (!p.ok()) {
    ::close(fd);
    ::shm_unlink(pn.c_str());
    return p.status();
  }
  return std::unique_ptr<SharedSegment>(new SharedSegment(name, *p, size, fd));
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::Open(const std::string& name, std::size_t size,
                                                           std::uintptr_t base, int wait_ms) {
  std::string pn = PosixName(name);
  int fd = ::shm_open(pn.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError("open shared segment", pn, errno);
  struct stat st;
  for (int waited = 0;; ++waited) {
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return PosixError("stat shared segment", pn, e);
    }
    if (st.st_size != 0 || waited >= wait_ms) break;
    ::usleep(1000);  // the creator has not sized it yet
  }
  if (st.st_uid != ::geteuid()) {  // made by someone else first: never share memory with them
    ::close(fd);
    return FailedPrecondition("shared segment " + pn + " belongs to user " + std::to_string(st.st_uid) +
                              ", not to this one");
  }
  if (static_cast<std::uint64_t>(st.st_size) != size) {
    ::close(fd);
    return FailedPrecondition("shared segment " + name + " has " + std::to_string(st.st_size) +
                              " bytes, but " + std::to_string(size) + " were asked for");
  }
  auto p = MapFd(pn, fd, size, base);
  if (!p.ok()) {
    ::close(fd);
    return p.status();
  }
  return std::unique_ptr<SharedSegment>(new SharedSegment(name, *p, size, fd));
}

SharedSegment::~SharedSegment() {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (handle_ >= 0) ::close(static_cast<int>(handle_));
}

Status SharedSegment::Unlink(const std::string& name) {
  std::string pn = PosixName(name);
  if (::shm_unlink(pn.c_str()) != 0 && errno != ENOENT) return PosixError("remove shared segment", pn, errno);
  return Status::Ok();
}

void SharedSegment::UnlinkAll(const std::string& prefix) {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.compare(0, prefix.size(), prefix) == 0) ::shm_unlink(("/" + n).c_str());
  }
  ::closedir(d);
}

Result<std::unique_ptr<WaitQueue>> WaitQueue::Open(const std::string&, std::atomic<std::uint32_t>* word) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "futex word must be 32 bits");
  return std::unique_ptr<WaitQueue>(new WaitQueue(word, -1));
}

WaitQueue::~WaitQueue() = default;

void WaitQueue::Wait(std::uint32_t expected, int timeout_ms) {
  struct timespec ts, *tp = nullptr;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000;
    tp = &ts;
  }
  // Shared (not PRIVATE) futex: the word is in memory other processes map.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word_), FUTEX_WAIT, expected, tp, nullptr, 0);
}

void WaitQueue::Wake(std::uint32_t n) {
  int cnt = n > static_cast<std::uint32_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word_), FUTEX_WAKE, cnt, nullptr, nullptr, 0);
}

}  // namespace ckpt::platform
