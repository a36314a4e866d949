// A platform-independent fingerprint of a computation's result: FNV-1a over
// the IEEE-754 bit patterns of doubles, taken value by value (so byte order
// does not matter). Used by the examples' final "result" lines.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace examples {

inline std::uint64_t Fnv1a(const std::vector<double>& v, std::uint64_t h = 1469598103934665603ULL) {
  for (double d : v) {
    std::uint64_t bits = std::bit_cast<std::uint64_t>(d);
    for (int i = 0; i < 8; ++i) {
      h ^= (bits >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

}  // namespace examples
