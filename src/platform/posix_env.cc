// Env for POSIX systems (Linux). Every OS error becomes a Status that names
// the operation, the object and strerror.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "platform/env.h"
#include "platform/posix_util.h"

namespace ckpt::platform {

Status PosixError(const std::string& op, const std::string& object, int err) {
  std::string m = op;
  if (!object.empty()) m += " " + object;
  m += ": ";
  m += std::strerror(err);
  if (err == ENOENT) return NotFound(m);
  if (err == EINVAL) return InvalidArgument(m);
  return IoError(m);
}

namespace {

class PosixWritableFile final : public BufferedWritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(const void* data, std::size_t size) override {
    if (!direct_) return BufferedWritableFile::Append(data, size);
    AdvancePosition(size);
    return direct_->Append(data, size);
  }
  void BypassPageCache() override {
    if (!direct_ && Position() == 0) direct_ = DirectAppender::Make(fd_, path_);
  }
  Status Sync() override {
    RETURN_IF_ERROR(Flush());
    if (::fsync(fd_) != 0) return PosixError("fsync", path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    Status st = Flush();
    if (fd_ >= 0 && ::close(fd_) != 0 && st.ok()) st = PosixError("close", path_, errno);
    fd_ = -1;
    return st;
  }
  Result<std::intptr_t> FlushForDirectWrites() override {
    RETURN_IF_ERROR(Flush());
    return static_cast<std::intptr_t>(fd_);
  }
  Status SkipDirectlyWritten(std::uint64_t n) override {
    RETURN_IF_ERROR(Flush());
    if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) < 0) return PosixError("seek in", path_, errno);
    AdvancePosition(n);
    return Status::Ok();
  }

 private:
  Status WriteRaw(const char* p, std::size_t n) override {
    // At most 256 KiB per write(): larger writes make the kernel allocate
    // large page-cache folios (up to 2 MiB), which on the test VM made
    // writing 1 GiB erratic (1 MiB writes: 0.33-0.79 s; 256 KiB: a steady
    // 0.36 s; docs/performance.md).
    constexpr std::size_t kMaxWrite = 256u << 10;
    for (std::size_t at = 0; at < n; at += kMaxWrite)
      RETURN_IF_ERROR(WriteFull(fd_, p + at, std::min(n - at, kMaxWrite), path_));
    return Status::Ok();
  }

  // Everything held is written; a direct writer's last partial block goes
  // through the page cache, as everything after it does.
  Status Flush() {
    if (!direct_) return FlushBuffer();
    Status st = direct_->Finish();
    direct_.reset();
    return st;
  }

  std::string path_;
  int fd_;
  std::unique_ptr<DirectAppender> direct_;
};

// Linux: /proc/self/fd names an O_TMPFILE file for linkat().
bool ProcFdUsable() {
  static const bool usable = ::access("/proc/self/fd", X_OK) == 0;
  return usable;
}

// A TempFile: an unnamed O_TMPFILE inode linked into place by Commit, or
// (on file systems without O_TMPFILE) a randomly named file renamed into
// place. The descriptor holds an flock for its whole life, so
// RemoveStaleTempFiles never takes a file a live writer is still using.
class PosixTempFile final : public TempFile {
 public:
  PosixTempFile(std::string dir, std::string prefix, std::string temp_path, int fd)
      : dir_(std::move(dir)),
        prefix_(std::move(prefix)),
        named_(!temp_path.empty()),
        name_(named_ ? temp_path : JoinPath(dir_, "(unnamed temporary file)")),
        fd_(fd),
        file_(new PosixWritableFile(name_, fd)) {}
  ~PosixTempFile() override {
    file_.reset();  // closes
    if (named_ && !committed_) ::unlink(name_.c_str());
  }
  Status Append(const void* data, std::size_t size) override { return file_->Append(data, size); }
  std::uint64_t Position() const override { return file_->Position(); }
  Status Sync() override { return file_->Sync(); }
  Status Close() override {
    closed_ = true;
    return file_->Close();
  }
  Result<std::intptr_t> FlushForDirectWrites() override { return file_->FlushForDirectWrites(); }
  Status SkipDirectlyWritten(std::uint64_t n) override { return file_->SkipDirectlyWritten(n); }
  void BypassPageCache() override { file_->BypassPageCache(); }
  const std::string& TempPath() const override { return name_; }

