#include "image/checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckpt::image {

#if defined(CKPT_CHECKSUM_AVX2)
namespace detail {
std::uint64_t Checksum64Avx2(const void* data, std::size_t size);  // checksum_avx2.cc
}  // namespace detail
#endif

std::uint64_t Checksum64(const void* data, std::size_t size) {
#if defined(CKPT_CHECKSUM_AVX2)
  // Short inputs never reach XXH3's vector loop: no dispatch for them.
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (size >= 1024 && avx2) return detail::Checksum64Avx2(data, size);
#endif
  return XXH3_64bits(data, size);
}

}  // namespace ckpt::image
