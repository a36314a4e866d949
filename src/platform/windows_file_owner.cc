#include "platform/env.h"
#include "platform/file_owner.h"

namespace ckpt::platform {

// Windows files carry ACLs rather than one owner with mode bits, and the
// images live in the user's profile: not checked here (docs/cli.md).
Result<std::unique_ptr<image::RandomAccessSource>> OpenCheckingOwner(const std::string& path, bool* own,
                                                                     std::string* why) {
  (void)why;
  *own = true;
  return Env::Default()->NewRandomAccessFile(path);
}

}  // namespace ckpt::platform
