// RandomBytes on Linux: getrandom(2).
#include <errno.h>
#include <sys/random.h>

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

}  // namespace ckpt::platform
