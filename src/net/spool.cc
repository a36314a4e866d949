#include "net/spool.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#ifndef _WIN32
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

#ifndef _WIN32
// Entries SPOOL/m-* whose lock no live receiver holds are left by a
// receiver that died (and whose guardian died too): removed.
void Sweep(const std::string& spool) {
  std::error_code ec;
  for (fs::directory_iterator it(spool, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("m-", 0) != 0 || !it->is_directory(ec)) continue;
    int fd = ::open((it->path() / kLock).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;  // kept entries have no lock file
    bool stale = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    if (stale) fs::remove_all(it->path(), ec);
  }
}

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
#ifndef _WIN32
  Sweep(spool);
#endif
  std::string dir = (fs::path(spool) / ("m-" + id)).string();
  if (!fs::create_directory(dir, ec)) {
    return IoError("create " + dir + ": " + (ec ? ec.message() : std::string("it exists already")));
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  std::unique_ptr<SpoolEntry> e(new SpoolEntry(dir));
#ifndef _WIN32
  e->lock_fd_ =
      ::open((fs::path(dir) / kLock).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (e->lock_fd_ >= 0) ::flock(e->lock_fd_, LOCK_EX);
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
#ifdef _WIN32
  std::error_code ec;
  return fs::exists(fs::path(spool) / ("m-" + id) / kLock, ec);
#else
  int fd = ::open((fs::path(spool) / ("m-" + id) / kLock).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return held;
#endif
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
  if (keep_) {
    fs::remove(fs::path(dir_) / kLock, ec);
  } else {
    fs::remove_all(dir_, ec);
  }
#ifndef _WIN32
  if (lock_fd_ >= 0) ::close(lock_fd_);
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
