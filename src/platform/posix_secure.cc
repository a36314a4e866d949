// RandomBytes and WritePrivateFile on Linux: getrandom(2), and an
// O_CREAT|O_EXCL|O_NOFOLLOW file of mode 0600 renamed into place.
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/posix_util.h"
#include "platform/secure.h"

namespace ckpt::platform {

Status RandomBytes(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    ssize_t n = ::getrandom(p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("read random bytes", "getrandom", errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Status WritePrivateFile(const std::string& path, std::string_view data) {
  unsigned char r[8];
  RETURN_IF_ERROR(RandomBytes(r, sizeof r));
  std::string tmp = path + "." + HexEncode(std::string_view(reinterpret_cast<char*>(r), sizeof r)) + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError("create", tmp, errno);
  Status st;
  if (::fchmod(fd, 0600) != 0) st = PosixError("restrict access to", tmp, errno);  // umask aside
  const char* p = data.data();
  std::size_t left = data.size();
  while (st.ok() && left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = PosixError("write", tmp, errno);
      break;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 && st.ok()) st = PosixError("close", tmp, errno);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    st = PosixError("rename " + tmp + " to", path, errno);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace ckpt::platform
