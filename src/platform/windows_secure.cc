// RandomBytes on Windows: BCryptGenRandom (the system's preferred generator).
#include <windows.h>
// after windows.h
#include <bcrypt.h>

#include "platform/secure.h"

namespace ckpt::platform {

Status RandomBytes(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    ULONG n = size > 0x10000000 ? 0x10000000 : static_cast<ULONG>(size);
    NTSTATUS st = BCryptGenRandom(nullptr, p, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (st < 0)
      return IoError("read random bytes: BCryptGenRandom failed (status " + std::to_string(st) + ")");
    p += n;
    size -= n;
  }
  return Status::Ok();
}

}  // namespace ckpt::platform
