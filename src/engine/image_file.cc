#include "engine/image_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

class ImageFile final : public platform::BufferedWritableFile {
 public:
  ImageFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~ImageFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Sync() override {
    RETURN_IF_ERROR(FlushBuffer());
    if (::fsync(fd_) != 0) return PosixError("fsync", path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    Status st = FlushBuffer();
    if (fd_ >= 0 && ::close(fd_) != 0 && st.ok()) st = PosixError("close", path_, errno);
    fd_ = -1;
    return st;
  }
  Result<std::intptr_t> FlushForDirectWrites() override {
    RETURN_IF_ERROR(FlushBuffer());
    return static_cast<std::intptr_t>(fd_);
  }
  Status SkipDirectlyWritten(std::uint64_t n) override {
    RETURN_IF_ERROR(FlushBuffer());
    if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) < 0) return PosixError("seek in", path_, errno);
    AdvancePosition(n);
    return Status::Ok();
  }

 private:
  Status WriteRaw(const char* p, std::size_t n) override {
    // At most 256 KiB per write(), as platform::PosixWritableFile (large
    // page-cache folios made bigger writes erratic; docs/performance.md).
    constexpr std::size_t kMaxWrite = 256u << 10;
    while (n > 0) {
      ssize_t w = ::write(fd_, p, std::min(n, kMaxWrite));
      if (w < 0) {
        if (errno == EINTR) continue;
        return PosixError("write", path_, errno);
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return Status::Ok();
  }

  std::string path_;
  int fd_;
};

class ImageSource final : public image::RandomAccessSource {
 public:
  ImageSource(std::string path, int fd, std::uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~ImageSource() override { ::close(fd_); }
  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    if (offset > size_ || size > size_ - offset) {
      return Corruption(path_ + ": read of " + std::to_string(size) + " bytes at offset " +
                        std::to_string(offset) + " runs past the end of the file (" + std::to_string(size_) +
                        " bytes)");
    }
    char* p = static_cast<char*>(dst);
    while (size > 0) {
      ssize_t r = ::pread(fd_, p, size, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return PosixError("read", path_, errno);
      if (r == 0) return Corruption(path_ + ": file shrank while being read");
      p += r;
      size -= static_cast<std::size_t>(r);
      offset += static_cast<std::uint64_t>(r);
    }
    return Status::Ok();
  }
  std::uint64_t Size() const override { return size_; }
  const std::string& Name() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  std::uint64_t size_;
};

std::string RandomSuffix() {
  unsigned char b[8] = {0};
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    // No entropy source: still unique enough, and the open is exclusive.
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    std::uint64_t v = static_cast<std::uint64_t>(ts.tv_nsec) ^ (static_cast<std::uint64_t>(::getpid()) << 32);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  char hex[17];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", b[i]);
  return hex;
}

}  // namespace

Status CheckImageMode(std::uint32_t mode) {
  if ((mode & ~0777u) != 0) return InvalidArgument("--image-mode takes permission bits only (at most 0777)");
  if ((mode & 0600u) != 0600u)
    return InvalidArgument("--image-mode must let the owner read and write (0600)");
  return Status::Ok();
}

Result<std::unique_ptr<platform::WritableFile>> CreateTempImage(const std::string& dir,
                                                                const std::string& base, std::uint32_t mode,
                                                                std::string* path, int* lock_fd) {
  RETURN_IF_ERROR(CheckImageMode(mode));
  for (int attempt = 0;; ++attempt) {
    std::string p = platform::JoinPath(dir, base + "." + RandomSuffix() + ".tmp");
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST && attempt < 16) continue;
    if (fd < 0) return PosixError("create", p, errno);
    // Exactly the mode asked for, whatever the umask.
    if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
      int e = errno;
      ::close(fd);
      ::unlink(p.c_str());
      return PosixError("chmod", p, e);
    }
    // A dump holds it: RemoveStaleTempImages leaves it alone.
    (void)::flock(fd, LOCK_EX | LOCK_NB);
    *lock_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    *path = p;
    return std::unique_ptr<platform::WritableFile>(new ImageFile(p, fd));
  }
}

void RemoveStaleTempImages(const std::string& dir, const std::string& base) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::string prefix = base + ".";
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() != prefix.size() + 16 + 4 || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - 4, 4, ".tmp") != 0 ||
        name.find_first_not_of("0123456789abcdef", prefix.size()) != prefix.size() + 16) {
      continue;
    }
    std::string p = platform::JoinPath(dir, name);
    int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st, again;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::lstat(p.c_str(), &again) == 0 && again.st_ino == st.st_ino &&
        again.st_dev == st.st_dev) {
      ::unlink(p.c_str());
    }
    ::close(fd);
  }
  ::closedir(d);
}

Result<std::unique_ptr<image::RandomAccessSource>> OpenImageForRestore(const std::string& path, bool trust) {
  // The checks below are made on the file opened (through a symlink too):
  // what is checked is what is read.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return PosixError("stat", path, e);
  }
  std::string why;
  if (!S_ISREG(st.st_mode)) {
    why = path + " is not a regular file";
  } else if (!trust && st.st_uid != ::geteuid()) {
    why = path + " belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
          std::to_string(::geteuid()) +
          "): restoring it would run that user's code with your privileges; restore it with --trust-image "
          "if you trust its writer";
  } else if (!trust && (st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = path + " may be written by other users (mode " + mode +
          "): restoring it would run their code with your privileges; restore it with --trust-image if you "
          "trust it";
  }
  if (!why.empty()) {
    ::close(fd);
    return FailedPrecondition(why);
  }
  return std::unique_ptr<image::RandomAccessSource>(
      new ImageSource(path, fd, static_cast<std::uint64_t>(st.st_size)));
}

}  // namespace ckpt::engine
