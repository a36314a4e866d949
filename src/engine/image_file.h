// The engine's image files. A dump writes its image under a temporary name
// in the image directory: created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW,
// so never an existing file or a symlink planted there), with an
// unpredictable name and exactly the image's mode (0600 unless asked),
// then renamed into place. Restore checks who owns an image before it
// trusts it. Linux only; not thread-safe per file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "platform/env.h"
#include "util/status.h"

namespace ckpt::engine {

// Image files are created with this mode unless `ckpt dump --image-mode`.
inline constexpr std::uint32_t kDefaultImageMode = 0600;

// Checks a mode asked for with --image-mode: permission bits only, and the
// owner must be able to read and write.
Status CheckImageMode(std::uint32_t mode);

// Creates `dir`/`base`.RANDOM.tmp for writing; *path gets its name and
// *lock_fd a descriptor that holds a lock on it (flock) until closed — keep
// it open until the file is renamed into place.
Result<std::unique_ptr<platform::WritableFile>> CreateTempImage(const std::string& dir,
                                                                const std::string& base, std::uint32_t mode,
                                                                std::string* path, int* lock_fd);
// Removes `dir`/`base`.RANDOM.tmp files of this user that no dump holds
// any more (left by a dump killed where nothing could clean up).
void RemoveStaleTempImages(const std::string& dir, const std::string& base);

// Opens the image at `path` for reading. Unless
// `trust` is set, refuses an image that belongs to another user than the
// caller (effective uid) or that others may write: restoring it would run
// that user's code with the caller's privileges.
Result<std::unique_ptr<image::RandomAccessSource>> OpenImageForRestore(const std::string& path, bool trust);

}  // namespace ckpt::engine
