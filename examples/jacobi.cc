// Parallel Jacobi iteration for the Laplace equation on an N x N grid shared
// by the members of a group: each member updates a band of rows, and a
// barrier ends every sweep. The grid lives in a typed segment (two buffers,
// read one, write the other), so it converts between byte orders.
//
//   ckpt run -n 3 -- jacobi [N] [SWEEPS] [SLOW_RANK_DELAY_US]
//
// Rank 0 prints one "result" line, bit for bit the same whatever the number of
// checkpoints, restores and migrations in between.
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "ckpt/ckpt.hpp"

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  std::uint32_t n = argc > 1 ? static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10)) : 96;
  std::uint64_t sweeps = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 400;
  unsigned slow_us = argc > 3 ? static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)) : 0;
  if (n < 3) n = 3;
  ckpt::Group& g = s.group();
  const std::size_t cells = static_cast<std::size_t>(n) * n;
  double* grid = g.array<double>("grid", 2 * cells);
  ckpt::Barrier& sweep_done = g.barrier("sweep");
  auto& sweep = s.var("sweep", std::uint64_t{0});

  s.stage("init", [&] {
    if (g.rank() == 0) {
      for (std::size_t b = 0; b < 2; ++b) {
        double* p = grid + b * cells;
        for (std::size_t k = 0; k < cells; ++k) p[k] = 0.0;
        for (std::uint32_t j = 0; j < n; ++j) p[j] = 100.0 * (1.0 + (j % 7) / 7.0);       // hot top edge
        for (std::uint32_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i) * n] = 25.0;  // warm left edge
      }
    }
    sweep_done.wait();
  });

  // My band of interior rows.
  std::uint32_t interior = n - 2, size = static_cast<std::uint32_t>(g.size());
  std::uint32_t r = static_cast<std::uint32_t>(g.rank());
  std::uint32_t lo = 1 + interior * r / size, hi = 1 + interior * (r + 1) / size;
  while (sweep < sweeps) {
    s.safepoint();
    const double* in = grid + (sweep % 2) * cells;
    double* out = grid + ((sweep + 1) % 2) * cells;
    for (std::uint32_t i = lo; i < hi; ++i) {
      for (std::uint32_t j = 1; j + 1 < n; ++j) {
        std::size_t k = static_cast<std::size_t>(i) * n + j;
        out[k] = 0.25 * (in[k - n] + in[k + n] + in[k - 1] + in[k + 1]);
      }
    }
    if (slow_us != 0 && r + 1 == size) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
    sweep_done.wait();  // a sweep is done when every band is
    ++sweep;
  }
  if (g.rank() == 0) {
    const double* res = grid + (sweeps % 2) * cells;
    std::uint64_t h = 1469598103934665603ULL;
    double total = 0;
    for (std::size_t k = 0; k < cells; ++k) {
      std::uint64_t bits = std::bit_cast<std::uint64_t>(res[k]);
      for (int b = 0; b < 8; ++b) {
        h ^= (bits >> (8 * b)) & 0xff;
        h *= 1099511628211ULL;
      }
      total += res[k];
    }
    std::printf("result jacobi n=%u sweeps=%llu hash=%016" PRIx64 " total=%.17g\n", n,
                static_cast<unsigned long long>(sweeps), h, total);
  }
  return 0;
}
