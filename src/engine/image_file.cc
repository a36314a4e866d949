#include "engine/image_file.h"

#include "platform/file_owner.h"

namespace ckpt::engine {

Result<std::unique_ptr<image::RandomAccessSource>> OpenImageForRestore(const std::string& path, bool trust) {
  // Checked on the file opened (through a symlink too): what is checked is
  // what is read.
  bool own = true;
  std::string why;
  ASSIGN_OR_RETURN(auto src, platform::OpenCheckingOwner(path, &own, &why));
  if (!trust && !own) {
    return FailedPrecondition(
        "refusing to restore " + path + ": " + why +
        "; restoring it would run its writer's code with your privileges; restore it with "
        "--trust-image if you trust its writer");
  }
  return src;
}

}  // namespace ckpt::engine
