// Who may have written a file: before ckpt runs a program an image names
// (`ckpt resume IMAGE` without a program), it checks that the image is the
// user's own. posix_file_owner.cc / windows_file_owner.cc. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "image/io.h"
#include "util/status.h"

namespace ckpt::platform {

// Opens `path` for reading and tells, from the file opened (so what is
// checked is what is read), whether it belongs to the user running this
// process (POSIX: its owner is the effective uid) and neither group nor
// others may write it; if not, *why says who owns it or who may write it.
// Windows: not checked (*own is always true).
Result<std::unique_ptr<image::RandomAccessSource>> OpenCheckingOwner(const std::string& path, bool* own,
                                                                     std::string* why);

}  // namespace ckpt::platform
