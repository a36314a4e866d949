#include "net/spool.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#ifdef _WIN32
#include <windows.h>
#else
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace ckpt::net {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLock = ".lock";

enum class LockState { kAbsent, kHeld, kFree };

#ifdef _WIN32
// ENTRY/.lock created and locked; the OS lets go of the lock when this
// process ends, however it ends. 0 on failure.
std::intptr_t TakeLock(const fs::path& p) {
  HANDLE h = CreateFileW(p.c_str(), GENERIC_READ | GENERIC_WRITE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, CREATE_NEW,
                         FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) return 0;
  OVERLAPPED ov{};
  if (!LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &ov)) {
    CloseHandle(h);
    return 0;
  }
  return reinterpret_cast<std::intptr_t>(h);
}

void DropLock(std::intptr_t lock) {
  if (lock != 0) CloseHandle(reinterpret_cast<HANDLE>(lock));
}

LockState ProbeLock(const fs::path& p) {
  HANDLE h = CreateFileW(p.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) return LockState::kAbsent;
  OVERLAPPED ov{};
  bool free = LockFileEx(h, LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov) != 0;
  if (free) UnlockFileEx(h, 0, 1, 0, &ov);
  CloseHandle(h);
  return free ? LockState::kFree : LockState::kHeld;
}
#else
std::intptr_t TakeLock(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return 0;
  ::flock(fd, LOCK_EX);
  return fd + 1;  // 0 means none
}

void DropLock(std::intptr_t lock) {
  if (lock != 0) ::close(static_cast<int>(lock - 1));
}

LockState ProbeLock(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return LockState::kAbsent;
  bool free = ::flock(fd, LOCK_SH | LOCK_NB) == 0;
  ::close(fd);
  return free ? LockState::kFree : LockState::kHeld;
}
#endif

// Entries SPOOL/m-* whose lock no live receiver holds are left by a
// receiver that died (and, on POSIX, whose guardian died too): removed.
// Kept entries (--keep) have no lock file.
void Sweep(const std::string& spool) {
  std::error_code ec;
  for (fs::directory_iterator it(spool, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("m-", 0) != 0 || !it->is_directory(ec)) continue;
    if (ProbeLock(it->path() / kLock) == LockState::kFree) fs::remove_all(it->path(), ec);
  }
}

#ifndef _WIN32
// The guardian: a fork that waits for the receiver to say "done" (a byte)
// or die (end of file), and removes the entry in the second case.
long StartGuardian(const std::string& dir, int* write_fd) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return -1;
  }
  if (pid == 0) {
    ::close(p[1]);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    char c = 0;
    ssize_t n;
    while ((n = ::read(p[0], &c, 1)) < 0 && errno == EINTR) {
    }
    if (n <= 0) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
    ::_exit(0);
  }
  ::close(p[0]);
  *write_fd = p[1];
  return pid;
}
#endif

}  // namespace

Result<std::unique_ptr<SpoolEntry>> SpoolEntry::Create(const std::string& spool, const std::string& id) {
  std::error_code ec;
  fs::create_directories(spool, ec);
  if (ec) return IoError("create spool " + spool + ": " + ec.message());
  Sweep(spool);
  std::string dir = (fs::path(spool) / ("m-" + id)).string();
  if (!fs::create_directory(dir, ec)) {
    return IoError("create " + dir + ": " + (ec ? ec.message() : std::string("it exists already")));
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  std::unique_ptr<SpoolEntry> e(new SpoolEntry(dir));
  e->lock_ = TakeLock(fs::path(dir) / kLock);
#ifndef _WIN32
  e->guard_pid_ = StartGuardian(dir, &e->guard_fd_);
#endif
  return e;
}

namespace {

fs::path OutcomePath(const std::string& spool, const std::string& id) {
  return fs::path(spool) / "outcomes" / id;
}

// True while a live receiver holds entry m-ID (its lock).
bool EntryHeld(const std::string& spool, const std::string& id) {
  return ProbeLock(fs::path(spool) / ("m-" + id) / kLock) == LockState::kHeld;
}

}  // namespace

Status RecordCommitted(const std::string& spool, const std::string& id) {
  std::error_code ec;
  fs::create_directories(fs::path(spool) / "outcomes", ec);
  // Records older than a week are no longer asked for.
  auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(fs::path(spool) / "outcomes", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    auto t = it->last_write_time(e2);
    if (!e2 && now - t > std::chrono::hours(24 * 7)) fs::remove(it->path(), e2);
  }
  fs::path p = OutcomePath(spool, id);
  std::FILE* f = std::fopen(p.string().c_str(), "w");
  if (f == nullptr) return IoError("record the outcome in " + p.string());
  bool ok = std::fputs("committed\n", f) >= 0;
#ifndef _WIN32
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
#endif
  ok = std::fclose(f) == 0 && ok;
  return ok ? Status::Ok() : IoError("record the outcome in " + p.string());
}

std::string QueryOutcome(const std::string& spool, const std::string& id, int wait_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (true) {
    std::error_code ec;
    if (fs::exists(OutcomePath(spool, id), ec)) return "committed";
    if (!EntryHeld(spool, id)) {
      // The receiver may have recorded it just before letting go of its entry.
      return fs::exists(OutcomePath(spool, id), ec) ? "committed" : "not committed";
    }
    if (std::chrono::steady_clock::now() > deadline) return "pending";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

SpoolEntry::~SpoolEntry() {
  std::error_code ec;
#ifdef _WIN32
  DropLock(lock_);  // first: an open file keeps its directory on Windows
#endif
  if (keep_) {
    fs::remove(fs::path(dir_) / kLock, ec);
  } else {
    fs::remove_all(dir_, ec);
  }
#ifndef _WIN32
  DropLock(lock_);
  if (guard_fd_ >= 0) {
    char done = 'd';
    ssize_t n = ::write(guard_fd_, &done, 1);
    (void)n;
    ::close(guard_fd_);
  }
  if (guard_pid_ > 0) {
    while (::waitpid(static_cast<pid_t>(guard_pid_), nullptr, 0) < 0 && errno == EINTR) {
    }
  }
#endif
}

}  // namespace ckpt::net
