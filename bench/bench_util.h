// Small helpers shared by the benchmarks: a monotonic clock, medians, and
// memory filled with data that neither compresses nor is zero.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ckpt::bench {

inline double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// xorshift64* from `seed`: incompressible, never a zero page.
inline void Fill(unsigned char* p, std::size_t bytes, std::uint64_t seed = 0x9e3779b97f4a7c15ull) {
  std::uint64_t s = seed | 1;
  for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    std::uint64_t v = s * 2685821657736338717ull;
    std::memcpy(p + i, &v, 8);
  }
}

}  // namespace ckpt::bench
