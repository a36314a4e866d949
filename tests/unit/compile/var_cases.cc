// Compile-time guarantees of the public API, checked by compile_test.py: the
// GOOD case (the README / docs/api.md patterns, and what a Var must keep
// allowing) must compile; every other case must fail with the given message.
// A case is selected with -DCASE_<NAME>.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"

struct Params {
  std::uint32_t n = 8;
  std::uint64_t steps = 10;
  double alpha = 0.24;
};
CKPT_FIELDS(Params, n, steps, alpha)
enum class Mode : std::uint8_t { kA, kB };

static void sweep(std::vector<double>& g) {
  for (double& v : g) v *= 0.5;
}
static double print_result(const std::vector<double>& g) {
  return g.empty() ? 0.0 : g[0];
}
static void takes_ref(std::uint64_t& v) {
  ++v;
}

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
#if defined(CASE_GOOD)
  // README / docs/api.md
  const std::uint64_t n = 4, steps = 10;
  auto& step = s.var("step", std::uint64_t{0});
  auto& grid = s.var("grid", std::vector<double>());
  auto& rng = s.var("rng", std::mt19937_64{42});
  s.stage("init", [&] { grid.assign(n * n, 0.0); });
  while (step < steps) {
    sweep(grid);
    ++step;
    s.safepoint();
  }
  print_result(grid);
  // Numbers: arithmetic, compound assignment, increments, T&, printf via get().
  auto& count = s.var<std::int64_t>("count");
  count += 3;
  count *= 2;
  count -= step;
  count <<= 1;
  count++;
  --count;
  std::int64_t copy = count;
  takes_ref(step);
  count = copy + 1;
  auto& total = s.var("total", 0.0);
  total += 0.5 * static_cast<double>(count);
  std::printf("%" PRIu64 " %.17g %s\n", step.get(), total.get(), std::to_string(step).c_str());
  auto& flag = s.var("flag", false);
  if (!flag && count > 0) flag = true;
  auto& mode = s.var("mode", Mode::kA);
  if (mode == Mode::kA) mode = Mode::kB;
  switch (mode) {
    case Mode::kA:
    case Mode::kB:
      break;
  }
  // Classes: members, assignment from T, T& and const T& parameters, copies of the value.
  auto& p = s.var("params", Params{});
  p.n = 16;
  p = Params{};
  Params pcopy = p;
  std::vector<double> next = grid;
  grid = next;
  grid.swap(next);
  for (double& v : grid) v += 1.0;
  auto& names = s.var("names", std::map<std::string, int>());
  names["a"] = 1;
  auto& label = s.var("label", std::string("x"));
  label += "y";
  std::string joined = label + "z";
  auto& opt = s.var("opt", std::optional<int>());
  opt = 5;
  auto& nd = s.var("noise", std::normal_distribution<double>(0.0, 1.0));
  std::uniform_int_distribution<int> pick(0, 9);
  double d = nd(rng) + pick(rng);
  auto& twin = s.var("twin", count);  // another variable's value as the initial value
  twin = count;                       // assignment copies the value, not the variable
  int owned = 0;
  s.bind("owned", owned);
  // docs/api.md: chrono, adapters.
  auto& elapsed = s.var("elapsed", std::chrono::milliseconds(0));
  elapsed += std::chrono::milliseconds(5);
  auto& started = s.var("started", std::chrono::system_clock::now());
  auto& jobs = s.var("jobs", std::priority_queue<std::pair<int, int>>());
  jobs.push({1, 2});
  if (started.time_since_epoch().count() < 0 || elapsed.count() < 0 || jobs.top().first < 0) return 1;
  return static_cast<int>(d + pcopy.alpha + total + static_cast<double>(twin)) & 0;
#elif defined(CASE_COPY_NUMBER)
  auto step = s.var("step", std::uint64_t{0});  // a copy the checkpoints would never see
  return static_cast<int>(step);
#elif defined(CASE_COPY_CLASS)
  auto grid = s.var("grid", std::vector<double>());
  return static_cast<int>(grid.size());
#elif defined(CASE_MOVE)
  auto rng = std::move(s.var("rng", std::mt19937_64{42}));
  return static_cast<int>(rng() & 0);
#elif defined(CASE_COPY_EXPLICIT_TYPE)
  ckpt::Var<int> step = s.var("step", 0);
  return step;
#elif defined(CASE_DISCRETE_DISTRIBUTION)
  auto& d = s.var("d", std::discrete_distribution<int>({1.0, 2.0}));
  return d.min();
#elif defined(CASE_LONG_DOUBLE_DISTRIBUTION)
  auto& d = s.var("d", std::normal_distribution<long double>());
  return static_cast<int>(d.mean());
#elif defined(CASE_STEADY_TIME_POINT)
  auto& deadline = s.var("deadline", std::chrono::steady_clock::now());
  return static_cast<int>(deadline.time_since_epoch().count() & 0);
#else
#error "no case selected"
#endif
}