  Result<bool> CommitExchange(const std::string& path) override {
    if (committed_ || closed_) return Internal("temporary file " + name_ + " committed after Close or twice");
    RETURN_IF_ERROR(file_->FlushForDirectWrites().status());
    if (!named_) {  // an exchange needs a name: link the file under a random one
      for (int attempt = 0; !named_ && attempt < 16; ++attempt) {
        std::string tmp = JoinPath(dir_, prefix_ + "." + RandomHex16() + ".tmp");
        std::string self = "/proc/self/fd/" + std::to_string(fd_);
        if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) == 0) {
          name_ = tmp;
          named_ = true;
        } else if (errno != EEXIST) {
          return PosixError("link the new file to", tmp, errno);
        }
      }
      if (!named_) return IoError("link the new file into " + dir_ + ": 16 random names were all taken");
    }
    bool exchanged = false;
#ifdef RENAME_EXCHANGE
    if (::renameat2(AT_FDCWD, name_.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
      exchanged = true;
    } else if (errno != ENOENT && errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
      return PosixError("exchange", name_ + " with " + path, errno);
    }
#endif
    if (!exchanged && ::rename(name_.c_str(), path.c_str()) != 0)
      return PosixError("rename", name_ + " to " + path, errno);
    committed_ = true;  // (an exchanged old file stays at name_ for the caller)
    RETURN_IF_ERROR(file_->Close());
    return exchanged;
  }

  Result<bool> Commit(const std::string& path, bool replace) override {
    if (committed_ || closed_) return Internal("temporary file " + name_ + " committed after Close or twice");
    RETURN_IF_ERROR(file_->FlushForDirectWrites().status());
    ASSIGN_OR_RETURN(bool done, named_ ? CommitNamed(path, replace) : CommitUnnamed(path, replace));
    if (!done) return false;
    committed_ = true;
    RETURN_IF_ERROR(file_->Close());
    return true;
  }

 private:
  Result<bool> CommitNamed(const std::string& path, bool replace) {
    if (replace) {
      if (::rename(name_.c_str(), path.c_str()) != 0)
        return PosixError("rename", name_ + " to " + path, errno);
      return true;
    }
#ifdef RENAME_NOREPLACE
    if (::renameat2(AT_FDCWD, name_.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return true;
    if (errno == EEXIST) return false;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      return PosixError("rename", name_ + " to " + path, errno);
#endif
    // No RENAME_NOREPLACE here: link() never replaces either.
    if (::link(name_.c_str(), path.c_str()) != 0) {
      if (errno == EEXIST) return false;
      return PosixError("link", name_ + " to " + path, errno);
    }
    ::unlink(name_.c_str());
    return true;
  }

  Result<bool> CommitUnnamed(const std::string& path, bool replace) {
    std::string self = "/proc/self/fd/" + std::to_string(fd_);
    if (!replace) {
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
      if (errno == EEXIST) return false;
      return PosixError("link the new file to", path, errno);
    }
    // Replacing: link under a fresh random name, then rename over `path`.
    for (int attempt = 0; attempt < 16; ++attempt) {
      std::string tmp = JoinPath(dir_, prefix_ + "." + RandomHex16() + ".tmp");
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        if (errno == EEXIST) continue;
        return PosixError("link the new file to", tmp, errno);
      }
      if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return PosixError("rename", tmp + " to " + path, e);
      }
      return true;
    }
    return IoError("link the new file into " + dir_ + ": 16 random names were all taken");
  }

  std::string dir_;
  std::string prefix_;
  bool named_;
  std::string name_;
  int fd_;
  std::unique_ptr<PosixWritableFile> file_;
  bool committed_ = false;
  bool closed_ = false;
};

class PosixRandomAccessFile final : public image::RandomAccessSource {
 public:
  PosixRandomAccessFile(std::string path, int fd, std::uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size), uncached_(fd, path_) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    if (offset > size_ || size > size_ - offset) {
      return Corruption(path_ + ": read of " + std::to_string(size) + " bytes at offset " +
                        std::to_string(offset) + " runs past the end of the file (" + std::to_string(size_) +
                        " bytes)");
    }
    // Large reads (a variable's frames) take from the page cache what it
    // holds and the rest straight from the disk.
    return uncached_.Read(offset, size, dst);
  }
  std::uint64_t Size() const override { return size_; }
  const std::string& Name() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  std::uint64_t size_;
  mutable UncachedReader uncached_;
};

std::atomic<int>* g_trigger_slot = nullptr;
int g_trigger_signal = 0;
std::atomic<int> g_hold_requester{0};  // si_pid of the last hold request
static_assert(std::atomic<int>::is_always_lock_free, "used in a signal handler");

