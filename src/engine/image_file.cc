#include "engine/image_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

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

}  // namespace

Status CheckImageMode(std::uint32_t mode) {
  if ((mode & ~0777u) != 0) return InvalidArgument("--image-mode takes permission bits only (at most 0777)");
  if ((mode & 0600u) != 0600u)
    return InvalidArgument("--image-mode must let the owner read and write (0600)");
  return Status::Ok();
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
