// Cost of Session::safepoint() in tight loops, against the same loops
// without it, measured in the same run with Google Benchmark. Prints the
// overhead of each pair at the end.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"

namespace {

ckpt::Session& TheSession() {
  static ckpt::Options o = [] {
    ckpt::Options x;
    x.quiet = true;
    x.listen = true;  // as in a real program: the trigger is installed
    return x;
  }();
  static ckpt::Session s(o);
  return s;
}

// (a) Latency-bound scalar recurrence, one safepoint per iteration.
template <bool kSafepoint>
void Recurrence(benchmark::State& state) {
  auto& s = TheSession();
  volatile double va = 0.999999, vb = 1e-6;
  const double a = va, b = vb;
  for (auto _ : state) {
    double x = 1.0;
    for (int i = 0; i < 100000; ++i) {
      x = x * a + b;
      if constexpr (kSafepoint) s.safepoint();
    }
    benchmark::DoNotOptimize(x);
  }
}

// (b) A 1-D stencil, one safepoint per 64-element block.
template <bool kSafepoint>
void Stencil(benchmark::State& state) {
  auto& s = TheSession();
  std::vector<double> a(1 << 16, 1.0), b(1 << 16, 0.0);
  for (auto _ : state) {
    for (std::size_t blk = 1; blk + 64 < a.size(); blk += 64) {
      for (std::size_t i = blk; i < blk + 64; ++i) b[i] = 0.25 * (a[i - 1] + 2 * a[i] + a[i + 1]);
      if constexpr (kSafepoint) s.safepoint();
    }
    a.swap(b);
    benchmark::DoNotOptimize(a.data());
  }
}

// (c) The heat example's shape: one safepoint per sweep of a 256 x 256 grid.
template <bool kSafepoint>
void Sweep(benchmark::State& state) {
  auto& s = TheSession();
  const std::size_t n = 256;
  std::vector<double> a(n * n, 1.0), b(n * n, 0.0);
  for (auto _ : state) {
    for (std::size_t i = 1; i + 1 < n; ++i)
      for (std::size_t j = 1; j + 1 < n; ++j) {
        std::size_t k = i * n + j;
        b[k] = a[k] + 0.2 * (a[k - n] + a[k + n] + a[k - 1] + a[k + 1] - 4 * a[k]);
      }
    a.swap(b);
    if constexpr (kSafepoint) s.safepoint();
    benchmark::DoNotOptimize(a.data());
  }
}

BENCHMARK_TEMPLATE(Recurrence, false)->Name("recurrence/plain")->Repetitions(12)->ReportAggregatesOnly();
BENCHMARK_TEMPLATE(Recurrence, true)
    ->Name("recurrence/safepoint_every_iteration")
    ->Repetitions(12)
    ->ReportAggregatesOnly();
BENCHMARK_TEMPLATE(Stencil, false)->Name("stencil/plain")->Repetitions(12)->ReportAggregatesOnly();
BENCHMARK_TEMPLATE(Stencil, true)
    ->Name("stencil/safepoint_every_64_elements")
    ->Repetitions(12)
    ->ReportAggregatesOnly();
BENCHMARK_TEMPLATE(Sweep, false)->Name("sweep/plain")->Repetitions(12)->ReportAggregatesOnly();
BENCHMARK_TEMPLATE(Sweep, true)->Name("sweep/safepoint_every_sweep")->Repetitions(12)->ReportAggregatesOnly();

// Collects median real times to print the ratios.
class Collect : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> medians;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.aggregate_name == "median") {
        std::string name = r.run_name.function_name;
        medians[name] = r.GetAdjustedRealTime();
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  // Interleave the repetitions of all benchmarks so that machine noise hits
  // both sides of each pair alike.
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  args.insert(args.begin() + 1, interleave.data());
  argc = static_cast<int>(args.size());
  argv = args.data();
  benchmark::Initialize(&argc, argv);
  Collect rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  std::printf("\nsafepoint overhead (median of 12 interleaved repetitions, same run):\n");
  const char* pairs[][2] = {{"recurrence/plain", "recurrence/safepoint_every_iteration"},
                            {"stencil/plain", "stencil/safepoint_every_64_elements"},
                            {"sweep/plain", "sweep/safepoint_every_sweep"}};
  for (auto& p : pairs) {
    if (!rep.medians.count(p[0]) || !rep.medians.count(p[1])) continue;
    double base = rep.medians[p[0]], with = rep.medians[p[1]];
    std::printf("  %-40s %+7.2f %%  (%.0f ns -> %.0f ns)\n", p[1], 100.0 * (with / base - 1.0), base, with);
  }
  benchmark::Shutdown();
  return 0;
}
