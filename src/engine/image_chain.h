// The identity and parent of a process image (incremental images,
// docs/image-format.md): portable, so that `ckpt inspect` shows a chain on
// every platform. Restoring from a chain is the engine's (incremental.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "image/reader.h"
#include "util/status.h"

namespace ckpt::engine {

// A process image's identity: random, written into every dump; a child
// image names its parent by it.
using ImageId = std::array<unsigned char, 16>;
Result<ImageId> NewImageId();
std::string ImageIdText(const ImageId& id);

// Version byte of the `parent` and `tracking` sections.
inline constexpr std::uint8_t kChainVersion = 1;

// The image's identity, if it records one.
Result<bool> ReadIdentity(const image::ImageReader& r, ImageId* id);
// The parent an image names: its identity and path (relative to the
// image's directory unless absolute). False if it names none.
Result<bool> ReadParentLink(const image::ImageReader& r, ImageId* id, std::string* path);
// The directory a parent path names, seen from the child's directory.
std::string ParentDir(const std::string& child_dir, const std::string& path);
// The image files of the chain of the image `r` in `dir`, parent first,
// each checked to be there and to be the image its child names; an error
// says where the chain breaks.
Result<std::vector<std::string>> ChainPaths(const std::string& dir, const image::ImageReader& r);

}  // namespace ckpt::engine
