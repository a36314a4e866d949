#include "image/checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckpt::image {

std::uint64_t Checksum64(const void* data, std::size_t size) {
  return XXH3_64bits(data, size);
}

}  // namespace ckpt::image
