// The engine's image files as restore sees them: whose they are decides
// whether they may be restored (docs/engine.md, "Images, credentials and
// trust"). A dump writes its image through platform::Env::NewTempFile
// (exclusive, unpredictable, mode 0600 or --image-mode). Linux only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "image/io.h"
#include "util/status.h"

namespace ckpt::engine {

// Opens the image at `path` for reading. Unless `trust` is set, refuses an
// image that belongs to another user than the caller (effective uid) or
// that others may write: restoring it would run that user's code with the
// caller's privileges. The checks are made on the file opened.
Result<std::unique_ptr<image::RandomAccessSource>> OpenImageForRestore(const std::string& path, bool trust);

}  // namespace ckpt::engine
