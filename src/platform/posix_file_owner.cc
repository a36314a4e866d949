#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "platform/file_owner.h"
#include "platform/posix_util.h"

namespace ckpt::platform {

namespace {

class OwnedSource final : public image::RandomAccessSource {
 public:
  OwnedSource(std::string path, int fd, std::uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~OwnedSource() override { ::close(fd_); }
  Status ReadAt(std::uint64_t offset, std::size_t size, void* dst) const override {
    if (offset > size_ || size > size_ - offset) {
      return Corruption(path_ + ": read of " + std::to_string(size) + " bytes at offset " +
                        std::to_string(offset) + " runs past the end of the file");
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

Result<std::unique_ptr<image::RandomAccessSource>> OpenCheckingOwner(const std::string& path, bool* own,
                                                                     std::string* why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return PosixError("stat", path, e);
  }
  *own = true;
  if (st.st_uid != ::geteuid()) {
    *own = false;
    *why = "it belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
           std::to_string(::geteuid()) + ")";
  } else if ((st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *own = false;
    *why = std::string("other users may write it (mode ") + mode + ")";
  }
  return std::unique_ptr<image::RandomAccessSource>(
      new OwnedSource(path, fd, static_cast<std::uint64_t>(st.st_size)));
}

}  // namespace ckpt::platform
