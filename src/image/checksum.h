// XXH3-64 checksums for image headers, frames and tables. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ckpt::image {

std::uint64_t Checksum64(const void* data, std::size_t size);
inline std::uint64_t Checksum64(std::string_view s) {
  return Checksum64(s.data(), s.size());
}

}  // namespace ckpt::image