// Async-signal-safe: lock-free atomics only.
void TriggerHandler(int, siginfo_t* info, void*) {
  std::atomic<int>* slot = g_trigger_slot;
  if (slot == nullptr) return;
  int v = info != nullptr && info->si_code == SI_QUEUE ? info->si_value.sival_int : 0;
  switch (v) {
    case static_cast<int>(Request::kCheckpointAndExit):
      slot->fetch_or(v | kRequestFromOutside, std::memory_order_relaxed);
      break;
    case static_cast<int>(Request::kCheckpointAndHold):
      g_hold_requester.store(static_cast<int>(info->si_pid), std::memory_order_relaxed);
      slot->fetch_and(~(kRequestRelease | kRequestReleaseExit), std::memory_order_relaxed);
      slot->fetch_or(v | kRequestFromOutside, std::memory_order_relaxed);
      break;
    case static_cast<int>(Request::kRelease):
    case static_cast<int>(Request::kReleaseAndExit):
      slot->fetch_or(v, std::memory_order_relaxed);
      break;
    default:  // a plain checkpoint (also `kill -SIGRTMIN+5 PID`)
      slot->fetch_or(static_cast<int>(Request::kCheckpoint) | kRequestFromOutside, std::memory_order_relaxed);
  }
}

// BASE/ckpt if BASE (an $XDG_RUNTIME_DIR) is an absolute path to a
// directory this user owns; "" otherwise.
std::string UserRuntimeDir(const std::string& base) {
  struct stat st;
  if (base.empty() || base[0] != '/' || ::stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      st.st_uid != ::geteuid())
    return "";
  return JoinPath(base, "ckpt");
}

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return PosixError("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }
  Result<std::unique_ptr<TempFile>> NewTempFile(const std::string& dir, const std::string& prefix,
                                                unsigned mode) override {
    const std::string d = dir.empty() ? "." : dir;
    int fd = -1;
    std::string named;
#ifdef O_TMPFILE
    if (ProcFdUsable()) {
      fd = ::open(d.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
      // EOPNOTSUPP, EISDIR (a kernel without O_TMPFILE), EINVAL: use a name.
      if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return PosixError("create a file in", d, errno);
    }
#endif
    for (int attempt = 0; fd < 0 && attempt < 16; ++attempt) {
      named = JoinPath(d, prefix + "." + RandomHex16() + ".tmp");
      fd = ::open(named.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0 && errno != EEXIST) return PosixError("create", named, errno);
    }
    if (fd < 0) return IoError("create a temporary file in " + d + ": 16 random names were all taken");
    std::unique_ptr<TempFile> f(new PosixTempFile(d, prefix, named, fd));
    // The lock marks the file as in use for RemoveStaleTempFiles (an unnamed
    // file needs none until Commit links it, but it costs nothing).
    // (Where the file system has no locks, stale files are simply kept.)
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
      return PosixError("lock", f->TempPath(), errno);
    if (mode != 0600 && ::fchmod(fd, static_cast<mode_t>(mode & 0777)) != 0)
      return PosixError("set the mode of", f->TempPath(), errno);
    return f;
  }
  void RemoveStaleTempFiles(const std::string& dir, const std::string& prefix) override {
    auto list = ListDir(dir.empty() ? "." : dir);
    if (!list.ok()) return;
    for (const auto& e : *list) {
      if (e.is_dir || !IsTempFileName(e.name, prefix)) continue;
      std::string p = JoinPath(dir, e.name);
      int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) continue;
      struct stat st;
      // Only this user's regular files, and only those no writer holds.
      if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
          ::flock(fd, LOCK_EX | LOCK_NB) == 0)
        ::unlink(p.c_str());
      ::close(fd);
    }
  }
  Result<std::unique_ptr<image::RandomAccessSource>> NewRandomAccessFile(const std::string& path) override {
    struct stat st;
    ASSIGN_OR_RETURN(int fd, OpenForReading(path, &st));
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return InvalidArgument(path + " is a directory, not a file");
    }
    return NewFdSource(path, fd, static_cast<std::uint64_t>(st.st_size));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return PosixError("rename", from + " to " + to, errno);
    return Status::Ok();
  }
  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError("open directory", dir, errno);
    int rc = ::fsync(fd);
    int e = errno;
    ::close(fd);
    if (rc != 0 && e != EINVAL) return PosixError("fsync directory", dir, e);
    return Status::Ok();
  }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError("remove", path, errno);
    return Status::Ok();
  }
  Status CreateDirs(const std::string& path) override {
    if (path.empty()) return Status::Ok();
    std::string cur;
    std::size_t i = 0;
    while (i <= path.size()) {
      std::size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      cur = path.substr(0, j);
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return PosixError("create directory", cur, errno);
      i = j + 1;
    }
    if (!IsDirectory(path)) return IoError("create directory " + path + ": not a directory");
    return Status::Ok();
  }
  Result<std::vector<DirEntry>> ListDir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return PosixError("list directory", path, errno);
    std::vector<DirEntry> out;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      DirEntry de;
      de.name = n;
      struct stat st;
      if (::stat(JoinPath(path, n).c_str(), &st) == 0) {
        de.is_dir = S_ISDIR(st.st_mode);
        de.size = static_cast<std::uint64_t>(st.st_size);
      }
      out.push_back(std::move(de));
    }
    ::closedir(d);
    return out;
  }
  bool FileExists(const std::string& path) override {
    return ::access(path.c_str(), F_OK) == 0;
  }
  bool IsDirectory(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  std::int64_t ProcessId() override {
    return ::getpid();
  }
  bool ProcessAlive(std::int64_t pid) override {
    if (pid <= 0) return false;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
    // A zombie is not alive. (/proc files report size 0: read until EOF.)
    int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return true;
    std::string f(buf, static_cast<std::size_t>(n));
    auto p = f.rfind(')');
    return !(p != std::string::npos && p + 2 < f.size() && f[p + 2] == 'Z');
  }
  std::uint64_t ProcessStartTime(std::int64_t pid) override {
    int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[1024];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return 0;
    std::string f(buf, static_cast<std::size_t>(n));
    auto p = f.rfind(')');
    if (p == std::string::npos) return 0;
    // Fields after the command: state is field 3, starttime field 22.
    std::size_t pos = p + 2;
    for (int field = 3; field < 22 && pos < f.size(); ++field) {
      pos = f.find(' ', pos);
      if (pos == std::string::npos) return 0;
      ++pos;
    }
    return std::strtoull(f.c_str() + pos, nullptr, 10);
  }
  std::string HostName() override {
    char buf[256] = {0};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
  }
  std::string OsName() override {
    return "linux";
  }
  std::string ExecutablePath() override {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "";
    return std::string(buf, static_cast<std::size_t>(n));
  }
  std::string RuntimeDir() override {
    std::string d = GetEnv("CKPT_RUNTIME_DIR");
    if (!d.empty()) return d;
    if (std::string x = UserRuntimeDir(GetEnv("XDG_RUNTIME_DIR")); !x.empty()) return x;
    return "/tmp/ckpt-" + std::to_string(::geteuid());
  }
  std::vector<std::string> RuntimeDirs() override {
    std::vector<std::string> out = {RuntimeDir()};
    if (!GetEnv("CKPT_RUNTIME_DIR").empty()) return out;
    for (const std::string& d : {UserRuntimeDir("/run/user/" + std::to_string(::geteuid())),
                                 "/tmp/ckpt-" + std::to_string(::geteuid())}) {
      if (!d.empty() && std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
    }
    return out;
  }
  Status SecureRuntimeDir(const std::string& dir, bool create) override {
    const bool chosen = !GetEnv("CKPT_RUNTIME_DIR").empty() && dir == GetEnv("CKPT_RUNTIME_DIR");
    if (create) {
      if (chosen) RETURN_IF_ERROR(CreateDirs(DirName(dir)));
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return PosixError("create runtime directory", dir, errno);
    }
    const std::string refuse =
        "; refusing to use it (another user could plant files there to redirect ckpt's)";
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      struct stat ls;
      if (errno == ELOOP || (errno == ENOTDIR && ::lstat(dir.c_str(), &ls) == 0 && S_ISLNK(ls.st_mode)))
        return FailedPrecondition("runtime directory " + dir + " is a symbolic link" + refuse);
      if (errno == ENOTDIR) return FailedPrecondition("runtime directory " + dir + " is not a directory");
      return PosixError("runtime directory", dir, errno);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return PosixError("stat runtime directory", dir, e);
    }
    Status bad;
    char m[16];
    std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    if (st.st_uid != ::geteuid()) {
      bad = FailedPrecondition("runtime directory " + dir + " is owned by uid " + std::to_string(st.st_uid) +
                               ", not by this user (uid " + std::to_string(::geteuid()) + ")" + refuse);
    } else if ((st.st_mode & 022) != 0) {
      bad = FailedPrecondition("runtime directory " + dir + (chosen ? " (CKPT_RUNTIME_DIR)" : "") +
                               " is writable by group or others (mode " + m + ")" + refuse);
    } else if (!chosen && (st.st_mode & 077) != 0 && ::fchmod(fd, 0700) != 0) {
      // Ours and nobody else could write in it (an older ckpt made it 0755):
      // made private; that failing, refused.
      bad = FailedPrecondition("runtime directory " + dir + " is open to group or others (mode " + m +
                               ") and cannot be made private: " + std::strerror(errno));
    }
    ::close(fd);
    return bad;
  }
  Result<std::string> ReadPrivateFile(const std::string& path, std::size_t max_size) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ELOOP) return FailedPrecondition(path + " is a symbolic link; refusing to follow it");
      return PosixError("open", path, errno);
    }
    struct stat st;
    Status bad;
    if (::fstat(fd, &st) != 0) {
      bad = PosixError("stat", path, errno);
    } else if (!S_ISREG(st.st_mode)) {
      bad = FailedPrecondition(path + " is not a regular file; refusing to read it");
    } else if (st.st_uid != ::geteuid()) {
      bad = FailedPrecondition(path + " is owned by uid " + std::to_string(st.st_uid) +
                               ", not by this user (uid " + std::to_string(::geteuid()) +
                               "); refusing to trust it");
    } else if ((st.st_mode & 022) != 0) {
      bad = FailedPrecondition(path + " is writable by group or others; refusing to trust it");
    } else if (static_cast<std::uint64_t>(st.st_size) > max_size) {
      bad = FailedPrecondition(path + " is larger than " + std::to_string(max_size) + " bytes");
    }
    if (!bad.ok()) {
      ::close(fd);
      return bad;
    }
    std::string data(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
      ssize_t r = ::read(fd, data.data() + got, data.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    ::close(fd);
    data.resize(got);
    return data;
  }
  std::string AbsolutePath(const std::string& path) override {
    if (!path.empty() && path[0] == '/') return path;
    char buf[4096];
    if (::getcwd(buf, sizeof buf) == nullptr) return path;
    std::string rel = path;
    while (rel.rfind("./", 0) == 0) rel.erase(0, 2);
    if (rel.empty() || rel == ".") return buf;
    return JoinPath(buf, rel);
  }
  std::string GetEnv(const std::string& name) override {
    const char* v = ::getenv(name.c_str());
    return v == nullptr ? "" : v;
  }
  std::int64_t NowNanos() override {
    struct timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }

  Status InstallCheckpointTrigger(std::atomic<int>* slot) override {
    g_trigger_slot = slot;
    g_trigger_signal = CheckpointSignal();
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = TriggerHandler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(g_trigger_signal, &sa, nullptr) != 0)
      return PosixError("install checkpoint signal handler", std::to_string(g_trigger_signal), errno);
    return Status::Ok();
  }
  void RemoveCheckpointTrigger() override {
    if (g_trigger_signal != 0) {
      struct sigaction sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sa_handler = SIG_IGN;
      ::sigaction(g_trigger_signal, &sa, nullptr);
    }
    g_trigger_slot = nullptr;
  }
  Status SendCheckpointRequest(std::int64_t pid, Request request) override {
    union sigval v;
    v.sival_int = static_cast<int>(request);
    if (::sigqueue(static_cast<pid_t>(pid), CheckpointSignal(), v) != 0)
      return PosixError("signal process", std::to_string(pid), errno);
    return Status::Ok();
  }
  std::int64_t HoldRequester() override {
    return g_hold_requester.load(std::memory_order_relaxed);
  }
  void UnsetEnv(const std::string& name) override {
    ::unsetenv(name.c_str());
  }
};

}  // namespace

