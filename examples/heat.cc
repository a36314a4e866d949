// 2-D heat diffusion on an N x N grid of doubles (explicit finite
// differences, fixed boundary), checkpointable with CKPT.
//
//   heat [N] [STEPS] [--ckpt-... options]
//
// Prints one "result" line that is bit-for-bit the same on every platform and
// whether or not the run was interrupted by checkpoints and resumes.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "result_hash.h"

struct Params {
  std::uint32_t n = 128;
  std::uint64_t steps = 400;
  double alpha = 0.24;
};
CKPT_FIELDS(Params, n, steps, alpha)

static void Sweep(const std::vector<double>& in, std::vector<double>& out, std::uint32_t n, double alpha) {
  for (std::uint32_t i = 1; i + 1 < n; ++i) {
    for (std::uint32_t j = 1; j + 1 < n; ++j) {
      std::size_t k = static_cast<std::size_t>(i) * n + j;
      double lap = in[k - n] + in[k + n] + in[k - 1] + in[k + 1] - 4.0 * in[k];
      out[k] = in[k] + alpha * lap;
    }
  }
}

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  Params defaults;
  if (argc > 1) defaults.n = static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10));
  if (argc > 2) defaults.steps = std::strtoull(argv[2], nullptr, 10);
  if (defaults.n < 3) defaults.n = 3;

  // On a resume every value below comes from the image.
  auto& p = s.var("params", defaults);
  auto& step = s.var("step", std::uint64_t{0});
  auto& grid = s.var("grid", std::vector<double>());
  auto& rng = s.var("rng", std::mt19937_64{20261124});
  auto& injected = s.var("heat_injected", 0.0);

  s.stage("init", [&] {
    grid.assign(static_cast<std::size_t>(p.n) * p.n, 0.0);
    std::uniform_real_distribution<double> temp(50.0, 100.0);
    for (std::uint32_t j = 0; j < p.n; ++j) grid[j] = temp(rng);  // a hot top edge
  });

  std::vector<double> next = grid;
  std::uniform_int_distribution<std::uint32_t> where(1, p.n - 2);
  while (step < p.steps) {
    Sweep(grid, next, p.n, p.alpha);
    grid.swap(next);
    if (step % 50 == 0) {  // a random heat source now and then
      std::size_t k = static_cast<std::size_t>(where(rng)) * p.n + where(rng);
      grid[k] += 25.0;
      injected += 25.0;
    }
    ++step;
    s.safepoint();
  }

  double total = 0;
  for (double v : grid) total += v;
  std::printf("result heat n=%u steps=%llu hash=%016llx total=%.17g injected=%.17g\n", p.n,
              static_cast<unsigned long long>(p.steps),
              static_cast<unsigned long long>(examples::Fnv1a(grid)), total, injected.get());
  return 0;
}
