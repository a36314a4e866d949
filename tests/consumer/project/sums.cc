// sums [STEPS]: a running sum of i*i mod 2^64 and a double series, one step
// per safepoint; prints "result STEPS SUM SERIES". Checkpointed and resumed
// (--ckpt-stop-at, --ckpt-resume) it prints what an uninterrupted run prints.
#include <cinttypes>
#include <ckpt/ckpt.hpp>
#include <cstdio>
#include <cstdlib>
#include <vector>

#ifdef SUMS_PLUGIN
extern "C" int sums_main(int argc, char** argv) {
#else
int main(int argc, char** argv) {
#endif
  ckpt::Session s(argc, argv);
  std::uint64_t steps = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  auto& i = s.var("i", std::uint64_t{0});
  auto& sum = s.var("sum", std::uint64_t{0});
  auto& series = s.var("series", std::vector<double>{0.0, 1.0});
  while (i < steps) {  // a step is done, then the safepoint: a resume starts with the next one
    sum += i * i;
    series[0] += series[1] / static_cast<double>(i + 1);
    series[1] = -series[1];
    ++i;
    s.safepoint();
  }
  std::printf("result %" PRIu64 " %" PRIu64 " %.17g\n", steps, sum.get(), series[0]);
  return 0;
}
