// Who may have written a file: before ckpt runs a program an image names
// (`ckpt resume IMAGE` without a program), it checks that the image is the
// user's own. posix_file_owner.cc / windows_file_owner.cc. Thread-safe.
#pragma once

#include <string>

#include "util/status.h"

namespace ckpt::platform {

// True if `path` belongs to the user running this process (POSIX: its owner
// is the effective uid) and neither group nor others may write it; else
// false, with *why saying who owns it or who may write it. Windows: not
// checked (always true).
Result<bool> OwnedByCurrentUser(const std::string& path, std::string* why);

}  // namespace ckpt::platform
