// Frame codecs of the image container: none, zstd, zlib. Which ones a build
// has depends on the libraries found at configure time (Windows builds have
// zlib, not zstd). Stateless functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace ckpt::image {

enum class CodecId : std::uint8_t { kNone = 0, kZstd = 1, kZlib = 2 };

std::string_view CodecName(CodecId id);
std::optional<CodecId> ParseCodec(std::string_view name);
// True if this build can encode and decode `id`.
bool CodecAvailable(CodecId id);
// Names of the codecs this build has, e.g. "none, zstd, zlib".
std::string AvailableCodecs();
// Default compression level for a codec: 1 for both (fast; checkpoints are
// on the critical path). --ckpt-level picks another.
int DefaultLevel(CodecId id);

// Compresses `in` into `out` (resized). An empty `out` on success means the
// codec did not shrink the data and the caller should store it raw.
Status Compress(CodecId id, int level, const void* in, std::size_t in_size, std::vector<unsigned char>* out);
// Decompresses exactly `raw_size` bytes into `out`.
Status Decompress(CodecId id, const void* in, std::size_t in_size, void* out, std::size_t raw_size);

}  // namespace ckpt::image