Result<int> OpenForReading(const std::string& path, struct stat* st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError("open", path, errno);
  if (::fstat(fd, st) != 0) {
    int e = errno;
    ::close(fd);
    return PosixError("stat", path, e);
  }
  return fd;
}

Status PreadFull(int fd, std::uint64_t offset, std::size_t size, void* dst, const std::string& path) {
  char* p = static_cast<char*>(dst);
  while (size > 0) {
    ssize_t r = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return PosixError("read", path, errno);
    }
    if (r == 0) return Corruption(path + ": file shrank while being read");
    p += r;
    size -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
  return Status::Ok();
}

Status WriteFull(int fd, const char* p, std::size_t n, const std::string& path, std::size_t* done) {
  std::size_t out = 0;
  while (out < n) {
    ssize_t w = ::write(fd, p + out, n - out);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (done != nullptr) *done = out;
      return PosixError("write", path, errno);
    }
    out += static_cast<std::size_t>(w);
  }
  if (done != nullptr) *done = out;
  return Status::Ok();
}

std::unique_ptr<image::RandomAccessSource> NewFdSource(std::string path, int fd, std::uint64_t size) {
  return std::make_unique<PosixRandomAccessFile>(std::move(path), fd, size);
}

int CheckpointSignal() {
  return SIGRTMIN + 5;
}

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

}  // namespace ckpt::platform
